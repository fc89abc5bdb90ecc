#!/usr/bin/env bash
# Loss recovery against a real peer (issue 4): with 10% of datagrams lost in
# each direction by the client's own simulation, gtlsclient downloads 20 MB
# from ternd byte-identical, and tern-client downloads 20 MB from gtlsserver
# byte-identical. Each must finish within 60 s.
. "$(dirname "$0")/lib.sh"
need gtlsclient gtlsserver

size=$((20 * 1024 * 1024))
mkdir "$WORK/doc"
make_file "$WORK/doc/f" "$size"

start_ternd "$WORK/doc"
t0=$(now)
gtls_get 60 "$WORK/dl" f -- --tx-loss 0.1 --rx-loss 0.1
rc=$?
[ $rc -eq 0 ] || { show "$WORK/gtlsclient.log"; fail "gtlsclient with 10% loss each way exited with status $rc after $(elapsed "$t0") s"; }
[ "$(sha "$WORK/dl/f")" = "$(sha "$WORK/doc/f")" ] || fail "gtlsclient's download differs"
note "gtlsclient, 10% loss each way: 20 MiB from ternd byte-identical in $(elapsed "$t0") s"
ternd_alive "after the lossy download"
stop_ternd

gport=$(free_port) || fail "no free UDP port"
gtlsserver -q -d "$WORK/doc" 127.0.0.1 "$gport" "$CERTS/ec-key.pem" "$CERTS/ec-cert.pem" \
	>"$WORK/gtlsserver.log" 2>&1 &
gpid=$!
PIDS+=($gpid)
for _ in $(seq 100); do
	ss -Hlun "sport = :$gport" 2>/dev/null | grep -q . && break
	kill -0 $gpid 2>/dev/null || { show "$WORK/gtlsserver.log"; fail "gtlsserver exited at startup"; }
	sleep 0.05
done
t0=$(now)
timeout -k 2 60 "$TERN_CLIENT" --insecure --tx-loss 0.1 --rx-loss 0.1 "https://127.0.0.1:$gport/f" \
	>"$WORK/f.out" 2>"$WORK/tern-client.log"
rc=$?
[ $rc -eq 0 ] || { show "$WORK/tern-client.log"; fail "tern-client with 10% loss each way exited with status $rc after $(elapsed "$t0") s ($(stat -c %s "$WORK/f.out") of $size bytes)"; }
[ "$(sha "$WORK/f.out")" = "$(sha "$WORK/doc/f")" ] || fail "tern-client's download differs"
note "tern-client, 10% loss each way: 20 MiB from gtlsserver byte-identical in $(elapsed "$t0") s"
