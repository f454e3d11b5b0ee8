#!/usr/bin/env python3
"""Load-shedding benchmark (issue 21 §2): one target whose capacity is bounded,
offered three times that capacity, behind three proxies in turn.

One `ballast backend --capacity C --latency L` on 127.0.0.1: at most C requests
served at once, each taking L; the rest wait in its FIFO queue, so its latency
grows with load. Capacity: C / L requests a second (8 / 20 ms = 400 req/s by
default). Then, one after the other, over the same backend:

  unloaded        ballast, no shedding, offered a quarter of the capacity: the
                  baseline p99 (the issue's bound is 2x this)
  ballast         ballast, no shedding, offered --load x capacity
  ballast+shed    ballast with load_shedding = { latency_target = T }
  haproxy         HAProxy with `maxconn C` on the server and a queue
                  (`timeout queue`): the static alternative

Each is loaded open loop (`ballast bench --rate`, latencies from each request's
intended start, so a queue shows) for --warmup (not measured: the shedding
controller starts at its max_limit and learns) then --duration. Prints a table
(goodput, share of capacity, p50/p99 of the 2xx answers, 503 share) and writes a
plot (--svg). The script stops exactly the processes it started.

Usage: bench/shedding.py [--binary target/release/ballast] [--capacity 8]
                         [--latency-ms 20] [--load 3] [--duration 15]
                         [--latency-target 25ms] [--svg bench/shedding.svg]
"""

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from ports import free_port, wait_port  # noqa: E402 (bench/ports.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get_json(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def ballast_conf(listen, admin, state, backend, extra):
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
targets = [{{ address = "127.0.0.1:{backend}" }}]
response_timeout = "60s"
{extra}
[target_groups.health_check]
interval = "1s"
timeout = "500ms"
healthy_threshold = 2
"""


def haproxy_conf(listen, backend, capacity, queue):
    return f"""
global
  nbthread 1
  maxconn 9900
defaults
  mode http
  timeout connect 3s
  timeout client 60s
  timeout server 60s
  timeout queue {queue}
  timeout http-keep-alive 60s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:{listen}
  default_backend be
backend be
  server b0 127.0.0.1:{backend} maxconn {capacity}
"""


def bench(binary, url, rate, seconds, warmup, connections):
    cmd = [
        binary, "bench", url, "--rate", str(rate), "-c", str(connections),
        "-d", f"{seconds}s", "--warmup", f"{warmup}s", "--threads", "1",
        "--timeout", "30s", "--json",
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def row(name, offered, doc, capacity):
    seconds = doc["duration_s"]
    status = doc["status"]
    total = doc["requests"] + sum(doc["errors"].values())
    ok = sum(n for code, n in status.items() if code.startswith("2"))
    unavailable = status.get("503", 0)
    goodput = ok / seconds
    return {
        "name": name,
        "offered": offered,
        "goodput": goodput,
        "share": goodput / capacity,
        "p50": doc["latency_ms_2xx"]["p50"],
        "p99": doc["latency_ms_2xx"]["p99"],
        "shed": unavailable / max(1, total),
        "errors": (total - ok - unavailable) / max(1, total),
        "late": doc.get("late", 0),
    }


def svg(path, rows, capacity, bound):
    """Two panels of bars: goodput (% of capacity) and p99 of the 2xx (log ms)."""
    import math

    w, h = 760, 330
    left, panel_w, gap, top, bar_h = 120, 270, 70, 50, 34
    colours = {"unloaded": "#7f7f7f", "ballast": "#d62728", "ballast+shed": "#1f77b4", "haproxy": "#2ca02c"}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14">One target of capacity {capacity:.0f} req/s offered 3x that: goodput and p99 of admitted requests</text>',
    ]
    x0 = left
    x1 = left + panel_w + gap
    parts.append(f'<text x="{x0}" y="{top - 8}">goodput, % of capacity</text>')
    parts.append(f'<text x="{x1}" y="{top - 8}">p99 of 2xx answers, ms (log)</text>')
    max_ms = max(max(r["p99"] for r in rows), bound) * 1.5
    lo_ms = 5.0

    def lx(v):
        v = max(v, lo_ms)
        return panel_w * (math.log10(v) - math.log10(lo_ms)) / (math.log10(max_ms) - math.log10(lo_ms))

    for i, r in enumerate(rows):
        y = top + i * (bar_h + 12)
        c = colours.get(r["name"], "black")
        parts.append(f'<text x="{left - 8}" y="{y + bar_h / 2 + 4}" text-anchor="end">{r["name"]}</text>')
        gw = panel_w * min(r["share"], 1.2) / 1.2
        parts.append(f'<rect x="{x0}" y="{y}" width="{gw:.1f}" height="{bar_h}" fill="{c}"/>')
        parts.append(f'<text x="{x0 + gw + 4:.1f}" y="{y + bar_h / 2 + 4}">{100 * r["share"]:.0f}%</text>')
        pw = lx(r["p99"])
        parts.append(f'<rect x="{x1}" y="{y}" width="{pw:.1f}" height="{bar_h}" fill="{c}"/>')
        parts.append(f'<text x="{x1 + pw + 4:.1f}" y="{y + bar_h / 2 + 4}">{r["p99"]:.0f}</text>')
    bottom = top + len(rows) * (bar_h + 12)
    # Guides: 90% of capacity, and 2x the unloaded p99.
    gx = x0 + panel_w * 0.9 / 1.2
    parts.append(f'<line x1="{gx:.1f}" y1="{top - 4}" x2="{gx:.1f}" y2="{bottom}" stroke="black" stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{gx:.1f}" y="{bottom + 14}" text-anchor="middle">90%</text>')
    bx = x1 + lx(bound)
    parts.append(f'<line x1="{bx:.1f}" y1="{top - 4}" x2="{bx:.1f}" y2="{bottom}" stroke="black" stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{bx:.1f}" y="{bottom + 14}" text-anchor="middle">2x unloaded p99</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "ballast"))
    ap.add_argument("--capacity", type=int, default=8, help="requests the backend serves at once")
    ap.add_argument("--latency-ms", type=float, default=20.0, help="each request's service time")
    ap.add_argument("--load", type=float, default=3.0, help="offered load, times the capacity")
    ap.add_argument("--duration", type=int, default=15, help="seconds measured per configuration")
    ap.add_argument("--warmup", type=int, default=3, help="seconds of load before measuring")
    ap.add_argument("--connections", type=int, default=1500,
                    help="enough for HAProxy's queue to fill for --queue at the offered rate")
    ap.add_argument("--latency-target", default="25ms", help="load_shedding latency_target")
    ap.add_argument("--queue", default="1s", help="HAProxy's timeout queue")
    ap.add_argument("--svg", default=os.path.join(ROOT, "bench", "shedding.svg"))
    args = ap.parse_args()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"{args.binary}: not built (cargo build --release -p ballast)")
    haproxy = shutil.which("haproxy")

    capacity = args.capacity * 1000.0 / args.latency_ms
    offered = round(capacity * args.load)
    procs = []
    tmp = tempfile.TemporaryDirectory(prefix="ballast-shed-")
    try:
        backend = free_port()
        procs.append(subprocess.Popen(
            [args.binary, "backend", "--bind", f"127.0.0.1:{backend}", "--name", "bounded",
             "--capacity", str(args.capacity), "--latency", f"{args.latency_ms:g}ms"],
            stderr=subprocess.DEVNULL))
        wait_port(backend, 30.0)

        def start_ballast(name, extra):
            listen, admin = free_port(), free_port()
            d = os.path.join(tmp.name, name)
            os.makedirs(d)
            path = os.path.join(d, "ballast.toml")
            with open(path, "w") as f:
                f.write(ballast_conf(listen, admin, d, backend, extra))
            log = open(os.path.join(d, "ballast.log"), "w")
            p = subprocess.Popen([args.binary, "serve", "--config", path, "--workers", "1"],
                                 stdout=log, stderr=log)
            procs.append(p)
            wait_port(listen, 30.0)
            deadline = time.time() + 30
            while get_json(admin, "/api/v1/target-groups/web/health")["targets"][0]["state"] != "healthy":
                if time.time() > deadline:
                    sys.exit("the target did not turn healthy")
                time.sleep(0.2)
            return p, listen, admin

        def stop(p):
            p.terminate()
            p.wait(timeout=10)
            time.sleep(2)  # the backend's queue drains before the next configuration

        rows = []
        plain, listen, _ = start_ballast("plain", "")
        url = f"http://127.0.0.1:{listen}/"
        quarter = round(capacity / 4)
        doc = bench(args.binary, url, quarter, args.duration, 1, 32)
        rows.append(row("unloaded", quarter, doc, capacity))
        doc = bench(args.binary, url, offered, args.duration, args.warmup, args.connections)
        rows.append(row("ballast", offered, doc, capacity))
        stop(plain)

        shed, listen, admin = start_ballast(
            "shed", f'load_shedding = {{ latency_target = "{args.latency_target}" }}\n')
        doc = bench(args.binary, f"http://127.0.0.1:{listen}/", offered, args.duration,
                    args.warmup, args.connections)
        rows.append(row("ballast+shed", offered, doc, capacity))
        group = get_json(admin, "/api/v1/target-groups/web")
        stop(shed)

        if haproxy:
            listen = free_port()
            conf = os.path.join(tmp.name, "haproxy.cfg")
            with open(conf, "w") as f:
                f.write(haproxy_conf(listen, backend, args.capacity, args.queue))
            p = subprocess.Popen([haproxy, "-f", conf, "-db"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            procs.append(p)
            wait_port(listen, 30.0)
            doc = bench(args.binary, f"http://127.0.0.1:{listen}/", offered, args.duration,
                        args.warmup, args.connections)
            rows.append(row("haproxy", offered, doc, capacity))
            stop(p)

        bound = 2 * rows[0]["p99"]
        print(f"One target, capacity {args.capacity} at once x {args.latency_ms:g} ms = "
              f"{capacity:.0f} req/s, offered {offered} req/s open loop for {args.duration} s "
              f"after {args.warmup} s ({args.binary}); shedding latency_target = "
              f"{args.latency_target}; HAProxy maxconn {args.capacity}, timeout queue {args.queue}")
        print()
        print("| configuration | offered req/s | goodput req/s | share of capacity | "
              "p50 of 2xx (ms) | p99 of 2xx (ms) | 503 share | other errors |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['name']} | {r['offered']} | {r['goodput']:.0f} | {100 * r['share']:.1f}% | "
                  f"{r['p50']:.1f} | {r['p99']:.1f} | {100 * r['shed']:.1f}% | "
                  f"{100 * r['errors']:.1f}% |")
        s = next(r for r in rows if r["name"] == "ballast+shed")
        print()
        print(f"targets (issue 21): shedding goodput >= 90% of capacity: "
              f"{100 * s['share']:.1f}% {'met' if s['share'] >= 0.9 else 'NOT met'}; "
              f"p99 of admitted <= 2x unloaded p99 ({bound:.1f} ms): {s['p99']:.1f} ms "
              f"{'met' if s['p99'] <= bound else 'NOT met'}")
        print(f"load_shedding at the end: {json.dumps(group.get('load_shedding'))}")
        if not haproxy:
            print("(haproxy not installed: apt-get install -y haproxy)")
        svg(args.svg, rows, capacity, bound)
        print(f"\nplot: {os.path.relpath(args.svg, ROOT)}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        tmp.cleanup()


if __name__ == "__main__":
    main()
