#!/usr/bin/env bash
# bench/results.sh OUT SUITE RUNS DUR RATE:BURST "CONNS" "HS_RATES" "RESET_RATES" NCPU COMMIT
#
# Called by bench/run: reads OUT/runs/*.json (tern-bench, hs_crypto and
# bench_core results, medians over the RUNS repeats) and writes
# OUT/results.json (every figure, its references, ratios and the issue's
# targets), the gnuplot data files OUT/*.dat and OUT/refs.gp.
set -uo pipefail
[ $# -eq 10 ] || { echo "usage: $0 OUT SUITE RUNS DUR RATE:BURST CONNS HS_RATES RESET_RATES NCPU COMMIT" >&2; exit 2; }
exec python3 - "$@" <<'PY'
import datetime, json, os, platform, statistics, sys

out, suite, runs, dur, reset_limit, conns, hs_rates, reset_rates, ncpu, commit = sys.argv[1:]
reset_rate, _, reset_burst = reset_limit.partition(":")
runs, dur, ncpu = int(runs), float(dur), int(ncpu)
reset_limit, reset_burst = float(reset_rate), float(reset_burst or 0)
conns = [int(c) for c in conns.split()]
hs_rates = [float(r) for r in hs_rates.split()]
reset_rates = reset_rates.split()
R = os.path.join(out, "runs")


def load(rid):
    """Every repeat of one run id: (result, server CPU seconds, command)."""
    got = []
    for k in range(1, runs + 1):
        base = os.path.join(R, "%s.r%d" % (rid, k))
        try:
            with open(base + ".json") as f:
                res = json.load(f)
        except (OSError, ValueError):
            continue
        cpu = None
        if os.path.exists(base + ".cpu"):
            with open(base + ".cpu") as f:
                cpu = float(f.read().strip() or 0)
        cmd = open(base + ".cmd").read().strip() if os.path.exists(base + ".cmd") else ""
        got.append((res, cpu, cmd))
    return got


def dig(obj, path):
    for p in path.split("."):
        if not isinstance(obj, dict) or p not in obj:
            return None
        obj = obj[p]
    return obj if isinstance(obj, (int, float)) else None


def med(rid, path):
    vals = [dig(r, path) for r, _, _ in load(rid)]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def cmd(rid):
    got = load(rid)
    return got[0][2] if got else ""


def cpu_per_gb(rid):
    vals = []
    for r, cpu, _ in load(rid):
        b = dig(r, "results.bytes_total")
        if cpu is not None and b:
            vals.append(cpu / (b / 1e9))
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


figures, table = {}, []


def figure(name, value, unit, better, refs, targets, command, note=""):
    """refs: {name: value}; targets: {ref name: (op, bound)}, checked on value/ref."""
    ratios = {k: ratio(value, v) for k, v in refs.items()}
    met = {}
    for k, (op, bound) in targets.items():
        r = ratios.get(k)
        met[k] = None if r is None else (r >= bound if op == ">=" else r <= bound)
    figures[name] = {
        "value": value, "unit": unit, "better": better, "reference": refs, "ratio": ratios,
        "target": {k: "%s %g x %s" % (op, b, k) for k, (op, b) in targets.items()},
        "met": met, "command": command, "note": note,
    }


def fmt(v):
    if v is None:
        return "n/a"
    return "%.3g" % v if abs(v) < 100 else "%.0f" % v


# ---- references -------------------------------------------------------------------------
crypto_hs = med("ref_crypto", "handshakes_per_s")
crypto_us = med("ref_crypto", "handshake_crypto_us")
seal = []
for r, _, _ in load("ref_core"):
    for e in r.get("results", []):
        if e.get("name", "").startswith("AEAD seal"):
            seal.append((e["ns"], e.get("reference_ns")))
seal_gbit = statistics.median([1200 * 8 / ns for ns, _ in seal]) if seal else None
raw_seal_gbit = statistics.median([1200 * 8 / rn for _, rn in seal if rn]) if seal else None
echo_max = med("rp.echo.0", "results.replies_per_s")

# ---- handshakes ---------------------------------------------------------------------------
def hs_peak(srv):
    """The best of the closed loops and the offered-rate sweep, and its run."""
    ids = ["hs.%s.max" % srv, "hs.%s.sat" % srv] + ["hs.%s.%g" % (srv, r) for r in hs_rates]
    vals = [(med(i, "results.handshakes_per_s"), i) for i in ids]
    vals = [v for v in vals if v[0] is not None]
    return max(vals) if vals else (None, None)

(t_hs, t_id), (g_hs, _) = hs_peak("ternd"), hs_peak("gtlsserver")
figure("handshakes_per_s", t_hs, "1/s", "higher",
       {"crypto_only": crypto_hs, "gtlsserver": g_hs},
       {"crypto_only": (">=", 0.5), "gtlsserver": (">=", 2)}, cmd(t_id or "hs.ternd.max"),
       "peak over the closed loops (16 and 256 in flight) and the offered-rate sweep, one server core")
for q in ("p50", "p99", "p999"):
    figure("handshake_latency_%s_ms" % q, med("hs.ternd.max", "latency_ms." + q), "ms", "lower",
           {"gtlsserver": med("hs.gtlsserver.max", "latency_ms." + q)}, {}, cmd("hs.ternd.max"),
           "closed loop, 16 handshakes in flight")
figure("abandoned_handshakes_per_s", med("hs_abandon_hs.ternd", "results.handshakes_per_s"), "1/s",
       "higher", {"gtlsserver": med("hs_abandon_hs.gtlsserver", "results.handshakes_per_s")}, {},
       cmd("hs_abandon_hs.ternd"), "offered 500/s, server idle timeout 2 s")
init_t = med("hs_abandon_init.ternd", "results.initials_per_s")
srv_t = med("hs_abandon_init.ternd", "results.server_datagrams_to_abandoned")
n_t = med("hs_abandon_init.ternd", "results.initials_sent")
srv_g = med("hs_abandon_init.gtlsserver", "results.server_datagrams_to_abandoned")
n_g = med("hs_abandon_init.gtlsserver", "results.initials_sent")
figure("abandoned_initials_per_s", init_t, "1/s", "higher",
       {"gtlsserver": med("hs_abandon_init.gtlsserver", "results.initials_per_s")}, {},
       cmd("hs_abandon_init.ternd"), "offered 500/s: the client sends one Initial and forgets it")
figure("server_datagrams_per_abandoned_initial", ratio(srv_t, n_t), "datagrams", "lower",
       {"gtlsserver": ratio(srv_g, n_g)}, {}, cmd("hs_abandon_init.ternd"),
       "what a half-open handshake costs the network, retransmissions included")

# ---- goodput and CPU ----------------------------------------------------------------------
def bulk(srv, c, path):
    return med("bulk.%s.%d" % (srv, c), path)

c1 = conns[0]
figure("goodput_gbit_s", bulk("ternd", c1, "results.goodput_gbit_s"), "Gbit/s", "higher",
       {"aead_seal": seal_gbit, "gtlsserver": bulk("gtlsserver", c1, "results.goodput_gbit_s")}, {},
       cmd("bulk.ternd.%d" % c1), "%d connection(s), GET /<N>; AEAD seal: tern_aead_seal of 1200 B on one core" % c1)
best = max(conns, key=lambda c: bulk("ternd", c, "results.goodput_gbit_s") or 0)
gbest = max(conns, key=lambda c: bulk("gtlsserver", c, "results.goodput_gbit_s") or 0)
figure("goodput_peak_gbit_s", bulk("ternd", best, "results.goodput_gbit_s"), "Gbit/s", "higher",
       {"aead_seal": seal_gbit, "gtlsserver": bulk("gtlsserver", gbest, "results.goodput_gbit_s")}, {},
       cmd("bulk.ternd.%d" % best), "best over connection counts %s (ternd: %d)" % (conns, best))
cm = conns[-1]
figure("jain_fairness", bulk("ternd", cm, "results.jain_fairness"), "index", "higher",
       {"gtlsserver": bulk("gtlsserver", cm, "results.jain_fairness")}, {},
       cmd("bulk.ternd.%d" % cm), "%d connections" % cm)
figure("server_cpu_s_per_gb", cpu_per_gb("bulk.ternd.%d" % c1), "s/GB", "lower",
       {"gtlsserver": cpu_per_gb("bulk.gtlsserver.%d" % c1)}, {"gtlsserver": ("<=", 0.5)},
       cmd("bulk.ternd.%d" % c1), "server user+system CPU over the run / body bytes, %d connection(s)" % c1)

# ---- stateless resets ---------------------------------------------------------------------
figure("reset_replies_per_s", med("rp.ternd.0", "results.replies_per_s"), "1/s", "higher",
       {"plain_forwarding": echo_max}, {"plain_forwarding": (">=", 0.5)}, cmd("rp.ternd.0"),
       "offered as fast as one client core can; limiter raised out of the way; size mix 21,22,43,100,1200 (21 gets no reply by rule)")
lim_top = med("rp.ternd_limited.0", "results.replies_per_s")
# the bucket starts full: over a run of dur seconds it may add burst/dur
figure("reset_limited_replies_per_s", lim_top, "1/s", "lower",
       {"limiter": reset_limit + reset_burst / dur}, {"limiter": ("<=", 1.0)}, cmd("rp.ternd_limited.0"),
       "under a flood; the limiter allows %g/s + a burst of %g over %g s" % (reset_limit, reset_burst, dur))
broken = 0
for rid in ["rp.ternd.%s" % r for r in reset_rates] + ["rp.ternd_limited.%s" % r for r in reset_rates]:
    for r, _, _ in load(rid):
        broken += r.get("results", {}).get("rules_broken", 0)
figure("reset_rules_broken", broken, "replies", "lower", {}, {}, cmd("rp.ternd_limited.0"),
       "replies not smaller than the trigger, under 21 bytes, not short-header, or over the limiter, all reset runs")
figure("gtlsserver_reset_replies_per_s", med("rp.gtlsserver.20000", "results.replies_per_s"), "1/s",
       "info", {}, {}, cmd("rp.gtlsserver.20000"), "ngtcp2's example server sends no stateless resets")

# ---- requests -----------------------------------------------------------------------------
figure("requests_per_s", med("req.ternd", "results.requests_per_s"), "1/s", "higher",
       {"gtlsserver": med("req.gtlsserver", "results.requests_per_s")}, {}, cmd("req.ternd"),
       "4 connections, 1 request in flight each, GET /100")
for q in ("p50", "p99", "p999"):
    figure("request_latency_%s_ms" % q, med("req.ternd", "latency_ms." + q), "ms", "lower",
           {"gtlsserver": med("req.gtlsserver", "latency_ms." + q)}, {}, cmd("req.ternd"))
recon = med("req.ternd", "results.reconnects_stream_limit")

# ---- plot data ------------------------------------------------------------------------------
def write(name, rows):
    with open(os.path.join(out, name), "w") as f:
        for row in rows:
            f.write(" ".join("NaN" if v is None else "%g" % v for v in row) + "\n")

write("handshake_load.dat", [
    (r, med("hs.ternd.%g" % r, "results.handshakes_per_s"), med("hs.ternd.%g" % r, "latency_ms.p99"),
     med("hs.gtlsserver.%g" % r, "results.handshakes_per_s"), med("hs.gtlsserver.%g" % r, "latency_ms.p99"))
    for r in hs_rates])
write("goodput_conns.dat", [
    (c, bulk("ternd", c, "results.goodput_gbit_s"), bulk("gtlsserver", c, "results.goodput_gbit_s"),
     bulk("ternd", c, "results.jain_fairness"), bulk("gtlsserver", c, "results.jain_fairness"))
    for c in conns])
for srv in ("echo", "ternd", "ternd_limited"):
    write("reset_%s.dat" % srv, [
        (med("rp.%s.%s" % (srv, r), "results.sent_per_s"), med("rp.%s.%s" % (srv, r), "results.replies_per_s"))
        for r in reset_rates])
for rid, name in (("hs.ternd.max", "cdf_hs_ternd"), ("hs.gtlsserver.max", "cdf_hs_gtlsserver"),
                  ("req.ternd", "cdf_req_ternd"), ("req.gtlsserver", "cdf_req_gtlsserver")):
    got = load(rid)
    write(name + ".dat", got[0][0].get("latency_cdf", []) if got else [])
with open(os.path.join(out, "refs.gp"), "w") as f:
    f.write("crypto_hs = %g\naead_gbit = %g\necho_max = %g\nreset_limit = %g\n" %
            (crypto_hs or 0, seal_gbit or 0, echo_max or 0, reset_limit))

# ---- results.json ----------------------------------------------------------------------------
model = "unknown"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
table.append("%-38s %12s %-10s %-34s %s" % ("figure", "tern", "unit", "reference (ratio)", "target"))
for name, f in figures.items():
    refs = ", ".join("%s %s (%s)" % (k, fmt(v), fmt(f["ratio"][k])) for k, v in f["reference"].items())
    tg = ", ".join("%s: %s" % (f["target"][k], {True: "met", False: "MISSED", None: "n/a"}[f["met"][k]])
                   for k in f["target"])
    table.append("%-38s %12s %-10s %-34s %s" % (name, fmt(f["value"]), f["unit"], refs or "-", tg or "-"))
res = {
    "suite": suite,
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "commit": commit,
    "machine": {"cpus": ncpu, "cpu_model": model, "kernel": platform.release(),
                "topology": "loopback; server pinned to core 0, tern-bench to core 1"},
    "seconds_per_point": dur, "runs_per_point": runs, "statistic": "median" if runs > 1 else "single run",
    "figures": figures,
    "references": {"crypto_only_handshakes_per_s": crypto_hs, "crypto_per_handshake_us": crypto_us,
                   "aead_seal_gbit_s": seal_gbit, "raw_wolfcrypt_seal_gbit_s": raw_seal_gbit,
                   "plain_forwarding_pps": echo_max},
    "notes": {"request_reconnects_stream_limit": recon},
    "table": table,
}
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(res, f, indent=2)
    f.write("\n")
PY
