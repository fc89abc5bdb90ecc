#include "pair.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "tern/frame.h"
#include "tern/packet.h"

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

void pair_rand(void *ctx, uint8_t *buf, size_t len)
{
	uint64_t *s = ctx;
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)xorshift(s);
}

uint32_t pair_rand32(struct pair *p)
{
	return (uint32_t)xorshift(&p->rng);
}

static uint8_t *read_file(const char *name, size_t *len)
{
	const char *dir = getenv("TERN_TEST_CERTS");
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir ? dir : ".", name);
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s (TERN_TEST_CERTS)", path);
	static uint8_t bufs[2][8192];
	static int which;
	uint8_t *b = bufs[which++ & 1];
	*len = fread(b, 1, sizeof(bufs[0]), f);
	fclose(f);
	return b;
}

static void pair_init_common(struct pair *p, const char *cli_alpn, const char *srv_alpn,
			     const struct tern_conn_callbacks *cli_cb, void *cli_user,
			     const struct tern_conn_callbacks *srv_cb, void *srv_user)
{
	memset(p, 0, sizeof(*p));
	p->rng = 0x9e3779b97f4a7c15ull;
	p->now = 1000000000ull;
	char err[256] = "";
	size_t cl, kl;
	const uint8_t *cert = read_file("ec-cert.pem", &cl);
	const uint8_t *key = read_file("ec-key.pem", &kl);
	const char *srv_alpns[] = {srv_alpn};
	const char *cli_alpns[] = {cli_alpn};
	cr_assert_eq(tern_tls_ctx_new_server(&p->srv_tls, cert, cl, key, kl, srv_alpns, 1, err,
					     sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(tern_tls_ctx_new_client(&p->cli_tls, cli_alpns, 1, false, NULL, 0, err, sizeof(err)),
		     0, "%s", err);
	p->to_srv.q = calloc(PAIR_QMAX, sizeof(struct pair_dgram));
	p->to_cli.q = calloc(PAIR_QMAX, sizeof(struct pair_dgram));
	p->to_srv.delay_ns = p->to_cli.delay_ns = 5000000; /* 5 ms each way */

	tern_conn_config_init(&p->cli_cfg, 0);
	p->cli_cfg.tls = p->cli_tls;
	p->cli_cfg.server_name = "localhost";
	p->cli_cfg.rand.fn = pair_rand;
	p->cli_cfg.rand.ctx = &p->rng;
	p->cli_cfg.cb = cli_cb;
	p->cli_cfg.user = cli_user;
	tern_conn_config_init(&p->srv_cfg, 1);
	p->srv_cfg.tls = p->srv_tls;
	p->srv_cfg.rand.fn = pair_rand;
	p->srv_cfg.rand.ctx = &p->rng;
	p->srv_cfg.cb = srv_cb;
	p->srv_cfg.user = srv_user;
}

void pair_start(struct pair *p)
{
	struct tern_path path = {0};
	cr_assert_eq(tern_conn_new_client(&p->cli, &p->cli_cfg, &path, p->now), 0);
}

void pair_init(struct pair *p, const char *alpn, const struct tern_conn_callbacks *cli_cb,
	       void *cli_user, const struct tern_conn_callbacks *srv_cb, void *srv_user)
{
	pair_init_common(p, alpn, alpn, cli_cb, cli_user, srv_cb, srv_user);
	pair_start(p);
}

static void log_datagram(struct pair *p, struct pair_link *l, const uint8_t *d, size_t len);

static void link_put(struct pair *p, struct pair_link *l, const uint8_t *d, size_t len, uint8_t ecn)
{
	l->sent++;
	if (p->log)
		log_datagram(p, l, d, len);
	if (l->mtu && len > l->mtu) {
		l->too_big++;
		return;
	}
	if (ecn)
		l->ect_seen++;
	if (l->ecn_bleach)
		ecn = 0;
	else if (ecn && l->ce_pct && pair_rand32(p) % 100 < l->ce_pct) {
		ecn = 3;
		l->ce_marked++;
	}
	if (l->loss_pct && pair_rand32(p) % 100 < l->loss_pct) {
		l->dropped++;
		return;
	}
	int copies = (l->dup_pct && pair_rand32(p) % 100 < l->dup_pct) ? 2 : 1;
	for (int i = 0; i < copies && l->n < PAIR_QMAX; i++) {
		struct pair_dgram *g = &l->q[l->n++];
		g->at = p->now + l->delay_ns;
		if (l->reorder_pct && pair_rand32(p) % 100 < l->reorder_pct)
			g->at += l->delay_ns / 2 + pair_rand32(p) % (l->delay_ns + 1);
		g->len = (uint16_t)len;
		g->ecn = ecn;
		memcpy(g->data, d, len);
		if (l->truncate_pct && pair_rand32(p) % 100 < l->truncate_pct)
			g->len = (uint16_t)(pair_rand32(p) % len);
		if (l->flip_pct && g->len && pair_rand32(p) % 100 < l->flip_pct)
			g->data[pair_rand32(p) % g->len] ^= (uint8_t)(1u << (pair_rand32(p) % 8));
	}
}

static void flush_conn(struct pair *p, struct tern_conn *c, struct pair_link *l)
{
	uint8_t buf[1500];
	if (!c)
		return;
	for (int i = 0; i < 100000 && l->n < PAIR_QMAX; i++) {
		int n = tern_conn_send(c, buf, sizeof(buf), p->now);
		cr_assert_geq(n, 0);
		if (n == 0)
			break;
		link_put(p, l, buf, (size_t)n, (uint8_t)tern_conn_send_ecn(c));
	}
}

static void deliver(struct pair *p, struct pair_link *l, int to_server)
{
	for (size_t i = 0; i < l->n;) {
		struct pair_dgram *g = &l->q[i];
		if (g->at > p->now) {
			i++;
			continue;
		}
		struct pair_dgram d = *g;
		l->q[i] = l->q[--l->n];
		struct tern_path path = {0};
		if (to_server && !p->srv) {
			struct tern_pkt_hdr h;
			if (tern_pkt_parse(d.data, d.len, 8, &h) <= 0 || h.type != TERN_PKT_INITIAL)
				continue;
			cr_assert_eq(tern_conn_new_server(&p->srv, &p->srv_cfg, &path, &h, NULL, NULL, p->now), 0);
		}
		struct tern_conn *c = to_server ? p->srv : p->cli;
		if (c)
			tern_conn_recv_ecn(c, d.data, d.len, &path, d.ecn, p->now);
	}
}

static uint64_t next_event(struct pair *p)
{
	uint64_t t = UINT64_MAX;
	for (int k = 0; k < 2; k++) {
		struct pair_link *l = k ? &p->to_cli : &p->to_srv;
		for (size_t i = 0; i < l->n; i++)
			if (l->q[i].at < t)
				t = l->q[i].at;
	}
	if (p->cli && tern_conn_next_timeout(p->cli) < t)
		t = tern_conn_next_timeout(p->cli);
	if (p->srv && tern_conn_next_timeout(p->srv) < t)
		t = tern_conn_next_timeout(p->srv);
	return t;
}

/* One turn of the loop: send what is ready, move the clock to the next
 * event, deliver and fire timers. 0 when nothing is left to happen before
 * `limit` (the clock then stops at limit, or stays if nothing is left). */
static int pair_step(struct pair *p, uint64_t limit)
{
	flush_conn(p, p->cli, &p->to_srv);
	if (p->srv)
		flush_conn(p, p->srv, &p->to_cli);
	uint64_t t = next_event(p);
	if (t == UINT64_MAX)
		return 0;
	if (t > limit) {
		if (limit > p->now)
			p->now = limit;
		return 0;
	}
	if (t > p->now)
		p->now = t;
	deliver(p, &p->to_srv, 1);
	deliver(p, &p->to_cli, 0);
	if (p->cli && tern_conn_next_timeout(p->cli) <= p->now)
		tern_conn_handle_timeout(p->cli, p->now);
	if (p->srv && tern_conn_next_timeout(p->srv) <= p->now)
		tern_conn_handle_timeout(p->srv, p->now);
	return 1;
}

int pair_run(struct pair *p, int (*done)(struct pair *p, void *arg), void *arg, uint64_t max_ns)
{
	uint64_t end = p->now + max_ns;
	while (p->now < end) {
		if (done && done(p, arg))
			return 1;
		if (!pair_step(p, UINT64_MAX))
			break;
	}
	return done ? done(p, arg) : 0;
}

void pair_free(struct pair *p)
{
	if (p->keys) {
		for (int i = 0; i < 2; i++) {
			tern_crypto_keys_clear(&p->keys->initial[i]);
			tern_crypto_keys_clear(&p->keys->handshake[i]);
			tern_crypto_keys_clear(&p->keys->app[i]);
		}
		free(p->keys);
	}
	free(p->log);
	tern_conn_free(p->cli);
	tern_conn_free(p->srv);
	tern_tls_ctx_free(p->cli_tls);
	tern_tls_ctx_free(p->srv_tls);
	free(p->to_srv.q);
	free(p->to_cli.q);
}

/* ---- the wire log, key learning, forging ------------------------------------ */

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* NSS key-log line: LABEL <client random> <secret>. Both contexts log, so
 * each secret arrives twice: the first one wins. */
static void pair_keylog(void *arg, const char *line)
{
	struct pair *p = arg;
	struct pair_keys *k = p->keys;
	static const struct {
		const char *label;
		int app, from_client;
	} labels[] = {
		{"CLIENT_HANDSHAKE_TRAFFIC_SECRET ", 0, 1},
		{"SERVER_HANDSHAKE_TRAFFIC_SECRET ", 0, 0},
		{"CLIENT_TRAFFIC_SECRET_0 ", 1, 1},
		{"SERVER_TRAFFIC_SECRET_0 ", 1, 0},
	};
	for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
		if (strncmp(line, labels[i].label, strlen(labels[i].label)) != 0)
			continue;
		int fc = labels[i].from_client;
		int *has = labels[i].app ? &k->has_app[fc] : &k->has_handshake[fc];
		struct tern_crypto_keys *keys = labels[i].app ? &k->app[fc] : &k->handshake[fc];
		const char *hex = strrchr(line, ' ') + 1;
		uint8_t secret[TERN_TLS_MAX_SECRET_LEN];
		size_t n = strlen(hex) / 2;
		cr_assert_leq(n, sizeof(secret));
		for (size_t j = 0; j < n; j++)
			secret[j] = (uint8_t)(hexval(hex[2 * j]) << 4 | hexval(hex[2 * j + 1]));
		if (!*has)
			cr_assert_eq(tern_crypto_keys_init(keys, p->cli_cfg.version ? p->cli_cfg.version
										 : TERN_VERSION_1,
							   TERN_AEAD_AES_128_GCM, secret, n),
				     0);
		*has = 1;
	}
}

void pair_setup(struct pair *p, const char *cli_alpn, const char *srv_alpn,
		const struct tern_conn_callbacks *cli_cb, void *cli_user,
		const struct tern_conn_callbacks *srv_cb, void *srv_user)
{
	pair_init_common(p, cli_alpn, srv_alpn, cli_cb, cli_user, srv_cb, srv_user);
	/* one suite, so a secret's length names its keys */
	const uint16_t suite = TERN_TLS_AES_128_GCM_SHA256;
	cr_assert_eq(tern_tls_ctx_set_suites(p->cli_tls, &suite, 1), 0);
	cr_assert_eq(tern_tls_ctx_set_suites(p->srv_tls, &suite, 1), 0);
	p->keys = calloc(1, sizeof(*p->keys));
	p->log = calloc(PAIR_LOG_MAX, sizeof(*p->log));
	cr_assert(p->keys && p->log);
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 3; j++)
			p->keys->largest[i][j] = TERN_PN_NONE;
	tern_tls_ctx_set_keylog(p->cli_tls, pair_keylog, p);
	tern_tls_ctx_set_keylog(p->srv_tls, pair_keylog, p);
}

static struct tern_crypto_keys *pkt_keys(struct pair *p, int from_client, enum tern_pkt_type t,
					 int *space)
{
	struct pair_keys *k = p->keys;
	switch (t) {
	case TERN_PKT_INITIAL:
		*space = 0;
		return k->has_initial ? &k->initial[from_client] : NULL;
	case TERN_PKT_HANDSHAKE:
		*space = 1;
		return k->has_handshake[from_client] ? &k->handshake[from_client] : NULL;
	case TERN_PKT_1RTT:
		*space = 2;
		return k->has_app[from_client] ? &k->app[from_client] : NULL;
	default:
		return NULL;
	}
}

static void decode_frames(const uint8_t *q, const uint8_t *end, struct pair_pkt *pk)
{
	while (q < end) {
		struct tern_frame f;
		if (tern_frame_decode(&q, end, &f) < 0)
			break;
		uint64_t bit = tern_frame_is_stream(f.type) ? TERN_FRAME_STREAM : f.type;
		if (bit < 64)
			pk->frames |= UINT64_C(1) << bit;
		pk->eliciting |= tern_frame_is_ack_eliciting(f.type);
		if (f.type == TERN_FRAME_CONNECTION_CLOSE || f.type == TERN_FRAME_CONNECTION_CLOSE_APP) {
			pk->has_close = 1;
			pk->close_type = f.type;
			pk->close_code = f.close.error_code;
			pk->close_frame_type = f.type == TERN_FRAME_CONNECTION_CLOSE ? f.close.frame_type : 0;
			pk->close_reason_len = (size_t)f.close.reason_len;
			size_t n = pk->close_reason_len < sizeof(pk->close_reason) - 1
					   ? pk->close_reason_len
					   : sizeof(pk->close_reason) - 1;
			memcpy(pk->close_reason, f.close.reason, n);
			pk->close_reason[n] = 0;
		}
	}
}

/* Removes both protections from one packet of a private copy. */
static void open_packet(struct pair *p, int from_client, uint8_t *pkt, const struct tern_pkt_hdr *h,
			struct pair_pkt *pk)
{
	int space;
	struct tern_crypto_keys *k = pkt_keys(p, from_client, h->type, &space);
	size_t pn_len;
	if (!k || tern_hp_unprotect(k, pkt, h->pkt_len, h->pn_offset, &pn_len) < 0)
		return;
	uint64_t *largest = &p->keys->largest[from_client][space];
	uint64_t pn = tern_pn_decode(*largest, tern_pn_read(pkt + h->pn_offset, pn_len),
				     (unsigned)pn_len * 8);
	size_t hl = h->pn_offset + pn_len;
	if (h->pkt_len < hl + TERN_AEAD_TAG_LEN)
		return;
	size_t plen = h->pkt_len - hl - TERN_AEAD_TAG_LEN;
	if (tern_aead_open(k, pn, pkt, hl, pkt + hl, plen, pkt + hl + plen) < 0)
		return;
	pk->opened = 1;
	pk->pn = pn;
	if (*largest == TERN_PN_NONE || pn > *largest)
		*largest = pn;
	decode_frames(pkt + hl, pkt + hl + plen, pk);
}

void pair_decode(struct pair *p, int from_client, const uint8_t *d, size_t len,
		 struct pair_sent *out)
{
	uint8_t buf[2048];
	memset(out, 0, sizeof(*out));
	out->at = p->now;
	out->from_client = from_client;
	out->len = len;
	if (len > sizeof(buf))
		return;
	memcpy(buf, d, len);
	size_t dcid_len = from_client ? p->srv_cfg.scid_len : p->cli_cfg.scid_len;
	for (size_t off = 0; off < len && out->n_pkts < PAIR_PKTS_MAX;) {
		struct tern_pkt_hdr h;
		int n = tern_pkt_parse(buf + off, len - off, dcid_len, &h);
		if (n <= 0)
			break;
		struct pair_pkt *pk = &out->pkts[out->n_pkts++];
		pk->type = h.type;
		if (p->keys)
			open_packet(p, from_client, buf + off, &h, pk);
		off += (size_t)n;
	}
}

/* Learns the Initial keys and both sides' first SCIDs from the first
 * Initial each side sends (RFC 9001 §5.2: Initial keys come from the DCID
 * of the client's first Initial). */
static void learn_initial(struct pair *p, int from_client, const uint8_t *d, size_t len)
{
	struct pair_keys *k = p->keys;
	struct tern_pkt_hdr h;
	size_t dcid_len = from_client ? p->srv_cfg.scid_len : p->cli_cfg.scid_len;
	if (tern_pkt_parse(d, len, dcid_len, &h) <= 0 || h.type != TERN_PKT_INITIAL)
		return;
	if (from_client && !k->has_initial) {
		cr_assert_eq(tern_initial_keys_init(h.version, h.dcid.bytes, h.dcid.len, &k->initial[1],
						    &k->initial[0]),
			     0);
		k->has_initial = 1;
		k->cli_cid = h.scid;
	}
	if (!from_client && !k->srv_cid.len)
		k->srv_cid = h.scid;
}

static void log_datagram(struct pair *p, struct pair_link *l, const uint8_t *d, size_t len)
{
	int from_client = l == &p->to_srv;
	learn_initial(p, from_client, d, len);
	if (p->log_n == PAIR_LOG_MAX)
		return;
	pair_decode(p, from_client, d, len, &p->log[p->log_n++]);
}

int pair_run_checked(struct pair *p, int (*done)(struct pair *p, void *arg), void *arg,
		     uint64_t max_ns)
{
	uint64_t end = p->now + max_ns;
	unsigned idle_turns = 0;
	while (p->now < end) {
		if (done && done(p, arg))
			return 1;
		uint64_t now = p->now, sent = p->to_srv.sent + p->to_cli.sent;
		size_t queued = p->to_srv.n + p->to_cli.n;
		if (!pair_step(p, end))
			break;
		int moved = p->now != now || p->to_srv.sent + p->to_cli.sent != sent ||
			    p->to_srv.n + p->to_cli.n != queued;
		idle_turns = moved ? 0 : idle_turns + 1;
		cr_assert_lt(idle_turns, 1000,
			     "fake clock stuck at %llu ns: next_timeout() says cli %llu, srv %llu, "
			     "and handle_timeout() does nothing",
			     (unsigned long long)p->now,
			     (unsigned long long)(p->cli ? tern_conn_next_timeout(p->cli) : 0),
			     (unsigned long long)(p->srv ? tern_conn_next_timeout(p->srv) : 0));
	}
	return done ? done(p, arg) : 0;
}

int pair_flush_side(struct pair *p, int server)
{
	struct pair_link *l = server ? &p->to_cli : &p->to_srv;
	uint64_t before = l->sent;
	flush_conn(p, server ? p->srv : p->cli, l);
	return (int)(l->sent - before);
}

int pair_pop(struct pair_link *l, struct pair_dgram *out)
{
	if (!l->n)
		return 0;
	size_t best = 0;
	for (size_t i = 1; i < l->n; i++)
		if (l->q[i].at < l->q[best].at)
			best = i;
	*out = l->q[best];
	memmove(&l->q[best], &l->q[best + 1], (l->n - best - 1) * sizeof(l->q[0]));
	l->n--;
	return 1;
}

int pair_inject(struct pair *p, int to_server, const uint8_t *d, size_t len)
{
	struct tern_conn *c = to_server ? p->srv : p->cli;
	uint8_t buf[2048];
	cr_assert_leq(len, sizeof(buf));
	if (!c)
		return 0;
	memcpy(buf, d, len);
	struct tern_path path = {0};
	return tern_conn_recv(c, buf, len, &path, p->now);
}

int pair_forge(struct pair *p, int from_client, uint64_t pn, const uint8_t *frames, size_t len,
	       uint8_t *out, size_t cap)
{
	struct pair_keys *k = p->keys;
	if (!k || !k->has_app[from_client])
		return TERN_ERR_STATE;
	const struct tern_cid *dcid = from_client ? &k->srv_cid : &k->cli_cid;
	int off = tern_pkt_short_write(out, cap, dcid, pn, 4, 0, 0);
	if (off < 0)
		return off;
	size_t hl = (size_t)off + 4;
	if (cap < hl + len + TERN_AEAD_TAG_LEN)
		return TERN_ERR_NOBUF;
	memcpy(out + hl, frames, len);
	struct tern_crypto_keys *keys = &k->app[from_client];
	int rv = tern_aead_seal(keys, pn, out, hl, out + hl, len, out + hl + len);
	if (rv < 0)
		return rv;
	size_t total = hl + len + TERN_AEAD_TAG_LEN;
	rv = tern_hp_protect(keys, out, total, (size_t)off, 4);
	return rv < 0 ? rv : (int)total;
}

void pair_drop_server(struct pair *p)
{
	tern_conn_free(p->srv);
	p->srv = NULL;
}

void pair_log(struct pair *p, int from_client, const uint8_t *d, size_t len)
{
	if (p->log)
		log_datagram(p, from_client ? &p->to_srv : &p->to_cli, d, len);
}
