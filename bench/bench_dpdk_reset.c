/* bench_dpdk_reset: the stateless-reset responder's packet rate through the
 * DPDK datapath, next to plain forwarding on the same port in the same run.
 *
 *   bench_dpdk_reset [--seconds S] [--rounds N] [--json FILE] [--eal "ARGS"]
 *
 * The port is a net_ring port made with rte_eth_from_rings: net_null cannot
 * deliver chosen bytes, so the bench builds the trigger frames itself, once,
 * into mbufs (Ethernet / IPv4 / UDP with valid checksums around a QUIC short
 * header with a random unknown 8-byte DCID, 43..1252 bytes of UDP payload,
 * from random peers of 198.18.0.0/15; 1024 of them, what an RX ring of
 * 1024 descriptors cycles through) and feeds them to the port's RX ring by
 * reference; what the port sends is taken off its TX ring and freed. Both
 * runs pay the same feeding and draining:
 *  (a) reference: rte_eth_rx_burst -> rte_eth_tx_burst (testpmd io mode)
 *  (b) tern: rx_burst (Ethernet/IP/UDP parse, software UDP checksum,
 *      neighbour learning) -> tern_endpoint_recv (server endpoint with a
 *      reset key and a limiter that never caps) -> tx_alloc / tx_enqueue
 *      (headers, checksum) -> tx_flush, as the worker step does.
 *  (c) as (b), with the frames flagged IP/L4 checksum good as a NIC with RX
 *      checksum offload would flag them (the ring port has none), so the
 *      software verification over the whole datagram is skipped.
 * One worker, one lcore. Prints Mpps for each (best of the rounds) and the
 * ratios to (a) (target >= 0.5); --json also writes them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "tern/dpdk.h"
#include "tern/endpoint.h"

/* as many distinct frames as an RX ring of 1024 descriptors cycles through */
#define NFRAMES 1024
#define BURST 32
#define CID_LEN 8

static struct rte_ring *rx_ring, *tx_ring;
static struct rte_mbuf *frames[NFRAMES];
static unsigned next_frame;

static uint64_t xs = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void)
{
	xs ^= xs << 13;
	xs ^= xs >> 7;
	xs ^= xs << 17;
	return xs;
}

static void rand_fill(void *ctx, uint8_t *buf, size_t len)
{
	(void)ctx;
	while (len) {
		uint64_t v = rnd();
		size_t k = len < 8 ? len : 8;
		memcpy(buf, &v, k);
		buf += k;
		len -= k;
	}
}

static uint16_t csum(uint32_t acc, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		acc += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		acc += (uint32_t)p[n - 1] << 8;
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

/* One trigger: a short-header packet with an unknown CID, in a frame. */
static void make_frame(uint8_t *f, size_t ulen, const uint8_t *dst_mac)
{
	static const uint8_t src_mac[6] = {2, 0, 0, 0, 0, 2};
	memcpy(f, dst_mac, 6);
	memcpy(f + 6, src_mac, 6);
	tern_put_u16(f + 12, 0x0800);
	uint8_t *ip = f + 14, *udp = ip + 20;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	tern_put_u16(ip + 2, (uint16_t)(28 + ulen));
	tern_put_u16(ip + 6, 0x4000);
	ip[8] = 64;
	ip[9] = 17;
	uint32_t peer = (198u << 24) | (18u << 16) | (uint32_t)(rnd() & 0x1ffff);
	tern_put_u32(ip + 12, peer);
	const uint8_t dst[4] = {198, 18, 0, 1};
	memcpy(ip + 16, dst, 4);
	tern_put_u16(ip + 10, csum(0, ip, 20));
	tern_put_u16(udp, (uint16_t)(1024 + rnd() % 60000));
	tern_put_u16(udp + 2, 4433);
	tern_put_u16(udp + 4, (uint16_t)(8 + ulen));
	udp[6] = udp[7] = 0;
	uint8_t *q = udp + 8;
	rand_fill(NULL, q, ulen);
	q[0] = (uint8_t)(0x40 | (q[0] & 0x3f)); /* short header, fixed bit */
	uint32_t ps = 0;
	for (int i = 12; i < 20; i += 2)
		ps += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	ps += 17 + 8 + (uint32_t)ulen;
	uint16_t c = csum(ps, udp, 8 + ulen);
	tern_put_u16(udp + 6, c ? c : 0xffff);
}

static int make_frames(struct rte_mempool *pool, const uint8_t *mac)
{
	for (unsigned i = 0; i < NFRAMES; i++) {
		size_t ulen = 43 + rnd() % (1252 - 43 + 1);
		struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
		uint8_t *f = m ? (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(42 + ulen)) : NULL;
		if (!f)
			return -1;
		make_frame(f, ulen, mac);
		frames[i] = m;
	}
	return 0;
}

/* Puts a burst of triggers on the port's RX ring, by reference. */
static void feed(void)
{
	struct rte_mbuf *b[BURST];
	for (unsigned i = 0; i < BURST; i++) {
		b[i] = frames[next_frame++ % NFRAMES];
		rte_mbuf_refcnt_update(b[i], 1);
	}
	unsigned n = rte_ring_enqueue_burst(rx_ring, (void **)b, BURST, NULL);
	for (unsigned i = n; i < BURST; i++)
		rte_mbuf_refcnt_update(b[i], -1);
}

static unsigned drain(void)
{
	struct rte_mbuf *b[2 * BURST];
	unsigned n = rte_ring_dequeue_burst(tx_ring, (void **)b, 2 * BURST, NULL);
	if (n)
		rte_pktmbuf_free_bulk(b, n);
	return n;
}

static void flag_frames(int good)
{
	for (unsigned i = 0; i < NFRAMES; i++)
		frames[i]->ol_flags = good ? RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD : 0;
}

static double run_reference(uint16_t port, double seconds)
{
	uint64_t hz = rte_get_tsc_hz(), t0 = rte_get_tsc_cycles(), end = t0 + (uint64_t)(seconds * hz);
	uint64_t fwd = 0, now;
	do {
		for (int k = 0; k < 64; k++) {
			struct rte_mbuf *b[BURST];
			feed();
			uint16_t n = rte_eth_rx_burst(port, 0, b, BURST);
			uint16_t s = rte_eth_tx_burst(port, 0, b, n);
			for (uint16_t i = s; i < n; i++)
				rte_pktmbuf_free(b[i]);
			fwd += s;
			drain();
		}
	} while ((now = rte_get_tsc_cycles()) < end);
	return (double)fwd / ((double)(now - t0) / (double)hz) / 1e6;
}

/* The worker's receive half (tern_worker_step) for a stateless answer. */
static unsigned tern_step(struct tern_datapath *dp, struct tern_endpoint *ep, uint64_t now)
{
	struct tern_dp_pkt p[BURST];
	uint8_t reply[TERN_ENDPOINT_REPLY_MAX];
	int n = dp->ops->rx_burst(dp, 0, p, BURST);
	for (int i = 0; i < n; i++) {
		int r = tern_endpoint_recv(ep, p[i].data, p[i].len, &p[i].path, now, reply, sizeof(reply));
		struct tern_dp_pkt out;
		if (r <= 0 || dp->ops->tx_alloc(dp, 0, &out, (size_t)r) < 0)
			continue;
		memcpy(out.data, reply, (size_t)r);
		out.len = (uint32_t)r;
		out.path = p[i].path;
		dp->ops->tx_enqueue(dp, 0, &out);
	}
	if (n > 0)
		dp->ops->rx_release(dp, 0, p, (unsigned)n);
	dp->ops->tx_flush(dp, 0);
	return n > 0 ? (unsigned)n : 0;
}

static double run_tern(struct tern_datapath *dp, struct tern_endpoint *ep, double seconds, uint64_t *done)
{
	uint64_t hz = rte_get_tsc_hz(), t0 = rte_get_tsc_cycles(), end = t0 + (uint64_t)(seconds * hz);
	uint64_t n = 0, now;
	double ns_per_cycle = 1e9 / (double)hz;
	do {
		for (int k = 0; k < 64; k++) {
			feed();
			n += tern_step(dp, ep, (uint64_t)((double)rte_get_tsc_cycles() * ns_per_cycle));
			drain();
		}
	} while ((now = rte_get_tsc_cycles()) < end);
	*done += n;
	return (double)n / ((double)(now - t0) / (double)hz) / 1e6;
}

static struct tern_endpoint *make_endpoint(struct tern_reset_key *key)
{
	static const uint8_t secret[32] = "tern bench static reset key....";
	if (tern_reset_key_init(key, secret, sizeof(secret)) < 0)
		return NULL;
	struct tern_endpoint_config cfg;
	tern_endpoint_config_init(&cfg, 1);
	cfg.conn.rand = (struct tern_rand){rand_fill, NULL};
	cfg.conn.scid_len = CID_LEN;
	cfg.reset_key = key;
	cfg.reset_rate = 1000000000000ull; /* the limiter must not cap */
	cfg.reset_burst = 1u << 30;
	cfg.max_conns = 16;
	struct tern_endpoint *ep = NULL;
	return tern_endpoint_new(&ep, &cfg, 0) == 0 ? ep : NULL;
}

static int setup(const char *eal, struct tern_datapath **dp, char *err, size_t errlen)
{
	if (tern_dpdk_eal_init(eal, err, errlen) < 0)
		return -1;
	rx_ring = rte_ring_create("bench_rx", 4096, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	tx_ring = rte_ring_create("bench_tx", 4096, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	if (!rx_ring || !tx_ring || rte_eth_from_rings("bench", &rx_ring, 1, &tx_ring, 1, SOCKET_ID_ANY) < 0) {
		snprintf(err, errlen, "cannot make the ring port");
		return -1;
	}
	struct rte_mempool *pool = rte_pktmbuf_pool_create("bench_frames", NFRAMES + 63, 0, 0,
							   RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	struct tern_dpdk_config c;
	memset(&c, 0, sizeof(c));
	c.port = "net_ring_bench";
	c.addr4 = "198.18.0.1";
	c.udp_port = 4433;
	if (!pool || tern_dpdk_open(dp, &c, err, errlen) < 0)
		return -1;
	uint8_t mac[6];
	tern_dpdk_mac(*dp, mac);
	if (make_frames(pool, mac) < 0) {
		snprintf(err, errlen, "out of mbufs for the frames");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	double seconds = 1.0;
	int rounds = 3;
	const char *json = NULL;
	char eal[512];
	snprintf(eal, sizeof(eal),
		 "--no-huge -m 512 --no-pci --no-shconf --no-telemetry --log-level=error -l 0 "
		 "--file-prefix=bench-dpdk-%d",
		 (int)getpid());
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--seconds"))
			seconds = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--json"))
			json = argv[i + 1];
		else if (!strcmp(argv[i], "--eal"))
			snprintf(eal, sizeof(eal), "%s", argv[i + 1]);
	}
	char err[256];
	struct tern_datapath *dp = NULL;
	struct tern_reset_key key;
	if (setup(eal, &dp, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_dpdk_reset: %s\n", err);
		return 1;
	}
	struct tern_endpoint *ep = make_endpoint(&key);
	if (!ep) {
		fprintf(stderr, "bench_dpdk_reset: cannot make the endpoint\n");
		return 1;
	}
	uint16_t port = tern_dpdk_port_id(dp);
	double ref = 0, tern = 0, off = 0;
	uint64_t done = 0;
	for (int r = 0; r < rounds; r++) {
		double a = run_reference(port, seconds);
		flag_frames(0);
		double b = run_tern(dp, ep, seconds, &done);
		flag_frames(1);
		double c = run_tern(dp, ep, seconds, &done);
		ref = a > ref ? a : ref;
		tern = b > tern ? b : tern;
		off = c > off ? c : off;
	}
	struct tern_endpoint_stats es;
	tern_endpoint_stats(ep, &es);
	struct tern_dpdk_stats ds;
	tern_dpdk_stats(dp, 0, &ds);
	printf("port: net_ring (frames generated by the bench into mbufs, fed by reference)\n");
	printf("reference rx->tx forwarding : %7.2f Mpps\n", ref);
	printf("stateless reset responder   : %7.2f Mpps (rx, parse, endpoint, reply, tx), ratio %.2f\n",
	       tern, tern / ref);
	printf("  with RX checksum offload  : %7.2f Mpps, ratio %.2f (target >= 0.5)\n", off, off / ref);
	printf("triggers %llu, resets sent %llu, rate-limited %llu, tx dropped %llu\n",
	       (unsigned long long)done, (unsigned long long)es.resets_sent,
	       (unsigned long long)es.reset_rate_limited, (unsigned long long)ds.tx_dropped);
	if (json) {
		FILE *f = fopen(json, "w");
		if (f) {
			fprintf(f, "{\"bench\":\"dpdk_reset\",\"port\":\"net_ring\",\"reference_mpps\":%.3f,"
				   "\"reset_mpps\":%.3f,\"ratio\":%.3f,\"reset_rx_offload_mpps\":%.3f,"
				   "\"ratio_rx_offload\":%.3f,\"triggers\":%llu,\"resets_sent\":%llu}\n",
				ref, tern, tern / ref, off, off / ref, (unsigned long long)done,
				(unsigned long long)es.resets_sent);
			fclose(f);
		}
	}
	tern_endpoint_free(ep);
	dp->ops->close(dp);
	char dir[128];
	snprintf(dir, sizeof(dir), "/var/run/dpdk/bench-dpdk-%d", (int)getpid());
	rmdir(dir);
	return es.resets_sent == done ? 0 : 1;
}
