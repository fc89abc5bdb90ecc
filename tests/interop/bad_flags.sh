#!/usr/bin/env bash
# Bad operator input (issue 9): every ternd and tern-client flag tried with
# garbage gives exactly one line on stderr naming the problem and a
# non-zero exit, never a crash (no signal, no sanitizer report, no hang).
. "$(dirname "$0")/lib.sh"

C=$CERTS/ec-cert.pem K=$CERTS/ec-key.pem
touch "$WORK/empty"
head -c 100 /dev/urandom >"$WORK/garbage.pem"
head -c 31 /dev/urandom >"$WORK/short.key"
mkdir "$WORK/dir"
base=(--datapath socket --listen 127.0.0.1:0 --cert "$C" --key "$K")

# one case per line: the arguments after the program name, then a word the
# error line must contain
cases_ternd=(
	"||missing --datapath"
	"--datapath bogus --listen 127.0.0.1:0 --cert $C --key $K||datapath"
	"--datapath socket --cert $C --key $K||--listen"
	"--datapath socket --listen 127.0.0.1:0 --key $K||--cert"
	"--datapath socket --listen 127.0.0.1:0 --cert $C||--key"
	"--datapath socket --listen nowhere --cert $C --key $K||listen"
	"--datapath socket --listen 127.0.0.1:99999 --cert $C --key $K||listen"
	"--datapath socket --listen 999.1.1.1:443 --cert $C --key $K||listen"
	"--datapath socket --listen 127.0.0.1:0 --cert $WORK/nope --key $K||--cert"
	"--datapath socket --listen 127.0.0.1:0 --cert $WORK/empty --key $K||cert"
	"--datapath socket --listen 127.0.0.1:0 --cert $WORK/garbage.pem --key $K||cert"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $WORK/garbage.pem||key"
	"--datapath socket --listen 127.0.0.1:0 --cert $K --key $C||cert"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --docroot $WORK/nope||--docroot"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --docroot $WORK/empty||--docroot"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --qlog-dir $WORK/nope||--qlog-dir"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --keylog-file $WORK/dir||--keylog-file"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --idle-timeout soon||--idle-timeout"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --idle-timeout -5s||--idle-timeout"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --retry maybe||--retry"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --retry-threshold x||--retry-threshold"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --server-id zz||--server-id"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --server-id 00112233445566778899aabbccddeeff||--server-id"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --reset-key-file $WORK/short.key||--reset-key-file"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --reset-key-file $WORK/dir||--reset-key-file"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --reset-rate -1||--reset-rate"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --reset-burst lots||--reset-burst"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --metrics here||--metrics"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --workers 0||--workers"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --workers 1000||--workers"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --bogus||--bogus"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --cert $C||--cert"
	"--datapath socket --listen 127.0.0.1:0 --cert $C --key $K --docroot||--docroot"
)
cases_client=(
	"||URL"
	"--insecure notaurl||URL"
	"--insecure http://127.0.0.1:1/||URL"
	"--insecure -n 0 https://127.0.0.1:1/||-n"
	"--insecure -n many https://127.0.0.1:1/||-n"
	"--insecure --tx-loss 2 https://127.0.0.1:1/||--tx-loss"
	"--insecure --rx-loss x https://127.0.0.1:1/||--rx-loss"
	"--ca $WORK/nope https://127.0.0.1:1/||--ca"
	"--ca $WORK/garbage.pem https://127.0.0.1:1/||"
	"--insecure --ca $C https://127.0.0.1:1/||--insecure"
	"--insecure --keylog-file $WORK/dir https://127.0.0.1:1/||--keylog-file"
	"--bogus https://127.0.0.1:1/||--bogus"
)

check() {
	local prog=$1 name=$2 spec=$3
	local args=${spec%%||*} want=${spec##*||}
	# shellcheck disable=SC2086
	timeout -k 1 10 "$prog" $args >"$WORK/out" 2>"$WORK/err"
	local rc=$?
	local lines
	lines=$(wc -l <"$WORK/err")
	[ $rc -ne 0 ] || fail "$name $args: exit status 0"
	[ $rc -lt 124 ] || fail "$name $args: status $rc (timeout or signal): $(head -c 300 "$WORK/err")"
	[ "$lines" = 1 ] || { show "$WORK/err" 10; fail "$name $args: $lines lines on stderr, expected one"; }
	[ -z "$want" ] || grep -qF -- "$want" "$WORK/err" || fail "$name $args: the error line does not name '$want': $(cat "$WORK/err")"
}

for c in "${cases_ternd[@]}"; do check "$TERND" ternd "$c"; done
for c in "${cases_client[@]}"; do check "$TERN_CLIENT" tern-client "$c"; done
note "${#cases_ternd[@]} ternd and ${#cases_client[@]} tern-client misuses: one clear line and a non-zero exit each"
