"""An ITS whose keys live in a SoftHSM2 token: it signs, and PyJWT verifies.

The ITS runs as its own process with ``--signer pkcs11`` against an etcd of
its own, since a key set is held either sealed or by one token, not both.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import jwt
import pytest

from tests.support.mesh import REPO_ROOT
from tests.support.replicas import Replica, start_replica
from tests.support.softhsm import init_token
from wif.dev.etcd import start_etcd
from wif.dev.mesh import apply_config
from wif.keyring import KEYS_PREFIX, parse_records
from wif.store import EtcdStore
from wif.v1 import its_pb2, its_pb2_grpc

ISSUER = "http://127.0.0.1:1"


@pytest.fixture(scope="module")
def hsm_its(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("hsm-its")
    (state / "logs").mkdir()
    token = init_token(state / "softhsm", label="wif-its")
    pin_file = state / "pin"
    pin_file.write_text(token.pin)
    with start_etcd(state / "etcd") as etcd:
        asyncio.run(
            apply_config(
                etcd.endpoint,
                REPO_ROOT / "config" / "dev-trust.yaml",
                {"WIF_ISSUER": ISSUER, "WIF_DEV_OIDC_ISSUER": "http://127.0.0.1:2"},
            )
        )
        env = {
            "WIF_ETCD_ENDPOINT": etcd.endpoint,
            "WIF_ITS_SIGNER": "pkcs11",
            "WIF_PKCS11_MODULE": token.module,
            "WIF_PKCS11_TOKEN_LABEL": token.label,
            "WIF_PKCS11_PIN_FILE": str(pin_file),
            "SOFTHSM2_CONF": str(token.conf),
        }
        replica: Replica = start_replica("its", "its-hsm", state, env)
        ready = json.loads((state / "its-hsm.ready").read_text())
        try:
            yield {
                "grpc": replica.grpc,
                "jwks": f"http://127.0.0.1:{ready['http_port']}/.well-known/jwks.json",
                "etcd": etcd.endpoint,
                "state": state,
            }
        finally:
            replica.stop()


def _jwks(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
        body: dict[str, Any] = json.loads(response.read())
    return body


async def test_hsm_held_key_signs_tokens_that_pyjwt_verifies(
    hsm_its: dict[str, Any],
) -> None:
    request = its_pb2.IssueTokenRequest(
        subject="spiffe://acme.example/payments-ci/acme-corp/payments-api",
        audiences=["payments-api"],
        lifetime_seconds=600,
    )
    async with grpc.aio.insecure_channel(hsm_its["grpc"]) as channel:
        issued = await its_pb2_grpc.IdentityTokenServiceStub(channel).IssueToken(
            request, timeout=10
        )
    jwks = await asyncio.to_thread(_jwks, hsm_its["jwks"])

    claims = jwt.decode(
        issued.token,
        jwt.PyJWKSet.from_dict(jwks)[issued.key_id],
        algorithms=["ES256"],
        audience="payments-api",
        issuer=ISSUER,
    )

    assert claims["jti"] == issued.token_id


async def test_hsm_key_record_holds_only_the_token_object_id(
    hsm_its: dict[str, Any],
) -> None:
    async with EtcdStore(hsm_its["etcd"]) as store:
        snapshot = await store.get_prefix(KEYS_PREFIX)

    (record,) = parse_records(snapshot.items)
    assert len(record.hsm_key_id) == 32
    assert record.sealed_private == {}
