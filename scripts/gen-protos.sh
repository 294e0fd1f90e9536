#!/usr/bin/env bash
# Regenerates the Python code for the contracts in protos/ into OUT (default
# libs), so that the modules register under their proto path wif/v1/...
set -euo pipefail
out=${1:-libs}
py=${PYTHON:-.venv/bin/python}
export PATH="$(dirname "$py"):$PATH"
mkdir -p "$out/wif/v1"
"$py" -m grpc_tools.protoc -I protos \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  protos/wif/v1/*.proto
