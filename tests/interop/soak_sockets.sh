#!/usr/bin/env bash
# A bounded soak through the socket datapath (issue 9): 80 tern-client
# downloads from ternd, four at a time, each losing 3% of datagrams each way
# and having 3% of what it receives cut short or bit-flipped. Every transfer
# must arrive byte-identical or end with a proper close (tern-client says
# which close), never hang; afterwards ternd holds no connection and its
# memory is back near where it started.
. "$(dirname "$0")/lib.sh"
need curl

mkdir "$WORK/doc"
make_file "$WORK/doc/f" $((512 * 1024))
want=$(sha "$WORK/doc/f")
start_ternd "$WORK/doc" --metrics 127.0.0.1:0 --idle-timeout 5s
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$TERND_PID/status"; }

fetch() { # N: one faulty download into $WORK/out.N
	timeout -k 2 60 "$TERN_CLIENT" --insecure --tx-loss 0.03 --rx-loss 0.03 --corrupt 0.03 \
		"https://127.0.0.1:$PORT/f" >"$WORK/out.$1" 2>"$WORK/err.$1"
	echo $? >"$WORK/rc.$1"
}

# a clean warm-up, so the baseline includes the allocator's first growth
timeout 30 "$TERN_CLIENT" --insecure "https://127.0.0.1:$PORT/f" >"$WORK/warm" 2>/dev/null ||
	fail "the warm-up download failed"
before=$(rss)
t0=$(now)
ok=0 closed=0
for round in $(seq 20); do
	pids=()
	for k in 1 2 3 4; do
		fetch "$round.$k" &
		pids+=($!)
	done
	wait "${pids[@]}" # not ternd, which runs in the background too
	for k in 1 2 3 4; do
		n=$round.$k rc=$(cat "$WORK/rc.$n")
		if [ "$rc" = 0 ] && [ "$(sha "$WORK/out.$n")" = "$want" ]; then
			ok=$((ok + 1))
		elif [ "$rc" -ne 0 ] && [ "$rc" -lt 124 ] && grep -q 'closed' "$WORK/err.$n"; then
			closed=$((closed + 1))
		else
			show "$WORK/err.$n"
			fail "download $n: status $rc, neither byte-identical nor a proper close"
		fi
	done
	ternd_alive "during round $round"
done
secs=$(elapsed "$t0")

# every connection ends (3xPTO of closing, or the 5 s idle timeout)
for _ in $(seq 100); do
	metrics_get "$WORK/m"
	[ "$(mval "$WORK/m" tern_connections_active)" = 0 ] && break
	sleep 0.1
done
[ "$(mval "$WORK/m" tern_connections_active)" = 0 ] ||
	fail "$(mval "$WORK/m" tern_connections_active) connections still held 10 s after the soak"
after=$(rss)
grown=$((after - before))
[ "$grown" -lt 16384 ] || fail "ternd's RSS grew by $grown KB over the soak ($before -> $after KB)"
[ "$ok" -ge 60 ] || fail "only $ok of 80 faulty downloads arrived"
note "80 downloads in $secs s: $ok byte-identical, $closed ended with a close; 0 connections held after; RSS $before -> $after KB"
stop_ternd
