#!/usr/bin/env bash
# tern-client downloads a 50 MB file from ngtcp2's gtlsserver on loopback;
# stdout must be byte-identical (sha256) and tern-client must exit 0.
. "$(dirname "$0")/lib.sh"
need gtlsserver

size=$((50 * 1024 * 1024))
mkdir "$WORK/doc"
make_file "$WORK/doc/big.bin" "$size"
PORT=$(free_port) || fail "no free UDP port"
gtlsserver -q -d "$WORK/doc" 127.0.0.1 "$PORT" "$CERTS/ec-key.pem" "$CERTS/ec-cert.pem" \
	>"$WORK/gtlsserver.log" 2>&1 &
PIDS+=($!)
gpid=$!
# gtlsserver prints nothing when ready: wait for its socket to be bound.
for _ in $(seq 100); do
	ss -Hlun "sport = :$PORT" 2>/dev/null | grep -q . && break
	kill -0 $gpid 2>/dev/null || { show "$WORK/gtlsserver.log"; fail "gtlsserver exited at startup"; }
	sleep 0.05
done

t0=$(now)
timeout -k 2 60 "$TERN_CLIENT" --insecure "https://127.0.0.1:$PORT/big.bin" \
	>"$WORK/big.out" 2>"$WORK/tern-client.log"
rc=$?
secs=$(elapsed "$t0")
[ $rc -eq 0 ] || { show "$WORK/tern-client.log"; fail "tern-client exited with status $rc after ${secs} s ($(stat -c %s "$WORK/big.out") of $size bytes)"; }
got=$(stat -c %s "$WORK/big.out")
[ "$got" = "$size" ] || fail "downloaded $got bytes, expected $size"
[ "$(sha "$WORK/big.out")" = "$(sha "$WORK/doc/big.bin")" ] || fail "sha256 of the download differs"
kill -0 $gpid 2>/dev/null || fail "gtlsserver died during the transfer"
note "50 MiB from gtlsserver byte-identical in ${secs} s ($(awk -v b="$size" -v s="$secs" 'BEGIN { printf "%.0f", b * 8 / s / 1e6 }') Mbit/s)"
