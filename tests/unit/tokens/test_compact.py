"""Tests for wif.tokens.compact: strict parsing of compact tokens."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wif.errors import InvalidGrant
from wif.tokens import MAX_TOKEN_BYTES, SigningKey, base64url
from wif.tokens.compact import parse_compact, unverified_issuer

from .forging import (
    DUMMY_SIGNATURE,
    assemble,
    b64,
    good_claims,
    good_header,
    segment,
)

_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass(frozen=True)
class Case:
    name: str
    token: str
    reason: str


def _refusal(token: str) -> InvalidGrant:
    with pytest.raises(InvalidGrant) as caught:
        parse_compact(token)
    # The message goes back to the caller and into logs: never the token.
    assert not token or token not in caught.value.message
    return caught.value


def _noncanonical(text: str) -> str:
    """Set unused trailing bits of ``text``; the decoded bytes stay the same."""
    assert len(text) % 4 in (2, 3)
    last = _B64URL_ALPHABET.index(text[-1])
    return text[:-1] + _B64URL_ALPHABET[last + 1]


_HEADER = segment(good_header())
_CLAIMS = segment(good_claims())
_SIGNATURE = b64(DUMMY_SIGNATURE)
_NON_CANONICAL_HEADER = segment({"alg": "ES256", "kid": "k"})


def test_parse_compact_reads_a_signed_token(es256_key: SigningKey) -> None:
    token = es256_key.sign(good_claims())

    parsed = parse_compact(token)

    assert parsed.header == {"alg": "ES256", "kid": es256_key.kid, "typ": "JWT"}
    assert parsed.claims == good_claims()
    assert parsed.signing_input == token.rsplit(".", 1)[0].encode("ascii")
    assert len(parsed.signature) == 64


def test_fingerprint_is_a_sha256_prefix_of_the_token(es256_key: SigningKey) -> None:
    token = es256_key.sign(good_claims())

    fingerprint = parse_compact(token).fingerprint

    assert fingerprint == hashlib.sha256(token.encode("ascii")).hexdigest()[:16]


def test_repr_never_shows_the_token(es256_key: SigningKey) -> None:
    token = es256_key.sign(good_claims())
    header, payload, signature = token.split(".")

    text = repr(parse_compact(token))

    assert header not in text
    assert payload not in text
    assert signature not in text
    assert es256_key.kid in text


@pytest.mark.parametrize(
    "token",
    ["x" * (1024 * 1024), "." * (MAX_TOKEN_BYTES + 1), "é" * 5000],
    ids=["one-megabyte", "one-byte-over", "over-in-utf8-bytes-only"],
)
def test_parse_compact_refuses_oversized_token_before_decoding(
    token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decoding(text: str) -> bytes:
        raise AssertionError("decoded an oversized token")

    monkeypatch.setattr(base64url, "decode", no_decoding)

    error = _refusal(token)

    assert error.reason == "TOKEN_TOO_LARGE"
    assert error.metadata == {"maxBytes": "8192"}


def test_parse_compact_accepts_token_of_exactly_the_limit() -> None:
    token = _token_of_length(MAX_TOKEN_BYTES)

    assert len(token) == MAX_TOKEN_BYTES
    assert parse_compact(token).claims["pad"]


def _token_of_length(length: int) -> str:
    """Build a parseable token exactly ``length`` characters long."""
    for pad in ("a", "aa", "aaa"):
        prefix = f"{segment(good_header())}.{segment(good_claims(pad=pad))}."
        remaining = length - len(prefix)
        # No byte string encodes to a length of 4k + 1 characters.
        if remaining % 4 != 1:
            return prefix + b64(bytes(remaining * 3 // 4))
    raise AssertionError("unreachable: one of three paddings always fits")


MALFORMED_CASES = [
    Case("empty", "", "MALFORMED_TOKEN"),
    Case("one-segment", _HEADER, "MALFORMED_TOKEN"),
    Case("two-segments", f"{_HEADER}.{_CLAIMS}", "MALFORMED_TOKEN"),
    Case("four-segments", f"{_HEADER}.{_CLAIMS}.{_SIGNATURE}.", "MALFORMED_TOKEN"),
    Case("five-segments-jwe", f"{_HEADER}.a.b.c.d", "MALFORMED_TOKEN"),
    Case("padding", f"{_HEADER}=.{_CLAIMS}.{_SIGNATURE}", "MALFORMED_TOKEN"),
    Case("padded-signature", f"{_HEADER}.{_CLAIMS}.{_SIGNATURE}==", "MALFORMED_TOKEN"),
    Case(
        "non-canonical-bits",
        f"{_noncanonical(_NON_CANONICAL_HEADER)}.{_CLAIMS}.{_SIGNATURE}",
        "MALFORMED_TOKEN",
    ),
    Case(
        "non-canonical-signature",
        f"{_HEADER}.{_CLAIMS}.{_noncanonical(b64(bytes(65)))}",
        "MALFORMED_TOKEN",
    ),
    Case("standard-alphabet", f"{_HEADER}.{_CLAIMS}.ab+/", "MALFORMED_TOKEN"),
    Case(
        "whitespace",
        f"{_HEADER}.{_CLAIMS[:5]} {_CLAIMS[5:]}.{_SIGNATURE}",
        "MALFORMED_TOKEN",
    ),
    Case("newline", f"{_HEADER}.{_CLAIMS}.{_SIGNATURE}\n", "MALFORMED_TOKEN"),
    Case("impossible-length", f"{_HEADER}.{_CLAIMS}.abcde", "MALFORMED_TOKEN"),
    Case("non-ascii", f"{_HEADER}.{_CLAIMS}.{_SIGNATURE}é", "MALFORMED_TOKEN"),
    Case("empty-header", f".{_CLAIMS}.{_SIGNATURE}", "MALFORMED_TOKEN"),
    Case("empty-payload", f"{_HEADER}..{_SIGNATURE}", "MALFORMED_TOKEN"),
    Case("empty-signature", f"{_HEADER}.{_CLAIMS}.", "MALFORMED_TOKEN"),
    Case("header-not-json", assemble("alg=ES256", good_claims()), "MALFORMED_TOKEN"),
    Case("header-array", assemble(["ES256"], good_claims()), "MALFORMED_TOKEN"),
    Case("payload-string", assemble(good_header(), "just text"), "MALFORMED_TOKEN"),
    Case("payload-json-string", assemble(good_header(), '"sub"'), "MALFORMED_TOKEN"),
    Case("payload-null", assemble(good_header(), "null"), "MALFORMED_TOKEN"),
    Case("payload-number", assemble(good_header(), 42), "MALFORMED_TOKEN"),
    Case(
        "duplicate-header-member",
        assemble('{"alg":"ES256","kid":"a","alg":"none"}', good_claims()),
        "MALFORMED_TOKEN",
    ),
    Case(
        "duplicate-claim",
        assemble(good_header(), '{"sub":"a","aud":"x","sub":"b"}'),
        "MALFORMED_TOKEN",
    ),
    Case(
        "duplicate-nested-member",
        assemble(good_header(), '{"act":{"sub":"a","sub":"b"}}'),
        "MALFORMED_TOKEN",
    ),
    Case("nan", assemble(good_header(), '{"exp":NaN}'), "MALFORMED_TOKEN"),
    Case("infinity", assemble(good_header(), '{"exp":Infinity}'), "MALFORMED_TOKEN"),
    Case(
        "minus-infinity",
        assemble(good_header(), '{"nbf":-Infinity}'),
        "MALFORMED_TOKEN",
    ),
    Case("invalid-utf8", assemble(good_header(), b'{"sub":"\xff"}'), "MALFORMED_TOKEN"),
    Case(
        "overlong-utf8",
        assemble(good_header(), b'{"sub":"\xc0\xaf"}'),
        "MALFORMED_TOKEN",
    ),
    Case("utf8-bom", assemble(good_header(), '\ufeff{"sub":"a"}'), "MALFORMED_TOKEN"),
    Case(
        "lone-surrogate-escape",
        assemble(good_header(), '{"sub":"\\ud800"}'),
        "MALFORMED_TOKEN",
    ),
    Case(
        "lone-surrogate-in-list",
        assemble(good_header(), '{"aud":["a",["\\udfff"]]}'),
        "MALFORMED_TOKEN",
    ),
    Case(
        "deep-nesting",
        assemble(good_header(), '{"a":' + "[" * 2500 + "]" * 2500 + "}"),
        "MALFORMED_TOKEN",
    ),
    Case("trailing-data", assemble(good_header(), '{"sub":"a"} {}'), "MALFORMED_TOKEN"),
]


@pytest.mark.parametrize("case", MALFORMED_CASES, ids=lambda case: case.name)
def test_parse_compact_refuses_malformed_token(case: Case) -> None:
    assert _refusal(case.token).reason == case.reason


def test_parse_compact_refuses_a_token_that_is_not_text() -> None:
    token = assemble(good_header(), good_claims()).encode("ascii")

    with pytest.raises(InvalidGrant) as caught:
        parse_compact(token)  # type: ignore[arg-type]

    assert caught.value.reason == "MALFORMED_TOKEN"


def test_parse_compact_keeps_a_valid_surrogate_pair() -> None:
    token = assemble(good_header(), '{"sub":"\\ud83d\\ude00"}')

    assert parse_compact(token).claims == {"sub": "\U0001f600"}


HEADER_CASES = [
    Case(
        "alg-none", assemble(good_header(alg="none"), good_claims(), b"x"), "ALG_NONE"
    ),
    Case("alg-None", assemble(good_header(alg="None"), good_claims()), "ALG_NONE"),
    Case(
        "alg-hs256",
        assemble(good_header(alg="HS256"), good_claims()),
        "ALG_NOT_ALLOWED",
    ),
    Case(
        "alg-hs384",
        assemble(good_header(alg="HS384"), good_claims()),
        "ALG_NOT_ALLOWED",
    ),
    Case(
        "alg-hs512",
        assemble(good_header(alg="HS512"), good_claims()),
        "ALG_NOT_ALLOWED",
    ),
    Case(
        "alg-es512",
        assemble(good_header(alg="ES512"), good_claims()),
        "UNSUPPORTED_ALGORITHM",
    ),
    Case(
        "alg-ps256",
        assemble(good_header(alg="PS256"), good_claims()),
        "UNSUPPORTED_ALGORITHM",
    ),
    Case(
        "alg-eddsa",
        assemble(good_header(alg="EdDSA"), good_claims()),
        "UNSUPPORTED_ALGORITHM",
    ),
    Case(
        "alg-lowercase",
        assemble(good_header(alg="es256"), good_claims()),
        "UNSUPPORTED_ALGORITHM",
    ),
    Case(
        "alg-empty",
        assemble(good_header(alg=""), good_claims()),
        "UNSUPPORTED_ALGORITHM",
    ),
    Case(
        "alg-missing",
        assemble({"kid": "k", "typ": "JWT"}, good_claims()),
        "INVALID_HEADER_PARAMETER",
    ),
    Case(
        "alg-number",
        assemble(good_header(alg=256), good_claims()),
        "INVALID_HEADER_PARAMETER",
    ),
    Case(
        "alg-null",
        assemble(good_header(alg=None), good_claims()),
        "INVALID_HEADER_PARAMETER",
    ),
    Case(
        "alg-list",
        assemble(good_header(alg=["ES256"]), good_claims()),
        "INVALID_HEADER_PARAMETER",
    ),
    Case(
        "jwk",
        assemble(good_header(jwk={"kty": "EC", "crv": "P-256"}), good_claims()),
        "HEADER_KEY_NOT_ALLOWED",
    ),
    Case(
        "jku",
        assemble(good_header(jku="http://127.0.0.1:1/jwks"), good_claims()),
        "HEADER_KEY_NOT_ALLOWED",
    ),
    Case(
        "x5c",
        assemble(good_header(x5c=["MIIB"]), good_claims()),
        "HEADER_KEY_NOT_ALLOWED",
    ),
    Case(
        "x5u",
        assemble(good_header(x5u="http://127.0.0.1:1/cert"), good_claims()),
        "HEADER_KEY_NOT_ALLOWED",
    ),
    Case(
        "crit", assemble(good_header(crit=["exp"]), good_claims()), "CRIT_NOT_SUPPORTED"
    ),
    Case(
        "crit-empty",
        assemble(good_header(crit=[]), good_claims()),
        "CRIT_NOT_SUPPORTED",
    ),
    Case(
        "crit-before-jwk",
        assemble(good_header(crit=["b64"], jwk={}), good_claims()),
        "CRIT_NOT_SUPPORTED",
    ),
    Case(
        "enc",
        assemble(good_header(enc="A256GCM"), good_claims()),
        "ENCRYPTED_TOKEN_NOT_SUPPORTED",
    ),
    Case(
        "zip",
        assemble(good_header(zip="DEF"), good_claims()),
        "ENCRYPTED_TOKEN_NOT_SUPPORTED",
    ),
    Case(
        "cty",
        assemble(good_header(cty="JWT"), good_claims()),
        "UNKNOWN_HEADER_PARAMETER",
    ),
    Case(
        "b64",
        assemble(good_header(b64=False), good_claims()),
        "UNKNOWN_HEADER_PARAMETER",
    ),
    Case(
        "made-up",
        assemble(good_header(foo="bar"), good_claims()),
        "UNKNOWN_HEADER_PARAMETER",
    ),
    Case(
        "kid-empty",
        assemble(good_header(kid=""), good_claims()),
        "INVALID_HEADER_PARAMETER",
    ),
    Case(
        "kid-too-long",
        assemble(good_header(kid="k" * 257), good_claims()),
        "INVALID_HEADER_PARAMETER",
    ),
    Case(
        "kid-number",
        assemble(good_header(kid=1), good_claims()),
        "INVALID_HEADER_PARAMETER",
    ),
    Case(
        "kid-null",
        assemble(good_header(kid=None), good_claims()),
        "INVALID_HEADER_PARAMETER",
    ),
    Case(
        "typ-number",
        assemble(good_header(typ=1), good_claims()),
        "INVALID_HEADER_PARAMETER",
    ),
    Case(
        "x5t-object",
        assemble(good_header(x5t={}), good_claims()),
        "INVALID_HEADER_PARAMETER",
    ),
]


@pytest.mark.parametrize("case", HEADER_CASES, ids=lambda case: case.name)
def test_parse_compact_refuses_header(case: Case) -> None:
    assert _refusal(case.token).reason == case.reason


def test_refused_header_parameter_is_named_in_metadata() -> None:
    error = _refusal(assemble(good_header(jku="http://127.0.0.1:1/"), good_claims()))

    assert error.metadata == {"parameter": "jku"}


def test_parse_compact_refuses_header_before_decoding_payload() -> None:
    error = _refusal(assemble(good_header(alg="none"), "not json at all"))

    assert error.reason == "ALG_NONE"


@pytest.mark.parametrize(
    "header",
    [
        good_header(),
        good_header(kid="k" * 256),
        {"alg": "RS512"},
        good_header(alg="ES384", typ="at+jwt", x5t="abc"),
        {"alg": "RS256", "x5t#S256": "abc"},
    ],
    ids=["usual", "longest-kid", "alg-only", "x5t", "x5t-s256"],
)
def test_parse_compact_accepts_allowed_header(header: dict[str, object]) -> None:
    assert parse_compact(assemble(header, good_claims())).header == header


@dataclass(frozen=True)
class IssuerCase:
    name: str
    claims: dict[str, object]
    reason: str | None


ISSUER_CASES = [
    IssuerCase("present", {"iss": "https://a.test"}, None),
    IssuerCase("missing", {"sub": "a"}, "MISSING_CLAIM"),
    IssuerCase("empty", {"iss": ""}, "INVALID_CLAIM_TYPE"),
    IssuerCase("number", {"iss": 7}, "INVALID_CLAIM_TYPE"),
    IssuerCase("list", {"iss": ["https://a.test"]}, "INVALID_CLAIM_TYPE"),
]


@pytest.mark.parametrize("case", ISSUER_CASES, ids=lambda case: case.name)
def test_unverified_issuer(case: IssuerCase) -> None:
    parsed = parse_compact(assemble(good_header(), case.claims))

    if case.reason is None:
        assert unverified_issuer(parsed) == case.claims["iss"]
        return
    with pytest.raises(InvalidGrant) as caught:
        unverified_issuer(parsed)
    assert caught.value.reason == case.reason
    assert caught.value.metadata == {"claim": "iss"}


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _parses_or_refuses(token: str) -> None:
    with contextlib.suppress(InvalidGrant):
        parse_compact(token)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_parse_compact_on_any_text_raises_only_invalid_grant(text: str) -> None:
    _parses_or_refuses(text)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(alphabet=_B64URL_ALPHABET + "=+/. ", max_size=40),
        min_size=1,
        max_size=5,
    )
)
def test_parse_compact_on_near_base64_raises_only_invalid_grant(
    segments: list[str],
) -> None:
    _parses_or_refuses(".".join(segments))


@settings(max_examples=300, deadline=None)
@given(
    header=st.dictionaries(st.text(max_size=10), _JSON_VALUES, max_size=4),
    claims=_JSON_VALUES,
    signature=st.binary(max_size=80),
    pin_alg=st.booleans(),
)
def test_parse_compact_on_any_json_raises_only_invalid_grant(
    header: dict[str, object], claims: object, signature: bytes, pin_alg: bool
) -> None:
    if pin_alg:
        header = {**header, "alg": "ES256"}
    text = json.dumps(claims)

    _parses_or_refuses(assemble(header, text, signature))


def test_a_remembered_header_is_handed_out_as_a_copy(es256_key: SigningKey) -> None:
    token = es256_key.sign({"iss": "https://issuer.example", "sub": "a"})
    first = parse_compact(token)
    first.header["alg"] = "none"

    second = parse_compact(token)

    assert second.header["alg"] == "ES256"
    assert second.header is not first.header


def test_a_refused_header_is_refused_every_time(es256_key: SigningKey) -> None:
    header = base64url.encode(json.dumps({"alg": "none"}).encode())
    claims = base64url.encode(json.dumps({"iss": "x"}).encode())
    token = f"{header}.{claims}.{base64url.encode(b'sig')}"

    reasons = [_refusal(token).reason for _ in range(3)]

    assert reasons == ["ALG_NONE"] * 3
