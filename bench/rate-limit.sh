#!/usr/bin/env bash
# Rate-limit accuracy (issue 21 §1): one ballast with a limit of rate = "100/s",
# burst = 200 keyed on the client address, in front of `ballast backend`; the load
# generator offers 500 requests/s (open loop, constant arrival rate) for 10 s from
# one address. GCRA admits burst + rate × time = 200 + 100 × 10 = 1200; the
# script reports what ballast admitted (200s) and refused (429s), from its own
# /metrics, and the error against 1200; and, since a loaded machine's load
# generator starts and ends late (its connections open while the clock runs),
# also against burst + rate × the time between the first and the last request
# as ballast's access log saw them arrive.
#
#   bench/rate-limit.sh                  # debug build (cargo build -p ballast)
#   PROFILE=release bench/rate-limit.sh  # release build
#   OFFER=1000 SECS=20 bench/rate-limit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-debug}; offer=${OFFER:-500}; secs=${SECS:-10}
rate=100; burst=200
if [ "$profile" = release ]; then cargo build --release -q -p ballast; else cargo build -q -p ballast; fi
bin=target/$profile/ballast
source bench/lib.sh
bp=$(free_port); lp=$(free_port); ap=$(free_port)
RUST_LOG=warn "$bin" backend --bind "127.0.0.1:$bp" & pids+=($!)
cat > "$work/ballast.toml" <<TOML
[[rate_limits]]
name = "per-ip"
key = "client_ip"
rate = "$rate/s"
burst = $burst
[admin]
bind = "127.0.0.1:$ap"
[access_log]
path = "$work/access.log"
[[listeners]]
name = "bench"
bind = "127.0.0.1:$lp"
default_action = { type = "forward", target_group = "g" }
rate_limits = ["per-ip"]
[[target_groups]]
name = "g"
targets = [{ address = "127.0.0.1:$bp" }]
[target_groups.health_check]
interval = "200ms"
timeout = "100ms"
healthy_threshold = 1
TOML
RUST_LOG=warn "$bin" serve --config "$work/ballast.toml" & pids+=($!)
metrics() { python3 -c "import urllib.request,sys; print(urllib.request.urlopen('http://127.0.0.1:$ap/metrics').read().decode())" 2>/dev/null || true; }
series() { metrics | awk -v s="$1" '$1 == s { print $2; f=1 } END { if (!f) print 0 }'; }
for _ in $(seq 100); do
  [ "$(series 'ballast_healthy_targets{target_group="g"}')" = 1 ] && break; sleep 0.1
done
echo "offered: $offer/s for ${secs}s from one client; limit: $rate/s, burst $burst ($profile build)"
echo "+ $bin bench --rate $offer -d ${secs}s -c 50 http://127.0.0.1:$lp/"
"$bin" bench --rate "$offer" -d "${secs}s" -c 50 "http://127.0.0.1:$lp/" | sed 's/^/  /'
ok=$(series 'ballast_requests_total{listener="bench",code="200"}')
limited=$(series 'ballast_requests_total{listener="bench",code="429"}')
expected=$((burst + rate * secs))
for _ in $(seq 50); do [ "$(wc -l < "$work/access.log")" -ge $((ok + limited)) ] && break; sleep 0.1; done
span=$(python3 - "$work/access.log" <<'PY'
import json, sys, datetime
t = [datetime.datetime.fromisoformat(json.loads(l)["time"].replace("Z", "+00:00")) for l in open(sys.argv[1])]
print((max(t) - min(t)).total_seconds())
PY
)
awk -v ok="$ok" -v lim="$limited" -v e="$expected" -v span="$span" -v r="$rate" -v b="$burst" 'BEGIN {
  printf "admitted (200): %d   refused (429): %d   offered: %d\n", ok, lim, ok + lim
  printf "expected burst + rate x %ds: %d   error: %+.2f%%\n", (e - b) / r, e, (ok - e) * 100 / e
  es = b + r * span
  printf "requests arrived over %.3fs (access log): burst + rate x %.3fs = %.1f   error: %+.2f%%\n", span, span, es, (ok - es) * 100 / es }'
