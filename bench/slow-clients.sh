#!/usr/bin/env bash
# Slow clients at scale (issue 25 §3): the scale tests of
# crates/ballast/tests/cli/slow_clients.rs with N slow connections of each kind
# (slow heads, trickling bodies, readers that stopped reading) held at once
# against a real `ballast serve`, on a release build. Prints, per kind, ballast's
# RSS before and with them, the memory per slow connection, and a normal client's
# p99 unloaded and during; each test fails if memory per connection or the p99
# goes over its bound, or if a slow connection is not cut and counted.
#
#   bench/slow-clients.sh [N]        (default 2000; the suite runs 500)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
# Two sockets per slow connection in this process, two in ballast's.
ulimit -n "$(ulimit -Hn)"
BALLAST_SLOW_CLIENTS="$n" cargo test --release -q -p ballast --test cli slow_clients \
  -- --nocapture --test-threads 1 2>&1 | grep -E 'slow (heads|bodies|readers):|test result|panicked|FAILED'
