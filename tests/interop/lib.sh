# shellcheck shell=bash
# Sourced by every interop script. Arguments (from meson.build):
#   TERND TERN_CLIENT CERTS_DIR [script-specific...]
# Gives each script a private temp dir, remembers every process it starts and
# kills them on exit, and starts ternd on 127.0.0.1 with an ephemeral port.
# Set TERN_INTEROP_KEEP=1 to keep the temp dir of a failed run.
set -uo pipefail

if [ "${WANT_NETNS:-0}" = 1 ] && [ -z "${TERN_INTEROP_NETNS:-}" ] && [ "$(id -u)" = 0 ] &&
	unshare -n true 2>/dev/null; then
	exec unshare -n env TERN_INTEROP_NETNS=1 "$0" "$@"
fi
NAME=$(basename "$0" .sh)
[ $# -ge 3 ] || { echo "usage: $0 TERND TERN_CLIENT CERTS_DIR ..." >&2; exit 2; }
# shellcheck disable=SC2034 # TERN_CLIENT: used by the scripts that source this
TERND=$1 TERN_CLIENT=$2 CERTS=$3
shift 3
# gtlsserver lives in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tern-$NAME.XXXXXX") || exit 2
PIDS=()
FAILED=0

note() { echo "$NAME: $*"; }
# One line saying why, last on stderr, as meson shows it.
fail() {
	FAILED=1
	echo "$NAME: FAIL: $*" >&2
	exit 1
}
skip() {
	echo "$NAME: SKIP: $*" >&2
	exit 77
}
need() {
	local p
	for p; do command -v "$p" >/dev/null 2>&1 || skip "$p is not installed"; done
}
# Prints the last lines of a log, indented, for the person reading a failure.
show() { [ -f "$1" ] && { echo "--- tail of $(basename "$1")"; tail -n "${2:-15}" "$1" | cut -c1-300 | sed 's/^/    /'; }; }

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	if [ "$FAILED" = 1 ] && [ "${TERN_INTEROP_KEEP:-0}" = 1 ]; then
		echo "$NAME: kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap 'rc=$?; [ $rc -ne 0 ] && FAILED=1; cleanup; exit $rc' EXIT
trap 'exit 130' INT TERM HUP

# A random file of $2 bytes at $1.
make_file() { head -c "$2" /dev/urandom >"$1" || fail "cannot write $1"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# An unused UDP port on 127.0.0.1 (for peers that cannot report theirs).
free_port() {
	python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_ternd DOCROOT [extra flags]: sets PORT, TERND_PID, TERND_LOG, and
# METRICS (ADDR:PORT) when the flags hold --metrics. TERND_LISTEN (default
# 127.0.0.1:0) restarts ternd on a known port; TERND_LOG_NAME names the log.
start_ternd() {
	local docroot=$1
	shift
	TERND_LOG=$WORK/${TERND_LOG_NAME:-ternd}.log
	METRICS=
	"$TERND" --datapath socket --listen "${TERND_LISTEN:-127.0.0.1:0}" --cert "$CERTS/ec-cert.pem" \
		--key "$CERTS/ec-key.pem" --docroot "$docroot" "$@" >"$TERND_LOG" 2>&1 &
	TERND_PID=$!
	PIDS+=("$TERND_PID")
	local want_metrics=0 a
	for a; do [ "$a" = --metrics ] && want_metrics=1; done
	for _ in $(seq 200); do
		PORT=$(sed -n 's/^ternd: listening on 127\.0\.0\.1:\([0-9][0-9]*\) .*/\1/p' "$TERND_LOG")
		METRICS=$(sed -n 's/^ternd: metrics on \([0-9.]*:[0-9][0-9]*\)$/\1/p' "$TERND_LOG")
		[ -n "$PORT" ] && { [ $want_metrics = 0 ] || [ -n "$METRICS" ]; } && return 0
		kill -0 "$TERND_PID" 2>/dev/null || { show "$TERND_LOG"; fail "ternd exited at startup: $(tail -n1 "$TERND_LOG")"; }
		sleep 0.05
	done
	show "$TERND_LOG"
	fail "ternd printed no 'listening on' line within 10 s"
}

ternd_alive() {
	kill -0 "$TERND_PID" 2>/dev/null && return 0
	wait "$TERND_PID" 2>/dev/null
	local rc=$?
	show "$TERND_LOG"
	fail "ternd died ${1:+($1)} with status $rc"
}

# Stops ternd with SIGTERM and prints its last words (its stats line).
# ternd's graceful shutdown takes at most a second's grace plus 3 s.
stop_ternd() {
	ternd_alive "before SIGTERM"
	kill -TERM "$TERND_PID"
	for _ in $(seq 100); do kill -0 "$TERND_PID" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$TERND_PID" 2>/dev/null && fail "ternd still running 10 s after SIGTERM"
	wait "$TERND_PID" 2>/dev/null
	local rc=$?
	grep -v 'listening on' "$TERND_LOG" | sed "s/^/$NAME: /"
	[ "$rc" = 0 ] || fail "ternd exited with status $rc after SIGTERM"
}

# gtls_get SECONDS OUTDIR URL-PATH... [-- extra gtlsclient flags]: downloads
# from ternd on $PORT, quietly; returns gtlsclient's status (124: timeout).
gtls_get() {
	local secs=$1 out=$2 urls=() p
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do urls+=("https://127.0.0.1:$PORT/$1"); shift; done
	[ $# -gt 0 ] && shift
	mkdir -p "$out"
	timeout -k 2 "$secs" gtlsclient -q --exit-on-all-streams-close --download "$out" "$@" \
		127.0.0.1 "$PORT" "${urls[@]}" >>"$WORK/gtlsclient.log" 2>&1
}

# ---- connection close tests (issue 10) -------------------------------------

# With WANT_NETNS=1 set before sourcing, lib.sh (above) re-executed the
# script in a private network namespace when root can; netns_setup brings
# its lo up with UDP segmentation offload off, so that a capture sees each
# datagram ternd sends (on the host's lo a GSO send is captured as one 64 KB
# blob that tshark cannot decrypt), and the test's traffic is its own.
# shellcheck disable=SC2034 # NETNS: for the scripts
netns_setup() {
	NETNS=0
	[ "${TERN_INTEROP_NETNS:-}" = 1 ] || { note "capturing on the host's lo (not root, or no unshare)"; return 0; }
	ip link set lo up || fail "cannot bring lo up in the namespace"
	if ethtool -K lo tx-udp-segmentation off >/dev/null 2>&1; then
		NETNS=1
		note "private namespace, lo without UDP segmentation offload"
	else
		note "private namespace, but ethtool cannot turn off UDP GSO on lo"
	fi
}

# cap_start FILE: dumpcap on lo for ternd's $PORT; sets CAP_PID.
cap_start() {
	CAP_FILE=$1
	local log=$CAP_FILE.log
	dumpcap -q -i lo -f "udp port $PORT" -w "$CAP_FILE" >"$log" 2>&1 &
	CAP_PID=$!
	PIDS+=("$CAP_PID")
	for _ in $(seq 100); do
		grep -q 'Capturing on' "$log" && { sleep 0.2; return 0; }
		kill -0 "$CAP_PID" 2>/dev/null || { show "$log"; skip "dumpcap cannot capture on lo here: $(tail -n1 "$log")"; }
		sleep 0.05
	done
	fail "dumpcap did not start within 5 s"
}

# Stops the capture. libpcap hands dumpcap the packets of a block when the
# block's timeout (dumpcap: 250 ms) runs out, and a SIGINT drops the block
# still open: wait past it, or the last packets are missing.
cap_stop() {
	sleep 0.6
	kill -INT "$CAP_PID" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$CAP_PID" 2>/dev/null || break; sleep 0.1; done
	wait "$CAP_PID" 2>/dev/null
}

# ts CAPTURE [tshark args]: the capture read as QUIC on $PORT, decrypted
# with ternd's key log when $KEYLOG is set.
ts() {
	local cap=$1
	shift
	tshark -r "$cap" ${KEYLOG:+-o "tls.keylog_file:$KEYLOG"} -d "udp.port==$PORT,quic" "$@" 2>/dev/null
}

# metrics_get FILE: ternd's /metrics into FILE (fails the test when
# unreachable or malformed).
metrics_get() {
	[ -n "${METRICS:-}" ] || fail "ternd printed no 'metrics on ADDR:PORT' line: is --metrics implemented?"
	curl -sf --max-time 5 "http://$METRICS/metrics" >"$1" || fail "curl http://$METRICS/metrics failed"
	grep -q '^tern_connections_active ' "$1" || { show "$1"; fail "/metrics has no tern_connections_active"; }
}

# mval FILE 'name{labels}': the sample's value, 0 when absent (a labelled
# counter has no sample until its first event).
mval() {
	awk -v k="$2" '$1 == k { v = $2 } END { print v + 0 }' "$1"
}

# expect_delta BEFORE AFTER 'name{labels}' N: fails unless it moved by N.
expect_delta() {
	local a b
	a=$(mval "$1" "$3")
	b=$(mval "$2" "$3")
	[ $((b - a)) = "$4" ] || fail "$3 moved by $((b - a)) ($a -> $b), expected $4"
}

# The reasons of tern_connections_closed_total; expect_closed BEFORE AFTER
# REASON checks that REASON moved by one and every other reason by zero.
CLOSE_REASONS="idle_timeout local_close peer_close stateless_reset handshake_timeout error"
expect_closed() {
	local r n
	for r in $CLOSE_REASONS; do
		n=0
		[ "$r" = "$3" ] && n=${4:-1}
		expect_delta "$1" "$2" "tern_connections_closed_total{reason=\"$r\"}" "$n"
	done
}

# Every tern_close_{sent,received}_total sample that moved, "name{..} delta" per line.
close_deltas() {
	awk '/^tern_close_(sent|received)_total\{/ { if (FILENAME == ARGV[1]) a[$1] = $2; else b[$1] = $2 }
		END { for (k in b) if (b[k] != a[k]) print k, b[k] - a[k] }' "$1" "$2" | sort
}

# expect_close_deltas BEFORE AFTER [LINE...]: the close counters that moved
# are exactly the LINEs ("tern_close_sent_total{type=\"...\",code=\"0x..\"} 1").
expect_close_deltas() {
	local got want
	got=$(close_deltas "$1" "$2")
	shift 2
	want=$(printf '%s\n' "$@" | sed '/^$/d' | sort)
	[ "$got" = "$want" ] || fail "close counters moved by [$(echo "$got" | paste -sd';')], expected [$(echo "$want" | paste -sd';')]"
}

# wait_metric FILE 'name{labels}' VALUE SECONDS: polls /metrics every 20 ms
# until the sample equals VALUE; 0, or 1 on timeout (FILE holds the last read).
wait_metric() {
	local deadline
	deadline=$(awk -v n="$(now)" -v s="$4" 'BEGIN { printf "%.3f", n + s }')
	while :; do
		metrics_get "$1"
		[ "$(mval "$1" "$2")" = "$3" ] && return 0
		awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n >= d) }' && return 1
		sleep 0.02
	done
}

# tshark's view of a QUIC packet it could not decrypt (capture.sh).
# shellcheck disable=SC2034 # used by the scripts
UNDECRYPTED='quic.decryption_failed || _ws.expert.message contains "Decryption" || (quic && !quic.frame)'

# gtls_verbose LOG SECS [gtlsclient flags] -- URL-PATH...: gtlsclient from
# ternd on $PORT with its debug output (which names how the connection
# ended: ERR_IDLE_CLOSE, ERR_DRAINING) in LOG; downloads into $WORK/out.
# Returns gtlsclient's status (124: the timeout ended it).
gtls_verbose() {
	local log=$1 secs=$2 flags=() urls=()
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do flags+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	for p; do urls+=("https://127.0.0.1:$PORT/$p"); done
	mkdir -p "$WORK/out"
	timeout -k 2 "$secs" gtlsclient --download "$WORK/out" "${flags[@]}" 127.0.0.1 "$PORT" "${urls[@]}" >"$log" 2>&1
}

# The line of ngtcp2's log that says how the connection ended.
gtls_end() { grep -m1 -o 'ERR_[A-Z_]*' "$1" || echo "no ERR_ line"; }

# secs_between T0 T1 (epoch seconds): T1 - T0, 3 decimals.
secs_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# cmp_secs A OP B: awk's verdict on A OP B (decimal seconds).
cmp_secs() { awk -v a="$1" -v b="$3" "BEGIN { exit !(a $2 b) }"; }
