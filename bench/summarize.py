#!/usr/bin/env python3
"""Medians of the benchmark runs, the clacksd ÷ peer ratios against the targets, a Markdown
table, summary.json and (when matplotlib can be had) chart.png."""
import glob, json, os, statistics, subprocess, sys

rundir, out = sys.argv[1], sys.argv[2]
runs = {}
meta = None
for path in sorted(glob.glob(os.path.join(rundir, "*.json"))):
    r = json.load(open(path))
    meta = meta or r
    label = r["label"].rsplit("-", 1)[0]
    runs.setdefault(label, []).append(r)

def metric(label, key):
    vals = []
    for r in runs.get(label, []):
        v = r["results"]
        for k in key.split("."):
            v = v.get(k) if isinstance(v, dict) else None
        if isinstance(v, (int, float)):
            vals.append(v)
    return statistics.median(vals) if vals else None

rows = []  # (what, clacksd, peer name, peer value, ratio, target, higher_is_better)
def compare(what, ours, peer, key, target, higher=True):
    """target None: a comparison without a target (reported, not judged)."""
    a, b = metric(ours, key), metric(peer, key)
    if a is None and b is None:
        return  # a workload that was not run (e.g. --only into a fresh --out directory)
    ratio = (a / b if higher else b / a) if a and b else None
    met = None if target is None else ratio is not None and ratio >= target
    rows.append({"what": what, "clacksd": a, "peer": peer.split(".")[1], "peer_value": b,
                 "ratio": ratio, "target": target, "met": met})

D = "delivered_per_server_cpu_s"
for n in (10, 100):
    compare(f"fanout 1→{n}, Unix, deliveries/CPU-s", f"fanout{n}.clacksd-unix", f"fanout{n}.redis-unix", D, 1.0)
    compare(f"fanout 1→{n}, clacksd TLS vs Redis TCP", f"fanout{n}.clacksd-tls", f"fanout{n}.redis-tcp", D, 0.7)
    if f"fanout{n}.perl-unix" in runs:
        compare(f"fanout 1→{n}, Unix, vs Perl", f"fanout{n}.clacksd-unix", f"fanout{n}.perl-unix", D, 20.0 if n == 10 else 1.0)
compare("p99 latency at 200k deliveries/s (lower wins)", "latency200k.clacksd-unix", "latency200k.redis-unix", "latency.p99_us", 1.0, higher=False)
O = "ops_per_server_cpu_s"
compare("cache p1, ops/CPU-s", "cache-p1.clacksd-unix", "cache-p1.memcached-unix", O, 1.0)
compare("cache p1, ops/CPU-s", "cache-p1.clacksd-unix", "cache-p1.redis-unix", O, 1.0)
compare("cache p16, ops/CPU-s", "cache-p16.clacksd-unix", "cache-p16.redis-unix", O, 1.0)
for p in (1, 16):
    compare(f"cache p{p}, memcached protocol, ops/CPU-s", f"cache-p{p}.clacksd-memcached-unix", f"cache-p{p}.memcached-unix", O, 1.0)
    compare(f"cache p{p}, memcached protocol, ops/s", f"cache-p{p}.clacksd-memcached-unix", f"cache-p{p}.memcached-unix", "ops_per_s", 1.0)
if "cache-p1.perl-unix" in runs:
    compare("cache p1, vs Perl", "cache-p1.clacksd-unix", "cache-p1.perl-unix", O, 10.0)
# Work queues: throughput with a window of 256 messages in flight, then CPU per message and
# latency at the same load, 50,000 messages/s. Target: at least Redis's figure per server
# CPU-second and in p99, in both modes.
for m, name in (("once", "at most once, Redis LPUSH/BRPOP"), ("acked", "acked, Redis streams")):
    ours, peer = f"queue-{m}.clacksd-unix", f"queue-{m}.redis-unix"
    compare(f"queue {name}, msgs/CPU-s", ours, peer, D, 1.0)
    compare(f"queue {name}, msgs/s", ours, peer, "delivered_per_s", None)
    ours, peer = f"queue-{m}-50k.clacksd-unix", f"queue-{m}-50k.redis-unix"
    compare(f"queue {name}, at 50k msgs/s, msgs/CPU-s", ours, peer, D, 1.0)
    compare(f"queue {name}, at 50k msgs/s, p50 latency (lower wins)", ours, peer, "latency.p50_us", None, higher=False)
    compare(f"queue {name}, at 50k msgs/s, p99 latency (lower wins)", ours, peer, "latency.p99_us", 1.0, higher=False)
# Acknowledged writes, each synced before it is acknowledged (clacksd <fsync>always, Redis
# appendfsync always): writes per second with 1, 10 and 50 writers. Target: at least Redis's
# figure with 10 and 50 writers (group commit).
for n in (1, 10, 50):
    compare(f"acknowledged writes, fsync always, {n} writer{'s' if n > 1 else ''}, writes/s",
            f"journal-w{n}.clacksd-unix", f"journal-w{n}.redis-unix", "ops_per_s",
            None if n == 1 else 1.0)
K = "server_kib_per_connection"
absolute = []
for label, limit in (("connections.clacksd-unix", 2.0), ("connections.clacksd-tls", 16.0)):
    v = metric(label, K)
    if v is None:
        continue
    absolute.append({"what": f"{label.split('.')[1]}: KiB per idle connection", "value": v,
                     "limit": limit, "met": v is not None and v <= limit})
peers_kib = {l.split(".")[1]: metric(l, K) for l in runs if l.startswith("connections.")}

def fmt(v):
    if v is None:
        return "–"
    if isinstance(v, float) and v < 100:
        return f"{v:.2f}"
    return f"{v:,.0f}"

lines = ["| comparison | clacksd | peer | peer value | ratio | target | met |", "|---|---|---|---|---|---|---|"]
for r in rows:
    target = "–" if r["target"] is None else f"≥ {r['target']}×"
    met = "–" if r["met"] is None else "yes" if r["met"] else "no"
    lines.append(f"| {r['what']} | {fmt(r['clacksd'])} | {r['peer']} | {fmt(r['peer_value'])} | "
                 f"{fmt(r['ratio'])}× | {target} | {met} |")
if absolute:
    lines += ["", "| memory | KiB per connection | limit | met |", "|---|---|---|---|"]
for a in absolute:
    lines.append(f"| {a['what']} | {fmt(a['value'])} | ≤ {a['limit']} | {'yes' if a['met'] else 'no'} |")
if peers_kib:
    lines += ["", "KiB per idle connection by server: " + ", ".join(f"{k} {fmt(v)}" for k, v in sorted(peers_kib.items()))]
queue_labels = sorted(l for l in runs if l.startswith("queue-"))
if queue_labels:
    lines += ["", "| queue run | msgs/s | msgs/CPU-s | p50 µs | p99 µs | lost | other processes, CPU-s per run |",
              "|---|---|---|---|---|---|---|"]
    for l in queue_labels:
        cells = [metric(l, k) for k in ("delivered_per_s", D, "latency.p50_us", "latency.p99_us", "lost", "noise.other_cpu_s")]
        lines.append(f"| {l} | " + " | ".join(fmt(v) for v in cells) + " |")
m = (meta or {}).get("machine", {})
lines += ["", f"Machine: {m.get('cpu_model', '?')}, {m.get('cpus', '?')} CPUs, host {m.get('hostname', '?')}; "
          f"commit {(meta or {}).get('commit', '?')}; medians of {max((len(v) for v in runs.values()), default=0)} runs; "
          f"servers on CPU 0, load generator on CPU 1."]
table = "\n".join(lines)
chart_only = "--chart-only" in sys.argv
if not chart_only:
    print(table)
    open(os.path.join(out, "summary.md"), "w").write(table + "\n")
json.dump({"comparisons": rows, "memory": absolute, "kib_per_connection": peers_kib,
           "medians": {l: {k: metric(l, k) for k in (D, O, K, "latency.p50_us", "latency.p99_us", "delivered_per_s", "ops_per_s")} for l in runs},
           "machine": m, "commit": (meta or {}).get("commit")},
          open(os.path.join(out, "summary.json"), "w"), indent=2)

def chart():
    try:
        import matplotlib
    except ImportError:
        venv = os.path.join(out, ".venv")
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "matplotlib"], check=True)
        subprocess.run([os.path.join(venv, "bin", "python"), __file__, rundir, out, "--chart-only"], check=True)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [f"{r['what']}\nvs {r['peer']}" for r in rows]
    ratios = [r["ratio"] or 0 for r in rows]
    colors = ["tab:gray" if r["met"] is None else "tab:green" if r["met"] else "tab:red" for r in rows]
    fig, ax = plt.subplots(figsize=(12, 0.6 * len(rows) + 1.5))
    ax.barh(names, ratios, color=colors)
    for i, r in enumerate(rows):
        if r["target"] is not None:
            ax.plot([r["target"], r["target"]], [i - 0.4, i + 0.4], color="black")
    ax.set_xscale("log")
    ax.set_xlabel("clacksd ÷ peer (log scale; black line = target; gray = no target)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "chart.png"), dpi=100)
    print(f"chart written to {os.path.join(out, 'chart.png')}")

try:
    chart()
except Exception as e:  # the table is the result; the chart is a convenience
    print(f"no chart: {e}")
