/* tern-bench: a pool of client connections on one datapath queue, driven
 * sans-IO (include/tern/conn.h) without the endpoint's linear walks:
 *
 * - dispatch: every CID we issue is slot(4) | generation(2) | random(2),
 *   so a received datagram finds its connection in O(1) from its DCID,
 *   and a datagram for a freed (abandoned) connection is counted as stray;
 * - sending: only connections that received, timed out or were given work
 *   (the dirty list) are asked for datagrams;
 * - timers: a binary heap on each connection's next timeout.
 *
 * A load generator must cost less per connection than the server it
 * measures, or it would measure itself. */
#include <stdlib.h>
#include <string.h>

#include "lg.h"
#include "tern/app.h"
#include "tern/sock.h"
#include "tern/tls.h"
#include "util.h"

#define LG_CID_LEN 8
#define NO_HEAP SIZE_MAX
#define MAX_RX_BURSTS 16
#define MAX_WAIT_NS 100000000

/* ---- the timer heap ------------------------------------------------------------- */

static void heap_swap(struct lg_pool *p, size_t a, size_t b)
{
	struct lg_conn *t = p->heap[a];
	p->heap[a] = p->heap[b];
	p->heap[b] = t;
	p->heap[a]->heap_idx = a;
	p->heap[b]->heap_idx = b;
}

static void heap_fix(struct lg_pool *p, size_t i)
{
	while (i > 0 && p->heap[(i - 1) / 2]->timeout > p->heap[i]->timeout) {
		heap_swap(p, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < p->heap_n && p->heap[l]->timeout < p->heap[m]->timeout)
			m = l;
		if (r < p->heap_n && p->heap[r]->timeout < p->heap[m]->timeout)
			m = r;
		if (m == i)
			return;
		heap_swap(p, i, m);
		i = m;
	}
}

static void heap_remove(struct lg_pool *p, struct lg_conn *lc)
{
	size_t i = lc->heap_idx;
	if (i == NO_HEAP)
		return;
	lc->heap_idx = NO_HEAP;
	if (i != --p->heap_n) {
		p->heap[i] = p->heap[p->heap_n];
		p->heap[i]->heap_idx = i;
		heap_fix(p, i);
	}
}

static void heap_set(struct lg_pool *p, struct lg_conn *lc, uint64_t t)
{
	if (t == UINT64_MAX) {
		heap_remove(p, lc);
		return;
	}
	lc->timeout = t;
	if (lc->heap_idx == NO_HEAP) {
		lc->heap_idx = p->heap_n;
		p->heap[p->heap_n++] = lc;
	}
	heap_fix(p, lc->heap_idx);
}

/* ---- connection callbacks ------------------------------------------------------- */

#define LC(u) ((struct lg_conn *)(u))

static void cb_established(struct tern_conn *c, void *user)
{
	struct lg_conn *lc = LC(user);
	glue_conn_callbacks.on_established(c, user);
	lc->established = 1;
	if (lc->pool->hooks->established)
		lc->pool->hooks->established(lc->pool, lc);
	lg_pool_mark(lc->pool, lc);
}

static void cb_close(struct tern_conn *c, void *user, const struct tern_close_info *ci)
{
	struct lg_conn *lc = LC(user);
	(void)c;
	if (lc->closed)
		return;
	lc->closed = 1;
	if (lc->pool->hooks->closed)
		lc->pool->hooks->closed(lc->pool, lc, ci);
}

static void gen_cid(void *ctx, struct tern_cid *cid)
{
	struct lg_conn *lc = ctx;
	cid->len = LG_CID_LEN;
	tern_put_u32(cid->bytes, lc->slot);
	tern_put_u16(cid->bytes + 4, lc->gen);
	os_random(NULL, cid->bytes + 6, LG_CID_LEN - 6);
}

/* ---- setup ------------------------------------------------------------------------- */

static int pool_tls(struct lg_pool *p, const struct lg_opts *o)
{
	const char *alpn[] = {tern_app_alpn(p->app_kind)};
	char err[256] = "unknown error";
	uint8_t *ca = NULL;
	size_t ca_len = 0;
	if (o->ca)
		ca = read_small_file("--ca", o->ca, 4 << 20, &ca_len);
	int rc = tern_tls_ctx_new_client(&p->tls, alpn, 1, o->ca != NULL, ca, ca_len, err, sizeof(err));
	free(ca);
	if (rc < 0) {
		fprintf(stderr, "tern-bench: TLS setup failed: %s\n", err);
		return -1;
	}
	return 0;
}

static void pool_config(struct lg_pool *p, const struct lg_opts *o)
{
	struct tern_conn_config *c = &p->cfg;
	tern_conn_config_init(c, 0);
	c->tls = p->tls;
	c->server_name = o->sni ? o->sni : "localhost";
	c->rand = (struct tern_rand){.fn = os_random};
	c->scid_len = LG_CID_LEN;
	c->gen_cid = gen_cid;
	c->max_datagram = TERN_DP_MAX_PAYLOAD;
	c->tparams.max_udp_payload_size = TERN_DP_MAX_PAYLOAD;
	c->tparams.present |= TERN_TP_HAS_MAX_UDP_PAYLOAD_SIZE;
	/* large windows: the client must never be what limits goodput */
	c->tparams.initial_max_data = 64 << 20;
	c->tparams.initial_max_stream_data_bidi_local = 16 << 20;
	c->tparams.initial_max_streams_bidi = 1024;
	c->handshake_timeout_ns = o->hs_timeout_ms * 1000000;
	c->no_pacing = 1; /* the client sends little but ACKs */
	p->cb = glue_conn_callbacks;
	p->cb.on_established = cb_established;
	p->cb.on_close = cb_close;
	c->cb = &p->cb;
}

int lg_pool_init(struct lg_pool *p, const struct lg_opts *o, uint32_t n_slots, int with_app,
		 const struct tern_app_callbacks *app_cb, const struct lg_pool_hooks *hooks, void *user)
{
	memset(p, 0, sizeof(*p));
	p->o = o;
	p->hooks = hooks;
	p->user = user;
	p->with_app = with_app;
	p->app_kind = o->perf ? TERN_APP_PERF_CLIENT : TERN_APP_H3_CLIENT;
	p->app_cb = app_cb;
	if (lg_dp_open(&p->dp, o, 1) < 0 || pool_tls(p, o) < 0)
		return -1;
	pool_config(p, o);
	p->path.local = p->dp.local;
	p->path.remote = o->target;
	tern_sock_addr_format(&o->target, p->authority, sizeof(p->authority));
	p->n_slots = n_slots;
	p->slots = calloc(n_slots, sizeof(*p->slots));
	p->free_slots = calloc(n_slots, sizeof(*p->free_slots));
	p->heap = calloc(n_slots, sizeof(*p->heap));
	if (!p->slots || !p->free_slots || !p->heap) {
		fprintf(stderr, "tern-bench: out of memory for %u connections\n", n_slots);
		return -1;
	}
	for (uint32_t i = 0; i < n_slots; i++) {
		p->slots[i].slot = i;
		p->slots[i].pool = p;
		p->slots[i].heap_idx = NO_HEAP;
		p->free_slots[p->n_free++] = n_slots - 1 - i;
	}
	return 0;
}

uint32_t lg_pool_used(const struct lg_pool *p)
{
	return p->n_slots - p->n_free;
}

/* ---- connections ----------------------------------------------------------------------- */

struct lg_conn *lg_pool_connect(struct lg_pool *p)
{
	if (!p->n_free)
		return NULL;
	struct lg_conn *lc = &p->slots[p->free_slots[p->n_free - 1]];
	struct lg_req *req = lc->req;
	uint16_t gen = (uint16_t)(lc->gen + 1);
	uint32_t slot = lc->slot;
	memset(lc, 0, sizeof(*lc));
	lc->slot = slot;
	lc->gen = gen;
	lc->pool = p;
	lc->req = req;
	lc->heap_idx = NO_HEAP;
	lc->g.now = &p->now;
	lc->g.user = lc;
	lc->t_start = p->now;
	struct tern_conn_config cfg = p->cfg;
	cfg.gen_cid_ctx = lc;
	cfg.user = &lc->g;
	if (p->with_app && glue_app_new(&lc->g, p->app_kind, p->app_cb, lc) < 0)
		return NULL;
	if (tern_conn_new_client(&lc->g.conn, &cfg, &p->path, p->now) < 0) {
		tern_app_free(lc->g.app);
		lc->g.app = NULL;
		return NULL;
	}
	p->n_free--;
	lc->in_use = 1;
	lg_pool_mark(p, lc);
	return lc;
}

void lg_pool_mark(struct lg_pool *p, struct lg_conn *lc)
{
	if (lc->dirty || lc->freeing || !lc->in_use)
		return;
	lc->dirty = 1;
	lc->dirty_next = NULL;
	if (p->dirty_tail)
		p->dirty_tail->dirty_next = lc;
	else
		p->dirty_head = lc;
	p->dirty_tail = lc;
}

/* Only called on a connection just taken off the dirty list, so no list
 * still points at it when its slot is reused. */
static void conn_free(struct lg_pool *p, struct lg_conn *lc)
{
	lc->freeing = 1;
	if (p->hooks->freeing)
		p->hooks->freeing(p, lc);
	heap_remove(p, lc);
	if (lc->g.app)
		tern_app_free(lc->g.app);
	lc->g.app = NULL;
	tern_conn_free(lc->g.conn);
	lc->g.conn = NULL;
	lc->in_use = 0;
	p->free_slots[p->n_free++] = lc->slot;
}

static void flush(struct lg_pool *p)
{
	p->dp.dp->ops->tx_flush(p->dp.dp, 0);
}

/* Moves the connection's datagrams into the datapath. 1 when it must be
 * freed now (abandoned after its first datagram). */
static int conn_send(struct lg_pool *p, struct lg_conn *lc)
{
	struct tern_datapath *dp = p->dp.dp;
	struct tern_dp_pkt pkt;
	for (;;) {
		if (dp->ops->tx_alloc(dp, 0, &pkt, TERN_DP_MAX_PAYLOAD) < 0) {
			flush(p); /* every buffer is free again after a flush */
			if (dp->ops->tx_alloc(dp, 0, &pkt, TERN_DP_MAX_PAYLOAD) < 0)
				return 0;
		}
		int n = tern_conn_send(lc->g.conn, pkt.data, pkt.cap, p->now);
		if (n <= 0)
			return 0;
		pkt.len = (uint32_t)n;
		pkt.path = p->path;
		pkt.path.local.family = 0; /* the datapath's own address: bound, or --local */
		pkt.ecn = (uint8_t)tern_conn_send_ecn(lc->g.conn);
		if (dp->ops->tx_enqueue(dp, 0, &pkt) == 0)
			p->tx_datagrams++;
		if (lc->abandon_after_first)
			return 1;
	}
}

static void dirty_pass(struct lg_pool *p)
{
	struct lg_conn *lc;
	while ((lc = p->dirty_head)) {
		p->dirty_head = lc->dirty_next;
		if (!p->dirty_head)
			p->dirty_tail = NULL;
		lc->dirty = 0;
		if (!lc->in_use)
			continue;
		if (lc->abandon) {
			conn_free(p, lc);
			continue;
		}
		/* refill may decide the connection is spent: close it now */
		if (p->hooks->refill && !lc->want_close && lc->established)
			p->hooks->refill(p, lc);
		if (lc->want_close && tern_conn_state(lc->g.conn) < TERN_CONN_CLOSING)
			tern_conn_close(lc->g.conn, 1, p->o->perf ? TERN_PERF_NO_ERROR : TERN_H3_NO_ERROR,
					"", p->now);
		if (conn_send(p, lc)) {
			conn_free(p, lc);
			continue;
		}
		/* a load generator need not linger in closing or draining
		 * (RFC 9000 §10.2 protects the peer, which does) */
		if (tern_conn_state(lc->g.conn) >= TERN_CONN_CLOSING) {
			if (!lc->closed) {
				struct tern_close_info ci = *tern_conn_close_info(lc->g.conn);
				cb_close(lc->g.conn, &lc->g, &ci);
			}
			conn_free(p, lc);
			continue;
		}
		heap_set(p, lc, tern_conn_next_timeout(lc->g.conn));
	}
}

/* The connection a datagram's DCID names, or NULL. */
static struct lg_conn *route(struct lg_pool *p, const uint8_t *d, size_t len)
{
	const uint8_t *cid;
	if (len < 1 + LG_CID_LEN)
		return NULL;
	if (d[0] & 0x80) {
		if (len < 6 + LG_CID_LEN || d[5] != LG_CID_LEN)
			return NULL;
		cid = d + 6;
	} else {
		cid = d + 1;
	}
	uint32_t slot = tern_get_u32(cid);
	if (slot >= p->n_slots)
		return NULL;
	struct lg_conn *lc = &p->slots[slot];
	return lc->in_use && lc->gen == tern_get_u16(cid + 4) ? lc : NULL;
}

static int rx_burst(struct lg_pool *p)
{
	struct tern_datapath *dp = p->dp.dp;
	struct tern_dp_pkt pkts[TERN_DP_BURST];
	int n = dp->ops->rx_burst(dp, 0, pkts, TERN_DP_BURST);
	if (n <= 0)
		return 0;
	for (int i = 0; i < n; i++) {
		struct lg_conn *lc = route(p, pkts[i].data, pkts[i].len);
		p->rx_datagrams++;
		if (!lc) {
			p->stray++;
			if (p->hooks->stray)
				p->hooks->stray(p, pkts[i].len);
			continue;
		}
		tern_conn_recv_ecn(lc->g.conn, pkts[i].data, pkts[i].len, &pkts[i].path, pkts[i].ecn,
				   p->now);
		lg_pool_mark(p, lc);
	}
	dp->ops->rx_release(dp, 0, pkts, (unsigned)n);
	return n;
}

static void timers(struct lg_pool *p)
{
	while (p->heap_n && p->heap[0]->timeout <= p->now) {
		struct lg_conn *lc = p->heap[0];
		heap_remove(p, lc);
		tern_conn_handle_timeout(lc->g.conn, p->now);
		lg_pool_mark(p, lc);
	}
}

void lg_pool_step(struct lg_pool *p, uint64_t deadline)
{
	p->now = lg_now();
	dirty_pass(p);
	flush(p);
	uint64_t until = deadline;
	if (p->heap_n && p->heap[0]->timeout < until)
		until = p->heap[0]->timeout;
	int64_t wait = until > p->now ? (int64_t)(until - p->now) : 0;
	lg_dp_wait(&p->dp, 1, wait > MAX_WAIT_NS ? MAX_WAIT_NS : wait);
	/* ACK what arrived after every burst, as a server would see a
	 * real client do */
	for (int b = 0; b < MAX_RX_BURSTS; b++) {
		p->now = lg_now();
		if (!rx_burst(p))
			break;
		dirty_pass(p);
	}
	p->now = lg_now();
	timers(p);
	dirty_pass(p);
	flush(p);
}

void lg_pool_close_all(struct lg_pool *p)
{
	p->now = lg_now();
	for (uint32_t i = 0; i < p->n_slots; i++) {
		struct lg_conn *lc = &p->slots[i];
		if (!lc->in_use)
			continue;
		/* a handshake in progress is dropped: nothing useful to say */
		if (!lc->established)
			lc->abandon = 1;
		lc->want_close = 1;
		lg_pool_mark(p, lc);
	}
	dirty_pass(p);
	flush(p);
}

void lg_pool_free(struct lg_pool *p)
{
	for (uint32_t i = 0; p->slots && i < p->n_slots; i++) {
		struct lg_conn *lc = &p->slots[i];
		if (lc->in_use) {
			lc->dirty = 0;
			conn_free(p, lc);
		}
		free(lc->req);
	}
	free(p->slots);
	free(p->free_slots);
	free(p->heap);
	if (p->tls)
		tern_tls_ctx_free(p->tls);
	lg_dp_close(&p->dp);
}
