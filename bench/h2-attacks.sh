#!/usr/bin/env bash
# Hostile HTTP/2 clients against a real `ballast serve` process: for each attack
# (rapid reset, resets of accepted streams, CONTINUATION flood, HPACK bomb,
# SETTINGS flood, PING flood, zero window; testkit's `h2_hostile`), a
# well-behaved h2c client's p99 over 3 s unloaded, then over SECS seconds while
# two attackers repeat the attack on fresh connections, and ballast's resident
# memory before and at most during (sampled every 100 ms). Prints one row per
# attack: connections closed, the GOAWAY they got, both p99s and their ratio,
# RSS before and max. The benchmark is the ignored test `h2_attacks_benchmark`
# in crates/ballast/tests/cli/h2_attacks.rs.
#
#   bench/h2-attacks.sh [SECS]              (default 10; release build)
#   H2_ATTACK_PACE_MS=20 bench/h2-attacks.sh   (each attacker waits 20 ms
#                                            between connections, as the suite's
#                                            tests do; default 0: flat out)
#   PROFILE=debug bench/h2-attacks.sh 2     (a quick check that it runs)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
profile=()
if [ "${PROFILE:-release}" = release ]; then profile=(--release); fi
H2_ATTACK_SECS="$secs" cargo test "${profile[@]}" -q -p ballast --test cli \
  h2_attacks_benchmark -- --ignored --nocapture --test-threads 1
