"""TokenSource against a stand-in STS served by a real gRPC server on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.unit.client.servers import StsBehaviour, stand_in_sts
from wif.client import (
    ExchangeFailed,
    GrpcExchanger,
    TokenSource,
    file_subject_token,
    token_source_from_environment,
)
from wif.client.environment import (
    ENV_AUDIENCE,
    ENV_SCOPES,
    ENV_STS_ADDRESS,
    ENV_SUBJECT_TOKEN_FILE,
)
from wif.dev.etcd import free_port
from wif.errors import InvalidGrant

POLLS = 200
POLL_SECONDS = 0.05


def _wait_for(condition: Callable[[], bool]) -> None:
    for _ in range(POLLS):
        if condition():
            return
        time.sleep(POLL_SECONDS)
    raise AssertionError("the condition never held")


@pytest.fixture
def behaviour() -> StsBehaviour:
    return StsBehaviour()


@pytest.fixture
def exchanger(behaviour: StsBehaviour) -> Iterator[GrpcExchanger]:
    with stand_in_sts(behaviour) as address:
        exchanger = GrpcExchanger(address, timeout=5)
        yield exchanger
        exchanger.close()


def _source(exchanger: GrpcExchanger, **options: float) -> TokenSource:
    return TokenSource(
        exchanger,
        lambda: "platform-token",
        audience="payments-api",
        scopes=("payments.read",),
        jitter_fraction=0.0,
        expiry_margin=0.1,
        **options,
    )


def test_token_exchanges_once_and_then_serves_the_cache(
    exchanger: GrpcExchanger, behaviour: StsBehaviour
) -> None:
    source = _source(exchanger)

    tokens = {source.token() for _ in range(20)}

    assert tokens == {"mesh-token-1"}
    assert behaviour.calls == 1
    assert behaviour.subject_tokens == ["platform-token"]


def test_token_renews_in_the_background_before_it_expires(
    exchanger: GrpcExchanger, behaviour: StsBehaviour
) -> None:
    behaviour.expires_in = 2
    with _source(exchanger, renew_fraction=0.5) as source:
        first = source.token()
        first_expires_at = time.time() + behaviour.expires_in

        _wait_for(lambda: source.token() != first)
        renewed_at = time.time()

    assert first == "mesh-token-1"
    assert source.renewals >= 1
    assert renewed_at < first_expires_at


def test_callers_get_the_cached_token_while_a_renewal_hangs(
    exchanger: GrpcExchanger, behaviour: StsBehaviour
) -> None:
    behaviour.expires_in = 4
    behaviour.hold_from_call = 2
    with _source(exchanger, renew_fraction=0.25) as source:
        _wait_for(lambda: behaviour.calls >= 2)
        results: list[str] = []
        callers = [
            threading.Thread(target=lambda: results.append(source.token()))
            for _ in range(8)
        ]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(timeout=5)
        waiting = [caller for caller in callers if caller.is_alive()]
        behaviour.release.set()

    assert waiting == []
    assert results == ["mesh-token-1"] * 8


def test_renewal_retries_with_backoff_while_the_sts_fails(
    exchanger: GrpcExchanger, behaviour: StsBehaviour
) -> None:
    behaviour.expires_in = 6
    with _source(exchanger, renew_fraction=0.1) as source:
        first = source.token()
        behaviour.failures_left = 2
        seen_while_failing: set[str] = set()

        def renewed() -> bool:
            seen_while_failing.add(source.token())
            return behaviour.failures_left == 0 and source.token() != first

        _wait_for(renewed)

    assert behaviour.calls >= 4
    assert first in seen_while_failing
    assert source.token() == f"mesh-token-{behaviour.calls}"


def test_token_reports_a_refusal_with_its_oauth_error_and_reason(
    exchanger: GrpcExchanger, behaviour: StsBehaviour
) -> None:
    behaviour.refusal = InvalidGrant("the token has expired", reason="TOKEN_EXPIRED")

    with pytest.raises(ExchangeFailed) as failed:
        _source(exchanger).token()

    assert failed.value.error == "invalid_grant"
    assert failed.value.reason == "TOKEN_EXPIRED"


def test_token_reports_an_unreachable_sts_as_temporarily_unavailable() -> None:
    exchanger = GrpcExchanger(f"127.0.0.1:{free_port()}", timeout=2)

    with pytest.raises(ExchangeFailed) as failed:
        _source(exchanger).token()

    exchanger.close()
    assert failed.value.error == "temporarily_unavailable"


def test_file_subject_token_is_read_again_at_each_exchange(
    exchanger: GrpcExchanger, behaviour: StsBehaviour, tmp_path: Path
) -> None:
    projected = tmp_path / "token"
    projected.write_text("first-platform-token\n")
    behaviour.expires_in = 1
    source = TokenSource(
        exchanger,
        file_subject_token(projected),
        audience="payments-api",
        expiry_margin=0.5,
    )

    source.token()
    projected.write_text("rotated-platform-token\n")
    _wait_for(lambda: source.token() != "mesh-token-1")

    assert behaviour.subject_tokens[:2] == [
        "first-platform-token",
        "rotated-platform-token",
    ]


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5])
def test_token_source_refuses_a_renew_fraction_outside_zero_and_one(
    exchanger: GrpcExchanger, fraction: float
) -> None:
    with pytest.raises(ValueError, match="renew_fraction"):
        _source(exchanger, renew_fraction=fraction)


def test_token_source_from_environment_reads_the_pod_settings(
    behaviour: StsBehaviour, tmp_path: Path
) -> None:
    projected = tmp_path / "token"
    projected.write_text("projected-token")
    with stand_in_sts(behaviour) as address:
        source = token_source_from_environment(
            {
                ENV_SUBJECT_TOKEN_FILE: str(projected),
                ENV_STS_ADDRESS: address,
                ENV_AUDIENCE: "payments-api",
                ENV_SCOPES: "payments.read payments.write",
            }
        )

        token = source.token()

    assert token.startswith("mesh-token-")
    assert behaviour.subject_tokens[-1] == "projected-token"


def test_token_source_from_environment_names_what_is_missing() -> None:
    with pytest.raises(ValueError, match="WIF_STS_ADDRESS, WIF_AUDIENCE"):
        token_source_from_environment({ENV_SUBJECT_TOKEN_FILE: "/token"})
