#!/usr/bin/env bash
# Closing during the handshake (RFC 9000 §10.2.3; issue 10), with badpeer:
#   bad-alpn    a ClientHello offering only "hq-interop": CRYPTO_ERROR 0x178
#               (no_application_protocol, RFC 9001 §8.1). The error comes
#               out of the ClientHello, before ternd has Handshake keys, so
#               the close can only go in an Initial: the capture must show
#               exactly one datagram to that client, Initial packets only,
#               with CONNECTION_CLOSE 0x1c code 0x178.
#   bad-tparam  a malformed transport parameter: TRANSPORT_PARAMETER_ERROR
#               (0x08). ternd reads the parameters after its TLS stack wrote
#               the ServerHello, so it holds Handshake keys and does not know
#               whether the client does: §10.2.3 says to send the close in
#               both Initial and Handshake packets. The capture must show
#               one datagram, an Initial (0x1c code 0x08) coalesced with a
#               Handshake packet; tshark cannot open the Handshake packet
#               (no ServerHello in the capture), so badpeer opens it with
#               ternd's key log and must find the same close in it.
# Each close moves tern_close_sent_total{type="transport",code} by one;
# after 3xPTO (about 3 s: the client never acknowledged anything, so
# ternd's RTT is the initial 333 ms) both connections are freed as "error".
# Extra argument: BADPEER
WANT_NETNS=1
. "$(dirname "$0")/lib.sh"
BADPEER=$1
need dumpcap tshark curl
netns_setup

mkdir "$WORK/doc"
KEYLOG=$WORK/keylog
start_ternd "$WORK/doc" --metrics 127.0.0.1:0 --keylog-file "$KEYLOG"
cap=$WORK/cap.pcapng
cap_start "$cap"
metrics_get "$WORK/m0"

# run_badpeer SCENARIO: badpeer's "ok" lines, or the test fails.
run_badpeer() {
	local out rc
	out=$(timeout -k 2 20 "$BADPEER" 127.0.0.1 "$PORT" "$1" "$KEYLOG" 2>&1)
	rc=$?
	echo "$out" | sed "s/^/$NAME: /"
	ternd_alive "after badpeer $1"
	[ $rc -eq 0 ] || fail "$(echo "$out" | grep -m1 FAIL || echo "badpeer $1 exited with status $rc")"
	BP_OUT=$out
}

run_badpeer bad-alpn
echo "$BP_OUT" | grep -q 'close_dgram=Initial\[close\] codes=Initial:1c/0x178 ' ||
	fail "bad-alpn: expected the close in one Initial packet alone, got: $(echo "$BP_OUT" | grep -o 'close_dgram=.*')"
metrics_get "$WORK/m1"
expect_close_deltas "$WORK/m0" "$WORK/m1" 'tern_close_sent_total{type="transport",code="0x178"} 1'

run_badpeer bad-tparam
echo "$BP_OUT" | grep -q 'close_dgram=Initial\[close\]+Handshake\[close\] codes=Initial:1c/0x8,Handshake:1c/0x8 ' ||
	fail "bad-tparam: expected the close in an Initial and a Handshake packet of one datagram, got: $(echo "$BP_OUT" | grep -o 'close_dgram=.*')"
metrics_get "$WORK/m2"
expect_close_deltas "$WORK/m1" "$WORK/m2" 'tern_close_sent_total{type="transport",code="0x8"} 1'

wait_metric "$WORK/m3" 'tern_connections_closed_total{reason="error"}' \
	$(($(mval "$WORK/m0" 'tern_connections_closed_total{reason="error"}') + 2)) 6 ||
	fail "the two closed connections were not both freed within 6 s (active: $(mval "$WORK/m3" tern_connections_active))"
expect_closed "$WORK/m0" "$WORK/m3" error 2
expect_close_deltas "$WORK/m0" "$WORK/m3" 'tern_close_sent_total{type="transport",code="0x178"} 1' \
	'tern_close_sent_total{type="transport",code="0x8"} 1'
[ "$(mval "$WORK/m3" tern_connections_active)" = 0 ] || fail "tern_connections_active is not back to 0"
cap_stop

# What ternd sent, datagram by datagram: client port, packet types
# (0 Initial, 2 Handshake), frame types and close codes tshark decrypted.
ts "$cap" -Y "udp.srcport == $PORT" -T fields -E occurrence=a -E separator='|' \
	-e udp.dstport -e quic.long.packet_type -e quic.frame_type -e quic.cc.error_code >"$WORK/sent.txt"
mapfile -t ports < <(cut -d'|' -f1 "$WORK/sent.txt" | awk '!seen[$0]++')
[ "${#ports[@]}" = 2 ] || fail "ternd answered ${#ports[@]} client ports, expected 2"
alpn=$(awk -F'|' -v p="${ports[0]}" '$1 == p' "$WORK/sent.txt")
tparam=$(awk -F'|' -v p="${ports[1]}" '$1 == p' "$WORK/sent.txt")
[ "$(echo "$alpn" | wc -l)" = 1 ] || fail "bad-alpn: ternd sent $(echo "$alpn" | wc -l) datagrams, expected only its close"
[ "$(echo "$tparam" | wc -l)" = 1 ] || fail "bad-tparam: ternd sent $(echo "$tparam" | wc -l) datagrams, expected only its close"
IFS='|' read -r _ types frames codes <<<"$alpn"
[ "$types" = 0 ] || fail "bad-alpn: the close datagram holds packet types [$types], expected an Initial alone (no Handshake keys yet)"
echo ",$frames," | grep -q ',28,' && [ "$codes" = 376 ] ||
	fail "bad-alpn: the capture shows frames [$frames] codes [$codes], expected CONNECTION_CLOSE 0x1c code 0x178"
IFS='|' read -r _ types frames codes <<<"$tparam"
[ "$types" = 0,2 ] || fail "bad-tparam: the close datagram holds packet types [$types], expected Initial and Handshake coalesced"
echo ",$frames," | grep -q ',28,' && [ "$codes" = 8 ] ||
	fail "bad-tparam: tshark decrypts frames [$frames] codes [$codes] from the Initial, expected CONNECTION_CLOSE 0x1c code 0x08"
note "bad-alpn: one datagram, Initial only, CONNECTION_CLOSE 0x178; bad-tparam: one datagram, Initial + Handshake, CONNECTION_CLOSE 0x08 in both; metrics: 0x178 +1, 0x8 +1, error +2"
stop_ternd
