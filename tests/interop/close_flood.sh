#!/usr/bin/env bash
# The closing state under a flood (RFC 9000 §10.2.1; issue 10). badpeer
# makes ternd close (HANDSHAKE_DONE from a client: PROTOCOL_VIOLATION),
# then sends 10,000 valid 1-RTT packets to the closing connection and
# counts the CONNECTION_CLOSE replies: there must be some, but far fewer
# (at most 1 per 100 packets). It then probes every 50 ms: no close may
# come after 3xPTO (3.072 s: badpeer never acknowledges, so ternd's PTO
# is the initial one), and the connection must be freed then, neither
# before (a stateless reset during the flood or before 3xPTO - 0.3 s) nor
# long after (a reset, with the token of ternd's transport parameters, by
# 3xPTO + 1.5 s).
# Metrics: at least 9,000 datagrams delivered to the connection (so the
# flood reached it), exactly one close sent (0x0a) however many replies
# went out, one "error" close, and the stateless resets badpeer got.
# Extra argument: BADPEER
. "$(dirname "$0")/lib.sh"
BADPEER=$1
need curl

mkdir "$WORK/doc"
start_ternd "$WORK/doc" --metrics 127.0.0.1:0
metrics_get "$WORK/m0"
out=$(timeout -k 2 30 "$BADPEER" 127.0.0.1 "$PORT" closing-flood 2>&1)
rc=$?
echo "$out" | sed "s/^/$NAME: /"
ternd_alive "after the flood"
[ $rc -eq 0 ] || { show "$TERND_LOG"; fail "$(echo "$out" | grep -m1 FAIL || echo "badpeer closing-flood exited with status $rc")"; }
resets=$(echo "$out" | sed -n 's/.* resets=\([0-9]*\) .*/\1/p')
replies=$(echo "$out" | sed -n 's/.*ok: close_replies=\([0-9]*\) .*/\1/p')
[ -n "$resets" ] && [ -n "$replies" ] || fail "badpeer printed no summary line"
metrics_get "$WORK/m1"
expect_closed "$WORK/m0" "$WORK/m1" error
expect_close_deltas "$WORK/m0" "$WORK/m1" 'tern_close_sent_total{type="transport",code="0xa"} 1'
expect_delta "$WORK/m0" "$WORK/m1" tern_stateless_resets_sent_total "$resets"
[ "$(mval "$WORK/m1" tern_connections_active)" = 0 ] || fail "tern_connections_active is not back to 0"
# the replies are few because the connection answered few, not because the
# packets never reached it
delivered=$(($(mval "$WORK/m1" tern_datagrams_to_connections_total) - $(mval "$WORK/m0" tern_datagrams_to_connections_total)))
[ "$delivered" -ge 9000 ] || fail "only $delivered datagrams reached a connection: the flood was dropped before the closing state saw it"
note "10000 packets to a closing connection ($delivered datagrams delivered to it): $replies CONNECTION_CLOSE replies; freed after 3xPTO; metrics: one close sent (0xa), error +1, $resets stateless resets"
stop_ternd
