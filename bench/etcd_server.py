"""One etcd for the cluster benchmark (bench/cluster.py), started with the same
flags as testkit's `EtcdServer` (crates/testkit/src/services.rs): Debian's
`/usr/bin/etcd` on two free loopback ports (client, peer), a data directory of its
own, warnings only, logged to a file beside it. Also what the benchmark reads from
it: the registrations under a prefix (v3 JSON gateway, keys and values in base64)
and the counters of `/metrics` that say what the fleet costs etcd."""

import base64
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request

from ports import free_port  # bench/ports.py

BINARY = "/usr/bin/etcd"
NAME = "bench"

# What the benchmark reads from `/metrics`: a name -> (metric, gRPC method or None).
# Counters of etcd 3.4; a gRPC counter is summed over its codes and types.
COUNTERS = {
    "puts": ("etcd_mvcc_put_total", None),
    "put_bytes": ("etcd_debugging_mvcc_total_put_size_in_bytes", None),
    "txns": ("grpc_server_handled_total", "Txn"),
    "ranges": ("grpc_server_handled_total", "Range"),
    "watch_msgs": ("grpc_server_msg_sent_total", "Watch"),
    "keepalives": ("grpc_server_msg_received_total", "LeaseKeepAlive"),
    "sent_bytes": ("etcd_network_client_grpc_sent_bytes_total", None),
    "recv_bytes": ("etcd_network_client_grpc_received_bytes_total", None),
    "cpu_s": ("process_cpu_seconds_total", None),
}

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')
METHOD = re.compile(r'grpc_method="([^"]*)"')


def version():
    out = subprocess.run([BINARY, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"etcd Version: (\S+)", out)
    return m.group(1) if m else "?"


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def prefix_end(prefix):
    """etcd's range end for "every key under prefix": its last byte plus one."""
    b = bytearray(prefix.encode())
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return b"\0"


class Etcd:
    def __init__(self, procs, work):
        self.dir = os.path.join(work, "etcd")
        os.makedirs(self.dir)
        self.port, peer = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        peer_url = f"http://127.0.0.1:{peer}"
        self.proc = procs.start([
            BINARY, f"--name={NAME}", f"--data-dir={self.dir}/data",
            f"--listen-client-urls={self.url}", f"--advertise-client-urls={self.url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster={NAME}={peer_url}",
            "--logger=zap", "--log-outputs=stderr", "--log-level=warn",
        ], os.path.join(self.dir, "etcd.log"))
        deadline = time.time() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited; see {self.dir}/etcd.log")
            try:
                if json.loads(self.get("/health")).get("health") == "true":
                    return
            except (OSError, ValueError):
                pass
            if time.time() > deadline:
                raise RuntimeError(f"etcd not healthy after 30 s; see {self.dir}/etcd.log")
            time.sleep(0.05)

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return r.read().decode()

    def post(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def registrations(self, prefix):
        """The JSON values under `{prefix}nodes/` (one per registered node)."""
        key = prefix + "nodes/"
        doc = self.post("/v3/kv/range", {"key": b64(key), "range_end": b64(prefix_end(key))})
        out = []
        for kv in doc.get("kvs", []):
            try:
                out.append(json.loads(base64.b64decode(kv.get("value", ""))))
            except ValueError:
                pass
        return out

    def metrics(self):
        """`/metrics` as {name: value} for COUNTERS, plus every unlabelled gauge."""
        totals = {k: 0.0 for k in COUNTERS}
        plain = {}
        for line in self.get("/metrics").splitlines():
            m = LINE.match(line)
            if not m:
                continue
            name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
            if not labels:
                plain[name] = value
            method = METHOD.search(labels)
            for key, (metric, want) in COUNTERS.items():
                if name == metric and (want is None or (method and method.group(1) == want)):
                    totals[key] += value
        plain.update(totals)
        return plain


def delta(before, after):
    return {k: after[k] - before[k] for k in COUNTERS}
