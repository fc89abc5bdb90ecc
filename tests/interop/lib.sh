# shellcheck shell=bash
# Sourced by every interop script. Arguments (from meson.build):
#   TERND TERN_CLIENT CERTS_DIR [script-specific...]
# Gives each script a private temp dir, remembers every process it starts and
# kills them on exit, and starts ternd on 127.0.0.1 with an ephemeral port.
# Set TERN_INTEROP_KEEP=1 to keep the temp dir of a failed run.
set -uo pipefail

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

# start_ternd DOCROOT [extra flags]: sets PORT, TERND_PID, TERND_LOG.
start_ternd() {
	local docroot=$1
	shift
	TERND_LOG=$WORK/ternd.log
	"$TERND" --datapath socket --listen 127.0.0.1:0 --cert "$CERTS/ec-cert.pem" \
		--key "$CERTS/ec-key.pem" --docroot "$docroot" "$@" >"$TERND_LOG" 2>&1 &
	TERND_PID=$!
	PIDS+=("$TERND_PID")
	for _ in $(seq 200); do
		PORT=$(sed -n 's/^ternd: listening on 127\.0\.0\.1:\([0-9][0-9]*\) .*/\1/p' "$TERND_LOG")
		[ -n "$PORT" ] && return 0
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
