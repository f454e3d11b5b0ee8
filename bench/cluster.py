#!/usr/bin/env python3
"""Cluster benchmark (issue 24): how a change spreads through N ballast nodes on one
etcd, and what each change costs etcd.

For each N (`--nodes 3,10,30`) the script starts one etcd (Debian's `etcd-server`, on
free loopback ports with its own temporary data directory, the same flags as testkit's
`EtcdServer`) and N `ballast serve --workers 1` nodes, each with a small file of its own
(`[cluster]` with its name and `listener_binds`, `[admin]`, `[state]`). Node 0's file
also holds a full config (listener `public`, group `web` with one target that need not
run), which seeds the empty prefix; the others start once it has.

Then it measures, in this order:
- idle: etcd's `/metrics` before and after `--idle` seconds with no change, for the
  lease keep-alives per second and etcd's CPU when nothing changes;
- changes: `--changes` weight changes of the target (`POST
  /api/v1/target-groups/web/targets`), each through a random node's admin API, one at
  a time. The answer's `version` is the etcd revision R of the write. The script waits
  until every node's `GET /api/v1/config` says `version` >= R (a node's own API: no
  load on etcd), then reads the registrations under `{prefix}nodes/` from etcd once
  (again if one is not yet re-put) and takes the latest `applied_at`: the propagation
  time of that change is that instant minus the instant the write was acknowledged.
  Nodes and script share one clock (one machine). etcd's `/metrics` before and after
  the changes give its load per change (the script's own reads are counted and taken
  out of the Range figures).

It prints a table (`--write` adds it to BENCHMARKS.md under `## Cluster`) and the
arithmetic for 100 and 1,000 nodes from the measured per-node figures. Every loop is
bounded in count and time, and every process the script started is stopped on exit,
also on Ctrl-C or an error.

Usage: python3 bench/cluster.py [--nodes 3,10,30] [--changes 100] [--idle 10]
                                [--ballast target/release/ballast] [--write]
"""

import argparse
import http.client
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime

import etcd_server as etcdlib  # bench/etcd_server.py
from cluster_report import LEASE_TTL, arithmetic, table, write_benchmarks  # bench/cluster_report.py
from ports import free_port, wait_port  # bench/ports.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIX = "/bench/"
TICK = os.sysconf("SC_CLK_TCK")


class Procs:
    """The processes this run started; all are stopped at exit."""

    def __init__(self):
        self.procs = []

    def start(self, cmd, log, **kw):
        with open(log, "ab") as out:
            p = subprocess.Popen(cmd, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                 start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def stop_all(self):
        """The nodes first (they leave the fleet's list), then etcd (started first)."""
        for wave in (self.procs[1:], self.procs[:1]):
            for p in wave:
                if p.poll() is None:
                    p.terminate()
            deadline = time.time() + 15
            for p in wave:
                try:
                    p.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs = []


def node_conf(i, etcd_url, work, target_port):
    """Node i's own file; node 0's also carries the fleet's config that seeds etcd."""
    ports = {"public": free_port(), "admin": free_port()}
    text = f"""
[cluster]
node_name = "n{i}"
etcd = ["{etcd_url}"]
prefix = "{PREFIX}"
listener_binds = {{ public = "127.0.0.1:{ports['public']}" }}

[admin]
bind = "127.0.0.1:{ports['admin']}"

[state]
dir = "{work}/n{i}"

[access_log]
path = "off"
"""
    if i == 0:
        text += f"""
[[listeners]]
name = "public"
bind = "127.0.0.1:{ports['public']}"
default_action = {{ type = "forward", target_group = "web" }}

[[target_groups]]
name = "web"
targets = [{{ address = "127.0.0.1:{target_port}", weight = 1 }}]
[target_groups.health_check]
interval = "5s"
"""
    return text, ports


class Admin:
    """One node's admin API over a kept-alive connection."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def request(self, method, path, body=None):
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                data = json.dumps(body).encode() if body is not None else None
                headers = {"Content-Type": "application/json"} if data else {}
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                text = r.read()
                return r.status, json.loads(text) if text else None
            except (http.client.HTTPException, OSError):
                self.conn = None
                if attempt:
                    raise

    def version(self):
        status, doc = self.request("GET", "/api/v1/config")
        return doc["version"] if status == 200 else -1

    def close(self):
        if self.conn:
            self.conn.close()


def cpu_seconds(procs):
    """User + system CPU of these processes so far (/proc/PID/stat)."""
    total = 0
    for p in procs:
        try:
            with open(f"/proc/{p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / TICK


def wait_until(what, check, timeout, step=0.005):
    deadline = time.time() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.time() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


def parse_time(s):
    """RFC 3339 with microseconds (`2026-12-04T01:02:03.456789Z`) -> Unix seconds."""
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def start_cluster(procs, args, n, work):
    """etcd and n nodes, node 0 first (it seeds the prefix); returns (etcd, admins)."""
    etcd = etcdlib.Etcd(procs, work)
    target = free_port()  # nothing listens there: the target's health does not matter
    admins, nodes = [], []
    for i in range(n):
        text, ports = node_conf(i, etcd.url, work, target)
        path = os.path.join(work, f"n{i}.toml")
        with open(path, "w") as f:
            f.write(text)
        nodes.append(procs.start([args.ballast, "serve", "--config", path, "--workers", "1"],
                                 os.path.join(work, f"n{i}.log"),
                                 env=dict(os.environ, RUST_LOG="warn")))
        admins.append(Admin(ports["admin"]))
        if i == 0:
            wait_port(ports["admin"], 60)
            seeded = wait_until("node 0 to seed etcd", lambda: admins[0].version() > 0, 60)
    for a in admins[1:]:
        wait_port(a.port, 60)
    wait_until("every node on the seed", lambda: all(a.version() >= seeded for a in admins),
               60, 0.05)
    wait_until(f"{n} registrations", lambda: len(etcd.registrations(PREFIX)) == n, 60, 0.05)
    return etcd, admins, nodes, target


def run_changes(args, etcd, admins, target):
    """One change at a time; per change (seconds): write latency, ack -> last node."""
    rng = random.Random(args.seed)
    writes, spread, spread_sent, reads = [], [], [], 0
    weight = 1
    for c in range(args.changes):
        weight = weight % 50 + 1  # a different weight every time: always a real change
        node = rng.randrange(len(admins))
        sent = time.time()
        status, doc = admins[node].request(
            "POST", "/api/v1/target-groups/web/targets",
            {"address": f"127.0.0.1:{target}", "weight": weight})
        acked = time.time()
        if status not in (200, 201):
            raise RuntimeError(f"change {c} through n{node}: {status} {doc}")
        rev = doc["version"]
        for a in admins:
            wait_until(f"change {c} (revision {rev}) on every node",
                       lambda: a.version() >= rev, args.timeout)

        def registered():
            nonlocal reads
            reads += 1
            regs = etcd.registrations(PREFIX)
            done = [r for r in regs if r.get("applied_revision", 0) >= rev and r.get("applied_at")]
            return done if len(done) == len(admins) and len(regs) == len(admins) else None

        regs = wait_until(f"registrations at revision {rev}", registered, args.timeout, 0.002)
        if any(r["applied_revision"] != rev for r in regs):
            raise RuntimeError(f"a node went past revision {rev}: {regs}")
        last = max(parse_time(r["applied_at"]) for r in regs)
        writes.append(acked - sent)
        spread.append(last - acked)
        spread_sent.append(last - sent)
    return writes, spread, spread_sent, reads


def own_read_cost(etcd, idle_cpu_rate, reads=200):
    """What one of the script's reads of the registrations costs etcd (bytes sent,
    CPU seconds), measured with the fleet at rest, to take out of the change figures."""
    m0, t0 = etcd.metrics(), time.time()
    for _ in range(reads):
        etcd.registrations(PREFIX)
    m1, took = etcd.metrics(), time.time() - t0
    d = etcdlib.delta(m0, m1)
    return d["sent_bytes"] / reads, max(0.0, d["cpu_s"] - idle_cpu_rate * took) / reads


def pct(values, p):
    """Nearest rank."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]


def measure(args, n):
    procs = Procs()
    work = tempfile.mkdtemp(prefix=f"ballast-cluster-{n}-")
    done = False
    try:
        etcd, admins, nodes, target = start_cluster(procs, args, n, work)
        idle0, idle_cpu0, t0 = etcd.metrics(), cpu_seconds(nodes), time.time()
        time.sleep(args.idle)
        idle1, idle_cpu, idle_s = etcd.metrics(), cpu_seconds(nodes) - idle_cpu0, time.time() - t0
        m0, cpu0, t0 = etcd.metrics(), cpu_seconds(nodes), time.time()
        writes, spread, spread_sent, reads = run_changes(args, etcd, admins, target)
        m1, cpu, busy_s = etcd.metrics(), cpu_seconds(nodes) - cpu0, time.time() - t0
        idle = etcdlib.delta(idle0, idle1)
        own_bytes, own_cpu = own_read_cost(etcd, idle["cpu_s"] / idle_s)
        for a in admins:
            a.close()
        busy = etcdlib.delta(m0, m1)
        # The script's own reads of the registrations are not the fleet's load.
        busy["sent_bytes"] -= reads * own_bytes
        busy["cpu_s"] -= reads * own_cpu
        busy["ranges"] -= reads
        k = len(spread)
        row = {
            "nodes": n,
            "changes": k,
            "p50_ms": 1000 * pct(spread, 50),
            "p99_ms": 1000 * pct(spread, 99),
            "max_ms": 1000 * max(spread),
            "sent_p50_ms": 1000 * pct(spread_sent, 50),
            "sent_p99_ms": 1000 * pct(spread_sent, 99),
            "write_p50_ms": 1000 * statistics.median(writes),
            "puts": busy["puts"] / k,
            "put_bytes": busy["put_bytes"] / k,
            "txns": busy["txns"] / k,
            "ranges": busy["ranges"] / k,
            "watch_msgs": busy["watch_msgs"] / k,
            "sent_bytes": busy["sent_bytes"] / k,
            "recv_bytes": busy["recv_bytes"] / k,
            # etcd's CPU per change over what it spends idle (keep-alives, ticks).
            "cpu_ms": 1000 * max(0.0, busy["cpu_s"] - idle["cpu_s"] / idle_s * busy_s) / k,
            # A node's CPU per change (apply, persist, registration) over its idle rate.
            "node_cpu_ms": 1000 * max(0.0, cpu - idle_cpu / idle_s * busy_s) / k / n,
            "watchers": m1.get("etcd_debugging_mvcc_watcher_total", float("nan")),
            "keepalives_s": idle["keepalives"] / idle_s,
            "keepalives_expected": n / (LEASE_TTL / 3),
            "script_reads": reads / k,
            "script_read_bytes": own_bytes,
            "script_read_cpu_ms": 1000 * own_cpu,
        }
        done = True
        return row
    except KeyboardInterrupt:
        done = True  # nothing to look into
        raise
    finally:
        procs.stop_all()
        if done and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}", file=sys.stderr)


def interrupted(*_):
    raise KeyboardInterrupt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", default="3,10,30")
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--idle", type=float, default=10.0,
                    help="seconds with no change, for keep-alives/s and etcd's idle CPU "
                         "(at least lease_ttl, 10 s, or the keep-alives are undercounted)")
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="seconds a change may take to reach every node")
    ap.add_argument("--ballast", default=os.path.join(ROOT, "target/release/ballast"))
    ap.add_argument("--seed", type=int, default=24)
    ap.add_argument("--request-rate", type=int, default=100_000,
                    help="requests/s through global limits, for the Redis arithmetic")
    ap.add_argument("--redis-limits", type=int, default=1, help="global limits")
    ap.add_argument("--redis-keys", type=int, default=1,
                    help="keys of a global limit active on a node within one settling period")
    ap.add_argument("--redis-settle-ms", type=float, default=50.0,
                    help="how often a node settles a global limit with Redis (ballast: 50 ms)")
    ap.add_argument("--keep", action="store_true", help="keep each N's files and logs")
    ap.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = ap.parse_args()
    if not os.access(args.ballast, os.X_OK):
        sys.exit(f"{args.ballast}: not built (cargo build --release -p ballast)")
    if not shutil.which(etcdlib.BINARY):
        sys.exit(f"{etcdlib.BINARY} is missing: apt-get install etcd-server")
    # SIGTERM as Ctrl-C: the `finally` blocks stop every process started.
    signal.signal(signal.SIGTERM, interrupted)
    sizes = [int(x) for x in args.nodes.split(",") if x]
    rows = []
    for n in sizes:
        print(f"{n} nodes ...", file=sys.stderr, flush=True)
        rows.append(measure(args, n))
        r = rows[-1]
        print(f"  propagation p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms; the script's "
              f"reads of the registrations: {r['script_reads']:.2f} per change, "
              f"{r['script_read_bytes']:.0f} bytes and {r['script_read_cpu_ms']:.2f} ms of "
              f"etcd CPU each (taken out)", file=sys.stderr)
    text = (f"{args.changes} changes per N, one at a time, each through a random node's admin "
            f"API (`POST /api/v1/target-groups/web/targets`, a new weight); propagation = "
            f"the last node's `applied_at` minus the instant the write's answer arrived (ack; "
            f"negative: every node had applied it before the answer reached the client) or "
            f"the instant the write was sent (sent); etcd figures from "
            f"its `/metrics` before and after (CPU over its idle rate; the script's own reads "
            f"of the registrations, measured at rest, taken out); keep-alives over "
            f"{args.idle:g} s idle. One etcd {etcdlib.version()} and N `ballast serve "
            f"--workers 1` on one {os.cpu_count()}-core machine.\n\n{table(rows)}\n\n"
            f"{arithmetic(rows, args)}")
    print(text)
    if args.write:
        write_benchmarks(text)
        print("\nappended to BENCHMARKS.md under ## Cluster", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted; every process this run started is stopped")
