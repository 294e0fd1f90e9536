"""Tests for wif.spiffe: trust domains, ID paths and whole SPIFFE IDs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from wif import spiffe


@dataclass(frozen=True)
class Id:
    name: str
    value: str
    trust_domain: str | None


IDS = [
    Id("workload", "spiffe://acme.example/payments-ci/acme-corp/api", "acme.example"),
    Id("one-segment", "spiffe://acme.example/x", "acme.example"),
    Id("mixed-case-path", "spiffe://acme.example/Team/API_v2", "acme.example"),
    Id("dots-inside-segment", "spiffe://td/a..b/.hidden", "td"),
    Id("no-path", "spiffe://acme.example", None),
    Id("root-path", "spiffe://acme.example/", None),
    Id("trailing-slash", "spiffe://acme.example/a/", None),
    Id("empty-segment", "spiffe://acme.example/a//b", None),
    Id("dot-segment", "spiffe://acme.example/a/./b", None),
    Id("dot-dot-segment", "spiffe://acme.example/a/../b", None),
    Id("dot-dot-only", "spiffe://acme.example/..", None),
    Id("upper-case-trust-domain", "spiffe://Acme.example/a", None),
    Id("upper-case-scheme", "SPIFFE://acme.example/a", None),
    Id("other-scheme", "https://acme.example/a", None),
    Id("percent-encoded-path", "spiffe://acme.example/a%2Fb", None),
    Id("percent-encoded-domain", "spiffe://acme%2Eexample/a", None),
    Id("port", "spiffe://acme.example:443/a", None),
    Id("user-info", "spiffe://u@acme.example/a", None),
    Id("query", "spiffe://acme.example/a?b=c", None),
    Id("fragment", "spiffe://acme.example/a#b", None),
    Id("space", "spiffe://acme.example/a b", None),
    Id("empty-trust-domain", "spiffe:///a", None),
    Id("too-long", "spiffe://td/" + "a" * 2048, None),
]


@pytest.mark.parametrize("case", IDS, ids=lambda case: case.name)
def test_trust_domain_of_accepts_only_valid_ids(case: Id) -> None:
    assert spiffe.trust_domain_of(case.value) == case.trust_domain


@pytest.mark.parametrize(
    "name", ["acme.example", "a", "td-1", "under_score", "x" * 255]
)
def test_is_trust_domain_accepts_lower_case_names(name: str) -> None:
    assert spiffe.is_trust_domain(name)


@pytest.mark.parametrize(
    "name", ["", "Acme.example", "acme.example/x", "acme%2e", "acme:443", "x" * 256]
)
def test_is_trust_domain_refuses_other_names(name: str) -> None:
    assert not spiffe.is_trust_domain(name)


@pytest.mark.parametrize("path", ["a", "a/b/c", "A-b_c.d", "...", "v1.2"])
def test_is_workload_path_accepts_valid_paths(path: str) -> None:
    assert spiffe.is_workload_path(path)


@pytest.mark.parametrize(
    "path", ["", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "a%20b", "a b"]
)
def test_is_workload_path_refuses_invalid_paths(path: str) -> None:
    assert not spiffe.is_workload_path(path)


def test_make_id_joins_trust_domain_and_path() -> None:
    assert spiffe.make_id("acme.example", "a/b") == "spiffe://acme.example/a/b"


def test_make_id_refuses_an_upper_case_trust_domain() -> None:
    with pytest.raises(ValueError, match="not a valid SPIFFE trust domain"):
        spiffe.make_id("Acme.example", "a")


@pytest.mark.parametrize("path", ["..", "a/../b", "a//b", "a%2Fb", ""])
def test_make_id_refuses_an_invalid_path(path: str) -> None:
    with pytest.raises(ValueError, match="not a valid SPIFFE ID path"):
        spiffe.make_id("acme.example", path)


def test_make_id_refuses_an_id_longer_than_2048_characters() -> None:
    with pytest.raises(ValueError, match="longer than 2048 characters"):
        spiffe.make_id("acme.example", "a" * 2048)


def test_make_id_accepts_an_id_of_exactly_2048_characters() -> None:
    prefix = "spiffe://acme.example/"
    path = "a" * (spiffe.MAX_ID_LENGTH - len(prefix))

    assert len(spiffe.make_id("acme.example", path)) == spiffe.MAX_ID_LENGTH


@pytest.mark.parametrize(
    "name", ["its.acme.example.wif.internal", "a", "x-1.y", "a" * 63 + ".b"]
)
def test_is_dns_name_accepts_lower_case_host_names(name: str) -> None:
    assert spiffe.is_dns_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "*.acme.example.wif.internal",
        "Its.acme.example",
        "under_score.example",
        "a..b",
        "a.",
        "-a.example",
        "a-.example",
        "127.0.0.1:443",
        "a" * 64 + ".b",
        ("a" * 63 + ".") * 4,
    ],
)
def test_is_dns_name_refuses_wildcards_and_other_names(name: str) -> None:
    assert not spiffe.is_dns_name(name)


def test_service_name_puts_the_service_under_its_trust_domain() -> None:
    assert spiffe.service_name("acme.example", "its") == "its.acme.example.wif.internal"


def test_service_names_differ_between_trust_domains() -> None:
    assert spiffe.service_name("a.example", "its") != spiffe.service_name(
        "b.example", "its"
    )


@pytest.mark.parametrize("service", ["", "its.x", "*", "ITS"])
def test_service_name_refuses_a_service_that_is_not_one_label(service: str) -> None:
    with pytest.raises(ValueError, match="not a single DNS label"):
        spiffe.service_name("acme.example", service)


@pytest.mark.parametrize("trust_domain", ["under_score", "x" * 240, "Acme.example"])
def test_service_name_refuses_a_trust_domain_that_gives_no_dns_name(
    trust_domain: str,
) -> None:
    with pytest.raises(ValueError, match="gives no DNS name"):
        spiffe.service_name(trust_domain, "its")
