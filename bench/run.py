#!/usr/bin/env python3
"""Peer benchmark: ballast, HAProxy and NGINX side by side, in one run.

Every proxy is pinned to the same core (`--proxy-core`), the backends and the load
generators to the other (`--load-core`). Four nginx backends (one worker each) serve a
small body at `/` and a 16 KiB body at `/16k`; each proxy balances round robin over
the four with keep-alive pooling to them. Each proxy runs twice (`--logs off,on`): as
`NAME` with no access log and as `NAME+log` logging every request to a file, and each
serves plain HTTP, h2c and HTTPS (one ECDSA P-256 certificate for all). Runs are
interleaved (A B C A B C ...) and medians reported; ratios compare variants with the
same logging (ballast+log against haproxy+log). Each proxy's own CPU time during a run
is read from /proc, so requests/s per proxy core can be compared even when the load
generator's core saturates first. Where `perf` can read the hardware counters, the
cycles and instructions each proxy spent per request during each run are counted
too: cycles count only while the proxy runs, so they compare per-core cost without
the time this shared VM's host takes from the guest, which /proc books to whatever
process was running. The script stops exactly the processes it started.

Usage: bench/run.sh [--reps 3] [--duration 5] [--only ballast,haproxy] [--logs off,on]
                    [--scenarios small50,tls-h2,...] [--paired 5] [--write]
"""

import argparse
import ctypes
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
import time

import peers  # bench/peers.py: the configs and the TLS pieces
from table import SCENARIOS, fmt, render, write_benchmarks  # bench/table.py
from ports import free_port, wait_port  # bench/ports.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


class Procs:
    """The processes this run started; all are stopped at exit."""

    def __init__(self):
        self.procs = []

    def start(self, cmd, core, stdout=None, **kw):
        """`stdout`: a file to append the process's output to (HAProxy's log)."""
        out = open(stdout, "ab") if stdout else subprocess.DEVNULL
        p = subprocess.Popen(["taskset", "-c", str(core)] + cmd, stdout=out,
                             stderr=subprocess.DEVNULL, start_new_session=True, **kw)
        if stdout:
            out.close()
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


def wrk(url, conns, secs, core, extra=(), preload=None):
    env = dict(os.environ, LD_PRELOAD=preload) if preload else None
    out = subprocess.run(["taskset", "-c", str(core), "wrk", "-t1", f"-c{conns}", f"-d{secs}s",
                          "--latency", *extra, url], capture_output=True, text=True, env=env,
                         timeout=secs + 60).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not found:
        raise RuntimeError(f"wrk {url} gave no rate:\n{out}")
    rps = float(found.group(1))

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


NO_RESUME = None  # the shim that makes wrk do full handshakes (peers.build_no_resume)


def load(sc, ports, secs, core):
    """Run scenario `sc`'s load generator against a proxy for `secs` seconds."""
    url = f"http://127.0.0.1:{ports['http']}/"
    # The certificate's name: the client sends it as SNI (rustls refuses an address).
    tls = f"https://localhost:{ports.get('tls')}/"
    if sc == "small50":
        return wrk(url, 50, secs, core)
    if sc == "small1000":
        return wrk(url, 1000, secs, core)
    if sc == "16k":
        return wrk(url + "16k", 50, secs, core)
    if sc == "newconn":
        return wrk(url, 50, secs, core, ["-H", "Connection: close"])
    if sc == "h2":
        return h2load(f"http://127.0.0.1:{ports['h2']}/", 50, secs, core)
    if sc == "tls-small50":
        return wrk(tls, 50, secs, core)
    if sc == "tls-16k":
        return wrk(tls + "16k", 50, secs, core)
    if sc == "tls-resumed":
        # wrk keeps the session when it closes a connection: the next one resumes it.
        return wrk(tls, 50, secs, core, ["-H", "Connection: close"])
    if sc == "tls-newconn":
        return wrk(tls, 50, secs, core, ["-H", "Connection: close"], preload=NO_RESUME)
    if sc == "tls-h2":
        return h2load(tls, 50, secs, core)
    sys.exit(f"unknown scenario {sc}")


def h2load(url, conns, secs, core):
    out = subprocess.run(["taskset", "-c", str(core), "h2load", "-c", str(conns), "-m", "10",
                          "-D", str(secs), "--warm-up-time=1", url],
                         capture_output=True, text=True, timeout=secs + 60).stdout
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    v = None
    if mean:
        v = float(mean.group(1))
        v = v / 1000 if mean.group(2) == "us" else v * 1000 if mean.group(2) == "s" else v
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    non2xx = sum(int(c) for c in codes.groups()[1:]) if codes else 0
    rps = float(m.group(1)) if m else 0.0
    # Requests in the uncounted warm-up second, estimated at the measured rate (the
    # access logs' check compares lines with requests served).
    return {"rps": rps, "p50": None, "p99": None, "mean": v, "non2xx": non2xx, "warmup": int(rps),
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

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
PUNCH_HOLE = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE


class LogLines:
    """The lines written to each access log so far, counted after every run. What
    has been counted is punched out of the file (its blocks freed, its size kept, so
    the proxy goes on appending): a full run would otherwise leave over 10 GB."""

    def __init__(self):
        self.seen = {}  # path -> (bytes counted, lines)

    def count(self, path):
        offset, lines = self.seen.get(path, (0, 0))
        try:
            with open(path, "r+b") as f:
                f.seek(offset)
                while chunk := f.read(1 << 24):
                    offset += len(chunk)
                    lines += chunk.count(b"\n")
                LIBC.fallocate(f.fileno(), PUNCH_HOLE, 0, offset // 4096 * 4096)  # best effort
        except OSError:
            pass
        self.seen[path] = (offset, lines)
        return lines


def start_proxies(procs, args, proxies, logs, backends, work, cert):
    """Each proxy once per log variant (`haproxy`, `haproxy+log`), each on ports of its
    own: name -> (process, ports, log file or None)."""
    started = {}
    for log in logs:
        for base in proxies:
            name = base + ("+log" if log == "on" else "")
            ports = {"http": free_port(), "h2": free_port(), "tls": free_port(), "admin": free_port()}
            logfile = os.path.join(work, f"{name}.log") if log == "on" else None
            stdout = None
            if base in ("ballast", "baseline"):
                if base == "baseline" and not args.baseline:
                    sys.exit("--only baseline needs --baseline BINARY")
                binary = args.baseline if base == "baseline" else os.path.join(ROOT, "target/release/ballast")
                conf = os.path.join(work, f"{name}.toml")
                mine = base == "ballast"
                open(conf, "w").write(peers.ballast_conf(
                    ports, backends, os.path.join(work, f"{name}-state"), cert and cert[:2], logfile,
                    args.group_extra if mine else "", args.listener_extra if mine else "",
                    args.top_extra if mine else ""))
                cmd, env = [binary, "serve", "--config", conf], dict(os.environ, RUST_LOG="warn")
                ports["h2"] = ports["http"]  # h2c prior knowledge on the same port
            elif base == "haproxy":
                conf = os.path.join(work, f"{name}.cfg")
                open(conf, "w").write(peers.haproxy_conf(ports, backends, cert and cert[2], logfile))
                cmd, env, stdout = ["haproxy", "-f", conf, "-db"], None, logfile
            elif base == "nginx":
                conf = os.path.join(work, f"{name}.conf")
                open(conf, "w").write(peers.nginx_proxy_conf(work, name.replace("+", "-"), ports,
                                                             backends, cert and cert[:2], logfile))
                cmd, env = ["nginx", "-c", conf], None
            else:
                sys.exit(f"unknown proxy {base}")
            p = procs.start(cmd, args.proxy_core, stdout=stdout, env=env)
            started[name] = (p, ports, logfile)
    for name, (_, ports, _) in started.items():
        for key in ("http", "h2", "tls") if cert else ("http", "h2"):
            wait_port(ports[key])
    return started


def main():
    global NO_RESUME
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--only", default="ballast,haproxy,nginx")
    ap.add_argument("--logs", default="off,on",
                    help="access log variants: off (none), on (every request to a file: `NAME+log`)")
    ap.add_argument("--proxy-core", type=int, default=0)
    ap.add_argument("--load-core", type=int, default=1)
    # 10,000 would need an open-file limit above 20,000 for HAProxy (two descriptors
    # per connection); this workplace's hard limit is 20,000 and cannot be raised.
    ap.add_argument("--idle", type=int, default=9000)
    ap.add_argument("--scenarios", default="small50,small1000,16k,newconn,h2,tls-small50,tls-16k,"
                                           "tls-newconn,tls-resumed,tls-h2,idle")
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
                    help="lines added to the listeners of `ballast` (not of `baseline`), e.g. "
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
    logs = args.logs.split(",")
    if not logs or any(x not in ("off", "on") for x in logs):
        sys.exit("--logs takes off, on or off,on")
    scenarios = args.scenarios.split(",")
    for sc in scenarios:
        if sc != "idle" and sc not in SCENARIOS:
            sys.exit(f"unknown scenario {sc}")
    lc = args.load_core
    counting = not args.no_counters and perf_works()
    if not counting:
        print("perf cannot count cycles here: no cycles per request", file=sys.stderr)

    work = tempfile.mkdtemp(prefix="ballast-bench-")
    # mkdtemp makes it 0700: started as root, nginx's workers run as `nobody` and
    # would answer 403 for /16k (a 153-byte error page instead of 16 KiB).
    os.chmod(work, 0o755)
    os.makedirs(os.path.join(work, "www"))
    with open(os.path.join(work, "www", "16k"), "wb") as f:
        f.write(b"x" * 16384)
    procs = Procs()
    try:
        backends = []
        for i in range(4):
            port = free_port()
            conf = os.path.join(work, f"backend{i}.conf")
            open(conf, "w").write(peers.nginx_backend_conf(work, port, i))
            procs.start(["nginx", "-c", conf], lc)
            backends.append(port)
        for b in backends:
            wait_port(b)

        tls = any(sc.startswith("tls-") for sc in scenarios)
        cert = peers.make_cert(work) if tls else None
        if "tls-newconn" in scenarios:
            NO_RESUME = peers.build_no_resume(work)
        started = start_proxies(procs, args, proxies, logs, backends, work, cert)
        variants = list(started)
        time.sleep(1)  # health checks settle
        args.tls_info = {}
        if tls:
            for name in proxies:
                port = started[name + ("+log" if logs[0] == "on" else "")][1]["tls"]
                args.tls_info[name] = (f"{peers.negotiated(port)}, "
                                       f"{'resumes' if peers.resumes(port) else 'does NOT resume'}")
                print(f"tls {name:8} {args.tls_info[name]}", file=sys.stderr)
        served = dict.fromkeys(variants, 0)  # requests the load generators counted
        loglines = LogLines()

        # Idle memory first, while every proxy is fresh: after the load scenarios,
        # pools and allocator caches warmed by 1,000 connections would hide the cost.
        # The proxies of the first log variant only: the access log does not change it.
        idle = {}
        if "idle" in scenarios and args.idle:
            for name in variants[:len(proxies)]:
                p, ports, _ = started[name]
                base = rss_kib(p.pid)
                socks = idle_connections(ports["http"], args.idle)
                time.sleep(1)
                grown = rss_kib(p.pid) - base
                idle[name] = grown * 1024 / args.idle
                served[name] += args.idle
                for s in socks:
                    s.close()
                print(f"idle {name:12} {idle[name]:.0f} bytes/conn", file=sys.stderr)
                time.sleep(2)

        runs = {}  # (scenario, variant) -> list of results
        plan = []
        for sc in scenarios:
            if sc == "idle":
                continue
            targets = variants + (["direct"] if sc == "small50" else [])
            plan.append((sc, targets))
        for rep in range(args.reps):
            for sc, targets in plan:
                # Each repetition starts with the next proxy, so that none always
                # runs first (just after another scenario) or last.
                k = rep % len(variants)
                order = targets[k:len(variants)] + targets[:k] + targets[len(variants):]
                for name in order:
                    if name == "direct":
                        pid, ports = None, {"http": backends[0]}
                    else:
                        p, ports, _ = started[name]
                        pid = p.pid
                    before = cpu_seconds(pid) if pid else 0.0
                    # Counted over the measured seconds (h2load warms up for one first).
                    counters = None
                    if counting and pid:
                        counters = Counters(pid, args.duration, 1 if sc.endswith("h2") else 0, work)
                    t0 = time.time()
                    r = load(sc, ports, args.duration, lc)
                    elapsed = time.time() - t0
                    r["cpu"] = (cpu_seconds(pid) - before) / elapsed if pid else None
                    r["cycles"], r["instructions"] = (
                        counters.per_request(r["requests"]) if counters else (None, None))
                    runs.setdefault((sc, name), []).append(r)
                    if name != "direct" and started[name][2]:
                        loglines.count(started[name][2])
                    if name != "direct":
                        served[name] += (r["requests"] or 0) + r.get("warmup", 0)
                    print(f"rep {rep + 1} {sc:12} {name:12} {r['rps']:>10.0f} req/s"
                          f"  cpu {r['cpu'] or 0:.2f}  cycles/req {fmt(r['cycles'], ',.0f')}"
                          + (f"  NON-2xx RESPONSES: {r['non2xx']:,}" if r["non2xx"] else ""),
                          file=sys.stderr)

        # Paired: ballast and one peer with the same logging on the proxy core at the
        # same moment, each under its own load generator, so that both see the same
        # host. Each one's requests per CPU-second of its own; the ratio of the two.
        same_moment = {}  # (scenario, peer variant) -> list of ratios
        others = [n for n in proxies if n != "ballast"] if "ballast" in proxies else []
        for rep in range(args.paired if others else 0):
            for sc, _ in plan:
                for log in logs:
                    s = "+log" if log == "on" else ""
                    for peer in others:
                        names = ["ballast" + s, peer + s]
                        pair = [started[n] for n in names]
                        before = [cpu_seconds(p.pid) for p, _, _ in pair]
                        with ThreadPoolExecutor(2) as ex:
                            jobs = [ex.submit(load, sc, ports, args.duration, lc) for _, ports, _ in pair]
                            results = [j.result() for j in jobs]
                        used = [cpu_seconds(p.pid) - b for (p, _, _), b in zip(pair, before)]
                        done = [r["requests"] for r in results]
                        for n, d, r in zip(names, done, results):
                            served[n] += (d or 0) + r.get("warmup", 0)
                            if started[n][2]:
                                loglines.count(started[n][2])
                        if all(used) and all(done):
                            ratio = (done[0] / used[0]) / (done[1] / used[1])
                            same_moment.setdefault((sc, names[1]), []).append(ratio)
                            print(f"pair {rep + 1} {sc:12} {names[0]}/{names[1]:12} {ratio:.2f}"
                                  f"  ({done[0] / used[0]:,.0f} and {done[1] / used[1]:,.0f}"
                                  f" req per CPU-second)", file=sys.stderr)

        logged = check_logs(started, served, loglines)
        table = render(runs, idle, plan, variants, args, same_moment, logged)
        print(table)
        if args.write:
            write_benchmarks(table)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def check_logs(started, served, loglines):
    """Each access log's lines against the requests the proxy says it served and
    against those the load generators counted (a proxy that dropped lines would win
    unfairly); ballast's own count of the lines it dropped.
    name -> (lines, served by the proxy, counted by the load generators, dropped)."""
    out = {}
    if not any(logfile for _, _, logfile in started.values()):
        return out
    time.sleep(2.5)  # NGINX flushes its buffer every second; ballast's writer batches
    for name, (_, ports, logfile) in started.items():
        if not logfile:
            continue
        lines = loglines.count(logfile)
        own = peers.served(name, ports, logfile)
        dropped = None
        if name.split("+")[0] in ("ballast", "baseline"):
            dropped = peers.ballast_metric(ports["admin"], "ballast_access_log_dropped_total")
        out[name] = (lines, own, served[name], dropped)
        ratio = lines / own if own else 0
        warn = "" if lines and ratio > 0.99 else "  <-- FEWER LINES THAN REQUESTS"
        print(f"log {name:12} {lines:,} lines for {fmt(own, ',.0f')} requests it served "
              f"({ratio:.3f}; the load generators counted {served[name]:,})"
              + (f"; ballast_access_log_dropped_total {fmt(dropped, ',.0f')}" if dropped is not None
                 else "") + warn, file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
