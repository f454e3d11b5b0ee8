#!/usr/bin/env bash
# User-space instructions per proxied request, ballast against HAProxy, counted by
# valgrind's callgrind: the one figure this shared, drifting VM repeats exactly
# (the same binary and load give the same count, whatever else the machine does).
#
# Each proxy (one thread) runs under callgrind in front of one nginx backend and
# serves N1 and then N2 small keep-alive requests (h2load --h1, 50 connections) in
# two runs; the difference of the totals over N2 - N1 is the cost of a request,
# start-up and shutdown cancelled out.
#
#   bench/instructions.sh [N1] [N2]        (default 10000 40000)
#   CLOSE=1 bench/instructions.sh          (a new connection per request, by wrk:
#                                           requests counted from wrk's output)
set -euo pipefail
cd "$(dirname "$0")/.."
n1=${1:-10000}; n2=${2:-40000}
source bench/lib.sh
install_tools valgrind:valgrind haproxy:haproxy nginx:nginx-light h2load:nghttp2-client wrk:wrk
cargo build --release -q -p ballast
BIN=target/release/ballast
np=$(free_port)
start_backend "$np"

# Start `name` under callgrind on a fresh port, send the load, stop it; prints
# "requests instructions".
measure() { # name requests
  local name=$1 n=$2 port out=$work/cg.$1.$2
  port=$(free_port)
  if [ "$name" = ballast ]; then
    ballast_config "$port" "$np" > "$work/b.toml"
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out" \
      "$BIN" serve --workers 1 --config "$work/b.toml" 2>/dev/null & local pid=$!
  else
    haproxy_config "$port" "$np" > "$work/h.cfg"
    valgrind --tool=callgrind --callgrind-out-file="$out" \
      haproxy -f "$work/h.cfg" -db 2>/dev/null & local pid=$!
  fi
  wait_http "$port" 300
  local done_requests
  if [ "${CLOSE:-0}" = 1 ]; then
    # wrk runs for a time, not a count: N is seconds here.
    done_requests=$(taskset -c 1 wrk -t1 -c20 -d"${n}s" -H "Connection: close" \
      "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
  else
    taskset -c 1 h2load --h1 -n "$n" -c 50 -t 1 "http://127.0.0.1:$port/" >/dev/null
    done_requests=$n
  fi
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  echo "$done_requests $(awk '/^totals:/ {print $2}' "$out")"
}

if [ "${CLOSE:-0}" = 1 ] && [ $# -eq 0 ]; then n1=3; n2=9; fi
for name in ballast haproxy; do
  read -r r1 i1 < <(measure "$name" "$n1")
  read -r r2 i2 < <(measure "$name" "$n2")
  per=$(( (i2 - i1) / (r2 - r1) ))
  eval "per_$name=$per"
  printf '%-8s %7d instructions per request (%d and %d requests)\n' "$name" "$per" "$r1" "$r2"
done
awk -v b="$per_ballast" -v h="$per_haproxy" 'BEGIN { printf "ballast / HAProxy: %.2f\n", b / h }'
