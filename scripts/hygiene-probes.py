#!/usr/bin/env python3
"""The HTTP-hygiene defects of issue 19, probed as a hostile client would, against
one or more ballast binaries side by side (for a before/after table).

    scripts/hygiene-probes.py target/release/ballast [OTHER_BINARY ...]

Each binary runs its own `ballast backend` (JSON echo) and `ballast serve` with a
listener whose rules answer 403 for host `admin.example` and for path `/admin`.
Each probe is sent on a new connection; the table shows the status line ballast
answered (or how the connection ended) and whether the echo backend saw a second
Host. Loopback only, one request per probe.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from ports import free_port, wait_port  # noqa: E402 (bench/ports.py)


CONFIG = """
[admin]
bind = "127.0.0.1:0"
[access_log]
path = "off"
[[listeners]]
name = "public"
bind = "127.0.0.1:{port}"
default_action = {{ type = "forward", target_group = "web" }}
[[listeners.rules]]
priority = 1
conditions = [{{ host = "admin.example" }}]
action = {{ type = "fixed_response", status = 403, body = "forbidden" }}
[[listeners.rules]]
priority = 2
conditions = [{{ path = "/admin" }}]
action = {{ type = "fixed_response", status = 403, body = "forbidden" }}
[[target_groups]]
name = "web"
targets = [{{ address = "127.0.0.1:{backend}" }}]
"""

SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
PROBES = [
    ("second Host past a host rule", "GET / HTTP/1.1\r\nHost: public.example\r\nHost: admin.example\r\n\r\n"),
    ("no Host on HTTP/1.1", "GET / HTTP/1.1\r\n\r\n"),
    ("Host a.example, b.example", "GET / HTTP/1.1\r\nHost: a.example, b.example\r\n\r\n"),
    ("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a.example\r\n\r\n"),
    ("malformed chunked body", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
    ("/admin;x past a path rule", "GET /admin;x HTTP/1.1\r\nHost: h\r\n\r\n"),
    ("/admin%00 past a path rule", "GET /admin%00 HTTP/1.1\r\nHost: h\r\n\r\n"),
    ("70 KB request head", "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + "a" * 70000 + "\r\n\r\n"),
    ("300 KB request head", "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + "a" * 300000 + "\r\n\r\n"),
    ("GET with a body length (ambiguous)", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"),
    ("CL.TE probe", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s" % (5 + len(SMUGGLED), SMUGGLED)),
    ("Transfer_Encoding + CL (ambiguous)", "POST / HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"),
    ("broken h2c preface", "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"),
]


def probe(port, raw):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(raw.encode("latin-1"))
    except OSError:
        pass
    data = b""
    closed = False
    end = time.time() + 3
    while time.time() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
        if b"\r\n\r\n" in data and len(data) > 200:
            s.settimeout(0.5)
    s.close()
    if not data:
        return "(closed, no answer)" if closed else "(no answer)"
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    extra = []
    if data.count(b"admin.example") and b'"host"' in data:
        extra.append("target saw admin.example")
    if closed:
        extra.append("then closed")
    return line + (f" ({', '.join(extra)})" if extra else "")


def run(binary):
    binary = os.path.abspath(binary)
    work = tempfile.mkdtemp(prefix="ballast-probes-")
    backend, port = free_port(), free_port()
    procs = [subprocess.Popen([binary, "backend", "--bind", f"127.0.0.1:{backend}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    conf = os.path.join(work, "ballast.toml")
    open(conf, "w").write(CONFIG.format(port=port, backend=backend))
    env = dict(os.environ, RUST_LOG="error")
    procs.append(subprocess.Popen([binary, "serve", "--workers", "1", "--config", conf],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=work))
    try:
        wait_port(backend)
        wait_port(port)
        time.sleep(1.5)  # the first health check passes
        return [probe(port, raw) for _, raw in PROBES]
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def main():
    binaries = sys.argv[1:] or ["target/release/ballast"]
    results = [run(b) for b in binaries]
    print("| probe | " + " | ".join(binaries) + " |")
    print("|---" * (len(binaries) + 1) + "|")
    for i, (name, _) in enumerate(PROBES):
        print(f"| {name} | " + " | ".join(r[i] for r in results) + " |")


if __name__ == "__main__":
    main()
