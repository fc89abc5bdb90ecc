/* The AF_XDP datapath on a real interface: a veth pair whose far end sits
 * in a network namespace (tests/xdp/netns.c), the XDP program attached to
 * the near end. Root only; every test builds and removes its own network,
 * and the fixture's fini cleans up even after a failed assertion. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "netns.h"
#include "tern/xdp.h"

#define PORT 4433
#define V1 0x00000001u
#define V2 0x6b3343cfu

static struct tnet net;
static struct tern_datapath *dp;
static pid_t holder = -1;
static int holder_in = -1, holder_out = -1;
static char logline[512];

static void log_cb(void *ctx, const char *line)
{
	(void)ctx;
	snprintf(logline, sizeof(logline), "%s", line);
}

static void setup_n(unsigned nq)
{
	if (geteuid() != 0)
		cr_skip_test("needs root (network namespaces, veth, XDP)");
	cr_assert_eq(tnet_up(&net, nq), 0, "cannot build the test network");
}

static void setup(void)
{
	setup_n(1);
}

static void setup2(void)
{
	setup_n(2);
}

static void teardown(void)
{
	if (holder > 0) {
		kill(holder, SIGKILL);
		waitpid(holder, NULL, 0);
		holder = -1;
	}
	if (holder_in >= 0)
		close(holder_in);
	if (holder_out >= 0)
		close(holder_out);
	holder_in = holder_out = -1;
	if (dp)
		dp->ops->close(dp);
	dp = NULL;
	tnet_down(&net);
}

/* ---- helpers ------------------------------------------------------------- */

static void base_cfg(struct tern_xdp_config *cfg, int fam, const char *ip)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->ifname = net.host_if;
	cfg->n_listen = 1;
	cfg->listen[0].family = (uint8_t)fam;
	cfg->listen[0].port = PORT;
	if (ip)
		cr_assert_eq(inet_pton(fam == 4 ? AF_INET : AF_INET6, ip, cfg->listen[0].ip), 1);
	cfg->ring_size = 64;
	cfg->log = log_cb;
}

static void open_dp(const struct tern_xdp_config *cfg)
{
	char err[256] = "";
	int rc = tern_xdp_open(&dp, cfg, err, sizeof(err));
	cr_assert_eq(rc, 0, "tern_xdp_open: %d %s", rc, err);
}

static socklen_t make_sa(int fam, const char *ip, uint16_t port, struct sockaddr_in6 *sa)
{
	memset(sa, 0, sizeof(*sa));
	if (fam == 4) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		inet_pton(AF_INET, ip, &s4->sin_addr);
		return sizeof(*s4);
	}
	sa->sin6_family = AF_INET6;
	sa->sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &sa->sin6_addr);
	return sizeof(*sa);
}

static void set_timeout(int s, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* A UDP socket in the namespace, bound to its end's address. */
static int ns_udp(int fam, uint16_t port)
{
	int s = tnet_socket(&net, fam == 4 ? AF_INET : AF_INET6, SOCK_DGRAM);
	cr_assert_geq(s, 0);
	struct sockaddr_in6 sa;
	socklen_t l = make_sa(fam, fam == 4 ? net.ns4 : net.ns6, port, &sa);
	cr_assert_eq(bind(s, (struct sockaddr *)&sa, l), 0, "bind: %s", strerror(errno));
	set_timeout(s, 2000);
	return s;
}

/* A kernel UDP socket on the host end, to see what XDP passed. */
static int host_udp(const char *ip, uint16_t port)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in6 sa;
	socklen_t l = make_sa(4, ip, port, &sa);
	cr_assert_eq(bind(s, (struct sockaddr *)&sa, l), 0, "bind: %s", strerror(errno));
	set_timeout(s, 200);
	return s;
}

static void send_to(int s, int fam, const char *ip, uint16_t port, const void *buf, size_t len)
{
	struct sockaddr_in6 sa;
	socklen_t l = make_sa(fam, ip, port, &sa);
	cr_assert_eq(sendto(s, buf, len, 0, (struct sockaddr *)&sa, l), (ssize_t)len,
		     "sendto: %s", strerror(errno));
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Receives on queue q until something comes or timeout_ms passes. */
static int dp_recv(unsigned q, struct tern_dp_pkt *pkts, unsigned n, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		int r = dp->ops->rx_burst(dp, q, pkts, n);
		if (r != 0 || now_ms() >= end)
			return r;
		tern_xdp_wait(dp, q, 20 * 1000000);
	}
}

static void fill_pattern(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31 + seed);
}

static void expect_addr(const struct tern_addr *a, int fam, const char *ip, uint16_t port)
{
	uint8_t want[16] = {0};
	inet_pton(fam == 4 ? AF_INET : AF_INET6, ip, want);
	cr_assert_eq(a->family, fam);
	cr_assert_arr_eq(a->ip, want, fam == 4 ? 4 : 16, "address is not %s", ip);
	cr_assert_eq(a->port, port);
}

static struct tern_xdp_prog_stats prog_stats(void)
{
	struct tern_xdp_prog_stats st;
	cr_assert_eq(tern_xdp_prog_stats(dp, &st), 0);
	return st;
}

/* Sends payload via the datapath on queue q to `to`; 0 or the error. */
static int dp_send(unsigned q, const struct tern_path *path, const uint8_t *buf, size_t len,
		   uint8_t ecn)
{
	struct tern_dp_pkt p;
	int rc = dp->ops->tx_alloc(dp, q, &p, len);
	if (rc < 0)
		return rc;
	memcpy(p.data, buf, len);
	p.len = (uint32_t)len;
	p.path = *path;
	p.ecn = ecn;
	rc = dp->ops->tx_enqueue(dp, q, &p);
	int f = dp->ops->tx_flush(dp, q);
	return rc < 0 ? rc : f;
}

/* Receives one datagram on s with its TOS and source. */
static ssize_t ns_recv(int s, uint8_t *buf, size_t cap, int *tos, struct sockaddr_in6 *from)
{
	char ctrl[128];
	struct iovec iov = {buf, cap};
	struct msghdr mh = {.msg_name = from, .msg_namelen = sizeof(*from), .msg_iov = &iov,
			    .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = sizeof(ctrl)};
	ssize_t n = recvmsg(s, &mh, 0);
	*tos = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); n >= 0 && c; c = CMSG_NXTHDR(&mh, c))
		if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) ||
		    (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS))
			*tos = c->cmsg_level == IPPROTO_IP ? *(uint8_t *)CMSG_DATA(c)
							    : *(int *)CMSG_DATA(c);
	return n;
}

/* ---- receive --------------------------------------------------------------- */

static void rx_case(int fam, const char *listen_ip)
{
	struct tern_xdp_config cfg;
	base_cfg(&cfg, fam, listen_ip);
	open_dp(&cfg);
	cr_log_info("%s", logline);
	cr_assert(strstr(logline, net.host_if) && strstr(logline, "native mode"), "log: %s", logline);
	struct tern_xdp_info info;
	tern_xdp_info(dp, &info);
	cr_assert_neq(info.prog_id, 0);
	cr_assert_eq(info.native, 1);
	cr_assert_eq(info.mtu, 1500);
	cr_assert_arr_eq(info.mac, net.host_mac, 6);
	cr_assert(strstr(logline, info.zerocopy ? "zero-copy;" : "copy mode"), "log: %s", logline);

	int s = ns_udp(fam, 5555);
	int ect0 = 2;
	if (fam == 4)
		setsockopt(s, IPPROTO_IP, IP_TOS, &ect0, sizeof(ect0));
	else
		setsockopt(s, IPPROTO_IPV6, IPV6_TCLASS, &ect0, sizeof(ect0));
	uint8_t msg[333];
	fill_pattern(msg, sizeof(msg), 7);
	msg[0] = 0x41; /* a short header, fixed bit set */
	send_to(s, fam, fam == 4 ? net.host4 : net.host6, PORT, msg, sizeof(msg));
	struct tern_dp_pkt p[4];
	cr_assert_eq(dp_recv(0, p, 4, 3000), 1);
	cr_assert_eq(p[0].len, sizeof(msg));
	cr_assert_arr_eq(p[0].data, msg, sizeof(msg));
	expect_addr(&p[0].path.remote, fam, fam == 4 ? net.ns4 : net.ns6, 5555);
	expect_addr(&p[0].path.local, fam, fam == 4 ? net.host4 : net.host6, PORT);
	cr_assert_eq(p[0].ecn, 2, "ECT(0) as sent");
	cr_assert_gt(p[0].rx_ns, 0);
	dp->ops->rx_release(dp, 0, p, 1);
	struct tern_dp_stats st;
	dp->ops->stats(dp, 0, &st);
	cr_assert_eq(st.rx_pkts, 1);
	cr_assert_eq(st.rx_bytes, sizeof(msg));
	cr_assert_eq(prog_stats().redirected, 1);
	close(s);
}

Test(xdp, rx_ipv4_payload_path_and_ecn, .init = setup, .fini = teardown)
{
	rx_case(4, net.host4);
}

Test(xdp, rx_ipv6_on_a_wildcard_address, .init = setup, .fini = teardown)
{
	rx_case(6, NULL);
}

Test(xdp, rx_frames_are_recycled_through_the_fill_ring, .init = setup, .fini = teardown)
{
	struct tern_xdp_config cfg;
	base_cfg(&cfg, 4, net.host4);
	open_dp(&cfg);
	int s = ns_udp(4, 5556);
	uint8_t msg[64];
	struct tern_dp_pkt p[TERN_DP_BURST];
	/* 4 x 48 datagrams through a 64-frame ring: only released frames
	 * come back, so this needs rx_release to refill. */
	for (unsigned round = 0; round < 4; round++) {
		for (unsigned i = 0; i < 48; i++) {
			fill_pattern(msg, sizeof(msg), round * 48 + i);
			msg[0] = 0x40;
			send_to(s, 4, net.host4, PORT, msg, sizeof(msg));
		}
		unsigned got = 0;
		while (got < 48) {
			int n = dp_recv(0, p, TERN_DP_BURST, 2000);
			cr_assert_gt(n, 0, "round %u: %u of 48", round, got);
			for (int k = 0; k < n; k++) {
				fill_pattern(msg, sizeof(msg), round * 48 + got + (unsigned)k);
				msg[0] = 0x40;
				cr_assert_arr_eq(p[k].data, msg, sizeof(msg), "in order, intact");
			}
			got += (unsigned)n;
			dp->ops->rx_release(dp, 0, p, (unsigned)n);
		}
		cr_assert_eq(got, 48);
	}
	close(s);
}

/* ---- send ---------------------------------------------------------------------- */

static void tx_case(int fam)
{
	struct tern_xdp_config cfg;
	base_cfg(&cfg, fam, NULL);
	open_dp(&cfg);
	int s = ns_udp(fam, 6000);
	int one = 1;
	if (fam == 4)
		setsockopt(s, IPPROTO_IP, IP_RECVTOS, &one, sizeof(one));
	else
		setsockopt(s, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof(one));
	uint8_t trig[20] = {0x40};
	send_to(s, fam, fam == 4 ? net.host4 : net.host6, PORT, trig, sizeof(trig));
	struct tern_dp_pkt rx[1];
	cr_assert_eq(dp_recv(0, rx, 1, 3000), 1);
	struct tern_path back = {.local = rx[0].path.local, .remote = rx[0].path.remote};
	dp->ops->rx_release(dp, 0, rx, 1);

	const size_t sizes[] = {1, 100, 1200, fam == 4 ? 1472 : 1452};
	uint8_t out[1500], in[2000];
	for (unsigned i = 0; i < 4; i++) {
		fill_pattern(out, sizes[i], i);
		/* the first reply leaves the source unset: the served address
		 * (here the interface's, the listen address is a wildcard) */
		struct tern_path path = back;
		if (i == 0)
			memset(&path.local, 0, sizeof(path.local));
		cr_assert_eq(dp_send(0, &path, out, sizes[i], (uint8_t)(i & 3)), 1);
		int tos;
		struct sockaddr_in6 from;
		ssize_t n = ns_recv(s, in, sizeof(in), &tos, &from);
		cr_assert_eq(n, (ssize_t)sizes[i], "size %zu: got %zd (%s)", sizes[i], n,
			     strerror(errno));
		cr_assert_arr_eq(in, out, sizes[i]);
		cr_assert_eq(tos & 3, (int)(i & 3), "ECN bits");
		struct sockaddr_in6 want;
		make_sa(fam, fam == 4 ? net.host4 : net.host6, PORT, &want);
		cr_assert_arr_eq(&from, &want, fam == 4 ? sizeof(struct sockaddr_in) : sizeof(want));
	}
	struct tern_dp_stats st;
	dp->ops->stats(dp, 0, &st);
	cr_assert_eq(st.tx_pkts, 4);
	cr_assert_eq(st.tx_dropped, 0);
	close(s);
}

Test(xdp, tx_ipv4_reaches_a_socket_in_the_namespace, .init = setup, .fini = teardown)
{
	tx_case(4);
}

Test(xdp, tx_ipv6_reaches_a_socket_in_the_namespace, .init = setup, .fini = teardown)
{
	tx_case(6);
}

Test(xdp, tx_needs_a_mac_and_returns_unused_buffers, .init = setup, .fini = teardown)
{
	struct tern_xdp_config cfg;
	base_cfg(&cfg, 4, net.host4);
	open_dp(&cfg);
	struct tern_path path;
	memset(&path, 0, sizeof(path));
	path.remote.family = 4;
	path.remote.port = 6001;
	inet_pton(AF_INET, net.ns4, path.remote.ip);
	struct tern_dp_pkt p;
	cr_assert_eq(dp->ops->tx_alloc(dp, 0, &p, 100), 0);
	p.len = 100;
	p.path = path;
	cr_assert_eq(dp->ops->tx_enqueue(dp, 0, &p), TERN_ERR_STATE, "nothing received yet");
	struct tern_xdp_qstats xs;
	tern_xdp_qstats(dp, 0, &xs);
	cr_assert_eq(xs.tx_no_mac, 1);
	cr_assert_eq(dp->ops->tx_flush(dp, 0), 0);
	/* 64 TX frames: all can be taken, the 65th cannot, and the ones not
	 * enqueued come back at the flush */
	struct tern_dp_pkt all[64];
	for (unsigned i = 0; i < 64; i++)
		cr_assert_eq(dp->ops->tx_alloc(dp, 0, &all[i], 1000), 0, "frame %u", i);
	cr_assert_eq(dp->ops->tx_alloc(dp, 0, &p, 10), TERN_ERR_NOMEM);
	cr_assert_eq(dp->ops->tx_flush(dp, 0), 0);
	for (unsigned i = 0; i < 64; i++)
		cr_assert_eq(dp->ops->tx_alloc(dp, 0, &all[i], 1000), 0, "frame %u again", i);
	dp->ops->tx_flush(dp, 0);
	dp->ops->close(dp);
	dp = NULL;

	/* With a configured next hop, the first datagram needs no reception. */
	base_cfg(&cfg, 4, net.host4);
	cfg.has_peer_mac = 1;
	memcpy(cfg.peer_mac, net.ns_mac, 6);
	open_dp(&cfg);
	int s = ns_udp(4, 6001);
	uint8_t msg[77];
	fill_pattern(msg, sizeof(msg), 3);
	cr_assert_eq(dp_send(0, &path, msg, sizeof(msg), 0), 1);
	uint8_t in[200];
	cr_assert_eq(recv(s, in, sizeof(in), 0), (ssize_t)sizeof(msg));
	cr_assert_arr_eq(in, msg, sizeof(msg));
	close(s);
}

Test(xdp, tx_refuses_bad_buffers_and_drops_over_mtu, .init = setup, .fini = teardown)
{
	struct tern_xdp_config cfg;
	base_cfg(&cfg, 4, net.host4);
	cfg.has_peer_mac = 1;
	memcpy(cfg.peer_mac, net.ns_mac, 6);
	open_dp(&cfg);
	struct tern_path path;
	memset(&path, 0, sizeof(path));
	path.remote.family = 4;
	path.remote.port = 6002;
	inet_pton(AF_INET, net.ns4, path.remote.ip);
	struct tern_dp_pkt p, q;
	cr_assert_eq(dp->ops->tx_alloc(dp, 0, &p, 4096 - 128 + 1), TERN_ERR_NOBUF);
	cr_assert_eq(dp->ops->tx_alloc(dp, 0, &p, 4096 - 128), 0);
	cr_assert_eq(p.cap, 4096 - 128);
	cr_assert_eq(dp->ops->tx_alloc(dp, 7, &q, 10), TERN_ERR_INVAL);
	/* a buffer that is not one of ours */
	q = p;
	q.priv = (void *)(uintptr_t)4096;
	q.len = 10;
	q.path = path;
	cr_assert_eq(dp->ops->tx_enqueue(dp, 0, &q), TERN_ERR_INVAL);
	p.path = path;
	p.len = p.cap + 1;
	cr_assert_eq(dp->ops->tx_enqueue(dp, 0, &p), TERN_ERR_INVAL);
	/* a family this datapath does not serve */
	p.len = 10;
	p.path.remote.family = 6;
	cr_assert_eq(dp->ops->tx_enqueue(dp, 0, &p), TERN_ERR_INVAL);
	p.path = path;
	cr_assert_eq(dp->ops->tx_enqueue(dp, 0, &p), 0);
	cr_assert_eq(dp->ops->tx_enqueue(dp, 0, &p), TERN_ERR_INVAL, "enqueued twice");
	int s = ns_udp(4, 6002);
	set_timeout(s, 300);
	cr_assert_eq(dp->ops->tx_flush(dp, 0), 1);
	uint8_t buf[2000];
	cr_assert_eq(recv(s, buf, sizeof(buf), 0), 10);
	/* 1472 is the most a 1500-byte MTU carries; one more is dropped */
	cr_assert_eq(dp->ops->tx_alloc(dp, 0, &p, 1473), 0);
	p.len = 1473;
	p.path = path;
	cr_assert_eq(dp->ops->tx_enqueue(dp, 0, &p), 0);
	cr_assert_eq(dp->ops->tx_flush(dp, 0), 0);
	struct tern_dp_stats st;
	dp->ops->stats(dp, 0, &st);
	cr_assert_eq(st.tx_dropped, 1);
	struct tern_xdp_qstats xs;
	tern_xdp_qstats(dp, 0, &xs);
	cr_assert_eq(xs.tx_too_long, 1);
	cr_assert_lt(recv(s, buf, sizeof(buf), 0), 0, "nothing arrives");
	cr_assert_eq(dp_send(0, &path, buf, 1472, 0), 1);
	cr_assert_eq(recv(s, buf, sizeof(buf), 0), 1472);
	close(s);
}

Test(xdp, tx_recycles_frames_through_the_completion_ring, .init = setup, .fini = teardown)
{
	struct tern_xdp_config cfg;
	base_cfg(&cfg, 4, net.host4);
	cfg.has_peer_mac = 1;
	memcpy(cfg.peer_mac, net.ns_mac, 6);
	open_dp(&cfg);
	int s = ns_udp(4, 6003);
	struct tern_path path;
	memset(&path, 0, sizeof(path));
	path.remote.family = 4;
	path.remote.port = 6003;
	inet_pton(AF_INET, net.ns4, path.remote.ip);
	uint8_t msg[200], in[300];
	/* 5 bursts of 40 through 64 TX frames */
	for (unsigned b = 0; b < 5; b++) {
		for (unsigned i = 0; i < 40; i++) {
			struct tern_dp_pkt p;
			cr_assert_eq(dp->ops->tx_alloc(dp, 0, &p, sizeof(msg)), 0, "burst %u #%u", b, i);
			fill_pattern(p.data, sizeof(msg), b * 40 + i);
			p.len = sizeof(msg);
			p.path = path;
			cr_assert_eq(dp->ops->tx_enqueue(dp, 0, &p), 0);
		}
		cr_assert_eq(dp->ops->tx_flush(dp, 0), 40);
		for (unsigned i = 0; i < 40; i++) {
			cr_assert_eq(recv(s, in, sizeof(in), 0), (ssize_t)sizeof(msg), "burst %u #%u", b, i);
			fill_pattern(msg, sizeof(msg), b * 40 + i);
			cr_assert_arr_eq(in, msg, sizeof(msg));
		}
	}
	close(s);
}

/* ---- what XDP passes and drops ----------------------------------------------- */

Test(xdp, kernel_still_answers_ping_tcp_and_other_udp, .init = setup, .fini = teardown)
{
	struct tern_xdp_config cfg;
	base_cfg(&cfg, 4, net.host4);
	open_dp(&cfg);
	cr_assert_eq(tnet_run("ip netns exec %s ping -c 1 -W 2 %s", net.ns, net.host4), 0);
	cr_assert_eq(tnet_run("ip netns exec %s ping -6 -c 1 -W 2 %s", net.ns, net.host6), 0);

	/* TCP through nc from the namespace to a listener here */
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in6 sa;
	socklen_t sl = make_sa(4, net.host4, 7777, &sa);
	cr_assert_eq(bind(l, (struct sockaddr *)&sa, sl), 0);
	cr_assert_eq(listen(l, 1), 0);
	cr_assert_eq(tnet_run("sh -c 'echo hello-tcp | ip netns exec %s nc -q 1 -w 3 %s 7777'",
			      net.ns, net.host4), 0);
	struct pollfd pfd = {.fd = l, .events = POLLIN};
	cr_assert_eq(poll(&pfd, 1, 3000), 1);
	int c = accept(l, NULL, NULL);
	cr_assert_geq(c, 0);
	set_timeout(c, 2000);
	char buf[64] = "";
	cr_assert_eq(recv(c, buf, sizeof(buf), MSG_WAITALL), 10);
	cr_assert_eq(memcmp(buf, "hello-tcp\n", 10), 0);
	close(c);
	close(l);

	/* UDP to another port goes to the kernel's socket, not to us */
	int k = host_udp(net.host4, 9999);
	int s = ns_udp(4, 5557);
	uint64_t passed = prog_stats().passed;
	send_to(s, 4, net.host4, 9999, "\x40kernel", 7);
	cr_assert_eq(recv(k, buf, sizeof(buf), 0), 7);
	cr_assert_gt(prog_stats().passed, passed);
	struct tern_dp_pkt p[1];
	cr_assert_eq(dp->ops->rx_burst(dp, 0, p, 1), 0);
	close(k);
	close(s);
}

Test(xdp, only_the_listen_address_is_steered, .init = setup, .fini = teardown)
{
	struct tern_xdp_config cfg;
	base_cfg(&cfg, 4, net.host4);
	open_dp(&cfg);
	int k = host_udp(net.host4b, PORT);
	int s = ns_udp(4, 5558);
	send_to(s, 4, net.host4b, PORT, "\x40other", 6);
	char buf[16];
	cr_assert_eq(recv(k, buf, sizeof(buf), 0), 6, "the other address's socket gets it");
	struct tern_dp_pkt p[1];
	cr_assert_eq(dp_recv(0, p, 1, 100), 0);
	send_to(s, 4, net.host4, PORT, "\x40ours", 5);
	cr_assert_eq(dp_recv(0, p, 1, 2000), 1);
	cr_assert_eq(p[0].len, 5);
	dp->ops->rx_release(dp, 0, p, 1);
	close(k);
	close(s);
}

/* A load generator tells its flows apart by local port: every port of the
 * range is steered, and reaches us as the path's local port; the port past
 * the range stays the kernel's. */
Test(xdp, a_port_range_is_steered, .init = setup, .fini = teardown)
{
	struct tern_xdp_config cfg;
	base_cfg(&cfg, 4, net.host4);
	cfg.n_ports = 3; /* PORT..PORT+2 */
	open_dp(&cfg);
	int s = ns_udp(4, 5559);
	struct tern_dp_pkt p[1];
	for (uint16_t i = 0; i < 3; i++) {
		send_to(s, 4, net.host4, (uint16_t)(PORT + i), "\x40range", 6);
		cr_assert_eq(dp_recv(0, p, 1, 2000), 1, "port PORT+%u not steered", i);
		cr_assert_eq(p[0].path.local.port, PORT + i);
		dp->ops->rx_release(dp, 0, p, 1);
	}
	int k = host_udp(net.host4, PORT + 3);
	send_to(s, 4, net.host4, PORT + 3, "\x40kernel", 7);
	char buf[16];
	cr_assert_eq(recv(k, buf, sizeof(buf), 0), 7, "the port past the range is the kernel's");
	cr_assert_eq(dp_recv(0, p, 1, 100), 0);
	close(k);
	close(s);
}

struct drop_case {
	size_t len;
	uint8_t first;
	uint32_t version;
	int dropped; /* 0: delivered; else which counter */
};

enum { DELIVER, SHORT_INITIAL, FIXED_BIT, EMPTY };

static uint64_t counter_of(const struct tern_xdp_prog_stats *st, int which)
{
	return which == SHORT_INITIAL ? st->drop_short_initial
	       : which == FIXED_BIT   ? st->drop_fixed_bit
				      : st->drop_empty;
}

Test(xdp, stateless_refusals_are_dropped_in_the_kernel_and_counted, .init = setup,
     .fini = teardown)
{
	static const struct drop_case cases[] = {
		{1199, 0xc0, V1, SHORT_INITIAL}, /* RFC 9000 §14.1 */
		{1200, 0xc0, V1, DELIVER},
		{1199, 0xd0, V2, SHORT_INITIAL}, /* v2 Initial is type 1 (RFC 9369) */
		{1199, 0xc0, V2, DELIVER},       /* type 0 is Retry in v2 */
		{100, 0xe0, V1, DELIVER},        /* Handshake */
		{100, 0x80, V1, FIXED_BIT},      /* RFC 9000 §17.2 */
		{100, 0x80, 0x1a2a3a4a, DELIVER}, /* unknown version: userspace decides */
		{1199, 0xc0, 0x1a2a3a4a, DELIVER},
		{50, 0x01, 0, FIXED_BIT}, /* short header, RFC 9000 §17.3.1 */
		{3, 0x00, 0, FIXED_BIT},
		{50, 0x41, 0, DELIVER},
		{3, 0x40, 0, DELIVER},
		{0, 0, 0, EMPTY},
	};
	struct tern_xdp_config cfg;
	base_cfg(&cfg, 4, net.host4);
	open_dp(&cfg);
	int k = host_udp(net.host4, PORT); /* nothing may fall through to it */
	int s = ns_udp(4, 5559);
	static uint8_t msg[1300];
	const uint8_t marker[] = {0x40, 'm', 'a', 'r', 'k'};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct drop_case *c = &cases[i];
		memset(msg, 0xa5, sizeof(msg));
		msg[0] = c->first;
		tern_put_u32(msg + 1, c->version);
		struct tern_xdp_prog_stats before = prog_stats();
		send_to(s, 4, net.host4, PORT, msg, c->len);
		/* a marker right behind it: the first thing to arrive tells */
		send_to(s, 4, net.host4, PORT, marker, sizeof(marker));
		struct tern_dp_pkt p[2];
		int n = dp_recv(0, p, 1, 2000);
		cr_assert_eq(n, 1, "case %u", i);
		if (c->dropped == DELIVER) {
			cr_assert_eq(p[0].len, c->len, "case %u delivered", i);
			cr_assert_eq(p[0].data[0], c->first);
			dp->ops->rx_release(dp, 0, p, 1);
			cr_assert_eq(dp_recv(0, p, 1, 2000), 1);
		}
		cr_assert_eq(p[0].len, sizeof(marker), "case %u: the marker comes next", i);
		dp->ops->rx_release(dp, 0, p, 1);
		struct tern_xdp_prog_stats after = prog_stats();
		if (c->dropped != DELIVER)
			cr_assert_eq(counter_of(&after, c->dropped), counter_of(&before, c->dropped) + 1,
				     "case %u counted", i);
		cr_assert_eq(after.drop_short_initial + after.drop_fixed_bit + after.drop_empty,
			     before.drop_short_initial + before.drop_fixed_bit + before.drop_empty +
				     (c->dropped != DELIVER),
			     "case %u: one counter moved, or none", i);
	}
	char buf[16];
	set_timeout(k, 50);
	cr_assert_lt(recv(k, buf, sizeof(buf), 0), 0, "nothing passed to the kernel");
	close(k);
	close(s);
}

/* ---- attaching, replacing, and what a dead process leaves ---------------------- */

static uint32_t attached_id(void)
{
	uint32_t id = 0;
	bpf_xdp_query_id((int)if_nametoindex(net.host_if), 0, &id);
	return id;
}

static int ip_link_shows_xdp(void)
{
	char out[4096];
	tnet_capture(out, sizeof(out), "ip link show dev %s", net.host_if);
	return strstr(out, "prog/xdp") != NULL;
}

/* The link is released when the last fd goes, which the kernel may finish
 * a moment after the process is reaped. */
static int wait_detached(int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	while (attached_id() || ip_link_shows_xdp()) {
		if (now_ms() >= end)
			return 0;
		usleep(20000);
	}
	return 1;
}

Test(xdp, an_existing_program_is_kept_unless_replace, .init = setup, .fini = teardown)
{
	/* XDP_PASS, attached through netlink as `ip link set xdp` would */
	struct bpf_insn insns[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS},
		{.code = BPF_JMP | BPF_EXIT},
	};
	int pfd = bpf_prog_load(BPF_PROG_TYPE_XDP, "other", "GPL", insns, 2, NULL);
	cr_assert_geq(pfd, 0);
	int ifindex = (int)if_nametoindex(net.host_if);
	cr_assert_eq(bpf_xdp_attach(ifindex, pfd, XDP_FLAGS_DRV_MODE, NULL), 0);
	uint32_t other = attached_id();
	cr_assert_neq(other, 0);

	struct tern_xdp_config cfg;
	base_cfg(&cfg, 4, net.host4);
	char err[256] = "";
	cr_assert_eq(tern_xdp_open(&dp, &cfg, err, sizeof(err)), TERN_ERR_STATE);
	cr_assert_null(dp);
	cr_assert(strstr(err, "already has an XDP program"), "err: %s", err);
	cr_assert_eq(attached_id(), other, "left alone");

	cfg.replace = 1;
	open_dp(&cfg);
	struct tern_xdp_info info;
	tern_xdp_info(dp, &info);
	cr_assert_eq(attached_id(), info.prog_id);
	cr_assert_neq(info.prog_id, other);
	dp->ops->close(dp);
	dp = NULL;
	cr_assert(wait_detached(2000), "closing detaches");
	close(pfd);
}

static void holder_path(char *out, size_t len)
{
	const char *env = getenv("TERN_XDP_HOLDER");
	if (env) {
		snprintf(out, len, "%s", env);
		return;
	}
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	cr_assert_gt(n, 0);
	self[n] = 0;
	char *slash = strrchr(self, '/');
	*slash = 0;
	snprintf(out, len, "%s/xdp_holder", self);
}

static void holder_start(void)
{
	char path[PATH_MAX];
	holder_path(path, sizeof(path));
	int in[2], out[2];
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(pipe(out), 0);
	holder = fork();
	cr_assert_geq(holder, 0);
	if (holder == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execl(path, path, net.host_if, net.host4, "4433", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	holder_in = in[1];
	holder_out = out[0];
	struct pollfd pfd = {.fd = holder_out, .events = POLLIN};
	cr_assert_eq(poll(&pfd, 1, 10000), 1, "the holder said nothing");
	char line[300] = "";
	ssize_t n = read(holder_out, line, sizeof(line) - 1);
	cr_assert_gt(n, 0, "the holder (%s) did not start", path);
	line[n] = 0;
	cr_assert_str_eq(line, "ready\n");
}

static int holder_reap(int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	int st = 0;
	while (waitpid(holder, &st, WNOHANG) == 0) {
		cr_assert_lt(now_ms(), end, "the holder did not end");
		usleep(10000);
	}
	holder = -1;
	return st;
}

static void held_elsewhere(void)
{
	cr_assert(ip_link_shows_xdp(), "ip link shows the holder's program");
	struct tern_xdp_config cfg;
	base_cfg(&cfg, 4, net.host4);
	char err[256] = "";
	int rc = tern_xdp_open(&dp, &cfg, err, sizeof(err));
	cr_assert_eq(rc, TERN_ERR_STATE, "rc %d: %s", rc, err);
	cr_assert(strstr(err, "already has an XDP program"), "err: %s", err);
	cfg.replace = 1;
	rc = tern_xdp_open(&dp, &cfg, err, sizeof(err));
	cr_assert_eq(rc, TERN_ERR_STATE, "rc %d: %s", rc, err);
	cr_assert(strstr(err, "bpf_link"), "a link cannot be taken over: %s", err);
	cr_assert_null(dp);
}

Test(xdp, a_process_that_exits_leaves_no_program, .init = setup, .fini = teardown)
{
	holder_start();
	held_elsewhere();
	cr_assert_eq(write(holder_in, "exit\n", 5), 5);
	int st = holder_reap(5000);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	cr_assert(wait_detached(3000), "ip link still shows XDP after exit");
	/* and the interface is free again */
	struct tern_xdp_config cfg;
	base_cfg(&cfg, 4, net.host4);
	open_dp(&cfg);
}

Test(xdp, a_killed_process_leaves_no_program, .init = setup, .fini = teardown)
{
	holder_start();
	held_elsewhere();
	cr_assert_eq(kill(holder, SIGKILL), 0);
	int st = holder_reap(5000);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %#x", st);
	cr_assert(wait_detached(3000), "ip link still shows XDP after SIGKILL");
}

/* ---- several queues, hand-off, busy poll ------------------------------------------ */

Test(xdp, two_queues_deliver_each_datagram_once, .init = setup2, .fini = teardown)
{
	struct tern_xdp_config cfg;
	base_cfg(&cfg, 4, net.host4);
	cfg.n_queues = 2;
	open_dp(&cfg);
	cr_assert_eq(dp->n_queues, 2);
	cr_assert(strstr(logline, "2 AF_XDP sockets"), "log: %s", logline);
	cr_assert_eq(tern_xdp_fd(dp, 2), -1);
	cr_assert_geq(tern_xdp_fd(dp, 1), 0);
	int s[16];
	uint8_t msg[40];
	for (unsigned i = 0; i < 16; i++) {
		s[i] = ns_udp(4, (uint16_t)(8000 + i));
		fill_pattern(msg, sizeof(msg), i);
		msg[0] = 0x40;
		msg[1] = (uint8_t)i;
		send_to(s[i], 4, net.host4, PORT, msg, sizeof(msg));
	}
	/* RSS (here: veth's TX queue choice) decides the queue; every
	 * datagram arrives on exactly one */
	unsigned seen = 0, n = 0, on_q[2] = {0, 0};
	uint64_t end = now_ms() + 3000;
	while (n < 16 && now_ms() < end) {
		for (unsigned q = 0; q < 2; q++) {
			struct tern_dp_pkt p[16];
			int r = dp->ops->rx_burst(dp, q, p, 16);
			for (int k = 0; k < r; k++) {
				cr_assert_eq(p[k].len, sizeof(msg));
				seen |= 1u << p[k].data[1];
				on_q[q]++;
			}
			n += (unsigned)(r > 0 ? r : 0);
			if (r > 0)
				dp->ops->rx_release(dp, q, p, (unsigned)r);
		}
		usleep(1000);
	}
	cr_assert_eq(n, 16);
	cr_assert_eq(seen, 0xffff);
	for (unsigned i = 0; i < 16; i++)
		close(s[i]);
}

/* One datagram from whichever queue it lands on; returns the queue. */
static unsigned recv_any(struct tern_dp_pkt *p)
{
	unsigned q = 0;
	uint64_t end = now_ms() + 3000;
	while (dp->ops->rx_burst(dp, q, p, 1) != 1) {
		cr_assert_lt(now_ms(), end, "nothing arrived");
		q ^= 1;
	}
	return q;
}

Test(xdp, handoff_moves_a_packet_and_its_peer, .init = setup2, .fini = teardown)
{
	struct tern_xdp_config cfg;
	base_cfg(&cfg, 4, net.host4);
	cfg.n_queues = 2;
	open_dp(&cfg);
	int s = ns_udp(4, 8100);
	/* hand one over to the other queue, which answers it */
	send_to(s, 4, net.host4, PORT, "\x40handoff", 8);
	struct tern_dp_pkt p[1], h[TERN_DP_BURST];
	unsigned from = recv_any(p);
	unsigned to = from ^ 1;
	cr_assert_eq(dp->ops->handoff(dp, from, 2, p), TERN_ERR_INVAL);
	cr_assert_eq(dp->ops->handoff(dp, from, to, p), 0);
	struct tern_dp_pkt copy = p[0];
	dp->ops->rx_release(dp, from, p, 1);
	struct tern_dp_stats st;
	dp->ops->stats(dp, from, &st);
	cr_assert_eq(st.handed_off, 1);
	cr_assert_eq(dp->ops->rx_burst(dp, to, h, 1), 1);
	cr_assert_eq(h[0].len, 8);
	cr_assert_eq(memcmp(h[0].data, "\x40handoff", 8), 0);
	cr_assert(tern_addr_equal(&h[0].path.remote, &copy.path.remote));
	cr_assert(tern_addr_equal(&h[0].path.local, &copy.path.local));
	struct tern_path back = {.local = h[0].path.local, .remote = h[0].path.remote};
	dp->ops->rx_release(dp, to, h, 1);
	cr_assert_eq(dp_send(to, &back, (const uint8_t *)"reply", 5, 0), 1);
	char buf[16];
	cr_assert_eq(recv(s, buf, sizeof(buf), 0), 5);

	/* the ring holds 256; the 257th is refused until the owner drains */
	send_to(s, 4, net.host4, PORT, "\x40more", 5);
	from = recv_any(p);
	to = from ^ 1;
	for (unsigned i = 0; i < 256; i++)
		cr_assert_eq(dp->ops->handoff(dp, from, to, p), 0, "#%u", i);
	cr_assert_eq(dp->ops->handoff(dp, from, to, p), TERN_ERR_NOMEM);
	dp->ops->rx_release(dp, from, p, 1);
	unsigned drained = 0;
	int r;
	while ((r = dp->ops->rx_burst(dp, to, h, TERN_DP_BURST)) > 0) {
		drained += (unsigned)r;
		dp->ops->rx_release(dp, to, h, (unsigned)r);
	}
	cr_assert_eq(drained, 256);
	close(s);
}

Test(xdp, busy_poll_and_forced_copy, .init = setup, .fini = teardown)
{
	struct tern_xdp_config cfg;
	base_cfg(&cfg, 4, net.host4);
	cfg.busy_poll = 1;
	cfg.force_copy = 1;
	open_dp(&cfg);
	cr_assert(strstr(logline, "copy mode (zero-copy: not asked for); busy poll on"), "log: %s",
		  logline);
	struct tern_xdp_info info;
	tern_xdp_info(dp, &info);
	cr_assert_eq(info.zerocopy, 0);
	struct tern_dp_pkt p[1];
	cr_assert_eq(dp->ops->rx_burst(dp, 0, p, 1), 0);
	struct tern_xdp_qstats xs;
	tern_xdp_qstats(dp, 0, &xs);
	cr_assert_geq(xs.rx_wakeups, 1, "busy poll drives the queue from rx_burst");
	int s = ns_udp(4, 5560);
	send_to(s, 4, net.host4, PORT, "\x40poll", 5);
	cr_assert_eq(dp_recv(0, p, 1, 2000), 1);
	cr_assert_eq(p[0].len, 5);
	dp->ops->rx_release(dp, 0, p, 1);
	close(s);
}

/* ---- configuration errors (no network needed) ------------------------------------- */

Test(xdp, bad_configurations_are_refused)
{
	struct tern_xdp_config cfg;
	char err[256];
	struct tern_datapath *d = (struct tern_datapath *)1;
	memset(&cfg, 0, sizeof(cfg));
	cfg.n_listen = 1;
	cfg.listen[0].family = 4;
	cfg.listen[0].port = PORT;
	cr_assert_eq(tern_xdp_open(NULL, &cfg, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_eq(tern_xdp_open(&d, NULL, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_null(d);
	cr_assert_eq(tern_xdp_open(&d, &cfg, err, sizeof(err)), TERN_ERR_INVAL, "no ifname");
	cfg.ifname = "txd-nothere0";
	cr_assert_eq(tern_xdp_open(&d, &cfg, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert(strstr(err, "no interface txd-nothere0"), "err: %s", err);
	cfg.ifname = "lo";
	cr_assert_eq(tern_xdp_open(&d, &cfg, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert(strstr(err, "not an Ethernet interface"), "err: %s", err);

	struct tern_xdp_config b = cfg;
	b.n_listen = 0;
	cr_assert_eq(tern_xdp_open(&d, &b, err, sizeof(err)), TERN_ERR_INVAL);
	b.n_listen = 3;
	cr_assert_eq(tern_xdp_open(&d, &b, err, sizeof(err)), TERN_ERR_INVAL);
	b = cfg;
	b.n_listen = 2;
	b.listen[1] = b.listen[0]; /* two IPv4 */
	cr_assert_eq(tern_xdp_open(&d, &b, err, sizeof(err)), TERN_ERR_INVAL);
	b = cfg;
	b.listen[0].port = 0;
	cr_assert_eq(tern_xdp_open(&d, &b, err, sizeof(err)), TERN_ERR_INVAL);
	b = cfg;
	b.listen[0].family = 5;
	cr_assert_eq(tern_xdp_open(&d, &b, err, sizeof(err)), TERN_ERR_INVAL);
	const unsigned rings[] = {32, 100, 32768};
	for (unsigned i = 0; i < 3; i++) {
		b = cfg;
		b.ring_size = rings[i];
		cr_assert_eq(tern_xdp_open(&d, &b, err, sizeof(err)), TERN_ERR_INVAL, "ring %u",
			     rings[i]);
	}
	b = cfg;
	b.n_queues = 257;
	cr_assert_eq(tern_xdp_open(&d, &b, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_null(d);
}
