# Shared set-up for the single-backend scripts (cpu.sh, quick.sh, instructions.sh):
# a work directory cleaned up on exit with every process started, one nginx
# backend, and the ballast and HAProxy configs that forward to it. Sourced, not run.
#
# After `source bench/lib.sh`: $work, pids=(...), free_port, start_backend,
# ballast_config, haproxy_config, wait_http, install_tools.

work=$(mktemp -d); chmod 755 "$work"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Install from Debian's packages the tools that are missing: install_tools cmd:package ...
install_tools() {
  local need=() tool
  for tool in "$@"; do
    command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
  done
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One nginx worker on core 1 answering "hello\n" at `/`: start_backend PORT
start_backend() {
  cat > "$work/nginx.conf" <<NGINX
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$1; location / { return 200 "hello\n"; } } }
NGINX
  taskset -c 1 nginx -c "$work/nginx.conf" & pids+=($!)
}

# ballast forwarding PORT to the backend on BACKEND_PORT, access log off, health
# checks on: ballast_config PORT BACKEND_PORT > file
ballast_config() {
  cat <<TOML
[admin]
bind = "127.0.0.1:0"
[access_log]
path = "off"
[[listeners]]
name = "bench"
bind = "127.0.0.1:$1"
default_action = { type = "forward", target_group = "g" }
[[target_groups]]
name = "g"
targets = [{ address = "127.0.0.1:$2" }]
[target_groups.health_check]
path = "/"
TOML
}

# HAProxy (one thread) the same way: haproxy_config PORT BACKEND_PORT > file
haproxy_config() {
  cat <<CFG
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend f
  bind 127.0.0.1:$1 defer-accept
  option forwardfor
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Port %[dst_port]
  unique-id-format %[uuid()]
  unique-id-header X-Request-Id
  default_backend b
backend b
  server s1 127.0.0.1:$2 check
CFG
}

# Wait until PORT answers HTTP (up to TRIES tenths of a second, default 100).
wait_http() {
  for _ in $(seq "${2:-100}"); do curl -sf "http://127.0.0.1:$1/" >/dev/null && return 0; sleep 0.1; done
  return 1
}
