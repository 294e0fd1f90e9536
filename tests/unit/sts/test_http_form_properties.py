"""Property tests of the HTTP form handling: any body, a documented outcome."""

from __future__ import annotations

from urllib.parse import urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from services.sts.exchange import GRANT_TYPE, TYPE_JWT, check_request
from services.sts.http import exchange_request, parse_form
from wif.errors import WifError

NAMES = st.sampled_from(
    [
        *("grant_type", "subject_token", "subject_token_type", "audience"),
        *("resource", "scope", "actor_token", "requested_token_type"),
        "allow_scope_trimming",
    ]
) | st.text(max_size=12)
VALUES = st.sampled_from([GRANT_TYPE, TYPE_JWT, "payments-api", "true", "a b"]) | (
    st.text(max_size=80)
)
PAIRS = st.lists(st.tuples(NAMES, VALUES), max_size=30)
BODIES = st.binary(max_size=4096) | PAIRS.map(lambda p: urlencode(p).encode())


@settings(max_examples=300)
@given(body=BODIES)
def test_any_body_parses_or_is_refused_with_a_mesh_error(body: bytes) -> None:
    refused: WifError | None = None
    try:
        form = parse_form(body)
        request = exchange_request(form, "127.0.0.1")
        check_request(request)
    except WifError as error:
        refused = error

    if refused is not None:
        assert refused.http_status in (400, 401, 403)
        assert refused.reason.isupper()
    else:
        assert request.subject_token
        assert all(value for values in form.values() for value in values)


@settings(max_examples=200)
@given(pairs=PAIRS)
def test_only_targets_may_repeat(pairs: list[tuple[str, str]]) -> None:
    try:
        form = parse_form(urlencode(pairs).encode())
    except WifError as error:
        reason = error.reason
        form = {}
    else:
        reason = ""

    repeated = {name for name, values in form.items() if len(values) > 1}
    assert repeated <= {"audience", "resource"}
    assert reason in ("", "REPEATED_PARAMETER", "MALFORMED_FORM")
