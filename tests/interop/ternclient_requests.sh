#!/usr/bin/env bash
# tern-client -n 10 fetches a small file from ternd ten times over one
# connection (concurrent streams, issue 3); stdout must be the ten bodies
# back to back, and on loopback it must not take seconds.
. "$(dirname "$0")/lib.sh"

mkdir "$WORK/doc"
make_file "$WORK/doc/small.bin" 20000
start_ternd "$WORK/doc"
for _ in 1 2 3 4 5 6 7 8 9 10; do cat "$WORK/doc/small.bin"; done >"$WORK/expect"

t0=$(now)
timeout -k 2 30 "$TERN_CLIENT" --insecure -n 10 "https://127.0.0.1:$PORT/small.bin" \
	>"$WORK/got" 2>"$WORK/tern-client.log"
rc=$?
secs=$(elapsed "$t0")
ternd_alive "during the requests"
[ $rc -eq 0 ] || { show "$WORK/tern-client.log"; fail "tern-client -n 10 exited with status $rc after ${secs} s"; }
cmp -s "$WORK/expect" "$WORK/got" || fail "the 10 bodies are not right ($(stat -c %s "$WORK/got") of 200000 bytes)"
note "10 bodies right in ${secs} s"
# Ten 20 KB responses on loopback take milliseconds; seconds mean the
# requests wait on a timer instead of going out at once.
awk -v s="$secs" 'BEGIN { exit !(s < 3) }' ||
	fail "10 requests of 20 KB took ${secs} s (limit 3 s): requests are serialised behind a timer"
stop_ternd
