"""A token source configured from the environment, as a pod spec sets it.

deploy/overlays/example/workload/ shows the variables in a Deployment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

from wif.client.exchangers import GrpcExchanger
from wif.client.token_source import TokenSource, file_subject_token

#: The file holding the platform token (a projected service-account token).
ENV_SUBJECT_TOKEN_FILE: Final = "WIF_SUBJECT_TOKEN_FILE"
#: host:port of the STS's gRPC endpoint.
ENV_STS_ADDRESS: Final = "WIF_STS_ADDRESS"
#: The audience to exchange for.
ENV_AUDIENCE: Final = "WIF_AUDIENCE"
#: Scopes to ask for, separated by spaces; none by default.
ENV_SCOPES: Final = "WIF_SCOPES"

_REQUIRED: Final = (ENV_SUBJECT_TOKEN_FILE, ENV_STS_ADDRESS, ENV_AUDIENCE)


def token_source_from_environment(
    environ: Mapping[str, str] | None = None, **options: Any
) -> TokenSource:
    """A gRPC :class:`TokenSource` from the ``WIF_*`` variables above.

    ``options`` go to :class:`TokenSource` (``renew_fraction`` and so on).

    Raises:
        ValueError: a required variable is unset or empty; the message
            names it.
    """
    env = os.environ if environ is None else environ
    missing = [name for name in _REQUIRED if not env.get(name)]
    if missing:
        raise ValueError(f"set {', '.join(missing)} to configure the mesh client")

    return TokenSource(
        GrpcExchanger(env[ENV_STS_ADDRESS]),
        file_subject_token(env[ENV_SUBJECT_TOKEN_FILE]),
        audience=env[ENV_AUDIENCE],
        scopes=tuple(env.get(ENV_SCOPES, "").split()),
        **options,
    )
