#!/usr/bin/env python3
"""Gray-failure benchmark (issue 20 §2): what a client sees when one target of five
answers 500 to 30% of requests while passing its health checks.

Five `ballast backend`s on 127.0.0.1, `b2` started with `--fail-rate 0.3`. One
ballast per mode, all over the same five backends and loaded at the same time with
the same paced load (so the modes see the same failure at the same moment):

  off          anomaly_mitigation = "off"
  on           anomaly_mitigation = "on"
  on+retries   anomaly_mitigation = "on" and retry on 5xx (`--retries`; needs the
               retry part of issue 20, which this script does not check)

Each group balances `weighted_random` with health checks every second. The load is
`--rate` requests a second per mode from `--clients` keep-alive connections, each
paced, for `--duration` seconds from the moment every target is healthy. Prints the
client-visible 5xx share per 5 s for each mode as a table, the totals, and the
decisions the `on` ballast explained at `GET .../anomalies`; writes the same series
as an SVG plot (`--svg`). The script stops exactly the processes it started.

Usage: bench/gray-failure.py [--binary target/debug/ballast] [--duration 60]
                             [--rate 200] [--retries] [--svg bench/gray-failure.svg]
"""

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

from ports import free_port, wait_port  # noqa: E402 (bench/ports.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUCKET = 5.0


def get_json(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


MODES = {
    "off": 'anomaly_mitigation = "off"\n',
    "on": 'anomaly_mitigation = "on"\n',
    "on+retries": 'anomaly_mitigation = "on"\n'
    'retry = { attempts = 2, on = ["connect_failure", "reset", "500", "502", "503", "504"], '
    "budget = { ratio = 0.2, min_per_second = 10 } }\n",
}


def config(listen, admin, state, backends, extra):
    targets = ", ".join(f'{{ address = "127.0.0.1:{p}" }}' for p in backends)
    return f"""
[admin]
bind = "127.0.0.1:{admin}"

[state]
dir = "{state}"

[access_log]
path = "off"

[[listeners]]
name = "public"
bind = "127.0.0.1:{listen}"
default_action = {{ type = "forward", target_group = "web" }}

[[target_groups]]
name = "web"
algorithm = "weighted_random"
targets = [{targets}]
{extra}
[target_groups.health_check]
interval = "1s"
timeout = "500ms"
healthy_threshold = 2
"""


def load(port, rate, clients, duration, start, out):
    """`clients` threads, each one keep-alive connection paced at rate/clients."""
    gap = clients / rate

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        seen = []
        next_at = start
        while True:
            now = time.monotonic()
            if now - start >= duration:
                break
            if next_at > now:
                time.sleep(next_at - now)
            next_at += gap
            try:
                conn.request("GET", "/")
                r = conn.getresponse()
                r.read()
                status = r.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                status = 599
            seen.append((time.monotonic() - start, status >= 500))
        conn.close()
        out.extend(seen)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    return threads


def svg(path, series, duration):
    """A line per mode: 5xx share (%) per 5 s bucket."""
    w, h, left, bottom, top, right = 720, 360, 60, 40, 30, 130
    top_pct = max(1.0, max((v for s in series.values() for v in s), default=1.0) * 1.1)
    colours = {"off": "#d62728", "on": "#1f77b4", "on+retries": "#2ca02c"}

    def x(t):
        return left + (w - left - right) * t / duration

    def y(v):
        return h - bottom - (h - bottom - top) * v / top_pct

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="14">Client-visible 5xx share, one target of five failing 30%</text>',
        f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
        f'<text x="{(w - right + left) / 2}" y="{h - 8}" text-anchor="middle">seconds</text>',
    ]
    for i in range(6):
        v = top_pct * i / 5
        parts.append(
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.1f}%</text>'
            f'<line x1="{left}" y1="{y(v):.1f}" x2="{w - right}" y2="{y(v):.1f}" stroke="#ddd"/>'
        )
    for t in range(0, int(duration) + 1, 10):
        parts.append(f'<text x="{x(t):.1f}" y="{h - bottom + 16}" text-anchor="middle">{t}</text>')
    for n, (mode, values) in enumerate(series.items()):
        pts = " ".join(f"{x((i + 1) * BUCKET):.1f},{y(v):.1f}" for i, v in enumerate(values))
        c = colours.get(mode, "black")
        parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{pts}"/>')
        ly = top + 20 * n + 10
        parts.append(
            f'<line x1="{w - right + 10}" y1="{ly}" x2="{w - right + 30}" y2="{ly}" stroke="{c}" stroke-width="2"/>'
            f'<text x="{w - right + 36}" y="{ly + 4}">{mode}</text>'
        )
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "debug", "ballast"))
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=200.0, help="requests/s per mode")
    ap.add_argument("--clients", type=int, default=4, help="connections per mode")
    ap.add_argument("--retries", action="store_true", help="add the on+retries mode")
    ap.add_argument("--svg", default=os.path.join(ROOT, "bench", "gray-failure.svg"))
    args = ap.parse_args()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"{args.binary}: not built (cargo build -p ballast)")

    modes = ["off", "on"] + (["on+retries"] if args.retries else [])
    procs = []
    tmp = tempfile.TemporaryDirectory(prefix="ballast-gray-")
    try:
        backends = []
        for i in range(5):
            port = free_port()
            cmd = [args.binary, "backend", "--bind", f"127.0.0.1:{port}", "--name", f"b{i}"]
            if i == 2:
                cmd += ["--fail-rate", "0.3"]
            procs.append(subprocess.Popen(cmd, stderr=subprocess.DEVNULL))
            backends.append(port)
        for p in backends:
            wait_port(p, 30.0)
        ballasts = {}
        for mode in modes:
            listen, admin = free_port(), free_port()
            d = os.path.join(tmp.name, mode)
            os.makedirs(d)
            path = os.path.join(d, "ballast.toml")
            with open(path, "w") as f:
                f.write(config(listen, admin, d, backends, MODES[mode]))
            log = open(os.path.join(d, "ballast.log"), "w")
            procs.append(
                subprocess.Popen(
                    [args.binary, "serve", "--config", path, "--workers", "1"],
                    stdout=log,
                    stderr=log,
                )
            )
            ballasts[mode] = (listen, admin, d)
        for listen, admin, _ in ballasts.values():
            wait_port(listen, 30.0)
            deadline = time.time() + 30
            while True:
                health = get_json(admin, "/api/v1/target-groups/web/health")
                if all(t["state"] == "healthy" for t in health["targets"]):
                    break
                if time.time() > deadline:
                    sys.exit(f"targets not healthy: {health}")
                time.sleep(0.2)

        start = time.monotonic()
        outcomes = {m: [] for m in modes}
        threads = []
        for mode, (listen, _, _) in ballasts.items():
            threads += load(listen, args.rate, args.clients, args.duration, start, outcomes[mode])
        for t in threads:
            t.join()

        buckets = int(args.duration // BUCKET)
        series = {}
        totals = {}
        for mode in modes:
            counts = [[0, 0] for _ in range(buckets)]
            for at, failed in outcomes[mode]:
                i = int(at // BUCKET)
                if i < buckets:
                    counts[i][0] += 1
                    counts[i][1] += failed
            series[mode] = [100.0 * f / n if n else 0.0 for n, f in counts]
            n = len(outcomes[mode])
            totals[mode] = (n, sum(f for _, f in outcomes[mode]))

        print(f"Client-visible 5xx share per {BUCKET:.0f} s, b2 of 5 failing 30% "
              f"({args.rate:.0f} req/s per mode, {args.binary})")
        print()
        header = "| t (s) | " + " | ".join(modes) + " |"
        print(header)
        print("|---" * (len(modes) + 1) + "|")
        for i in range(buckets):
            row = " | ".join(f"{series[m][i]:.2f}%" for m in modes)
            print(f"| {i * BUCKET:.0f}-{(i + 1) * BUCKET:.0f} | {row} |")
        row = " | ".join(f"{100.0 * totals[m][1] / max(1, totals[m][0]):.2f}% ({totals[m][1]}/{totals[m][0]})" for m in modes)
        print(f"| all | {row} |")
        if not args.retries:
            print("\n(on+retries: run with --retries once retries on 5xx are built)")

        on_admin = ballasts["on"][1]
        decisions = get_json(on_admin, "/api/v1/target-groups/web/anomalies")["decisions"]
        print(f"\n`on` explained {len(decisions)} decision(s):")
        for d in decisions:
            print(f"  {d['time']} {d['target']} {d['why']}: {d['explanation']}")
        svg(args.svg, series, args.duration)
        print(f"\nplot: {os.path.relpath(args.svg, ROOT)}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        tmp.cleanup()


if __name__ == "__main__":
    main()
