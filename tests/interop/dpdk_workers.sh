#!/usr/bin/env bash
# Issue 6, DPDK datapath with two workers (lcores 0-1): net_af_packet has
# no RSS, so queue 0 reads the port and spreads datagrams over the workers
# by 4-tuple. The 50 MB download and the 100 requests of dpdk_download.sh
# again, then short connections (each gtlsclient its own source port) until
# /metrics shows that both workers admitted connections; every body
# byte-identical, the per-worker series adding up to the totals. Root only.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=topo.sh
. "$(dirname "$0")/topo.sh"
topo_prologue

TOPO_LOG=$WORK/topo.log
topo_up bypass 1 || { show "$TOPO_LOG"; fail "cannot build the veth pair and namespaces"; }
mkdir "$WORK/doc" "$WORK/out"
make_file "$WORK/doc/big.bin" $((50 * 1024 * 1024))
make_file "$WORK/doc/small.bin" 3000
topo_ternd dpdk "$WORK/doc" --workers 2 --metrics 127.0.0.1:0
grep -q '^ternd: listening on .*, 2 workers)$' "$TERND_LOG" || { show "$TERND_LOG"; fail "ternd does not say it runs 2 workers"; }
topo_metrics "$WORK/m0"
[ "$(mval "$WORK/m0" tern_workers)" = 2 ] || fail "tern_workers is $(mval "$WORK/m0" tern_workers), expected 2"

topo_download dpdk 60 big.bin
topo_requests dpdk 60

# A connection lands on the worker its 4-tuple hashes to: with a fresh
# source port each time, both workers get one within a few tries (the
# chance that 30 all land on one worker is 2^-29).
n=2
for i in $(seq 30); do
	topo_metrics "$WORK/m1"
	[ "$(mval "$WORK/m1" 'tern_worker_connections_created_total{worker="0"}')" -gt 0 ] &&
		[ "$(mval "$WORK/m1" 'tern_worker_connections_created_total{worker="1"}')" -gt 0 ] && break
	rm -f "$WORK/out/small.bin"
	topo_get 20 "$WORK/out" small.bin || { show "$WORK/gtlsclient.log"; fail "short download $i failed"; }
	cmp -s "$WORK/doc/small.bin" "$WORK/out/small.bin" || fail "short download $i differs"
	n=$((n + 1))
done
topo_metrics "$WORK/m1"
c0=$(mval "$WORK/m1" 'tern_worker_connections_created_total{worker="0"}')
c1=$(mval "$WORK/m1" 'tern_worker_connections_created_total{worker="1"}')
total=$(mval "$WORK/m1" tern_connections_created_total)
[ "$c0" -gt 0 ] || fail "worker 0 admitted no connection in $n (worker 1: $c1)"
[ "$c1" -gt 0 ] || fail "worker 1 admitted no connection in $n (worker 0: $c0)"
[ "$total" = "$n" ] || fail "tern_connections_created_total is $total, expected $n"
[ $((c0 + c1)) = "$total" ] || fail "the workers admitted $c0 + $c1 connections, the total says $total"
for w in 0 1; do
	r=$(mval "$WORK/m1" "tern_worker_datagrams_received_total{worker=\"$w\"}")
	[ "$r" -gt 0 ] || fail "worker $w received no datagram"
done
note "$n connections, per worker: $c0 + $c1; datagrams per worker: $(mval "$WORK/m1" 'tern_worker_datagrams_received_total{worker="0"}') + $(mval "$WORK/m1" 'tern_worker_datagrams_received_total{worker="1"}')"
stop_ternd
