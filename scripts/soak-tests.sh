#!/usr/bin/env bash
# Runs the whole test suite (the README's command, as .ci/run runs it) N times and
# counts failures per test, to find the tests that fail now and then before CI does.
#
#   scripts/soak-tests.sh [--busy] N
#
# --busy keeps one core busy for the whole soak (a shell loop pinned to the last
# core with taskset), as a loaded CI machine would be.
#
# The suite is built once first; each run's full output is kept in
# target/soak/run-K.log, and a summary (runs, failed runs, failures per test) is
# printed at the end and written to target/soak/summary.txt. Exit status: 0 when
# every run passed, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

busy=0
if [[ "${1:-}" == "--busy" ]]; then
    busy=1
    shift
fi
runs="${1:?usage: scripts/soak-tests.sh [--busy] N}"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "N must be a positive number" >&2; exit 2; }

out=target/soak
rm -rf "$out"
mkdir -p "$out"

cargo test --workspace --locked --no-run >/dev/null 2>"$out/build.log" || {
    cat "$out/build.log" >&2
    exit 2
}

spinner=""
stop_busy() {
    if [[ -n "$spinner" ]]; then
        kill "$spinner" 2>/dev/null || true
        wait "$spinner" 2>/dev/null || true
    fi
}
trap stop_busy EXIT
if ((busy)); then
    last=$(($(nproc) - 1))
    taskset -c "$last" bash -c 'while :; do :; done' &
    spinner=$!
fi

failed_runs=0
: >"$out/failures.txt"
for ((k = 1; k <= runs; k++)); do
    log="$out/run-$k.log"
    start=$SECONDS
    if cargo test --workspace --locked --no-fail-fast >"$log" 2>&1; then
        status=passed
    else
        status=FAILED
        failed_runs=$((failed_runs + 1))
    fi
    # "Running tests/proxy/main.rs (target/...)" names the binary of the test lines
    # that follow; a failed test is "test NAME ... FAILED".
    failures=$(awk '
        /^ +Running / { bin = $2 }
        /^ +Doc-tests / { bin = "doc:" $2 }
        /^test .* \.\.\. FAILED$/ { sub(/^test /, ""); sub(/ \.\.\. FAILED$/, ""); print bin "::" $0 }
    ' "$log")
    if [[ -n "$failures" ]]; then
        echo "$failures" >>"$out/failures.txt"
    fi
    printf 'run %d/%d: %s in %ds%s\n' "$k" "$runs" "$status" $((SECONDS - start)) \
        "$(if [[ -n "$failures" ]]; then printf ' (%s)' "$(echo "$failures" | paste -sd, -)"; fi)"
    if [[ "$status" == FAILED && -z "$failures" ]]; then
        echo "  no failed test named: see $log (a build error or a crashed test binary)"
    fi
done

{
    echo "runs: $runs$(((busy)) && echo ', one core kept busy'), failed runs: $failed_runs"
    if [[ -s "$out/failures.txt" ]]; then
        echo "failures per test:"
        sort "$out/failures.txt" | uniq -c | sort -rn
    fi
} | tee "$out/summary.txt"
((failed_runs == 0))
