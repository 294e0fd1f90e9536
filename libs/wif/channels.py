"""Channels from one mesh service to another.

:func:`client_channel` opens the channel the STS calls the Policy service
and the ITS on: message size limits, quick reconnection to a peer that comes
back, and with TLS files mTLS that accepts only the certificate of the
service it means to reach, re-opened when the files change.
"""

from __future__ import annotations

import logging

import grpc

from wif import spiffe
from wif.server import MAX_MESSAGE_BYTES, own_trust_domain
from wif.settings import SettingsError
from wif.tls import ReloadingChannel, TlsFiles, TlsMaterial

log = logging.getLogger(__name__)

#: Reconnect quickly to a peer that comes back: gRPC's default backoff grows
#: to two minutes, which would keep a recovered peer unused for that long.
_PEER_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


def client_channel(
    target: str,
    tls: TlsFiles | None = None,
    *,
    service: str,
    server_name: str | None = None,
) -> grpc.aio.Channel | ReloadingChannel:
    """A channel to mesh service ``service``, with size limits.

    Calls on it carry the trace context only when the caller passes
    :func:`wif.telemetry.trace_metadata` (the STS's peers do).

    With ``tls`` the channel presents this service's certificate (mTLS) and
    accepts only a server certificate that chains to the CA bundle and
    carries the DNS name ``server_name``; by default the name of
    ``service`` in the trust domain of this service's own certificate
    (:func:`wif.spiffe.service_name`). The host in ``target`` plays no part
    in that check, so it holds whatever the address resolves to. The channel
    re-opens itself, checking the same name, when the files change.

    Raises SettingsError when the files cannot be read, or give no trust
    domain from which to name ``service``.
    """
    options: list[tuple[str, str | int]] = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        *_PEER_CHANNEL_OPTIONS,
    ]
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    expected = server_name or _service_name(tls, tls.read_at_start(), service)
    # Which service answered is checked by name, inside the handshake. grpc
    # Python (1.85) gives a client no other hook: no server certificate
    # verifier of its own, no auth_context() on client calls, so the peer's
    # SPIFFE ID cannot even be read; xDS credentials match SANs only as an
    # xDS control plane configures them. A separate TLS probe with Python's
    # ssl module would vouch for another connection than the one the calls
    # use. What gRPC core checks on every connection, reconnections included,
    # is the server's DNS SANs against a host name; ssl_target_name_override
    # puts the peer's service name in place of the target's host there. The
    # name stands for the SPIFFE ID only because the issuer binds them: it
    # must give the name to that service's certificates alone, never by a
    # wildcard, which gRPC would accept.
    options.append(("grpc.ssl_target_name_override", expected))
    log.info(
        "calls to %s accept only a certificate named %s",
        service,
        expected,
        extra={"fields": {"target": target}},
    )

    def open_channel(material: TlsMaterial) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(
            material.ca_bundle, material.private_key, material.cert_chain
        )
        return grpc.aio.secure_channel(target, credentials, options=options)

    return ReloadingChannel(tls, open_channel)


def _service_name(files: TlsFiles, material: TlsMaterial, service: str) -> str:
    trust_domain = own_trust_domain(files, material)
    try:
        return spiffe.service_name(trust_domain, service)
    except ValueError as exc:
        raise SettingsError(f"setting {service}_server_name is needed: {exc}") from None
