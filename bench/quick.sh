#!/usr/bin/env bash
# A first, rough throughput check: the same wrk, in the same run, straight to one
# nginx backend and through ballast (round robin over that one backend), runs
# interleaved, medians reported. ballast pinned to core 0, nginx and wrk to core 1.
# The full peer comparison (HAProxy, NGINX as proxies, many scenarios) is bench/run.sh.
#
#   bench/quick.sh [connections] [seconds] [repetitions]
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-50}; secs=${2:-5}; reps=${3:-3}
command -v wrk >/dev/null && command -v nginx >/dev/null || {
  apt-get update -qq && apt-get install -y -qq wrk nginx-light >/dev/null; }
cargo build --release -q -p ballast
source bench/lib.sh
np=$(free_port); bp=$(free_port)
start_backend "$np"
ballast_config "$bp" "$np" > "$work/ballast.toml"
RUST_LOG=warn taskset -c 0 target/release/ballast serve --config "$work/ballast.toml" & pids+=($!)
wait_http "$bp"
run() { taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency "$1" | awk '/Requests\/sec/ {print $2}'; }
direct=(); via=()
for i in $(seq "$reps"); do
  direct+=("$(run "http://127.0.0.1:$np/")"); via+=("$(run "http://127.0.0.1:$bp/")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
d=$(median "${direct[@]}"); v=$(median "${via[@]}")
echo "wrk -t1 -c$conns -d${secs}s, $reps interleaved runs, medians (req/s):"
echo "  direct to nginx : $d   (runs: ${direct[*]})"
echo "  through ballast : $v   (runs: ${via[*]})"
awk -v d="$d" -v v="$v" 'BEGIN { printf "  ratio ballast/direct: %.2f\n", v/d }'
