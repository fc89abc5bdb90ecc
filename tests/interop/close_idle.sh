#!/usr/bin/env bash
# Idle timeout, both directions (RFC 9000 §10.1; issue 10). gtlsclient
# fetches a small file and stays connected; the smaller of the two
# advertised max_idle_timeout values wins on both sides:
#   a) ternd --idle-timeout 1s, gtlsclient --timeout 30s
#   b) ternd --idle-timeout 30s, gtlsclient --timeout 1s
# Each time gtlsclient must end with ERR_IDLE_CLOSE after about a second
# (>= 0.95 s, < 4 s: far from 30 s), the decrypted capture must show no
# CONNECTION_CLOSE and no packet from ternd after the exchange ended (idle
# expiry is silent, §10.1), and /metrics must count exactly one
# idle_timeout close, no other close reason and no close frame.
WANT_NETNS=1
. "$(dirname "$0")/lib.sh"
need gtlsclient dumpcap tshark curl
netns_setup

mkdir "$WORK/doc"
make_file "$WORK/doc/small.bin" 2000

# idle_case NAME TERND_IDLE GTLSCLIENT_IDLE
idle_case() {
	local name=$1 log=$WORK/$1.gtlsclient.log cap=$WORK/$1.pcapng m0=$WORK/$1.m0 m1=$WORK/$1.m1
	TERND_LOG_NAME=ternd-$name KEYLOG=$WORK/$name.keylog
	start_ternd "$WORK/doc" --idle-timeout "$2" --metrics 127.0.0.1:0 --keylog-file "$KEYLOG"
	cap_start "$cap"
	metrics_get "$m0"
	local t0 t1 rc secs
	rm -rf "$WORK/out"
	t0=$(now)
	gtls_verbose "$log" 40 --timeout "$3" -- small.bin
	rc=$?
	t1=$(now)
	secs=$(secs_between "$t0" "$t1")
	ternd_alive "after gtlsclient ($name)"
	[ $rc -eq 0 ] || { show "$log"; fail "$name: gtlsclient exited with status $rc after $secs s"; }
	cmp -s "$WORK/doc/small.bin" "$WORK/out/small.bin" || fail "$name: the download is not byte-identical"
	grep -q 'ERR_IDLE_CLOSE' "$log" || { show "$log"; fail "$name: gtlsclient ended with $(gtls_end "$log"), not ERR_IDLE_CLOSE, after $secs s"; }
	cmp_secs "$secs" '>=' 0.95 || fail "$name: gtlsclient idled out after $secs s, before the 1 s idle timeout"
	cmp_secs "$secs" '<' 4 || fail "$name: gtlsclient took $secs s: the 1 s idle timeout did not win over 30 s"
	# ternd's side expires at the same time, give or take a PTO
	wait_metric "$m1" 'tern_connections_closed_total{reason="idle_timeout"}' \
		$(($(mval "$m0" 'tern_connections_closed_total{reason="idle_timeout"}') + 1)) 3 ||
		fail "$name: ternd counted no idle_timeout close within 3 s of gtlsclient's end (active: $(mval "$m1" tern_connections_active))"
	local tfree
	tfree=$(now)
	expect_closed "$m0" "$m1" idle_timeout
	expect_close_deltas "$m0" "$m1"
	[ "$(mval "$m1" tern_connections_active)" = 0 ] || fail "$name: tern_connections_active is $(mval "$m1" tern_connections_active), not 0"
	cap_stop

	local n last_t last_c
	n=$(ts "$cap" | wc -l)
	[ "$n" -ge 6 ] || fail "$name: only $n packets captured"
	n=$(ts "$cap" -Y "$UNDECRYPTED" | wc -l)
	[ "$n" = 0 ] || fail "$name: $n captured packets do not decrypt with ternd's key log: cannot rule out a CONNECTION_CLOSE in them"
	n=$(ts "$cap" -Y 'quic.frame_type == 0x1c || quic.frame_type == 0x1d' | wc -l)
	[ "$n" = 0 ] || fail "$name: $n packets carry a CONNECTION_CLOSE: an idle timeout closes silently (RFC 9000 §10.1)"
	last_t=$(ts "$cap" -Y "udp.srcport == $PORT" -T fields -e frame.time_epoch | tail -n1)
	last_c=$(ts "$cap" -Y "udp.dstport == $PORT" -T fields -e frame.time_epoch | tail -n1)
	[ -n "$last_t" ] && [ -n "$last_c" ] || fail "$name: the capture lacks one direction"
	cmp_secs "$last_t" '<=' "$(awk -v c="$last_c" 'BEGIN { printf "%.6f", c + 0.1 }')" ||
		fail "$name: ternd sent a packet $(secs_between "$last_c" "$last_t") s after gtlsclient's last one: nothing may go out when the idle timer expires"
	note "$name: ternd $2 / gtlsclient $3: ERR_IDLE_CLOSE after $secs s; ternd's last packet $(secs_between "$t0" "$last_t") s in, quiet for $(secs_between "$last_t" "$t1") s; no CONNECTION_CLOSE; idle_timeout +1 (seen $(secs_between "$t1" "$tfree") s after gtlsclient ended)"
	stop_ternd
}

idle_case ternd-1s 1s 30s
idle_case client-1s 30s 1s
