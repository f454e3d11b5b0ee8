#!/usr/bin/env bash
# TLS handshakes per second per core: ballast against HAProxy, same certificate.
#
#   bench/tls.sh [SECONDS_PER_RUN]      (default 5; six runs, each after a 1 s warm-up)
#
# Both servers terminate TLS with one ECDSA P-256 certificate (generated here with
# openssl), run one thread pinned to CPU 0 (taskset; HAProxy `nbthread 1`, ballast
# `TOKIO_WORKER_THREADS=1`), and are driven by `openssl s_time` pinned to CPU 1:
#   new      full TLS 1.3 handshakes (X25519 + ECDSA P-256 signature), no request;
#   reuse13  resumed TLS 1.3 handshakes; s_time only gets the session ticket when it
#            reads, so each connection also sends `GET /` (proxied to a backend);
#   reuse12  resumed TLS 1.2 handshakes (abbreviated, no request).
# The share of connections that were really resumed is printed too. The client is
# single-threaded and may be the bottleneck, so next to the raw rate the script
# reports handshakes per second of *server* CPU (utime+stime from /proc), which is
# the per-core figure; the ratio is ballast / HAProxy. Installs haproxy with
# apt-get when missing; builds ballast in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
for tool in haproxy:haproxy openssl:openssl taskset:util-linux; do
  command -v "${tool%%:*}" >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool#*:}" >/dev/null
  }
done
cargo build --release -q -p ballast
bin=target/release/ballast

work=$(mktemp -d /tmp/ballast-tls-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# One ECDSA P-256 certificate for both servers.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -keyout "$work/site.key" -out "$work/site.pem" 2>/dev/null
cat "$work/site.pem" "$work/site.key" > "$work/haproxy.pem"

backend_port=18480 ballast_port=18443 haproxy_port=18444
taskset -c 1 "$bin" backend --bind 127.0.0.1:$backend_port --name b0 >/dev/null 2>&1 &
pids+=($!)

cat > "$work/ballast.toml" <<TOML
[access_log]
path = "off"
[[listeners]]
name = "bench"
bind = "127.0.0.1:$ballast_port"
protocol = "https"
certificates = [{ cert = "site.pem", key = "site.key" }]
default_action = { type = "forward", target_group = "web" }
[[target_groups]]
name = "web"
targets = [{ address = "127.0.0.1:$backend_port" }]
TOML
RUST_LOG=warn TOKIO_WORKER_THREADS=1 taskset -c 0 "$bin" serve --config "$work/ballast.toml" 2>"$work/ballast.log" &
pids+=($!); ballast_pid=$!

cat > "$work/haproxy.cfg" <<CFG
global
  nbthread 1
  tune.ssl.cachesize 20000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend bench
  bind 127.0.0.1:$haproxy_port ssl crt $work/haproxy.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2
  default_backend web
backend web
  server b0 127.0.0.1:$backend_port
CFG
taskset -c 0 haproxy -f "$work/haproxy.cfg" -db >/dev/null 2>&1 &
pids+=($!); haproxy_pid=$!

for port in $ballast_port $haproxy_port; do
  for _ in $(seq 100); do
    (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.1
  done
done

tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run PID PORT MODE -> "rate per_cpu cpu% resumed%"
run() {
  local pid=$1 port=$2 args
  case $3 in
    new) args=(-tls1_3 -new) ;;
    reuse13) args=(-tls1_3 -reuse -www /) ;;
    reuse12) args=(-tls1_2 -reuse) ;;
  esac
  # A short warm-up (first connections, session cache), not counted.
  taskset -c 1 openssl s_time -connect 127.0.0.1:$port "${args[@]}" -time 1 >/dev/null 2>&1 || true
  local c0 t0 out c1 t1 n resumed
  c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
  out=$(taskset -c 1 openssl s_time -connect 127.0.0.1:$port "${args[@]}" -time "$secs" 2>&1)
  t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
  n=$(echo "$out" | awk '/connections in [0-9]+ real seconds/ {print $1; exit}')
  # s_time prints `r` for a resumed connection and `*` for a full handshake.
  resumed=$(echo "$out" | awk '/^[r*]+$/ { t += length($0); r += gsub(/r/, "") }
    END { printf "%.0f", t ? 100 * r / t : 0 }')
  awk -v n="$n" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v tck="$tck" -v res="$resumed" 'BEGIN {
    cpu = (c1 - c0) / tck; if (cpu <= 0) cpu = 1 / tck;
    printf "%.0f %.0f %.0f %s", n / (t1 - t0), n / cpu, 100 * cpu / (t1 - t0), res }'
}

loaded=$(awk '{print $1}' /proc/loadavg)
printf '# ECDSA P-256 certificate, server pinned to CPU 0, s_time on CPU 1; %ss a run; load average before: %s\n' "$secs" "$loaded"
printf '%-10s %-8s %12s %16s %11s %8s\n' server mode "handshakes/s" "per server CPU-s" "server CPU" resumed
declare -A result
for mode in new reuse13 reuse12; do
  for name in ballast haproxy; do
    if [ $name = ballast ]; then pid=$ballast_pid port=$ballast_port; else pid=$haproxy_pid port=$haproxy_port; fi
    read -r rate per_cpu cpu resumed <<<"$(run "$pid" "$port" "$mode")"
    result[$name$mode]=$per_cpu
    printf '%-10s %-8s %12s %16s %10s%% %7s%%\n' "$name" "$mode" "$rate" "$per_cpu" "$cpu" "$resumed"
  done
done
for mode in new reuse13 reuse12; do
  awk -v b="${result[ballast$mode]}" -v h="${result[haproxy$mode]}" -v m="$mode" \
    'BEGIN { printf "ratio ballast/haproxy (%s, per server CPU-s): %.2f\n", m, b / h }'
done
