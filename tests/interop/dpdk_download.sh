#!/usr/bin/env bash
# Issue 6, DPDK datapath end to end: ternd on --datapath dpdk with
# net_af_packet on the server end of a veth pair, gtlsclient in the other
# end's namespace (tests/interop/topo.sh). arping and ping to the listen
# address get answers from the datapath while ternd serves; a 50 MB file
# comes down byte-identical (sha256); 100 requests on one connection
# (-n 100) all come back right; /metrics counts the two connections and the
# datapath's packets; SIGTERM ends ternd with status 0. Root only.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=topo.sh
. "$(dirname "$0")/topo.sh"
topo_prologue
need arping ping

TOPO_LOG=$WORK/topo.log
topo_up bypass 1 || { show "$TOPO_LOG"; fail "cannot build the veth pair and namespaces"; }
mkdir "$WORK/doc" "$WORK/out"
make_file "$WORK/doc/big.bin" $((50 * 1024 * 1024))
topo_ternd dpdk "$WORK/doc" --metrics 127.0.0.1:0
topo_metrics "$WORK/m0"

# The kernel of the server namespace has no address on the veth and ARP
# off (topo.sh, bypass): only the DPDK datapath can answer these.
in_cli timeout 10 arping -c 2 -w 5 -I "$TOPO_CLI_IF" "$TOPO_SRV4" >"$WORK/arping.log" 2>&1 ||
	{ show "$WORK/arping.log"; fail "arping $TOPO_SRV4 from the namespace got no answer"; }
in_cli timeout 10 ping -c 3 -i 0.2 -W 2 "$TOPO_SRV4" >"$WORK/ping.log" 2>&1 ||
	{ show "$WORK/ping.log"; fail "ping $TOPO_SRV4 from the namespace got no answer"; }
note "arping: $(grep -c 'reply from' "$WORK/arping.log") replies; ping: $(grep -o '[0-9]* received' "$WORK/ping.log")"

topo_download dpdk 60 big.bin
topo_requests dpdk 60
in_cli timeout 10 ping -c 1 -W 2 "$TOPO_SRV4" >>"$WORK/ping.log" 2>&1 || fail "ping got no answer after the transfers"

topo_metrics "$WORK/m1"
[ "$(mval "$WORK/m1" tern_connections_created_total)" = 2 ] ||
	fail "tern_connections_created_total is $(mval "$WORK/m1" tern_connections_created_total), expected 2"
rx=$(mval "$WORK/m1" 'tern_datapath_rx_packets_total{datapath="dpdk"}')
tx=$(mval "$WORK/m1" 'tern_datapath_tx_packets_total{datapath="dpdk"}')
txd=$(mval "$WORK/m1" 'tern_datapath_tx_dropped_total{datapath="dpdk"}')
# 50 MiB takes at least 50 MiB / 1500 datagrams
[ "$tx" -gt 35000 ] || fail "the dpdk datapath counted $tx datagrams sent for 50 MiB"
[ "$rx" -gt 0 ] || fail "the dpdk datapath counted no datagram received"
note "datapath: $rx datagrams received, $tx sent, $txd lost on the way out"
# per-queue L2/L3 answers and drop reasons (issue 6): arping and ping above
arp=$(mval "$WORK/m1" 'tern_datapath_replies_total{worker="0",kind="arp"}')
echo_=$(mval "$WORK/m1" 'tern_datapath_replies_total{worker="0",kind="echo"}')
[ "$arp" -ge 1 ] || fail "no ARP reply counted on queue 0"
[ "$echo_" -ge 1 ] || fail "no ICMP echo reply counted on queue 0"
grep -q '^tern_datapath_dropped_total{worker="0",why=' "$WORK/m1" || fail "/metrics has no per-queue drop reasons"
stop_ternd
