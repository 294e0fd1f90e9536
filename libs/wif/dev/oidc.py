"""Run the local OpenID provider (dev/oidc-provider.mjs) and talk to it.

The provider plays a CI platform or a Kubernetes cluster: each job of
dev/jobs.json gets a platform token through the client_credentials grant with a
resource indicator naming the audience. Everything here stays on loopback:
the helpers refuse other hosts, ignore proxy settings and follow no redirects.
Standard library only.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

PROVIDER_SCRIPT = Path("dev") / "oidc-provider.mjs"
VERIFIER_SCRIPT = Path("dev") / "verify-jwt.mjs"
JOBS_FILE = Path("dev") / "jobs.json"
_TAIL_CHARS = 2000


@dataclass
class OidcProvider:
    """A running dev OpenID provider; stop it, or use it as a context manager."""

    issuer: str
    process: subprocess.Popen[bytes]
    _workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    def stop(self, timeout: float = 10) -> None:
        """Send SIGTERM, wait up to `timeout` seconds, then kill."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> OidcProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH; it is needed for the dev OIDC tools")
    return node


def _require_loopback_host(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ValueError(f"refusing non-loopback host {host!r}")


def _require_loopback_url(url: str) -> None:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    _require_loopback_host(parsed.hostname)


def _tail(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-_TAIL_CHARS:].strip()


def start_oidc_provider(
    repo_root: Path,
    *,
    jobs_file: Path | None = None,
    host: str = "127.0.0.1",
    log_file: Path | None = None,
    timeout: float = 30.0,
) -> OidcProvider:
    """Start dev/oidc-provider.mjs on a free loopback port and wait until ready.

    The provider's output goes to `log_file` when given, else to a file in a
    temporary directory removed on stop. Raises RuntimeError, with the tail of
    that output, if the provider exits or is not ready within `timeout`.
    """
    _require_loopback_host(host)
    repo_root = repo_root.resolve()
    jobs = (jobs_file or repo_root / JOBS_FILE).resolve()
    workdir = tempfile.TemporaryDirectory(prefix="wif-oidc-")
    ready_file = Path(workdir.name) / "ready.json"
    out_path = log_file or Path(workdir.name) / "provider.log"
    out = out_path.open("ab")
    command = [
        _node(),
        str(repo_root / PROVIDER_SCRIPT),
        "--host",
        host,
        "--port",
        "0",
        "--jobs",
        str(jobs),
        "--ready-file",
        str(ready_file),
    ]
    try:
        process = subprocess.Popen(
            command,
            cwd=repo_root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    except BaseException:
        out.close()
        workdir.cleanup()
        raise
    handle = OidcProvider(issuer="", process=process, _workdir=workdir, _log=out)
    deadline = time.monotonic() + timeout
    while True:
        if ready_file.exists():
            handle.issuer = str(json.loads(ready_file.read_text())["issuer"])
            return handle
        code = process.poll()
        if code is not None or time.monotonic() > deadline:
            problem = (
                f"exited with code {code}"
                if code is not None
                else f"not ready after {timeout}s"
            )
            out.flush()
            tail = _tail(out_path)
            handle.stop()
            raise RuntimeError(f"OIDC provider {problem}; output tail:\n{tail}")
        time.sleep(0.05)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        raise urllib.error.HTTPError(
            newurl, code, f"redirect refused: {msg}", headers, fp
        )


# No proxies (they could send loopback traffic elsewhere) and no redirects.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def _open_json(
    url: str,
    timeout: float,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    _require_loopback_url(url)  # also limits the scheme to http(s)
    request = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310
    with _OPENER.open(request, timeout=timeout) as response:
        return json.loads(response.read())


def discovery(issuer: str, timeout: float = 10.0) -> dict[str, Any]:
    """Return the issuer's OpenID discovery document."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    document = _open_json(url, timeout)
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        raise RuntimeError(f"discovery document at {url} does not name {issuer}")
    return document


def fetch_job_token(
    issuer: str,
    client_id: str,
    client_secret: str,
    audience: str,
    timeout: float = 10.0,
) -> str:
    """Get a job's platform token for `audience` (client_credentials + resource)."""
    token_endpoint = str(discovery(issuer, timeout)["token_endpoint"])
    body = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "resource": audience}
    ).encode()
    user = urllib.parse.quote(client_id, safe="")
    password = urllib.parse.quote(client_secret, safe="")
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    headers = {
        "Authorization": f"Basic {basic}",
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    try:
        answer = _open_json(token_endpoint, timeout, body, headers)
    except urllib.error.HTTPError as err:
        error, description = f"http_{err.code}", ""
        with contextlib.suppress(ValueError, AttributeError):
            details = json.loads(err.read())
            error = str(details.get("error", error))
            description = str(details.get("error_description", ""))
        raise RuntimeError(
            f"token request for job {client_id} failed: {error}: {description}"
        ) from None
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token:
        raise RuntimeError(f"token response for job {client_id} has no access_token")
    return token


def load_jobs(repo_root: Path) -> list[dict[str, Any]]:
    """Return the jobs of dev/jobs.json."""
    jobs = json.loads((repo_root / JOBS_FILE).read_text(encoding="utf-8"))
    if not isinstance(jobs, list):
        raise ValueError(f"{JOBS_FILE} must hold a list of jobs")
    return [dict(job) for job in jobs]


def job_credentials(repo_root: Path, client_id: str) -> tuple[str, str]:
    """Return (client_id, client_secret) of a job of dev/jobs.json."""
    for job in load_jobs(repo_root):
        if job.get("client_id") == client_id:
            return str(job["client_id"]), str(job["client_secret"])
    raise KeyError(f"no job {client_id!r} in {JOBS_FILE}")


def verify_with_node_jose(
    repo_root: Path, token: str, jwks_url: str, issuer: str, audience: str
) -> dict[str, Any]:
    """Verify `token` with dev/verify-jwt.mjs (npm jose); return its payload."""
    _require_loopback_url(jwks_url)
    command = [
        _node(),
        str(repo_root / VERIFIER_SCRIPT),
        "--jwks-url",
        jwks_url,
        "--issuer",
        issuer,
        "--audience",
        audience,
    ]
    result = subprocess.run(
        command,
        cwd=repo_root,
        input=token.encode(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    try:
        answer = json.loads(result.stdout)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        stderr = result.stderr.decode(errors="replace")[-_TAIL_CHARS:]
        raise RuntimeError(
            f"verify-jwt.mjs gave no JSON (exit {result.returncode}): {stderr}"
        )
    if result.returncode != 0:
        raise RuntimeError(
            f"jose rejected the token: {answer.get('error')}: {answer.get('message')}"
        )
    return answer
