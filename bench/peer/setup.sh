#!/usr/bin/env bash
# Prepare the DRF + djangorestframework-api-key peer for the keygate benchmark.
#   setup.sh [VENV_DIR] [N KEYS_FILE]
# Idempotent: reuses the venv, the database and the primary key when present.
# Last stdout line: KEY=<key>. With N and KEYS_FILE, also (re)creates N keys
# and writes them one per line to KEYS_FILE.
# Env: PEER_DATA_DIR (default <this dir>/.data), PYTHON (default python3.11).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${1:-/tmp/keygate-bench-peer-venv}"
COUNT="${2:-0}"
KEYS_FILE="${3:-}"
if [[ "$COUNT" != 0 && -z "$KEYS_FILE" ]]; then
    echo "usage: $0 [VENV_DIR] [N KEYS_FILE]" >&2
    exit 2
fi

PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
    PY="$(command -v python3.11 || command -v python3)"
fi

export PEER_DATA_DIR="${PEER_DATA_DIR:-$HERE/.data}"
mkdir -p "$PEER_DATA_DIR"

if [[ ! -x "$VENV/bin/python" ]]; then
    "$PY" -m venv "$VENV" >&2
fi
# Quiet, and a no-op when everything is already installed.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$HERE/requirements.txt" >&2

cd "$HERE"
"$VENV/bin/python" manage.py migrate --no-input -v 0 >&2
if [[ "$COUNT" != 0 ]]; then
    "$VENV/bin/python" manage.py benchkeys --count "$COUNT" --out "$KEYS_FILE"
else
    "$VENV/bin/python" manage.py benchkeys
fi
