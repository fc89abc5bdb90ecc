# shellcheck shell=bash
# The veth + network namespace topology of the dpdk/xdp end-to-end tests,
# bench/datapaths.sh and tools/run (issues 6 and 7). Sourced; root only.
#
# Both ends of the veth pair sit in namespaces of their own, named after
# the caller's pid, so the host's interfaces and routes never see the test
# traffic and parallel runs never meet:
#
#   $TOPO_SRV (ternd's side)                 $TOPO_CLI (gtlsclient's side)
#   $TOPO_SRV_IF  198.18.0.1/24  <--veth-->  $TOPO_CLI_IF  198.18.0.2/24
#
# Addresses come from the RFC 2544 benchmarking range 198.18.0.0/15.
#
#   topo_up MODE [QUEUES]  MODE kernel: the server end holds 198.18.0.1 (XDP,
#                          sockets, gtlsserver); MODE bypass: it holds no
#                          address and no IPv6, so that its kernel never
#                          answers for a user-space stack reading the raw
#                          frames (DPDK through net_af_packet). QUEUES: RX
#                          and TX queues of each end (default 1).
#   topo_down              removes both namespaces (the veth goes with them);
#                          idempotent, safe from an EXIT trap.
#   in_srv CMD... / in_cli CMD...   a command inside one namespace.
#   topo_sweep             removes the namespaces of runs whose pid is gone.
#
# The client end sends with TX checksum offload off: a veth hands frames on
# with the UDP checksum only partly computed (CHECKSUM_PARTIAL), which a
# datapath reading raw frames (af_packet, AF_XDP) sees as a bad checksum.

TOPO_PREFIX=tern-e2e
TOPO_SRV4=198.18.0.1
TOPO_CLI4=198.18.0.2
TOPO_SRV_IF=tern-s0
TOPO_CLI_IF=tern-c0
TOPO_SRV='' TOPO_CLI='' TOPO_UP=0
TOPO_LOG=/dev/null

topo_sweep() {
	local n pid
	for n in $(ip netns list 2>/dev/null | awk '{ print $1 }'); do
		case $n in "$TOPO_PREFIX"-*) ;; *) continue ;; esac
		pid=${n#"$TOPO_PREFIX"-}
		pid=${pid%%-*}
		case $pid in '' | *[!0-9]*) continue ;; esac
		kill -0 "$pid" 2>/dev/null && continue
		ip netns del "$n" 2>/dev/null
	done
}

in_srv() { ip netns exec "$TOPO_SRV" "$@"; }
in_cli() { ip netns exec "$TOPO_CLI" "$@"; }
# For a background process whose $! must be the process itself (ip netns
# exec execs it; a function would leave a subshell in between):
#   "${SRV[@]}" ternd ... &   or   "${CLI[@]}" gtlsclient ... &
# shellcheck disable=SC2034 # used by the scripts that source this
SRV=() CLI=()

# _topo host|srv|cli CMD...: one setup step, in that namespace, its
# output in $TOPO_LOG, bounded.
_topo() {
	local where=$1 ns=()
	shift
	case $where in
	srv) ns=(ip netns exec "$TOPO_SRV") ;;
	cli) ns=(ip netns exec "$TOPO_CLI") ;;
	esac
	echo "+ [$where] $*" >>"$TOPO_LOG"
	timeout 10 "${ns[@]}" "$@" >>"$TOPO_LOG" 2>&1
}

topo_up() {
	local mode=$1 q=${2:-1}
	[ "$(id -u)" = 0 ] || { echo "topo_up: needs root" >&2; return 1; }
	if ! command -v ip >/dev/null || ! command -v ethtool >/dev/null; then
		echo "topo_up: needs ip and ethtool" >&2
		return 1
	fi
	topo_sweep
	TOPO_SRV=$TOPO_PREFIX-$$-srv
	TOPO_CLI=$TOPO_PREFIX-$$-cli
	_topo host ip netns add "$TOPO_SRV" || { echo "topo_up: cannot create a network namespace" >&2; return 1; }
	TOPO_UP=1
	SRV=(ip netns exec "$TOPO_SRV")
	# shellcheck disable=SC2034 # used by the scripts that source this
	CLI=(ip netns exec "$TOPO_CLI")
	# Created directly inside the namespaces: the names never exist on the host.
	if ! _topo host ip netns add "$TOPO_CLI" ||
		! _topo host ip link add "$TOPO_SRV_IF" netns "$TOPO_SRV" numtxqueues "$q" numrxqueues "$q" \
			type veth peer name "$TOPO_CLI_IF" netns "$TOPO_CLI" numtxqueues "$q" numrxqueues "$q" ||
		! _topo srv ip link set lo up || ! _topo cli ip link set lo up ||
		! _topo cli sysctl -qw "net.ipv6.conf.$TOPO_CLI_IF.disable_ipv6=1" ||
		! _topo cli ethtool -K "$TOPO_CLI_IF" tx off ||
		! _topo cli ip addr add "$TOPO_CLI4/24" dev "$TOPO_CLI_IF"; then
		echo "topo_up: building the veth pair failed (see $TOPO_LOG)" >&2
		topo_down
		return 1
	fi
	case $mode in
	kernel) _topo srv ip addr add "$TOPO_SRV4/24" dev "$TOPO_SRV_IF" ;;
	bypass)
		# No address, no IPv6 (router solicitations), no ARP from this
		# kernel: the frames are the user-space stack's alone.
		_topo srv sysctl -qw "net.ipv6.conf.$TOPO_SRV_IF.disable_ipv6=1" &&
			_topo srv ip link set "$TOPO_SRV_IF" arp off
		;;
	*) false ;;
	esac || { echo "topo_up: bad mode '$mode' or its setup failed" >&2; topo_down; return 1; }
	if ! _topo srv ip link set "$TOPO_SRV_IF" up || ! _topo cli ip link set "$TOPO_CLI_IF" up; then
		echo "topo_up: cannot bring the veth pair up" >&2
		topo_down
		return 1
	fi
	return 0
}

topo_down() {
	[ "$TOPO_UP" = 1 ] || return 0
	# Deleting a namespace deletes the veth end inside it, and so its peer.
	ip netns del "$TOPO_CLI" 2>/dev/null
	ip netns del "$TOPO_SRV" 2>/dev/null
	rm -rf "/var/run/dpdk/$TOPO_PREFIX-$$"
	TOPO_UP=0
}

# topo_xdp_prog: the id of the XDP program on the server end, empty when none.
topo_xdp_prog() {
	in_srv ip -d link show dev "$TOPO_SRV_IF" 2>/dev/null |
		sed -n 's/.*prog\/xdp id \([0-9][0-9]*\).*/\1/p' | head -n1
}

# topo_eal WORKERS [VDEV]: ternd's --dpdk-eal for this topology. No
# hugepages, no PCI, no shared config, a runtime folder of our own; one
# lcore per worker (DPDK runs worker q on lcore q); by default
# net_af_packet on the server end of the veth, with a ring of 4096 frames:
# the default 512 overflows in the kernel (drops ternd never sees) when
# the client floods, e.g. 4 of 5 reset triggers lost at 230 kpps here.
topo_eal() {
	local w=${1:-1} vdev=${2:-net_af_packet0,iface=$TOPO_SRV_IF,framecnt=4096,qdisc_bypass=1}
	echo "--no-huge -m 1024 --no-pci --no-shconf --no-telemetry -l 0-$((w - 1)) --file-prefix=$TOPO_PREFIX-$$ --vdev=$vdev"
}

# ---- ternd on the topology (for scripts that source lib.sh first) ---------

TOPO_PORT=4433

# topo_ternd KIND DOCROOT [ternd flags]: ternd inside $TOPO_SRV on
# $TOPO_SRV4:$TOPO_PORT, on the datapath KIND (socket, xdp on the server end,
# or dpdk through net_af_packet there, one lcore per --workers). Sets
# TERND_PID, TERND_LOG, PORT and METRICS (when the flags hold --metrics:
# read it with topo_metrics). TERND_LOG_NAME names the log.
topo_ternd() {
	local kind=$1 docroot=$2 a w=1 want_metrics=0 prev='' dpf=()
	shift 2
	for a; do
		[ "$prev" = --workers ] && w=$a
		[ "$a" = --metrics ] && want_metrics=1
		prev=$a
	done
	case $kind in
	dpdk) dpf=(--dpdk-eal "$(topo_eal "$w")") ;;
	xdp) dpf=(--interface "$TOPO_SRV_IF") ;;
	esac
	TERND_LOG=$WORK/${TERND_LOG_NAME:-ternd}.log
	METRICS='' PORT=$TOPO_PORT
	"${SRV[@]}" "$TERND" --datapath "$kind" "${dpf[@]}" --listen "$TOPO_SRV4:$TOPO_PORT" \
		--cert "$CERTS/ec-cert.pem" --key "$CERTS/ec-key.pem" --docroot "$docroot" "$@" >"$TERND_LOG" 2>&1 &
	TERND_PID=$!
	PIDS+=("$TERND_PID")
	for _ in $(seq 300); do
		METRICS=$(sed -n 's/^ternd: metrics on \([0-9.]*:[0-9][0-9]*\)$/\1/p' "$TERND_LOG")
		if grep -q "^ternd: listening on $TOPO_SRV4:$TOPO_PORT ($kind datapath" "$TERND_LOG" &&
			{ [ $want_metrics = 0 ] || [ -n "$METRICS" ]; }; then
			note "$(sed -n 's/^ternd: listening on //p' "$TERND_LOG")"
			return 0
		fi
		if ! kill -0 "$TERND_PID" 2>/dev/null; then
			grep -q 'is not available in this build' "$TERND_LOG" && skip "$(tail -n1 "$TERND_LOG")"
			show "$TERND_LOG"
			fail "ternd ($kind datapath) exited at startup: $(tail -n1 "$TERND_LOG")"
		fi
		sleep 0.05
	done
	show "$TERND_LOG"
	fail "ternd ($kind datapath) printed no 'listening on' line within 15 s"
}

# topo_get SECONDS OUTDIR URL-PATH... [-- gtlsclient flags]: gtlsclient in
# $TOPO_CLI downloads from ternd; returns its status (124: the timeout).
topo_get() {
	local secs=$1 out=$2 urls=()
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do urls+=("https://$TOPO_SRV4:$PORT/$1"); shift; done
	[ $# -gt 0 ] && shift
	mkdir -p "$out"
	in_cli timeout -k 2 "$secs" gtlsclient -q --exit-on-all-streams-close --download "$out" "$@" \
		"$TOPO_SRV4" "$PORT" "${urls[@]}" >>"$WORK/gtlsclient.log" 2>&1
}

# topo_metrics FILE: ternd's /metrics (served inside $TOPO_SRV) into FILE.
topo_metrics() {
	[ -n "${METRICS:-}" ] || fail "ternd printed no 'metrics on ADDR:PORT' line"
	in_srv curl -sf --max-time 5 "http://$METRICS/metrics" >"$1" || fail "curl http://$METRICS/metrics failed"
	grep -q '^tern_connections_active ' "$1" || { show "$1"; fail "/metrics has no tern_connections_active"; }
}

# topo_download KIND SECONDS FILE: FILE (under $WORK/doc) downloaded into
# $WORK/out, byte-identical (sha256), gtlsclient status 0; notes the rate.
topo_download() {
	local kind=$1 secs=$2 f=$3 t0 rc took size got
	size=$(stat -c %s "$WORK/doc/$f")
	rm -f "$WORK/out/$f"
	t0=$(now)
	topo_get "$secs" "$WORK/out" "$f"
	rc=$?
	took=$(elapsed "$t0")
	ternd_alive "during the download"
	got=$(stat -c %s "$WORK/out/$f" 2>/dev/null || echo 0)
	if [ $rc -ne 0 ]; then
		show "$WORK/gtlsclient.log"
		show "$TERND_LOG"
		fail "$kind: gtlsclient exited with status $rc after $took s ($got of $size bytes)"
	fi
	[ "$got" = "$size" ] || fail "$kind: downloaded $got bytes, expected $size"
	[ "$(sha "$WORK/out/$f")" = "$(sha "$WORK/doc/$f")" ] || fail "$kind: sha256 of the download differs"
	note "$kind: $f ($size bytes) byte-identical in $took s ($(awk -v b="$size" -v s="$took" 'BEGIN { printf "%.0f", b * 8 / s / 1e6 }') Mbit/s)"
}

# topo_requests KIND SECONDS: gtlsclient -n 100 on one connection, 100
# distinct files of distinct sizes (made here), every body right.
topo_requests() {
	local kind=$1 secs=$2 paths=() i p t0 rc took bad=0
	for i in $(seq -w 1 100); do
		[ -f "$WORK/doc/r$i.bin" ] || make_file "$WORK/doc/r$i.bin" $(( (10#$i * 10#$i * 10#$i) % 100000 + 1 ))
		paths+=("r$i.bin")
	done
	rm -rf "$WORK/out-req"
	t0=$(now)
	topo_get "$secs" "$WORK/out-req" "${paths[@]}" -- -n 100
	rc=$?
	took=$(elapsed "$t0")
	ternd_alive "during the requests"
	[ $rc -eq 0 ] || { show "$WORK/gtlsclient.log"; fail "$kind: gtlsclient -n 100 exited with status $rc after $took s"; }
	for p in "${paths[@]}"; do
		cmp -s "$WORK/doc/$p" "$WORK/out-req/$p" || { bad=$((bad + 1)); [ $bad -le 3 ] && note "body of /$p is wrong or missing"; }
	done
	[ $bad -eq 0 ] || fail "$kind: $bad of 100 bodies wrong or missing"
	note "$kind: 100 requests on one connection (-n 100), 100 bodies right, in $took s"
}

# topo_prologue: what every dpdk_/xdp_ script checks first (lib.sh's skip
# and need); builds nothing.
topo_prologue() {
	[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, veth, raw frames)"
	need ip ethtool gtlsclient curl
	ip netns list >/dev/null 2>&1 || skip "ip netns does not work here"
	# lib.sh's cleanup kills our processes; then the topology goes.
	eval "lib_$(declare -f cleanup)"
	# shellcheck disable=SC2317 # called from lib.sh's EXIT trap
	cleanup() {
		lib_cleanup
		topo_down
	}
}
