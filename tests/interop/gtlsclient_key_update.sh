#!/usr/bin/env bash
# The 50 MB download again, with gtlsclient starting a 1-RTT key update
# (RFC 9001 §6) 10 ms after the handshake, in the middle of the transfer.
# Besides exit status and sha256, gtlsclient's own log must show that it
# initiated the update and that ternd answered it: packets from ternd in the
# new key phase (k=1), many of them, i.e. the transfer went on after it.
# (gtlsclient initiates one update per connection: its timer is one-shot.)
. "$(dirname "$0")/lib.sh"
need gtlsclient

size=$((50 * 1024 * 1024))
mkdir "$WORK/doc"
make_file "$WORK/doc/big.bin" "$size"
start_ternd "$WORK/doc"

# Not -q: the per-packet log (data dumps off) is where key phases show.
mkdir "$WORK/out"
t0=$(now)
timeout -k 2 60 gtlsclient --no-quic-dump --no-http-dump --key-update 10ms \
	--exit-on-all-streams-close --download "$WORK/out" 127.0.0.1 "$PORT" \
	"https://127.0.0.1:$PORT/big.bin" 2>&1 |
	awk '/Initiate key update/ { init++ }
	     / pkt rx .*type=1RTT k=1/ { k1++ }
	     / pkt rx .*type=1RTT k=0/ { k0++ }
	     / frm rx .*CONNECTION_CLOSE/ { if (n++ < 3) print > "/dev/stderr" }
	     END { printf "%d %d %d\n", init, k0, k1 }' >"$WORK/ku.txt"
rc=${PIPESTATUS[0]}
secs=$(elapsed "$t0")
ternd_alive "during the download"
read -r init k0 k1 <"$WORK/ku.txt"
note "gtlsclient: $init key update(s) initiated; from ternd $k0 packets in key phase 0, $k1 in key phase 1"
[ $rc -eq 0 ] || fail "gtlsclient --key-update exited with status $rc after ${secs} s ($(stat -c %s "$WORK/out/big.bin" 2>/dev/null || echo 0) of $size bytes)"
[ "$(stat -c %s "$WORK/out/big.bin" 2>/dev/null)" = "$size" ] || fail "downloaded $(stat -c %s "$WORK/out/big.bin" 2>/dev/null || echo 0) bytes, expected $size"
[ "$(sha "$WORK/out/big.bin")" = "$(sha "$WORK/doc/big.bin")" ] || fail "sha256 of the download differs"
[ "${init:-0}" -ge 1 ] || fail "gtlsclient never initiated a key update (transfer over before 10 ms?)"
[ "${k1:-0}" -ge 100 ] || fail "ternd sent only ${k1:-0} packets in the new key phase: it did not answer the key update mid-transfer"
note "50 MiB byte-identical across the key update in ${secs} s"
stop_ternd
