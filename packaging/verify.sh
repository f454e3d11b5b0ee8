#!/usr/bin/env bash
# Check packaging/ballast.service with systemd's own tools, on any machine with
# systemd installed (it need not be running: nothing is started or enabled).
#
#   packaging/verify.sh [BINARY]      (default: target/debug/ballast, built first)
#
# `systemd-analyze verify` insists that ExecStart's binary exists, so a copy of the
# unit with /usr/local/bin/ballast rewritten to BINARY is verified; any warning
# fails the check. Then `systemd-analyze security --offline=yes` prints the
# exposure score (README, "Running under systemd") and fails above 2.0. The
# packaged config is checked with `ballast check` too.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "${1:-target/debug/ballast}")"
if ! command -v systemd-analyze >/dev/null; then
    echo "packaging/verify.sh: systemd-analyze is missing (apt-get install systemd)" >&2
    exit 1
fi
[ -x "$bin" ] || { echo "packaging/verify.sh: no binary at $bin (cargo build first)" >&2; exit 1; }
"$bin" check --config packaging/ballast.toml
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
sed "s#/usr/local/bin/ballast#$bin#g" packaging/ballast.service > "$dir/ballast.service"
out="$(systemd-analyze verify "$dir/ballast.service" 2>&1)" || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
    echo "packaging/verify.sh: systemd-analyze verify warns:" >&2
    echo "$out" >&2
    exit 1
fi
echo "packaging/ballast.service: systemd-analyze verify: no warnings"
score="$(systemd-analyze security --offline=yes --no-pager "$dir/ballast.service" 2>&1 \
    | sed -n 's/.*Overall exposure level for ballast.service: \([0-9.]*\).*/\1/p')"
[ -n "$score" ] || { echo "packaging/verify.sh: no exposure score from systemd-analyze security" >&2; exit 1; }
echo "packaging/ballast.service: systemd-analyze security exposure $score (0 = locked down, 10 = exposed)"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { echo "exposure $score is above 2.0" >&2; exit 1; }
