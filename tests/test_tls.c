/* Tests for the TLS 1.3 / QUIC glue: real handshakes between a tern client
 * and a tern server in memory, CRYPTO bytes of each level passed to the
 * other side at the same level, and the failure paths RFC 9001 names. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/quic.h>
#include <wolfssl/wolfcrypt/memory.h>

#include "tern/tls.h"

/* ---- fixtures ------------------------------------------------------------ */

struct pem {
	uint8_t *data;
	size_t len;
};

/* meson test names the folder; run by hand, the certificates sit next to
 * the test binary once a full build (or `ninja tests/ec-cert.pem`) made
 * them. */
static struct pem load_pem(const char *name)
{
	const char *dir = getenv("TERN_TEST_CERTS");
	char path[1024], self[900];
	struct pem p = {0};
	FILE *f;
	long n;

	if (!dir) {
		ssize_t k = readlink("/proc/self/exe", self, sizeof(self) - 1);
		cr_assert_gt(k, 0, "TERN_TEST_CERTS is not set");
		self[k] = '\0';
		*strrchr(self, '/') = '\0';
		dir = self;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s: run `meson test -C <build> tls`, or build "
			      "tests/ec-cert.pem first", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p.data = malloc((size_t)n);
	cr_assert_eq(fread(p.data, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	p.len = (size_t)n;
	return p;
}

#define OUT_CAP 32768

struct side {
	struct tern_tls *tls;
	int rc; /* first error a provide() on this side returned */
	uint8_t out[TERN_TLS_NUM_LEVELS][OUT_CAP];
	size_t out_len[TERN_TLS_NUM_LEVELS];
	size_t sent[TERN_TLS_NUM_LEVELS];
	struct {
		int count;
		uint16_t suite;
		size_t len;
		uint8_t secret[TERN_TLS_MAX_SECRET_LEN];
	} sec[TERN_TLS_NUM_LEVELS][2];
	int n_alerts;
	int alert;
	int alert_level;
	int secret_err; /* injected on_secret failure */
	int crypto_err; /* injected on_crypto_data failure */
};

static int on_secret(void *user, enum tern_tls_level level, enum tern_tls_dir dir,
		     uint16_t suite, const uint8_t *secret, size_t len)
{
	struct side *s = user;

	if (s->secret_err)
		return s->secret_err;
	cr_assert_leq(len, TERN_TLS_MAX_SECRET_LEN);
	s->sec[level][dir].count++;
	s->sec[level][dir].suite = suite;
	s->sec[level][dir].len = len;
	memcpy(s->sec[level][dir].secret, secret, len);
	return 0;
}

static int on_crypto_data(void *user, enum tern_tls_level level, const uint8_t *data, size_t len)
{
	struct side *s = user;

	if (s->crypto_err)
		return s->crypto_err;
	cr_assert_leq(s->out_len[level] + len, OUT_CAP);
	memcpy(s->out[level] + s->out_len[level], data, len);
	s->out_len[level] += len;
	return 0;
}

static void on_alert(void *user, enum tern_tls_level level, uint8_t alert)
{
	struct side *s = user;

	s->n_alerts++;
	s->alert = alert;
	s->alert_level = level;
}

static const struct tern_tls_callbacks callbacks = {
	.on_secret = on_secret,
	.on_crypto_data = on_crypto_data,
	.on_alert = on_alert,
};

/* Encoded transport parameters are opaque to this layer: any bytes do. */
static const uint8_t client_tp[] = {0x0f, 0x04, 0xc1, 0x1e, 0x77, 0x01,
				    0x01, 0x04, 0x80, 0x00, 0x75, 0x30};
static const uint8_t server_tp[] = {0x0f, 0x08, 0x5e, 0x4e, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
				    0x0f, 0x04, 0x04, 0x80, 0x10, 0x00, 0x00, 0x03, 0x02,
				    0x45, 0xc0};

static const char *const alpn_h3[] = {"h3"};
static const char *const alpn_h3_perf[] = {"h3", "perf"};
static const char *const alpn_perf_h3[] = {"perf", "h3"};
static const char *const alpn_hq[] = {"hq-interop"};

static struct tern_tls_ctx *server_ctx_kind(const char *kind, const char *const *alpn, size_t n)
{
	char certname[32], keyname[32], err[256] = "";
	struct tern_tls_ctx *ctx = NULL;
	struct pem cert, key;
	int rc;

	snprintf(certname, sizeof(certname), "%s-cert.pem", kind);
	snprintf(keyname, sizeof(keyname), "%s-key.pem", kind);
	cert = load_pem(certname);
	key = load_pem(keyname);
	rc = tern_tls_ctx_new_server(&ctx, cert.data, cert.len, key.data, key.len, alpn, n, err,
				     sizeof(err));
	cr_assert_eq(rc, 0, "server ctx: %d %s", rc, err);
	cr_assert_not_null(ctx);
	free(cert.data);
	free(key.data);
	return ctx;
}

static struct tern_tls_ctx *server_ctx(const char *const *alpn, size_t n)
{
	return server_ctx_kind("ec", alpn, n);
}

static struct tern_tls_ctx *client_ctx(const char *const *alpn, size_t n)
{
	struct tern_tls_ctx *ctx = NULL;
	char err[256] = "";
	int rc = tern_tls_ctx_new_client(&ctx, alpn, n, false, NULL, 0, err, sizeof(err));

	cr_assert_eq(rc, 0, "client ctx: %d %s", rc, err);
	cr_assert_not_null(ctx);
	return ctx;
}

static void side_new(struct side *s, struct tern_tls_ctx *ctx, bool server, const uint8_t *tp,
		     size_t tp_len)
{
	memset(s, 0, sizeof(*s));
	s->alert = -1;
	s->alert_level = -1;
	cr_assert_eq(tern_tls_new(&s->tls, ctx, server, server ? NULL : "localhost", tp, tp_len,
				  &callbacks, s),
		     0);
}

static struct side *side_alloc(void)
{
	struct side *s = calloc(1, sizeof(*s));
	cr_assert_not_null(s);
	return s;
}

/* Hands from's unsent CRYPTO bytes of every level to `to`, chunk bytes at a
 * time, stopping at the first error. */
static bool deliver(struct side *from, struct side *to, size_t chunk)
{
	bool moved = false;

	for (int l = 0; l < TERN_TLS_NUM_LEVELS; l++) {
		while (!to->rc && from->sent[l] < from->out_len[l]) {
			size_t n = from->out_len[l] - from->sent[l];
			if (n > chunk)
				n = chunk;
			to->rc = tern_tls_provide(to->tls, (enum tern_tls_level)l,
						  from->out[l] + from->sent[l], n);
			from->sent[l] += n;
			moved = true;
		}
	}
	return moved;
}

static void pump(struct side *c, struct side *s, size_t chunk)
{
	for (int i = 0; i < 64; i++) {
		bool moved = deliver(c, s, chunk);
		moved |= deliver(s, c, chunk);
		if (!moved)
			return;
	}
	cr_assert_fail("handshake did not settle");
}

static void handshake(struct side *c, struct side *s, size_t chunk)
{
	cr_assert_eq(tern_tls_start(c->tls), 0);
	cr_assert_gt(c->out_len[TERN_TLS_LEVEL_INITIAL], 0, "no ClientHello");
	pump(c, s, chunk);
}

static void assert_secret_pair(struct side *w, struct side *r, int level, uint16_t suite,
			       size_t len)
{
	cr_assert_eq(w->sec[level][TERN_TLS_WRITE].count, 1);
	cr_assert_eq(r->sec[level][TERN_TLS_READ].count, 1);
	cr_assert_eq(w->sec[level][TERN_TLS_WRITE].suite, suite);
	cr_assert_eq(r->sec[level][TERN_TLS_READ].suite, suite);
	cr_assert_eq(w->sec[level][TERN_TLS_WRITE].len, len);
	cr_assert_eq(r->sec[level][TERN_TLS_READ].len, len);
	cr_assert_arr_eq(w->sec[level][TERN_TLS_WRITE].secret, r->sec[level][TERN_TLS_READ].secret,
			 len);
}

/* Everything a successful handshake must leave behind. */
static void assert_established(struct side *c, struct side *s, uint16_t suite, size_t len)
{
	const uint8_t *p;
	size_t n;

	cr_assert_eq(c->rc, 0, "client rc %d", c->rc);
	cr_assert_eq(s->rc, 0, "server rc %d", s->rc);
	cr_assert(tern_tls_is_complete(c->tls));
	cr_assert(tern_tls_is_complete(s->tls));
	cr_assert_eq(c->n_alerts, 0);
	cr_assert_eq(s->n_alerts, 0);
	cr_assert_eq(tern_tls_cipher_suite(c->tls), suite);
	cr_assert_eq(tern_tls_cipher_suite(s->tls), suite);
	for (int l = TERN_TLS_LEVEL_HANDSHAKE; l <= TERN_TLS_LEVEL_APPLICATION; l++) {
		assert_secret_pair(c, s, l, suite, len);
		assert_secret_pair(s, c, l, suite, len);
		/* Each direction has its own secret (RFC 8446 §7.1). */
		cr_assert_arr_neq(c->sec[l][TERN_TLS_WRITE].secret, c->sec[l][TERN_TLS_READ].secret,
				  len);
	}
	for (int d = 0; d < 2; d++) {
		cr_assert_eq(c->sec[TERN_TLS_LEVEL_INITIAL][d].count, 0);
		cr_assert_eq(c->sec[TERN_TLS_LEVEL_EARLY][d].count, 0);
		cr_assert_eq(s->sec[TERN_TLS_LEVEL_EARLY][d].count, 0);
	}
	cr_assert_eq(tern_tls_peer_tparams(s->tls, &p, &n), 0);
	cr_assert_eq(n, sizeof(client_tp));
	cr_assert_arr_eq(p, client_tp, n);
	cr_assert_eq(tern_tls_peer_tparams(c->tls, &p, &n), 0);
	cr_assert_eq(n, sizeof(server_tp));
	cr_assert_arr_eq(p, server_tp, n);
}

static void assert_alpn(struct tern_tls *tls, const char *want)
{
	const uint8_t *p;
	size_t n;

	cr_assert_eq(tern_tls_alpn(tls, &p, &n), 0);
	cr_assert_eq(n, strlen(want));
	cr_assert_arr_eq(p, want, n);
}

static void run_pair(struct tern_tls_ctx *cctx, struct tern_tls_ctx *sctx, struct side *c,
		     struct side *s, size_t chunk)
{
	side_new(c, cctx, false, client_tp, sizeof(client_tp));
	side_new(s, sctx, true, server_tp, sizeof(server_tp));
	handshake(c, s, chunk);
}

static void free_pair(struct side *c, struct side *s)
{
	tern_tls_free(c->tls);
	tern_tls_free(s->tls);
	free(c);
	free(s);
}

/* ---- a TLS message walker for the ClientHello and NewSessionTicket ------ */

struct ext_span {
	size_t at; /* offset of the extension block's 2-byte length */
	size_t end;
};

/* Finds the extensions block of a ClientHello message (RFC 8446 §4.1.2). */
static struct ext_span client_hello_exts(const uint8_t *m, size_t len)
{
	struct ext_span e;
	size_t p = 4 + 2 + 32;

	cr_assert_geq(len, p + 1);
	cr_assert_eq(m[0], 1, "not a ClientHello");
	cr_assert_eq(((size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3]) + 4, len);
	p += 1 + m[p];                       /* legacy_session_id */
	p += 2 + tern_get_u16(m + p);        /* cipher_suites */
	p += 1 + m[p];                       /* legacy_compression_methods */
	e.at = p;
	e.end = p + 2 + tern_get_u16(m + p);
	cr_assert_eq(e.end, len);
	return e;
}

static bool has_ext(const uint8_t *m, size_t len, uint16_t type)
{
	struct ext_span e = client_hello_exts(m, len);

	for (size_t p = e.at + 2; p < e.end; p += 4 + tern_get_u16(m + p + 2))
		if (tern_get_u16(m + p) == type)
			return true;
	return false;
}

/* Copies ClientHello m without extension `type`, fixing both lengths. */
static size_t strip_ext(const uint8_t *m, size_t len, uint16_t type, uint8_t *out)
{
	struct ext_span e = client_hello_exts(m, len);
	size_t o = e.at + 2, removed = 0;

	memcpy(out, m, e.at + 2);
	for (size_t p = e.at + 2; p < e.end;) {
		size_t n = 4 + tern_get_u16(m + p + 2);
		if (tern_get_u16(m + p) == type) {
			removed += n;
		} else {
			memcpy(out + o, m + p, n);
			o += n;
		}
		p += n;
	}
	cr_assert_gt(removed, 0, "extension %#x not in the ClientHello", type);
	tern_put_u16(out + e.at, (uint16_t)(tern_get_u16(m + e.at) - removed));
	size_t body = o - 4;
	out[1] = (uint8_t)(body >> 16);
	out[2] = (uint8_t)(body >> 8);
	out[3] = (uint8_t)body;
	return o;
}

/* ---- successful handshakes ----------------------------------------------- */

Test(tls, handshake_ecdsa)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();

	run_pair(cctx, sctx, c, s, SIZE_MAX);
	assert_established(c, s, TERN_TLS_AES_128_GCM_SHA256, 32);
	assert_alpn(c->tls, "h3");
	assert_alpn(s->tls, "h3");
	/* Everything after the ServerHello travels at the Handshake level;
	 * the client's last word is its Finished (RFC 9001 §4.1.4). */
	cr_assert_eq(s->out[TERN_TLS_LEVEL_INITIAL][0], 2);
	cr_assert_eq(s->out[TERN_TLS_LEVEL_HANDSHAKE][0], 8);
	cr_assert_eq(c->out[TERN_TLS_LEVEL_HANDSHAKE][0], 20);
	cr_assert_eq(c->out_len[TERN_TLS_LEVEL_HANDSHAKE], 4 + 32);
	cr_assert_eq(c->out_len[TERN_TLS_LEVEL_APPLICATION], 0);
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

Test(tls, handshake_rsa)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1);
	struct tern_tls_ctx *sctx = server_ctx_kind("rsa", alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();

	run_pair(cctx, sctx, c, s, SIZE_MAX);
	assert_established(c, s, TERN_TLS_AES_128_GCM_SHA256, 32);
	assert_alpn(c->tls, "h3");
	assert_alpn(s->tls, "h3");
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

static void suite_case(uint16_t suite, size_t len, bool restrict_server)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();

	cr_assert_eq(tern_tls_ctx_set_suites(restrict_server ? sctx : cctx, &suite, 1), 0);
	run_pair(cctx, sctx, c, s, SIZE_MAX);
	assert_established(c, s, suite, len);
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

Test(tls, suite_aes128gcm)
{
	suite_case(TERN_TLS_AES_128_GCM_SHA256, 32, false);
}

Test(tls, suite_aes256gcm)
{
	suite_case(TERN_TLS_AES_256_GCM_SHA384, 48, false);
}

Test(tls, suite_chacha20)
{
	suite_case(TERN_TLS_CHACHA20_POLY1305_SHA256, 32, false);
}

Test(tls, suite_restricted_by_server)
{
	suite_case(TERN_TLS_AES_256_GCM_SHA384, 48, true);
	suite_case(TERN_TLS_CHACHA20_POLY1305_SHA256, 32, true);
}

Test(tls, no_common_suite_fails_with_handshake_failure)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();
	uint16_t a = TERN_TLS_AES_128_GCM_SHA256, b = TERN_TLS_CHACHA20_POLY1305_SHA256;

	cr_assert_eq(tern_tls_ctx_set_suites(cctx, &a, 1), 0);
	cr_assert_eq(tern_tls_ctx_set_suites(sctx, &b, 1), 0);
	run_pair(cctx, sctx, c, s, SIZE_MAX);
	cr_assert_eq(s->rc, TERN_ERR_QUIC(TERN_QUIC_CRYPTO_ERROR(TERN_TLS_ALERT_HANDSHAKE_FAILURE)));
	cr_assert_eq(tern_err_quic_code(s->rc), 0x128);
	cr_assert_eq(s->n_alerts, 1);
	cr_assert_eq(s->alert, TERN_TLS_ALERT_HANDSHAKE_FAILURE);
	cr_assert_eq(s->alert_level, TERN_TLS_LEVEL_INITIAL);
	cr_assert_not(tern_tls_is_complete(s->tls));
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

Test(tls, set_suites_rejects_bad_lists)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1);
	uint16_t ccm = 0x1304, tls12 = 0xc02b, four[4] = {0x1301, 0x1302, 0x1303, 0x1301};
	uint16_t all[3] = {0x1303, 0x1302, 0x1301};

	cr_assert_eq(tern_tls_ctx_set_suites(cctx, &ccm, 1), TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_ctx_set_suites(cctx, &tls12, 1), TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_ctx_set_suites(cctx, four, 4), TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_ctx_set_suites(cctx, all, 0), TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_ctx_set_suites(cctx, NULL, 1), TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_ctx_set_suites(NULL, all, 3), TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_ctx_set_suites(cctx, all, 3), 0);
	tern_tls_ctx_free(cctx);
}

/* CRYPTO data split anywhere, headers included: wolfSSL 5.5.4 itself fails
 * when a handshake header reaches it split (see tls_feed()). */
Test(tls, split_delivery)
{
	static const size_t chunks[] = {1, 2, 3, 5, 7, 100};
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);

	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct side *c = side_alloc(), *s = side_alloc();

		run_pair(cctx, sctx, c, s, chunks[i]);
		assert_established(c, s, TERN_TLS_AES_128_GCM_SHA256, 32);
		assert_alpn(s->tls, "h3");
		cr_assert_eq(tern_tls_tickets_received(c->tls), 1);
		free_pair(c, s);
	}
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

Test(tls, client_hello_carries_v1_transport_parameters_only)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1);
	struct side *c = side_alloc();
	const uint8_t *ch;
	size_t len;

	side_new(c, cctx, false, client_tp, sizeof(client_tp));
	cr_assert_eq(tern_tls_start(c->tls), 0);
	ch = c->out[TERN_TLS_LEVEL_INITIAL];
	len = c->out_len[TERN_TLS_LEVEL_INITIAL];
	cr_assert(has_ext(ch, len, 0x0039));   /* RFC 9001 §8.2 */
	cr_assert_not(has_ext(ch, len, 0xffa5)); /* the draft codepoint */
	cr_assert(has_ext(ch, len, 0x0010));   /* ALPN */
	cr_assert(has_ext(ch, len, 0x0000));   /* SNI "localhost" */
	cr_assert_eq(tern_tls_start(c->tls), TERN_ERR_STATE);
	tern_tls_free(c->tls);
	free(c);
	tern_tls_ctx_free(cctx);
}

/* RFC 6066 §3: SNI carries host names, never address literals. */
Test(tls, ip_literal_gets_no_sni)
{
	static const char *const names[] = {"127.0.0.1", "::1", "2001:db8::1", "198.18.0.1"};
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1);

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct side *c = side_alloc();

		c->alert = -1;
		cr_assert_eq(tern_tls_new(&c->tls, cctx, false, names[i], client_tp,
					  sizeof(client_tp), &callbacks, c), 0);
		cr_assert_eq(tern_tls_start(c->tls), 0);
		cr_assert_not(has_ext(c->out[0], c->out_len[0], 0x0000), "%s", names[i]);
		cr_assert(has_ext(c->out[0], c->out_len[0], 0x0039));
		tern_tls_free(c->tls);
		free(c);
	}
	tern_tls_ctx_free(cctx);
}

/* ---- tickets and release ------------------------------------------------- */

Test(tls, new_session_ticket_processed_without_early_data)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();
	const uint8_t *m;
	size_t len, p;

	run_pair(cctx, sctx, c, s, SIZE_MAX);
	assert_established(c, s, TERN_TLS_AES_128_GCM_SHA256, 32);
	m = s->out[TERN_TLS_LEVEL_APPLICATION];
	len = s->out_len[TERN_TLS_LEVEL_APPLICATION];
	cr_assert_gt(len, 4, "the server sent no NewSessionTicket");
	cr_assert_eq(s->sent[TERN_TLS_LEVEL_APPLICATION], len, "ticket not delivered");
	cr_assert_eq(tern_tls_tickets_received(c->tls), 1);
	/* RFC 8446 §4.6.1 layout; tern offers no 0-RTT, so no early_data
	 * extension (RFC 9001 §4.6.1). */
	cr_assert_eq(m[0], 4);
	cr_assert_eq(((size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3]) + 4, len);
	p = 4 + 4 + 4;
	p += 1 + m[p];
	p += 2 + tern_get_u16(m + p);
	size_t ext_end = p + 2 + tern_get_u16(m + p);
	cr_assert_eq(ext_end, len);
	for (p += 2; p < ext_end; p += 4 + tern_get_u16(m + p + 2))
		cr_assert_neq(tern_get_u16(m + p), 42, "early_data in the ticket");
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

static long live_blocks;

static void *count_malloc(size_t n)
{
	void *p = malloc(n);
	if (p)
		live_blocks++;
	return p;
}

static void count_free(void *p)
{
	if (p)
		live_blocks--;
	free(p);
}

static void *count_realloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!p && q)
		live_blocks++;
	return q;
}

Test(tls, release_frees_wolfssl_and_keeps_results)
{
	struct tern_tls_ctx *cctx, *sctx;
	struct side *c = side_alloc(), *s = side_alloc();
	const uint8_t *p;
	size_t n;
	long before, after_client, after_server;
	uint8_t ticket[4 + 8];

	cr_assert_eq(wolfSSL_SetAllocators(count_malloc, count_free, count_realloc), 0);
	cctx = client_ctx(alpn_h3_perf, 2);
	sctx = server_ctx(alpn_perf_h3, 2);
	/* A first connection lets the contexts make what they keep (the
	 * server's ticket key); the second must give back all it took. */
	run_pair(cctx, sctx, c, s, SIZE_MAX);
	assert_established(c, s, TERN_TLS_AES_128_GCM_SHA256, 32);
	tern_tls_free(c->tls);
	tern_tls_free(s->tls);
	before = live_blocks;
	run_pair(cctx, sctx, c, s, SIZE_MAX);
	assert_established(c, s, TERN_TLS_AES_128_GCM_SHA256, 32);
	cr_assert_eq(tern_tls_release(c->tls), 0);
	after_client = live_blocks;
	cr_assert_eq(tern_tls_release(s->tls), 0);
	after_server = live_blocks;
	cr_assert_eq(after_server, before, "wolfSSL still holds %ld blocks",
		     after_server - before);
	cr_assert_lt(after_server, after_client);
	cr_assert_eq(tern_tls_release(c->tls), 0, "a second release is a no-op");

	/* What the connection still needs stays readable. */
	cr_assert(tern_tls_is_complete(c->tls));
	assert_alpn(c->tls, "perf");
	assert_alpn(s->tls, "perf");
	cr_assert_eq(tern_tls_cipher_suite(c->tls), TERN_TLS_AES_128_GCM_SHA256);
	cr_assert_eq(tern_tls_peer_tparams(c->tls, &p, &n), 0);
	cr_assert_eq(n, sizeof(server_tp));
	cr_assert_arr_eq(p, server_tp, n);
	cr_assert_eq(tern_tls_peer_tparams(s->tls, &p, &n), 0);
	cr_assert_arr_eq(p, client_tp, sizeof(client_tp));

	/* A later ticket is framed and dropped, split across two calls. */
	memset(ticket, 0xab, sizeof(ticket));
	ticket[0] = 4;
	ticket[1] = 0;
	ticket[2] = 0;
	ticket[3] = 8;
	cr_assert_eq(tern_tls_provide(c->tls, TERN_TLS_LEVEL_APPLICATION, ticket, 5), 0);
	cr_assert_eq(tern_tls_provide(c->tls, TERN_TLS_LEVEL_APPLICATION, ticket + 5, 7), 0);
	cr_assert_eq(tern_tls_tickets_received(c->tls), 2);
	cr_assert_eq(live_blocks, after_server);
	/* Anything but a ticket is still refused. */
	ticket[0] = 24;
	cr_assert_eq(tern_tls_provide(c->tls, TERN_TLS_LEVEL_APPLICATION, ticket, sizeof(ticket)),
		     TERN_ERR_QUIC(0x10a));
	cr_assert_eq(c->alert, TERN_TLS_ALERT_UNEXPECTED_MESSAGE);
	cr_assert_eq(c->alert_level, TERN_TLS_LEVEL_APPLICATION);
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

Test(tls, release_before_complete_is_refused)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1);
	struct side *c = side_alloc();
	const uint8_t *p;
	size_t n;

	side_new(c, cctx, false, client_tp, sizeof(client_tp));
	cr_assert_eq(tern_tls_release(c->tls), TERN_ERR_STATE);
	cr_assert_eq(tern_tls_start(c->tls), 0);
	cr_assert_eq(tern_tls_release(c->tls), TERN_ERR_STATE);
	cr_assert_eq(tern_tls_peer_tparams(c->tls, &p, &n), TERN_ERR_STATE);
	cr_assert_eq(tern_tls_alpn(c->tls, &p, &n), TERN_ERR_STATE);
	cr_assert_eq(tern_tls_cipher_suite(c->tls), 0);
	cr_assert_not(tern_tls_is_complete(c->tls));
	tern_tls_free(c->tls);
	free(c);
	tern_tls_ctx_free(cctx);
}

/* ---- ALPN -------------------------------------------------------------- */

static void alpn_case(const char *const *client, size_t nc, const char *const *server, size_t ns,
		      const char *want)
{
	struct tern_tls_ctx *cctx = client_ctx(client, nc), *sctx = server_ctx(server, ns);
	struct side *c = side_alloc(), *s = side_alloc();

	run_pair(cctx, sctx, c, s, SIZE_MAX);
	assert_established(c, s, TERN_TLS_AES_128_GCM_SHA256, 32);
	assert_alpn(c->tls, want);
	assert_alpn(s->tls, want);
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

Test(tls, alpn_server_preference)
{
	alpn_case(alpn_h3_perf, 2, alpn_perf_h3, 2, "perf");
	alpn_case(alpn_perf_h3, 2, alpn_h3_perf, 2, "h3");
	alpn_case(alpn_perf_h3, 2, alpn_h3, 1, "h3");
	const char *const client[] = {"hq-interop", "x", "perf"};
	alpn_case(client, 3, alpn_h3_perf, 2, "perf");
}

/* The server learns ALPN from the ClientHello, before it completes, so the
 * connection can pick its application for 0.5-RTT data. */
Test(tls, alpn_known_to_server_after_client_hello)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();

	side_new(c, cctx, false, client_tp, sizeof(client_tp));
	side_new(s, sctx, true, server_tp, sizeof(server_tp));
	cr_assert_eq(tern_tls_start(c->tls), 0);
	cr_assert_not(deliver(s, c, SIZE_MAX));
	cr_assert(deliver(c, s, SIZE_MAX));
	cr_assert_eq(s->rc, 0);
	cr_assert_not(tern_tls_is_complete(s->tls));
	assert_alpn(s->tls, "h3");
	cr_assert_eq(s->sec[TERN_TLS_LEVEL_APPLICATION][TERN_TLS_WRITE].count, 1);
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

Test(tls, alpn_mismatch_fails_with_no_application_protocol)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_hq, 1), *sctx = server_ctx(alpn_h3_perf, 2);
	struct side *c = side_alloc(), *s = side_alloc();
	const uint8_t *p;
	size_t n;

	run_pair(cctx, sctx, c, s, SIZE_MAX);
	cr_assert_eq(s->rc, TERN_ERR_QUIC(0x178));
	cr_assert_eq(s->rc, TERN_ERR_QUIC(TERN_QUIC_CRYPTO_ERROR(120)));
	cr_assert(tern_err_is_quic(s->rc));
	cr_assert_eq(tern_err_quic_code(s->rc), 0x178);
	cr_assert_eq(s->n_alerts, 1);
	cr_assert_eq(s->alert, TERN_TLS_ALERT_NO_APPLICATION_PROTOCOL);
	/* Raised while reading the ClientHello: at the Initial level, the only
	 * one the client can read yet, so the close reaches it. */
	cr_assert_eq(s->alert_level, TERN_TLS_LEVEL_INITIAL);
	for (int l = 0; l < TERN_TLS_NUM_LEVELS; l++)
		cr_assert_eq(s->out_len[l], 0, "server sent a flight at level %d", l);
	for (int d = 0; d < 2; d++)
		cr_assert_eq(s->sec[TERN_TLS_LEVEL_HANDSHAKE][d].count, 0);
	cr_assert_not(tern_tls_is_complete(s->tls));
	cr_assert_not(tern_tls_is_complete(c->tls));
	cr_assert_eq(tern_tls_alpn(s->tls, &p, &n), TERN_ERR_STATE);
	/* Final: the same error again, and no second alert. */
	cr_assert_eq(tern_tls_provide(s->tls, TERN_TLS_LEVEL_INITIAL, c->out[0], 1),
		     TERN_ERR_QUIC(0x178));
	cr_assert_eq(s->n_alerts, 1);
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

/* Feeds the server a tern ClientHello with one extension cut out. */
static void stripped_hello_case(uint16_t ext, int want_rc, int want_alert)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();
	uint8_t hello[OUT_CAP];
	size_t len;
	int rc;

	side_new(c, cctx, false, client_tp, sizeof(client_tp));
	side_new(s, sctx, true, server_tp, sizeof(server_tp));
	cr_assert_eq(tern_tls_start(c->tls), 0);
	len = strip_ext(c->out[0], c->out_len[0], ext, hello);
	cr_assert_not(has_ext(hello, len, ext));
	rc = tern_tls_provide(s->tls, TERN_TLS_LEVEL_INITIAL, hello, len);
	cr_assert_eq(rc, want_rc, "rc %d (code %#llx)", rc,
		     (unsigned long long)tern_err_quic_code(rc));
	cr_assert_eq(s->n_alerts, want_alert >= 0 ? 1 : 0);
	if (want_alert >= 0) {
		cr_assert_eq(s->alert, want_alert);
		cr_assert_eq(s->alert_level, TERN_TLS_LEVEL_INITIAL);
	}
	/* Refused before wolfSSL answered: no server flight to discard. */
	for (int l = 0; l < TERN_TLS_NUM_LEVELS; l++)
		cr_assert_eq(s->out_len[l], 0, "server flight at level %d", l);
	cr_assert_not(tern_tls_is_complete(s->tls));
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

Test(tls, client_hello_without_alpn_fails_with_120)
{
	stripped_hello_case(0x0010, TERN_ERR_QUIC(0x178), 120);
}

Test(tls, client_hello_without_transport_parameters_fails_with_109)
{
	stripped_hello_case(0x0039, TERN_ERR_QUIC(0x16d), 109);
}

/* An ALPN extension tern cannot read goes to wolfSSL, which names it. */
Test(tls, client_hello_with_malformed_alpn_gets_decode_error)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();
	static const uint8_t good[] = {0x00, 0x10, 0x00, 0x05, 0x00, 0x03, 0x02, 'h', '3'};
	uint8_t *m;
	size_t len;
	int rc;

	side_new(c, cctx, false, client_tp, sizeof(client_tp));
	side_new(s, sctx, true, server_tp, sizeof(server_tp));
	cr_assert_eq(tern_tls_start(c->tls), 0);
	m = c->out[0];
	len = c->out_len[0];
	uint8_t *at = NULL;
	for (size_t i = 0; !at && i + sizeof(good) <= len; i++)
		if (memcmp(m + i, good, sizeof(good)) == 0)
			at = m + i;
	cr_assert_not_null(at, "ALPN extension not found as expected");
	at[6] = 0; /* a zero-length protocol name, RFC 7301 §3.1 forbids it */
	rc = tern_tls_provide(s->tls, TERN_TLS_LEVEL_INITIAL, m, len);
	cr_assert_eq(rc, TERN_ERR_QUIC(0x100 + TERN_TLS_ALERT_DECODE_ERROR), "code %#llx",
		     (unsigned long long)tern_err_quic_code(rc));
	cr_assert_eq(s->n_alerts, 1);
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

/* One side sends len bytes of transport parameters; `want` is what the
 * other side's provide() ends with. */
static void tparams_size_case(size_t len, int want, bool from_server)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();
	struct side *rx = from_server ? c : s;
	uint8_t *tp = malloc(len);
	const uint8_t *p;
	size_t n;

	for (size_t i = 0; i < len; i++)
		tp[i] = (uint8_t)(i * 7 + 1);
	side_new(c, cctx, false, from_server ? client_tp : tp,
		 from_server ? sizeof(client_tp) : len);
	side_new(s, sctx, true, from_server ? tp : server_tp, from_server ? len : sizeof(server_tp));
	handshake(c, s, SIZE_MAX);
	cr_assert_eq(rx->rc, want, "rc %d", rx->rc);
	if (want == 0) {
		cr_assert(tern_tls_is_complete(rx->tls));
		cr_assert_eq(tern_tls_peer_tparams(rx->tls, &p, &n), 0);
		cr_assert_eq(n, len);
		cr_assert_arr_eq(p, tp, len);
	} else {
		cr_assert_eq(rx->n_alerts, 0);
		cr_assert_eq(tern_tls_peer_tparams(rx->tls, &p, &n), TERN_ERR_STATE);
		cr_assert_not(tern_tls_is_complete(rx->tls));
		if (!from_server)
			for (int l = 0; l < TERN_TLS_NUM_LEVELS; l++)
				cr_assert_eq(s->out_len[l], 0);
	}
	free(tp);
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

Test(tls, peer_tparams_bound)
{
	for (int from_server = 0; from_server < 2; from_server++) {
		tparams_size_case(1, 0, from_server);
		tparams_size_case(TERN_TLS_MAX_PEER_TPARAMS, 0, from_server);
		tparams_size_case(TERN_TLS_MAX_PEER_TPARAMS + 1,
				  TERN_ERR_QUIC(TERN_QUIC_TRANSPORT_PARAMETER_ERROR), from_server);
	}
}

/* A plain wolfSSL QUIC server, to show the client what a tern server never
 * sends: a handshake without ALPN. */
static int raw_secrets(WOLFSSL *ssl, WOLFSSL_ENCRYPTION_LEVEL level, const uint8_t *rx,
		       const uint8_t *tx, size_t len)
{
	(void)ssl, (void)level, (void)rx, (void)tx, (void)len;
	return 1;
}

static int raw_add(WOLFSSL *ssl, WOLFSSL_ENCRYPTION_LEVEL level, const uint8_t *data, size_t len)
{
	return on_crypto_data(wolfSSL_get_app_data(ssl), (enum tern_tls_level)level, data, len) == 0;
}

static int raw_flush(WOLFSSL *ssl)
{
	(void)ssl;
	return 1;
}

static int raw_alert(WOLFSSL *ssl, WOLFSSL_ENCRYPTION_LEVEL level, uint8_t alert)
{
	on_alert(wolfSSL_get_app_data(ssl), (enum tern_tls_level)level, alert);
	return 1;
}

static const WOLFSSL_QUIC_METHOD raw_method = {raw_secrets, raw_add, raw_flush, raw_alert};

Test(tls, client_refuses_server_without_alpn)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();
	struct pem cert = load_pem("ec-cert.pem"), key = load_pem("ec-key.pem");
	WOLFSSL_CTX *wctx;
	WOLFSSL *ssl;

	side_new(c, cctx, false, client_tp, sizeof(client_tp));
	s->alert = -1;
	wctx = wolfSSL_CTX_new(wolfTLSv1_3_server_method());
	cr_assert_not_null(wctx);
	cr_assert_eq(wolfSSL_CTX_set_quic_method(wctx, &raw_method), WOLFSSL_SUCCESS);
	cr_assert_eq(wolfSSL_CTX_use_certificate_chain_buffer_format(wctx, cert.data, (long)cert.len,
								     WOLFSSL_FILETYPE_PEM), 1);
	cr_assert_eq(wolfSSL_CTX_use_PrivateKey_buffer(wctx, key.data, (long)key.len,
						       WOLFSSL_FILETYPE_PEM), 1);
	ssl = wolfSSL_new(wctx);
	wolfSSL_set_app_data(ssl, s);
	cr_assert_eq(wolfSSL_set_quic_transport_params(ssl, server_tp, sizeof(server_tp)), 1);

	cr_assert_eq(tern_tls_start(c->tls), 0);
	for (int round = 0; round < 4 && !c->rc; round++) {
		for (int l = 0; l < TERN_TLS_NUM_LEVELS; l++) {
			if (c->sent[l] < c->out_len[l])
				cr_assert_eq(wolfSSL_provide_quic_data(ssl, (WOLFSSL_ENCRYPTION_LEVEL)l,
								       c->out[l] + c->sent[l],
								       c->out_len[l] - c->sent[l]), 1);
			c->sent[l] = c->out_len[l];
		}
		wolfSSL_quic_do_handshake(ssl);
		deliver(s, c, SIZE_MAX);
	}
	/* RFC 9001 §8.1: no agreed application protocol, no connection. */
	cr_assert_eq(c->rc, TERN_ERR_QUIC(0x178), "rc %d", c->rc);
	cr_assert_eq(c->n_alerts, 1);
	cr_assert_eq(c->alert, TERN_TLS_ALERT_NO_APPLICATION_PROTOCOL);
	cr_assert_eq(s->n_alerts, 0);
	wolfSSL_free(ssl);
	wolfSSL_CTX_free(wctx);
	free(cert.data);
	free(key.data);
	tern_tls_free(c->tls);
	free(c);
	free(s);
	tern_tls_ctx_free(cctx);
}

/* A HelloRetryRequest (RFC 8446 §4.1.4): a plain wolfSSL client whose key
 * share is for P-384, which tern does not offer, so the server asks again
 * and the second ClientHello goes past the first-hello checks. */
Test(tls, server_handles_hello_retry_request)
{
	struct tern_tls_ctx *sctx = server_ctx(alpn_perf_h3, 2);
	struct side *c = side_alloc(), *s = side_alloc();
	int groups[] = {WOLFSSL_ECC_SECP384R1, WOLFSSL_ECC_SECP256R1};
	char alpn[] = "h3";
	WOLFSSL_CTX *wctx;
	WOLFSSL *ssl;
	int hellos = 0;

	side_new(s, sctx, true, server_tp, sizeof(server_tp));
	c->alert = -1;
	wctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
	cr_assert_not_null(wctx);
	cr_assert_eq(wolfSSL_CTX_set_quic_method(wctx, &raw_method), WOLFSSL_SUCCESS);
	cr_assert_eq(wolfSSL_CTX_set_groups(wctx, groups, 2), WOLFSSL_SUCCESS);
	wolfSSL_CTX_set_verify(wctx, WOLFSSL_VERIFY_NONE, NULL);
	ssl = wolfSSL_new(wctx);
	wolfSSL_set_app_data(ssl, c);
	cr_assert_eq(wolfSSL_UseALPN(ssl, alpn, 2, WOLFSSL_ALPN_FAILED_ON_MISMATCH), 1);
	cr_assert_eq(wolfSSL_set_quic_transport_params(ssl, client_tp, sizeof(client_tp)), 1);
	cr_assert_eq(wolfSSL_UseKeyShare(ssl, WOLFSSL_ECC_SECP384R1), 1);

	wolfSSL_quic_do_handshake(ssl);
	for (int round = 0; round < 6 && !s->rc; round++) {
		for (size_t p = 0; p < c->out_len[0]; p += 4 + ((size_t)c->out[0][p + 2] << 8 |
								c->out[0][p + 3]))
			hellos += p >= c->sent[0] && c->out[0][p] == 1;
		deliver(c, s, SIZE_MAX);
		for (int l = 0; l < TERN_TLS_NUM_LEVELS; l++) {
			if (s->sent[l] < s->out_len[l])
				cr_assert_eq(wolfSSL_provide_quic_data(ssl, (WOLFSSL_ENCRYPTION_LEVEL)l,
								       s->out[l] + s->sent[l],
								       s->out_len[l] - s->sent[l]), 1);
			s->sent[l] = s->out_len[l];
		}
		wolfSSL_quic_do_handshake(ssl);
	}
	cr_assert_eq(hellos, 2, "no HelloRetryRequest happened");
	cr_assert_eq(s->rc, 0, "rc %d", s->rc);
	cr_assert_eq(c->n_alerts, 0);
	cr_assert(tern_tls_is_complete(s->tls));
	cr_assert(wolfSSL_is_init_finished(ssl));
	assert_alpn(s->tls, "h3");
	wolfSSL_free(ssl);
	wolfSSL_CTX_free(wctx);
	tern_tls_free(s->tls);
	free(c);
	free(s);
	tern_tls_ctx_free(sctx);
}

/* ---- key log ------------------------------------------------------------- */

struct keylog {
	int n;
	char lines[8][TERN_TLS_KEYLOG_LINE_MAX];
};

static void keylog_cb(void *arg, const char *line)
{
	struct keylog *k = arg;

	cr_assert_lt(k->n, 8);
	cr_assert_lt(strlen(line), TERN_TLS_KEYLOG_LINE_MAX);
	strcpy(k->lines[k->n++], line);
}

static void hex(char *out, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static const char *find_line(struct keylog *k, const char *label)
{
	const char *found = NULL;
	size_t l = strlen(label);

	for (int i = 0; i < k->n; i++)
		if (strncmp(k->lines[i], label, l) == 0 && k->lines[i][l] == ' ') {
			cr_assert_null(found, "%s logged twice", label);
			found = k->lines[i];
		}
	cr_assert_not_null(found, "%s not logged", label);
	return found;
}

static void check_keylog(struct keylog *k, struct side *who, bool server, const char *random)
{
	static const char *const labels[4] = {
		"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
		"CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"};

	cr_assert_eq(k->n, 4);
	for (int i = 0; i < 4; i++) {
		int level = i < 2 ? TERN_TLS_LEVEL_HANDSHAKE : TERN_TLS_LEVEL_APPLICATION;
		bool client_secret = i % 2 == 0;
		int dir = client_secret != server ? TERN_TLS_WRITE : TERN_TLS_READ;
		char want[TERN_TLS_KEYLOG_LINE_MAX], sec[2 * TERN_TLS_MAX_SECRET_LEN + 1];

		hex(sec, who->sec[level][dir].secret, who->sec[level][dir].len);
		snprintf(want, sizeof(want), "%s %s %s", labels[i], random, sec);
		cr_assert_str_eq(find_line(k, labels[i]), want);
	}
}

Test(tls, keylog_lines)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();
	struct keylog *kc = calloc(1, sizeof(*kc)), *ks = calloc(1, sizeof(*ks));
	char random[65];
	uint16_t suite = TERN_TLS_AES_256_GCM_SHA384;

	tern_tls_ctx_set_keylog(cctx, keylog_cb, kc);
	tern_tls_ctx_set_keylog(sctx, keylog_cb, ks);
	cr_assert_eq(tern_tls_ctx_set_suites(cctx, &suite, 1), 0);
	run_pair(cctx, sctx, c, s, SIZE_MAX);
	assert_established(c, s, suite, 48);
	/* The client random is bytes 6..37 of the ClientHello (RFC 8446 §4.1.2). */
	hex(random, c->out[TERN_TLS_LEVEL_INITIAL] + 6, 32);
	check_keylog(kc, c, false, random);
	check_keylog(ks, s, true, random);
	/* Both ends log the same four lines, in whatever order. */
	for (int i = 0; i < 4; i++) {
		int same = 0;
		for (int j = 0; j < 4; j++)
			same += strcmp(kc->lines[i], ks->lines[j]) == 0;
		cr_assert_eq(same, 1, "%s", kc->lines[i]);
	}
	free(kc);
	free(ks);
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

/* ---- contexts: PEM and argument errors ----------------------------------- */

static void server_ctx_fails(const struct pem *cert, const struct pem *key, const char *want)
{
	struct tern_tls_ctx *ctx = (struct tern_tls_ctx *)&ctx;
	char err[256] = "";
	int rc = tern_tls_ctx_new_server(&ctx, cert->data, cert->len, key->data, key->len, alpn_h3,
					 1, err, sizeof(err));

	cr_assert_eq(rc, TERN_ERR_INVAL, "rc %d, err %s", rc, err);
	cr_assert_null(ctx);
	cr_assert_eq(strncmp(err, want, strlen(want)), 0, "err is \"%s\"", err);
	cr_assert_null(strchr(err, '\n'), "one line");
}

Test(tls, mismatched_certificate_and_key)
{
	struct pem ec_cert = load_pem("ec-cert.pem"), ec_key = load_pem("ec-key.pem");
	struct pem rsa_cert = load_pem("rsa-cert.pem"), rsa_key = load_pem("rsa-key.pem");

	server_ctx_fails(&ec_cert, &rsa_key, "certificate and private key do not match");
	server_ctx_fails(&rsa_cert, &ec_key, "certificate and private key do not match");
	free(ec_cert.data);
	free(ec_key.data);
	free(rsa_cert.data);
	free(rsa_key.data);
}

Test(tls, garbage_pem)
{
	struct pem cert = load_pem("ec-cert.pem"), key = load_pem("ec-key.pem");
	static uint8_t junk[] = "this is not a certificate";
	struct pem garbage = {junk, sizeof(junk) - 1};
	/* A PEM frame around base64 that is not DER. */
	static uint8_t bad_der[] = "-----BEGIN CERTIFICATE-----\nAAAAAAAAAAAA\n"
				   "-----END CERTIFICATE-----\n";
	struct pem broken = {bad_der, sizeof(bad_der) - 1};
	/* The certificate cut in half. */
	struct pem half = {cert.data, cert.len / 2};

	server_ctx_fails(&garbage, &key, "cannot parse certificate PEM: ");
	server_ctx_fails(&broken, &key, "cannot parse certificate PEM: ");
	server_ctx_fails(&half, &key, "cannot parse certificate PEM: ");
	server_ctx_fails(&cert, &garbage, "cannot parse private key PEM: ");
	free(cert.data);
	free(key.data);
}

Test(tls, ctx_argument_errors)
{
	struct pem cert = load_pem("ec-cert.pem"), key = load_pem("ec-key.pem");
	struct tern_tls_ctx *ctx;
	char err[128];
	char long_id[257];
	const char *const empty_id[] = {""};
	const char *const comma[] = {"h3,perf"};
	const char *const null_id[] = {NULL};
	const char *const nine[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
	const char *const too_long[] = {long_id};

	memset(long_id, 'x', 256);
	long_id[256] = '\0';
	cr_assert_eq(tern_tls_ctx_new_server(NULL, cert.data, cert.len, key.data, key.len,
					     alpn_h3, 1, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_ctx_new_server(&ctx, NULL, 0, key.data, key.len, alpn_h3, 1, err,
					     sizeof(err)), TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_ctx_new_server(&ctx, cert.data, cert.len, key.data, 0, alpn_h3, 1,
					     NULL, 0), TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_ctx_new_server(&ctx, cert.data, cert.len, key.data, key.len, NULL,
					     0, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_ctx_new_client(&ctx, empty_id, 1, false, NULL, 0, err, sizeof(err)),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_ctx_new_client(&ctx, comma, 1, false, NULL, 0, err, sizeof(err)),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_ctx_new_client(&ctx, null_id, 1, false, NULL, 0, err, sizeof(err)),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_ctx_new_client(&ctx, nine, 9, false, NULL, 0, err, sizeof(err)),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_ctx_new_client(&ctx, too_long, 1, false, NULL, 0, err, sizeof(err)),
		     TERN_ERR_INVAL);
	long_id[255] = '\0'; /* 255 bytes is the RFC 7301 maximum */
	cr_assert_eq(tern_tls_ctx_new_client(&ctx, too_long, 1, false, NULL, 0, err, sizeof(err)),
		     0);
	tern_tls_ctx_free(ctx);
	cr_assert_eq(tern_tls_ctx_new_client(&ctx, nine, 8, false, NULL, 0, err, sizeof(err)), 0);
	tern_tls_ctx_free(ctx);
	/* Verifying without a CA would need the system store: file I/O. */
	err[0] = '\0';
	cr_assert_eq(tern_tls_ctx_new_client(&ctx, alpn_h3, 1, true, NULL, 0, err, sizeof(err)),
		     TERN_ERR_INVAL);
	cr_assert_neq(err[0], '\0');
	cr_assert_eq(tern_tls_ctx_new_client(&ctx, alpn_h3, 1, true, (const uint8_t *)"junk", 4,
					     err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_eq(strncmp(err, "cannot parse CA certificate PEM: ", 33), 0, "%s", err);
	tern_tls_ctx_free(NULL);
	free(cert.data);
	free(key.data);
}

Test(tls, new_argument_errors)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct tern_tls *t = (struct tern_tls *)&t;
	struct tern_tls_callbacks no_alert = callbacks;
	struct side *c = side_alloc();

	no_alert.on_alert = NULL;
	cr_assert_eq(tern_tls_new(&t, cctx, true, NULL, client_tp, sizeof(client_tp), &callbacks, c),
		     TERN_ERR_INVAL, "server on a client context");
	cr_assert_null(t);
	cr_assert_eq(tern_tls_new(&t, sctx, false, NULL, client_tp, sizeof(client_tp), &callbacks, c),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_new(&t, cctx, false, NULL, client_tp, 0, &callbacks, c),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_new(&t, cctx, false, NULL, NULL, 4, &callbacks, c), TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_new(&t, cctx, false, NULL, client_tp, sizeof(client_tp), NULL, c),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_new(&t, cctx, false, NULL, client_tp, sizeof(client_tp), &no_alert, c),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_new(NULL, cctx, false, NULL, client_tp, sizeof(client_tp),
				  &callbacks, c), TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_new(&t, NULL, false, NULL, client_tp, sizeof(client_tp), &callbacks, c),
		     TERN_ERR_INVAL);
	/* A client without a server name is fine when it does not verify. */
	cr_assert_eq(tern_tls_new(&t, cctx, false, NULL, client_tp, sizeof(client_tp), &callbacks, c),
		     0);
	cr_assert_eq(tern_tls_start(t), 0);
	cr_assert_not(has_ext(c->out[0], c->out_len[0], 0x0000));
	cr_assert_eq(tern_tls_provide(t, (enum tern_tls_level)4, client_tp, 1), TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_provide(t, TERN_TLS_LEVEL_INITIAL, NULL, 1), TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_provide(NULL, TERN_TLS_LEVEL_INITIAL, client_tp, 1), TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_start(NULL), TERN_ERR_INVAL);
	cr_assert_eq(tern_tls_release(NULL), TERN_ERR_INVAL);
	cr_assert_not(tern_tls_is_complete(NULL));
	tern_tls_free(t);
	tern_tls_free(NULL);
	free(c);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

Test(tls, call_order_errors)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();
	const uint8_t hello[] = {1, 0, 0, 0};

	side_new(c, cctx, false, client_tp, sizeof(client_tp));
	side_new(s, sctx, true, server_tp, sizeof(server_tp));
	cr_assert_eq(tern_tls_start(s->tls), TERN_ERR_STATE, "a server does not start");
	cr_assert_eq(tern_tls_provide(c->tls, TERN_TLS_LEVEL_INITIAL, hello, sizeof(hello)),
		     TERN_ERR_STATE, "a client starts first");
	cr_assert_eq(c->n_alerts, 0);
	/* Those were caller errors, not final ones: the handshake still runs. */
	handshake(c, s, SIZE_MAX);
	assert_established(c, s, TERN_TLS_AES_128_GCM_SHA256, 32);
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

/* ---- certificate verification --------------------------------------------- */

static void verify_case(const char *ca_file, const char *name, int want_client_rc,
			int want_alert)
{
	struct pem ca = load_pem(ca_file);
	struct tern_tls_ctx *cctx = NULL, *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();
	char err[256] = "";

	cr_assert_eq(tern_tls_ctx_new_client(&cctx, alpn_h3, 1, true, ca.data, ca.len, err,
					     sizeof(err)), 0, "%s", err);
	memset(c, 0, sizeof(*c));
	c->alert = -1;
	cr_assert_eq(tern_tls_new(&c->tls, cctx, false, name, client_tp, sizeof(client_tp),
				  &callbacks, c), 0);
	side_new(s, sctx, true, server_tp, sizeof(server_tp));
	handshake(c, s, SIZE_MAX);
	cr_assert_eq(c->rc, want_client_rc, "client rc %d (code %#llx)", c->rc,
		     (unsigned long long)tern_err_quic_code(c->rc));
	if (want_client_rc == 0) {
		assert_established(c, s, TERN_TLS_AES_128_GCM_SHA256, 32);
	} else {
		cr_assert_eq(c->n_alerts, 1);
		cr_assert_eq(c->alert, want_alert);
		cr_assert_eq(c->alert_level, TERN_TLS_LEVEL_HANDSHAKE);
		cr_assert_not(tern_tls_is_complete(c->tls));
		cr_assert_eq(c->sec[TERN_TLS_LEVEL_APPLICATION][TERN_TLS_READ].count, 0);
	}
	free(ca.data);
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

Test(tls, verify_peer_accepts_trusted_certificate)
{
	verify_case("ec-cert.pem", "localhost", 0, -1);
}

Test(tls, verify_peer_rejects_wrong_name)
{
	verify_case("ec-cert.pem", "example.com",
		    TERN_ERR_QUIC(TERN_QUIC_CRYPTO_ERROR(TERN_TLS_ALERT_BAD_CERTIFICATE)),
		    TERN_TLS_ALERT_BAD_CERTIFICATE);
}

Test(tls, verify_peer_rejects_untrusted_certificate)
{
	/* RFC 8446 §6.2: unknown_ca, the chain leads to no trusted CA. */
	verify_case("rsa-cert.pem", "localhost",
		    TERN_ERR_QUIC(TERN_QUIC_CRYPTO_ERROR(TERN_TLS_ALERT_UNKNOWN_CA)),
		    TERN_TLS_ALERT_UNKNOWN_CA);
}

/* ---- callbacks that fail ------------------------------------------------- */

Test(tls, crypto_data_callback_error_is_returned)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1);
	struct side *c = side_alloc();

	side_new(c, cctx, false, client_tp, sizeof(client_tp));
	c->crypto_err = TERN_ERR_NOMEM;
	cr_assert_eq(tern_tls_start(c->tls), TERN_ERR_NOMEM);
	cr_assert_eq(tern_tls_provide(c->tls, TERN_TLS_LEVEL_INITIAL, NULL, 0), TERN_ERR_NOMEM);
	tern_tls_free(c->tls);
	free(c);
	tern_tls_ctx_free(cctx);
}

Test(tls, secret_callback_error_is_returned)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();

	side_new(c, cctx, false, client_tp, sizeof(client_tp));
	side_new(s, sctx, true, server_tp, sizeof(server_tp));
	s->secret_err = TERN_ERR_CRYPTO;
	handshake(c, s, SIZE_MAX);
	cr_assert_eq(s->rc, TERN_ERR_CRYPTO);
	cr_assert_not(tern_tls_is_complete(s->tls));
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

/* ---- hostile handshake bytes -------------------------------------------- */

/* A fresh server (or a started client) for feeding crafted bytes. */
static struct side *lone_side(struct tern_tls_ctx **ctx, bool server)
{
	struct side *x = side_alloc();

	*ctx = server ? server_ctx(alpn_h3, 1) : client_ctx(alpn_h3, 1);
	side_new(x, *ctx, server, server ? server_tp : client_tp,
		 server ? sizeof(server_tp) : sizeof(client_tp));
	if (!server)
		cr_assert_eq(tern_tls_start(x->tls), 0);
	return x;
}

static void lone_free(struct side *x, struct tern_tls_ctx *ctx)
{
	tern_tls_free(x->tls);
	free(x);
	tern_tls_ctx_free(ctx);
}

static bool is_crypto_error(int rc)
{
	uint64_t code = tern_err_quic_code(rc);
	return tern_err_is_quic(rc) && code >= 0x100 && code <= 0x1ff;
}

Test(tls, garbage_client_hello_fails_cleanly)
{
	/* Deterministic xorshift bytes behind a plausible ClientHello header. */
	uint32_t x = 0x12345678;

	for (int round = 0; round < 40; round++) {
		struct tern_tls_ctx *ctx;
		struct side *s = lone_side(&ctx, true);
		size_t body = 1 + (size_t)round * 37;
		uint8_t msg[4 + 1500];
		int rc;

		msg[0] = 1;
		msg[1] = 0;
		msg[2] = (uint8_t)(body >> 8);
		msg[3] = (uint8_t)body;
		for (size_t i = 0; i < body; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			msg[4 + i] = (uint8_t)x;
		}
		if (round % 2)
			msg[4] = 3, msg[5] = 3; /* legacy_version 0x0303 */
		rc = tern_tls_provide(s->tls, TERN_TLS_LEVEL_INITIAL, msg, 4 + body);
		cr_assert(is_crypto_error(rc), "round %d: rc %d", round, rc);
		cr_assert_eq(s->n_alerts, 1, "round %d", round);
		/* RFC 8446 §6.2: a hello too short for its version, or a TLS 1.2
		 * one of noise, is a decode_error; a version that is not TLS 1.2
		 * (and no supported_versions) is protocol_version. */
		cr_assert_eq(s->alert, round % 2 || body < 2 ? TERN_TLS_ALERT_DECODE_ERROR
						       : TERN_TLS_ALERT_PROTOCOL_VERSION,
			     "round %d: alert %d", round, s->alert);
		cr_assert_eq(tern_err_quic_code(rc), 0x100u + (unsigned)s->alert);
		cr_assert_eq(s->alert_level, TERN_TLS_LEVEL_INITIAL);
		for (int l = 0; l < TERN_TLS_NUM_LEVELS; l++)
			cr_assert_eq(s->out_len[l], 0);
		cr_assert_eq(tern_tls_provide(s->tls, TERN_TLS_LEVEL_INITIAL, msg, 4), rc);
		cr_assert_eq(s->n_alerts, 1);
		lone_free(s, ctx);
	}
}

Test(tls, garbage_server_hello_fails_cleanly)
{
	struct tern_tls_ctx *ctx;
	struct side *c = lone_side(&ctx, false);
	uint8_t msg[4 + 64];
	int rc;

	memset(msg, 0x5a, sizeof(msg));
	msg[0] = 2;
	msg[1] = 0;
	msg[2] = 0;
	msg[3] = 64;
	rc = tern_tls_provide(c->tls, TERN_TLS_LEVEL_INITIAL, msg, sizeof(msg));
	cr_assert(is_crypto_error(rc), "rc %d", rc);
	cr_assert_eq(c->n_alerts, 1);
	cr_assert_eq(tern_err_quic_code(rc), 0x100u + (unsigned)c->alert);
	cr_assert_not(tern_tls_is_complete(c->tls));
	lone_free(c, ctx);
}

Test(tls, unknown_message_type_fails_cleanly)
{
	struct tern_tls_ctx *ctx;
	struct side *s = lone_side(&ctx, true);
	const uint8_t msg[] = {0xfe, 0, 0, 2, 0xaa, 0xbb};
	int rc = tern_tls_provide(s->tls, TERN_TLS_LEVEL_INITIAL, msg, sizeof(msg));

	cr_assert(is_crypto_error(rc), "rc %d", rc);
	cr_assert_eq(s->n_alerts, 1);
	lone_free(s, ctx);
}

Test(tls, oversized_message_exceeds_crypto_buffer)
{
	struct tern_tls_ctx *ctx;
	struct side *s = lone_side(&ctx, true);
	/* Exactly the bound: accepted, TLS waits for the rest. */
	const uint8_t at_limit[] = {1, 0x01, 0x00, 0x00};
	const uint8_t over[] = {1, 0x01, 0x00, 0x01};
	const uint8_t huge[] = {1, 0xff, 0xff, 0xff};

	cr_assert_eq(TERN_TLS_MAX_MESSAGE, 0x10000);
	cr_assert_eq(tern_tls_provide(s->tls, TERN_TLS_LEVEL_INITIAL, at_limit, 4), 0);
	lone_free(s, ctx);

	s = lone_side(&ctx, true);
	cr_assert_eq(tern_tls_provide(s->tls, TERN_TLS_LEVEL_INITIAL, over, 4),
		     TERN_ERR_QUIC(TERN_QUIC_CRYPTO_BUFFER_EXCEEDED));
	cr_assert_eq(s->n_alerts, 0);
	lone_free(s, ctx);

	/* The header split over calls is caught all the same. */
	s = lone_side(&ctx, true);
	cr_assert_eq(tern_tls_provide(s->tls, TERN_TLS_LEVEL_INITIAL, huge, 3), 0);
	cr_assert_eq(tern_tls_provide(s->tls, TERN_TLS_LEVEL_INITIAL, huge + 3, 1),
		     TERN_ERR_QUIC(0x0d));
	lone_free(s, ctx);
}

Test(tls, zero_rtt_level_crypto_is_a_protocol_violation)
{
	struct tern_tls_ctx *ctx;
	struct side *s = lone_side(&ctx, true);
	const uint8_t b[] = {1};

	cr_assert_eq(tern_tls_provide(s->tls, TERN_TLS_LEVEL_EARLY, b, 1),
		     TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION));
	cr_assert_eq(s->n_alerts, 0);
	cr_assert_eq(tern_tls_provide(s->tls, TERN_TLS_LEVEL_INITIAL, b, 1),
		     TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION), "final");
	lone_free(s, ctx);
}

Test(tls, key_update_is_unexpected_message)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();
	const uint8_t key_update[] = {24, 0, 0, 1, 0};

	run_pair(cctx, sctx, c, s, SIZE_MAX);
	assert_established(c, s, TERN_TLS_AES_128_GCM_SHA256, 32);
	/* RFC 9001 §6: 0x010a, equivalent to unexpected_message. */
	cr_assert_eq(tern_tls_provide(c->tls, TERN_TLS_LEVEL_APPLICATION, key_update,
				      sizeof(key_update)), TERN_ERR_QUIC(0x10a));
	cr_assert_eq(c->n_alerts, 1);
	cr_assert_eq(c->alert, TERN_TLS_ALERT_UNEXPECTED_MESSAGE);
	cr_assert_eq(c->alert_level, TERN_TLS_LEVEL_APPLICATION);
	/* Sent by a client to a server it is just as wrong. */
	cr_assert_eq(tern_tls_provide(s->tls, TERN_TLS_LEVEL_APPLICATION, key_update,
				      sizeof(key_update)), TERN_ERR_QUIC(0x10a));
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

/* The KeyUpdate ban holds at every level, not just after the handshake. */
Test(tls, key_update_during_handshake_is_unexpected_message)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();
	const uint8_t key_update[] = {24, 0, 0, 1, 0};

	side_new(c, cctx, false, client_tp, sizeof(client_tp));
	side_new(s, sctx, true, server_tp, sizeof(server_tp));
	cr_assert_eq(tern_tls_start(c->tls), 0);
	cr_assert(deliver(c, s, SIZE_MAX));
	/* The client reads the ServerHello, then a KeyUpdate where the
	 * EncryptedExtensions belong. */
	cr_assert_eq(tern_tls_provide(c->tls, TERN_TLS_LEVEL_INITIAL, s->out[0], s->out_len[0]), 0);
	cr_assert_eq(tern_tls_provide(c->tls, TERN_TLS_LEVEL_HANDSHAKE, key_update,
				      sizeof(key_update)), TERN_ERR_QUIC(0x10a));
	cr_assert_eq(c->n_alerts, 1);
	cr_assert_eq(c->alert, TERN_TLS_ALERT_UNEXPECTED_MESSAGE);
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

Test(tls, post_handshake_messages_other_than_tickets)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();
	const uint8_t cert_request[] = {13, 0, 0, 3, 0, 0, 0};
	const uint8_t ticket[] = {4, 0, 0, 0};

	run_pair(cctx, sctx, c, s, SIZE_MAX);
	assert_established(c, s, TERN_TLS_AES_128_GCM_SHA256, 32);
	/* RFC 9001 §4.4: post-handshake CertificateRequest. */
	cr_assert_eq(tern_tls_provide(c->tls, TERN_TLS_LEVEL_APPLICATION, cert_request,
				      sizeof(cert_request)),
		     TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION));
	cr_assert_eq(c->n_alerts, 0);
	/* A server takes no post-handshake messages at all, tickets included. */
	cr_assert_eq(tern_tls_provide(s->tls, TERN_TLS_LEVEL_APPLICATION, ticket, sizeof(ticket)),
		     TERN_ERR_QUIC(0x10a));
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

Test(tls, end_of_early_data_is_unexpected_message)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();
	const uint8_t eoed[] = {5, 0, 0, 0};

	side_new(c, cctx, false, client_tp, sizeof(client_tp));
	side_new(s, sctx, true, server_tp, sizeof(server_tp));
	cr_assert_eq(tern_tls_start(c->tls), 0);
	cr_assert(deliver(c, s, SIZE_MAX));
	cr_assert_eq(s->rc, 0);
	/* RFC 9001 §8.3: QUIC has no EndOfEarlyData. */
	cr_assert_eq(tern_tls_provide(s->tls, TERN_TLS_LEVEL_HANDSHAKE, eoed, sizeof(eoed)),
		     TERN_ERR_QUIC(0x10a));
	/* Reported at the level the server writes at, as wolfSSL's own alerts
	 * are: its flight is out, so that is 1-RTT. */
	cr_assert_eq(s->alert_level, TERN_TLS_LEVEL_APPLICATION);
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

Test(tls, older_level_after_newer_is_a_protocol_violation)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();
	const uint8_t more[] = {1, 0, 0, 0};

	side_new(c, cctx, false, client_tp, sizeof(client_tp));
	side_new(s, sctx, true, server_tp, sizeof(server_tp));
	cr_assert_eq(tern_tls_start(c->tls), 0);
	cr_assert(deliver(c, s, SIZE_MAX));
	cr_assert(deliver(s, c, SIZE_MAX));
	cr_assert_eq(c->rc, 0);
	cr_assert_eq(c->sec[TERN_TLS_LEVEL_HANDSHAKE][TERN_TLS_READ].count, 1);
	/* RFC 9001 §4.1.3: new Initial data once Handshake data flowed. */
	cr_assert_eq(tern_tls_provide(c->tls, TERN_TLS_LEVEL_INITIAL, more, sizeof(more)),
		     TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION));
	cr_assert_eq(c->n_alerts, 0);
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

Test(tls, message_spanning_key_change_is_unexpected)
{
	struct tern_tls_ctx *ctx;
	struct side *s = lone_side(&ctx, true);
	const uint8_t partial[] = {1, 0, 0, 40, 3, 3};
	const uint8_t next[] = {20, 0, 0, 32};

	cr_assert_eq(tern_tls_provide(s->tls, TERN_TLS_LEVEL_INITIAL, partial, sizeof(partial)), 0);
	/* RFC 8446 §5.1: a handshake message must end before the key change. */
	cr_assert_eq(tern_tls_provide(s->tls, TERN_TLS_LEVEL_HANDSHAKE, next, sizeof(next)),
		     TERN_ERR_QUIC(0x10a));
	cr_assert_eq(s->alert, TERN_TLS_ALERT_UNEXPECTED_MESSAGE);
	lone_free(s, ctx);
}

Test(tls, handshake_data_after_completion_is_a_protocol_violation)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();
	const uint8_t finished[] = {20, 0, 0, 0};

	side_new(c, cctx, false, client_tp, sizeof(client_tp));
	side_new(s, sctx, true, server_tp, sizeof(server_tp));
	cr_assert_eq(tern_tls_start(c->tls), 0);
	cr_assert(deliver(c, s, SIZE_MAX));
	cr_assert(deliver(s, c, SIZE_MAX));
	cr_assert(deliver(c, s, SIZE_MAX));
	cr_assert(tern_tls_is_complete(c->tls));
	cr_assert(tern_tls_is_complete(s->tls));
	cr_assert_eq(c->rc | s->rc, 0);
	/* RFC 9001 §4.1.3: the Handshake stream has ended on both sides. */
	cr_assert_eq(tern_tls_provide(s->tls, TERN_TLS_LEVEL_HANDSHAKE, finished, sizeof(finished)),
		     TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION));
	/* Also once released, before any 1-RTT CRYPTO data came. */
	cr_assert_eq(tern_tls_release(c->tls), 0);
	cr_assert_eq(tern_tls_provide(c->tls, TERN_TLS_LEVEL_HANDSHAKE, finished, sizeof(finished)),
		     TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION));
	cr_assert_eq(tern_tls_provide(c->tls, TERN_TLS_LEVEL_INITIAL, finished, sizeof(finished)),
		     TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION));
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}

Test(tls, tampered_server_finished_fails)
{
	struct tern_tls_ctx *cctx = client_ctx(alpn_h3, 1), *sctx = server_ctx(alpn_h3, 1);
	struct side *c = side_alloc(), *s = side_alloc();
	size_t n;

	side_new(c, cctx, false, client_tp, sizeof(client_tp));
	side_new(s, sctx, true, server_tp, sizeof(server_tp));
	cr_assert_eq(tern_tls_start(c->tls), 0);
	cr_assert(deliver(c, s, SIZE_MAX));
	/* The server's flight ends with its Finished: flip its last byte. */
	n = s->out_len[TERN_TLS_LEVEL_HANDSHAKE];
	s->out[TERN_TLS_LEVEL_HANDSHAKE][n - 1] ^= 1;
	cr_assert(deliver(s, c, SIZE_MAX));
	cr_assert_eq(c->rc, TERN_ERR_QUIC(0x100 + TERN_TLS_ALERT_DECRYPT_ERROR), "rc %#llx",
		     (unsigned long long)tern_err_quic_code(c->rc)); /* decrypt_error */
	cr_assert_eq(c->alert_level, TERN_TLS_LEVEL_HANDSHAKE);
	cr_assert_not(tern_tls_is_complete(c->tls));
	cr_assert_eq(c->sec[TERN_TLS_LEVEL_APPLICATION][TERN_TLS_WRITE].count, 0);
	free_pair(c, s);
	tern_tls_ctx_free(cctx);
	tern_tls_ctx_free(sctx);
}
