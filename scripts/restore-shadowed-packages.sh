#!/usr/bin/env bash
# xds-protos (the Envoy API protos) ships its own copies of files that other
# distributions own: cel/__init__.py (an empty one, which hides the CEL
# library's functions), an old OpenTelemetry protocol (whose trace message
# the OTLP exporter cannot use) and googleapis' common protos. Whichever is
# installed last wins, so after every install reinstall the owners, at the
# versions already resolved, without touching their dependencies.
set -euo pipefail
py=${1:-.venv/bin/python}
owners=$("$py" - <<'PY'
from importlib.metadata import PackageNotFoundError, version

names = ("common-expression-language", "googleapis-common-protos", "opentelemetry-proto")
pins = []
for name in names:
    try:
        pins.append(f"{name}=={version(name)}")
    except PackageNotFoundError:
        pass
print(" ".join(pins))
PY
)
if [ -n "$owners" ]; then
  # shellcheck disable=SC2086
  "$py" -m pip install --quiet --no-deps --force-reinstall $owners
fi
