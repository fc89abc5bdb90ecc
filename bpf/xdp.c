/* tern: the AF_XDP datapath (include/tern/xdp.h): the XDP program's loader
 * and one UMEM + AF_XDP socket per RX queue, through libxdp's xsk API. */
#include "tern/xdp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#include "tern_bpf_shared.h"
#include "tern_xdp.skel.h"

#define FRAME_SIZE XSK_UMEM__DEFAULT_FRAME_SIZE
#define FRAME_MASK ((uint64_t)FRAME_SIZE - 1)
/* A TX payload starts here in its frame; the headers go right before it. */
#define TX_PAYLOAD_OFF 128
#define TX_CAP (FRAME_SIZE - TX_PAYLOAD_OFF)
/* Copy mode puts XDP_PACKET_HEADROOM (256) before a received frame. */
#define RX_MAX_FRAME (FRAME_SIZE - 256)
#define DEFAULT_RING 2048
#define HO_SLOTS 256
#define HO_DATA 4096
#define NEIGH_SLOTS 4096 /* per queue, direct-mapped */
#define BUSY_POLL_USEC 20
#define BIND_RETRIES 50
#define BIND_RETRY_US 20000

enum { TX_FREE, TX_ALLOC, TX_DISCARD, TX_QUEUED, TX_KERNEL };

struct neigh {
	uint8_t family;
	uint8_t ip[16];
	struct tern_xdp_l2 l2; /* as received: l2.src is the neighbour */
};

/* Hand-off: a bounded multi-producer ring per destination (Vyukov's
 * sequence-numbered slots), so any worker may push and only the owner
 * pops, without locks (DESIGN.md §1). The owner hands slot payloads to the
 * endpoint in place and frees a slot at rx_release. */
struct ho_slot {
	_Atomic size_t seq;
	size_t pos; /* owner only: the position it was popped at */
	uint32_t len;
	uint8_t ecn, has_l2;
	uint64_t rx_ns;
	struct tern_path path;
	struct tern_xdp_l2 l2;
};

struct ho_ring {
	_Alignas(64) _Atomic size_t enq;
	_Alignas(64) size_t deq;
	struct ho_slot *slots;
	uint8_t *data;
};

struct xq {
	int fd, zerocopy;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	uint8_t *area;
	size_t area_len;
	/* TX frames are the second half of the UMEM */
	uint64_t *tx_free;
	unsigned tx_nfree;
	uint8_t *tx_state;
	uint64_t *tx_out; /* allocated since the last flush */
	unsigned tx_nout;
	struct xdp_desc *tx_pend;
	unsigned tx_npend;
	uint16_t ip_id;
	struct neigh *neigh;
	int have_last;
	struct tern_xdp_l2 last;
	struct ho_ring ho;
	struct tern_dp_stats st;
	struct tern_xdp_qstats xst;
} __attribute__((aligned(64)));

struct xdp_dp {
	struct tern_datapath dp; /* first: the contract's handle */
	struct tern_xdp *skel;
	struct bpf_link *link;
	int ifindex, busy_poll, force_copy, replace, native;
	char ifname[IF_NAMESIZE];
	unsigned ring, mtu;
	uint8_t mac[6];
	int has_peer_mac;
	uint8_t peer_mac[6];
	struct tern_addr src4, src6; /* default sources; family 0: not served */
	struct xq *q;
};

static inline struct xdp_dp *to_x(struct tern_datapath *dp)
{
	return (struct xdp_dp *)dp;
}


static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int ip_is_zero(const uint8_t *ip, int family)
{
	static const uint8_t zero[16];
	return memcmp(ip, zero, family == 4 ? 4 : 16) == 0;
}

/* ---- neighbours ------------------------------------------------------------ */

static unsigned neigh_hash(int family, const uint8_t *ip)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (int i = 0; i < (family == 4 ? 4 : 16); i++)
		h = (h ^ ip[i]) * 16777619u;
	return h & (NEIGH_SLOTS - 1);
}

static void neigh_learn(struct xq *q, const struct tern_addr *a, const struct tern_xdp_l2 *l2)
{
	struct neigh *n = &q->neigh[neigh_hash(a->family, a->ip)];
	n->family = a->family;
	memcpy(n->ip, a->ip, 16);
	n->l2 = *l2;
	q->last = *l2;
	q->have_last = 1;
}

static const struct neigh *neigh_find(const struct xq *q, const struct tern_addr *a)
{
	const struct neigh *n = &q->neigh[neigh_hash(a->family, a->ip)];
	if (n->family == a->family && memcmp(n->ip, a->ip, a->family == 4 ? 4 : 16) == 0)
		return n;
	return NULL;
}

/* The frame's L2 for a destination: learned, configured, or the last
 * sender (on a routed network every frame comes from the gateway). */
static int l2_for(const struct xdp_dp *x, const struct xq *q, const struct tern_addr *dst,
		  struct tern_xdp_l2 *l2)
{
	const struct neigh *n = neigh_find(q, dst);
	memset(l2, 0, sizeof(*l2));
	if (n) {
		memcpy(l2->dst, n->l2.src, 6);
		l2->vlan_proto = n->l2.vlan_proto;
		l2->vlan_tci = n->l2.vlan_tci;
	} else if (x->has_peer_mac) {
		memcpy(l2->dst, x->peer_mac, 6);
	} else if (q->have_last) {
		memcpy(l2->dst, q->last.src, 6);
		l2->vlan_proto = q->last.vlan_proto;
		l2->vlan_tci = q->last.vlan_tci;
	} else {
		return TERN_ERR_STATE;
	}
	memcpy(l2->src, x->mac, 6);
	return 0;
}

/* ---- hand-off ring ----------------------------------------------------------- */

static int ho_push(struct ho_ring *r, const struct tern_dp_pkt *pkt, const struct neigh *n)
{
	size_t pos = atomic_load_explicit(&r->enq, memory_order_relaxed);
	struct ho_slot *s;
	for (;;) {
		s = &r->slots[pos & (HO_SLOTS - 1)];
		size_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
		intptr_t dif = (intptr_t)seq - (intptr_t)pos;
		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(&r->enq, &pos, pos + 1,
								  memory_order_relaxed,
								  memory_order_relaxed))
				break;
		} else if (dif < 0) {
			return TERN_ERR_NOMEM;
		} else {
			pos = atomic_load_explicit(&r->enq, memory_order_relaxed);
		}
	}
	size_t i = (size_t)(s - r->slots);
	memcpy(r->data + i * HO_DATA, pkt->data, pkt->len);
	s->len = pkt->len;
	s->ecn = pkt->ecn;
	s->rx_ns = pkt->rx_ns;
	s->path = pkt->path;
	s->has_l2 = n != NULL;
	if (n)
		s->l2 = n->l2;
	atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
	return 0;
}

/* Pops up to n ready slots into pkts; priv is the slot index tagged with
 * bit 0 (UMEM frame addresses are frame-aligned, so never odd). */
static unsigned ho_pop(struct xq *q, struct tern_dp_pkt *pkts, unsigned n)
{
	struct ho_ring *r = &q->ho;
	unsigned got = 0;
	while (got < n) {
		size_t i = r->deq & (HO_SLOTS - 1);
		struct ho_slot *s = &r->slots[i];
		if (atomic_load_explicit(&s->seq, memory_order_acquire) != r->deq + 1)
			break;
		s->pos = r->deq++;
		if (s->has_l2)
			neigh_learn(q, &s->path.remote, &s->l2);
		struct tern_dp_pkt *p = &pkts[got++];
		memset(p, 0, sizeof(*p));
		p->data = r->data + i * HO_DATA;
		p->len = p->cap = s->len;
		p->path = s->path;
		p->ecn = s->ecn;
		p->rx_ns = s->rx_ns;
		p->priv = (void *)(uintptr_t)(i << 1 | 1);
		q->st.rx_pkts++;
		q->st.rx_bytes += s->len;
	}
	return got;
}

static void ho_release(struct ho_ring *r, size_t i)
{
	struct ho_slot *s = &r->slots[i & (HO_SLOTS - 1)];
	atomic_store_explicit(&s->seq, s->pos + HO_SLOTS, memory_order_release);
}

static int ho_ready(struct ho_ring *r)
{
	struct ho_slot *s = &r->slots[r->deq & (HO_SLOTS - 1)];
	return atomic_load_explicit(&s->seq, memory_order_acquire) == r->deq + 1;
}

/* ---- receive ------------------------------------------------------------------ */

static void fill_put(struct xq *q, const uint64_t *addrs, unsigned n)
{
	uint32_t idx;
	/* The fill ring holds every RX frame, so room for the ones we hold
	 * always exists. */
	if (n == 0 || xsk_ring_prod__reserve(&q->fill, n, &idx) != n)
		return;
	for (unsigned i = 0; i < n; i++)
		*xsk_ring_prod__fill_addr(&q->fill, idx + i) = addrs[i];
	xsk_ring_prod__submit(&q->fill, n);
}

static unsigned rx_take(struct xdp_dp *x, struct xq *q, struct tern_dp_pkt *pkts, unsigned n)
{
	uint32_t idx;
	unsigned r = xsk_ring_cons__peek(&q->rx, n, &idx);
	if (r == 0 && (x->busy_poll || xsk_ring_prod__needs_wakeup(&q->fill))) {
		/* Drives the driver's NAPI (busy poll) or asks it to refill. */
		q->xst.rx_wakeups++;
		recvfrom(q->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		r = xsk_ring_cons__peek(&q->rx, n, &idx);
	}
	unsigned got = 0;
	uint64_t now = r ? mono_ns() : 0;
	for (unsigned i = 0; i < r; i++) {
		const struct xdp_desc *d = xsk_ring_cons__rx_desc(&q->rx, idx + i);
		uint64_t base = d->addr & ~FRAME_MASK;
		uint8_t *f = q->area + d->addr;
		struct tern_xdp_frame fr;
		if (tern_xdp_frame_parse(f, d->len, &fr) < 0) {
			q->xst.rx_bad_frames++;
			q->st.rx_dropped++;
			fill_put(q, &base, 1);
			continue;
		}
		neigh_learn(q, &fr.path.remote, &fr.l2);
		struct tern_dp_pkt *p = &pkts[got++];
		p->data = f + fr.payload_off;
		p->len = p->cap = fr.payload_len;
		p->path = fr.path;
		p->ecn = fr.ecn;
		p->rx_ns = now;
		p->priv = (void *)(uintptr_t)base;
		q->st.rx_pkts++;
		q->st.rx_bytes += fr.payload_len;
	}
	if (r)
		xsk_ring_cons__release(&q->rx, r);
	return got;
}

static int xdp_rx_burst(struct tern_datapath *dp, unsigned qi, struct tern_dp_pkt *pkts, unsigned n)
{
	struct xdp_dp *x = to_x(dp);
	if (qi >= dp->n_queues || !pkts)
		return TERN_ERR_INVAL;
	struct xq *q = &x->q[qi];
	unsigned got = ho_pop(q, pkts, n);
	if (got < n)
		got += rx_take(x, q, pkts + got, n - got);
	return (int)got;
}

static void xdp_rx_release(struct tern_datapath *dp, unsigned qi, struct tern_dp_pkt *pkts, unsigned n)
{
	struct xdp_dp *x = to_x(dp);
	if (qi >= dp->n_queues)
		return;
	struct xq *q = &x->q[qi];
	uint64_t addrs[TERN_DP_BURST];
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++) {
		uintptr_t v = (uintptr_t)pkts[i].priv;
		if (v & 1) {
			ho_release(&q->ho, v >> 1);
			continue;
		}
		addrs[k++] = v;
		if (k == TERN_DP_BURST) {
			fill_put(q, addrs, k);
			k = 0;
		}
	}
	fill_put(q, addrs, k);
}

/* ---- send ------------------------------------------------------------------------ */

static unsigned tx_index(const struct xdp_dp *x, uint64_t addr)
{
	return (unsigned)(addr / FRAME_SIZE) - x->ring;
}

static void tx_free(struct xdp_dp *x, struct xq *q, uint64_t base)
{
	q->tx_state[tx_index(x, base)] = TX_FREE;
	q->tx_free[q->tx_nfree++] = base;
}

static void tx_reap(struct xdp_dp *x, struct xq *q)
{
	uint32_t idx;
	unsigned n = xsk_ring_cons__peek(&q->comp, x->ring, &idx);
	for (unsigned i = 0; i < n; i++)
		tx_free(x, q, *xsk_ring_cons__comp_addr(&q->comp, idx + i) & ~FRAME_MASK);
	if (n)
		xsk_ring_cons__release(&q->comp, n);
}

static int xdp_tx_alloc(struct tern_datapath *dp, unsigned qi, struct tern_dp_pkt *pkt, size_t size)
{
	struct xdp_dp *x = to_x(dp);
	if (qi >= dp->n_queues || !pkt)
		return TERN_ERR_INVAL;
	if (size > TX_CAP)
		return TERN_ERR_NOBUF;
	struct xq *q = &x->q[qi];
	if (q->tx_nfree == 0)
		tx_reap(x, q);
	if (q->tx_nfree == 0)
		return TERN_ERR_NOMEM;
	uint64_t base = q->tx_free[--q->tx_nfree];
	q->tx_state[tx_index(x, base)] = TX_ALLOC;
	q->tx_out[q->tx_nout++] = base;
	memset(pkt, 0, sizeof(*pkt));
	pkt->data = q->area + base + TX_PAYLOAD_OFF;
	pkt->cap = TX_CAP;
	pkt->priv = (void *)(uintptr_t)base;
	return 0;
}

/* The source of a datagram: what the caller asked for, completed by the
 * served address of that family. */
static int pick_local(const struct xdp_dp *x, const struct tern_addr *req, int fam,
		      struct tern_addr *out)
{
	*out = fam == 4 ? x->src4 : x->src6;
	if (!out->family)
		return TERN_ERR_INVAL;
	if (req->family == fam) {
		if (!ip_is_zero(req->ip, fam))
			memcpy(out->ip, req->ip, 16);
		if (req->port)
			out->port = req->port;
	}
	return ip_is_zero(out->ip, fam) ? TERN_ERR_INVAL : 0;
}

static int xdp_tx_enqueue(struct tern_datapath *dp, unsigned qi, struct tern_dp_pkt *pkt)
{
	struct xdp_dp *x = to_x(dp);
	if (qi >= dp->n_queues || !pkt)
		return TERN_ERR_INVAL;
	struct xq *q = &x->q[qi];
	uint64_t base = (uintptr_t)pkt->priv;
	if (base & FRAME_MASK || base < (uint64_t)x->ring * FRAME_SIZE ||
	    base >= (uint64_t)2 * x->ring * FRAME_SIZE || q->tx_state[tx_index(x, base)] != TX_ALLOC ||
	    pkt->data != q->area + base + TX_PAYLOAD_OFF || pkt->len > TX_CAP)
		return TERN_ERR_INVAL;
	int fam = pkt->path.remote.family;
	struct tern_path path = {.remote = pkt->path.remote};
	if ((fam != 4 && fam != 6) || pick_local(x, &pkt->path.local, fam, &path.local) < 0)
		return TERN_ERR_INVAL;
	struct tern_xdp_l2 l2;
	if (l2_for(x, q, &path.remote, &l2) < 0) {
		q->xst.tx_no_mac++;
		return TERN_ERR_STATE;
	}
	/* The MTU bounds the IP packet; the link header is not counted. */
	if (pkt->len + (fam == 4 ? 28u : 48u) > x->mtu) {
		q->tx_state[tx_index(x, base)] = TX_DISCARD; /* back at the flush */
		q->xst.tx_too_long++;
		q->st.tx_dropped++;
		return 0;
	}
	int hl = tern_xdp_frame_build(pkt->data, pkt->len, TX_PAYLOAD_OFF, &l2, &path, pkt->ecn,
				      q->ip_id++);
	if (hl < 0)
		return hl;
	struct xdp_desc *d = &q->tx_pend[q->tx_npend++];
	d->addr = base + TX_PAYLOAD_OFF - (uint64_t)hl;
	d->len = (uint32_t)hl + pkt->len;
	d->options = 0;
	q->tx_state[tx_index(x, base)] = TX_QUEUED;
	q->st.tx_pkts++;
	q->st.tx_bytes += pkt->len;
	return 0;
}

static int tx_ring_drained(const struct xq *q)
{
	return __atomic_load_n(q->tx.consumer, __ATOMIC_ACQUIRE) ==
	       __atomic_load_n(q->tx.producer, __ATOMIC_RELAXED);
}

/* Copy mode transmits inside sendto(), at most 32 descriptors a call
 * (the kernel's TX_BATCH_SIZE): kick until the ring is drained or the
 * device pushes back. Zero-copy drivers only need to be woken. */
static void tx_kick(struct xdp_dp *x, struct xq *q)
{
	unsigned max = q->zerocopy ? 1 : x->ring / 32 + 2;
	for (unsigned i = 0; i < max; i++) {
		if (!x->busy_poll && !xsk_ring_prod__needs_wakeup(&q->tx))
			return;
		if (!q->zerocopy && tx_ring_drained(q))
			return;
		q->xst.tx_kicks++;
		if (sendto(q->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 && errno != EAGAIN &&
		    errno != EBUSY && errno != ENOBUFS && errno != EINTR)
			return;
		tx_reap(x, q);
	}
}

static int xdp_tx_flush(struct tern_datapath *dp, unsigned qi)
{
	struct xdp_dp *x = to_x(dp);
	if (qi >= dp->n_queues)
		return TERN_ERR_INVAL;
	struct xq *q = &x->q[qi];
	for (unsigned i = 0; i < q->tx_nout; i++) {
		uint8_t s = q->tx_state[tx_index(x, q->tx_out[i])];
		if (s == TX_ALLOC || s == TX_DISCARD)
			tx_free(x, q, q->tx_out[i]);
	}
	q->tx_nout = 0;
	unsigned n = q->tx_npend;
	uint32_t idx;
	/* The TX ring has a slot for every TX frame, so this cannot fail. */
	if (n && xsk_ring_prod__reserve(&q->tx, n, &idx) == n) {
		for (unsigned i = 0; i < n; i++) {
			*xsk_ring_prod__tx_desc(&q->tx, idx + i) = q->tx_pend[i];
			q->tx_state[tx_index(x, q->tx_pend[i].addr & ~FRAME_MASK)] = TX_KERNEL;
		}
		xsk_ring_prod__submit(&q->tx, n);
	} else if (n) {
		for (unsigned i = 0; i < n; i++)
			tx_free(x, q, q->tx_pend[i].addr & ~FRAME_MASK);
		q->st.tx_dropped += n;
		n = 0;
	}
	q->tx_npend = 0;
	tx_kick(x, q);
	tx_reap(x, q);
	return (int)n;
}

static int xdp_handoff(struct tern_datapath *dp, unsigned q_from, unsigned q_to,
		       struct tern_dp_pkt *pkt)
{
	struct xdp_dp *x = to_x(dp);
	if (q_from >= dp->n_queues || q_to >= dp->n_queues || !pkt || !pkt->data)
		return TERN_ERR_INVAL;
	if (pkt->len > HO_DATA)
		return TERN_ERR_NOBUF;
	/* q_from's thread calls this, so its neighbour table is ours to read:
	 * the L2 source travels along, and q_to can answer the peer. */
	const struct neigh *n = neigh_find(&x->q[q_from], &pkt->path.remote);
	int rc = ho_push(&x->q[q_to].ho, pkt, n);
	if (rc == 0)
		x->q[q_from].st.handed_off++;
	return rc;
}

static void xdp_stats(struct tern_datapath *dp, unsigned qi, struct tern_dp_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (qi < dp->n_queues)
		*st = to_x(dp)->q[qi].st;
}

/* ---- teardown ------------------------------------------------------------------- */

static void queue_free(struct xq *q)
{
	if (q->xsk)
		xsk_socket__delete(q->xsk);
	if (q->umem)
		xsk_umem__delete(q->umem);
	if (q->area && q->area != MAP_FAILED)
		munmap(q->area, q->area_len);
	free(q->tx_free);
	free(q->tx_state);
	free(q->tx_out);
	free(q->tx_pend);
	free(q->neigh);
	free(q->ho.slots);
	free(q->ho.data);
}

static void xdp_close(struct tern_datapath *dp)
{
	struct xdp_dp *x = to_x(dp);
	if (!x)
		return;
	/* The link first: no frame is steered to a socket being torn down. */
	if (x->link)
		bpf_link__destroy(x->link);
	if (x->q)
		for (unsigned i = 0; i < dp->n_queues; i++)
			queue_free(&x->q[i]);
	free(x->q);
	tern_xdp__destroy(x->skel);
	free(x);
}

static const struct tern_datapath_ops xdp_ops = {
	.name = "xdp",
	.rx_burst = xdp_rx_burst,
	.rx_release = xdp_rx_release,
	.tx_alloc = xdp_tx_alloc,
	.tx_enqueue = xdp_tx_enqueue,
	.tx_flush = xdp_tx_flush,
	.handoff = xdp_handoff,
	.stats = xdp_stats,
	.close = xdp_close,
};


/* ---- setup ---------------------------------------------------------------------- */

static int check_config(const struct tern_xdp_config *cfg, char *err, size_t errlen)
{
	if (!cfg || !cfg->ifname || !cfg->ifname[0] || strlen(cfg->ifname) >= IF_NAMESIZE) {
		tern_errf(err, errlen, "no (or too long an) interface name given");
		return TERN_ERR_INVAL;
	}
	if (cfg->n_listen < 1 || cfg->n_listen > 2 ||
	    (cfg->n_listen == 2 && cfg->listen[0].family == cfg->listen[1].family)) {
		tern_errf(err, errlen, "give one listen address, or one IPv4 and one IPv6");
		return TERN_ERR_INVAL;
	}
	for (unsigned i = 0; i < cfg->n_listen; i++) {
		const struct tern_addr *a = &cfg->listen[i];
		if ((a->family != 4 && a->family != 6) || a->port == 0) {
			tern_errf(err, errlen, "listen address %u: family 4 or 6 and a port are required",
				i);
			return TERN_ERR_INVAL;
		}
		if ((uint32_t)a->port + (cfg->n_ports ? cfg->n_ports : 1) > 65536) {
			tern_errf(err, errlen, "listen ports %u..%u: past 65535", a->port,
				  a->port + cfg->n_ports - 1);
			return TERN_ERR_INVAL;
		}
	}
	if (cfg->n_queues > TERN_XDP_MAX_QUEUES) {
		tern_errf(err, errlen, "%u queues: at most %u", cfg->n_queues, TERN_XDP_MAX_QUEUES);
		return TERN_ERR_INVAL;
	}
	unsigned r = cfg->ring_size;
	if (r && (r < 64 || r > 16384 || (r & (r - 1)))) {
		tern_errf(err, errlen, "ring size %u: a power of 2 from 64 to 16384", r);
		return TERN_ERR_INVAL;
	}
	return 0;
}

static int iface_query(struct xdp_dp *x, char *err, size_t errlen)
{
	x->ifindex = (int)if_nametoindex(x->ifname);
	if (!x->ifindex) {
		tern_errf(err, errlen, "no interface %s: %s", x->ifname, strerror(errno));
		return TERN_ERR_INVAL;
	}
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		tern_errf(err, errlen, "socket: %s", strerror(errno));
		return TERN_ERR_IO;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, x->ifname, strlen(x->ifname));
	int rc = ioctl(fd, SIOCGIFHWADDR, &ifr);
	if (rc == 0 && ifr.ifr_hwaddr.sa_family != 1 /* ARPHRD_ETHER */) {
		close(fd);
		tern_errf(err, errlen, "%s is not an Ethernet interface", x->ifname);
		return TERN_ERR_INVAL;
	}
	memcpy(x->mac, ifr.ifr_hwaddr.sa_data, 6);
	if (rc == 0)
		rc = ioctl(fd, SIOCGIFMTU, &ifr);
	int e = errno;
	close(fd);
	if (rc) {
		tern_errf(err, errlen, "cannot read %s's MAC address and MTU: %s", x->ifname, strerror(e));
		return TERN_ERR_IO;
	}
	x->mtu = (unsigned)ifr.ifr_mtu;
	if (x->mtu + 18 > RX_MAX_FRAME) {
		tern_errf(err, errlen, "%s: MTU %u does not fit %u-byte UMEM frames", x->ifname, x->mtu,
			FRAME_SIZE);
		return TERN_ERR_INVAL;
	}
	return 0;
}

/* The interface's first address of a family, for replies when the listen
 * address is a wildcard and the caller names no source; IPv6 prefers a
 * non-link-local one. */
static void iface_addr(const char *ifname, int fam, uint8_t *ip)
{
	struct ifaddrs *ifa, *i;
	if (getifaddrs(&ifa))
		return;
	int found = 0;
	for (i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || strcmp(i->ifa_name, ifname) != 0)
			continue;
		if (fam == 4 && i->ifa_addr->sa_family == AF_INET) {
			memcpy(ip, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, 4);
			break;
		}
		if (fam == 6 && i->ifa_addr->sa_family == AF_INET6) {
			const uint8_t *a = ((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr.s6_addr;
			int ll = a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
			if (!found || !ll)
				memcpy(ip, a, 16);
			found = 1;
			if (!ll)
				break;
		}
	}
	freeifaddrs(ifa);
}

static void set_sources(struct xdp_dp *x, const struct tern_xdp_config *cfg)
{
	for (unsigned i = 0; i < cfg->n_listen; i++) {
		const struct tern_addr *a = &cfg->listen[i];
		struct tern_addr *src = a->family == 4 ? &x->src4 : &x->src6;
		*src = *a;
		if (ip_is_zero(a->ip, a->family))
			iface_addr(x->ifname, a->family, src->ip);
	}
}

static int prog_load(struct xdp_dp *x, const struct tern_xdp_config *cfg, char *err, size_t errlen)
{
	x->skel = tern_xdp__open();
	if (!x->skel) {
		tern_errf(err, errlen, "cannot open the XDP program: %s", strerror(errno));
		return TERN_ERR_IO;
	}
	struct tern_xdp__rodata *ro = x->skel->rodata;
	ro->cfg_n_queues = x->dp.n_queues;
	ro->cfg_n_ports = (uint16_t)(cfg->n_ports ? cfg->n_ports : 1);
	for (unsigned i = 0; i < cfg->n_listen; i++) {
		const struct tern_addr *a = &cfg->listen[i];
		if (a->family == 4) {
			ro->cfg_port4 = htons(a->port);
			memcpy(&ro->cfg_addr4, a->ip, 4);
		} else {
			ro->cfg_port6 = htons(a->port);
			ro->cfg_any6 = (uint8_t)ip_is_zero(a->ip, 6);
			memcpy(ro->cfg_addr6, a->ip, 16);
		}
	}
	int rc = bpf_map__set_max_entries(x->skel->maps.xsks, x->dp.n_queues);
	if (rc == 0)
		rc = tern_xdp__load(x->skel);
	if (rc) {
		tern_errf(err, errlen, "cannot load the XDP program: %s", strerror(-rc));
		return TERN_ERR_IO;
	}
	return 0;
}

/* What is attached to the interface now: id 0 when nothing is. */
static int xdp_query(const struct xdp_dp *x, uint32_t *id, uint8_t *mode)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, qo);
	int rc = bpf_xdp_query(x->ifindex, 0, &qo);
	if (rc)
		return rc;
	*mode = qo.attach_mode;
	*id = qo.prog_id ? qo.prog_id : qo.drv_prog_id ? qo.drv_prog_id : qo.skb_prog_id;
	return 0;
}

/* 1 when a bpf_link (some process's, alive) holds the interface's XDP
 * program: netlink cannot detach that, and its owner may be bound to the
 * queues too, so replacing is refused up front. */
static int held_by_link(int ifindex)
{
	uint32_t id = 0;
	while (bpf_link_get_next_id(id, &id) == 0) {
		int fd = bpf_link_get_fd_by_id(id);
		if (fd < 0)
			continue;
		struct bpf_link_info li;
		uint32_t len = sizeof(li);
		memset(&li, 0, sizeof(li));
		int rc = bpf_obj_get_info_by_fd(fd, &li, &len);
		close(fd);
		if (rc == 0 && li.type == BPF_LINK_TYPE_XDP && (int)li.xdp.ifindex == ifindex)
			return 1;
	}
	return 0;
}

static int check_existing(const struct xdp_dp *x, char *err, size_t errlen)
{
	uint32_t id = 0;
	uint8_t mode = 0;
	int rc = xdp_query(x, &id, &mode);
	if (rc) {
		tern_errf(err, errlen, "cannot query XDP on %s: %s", x->ifname, strerror(-rc));
		return TERN_ERR_IO;
	}
	if (!id)
		return 0;
	if (!x->replace) {
		tern_errf(err, errlen,
			"%s already has an XDP program (id %u): stop its owner or ask to replace it",
			x->ifname, id);
		return TERN_ERR_STATE;
	}
	if (held_by_link(x->ifindex)) {
		tern_errf(err, errlen,
			"%s's XDP program %u is held by another process's bpf_link: it cannot be replaced",
			x->ifname, id);
		return TERN_ERR_STATE;
	}
	if (mode == XDP_ATTACHED_MULTI || mode == XDP_ATTACHED_HW) {
		tern_errf(err, errlen, "%s has XDP programs in several or offloaded modes: detach them",
			x->ifname);
		return TERN_ERR_STATE;
	}
	return 0;
}

/* Netlink cannot hand an attachment over to a bpf_link, so replacing is
 * detach-then-attach; XDP_FLAGS_REPLACE makes the detach remove only the
 * program we looked at, never one attached in between. */
static int replace_existing(struct xdp_dp *x, char *err, size_t errlen)
{
	uint32_t id = 0;
	uint8_t mode = 0;
	if (xdp_query(x, &id, &mode) || !id)
		return 0;
	int fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0) {
		tern_errf(err, errlen, "cannot open %s's XDP program %u: %s", x->ifname, id,
			strerror(errno));
		return TERN_ERR_IO;
	}
	LIBBPF_OPTS(bpf_xdp_attach_opts, ao, .old_prog_fd = fd);
	uint32_t flags = XDP_FLAGS_REPLACE |
			 (mode == XDP_ATTACHED_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE);
	int rc = bpf_xdp_detach(x->ifindex, flags, &ao);
	close(fd);
	if (rc == -EBUSY) {
		tern_errf(err, errlen,
			"%s's XDP program %u is held by another process's bpf_link: it cannot be replaced",
			x->ifname, id);
		return TERN_ERR_STATE;
	}
	if (rc) {
		tern_errf(err, errlen, "cannot detach %s's XDP program %u: %s", x->ifname, id,
			strerror(-rc));
		return TERN_ERR_IO;
	}
	return 0;
}

static int queue_alloc(struct xdp_dp *x, struct xq *q)
{
	unsigned r = x->ring;
	q->area_len = (size_t)2 * r * FRAME_SIZE;
	q->area = mmap(NULL, q->area_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (q->area == MAP_FAILED) {
		q->area = NULL;
		return TERN_ERR_NOMEM;
	}
	q->tx_free = calloc(r, sizeof(*q->tx_free));
	q->tx_state = calloc(r, sizeof(*q->tx_state));
	q->tx_out = calloc(r, sizeof(*q->tx_out));
	q->tx_pend = calloc(r, sizeof(*q->tx_pend));
	q->neigh = calloc(NEIGH_SLOTS, sizeof(*q->neigh));
	q->ho.slots = calloc(HO_SLOTS, sizeof(*q->ho.slots));
	q->ho.data = calloc(HO_SLOTS, HO_DATA);
	if (!q->tx_free || !q->tx_state || !q->tx_out || !q->tx_pend || !q->neigh ||
	    !q->ho.slots || !q->ho.data)
		return TERN_ERR_NOMEM;
	for (size_t i = 0; i < HO_SLOTS; i++)
		atomic_init(&q->ho.slots[i].seq, i);
	atomic_init(&q->ho.enq, 0);
	for (unsigned i = 0; i < r; i++)
		q->tx_free[q->tx_nfree++] = (uint64_t)(2 * r - 1 - i) * FRAME_SIZE;
	return 0;
}

static int xsk_bind(struct xdp_dp *x, struct xq *q, unsigned qi, uint16_t mode)
{
	struct xsk_umem_config uc = {
		.fill_size = x->ring,
		.comp_size = x->ring,
		.frame_size = FRAME_SIZE,
		.frame_headroom = 0,
		.flags = 0,
	};
	int rc = xsk_umem__create(&q->umem, q->area, q->area_len, &q->fill, &q->comp, &uc);
	if (rc)
		return rc;
	/* Our own program does the steering: libxdp must not load its own. */
	struct xsk_socket_config sc = {
		.rx_size = x->ring,
		.tx_size = x->ring,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.bind_flags = mode | XDP_USE_NEED_WAKEUP,
	};
	rc = xsk_socket__create(&q->xsk, x->ifname, qi, q->umem, &q->rx, &q->tx, &sc);
	if (rc) {
		q->xsk = NULL;
		xsk_umem__delete(q->umem);
		q->umem = NULL;
	}
	return rc;
}

/* A socket closed a moment ago may still hold the queue (the kernel frees
 * its buffer pool from a work queue), so EBUSY is retried for a while. */
static int xsk_bind_retry(struct xdp_dp *x, struct xq *q, unsigned qi, uint16_t mode)
{
	for (int i = 0;; i++) {
		int rc = xsk_bind(x, q, qi, mode);
		if (rc != -EBUSY || i == BIND_RETRIES)
			return rc;
		usleep(BIND_RETRY_US);
	}
}

static int busy_poll_on(int fd)
{
	int one = 1, usec = BUSY_POLL_USEC, budget = TERN_DP_BURST;
	if (setsockopt(fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &usec, sizeof(usec)) ||
	    setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, &budget, sizeof(budget)))
		return -errno;
	return 0;
}

/* Binds queue qi, zero-copy first when allowed; *zc_err gets why zero-copy
 * was not used (0 when it is). */
static int queue_open(struct xdp_dp *x, unsigned qi, int *zc_err, char *err, size_t errlen)
{
	struct xq *q = &x->q[qi];
	if (queue_alloc(x, q) < 0) {
		tern_errf(err, errlen, "queue %u: out of memory", qi);
		return TERN_ERR_NOMEM;
	}
	int rc = -EPERM;
	if (!x->force_copy)
		rc = xsk_bind_retry(x, q, qi, XDP_ZEROCOPY);
	*zc_err = -rc;
	q->zerocopy = rc == 0;
	if (rc && rc != -EBUSY)
		rc = xsk_bind_retry(x, q, qi, XDP_COPY);
	if (rc) {
		tern_errf(err, errlen, "cannot bind an AF_XDP socket to %s queue %u: %s", x->ifname,
			qi, strerror(-rc));
		return TERN_ERR_IO;
	}
	q->fd = xsk_socket__fd(q->xsk);
	uint64_t addrs[TERN_DP_BURST];
	for (unsigned i = 0; i < x->ring; i += TERN_DP_BURST) {
		for (unsigned k = 0; k < TERN_DP_BURST; k++)
			addrs[k] = (uint64_t)(i + k) * FRAME_SIZE;
		fill_put(q, addrs, TERN_DP_BURST);
	}
	if (x->busy_poll && (rc = busy_poll_on(q->fd)) < 0) {
		tern_errf(err, errlen, "busy poll on %s queue %u: %s", x->ifname, qi, strerror(-rc));
		return TERN_ERR_IO;
	}
	rc = xsk_socket__update_xskmap(q->xsk, bpf_map__fd(x->skel->maps.xsks));
	if (rc) {
		tern_errf(err, errlen, "cannot add queue %u's socket to the XSKMAP: %s", qi,
			strerror(-rc));
		return TERN_ERR_IO;
	}
	return 0;
}

static int prog_attach(struct xdp_dp *x, char *err, size_t errlen)
{
	/* A bpf_link, not netlink: the kernel detaches the program when the
	 * last reference (our fd) goes, so a killed process leaves nothing. */
	x->link = bpf_program__attach_xdp(x->skel->progs.tern_xdp_prog, x->ifindex);
	if (!x->link) {
		int e = errno;
		tern_errf(err, errlen, "cannot attach the XDP program to %s: %s", x->ifname,
			strerror(e));
		return e == EBUSY || e == EEXIST ? TERN_ERR_STATE : TERN_ERR_IO;
	}
	uint32_t id = 0;
	uint8_t mode = 0;
	if (xdp_query(x, &id, &mode) == 0)
		x->native = mode == XDP_ATTACHED_DRV;
	return 0;
}

static void log_setup(const struct xdp_dp *x, const struct tern_xdp_config *cfg, int zc_err)
{
	char line[256];
	unsigned zc = 0;
	for (unsigned i = 0; i < x->dp.n_queues; i++)
		zc += (unsigned)x->q[i].zerocopy;
	char why[96] = "";
	if (zc < x->dp.n_queues)
		snprintf(why, sizeof(why), " (zero-copy: %s)",
			 x->force_copy ? "not asked for" : strerror(zc_err));
	snprintf(line, sizeof(line), "xdp: %s: program attached in %s mode; %u AF_XDP socket%s, %s%s; busy poll %s",
		 x->ifname, x->native ? "native" : "generic", x->dp.n_queues,
		 x->dp.n_queues == 1 ? "" : "s",
		 zc == x->dp.n_queues ? "zero-copy" : zc ? "partly zero-copy" : "copy mode", why,
		 x->busy_poll ? "on" : "off");
	if (cfg->log)
		cfg->log(cfg->log_ctx, line);
	else
		fprintf(stderr, "%s\n", line);
}

static int xdp_setup(struct xdp_dp *x, const struct tern_xdp_config *cfg, char *err, size_t errlen)
{
	int rc, zc_err = 0;
	if ((rc = iface_query(x, err, errlen)) < 0 || (rc = check_existing(x, err, errlen)) < 0)
		return rc;
	set_sources(x, cfg);
	if ((rc = prog_load(x, cfg, err, errlen)) < 0)
		return rc;
	for (unsigned i = 0; i < x->dp.n_queues; i++) {
		int e = 0;
		if ((rc = queue_open(x, i, &e, err, errlen)) < 0)
			return rc;
		if (e)
			zc_err = e;
	}
	if ((rc = replace_existing(x, err, errlen)) < 0 || (rc = prog_attach(x, err, errlen)) < 0)
		return rc;
	log_setup(x, cfg, zc_err);
	return 0;
}

int tern_xdp_open(struct tern_datapath **dp, const struct tern_xdp_config *cfg, char *err,
		  size_t errlen)
{
	if (!dp) {
		tern_errf(err, errlen, "no datapath pointer given");
		return TERN_ERR_INVAL;
	}
	*dp = NULL;
	int rc = check_config(cfg, err, errlen);
	if (rc < 0)
		return rc;
	struct xdp_dp *x = calloc(1, sizeof(*x));
	unsigned nq = cfg->n_queues ? cfg->n_queues : 1;
	if (!x || !(x->q = calloc(nq, sizeof(*x->q)))) {
		free(x);
		tern_errf(err, errlen, "out of memory");
		return TERN_ERR_NOMEM;
	}
	x->dp.ops = &xdp_ops;
	x->dp.n_queues = nq;
	x->ring = cfg->ring_size ? cfg->ring_size : DEFAULT_RING;
	x->busy_poll = cfg->busy_poll;
	x->force_copy = cfg->force_copy;
	x->replace = cfg->replace;
	x->has_peer_mac = cfg->has_peer_mac;
	memcpy(x->peer_mac, cfg->peer_mac, 6);
	memcpy(x->ifname, cfg->ifname, strlen(cfg->ifname) + 1);
	for (unsigned i = 0; i < nq; i++)
		x->q[i].fd = -1;
	rc = xdp_setup(x, cfg, err, errlen);
	if (rc < 0) {
		xdp_close(&x->dp);
		return rc;
	}
	*dp = &x->dp;
	return 0;
}

/* ---- extras -------------------------------------------------------------------- */

int tern_xdp_fd(struct tern_datapath *dp, unsigned q)
{
	return dp && q < dp->n_queues ? to_x(dp)->q[q].fd : -1;
}

int tern_xdp_wait(struct tern_datapath *dp, unsigned qi, int64_t timeout_ns)
{
	if (!dp || qi >= dp->n_queues)
		return TERN_ERR_INVAL;
	struct xq *q = &to_x(dp)->q[qi];
	if (ho_ready(&q->ho) || xsk_cons_nb_avail(&q->rx, 1))
		return 1;
	struct pollfd pfd = {.fd = q->fd, .events = POLLIN};
	int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
	int rc = poll(&pfd, 1, ms);
	if (rc < 0)
		return errno == EINTR ? 0 : TERN_ERR_IO;
	return rc > 0 || ho_ready(&q->ho);
}

void tern_xdp_qstats(struct tern_datapath *dp, unsigned q, struct tern_xdp_qstats *st)
{
	memset(st, 0, sizeof(*st));
	if (dp && q < dp->n_queues)
		*st = to_x(dp)->q[q].xst;
}

int tern_xdp_prog_stats(struct tern_datapath *dp, struct tern_xdp_prog_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!dp)
		return TERN_ERR_INVAL;
	int ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0)
		return TERN_ERR_IO;
	uint64_t *v = calloc((size_t)ncpu, sizeof(*v));
	uint64_t sum[TERN_XDP_CNT_MAX] = {0};
	if (!v)
		return TERN_ERR_NOMEM;
	int rc = 0;
	for (uint32_t k = 0; k < TERN_XDP_CNT_MAX && rc == 0; k++) {
		rc = bpf_map__lookup_elem(to_x(dp)->skel->maps.counters, &k, sizeof(k), v,
					  (size_t)ncpu * sizeof(*v), 0);
		for (int c = 0; c < ncpu && rc == 0; c++)
			sum[k] += v[c];
	}
	free(v);
	if (rc)
		return TERN_ERR_IO;
	st->redirected = sum[TERN_XDP_CNT_REDIRECTED];
	st->no_socket = sum[TERN_XDP_CNT_NO_SOCKET];
	st->drop_short_initial = sum[TERN_XDP_CNT_DROP_SHORT_INITIAL];
	st->drop_fixed_bit = sum[TERN_XDP_CNT_DROP_FIXED_BIT];
	st->drop_empty = sum[TERN_XDP_CNT_DROP_EMPTY];
	st->passed = sum[TERN_XDP_CNT_PASSED];
	return 0;
}

void tern_xdp_info(struct tern_datapath *dp, struct tern_xdp_info *info)
{
	memset(info, 0, sizeof(*info));
	if (!dp)
		return;
	struct xdp_dp *x = to_x(dp);
	struct bpf_prog_info pi;
	uint32_t len = sizeof(pi);
	memset(&pi, 0, sizeof(pi));
	if (bpf_obj_get_info_by_fd(bpf_program__fd(x->skel->progs.tern_xdp_prog), &pi, &len) == 0)
		info->prog_id = pi.id;
	info->ifindex = x->ifindex;
	info->native = x->native;
	info->zerocopy = 1;
	for (unsigned i = 0; i < dp->n_queues; i++)
		info->zerocopy &= x->q[i].zerocopy;
	info->mtu = x->mtu;
	memcpy(info->mac, x->mac, 6);
}
