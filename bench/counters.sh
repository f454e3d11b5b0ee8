#!/usr/bin/env bash
# Per-request CPU counters for ballast and HAProxy, read from the hardware by
# `perf stat` while wrk loads each proxy (one thread, pinned to core 0, in front
# of one nginx backend): cycles and instructions in user space and in the kernel,
# and system calls. Instructions and system calls repeat within a percent from run
# to run on this shared VM; cycles, the kernel's above all, move with whatever
# else the host runs, so each proxy is measured REPS times, interleaved.
#
#   bench/counters.sh [CONNS] [SECS] [REPS]    (default 50 5 2)
#   CLOSE=1 bench/counters.sh 20               (a new connection per request)
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-50}; secs=${2:-5}; reps=${3:-2}
source bench/lib.sh
install_tools perf:linux-perf haproxy:haproxy nginx:nginx-light wrk:wrk
cargo build --release -q -p ballast
BIN=target/release/ballast
extra=()
if [ "${CLOSE:-0}" = 1 ]; then extra=(-H "Connection: close"); fi
np=$(free_port)
start_backend "$np"
events=cycles:u,cycles:k,instructions:u,instructions:k,raw_syscalls:sys_enter
printf '%-8s %9s %9s %9s %9s %9s %9s\n' proxy requests "cyc user" "cyc kern" "ins user" "ins kern" syscalls
for _ in $(seq "$reps"); do
  for name in ballast haproxy; do
    port=$(free_port)
    if [ "$name" = ballast ]; then
      ballast_config "$port" "$np" > "$work/b.toml"
      RUST_LOG=warn taskset -c 0 "$BIN" serve --workers 1 --config "$work/b.toml" 2>/dev/null & pid=$!
    else
      haproxy_config "$port" "$np" > "$work/h.cfg"
      taskset -c 0 haproxy -f "$work/h.cfg" -db 2>/dev/null & pid=$!
    fi
    wait_http "$port" 300
    # Warm up, then count over exactly the measured run.
    taskset -c 1 wrk -t1 -c"$conns" -d1s "${extra[@]}" "http://127.0.0.1:$port/" >/dev/null
    perf stat -x, -e "$events" -p "$pid" -o "$work/counters" -- sleep "$((secs + 1))" & perf=$!
    done_requests=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" "${extra[@]}" \
      "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
    wait "$perf"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    awk -F, -v n="$done_requests" -v name="$name" '/^[0-9]/ {v[$3] = $1}
      END {printf "%-8s %9d %9.0f %9.0f %9.0f %9.0f %9.2f\n", name, n, v["cycles:u"]/n,
           v["cycles:k"]/n, v["instructions:u"]/n, v["instructions:k"]/n,
           v["raw_syscalls:sys_enter"]/n}' "$work/counters"
  done
done
