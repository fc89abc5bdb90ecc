#!/usr/bin/env bash
# bench/datapaths.sh: ternd's three datapaths side by side, in one run, on
# the topology of the dpdk/xdp tests (tests/interop/topo.sh: a veth pair
# between two network namespaces, 198.18.0.1 serving, 198.18.0.2 fetching).
# Issues 6 and 7.
#
# For each of socket, XDP (--interface on the veth) and DPDK (net_af_packet
# on the veth), ternd with one worker:
#   - bulk: gtlsclient downloads one file (default 200 MiB) over HTTP/3,
#     checked by sha256; goodput, and ternd's CPU seconds (utime + stime of
#     the whole process, from /proc), so goodput per CPU-second ("per core");
#   - resets: tern-bench reset-probe floods unknown-CID short headers from
#     the client namespace for a few seconds (the limiter opened wide) and
#     counts the stateless resets that come back, checking their rules.
#     Without a working tern-bench, a small Python flood does the counting.
# References measured in the same run:
#   - gtlsserver (ngtcp2) serving the same file on the same topology;
#   - the raw wolfCrypt AES-128-GCM seal rate (bench_core), the ceiling of
#     one core's bulk goodput.
# Prints a table with the ratios, writes JSON (default bench/out/datapaths.json).
#
#   bench/datapaths.sh [--size BYTES] [--runs N] [--probe-secs S] [--json FILE] [--build DIR]
#
# Root only. Every process and both namespaces are removed on exit. Note
# that the client, ternd and (for DPDK) a busy-polling lcore share the
# machine's cores: on a small machine the figures are the machine's too.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build size=$((200 * 1024 * 1024)) runs=1 probe_secs=3 json=$top/bench/out/datapaths.json
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--probe-secs) probe_secs=$2; shift 2 ;;
	--json) json=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	*) echo "usage: $0 [--size BYTES] [--runs N] [--probe-secs S] [--json FILE] [--build DIR]" >&2; exit 2 ;;
	esac
done
case $build in /*) ;; *) build=$PWD/$build ;; esac
export PATH="$PATH:/usr/sbin:/sbin"
say() { printf 'datapaths: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, veth, XDP, DPDK)"
for p in gtlsclient gtlsserver python3 ip ethtool; do command -v $p >/dev/null || die "$p is not installed"; done
ternd=$build/tools/ternd certs=$build/tests bench_core=$build/bench/bench_core tern_bench=$build/tools/tern-bench
for f in "$ternd" "$bench_core"; do [ -x "$f" ] || die "$f is missing: build $build first"; done
[ -f "$certs/ec-cert.pem" ] || ninja -C "$build" tests/ec-cert.pem >/dev/null || die "no test certificates in $certs"
# shellcheck source=../tests/interop/topo.sh
. "$top/tests/interop/topo.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/tern-datapaths.XXXXXX") || die "mktemp failed"
# shellcheck disable=SC2034 # read by topo.sh
TOPO_LOG=$work/topo.log
spid=
stop_server() {
	[ -n "$spid" ] || return 0
	kill -TERM "$spid" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	spid=
}
cleanup() {
	stop_server
	topo_down
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

mkdir "$work/www" "$work/dl"
head -c "$size" /dev/urandom >"$work/www/file" || die "cannot write the test file"
want=$(sha256sum "$work/www/file" | cut -d' ' -f1)
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
now() { date +%s.%N; }

# The ceiling: raw wolfCrypt AES-128-GCM seal, one core.
say "bench_core (raw wolfCrypt AES-128-GCM seal rate)"
"$bench_core" >"$work/bench_core.txt" 2>&1 || die "bench_core failed: $(tail -n1 "$work/bench_core.txt")"
seal_gbs=$(sed -n 's/.*raw wolfCrypt \([0-9.]*\) GB\/s.*/\1/p' "$work/bench_core.txt" | head -n1)
[ -n "$seal_gbs" ] || die "bench_core printed no 'raw wolfCrypt N GB/s' line"
seal_gbit=$(awk -v g="$seal_gbs" 'BEGIN { printf "%.3f", g * 8 }')

# tern-bench works when it answers --help with its reset-probe mode.
use_tb=0
[ -x "$tern_bench" ] && "$tern_bench" --help 2>&1 | grep -q reset-probe && use_tb=1

# start_server KIND: ternd on datapath KIND, or gtlsserver, in $TOPO_SRV.
start_server() {
	local kind=$1 dpf=()
	case $kind in
	gtlsserver)
		"${SRV[@]}" gtlsserver -q --no-quic-dump --no-http-dump -d "$work/www" "$TOPO_SRV4" "$TOPO_PORT" \
			"$certs/ec-key.pem" "$certs/ec-cert.pem" >"$work/server.log" 2>&1 &
		spid=$!
		sleep 0.5
		kill -0 "$spid" 2>/dev/null || die "gtlsserver did not start: $(tail -n1 "$work/server.log")"
		return 0
		;;
	dpdk) dpf=(--dpdk-eal "$(topo_eal 1)") ;;
	xdp) dpf=(--interface "$TOPO_SRV_IF") ;;
	esac
	"${SRV[@]}" "$ternd" --datapath "$kind" "${dpf[@]}" --listen "$TOPO_SRV4:$TOPO_PORT" \
		--cert "$certs/ec-cert.pem" --key "$certs/ec-key.pem" --docroot "$work/www" \
		--reset-rate 1000000000 --reset-burst 1000000 >"$work/server.log" 2>&1 &
	spid=$!
	for _ in $(seq 300); do
		grep -q '^ternd: listening on' "$work/server.log" && return 0
		kill -0 "$spid" 2>/dev/null || die "ternd ($kind) did not start: $(tail -n1 "$work/server.log")"
		sleep 0.05
	done
	die "ternd ($kind) printed no 'listening on' line within 15 s"
}

# bulk KIND: one download; prints "seconds cpu_seconds".
bulk() {
	local c0 c1 t0 t1 rc
	rm -f "$work/dl/file"
	c0=$(cpu_ticks "$spid")
	t0=$(now)
	in_cli timeout -k 2 180 gtlsclient -q --exit-on-all-streams-close --download "$work/dl" \
		"$TOPO_SRV4" "$TOPO_PORT" "https://$TOPO_SRV4:$TOPO_PORT/file" >"$work/client.log" 2>&1
	rc=$?
	t1=$(now)
	c1=$(cpu_ticks "$spid")
	[ $rc -eq 0 ] && [ "$(sha256sum "$work/dl/file" | cut -d' ' -f1)" = "$want" ] ||
		die "$1: the download failed or differs (gtlsclient status $rc): $(tail -n1 "$work/client.log")"
	awk -v a="$t0" -v b="$t1" -v c0="$c0" -v c1="$c1" -v t="$tck" 'BEGIN { printf "%.4f %.4f\n", b - a, (c1 - c0) / t }'
}

# A stand-in for tern-bench reset-probe: unknown-CID short headers of 100
# bytes as fast as one Python loop sends them, replies counted; prints
# "sent_per_s replies_per_s rules_broken".
py_flood() {
	in_cli timeout -k 2 $((probe_secs + 10)) python3 - "$TOPO_SRV4" "$TOPO_PORT" "$probe_secs" <<'EOF'
import os, select, socket, sys, time
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
s.connect((host, port))
sent = replies = broken = 0
end = time.monotonic() + secs
while time.monotonic() < end:
    for _ in range(64):
        try:
            s.send(bytes([0x40 | (os.urandom(1)[0] & 0x3f)]) + os.urandom(99)); sent += 1
        except BlockingIOError:
            break
    while True:
        try:
            r = s.recv(2048)
        except (BlockingIOError, ConnectionRefusedError):
            break
        replies += 1
        broken += not (21 <= len(r) < 100 and r[0] & 0xc0 == 0x40)
t = time.monotonic() + 0.2
while time.monotonic() < t:
    if select.select([s], [], [], 0.05)[0]:
        try:
            r = s.recv(2048); replies += 1
            broken += not (21 <= len(r) < 100 and r[0] & 0xc0 == 0x40)
        except (BlockingIOError, ConnectionRefusedError):
            pass
print("%.0f %.0f %d" % (sent / secs, replies / secs, broken))
EOF
}

# resets KIND: the flood; prints "sent_per_s replies_per_s rules_broken cpu_seconds".
resets() {
	local c0 c1 out
	c0=$(cpu_ticks "$spid")
	if [ $use_tb = 1 ]; then
		in_cli timeout -k 2 $((probe_secs + 20)) "$tern_bench" reset-probe --target "$TOPO_SRV4:$TOPO_PORT" \
			--rate 0 --sizes 100 --duration "${probe_secs}s" --reset-limit 1000000000:1000000 --quiet \
			--json "$work/rp-$1.json" >"$work/rp-$1.log" 2>&1 || die "$1: tern-bench reset-probe failed: $(tail -n1 "$work/rp-$1.log")"
		out=$(python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["results"]
print("%.0f %.0f %d" % (r["sent_per_s"], r["replies_per_s"], r["rules_broken"]))' "$work/rp-$1.json") ||
			die "$1: cannot read tern-bench's JSON"
	else
		out=$(py_flood) || die "$1: the Python flood failed"
	fi
	c1=$(cpu_ticks "$spid")
	echo "$out $(awk -v c0="$c0" -v c1="$c1" -v t="$tck" 'BEGIN { printf "%.3f", (c1 - c0) / t }')"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# One server on a fresh topology: median bulk figures of $runs downloads,
# then the reset flood (ternd only). Appends "KIND secs cpu sent/s replies/s broken cpu" to results.
: >"$work/results"
measure() {
	local kind=$1 mode=kernel
	[ "$kind" = dpdk ] && mode=bypass
	topo_up "$mode" 1 || die "cannot build the topology ($(tail -n1 "$TOPO_LOG"))"
	start_server "$kind"
	[ "$kind" = gtlsserver ] || say "$kind: $(sed -n 's/^ternd: listening on //p' "$work/server.log")"
	: >"$work/bulk"
	for _ in $(seq "$runs"); do bulk "$kind" >>"$work/bulk"; done
	local secs cpu r="- - - -"
	secs=$(cut -d' ' -f1 "$work/bulk" | median)
	cpu=$(cut -d' ' -f2 "$work/bulk" | median)
	[ "$kind" = gtlsserver ] || r=$(resets "$kind")
	say "$kind: $size bytes in $secs s, server CPU $cpu s; resets (sent/s replies/s broken cpu): $r"
	echo "$kind $secs $cpu $r" >>"$work/results"
	stop_server
	topo_down
}

for kind in socket xdp dpdk; do
	if "$ternd" --datapath "$kind" --listen 198.18.0.1:1 --cert /dev/null --key /dev/null 2>&1 |
		grep -q 'not available in this build'; then
		say "$kind: not in this build, skipped"
		continue
	fi
	measure "$kind"
done
measure gtlsserver

mkdir -p "$(dirname "$json")"
python3 - "$work/results" "$size" "$runs" "$probe_secs" "$seal_gbit" "$json" "$([ $use_tb = 1 ] && echo tern-bench || echo python)" \
	"$(nproc)" "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)" <<'EOF'
import json, sys
res, size, runs, probe, seal, out, prober, ncpu, model = sys.argv[1:]
size, seal = int(size), float(seal)
rows = {}
for line in open(res):
    k, secs, cpu, sps, rps, broken, rcpu = line.split()
    secs, cpu = float(secs), float(cpu)
    gbit = size * 8 / secs / 1e9
    row = {"seconds": secs, "goodput_gbit_s": round(gbit, 3), "server_cpu_s": cpu,
           "goodput_per_cpu_s_gbit": round(size * 8 / cpu / 1e9, 3) if cpu > 0 else None}
    if sps != "-":
        row["resets"] = {"sent_per_s": float(sps), "replies_per_s": float(rps), "rules_broken": int(broken),
                         "server_cpu_s": float(rcpu),
                         "replies_per_cpu_s": round(float(rps) * float(probe) / float(rcpu)) if float(rcpu) > 0 else None}
    rows[k] = row
g = rows.get("gtlsserver")
for k, r in rows.items():
    pc = r["goodput_per_cpu_s_gbit"]
    r["ratio_per_core_to_seal_ceiling"] = round(pc / seal, 3) if pc else None
    if g and k != "gtlsserver":
        r["ratio_goodput_to_gtlsserver"] = round(r["goodput_gbit_s"] / g["goodput_gbit_s"], 3)
        gp = g["goodput_per_cpu_s_gbit"]
        r["ratio_per_core_to_gtlsserver"] = round(pc / gp, 3) if pc and gp else None
doc = {"bench": "datapaths", "size_bytes": size, "runs": int(runs), "probe_seconds": float(probe),
       "reset_prober": prober, "cpus": int(ncpu), "cpu_model": model,
       "topology": "veth pair between two network namespaces, 198.18.0.1 <-> 198.18.0.2, one worker",
       "seal_ceiling_gbit_s": seal, "servers": rows}
json.dump(doc, open(out, "w"), indent=2)
hdr = "%-10s %9s %8s %11s %9s %9s %10s %11s %12s" % ("server", "Gbit/s", "CPU s", "Gbit/CPU-s", "/ceiling",
                                                      "/gtlssrv", "resets/s", "resets/CPU-s", "sent/s")
print(hdr)
for k, r in rows.items():
    rs = r.get("resets", {})
    f = lambda v, fmt: (fmt % v) if v is not None else "-"
    print("%-10s %9.3f %8.2f %11s %9s %9s %10s %11s %12s" % (
        k, r["goodput_gbit_s"], r["server_cpu_s"], f(r["goodput_per_cpu_s_gbit"], "%.3f"),
        f(r["ratio_per_core_to_seal_ceiling"], "%.3f"), f(r.get("ratio_goodput_to_gtlsserver"), "%.2f"),
        f(rs.get("replies_per_s"), "%.0f"), f(rs.get("replies_per_cpu_s"), "%.0f"), f(rs.get("sent_per_s"), "%.0f")))
print("ceiling: raw wolfCrypt AES-128-GCM seal %.2f Gbit/s on one core (bench_core, same run); "
      "/ceiling = goodput per CPU-second / ceiling; /gtlssrv = goodput / gtlsserver's; "
      "%d bytes, median of %d, resets by %s over %s s" % (seal, size, int(runs), prober, probe))
broken = sum(r.get("resets", {}).get("rules_broken", 0) for r in rows.values())
if broken:
    print("WARNING: %d reset replies broke the rules (size, header form)" % broken)
print("JSON: %s" % out)
sys.exit(1 if broken else 0)
EOF
