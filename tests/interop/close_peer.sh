#!/usr/bin/env bash
# Peer close (RFC 9000 §10.2.2; issue 10): gtlsclient downloads a file and,
# done, closes the connection with a CONNECTION_CLOSE. ternd must enter the
# draining state: the decrypted capture shows no packet from ternd after
# that close, and /metrics shows the connection freed after 3xPTO (bounded
# from the RTTs in the capture), exactly one peer_close
# and one received close with the type and code the capture shows.
WANT_NETNS=1
. "$(dirname "$0")/lib.sh"
need gtlsclient dumpcap tshark curl
netns_setup

mkdir "$WORK/doc"
make_file "$WORK/doc/file.bin" 100000
KEYLOG=$WORK/keylog
start_ternd "$WORK/doc" --idle-timeout 30s --metrics 127.0.0.1:0 --keylog-file "$KEYLOG"
cap=$WORK/cap.pcapng
cap_start "$cap"
metrics_get "$WORK/m0"

log=$WORK/gtlsclient.log
mkdir "$WORK/out"
timeout -k 2 20 gtlsclient -q --exit-on-all-streams-close --download "$WORK/out" 127.0.0.1 "$PORT" \
	"https://127.0.0.1:$PORT/file.bin" >"$log" 2>&1 &
gpid=$!
PIDS+=("$gpid")
# Poll /metrics while it runs: the last read that still shows the
# connection and the first that does not bracket the moment it was freed.
seen=0 t_last1='' t_first0='' deadline=$(awk -v n="$(now)" 'BEGIN { printf "%.3f", n + 10 }')
while cmp_secs "$(now)" '<' "$deadline"; do
	metrics_get "$WORK/m1"
	t=$(now)
	if [ "$(mval "$WORK/m1" tern_connections_active)" != 0 ]; then
		seen=1 t_last1=$t
	elif [ $seen = 1 ]; then
		t_first0=$t
		break
	elif ! kill -0 $gpid 2>/dev/null; then
		break
	fi
	sleep 0.005
done
wait $gpid
rc=$?
ternd_alive "after gtlsclient closed"
[ $rc -eq 0 ] || { show "$log"; fail "gtlsclient exited with status $rc"; }
cmp -s "$WORK/doc/file.bin" "$WORK/out/file.bin" || fail "the download is not byte-identical"
[ $seen = 1 ] || fail "/metrics never showed gtlsclient's connection as active"
[ -n "$t_first0" ] || fail "ternd still holds $(mval "$WORK/m1" tern_connections_active) connection(s) 10 s after gtlsclient started"
cap_stop

n=$(ts "$cap" -Y "$UNDECRYPTED" | wc -l)
[ "$n" = 0 ] || fail "$n captured packets do not decrypt with ternd's key log"
# the client's CONNECTION_CLOSE: frame number, time, frame type, codes
close=$(ts "$cap" -Y "udp.dstport == $PORT && (quic.frame_type == 0x1c || quic.frame_type == 0x1d)" \
	-T fields -E occurrence=l -E separator='|' -e frame.number -e frame.time_epoch -e quic.frame_type \
	-e quic.cc.error_code -e quic.cc.error_code.app | head -n1)
[ -n "$close" ] || fail "the capture shows no CONNECTION_CLOSE from gtlsclient"
IFS='|' read -r fno ftime ftype tcode acode <<<"$close"
if [ "$ftype" = 29 ] || [ "$ftype" = 0x1d ] || [ "$ftype" = 0x0000001d ]; then
	type=application code=$acode
else
	type=transport code=$tcode
fi
code=$(printf '0x%x' "$code")
n=$(ts "$cap" -Y "udp.srcport == $PORT && frame.number > $fno" | wc -l)
[ "$n" = 0 ] || fail "ternd sent $n packets after gtlsclient's CONNECTION_CLOSE (frame $fno): the draining state sends nothing (RFC 9000 §10.2.2)"

expect_closed "$WORK/m0" "$WORK/m1" peer_close
expect_close_deltas "$WORK/m0" "$WORK/m1" "tern_close_received_total{type=\"$type\",code=\"$code\"} 1"
# Bounds for ternd's 3xPTO (RFC 9002 §6.2.1: PTO = smoothed_rtt +
# max(4 rttvar, 1 ms) + max_ack_delay, 25 ms as gtlsclient sends none).
# At least 3 x 26 ms. At most 3 x (5 S + 25 ms), where S is the largest
# RTT sample ternd can have taken (smoothed_rtt and rttvar are weighted
# means of values <= S): the handshake's round trip, or in 1-RTT the time
# from a ternd packet to the client's ACK naming it as largest; plus 0.2 s
# slack for polling.
S=$(ts "$cap" -T fields -E occurrence=l -E separator='|' -e frame.time_epoch -e udp.srcport \
	-e quic.header_form -e quic.packet_number -e quic.ack.largest_acknowledged |
	awk -F'|' -v p="$PORT" '
	$2 == p && !t0 { t0 = $1 }
	$2 != p && t0 && !hs { hs = $1 - t0; s = hs }
	$3 != 0 { next } # the 1-RTT packet of a datagram is its last
	$2 == p && $4 != "" && !($4 in sent) { sent[$4] = $1 }
	$2 != p && $5 != "" && ($5 in sent) && $1 - sent[$5] > s { s = $1 - sent[$5] }
	END { printf "%.6f", s }')
bound=$(awk -v r="$S" 'BEGIN { printf "%.3f", 3 * (5 * r + 0.025) + 0.2 }')
lo=$(secs_between "$ftime" "$t_last1") hi=$(secs_between "$ftime" "$t_first0")
cmp_secs "$hi" '>=' 0.078 || fail "the connection was freed within $hi s of the peer's close: draining must last 3xPTO, at least 0.078 s (RFC 9000 §10.2)"
cmp_secs "$hi" '<' "$bound" || fail "the connection was freed $lo..$hi s after the peer's close, later than 3xPTO (< $bound s with RTT samples <= $S s)"
note "gtlsclient closed ($type $code, frame $fno); ternd sent nothing after it and freed the connection $lo..$hi s later (3xPTO between 0.078 s and $bound s: RTT samples <= $S s); peer_close +1"
stop_ternd
