#!/usr/bin/env bash
# The peer benchmark in one command: installs haproxy, nginx, wrk, h2load and openssl
# from Debian's packages, builds ballast in release mode, and runs bench/run.py.
#   bench/run.sh [--reps 3] [--duration 5] [--paired 5] [--only ballast,haproxy,nginx]
#                [--logs off,on] [--scenarios small50,small1000,16k,newconn,h2,tls-small50,
#                 tls-16k,tls-newconn,tls-resumed,tls-h2,idle] [--write]
# (tls-newconn compiles a small shim with cc, which the Rust build needs anyway.)
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for tool in haproxy:haproxy nginx:nginx-light wrk:wrk h2load:nghttp2-client openssl:openssl taskset:util-linux perf:linux-perf; do
  command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release -q -p ballast
exec python3 bench/run.py "$@"
