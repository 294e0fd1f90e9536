"""The client side of the mesh, for a workload to import.

:class:`TokenSource` turns the workload's platform token into a mesh token
at the STS, keeps it, and renews it in the background before it expires.
:class:`LocalValidator` checks a mesh token presented to a service against
the ITS's published keys without calling the mesh.

    source = TokenSource(
        GrpcExchanger("sts.wif:50052"),
        file_subject_token("/var/run/secrets/tokens/wif"),
        audience="payments-api",
    )
    with source:
        headers = {"authorization": f"Bearer {source.token()}"}
"""

from wif.client.environment import token_source_from_environment
from wif.client.errors import ClientError, ExchangeFailed, JwksUnavailable
from wif.client.exchangers import (
    Exchanger,
    ExchangeRequest,
    GrpcExchanger,
    HttpExchanger,
    IssuedToken,
)
from wif.client.token_source import TokenSource, file_subject_token
from wif.client.validator import LocalValidator

__all__ = [
    "ClientError",
    "ExchangeFailed",
    "ExchangeRequest",
    "Exchanger",
    "GrpcExchanger",
    "HttpExchanger",
    "IssuedToken",
    "JwksUnavailable",
    "LocalValidator",
    "TokenSource",
    "file_subject_token",
    "token_source_from_environment",
]
