#!/usr/bin/env bash
# Run every fuzz target for SECONDS each, one after another, from its corpus in
# fuzz/corpus/<target> (what the fuzzer finds is added there; only the seed-*
# files are committed). Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz --locked`). Prints executions per target; exits
# non-zero if any target found a defect, whose input libFuzzer saved under
# fuzz/artifacts/<target>/: fix it, then copy the input to
# fuzz/regressions/<target>/ so that the stable `cargo test` replays it forever.
#
#   fuzz/run.sh 60                 # every target, a minute each
#   fuzz/run.sh 300 request_head   # one target, five minutes
set -uo pipefail
cd "$(dirname "$0")"
seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: cargo-fuzz is missing (cargo install cargo-fuzz --locked)" >&2
    exit 2
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
# No AddressSanitizer: the code under test is safe Rust (the proxy crate denies
# unsafe code), and ASan would triple the time per execution. Debug assertions and
# overflow checks are on (cargo fuzz's default).
flags=(--sanitizer none)
cargo +nightly fuzz build "${flags[@]}" || exit 2

failed=()
summary=""
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    log=$(mktemp)
    # -timeout: an input that takes 10 s is a defect too (a hang, a blow-up).
    cargo +nightly fuzz run "${flags[@]}" "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p' "$log" | tail -1)
    corpus=$(find "corpus/$t" -type f | wc -l)
    if [ $rc -ne 0 ]; then
        failed+=("$t")
        tail -40 "$log"
        status="DEFECT (fuzz/artifacts/$t/)"
    else
        status="ok"
    fi
    line=$(printf '%-14s %6ss %12s runs %8s exec/s %6s corpus  %s' \
        "$t" "$seconds" "${runs:-?}" "${rate:-?}" "$corpus" "$status")
    echo "$line"
    summary+="$line"$'\n'
    rm -f "$log"
done
echo
echo "target         time        executions      speed  corpus  result"
printf '%s' "$summary"
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz/run.sh: defects found by: ${failed[*]}" >&2
    exit 1
fi
