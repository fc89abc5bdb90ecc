#!/usr/bin/env bash
# Restart with a persistent stateless-reset key (RFC 9000 §10.3; issue 10).
# gtlsclient completes a handshake and holds its request back
# (--delay-stream 2s, idle timeout 3 s); meanwhile ternd is killed with
# SIGKILL and restarted on the same port:
#   a) same --reset-key-file: the request (the client's next packet) gets a
#      stateless reset, a short-header packet from ternd whose last 16 bytes
#      are the token ternd issued for the CID the client used (read from
#      the decrypted capture); gtlsclient drains (ERR_DRAINING) and exits
#      within 1 s of that packet; the restarted ternd counts exactly one
#      reset sent; the key file was created with 32 bytes, mode 0600.
#   b) another key file: the resets it sends carry tokens the client does
#      not know, so gtlsclient runs into its 3 s idle timeout
#      (ERR_IDLE_CLOSE, >= 2 s after its request).
WANT_NETNS=1
. "$(dirname "$0")/lib.sh"
need gtlsclient dumpcap tshark curl
netns_setup

mkdir "$WORK/doc"
make_file "$WORK/doc/small.bin" 2000
KEY=$WORK/reset.key

# connect_and_kill NAME KEYFILE LOG: ternd with KEYFILE, gtlsclient (in the
# background, GTLS_PID) connected and quiet, then ternd SIGKILLed.
connect_and_kill() {
	local name=$1 keyfile=$2 log=$3
	TERND_LOG_NAME=ternd-$name-1 TERND_LISTEN=
	start_ternd "$WORK/doc" --idle-timeout 30s --reset-key-file "$keyfile" --metrics 127.0.0.1:0 \
		${KEYLOG:+--keylog-file "$KEYLOG"}
	[ -n "${CAP:-}" ] && cap_start "$CAP"
	timeout -k 2 30 gtlsclient --timeout 3s --delay-stream 2s --download "$WORK/out" \
		127.0.0.1 "$PORT" "https://127.0.0.1:$PORT/small.bin" >"$log" 2>&1 &
	GTLS_PID=$!
	PIDS+=("$GTLS_PID")
	for _ in $(seq 100); do
		grep -q 'QUIC handshake has been confirmed' "$log" && break
		kill -0 "$GTLS_PID" 2>/dev/null || { show "$log"; fail "$name: gtlsclient exited before the handshake was confirmed"; }
		sleep 0.02
	done
	grep -q 'QUIC handshake has been confirmed' "$log" || { show "$log"; fail "$name: no confirmed handshake within 2 s"; }
	sleep 0.2 # the HTTP/3 control streams settle; the request waits 2 s
	kill -KILL "$TERND_PID"
	wait "$TERND_PID" 2>/dev/null
	TERND_LOG_NAME=ternd-$name-2 TERND_LISTEN=127.0.0.1:$PORT
	T_RESTART=$(now)
}

# ---- a) the same key file ----------------------------------------------------
CAP=$WORK/same.pcapng KEYLOG=$WORK/same.keylog
log=$WORK/same.gtlsclient.log
connect_and_kill same "$KEY" "$log"
grep -q "created --reset-key-file $KEY" "$WORK/ternd-same-1.log" || fail "ternd did not say it created --reset-key-file"
[ "$(stat -c '%s %a' "$KEY")" = "32 600" ] || fail "the reset key file is $(stat -c '%s bytes, mode %a' "$KEY"), expected 32 bytes, mode 600"
key_sum=$(sha "$KEY")
start_ternd "$WORK/doc" --idle-timeout 30s --reset-key-file "$KEY" --metrics 127.0.0.1:0 --keylog-file "$KEYLOG"
[ "$(sha "$KEY")" = "$key_sum" ] || fail "the restarted ternd rewrote the reset key file"
wait "$GTLS_PID"
rc=$?
t_end=$(now)
ternd_alive "after the reset"
[ $rc -eq 0 ] || { show "$log"; fail "same key: gtlsclient exited with status $rc"; }
grep -q 'SR token=' "$log" && grep -q 'ERR_DRAINING' "$log" ||
	{ show "$log"; fail "same key: gtlsclient saw no stateless reset (it ended with $(gtls_end "$log") $(secs_between "$T_RESTART" "$t_end") s after the restart)"; }
metrics_get "$WORK/same.m1"
n=$(mval "$WORK/same.m1" tern_stateless_resets_sent_total)
[ "$n" = 1 ] || fail "same key: the restarted ternd counts $n stateless resets sent, expected 1"
[ "$(mval "$WORK/same.m1" tern_connections_created_total)" = 0 ] || fail "same key: the restarted ternd made a connection"
cap_stop

# ternd's first packet after the restart, and the client packet it answered
# (the last one before it: any earlier one may have hit the closed port).
pkts=$(ts "$CAP" -T fields -e frame.time_epoch -e udp.srcport -e udp.payload |
	awk -v t="$T_RESTART" -v p="$PORT" '$1 > t && $2 != p { c = $0 } $1 > t && $2 == p { print c; print; exit }')
trig=$(echo "$pkts" | sed -n 1p) reply=$(echo "$pkts" | sed -n 2p)
[ -n "$reply" ] || fail "same key: the capture shows no answer from ternd after the restart"
[ -n "$trig" ] || fail "same key: ternd sent a packet after the restart before the client sent one"
set -- $trig # split on purpose: time, port, payload
trig_t=$1 trig_hex=$3
set -- $reply # split on purpose
reply_t=$1 reply_hex=$3
# short header: 0b01xxxxxx; the DCID is ternd's 8-byte CID
[ $((0x${reply_hex:0:2} & 0xc0)) = 64 ] || fail "same key: the answer (first byte 0x${reply_hex:0:2}) is not a short-header packet"
[ $((0x${trig_hex:0:2} & 0xc0)) = 64 ] || fail "same key: the client's next packet is not a short-header packet"
reply_len=$((${#reply_hex} / 2)) trig_len=$((${#trig_hex} / 2))
[ "$reply_len" -lt "$trig_len" ] || fail "same key: a $reply_len-byte reset to a $trig_len-byte packet (RFC 9000 §10.3.3: smaller, or loops)"
[ "$reply_len" -ge 21 ] || fail "same key: a $reply_len-byte reset, under the 21 bytes of RFC 9000 §10.3"
dcid=${trig_hex:2:16} tail=${reply_hex: -32}
# Every token ternd issued, by CID: the transport parameter's (for the CID
# of its Initials) and each NEW_CONNECTION_ID's.
ts "$CAP" -Y "udp.srcport == $PORT" -T fields -E occurrence=a -E aggregator=' ' \
	-e quic.scid -e tls.quic.parameter.stateless_reset_token \
	-e quic.nci.connection_id -e quic.nci.stateless_reset_token >"$WORK/tokens.txt"
want=$(awk -v d="$dcid" -F'\t' '{
	gsub(":", "")
	if ($2 != "") { split($1, s, " "); tok[s[1]] = $2 }
	n = split($3, c, " "); split($4, t, " ")
	for (i = 1; i <= n; i++) tok[c[i]] = t[i]
} END { print tok[d] }' "$WORK/tokens.txt")
[ -n "$want" ] || fail "same key: the decrypted capture shows no token ternd issued for CID $dcid"
[ "$tail" = "$want" ] || fail "same key: the answer ends in $tail, not the token $want ternd issued for CID $dcid"
sr=$(sed -n 's/.* SR token=0x\([0-9a-f]*\) .*/\1/p' "$log" | head -n1)
[ "$sr" = "$want" ] || fail "same key: gtlsclient reports reset token $sr, the capture $want"
secs=$(secs_between "$trig_t" "$t_end")
cmp_secs "$secs" '<' 1 || fail "same key: gtlsclient stopped $secs s after its packet got the reset, not within 1 s"
note "same key: the request ($trig_len bytes, $(secs_between "$T_RESTART" "$trig_t") s after the restart) got a $reply_len-byte stateless reset with token $want after $(secs_between "$trig_t" "$reply_t") s; gtlsclient ERR_DRAINING $secs s after its packet"
stop_ternd

# ---- b) another key file ------------------------------------------------------
CAP='' KEYLOG=''
log=$WORK/other.gtlsclient.log
connect_and_kill other "$KEY" "$log"
start_ternd "$WORK/doc" --idle-timeout 30s --reset-key-file "$WORK/other.key" --metrics 127.0.0.1:0
wait "$GTLS_PID"
rc=$?
t_end=$(now)
ternd_alive "after gtlsclient (other key)"
secs=$(secs_between "$T_RESTART" "$t_end")
metrics_get "$WORK/other.m1"
n=$(mval "$WORK/other.m1" tern_stateless_resets_sent_total)
[ "$n" -ge 1 ] || fail "other key: the restarted ternd sent no stateless reset, so this case shows nothing"
[ $rc -eq 0 ] || { show "$log"; fail "other key: gtlsclient exited with status $rc"; }
grep -q 'ERR_DRAINING' "$log" && fail "other key: gtlsclient drained on a reset carrying a token it was never given"
grep -q 'ERR_IDLE_CLOSE' "$log" || { show "$log"; fail "other key: gtlsclient ended with $(gtls_end "$log"), expected its idle timeout"; }
# the request goes out about 1.8 s after the restart; idle 3 s after it
cmp_secs "$secs" '>=' 3.5 || fail "other key: gtlsclient stopped $secs s after the restart, too soon for its 3 s idle timeout"
note "other key: $n stateless resets ignored; gtlsclient ended with ERR_IDLE_CLOSE $secs s after the restart"
stop_ternd
