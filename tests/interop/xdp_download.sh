#!/usr/bin/env bash
# Issue 7, XDP datapath end to end: ternd on --datapath xdp on the server end
# of a veth pair (one RX queue: the datapath serves queues 0..workers-1),
# gtlsclient in the other end's namespace (tests/interop/topo.sh). While
# ternd runs, the kernel still owns everything that is not QUIC to the
# listen port: ping and a TCP connection (nc) to the same address work. A
# 50 MB file comes down byte-identical (sha256), 100 requests on one
# connection (-n 100) come back right, /metrics counts the datapath's
# packets, and after SIGTERM (status 0) the interface holds no XDP program
# and the kernel still answers. Root only.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=topo.sh
. "$(dirname "$0")/topo.sh"
topo_prologue
need ping nc

TOPO_LOG=$WORK/topo.log
topo_up kernel 1 || { show "$TOPO_LOG"; fail "cannot build the veth pair and namespaces"; }
[ -z "$(topo_xdp_prog)" ] || fail "the fresh veth already holds an XDP program"
mkdir "$WORK/doc" "$WORK/out"
make_file "$WORK/doc/big.bin" $((50 * 1024 * 1024))
topo_ternd xdp "$WORK/doc" --metrics 127.0.0.1:0
prog=$(topo_xdp_prog)
[ -n "$prog" ] || { in_srv ip -d link show dev "$TOPO_SRV_IF" | sed 's/^/    /'; fail "ternd runs, but ip link shows no XDP program on $TOPO_SRV_IF"; }
note "XDP program id $prog on $TOPO_SRV_IF"

# kernel_still_works WHEN: ping, and a TCP connection to a listener of the
# server namespace's kernel on the same address, carrying a line.
kernel_still_works() {
	in_cli timeout 10 ping -c 2 -i 0.2 -W 2 "$TOPO_SRV4" >"$WORK/ping.log" 2>&1 ||
		{ show "$WORK/ping.log"; fail "ping $TOPO_SRV4 got no answer $1"; }
	rm -f "$WORK/nc.out"
	"${SRV[@]}" timeout 10 nc -l -s "$TOPO_SRV4" -p 7777 >"$WORK/nc.out" 2>"$WORK/nc.err" &
	local lp=$!
	PIDS+=("$lp")
	for _ in $(seq 50); do in_srv ss -ltn 2>/dev/null | grep -q ':7777 ' && break; sleep 0.05; done
	echo "tern-tcp-$1" | in_cli timeout 5 nc -q 1 -w 3 "$TOPO_SRV4" 7777 >/dev/null 2>"$WORK/nc-cli.err" ||
		{ show "$WORK/nc-cli.err"; fail "a TCP connection to $TOPO_SRV4:7777 failed $1"; }
	wait "$lp" 2>/dev/null
	[ "$(cat "$WORK/nc.out" 2>/dev/null)" = "tern-tcp-$1" ] || fail "the TCP listener got '$(cat "$WORK/nc.out" 2>/dev/null)' $1"
}
kernel_still_works before
note "ping and TCP (nc) to $TOPO_SRV4 work while ternd holds the interface"

topo_download xdp 60 big.bin
topo_requests xdp 60
kernel_still_works after
topo_metrics "$WORK/m1"
[ "$(mval "$WORK/m1" tern_connections_created_total)" = 2 ] ||
	fail "tern_connections_created_total is $(mval "$WORK/m1" tern_connections_created_total), expected 2"
rx=$(mval "$WORK/m1" 'tern_datapath_rx_packets_total{datapath="xdp"}')
tx=$(mval "$WORK/m1" 'tern_datapath_tx_packets_total{datapath="xdp"}')
[ "$tx" -gt 35000 ] || fail "the xdp datapath counted $tx datagrams sent for 50 MiB"
[ "$rx" -gt 0 ] || fail "the xdp datapath counted no datagram received"
note "datapath: $rx datagrams received, $tx sent"
# the XDP program's own verdicts (per-CPU map, issue 7): what reached ternd
# went through its redirect, and the kernel's share (ping, TCP) was passed
redir=$(mval "$WORK/m1" 'tern_xdp_program_packets_total{action="redirected"}')
passed=$(mval "$WORK/m1" 'tern_xdp_program_packets_total{action="passed"}')
[ "$redir" -ge "$rx" ] || fail "the XDP program counted $redir redirects for $rx datagrams received"
[ "$passed" -gt 0 ] || fail "the XDP program counted nothing passed to the kernel, yet ping and TCP worked"

stop_ternd
for _ in $(seq 20); do [ -z "$(topo_xdp_prog)" ] && break; sleep 0.1; done
[ -z "$(topo_xdp_prog)" ] || fail "after SIGTERM, $TOPO_SRV_IF still holds XDP program $(topo_xdp_prog)"
note "after SIGTERM: no XDP program on $TOPO_SRV_IF"
kernel_still_works "after ternd"
