#include "pair.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

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

void pair_init(struct pair *p, const char *alpn, const struct tern_conn_callbacks *cli_cb,
	       void *cli_user, const struct tern_conn_callbacks *srv_cb, void *srv_user)
{
	memset(p, 0, sizeof(*p));
	p->rng = 0x9e3779b97f4a7c15ull;
	p->now = 1000000000ull;
	char err[256] = "";
	size_t cl, kl;
	const uint8_t *cert = read_file("ec-cert.pem", &cl);
	const uint8_t *key = read_file("ec-key.pem", &kl);
	const char *alpns[] = {alpn};
	cr_assert_eq(tern_tls_ctx_new_server(&p->srv_tls, cert, cl, key, kl, alpns, 1, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(tern_tls_ctx_new_client(&p->cli_tls, alpns, 1, false, NULL, 0, err, sizeof(err)), 0,
		     "%s", err);
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
	struct tern_path path = {0};
	cr_assert_eq(tern_conn_new_client(&p->cli, &p->cli_cfg, &path, p->now), 0);
}

static void link_put(struct pair *p, struct pair_link *l, const uint8_t *d, size_t len)
{
	l->sent++;
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
		memcpy(g->data, d, len);
	}
}

static void flush_conn(struct pair *p, struct tern_conn *c, struct pair_link *l)
{
	uint8_t buf[1500];
	for (int i = 0; i < 100000 && l->n < PAIR_QMAX; i++) {
		int n = tern_conn_send(c, buf, sizeof(buf), p->now);
		cr_assert_geq(n, 0);
		if (n == 0)
			break;
		link_put(p, l, buf, (size_t)n);
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
			tern_conn_recv(c, d.data, d.len, &path, p->now);
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

int pair_run(struct pair *p, int (*done)(struct pair *p, void *arg), void *arg, uint64_t max_ns)
{
	uint64_t end = p->now + max_ns;
	while (p->now < end) {
		if (done && done(p, arg))
			return 1;
		flush_conn(p, p->cli, &p->to_srv);
		if (p->srv)
			flush_conn(p, p->srv, &p->to_cli);
		uint64_t t = next_event(p);
		if (t == UINT64_MAX)
			break;
		if (t > p->now)
			p->now = t;
		deliver(p, &p->to_srv, 1);
		deliver(p, &p->to_cli, 0);
		if (p->cli && tern_conn_next_timeout(p->cli) <= p->now)
			tern_conn_handle_timeout(p->cli, p->now);
		if (p->srv && tern_conn_next_timeout(p->srv) <= p->now)
			tern_conn_handle_timeout(p->srv, p->now);
	}
	return done ? done(p, arg) : 0;
}

void pair_free(struct pair *p)
{
	tern_conn_free(p->cli);
	tern_conn_free(p->srv);
	tern_tls_ctx_free(p->cli_tls);
	tern_tls_ctx_free(p->srv_tls);
	free(p->to_srv.q);
	free(p->to_cli.q);
}
