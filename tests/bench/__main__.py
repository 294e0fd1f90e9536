"""Token work against its ceiling: raw ES256 through ``cryptography``.

Prints, for signing and for validation, the cost per operation and its
multiple of the raw OpenSSL operation measured in the same run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from wif.tokens import (
    KeySet,
    SigningKey,
    check_claims,
    parse_compact,
    select_key,
    verify_signature,
)

ROUNDS = 3000


def per_op(func: Callable[[], object], rounds: int = ROUNDS) -> float:
    """Seconds per call, best of three runs."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            func()
        best = min(best, (time.perf_counter() - start) / rounds)
    return best


def main() -> None:
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

    rows = [
        (
            "sign",
            per_op(lambda: key.sign(claims)),
            per_op(lambda: raw_key.sign(message, ec.ECDSA(hashes.SHA256()))),
        ),
        (
            "validate",
            per_op(validate),
            per_op(
                lambda: raw_public.verify(
                    raw_signature, message, ec.ECDSA(hashes.SHA256())
                )
            ),
        ),
    ]
    print(f"{'operation':<10} {'mesh us':>9} {'raw us':>9} {'ratio':>7}")
    for name, mesh, raw in rows:
        print(f"{name:<10} {mesh * 1e6:>9.1f} {raw * 1e6:>9.1f} {mesh / raw:>7.2f}")


if __name__ == "__main__":
    from tests.bench import policy

    main()
    policy.main()
