#!/usr/bin/env python3
"""Shuffle-sharding isolation (issue 21 §4): what tenants see while one tenant's
requests poison the targets they reach.

Eight `ballast backend`s on 127.0.0.1, each started with `--poison "X-Tenant:
poison"` (the first request of tenant `poison` breaks the backend for good: 500 to
everything, 503 to health checks). One mode at a time, each over eight fresh
backends and a fresh ballast (retries on 500, health checks every 500 ms):

  none            no shuffle_shard: every tenant uses all eight targets
  shard           shuffle_shard = { key = { header = "X-Tenant" }, size = 2, fail_open = false }
  shard+failopen  the same with fail_open = true (the default)

Load: rounds of one request by the poison tenant, then one by each of `--tenants`
tenants, for `--duration` seconds. Each tenant's shard is computed here with the
same fixed hash as ballast (FNV-1a 64 and MurmurHash3's fmix64 over the key and each
target's `IP:PORT`): the warm-up round checks that every tenant is served by its
predicted shard, which shows every node of a fleet picks the same one. Prints, per
mode, errors per tenant grouped by how many targets the tenant's shard shares with
the poison tenant's (0, 1, 2). The script stops exactly the processes it started.

Usage: bench/shuffle-shard.py [--binary target/debug/ballast] [--tenants 56]
                              [--duration 10]
"""

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time

from ports import free_port, wait_port  # noqa: E402 (bench/ports.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MASK = (1 << 64) - 1

MODES = {
    "none": "",
    "shard": 'shuffle_shard = { key = { header = "X-Tenant" }, size = 2, fail_open = false }\n',
    "shard+failopen": 'shuffle_shard = { key = { header = "X-Tenant" }, size = 2 }\n',
}


def fnv1a(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def fmix64(k):
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & MASK
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & MASK
    return k ^ (k >> 33)


def shard(tenant, ports, size=2):
    """The ports of a tenant's shard, as ballast's upstream/shard.rs picks them."""
    key = fmix64(fnv1a(tenant.encode()))
    scored = [(fmix64(key ^ fmix64(fnv1a(f"127.0.0.1:{p}".encode()))), -i, p) for i, p in enumerate(ports)]
    return {p for _, _, p in sorted(scored, reverse=True)[:size]}


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
algorithm = "round_robin"
targets = [{targets}]
retry = {{ attempts = 2, on = ["500"], budget = {{ ratio = 1.0, min_per_second = 1000 }} }}
{extra}
[target_groups.health_check]
interval = "500ms"
timeout = "200ms"
healthy_threshold = 2
unhealthy_threshold = 2
"""


def get_json(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def get(self, tenant):
        try:
            self.conn.request("GET", "/", headers={"X-Tenant": tenant})
            r = self.conn.getresponse()
            r.read()
            return r.status, r.getheader("x-backend")
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            return 599, None


def run_mode(args, mode, tmp):
    procs = []
    try:
        ports = []
        for i in range(8):
            port = free_port()
            cmd = [args.binary, "backend", "--bind", f"127.0.0.1:{port}", "--name", str(port),
                   "--poison", "X-Tenant: poison"]
            procs.append(subprocess.Popen(cmd, stderr=subprocess.DEVNULL))
            ports.append(port)
        for p in ports:
            wait_port(p, 30.0)
        listen, admin = free_port(), free_port()
        d = os.path.join(tmp, mode)
        os.makedirs(d)
        path = os.path.join(d, "ballast.toml")
        with open(path, "w") as f:
            f.write(config(listen, admin, d, ports, MODES[mode]))
        log = open(os.path.join(d, "ballast.log"), "w")
        procs.append(subprocess.Popen([args.binary, "serve", "--config", path, "--workers", "1"],
                                      stdout=log, stderr=log))
        wait_port(listen, 30.0)
        deadline = time.time() + 30
        while not all(t["state"] == "healthy" for t in get_json(admin, "/api/v1/target-groups/web/health")["targets"]):
            if time.time() > deadline:
                raise RuntimeError("targets not healthy within 30 s")
            time.sleep(0.1)
        client = Client(listen)
        poison = shard("poison", ports)
        tenants = [f"tenant-{t}" for t in range(args.tenants)]
        overlap = {t: len(shard(t, ports) & poison) for t in tenants}
        mispredicted = 0
        if mode != "none":
            for t in tenants:
                served = {int(client.get(t)[1] or 0) for _ in range(4)}
                mispredicted += not served <= shard(t, ports)
        errors = {t: 0 for t in tenants}
        requests = {t: 0 for t in tenants}
        poison_errors = 0
        start = time.monotonic()
        while time.monotonic() - start < args.duration:
            poison_errors += client.get("poison")[0] != 200
            for t in tenants:
                requests[t] += 1
                errors[t] += client.get(t)[0] != 200
        poisoned = sum(1 for p in ports if client_poisoned(p))
        return overlap, requests, errors, poison_errors, poisoned, mispredicted
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def client_poisoned(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status != 200
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "debug", "ballast"))
    ap.add_argument("--tenants", type=int, default=56)
    ap.add_argument("--duration", type=float, default=10.0)
    args = ap.parse_args()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"{args.binary}: not built (cargo build -p ballast)")
    tmp = tempfile.TemporaryDirectory(prefix="ballast-shard-")
    print(f"{args.tenants} tenants + 1 poison tenant, 8 targets, {args.duration:.0f} s per mode\n")
    print(f"{'mode':<15} {'shared':>6} {'tenants':>7} {'requests':>8} {'errors':>7} {'tenants w/ errors':>17}")
    for mode in MODES:
        overlap, requests, errors, poison_errors, poisoned, mispredicted = run_mode(args, mode, tmp.name)
        groups = [None] if mode == "none" else [0, 1, 2]
        for g in groups:
            ts = [t for t in overlap if g is None or overlap[t] == g]
            label = "all" if g is None else str(g)
            print(f"{mode:<15} {label:>6} {len(ts):>7} {sum(requests[t] for t in ts):>8} "
                  f"{sum(errors[t] for t in ts):>7} {sum(1 for t in ts if errors[t]):>17}")
        extra = f", tenants served off their predicted shard: {mispredicted}" if mode != "none" else ""
        print(f"{'':<15} poison tenant errors {poison_errors}, targets poisoned {poisoned} of 8{extra}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
