#!/usr/bin/env python3
"""What a global rate limit costs ballast per core against the same limit local,
paired at the same moment, and what it costs Redis.

Two ballasts pinned to the same core (`--proxy-core`, default 0), each with one
rate limit on its listener, the same but for `scope`: `"local"` in one, `"global"`
(through a redis-server on the load core) in the other. The limit is high enough
(`--rate`, default 1,000,000/s) that every request is admitted, so both do all of
their counting work on every request: the cost measured is the global limit's
(its count beside the key, the settling task's EVALSHA every 50 ms), not fewer
requests forwarded. Each ballast is loaded by its own wrk (`small50`: 50 keep-alive
connections, small responses) on the other core at the same time, so that both see
the same host. Reports requests per CPU-second of each (utime + stime from /proc)
and their ratio global / local per repetition and median, and Redis's commands per
second during the runs (`EVALSHA` calls from `INFO commandstats`, and
`total_commands_processed`, which counts each call's `TIME`, `GET` and `SET` too)
against the global ballast's requests per second. Two nginx backends. Stops exactly what it started.

Usage: python3 bench/global-limit.py [--binary target/release/ballast] [--reps 6]
                                     [--duration 4] [--rate 1000000]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
from peers import ballast_conf, nginx_backend_conf  # noqa: E402
from ports import free_port, wait_port  # noqa: E402


def times(pid):
    """(user seconds, system seconds) of a process tree (as bench/log-cost.py)."""
    user = system = 0
    for p in run.tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user, system = user + int(fields[11]), system + int(fields[12])
        except OSError:
            pass
    return user / run.TICK, system / run.TICK


def redis_commands(port):
    """Redis's total_commands_processed and EVALSHA calls."""
    out = subprocess.run(["redis-cli", "-p", str(port), "info", "all"],
                         capture_output=True, text=True, check=True).stdout
    total = evalsha = 0
    for line in out.splitlines():
        if line.startswith("total_commands_processed:"):
            total = int(line.split(":")[1])
        if line.startswith("cmdstat_evalsha:calls="):
            evalsha = int(line.split("=")[1].split(",")[0])
    return total, evalsha


def limit_conf(scope, rate, redis_port, name):
    cluster = ""
    if scope == "global":
        cluster = f'[cluster]\nnode_name = "{name}"\nredis = "redis://127.0.0.1:{redis_port}"\n'
    return (f'[[rate_limits]]\nname = "fleet"\nkey = "client_ip"\nrate = "{rate}/s"\n'
            f'burst = {rate}\nscope = "{scope}"\n{cluster}')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(run.ROOT, "target/release/ballast"))
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--rate", type=int, default=1_000_000)
    ap.add_argument("--scenario", default="small50")
    ap.add_argument("--proxy-core", type=int, default=0)
    ap.add_argument("--load-core", type=int, default=1)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ballast-global-limit-")
    os.makedirs(os.path.join(work, "www"))
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
        redis_port = free_port()
        procs.start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", work], args.load_core)
        for p in backends + [redis_port]:
            wait_port(p)
        started = []
        for scope in ("local", "global"):
            ports = {"http": free_port(), "admin": free_port()}
            ports["h2"] = ports["http"]
            conf = os.path.join(work, f"{scope}.toml")
            with open(conf, "w") as f:
                f.write(ballast_conf(ports, backends, os.path.join(work, f"{scope}-state"), None,
                                     None, listener_extra='rate_limits = ["fleet"]',
                                     top_extra=limit_conf(scope, args.rate, redis_port, scope)))
            p = procs.start([args.binary, "serve", "--config", conf], args.proxy_core,
                            env=dict(os.environ, RUST_LOG="warn"))
            wait_port(ports["http"])
            started.append((p, ports))
        time.sleep(1)
        ratios, redis_rates, evalsha_rates = [], [], []
        for rep in range(args.reps):
            before = [times(p.pid) for p, _ in started]
            (commands, calls), t0 = redis_commands(redis_port), time.monotonic()
            with ThreadPoolExecutor(2) as ex:
                jobs = [ex.submit(run.load, args.scenario, ports, args.duration, args.load_core)
                        for _, ports in started]
                results = [j.result() for j in jobs]
            # INFO itself is one command; each EVALSHA's TIME, GET and SET count too.
            (commands2, calls2), t1 = redis_commands(redis_port), time.monotonic()
            per_s = (commands2 - commands - 1) / (t1 - t0)
            evalsha_s = (calls2 - calls) / (t1 - t0)
            after = [times(p.pid) for p, _ in started]
            per_core = []
            for (u0, s0), (u1, s1), r in zip(before, after, results):
                per_core.append(r["requests"] / ((u1 - u0) + (s1 - s0)))
            ratios.append(per_core[1] / per_core[0])
            redis_rates.append(per_s)
            evalsha_rates.append(evalsha_s)
            global_rps = results[1]["requests"] / args.duration
            print(f"rep {rep + 1}: local {per_core[0]:,.0f}, global {per_core[1]:,.0f} req per "
                  f"CPU-second: {ratios[-1]:.3f}; Redis {evalsha_s:.1f} EVALSHA/s ({per_s:.1f} "
                  f"commands/s) while the global "
                  f"ballast served {global_rps:,.0f} requests/s", flush=True)
        cost = 1 - statistics.median(ratios)
        print(f"a global limit costs {cost:.1%} of requests per core against the same limit local "
              f"(median of {args.reps}; {1 - max(ratios):.1%} to {1 - min(ratios):.1%}); "
              f"Redis: {statistics.median(evalsha_rates):.1f} EVALSHA/s, "
              f"{statistics.median(redis_rates):.1f} commands/s (medians)")
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
