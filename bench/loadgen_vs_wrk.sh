#!/usr/bin/env bash
# ballast bench (the stand-alone ballast-loadgen binary) against wrk, on the same core,
# against the same nginx.
#
# nginx runs one worker pinned to core 0 and serves a small fixed body from memory;
# each load generator runs pinned to core 1 with one thread and the same connections
# and duration. Runs are interleaved A B A B … so drift in the machine hits both
# equally; the script prints each run, the medians and the ratio.
#
# Usage: bench/loadgen_vs_wrk.sh [REPS] [DURATION_S] [CONNECTIONS]   (default 3 10 50)
# Installs nginx-light and wrk from Debian if missing (needs root). Stops exactly the
# processes it started.
set -euo pipefail

REPS=${1:-3}
DURATION=${2:-10}
CONNECTIONS=${3:-50}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v taskset >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
    apt-get update -qq && apt-get install -y -qq "${need[@]}"
fi

cargo build --release -q -p ballast-loadgen --manifest-path "$ROOT/Cargo.toml"
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
LOADGEN="$TARGET_DIR/release/ballast-loadgen"

WORK=$(mktemp -d)
NGINX_PID=""
cleanup() {
    if [[ -n "$NGINX_PID" ]] && kill -0 "$NGINX_PID" 2>/dev/null; then
        kill "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/logs"
cat >"$WORK/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
error_log $WORK/logs/error.log warn;
pid $WORK/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000000;
    client_body_temp_path $WORK/body;
    proxy_temp_path $WORK/proxy;
    server {
        listen 127.0.0.1:$PORT reuseport backlog=4096;
        location / { return 200 "hello from nginx, a small fixed body\n"; }
    }
}
CONF
# master_process off: the pid we start is the one serving, so the trap stops exactly it.
taskset -c 0 nginx -p "$WORK" -c "$WORK/nginx.conf" &
NGINX_PID=$!
for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
    sleep 0.1
done

URL="http://127.0.0.1:$PORT/"
echo "nginx (pid $NGINX_PID) on core 0 at $URL; load on core 1; $CONNECTIONS connections, ${DURATION}s, $REPS rounds"
echo "ballast: taskset -c 1 $LOADGEN -c $CONNECTIONS -d ${DURATION}s --threads 1 --json $URL"
echo "wrk:     taskset -c 1 wrk -t1 -c$CONNECTIONS -d${DURATION}s $URL"

ballast_rps=()
wrk_rps=()
for i in $(seq "$REPS"); do
    b=$(taskset -c 1 "$LOADGEN" -c "$CONNECTIONS" -d "${DURATION}s" --threads 1 --json "$URL" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f %d %s" % (d["rps"], sum(d["errors"].values()), d["latency_ms"]["p99"]))')
    w=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$URL")
    w_rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$w")
    w_p99=$(awk '$1 == "99%" {print $2}' <<<"$w")
    w_err=$(awk '/Socket errors|Non-2xx/ {print}' <<<"$w" | tr '\n' ' ')
    read -r b_rps b_err b_p99 <<<"$b"
    echo "round $i: ballast $b_rps req/s (errors $b_err, p99 ${b_p99}ms) | wrk $w_rps req/s (p99 $w_p99${w_err:+, $w_err})"
    ballast_rps+=("$b_rps")
    wrk_rps+=("$w_rps")
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mb=$(median "${ballast_rps[@]}")
mw=$(median "${wrk_rps[@]}")
echo "median: ballast bench $mb req/s, wrk $mw req/s, ratio ballast/wrk $(awk -v b="$mb" -v w="$mw" 'BEGIN {printf "%.3f", b / w}')"
