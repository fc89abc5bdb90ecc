#!/usr/bin/env bash
# ternd --workers 2 on the socket datapath: 200 gtlsclient processes, each
# its own connection downloading its own small file, released together
# through a FIFO gate. Every download must be byte-identical, /metrics must
# show both workers admitted connections (each worker's
# tern_worker_connections_created_total > 0, the two adding up to the
# process total of 200), and SIGTERM must end ternd with status 0.
. "$(dirname "$0")/lib.sh"
need gtlsclient curl

N=${TERN_WORKERS_CLIENTS:-200}
mkdir "$WORK/doc" "$WORK/out"
for i in $(seq "$N"); do
	make_file "$WORK/doc/f$i.bin" $((1000 + i * 37))
done
start_ternd "$WORK/doc" --workers 2 --metrics 127.0.0.1:0
grep -q '^ternd: listening on .*, 2 workers)$' "$TERND_LOG" || { show "$TERND_LOG"; fail "ternd does not say it runs 2 workers"; }
steer=$(grep -m1 'SO_REUSEPORT steering' "$TERND_LOG") || { show "$TERND_LOG"; fail "ternd does not say whether SO_REUSEPORT steering is in use"; }
note "${steer#ternd: }"
metrics_get "$WORK/m0"
[ "$(mval "$WORK/m0" tern_workers)" = 2 ] || fail "tern_workers is $(mval "$WORK/m0" tern_workers), expected 2"

# The gate: every client blocks reading the FIFO (held open read-write
# here, so opening it never blocks) until one newline per client arrives.
gate=$WORK/gate
mkfifo "$gate" || fail "cannot make a FIFO"
exec 3<>"$gate"
pids=()
for i in $(seq "$N"); do
	mkdir "$WORK/out/$i"
	(
		read -r _ <"$gate"
		exec 3>&-
		exec timeout -k 2 45 gtlsclient -q --exit-on-all-streams-close --download "$WORK/out/$i" \
			127.0.0.1 "$PORT" "https://127.0.0.1:$PORT/f$i.bin" >"$WORK/out/$i.log" 2>&1
	) &
	pids+=($!)
	PIDS+=($!)
done
t0=$(now)
printf '%*s' "$N" '' | tr ' ' '\n' >&3
failed=0 first=
for i in $(seq "$N"); do
	wait "${pids[$((i - 1))]}"
	rc=$?
	if [ $rc -ne 0 ] || ! cmp -s "$WORK/doc/f$i.bin" "$WORK/out/$i/f$i.bin"; then
		failed=$((failed + 1))
		[ -n "$first" ] || first="client $i (status $rc, $(stat -c %s "$WORK/out/$i/f$i.bin" 2>/dev/null || echo 0) of $(stat -c %s "$WORK/doc/f$i.bin") bytes)"
	fi
done
exec 3>&-
secs=$(elapsed "$t0")
ternd_alive "after $N clients"
if [ $failed -ne 0 ]; then
	n=${first#client }
	show "$WORK/out/${n%% *}.log"
	fail "$failed of $N downloads failed or differ, first $first, after $secs s"
fi

metrics_get "$WORK/m1"
c0=$(mval "$WORK/m1" 'tern_worker_connections_created_total{worker="0"}')
c1=$(mval "$WORK/m1" 'tern_worker_connections_created_total{worker="1"}')
total=$(mval "$WORK/m1" tern_connections_created_total)
[ "$c0" -gt 0 ] || fail "worker 0 admitted no connection (worker 1: $c1)"
[ "$c1" -gt 0 ] || fail "worker 1 admitted no connection (worker 0: $c0)"
[ "$total" = "$N" ] || fail "tern_connections_created_total is $total, expected $N"
[ $((c0 + c1)) = "$total" ] || fail "the workers admitted $c0 + $c1 connections, the total says $total"
for w in 0 1; do
	r=$(mval "$WORK/m1" "tern_worker_datagrams_received_total{worker=\"$w\"}")
	[ "$r" -gt 0 ] || fail "worker $w received no datagram"
done
h=$(( $(mval "$WORK/m1" 'tern_worker_handed_off_total{worker="0"}') + $(mval "$WORK/m1" 'tern_worker_handed_off_total{worker="1"}') ))
note "$N downloads byte-identical in $secs s; connections per worker: $c0 + $c1; datagrams handed off: $h"
stop_ternd
