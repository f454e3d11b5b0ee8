"""The cluster benchmark's report (bench/cluster.py): the measured table, the
per-change costs fitted as a + b x N over the fleet sizes measured and carried to 100
and 1,000 nodes (with lease keep-alives and Redis's calls, which follow from the
design), and the section it appends to BENCHMARKS.md."""

import math
import os
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEASE_TTL = 10.0  # [cluster] lease_ttl's default; registrations renew every third of it
REDIS_KEYS_PER_CALL = 512  # keys one settling EVALSHA carries (README, Global rate limits)


HEAD = ("| nodes | changes | ack → last node p50 (ms) | p99 (ms) | max (ms) | "
        "sent → last node p50 (ms) | p99 (ms) | write p50 (ms) | "
        "etcd puts / change | put bytes / change | watch msgs sent / change | "
        "etcd bytes sent / change | etcd CPU ms / change | node CPU ms / change | watchers | "
        "keep-alives/s (expected) |")


def table(rows):
    lines = [HEAD, "|" + "---|" * HEAD.count(" | ") + "---|"]
    for r in rows:
        lines.append(
            f"| {r['nodes']} | {r['changes']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['max_ms']:.1f} | {r['sent_p50_ms']:.1f} | {r['sent_p99_ms']:.1f} | "
            f"{r['write_p50_ms']:.1f} | {r['puts']:.1f} | "
            f"{r['put_bytes']:.0f} | {r['watch_msgs']:.1f} | {r['sent_bytes']:.0f} | "
            f"{r['cpu_ms']:.2f} | {r['node_cpu_ms']:.2f} | {r['watchers']:.0f} | {r['keepalives_s']:.2f} "
            f"({r['keepalives_expected']:.2f}) |")
    return "\n".join(lines)


def fit(rows, key):
    """Least squares a + b*N over the measured rows (b: the cost of one more node)."""
    xs = [r["nodes"] for r in rows]
    ys = [r[key] for r in rows]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def arithmetic(rows, args):
    """Per-change costs fitted over the measured N, carried to 100 and 1,000 nodes."""
    if len({r["nodes"] for r in rows}) < 2:
        return "(at least two fleet sizes in --nodes are needed to carry the figures further)"
    keys = ("puts", "put_bytes", "watch_msgs", "sent_bytes", "txns", "ranges", "cpu_ms")
    per = {key: fit(rows, key) for key in keys}
    out = ["Per change, fitted as a + b x N over the measured N (b: what one more node adds):",
           "", "```"]
    for key, (a, b) in per.items():
        out.append(f"{key:>10}: {a:10.2f} + {b:10.3f} x N")
    out.append("```")
    rate, settle = args.request_rate, 1000 / args.redis_settle_ms
    calls = args.redis_limits * math.ceil(args.redis_keys / REDIS_KEYS_PER_CALL) * settle
    out += ["", f"Carried to larger fleets (keep-alives: N / (lease_ttl / 3), lease_ttl = "
            f"{LEASE_TTL:g} s; Redis at {rate:,} req/s through global limits: one round trip "
            f"per request would be {rate:,} calls/s; settled as ballast does, one EVALSHA per "
            f"node and global limit every {args.redis_settle_ms:g} ms (up to "
            f"{REDIS_KEYS_PER_CALL} keys a call), it is nodes x {args.redis_limits} limit(s) x "
            f"ceil({args.redis_keys} keys / {REDIS_KEYS_PER_CALL}) x {settle:g}/s at most, "
            f"whatever the request rate):", "",
            "| nodes | watch events sent / change | etcd puts / change (registrations) | "
            "etcd bytes sent / change | etcd CPU ms / change | changes/s etcd's CPU allows | "
            "keep-alives/s | Redis calls/s, one per request | Redis calls/s, settled |",
            "|---|---|---|---|---|---|---|---|---|"]
    for n in (100, 1000):
        est = {key: a + b * n for key, (a, b) in per.items()}
        keepalives = n / (LEASE_TTL / 3)
        settled = n * calls
        out.append(f"| {n:,} | {est['watch_msgs']:,.0f} | {est['puts']:,.0f} "
                   f"({est['puts'] - 1:,.0f}) | {est['sent_bytes'] / 1e3:,.0f} kB | "
                   f"{est['cpu_ms']:,.0f} | {1000 / max(est['cpu_ms'], 1e-3):,.0f} | "
                   f"{keepalives:,.0f} | {rate:,} | {settled:,.0f} |")
    return "\n".join(out)


def write_benchmarks(text):
    path = os.path.join(ROOT, "BENCHMARKS.md")
    old = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    section = "## Cluster"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "?"
    block = f"\n### Run of {stamp} (commit {commit})\n\n{text}\n"
    if f"\n{section}\n" not in old:
        old = old.rstrip("\n") + f"\n\n{section}\n\nReproduce: `python3 bench/cluster.py " \
                                 f"--nodes 3,10,30 --changes 100 --write`.\n"
    # Append at the end of the `## Cluster` section (before the next `## `).
    head, rest = old.split(f"\n{section}\n", 1)
    nxt = rest.find("\n## ")
    body, tail = (rest, "") if nxt < 0 else (rest[:nxt], rest[nxt:])
    with open(path, "w") as f:
        f.write(head + f"\n{section}\n" + body.rstrip("\n") + "\n" + block + tail)
