"""The chosen packages load together and none hides another's files.

xds-protos ships copies of files that other distributions own (an empty
``cel/__init__.py``, an old OpenTelemetry protocol); the install restores the
owners afterwards (scripts/restore-shadowed-packages.sh). These tests fail
if it did not.
"""

from __future__ import annotations

import cel
from envoy.service.auth.v3 import external_auth_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from wif.v1 import policy_pb2, sts_pb2


def test_the_cel_library_is_not_hidden_by_an_empty_package() -> None:
    assert callable(cel.compile)


def test_the_otlp_protocol_is_the_exporters_own() -> None:
    assert "scope_spans" in trace_pb2.ResourceSpans.DESCRIPTOR.fields_by_name


def test_envoy_and_mesh_protos_share_one_descriptor_pool() -> None:
    pool = policy_pb2.DESCRIPTOR.pool

    assert pool.FindServiceByName("envoy.service.auth.v3.Authorization")
    assert pool.FindServiceByName("wif.v1.PolicyService")
    assert sts_pb2.DESCRIPTOR.pool is external_auth_pb2.DESCRIPTOR.pool
