/* One worker's endpoint shard: dispatch by DCID, admission, Version
 * Negotiation, and the stateless-reset responder (RFC 9000 §5.2, §6,
 * §10.3). Connections are kept on a list; sending and timers walk it. A
 * timer wheel and an active-connection queue are the fast-path issue's.
 *
 * Two keyed tables: CIDs to connections (dispatch), and remote addresses
 * to established connections, because a stateless reset carries no CID of
 * ours and RFC 9000 §10.3.1 matches it against the tokens "associated with
 * the remote address on which the datagram was received". */
#include <stdlib.h>

#include "tern/crypto.h"
#include "tern/endpoint.h"
#include "tern/packet.h"

#define MIN_INITIAL_DATAGRAM 1200
#define MIN_CLIENT_DCID 8 /* RFC 9000 §7.2 */

struct ep_conn {
	struct tern_endpoint *ep;
	struct tern_conn *conn;
	void *app;
	struct tern_cid odcid; /* routes the client's Initials until it switches */
	struct tern_cid addr_key; /* the remote address, as a key of addr_table */
	/* other connections to the same address: doubly linked, as one client
	 * address (a NAT, a load generator) may hold thousands */
	struct ep_conn *addr_next, *addr_prev;
	uint8_t handshaking;       /* counted in handshakes in progress */
	uint8_t dirty;             /* on the send list */
	uint8_t linked;            /* past ec_link: a wake before it is ignored */
	uint8_t timing;            /* in tern_endpoint_handle_timeout's batch */
	struct ep_conn *prev, *next;
	struct ep_conn *dprev, *dnext; /* the send list */
	size_t heap_idx;               /* HEAP_NONE: not in the timer heap */
	uint64_t heap_key;             /* its next timeout when (re)inserted */
	struct ep_conn *due_next;      /* tern_endpoint_handle_timeout's batch */
};

#define HEAP_NONE SIZE_MAX

struct tern_endpoint {
	uint64_t now;
	struct tern_endpoint_config cfg;
	struct tern_conn_callbacks conn_cb;
	const struct tern_conn_callbacks *app_cb;
	struct tern_cidtable table, addr_table;
	void *table_mem, *addr_mem;
	struct ep_conn *head;
	size_t n;
	/* Only connections that something happened to are asked for
	 * datagrams (the send list) and only the earliest timer is looked at
	 * (a binary heap of max_conns): a worker's step costs what moved, not
	 * what it holds (DESIGN.md §3). */
	struct ep_conn *dhead, *dtail;
	struct ep_conn **heap;
	size_t heap_n;
	struct tern_bucket reset_bucket, vn_bucket;
	struct tern_endpoint_stats st;
	/* Scratch for checking that an Initial opens before a connection is
	 * made for it (initial_opens): kept here so the check never allocates. */
	struct tern_crypto_keys ik_client, ik_server;
	_Alignas(16) uint8_t scratch[TERN_ENDPOINT_INITIAL_MAX + 16];
};

/* ---- callbacks from connections, forwarded to the application ---------------- */

#define EC(u) ((struct ep_conn *)(u))
#define APP_CB(ec) ((ec)->ep->app_cb)

static void issue_new_token(struct ep_conn *ec);

static void w_established(struct tern_conn *c, void *u)
{
	if (EC(u)->handshaking) {
		EC(u)->handshaking = 0;
		EC(u)->ep->st.handshakes_in_progress--;
	}
	if (tern_conn_is_server(c))
		issue_new_token(EC(u));
	if (APP_CB(EC(u)) && APP_CB(EC(u))->on_established)
		APP_CB(EC(u))->on_established(c, EC(u)->app);
}

static void w_stream_open(struct tern_conn *c, void *u, uint64_t id)
{
	if (APP_CB(EC(u)) && APP_CB(EC(u))->on_stream_open)
		APP_CB(EC(u))->on_stream_open(c, EC(u)->app, id);
}

static int w_stream_data(struct tern_conn *c, void *u, uint64_t id, const uint8_t *d, size_t len, int fin)
{
	if (APP_CB(EC(u)) && APP_CB(EC(u))->on_stream_data)
		return APP_CB(EC(u))->on_stream_data(c, EC(u)->app, id, d, len, fin);
	return 0;
}

static void w_stream_reset(struct tern_conn *c, void *u, uint64_t id, uint64_t code)
{
	if (APP_CB(EC(u)) && APP_CB(EC(u))->on_stream_reset)
		APP_CB(EC(u))->on_stream_reset(c, EC(u)->app, id, code);
}

static void w_stop_sending(struct tern_conn *c, void *u, uint64_t id, uint64_t code)
{
	if (APP_CB(EC(u)) && APP_CB(EC(u))->on_stop_sending)
		APP_CB(EC(u))->on_stop_sending(c, EC(u)->app, id, code);
}

static void w_writable(struct tern_conn *c, void *u, uint64_t id)
{
	if (APP_CB(EC(u)) && APP_CB(EC(u))->on_stream_writable)
		APP_CB(EC(u))->on_stream_writable(c, EC(u)->app, id);
}

static void w_close(struct tern_conn *c, void *u, const struct tern_close_info *ci)
{
	struct ep_conn *ec = u;
	if (ec->ep->cfg.cb && ec->ep->cfg.cb->on_close)
		ec->ep->cfg.cb->on_close(ec->ep, c, ec->app, ci);
	if (APP_CB(ec) && APP_CB(ec)->on_close)
		APP_CB(ec)->on_close(c, ec->app, ci);
}

static void dirty_add(struct tern_endpoint *ep, struct ep_conn *ec);

static void w_wake(struct tern_conn *c, void *u)
{
	(void)c;
	if (EC(u)->linked)
		dirty_add(EC(u)->ep, EC(u));
}

static int w_qlog(struct tern_conn *c, void *u, const char *rec, size_t len)
{
	struct ep_conn *ec = u;
	if (!ec->app || !APP_CB(ec) || !APP_CB(ec)->on_qlog)
		return -1;
	return APP_CB(ec)->on_qlog(c, ec->app, rec, len);
}

static void w_cid(struct tern_conn *c, void *u, const struct tern_cid *cid, int added)
{
	struct ep_conn *ec = u;
	(void)c;
	if (added)
		tern_cidtable_insert(&ec->ep->table, cid, ec);
	else if (tern_cidtable_lookup(&ec->ep->table, cid) == ec)
		tern_cidtable_remove(&ec->ep->table, cid);
}

/* ---- lifecycle ------------------------------------------------------------------- */

void tern_endpoint_config_init(struct tern_endpoint_config *cfg, int is_server)
{
	memset(cfg, 0, sizeof(*cfg));
	tern_conn_config_init(&cfg->conn, is_server);
	cfg->max_conns = 4096;
	cfg->reset_rate = 10000;
	cfg->reset_burst = 100;
	cfg->vn_rate = 1000;
	cfg->vn_burst = 100;
}

int tern_endpoint_new(struct tern_endpoint **out, const struct tern_endpoint_config *cfg, uint64_t now)
{
	if (!cfg->max_conns || cfg->max_conns > SIZE_MAX / 6 || !cfg->conn.rand.fn)
		return TERN_ERR_INVAL;
	struct tern_endpoint *ep = calloc(1, sizeof(*ep));
	if (!ep)
		return TERN_ERR_NOMEM;
	ep->cfg = *cfg;
	/* the tokens our connections hand out and the resets we answer with
	 * must come from one key, or a reset would never match (RFC 9000
	 * §10.3: the peer compares the datagram's tail with the token) */
	if (cfg->reset_key)
		ep->cfg.conn.reset_key = cfg->reset_key;
	ep->app_cb = cfg->conn.cb;
	ep->conn_cb = (struct tern_conn_callbacks){
		.on_established = w_established,
		.on_stream_open = w_stream_open,
		.on_stream_data = w_stream_data,
		.on_stream_reset = w_stream_reset,
		.on_stop_sending = w_stop_sending,
		.on_stream_writable = w_writable,
		.on_close = w_close,
		.on_cid = w_cid,
		.on_qlog = w_qlog,
		.on_wake = w_wake,
	};
	/* formatting qlog records costs: only when the application wants them */
	if (!ep->app_cb || !ep->app_cb->on_qlog)
		ep->conn_cb.on_qlog = NULL;
	/* each connection holds a few CIDs (LOCAL_CID_MAX) plus the client's
	 * original DCID */
	size_t entries = cfg->max_conns * 6;
	size_t mem = tern_cidtable_mem_size(entries);
	/* an all-zero seed means "not chosen": a known SipHash key would let
	 * peers pile their CIDs into one probe run (cidtable.h) */
	static const uint8_t zero[TERN_SIPHASH_KEY_LEN];
	if (memcmp(ep->cfg.table_seed, zero, sizeof(zero)) == 0)
		tern_rand_fill(&cfg->conn.rand, ep->cfg.table_seed, sizeof(ep->cfg.table_seed));
	size_t amem = tern_cidtable_mem_size(cfg->max_conns);
	ep->table_mem = mem ? calloc(1, mem) : NULL;
	ep->addr_mem = amem ? calloc(1, amem) : NULL;
	ep->heap = calloc(cfg->max_conns, sizeof(*ep->heap));
	if (!ep->table_mem || !ep->addr_mem || !ep->heap ||
	    tern_cidtable_init(&ep->table, ep->table_mem, mem, entries, ep->cfg.table_seed) < 0 ||
	    tern_cidtable_init(&ep->addr_table, ep->addr_mem, amem, cfg->max_conns,
			       ep->cfg.table_seed) < 0) {
		free(ep->table_mem);
		free(ep->addr_mem);
		free(ep->heap);
		free(ep);
		return TERN_ERR_NOMEM;
	}
	tern_bucket_init(&ep->reset_bucket, cfg->reset_rate, cfg->reset_burst, now);
	tern_bucket_init(&ep->vn_bucket, cfg->vn_rate, cfg->vn_burst, now);
	*out = ep;
	return 0;
}

/* ---- the address table ------------------------------------------------------------ */

static void addr_key(struct tern_cid *k, const struct tern_addr *a)
{
	size_t iplen = a->family == 4 ? 4 : 16;
	k->len = (uint8_t)(3 + iplen);
	k->bytes[0] = a->family;
	tern_put_u16(k->bytes + 1, a->port);
	memcpy(k->bytes + 3, a->ip, iplen);
}

/* Chains ec in front of the connections already at its address. */
static void addr_add(struct tern_endpoint *ep, struct ep_conn *ec)
{
	addr_key(&ec->addr_key, &tern_conn_path(ec->conn)->remote);
	ec->addr_prev = NULL;
	ec->addr_next = tern_cidtable_remove(&ep->addr_table, &ec->addr_key);
	if (ec->addr_next)
		ec->addr_next->addr_prev = ec;
	tern_cidtable_insert(&ep->addr_table, &ec->addr_key, ec); /* sized for max_conns */
}

static void addr_del(struct tern_endpoint *ep, struct ep_conn *ec)
{
	if (ec->addr_next)
		ec->addr_next->addr_prev = ec->addr_prev;
	if (ec->addr_prev) {
		ec->addr_prev->addr_next = ec->addr_next;
		return;
	}
	/* the head: the table names the next one now */
	tern_cidtable_remove(&ep->addr_table, &ec->addr_key);
	if (ec->addr_next)
		tern_cidtable_insert(&ep->addr_table, &ec->addr_key, ec->addr_next);
}

/* ---- the timer heap and the send list -------------------------------------------- */

static void heap_set(struct tern_endpoint *ep, size_t i, struct ep_conn *ec)
{
	ep->heap[i] = ec;
	ec->heap_idx = i;
}

static void heap_up(struct tern_endpoint *ep, size_t i)
{
	struct ep_conn *ec = ep->heap[i];
	while (i > 0 && ep->heap[(i - 1) / 2]->heap_key > ec->heap_key) {
		heap_set(ep, i, ep->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(ep, i, ec);
}

static void heap_down(struct tern_endpoint *ep, size_t i)
{
	struct ep_conn *ec = ep->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= ep->heap_n)
			break;
		if (c + 1 < ep->heap_n && ep->heap[c + 1]->heap_key < ep->heap[c]->heap_key)
			c++;
		if (ep->heap[c]->heap_key >= ec->heap_key)
			break;
		heap_set(ep, i, ep->heap[c]);
		i = c;
	}
	heap_set(ep, i, ec);
}

static void heap_del(struct tern_endpoint *ep, struct ep_conn *ec)
{
	size_t i = ec->heap_idx;
	if (i == HEAP_NONE)
		return;
	ec->heap_idx = HEAP_NONE;
	struct ep_conn *last = ep->heap[--ep->heap_n];
	if (last == ec)
		return;
	heap_set(ep, i, last);
	heap_up(ep, i);
	heap_down(ep, last->heap_idx);
}

/* Files ec under its next timeout; a closed connection is due at once, to
 * be freed by the next tern_endpoint_handle_timeout. */
static void heap_rekey(struct tern_endpoint *ep, struct ep_conn *ec)
{
	if (ec->timing)
		return; /* filed when the batch ends */
	uint64_t key = tern_conn_state(ec->conn) == TERN_CONN_CLOSED ? 0 : tern_conn_next_timeout(ec->conn);
	if (ec->heap_idx == HEAP_NONE) {
		ec->heap_key = key;
		heap_set(ep, ep->heap_n++, ec); /* n <= max_conns: room */
		heap_up(ep, ec->heap_idx);
	} else if (key != ec->heap_key) {
		ec->heap_key = key;
		heap_up(ep, ec->heap_idx);
		heap_down(ep, ec->heap_idx);
	}
}

static void dirty_del(struct tern_endpoint *ep, struct ep_conn *ec)
{
	if (!ec->dirty)
		return;
	ec->dirty = 0;
	if (ec->dprev)
		ec->dprev->dnext = ec->dnext;
	else
		ep->dhead = ec->dnext;
	if (ec->dnext)
		ec->dnext->dprev = ec->dprev;
	else
		ep->dtail = ec->dprev;
	ec->dprev = ec->dnext = NULL;
}

/* Something happened to ec: it may have datagrams to send, and its timers
 * may have moved (both are looked at when the send pass reaches it). */
static void dirty_add(struct tern_endpoint *ep, struct ep_conn *ec)
{
	heap_rekey(ep, ec);
	if (ec->dirty)
		return;
	ec->dirty = 1;
	ec->dnext = NULL;
	ec->dprev = ep->dtail;
	if (ep->dtail)
		ep->dtail->dnext = ec;
	else
		ep->dhead = ec;
	ep->dtail = ec;
}

void tern_endpoint_conn_wake(struct tern_conn *c)
{
	struct ep_conn *ec = EC(tern_conn_user(c));
	dirty_add(ec->ep, ec);
}

static void conn_unlink_free(struct tern_endpoint *ep, struct ep_conn *ec)
{
	const struct tern_close_info *ci = tern_conn_close_info(ec->conn);
	if (ci->reason <= TERN_CLOSE_ERROR)
		ep->st.closed_by_reason[ci->reason]++;
	ep->st.conns_closed++;
	if (ec->handshaking)
		ep->st.handshakes_in_progress--;
	if (ep->cfg.cb && ep->cfg.cb->on_conn_free)
		ep->cfg.cb->on_conn_free(ep, ec->conn, ec->app);
	if (ec->odcid.len && tern_cidtable_lookup(&ep->table, &ec->odcid) == ec)
		tern_cidtable_remove(&ep->table, &ec->odcid);
	addr_del(ep, ec);
	heap_del(ep, ec);
	dirty_del(ep, ec);
	tern_conn_free(ec->conn);
	if (ec->prev)
		ec->prev->next = ec->next;
	else
		ep->head = ec->next;
	if (ec->next)
		ec->next->prev = ec->prev;
	ep->n--;
	free(ec);
}

void tern_endpoint_free(struct tern_endpoint *ep)
{
	if (!ep)
		return;
	while (ep->head)
		conn_unlink_free(ep, ep->head);
	free(ep->table_mem);
	free(ep->addr_mem);
	free(ep->heap);
	free(ep);
}

static struct ep_conn *ec_new(struct tern_endpoint *ep, struct tern_conn_config *cc, void *app)
{
	struct ep_conn *ec = calloc(1, sizeof(*ec));
	if (!ec)
		return NULL;
	ec->ep = ep;
	ec->app = app;
	ec->heap_idx = HEAP_NONE;
	*cc = ep->cfg.conn;
	cc->cb = &ep->conn_cb;
	cc->user = ec;
	return ec;
}

static void ec_link(struct tern_endpoint *ep, struct ep_conn *ec)
{
	ec->next = ep->head;
	if (ep->head)
		ep->head->prev = ec;
	ep->head = ec;
	ep->n++;
	ep->st.conns_created++;
	addr_add(ep, ec);
	ec->linked = 1;
	dirty_add(ep, ec);
}

int tern_endpoint_connect(struct tern_endpoint *ep, const struct tern_path *path, void *app,
			  struct tern_conn **out, uint64_t now)
{
	struct tern_conn_config cc;
	if (ep->n >= ep->cfg.max_conns)
		return TERN_ERR_LIMIT;
	struct ep_conn *ec = ec_new(ep, &cc, app);
	if (!ec)
		return TERN_ERR_NOMEM;
	int rv = tern_conn_new_client(&ec->conn, &cc, path, now);
	if (rv < 0) {
		free(ec);
		return rv;
	}
	ec_link(ep, ec);
	*out = ec->conn;
	return 0;
}

/* ---- receive ---------------------------------------------------------------------- */

/* RFC 9001 §5.2: Initial keys come from the DCID alone, so an Initial that
 * opens proves nothing about its sender. The check only keeps datagrams
 * that are not Initials at all (junk, random floods) from costing a
 * connection, its TLS state and an allocation: the same rule quicly_accept
 * applies. The packet is copied, since the connection opens it again. */
static int initial_opens(struct tern_endpoint *ep, const uint8_t *pkt, const struct tern_pkt_hdr *h)
{
	if (h->pkt_len > TERN_ENDPOINT_INITIAL_MAX ||
	    tern_initial_keys_init(h->version, h->dcid.bytes, h->dcid.len, &ep->ik_client,
				   &ep->ik_server) < 0)
		return 0;
	/* wolfCrypt's AES-NI block encryption mallocs a bounce buffer for an
	 * input that is not 16-byte aligned: place the header-protection
	 * sample (pn_offset + 4, RFC 9001 §5.4.2) on a 16-byte boundary */
	uint8_t *p = ep->scratch + (16 - (h->pn_offset + 4) % 16) % 16;
	memcpy(p, pkt, h->pkt_len);
	size_t pn_len, hl;
	int ok = 0;
	if (tern_hp_unprotect(&ep->ik_client, p, h->pkt_len, h->pn_offset, &pn_len) == 0 &&
	    (hl = h->pn_offset + pn_len) + TERN_AEAD_TAG_LEN <= h->pkt_len) {
		uint64_t pn = tern_pn_decode(TERN_PN_NONE, tern_pn_read(p + h->pn_offset, pn_len),
					     (unsigned)(8 * pn_len));
		size_t plen = h->pkt_len - hl - TERN_AEAD_TAG_LEN;
		ok = tern_aead_open(&ep->ik_client, pn, p, hl, p + hl, plen, p + hl + plen) == 0;
	}
	tern_crypto_keys_clear(&ep->ik_client);
	tern_crypto_keys_clear(&ep->ik_server);
	return ok;
}

/* ---- address validation, RFC 9000 §8.1 ------------------------------------------- */

#define RETRY_TOKEN_LIFETIME (10 * UINT64_C(1000000000))
#define NEW_TOKEN_LIFETIME (24 * 3600 * UINT64_C(1000000000))

static int wants_retry(const struct tern_endpoint *ep)
{
	if (!ep->cfg.token_key || ep->cfg.retry == TERN_RETRY_OFF)
		return 0;
	return ep->cfg.retry == TERN_RETRY_ALWAYS ||
	       ep->st.handshakes_in_progress >= ep->cfg.retry_threshold;
}

/* 0 when the Initial carries no token (or one we may ignore),
 * TERN_TOKEN_RETRY / TERN_TOKEN_NEW_TOKEN with *validated set when its
 * token validates the address, a negative error when it must be dropped. */
static int check_token(struct tern_endpoint *ep, const struct tern_pkt_hdr *h,
		       const struct tern_path *path, uint64_t now, struct tern_cid *odcid, int *validated)
{
	*validated = 0;
	if (!h->token_len || !ep->cfg.token_key)
		return 0;
	/* the type byte is plaintext but authenticated (it is in the AAD):
	 * it picks the lifetime, and a lie fails the open */
	int is_new = h->token[0] == TERN_TOKEN_NEW_TOKEN;
	uint64_t life = is_new ? (ep->cfg.new_token_lifetime_ns ? ep->cfg.new_token_lifetime_ns
							       : NEW_TOKEN_LIFETIME)
			       : (ep->cfg.retry_token_lifetime_ns ? ep->cfg.retry_token_lifetime_ns
								  : RETRY_TOKEN_LIFETIME);
	enum tern_token_type type;
	int rv = tern_token_open(ep->cfg.token_key, h->token, h->token_len, &path->remote, now, life,
				 &type, odcid);
	if (rv == 0) {
		*validated = 1;
		ep->st.tokens_accepted++;
		return (int)type;
	}
	/* RFC 9000 §8.1.3: a NEW_TOKEN token that does not validate is as if
	 * there were none; a bad Retry token (it names itself in its first
	 * byte, which a forger controls, so this only sorts the honest cases)
	 * means the client's Initial cannot be trusted: drop it */
	if (is_new)
		return 0;
	ep->st.dropped_bad_token++;
	return TERN_ERR_DECRYPT;
}

/* RFC 9000 §17.2.5: a Retry with a fresh SCID and a token binding the
 * client's address and original DCID; the integrity tag covers both. */
static int answer_retry(struct tern_endpoint *ep, const struct tern_pkt_hdr *h,
			const struct tern_path *path, uint64_t now, uint8_t *reply, size_t cap)
{
	uint8_t tok[TERN_TOKEN_MAX_LEN];
	struct tern_cid scid;
	if (!reply) {
		ep->st.dropped_other++;
		return 0;
	}
	if (ep->cfg.gen_cid)
		ep->cfg.gen_cid(ep->cfg.gen_cid_ctx, &scid);
	else {
		scid.len = ep->cfg.conn.scid_len;
		tern_rand_fill(&ep->cfg.conn.rand, scid.bytes, scid.len);
	}
	int tl = tern_token_seal(ep->cfg.token_key, TERN_TOKEN_RETRY, &path->remote, &h->dcid, now,
				 &ep->cfg.conn.rand, tok, sizeof(tok));
	int n = tl < 0 ? tl : tern_retry_write(reply, cap, h->version, &h->scid, &scid, tok, (size_t)tl);
	if (n < 0 || (size_t)n + TERN_RETRY_TAG_LEN > cap ||
	    tern_retry_tag_compute(h->version, h->dcid.bytes, h->dcid.len, reply, (size_t)n,
				   reply + n) < 0) {
		ep->st.dropped_failed++;
		return 0;
	}
	ep->st.retry_sent++;
	return n + TERN_RETRY_TAG_LEN;
}

static void issue_new_token(struct ep_conn *ec)
{
	struct tern_endpoint *ep = ec->ep;
	if (!ep->cfg.token_key)
		return;
	uint8_t tok[TERN_TOKEN_MAX_LEN];
	int n = tern_token_seal(ep->cfg.token_key, TERN_TOKEN_NEW_TOKEN, &tern_conn_path(ec->conn)->remote,
				NULL, ep->now, &ep->cfg.conn.rand, tok, sizeof(tok));
	if (n > 0)
		tern_conn_send_new_token(ec->conn, tok, (size_t)n);
}

static int accept_initial(struct tern_endpoint *ep, const uint8_t *dgram, const struct tern_pkt_hdr *h,
			  const struct tern_path *path, size_t len, uint64_t now, struct ep_conn **out)
{
	/* RFC 9000 §14.1: a server drops client Initials in datagrams under
	 * 1200 bytes; §7.2: the client's first DCID is at least 8 bytes */
	if (len < MIN_INITIAL_DATAGRAM) {
		ep->st.dropped_short_initial++;
		return TERN_ERR_MALFORMED;
	}
	if (h->dcid.len < MIN_CLIENT_DCID || !initial_opens(ep, dgram, h)) {
		ep->st.dropped_bad_initial++;
		return TERN_ERR_MALFORMED;
	}
	if (ep->n >= ep->cfg.max_conns) {
		ep->st.dropped_full++;
		return TERN_ERR_NOMEM;
	}
	struct tern_cid odcid, scid;
	int validated = 0;
	int tv = check_token(ep, h, path, now, &odcid, &validated);
	if (tv < 0)
		return tv;
	if (!validated && wants_retry(ep))
		return TERN_ERR_LIMIT; /* the caller answers with a Retry */
	if (ep->cfg.max_handshakes && ep->st.handshakes_in_progress >= ep->cfg.max_handshakes) {
		ep->st.dropped_full++; /* the client tries again: its PTO resends */
		return TERN_ERR_NOMEM;
	}
	struct tern_conn_config cc;
	struct ep_conn *ec = ec_new(ep, &cc, NULL);
	int from_retry = tv == TERN_TOKEN_RETRY;
	if (from_retry)
		scid = h->dcid; /* keep the CID our Retry gave the client */
	else if (ep->cfg.gen_cid)
		ep->cfg.gen_cid(ep->cfg.gen_cid_ctx, &scid);
	int rv = ec ? tern_conn_new_server(&ec->conn, &cc, path, h,
					    from_retry || ep->cfg.gen_cid ? &scid : NULL,
					    from_retry ? &odcid : NULL, now)
		    : TERN_ERR_NOMEM;
	if (rv == 0 && validated)
		tern_conn_set_address_validated(ec->conn);
	/* the client keeps its original DCID until it hears our SCID (RFC 9000
	 * §7.2): without a route for it, its next Initial would make a second
	 * connection */
	if (rv == 0 && !from_retry) {
		/* after a Retry the client's DCID is already our own SCID */
		ec->odcid = h->dcid;
		rv = tern_cidtable_insert(&ep->table, &ec->odcid, ec);
		if (rv < 0) {
			ec->odcid.len = 0;
			tern_conn_free(ec->conn);
		}
	}
	if (rv < 0) {
		free(ec);
		ep->st.dropped_failed++;
		return rv;
	}
	ec_link(ep, ec);
	ec->handshaking = 1;
	ep->st.handshakes_in_progress++;
	if (ep->cfg.cb && ep->cfg.cb->on_new_conn)
		ep->cfg.cb->on_new_conn(ep, ec->conn, ep->cfg.user);
	*out = ec;
	return 0;
}

static int answer_vn(struct tern_endpoint *ep, const struct tern_pkt_hdr *h, size_t len, uint64_t now,
		     uint8_t *reply, size_t cap)
{
	/* RFC 9000 §6.1: only a server answers with VN; §14.1 and §5.2.2:
	 * only datagrams a client Initial could fill, so VN never amplifies;
	 * and rate-limited (§6.1 "MAY limit") */
	if (!ep->cfg.conn.is_server || !reply) {
		ep->st.dropped_other++;
		return 0;
	}
	if (len < MIN_INITIAL_DATAGRAM) {
		ep->st.vn_too_small++;
		return 0;
	}
	if (!tern_bucket_take(&ep->vn_bucket, now)) {
		ep->st.vn_rate_limited++;
		return 0;
	}
	static const uint32_t versions[] = {TERN_VERSION_1, TERN_VERSION_2};
	uint8_t rnd;
	tern_rand_fill(&ep->cfg.conn.rand, &rnd, 1);
	int n = tern_vn_build(reply, cap, h->scid_raw, h->scid_raw_len, h->dcid_raw, h->dcid_raw_len,
			      versions, 2, rnd);
	if (n <= 0) {
		ep->st.dropped_other++; /* reply_cap under TERN_ENDPOINT_REPLY_MAX */
		return 0;
	}
	ep->st.vn_sent++;
	return n;
}

static int answer_reset(struct tern_endpoint *ep, const struct tern_pkt_hdr *h, size_t len,
			uint64_t now, uint8_t *reply, size_t cap)
{
	/* a zero-length CID names no connection, so its token could reset
	 * any of them (RFC 9000 §10.3: a token is specific to a CID) */
	if (!ep->cfg.reset_key || !reply || !h->dcid.len) {
		ep->st.dropped_other++;
		return 0;
	}
	/* the size rule first (cheap and token-free), then the limiter, then
	 * the PRF: only a reply that will go costs a token computation */
	if (len <= TERN_RESET_MIN_LEN) {
		ep->st.reset_too_small++;
		return 0;
	}
	if (!tern_bucket_take(&ep->reset_bucket, now)) {
		ep->st.reset_rate_limited++;
		return 0;
	}
	uint8_t token[TERN_RESET_TOKEN_LEN];
	int n = tern_reset_token(ep->cfg.reset_key, h->dcid.bytes, h->dcid.len, token);
	if (n == 0)
		n = tern_reset_build(reply, cap, len, token, &ep->cfg.conn.rand);
	if (n < 0) {
		ep->st.dropped_other++; /* reply_cap under TERN_ENDPOINT_REPLY_MAX */
		return 0;
	}
	ep->st.resets_sent++;
	return n;
}

/* RFC 9000 §10.3.1: a datagram that names no connection may still be a
 * stateless reset for one at its remote address. Only established or
 * closing connections hold the peer's tokens, and only they get it, so a
 * junk datagram never counts toward a handshake's amplification budget
 * (RFC 9000 §8.1 counts datagrams "uniquely attributed" to it). Bounded:
 * a few connections at most share an address and port. */
static int reset_to_conn(struct tern_endpoint *ep, uint8_t *dgram, size_t len,
			 const struct tern_path *path, uint64_t now)
{
	struct tern_cid k;
	addr_key(&k, &path->remote);
	struct ep_conn *ec = tern_cidtable_lookup(&ep->addr_table, &k);
	for (int i = 0; ec && i < 8; ec = ec->addr_next, i++) {
		enum tern_conn_state st = tern_conn_state(ec->conn);
		if (st != TERN_CONN_ESTABLISHED && st != TERN_CONN_CLOSING)
			continue;
		tern_conn_recv(ec->conn, dgram, len, path, now);
		dirty_add(ep, ec);
		if (tern_conn_state(ec->conn) == TERN_CONN_DRAINING &&
		    tern_conn_close_info(ec->conn)->reason == TERN_CLOSE_STATELESS_RESET)
			return 1;
	}
	return 0;
}

/* A short header too short for a header-protection sample (RFC 9001
 * §5.4.2) still names its DCID: when that is not ours it is a packet we
 * cannot process, which the reset responder answers under its size rule
 * (RFC 9000 §10.3), so tiny triggers are counted as too small rather than
 * as junk. */
static int short_fragment(const struct tern_endpoint *ep, const uint8_t *dgram, size_t len,
			  struct tern_pkt_hdr *h)
{
	size_t cl = ep->cfg.conn.scid_len;
	if ((dgram[0] & (TERN_PKT_FORM_LONG | TERN_PKT_FIXED_BIT)) != TERN_PKT_FIXED_BIT || len <= cl)
		return 0;
	memset(h, 0, sizeof(*h));
	h->type = TERN_PKT_1RTT;
	tern_cid_set(&h->dcid, dgram + 1, cl);
	return tern_cidtable_lookup(&ep->table, &h->dcid) == NULL;
}

int tern_endpoint_recv_ecn(struct tern_endpoint *ep, uint8_t *dgram, size_t len,
			   const struct tern_path *path, uint8_t ecn, uint64_t now, uint8_t *reply,
			   size_t reply_cap)
{
	ep->st.rx_datagrams++;
	ep->now = now;
	struct tern_pkt_hdr h;
	int n = tern_pkt_parse(dgram, len, ep->cfg.conn.scid_len, &h);
	if (n == TERN_ERR_VERSION)
		return answer_vn(ep, &h, len, now, reply, reply_cap);
	struct ep_conn *ec = NULL;
	if (n > 0 && h.type != TERN_PKT_VN)
		ec = tern_cidtable_lookup(&ep->table, &h.dcid);
	if (!ec && n > 0 && h.type == TERN_PKT_INITIAL && ep->cfg.conn.is_server) {
		int rv = accept_initial(ep, dgram, &h, path, len, now, &ec);
		if (rv == TERN_ERR_LIMIT)
			return answer_retry(ep, &h, path, now, reply, reply_cap);
		if (rv < 0)
			return 0;
	}
	if (ec) {
		/* RFC 9000 §9: no migration before the handshake is done; a
		 * datagram from elsewhere would spend this path's amplification
		 * budget and draw answers to the original address */
		if (tern_conn_state(ec->conn) == TERN_CONN_HANDSHAKE &&
		    !tern_addr_equal(&tern_conn_path(ec->conn)->remote, &path->remote)) {
			ep->st.dropped_other++;
			return 0;
		}
		ep->st.to_conn++;
		tern_conn_recv_ecn(ec->conn, dgram, len, path, ecn, now);
		dirty_add(ep, ec);
		return 0;
	}
	if (len >= TERN_RESET_MIN_LEN && reset_to_conn(ep, dgram, len, path, now)) {
		ep->st.resets_received++;
		return 0;
	}
	if (n < 0 && !(n == TERN_ERR_MALFORMED && short_fragment(ep, dgram, len, &h))) {
		ep->st.dropped_unparsable++;
		return 0;
	}
	if (h.type == TERN_PKT_1RTT)
		return answer_reset(ep, &h, len, now, reply, reply_cap);
	ep->st.dropped_other++;
	return 0;
}

int tern_endpoint_recv(struct tern_endpoint *ep, uint8_t *dgram, size_t len,
		       const struct tern_path *path, uint64_t now, uint8_t *reply, size_t reply_cap)
{
	return tern_endpoint_recv_ecn(ep, dgram, len, path, 0, now, reply, reply_cap);
}

/* ---- send and timers ----------------------------------------------------------------- */

int tern_endpoint_send_ecn(struct tern_endpoint *ep, uint8_t *buf, size_t cap, struct tern_path *path,
			   uint8_t *ecn, uint64_t now)
{
	struct ep_conn *ec;
	while ((ec = ep->dhead)) {
		int n = tern_conn_send(ec->conn, buf, cap, now);
		if (n > 0) {
			*path = *tern_conn_path(ec->conn);
			if (ecn)
				*ecn = (uint8_t)tern_conn_send_ecn(ec->conn);
			/* round robin: one datagram, then the others' turn */
			if (ec->dnext) {
				dirty_del(ep, ec);
				dirty_add(ep, ec);
			}
			return n;
		}
		/* nothing more until the peer or a timer moves it */
		dirty_del(ep, ec);
		heap_rekey(ep, ec);
	}
	return 0;
}

int tern_endpoint_send(struct tern_endpoint *ep, uint8_t *buf, size_t cap, struct tern_path *path,
		       uint64_t now)
{
	return tern_endpoint_send_ecn(ep, buf, cap, path, NULL, now);
}

uint64_t tern_endpoint_next_timeout(const struct tern_endpoint *ep)
{
	if (ep->dhead)
		return 0; /* connections still to ask for datagrams */
	return ep->heap_n ? ep->heap[0]->heap_key : UINT64_MAX;
}

/* The due connections leave the heap first and are filed again under
 * their new timeouts afterwards, so this ends however their timers moved. */
void tern_endpoint_handle_timeout(struct tern_endpoint *ep, uint64_t now)
{
	struct ep_conn *due = NULL;
	while (ep->heap_n && ep->heap[0]->heap_key <= now) {
		struct ep_conn *ec = ep->heap[0];
		heap_del(ep, ec);
		ec->timing = 1;
		if (tern_conn_state(ec->conn) != TERN_CONN_CLOSED &&
		    tern_conn_next_timeout(ec->conn) <= now)
			tern_conn_handle_timeout(ec->conn, now);
		if (tern_conn_state(ec->conn) == TERN_CONN_CLOSED) {
			conn_unlink_free(ep, ec);
			continue;
		}
		ec->due_next = due;
		due = ec;
	}
	while (due) {
		struct ep_conn *ec = due;
		due = ec->due_next;
		ec->timing = 0;
		dirty_add(ep, ec);
	}
}

void tern_endpoint_close_all(struct tern_endpoint *ep, uint64_t app_code, const char *reason,
			     uint64_t now)
{
	for (struct ep_conn *ec = ep->head; ec; ec = ec->next) {
		tern_conn_close(ec->conn, 1, app_code, reason, now);
		dirty_add(ep, ec);
	}
}

void tern_endpoint_conn_set_app(struct tern_conn *c, void *app)
{
	EC(tern_conn_user(c))->app = app;
}

void *tern_endpoint_conn_app(const struct tern_conn *c)
{
	return EC(tern_conn_user(c))->app;
}

size_t tern_endpoint_conn_count(const struct tern_endpoint *ep)
{
	return ep->n;
}

void *tern_endpoint_user(const struct tern_endpoint *ep)
{
	return ep->cfg.user;
}

void tern_endpoint_stats(const struct tern_endpoint *ep, struct tern_endpoint_stats *st)
{
	*st = ep->st;
	st->conns_active = ep->n;
}

uint64_t tern_endpoint_stats_outcomes(const struct tern_endpoint_stats *st)
{
	return st->to_conn + st->retry_sent + st->dropped_bad_token + st->resets_received + st->vn_sent + st->vn_too_small + st->vn_rate_limited + st->resets_sent +
	       st->reset_too_small + st->reset_rate_limited + st->dropped_unparsable +
	       st->dropped_short_initial + st->dropped_bad_initial + st->dropped_full +
	       st->dropped_failed + st->dropped_other;
}
