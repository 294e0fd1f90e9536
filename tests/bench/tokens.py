"""Token work against its ceiling: raw ES256 through ``cryptography``.

Prints, for signing and for validation, the cost per operation and its
multiple of the raw OpenSSL operation, the two measured in turns. Validation
is measured twice more through the STS's whole ``MeshTokenValidator``
(issuer from the trust configuration, key by ``kid``, claims, revocation):
with its cache of valid tokens disabled, so every call verifies, and with
the token cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from services.sts.validation import MeshTokenValidator, ValidationCache
from tests.bench.policy import raw_config
from wif.tokens import (
    KeySet,
    SigningKey,
    check_claims,
    parse_compact,
    select_key,
    verify_signature,
)
from wif.trust.config import build_config

ROUNDS = 3000
#: Runs of each operation in a paired measurement, taken in turns.
PAIRED_RUNS = 9


def per_op(func: Callable[[], object], rounds: int = ROUNDS) -> float:
    """Seconds per call, best of three runs."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            func()
        best = min(best, (time.perf_counter() - start) / rounds)
    return best


def paired(
    mesh: Callable[[], object], raw: Callable[[], object]
) -> tuple[float, float]:
    """Seconds per call of both, measured in turns, best run of each.

    Taking turns exposes both to the same moments of the machine, so their
    ratio holds even while something else runs beside the benchmark.
    """
    best_mesh = best_raw = float("inf")
    for _ in range(PAIRED_RUNS):
        best_mesh = min(best_mesh, per_op(mesh, ROUNDS // 3))
        best_raw = min(best_raw, per_op(raw, ROUNDS // 3))
    return best_mesh, best_raw


def mesh_validator(keyset: KeySet, cached: bool) -> MeshTokenValidator:
    """The STS's validator over fixed configuration, keys and revocations."""
    config = build_config(raw_config(100))
    trust = SimpleNamespace(require=lambda: config)
    keyring = SimpleNamespace(keyset=keyset)
    revoked = SimpleNamespace(
        token_revoked=lambda token_id: False, subject_revoked=lambda subject: False
    )
    validator = MeshTokenValidator(
        cast(Any, trust), cast(Any, keyring), cast(Any, revoked)
    )
    if not cached:
        # Every entry is evicted as it is stored, so every call verifies.
        validator.cache = ValidationCache(max_entries=0)
    return validator


def main() -> dict[str, float]:
    key = SigningKey.generate("ES256")
    keyset, _ = KeySet.from_jwks({"keys": [key.public_jwk()]}, ("ES256",))
    now = int(time.time())
    claims = {
        "iss": "https://wif.acme.example",
        "sub": "spiffe://acme.example/a/b",
        "aud": "payments-api",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": "x",
    }
    token = key.sign(claims)

    raw_key = ec.generate_private_key(ec.SECP256R1())
    raw_public = raw_key.public_key()
    message = token.rsplit(".", 1)[0].encode()
    raw_signature = raw_key.sign(message, ec.ECDSA(hashes.SHA256()))

    def validate() -> None:
        parsed = parse_compact(token)
        verify_signature(parsed, select_key(parsed, keyset))
        check_claims(
            parsed.claims,
            issuer=claims["iss"],
            audiences=["payments-api"],
            now=time.time(),
            skew=30,
            max_age=None,
        )

    def raw_sign() -> object:
        return raw_key.sign(message, ec.ECDSA(hashes.SHA256()))

    def raw_verify() -> None:
        raw_public.verify(raw_signature, message, ec.ECDSA(hashes.SHA256()))

    miss = mesh_validator(keyset, cached=False)
    hit = mesh_validator(keyset, cached=True)
    rows = [
        ("sign", *paired(lambda: key.sign(claims), raw_sign)),
        ("validate", *paired(validate, raw_verify)),
        (
            "STS validator, cache off",
            *paired(lambda: miss.validate(token, "payments-api"), raw_verify),
        ),
        (
            "STS validator, cached",
            *paired(lambda: hit.validate(token, "payments-api"), raw_verify),
        ),
    ]
    print(f"\n{'token operation':<26} {'mesh us':>9} {'raw us':>9} {'x raw':>7}")
    for name, mesh, raw in rows:
        print(f"{name:<26} {mesh * 1e6:>9.1f} {raw * 1e6:>9.1f} {mesh / raw:>7.2f}")
    return {name: mesh / raw for name, mesh, raw in rows}
