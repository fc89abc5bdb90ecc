#!/usr/bin/env bash
# ternd --retry always (RFC 9000 §8.1.2): gtlsclient completes a download
# through a Retry, byte-identical; the capture shows exactly one Retry from
# ternd before the handshake; /metrics counts one Retry sent and one token
# accepted. (Forged, foreign and expired tokens are refused in the endpoint
# unit tests, where they can be built.)
WANT_NETNS=1
. "$(dirname "$0")/lib.sh"
need gtlsclient dumpcap tshark curl
netns_setup

mkdir "$WORK/www"
make_file "$WORK/www/f" 2000000
start_ternd "$WORK/www" --retry always --metrics 127.0.0.1:0
cap_start "$WORK/cap.pcapng"
gtls_get 30 "$WORK/dl" f || fail "gtlsclient failed through a Retry (status $?)"
cap_stop
[ "$(sha "$WORK/dl/f")" = "$(sha "$WORK/www/f")" ] || fail "the body differs"

# QUIC v1 long-header type 3 is Retry; only ternd sends them
retries=$(ts "$WORK/cap.pcapng" -Y "quic.long.packet_type == 3 && udp.srcport == $PORT" | wc -l)
[ "$retries" = 1 ] || { ts "$WORK/cap.pcapng" | head -20; fail "the capture shows $retries Retry packets, expected 1"; }
initials=$(ts "$WORK/cap.pcapng" -Y "quic.long.packet_type == 0 && udp.dstport == $PORT && quic.token_length > 0" | wc -l)
[ "$initials" -ge 1 ] || fail "no client Initial carried the Retry token"

metrics_get "$WORK/m"
[ "$(mval "$WORK/m" tern_retry_sent_total)" = 1 ] || fail "tern_retry_sent_total is $(mval "$WORK/m" tern_retry_sent_total), expected 1"
[ "$(mval "$WORK/m" tern_tokens_accepted_total)" = 1 ] || fail "tern_tokens_accepted_total is not 1"
stop_ternd
note "download through a Retry: ok ($retries Retry, token echoed in $initials Initial packet(s))"
