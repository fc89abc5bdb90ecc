#!/usr/bin/env bash
# gtlsclient sends 100 requests (-n 100) on one connection, for 100 distinct
# files of distinct sizes; every body must be right and gtlsclient exit 0.
. "$(dirname "$0")/lib.sh"
need gtlsclient

mkdir "$WORK/doc"
paths=()
for i in $(seq -w 1 100); do
	# Sizes from 1 byte to ~100 KB, crossing packet and frame boundaries.
	make_file "$WORK/doc/f$i.bin" $(( (10#$i * 10#$i * 10#$i) % 100000 + 1 ))
	paths+=("f$i.bin")
done
start_ternd "$WORK/doc"

t0=$(now)
gtls_get 60 "$WORK/out" "${paths[@]}" -- -n 100
rc=$?
secs=$(elapsed "$t0")
ternd_alive "during the requests"
[ $rc -eq 0 ] || { show "$WORK/gtlsclient.log"; fail "gtlsclient -n 100 exited with status $rc after ${secs} s"; }
bad=0
for p in "${paths[@]}"; do
	cmp -s "$WORK/doc/$p" "$WORK/out/$p" || { bad=$((bad + 1)); [ $bad -le 3 ] && note "body of /$p is wrong or missing"; }
done
[ $bad -eq 0 ] || fail "$bad of 100 bodies wrong or missing"
note "100 requests, 100 bodies right, in ${secs} s"
stop_ternd
