#!/usr/bin/env bash
# Graceful shutdown (issue 10; RFC 9114 §5.2, RFC 9000 §10.2). Two clients
# are connected when ternd gets SIGTERM:
#   gtlsclient, idle after its download: ternd closes it at once with an
#     application CONNECTION_CLOSE (frame type 0x1d) H3_NO_ERROR (0x100),
#     seen decrypted in the capture; gtlsclient drains and exits within 1 s;
#   badpeer, holding an unfinished request: ternd waits for it through its
#     one-second grace, then closes it with 0x1d/0x100 too.
# In the grace second /metrics shows exactly one local_close and one
# application close 0x100 sent, one connection left; ternd exits 0 within
# 3.5 s (it waits at most 3 s for connections in the closing state).
# Extra argument: BADPEER
WANT_NETNS=1
. "$(dirname "$0")/lib.sh"
BADPEER=$1
need gtlsclient dumpcap tshark curl
netns_setup

mkdir "$WORK/doc"
make_file "$WORK/doc/small.bin" 2000
KEYLOG=$WORK/keylog
start_ternd "$WORK/doc" --idle-timeout 30s --metrics 127.0.0.1:0 --keylog-file "$KEYLOG"
cap=$WORK/cap.pcapng
cap_start "$cap"

glog=$WORK/gtlsclient.log blog=$WORK/badpeer.log
mkdir "$WORK/out"
timeout -k 2 30 gtlsclient --timeout 30s --download "$WORK/out" 127.0.0.1 "$PORT" \
	"https://127.0.0.1:$PORT/small.bin" >"$glog" 2>&1 &
gpid=$!
PIDS+=("$gpid")
timeout -k 2 30 "$BADPEER" 127.0.0.1 "$PORT" hold-request >"$blog" 2>&1 &
bpid=$!
PIDS+=("$bpid")
for _ in $(seq 250); do
	cmp -s "$WORK/doc/small.bin" "$WORK/out/small.bin" && grep -q holding "$blog" && break
	kill -0 $gpid 2>/dev/null || { show "$glog"; fail "gtlsclient exited before the shutdown"; }
	kill -0 $bpid 2>/dev/null || { show "$blog"; fail "badpeer hold-request exited before the shutdown"; }
	sleep 0.02
done
grep -q holding "$blog" || { show "$blog"; fail "badpeer did not get its request open within 5 s"; }
cmp -s "$WORK/doc/small.bin" "$WORK/out/small.bin" || { show "$glog"; fail "gtlsclient's download did not complete within 5 s"; }
gport=$(sed -n 's/.*local=\[127\.0\.0\.1\]:\([0-9]*\) .*/\1/p' "$glog" | head -n1)
[ -n "$gport" ] || fail "no local port in gtlsclient's log"
metrics_get "$WORK/m0"
[ "$(mval "$WORK/m0" tern_connections_active)" = 2 ] || fail "$(mval "$WORK/m0" tern_connections_active) connections before the shutdown, expected 2"

t0=$(now)
kill -TERM "$TERND_PID"
wait $gpid
rc=$?
t_g=$(now)
[ $rc -eq 0 ] || { show "$glog"; fail "gtlsclient exited with status $rc after SIGTERM"; }
grep -q 'frm rx .* CONNECTION_CLOSE(0x1d) error_code=.*(0x100)' "$glog" ||
	{ show "$glog"; fail "gtlsclient received no application CONNECTION_CLOSE 0x100 (it ended with $(gtls_end "$glog"))"; }
secs=$(secs_between "$t0" "$t_g")
cmp_secs "$secs" '<' 1 || fail "gtlsclient ended $secs s after SIGTERM, not promptly"

# Inside the grace second: gtlsclient's connection is closed and, after 3
# PTOs, freed; badpeer's is still open.
kill -0 "$TERND_PID" 2>/dev/null || fail "ternd exited before the grace second was over (badpeer holds a request)"
ok=0
while cmp_secs "$(secs_between "$t0" "$(now)")" '<' 0.85; do
	metrics_get "$WORK/m1"
	[ "$(mval "$WORK/m1" 'tern_connections_closed_total{reason="local_close"}')" != \
		"$(mval "$WORK/m0" 'tern_connections_closed_total{reason="local_close"}')" ] && { ok=1; break; }
	sleep 0.02
done
t_m=$(now)
[ $ok = 1 ] || fail "gtlsclient's closed connection was not freed within 0.85 s of SIGTERM (3xPTO on loopback is ~0.1 s)"
expect_closed "$WORK/m0" "$WORK/m1" local_close
expect_close_deltas "$WORK/m0" "$WORK/m1" 'tern_close_sent_total{type="application",code="0x100"} 1'
[ "$(mval "$WORK/m1" tern_connections_active)" = 1 ] || fail "tern_connections_active is $(mval "$WORK/m1" tern_connections_active) in the grace second, expected 1 (badpeer)"

wait $bpid
rc=$?
t_b=$(now)
sed "s/^/$NAME: /" "$blog"
[ $rc -eq 0 ] || fail "$(grep -m1 FAIL "$blog" || echo "badpeer hold-request exited with status $rc")"
bsecs=$(secs_between "$t0" "$t_b")
cmp_secs "$bsecs" '>=' 0.9 || fail "badpeer's unfinished request was closed $bsecs s after SIGTERM, before the grace second"
cmp_secs "$bsecs" '<' 2 || fail "badpeer's connection was closed only $bsecs s after SIGTERM"

for _ in $(seq 50); do kill -0 "$TERND_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$TERND_PID" 2>/dev/null && fail "ternd still running 5 s after SIGTERM"
wait "$TERND_PID"
rc=$?
t_x=$(now)
[ $rc -eq 0 ] || { show "$TERND_LOG"; fail "ternd exited with status $rc after SIGTERM"; }
grep -q 'shutting down on SIGTERM (2 connections)' "$TERND_LOG" || { show "$TERND_LOG"; fail "ternd did not log its shutdown of 2 connections"; }
xsecs=$(secs_between "$t0" "$t_x")
cmp_secs "$xsecs" '<' 3.5 || fail "ternd took $xsecs s to exit after SIGTERM"
cap_stop

n=$(ts "$cap" -Y "$UNDECRYPTED" | wc -l)
[ "$n" = 0 ] || fail "$n captured packets do not decrypt with ternd's key log"
app_close="udp.srcport == $PORT && quic.frame_type == 0x1d && quic.cc.error_code.app == 0x100"
ng=$(ts "$cap" -Y "$app_close && udp.dstport == $gport" | wc -l)
nb=$(ts "$cap" -Y "$app_close && udp.dstport != $gport" | wc -l)
[ "$ng" -ge 1 ] || fail "the capture shows no application CONNECTION_CLOSE 0x100 from ternd to gtlsclient"
[ "$nb" -ge 1 ] || fail "the capture shows no application CONNECTION_CLOSE 0x100 from ternd to badpeer"
n=$(ts "$cap" -Y "udp.srcport == $PORT && (quic.frame_type == 0x1c || (quic.frame_type == 0x1d && quic.cc.error_code.app != 0x100))" | wc -l)
[ "$n" = 0 ] || fail "ternd sent $n packets with another CONNECTION_CLOSE"
note "SIGTERM: gtlsclient got 0x1d/0x100 and ended after $secs s (freed, metrics read $(secs_between "$t0" "$t_m") s in); badpeer's open request closed 0x1d/0x100 after $bsecs s; ternd exited 0 after $xsecs s; capture: $ng + $nb application closes 0x100"
