/* Tests of the DPDK datapath (dpdk/dpdk.c) against real ports.
 *
 * The EAL starts once per process and Criterion runs each test in its own
 * process, so every test starts its own EAL (no hugepages, no PCI, its own
 * --file-prefix). Two kinds of port:
 *  - ring: a port made with rte_eth_from_rings, whose RX ring the test fills
 *    with frames and whose TX ring it reads, byte for byte;
 *  - veth: net_af_packet on a veth pair whose peer sits in a network
 *    namespace the test creates (198.18.0.1 / 2001:2::1 for tern, .2 / ::2
 *    in the namespace); the kernel there runs arping, ping and python UDP
 *    sockets. These need root and skip without it.
 * Every test removes its namespace, veth pair, EAL runtime folder and temp
 * files in its fini; a hook in the runner removes them again after each test
 * in case a test process crashed. They are named after the runner's pid and
 * the test's name, so the runner knows them and parallel tests never meet. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "tern/dpdk.h"
#include "vectors.h"

#define BUF 2048
#define EAL_BASE "--no-huge -m 128 --no-pci --no-shconf --no-telemetry --log-level=error"
#define LCORES "--lcores=0@(0-1),1@(0-1)"

/* ---- per-test resources, named after the runner and the test process ---------------------------- */

static char ns[64], va[16], vb[16], prefix[64], tmp[128];
static struct tern_datapath *dp;
static pid_t bgpid;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Interface names have 15 characters at most: "td" + 6 + 5 + "a". */
static void names(int runner, const char *test)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const char *c = test; *c; c++)
		h = (h ^ (uint8_t)*c) * 16777619u;
	unsigned r = (unsigned)runner % 1000000, t = h % 100000;
	snprintf(prefix, sizeof(prefix), "tdp%u-%05u", r, t);
	snprintf(ns, sizeof(ns), "%s", prefix);
	snprintf(va, sizeof(va), "td%06u%05ua", r, t);
	snprintf(vb, sizeof(vb), "td%06u%05ub", r, t);
	snprintf(tmp, sizeof(tmp), "/tmp/%s", prefix);
}

static void setup(void)
{
	names((int)getppid(), criterion_current_test->name);
}

static void teardown(void)
{
	if (bgpid > 0) {
		kill(bgpid, SIGKILL);
		waitpid(bgpid, NULL, 0);
		bgpid = 0;
	}
	if (dp)
		dp->ops->close(dp);
	dp = NULL;
	sh("ip netns del %s 2>/dev/null; ip link del %s 2>/dev/null; rm -rf /var/run/dpdk/%s %s*", ns,
	   va, prefix, tmp);
}

/* The runner: whatever a crashed or timed-out test left behind. */
static void runner_cleanup(const struct criterion_test_stats *st)
{
	if (geteuid() != 0)
		return;
	names((int)getpid(), st->test->name);
	sh("ip netns del %s 2>/dev/null; ip link del %s 2>/dev/null; rm -rf /var/run/dpdk/%s %s*", ns,
	   va, prefix, tmp);
}

ReportHook(POST_TEST)(struct criterion_test_stats *st)
{
	runner_cleanup(st);
}

ReportHook(TEST_CRASH)(struct criterion_test_stats *st)
{
	runner_cleanup(st);
}

static size_t unhex(const char *s, uint8_t *out)
{
	size_t n = strlen(s) / 2;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		cr_assert_eq(sscanf(s + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	return n;
}

/* Textbook RFC 1071, independent of the code under test. */
static uint16_t ref_fold(uint32_t acc, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		acc += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		acc += (uint32_t)p[n - 1] << 8;
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)acc;
}

/* The UDP (or ICMPv6) checksum of an untagged IPv4/IPv6 frame is right. */
static int l4_ok(const uint8_t *f)
{
	const uint8_t *ip = f + 14;
	if (tern_get_u16(f + 12) == 0x0800) {
		size_t hl = (size_t)(ip[0] & 15) * 4, l = tern_get_u16(ip + 2) - hl;
		uint32_t ps = ref_fold(0, ip + 12, 8) + ip[9] + (uint32_t)l;
		return ref_fold(0, ip, hl) == 0xffff && ref_fold(ps, ip + hl, l) == 0xffff;
	}
	size_t l = tern_get_u16(ip + 4);
	uint32_t ps = ref_fold(0, ip + 8, 32) + ip[6] + (uint32_t)l;
	return ref_fold(ps, ip + 40, l) == 0xffff;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void eal(const char *extra)
{
	char args[512], err[256] = "";
	snprintf(args, sizeof(args), EAL_BASE " " LCORES " --file-prefix=%s %s", prefix, extra);
	cr_assert_eq(tern_dpdk_eal_init(args, err, sizeof(err)), 0, "%s", err);
}

static void config(struct tern_dpdk_config *c, const char *port)
{
	memset(c, 0, sizeof(*c));
	c->port = port;
	c->addr4 = "198.18.0.1";
	c->addr6 = "2001:2::1";
	c->udp_port = 4433;
	c->rx_desc = c->tx_desc = 256;
	c->handoff_slots = 256;
}

static const uint8_t mac_b[6] = {2, 0, 0, 0, 0, 2};
static const uint8_t ip4_a[4] = {198, 18, 0, 1}, ip4_b[4] = {198, 18, 0, 2};
static const uint8_t ip6_a[16] = {0x20, 0x01, 0, 2, [15] = 1}, ip6_b[16] = {0x20, 0x01, 0, 2, [15] = 2};

static struct tern_addr addr(int fam, const uint8_t *ip, uint16_t port)
{
	struct tern_addr a;
	memset(&a, 0, sizeof(a));
	a.family = (uint8_t)fam;
	a.port = port;
	memcpy(a.ip, ip, fam == 4 ? 4 : 16);
	return a;
}

/* One payload out of queue q to `to`. tern_dpdk's verdict. */
static int send_one(unsigned q, struct tern_addr to, const char *payload, uint8_t ecn)
{
	struct tern_dp_pkt p;
	int r = dp->ops->tx_alloc(dp, q, &p, strlen(payload));
	if (r < 0)
		return r;
	memcpy(p.data, payload, strlen(payload));
	p.len = (uint32_t)strlen(payload);
	p.path.remote = to;
	p.ecn = ecn;
	return dp->ops->tx_enqueue(dp, q, &p);
}

/* ---- ring ports ------------------------------------------------------------------------------ */

static struct rte_ring *rxr[2], *txr[2];
static struct rte_mempool *tpool;
static uint8_t port_mac[6];

/* A ring port of nq queues (TX rings of txsize slots) and a pool of test
 * mbufs with priv bytes of private area, then the datapath on it. */
static void ring_open(unsigned nq, unsigned txsize, uint16_t priv, struct tern_dpdk_config *c)
{
	eal("");
	for (unsigned i = 0; i < nq; i++) {
		char n[32];
		snprintf(n, sizeof(n), "rx%u", i);
		rxr[i] = rte_ring_create(n, 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(n, sizeof(n), "tx%u", i);
		txr[i] = rte_ring_create(n, txsize, SOCKET_ID_ANY, 0);
		cr_assert(rxr[i] && txr[i]);
	}
	cr_assert_geq(rte_eth_from_rings("tring", rxr, nq, txr, nq, SOCKET_ID_ANY), 0);
	tpool = rte_pktmbuf_pool_create("tpool", 1023, 0, priv, RTE_MBUF_DEFAULT_BUF_SIZE,
					SOCKET_ID_ANY);
	cr_assert_not_null(tpool);
	c->port = "net_ring_tring";
	c->n_queues = nq;
	char err[256] = "";
	cr_assert_eq(tern_dpdk_open(&dp, c, err, sizeof(err)), 0, "%s", err);
	tern_dpdk_mac(dp, port_mac);
}

/* Puts a frame (its destination MAC made the port's when to_us) in RX ring 0. */
static void inject_from(struct rte_mempool *pool, const uint8_t *f, size_t n, int to_us)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	cr_assert_not_null(m);
	uint8_t *d = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)n);
	memcpy(d, f, n);
	if (to_us)
		memcpy(d, port_mac, 6);
	cr_assert_eq(rte_ring_enqueue(rxr[0], m), 0);
}

static void inject(const char *hex, int to_us)
{
	uint8_t f[BUF];
	size_t n = unhex(hex, f);
	inject_from(tpool, f, n, to_us);
}

/* The next frame the port sent on TX ring i, or 0. */
static size_t sent(unsigned i, uint8_t *out)
{
	struct rte_mbuf *m;
	if (rte_ring_dequeue(txr[i], (void **)&m) != 0)
		return 0;
	size_t n = rte_pktmbuf_pkt_len(m);
	memcpy(out, rte_pktmbuf_mtod(m, uint8_t *), n);
	rte_pktmbuf_free(m);
	return n;
}

static int rx_all(unsigned q, struct tern_dp_pkt *pkts)
{
	int n = dp->ops->rx_burst(dp, q, pkts, TERN_DP_BURST);
	cr_assert_geq(n, 0);
	return n;
}

static struct tern_dpdk_stats stats(unsigned q)
{
	struct tern_dpdk_stats st;
	tern_dpdk_stats(dp, q, &st);
	return st;
}

TestSuite(dpdk, .init = setup, .fini = teardown);

Test(dpdk, ring_udp_in_and_reply_out)
{
	struct tern_dpdk_config c;
	config(&c, NULL);
	ring_open(1, 1024, 0, &c);
	cr_assert_eq(tern_dpdk_has_rss(dp), 0);
	cr_assert_str_eq(dp->ops->name, "dpdk");
	inject(UDP4_ECT1, 1);
	struct tern_dp_pkt p[TERN_DP_BURST];
	cr_assert_eq(rx_all(0, p), 1);
	cr_assert_eq(p[0].len, 10);
	cr_assert_arr_eq(p[0].data, "hello tern", 10);
	cr_assert_eq(p[0].ecn, 1);
	cr_assert_eq(p[0].path.remote.family, 4);
	cr_assert_arr_eq(p[0].path.remote.ip, ip4_b, 4);
	cr_assert_eq(p[0].path.remote.port, 5555);
	cr_assert_arr_eq(p[0].path.local.ip, ip4_a, 4);
	cr_assert_eq(p[0].path.local.port, 4433);
	struct tern_path back = p[0].path;
	dp->ops->rx_release(dp, 0, p, 1);
	/* the reply goes to the MAC the datagram came from */
	struct tern_dp_pkt t;
	cr_assert_eq(dp->ops->tx_alloc(dp, 0, &t, 100), 0);
	cr_assert_geq(t.cap, 1500);
	memcpy(t.data, "reply from tern", 15);
	t.len = 15;
	t.path.remote = back.remote;
	t.path.local = back.local;
	t.ecn = 2;
	cr_assert_eq(dp->ops->tx_enqueue(dp, 0, &t), 0);
	uint8_t f[BUF], want[BUF];
	cr_assert_eq(sent(0, f), 0, "buffered until the flush");
	cr_assert_eq(dp->ops->tx_flush(dp, 0), 1);
	size_t n = sent(0, f), wn = unhex(UDP4_A_TO_B, want);
	cr_assert_eq(n, wn);
	/* as the kernel sent it, but for our MAC and our IP ID */
	memcpy(want + 6, port_mac, 6);
	cr_assert_arr_eq(f, want, 18);
	cr_assert_arr_eq(f + 20, want + 20, 4, "DF, TTL 64, UDP");
	cr_assert_arr_eq(f + 26, want + 26, n - 26, "addresses, UDP header and checksum, payload");
	cr_assert_arr_eq(f + 42, "reply from tern", 15);
	cr_assert(l4_ok(f));
	struct tern_dpdk_stats st = stats(0);
	cr_assert_eq(st.rx_pkts, 1);
	cr_assert_eq(st.rx_bytes, 10);
	cr_assert_eq(st.tx_pkts, 1);
	cr_assert_eq(st.tx_bytes, 15);
	cr_assert_geq(st.neigh_learned, 1);
	struct tern_dp_stats ds;
	dp->ops->stats(dp, 0, &ds);
	cr_assert(ds.rx_pkts == 1 && ds.tx_pkts == 1 && ds.rx_dropped == 0 && ds.tx_dropped == 0);
}

Test(dpdk, ring_answers_arp_nd_and_echo)
{
	struct tern_dpdk_config c;
	config(&c, NULL);
	ring_open(1, 1024, 0, &c);
	inject(ARP_REQ_B, 0); /* broadcast */
	inject(NS_B, 0);      /* to the solicited-node group */
	inject(ECHO4_REQ, 1);
	inject(ECHO6_REQ, 1);
	struct tern_dp_pkt p[TERN_DP_BURST];
	cr_assert_eq(rx_all(0, p), 0, "answered by the datapath, not the endpoint");
	cr_assert_eq(dp->ops->tx_flush(dp, 0), 0, "no payloads among them");
	uint8_t f[BUF], want[BUF];
	size_t n = sent(0, f), wn = unhex(ARP_REPLY_TO_B, want);
	memcpy(want + 6, port_mac, 6);
	memcpy(want + 22, port_mac, 6); /* sender hardware address */
	cr_assert_eq(n, wn);
	cr_assert_arr_eq(f, want, wn);
	n = sent(0, f);
	wn = unhex(NA_A, want);
	cr_assert_eq(n, wn);
	cr_assert_arr_eq(f, want, 6);
	cr_assert_arr_eq(f + 6, port_mac, 6);
	cr_assert_arr_eq(f + 12, want + 12, 44, "IPv6 header, NA type/code");
	cr_assert_arr_eq(f + 58, want + 58, 22, "flags, target, option header");
	cr_assert_arr_eq(f + 80, port_mac, 6, "our MAC in the target link-layer option");
	cr_assert(l4_ok(f));
	n = sent(0, f);
	cr_assert_eq(n, unhex(ECHO4_REPLY, want));
	cr_assert_arr_eq(f + 34, want + 34, n - 34, "ICMP echo reply");
	n = sent(0, f);
	cr_assert_eq(n, unhex(ECHO6_REPLY, want));
	cr_assert_arr_eq(f + 18, want + 18, n - 18, "ICMPv6 echo reply (flow label aside)");
	cr_assert_eq(sent(0, f), 0);
	struct tern_dpdk_stats st = stats(0);
	cr_assert_eq(st.arp_replies, 1);
	cr_assert_eq(st.nd_replies, 1);
	cr_assert_eq(st.echo_replies, 2);
	cr_assert_eq(st.rx_frames, 4);
	cr_assert_eq(st.rx_pkts, 0);
	cr_assert_eq(st.tx_pkts, 0);
}

Test(dpdk, ring_drops_counted_by_reason)
{
	struct tern_dpdk_config c;
	config(&c, NULL);
	ring_open(1, 1024, 0, &c);
	uint8_t f[BUF];
	size_t n = unhex(UDP4_ECT1, f);
	f[n - 1] ^= 0x20;
	inject_from(tpool, f, n, 1); /* bad UDP checksum */
	n = unhex(UDP4_ECT1, f);
	tern_put_u16(f + 36, 4434); /* another port */
	inject_from(tpool, f, n, 1);
	tern_put_u16(f + 12, 0x88cc); /* not IP */
	inject_from(tpool, f, n, 1);
	inject(UDP4_ECT1, 0); /* to another MAC */
	n = unhex(UDP4_ECT1, f);
	tern_put_u16(f + 20, 0x2000); /* a fragment */
	inject_from(tpool, f, n, 1);
	inject(UDP4_ECT1, 1); /* and one good one */
	struct tern_dp_pkt p[TERN_DP_BURST];
	cr_assert_eq(rx_all(0, p), 1);
	cr_assert_arr_eq(p[0].data, "hello tern", 10);
	dp->ops->rx_release(dp, 0, p, 1);
	struct tern_dpdk_stats st = stats(0);
	cr_assert_eq(st.drop[TERN_DPDK_DROP_BAD_CHECKSUM], 1);
	cr_assert_eq(st.drop[TERN_DPDK_DROP_WRONG_PORT], 1);
	cr_assert_eq(st.drop[TERN_DPDK_DROP_NOT_IP], 1);
	cr_assert_eq(st.drop[TERN_DPDK_DROP_OTHER_MAC], 1);
	/* the header checksum now fails before the fragment test: bad_ip */
	cr_assert_eq(st.drop[TERN_DPDK_DROP_BAD_IP], 1);
	cr_assert_eq(st.rx_dropped, 5);
	cr_assert_eq(st.rx_frames, 6);
	struct tern_dp_stats ds;
	dp->ops->stats(dp, 0, &ds);
	cr_assert_eq(ds.rx_dropped, 5);
	cr_assert_eq(ds.rx_pkts, 1);
	/* nothing leaked: every test mbuf is back */
	cr_assert_eq(rte_mempool_avail_count(tpool), 1023);
}

Test(dpdk, ring_unknown_neighbour_is_solicited)
{
	struct tern_dpdk_config c;
	config(&c, NULL);
	ring_open(1, 1024, 0, &c);
	static const uint8_t ip99[4] = {198, 18, 0, 99};
	cr_assert_eq(send_one(0, addr(4, ip99, 9), "x", 0), 0, "dropped, as a router drops");
	cr_assert_eq(dp->ops->tx_flush(dp, 0), 0);
	uint8_t f[BUF], want[BUF];
	size_t n = sent(0, f), wn = unhex(ARP_REQ_B, want);
	cr_assert_eq(n, wn);
	memcpy(want + 6, port_mac, 6);
	memcpy(want + 22, port_mac, 6);
	memcpy(want + 28, ip4_a, 4);
	memcpy(want + 38, ip99, 4);
	cr_assert_arr_eq(f, want, wn, "ARP request for 198.18.0.99");
	struct tern_dpdk_stats st = stats(0);
	cr_assert_eq(st.tx_no_neigh, 1);
	cr_assert_eq(st.tx_dropped, 1);
	cr_assert_eq(st.solicits_sent, 1);
	usleep(2000); /* solicitations are paced at one per millisecond */
	static const uint8_t ip6_99[16] = {0x20, 0x01, 0, 2, [15] = 0x99};
	cr_assert_eq(send_one(0, addr(6, ip6_99, 9), "x", 0), 0);
	dp->ops->tx_flush(dp, 0);
	n = sent(0, f);
	cr_assert_eq(n, 86);
	static const uint8_t group_mac[6] = {0x33, 0x33, 0xff, 0, 0, 0x99};
	cr_assert_arr_eq(f, group_mac, 6);
	cr_assert_eq(f[54], 135, "a Neighbour Solicitation");
	cr_assert_arr_eq(f + 62, ip6_99, 16);
	cr_assert(l4_ok(f));
	/* the answer teaches the MAC, and the next payload goes */
	n = unhex(ARP_REQ_B, f); /* B's request also teaches B */
	inject_from(tpool, f, n, 0);
	struct tern_dp_pkt p[TERN_DP_BURST];
	cr_assert_eq(rx_all(0, p), 0);
	dp->ops->tx_flush(dp, 0);
	sent(0, f); /* our ARP reply */
	cr_assert_eq(send_one(0, addr(4, ip4_b, 9), "y", 3), 0);
	cr_assert_eq(dp->ops->tx_flush(dp, 0), 1);
	n = sent(0, f);
	cr_assert_eq(n, 43);
	cr_assert_arr_eq(f, mac_b, 6);
	cr_assert_eq(f[15] & 3, 3, "CE");
	cr_assert(l4_ok(f));
}

Test(dpdk, ring_gateway_static_entries_and_lb_mode)
{
	static const uint8_t gw[6] = {2, 0xaa, 0, 0, 0, 1};
	struct tern_dpdk_config c;
	config(&c, NULL);
	c.gateway_mac = gw;
	c.neigh_mode = TERN_DPDK_NEIGH_SRC_MAC;
	ring_open(1, 1024, 0, &c);
	uint8_t f[BUF];
	/* two flows from one address through two MACs (an LB's two legs) */
	size_t n = unhex(UDP4_ECT1, f);
	f[6 + 5] = 0x21;
	f[40] = f[41] = 0; /* no UDP checksum (RFC 768), so the port may change */
	inject_from(tpool, f, n, 1);
	tern_put_u16(f + 34, 5556);
	f[6 + 5] = 0x22;
	inject_from(tpool, f, n, 1);
	struct tern_dp_pkt p[TERN_DP_BURST];
	int k = rx_all(0, p);
	cr_assert_eq(k, 2);
	dp->ops->rx_release(dp, 0, p, (unsigned)k);
	cr_assert_eq(send_one(0, addr(4, ip4_b, 5556), "a", 0), 0);
	cr_assert_eq(send_one(0, addr(4, ip4_b, 5555), "b", 0), 0);
	cr_assert_eq(send_one(0, addr(4, ip4_b, 5557), "c", 0), 0); /* unknown flow: gateway */
	struct tern_addr st6 = addr(6, ip6_b, 0);
	static const uint8_t smac[6] = {2, 0xbb, 0, 0, 0, 6};
	cr_assert_eq(tern_dpdk_neigh_add(dp, &st6, smac), 0);
	cr_assert_eq(send_one(0, addr(6, ip6_b, 1), "d", 0), 0); /* static, port-less entry */
	cr_assert_eq(dp->ops->tx_flush(dp, 0), 4);
	cr_assert_eq(sent(0, f), 43);
	cr_assert_eq(f[5], 0x22);
	cr_assert_eq(sent(0, f), 43);
	cr_assert_eq(f[5], 0x21);
	cr_assert_eq(sent(0, f), 43);
	cr_assert_arr_eq(f, gw, 6);
	cr_assert_eq(sent(0, f), 63);
	cr_assert_arr_eq(f, smac, 6);
	cr_assert(l4_ok(f));
	cr_assert_eq(stats(0).solicits_sent, 0, "LB mode never solicits");
	struct tern_addr bad = {0};
	cr_assert_eq(tern_dpdk_neigh_add(dp, &bad, smac), TERN_ERR_INVAL);
}

Test(dpdk, ring_tx_limits)
{
	struct tern_dpdk_config c;
	config(&c, NULL);
	c.tx_slots = 4;
	ring_open(1, 1024, 0, &c);
	struct tern_addr b4 = addr(4, ip4_b, 9), b6 = addr(6, ip6_b, 9);
	cr_assert_eq(tern_dpdk_neigh_add(dp, &b4, mac_b), 0);
	cr_assert_eq(tern_dpdk_neigh_add(dp, &b6, mac_b), 0);
	struct tern_dp_pkt p[5];
	cr_assert_eq(dp->ops->tx_alloc(dp, 0, &p[0], 4096), TERN_ERR_NOBUF);
	cr_assert_eq(dp->ops->tx_alloc(dp, 1, &p[0], 10), TERN_ERR_INVAL);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(dp->ops->tx_alloc(dp, 0, &p[i], TERN_DP_MAX_PAYLOAD), 0);
	cr_assert_eq(dp->ops->tx_alloc(dp, 0, &p[4], 10), TERN_ERR_NOMEM, "tx_slots are out");
	/* the MTU (1500): 1472 bytes of UDP payload over IPv4, 1452 over IPv6 */
	p[0].len = 1473;
	p[0].path.remote = b4;
	p[1].len = 1472;
	p[1].path.remote = b4;
	p[2].len = 1453;
	p[2].path.remote = b6;
	p[3].len = 1452;
	p[3].path.remote = b6;
	for (int i = 0; i < 4; i++)
		cr_assert_eq(dp->ops->tx_enqueue(dp, 0, &p[i]), 0);
	cr_assert_eq(dp->ops->tx_enqueue(dp, 0, &p[1]), TERN_ERR_INVAL, "enqueued twice");
	cr_assert_eq(dp->ops->tx_flush(dp, 0), 2);
	uint8_t f[BUF];
	cr_assert_eq(sent(0, f), 14 + 1500);
	cr_assert_eq(sent(0, f), 14 + 1500);
	struct tern_dpdk_stats st = stats(0);
	cr_assert_eq(st.tx_too_big, 2);
	/* allocated, never enqueued: given back at the flush */
	for (int i = 0; i < 4; i++)
		cr_assert_eq(dp->ops->tx_alloc(dp, 0, &p[i], 10), 0);
	cr_assert_eq(dp->ops->tx_flush(dp, 0), 0);
	cr_assert_eq(sent(0, f), 0);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(dp->ops->tx_alloc(dp, 0, &p[i], 10), 0);
	p[0].len = 1;
	p[0].path.remote.family = 0; /* nowhere */
	cr_assert_eq(dp->ops->tx_enqueue(dp, 0, &p[0]), 0);
	p[1].len = 1;
	p[1].path.remote = b4;
	p[1].path.local = addr(6, ip6_a, 0); /* families differ */
	cr_assert_eq(dp->ops->tx_enqueue(dp, 0, &p[1]), 0);
	p[2].data++; /* not where tx_alloc put the payload */
	cr_assert_eq(dp->ops->tx_enqueue(dp, 0, &p[2]), TERN_ERR_INVAL);
	cr_assert_eq(stats(0).tx_bad_path, 2);
	cr_assert_eq(stats(0).tx_dropped, 4);
	cr_assert_eq(dp->ops->tx_flush(dp, 0), 0);
}

Test(dpdk, ring_port_full_drops_and_counts)
{
	struct tern_dpdk_config c;
	config(&c, NULL);
	ring_open(1, 8, 0, &c); /* a TX ring with room for 7 */
	struct tern_addr b4 = addr(4, ip4_b, 9);
	cr_assert_eq(tern_dpdk_neigh_add(dp, &b4, mac_b), 0);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(send_one(0, b4, "z", 0), 0);
	cr_assert_eq(dp->ops->tx_flush(dp, 0), 7);
	struct tern_dpdk_stats st = stats(0);
	cr_assert_eq(st.tx_pkts, 7);
	cr_assert_eq(st.tx_port_full, 3);
	cr_assert_eq(st.tx_dropped, 3);
	/* a full burst leaves at once, without a flush */
	uint8_t f[BUF];
	while (sent(0, f))
		;
	for (int i = 0; i < 32; i++)
		cr_assert_eq(send_one(0, b4, "z", 0), 0);
	cr_assert_eq(sent(0, f), 43);
}

/* The frame with an 802.1Q tag for VLAN 100 after the MAC addresses. */
static size_t tagged(const char *hex, uint8_t *g)
{
	uint8_t f[BUF];
	size_t n = unhex(hex, f);
	memcpy(g, f, 12);
	tern_put_u16(g + 12, 0x8100);
	tern_put_u16(g + 14, 100);
	memcpy(g + 16, f + 12, n - 12);
	return n + 4;
}

Test(dpdk, ring_vlan)
{
	struct tern_dpdk_config c;
	config(&c, NULL);
	c.vlan_id = 100;
	ring_open(1, 1024, 0, &c);
	uint8_t g[BUF], f[BUF];
	size_t n = tagged(UDP4_ECT1, g);
	inject_from(tpool, g, n, 1);
	inject(UDP4_ECT1, 1); /* untagged: not ours */
	n = tagged(ARP_REQ_B, g);
	inject_from(tpool, g, n, 0);
	/* a request whose tag the NIC took off: the answer gets it back */
	struct rte_mbuf *m = rte_pktmbuf_alloc(tpool);
	n = unhex(ARP_REQ_B, f);
	memcpy(rte_pktmbuf_append(m, (uint16_t)n), f, n);
	m->ol_flags = RTE_MBUF_F_RX_VLAN | RTE_MBUF_F_RX_VLAN_STRIPPED;
	m->vlan_tci = 100;
	cr_assert_eq(rte_ring_enqueue(rxr[0], m), 0);
	struct tern_dp_pkt p[TERN_DP_BURST];
	cr_assert_eq(rx_all(0, p), 1);
	cr_assert_arr_eq(p[0].data, "hello tern", 10);
	struct tern_path back = p[0].path;
	dp->ops->rx_release(dp, 0, p, 1);
	cr_assert_eq(stats(0).drop[TERN_DPDK_DROP_WRONG_VLAN], 1);
	cr_assert_eq(send_one(0, back.remote, "v", 0), 0);
	cr_assert_eq(dp->ops->tx_flush(dp, 0), 1);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(sent(0, f), 46, "ARP reply with its tag");
		cr_assert_eq(tern_get_u16(f + 12), 0x8100);
		cr_assert_eq(tern_get_u16(f + 14) & 0xfff, 100);
		cr_assert_eq(tern_get_u16(f + 16), 0x0806);
		cr_assert_eq(tern_get_u16(f + 18 + 6), 2);
	}
	cr_assert_eq(sent(0, f), 47);
	cr_assert_eq(tern_get_u16(f + 12), 0x8100);
	cr_assert_eq(tern_get_u16(f + 14), 100);
	cr_assert_eq(tern_get_u16(f + 16), 0x0800);
	cr_assert_eq(f[46], 'v');
}

/* Frames from 198.18.0.2:port with the port in the payload, no UDP checksum. */
static void inject_port(struct rte_mempool *pool, uint16_t port)
{
	uint8_t f[BUF];
	size_t n = unhex(UDP4_ECT1, f);
	tern_put_u16(f + 34, port);
	f[40] = f[41] = 0;
	snprintf((char *)f + 42, 11, "p%09u", port);
	inject_from(pool, f, n, 1);
}

Test(dpdk, ring_software_spreading)
{
	struct tern_dpdk_config c;
	config(&c, NULL);
	ring_open(2, 1024, 64, &c);
	cr_assert_eq(tern_dpdk_has_rss(dp), 0, "a ring port has no RSS");
	for (uint16_t i = 0; i < 64; i++)
		inject_port(tpool, (uint16_t)(10000 + i));
	struct tern_dp_pkt p[TERN_DP_BURST];
	int got[2] = {0, 0}, seen[64] = {0};
	for (int round = 0; round < 8; round++) {
		for (unsigned q = 0; q < 2; q++) {
			int n = rx_all(q, p);
			for (int i = 0; i < n; i++) {
				char want[11];
				snprintf(want, sizeof(want), "p%09u", p[i].path.remote.port);
				cr_assert_arr_eq(p[i].data, want, 10);
				seen[p[i].path.remote.port - 10000]++;
			}
			got[q] += n;
			dp->ops->rx_release(dp, q, p, (unsigned)n);
		}
	}
	cr_assert_eq(got[0] + got[1], 64);
	cr_assert(got[0] > 0 && got[1] > 0, "64 flows over two queues: %d / %d", got[0], got[1]);
	for (int i = 0; i < 64; i++)
		cr_assert_eq(seen[i], 1);
	cr_assert_eq(stats(0).handed_off, (uint64_t)got[1]);
	cr_assert_eq(stats(1).handoff_rx, (uint64_t)got[1]);
	struct tern_dpdk_stats all = stats(TERN_DPDK_ALL_QUEUES);
	cr_assert_eq(all.rx_pkts, 64);
	cr_assert_eq(rte_mempool_avail_count(tpool), 1023);
	/* a flow always lands on the same queue */
	inject_port(tpool, 10000);
	inject_port(tpool, 10000);
	int n0 = rx_all(0, p);
	dp->ops->rx_release(dp, 0, p, (unsigned)n0);
	int n1 = rx_all(1, p);
	dp->ops->rx_release(dp, 1, p, (unsigned)n1);
	cr_assert(n0 == 2 || n1 == 2);
}

/* The packet a queue reads next (from the port via queue 0, or spread). */
static unsigned take_one(struct tern_dp_pkt *out)
{
	for (int round = 0; round < 4; round++)
		for (unsigned q = 0; q < 2; q++)
			if (dp->ops->rx_burst(dp, q, out, 1) == 1)
				return q;
	cr_assert_fail("no packet");
	return 0;
}

Test(dpdk, ring_handoff_zero_copy_and_copy)
{
	struct tern_dpdk_config c;
	config(&c, NULL);
	c.handoff_slots = 2;
	ring_open(2, 1024, 64, &c);
	struct rte_mempool *plain = rte_pktmbuf_pool_create("plain", 63, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
							    SOCKET_ID_ANY);
	cr_assert_not_null(plain);
	inject_port(tpool, 20001);
	struct tern_dp_pkt a, b;
	unsigned q = take_one(&a), o = 1 - q;
	cr_assert_eq(dp->ops->handoff(dp, q, o, &a), 0);
	dp->ops->rx_release(dp, q, &a, 1);
	cr_assert_eq(dp->ops->rx_burst(dp, o, &b, 1), 1);
	cr_assert_eq(b.data, a.data, "zero copy: the same bytes");
	cr_assert_eq(b.len, 10);
	cr_assert_arr_eq(b.data, "p000020001", 10);
	cr_assert(tern_addr_equal(&b.path.remote, &a.path.remote));
	cr_assert(tern_addr_equal(&b.path.local, &a.path.local));
	cr_assert_eq(b.ecn, a.ecn);
	dp->ops->rx_release(dp, o, &b, 1);
	cr_assert_eq(rte_mempool_avail_count(tpool), 1023, "the reference came back");
	/* an mbuf with no room for the metadata is copied: one that queue 0
	 * reads itself (the others it spreads, copied, to queue 1) */
	uint16_t port = 20002;
	for (;; port++) {
		cr_assert_lt(port, 20100);
		inject_port(plain, port);
		if (dp->ops->rx_burst(dp, 0, &a, 1) == 1)
			break;
		cr_assert_eq(dp->ops->rx_burst(dp, 1, &b, 1), 1, "spread to queue 1");
		cr_assert_eq(((struct rte_mbuf *)b.priv)->pool != plain, 1, "spreading copied it");
		dp->ops->rx_release(dp, 1, &b, 1);
	}
	cr_assert_eq(((struct rte_mbuf *)a.priv)->pool == plain, 1);
	cr_assert_eq(dp->ops->handoff(dp, 0, 1, &a), 0);
	dp->ops->rx_release(dp, 0, &a, 1);
	cr_assert_eq(rte_mempool_avail_count(plain), 63);
	cr_assert_eq(dp->ops->rx_burst(dp, 1, &b, 1), 1);
	cr_assert_neq(b.data, a.data);
	char want[11];
	snprintf(want, sizeof(want), "p%09u", port);
	cr_assert_arr_eq(b.data, want, 10);
	cr_assert_eq(b.path.remote.port, port);
	dp->ops->rx_release(dp, 1, &b, 1);
	/* a full ring refuses */
	inject_port(tpool, 20003);
	q = take_one(&a);
	o = 1 - q;
	cr_assert_eq(dp->ops->handoff(dp, q, o, &a), 0);
	cr_assert_eq(dp->ops->handoff(dp, q, o, &a), 0);
	cr_assert_eq(dp->ops->handoff(dp, q, o, &a), TERN_ERR_NOMEM);
	cr_assert_eq(stats(q).handoff_full, 1);
	cr_assert_eq(dp->ops->handoff(dp, q, 2, &a), TERN_ERR_INVAL);
	dp->ops->rx_release(dp, q, &a, 1);
	struct tern_dp_pkt two[2];
	cr_assert_eq(dp->ops->rx_burst(dp, o, two, 2), 2);
	dp->ops->rx_release(dp, o, two, 2);
	cr_assert_eq(rte_mempool_avail_count(tpool), 1023);
}

static int lcore_of[2];

static int worker(unsigned q, void *arg)
{
	lcore_of[q] = (int)rte_lcore_id();
	return q == 1 ? *(int *)arg : 0;
}

Test(dpdk, launch_one_lcore_per_queue)
{
	struct tern_dpdk_config c;
	config(&c, NULL);
	ring_open(2, 1024, 0, &c);
	char err[256] = "";
	int ret = 0;
	cr_assert_eq(tern_dpdk_launch(dp, worker, &ret, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(lcore_of[0], (int)rte_get_main_lcore());
	cr_assert_neq(lcore_of[1], lcore_of[0]);
	ret = 7;
	cr_assert_eq(tern_dpdk_launch(dp, worker, &ret, err, sizeof(err)), 7);
}

Test(dpdk, launch_needs_enough_lcores)
{
	char args[512], err[256] = "";
	snprintf(args, sizeof(args), EAL_BASE " -l 0 --file-prefix=%s --vdev=net_null0", prefix);
	struct tern_dpdk_config c;
	config(&c, "net_null0");
	c.eal_args = args;
	c.n_queues = 2;
	cr_assert_eq(tern_dpdk_open(&dp, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(tern_dpdk_launch(dp, worker, NULL, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_str_eq(err, "2 queues need 2 lcores, the EAL has 1: widen -l");
}

Test(dpdk, rss_port_reads_every_queue)
{
	/* net_null claims RSS: each queue reads its own RX queue */
	char args[512], err[256] = "";
	snprintf(args, sizeof(args), EAL_BASE " " LCORES " --file-prefix=%s --vdev=net_null0", prefix);
	struct tern_dpdk_config c;
	config(&c, NULL); /* the first port */
	c.eal_args = args;
	c.n_queues = 2;
	cr_assert_eq(tern_dpdk_open(&dp, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(tern_dpdk_has_rss(dp), 1);
	cr_assert_eq(tern_dpdk_tx_offload(dp), 0);
	struct tern_dp_pkt p[TERN_DP_BURST];
	/* net_null makes up frames that are no IP: read and dropped */
	cr_assert_eq(rx_all(1, p), 0);
	struct tern_dpdk_stats st = stats(1);
	cr_assert_gt(st.rx_frames, 0);
	cr_assert_eq(st.rx_dropped, st.rx_frames);
	cr_assert_eq(stats(0).rx_frames, 0);
}

/* ---- errors ---------------------------------------------------------------------------------- */

Test(dpdk, bad_eal_argument_is_one_line)
{
	char err[256] = "";
	char args[256];
	snprintf(args, sizeof(args), "--no-pci --file-prefix=%s --definitely-not-an-eal-option", prefix);
	cr_assert_eq(tern_dpdk_eal_init(args, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_str_eq(err, "EAL: unrecognized option '--definitely-not-an-eal-option'");
	/* the EAL can still start with good arguments afterwards */
	snprintf(args, sizeof(args), EAL_BASE " -l 0 --file-prefix=%s --vdev=net_null0", prefix);
	struct tern_dpdk_config c;
	config(&c, "net_null0");
	c.eal_args = args;
	cr_assert_eq(tern_dpdk_open(&dp, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(tern_dpdk_eal_init("--whatever", err, sizeof(err)), 0, "once up, stays up");
}

Test(dpdk, bad_eal_value_is_one_line)
{
	char err[256] = "";
	char args[256];
	snprintf(args, sizeof(args), "--no-huge -m 128 --no-pci --no-shconf --file-prefix=%s -l 99",
		 prefix);
	cr_assert_eq(tern_dpdk_eal_init(args, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert(strncmp(err, "EAL: ", 5) == 0 && strlen(err) > 10, "%s", err);
	cr_assert_null(strchr(err, '\n'));
	cr_assert_null(strstr(err, "Usage"));
}

Test(dpdk, bad_port_and_config)
{
	char args[512], err[256] = "";
	snprintf(args, sizeof(args), EAL_BASE " -l 0 --file-prefix=%s --vdev=net_null0", prefix);
	struct tern_dpdk_config c;
	config(&c, "nosuch0");
	c.eal_args = args;
	cr_assert_eq(tern_dpdk_open(&dp, &c, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_str_eq(err, "no DPDK port named 'nosuch0' (ports: net_null0)");
	cr_assert_null(dp);
	config(&c, "net_null0");
	c.addr4 = "300.1.1.1";
	cr_assert_eq(tern_dpdk_open(&dp, &c, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_str_eq(err, "bad IPv4 listen address '300.1.1.1'");
	config(&c, "net_null0");
	c.addr6 = "2001:::x";
	cr_assert_eq(tern_dpdk_open(&dp, &c, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_str_eq(err, "bad IPv6 listen address '2001:::x'");
	config(&c, "net_null0");
	c.addr4 = c.addr6 = NULL;
	cr_assert_eq(tern_dpdk_open(&dp, &c, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_str_eq(err, "no listen address: set addr4 and/or addr6");
	config(&c, "net_null0");
	c.udp_port = 0;
	cr_assert_eq(tern_dpdk_open(&dp, &c, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_str_eq(err, "no udp_port to listen on");
	config(&c, "net_null0");
	c.handoff_slots = 100;
	cr_assert_eq(tern_dpdk_open(&dp, &c, err, sizeof(err)), TERN_ERR_INVAL);
	config(&c, "net_null0");
	c.n_queues = 1000;
	cr_assert_eq(tern_dpdk_open(&dp, &c, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_str_eq(err, "n_queues 1000: at most 128");
	config(&c, "net_null0");
	c.n_mbufs = 100000000; /* far beyond -m 128 */
	cr_assert_eq(tern_dpdk_open(&dp, &c, err, sizeof(err)), TERN_ERR_NOMEM);
	cr_assert(strstr(err, "raise -m"), "%s", err);
	/* after all that, the port still opens */
	config(&c, "net_null0");
	cr_assert_eq(tern_dpdk_open(&dp, &c, err, sizeof(err)), 0, "%s", err);
}

Test(dpdk, port_that_did_not_probe_is_explained)
{
	char args[512], err[320] = "";
	snprintf(args, sizeof(args), EAL_BASE " -l 0 --file-prefix=%s --vdev=net_af_packet0,iface=%s",
		 prefix, va); /* no such interface */
	struct tern_dpdk_config c;
	config(&c, "net_af_packet0");
	c.eal_args = args;
	cr_assert_eq(tern_dpdk_open(&dp, &c, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert(strncmp(err, "no DPDK port named 'net_af_packet0' (ports: none); the EAL said: ",
			  65) == 0,
		  "%s", err);
	cr_assert(strstr(err, "No such device"), "%s", err);
}

/* ---- veth pair and a network namespace (root) ------------------------------------------------ */

static void veth_open(void)
{
	if (geteuid() != 0 || sh("command -v ip python3 arping ping ethtool >/dev/null") != 0)
		cr_skip_test("needs root, ip, python3, arping, ping and ethtool");
	if (sh("ip netns add %s 2>/dev/null", ns) != 0)
		cr_skip_test("cannot create a network namespace here");
	cr_assert_eq(sh("ip link add %s type veth peer name %s netns %s", va, vb, ns), 0);
	sh("sysctl -qw net.ipv6.conf.%s.disable_ipv6=1", va);
	cr_assert_eq(sh("ip link set %s up", va), 0);
	cr_assert_eq(sh("ip netns exec %s sh -c 'ethtool -K %s tx off >/dev/null && "
			"sysctl -qw net.ipv6.conf.%s.accept_ra=0 && ip link set lo up && "
			"ip addr add 198.18.0.2/24 dev %s && ip addr add 2001:2::2/64 dev %s nodad && "
			"ip link set %s up'",
			ns, vb, vb, vb, vb, vb),
		     0);
	char vdev[64];
	snprintf(vdev, sizeof(vdev), "--vdev=net_af_packet0,iface=%s", va);
	eal(vdev);
	struct tern_dpdk_config c;
	config(&c, "net_af_packet0");
	char err[256] = "";
	cr_assert_eq(tern_dpdk_open(&dp, &c, err, sizeof(err)), 0, "%s", err);
}

static pid_t bg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static pid_t bg(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	bgpid = pid;
	return pid;
}

struct got {
	int n;
	char data[8][64];
	struct tern_path path[8];
	uint8_t ecn[8];
};

/* Runs the datapath (rx, answers, flush) until the background command
 * ends; keeps the payloads. Its exit status, or -1 after timeout_ms. */
static int pump(int timeout_ms, struct got *g, void (*each)(void))
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	while (now_ms() < end) {
		struct tern_dp_pkt p[TERN_DP_BURST];
		int n = rx_all(0, p);
		for (int i = 0; i < n && g && g->n < 8; i++, g->n++) {
			snprintf(g->data[g->n], sizeof(g->data[0]), "%.*s", (int)p[i].len,
				 (char *)p[i].data);
			g->path[g->n] = p[i].path;
			g->ecn[g->n] = p[i].ecn;
		}
		dp->ops->rx_release(dp, 0, p, (unsigned)n);
		if (each)
			each();
		dp->ops->tx_flush(dp, 0);
		int st;
		if (bgpid > 0 && waitpid(bgpid, &st, WNOHANG) == bgpid) {
			bgpid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		}
		if (!n)
			usleep(500);
	}
	return -1;
}

Test(dpdk, veth_arping_and_ping)
{
	veth_open();
	bg("ip netns exec %s arping -c 1 -w 5 -I %s 198.18.0.1 >/dev/null 2>&1", ns, vb);
	cr_assert_eq(pump(8000, NULL, NULL), 0, "arping got no answer");
	cr_assert_geq(stats(0).arp_replies, 1);
	bg("ip netns exec %s ping -c 1 -W 5 198.18.0.1 >/dev/null 2>&1", ns);
	cr_assert_eq(pump(8000, NULL, NULL), 0, "ping got no answer");
	cr_assert_geq(stats(0).echo_replies, 1);
	cr_assert_eq(stats(0).drop[TERN_DPDK_DROP_BAD_CHECKSUM], 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

Test(dpdk, veth_udp_from_the_namespace)
{
	veth_open();
	char py[256];
	snprintf(py, sizeof(py), "%s-send.py", tmp);
	write_file(py, "import socket, sys\n"
		       "fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET\n"
		       "s = socket.socket(fam, socket.SOCK_DGRAM)\n"
		       "s.bind((sys.argv[1], 5555))\n"
		       "if fam == socket.AF_INET:\n"
		       "    s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 1)\n"
		       "else:\n"
		       "    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 2)\n"
		       "s.sendto(sys.argv[3].encode(), (sys.argv[2], 4433))\n");
	struct got g = {0};
	bg("ip netns exec %s python3 %s 198.18.0.2 198.18.0.1 'hello tern'", ns, py);
	cr_assert_eq(pump(8000, &g, NULL), 0);
	for (int i = 0; i < 40 && g.n == 0; i++)
		pump(50, &g, NULL);
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.data[0], "hello tern");
	cr_assert_eq(g.ecn[0], 1, "ECT(1)");
	struct tern_addr r = addr(4, ip4_b, 5555), l = addr(4, ip4_a, 4433);
	cr_assert(tern_addr_equal(&g.path[0].remote, &r));
	cr_assert(tern_addr_equal(&g.path[0].local, &l));
	cr_assert_eq(stats(0).drop[TERN_DPDK_DROP_BAD_CHECKSUM], 0);
}

static int tx_fam;

static void send_tick(void)
{
	static uint64_t last;
	if (now_ms() - last < 20)
		return;
	last = now_ms();
	struct tern_addr to = tx_fam == 4 ? addr(4, ip4_b, 5556) : addr(6, ip6_b, 5556);
	cr_assert_eq(send_one(0, to, "from tern", 2), 0);
}

static void recv_script(char *py, size_t len)
{
	snprintf(py, len, "%s-recv.py", tmp);
	write_file(
		py,
		"import socket, sys\n"
		"v6 = ':' in sys.argv[1]\n"
		"s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)\n"
		"if v6:\n"
		"    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, 1)\n"
		"else:\n"
		"    s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)\n"
		"s.bind((sys.argv[1], 5556))\n"
		"s.settimeout(8)\n"
		"data, anc, flags, peer = s.recvmsg(2048, 64)\n"
		"tos = [c[2][0] for c in anc]\n"
		"open(sys.argv[2], 'w').write('%s %d %s %d' % (data.decode(), tos[0] if tos else -1,"
		" peer[0], peer[1]))\n");
}

Test(dpdk, veth_udp_to_the_namespace)
{
	veth_open();
	char py[256], out[256], line[256] = "";
	recv_script(py, sizeof(py));
	snprintf(out, sizeof(out), "%s-out", tmp);
	tx_fam = 4;
	bg("ip netns exec %s python3 %s 198.18.0.2 %s", ns, py, out);
	/* the first sends find no neighbour and ask for it by ARP; the kernel
	 * accepts only datagrams whose checksums are right */
	cr_assert_eq(pump(10000, NULL, send_tick), 0, "nothing arrived in the namespace");
	FILE *f = fopen(out, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(line, sizeof(line), f));
	fclose(f);
	cr_assert_str_eq(line, "from tern 2 198.18.0.1 4433", "payload, ECT(0), source");
	struct tern_dpdk_stats st = stats(0);
	cr_assert_geq(st.solicits_sent, 1);
	cr_assert_geq(st.tx_pkts, 1);
	cr_assert_geq(st.neigh_learned, 1);
}

Test(dpdk, veth_bad_checksum_is_dropped_and_counted)
{
	veth_open();
	uint8_t mac[6];
	tern_dpdk_mac(dp, mac);
	char py[256];
	snprintf(py, sizeof(py), "%s-raw.py", tmp);
	/* hand-made frames, so the kernel cannot fix the checksum for us */
	write_file(py, "import socket, struct, sys\n"
		       "def csum(b):\n"
		       "    if len(b) % 2: b += b'\\0'\n"
		       "    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))\n"
		       "    while s >> 16: s = (s & 0xffff) + (s >> 16)\n"
		       "    return ~s & 0xffff\n"
		       "def frame(payload, bad):\n"
		       "    src, dst = bytes([198, 18, 0, 2]), bytes([198, 18, 0, 1])\n"
		       "    ulen = 8 + len(payload)\n"
		       "    ph = src + dst + struct.pack('!BBH', 0, 17, ulen)\n"
		       "    c = csum(ph + struct.pack('!HHHH', 7000, 4433, ulen, 0) + payload) or 0xffff\n"
		       "    udp = struct.pack('!HHHH', 7000, 4433, ulen, c ^ (0x0100 if bad else 0)) + payload\n"
		       "    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + ulen, 1, 0x4000, 64, 17, 0, src, dst)\n"
		       "    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]\n"
		       "    me = bytes.fromhex(open('/sys/class/net/%s/address' % sys.argv[2]).read().strip().replace(':', ''))\n"
		       "    return bytes.fromhex(sys.argv[1]) + me + b'\\x08\\x00' + ip + udp\n"
		       "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n"
		       "s.bind((sys.argv[2], 0))\n"
		       "s.send(frame(b'bad one', True))\n"
		       "s.send(frame(b'good one', False))\n");
	struct got g = {0};
	bg("ip netns exec %s python3 %s %02x%02x%02x%02x%02x%02x %s", ns, py, mac[0], mac[1], mac[2],
	   mac[3], mac[4], mac[5], vb);
	cr_assert_eq(pump(8000, &g, NULL), 0);
	for (int i = 0; i < 40 && g.n == 0; i++)
		pump(50, &g, NULL);
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.data[0], "good one");
	cr_assert_eq(g.path[0].remote.port, 7000);
	cr_assert_eq(stats(0).drop[TERN_DPDK_DROP_BAD_CHECKSUM], 1);
}

Test(dpdk, veth_ipv6_neighbour_discovery_ping_and_udp)
{
	veth_open();
	/* the namespace must solicit 2001:2::1 first: tern answers with an NA */
	bg("ip netns exec %s ping -6 -c 1 -W 5 2001:2::1 >/dev/null 2>&1", ns);
	cr_assert_eq(pump(8000, NULL, NULL), 0, "ping -6 got no answer");
	struct tern_dpdk_stats st = stats(0);
	cr_assert_geq(st.nd_replies, 1);
	cr_assert_geq(st.echo_replies, 1);
	char py[256];
	snprintf(py, sizeof(py), "%s-send.py", tmp);
	write_file(py, "import socket\n"
		       "s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
		       "s.bind(('2001:2::2', 5555))\n"
		       "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 2)\n"
		       "s.sendto(b'hello tern6', ('2001:2::1', 4433))\n");
	struct got g = {0};
	bg("ip netns exec %s python3 %s", ns, py);
	cr_assert_eq(pump(8000, &g, NULL), 0);
	for (int i = 0; i < 40 && g.n == 0; i++)
		pump(50, &g, NULL);
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.data[0], "hello tern6");
	cr_assert_eq(g.ecn[0], 2);
	struct tern_addr r = addr(6, ip6_b, 5555), l = addr(6, ip6_a, 4433);
	cr_assert(tern_addr_equal(&g.path[0].remote, &r));
	cr_assert(tern_addr_equal(&g.path[0].local, &l));
	/* and back: the kernel takes it only with a right checksum */
	char out[256], line[256] = "";
	recv_script(py, sizeof(py));
	snprintf(out, sizeof(out), "%s-out", tmp);
	tx_fam = 6;
	bg("ip netns exec %s python3 %s 2001:2::2 %s", ns, py, out);
	cr_assert_eq(pump(10000, NULL, send_tick), 0, "nothing arrived in the namespace");
	FILE *f = fopen(out, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(line, sizeof(line), f));
	fclose(f);
	cr_assert_str_eq(line, "from tern 2 2001:2::1 4433");
}
