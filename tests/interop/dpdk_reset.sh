#!/usr/bin/env bash
# Issue 6, the stateless-reset responder on the DPDK datapath: 100,000
# short-header packets with unknown CIDs and random sizes (1..1200 bytes of
# UDP payload), written by dpdk_reset_pcap.py, replayed through net_pcap
# (rx_pcap=IN, tx_pcap=OUT). The output capture, decoded by tshark, must
# hold only stateless resets (RFC 9000 §10.3): from the listen address,
# short header with the fixed bit, strictly smaller than the trigger and at
# least 21 bytes, one per trigger, the same token for the same CID; and no
# more than the limiter allows:
#  1. --reset-rate 0 --reset-burst 1000: exactly 1000, to exactly the first
#     1000 triggers of 22 bytes or more, and /metrics counts the rest of
#     those as rate-limited;
#  2. --reset-rate 20000 --reset-burst 200: at most 200 + 20000 x (seconds
#     from ternd's start until the replay was read), at least the burst.
# Root only (DPDK's EAL, net_pcap).
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=topo.sh
. "$(dirname "$0")/topo.sh"
[ "$(id -u)" = 0 ] || skip "needs root (DPDK's EAL)"
need tshark curl python3
PY=$(dirname "$0")/dpdk_reset_pcap.py
N=100000
PFX=tern-e2e-$$-pcap
trap 'rc=$?; [ $rc -ne 0 ] && FAILED=1; cleanup; rm -rf "/var/run/dpdk/$PFX"; exit $rc' EXIT

# pcap_ternd NAME IN OUT [flags]: ternd on net_pcap, no network at all.
pcap_ternd() {
	local name=$1 in=$2 out=$3
	shift 3
	TERND_LOG=$WORK/$name.log
	"$TERND" --datapath dpdk --listen 198.18.0.1:4433 --cert "$CERTS/ec-cert.pem" --key "$CERTS/ec-key.pem" \
		--dpdk-eal "--no-huge -m 1024 --no-pci --no-shconf --no-telemetry -l 0 --file-prefix=$PFX --vdev=net_pcap0,rx_pcap=$in,tx_pcap=$out" \
		--metrics 127.0.0.1:0 "$@" >"$TERND_LOG" 2>&1 &
	TERND_PID=$!
	PIDS+=("$TERND_PID")
	for _ in $(seq 300); do
		METRICS=$(sed -n 's/^ternd: metrics on \([0-9.]*:[0-9][0-9]*\)$/\1/p' "$TERND_LOG")
		[ -n "$METRICS" ] && return 0
		if ! kill -0 "$TERND_PID" 2>/dev/null; then
			grep -q 'is not available in this build' "$TERND_LOG" && skip "$(tail -n1 "$TERND_LOG")"
			show "$TERND_LOG"
			fail "ternd on net_pcap exited at startup: $(tail -n1 "$TERND_LOG")"
		fi
		sleep 0.05
	done
	fail "ternd on net_pcap did not start within 15 s"
}

# wait_read FILE COUNT: until the datapath has read COUNT frames (10 s).
wait_read() {
	for _ in $(seq 200); do
		metrics_get "$1"
		[ "$(mval "$1" 'tern_worker_datagrams_received_total{worker="0"}')" -ge "$2" ] && return 0
		sleep 0.05
	done
	fail "the replay was not read within 10 s: $(mval "$1" 'tern_worker_datagrams_received_total{worker="0"}') of $2 datagrams"
}

# decode OUT FIELDS: the output capture as tshark sees it.
decode() {
	local notquic
	notquic=$(tshark -r "$1" -d udp.port==4433,quic -Y '!quic || !ip || !udp' 2>/dev/null | wc -l)
	[ "$notquic" = 0 ] || fail "tshark finds $notquic frames in $(basename "$1") that are not QUIC over UDP/IPv4"
	tshark -r "$1" -d udp.port==4433,quic -T fields -E separator=/t -e ip.src -e ip.dst -e udp.srcport \
		-e udp.dstport -e quic.header_form -e quic.fixed_bit -e udp.length -e udp.payload >"$2" 2>/dev/null ||
		fail "tshark cannot read $(basename "$1")"
}

# The port's MAC first: the answer to an ARP request names it.
python3 "$PY" arp "$WORK/arp.pcap" || fail "cannot write the ARP capture"
pcap_ternd arp "$WORK/arp.pcap" "$WORK/arp-out.pcap"
wait_read "$WORK/m-arp" 0
sleep 0.3
stop_ternd >/dev/null
mac=$(tshark -r "$WORK/arp-out.pcap" -Y 'arp.opcode == 2 && arp.src.proto_ipv4 == 198.18.0.1' -T fields -e arp.src.hw_mac 2>/dev/null | head -n1)
[ -n "$mac" ] || fail "ternd on net_pcap answered no ARP request (output: $(tshark -r "$WORK/arp-out.pcap" 2>/dev/null | head -n1))"

t0=$(now)
python3 "$PY" gen "$WORK/in.pcap" "$WORK/manifest" "$mac" "$N" 1 || fail "cannot write the trigger capture"
eligible=$(awk '$3 >= 22' "$WORK/manifest" | wc -l)
note "$N triggers to $mac written in $(elapsed "$t0") s, $eligible of them of 22 bytes or more"

# 1. rate 0, burst 1000: exactly 1000.
K=1000
pcap_ternd exact "$WORK/in.pcap" "$WORK/out1.pcap" --reset-rate 0 --reset-burst $K
t0=$(now)
wait_read "$WORK/m1" $N
note "exact: $N datagrams read in about $(elapsed "$t0") s"
stop_ternd >"$WORK/stop1.log"
grep 'stopped' "$WORK/stop1.log"
decode "$WORK/out1.pcap" "$WORK/f1"
python3 "$PY" check "$WORK/manifest" "$WORK/f1" "exact:$K" >"$WORK/c1" 2>&1
rc=$?
sed "s/^/$NAME: exact: /" "$WORK/c1"
[ $rc = 0 ] || fail "rate 0, burst $K: $(sed -n 2p "$WORK/c1")"
[ "$(mval "$WORK/m1" tern_stateless_resets_sent_total)" = $K ] ||
	fail "tern_stateless_resets_sent_total is $(mval "$WORK/m1" tern_stateless_resets_sent_total), expected $K"
rl=$(mval "$WORK/m1" 'tern_stateless_resets_suppressed_total{why="rate_limited"}')
[ "$rl" = $((eligible - K)) ] || fail "rate_limited is $rl, expected $((eligible - K))"
ts1=$(mval "$WORK/m1" 'tern_stateless_resets_suppressed_total{why="too_small"}')
small=$(awk '$3 < 22' "$WORK/manifest" | wc -l)
[ "$ts1" -le "$small" ] && [ "$ts1" -gt 0 ] || fail "too_small is $ts1; $small triggers are under 22 bytes"
note "exact: $K resets sent, $rl rate-limited, $ts1 too small (of $small under 22 bytes; the shortest hold no whole CID)"

# 2. rate 20000/s, burst 200: bounded by the time ternd ran.
R=20000 B=200
t0=$(now)
pcap_ternd rate "$WORK/in.pcap" "$WORK/out2.pcap" --reset-rate $R --reset-burst $B
wait_read "$WORK/m2" $N
secs=$(elapsed "$t0")
budget=$(awk -v b=$B -v r=$R -v s="$secs" 'BEGIN { printf "%d", b + r * s }')
stop_ternd >"$WORK/stop2.log"
grep 'stopped' "$WORK/stop2.log"
decode "$WORK/out2.pcap" "$WORK/f2"
python3 "$PY" check "$WORK/manifest" "$WORK/f2" "max:$budget" >"$WORK/c2" 2>&1
rc=$?
sed "s/^/$NAME: rate: /" "$WORK/c2"
[ $rc = 0 ] || fail "rate $R, burst $B: $(sed -n 2p "$WORK/c2")"
got=$(wc -l <"$WORK/f2")
[ "$got" = "$(mval "$WORK/m2" tern_stateless_resets_sent_total)" ] ||
	fail "the capture holds $got resets, /metrics counts $(mval "$WORK/m2" tern_stateless_resets_sent_total)"
[ "$got" -ge $B ] || fail "only $got resets: the burst of $B was not even spent"
note "rate: $got resets in $secs s of ternd (budget $B + $R/s x $secs s = $budget)"
