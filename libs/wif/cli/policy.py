"""``wif policy``: quarantines, the shadow report and the least-privilege report.

Quarantines are written to etcd, so every Policy replica honours them. The
two reports come from one Policy replica (``--policy``, then
``WIF_POLICY_ADDRESS``, then the local mesh): each replica keeps its own
decision history.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import grpc
from google.protobuf import json_format

from wif import spiffe
from wif.cli.common import (
    EXIT_FAILED,
    call_failed,
    emit,
    etcd_endpoint,
    grpc_channel,
    resolve_address,
)
from wif.durations import parse_duration
from wif.quarantine import format_time

_CALL_TIMEOUT_SECONDS = 30.0


def policy_address(args: argparse.Namespace) -> str:
    """--policy, then WIF_POLICY_ADDRESS, then the running local mesh."""
    return resolve_address(args, "policy", "WIF_POLICY_ADDRESS", ("policy", "grpc"))


def _check_subject(subject: str) -> bool:
    if spiffe.trust_domain_of(subject) is None:
        print(f"wif: {subject!r} is not a SPIFFE ID", file=sys.stderr)
        return False
    return True


def cmd_policy_quarantine(args: argparse.Namespace) -> int:
    from wif.quarantine import impose
    from wif.store import EtcdStore

    if not _check_subject(args.subject):
        return EXIT_FAILED
    try:
        seconds = parse_duration(args.duration)
    except ValueError as exc:
        print(f"wif: --for: {exc}", file=sys.stderr)
        return EXIT_FAILED

    async def write() -> Any:
        async with EtcdStore(etcd_endpoint(args)) as store:
            return await impose(
                store, args.subject, seconds, reason=args.reason, imposed_by="cli"
            )

    record = asyncio.run(write())
    emit(
        args,
        f"{args.subject} is {record.describe()}",
        {"subject": record.subject, "until": format_time(record.until)},
    )
    return 0


def cmd_policy_release(args: argparse.Namespace) -> int:
    from wif.quarantine import release
    from wif.store import EtcdStore

    if not _check_subject(args.subject):
        return EXIT_FAILED

    async def delete() -> bool:
        async with EtcdStore(etcd_endpoint(args)) as store:
            return await release(store, args.subject)

    released = asyncio.run(delete())
    text = "released" if released else "was not quarantined"
    emit(
        args, f"{args.subject} {text}", {"subject": args.subject, "released": released}
    )
    return 0


def _call(args: argparse.Namespace, method: str, request: Any) -> Any:
    from wif.v1 import policy_pb2_grpc

    async def call() -> Any:
        async with grpc_channel(args, policy_address(args)) as channel:
            stub = policy_pb2_grpc.PolicyServiceStub(channel)
            try:
                return await getattr(stub, method)(
                    request, timeout=_CALL_TIMEOUT_SECONDS
                )
            except grpc.aio.AioRpcError as exc:
                raise call_failed(exc, "Policy service") from None

    return asyncio.run(call())


def _as_dict(message: Any) -> dict[str, Any]:
    data: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True
    )
    return data


def _permission(p: Any) -> str:
    text = f"{p.action} {p.audience}"
    return f"{text} [{p.scope}]" if p.scope else text


def shadow_text(report: Any) -> str:
    """The shadow report for a person."""
    from wif.v1 import policy_pb2

    if not report.shadow_configured:
        return "no shadow policy set is configured"
    name = policy_pb2.Decision.Name
    lines = [
        f"shadow policies: {', '.join(report.shadow_policy_ids)}",
        f"since {format_time(report.since)}: {report.evaluated} decisions compared, "
        f"{report.differing} would change ({report.dropped} no longer kept)",
    ]
    for d in report.differences:
        active = name(d.active_decision).removeprefix("DECISION_").lower()
        shadow = name(d.shadow_decision).removeprefix("DECISION_").lower()
        lines.append(
            f"  {format_time(d.time)} {d.subject} {d.action} {d.audience} "
            f"{' '.join(d.scopes) or '-'}: {active} ({','.join(d.active_policy_ids)})"
            f" -> {shadow} ({','.join(d.shadow_policy_ids)})"
        )
    return "\n".join(lines)


def access_text(report: Any) -> str:
    """The least-privilege report for a person."""
    lines = [
        f"configuration revision {report.config_revision}; "
        f"use recorded since {format_time(report.since)}",
        "",
        "reach:",
    ]
    for p in report.principals:
        kind = "registered" if p.registered else "seen"
        reach = ", ".join(_permission(x) for x in p.permissions) or "nothing"
        lines.append(f"  {p.subject} ({kind}): {reach}")
    if report.principals_truncated:
        lines.append("  ... more principals than were evaluated")
    unused = [g for g in report.grants if not g.decisions]
    wider = [g for g in report.grants if g.decisions and g.unused]
    lines += ["", "grants no one used:"]
    lines += [f"  {g.policy_id}" for g in unused] or ["  none"]
    lines += ["", "grants wider than their use:"]
    for g in wider:
        extra = ", ".join(_permission(x) for x in g.unused)
        lines.append(
            f"  {g.policy_id}: used by {g.principals_used} of "
            f"{g.principals_granted} principals; never used: {extra}"
        )
    if not wider:
        lines.append("  none")
    return "\n".join(lines)


def cmd_policy_shadow_report(args: argparse.Namespace) -> int:
    from wif.v1 import policy_pb2

    report = _call(args, "GetShadowReport", policy_pb2.GetShadowReportRequest())
    emit(args, shadow_text(report), _as_dict(report))
    return 0


def cmd_policy_report(args: argparse.Namespace) -> int:
    from wif.v1 import policy_pb2

    request = policy_pb2.GetAccessReportRequest(max_principals=args.max_principals)
    report = _call(args, "GetAccessReport", request)
    emit(args, access_text(report), _as_dict(report))
    return 0


def register(groups: Any) -> None:
    """Adds the ``policy`` commands."""
    policy = groups.add_parser(
        "policy", help="quarantines and policy reports"
    ).add_subparsers(dest="command", required=True)

    quarantine = policy.add_parser(
        "quarantine", help="deny a principal everything for a while, everywhere"
    )
    quarantine.add_argument("subject", help="the principal's SPIFFE ID")
    quarantine.add_argument(
        "--for", dest="duration", required=True, help="how long: 90s, 10m, 2h, 1d"
    )
    quarantine.add_argument("--reason", default="", help="why, shown in denials")
    quarantine.set_defaults(func=cmd_policy_quarantine)

    release = policy.add_parser("release", help="end a principal's quarantine")
    release.add_argument("subject", help="the principal's SPIFFE ID")
    release.set_defaults(func=cmd_policy_release)

    for name, func, text in (
        ("shadow-report", cmd_policy_shadow_report, "decisions the shadow set changes"),
        ("report", cmd_policy_report, "least privilege: reach and unused grants"),
    ):
        sub = policy.add_parser(name, help=text)
        sub.add_argument("--policy", help="Policy service host:port")
        if name == "report":
            sub.add_argument(
                "--max-principals", type=int, default=0, help="principals to evaluate"
            )
        sub.set_defaults(func=func)
