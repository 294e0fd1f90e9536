# One image for the three services of the mesh and the `wif` CLI.
# The command chooses what runs: wif-its, wif-sts, wif-policy or wif.
# Generated gRPC code is committed under libs/wif/v1, so no protoc step here.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
COPY scripts/restore-shadowed-packages.sh ./scripts/
RUN python -m venv /opt/wif && /opt/wif/bin/pip install . \
 && scripts/restore-shadowed-packages.sh /opt/wif/bin/python

FROM python:3.11-slim
ENV PATH=/opt/wif/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 wif \
 && useradd --system --uid 10001 --gid wif --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin wif
COPY --from=build /opt/wif /opt/wif
# Numeric, so that Kubernetes can check runAsNonRoot.
USER 10001:10001
EXPOSE 50051 50052 50053 8081 8082
CMD ["wif", "--help"]
