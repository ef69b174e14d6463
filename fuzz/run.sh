#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each for SECONDS (default 60), then prints per
# target the executions, executions per second, corpus size and whether it crashed.
#
#   fuzz/run.sh [SECONDS]            every target
#   TARGETS="token_format" fuzz/run.sh 300
#
# The committed seeds (fuzz/corpus/<target>/) are read, never written: libFuzzer adds what it
# finds to fuzz/work/<target>/ (kept between runs, not committed) and writes a crashing input
# to fuzz/artifacts/<target>/. Stable rustc accepts cargo-fuzz's nightly flags with
# RUSTC_BOOTSTRAP=1. Exits non-zero if a target crashed or could not run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "usage: fuzz/run.sh [SECONDS]" >&2; exit 2; }
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
    exit 1
fi
export RUSTC_BOOTSTRAP=1
targets=${TARGETS:-$(cargo fuzz list)}
cargo fuzz build
failed=0
summary=()
for target in $targets; do
    mkdir -p "fuzz/work/$target" "fuzz/artifacts/$target"
    log="fuzz/artifacts/$target/last-run.log"
    echo "== $target: ${seconds}s"
    set +e
    # -timeout: an input that takes 10 s is a hang, reported like a crash. -max_len: the
    # longest seed is a few hundred bytes; bodies are bounded by the server's body limit.
    cargo fuzz run "$target" "fuzz/work/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -max_len=8192 \
        -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1
    status=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    corpus=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -n 1 | cut -d' ' -f2)
    crashes=$(find "fuzz/artifacts/$target" -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' | wc -l)
    if [ "$status" -eq 0 ]; then
        verdict="no crash"
    else
        verdict="CRASHED (exit $status; see $log and fuzz/artifacts/$target/)"
        failed=1
        grep -m 5 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" || tail -n 20 "$log"
    fi
    summary+=("$(printf '%-24s %12s execs %8s exec/s  corpus %-12s %s  (%d artifact(s) kept)' \
        "$target" "${execs:-?}" "${rate:-?}" "${corpus:-?}" "$verdict" "$crashes")")
done
echo
echo "fuzzed each target for ${seconds}s:"
printf '%s\n' "${summary[@]}"
exit "$failed"
