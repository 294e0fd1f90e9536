"""Tests for services.sts.delegation: act nesting, may_act and the depth cap."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.sts.delegation import MAX_ACTOR_DEPTH, actor_claim, check_delegation
from services.sts.subject import Principal
from wif.errors import WifError

SUBJECT = "spiffe://acme.example/payments-ci/acme-corp/payments-api"
ACTOR = "spiffe://acme.example/payments-k8s/ns/payments/sa/payments-api"
K8S_ISSUER = "https://k8s.acme.example"
K8S_SUB = "system:serviceaccount:payments:payments-api"


def principal(
    subject: str, claims: Mapping[str, Any] | None = None, *, mesh: bool = False
) -> Principal:
    return Principal(
        subject=subject,
        pool_id="payments-ci",
        provider_id="" if mesh else "ci",
        attributes={},
        claims=dict(claims or {}),
        token_id="jti-1",
        mesh_issued=mesh,
    )


ACTOR_PRINCIPAL = principal(ACTOR, {"iss": K8S_ISSUER, "sub": K8S_SUB})


def nested(depth: int) -> dict[str, Any] | None:
    act: dict[str, Any] | None = None
    for n in range(depth):
        act = {"sub": f"spiffe://acme.example/p/a{n}", **({"act": act} if act else {})}
    return act


def test_mesh_subject_chain_is_nested_under_the_new_actor() -> None:
    earlier = {"sub": "spiffe://acme.example/p/first"}
    subject = principal(SUBJECT, {"act": earlier}, mesh=True)

    assert actor_claim(ACTOR_PRINCIPAL, subject) == {"sub": ACTOR, "act": earlier}
    assert check_delegation(subject, ACTOR_PRINCIPAL) == [ACTOR, earlier["sub"]]


def test_mesh_subject_without_actor_is_refused() -> None:
    with pytest.raises(WifError) as caught:
        check_delegation(principal(SUBJECT, mesh=True), None)

    assert (caught.value.oauth_error, caught.value.reason) == (
        "invalid_request",
        "ACTOR_REQUIRED",
    )


def test_chain_beyond_the_hard_cap_is_refused() -> None:
    at_cap = principal(SUBJECT, {"act": nested(MAX_ACTOR_DEPTH - 1)}, mesh=True)
    over = principal(SUBJECT, {"act": nested(MAX_ACTOR_DEPTH)}, mesh=True)

    assert len(check_delegation(at_cap, ACTOR_PRINCIPAL)) == MAX_ACTOR_DEPTH
    with pytest.raises(WifError) as caught:
        check_delegation(over, ACTOR_PRINCIPAL)
    assert caught.value.reason == "ACTOR_CHAIN_TOO_DEEP"


@dataclass(frozen=True)
class MayActCase:
    name: str
    may_act: Any
    allowed: bool
    actor_claims: dict[str, Any] = field(
        default_factory=lambda: {"iss": K8S_ISSUER, "sub": K8S_SUB}
    )


MAY_ACT = [
    MayActCase("spiffe id of the actor", {"sub": ACTOR}, True),
    MayActCase("another spiffe id", {"sub": ACTOR + "-x"}, False),
    MayActCase("spiffe id differing in case", {"sub": ACTOR.upper()}, False),
    MayActCase(
        "foreign sub with its issuer", {"iss": K8S_ISSUER, "sub": K8S_SUB}, True
    ),
    MayActCase("foreign sub without issuer", {"sub": K8S_SUB}, False),
    MayActCase(
        "foreign sub of another issuer", {"iss": "https://x", "sub": K8S_SUB}, False
    ),
    MayActCase(
        "issuer with a trailing slash", {"iss": K8S_ISSUER + "/", "sub": K8S_SUB}, False
    ),
    MayActCase("not an object", ACTOR, False),
    MayActCase("sub not a string", {"sub": 7}, False),
    MayActCase("empty object", {}, False),
]


@pytest.mark.parametrize("case", MAY_ACT, ids=lambda case: case.name)
def test_may_act_is_compared_exactly(case: MayActCase) -> None:
    subject = principal(SUBJECT, {"may_act": case.may_act})
    actor = principal(ACTOR, case.actor_claims)

    if case.allowed:
        assert check_delegation(subject, actor) == [ACTOR]
        return
    with pytest.raises(WifError) as caught:
        check_delegation(subject, actor)
    assert (caught.value.oauth_error, caught.value.reason) == (
        "invalid_grant",
        "ACTOR_NOT_ALLOWED",
    )


def test_may_act_without_an_actor_token_restricts_nothing() -> None:
    assert check_delegation(principal(SUBJECT, {"may_act": {"sub": ACTOR}}), None) == []
