"""The peer benchmark's tables (bench/run.py), and writing them into BENCHMARKS.md."""

import datetime
import os
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCENARIOS = {  # name -> how it reads in the tables
    "small50": "small, 50 conns", "small1000": "small, 1000 conns", "16k": "16 KiB, 50 conns",
    "newconn": "new connection per request", "h2": "HTTP/2 (h2load -c50 -m10)",
    "tls-small50": "TLS, small, 50 conns", "tls-16k": "TLS, 16 KiB, 50 conns",
    "tls-newconn": "TLS, new connection per request, full handshake",
    "tls-resumed": "TLS, new connection per request, resumed",
    "tls-h2": "TLS, HTTP/2 (h2load -c50 -m10)",
}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec):
    return "—" if x is None else format(x, spec)


def sfx(variant):
    return "+log" if variant.endswith("+log") else ""


def per_core(rs):
    rps, cpu = med([r["rps"] for r in rs]), med([r["cpu"] for r in rs])
    return rps / cpu if cpu else None


def per_rep(runs, sc, name, peer):
    """The median over repetitions of each repetition's own per-core ratio."""
    if (sc, peer) not in runs:
        return None
    return med([(a["rps"] / a["cpu"]) / (b["rps"] / b["cpu"])
                for a, b in zip(runs[(sc, name)], runs[(sc, peer)]) if a["cpu"] and b["cpu"]])


def summary(runs, plan, variants, same_moment):
    """Per scenario and log variant: ballast per core against each peer, paired where
    it ran, else per repetition; p99 of ballast and HAProxy."""
    bases = [v for v in variants if not sfx(v)] or [v[:-4] for v in variants]
    logs = sorted({sfx(v) for v in variants})
    others = [b for b in bases if b != "ballast"]
    lines = ["| scenario | access log | " + " | ".join(f"ballast vs {p} (per core)" for p in others)
             + " | p99 ms, ballast vs haproxy |", "|---|---|" + "---:|" * (len(others) + 1)]
    for sc, _ in plan:
        for s in logs:
            cells = []
            for p in others:
                paired = med(same_moment.get((sc, p + s), []))
                r = paired if paired is not None else per_rep(runs, sc, "ballast" + s, p + s)
                cells.append(fmt(r, ".2f"))
            p99 = [med([r["p99"] for r in runs.get((sc, n + s), [])]) for n in ("ballast", "haproxy")]
            cells.append("—" if None in p99 else f"{p99[0]:.2f} vs {p99[1]:.2f}")
            lines.append(f"| {SCENARIOS[sc]} | {'on' if s else 'off'} | " + " | ".join(cells) + " |")
    return lines


def render(runs, idle, plan, variants, args, same_moment, logged):
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    lines = [
        f"Run {datetime.date.today()} on {os.cpu_count()} cores, commit {commit}; "
        f"proxies pinned to core {args.proxy_core}, backends and load on core {args.load_core}; "
        f"{args.reps} interleaved repetitions of {args.duration}s, medians. `NAME+log`: the "
        f"same proxy writing an access log line per request to a file.",
        ""]
    if getattr(args, "tls_info", None):
        lines += ["TLS as `openssl s_client` negotiates it (ALPN h2 and http/1.1 offered; wrk offers "
                  "none and speaks HTTP/1.1), and whether a second connection resumes the first's "
                  "session: " + "; ".join(f"{n} {i}" for n, i in args.tls_info.items()) + ".", ""]
    if "ballast" in variants or "ballast+log" in variants:
        lines += ["Summary: ballast's requests per core against each peer with the same logging ("
                  + ("paired at the same moment, median of "
                     f"{args.paired} repetitions" if same_moment else
                     "median of per-repetition ratios") + "), and p99 latency:", ""]
        lines += summary(runs, plan, variants, same_moment) + [""]
    lines += [
        "One proxy at a time. The last column is the median over repetitions of each "
        "repetition's own ratio against HAProxy with the same logging (runs seconds apart), "
        "which this VM's drifting speed disturbs least.",
        "",
        "| scenario | proxy | req/s | p50 ms | p99 ms | proxy CPU (cores) | req/s per proxy core | vs HAProxy (per core) | vs HAProxy, per repetition |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sc, targets in plan:
        pc = {name: per_core(runs[(sc, name)]) for name in targets}
        for name in targets:
            rs = runs[(sc, name)]
            rps, cpu = med([r["rps"] for r in rs]), med([r["cpu"] for r in rs])
            p50, p99 = med([r["p50"] for r in rs]), med([r["p99"] for r in rs])
            if sc.endswith("h2"):
                p50 = med([r.get("mean") for r in rs])  # h2load gives a mean, shown as p50
            hap = "haproxy" + sfx(name)
            ratio = pc[name] / pc[hap] if pc.get(name) and pc.get(hap) else None
            paired = per_rep(runs, sc, name, hap) if name != "direct" else None
            label = "direct to one backend" if name == "direct" else name
            lines.append(f"| {SCENARIOS[sc]} | {label} | {rps:,.0f} | {fmt(p50, '.2f')} | {fmt(p99, '.2f')} "
                         f"| {fmt(cpu, '.2f')} | {fmt(pc.get(name), ',.0f')} | {fmt(ratio, '.2f')} "
                         f"| {fmt(paired, '.2f')} |")
        if "direct" in targets:
            d = med([r["rps"] for r in runs[(sc, "direct")]])
            for name in variants:
                rps = med([r["rps"] for r in runs[(sc, name)]])
                lines.append(f"|  | {name} / direct | {rps / d:.2f} |  |  |  |  |  |  |")
    bad = [f"{SCENARIOS[sc]} {name} ({sum(r['non2xx'] for r in runs[(sc, name)]):,})"
           for sc, targets in plan for name in targets if any(r["non2xx"] for r in runs[(sc, name)])]
    if bad:
        lines += ["", "**Responses other than 2xx** (they count as requests above): " + "; ".join(bad) + "."]
    bases = [v for v in variants if not sfx(v)]
    if bases and len(bases) < len(variants):
        lines += ["", "What the access log costs each proxy: requests per core with the log "
                  "against without it, one minus the ratio of the medians:", "",
                  "| scenario | " + " | ".join(bases) + " |", "|---|" + "---:|" * len(bases)]
        for sc, _ in plan:
            cells = []
            for b in bases:
                on, off = per_core(runs[(sc, b + "+log")]), per_core(runs[(sc, b)])
                cells.append(f"{1 - on / off:.0%}" if on and off else "—")
            lines.append(f"| {SCENARIOS[sc]} | " + " | ".join(cells) + " |")
    if any(r.get("cycles") for rs in runs.values() for r in rs):
        lines += ["", "The proxy's own cycles and instructions per request (`perf stat` on its process "
                  "during each run, medians); the last column is the median over repetitions of "
                  "HAProxy's cycles per request (same logging) divided by the proxy's, so above 1 "
                  "means fewer cycles than HAProxy for the same work. Instructions repeat from run "
                  "to run; cycles, the kernel's above all, move with the host's load:", "",
                  "| scenario | proxy | cycles per request | instructions per request "
                  "| per-core speed vs HAProxy, by cycles |", "|---|---|---:|---:|---:|"]
        for sc, targets in plan:
            for name in targets:
                if name == "direct":
                    continue
                rs, hap = runs[(sc, name)], runs.get((sc, "haproxy" + sfx(name)))
                speed = None
                if hap:
                    speed = med([b["cycles"] / a["cycles"] for a, b in zip(rs, hap)
                                 if a.get("cycles") and b.get("cycles")])
                lines.append(f"| {SCENARIOS[sc]} | {name} | {fmt(med([r['cycles'] for r in rs]), ',.0f')} "
                             f"| {fmt(med([r['instructions'] for r in rs]), ',.0f')} "
                             f"| {fmt(speed, '.2f')} |")
    if same_moment:
        others = sorted({peer.split("+")[0] for _, peer in same_moment})
        logs = sorted({sfx(peer) for _, peer in same_moment})
        lines += ["", f"Paired at the same moment ({args.paired} repetitions of {args.duration}s): "
                  "ballast and one peer with the same logging pinned to the same core and loaded "
                  "at once, each by its own load generator, so that both run on the same host at "
                  "the same time. Requests per CPU-second of ballast's own divided by the peer's; "
                  "median, and the lowest and highest repetition:", "",
                  "| scenario | access log | " + " | ".join(f"ballast vs {p}" for p in others) + " |",
                  "|---|---|" + "---:|" * len(others)]
        for sc, _ in plan:
            for s in logs:
                cells = []
                for peer in others:
                    rs = same_moment.get((sc, peer + s), [])
                    cells.append(f"**{med(rs):.2f}** ({min(rs):.2f}–{max(rs):.2f})" if rs else "—")
                lines.append(f"| {SCENARIOS[sc]} | {'on' if s else 'off'} | " + " | ".join(cells) + " |")
    if logged:
        lines += ["", "Access logs written during the run: lines in each file against the requests "
                  "the proxy says it served (ballast `ballast_requests_total`, HAProxy's `CumReq`, "
                  "NGINX's `stub_status`) and those the load generators counted (h2load's "
                  "uncounted warm-up second estimated at the rate it then measured), and the lines "
                  "ballast says it dropped (`ballast_access_log_dropped_total`):", "",
                  "| proxy | lines | requests served | lines per request | requests counted by the "
                  "load generators | dropped |", "|---|---:|---:|---:|---:|---:|"]
        for name, (n, own, counted, dropped) in logged.items():
            lines.append(f"| {name} | {n:,} | {fmt(own, ',.0f')} | {fmt(n / own if own else None, '.3f')} "
                         f"| {counted:,} | {fmt(dropped, ',.0f')} |")
    if idle:
        lines += ["", f"Memory per idle keep-alive client connection ({args.idle} connections):", "",
                  "| proxy | bytes per connection | vs HAProxy |", "|---|---:|---:|"]
        for name, b in idle.items():
            h = idle.get("haproxy" + sfx(name))
            lines.append(f"| {name} | {b:,.0f} | {fmt(b / h if h else None, '.2f')} |")
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
