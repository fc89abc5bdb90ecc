#!/usr/bin/env bash
# A capture of a handshake and a 1 MB transfer (gtlsclient from ternd),
# decrypted with ternd's --keylog-file, must decode in tshark with no
# malformed packet, no expert error and no packet that fails to decrypt,
# and must show decrypted frames: HANDSHAKE_DONE, HTTP/3 HEADERS, and the
# whole body in STREAM frames on stream 0.
#
# Run as root it moves into a private network namespace whose loopback has
# UDP segmentation offload turned off: otherwise the capture sees ternd's GSO
# sends as one 64 KB datagram each (they are split after the capture point),
# which no dissector can read. Without root it captures on the host's lo
# and only the long-header packets must all decrypt.
if [ -z "${TERN_INTEROP_NETNS:-}" ] && [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
	exec unshare -n env TERN_INTEROP_NETNS=1 "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
need gtlsclient dumpcap tshark

netns=0
if [ "${TERN_INTEROP_NETNS:-}" = 1 ]; then
	ip link set lo up || fail "cannot bring lo up in the namespace"
	if ethtool -K lo tx-udp-segmentation off >/dev/null 2>&1; then
		netns=1
		note "private namespace, lo without UDP segmentation offload"
	else
		note "private namespace, but ethtool cannot turn off UDP GSO on lo"
	fi
fi

size=$((1024 * 1024))
mkdir "$WORK/doc"
make_file "$WORK/doc/file.bin" "$size"
start_ternd "$WORK/doc" --keylog-file "$WORK/keylog"

cap=$WORK/cap.pcapng
dumpcap -q -i lo -f "udp port $PORT" -w "$cap" >"$WORK/dumpcap.log" 2>&1 &
dpid=$!
PIDS+=("$dpid")
# dumpcap says "Capturing on" once the filter is attached.
for _ in $(seq 100); do
	grep -q 'Capturing on' "$WORK/dumpcap.log" && break
	kill -0 $dpid 2>/dev/null || { show "$WORK/dumpcap.log"; skip "dumpcap cannot capture on lo here: $(tail -n1 "$WORK/dumpcap.log")"; }
	sleep 0.05
done
grep -q 'Capturing on' "$WORK/dumpcap.log" || fail "dumpcap did not start within 5 s"
sleep 0.3

gtls_get 20 "$WORK/out" file.bin
rc=$?
sleep 0.3
kill -INT $dpid
for _ in $(seq 50); do kill -0 $dpid 2>/dev/null || break; sleep 0.1; done
wait $dpid 2>/dev/null
[ $rc -eq 0 ] || { show "$WORK/gtlsclient.log"; fail "gtlsclient exited with status $rc"; }
cmp -s "$WORK/doc/file.bin" "$WORK/out/file.bin" || fail "the captured download is not byte-identical"
stop_ternd
[ -s "$WORK/keylog" ] || fail "ternd wrote no key log"
for label in CLIENT_HANDSHAKE_TRAFFIC_SECRET SERVER_HANDSHAKE_TRAFFIC_SECRET CLIENT_TRAFFIC_SECRET_0 SERVER_TRAFFIC_SECRET_0; do
	grep -q "^$label [0-9a-f]\{64\} [0-9a-f]\{64,96\}\$" "$WORK/keylog" || fail "key log lacks a well-formed $label line"
done

ts() { tshark -r "$cap" -o "tls.keylog_file:$WORK/keylog" -d "udp.port==$PORT,quic" "$@" 2>/dev/null; }
count() { ts -Y "$1" | wc -l; }
total=$(ts | wc -l)
[ "$total" -ge 20 ] || fail "only $total packets captured"
ts -q -z expert >"$WORK/expert.txt"
sed -n '/Errors\|Warns\|Notes/,$p' "$WORK/expert.txt" | grep -v '^$' | sed "s/^/$NAME: expert: /" | head -20
n=$(count '!quic'); [ "$n" = 0 ] || fail "$n captured datagrams are not dissected as QUIC"
n=$(count '_ws.malformed'); [ "$n" = 0 ] || fail "tshark finds $n malformed packets"
n=$(count '_ws.expert.severity >= 0x00800000'); [ "$n" = 0 ] ||
	fail "tshark finds $n packets with an expert error: $(grep -A3 Errors "$WORK/expert.txt" | tail -n1 | tr -s ' ')"
# Every packet must decrypt. Without the namespace a GSO send is captured
# whole (one undecodable 64 KB "packet"), and tshark, which learns packet
# numbers only from what it decrypts, then misreads the truncated packet
# numbers of later short headers: only the long headers are checked there.
undecrypted='quic.decryption_failed || _ws.expert.message contains "Decryption" || (quic && !quic.frame)'
if [ $netns = 1 ]; then
	n=$(count "$undecrypted")
else
	n=$(count "quic.header_form == 1 && ($undecrypted)")
fi
[ "$n" = 0 ] || fail "$n QUIC packets do not decrypt with ternd's key log"
n=$(count 'quic.frame_type == 0x1e'); [ "$n" -ge 1 ] || fail "no decrypted HANDSHAKE_DONE frame"
n=$(count 'http3.frame_type == 0x01'); [ "$n" -ge 2 ] || fail "only $n packets with a decrypted HTTP/3 HEADERS frame (want request and response)"
body=$(ts -T fields -E occurrence=a -e udp.srcport -e quic.stream.stream_id -e quic.stream.length |
	awk -F'\t' -v p="$PORT" '$1 == p && $2 != "" {
		n = split($2, id, ","); split($3, len, ",")
		for (i = 1; i <= n; i++) if (id[i] == 0) sum += len[i]
	} END { print sum + 0 }')
if [ $netns = 1 ]; then
	[ "$body" -ge "$size" ] || fail "decrypted STREAM frames on stream 0 carry $body bytes, less than the $size-byte body"
fi
note "$total packets, none malformed or undecryptable$([ $netns = 1 ] || echo ' (long headers)'), HANDSHAKE_DONE and HEADERS decoded, $body bytes of stream 0 decrypted"
