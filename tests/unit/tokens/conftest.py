"""Keys shared by the token tests; RSA generation is slow, so once a session."""

from __future__ import annotations

import pytest

from wif.tokens import SigningKey


@pytest.fixture(scope="session")
def es256_key() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture(scope="session")
def other_es256_key() -> SigningKey:
    return SigningKey.generate("ES256")


@pytest.fixture(scope="session")
def rs256_key() -> SigningKey:
    return SigningKey.generate("RS256")
