/* udp_echo: plain forwarding through the socket datapath, the packet-rate
 * reference for the stateless-reset responder. Every datagram goes back to
 * its sender unchanged, through the same recvmmsg/sendmmsg machinery and
 * the same loop shape as ternd (wait, receive bursts, send, flush), with no
 * QUIC work at all.
 *
 *   udp_echo --listen ADDR:PORT
 *
 * Prints "udp_echo: listening on ADDR:PORT" when ready; runs until SIGTERM
 * or SIGINT, then prints how many datagrams it echoed. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "tern/sock.h"

#define MAX_BURSTS 64

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static uint64_t echo_burst(struct tern_datapath *dp)
{
	struct tern_dp_pkt in[TERN_DP_BURST], out;
	int n = dp->ops->rx_burst(dp, 0, in, TERN_DP_BURST);
	if (n <= 0)
		return 0;
	for (int i = 0; i < n; i++) {
		if (dp->ops->tx_alloc(dp, 0, &out, in[i].len) < 0) {
			dp->ops->tx_flush(dp, 0);
			if (dp->ops->tx_alloc(dp, 0, &out, in[i].len) < 0)
				continue;
		}
		memcpy(out.data, in[i].data, in[i].len);
		out.len = in[i].len;
		out.path = in[i].path;
		out.ecn = 0;
		dp->ops->tx_enqueue(dp, 0, &out);
	}
	dp->ops->rx_release(dp, 0, in, (unsigned)n);
	return (uint64_t)n;
}

int main(int argc, char **argv)
{
	char err[256], name[TERN_SOCK_ADDRSTRLEN];
	if (argc != 3 || strcmp(argv[1], "--listen") != 0) {
		fprintf(stderr, "usage: udp_echo --listen ADDR:PORT\n");
		return 2;
	}
	struct tern_sock_config sc = {.listen = argv[2], .rcvbuf = 4 << 20, .sndbuf = 4 << 20};
	struct tern_datapath *dp;
	if (tern_sock_open(&dp, &sc, err, sizeof(err)) < 0) {
		fprintf(stderr, "udp_echo: %s\n", err);
		return 2;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct tern_addr bound;
	tern_sock_local_addr(dp, 0, &bound);
	fprintf(stderr, "udp_echo: listening on %s\n", tern_sock_addr_format(&bound, name, sizeof(name)));
	uint64_t echoed = 0;
	while (!stop_flag) {
		tern_sock_wait(dp, 0, 100000000);
		for (int b = 0; b < MAX_BURSTS; b++) {
			uint64_t n = echo_burst(dp);
			if (!n)
				break;
			echoed += n;
			dp->ops->tx_flush(dp, 0);
		}
	}
	struct tern_dp_stats st;
	dp->ops->stats(dp, 0, &st);
	fprintf(stderr, "udp_echo: stopped (%llu echoed, %llu send drops)\n", (unsigned long long)echoed,
		(unsigned long long)st.tx_dropped);
	dp->ops->close(dp);
	return 0;
}
