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
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
np=$(free_port); bp=$(free_port)
cat > "$work/nginx.conf" <<NGINX
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$np; location / { return 200 "hello from nginx\n"; } } }
NGINX
taskset -c 1 nginx -c "$work/nginx.conf" & pids+=($!)
cat > "$work/ballast.toml" <<TOML
[access_log]
path = "off"
[[listeners]]
name = "bench"
bind = "127.0.0.1:$bp"
default_action = { type = "forward", target_group = "nginx" }
[[target_groups]]
name = "nginx"
targets = [{ address = "127.0.0.1:$np" }]
[target_groups.health_check]
path = "/"
TOML
RUST_LOG=warn taskset -c 0 target/release/ballast serve --config "$work/ballast.toml" & pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$bp/" >/dev/null && break; sleep 0.05; done
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
