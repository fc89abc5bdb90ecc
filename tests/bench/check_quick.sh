#!/usr/bin/env bash
# The benchmark harness end to end (meson suite 'bench'):
#   1. tern-bench's command line: bad flags and targets outside loopback or
#      198.18.0.0/15 are refused with one line and exit status 2;
#   2. `bench/run quick` against ternd, gtlsserver and the references on
#      loopback: results.json holds every figure as a number, with its
#      references and ratios, ratios are positive, no stateless-reset rule
#      was broken, and every plot is a PNG.
# Presence and sanity only: timing thresholds would make CI flaky on a
# shared machine; the figures themselves belong in the README.
#
#   check_quick.sh SOURCE_ROOT BUILD_ROOT
set -uo pipefail
[ $# -eq 2 ] || { echo "usage: $0 SOURCE_ROOT BUILD_ROOT" >&2; exit 2; }
src=$1 build=$2
export PATH="$PATH:/usr/sbin:/sbin"
fail() { echo "bench_quick: FAIL: $*" >&2; exit 1; }
for p in gtlsserver gnuplot python3 ss; do
	command -v $p >/dev/null 2>&1 || { echo "bench_quick: SKIP: $p is not installed" >&2; exit 77; }
done
LG=$build/tools/tern-bench
work=$(mktemp -d "${TMPDIR:-/tmp}/tern-bench-test.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT

# ---- 1. the command line ---------------------------------------------------------------
# expect_usage DESCRIPTION WANTED-TEXT ARGS...: exit 2, one line naming the problem
expect_usage() {
	local what=$1 want=$2
	shift 2
	"$LG" "$@" >"$work/out" 2>"$work/err"
	local rc=$?
	[ $rc -eq 2 ] || fail "$what: exit status $rc, expected 2"
	[ "$(wc -l <"$work/err")" -eq 1 ] || fail "$what: expected one line on stderr, got: $(cat "$work/err")"
	grep -q -- "$want" "$work/err" || fail "$what: stderr lacks '$want': $(cat "$work/err")"
}
expect_usage "public target" "refusing --target 8.8.8.8:443" handshake --target 8.8.8.8:443
expect_usage "next to the benchmark range" "refusing" handshake --target 198.20.0.1:443
expect_usage "IPv6 outside loopback" "refusing" bulk --target "[2001:db8::1]:443"
expect_usage "name instead of address" "bad --target" handshake --target localhost:443
expect_usage "no target" "missing --target" requests
expect_usage "unknown mode" "unknown mode" flood --target 127.0.0.1:443
expect_usage "unknown option" "unknown option '--bogus'" handshake --target 127.0.0.1:443 --bogus 1
expect_usage "flag of another mode" "--abandon does not apply to bulk" bulk --target 127.0.0.1:443 --abandon initial
expect_usage "bad abandon" "bad --abandon" handshake --target 127.0.0.1:443 --abandon sometimes
expect_usage "bad duration" "bad --duration" handshake --target 127.0.0.1:443 --duration forever
expect_usage "zero count" "bad --count" handshake --target 127.0.0.1:443 --count 0
expect_usage "bad size mix" "bad --sizes" reset-probe --target 127.0.0.1:443 --sizes 40,,50
expect_usage "dpdk without --local" "needs --local ADDR:PORT" handshake --target 127.0.0.1:443 --datapath dpdk
expect_usage "xdp without --interface" "needs --interface" handshake --target 198.18.0.1:443 --datapath xdp --local 198.18.0.2:4000
expect_usage "dpdk without EAL" "needs --dpdk-eal" bulk --target 198.18.0.1:443 --datapath dpdk --local 198.18.0.2:4000
expect_usage "families differ" "different families" bulk --target 198.18.0.1:443 --datapath dpdk --local "[::1]:4000"
expect_usage "bad MAC" "bad --peer-mac" handshake --target 198.18.0.1:443 --datapath xdp --peer-mac 02:00:00:00:00
expect_usage "EAL on sockets" "does not apply to --datapath socket" handshake --target 127.0.0.1:443 --dpdk-eal "--no-pci"
expect_usage "unknown datapath" "bad --datapath" handshake --target 127.0.0.1:443 --datapath carrier-pigeon
expect_usage "twice" "given twice" handshake --target 127.0.0.1:443 --rate 1 --rate 2
"$LG" --help | grep -q "^usage: tern-bench MODE" || fail "--help prints no usage"
# 198.18.0.0/15 and ::1 are accepted: the target is judged before --count
expect_usage "benchmark range" "bad --count" handshake --target 198.19.255.254:443 --count 0
expect_usage "IPv6 loopback" "bad --count" handshake --target "[::1]:443" --count 0
# a bounded run against a port where nobody listens ends by itself, says
# nothing completed (exit 1) and still writes its JSON
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
timeout 20 "$LG" handshake --target "127.0.0.1:$port" --count 5 --duration 1s --quiet \
	--json "$work/silent.json" >/dev/null 2>&1
rc=$?
[ $rc -eq 1 ] || fail "a run against a silent port exited $rc, expected 1 (nothing completed)"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["results"]["completed"] == 0 and r["stopped_by"] == "duration"' \
	"$work/silent.json" || fail "the silent run's JSON is wrong"

# ---- 2. the quick suite ---------------------------------------------------------------------
out=$work/quick
timeout -k 10 330 "$src/bench/run" quick --build "$build" --out "$out" >"$work/run.log" 2>&1
rc=$?
[ $rc -eq 0 ] || { tail -n 30 "$work/run.log" >&2; fail "bench/run quick exited $rc"; }
python3 - "$out/results.json" <<'PY' || fail "results.json is incomplete (see above)"
import json, math, sys

r = json.load(open(sys.argv[1]))
bad = []

def num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

need = ["handshakes_per_s", "handshake_latency_p50_ms", "handshake_latency_p99_ms",
        "handshake_latency_p999_ms", "abandoned_handshakes_per_s", "abandoned_initials_per_s",
        "server_datagrams_per_abandoned_initial", "goodput_gbit_s", "goodput_peak_gbit_s",
        "jain_fairness", "server_cpu_s_per_gb", "reset_replies_per_s", "reset_limited_replies_per_s",
        "reset_rules_broken", "gtlsserver_reset_replies_per_s", "requests_per_s",
        "request_latency_p50_ms", "request_latency_p99_ms", "request_latency_p999_ms"]
figs = r.get("figures", {})
for name in need:
    if name not in figs:
        bad.append("missing figure " + name)
# zero is a legitimate value only where counting what should not happen or
# what a peer does not do
may_be_zero = {"reset_rules_broken", "gtlsserver_reset_replies_per_s"}
for name, f in figs.items():
    v = f.get("value")
    if not num(v) or v < 0 or (v == 0 and name not in may_be_zero):
        bad.append("%s: value %r" % (name, v))
    for k, ref in f.get("reference", {}).items():
        if not num(ref) or ref < 0:
            bad.append("%s: reference %s %r" % (name, k, ref))
        rt = f.get("ratio", {}).get(k)
        if not num(rt) or rt <= 0:
            bad.append("%s: ratio to %s %r" % (name, k, rt))
    if not f.get("command", "").startswith("tern-bench "):
        bad.append("%s: no command" % name)
for name, f in figs.items():
    for k, m in f.get("met", {}).items():
        if not isinstance(m, bool):
            bad.append("%s: target %s not evaluated" % (name, k))
if figs.get("reset_rules_broken", {}).get("value") != 0:
    bad.append("a stateless-reset rule was broken: %r" % figs.get("reset_rules_broken"))
for k, v in r.get("references", {}).items():
    if not num(v) or v <= 0:
        bad.append("reference %s: %r" % (k, v))
for k in ("handshakes_per_s", "server_cpu_s_per_gb", "reset_replies_per_s"):
    if k in figs and not figs[k]["target"]:
        bad.append("%s: the issue's target is missing" % k)
if r.get("machine", {}).get("cpus", 0) < 1 or not r.get("table"):
    bad.append("machine or table missing")
for b in bad:
    print("bench_quick: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
for p in goodput_vs_connections handshakes_vs_load latency_cdf reset_vs_offered; do
	f=$out/$p.png
	[ -s "$f" ] || fail "plot $p.png missing"
	[ "$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$p.png is not a PNG"
done
echo "bench_quick: results.json holds every figure; 4 plots; $(grep -c . "$out/log.txt") log lines"
exit 0
