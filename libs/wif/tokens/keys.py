"""Public verification keys read from JWKs (RFC 7517, RFC 7518 section 6).

A :class:`VerificationKey` pins one algorithm: a token is verified with the
algorithm its key names, never with the one the token asks for (RFC 8725
section 3.1). Keys are validated strictly and their python-jose key object
is built once, because python-jose itself accepts private keys, weak RSA
moduli, curves that do not match the algorithm and sloppy base64.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from jose import jwk as jose_jwk

from wif.tokens import base64url
from wif.tokens.public_jwk import validate_public_jwk

# The members a thumbprint covers, already in lexicographic order (RFC 7638 3.2).
_THUMBPRINT_MEMBERS: Final = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}


@dataclass(frozen=True, repr=False)
class VerificationKey:
    """A public key that verifies signatures made with exactly one algorithm.

    ``jose_key`` is the python-jose key object, built once; ``jwk`` holds
    only public members, plus ``kid`` when known, ``alg`` and ``use``.
    """

    kid: str | None
    alg: str
    jose_key: Any
    jwk: Mapping[str, Any]

    @classmethod
    def from_jwk(
        cls, jwk: Mapping[str, Any], allowed_algorithms: Collection[str]
    ) -> VerificationKey:
        """Validate a public EC or RSA JWK and build its key once.

        The algorithm is pinned as :func:`validate_public_jwk` describes.

        Raises:
            ValueError: the JWK is symmetric or private, is not for
                signatures, names a refused algorithm, has a malformed or
                inconsistent member, or is an RSA key under 2048 bits.
        """
        alg, kid, public = validate_public_jwk(jwk, allowed_algorithms)

        described = {**public, "alg": alg, "use": "sig"}
        if kid is not None:
            described["kid"] = kid
        return cls(kid, alg, _construct(public, alg), MappingProxyType(described))

    def __repr__(self) -> str:
        return f"VerificationKey(kid={self.kid!r}, alg={self.alg!r})"


class KeySet(Mapping[str, VerificationKey]):
    """An immutable mapping from ``kid`` to :class:`VerificationKey`.

    Keys are found by ``kid`` only: python-jose's habit of trying every key
    of a set until one verifies is what this class exists to avoid.
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[VerificationKey] = ()) -> None:
        """Index ``keys`` by kid.

        Raises:
            ValueError: a key has no kid, or two keys share one.
        """
        by_kid: dict[str, VerificationKey] = {}
        for key in keys:
            if key.kid is None:
                raise ValueError("every key in a key set needs a kid")
            if key.kid in by_kid:
                raise ValueError(f"two keys share the kid {key.kid!r}")
            by_kid[key.kid] = key
        self._keys: Mapping[str, VerificationKey] = MappingProxyType(by_kid)

    @classmethod
    def from_jwks(
        cls, document: Mapping[str, Any], allowed_algorithms: Collection[str]
    ) -> tuple[KeySet, list[str]]:
        """Build a key set from a JWK Set document (RFC 7517 section 5).

        Keys that fail validation, keys without a kid and every copy of a
        repeated kid are left out; the returned list says why for each.

        Raises:
            ValueError: the document is not an object with a ``keys`` array.
        """
        entries = document.get("keys") if isinstance(document, Mapping) else None
        if not isinstance(entries, list):
            raise ValueError("a JWK set must be an object with a keys array")

        repeated = _repeated_kids(entries)
        problems = [
            f"kid {kid!r} is repeated: every copy dropped" for kid in sorted(repeated)
        ]
        keys = list(_load(entries, allowed_algorithms, problems))
        return cls(key for key in keys if key.kid not in repeated), problems

    @property
    def kids(self) -> tuple[str, ...]:
        """The key ids in the set, in the order the keys were given."""
        return tuple(self._keys)

    def __getitem__(self, kid: str) -> VerificationKey:
        return self._keys[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeySet(kids={list(self._keys)!r})"


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """Return the RFC 7638 SHA-256 thumbprint of an EC or RSA JWK, base64url.

    Only the required members count, so a public key and its private key,
    with or without ``kid``, ``alg`` or ``use``, share one thumbprint.

    Raises:
        ValueError: the key type is not EC or RSA, or a required member is
            missing or not a string.
    """
    kty = jwk.get("kty")
    names = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if names is None:
        raise ValueError("thumbprints are computed for EC and RSA keys only")

    members = {name: jwk.get(name) for name in names}
    if not all(isinstance(value, str) for value in members.values()):
        raise ValueError("a thumbprint needs every required member as a string")

    text = json.dumps(members, separators=(",", ":"), sort_keys=True)
    return base64url.encode(hashlib.sha256(text.encode("utf-8")).digest())


def _load(
    entries: list[Any], allowed_algorithms: Collection[str], problems: list[str]
) -> Iterator[VerificationKey]:
    for index, entry in enumerate(entries):
        try:
            key = VerificationKey.from_jwk(entry, allowed_algorithms)
        except ValueError as exc:
            problems.append(f"key {index}: {exc}")
            continue

        if key.kid is None:
            problems.append(f"key {index}: no kid, so no token could select it")
            continue
        yield key


def _repeated_kids(entries: list[Any]) -> frozenset[str]:
    kids = Counter(
        entry["kid"]
        for entry in entries
        if isinstance(entry, Mapping) and isinstance(entry.get("kid"), str)
    )
    return frozenset(kid for kid, count in kids.items() if count > 1)


def _construct(public: dict[str, str], alg: str) -> Any:
    try:
        key = jose_jwk.construct(dict(public), alg)
    except Exception as exc:
        # python-jose raises JWKError, KeyError or cryptography's ValueError.
        raise ValueError(f"the key is not a valid {public['kty']} key") from exc

    if not key.is_public():
        raise ValueError("the key is not a public key")
    return key
