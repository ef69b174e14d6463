#!/usr/bin/env bash
# Serve the peer with gunicorn on 127.0.0.1:PORT (run setup.sh first).
#   run.sh VENV_DIR PORT WORKERS
# Env overrides: PEER_WORKER_CLASS (default: see below), PEER_THREADS, PEER_DATA_DIR.
#
# Worker class: gthread with 2 threads per worker. Measured on the shared 2-core
# machine (load average 5-9 from other work, so rough), wrk -t1 -c16 -d5s, POST
# /verify, WORKERS=2, medians of 3 interleaved runs:
#   sync             ~600-790 req/s, p99 ~83-106 ms, ~1.8 ms server CPU/request
#   gthread, 1 thr   ~280 req/s (a keep-alive connection pins the only thread)
#   gthread, 2 thr   ~840-1000 req/s, p99 ~112-139 ms, ~1.4 ms server CPU/request
#   gthread, 4 thr   ~640 req/s, p99 ~120-137 ms
# sync workers answer "Connection: close", so every request pays a new TCP
# connection; gthread keeps connections alive, as wrk, nginx upstreams and
# keygate's own clients do. The endpoint is CPU-bound (the GIL serialises
# threads), so 2 threads are enough to overlap socket I/O with work.
set -euo pipefail

if [[ $# -ne 3 ]]; then
    echo "usage: $0 VENV_DIR PORT WORKERS" >&2
    exit 2
fi
VENV="$1" PORT="$2" WORKERS="$3"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PEER_DATA_DIR="${PEER_DATA_DIR:-$HERE/.data}"
export DJANGO_SETTINGS_MODULE=peer_project.settings

CLASS="${PEER_WORKER_CLASS:-gthread}"
THREADS="${PEER_THREADS:-2}"
if [[ "$CLASS" == sync ]]; then THREADS=1; fi

# No --access-logfile: gunicorn's access log stays off. Errors only on stderr.
exec "$VENV/bin/gunicorn" peer_project.wsgi:application \
    --chdir "$HERE" \
    --bind "127.0.0.1:$PORT" \
    --workers "$WORKERS" \
    --worker-class "$CLASS" \
    --threads "$THREADS" \
    --log-level warning \
    --error-logfile -
