#!/usr/bin/env python3
"""Peer benchmark: ballast, HAProxy and NGINX side by side, in one run.

Every proxy is pinned to the same core (`--proxy-core`), the backends and the load
generators to the other (`--load-core`). Four nginx backends (one worker each) serve a
small body at `/` and a 16 KiB body at `/16k`; each proxy balances round robin over
the four with keep-alive pooling to them and no access log. Runs are interleaved
(A B C A B C ...) and medians reported. Each proxy's own CPU time during a run is read
from /proc, so requests/s per proxy core can be compared even when the load
generator's core saturates first. Where `perf` can read the hardware counters, the
cycles and instructions each proxy spent per request during each run are counted
too: cycles count only while the proxy runs, so they compare per-core cost without
the time this shared VM's host takes from the guest, which /proc books to whatever
process was running. The script stops exactly the processes it started.

Usage: bench/run.sh [--reps 3] [--duration 5] [--only ballast,haproxy] [--write]
"""

import argparse
import datetime
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
import time

from ports import free_port, wait_port  # noqa: E402 (bench/ports.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


class Procs:
    """The processes this run started; all are stopped at exit."""

    def __init__(self):
        self.procs = []

    def start(self, cmd, core, **kw):
        p = subprocess.Popen(["taskset", "-c", str(core)] + cmd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def tree(pid):
    """pid and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def cpu_seconds(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            pass
    return total / TICK


def rss_kib(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


# ---------------------------------------------------------------- configs

def nginx_backend_conf(work, port, i):
    root = os.path.join(work, "www")
    return f"""
worker_processes 1; daemon off; pid {work}/backend{i}.pid; error_log {work}/backend{i}.err;
worker_rlimit_nofile 20000;
events {{ worker_connections 19000; }}
http {{ access_log off; keepalive_requests 10000000; keepalive_timeout 300s;
  server {{ listen 127.0.0.1:{port} reuseport backlog=4096; root {root};
    location = / {{ return 200 "hello\\n"; }}
    location = /healthz {{ return 200 "ok\\n"; }}
    location = /16k {{ default_type application/octet-stream; }}
  }}
}}
"""


def ballast_conf(port, backends, state, group_extra="", listener_extra="", top_extra=""):
    targets = ", ".join(f'{{ address = "127.0.0.1:{b}" }}' for b in backends)
    # The admin API on a port of its own: two builds may run side by side.
    return f"""
[admin]
bind = "127.0.0.1:0"
[state]
dir = "{state}"
[access_log]
path = "off"
{top_extra}
[[listeners]]
name = "bench"
bind = "127.0.0.1:{port}"
default_action = {{ type = "forward", target_group = "backends" }}
{listener_extra}
[[target_groups]]
name = "backends"
algorithm = "round_robin"
targets = [{targets}]
{group_extra}
[target_groups.health_check]
interval = "5s"
"""


def haproxy_conf(port, h2port, backends):
    servers = "\n".join(f"  server b{i} 127.0.0.1:{b} check inter 5s" for i, b in enumerate(backends))
    return f"""
global
  nbthread 1
  maxconn 9900
defaults
  mode http
  timeout connect 3s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:{port} defer-accept
  bind 127.0.0.1:{h2port} proto h2 defer-accept
  option forwardfor
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Port %[dst_port]
  unique-id-format %[uuid()]
  unique-id-header X-Request-Id
  default_backend be
backend be
  balance roundrobin
{servers}
"""


def nginx_proxy_conf(work, port, h2port, backends):
    servers = "\n".join(f"    server 127.0.0.1:{b};" for b in backends)
    return f"""
worker_processes 1; daemon off; pid {work}/proxy.pid; error_log {work}/proxy.err;
worker_rlimit_nofile 20000;
events {{ worker_connections 19000; }}
http {{ access_log off; keepalive_requests 10000000; keepalive_timeout 75s;
  upstream be {{
{servers}
    keepalive 256;
  }}
  server {{ listen 127.0.0.1:{port} backlog=4096 deferred; listen 127.0.0.1:{h2port} http2 deferred;
    location / {{ proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Request-Id $request_id; }}
  }}
}}
"""


# ---------------------------------------------------------------- load

def perf_works():
    """Whether `perf stat` can count this machine's cycles and instructions."""
    try:
        out = subprocess.run(["perf", "stat", "-x,", "-e", "cycles,instructions", "--", "true"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and all(
        re.search(rf"^\d+,[^,]*,{e}", out.stderr, re.M) for e in ("cycles", "instructions"))


class Counters:
    """perf stat on one process for `secs` seconds, started `delay` seconds from now."""

    def __init__(self, pid, secs, delay, work):
        self.out = os.path.join(work, f"perf.{pid}.{time.time_ns()}")
        # NGINX serves from a worker process: count the whole process tree.
        pids = ",".join(str(p) for p in tree(pid))
        cmd = (f"sleep {delay}; exec perf stat -x, -e cycles,instructions -p {pids} "
               f"-o {self.out} -- sleep {secs}")
        self.proc = subprocess.Popen(["sh", "-c", cmd], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def per_request(self, requests):
        """(cycles, instructions) per request, or (None, None)."""
        self.proc.wait()
        found = {}
        try:
            for line in open(self.out):
                f = line.strip().split(",")
                if len(f) > 2 and f[0].isdigit():
                    found[f[2].split(":")[0]] = int(f[0])
        except OSError:
            pass
        if not requests or "cycles" not in found or "instructions" not in found:
            return None, None
        return found["cycles"] / requests, found["instructions"] / requests


def wrk(url, conns, secs, core, extra=()):
    out = subprocess.run(["taskset", "-c", str(core), "wrk", "-t1", f"-c{conns}", f"-d{secs}s",
                          "--latency", *extra, url], capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return None
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {"rps": rps, "p50": pct(50), "p99": pct(99), "non2xx": int(errors.group(1)) if errors else 0,
            "requests": int(total.group(1)) if total else None}


def load(sc, port, h2port, secs, core):
    """Run scenario `sc`'s load generator against a proxy for `secs` seconds."""
    url = f"http://127.0.0.1:{port}/"
    if sc == "small50":
        return wrk(url, 50, secs, core)
    if sc == "small1000":
        return wrk(url, 1000, secs, core)
    if sc == "16k":
        return wrk(url + "16k", 50, secs, core)
    if sc == "newconn":
        return wrk(url, 50, secs, core, ["-H", "Connection: close"])
    if sc == "h2":
        return h2load(f"http://127.0.0.1:{h2port}/", 50, secs, core)
    sys.exit(f"unknown scenario {sc}")


def h2load(url, conns, secs, core):
    out = subprocess.run(["taskset", "-c", str(core), "h2load", "-c", str(conns), "-m", "10",
                          "-D", str(secs), "--warm-up-time=1", url],
                         capture_output=True, text=True).stdout
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    v = None
    if mean:
        v = float(mean.group(1))
        v = v / 1000 if mean.group(2) == "us" else v * 1000 if mean.group(2) == "s" else v
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done", out)
    return {"rps": float(m.group(1)) if m else 0.0, "p50": None, "p99": None, "mean": v, "non2xx": 0,
            "requests": int(done.group(1)) if done else None}


def idle_connections(port, n):
    """Open n keep-alive connections, one request each, and leave them idle.

    Each response is read before the next connection opens: with all n requests
    in flight at once, each proxy would also open (and pool) about as many
    connections to the backends, and the figure would be theirs as much as the
    idle clients'."""
    socks = []
    req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(10)
        s.sendall(req)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("connection closed during the idle test")
            data += chunk
        socks.append(s)
    return socks


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--only", default="ballast,haproxy,nginx")
    ap.add_argument("--proxy-core", type=int, default=0)
    ap.add_argument("--load-core", type=int, default=1)
    # 10,000 would need an open-file limit above 20,000 for HAProxy (two descriptors
    # per connection); this workplace's hard limit is 20,000 and cannot be raised.
    ap.add_argument("--idle", type=int, default=9000)
    ap.add_argument("--scenarios", default="small50,small1000,16k,newconn,h2,idle")
    ap.add_argument("--paired", type=int, default=5,
                    help="repetitions of each scenario with ballast and a peer loaded at once (0: none)")
    ap.add_argument("--baseline", metavar="BINARY",
                    help="another ballast binary (an earlier commit's release build) run as the peer "
                         "named `baseline`: `--only ballast,baseline` pairs the two builds at the same "
                         "moment, so the ratio is the cost of what changed between them")
    ap.add_argument("--group-extra", default="", metavar="TOML",
                    help="lines added to the target group of `ballast` (not of `baseline`), e.g. "
                         "'slow_start = \"30s\"': with --baseline set to the same binary, the "
                         "pairing measures what configured-but-idle features cost")
    ap.add_argument("--listener-extra", default="", metavar="TOML",
                    help="lines added to the listener of `ballast` (not of `baseline`), e.g. "
                         "'allow = [\"127.0.0.0/8\"]'")
    ap.add_argument("--top-extra", default="", metavar="TOML",
                    help="top-level tables added to the config of `ballast` (not of `baseline`), "
                         "e.g. a [[rate_limits]] table the listener's rate_limits name")
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    ap.add_argument("--no-counters", action="store_true", help="do not count cycles with perf")
    args = ap.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.idle + 1000:
        sys.exit(f"open-file limit {hard} is too low for --idle {args.idle}")
    proxies = args.only.split(",")
    scenarios = args.scenarios.split(",")
    pc, lc = args.proxy_core, args.load_core
    counting = not args.no_counters and perf_works()
    if not counting:
        print("perf cannot count cycles here: no cycles per request", file=sys.stderr)

    work = tempfile.mkdtemp(prefix="ballast-bench-")
    os.makedirs(os.path.join(work, "www"))
    with open(os.path.join(work, "www", "16k"), "wb") as f:
        f.write(b"x" * 16384)
    procs = Procs()
    try:
        backends = []
        for i in range(4):
            port = free_port()
            conf = os.path.join(work, f"backend{i}.conf")
            open(conf, "w").write(nginx_backend_conf(work, port, i))
            procs.start(["nginx", "-c", conf], lc)
            backends.append(port)
        for b in backends:
            wait_port(b)

        started = {}
        for name in proxies:
            port, h2port = free_port(), free_port()
            if name in ("ballast", "baseline"):
                if name == "baseline" and not args.baseline:
                    sys.exit("--only baseline needs --baseline BINARY")
                binary = args.baseline if name == "baseline" else os.path.join(ROOT, "target/release/ballast")
                conf = os.path.join(work, f"{name}.toml")
                mine = name == "ballast"
                open(conf, "w").write(ballast_conf(
                    port, backends, os.path.join(work, f"{name}-state"),
                    args.group_extra if mine else "",
                    args.listener_extra if mine else "",
                    args.top_extra if mine else ""))
                p = procs.start([binary, "serve", "--config", conf],
                                pc, env=dict(os.environ, RUST_LOG="warn"))
                h2port = port  # h2c prior knowledge on the same port
            elif name == "haproxy":
                conf = os.path.join(work, "haproxy.cfg")
                open(conf, "w").write(haproxy_conf(port, h2port, backends))
                p = procs.start(["haproxy", "-f", conf, "-db"], pc)
            elif name == "nginx":
                conf = os.path.join(work, "proxy.conf")
                open(conf, "w").write(nginx_proxy_conf(work, port, h2port, backends))
                p = procs.start(["nginx", "-c", conf], pc)
            else:
                sys.exit(f"unknown proxy {name}")
            wait_port(port)
            started[name] = (p, port, h2port)
        time.sleep(1)  # health checks settle

        # Idle memory first, while every proxy is fresh: after the load scenarios,
        # pools and allocator caches warmed by 1,000 connections would hide the cost.
        idle = {}
        if "idle" in scenarios:
            for name in proxies:
                p, port, _ = started[name]
                base = rss_kib(p.pid)
                socks = idle_connections(port, args.idle)
                time.sleep(1)
                grown = rss_kib(p.pid) - base
                idle[name] = grown * 1024 / args.idle
                for s in socks:
                    s.close()
                print(f"idle {name:8} {idle[name]:.0f} bytes/conn", file=sys.stderr)
                time.sleep(2)

        runs = {}  # (scenario, proxy) -> list of results
        plan = []
        for sc in scenarios:
            if sc == "idle":
                continue
            targets = list(proxies) + (["direct"] if sc == "small50" else [])
            plan.append((sc, targets))
        for rep in range(args.reps):
            for sc, targets in plan:
                # Each repetition starts with the next proxy, so that none always
                # runs first (just after another scenario) or last.
                k = rep % len(proxies)
                order = targets[k:len(proxies)] + targets[:k] + targets[len(proxies):]
                for name in order:
                    if name == "direct":
                        pid, port, h2port = None, backends[0], None
                    else:
                        p, port, h2port = started[name]
                        pid = p.pid
                    url = f"http://127.0.0.1:{port}/"
                    before = cpu_seconds(pid) if pid else 0.0
                    # Counted over the measured seconds (h2load warms up for one first).
                    counters = None
                    if counting and pid:
                        counters = Counters(pid, args.duration, 1 if sc == "h2" else 0, work)
                    t0 = time.time()
                    r = load(sc, port, h2port, args.duration, lc)
                    elapsed = time.time() - t0
                    r["cpu"] = (cpu_seconds(pid) - before) / elapsed if pid else None
                    r["cycles"], r["instructions"] = (
                        counters.per_request(r["requests"]) if counters else (None, None))
                    runs.setdefault((sc, name), []).append(r)
                    print(f"rep {rep + 1} {sc:10} {name:8} {r['rps']:>10.0f} req/s"
                          f"  cpu {r['cpu'] or 0:.2f}  cycles/req {fmt(r['cycles'], ',.0f')}",
                          file=sys.stderr)

        # Paired: ballast and one peer on the proxy core at the same moment, each
        # under its own load generator, so that both see the same host. Each one's
        # requests per CPU-second of its own; the ratio of the two.
        same_moment = {}  # (scenario, peer) -> list of ratios
        peers = [n for n in proxies if n != "ballast"] if "ballast" in proxies else []
        for rep in range(args.paired if peers else 0):
            for sc, _ in plan:
                for peer in peers:
                    pair = [started["ballast"], started[peer]]
                    before = [cpu_seconds(p.pid) for p, _, _ in pair]
                    with ThreadPoolExecutor(2) as ex:
                        jobs = [ex.submit(load, sc, port, h2port, args.duration, lc)
                                for _, port, h2port in pair]
                        results = [j.result() for j in jobs]
                    used = [cpu_seconds(p.pid) - b for (p, _, _), b in zip(pair, before)]
                    done = [r["requests"] for r in results]
                    if all(used) and all(done):
                        ratio = (done[0] / used[0]) / (done[1] / used[1])
                        same_moment.setdefault((sc, peer), []).append(ratio)
                        print(f"pair {rep + 1} {sc:10} ballast/{peer:8} {ratio:.2f}"
                              f"  ({done[0] / used[0]:,.0f} and {done[1] / used[1]:,.0f}"
                              f" req per CPU-second)", file=sys.stderr)

        table = render(runs, idle, plan, proxies, args, same_moment)
        print(table)
        if args.write:
            write_benchmarks(table)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec):
    return "—" if x is None else format(x, spec)


def render(runs, idle, plan, proxies, args, same_moment):
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    lines = [
        f"Run {datetime.date.today()} on {os.cpu_count()} cores, commit {commit}; "
        f"proxies pinned to core {args.proxy_core}, backends and load on core {args.load_core}; "
        f"{args.reps} interleaved repetitions of {args.duration}s, medians. The last column is "
        f"the median over repetitions of each repetition's own ratio (runs seconds apart), "
        f"which this VM's drifting speed disturbs least.",
        "",
        "| scenario | proxy | req/s | p50 ms | p99 ms | proxy CPU (cores) | req/s per proxy core | vs HAProxy (per core) | vs HAProxy, per repetition |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = {"small50": "small, 50 conns", "small1000": "small, 1000 conns", "16k": "16 KiB, 50 conns",
             "newconn": "new connection per request", "h2": "HTTP/2 (h2load -c50 -m10)"}
    for sc, targets in plan:
        per_core = {}
        for name in targets:
            rs = runs[(sc, name)]
            rps, cpu = med([r["rps"] for r in rs]), med([r["cpu"] for r in rs])
            per_core[name] = rps / cpu if cpu else None
        for name in targets:
            rs = runs[(sc, name)]
            rps, cpu = med([r["rps"] for r in rs]), med([r["cpu"] for r in rs])
            p50 = med([r["p50"] for r in rs])
            p99 = med([r["p99"] for r in rs])
            if sc == "h2":
                p50 = med([r.get("mean") for r in rs])  # h2load gives a mean, shown as p50
            ratio = None
            if per_core.get(name) and per_core.get("haproxy"):
                ratio = per_core[name] / per_core["haproxy"]
            paired = None
            if name != "direct" and "haproxy" in targets:
                pairs = [(a["rps"] / a["cpu"]) / (b["rps"] / b["cpu"])
                         for a, b in zip(rs, runs[(sc, "haproxy")]) if a["cpu"] and b["cpu"]]
                paired = med(pairs)
            label = "direct to one backend" if name == "direct" else name
            lines.append(f"| {names[sc]} | {label} | {rps:,.0f} | {fmt(p50, '.2f')} | {fmt(p99, '.2f')} "
                         f"| {fmt(cpu, '.2f')} | {fmt(per_core.get(name), ',.0f')} | {fmt(ratio, '.2f')} "
                         f"| {fmt(paired, '.2f')} |")
        if "direct" in targets:
            d = med([r["rps"] for r in runs[(sc, "direct")]])
            for name in proxies:
                rps = med([r["rps"] for r in runs[(sc, name)]])
                lines.append(f"|  | {name} / direct | {rps / d:.2f} |  |  |  |  |  |  |")
    if any(r.get("cycles") for rs in runs.values() for r in rs):
        lines += ["", "The proxy's own cycles and instructions per request (`perf stat` on its process "
                  "during each run, medians); the last column is the median over repetitions of "
                  "HAProxy's cycles per request divided by the proxy's, so above 1 means fewer "
                  "cycles than HAProxy for the same work. Instructions repeat from run to run; "
                  "cycles, the kernel's above all, move with the host's load:", "",
                  "| scenario | proxy | cycles per request | instructions per request "
                  "| per-core speed vs HAProxy, by cycles |", "|---|---|---:|---:|---:|"]
        for sc, targets in plan:
            for name in targets:
                if name == "direct":
                    continue
                rs = runs[(sc, name)]
                speed = None
                if "haproxy" in targets:
                    speed = med([b["cycles"] / a["cycles"] for a, b in zip(rs, runs[(sc, "haproxy")])
                                 if a.get("cycles") and b.get("cycles")])
                lines.append(f"| {names[sc]} | {name} | {fmt(med([r['cycles'] for r in rs]), ',.0f')} "
                             f"| {fmt(med([r['instructions'] for r in rs]), ',.0f')} "
                             f"| {fmt(speed, '.2f')} |")
    if same_moment:
        peers = sorted({peer for _, peer in same_moment})
        lines += ["", f"Paired at the same moment ({args.paired} repetitions of {args.duration}s): "
                  "ballast and one peer pinned to the same core and loaded at once, each by its "
                  "own load generator, so that both run on the same host at the same time. "
                  "Requests per CPU-second of ballast's own divided by the peer's; median, and "
                  "the lowest and highest repetition:", "",
                  "| scenario | " + " | ".join(f"ballast vs {p}" for p in peers) + " |",
                  "|---|" + "---:|" * len(peers)]
        for sc, _ in plan:
            cells = []
            for peer in peers:
                rs = same_moment.get((sc, peer), [])
                cells.append(f"**{med(rs):.2f}** ({min(rs):.2f}–{max(rs):.2f})" if rs else "—")
            lines.append(f"| {names[sc]} | " + " | ".join(cells) + " |")
    if idle:
        lines += ["", f"Memory per idle keep-alive client connection ({args.idle} connections):", "",
                  "| proxy | bytes per connection | vs HAProxy |", "|---|---:|---:|"]
        for name, b in idle.items():
            r = b / idle["haproxy"] if idle.get("haproxy") else None
            lines.append(f"| {name} | {b:,.0f} | {fmt(r, '.2f')} |")
    lines += ["", "HTTP/2: h2load reports a mean, not percentiles; it is shown in the p50 column."]
    return "\n".join(lines)


def write_benchmarks(table):
    """Replace the table between the markers; the prose around it stays."""
    path = os.path.join(ROOT, "BENCHMARKS.md")
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\n<!-- table -->\n<!-- /table -->\n"
    head, rest = text.split("<!-- table -->", 1)
    tail = rest.split("<!-- /table -->", 1)[1] if "<!-- /table -->" in rest else "\n"
    with open(path, "w") as f:
        f.write(head + "<!-- table -->\n" + table + "\n<!-- /table -->" + tail)


if __name__ == "__main__":
    main()
