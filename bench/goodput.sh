#!/usr/bin/env bash
# bench/goodput.sh: one connection on loopback, ternd and ngtcp2's gtlsserver
# each serving the same file to the same client (gtlsclient), one after the
# other in the same run. Prints each server's goodput and CPU seconds per GB
# (user+system time of the server process, from /proc), and the ratios.
#
#   bench/goodput.sh [--size BYTES] [--runs N] [--json FILE] [--build DIR]
#
# Median of N runs per server. Traffic stays on 127.0.0.1.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build size=$((200 * 1024 * 1024)) runs=3 json=
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--json) json=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	*) echo "usage: $0 [--size BYTES] [--runs N] [--json FILE] [--build DIR]" >&2; exit 2 ;;
	esac
done
export PATH="$PATH:/usr/sbin:/sbin"
for p in gtlsclient gtlsserver python3; do
	command -v $p >/dev/null || { echo "goodput: $p is not installed" >&2; exit 2; }
done
ternd=$build/tools/ternd certs=$build/tests
[ -x "$ternd" ] || { echo "goodput: $ternd missing: run tools/setup" >&2; exit 2; }
[ -f "$certs/ec-cert.pem" ] || ninja -C "$build" tests/ec-cert.pem >/dev/null

work=$(mktemp -d /tmp/tern-goodput.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/www" "$work/dl"
head -c "$size" /dev/urandom >"$work/www/file"
want=$(sha256sum "$work/www/file" | cut -d' ' -f1)
tck=$(getconf CLK_TCK)

free_port() {
	python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# run_one NAME: starts the server, downloads once, prints "seconds cpu_seconds"
run_one() {
	local port
	port=$(free_port)
	if [ "$1" = ternd ]; then
		"$ternd" --datapath socket --listen "127.0.0.1:$port" --cert "$certs/ec-cert.pem" \
			--key "$certs/ec-key.pem" --docroot "$work/www" >"$work/server.log" 2>&1 &
	else
		gtlsserver -q --no-quic-dump --no-http-dump -d "$work/www" 127.0.0.1 "$port" \
			"$certs/ec-key.pem" "$certs/ec-cert.pem" >"$work/server.log" 2>&1 &
	fi
	pid=$!
	sleep 0.3
	local c0 t0 t1 c1
	c0=$(cpu_ticks $pid)
	t0=$(date +%s.%N)
	rm -f "$work/dl/file"
	timeout 120 gtlsclient -q --exit-on-all-streams-close --download "$work/dl" 127.0.0.1 "$port" \
		"https://127.0.0.1:$port/file" >/dev/null 2>&1
	local rc=$?
	t1=$(date +%s.%N)
	c1=$(cpu_ticks $pid)
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	pid=
	[ $rc -eq 0 ] && [ "$(sha256sum "$work/dl/file" | cut -d' ' -f1)" = "$want" ] ||
		{ echo "goodput: $1 download failed (gtlsclient exit $rc)" >&2; exit 1; }
	awk -v a="$t0" -v b="$t1" -v c0="$c0" -v c1="$c1" -v t="$tck" \
		'BEGIN { printf "%.4f %.4f\n", b - a, (c1 - c0) / t }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A secs cpus
for server in ternd gtlsserver; do
	: >"$work/$server.runs"
	for _ in $(seq "$runs"); do run_one $server >>"$work/$server.runs"; done
	secs[$server]=$(cut -d' ' -f1 "$work/$server.runs" | median)
	cpus[$server]=$(cut -d' ' -f2 "$work/$server.runs" | median)
done

gb=$(awk -v s="$size" 'BEGIN { print s / 1e9 }')
report=$(awk -v gb="$gb" -v ts="${secs[ternd]}" -v tc="${cpus[ternd]}" \
	-v gs="${secs[gtlsserver]}" -v gc="${cpus[gtlsserver]}" -v runs="$runs" -v size="$size" 'BEGIN {
	tg = gb * 8 / ts; gg = gb * 8 / gs; tcg = tc / gb; gcg = gc / gb
	printf "%-11s %12s %16s\n", "server", "goodput", "CPU s per GB"
	printf "%-11s %7.2f Gbit/s %16.2f\n", "ternd", tg, tcg
	printf "%-11s %7.2f Gbit/s %16.2f\n", "gtlsserver", gg, gcg
	printf "ratio ternd/gtlsserver: goodput %.2f, CPU per GB %.2f (median of %d runs, %d bytes)\n", tg / gg, (gcg > 0 ? tcg / gcg : 0), runs, size
	printf "JSON {\"size\": %d, \"runs\": %d, \"ternd\": {\"gbit_s\": %.3f, \"cpu_s_per_gb\": %.3f}, \"gtlsserver\": {\"gbit_s\": %.3f, \"cpu_s_per_gb\": %.3f}, \"goodput_ratio\": %.3f, \"cpu_ratio\": %.3f}\n", size, runs, tg, tcg, gg, gcg, tg / gg, (gcg > 0 ? tcg / gcg : 0)
}')
echo "$report" | grep -v '^JSON '
[ -n "$json" ] && echo "$report" | sed -n 's/^JSON //p' >"$json"
exit 0
