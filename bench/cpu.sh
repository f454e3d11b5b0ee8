#!/usr/bin/env bash
# CPU time per request, user and system, of ballast and HAProxy under the same wrk
# load, runs interleaved: the figure that stays comparable when this VM's speed
# moves between runs (both proxies pinned to core 0, nginx and wrk to core 1).
#
#   bench/cpu.sh [connections] [seconds] [repetitions]
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-50}; secs=${2:-5}; reps=${3:-3}
command -v wrk >/dev/null && command -v nginx >/dev/null && command -v haproxy >/dev/null || {
  apt-get update -qq && apt-get install -y -qq wrk nginx-light haproxy >/dev/null; }
cargo build --release -q -p ballast
BIN=target/release/ballast
source bench/lib.sh
np=$(free_port); bp=$(free_port); hp=$(free_port)
start_backend "$np"
ballast_config "$bp" "$np" > "$work/b.toml"
RUST_LOG=warn taskset -c 0 $BIN serve --config "$work/b.toml" & bpid=$!; pids+=($bpid)
haproxy_config "$hp" "$np" > "$work/h.cfg"
taskset -c 0 haproxy -f "$work/h.cfg" -db 2>/dev/null & hpid=$!; pids+=($hpid)
wait_http "$bp"; wait_http "$hp"
st() { awk '{print $14, $15}' /proc/$1/stat; }
run() { # pid port
  read u0 s0 < <(st $1)
  r=$(taskset -c 1 wrk -t1 -c$conns -d${secs}s --latency http://127.0.0.1:$2/ )
  read u1 s1 < <(st $1)
  rps=$(echo "$r" | awk '/Requests\/sec/ {print $2}'); p99=$(echo "$r" | awk '$1=="99%" {print $2}')
  n=$(echo "$rps * $secs" | bc)
  awk -v n=$n -v u=$((u1-u0)) -v s=$((s1-s0)) -v rps=$rps -v p=$p99 -v name=$3 'BEGIN{printf "%-8s %8.0f req/s p99 %-8s user %.2f us/req sys %.2f us/req\n", name, rps, p, u*1e4/n, s*1e4/n}'
}
for _ in $(seq "$reps"); do run $bpid $bp ballast; run $hpid $hp haproxy; done
