"""Tests for wif.callers: which mesh identity may call which RPC."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from envoy.service.auth.v3 import external_auth_pb2
from grpc_health.v1 import health_pb2

from services.its.settings import ItsSettings
from wif.callers import METHOD_ROLES, Callers, Role, roles_for
from wif.settings import load_settings
from wif.v1 import its_pb2, key_admin_pb2, policy_pb2, sts_pb2

TD = "acme.example"
STS = f"spiffe://{TD}/wif/sts"
OPERATOR = f"spiffe://{TD}/wif/operator"
ENFORCER = f"spiffe://{TD}/wif/enforcer"
POLICY = f"spiffe://{TD}/wif/policy"
STRANGER = f"spiffe://{TD}/payments-ci/acme-corp/payments-api"
OTHER_DOMAIN_STS = "spiffe://evil.example/wif/sts"

SERVED = [
    its_pb2.DESCRIPTOR.services_by_name["IdentityTokenService"],
    key_admin_pb2.DESCRIPTOR.services_by_name["KeyAdminService"],
    policy_pb2.DESCRIPTOR.services_by_name["PolicyService"],
    sts_pb2.DESCRIPTOR.services_by_name["SecurityTokenService"],
    external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"],
    health_pb2.DESCRIPTOR.services_by_name["Health"],
]


@dataclass(frozen=True)
class Case:
    method: str
    caller: str | None
    allowed: bool


CASES = [
    Case("/wif.v1.IdentityTokenService/IssueToken", STS, True),
    Case("/wif.v1.IdentityTokenService/IssueToken", OPERATOR, False),
    Case("/wif.v1.IdentityTokenService/IssueToken", POLICY, False),
    Case("/wif.v1.IdentityTokenService/IssueToken", OTHER_DOMAIN_STS, False),
    Case("/wif.v1.IdentityTokenService/IssueToken", None, False),
    Case("/wif.v1.IdentityTokenService/GetJwks", None, True),
    Case("/wif.v1.IdentityTokenService/GetJwks", STRANGER, True),
    Case("/wif.v1.KeyAdminService/ListKeys", OPERATOR, True),
    Case("/wif.v1.KeyAdminService/RevokeKey", OPERATOR, True),
    Case("/wif.v1.KeyAdminService/RevokeKey", STS, False),
    Case("/wif.v1.KeyAdminService/RotateKeys", None, False),
    Case("/wif.v1.PolicyService/Decide", STS, True),
    Case("/wif.v1.PolicyService/Decide", ENFORCER, True),
    Case("/wif.v1.PolicyService/Decide", OPERATOR, False),
    Case("/wif.v1.PolicyService/DecideBatch", ENFORCER, True),
    Case("/wif.v1.PolicyService/DecideBatch", STRANGER, False),
    Case("/wif.v1.PolicyService/GetShadowReport", OPERATOR, True),
    Case("/wif.v1.PolicyService/GetAccessReport", STS, False),
    Case("/envoy.service.auth.v3.Authorization/Check", ENFORCER, True),
    Case("/envoy.service.auth.v3.Authorization/Check", STS, False),
    Case("/wif.v1.SecurityTokenService/ExchangeToken", None, True),
    Case("/wif.v1.SecurityTokenService/ValidateToken", None, True),
    Case("/wif.v1.SecurityTokenService/ValidateTokens", None, True),
    Case("/wif.v1.SecurityTokenService/ExplainExchange", None, True),
    Case("/grpc.health.v1.Health/Check", None, True),
    Case("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", None, True),
    Case("/wif.v1.IdentityTokenService/NewMethodNoRuleNames", OPERATOR, False),
    Case("/wif.v1.UnknownService/Anything", STS, False),
]


@pytest.fixture
def callers() -> Callers:
    return Callers.from_settings(
        load_settings(ItsSettings, [], {"WIF_ALLOW_PLAINTEXT": "true"}), TD
    )


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"{c.method.rpartition('/')[2]}-{c.caller}"
)
def test_allows_follows_the_table(callers: Callers, case: Case) -> None:
    assert callers.allows(case.method, case.caller) is case.allowed


def test_every_served_rpc_has_a_rule() -> None:
    methods = [f"/{s.full_name}/{m.name}" for s in SERVED for m in s.methods]

    assert [m for m in methods if not roles_for(m)] == []


def test_every_rule_names_a_served_rpc_or_service() -> None:
    services = {s.full_name: {m.name for m in s.methods} for s in SERVED}
    services["grpc.reflection.v1alpha.ServerReflection"] = {"ServerReflectionInfo"}
    services["grpc.reflection.v1.ServerReflection"] = {"ServerReflectionInfo"}

    for rule in METHOD_ROLES:
        service, _, method = rule[1:].partition("/")
        assert method == "*" or method in services[service], rule


def test_settings_replace_the_default_ids() -> None:
    environ = {
        "WIF_STS_IDS": "spiffe://prod.example/ns/wif/sa/sts, spiffe://prod.example/sts2",
        "WIF_OPERATOR_IDS": "spiffe://prod.example/ns/ops/sa/admin",
        "WIF_ALLOW_PLAINTEXT": "true",
    }
    callers = Callers.from_settings(load_settings(ItsSettings, [], environ), TD)

    assert callers.ids[Role.STS] == {
        "spiffe://prod.example/ns/wif/sa/sts",
        "spiffe://prod.example/sts2",
    }
    assert callers.ids[Role.OPERATOR] == {"spiffe://prod.example/ns/ops/sa/admin"}
    assert callers.ids[Role.ENFORCER] == {ENFORCER}
    assert not callers.allows("/wif.v1.IdentityTokenService/IssueToken", STS)
