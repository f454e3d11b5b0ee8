"""The peer benchmark's configs (bench/run.py): nginx backends, and ballast, HAProxy
and NGINX as proxies, each with or without an access log to a file; the TLS pieces
(one ECDSA P-256 certificate for all three, the check of what each negotiates and
resumes, and the shim that makes wrk do a full handshake on every connection)."""

import os
import re
import socket
import ssl
import subprocess
import urllib.request


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


def ballast_conf(ports, backends, state, cert, log=None, group_extra="", listener_extra="",
                 top_extra=""):
    """`log`: the access log's file, or None for none. `cert`: (pem, key) or None."""
    targets = ", ".join(f'{{ address = "127.0.0.1:{b}" }}' for b in backends)
    tls = ""
    if cert:
        tls = f"""
[[listeners]]
name = "bench-tls"
bind = "127.0.0.1:{ports['tls']}"
protocol = "https"
certificates = [{{ cert = "{cert[0]}", key = "{cert[1]}" }}]
default_action = {{ type = "forward", target_group = "backends" }}
{listener_extra}
"""
    # The admin API on a port of its own (two builds may run side by side), known to
    # the script, which reads ballast_access_log_dropped_total from its /metrics.
    return f"""
[admin]
bind = "127.0.0.1:{ports['admin']}"
[state]
dir = "{state}"
[access_log]
path = "{log or 'off'}"
{top_extra}
[[listeners]]
name = "bench"
bind = "127.0.0.1:{ports['http']}"
default_action = {{ type = "forward", target_group = "backends" }}
{listener_extra}
{tls}
[[target_groups]]
name = "backends"
algorithm = "round_robin"
targets = [{targets}]
{group_extra}
[target_groups.health_check]
interval = "5s"
"""


def haproxy_conf(ports, backends, pem, log=None):
    """`log`: `option httplog` to stdout, which the script sends to this file; a stats
    socket next to it (`FILE.sock`) tells how many requests HAProxy served."""
    servers = "\n".join(f"  server b{i} 127.0.0.1:{b} check inter 5s" for i, b in enumerate(backends))
    tls = (f"  bind 127.0.0.1:{ports['tls']} ssl crt {pem} alpn h2,http/1.1 ssl-min-ver TLSv1.2\n"
           if pem else "")
    return f"""
global
  nbthread 1
  maxconn 9900
{f"  log stdout format raw local0{chr(10)}  stats socket {log}.sock" if log else ""}
defaults
  mode http
{"  log global" + chr(10) + "  option httplog" if log else ""}
  timeout connect 3s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:{ports['http']} defer-accept
  bind 127.0.0.1:{ports['h2']} proto h2 defer-accept
{tls}  option forwardfor
  http-request set-header X-Forwarded-Proto %[ssl_fc,iif(https,http)]
  http-request set-header X-Forwarded-Port %[dst_port]
  unique-id-format %[uuid()]
  unique-id-header X-Request-Id
  default_backend be
backend be
  balance roundrobin
{servers}
"""


def nginx_proxy_conf(work, name, ports, backends, cert, log=None):
    """`log`: the access log's file (`combined`, buffered), or None for none."""
    servers = "\n".join(f"    server 127.0.0.1:{b};" for b in backends)
    access = f"access_log {log} combined buffer=64k flush=1s;" if log else "access_log off;"
    # With the log, stub_status on the admin port tells how many requests NGINX served.
    status = (f"server {{ listen 127.0.0.1:{ports['admin']}; access_log off; "
              f"location = /status {{ stub_status; }} }}" if log else "")
    tls = ""
    if cert:
        # nginx 1.22 offers TLS 1.0-1.2 by default; 1.2 and 1.3 like the others.
        tls = (f"listen 127.0.0.1:{ports['tls']} ssl http2 backlog=4096 deferred;\n"
               f"    ssl_certificate {cert[0]}; ssl_certificate_key {cert[1]};\n"
               f"    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m;")
    return f"""
worker_processes 1; daemon off; pid {work}/{name}.pid; error_log {work}/{name}.err;
worker_rlimit_nofile 20000;
events {{ worker_connections 19000; }}
http {{ {access} keepalive_requests 10000000; keepalive_timeout 75s;
  upstream be {{
{servers}
    keepalive 256;
  }}
  server {{ listen 127.0.0.1:{ports['http']} backlog=4096 deferred; listen 127.0.0.1:{ports['h2']} http2 deferred;
    {tls}
    location / {{ proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Request-Id $request_id; }}
  }}
  {status}
}}
"""


# ---------------------------------------------------------------- TLS

def make_cert(work):
    """One ECDSA P-256 certificate for localhost: (cert, key, cert+key for HAProxy)."""
    cert, key, both = (os.path.join(work, f) for f in ("site.pem", "site.key", "haproxy.pem"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    with open(both, "w") as f:
        f.write(open(cert).read() + open(key).read())
    return cert, key, both


NO_RESUME_C = r"""
/* LD_PRELOAD for wrk over https. wrk ends a connection with SSL_shutdown and
   SSL_clear, which keeps the session, so that its next connection resumes it.
   Forget the session there: every new connection makes a full handshake. */
#define _GNU_SOURCE
#include <dlfcn.h>
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
extern int SSL_set_session(SSL *s, SSL_SESSION *session);
int SSL_clear(SSL *s) {
    static int (*real)(SSL *);
    if (!real) real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
    int r = real(s);
    SSL_set_session(s, 0);
    return r;
}
"""


def build_no_resume(work):
    """Compile the shim above (a C compiler is needed: `cc`); its path."""
    src, lib = os.path.join(work, "noresume.c"), os.path.join(work, "noresume.so")
    open(src, "w").write(NO_RESUME_C)
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", lib, src, "-ldl"], check=True)
    return lib


def negotiated(port):
    """What `openssl s_client` (OpenSSL's defaults, as wrk and h2load use them,
    ALPN h2 and http/1.1 offered) negotiates: 'TLSv1.3 TLS_AES_256_GCM_SHA384 h2'."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                          "localhost", "-alpn", "h2,http/1.1"], input=b"", capture_output=True,
                         timeout=10).stdout.decode(errors="replace")  # it prints what the server sent
    m = re.search(r"^New, (\S+), Cipher is (\S+)", out, re.M)
    alpn = re.search(r"^ALPN protocol: (\S+)", out, re.M)
    return " ".join([m.group(1), m.group(2)] if m else ["no handshake"]) + \
        (f", ALPN {alpn.group(1)}" if alpn else ", no ALPN")


def resumes(port):
    """Whether a second connection resumes the first one's session (TLS 1.3 ticket)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    session = None
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                while s.recv(4096):
                    pass
                reused, session = s.session_reused, s.session
    return reused


def served(name, ports, log):
    """How many requests the proxy itself says it served (the +log variants), or None."""
    base = name.split("+")[0]
    try:
        if base in ("ballast", "baseline"):
            return ballast_metric(ports["admin"], "ballast_requests_total")
        if base == "haproxy":
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(log + ".sock")
                s.sendall(b"show info\n")
                out = b""
                while chunk := s.recv(65536):
                    out += chunk
            m = re.search(rb"^CumReq: (\d+)", out, re.M)
            return int(m.group(1)) if m else None
        if base == "nginx":
            text = urllib.request.urlopen(f"http://127.0.0.1:{ports['admin']}/status", timeout=5).read()
            # accepts handled requests: the third figure, this request included.
            return int(text.split(b"\n")[2].split()[2]) - 1
    except (OSError, ValueError, IndexError):
        return None
    return None


def ballast_metric(admin_port, name):
    """The sum of a metric's series on ballast's admin API, or None."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    vals = [float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
    return sum(vals) if vals else None
