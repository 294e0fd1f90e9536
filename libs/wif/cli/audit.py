"""``wif audit``: verify the audit trail's chain and report on a period."""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from wif.audit.report import as_text, read_records, summarise
from wif.audit.verify import verify_file
from wif.cli.common import EXIT_FAILED, state_dir
from wif.durations import parse_duration


def _files(args: argparse.Namespace) -> list[Path]:
    """The files named, or else the local mesh's audit logs."""
    if args.files:
        return [Path(f) for f in args.files]
    from wif.dev.mesh import read_endpoints

    try:
        logs = read_endpoints(state_dir(args))["audit_logs"]
    except (FileNotFoundError, KeyError) as exc:
        raise RuntimeError("name the audit files, or run `wif dev up`") from exc
    return [Path(p) for p in logs.values() if Path(p).exists()]


def cmd_verify(args: argparse.Namespace) -> int:
    results = [verify_file(path) for path in _files(args)]
    if args.json:
        print(json.dumps([{**vars(r), "intact": r.intact} for r in results], indent=2))
    for r in results if not args.json else ():
        state = "intact" if r.intact else "TAMPERED"
        print(f"{r.path}: {state}, {r.records} records")
        for problem in r.problems:
            print(f"  {problem}")
        for line in r.torn_lines:
            print(f"  line {line}: incomplete record (a crash while writing)")
    return 0 if all(r.intact for r in results) else EXIT_FAILED


def _moment(text: str | None, default: float) -> float:
    """A time given as seconds since the epoch or as a duration ago (``24h``)."""
    if not text:
        return default
    with contextlib.suppress(ValueError):
        return float(text)
    try:
        return time.time() - parse_duration(text)
    except ValueError as exc:
        raise RuntimeError(str(exc)) from exc


def cmd_report(args: argparse.Namespace) -> int:
    since = _moment(args.since, 0.0)
    until = _moment(args.until, float("inf"))
    summary: dict[str, Any] = summarise(read_records(_files(args), since, until))
    print(json.dumps(summary, indent=2) if args.json else as_text(summary))
    return 0


def register(groups: Any) -> None:
    """Adds the ``audit`` commands."""
    audit = groups.add_parser("audit", help="the audit trail").add_subparsers(
        dest="command", required=True
    )
    verify = audit.add_parser("verify", help="find edited, removed or moved records")
    verify.add_argument(
        "files", nargs="*", help="audit files (default: the dev mesh's)"
    )
    verify.set_defaults(func=cmd_verify)
    report = audit.add_parser("report", help="activity, refusals and anomalies")
    report.add_argument(
        "files", nargs="*", help="audit files (default: the dev mesh's)"
    )
    report.add_argument("--since", help="start: epoch seconds, or a duration ago (24h)")
    report.add_argument("--until", help="end: epoch seconds, or a duration ago")
    report.set_defaults(func=cmd_report)
