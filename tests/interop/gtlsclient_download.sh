#!/usr/bin/env bash
# gtlsclient (ngtcp2) downloads a 50 MB file from ternd on loopback; the
# copy must be byte-identical (sha256) and gtlsclient must exit 0.
. "$(dirname "$0")/lib.sh"
need gtlsclient

size=$((50 * 1024 * 1024))
mkdir "$WORK/doc"
make_file "$WORK/doc/big.bin" "$size"
start_ternd "$WORK/doc"

t0=$(now)
gtls_get 60 "$WORK/out" big.bin
rc=$?
secs=$(elapsed "$t0")
ternd_alive "during the download"
if [ $rc -ne 0 ]; then
	show "$WORK/gtlsclient.log"
	fail "gtlsclient exited with status $rc after ${secs} s ($(stat -c %s "$WORK/out/big.bin" 2>/dev/null || echo 0) of $size bytes)"
fi
got=$(stat -c %s "$WORK/out/big.bin" 2>/dev/null || echo 0)
[ "$got" = "$size" ] || fail "downloaded $got bytes, expected $size"
[ "$(sha "$WORK/out/big.bin")" = "$(sha "$WORK/doc/big.bin")" ] || fail "sha256 of the download differs"
note "50 MiB byte-identical in ${secs} s ($(awk -v b="$size" -v s="$secs" 'BEGIN { printf "%.0f", b * 8 / s / 1e6 }') Mbit/s)"
stop_ternd
