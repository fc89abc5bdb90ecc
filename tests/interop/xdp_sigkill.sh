#!/usr/bin/env bash
# Issue 7: the XDP program is held through a bpf_link, so it goes when ternd
# goes, however it goes. ternd --workers 2 on a veth with two RX queues
# (one AF_XDP socket per queue) serves a download; SIGKILL; `ip link` must
# show no XDP program on the interface, ping must still work, and a new
# ternd must attach again and serve (nothing stale left behind). Root only.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=topo.sh
. "$(dirname "$0")/topo.sh"
topo_prologue
need ping

TOPO_LOG=$WORK/topo.log
topo_up kernel 2 || { show "$TOPO_LOG"; fail "cannot build the veth pair and namespaces"; }
mkdir "$WORK/doc" "$WORK/out"
make_file "$WORK/doc/mid.bin" $((5 * 1024 * 1024))

topo_ternd xdp "$WORK/doc" --workers 2
grep -q '^ternd: listening on .*, 2 workers)$' "$TERND_LOG" || { show "$TERND_LOG"; fail "ternd does not say it runs 2 workers"; }
prog=$(topo_xdp_prog)
[ -n "$prog" ] || fail "ternd runs, but ip link shows no XDP program on $TOPO_SRV_IF"
topo_download xdp 30 mid.bin

kill -KILL "$TERND_PID"
wait "$TERND_PID" 2>/dev/null
for _ in $(seq 50); do [ -z "$(topo_xdp_prog)" ] && break; sleep 0.1; done
[ -z "$(topo_xdp_prog)" ] || fail "5 s after SIGKILL, $TOPO_SRV_IF still holds XDP program $(topo_xdp_prog)"
in_srv ip link show dev "$TOPO_SRV_IF" | grep -q 'xdp' && fail "ip link still mentions xdp on $TOPO_SRV_IF: $(in_srv ip link show dev "$TOPO_SRV_IF" | head -n1)"
note "after SIGKILL: program $prog gone from $TOPO_SRV_IF"
in_cli timeout 10 ping -c 1 -W 2 "$TOPO_SRV4" >/dev/null 2>&1 || fail "ping got no answer after ternd was killed"

TERND_LOG_NAME=ternd2 topo_ternd xdp "$WORK/doc" --workers 2
[ -n "$(topo_xdp_prog)" ] || fail "the second ternd shows no XDP program"
topo_download xdp 30 mid.bin
stop_ternd
[ -z "$(topo_xdp_prog)" ] || fail "after SIGTERM, $TOPO_SRV_IF still holds XDP program $(topo_xdp_prog)"
note "a second ternd attached after the kill, served, and left nothing after SIGTERM"
