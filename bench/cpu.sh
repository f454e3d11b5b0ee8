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
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
fp() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
np=$(fp); bp=$(fp); hp=$(fp)
cat > $work/n.conf <<N
worker_processes 1; daemon off; pid $work/n.pid; error_log $work/n.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$np; location / { return 200 "hello\n"; } } }
N
taskset -c 1 nginx -c $work/n.conf & pids+=($!)
cat > $work/b.toml <<T
[admin]
bind = "127.0.0.1:0"
[access_log]
path = "off"
[[listeners]]
name = "bench"
bind = "127.0.0.1:$bp"
default_action = { type = "forward", target_group = "g" }
[[target_groups]]
name = "g"
targets = [{ address = "127.0.0.1:$np" }]
[target_groups.health_check]
path = "/"
T
RUST_LOG=warn taskset -c 0 $BIN serve --config $work/b.toml & bpid=$!; pids+=($bpid)
cat > $work/h.cfg <<H
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend f
  bind 127.0.0.1:$hp
  default_backend b
backend b
  server s1 127.0.0.1:$np check
H
taskset -c 0 haproxy -f $work/h.cfg -db 2>/dev/null & hpid=$!; pids+=($hpid)
for port in $bp $hp; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.05; done
done
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
