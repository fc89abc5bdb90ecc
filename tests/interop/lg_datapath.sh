#!/usr/bin/env bash
# Issue 8: tern-bench on a kernel-bypass datapath (KIND dpdk or xdp), every
# mode against ternd and the handshake against gtlsserver. tern-bench owns
# the server end of the veth pair (tests/interop/topo.sh; 198.18.0.1,
# through net_af_packet for dpdk, AF_XDP for xdp), the servers run on
# kernel sockets in the other namespace (198.18.0.2). For dpdk that end's
# kernel has no address and answers no ARP, so nothing but the DPDK
# datapath can carry tern-bench's traffic; for xdp the run must show the
# program attached. Each mode's JSON is checked: counts that match what was
# asked, zero failures, every rule of the reset probe kept (each size class
# on its own port of the range), and ternd's /metrics agreeing with
# tern-bench on the handshakes. Root only.
#   lg_datapath.sh TERND TERN_CLIENT CERTS TERN_BENCH KIND
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=topo.sh
. "$(dirname "$0")/topo.sh"
LG=${1:?tern-bench} KIND=${2:?dpdk or xdp}
topo_prologue
need gtlsserver python3
[ -x "$LG" ] || fail "no tern-bench at $LG"

case $KIND in
dpdk) topo_mode=bypass ;;
xdp) topo_mode=kernel ;;
*) fail "KIND must be dpdk or xdp, not '$KIND'" ;;
esac
TOPO_LOG=$WORK/topo.log
topo_up "$topo_mode" 1 || { show "$TOPO_LOG"; fail "cannot build the veth pair and namespaces"; }
SRV_ADDR=$TOPO_CLI4 NEXT_PORT=40000
case $KIND in
dpdk) DPF=(--dpdk-eal "$(topo_eal 1)") ;;
xdp) DPF=(--interface "$TOPO_SRV_IF") ;;
esac
RESET_RATE=2000 RESET_BURST=200

# ternd on kernel sockets in the far namespace, with /metrics there.
"${CLI[@]}" "$TERND" --datapath socket --listen "$SRV_ADDR:4433" --cert "$CERTS/ec-cert.pem" \
	--key "$CERTS/ec-key.pem" --metrics 127.0.0.1:0 --reset-rate $RESET_RATE \
	--reset-burst $RESET_BURST >"$WORK/ternd.log" 2>&1 &
TERND_PID=$!
PIDS+=("$TERND_PID")
METRICS=''
for _ in $(seq 200); do
	METRICS=$(sed -n 's/^ternd: metrics on \([0-9.]*:[0-9][0-9]*\)$/\1/p' "$WORK/ternd.log")
	[ -n "$METRICS" ] && grep -q '^ternd: listening on' "$WORK/ternd.log" && break
	kill -0 "$TERND_PID" 2>/dev/null || { show "$WORK/ternd.log"; fail "ternd exited at startup"; }
	sleep 0.05
done
[ -n "$METRICS" ] || fail "ternd printed no metrics line"
metric() {
	in_cli curl -sf --max-time 5 "http://$METRICS/metrics" | awk -v k="$1" '$1 == k { print $2 }'
}

# lg NAME MODE [flags]: tern-bench in the server-end namespace on $KIND;
# its JSON in $WORK/NAME.json, its output in $WORK/NAME.log. Each run sends
# from ports of its own: servers still answer connections a run abandoned.
lg() {
	local name=$1 mode=$2
	shift 2
	LOCAL=$TOPO_SRV4:$NEXT_PORT
	NEXT_PORT=$((NEXT_PORT + 100))
	in_srv timeout -k 2 60 "$LG" "$mode" --datapath "$KIND" "${DPF[@]}" --local "$LOCAL" --quiet \
		--json "$WORK/$name.json" "$@" >"$WORK/$name.log" 2>&1
	local rc=$?
	[ $rc -eq 0 ] || { show "$WORK/$name.log"; fail "tern-bench $mode on $KIND exited $rc"; }
	note "$(grep -v '^tern-bench: ' "$WORK/$name.log" | tail -n1)"
}

# check NAME PYTHON-EXPR...: each expression must hold over the JSON (d).
check() {
	local name=$1
	shift
	python3 - "$WORK/$name.json" "$KIND" "$@" 2>"$WORK/check.err" <<'EOF' || fail "$name: $(tail -n1 "$WORK/check.err")"
import json, sys
d = json.load(open(sys.argv[1]))
r = d.get("results", {})
lat = d.get("latency_ms", {})
if d.get("datapath") != sys.argv[2]:
    sys.exit(f"the JSON says datapath {d.get('datapath')!r}")
for e in sys.argv[3:]:
    if not eval(e):
        sys.exit(f"{e} is false; results: {json.dumps(r)[:400]}")
EOF
}

created0=$(metric tern_connections_created_total)
lg hs handshake --target "$SRV_ADDR:4433" --count 300 --duration 30s --concurrency 8
check hs 'r["completed"] == 300' 'r["failed"] == 0' 'r["handshakes_per_s"] > 0' \
	'lat["samples"] == 300' '0 < lat["p50"] <= lat["p99"] <= lat["p999"]'
created1=$(metric tern_connections_created_total)
[ $((created1 - created0)) -eq 300 ] || fail "ternd counted $((created1 - created0)) connections for 300 handshakes"
grep -q "^tern-bench: sending from $LOCAL (1 port) on the $KIND datapath" "$WORK/hs.log" ||
	{ show "$WORK/hs.log"; fail "tern-bench did not say it sends on the $KIND datapath"; }
if [ "$KIND" = xdp ]; then
	grep -q "^tern-bench: .*$TOPO_SRV_IF" "$WORK/hs.log" ||
		{ show "$WORK/hs.log"; fail "tern-bench logged no XDP attach on $TOPO_SRV_IF"; }
fi

lg hs_init handshake --target "$SRV_ADDR:4433" --count 200 --abandon initial --duration 20s
check hs_init 'r["initials_sent"] == 200' 'r["server_datagrams_to_abandoned"] > 0'

# Sizes: 21 can never be answered (a reset must be smaller and at least 21
# bytes), the others always can while the limiter allows.
lg rp reset-probe --target "$SRV_ADDR:4433" --sizes 21,43,100,1200 --rate 1000 --duration 2s \
	--reset-limit "$RESET_RATE:$RESET_BURST"
check rp 'r["rules_broken"] == 0' 'r["replies_unmatched"] == 0' 'r["sent"] >= 1500' \
	'r["replies"] >= 0.6 * r["sent"]' \
	'[c["replies"] for c in r["by_size"] if c["size"] == 21] == [0]' \
	'all(c["replies"] > 0 and c["max_reply"] < c["size"] and c["min_reply"] >= 21 for c in r["by_size"] if c["size"] > 21)'

lg bulk bulk --target "$SRV_ADDR:4433" --conns 2 --streams 2 --size 3000000 --duration 4s
check bulk 'r["conns_established"] == 2' 'r["failed"] == 0' 'r["bad_status"] == 0' \
	'r["responses"] >= 4' 'r["goodput_gbit_s"] > 0' 'r["jain_fairness"] > 0.5' \
	'len(r["per_conn_mbit_s"]) == 2'

lg rq requests --target "$SRV_ADDR:4433" --conns 2 --depth 4 --count 400 --duration 20s
check rq 'r["responses"] >= 400' 'r["failed"] == 0' 'r["bad_status"] == 0' \
	'r["requests_per_s"] > 0' 'lat["samples"] >= 400'

# The same handshakes against ngtcp2's server.
kill "$TERND_PID" 2>/dev/null
wait "$TERND_PID" 2>/dev/null
mkdir -p "$WORK/www"
"${CLI[@]}" gtlsserver -q --no-quic-dump --no-http-dump -d "$WORK/www" "$SRV_ADDR" 4434 \
	"$CERTS/ec-key.pem" "$CERTS/ec-cert.pem" >"$WORK/gtlsserver.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do in_cli ss -Hlun 'sport = :4434' | grep -q . && break; sleep 0.05; done
lg hs_gtls handshake --target "$SRV_ADDR:4434" --count 100 --duration 30s --concurrency 8
# (one handshake in a few hundred runs here has ended in a close from
# gtlsserver: its reason is in the log, and one is tolerated)
grep '^tern-bench: the last failed' "$WORK/hs_gtls.log" && show "$WORK/gtlsserver.log" 5
check hs_gtls 'r["completed"] + r["failed"] == 100' 'r["failed"] <= 1'
note "every mode ran on $KIND against ternd, and the handshake against gtlsserver"
