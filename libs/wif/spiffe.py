"""SPIFFE IDs: the names the mesh issues identities under.

A SPIFFE ID is ``spiffe://<trust-domain>/<path>``. The trust domain holds
lower-case letters, digits, dots, dashes and underscores; each path segment
holds letters, digits, dots, dashes and underscores, and is neither empty
nor ``.`` nor ``..``.
"""

from __future__ import annotations

import re

SCHEME = "spiffe://"
MAX_ID_LENGTH = 2048

_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]{1,255}")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


def is_trust_domain(name: str) -> bool:
    """Tells whether ``name`` is a valid trust domain name."""
    return bool(_TRUST_DOMAIN.fullmatch(name))


def is_workload_path(path: str) -> bool:
    """Tells whether ``path`` (without a leading slash) is a valid ID path."""
    segments = path.split("/")
    return all(
        _SEGMENT.fullmatch(segment) and segment not in (".", "..")
        for segment in segments
    )


def make_id(trust_domain: str, path: str) -> str:
    """Joins a trust domain and a path; raises ``ValueError`` if either is bad."""
    if not is_trust_domain(trust_domain):
        raise ValueError(f"not a valid SPIFFE trust domain: {trust_domain!r}")
    if not is_workload_path(path):
        raise ValueError(f"not a valid SPIFFE ID path: {path!r}")
    spiffe_id = f"{SCHEME}{trust_domain}/{path}"
    if len(spiffe_id) > MAX_ID_LENGTH:
        raise ValueError("SPIFFE ID longer than 2048 characters")
    return spiffe_id


def trust_domain_of(spiffe_id: str) -> str | None:
    """Returns the trust domain of a valid SPIFFE ID, or None if it is not one."""
    if not spiffe_id.startswith(SCHEME) or len(spiffe_id) > MAX_ID_LENGTH:
        return None
    domain, _, path = spiffe_id[len(SCHEME) :].partition("/")
    if not is_trust_domain(domain) or not path or not is_workload_path(path):
        return None
    return domain
