#!/usr/bin/env bash
# Two builds of keygate side by side, to see whether a change moved the hot path: both servers up
# at once, each pinned to CPU 0 with one HTTP worker, wrk pinned to CPU 1, rounds alternating
# between them so the machine's noise falls on both alike. Prints req/s per round and the medians.
#
#   bench/before_after.sh BEFORE_BINARY AFTER_BINARY [ROUNDS] [SECONDS]
#
# Build the "before" binary in a worktree of the older commit:
#   git worktree add --detach /tmp/before <commit> && (cd /tmp/before && cargo build --release -p keygate)
# Needs wrk (Debian: apt-get install wrk) and taskset. Everything listens on 127.0.0.1 only.
set -euo pipefail
before=$1 after=$2 rounds=${3:-5} seconds=${4:-5}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
token=$("$after" gen-token)

start() { # name binary port
    mkdir -p "$work/$1"
    KEYGATE_BOOTSTRAP_TOKEN=$token KEYGATE_ADMIN_PASSWORD=bench-password-1234 \
        taskset -c 0 "$2" serve --listen "127.0.0.1:$3" --data-dir "$work/$1" \
        --scope "metrics:read=Read metrics" --http-workers 1 >"$work/$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$3/readyz" >/dev/null && return
        sleep 0.1
    done
    echo "$1 did not start:" >&2
    cat "$work/$1.log" >&2
    exit 1
}

rate() { # port route
    local out
    case $2 in
        verify) out=$(KG_TOKEN=$token taskset -c 1 wrk -t1 -c64 -d"${seconds}s" -s bench/wrk/verify.lua \
            "http://127.0.0.1:$1/api/v1/verify") ;;
        auth) out=$(KG_AUTH="Bearer $token" taskset -c 1 wrk -t1 -c64 -d"${seconds}s" -s bench/wrk/auth.lua \
            "http://127.0.0.1:$1/api/v1/auth") ;;
    esac
    grep -q 'Non-2xx' <<<"$out" && { echo "non-2xx answers on $2:" >&2; echo "$out" >&2; exit 1; }
    awk '/^Requests\/sec/ { printf "%.0f", $2 }' <<<"$out"
}

median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

start before "$before" 18181
start after "$after" 18182
for route in verify auth; do
    rate 18181 "$route" >/dev/null # warm both caches and connections
    rate 18182 "$route" >/dev/null
    b="" a=""
    for _ in $(seq "$rounds"); do
        b="$b $(rate 18181 "$route")"
        a="$a $(rate 18182 "$route")"
    done
    mb=$(echo "$b" | median) ma=$(echo "$a" | median)
    echo "$route before:$b"
    echo "$route after: $a"
    awk -v a="$ma" -v b="$mb" -v r="$route" 'BEGIN { printf "%s medians: after %d / before %d = %.2f\n", r, a, b, a / b }'
done
