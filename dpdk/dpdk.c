/* tern: the DPDK datapath (include/tern/dpdk.h). The framing is in net.c;
 * this file owns the EAL, the port, mbufs, rings and per-queue state. */
#include "tern/dpdk.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_random.h>
#include <rte_ring.h>
#include <rte_spinlock.h>

#include "net.h"

#define MAX_QUEUES 128
#define MAX_EAL_ARGS 126
#define MAX_BURST 64
#define TX_BURST 32
#define POOL_CACHE 256
#define TX_RETRIES 4

_Static_assert(RTE_PKTMBUF_HEADROOM >= TERN_NET_HDR_MAX, "mbuf headroom too small for the headers");
_Static_assert(sizeof(struct tern_dpdk_stats) % sizeof(uint64_t) == 0, "stats are all uint64_t");

/* What a hand-off carries, in the private area of the mbuf (zero copy). */
struct pkt_meta {
	struct tern_path path;
	uint64_t rx_ns;
	uint32_t len;
	uint16_t off; /* payload start, from buf_addr */
	uint8_t ecn;
};

struct tx_ent {
	struct rte_mbuf *m;
	uint32_t bytes;     /* UDP payload bytes */
	uint32_t is_payload; /* 0 for our own ARP/ND/echo frames */
};

struct dq {
	uint16_t hw_rxq, hw_txq;
	int reads_port;        /* polls RX queue hw_rxq */
	int spreads;           /* hands datagrams to their 4-tuple's queue */
	rte_spinlock_t *tx_lock; /* set when the TX queue is shared */
	struct rte_ring *ho;
	uint16_t ip_id;
	unsigned n_pending, n_alloc;
	uint64_t sent_since_flush;
	uint64_t last_solicit;
	struct tx_ent pending[TX_BURST];
	struct rte_mbuf **alloc;
	struct tern_dpdk_stats st;
} __rte_cache_aligned;

struct dpdk_dp {
	struct tern_datapath dp; /* first: the contract's handle */
	uint16_t port;
	char port_name[RTE_ETH_NAME_MAX_LEN];
	struct tern_net_if ifc;
	struct rte_mempool *pool;
	int rss, tx_offload, rx_offload;
	unsigned hw_rx, hw_tx;
	unsigned max_payload4, max_payload6, buf_room, tx_slots;
	int neigh_mode, has_gw;
	uint8_t gw_mac[6];
	struct tern_neigh neigh;
	struct tern_neigh_entry *neigh_mem;
	uint64_t spread_seed, solicit_gap;
	rte_spinlock_t tx_locks[MAX_QUEUES];
	int started;
	struct dq *q;
	void (*log)(void *ctx, const char *line);
	void *log_ctx;
};

static inline struct dpdk_dp *to_d(struct tern_datapath *dp)
{
	return (struct dpdk_dp *)dp;
}


static void dlog(struct dpdk_dp *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void dlog(struct dpdk_dp *d, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (d->log)
		d->log(d->log_ctx, line);
	else
		fprintf(stderr, "tern-dpdk: %s\n", line);
}

/* ---- EAL ------------------------------------------------------------------------------ */

/* The EAL can start once per process (rte_eal_init), so this flag is the
 * one piece of process state the datapath keeps. */
static int eal_up;
/* The first failure a successful start still reported (a device that did
 * not probe), to explain a missing port later. */
static char eal_note[160];

/* The most telling line of what a failed rte_eal_init printed: getopt's
 * complaint, else the first EAL line that is not a banner or the generic
 * "Invalid 'command line' arguments". */
static void eal_pick_line(char *text, char *out, size_t outlen)
{
	char *best = NULL, *fatal = NULL, *save = NULL;
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (strstr(l, "unrecognized option") || strstr(l, "invalid option") ||
		    strstr(l, "requires an argument") || strstr(l, "doesn't allow an argument")) {
			char *colon = strstr(l, ": ");
			best = colon && strncmp(l, "EAL", 3) != 0 ? colon + 2 : l;
			break;
		}
		if (strncmp(l, "EAL: ", 5) != 0)
			continue;
		if (strstr(l, "FATAL")) {
			if (!fatal)
				fatal = l;
			continue;
		}
		if (!best && !strstr(l, "Detected") && !strstr(l, "Selected") &&
		    !strstr(l, "Physical addresses") && !strstr(l, "Invalid 'command line'"))
			best = l + 5;
	}
	if (!best && fatal)
		best = fatal + 5;
	snprintf(out, outlen, "%s", best ? best : "");
}

/* Runs rte_eal_init with stdout and stderr captured, so a failure can be
 * told in one line instead of the EAL's usage text. */
static int eal_init_captured(int argc, char **argv, char *why, size_t whylen)
{
	fflush(stdout);
	fflush(stderr);
	int cap = memfd_create("tern-eal", 0);
	int o1 = cap >= 0 ? dup(1) : -1, o2 = cap >= 0 ? dup(2) : -1;
	int captured = cap >= 0 && o1 >= 0 && o2 >= 0 && dup2(cap, 1) >= 0 && dup2(cap, 2) >= 0;
	int r = rte_eal_init(argc, argv);
	int e = rte_errno;
	fflush(stdout);
	fflush(stderr);
	if (o1 >= 0) {
		dup2(o1, 1);
		close(o1);
	}
	if (o2 >= 0) {
		dup2(o2, 2);
		close(o2);
	}
	static char text[16384];
	ssize_t n = 0;
	if (captured && lseek(cap, 0, SEEK_SET) == 0)
		n = read(cap, text, sizeof(text) - 1);
	text[n > 0 ? n : 0] = 0;
	if (cap >= 0)
		close(cap);
	if (r >= 0) {
		fputs(text, stderr); /* the EAL's banner, for whoever reads the log */
		char *save = NULL;
		for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			if (strstr(l, "fail") || strstr(l, "Fail")) {
				snprintf(eal_note, sizeof(eal_note), "; the EAL said: %s", l);
				break;
			}
		}
		return 0;
	}
	eal_pick_line(text, why, whylen);
	if (!why[0])
		snprintf(why, whylen, "rte_eal_init: %s", rte_strerror(e));
	return -1;
}

int tern_dpdk_eal_init(const char *args, char *err, size_t errlen)
{
	if (eal_up)
		return 0;
	static char buf[4096];
	char *argv[MAX_EAL_ARGS + 2];
	int argc = 0;
	if (!args)
		args = "";
	if (strlen(args) >= sizeof(buf)) {
		tern_errf(err, errlen, "EAL arguments too long (%zu bytes)", strlen(args));
		return TERN_ERR_INVAL;
	}
	strcpy(buf, args);
	argv[argc++] = (char *)"tern";
	char *save = NULL;
	for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		if (argc > MAX_EAL_ARGS) {
			tern_errf(err, errlen, "too many EAL arguments (at most %d)", MAX_EAL_ARGS);
			return TERN_ERR_INVAL;
		}
		argv[argc++] = t;
	}
	argv[argc] = NULL;
	/* DPDK logs to stdout and syslog by default; a daemon's log is stderr */
	rte_openlog_stream(stderr);
	char why[256];
	if (eal_init_captured(argc, argv, why, sizeof(why)) < 0) {
		tern_errf(err, errlen, "EAL: %s", why);
		return TERN_ERR_INVAL;
	}
	eal_up = 1;
	return 0;
}

/* ---- receive -------------------------------------------------------------------------- */

static inline struct pkt_meta *meta_of(struct rte_mbuf *m)
{
	return rte_mbuf_to_priv(m);
}

static void meta_store(struct rte_mbuf *m, const struct tern_dp_pkt *p)
{
	struct pkt_meta *pm = meta_of(m);
	pm->path = p->path;
	pm->rx_ns = p->rx_ns;
	pm->len = p->len;
	pm->off = (uint16_t)(p->data - (uint8_t *)m->buf_addr);
	pm->ecn = p->ecn;
}

static void meta_load(struct rte_mbuf *m, struct tern_dp_pkt *p)
{
	const struct pkt_meta *pm = meta_of(m);
	p->data = (uint8_t *)m->buf_addr + pm->off;
	p->len = pm->len;
	p->cap = pm->len;
	p->path = pm->path;
	p->ecn = pm->ecn;
	p->rx_ns = pm->rx_ns;
	p->priv = m;
}

static void count_drop(struct dq *dq, int reason)
{
	dq->st.drop[reason]++;
	dq->st.rx_dropped++;
}

static void tx_queue_frame(struct dpdk_dp *d, struct dq *dq, struct rte_mbuf *m, int is_payload,
			   uint32_t bytes);

static void neigh_note(struct dpdk_dp *d, struct dq *dq, const struct tern_net_rx *r)
{
	if (tern_neigh_learn(&d->neigh, &r->learn, r->learn_mac) == 1)
		dq->st.neigh_learned++;
}

/* Which queue a datagram's 4-tuple belongs to, when the port cannot tell
 * (no RSS): a seeded hash, so peers cannot pile onto one worker. */
static unsigned spread_target(const struct dpdk_dp *d, const struct tern_path *p)
{
	uint64_t w0, w1;
	memcpy(&w0, p->remote.ip, 8);
	memcpy(&w1, p->remote.ip + 8, 8);
	uint64_t h = (d->spread_seed ^ w0) * 0x9e3779b97f4a7c15u;
	h = (h ^ (h >> 29) ^ w1 ^ ((uint64_t)p->remote.port << 16 | p->local.port)) *
	    0xbf58476d1ce4e5b9u;
	h ^= h >> 31;
	return (unsigned)(((h >> 32) * d->dp.n_queues) >> 32);
}

/* The mbuf that carries pkt to another queue, its metadata stored: m
 * itself when its private area holds the metadata (ours always does), else
 * a copy from our pool (a port fed from someone else's pool), m untouched.
 * NULL when the pool is empty. */
static struct rte_mbuf *ho_carrier(struct dpdk_dp *d, struct rte_mbuf *m, const struct tern_dp_pkt *pkt)
{
	if (m->priv_size >= sizeof(struct pkt_meta) && RTE_MBUF_DIRECT(m)) {
		meta_store(m, pkt);
		return m;
	}
	if (pkt->len > d->buf_room) /* from a pool of larger buffers */
		return NULL;
	struct rte_mbuf *c = rte_pktmbuf_alloc(d->pool);
	if (!c)
		return NULL;
	uint8_t *data = rte_pktmbuf_mtod(c, uint8_t *);
	memcpy(data, pkt->data, pkt->len);
	struct tern_dp_pkt copy = *pkt;
	copy.data = data;
	meta_store(c, &copy);
	return c;
}

static void rx_hint(const struct rte_mbuf *m, struct tern_net_rx_hint *h)
{
	uint64_t f = m->ol_flags;
	uint64_t ip = f & RTE_MBUF_F_RX_IP_CKSUM_MASK, l4 = f & RTE_MBUF_F_RX_L4_CKSUM_MASK;
	h->ip_csum = ip == RTE_MBUF_F_RX_IP_CKSUM_GOOD ? TERN_NET_CSUM_GOOD
		     : ip == RTE_MBUF_F_RX_IP_CKSUM_BAD ? TERN_NET_CSUM_BAD
							 : TERN_NET_CSUM_UNKNOWN;
	h->l4_csum = l4 == RTE_MBUF_F_RX_L4_CKSUM_GOOD ? TERN_NET_CSUM_GOOD
		     : l4 == RTE_MBUF_F_RX_L4_CKSUM_BAD ? TERN_NET_CSUM_BAD
							 : TERN_NET_CSUM_UNKNOWN;
	h->vlan_stripped = (f & RTE_MBUF_F_RX_VLAN_STRIPPED) != 0;
	h->vlan_tci = m->vlan_tci;
}

/* Sends our answer (ARP, NA, echo), rewritten in the request's mbuf. */
static void rx_answer(struct dpdk_dp *d, struct dq *dq, struct rte_mbuf *m,
		      const struct tern_net_rx *r, int tag_stripped)
{
	m->data_len = (uint16_t)r->len;
	m->pkt_len = r->len;
	m->ol_flags = 0;
	/* the port took the tag off on the way in; the answer needs it back */
	if (tag_stripped && d->ifc.vlan) {
		m->vlan_tci = d->ifc.vlan;
		if (rte_vlan_insert(&m) < 0) {
			rte_pktmbuf_free(m);
			return;
		}
	}
	if (r->kind == TERN_NET_REPLY_ARP)
		dq->st.arp_replies++;
	else if (r->kind == TERN_NET_REPLY_ND)
		dq->st.nd_replies++;
	else
		dq->st.echo_replies++;
	tx_queue_frame(d, dq, m, 0, 0);
}

/* One frame from the port: 1 when it became pkts[0]. */
static int rx_one(struct dpdk_dp *d, unsigned q, struct rte_mbuf *m, struct tern_dp_pkt *pkt)
{
	struct dq *dq = &d->q[q];
	struct tern_net_rx r;
	struct tern_net_rx_hint hint;
	dq->st.rx_frames++;
	if (m->nb_segs != 1) {
		count_drop(dq, TERN_DPDK_DROP_MALFORMED); /* larger than one mbuf: not QUIC's size */
		rte_pktmbuf_free(m);
		return 0;
	}
	rx_hint(m, &hint);
	uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
	size_t len = m->data_len;
	int v = tern_net_rx(&d->ifc, f, len, len + rte_pktmbuf_tailroom(m), &hint, &r);
	if (r.learn.family)
		neigh_note(d, dq, &r);
	if (v == TERN_NET_REPLY) {
		rx_answer(d, dq, m, &r, hint.vlan_stripped);
		return 0;
	}
	if (v != TERN_NET_UDP) {
		if (v == TERN_NET_DROP)
			count_drop(dq, r.reason);
		rte_pktmbuf_free(m);
		return 0;
	}
	pkt->data = f + r.off;
	pkt->len = r.len;
	pkt->cap = r.len;
	pkt->path = r.path;
	pkt->ecn = r.ecn;
	pkt->rx_ns = 0;
	pkt->priv = m;
	if (dq->spreads) {
		unsigned to = spread_target(d, &r.path);
		if (to != q) {
			struct rte_mbuf *c = ho_carrier(d, m, pkt);
			if (c != m) /* copied, or could not be: the original is done */
				rte_pktmbuf_free(m);
			if (c && rte_ring_enqueue(d->q[to].ho, c) == 0) {
				dq->st.handed_off++;
			} else {
				count_drop(dq, TERN_DPDK_DROP_HANDOFF_FULL);
				rte_pktmbuf_free(c);
			}
			return 0;
		}
	}
	dq->st.rx_pkts++;
	dq->st.rx_bytes += r.len;
	return 1;
}

static int d_rx_burst(struct tern_datapath *dp, unsigned q, struct tern_dp_pkt *pkts, unsigned n)
{
	struct dpdk_dp *d = to_d(dp);
	if (q >= dp->n_queues || !pkts)
		return TERN_ERR_INVAL;
	struct dq *dq = &d->q[q];
	struct rte_mbuf *ms[MAX_BURST];
	if (n > MAX_BURST)
		n = MAX_BURST;
	/* hand-offs first: they waited a step already */
	unsigned got = rte_ring_dequeue_burst(dq->ho, (void **)ms, n, NULL);
	for (unsigned i = 0; i < got; i++) {
		meta_load(ms[i], &pkts[i]);
		dq->st.rx_bytes += pkts[i].len;
	}
	dq->st.handoff_rx += got;
	dq->st.rx_frames += got;
	dq->st.rx_pkts += got;
	if (got < n && dq->reads_port) {
		uint16_t nb = rte_eth_rx_burst(d->port, dq->hw_rxq, ms, (uint16_t)(n - got));
		for (uint16_t i = 0; i < nb; i++)
			got += (unsigned)rx_one(d, q, ms[i], &pkts[got]);
	}
	return (int)got;
}

static void d_rx_release(struct tern_datapath *dp, unsigned q, struct tern_dp_pkt *pkts, unsigned n)
{
	(void)dp;
	(void)q;
	for (unsigned i = 0; i < n; i++) {
		if (pkts[i].priv)
			rte_pktmbuf_free(pkts[i].priv);
		pkts[i].priv = NULL;
	}
}

static int d_handoff(struct tern_datapath *dp, unsigned q_from, unsigned q_to, struct tern_dp_pkt *pkt)
{
	struct dpdk_dp *d = to_d(dp);
	if (q_from >= dp->n_queues || q_to >= dp->n_queues || !pkt || !pkt->priv)
		return TERN_ERR_INVAL;
	struct dq *dq = &d->q[q_from];
	struct rte_mbuf *m = pkt->priv;
	/* zero copy where it can: a reference keeps the mbuf alive past
	 * q_from's rx_release */
	struct rte_mbuf *c = ho_carrier(d, m, pkt);
	if (c == m)
		rte_mbuf_refcnt_update(m, 1);
	if (!c || rte_ring_enqueue(d->q[q_to].ho, c) != 0) {
		if (c)
			rte_pktmbuf_free(c); /* our reference, or the copy */
		dq->st.handoff_full++;
		return TERN_ERR_NOMEM;
	}
	dq->st.handed_off++;
	return 0;
}

/* ---- transmit ------------------------------------------------------------------------- */

static unsigned tx_send(struct dpdk_dp *d, struct dq *dq)
{
	unsigned n = dq->n_pending, sent = 0;
	if (!n)
		return 0;
	struct rte_mbuf *ms[TX_BURST];
	for (unsigned i = 0; i < n; i++)
		ms[i] = dq->pending[i].m;
	if (dq->tx_lock)
		rte_spinlock_lock(dq->tx_lock);
	for (int t = 0; t < TX_RETRIES && sent < n; t++) {
		uint16_t k = rte_eth_tx_burst(d->port, dq->hw_txq, ms + sent, (uint16_t)(n - sent));
		if (!k)
			break;
		sent += k;
	}
	if (dq->tx_lock)
		rte_spinlock_unlock(dq->tx_lock);
	unsigned payloads = 0;
	for (unsigned i = 0; i < n; i++) {
		if (i < sent) {
			payloads += dq->pending[i].is_payload;
			dq->st.tx_bytes += dq->pending[i].bytes;
			continue;
		}
		/* a full port drops, as a router would; QUIC recovers */
		rte_pktmbuf_free(ms[i]);
		dq->st.tx_port_full++;
		dq->st.tx_dropped++;
	}
	dq->st.tx_pkts += payloads;
	dq->sent_since_flush += payloads;
	dq->n_pending = 0;
	return sent;
}

static void tx_queue_frame(struct dpdk_dp *d, struct dq *dq, struct rte_mbuf *m, int is_payload,
			   uint32_t bytes)
{
	dq->pending[dq->n_pending].m = m;
	dq->pending[dq->n_pending].bytes = bytes;
	dq->pending[dq->n_pending].is_payload = (uint32_t)is_payload;
	if (++dq->n_pending == TX_BURST)
		tx_send(d, dq);
}

static int d_tx_alloc(struct tern_datapath *dp, unsigned q, struct tern_dp_pkt *pkt, size_t size)
{
	struct dpdk_dp *d = to_d(dp);
	if (q >= dp->n_queues || !pkt)
		return TERN_ERR_INVAL;
	struct dq *dq = &d->q[q];
	if (size > d->buf_room)
		return TERN_ERR_NOBUF;
	if (dq->n_alloc >= d->tx_slots)
		return TERN_ERR_NOMEM;
	struct rte_mbuf *m = rte_pktmbuf_alloc(d->pool);
	if (!m) {
		dq->st.tx_nomem++;
		return TERN_ERR_NOMEM;
	}
	dq->alloc[dq->n_alloc++] = m;
	memset(pkt, 0, sizeof(*pkt));
	pkt->data = rte_pktmbuf_mtod(m, uint8_t *);
	pkt->cap = d->buf_room;
	pkt->priv = m;
	return 0;
}

/* Solicits the MAC of an unknown destination, at most once per
 * solicit_gap per queue so a burst to a gone peer is not a flood. */
static void solicit(struct dpdk_dp *d, struct dq *dq, const struct tern_addr *to)
{
	uint64_t now = rte_get_tsc_cycles();
	if (now - dq->last_solicit < d->solicit_gap)
		return;
	struct rte_mbuf *m = rte_pktmbuf_alloc(d->pool);
	if (!m)
		return;
	uint8_t *f = rte_pktmbuf_mtod(m, uint8_t *);
	size_t n = to->family == 4 ? tern_net_arp_request(f, &d->ifc, to->ip)
				   : tern_net_ns(f, &d->ifc, to->ip);
	if (!n) {
		rte_pktmbuf_free(m);
		return;
	}
	m->data_len = (uint16_t)n;
	m->pkt_len = (uint32_t)n;
	dq->last_solicit = now;
	dq->st.solicits_sent++;
	tx_queue_frame(d, dq, m, 0, 0);
}

static int dst_mac(struct dpdk_dp *d, struct dq *dq, const struct tern_addr *to, uint8_t mac[6])
{
	if (tern_neigh_lookup(&d->neigh, to, mac) == 0)
		return 0;
	if (d->neigh.by_port) {
		/* a static entry or ARP/ND answer knows no port */
		struct tern_addr a = *to;
		a.port = 0;
		if (tern_neigh_lookup(&d->neigh, &a, mac) == 0)
			return 0;
	}
	if (d->has_gw) {
		memcpy(mac, d->gw_mac, 6);
		return 0;
	}
	if (d->neigh_mode == TERN_DPDK_NEIGH_LEARN)
		solicit(d, dq, to);
	return -1;
}

/* Drops a payload that cannot leave: enqueue still succeeds, as a send to
 * an unreachable host does. */
static int tx_lost(struct dq *dq, struct rte_mbuf *m, uint64_t *counter)
{
	rte_pktmbuf_free(m);
	(*counter)++;
	dq->st.tx_dropped++;
	return 0;
}

static int take_alloc(struct dq *dq, struct rte_mbuf *m)
{
	/* almost always the last one allocated */
	for (unsigned i = dq->n_alloc; i-- > 0;) {
		if (dq->alloc[i] == m) {
			dq->alloc[i] = dq->alloc[--dq->n_alloc];
			return 0;
		}
	}
	return -1;
}

static int d_tx_enqueue(struct tern_datapath *dp, unsigned q, struct tern_dp_pkt *pkt)
{
	struct dpdk_dp *d = to_d(dp);
	if (q >= dp->n_queues || !pkt || !pkt->priv || pkt->len > d->buf_room)
		return TERN_ERR_INVAL;
	struct dq *dq = &d->q[q];
	struct rte_mbuf *m = pkt->priv;
	if (pkt->data != rte_pktmbuf_mtod(m, uint8_t *) || take_alloc(dq, m) < 0)
		return TERN_ERR_INVAL;
	int fam = pkt->path.remote.family;
	if ((fam != 4 && fam != 6) || (pkt->path.local.family && pkt->path.local.family != fam) ||
	    (!pkt->path.local.family && !(fam == 4 ? d->ifc.has4 : d->ifc.has6)))
		return tx_lost(dq, m, &dq->st.tx_bad_path);
	if (pkt->len > (fam == 4 ? d->max_payload4 : d->max_payload6))
		return tx_lost(dq, m, &dq->st.tx_too_big);
	uint8_t mac[6];
	if (dst_mac(d, dq, &pkt->path.remote, mac) < 0)
		return tx_lost(dq, m, &dq->st.tx_no_neigh);
	size_t hl = tern_net_udp_hdr_len(&d->ifc, fam);
	m->data_len = (uint16_t)pkt->len;
	m->pkt_len = pkt->len;
	uint8_t *frame = (uint8_t *)rte_pktmbuf_prepend(m, (uint16_t)hl);
	if (!frame || tern_net_udp_build(frame, &d->ifc, mac, &pkt->path, pkt->ecn, dq->ip_id++,
					 pkt->len, d->tx_offload) < 0)
		return tx_lost(dq, m, &dq->st.tx_bad_path);
	m->ol_flags = 0;
	if (d->tx_offload) {
		size_t l3 = fam == 4 ? TERN_NET_IP4_LEN : TERN_NET_IP6_LEN;
		m->l2_len = hl - l3 - TERN_NET_UDP_LEN;
		m->l3_len = l3;
		m->ol_flags = RTE_MBUF_F_TX_UDP_CKSUM |
			      (fam == 4 ? RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM
					: RTE_MBUF_F_TX_IPV6);
	}
	tx_queue_frame(d, dq, m, 1, pkt->len);
	return 0;
}

static int d_tx_flush(struct tern_datapath *dp, unsigned q)
{
	struct dpdk_dp *d = to_d(dp);
	if (q >= dp->n_queues)
		return TERN_ERR_INVAL;
	struct dq *dq = &d->q[q];
	tx_send(d, dq);
	/* buffers allocated but never enqueued come back here (datapath.h) */
	if (dq->n_alloc)
		rte_pktmbuf_free_bulk(dq->alloc, dq->n_alloc);
	dq->n_alloc = 0;
	uint64_t n = dq->sent_since_flush;
	dq->sent_since_flush = 0;
	return (int)n;
}

/* ---- stats, close ------------------------------------------------------------------------ */

void tern_dpdk_stats(struct tern_datapath *dp, unsigned q, struct tern_dpdk_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!dp)
		return;
	struct dpdk_dp *d = to_d(dp);
	if (q != TERN_DPDK_ALL_QUEUES) {
		if (q < dp->n_queues)
			*st = d->q[q].st;
		return;
	}
	uint64_t *sum = (uint64_t *)st;
	for (unsigned i = 0; i < dp->n_queues; i++) {
		const uint64_t *v = (const uint64_t *)&d->q[i].st;
		for (size_t k = 0; k < sizeof(*st) / sizeof(uint64_t); k++)
			sum[k] += v[k];
	}
}

static void d_stats(struct tern_datapath *dp, unsigned q, struct tern_dp_stats *out)
{
	struct tern_dpdk_stats st;
	tern_dpdk_stats(dp, q, &st);
	out->rx_pkts = st.rx_pkts;
	out->rx_bytes = st.rx_bytes;
	out->tx_pkts = st.tx_pkts;
	out->tx_bytes = st.tx_bytes;
	out->rx_dropped = st.rx_dropped;
	out->tx_dropped = st.tx_dropped;
	out->handed_off = st.handed_off;
}

static void d_close(struct tern_datapath *dp)
{
	if (!dp)
		return;
	struct dpdk_dp *d = to_d(dp);
	if (d->started)
		rte_eth_dev_stop(d->port);
	if (d->q) {
		for (unsigned i = 0; i < dp->n_queues; i++) {
			struct dq *dq = &d->q[i];
			for (unsigned k = 0; k < dq->n_pending; k++)
				rte_pktmbuf_free(dq->pending[k].m);
			if (dq->alloc && dq->n_alloc)
				rte_pktmbuf_free_bulk(dq->alloc, dq->n_alloc);
			struct rte_mbuf *m;
			while (dq->ho && rte_ring_dequeue(dq->ho, (void **)&m) == 0)
				rte_pktmbuf_free(m);
			rte_ring_free(dq->ho);
			rte_free(dq->alloc);
		}
	}
	if (d->started)
		rte_eth_dev_close(d->port);
	rte_mempool_free(d->pool);
	rte_free(d->neigh_mem);
	rte_free(d->q);
	rte_free(d);
}

static const struct tern_datapath_ops dpdk_ops = {
	.name = "dpdk",
	.rx_burst = d_rx_burst,
	.rx_release = d_rx_release,
	.tx_alloc = d_tx_alloc,
	.tx_enqueue = d_tx_enqueue,
	.tx_flush = d_tx_flush,
	.handoff = d_handoff,
	.stats = d_stats,
	.close = d_close,
};

/* ---- open ------------------------------------------------------------------------------- */

static int parse_config(struct dpdk_dp *d, const struct tern_dpdk_config *cfg, char *err, size_t errlen)
{
	unsigned n = cfg->n_queues ? cfg->n_queues : 1;
	if (n > MAX_QUEUES) {
		tern_errf(err, errlen, "n_queues %u: at most %d", n, MAX_QUEUES);
		return TERN_ERR_INVAL;
	}
	d->dp.n_queues = n;
	if (cfg->addr4 && inet_pton(AF_INET, cfg->addr4, d->ifc.ip4) != 1) {
		tern_errf(err, errlen, "bad IPv4 listen address '%s'", cfg->addr4);
		return TERN_ERR_INVAL;
	}
	if (cfg->addr6 && inet_pton(AF_INET6, cfg->addr6, d->ifc.ip6) != 1) {
		tern_errf(err, errlen, "bad IPv6 listen address '%s'", cfg->addr6);
		return TERN_ERR_INVAL;
	}
	d->ifc.has4 = cfg->addr4 != NULL;
	d->ifc.has6 = cfg->addr6 != NULL;
	if (!d->ifc.has4 && !d->ifc.has6) {
		tern_errf(err, errlen, "no listen address: set addr4 and/or addr6");
		return TERN_ERR_INVAL;
	}
	if (!cfg->udp_port) {
		tern_errf(err, errlen, "no udp_port to listen on");
		return TERN_ERR_INVAL;
	}
	if (cfg->vlan_id > 4094) {
		tern_errf(err, errlen, "vlan_id %u: expected 0..4094", cfg->vlan_id);
		return TERN_ERR_INVAL;
	}
	if ((uint32_t)cfg->udp_port + (cfg->udp_ports ? cfg->udp_ports : 1) > 65536) {
		tern_errf(err, errlen, "udp ports %u..%u: past 65535", cfg->udp_port,
			  cfg->udp_port + cfg->udp_ports - 1);
		return TERN_ERR_INVAL;
	}
	d->ifc.port = cfg->udp_port;
	d->ifc.n_ports = cfg->udp_ports ? cfg->udp_ports : 1;
	d->ifc.vlan = cfg->vlan_id;
	unsigned ho = cfg->handoff_slots ? cfg->handoff_slots : 1024;
	unsigned ne = cfg->neigh_entries ? cfg->neigh_entries : 4096;
	if ((ho & (ho - 1)) || ho < 2 || (ne & (ne - 1)) || ne < 4) {
		tern_errf(err, errlen, "handoff_slots %u / neigh_entries %u: powers of two expected",
			ho, ne);
		return TERN_ERR_INVAL;
	}
	if (cfg->neigh_mode != TERN_DPDK_NEIGH_LEARN && cfg->neigh_mode != TERN_DPDK_NEIGH_SRC_MAC) {
		tern_errf(err, errlen, "neigh_mode %d unknown", cfg->neigh_mode);
		return TERN_ERR_INVAL;
	}
	d->neigh_mode = cfg->neigh_mode;
	d->tx_slots = cfg->tx_slots ? cfg->tx_slots : 512;
	if (cfg->gateway_mac) {
		d->has_gw = 1;
		memcpy(d->gw_mac, cfg->gateway_mac, 6);
	}
	d->log = cfg->log;
	d->log_ctx = cfg->log_ctx;
	return 0;
}

static int find_port(struct dpdk_dp *d, const char *name, char *err, size_t errlen)
{
	uint16_t pid;
	if (!name) {
		RTE_ETH_FOREACH_DEV(pid)
		{
			d->port = pid;
			rte_eth_dev_get_name_by_port(pid, d->port_name);
			return 0;
		}
		tern_errf(err, errlen,
			"no DPDK port: give one with --vdev=... (or a PCI device) in the EAL "
			"arguments%s",
			eal_note);
		return TERN_ERR_INVAL;
	}
	if (rte_eth_dev_get_port_by_name(name, &pid) != 0) {
		char list[256] = "";
		size_t used = 0;
		RTE_ETH_FOREACH_DEV(pid)
		{
			char n[RTE_ETH_NAME_MAX_LEN];
			if (rte_eth_dev_get_name_by_port(pid, n) == 0 && used < sizeof(list))
				used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
							 used ? ", " : "", n);
		}
		tern_errf(err, errlen, "no DPDK port named '%s' (ports: %s)%s", name, used ? list : "none",
			eal_note);
		return TERN_ERR_INVAL;
	}
	d->port = pid;
	snprintf(d->port_name, sizeof(d->port_name), "%s", name);
	return 0;
}

/* RSS on the UDP 4-tuple when the port has it and enough queues; else one
 * RX queue that queue 0 spreads in software, and TX queues shared when the
 * port has fewer than the workers. */
static void choose_queues(struct dpdk_dp *d, const struct rte_eth_dev_info *di,
			  struct rte_eth_conf *conf, int no_offload)
{
	unsigned n = d->dp.n_queues;
	uint64_t rss_hf = di->flow_type_rss_offloads &
			  (RTE_ETH_RSS_NONFRAG_IPV4_UDP | RTE_ETH_RSS_NONFRAG_IPV6_UDP);
	if (n > 1 && rss_hf && di->max_rx_queues >= n && di->max_tx_queues >= n) {
		d->rss = 1;
		d->hw_rx = d->hw_tx = n;
		conf->rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf->rx_adv_conf.rss_conf.rss_hf = rss_hf;
	} else {
		d->hw_rx = 1;
		d->hw_tx = n < di->max_tx_queues ? n : di->max_tx_queues;
		if (d->hw_tx == 0)
			d->hw_tx = 1;
		if (n > 1)
			dlog(d,
			     "port %s has no RSS on the UDP 4-tuple for %u queues: queue 0 reads "
			     "the port "
			     "and software hand-off spreads the work (%u TX queues)",
			     d->port_name, n, d->hw_tx);
	}
	uint64_t tx_need = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
	uint64_t rx_need = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
	if (!no_offload && (di->tx_offload_capa & tx_need) == tx_need) {
		conf->txmode.offloads |= tx_need;
		d->tx_offload = 1;
	}
	if (!no_offload && (di->rx_offload_capa & rx_need) == rx_need) {
		conf->rxmode.offloads |= rx_need;
		d->rx_offload = 1;
	}
}

static int make_pool(struct dpdk_dp *d, const struct tern_dpdk_config *cfg, unsigned nrx, unsigned ntx,
		     unsigned ho, int socket, char *err, size_t errlen)
{
	unsigned nq = d->dp.n_queues;
	/* each queue: its RX ring full, its TX ring full, a few bursts in
	 * flight in the worker, its TX slots and its hand-off ring; plus
	 * what the per-lcore caches may hold */
	unsigned n = cfg->n_mbufs;
	if (!n)
		n = nq * (nrx + ntx + TERN_DP_BURST * 4 + d->tx_slots + ho) +
		    (rte_lcore_count() + 1) * POOL_CACHE * 3 / 2;
	unsigned cache = n / 8 < POOL_CACHE ? n / 8 : POOL_CACHE;
	char name[RTE_MEMPOOL_NAMESIZE];
	snprintf(name, sizeof(name), "tern%u_%08x", d->port, (unsigned)rte_rand());
	uint16_t priv = (uint16_t)RTE_ALIGN(sizeof(struct pkt_meta), RTE_MBUF_PRIV_ALIGN);
	d->pool = rte_pktmbuf_pool_create(name, n, cache, priv, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
	if (!d->pool) {
		tern_errf(err, errlen,
			"cannot create a pool of %u mbufs (%s): raise -m in the EAL arguments", n,
			rte_strerror(rte_errno));
		return TERN_ERR_NOMEM;
	}
	d->buf_room = RTE_MBUF_DEFAULT_BUF_SIZE - RTE_PKTMBUF_HEADROOM;
	return 0;
}

static int setup_queues(struct dpdk_dp *d, const struct tern_dpdk_config *cfg,
			const struct rte_eth_dev_info *di, const struct rte_eth_conf *conf, char *err,
			size_t errlen)
{
	uint16_t nrx = (uint16_t)(cfg->rx_desc ? cfg->rx_desc : 1024);
	uint16_t ntx = (uint16_t)(cfg->tx_desc ? cfg->tx_desc : 1024);
	int r = rte_eth_dev_adjust_nb_rx_tx_desc(d->port, &nrx, &ntx);
	int socket = rte_eth_dev_socket_id(d->port);
	if (socket < 0)
		socket = (int)SOCKET_ID_ANY;
	unsigned ho = cfg->handoff_slots ? cfg->handoff_slots : 1024;
	if (r < 0) {
		tern_errf(err, errlen, "port %s: bad descriptor counts: %s", d->port_name,
			rte_strerror(-r));
		return TERN_ERR_IO;
	}
	r = make_pool(d, cfg, nrx, ntx, ho, socket, err, errlen);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < d->hw_rx; i++) {
		r = rte_eth_rx_queue_setup(d->port, (uint16_t)i, nrx, (unsigned)socket, NULL, d->pool);
		if (r < 0) {
			tern_errf(err, errlen, "port %s: RX queue %u setup: %s", d->port_name, i,
				rte_strerror(-r));
			return TERN_ERR_IO;
		}
	}
	struct rte_eth_txconf txc = di->default_txconf;
	txc.offloads = conf->txmode.offloads;
	for (unsigned i = 0; i < d->hw_tx; i++) {
		r = rte_eth_tx_queue_setup(d->port, (uint16_t)i, ntx, (unsigned)socket, &txc);
		if (r < 0) {
			tern_errf(err, errlen, "port %s: TX queue %u setup: %s", d->port_name, i,
				rte_strerror(-r));
			return TERN_ERR_IO;
		}
	}
	return 0;
}

static int port_start(struct dpdk_dp *d, const struct tern_dpdk_config *cfg, char *err, size_t errlen)
{
	struct rte_eth_dev_info di;
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	int r = rte_eth_dev_info_get(d->port, &di);
	if (r < 0) {
		tern_errf(err, errlen, "port %s: no device info: %s", d->port_name, rte_strerror(-r));
		return TERN_ERR_IO;
	}
	choose_queues(d, &di, &conf, cfg->no_offload);
	r = rte_eth_dev_configure(d->port, (uint16_t)d->hw_rx, (uint16_t)d->hw_tx, &conf);
	if (r < 0) {
		tern_errf(err, errlen, "port %s: cannot configure %u RX / %u TX queues: %s", d->port_name,
			d->hw_rx, d->hw_tx, rte_strerror(-r));
		return TERN_ERR_IO;
	}
	r = setup_queues(d, cfg, &di, &conf, err, errlen);
	if (r < 0)
		return r;
	struct rte_ether_addr mac;
	uint16_t mtu = RTE_ETHER_MTU;
	if (rte_eth_macaddr_get(d->port, &mac) == 0)
		memcpy(d->ifc.mac, mac.addr_bytes, 6);
	if (rte_eth_dev_get_mtu(d->port, &mtu) != 0 || mtu < 1280)
		mtu = RTE_ETHER_MTU;
	d->max_payload4 = mtu - TERN_NET_IP4_LEN - TERN_NET_UDP_LEN;
	d->max_payload6 = mtu - TERN_NET_IP6_LEN - TERN_NET_UDP_LEN;
	if (cfg->promiscuous)
		rte_eth_promiscuous_enable(d->port);
	if (d->ifc.has6) /* Neighbour Solicitations come to a multicast group */
		rte_eth_allmulticast_enable(d->port);
	r = rte_eth_dev_start(d->port);
	if (r < 0) {
		tern_errf(err, errlen, "port %s will not start: %s", d->port_name, rte_strerror(-r));
		return TERN_ERR_IO;
	}
	d->started = 1;
	return 0;
}

static int make_queues(struct dpdk_dp *d, const struct tern_dpdk_config *cfg, char *err, size_t errlen)
{
	unsigned n = d->dp.n_queues;
	unsigned ho = cfg->handoff_slots ? cfg->handoff_slots : 1024;
	d->q = rte_zmalloc("tern_dpdk_q", sizeof(struct dq) * n, RTE_CACHE_LINE_SIZE);
	if (!d->q)
		goto nomem;
	for (unsigned i = 0; i < d->hw_tx && i < MAX_QUEUES; i++)
		rte_spinlock_init(&d->tx_locks[i]);
	for (unsigned i = 0; i < n; i++) {
		struct dq *dq = &d->q[i];
		char name[RTE_RING_NAMESIZE];
		snprintf(name, sizeof(name), "tern_ho%u_%08x", i, (unsigned)rte_rand());
		dq->ho = rte_ring_create(name, ho, SOCKET_ID_ANY, RING_F_SC_DEQ | RING_F_EXACT_SZ);
		dq->alloc = rte_zmalloc("tern_dpdk_alloc", sizeof(*dq->alloc) * d->tx_slots, 0);
		if (!dq->ho || !dq->alloc)
			goto nomem;
		dq->reads_port = i < d->hw_rx;
		dq->hw_rxq = (uint16_t)(i < d->hw_rx ? i : 0);
		dq->spreads = !d->rss && n > 1 && i == 0;
		dq->hw_txq = (uint16_t)(i % d->hw_tx);
		dq->tx_lock = d->hw_tx < n ? &d->tx_locks[dq->hw_txq] : NULL;
		dq->ip_id = (uint16_t)rte_rand();
	}
	unsigned ne = cfg->neigh_entries ? cfg->neigh_entries : 4096;
	d->neigh_mem = rte_zmalloc("tern_dpdk_neigh", sizeof(struct tern_neigh_entry) * ne,
				   RTE_CACHE_LINE_SIZE);
	if (!d->neigh_mem ||
	    tern_neigh_init(&d->neigh, d->neigh_mem, ne, d->neigh_mode == TERN_DPDK_NEIGH_SRC_MAC,
			    rte_rand()) < 0)
		goto nomem;
	return 0;
nomem:
	tern_errf(err, errlen, "out of EAL memory for %u queues: raise -m in the EAL arguments", n);
	return TERN_ERR_NOMEM;
}

int tern_dpdk_open(struct tern_datapath **dp, const struct tern_dpdk_config *cfg, char *err,
		   size_t errlen)
{
	if (!dp || !cfg) {
		tern_errf(err, errlen, "no config");
		return TERN_ERR_INVAL;
	}
	*dp = NULL;
	int r = tern_dpdk_eal_init(cfg->eal_args, err, errlen);
	if (r < 0)
		return r;
	struct dpdk_dp *d = rte_zmalloc("tern_dpdk", sizeof(*d), RTE_CACHE_LINE_SIZE);
	if (!d) {
		tern_errf(err, errlen, "out of EAL memory");
		return TERN_ERR_NOMEM;
	}
	d->dp.ops = &dpdk_ops;
	d->spread_seed = rte_rand();
	d->solicit_gap = rte_get_tsc_hz() / 1000;
	r = parse_config(d, cfg, err, errlen);
	if (r == 0)
		r = find_port(d, cfg->port, err, errlen);
	if (r == 0)
		r = port_start(d, cfg, err, errlen);
	if (r == 0)
		r = make_queues(d, cfg, err, errlen);
	if (r < 0) {
		d_close(&d->dp);
		return r;
	}
	*dp = &d->dp;
	return 0;
}

/* ---- extras ------------------------------------------------------------------------------ */

void tern_dpdk_mac(struct tern_datapath *dp, uint8_t mac[6])
{
	memcpy(mac, to_d(dp)->ifc.mac, 6);
}

uint16_t tern_dpdk_port_id(struct tern_datapath *dp)
{
	return to_d(dp)->port;
}

int tern_dpdk_has_rss(struct tern_datapath *dp)
{
	return to_d(dp)->rss;
}

int tern_dpdk_tx_offload(struct tern_datapath *dp)
{
	return to_d(dp)->tx_offload;
}

int tern_dpdk_neigh_add(struct tern_datapath *dp, const struct tern_addr *ip, const uint8_t mac[6])
{
	struct dpdk_dp *d = to_d(dp);
	if (!ip || !mac || (ip->family != 4 && ip->family != 6))
		return TERN_ERR_INVAL;
	/* a writer may hold the entry for a moment; a static entry must land */
	for (int i = 0; i < 1000; i++) {
		int r = tern_neigh_learn(&d->neigh, ip, mac);
		if (r >= 0)
			return 0;
		rte_pause();
	}
	return TERN_ERR_STATE;
}

struct launch_arg {
	int (*fn)(unsigned q, void *arg);
	void *arg;
	unsigned q;
};

static int launch_one(void *p)
{
	struct launch_arg *a = p;
	return a->fn(a->q, a->arg);
}

int tern_dpdk_launch(struct tern_datapath *dp, int (*fn)(unsigned q, void *arg), void *arg, char *err,
		     size_t errlen)
{
	unsigned n = dp->n_queues;
	if (!fn || rte_lcore_count() < n) {
		tern_errf(err, errlen, "%u queues need %u lcores, the EAL has %u: widen -l", n, n,
			rte_lcore_count());
		return TERN_ERR_INVAL;
	}
	struct launch_arg args[MAX_QUEUES];
	unsigned lcores[MAX_QUEUES], q = 1, lc;
	RTE_LCORE_FOREACH_WORKER(lc)
	{
		if (q >= n)
			break;
		args[q] = (struct launch_arg){fn, arg, q};
		lcores[q] = lc;
		if (rte_eal_remote_launch(launch_one, &args[q], lc) != 0) {
			tern_errf(err, errlen, "lcore %u is busy", lc);
			break; /* wait for those already started, then fail */
		}
		q++;
	}
	int first = q == n ? fn(0, arg) : TERN_ERR_STATE;
	for (unsigned i = 1; i < q; i++) {
		int r = rte_eal_wait_lcore(lcores[i]);
		if (!first && r)
			first = r;
	}
	return first;
}
