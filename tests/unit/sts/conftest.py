"""Fixtures shared by the STS unit tests: a mesh token validator over fixed parts."""

from __future__ import annotations

import pytest

from services.sts.validation import MeshTokenValidator
from wif.revocations import RevocationList
from wif.store import EtcdStore
from wif.tokens import KeySet, SigningKey
from wif.trust.config import TrustConfig


class Keyring:
    """The part of KeyringFollower the validator reads."""

    def __init__(self, keys: KeySet) -> None:
        self.keyset = keys


class Trust:
    """The part of TrustFollower the validator reads."""

    def __init__(self, config: TrustConfig) -> None:
        self._config = config

    def require(self) -> TrustConfig:
        return self._config


@pytest.fixture
def key() -> SigningKey:
    """The mesh's signing key in these tests."""
    return SigningKey.generate("ES256")


@pytest.fixture
def revoked() -> RevocationList:
    """A revocation list that no etcd feeds: tests fill it themselves."""
    return RevocationList(EtcdStore("127.0.0.1:1"))


@pytest.fixture
def validator(
    key: SigningKey, revoked: RevocationList, dev_config: TrustConfig
) -> MeshTokenValidator:
    """The STS's validator of mesh tokens signed by ``key``."""
    keys = KeySet.from_jwks({"keys": [key.public_jwk()]}, ("ES256",))[0]
    return MeshTokenValidator(Trust(dev_config), Keyring(keys), revoked)  # type: ignore[arg-type]
