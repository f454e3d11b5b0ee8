#!/usr/bin/env python3
"""What the access log costs ballast per core, paired at the same moment.

Two ballasts pinned to the same core (`--proxy-core`, default 0), one with its access
log off and one writing it to a file, each loaded by its own wrk (`small50`: 50
keep-alive connections, small responses) on the other core at the same time, so that
both see the same host. Requests per CPU-second of each (utime + stime from /proc);
the ratio logging / not logging, per repetition and median, and each one's user and
system time per request. Two nginx backends. Stops exactly what it started.

Usage: python3 bench/log-cost.py [--binary target/release/ballast] [--reps 6]
                                 [--duration 4] [--scenario small50]
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
from peers import ballast_conf, nginx_backend_conf  # noqa: E402
from ports import free_port, wait_port  # noqa: E402


def times(pid):
    """(user seconds, system seconds) of a process tree."""
    user = system = 0
    for p in run.tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user, system = user + int(fields[11]), system + int(fields[12])
        except OSError:
            pass
    return user / run.TICK, system / run.TICK


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(run.ROOT, "target/release/ballast"))
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--scenario", default="small50")
    ap.add_argument("--proxy-core", type=int, default=0)
    ap.add_argument("--load-core", type=int, default=1)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ballast-log-cost-")
    os.makedirs(os.path.join(work, "www"))
    with open(os.path.join(work, "www", "16k"), "wb") as f:
        f.write(b"x" * 16384)
    procs = run.Procs()
    try:
        backends = []
        for i in range(2):
            port = free_port()
            conf = os.path.join(work, f"backend{i}.conf")
            with open(conf, "w") as f:
                f.write(nginx_backend_conf(work, port, i))
            procs.start(["nginx", "-c", conf], args.load_core)
            backends.append(port)
        for b in backends:
            wait_port(b)
        log = os.path.join(work, "access.log")
        started = []
        for name, path in (("off", None), ("on", log)):
            ports = {"http": free_port(), "admin": free_port()}
            ports["h2"] = ports["http"]
            conf = os.path.join(work, f"{name}.toml")
            with open(conf, "w") as f:
                f.write(ballast_conf(ports, backends, os.path.join(work, f"{name}-state"), None, path))
            p = procs.start([args.binary, "serve", "--config", conf], args.proxy_core,
                            env=dict(os.environ, RUST_LOG="warn"))
            wait_port(ports["http"])
            started.append((p, ports))
        time.sleep(1)
        ratios = []
        for rep in range(args.reps):
            before = [times(p.pid) for p, _ in started]
            with ThreadPoolExecutor(2) as ex:
                jobs = [ex.submit(run.load, args.scenario, ports, args.duration, args.load_core)
                        for _, ports in started]
                results = [j.result() for j in jobs]
            after = [times(p.pid) for p, _ in started]
            per_core, detail = [], []
            for (u0, s0), (u1, s1), r in zip(before, after, results):
                n = r["requests"]
                per_core.append(n / ((u1 - u0) + (s1 - s0)))
                detail.append(f"user {(u1 - u0) / n * 1e6:.2f} µs + system {(s1 - s0) / n * 1e6:.2f} µs")
            ratios.append(per_core[1] / per_core[0])
            print(f"rep {rep + 1}: log off {per_core[0]:,.0f}, on {per_core[1]:,.0f} req per CPU-second: "
                  f"{ratios[-1]:.3f} (per request, off: {detail[0]}; on: {detail[1]})", flush=True)
        with open(log, "rb") as f:
            lines = sum(1 for _ in f)
        cost = 1 - statistics.median(ratios)
        print(f"the access log costs {cost:.1%} of requests per core (median of {args.reps}; "
              f"{1 - max(ratios):.1%} to {1 - min(ratios):.1%}); {lines:,} lines written")
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
