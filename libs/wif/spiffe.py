"""SPIFFE IDs: the names the mesh issues identities under.

A SPIFFE ID is ``spiffe://<trust-domain>/<path>``. The trust domain holds
lower-case letters, digits, dots, dashes and underscores; each path segment
holds letters, digits, dots, dashes and underscores, and is neither empty
nor ``.`` nor ``..``.

A mesh service also has a DNS name, :func:`service_name`, that its
certificate carries beside its SPIFFE ID: a calling service checks that name
during the TLS handshake (see :func:`wif.channels.client_channel`).
"""

from __future__ import annotations

import re

SCHEME = "spiffe://"
MAX_ID_LENGTH = 2048

_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]{1,255}")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")

#: The zone under which mesh services are named in their certificates. The
#: names are compared with certificates, never looked up, so the zone only
#: has to be one that no other certificate from the mesh's CA uses; the
#: top-level domain ``internal`` is reserved for private names.
SERVICE_NAME_ZONE = "wif.internal"

MAX_DNS_NAME_LENGTH = 253
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


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


def is_dns_name(name: str) -> bool:
    """Tells whether ``name`` is a lower-case DNS host name, without wildcard."""
    return len(name) <= MAX_DNS_NAME_LENGTH and all(
        _DNS_LABEL.fullmatch(label) for label in name.split(".")
    )


def service_name(trust_domain: str, service: str) -> str:
    """The DNS name of mesh service ``service`` (``its``, ``policy``, ``sts``).

    ``<service>.<trust domain>.wif.internal``: the trust domain is part of
    the name so that a certificate issued in a federated trust domain never
    names one of this domain's services. Raises ``ValueError`` when the
    result is not a DNS name (a trust domain with an underscore, say) or
    ``service`` is not a single label.
    """
    if not _DNS_LABEL.fullmatch(service):
        raise ValueError(f"not a single DNS label: {service!r}")
    name = f"{service}.{trust_domain}.{SERVICE_NAME_ZONE}"
    if not is_trust_domain(trust_domain) or not is_dns_name(name):
        raise ValueError(f"trust domain {trust_domain!r} gives no DNS name: {name!r}")
    return name
