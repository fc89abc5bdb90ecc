#!/usr/bin/env bash
# Bad inputs against a running ternd (issue 3), each dropped or answered as
# RFC 9000 says, and ternd keeps serving:
#   rawsend.py (no keys): truncated datagrams, random datagrams, undecryptable
#     1200-byte version 1 long headers, random long headers with an unknown
#     version (Version Negotiation, checked);
#   badpeer (tern's own codecs and TLS, a real connection): an Initial under
#     1200 bytes, an Initial cut short of its Length, STREAM in an Initial,
#     STREAM in a Handshake packet, HANDSHAKE_DONE from the client, a
#     repeated transport parameter; plus a correct handshake as control.
# After every case ternd must still be running; at the end gtlsclient must
# download a file byte-identical from the same ternd.
# Extra arguments: BADPEER RAWSEND_PY
. "$(dirname "$0")/lib.sh"
BADPEER=$1 RAWSEND=$2
need gtlsclient python3

mkdir "$WORK/doc"
make_file "$WORK/doc/file.bin" 300000
start_ternd "$WORK/doc"

run_case() { # command... case
	local out rc what
	what="$(basename "${@: -2:1}") ${*: -1}"
	out=$(timeout -k 2 30 "$@" 2>&1)
	rc=$?
	echo "$out" | sed "s/^/$NAME: /"
	ternd_alive "after $what"
	if [ $rc -ne 0 ]; then
		show "$TERND_LOG"
		fail "$(echo "$out" | grep -m1 FAIL || echo "$what exited with status $rc")"
	fi
}

for c in truncated random long-v1 long-random; do
	run_case python3 "$RAWSEND" 127.0.0.1 "$PORT" "$c"
done
for c in handshake short-initial truncated-initial stream-in-initial stream-in-handshake \
	handshake-done-from-client dup-tparam handshake; do
	run_case "$BADPEER" 127.0.0.1 "$PORT" "$c"
done

gtls_get 20 "$WORK/out" file.bin
rc=$?
ternd_alive "during the final download"
[ $rc -eq 0 ] || { show "$WORK/gtlsclient.log"; fail "gtlsclient after the bad inputs exited with status $rc"; }
cmp -s "$WORK/doc/file.bin" "$WORK/out/file.bin" || fail "the download after the bad inputs is not byte-identical"
note "ternd still serves: gtlsclient download byte-identical after every bad input"
stop_ternd
