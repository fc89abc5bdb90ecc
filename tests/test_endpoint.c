/* The endpoint shard (src/endpoint/endpoint.c): dispatch, admission,
 * Version Negotiation, the stateless-reset responder and its limiter, the
 * accounting of every datagram, and real connections between two
 * endpoints over an in-memory network with a fake clock. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <libgen.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "tern/crypto.h"
#include "tern/endpoint.h"
#include "tern/packet.h"
#include "tern/reset.h"
#include "tern/tls.h"

#define MS 1000000ull
#define SEC 1000000000ull
#define T0 (5 * SEC)

/* ---- a counting allocator: proves the datagram paths never allocate ---------- */

/* ASan owns malloc: no hook then, and the counts stay 0 */
#if defined(__SANITIZE_ADDRESS__)
#define NO_ALLOC_HOOK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NO_ALLOC_HOOK 1
#endif
#endif

/* Thread-local, so only the test's own calls count, whatever threads the
 * test runner keeps. */
static __thread int alloc_counting;
static __thread uint64_t alloc_calls;

#ifndef NO_ALLOC_HOOK
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t m);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

void *malloc(size_t n)
{
	alloc_calls += alloc_counting;
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
	alloc_calls += alloc_counting;
	return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
	alloc_calls += alloc_counting;
	return __libc_realloc(p, n);
}

void free(void *p)
{
	__libc_free(p);
}
#endif

/* ---- randomness: xorshift64*, fast enough for ten million datagrams ---------- */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static void test_rand(void *ctx, uint8_t *buf, size_t len)
{
	uint64_t *s = ctx;
	while (len) {
		uint64_t v = rng_next(s);
		size_t n = len < 8 ? len : 8;
		memcpy(buf, &v, n);
		buf += n;
		len -= n;
	}
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static const struct tern_rand trand = {test_rand, &rng_state};

/* ---- TLS contexts from $TERN_TEST_CERTS (or the test binary's folder) -------- */

static struct tern_tls_ctx *srv_tls, *cli_tls;

static size_t read_cert(const char *name, uint8_t *buf, size_t cap)
{
	char dir[512] = ".", path[1024];
	const char *env = getenv("TERN_TEST_CERTS");
	if (env) {
		snprintf(dir, sizeof(dir), "%s", env);
	} else {
		ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
		dir[n > 0 ? n : 0] = 0;
		const char *d = dirname(dir);
		memmove(dir, d, strlen(d) + 1);
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s (set TERN_TEST_CERTS)", path);
	size_t n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

static void tls_setup(void)
{
	static uint8_t cert[8192], key[8192];
	size_t cl = read_cert("ec-cert.pem", cert, sizeof(cert));
	size_t kl = read_cert("ec-key.pem", key, sizeof(key));
	const char *alpn[] = {"tern-test"};
	char err[256] = "";
	cr_assert_eq(tern_tls_ctx_new_server(&srv_tls, cert, cl, key, kl, alpn, 1, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(tern_tls_ctx_new_client(&cli_tls, alpn, 1, false, NULL, 0, err, sizeof(err)), 0,
		     "%s", err);
}

static void tls_teardown(void)
{
	tern_tls_ctx_free(srv_tls);
	tern_tls_ctx_free(cli_tls);
	srv_tls = cli_tls = NULL;
}

/* ---- helpers ------------------------------------------------------------------ */

static struct tern_endpoint *ep_make(struct tern_endpoint_config *cfg, uint64_t now)
{
	struct tern_endpoint *ep = NULL;
	cr_assert_eq(tern_endpoint_new(&ep, cfg, now), 0);
	return ep;
}

static void server_config(struct tern_endpoint_config *cfg, const struct tern_reset_key *key)
{
	tern_endpoint_config_init(cfg, 1);
	cfg->conn.tls = srv_tls;
	cfg->conn.rand = trand;
	cfg->reset_key = key;
}

static void client_config(struct tern_endpoint_config *cfg, const struct tern_reset_key *key)
{
	tern_endpoint_config_init(cfg, 0);
	cfg->conn.tls = cli_tls;
	cfg->conn.server_name = "localhost";
	cfg->conn.rand = trand;
	cfg->reset_key = key;
}

static struct tern_endpoint_stats stats_of(const struct tern_endpoint *ep)
{
	struct tern_endpoint_stats st;
	tern_endpoint_stats(ep, &st);
	cr_assert_eq(tern_endpoint_stats_outcomes(&st), st.rx_datagrams,
		     "every datagram lands in exactly one outcome counter");
	return st;
}

static void key_make(struct tern_reset_key *k, uint8_t fill)
{
	uint8_t s[32];
	memset(s, fill, sizeof(s));
	cr_assert_eq(tern_reset_key_init(k, s, sizeof(s)), 0);
}

static const struct tern_path any_path = {
	.local = {.family = 4, .port = 443, .ip = {10, 0, 0, 1}},
	.remote = {.family = 4, .port = 50000, .ip = {10, 0, 0, 2}},
};

/* A long header with any version, CIDs as given, filled to len with 0xaa. */
static size_t long_header(uint8_t *buf, size_t len, uint32_t version, const uint8_t *dcid, size_t dl,
			  const uint8_t *scid, size_t sl)
{
	memset(buf, 0xaa, len);
	uint8_t *p = buf;
	*p++ = 0xc0;
	p = tern_put_u32(p, version);
	*p++ = (uint8_t)dl;
	memcpy(p, dcid, dl);
	p += dl;
	*p++ = (uint8_t)sl;
	memcpy(p, scid, sl);
	return len;
}

/* A correctly protected client Initial (PING + PADDING) filling exactly
 * dgram_len bytes, as a client would send it (RFC 9001 §5.2 keys). */
static size_t valid_initial(uint8_t *buf, size_t dgram_len, uint32_t version, const uint8_t *dcid,
			    size_t dl)
{
	struct tern_cid d, s = {.len = 8, .bytes = {1, 2, 3, 4, 5, 6, 7, 8}};
	tern_cid_set(&d, dcid, dl);
	struct tern_crypto_keys cli, srv;
	cr_assert_eq(tern_initial_keys_init(version, dcid, dl, &cli, &srv), 0);
	int off = tern_pkt_long_write(buf, dgram_len, version, TERN_PKT_INITIAL, &d, &s, NULL, 0, 0, 2);
	cr_assert_gt(off, 0);
	size_t hl = (size_t)off + 2;
	size_t plen = dgram_len - hl - TERN_AEAD_TAG_LEN;
	memset(buf + hl, 0, plen);
	buf[hl] = 0x01; /* PING, then PADDING */
	cr_assert_eq(tern_pkt_patch_length(buf, (size_t)off, dgram_len), 0);
	cr_assert_eq(tern_aead_seal(&cli, 0, buf, hl, buf + hl, plen, buf + hl + plen), 0);
	cr_assert_eq(tern_hp_protect(&cli, buf, dgram_len, (size_t)off, 2), 0);
	tern_crypto_keys_clear(&cli);
	tern_crypto_keys_clear(&srv);
	return dgram_len;
}

/* A short header: fixed bit, the 8-byte DCID, then filler. */
static size_t short_header(uint8_t *buf, size_t len, const uint8_t dcid[8])
{
	memset(buf, 0x5c, len);
	buf[0] = 0x43;
	if (len > 1)
		memcpy(buf + 1, dcid, len - 1 < 8 ? len - 1 : 8);
	return len;
}

static const uint8_t dcid8[8] = {0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7};
static const uint8_t scid5[5] = {0x50, 0x51, 0x52, 0x53, 0x54};

TestSuite(endpoint, .init = tls_setup, .fini = tls_teardown, .timeout = 120);

/* ---- configuration ---------------------------------------------------------------- */

Test(endpoint, new_rejects_bad_config)
{
	struct tern_endpoint_config cfg;
	struct tern_endpoint *ep = NULL;
	server_config(&cfg, NULL);
	cfg.max_conns = 0;
	cr_assert_eq(tern_endpoint_new(&ep, &cfg, T0), TERN_ERR_INVAL);
	server_config(&cfg, NULL);
	cfg.max_conns = SIZE_MAX / 2;
	cr_assert_eq(tern_endpoint_new(&ep, &cfg, T0), TERN_ERR_INVAL);
	server_config(&cfg, NULL);
	cfg.conn.rand.fn = NULL;
	cr_assert_eq(tern_endpoint_new(&ep, &cfg, T0), TERN_ERR_INVAL);
	cr_assert_null(ep);
}

Test(endpoint, empty_endpoint_has_no_timer)
{
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	cr_assert_eq(tern_endpoint_next_timeout(ep), UINT64_MAX);
	cr_assert_eq(tern_endpoint_conn_count(ep), 0);
	uint8_t buf[1500];
	struct tern_path p;
	cr_assert_eq(tern_endpoint_send(ep, buf, sizeof(buf), &p, T0), 0);
	tern_endpoint_free(ep);
}

/* ---- Version Negotiation (RFC 9000 §6.1, §14.1, §17.2.1) ------------------------- */

Test(endpoint, vn_for_unknown_version_in_1200_bytes)
{
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[1200], reply[TERN_ENDPOINT_REPLY_MAX];
	long_header(d, sizeof(d), 0x1a2a3a4a, dcid8, 8, scid5, 5);
	int n = tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, sizeof(reply));
	cr_assert_eq(n, 1 + 4 + 1 + 5 + 1 + 8 + 8);
	struct tern_pkt_hdr h;
	cr_assert_eq(tern_pkt_parse(reply, (size_t)n, 8, &h), n);
	cr_assert_eq(h.type, TERN_PKT_VN);
	cr_assert_eq(h.version, 0);
	cr_assert_eq(reply[0] & 0xc0, 0xc0, "long form, and 0x40 set as §17.2.1 asks");
	/* the CIDs come back swapped */
	cr_assert_eq(h.dcid_raw_len, 5);
	cr_assert_arr_eq(h.dcid_raw, scid5, 5);
	cr_assert_eq(h.scid_raw_len, 8);
	cr_assert_arr_eq(h.scid_raw, dcid8, 8);
	cr_assert_eq(h.vn_count, 2);
	cr_assert_eq(tern_vn_version(&h, 0), TERN_VERSION_1);
	cr_assert_eq(tern_vn_version(&h, 1), TERN_VERSION_2);
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.vn_sent, 1);
	cr_assert_eq(st.conns_created, 0);
	tern_endpoint_free(ep);
}

Test(endpoint, no_vn_under_1200_bytes)
{
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[1199], reply[TERN_ENDPOINT_REPLY_MAX];
	long_header(d, sizeof(d), 0x1a2a3a4a, dcid8, 8, scid5, 5);
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, sizeof(reply)), 0);
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.vn_sent, 0);
	cr_assert_eq(st.vn_too_small, 1);
	tern_endpoint_free(ep);
}

Test(endpoint, vn_echoes_255_byte_cids)
{
	/* RFC 8999 §5.1: an unknown version's CIDs may be 255 bytes, and the
	 * VN must echo them (§6) */
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[1300], reply[TERN_ENDPOINT_REPLY_MAX], big_d[255], big_s[255];
	for (int i = 0; i < 255; i++) {
		big_d[i] = (uint8_t)i;
		big_s[i] = (uint8_t)(255 - i);
	}
	long_header(d, sizeof(d), 0xff00001d, big_d, 255, big_s, 255);
	int n = tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, sizeof(reply));
	cr_assert_eq(n, (int)TERN_ENDPOINT_REPLY_MAX);
	cr_assert_eq(reply[5], 255);
	cr_assert_arr_eq(reply + 6, big_s, 255);
	cr_assert_eq(reply[6 + 255], 255);
	cr_assert_arr_eq(reply + 7 + 255, big_d, 255);
	cr_assert_eq(tern_get_u32(reply + 517), TERN_VERSION_1);
	cr_assert_eq(tern_get_u32(reply + 521), TERN_VERSION_2);
	/* a reply buffer one byte short gets nothing, and it is counted */
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, (size_t)n - 1), 0);
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.vn_sent, 1);
	cr_assert_eq(st.dropped_other, 1);
	tern_endpoint_free(ep);
}

Test(endpoint, vn_is_rate_limited)
{
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	cfg.vn_burst = 2;
	cfg.vn_rate = 1;
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[1200], reply[TERN_ENDPOINT_REPLY_MAX];
	int sent = 0;
	for (int i = 0; i < 5; i++) {
		long_header(d, sizeof(d), 0x0a0a0a0a, dcid8, 8, scid5, 5);
		sent += tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, sizeof(reply)) > 0;
	}
	cr_assert_eq(sent, 2);
	long_header(d, sizeof(d), 0x0a0a0a0a, dcid8, 8, scid5, 5);
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0 + SEC - 1, reply, sizeof(reply)), 0);
	cr_assert_gt(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0 + SEC, reply, sizeof(reply)), 0);
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.vn_sent, 3);
	cr_assert_eq(st.vn_rate_limited, 4);
	tern_endpoint_free(ep);
}

Test(endpoint, client_never_sends_vn)
{
	struct tern_endpoint_config cfg;
	client_config(&cfg, NULL);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[1200], reply[TERN_ENDPOINT_REPLY_MAX];
	long_header(d, sizeof(d), 0x1a2a3a4a, dcid8, 8, scid5, 5);
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, sizeof(reply)), 0);
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.vn_sent, 0);
	cr_assert_eq(st.dropped_other, 1);
	tern_endpoint_free(ep);
}

Test(endpoint, vn_packet_gets_no_vn)
{
	/* RFC 9000 §6.1: never a VN in answer to a VN (version 0) */
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[1200], reply[TERN_ENDPOINT_REPLY_MAX];
	long_header(d, sizeof(d), 0, dcid8, 8, scid5, 5);
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, sizeof(reply)), 0);
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.vn_sent, 0);
	cr_assert_eq(st.dropped_other, 1);
	tern_endpoint_free(ep);
}

/* ---- admission (RFC 9000 §7.2, §14.1) --------------------------------------------- */

Test(endpoint, initial_under_1200_bytes_makes_no_connection)
{
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[1200];
	valid_initial(d, 1199, TERN_VERSION_1, dcid8, 8);
	cr_assert_eq(tern_endpoint_recv(ep, d, 1199, &any_path, T0, NULL, 0), 0);
	cr_assert_eq(tern_endpoint_conn_count(ep), 0);
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.dropped_short_initial, 1);
	cr_assert_eq(st.conns_created, 0);
	/* the same Initial one byte longer is admitted */
	valid_initial(d, 1200, TERN_VERSION_1, dcid8, 8);
	cr_assert_eq(tern_endpoint_recv(ep, d, 1200, &any_path, T0, NULL, 0), 0);
	cr_assert_eq(tern_endpoint_conn_count(ep), 1);
	st = stats_of(ep);
	cr_assert_eq(st.conns_created, 1);
	cr_assert_eq(st.to_conn, 1);
	tern_endpoint_free(ep);
}

Test(endpoint, initial_v2_is_admitted)
{
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[1250];
	valid_initial(d, sizeof(d), TERN_VERSION_2, dcid8, 8);
	tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, NULL, 0);
	cr_assert_eq(tern_endpoint_conn_count(ep), 1);
	tern_endpoint_free(ep);
}

Test(endpoint, initial_with_7_byte_dcid_makes_no_connection)
{
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[1200];
	valid_initial(d, sizeof(d), TERN_VERSION_1, dcid8, 7);
	tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, NULL, 0);
	cr_assert_eq(tern_endpoint_conn_count(ep), 0);
	cr_assert_eq(stats_of(ep).dropped_bad_initial, 1);
	tern_endpoint_free(ep);
}

Test(endpoint, initial_that_does_not_open_makes_no_connection_and_no_allocation)
{
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[1200];
	valid_initial(d, sizeof(d), TERN_VERSION_1, dcid8, 8);
	d[600] ^= 1; /* one flipped bit: the AEAD tag fails */
	alloc_counting = 1;
	uint64_t before = alloc_calls;
	tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, NULL, 0);
	alloc_counting = 0;
	cr_assert_eq(alloc_calls, before, "no allocation for an Initial that does not open");
	cr_assert_eq(tern_endpoint_conn_count(ep), 0);
	cr_assert_eq(stats_of(ep).dropped_bad_initial, 1);
	tern_endpoint_free(ep);
}

Test(endpoint, retransmitted_initial_reaches_the_same_connection)
{
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[1200];
	for (int i = 0; i < 3; i++) {
		valid_initial(d, sizeof(d), TERN_VERSION_1, dcid8, 8);
		tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0 + (uint64_t)i * MS, NULL, 0);
	}
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.conns_created, 1);
	cr_assert_eq(st.to_conn, 3);
	tern_endpoint_free(ep);
}

Test(endpoint, no_migration_during_the_handshake)
{
	/* RFC 9000 §9: the same DCID from another address before the
	 * handshake is done is not this connection's */
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[1200];
	valid_initial(d, sizeof(d), TERN_VERSION_1, dcid8, 8);
	tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, NULL, 0);
	struct tern_path other = any_path;
	other.remote.ip[3] = 99;
	valid_initial(d, sizeof(d), TERN_VERSION_1, dcid8, 8);
	tern_endpoint_recv(ep, d, sizeof(d), &other, T0 + MS, NULL, 0);
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.conns_created, 1);
	cr_assert_eq(st.to_conn, 1, "only the datagram from the original address reached it");
	cr_assert_eq(st.dropped_other, 1);
	tern_endpoint_free(ep);
}

Test(endpoint, connection_limit)
{
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	cfg.max_conns = 1;
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[1200], other[8] = {9, 9, 9, 9, 9, 9, 9, 9};
	valid_initial(d, sizeof(d), TERN_VERSION_1, dcid8, 8);
	tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, NULL, 0);
	valid_initial(d, sizeof(d), TERN_VERSION_1, other, 8);
	tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, NULL, 0);
	cr_assert_eq(tern_endpoint_conn_count(ep), 1);
	cr_assert_eq(stats_of(ep).dropped_full, 1);
	tern_endpoint_free(ep);
}

Test(endpoint, client_endpoint_admits_nothing)
{
	struct tern_endpoint_config cfg;
	client_config(&cfg, NULL);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[1200];
	valid_initial(d, sizeof(d), TERN_VERSION_1, dcid8, 8);
	tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, NULL, 0);
	cr_assert_eq(tern_endpoint_conn_count(ep), 0);
	cr_assert_eq(stats_of(ep).dropped_other, 1);
	tern_endpoint_free(ep);
}

Test(endpoint, handshake_packet_for_nobody_is_dropped)
{
	struct tern_endpoint_config cfg;
	struct tern_reset_key key;
	key_make(&key, 1);
	server_config(&cfg, &key);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[1200], reply[TERN_ENDPOINT_REPLY_MAX];
	struct tern_cid dc, sc = {.len = 0};
	tern_cid_set(&dc, dcid8, 8);
	int off = tern_pkt_long_write(d, sizeof(d), TERN_VERSION_1, TERN_PKT_HANDSHAKE, &dc, &sc, NULL, 0,
				      0, 2);
	cr_assert_gt(off, 0);
	cr_assert_eq(tern_pkt_patch_length(d, (size_t)off, sizeof(d)), 0);
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, sizeof(reply)), 0);
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.dropped_other, 1);
	cr_assert_eq(st.resets_sent, 0, "only short headers get resets (RFC 9000 §10.3)");
	tern_endpoint_free(ep);
}

/* ---- stateless reset responder (RFC 9000 §10.3) ----------------------------------- */

Test(endpoint, reset_answers_unknown_short_header)
{
	struct tern_endpoint_config cfg;
	struct tern_reset_key key;
	key_make(&key, 7);
	server_config(&cfg, &key);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[100], reply[TERN_ENDPOINT_REPLY_MAX], token[16];
	cr_assert_eq(tern_reset_token(&key, dcid8, 8, token), 0);
	short_header(d, sizeof(d), dcid8);
	int n = tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, sizeof(reply));
	/* longer triggers get 43..64 bytes (reset.h) */
	cr_assert(n >= TERN_RESET_EXACT_MAX_TRIGGER && n <= TERN_RESET_MAX_LEN, "len %d", n);
	cr_assert_eq(reply[0] & 0xc0, 0x40);
	cr_assert_arr_eq(reply + n - 16, token, 16);
	/* triggers of 43 bytes or less get exactly one byte less */
	short_header(d, 30, dcid8);
	n = tern_endpoint_recv(ep, d, 30, &any_path, T0, reply, sizeof(reply));
	cr_assert_eq(n, 29);
	cr_assert_arr_eq(reply + n - 16, token, 16);
	cr_assert_eq(stats_of(ep).resets_sent, 2);
	tern_endpoint_free(ep);
}

Test(endpoint, reset_size_rule_for_every_trigger_length)
{
	struct tern_endpoint_config cfg;
	struct tern_reset_key key;
	key_make(&key, 7);
	server_config(&cfg, &key);
	cfg.reset_burst = 1000;
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[200], reply[TERN_ENDPOINT_REPLY_MAX], token[16];
	tern_reset_token(&key, dcid8, 8, token);
	for (size_t len = 1; len <= sizeof(d); len++) {
		short_header(d, len, dcid8);
		int n = tern_endpoint_recv(ep, d, len, &any_path, T0, reply, sizeof(reply));
		if (len <= TERN_RESET_MIN_LEN) {
			cr_assert_eq(n, 0, "no reset for a %zu-byte trigger", len);
			continue;
		}
		cr_assert(n >= TERN_RESET_MIN_LEN && (size_t)n < len, "reset of %d for %zu", n, len);
		cr_assert_arr_eq(reply + n - 16, token, 16);
	}
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.dropped_unparsable, 8, "1..8 bytes hold no 8-byte DCID");
	cr_assert_eq(st.reset_too_small, 13, "9..21 bytes");
	cr_assert_eq(st.resets_sent, 200 - 21);
	tern_endpoint_free(ep);
}

Test(endpoint, reset_is_rate_limited)
{
	struct tern_endpoint_config cfg;
	struct tern_reset_key key;
	key_make(&key, 7);
	server_config(&cfg, &key);
	cfg.reset_burst = 3;
	cfg.reset_rate = 2;
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[60], reply[TERN_ENDPOINT_REPLY_MAX];
	int sent = 0;
	for (int i = 0; i < 10; i++) {
		short_header(d, sizeof(d), dcid8);
		sent += tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, sizeof(reply)) > 0;
	}
	cr_assert_eq(sent, 3);
	/* 2 per second: one token after half a second */
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0 + SEC / 2 - 1, reply, sizeof(reply)), 0);
	cr_assert_gt(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0 + SEC / 2, reply, sizeof(reply)), 0);
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.resets_sent, 4);
	cr_assert_eq(st.reset_rate_limited, 8);
	tern_endpoint_free(ep);
}

Test(endpoint, no_reset_without_key_or_reply_buffer)
{
	struct tern_endpoint_config cfg;
	struct tern_reset_key key;
	key_make(&key, 7);
	server_config(&cfg, NULL);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[100], reply[TERN_ENDPOINT_REPLY_MAX];
	short_header(d, sizeof(d), dcid8);
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, sizeof(reply)), 0);
	cr_assert_eq(stats_of(ep).dropped_other, 1);
	tern_endpoint_free(ep);
	server_config(&cfg, &key);
	ep = ep_make(&cfg, T0);
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, NULL, 0), 0);
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, 20), 0);
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.dropped_other, 2);
	cr_assert_eq(st.resets_sent, 0);
	tern_endpoint_free(ep);
}

Test(endpoint, no_reset_for_zero_length_cids)
{
	struct tern_endpoint_config cfg;
	struct tern_reset_key key;
	key_make(&key, 7);
	server_config(&cfg, &key);
	cfg.conn.scid_len = 0;
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[100], reply[TERN_ENDPOINT_REPLY_MAX];
	short_header(d, sizeof(d), dcid8);
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, sizeof(reply)), 0);
	cr_assert_eq(stats_of(ep).dropped_other, 1);
	tern_endpoint_free(ep);
}

Test(endpoint, short_header_without_fixed_bit_is_dropped)
{
	struct tern_endpoint_config cfg;
	struct tern_reset_key key;
	key_make(&key, 7);
	server_config(&cfg, &key);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[100], reply[TERN_ENDPOINT_REPLY_MAX];
	short_header(d, sizeof(d), dcid8);
	d[0] = 0x03;
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, sizeof(reply)), 0);
	d[0] = 0x03;
	cr_assert_eq(tern_endpoint_recv(ep, d, 25, &any_path, T0, reply, sizeof(reply)), 0);
	cr_assert_eq(stats_of(ep).dropped_unparsable, 2);
	tern_endpoint_free(ep);
}

static void token_of(struct tern_endpoint *ep, const uint8_t cid[8], uint8_t out[16])
{
	uint8_t d[80], reply[TERN_ENDPOINT_REPLY_MAX];
	short_header(d, sizeof(d), cid);
	int n = tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, sizeof(reply));
	cr_assert_geq(n, TERN_RESET_MIN_LEN);
	memcpy(out, reply + n - 16, 16);
}

Test(endpoint, reset_tokens_follow_the_static_key)
{
	/* DESIGN §4: every endpoint holding the static key derives the same
	 * token for a CID, so a restarted or other worker can reset any
	 * connection; another key gives other tokens */
	struct tern_reset_key k1, k2, k3;
	key_make(&k1, 0x11);
	key_make(&k2, 0x11);
	key_make(&k3, 0x22);
	struct tern_endpoint_config cfg;
	server_config(&cfg, &k1);
	struct tern_endpoint *a = ep_make(&cfg, T0);
	server_config(&cfg, &k2);
	struct tern_endpoint *b = ep_make(&cfg, T0);
	server_config(&cfg, &k3);
	struct tern_endpoint *c = ep_make(&cfg, T0);
	uint8_t ta[16], tb[16], tc[16], ta2[16], other[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	token_of(a, dcid8, ta);
	token_of(b, dcid8, tb);
	token_of(c, dcid8, tc);
	token_of(a, other, ta2);
	cr_assert_arr_eq(ta, tb, 16);
	cr_assert_arr_neq(ta, tc, 16);
	cr_assert_arr_neq(ta, ta2, 16, "another CID, another token");
	tern_endpoint_free(a);
	tern_endpoint_free(b);
	tern_endpoint_free(c);
}

/* ---- ten million random datagrams --------------------------------------------------- */

#define POOL (1u << 20)
#define FLOOD 10000000u
#define FLOOD_STEP_NS 100u

/* Turns the random bytes at d into a v1/v2 long header that parses: random
 * type, DCID of 8..20 bytes, SCID of 0..20, and for an Initial an empty
 * token; half of them made at least 1200 bytes long. What follows stays
 * random, so none of them opens. */
static size_t flood_long(uint8_t *d, size_t len, uint64_t r)
{
	uint32_t version = (r >> 8) & 1 ? TERN_VERSION_1 : TERN_VERSION_2;
	unsigned type_bits = (r >> 9) & 3;
	int initial = version == TERN_VERSION_1 ? type_bits == 0 : type_bits == 1;
	size_t dl = 8 + (r >> 12) % 13, sl = (r >> 20) % 21;
	if ((r >> 28) & 1)
		len = 1200 + (r >> 29) % 301;
	d[0] = (uint8_t)(0xc0 | type_bits << 4 | (d[0] & 0x0f));
	tern_put_u32(d + 1, version);
	d[5] = (uint8_t)dl;
	size_t p = 6 + dl;
	d[p++] = (uint8_t)sl;
	p += sl;
	if (initial)
		d[p++] = 0;
	if (p + 2 <= len)
		tern_varint_encode_fixed(d + p, len - p - 2, 2);
	return len;
}

static void flood_check_reply(const uint8_t *d, size_t len, const uint8_t *reply, int n,
			      const struct tern_reset_key *key)
{
	cr_assert_lt((size_t)n, len, "a reply never outgrows its trigger");
	if (reply[0] & 0x80) {
		cr_assert_eq(tern_get_u32(reply + 1), 0, "a long-header reply is a VN");
		cr_assert_geq(len, 1200);
		return;
	}
	uint8_t token[16];
	cr_assert_geq(n, TERN_RESET_MIN_LEN);
	cr_assert_eq(reply[0] & 0xc0, 0x40);
	tern_reset_token(key, d + 1, 8, token);
	cr_assert_arr_eq(reply + n - 16, token, 16);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

static void flood_check_stats(const struct tern_endpoint_stats *st, uint64_t elapsed_ns)
{
	cr_assert_eq(st->rx_datagrams, FLOOD);
	cr_assert_eq(tern_endpoint_stats_outcomes(st), FLOOD);
	cr_assert_eq(st->conns_created, 0);
	cr_assert_eq(st->to_conn, 0);
	/* the limiters: burst + rate * elapsed, and they do refill */
	uint64_t reset_max = 100 + 10000 * elapsed_ns / SEC, vn_max = 100 + 1000 * elapsed_ns / SEC;
	cr_assert_leq(st->resets_sent, reset_max);
	cr_assert_geq(st->resets_sent, reset_max - 100);
	cr_assert_leq(st->vn_sent, vn_max);
	cr_assert_geq(st->vn_sent, vn_max - 100);
	/* every path saw traffic */
	cr_assert_gt(st->reset_rate_limited, 0);
	cr_assert_gt(st->reset_too_small, 0);
	cr_assert_gt(st->vn_rate_limited, 0);
	cr_assert_gt(st->vn_too_small, 0);
	cr_assert_gt(st->dropped_unparsable, 0);
	cr_assert_gt(st->dropped_short_initial, 0);
	cr_assert_gt(st->dropped_bad_initial, 0);
	cr_assert_gt(st->dropped_other, 0);
}

Test(endpoint, flood_of_ten_million_random_datagrams, .timeout = 300)
{
	static uint8_t pool[POOL + 2048];
	uint64_t s = 0x0123456789abcdefull;
	struct tern_reset_key key;
	key_make(&key, 0x5a);
	struct tern_endpoint_config cfg;
	server_config(&cfg, &key);
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	test_rand(&s, pool, sizeof(pool));
	uint8_t reply[TERN_ENDPOINT_REPLY_MAX];
	struct tern_path path = any_path;
	uint64_t now = T0, wall = mono_ns();
	alloc_counting = 1;
	uint64_t allocs = alloc_calls;
	for (uint32_t i = 0; i < FLOOD; i++, now += FLOOD_STEP_NS) {
		uint64_t r = rng_next(&s), r2 = rng_next(&s);
		size_t len = 1 + r % 1500;
		uint8_t *d = pool + (r >> 16) % POOL;
		for (int k = 0; k < 48; k += 8) {
			uint64_t v = rng_next(&s);
			memcpy(d + k, &v, 8);
		}
		if ((r2 & 31) == 0)
			len = flood_long(d, len, r2);
		memcpy(path.remote.ip, &r2, 4);
		path.remote.port = (uint16_t)(r2 >> 32);
		int n = tern_endpoint_recv(ep, d, len, &path, now, reply, sizeof(reply));
		cr_assert_geq(n, 0);
		if (n > 0)
			flood_check_reply(d, len, reply, n, &key);
	}
	alloc_counting = 0;
	wall = mono_ns() - wall;
	fprintf(stderr, "flood: %u datagrams in %.2f s (%.0f ns each)\n", FLOOD, (double)wall / 1e9,
		(double)wall / FLOOD);
	cr_assert_eq(alloc_calls, allocs, "no allocation on any datagram path");
	cr_assert_eq(tern_endpoint_conn_count(ep), 0);
	struct tern_endpoint_stats st = stats_of(ep);
	fprintf(stderr, "flood: resets %llu (too small %llu, limited %llu), vn %llu (too small %llu, "
		"limited %llu), unparsable %llu, short initial %llu, bad initial %llu, other %llu\n",
		(unsigned long long)st.resets_sent, (unsigned long long)st.reset_too_small,
		(unsigned long long)st.reset_rate_limited, (unsigned long long)st.vn_sent,
		(unsigned long long)st.vn_too_small, (unsigned long long)st.vn_rate_limited,
		(unsigned long long)st.dropped_unparsable, (unsigned long long)st.dropped_short_initial,
		(unsigned long long)st.dropped_bad_initial, (unsigned long long)st.dropped_other);
	flood_check_stats(&st, now - T0);
	tern_endpoint_free(ep);
}

/* ---- two endpoints, one in-memory network ----------------------------------------------- */

struct app_rec {
	int established;
	int closes;
	struct tern_close_info close;
};

struct ep_rec {
	int new_conns, frees, closes;
	struct tern_conn *last_new;
	struct tern_close_info close;
	struct app_rec *server_app; /* attached to each new server connection */
};

static void a_established(struct tern_conn *c, void *user)
{
	(void)c;
	((struct app_rec *)user)->established++;
}

static void a_close(struct tern_conn *c, void *user, const struct tern_close_info *ci)
{
	(void)c;
	struct app_rec *a = user;
	a->closes++;
	a->close = *ci;
}

static const struct tern_conn_callbacks app_cbs = {
	.on_established = a_established,
	.on_close = a_close,
};

static void e_new(struct tern_endpoint *ep, struct tern_conn *c, void *user)
{
	(void)ep;
	struct ep_rec *r = user;
	r->new_conns++;
	r->last_new = c;
	cr_assert_null(tern_endpoint_conn_app(c));
	tern_endpoint_conn_set_app(c, r->server_app);
	cr_assert_eq(tern_endpoint_conn_app(c), r->server_app);
}

static void e_free(struct tern_endpoint *ep, struct tern_conn *c, void *app)
{
	(void)ep;
	(void)c;
	(void)app;
}

static void e_close(struct tern_endpoint *ep, struct tern_conn *c, void *app,
		    const struct tern_close_info *ci);

static const struct tern_endpoint_callbacks ep_cbs = {
	.on_new_conn = e_new,
	.on_conn_free = e_free,
	.on_close = e_close,
};

struct net {
	struct tern_endpoint *cli, *srv;
	struct tern_addr cli_addr, srv_addr;
	uint64_t now;
	struct ep_rec cli_rec, srv_rec;
	struct app_rec cli_app, srv_app;
	struct tern_conn *conn; /* the client's */
	struct tern_reset_key cli_key, srv_key;
	uint8_t ecn_mark; /* the IP ECN bits every datagram arrives with */
	int ecn; /* conn.ecn for the endpoints net_init and net_server make */
	struct tern_token_key *token_key; /* with retry: the server's address validation */
	int retry;
};

static struct net *cur_net;

static void e_close(struct tern_endpoint *ep, struct tern_conn *c, void *app,
		    const struct tern_close_info *ci)
{
	(void)c;
	(void)app;
	struct ep_rec *r = ep == cur_net->cli ? &cur_net->cli_rec : &cur_net->srv_rec;
	r->closes++;
	r->close = *ci;
}

/* Hands a datagram to `to` as received from `from_addr`; a stateless
 * reply goes straight back, and so on (the size rule ends any loop). */
static void deliver(struct net *n, struct tern_endpoint *to, const struct tern_addr *to_addr,
		    struct tern_endpoint *back, const struct tern_addr *from_addr, uint8_t *d, size_t len,
		    int depth)
{
	uint8_t reply[TERN_ENDPOINT_REPLY_MAX];
	struct tern_path p = {.local = *to_addr, .remote = *from_addr};
	int r = tern_endpoint_recv_ecn(to, d, len, &p, n->ecn_mark, n->now, reply, sizeof(reply));
	cr_assert_geq(r, 0);
	cr_assert_lt(depth, 64);
	if (r > 0)
		deliver(n, back, from_addr, to, to_addr, reply, (size_t)r, depth + 1);
}

static void flush(struct net *n, struct tern_endpoint *from, const struct tern_addr *from_addr,
		  struct tern_endpoint *to, const struct tern_addr *to_addr)
{
	uint8_t buf[1500], ecn = 0xff;
	struct tern_path p;
	int len;
	for (int i = 0; i < 10000 && (len = tern_endpoint_send_ecn(from, buf, sizeof(buf), &p, &ecn, n->now)) > 0;
	     i++) {
		cr_assert_eq(ecn, n->ecn ? 2 : 0, "ECT(0) exactly when the connection marks");
		cr_assert(tern_addr_equal(&p.local, from_addr));
		if (to)
			deliver(n, to, to_addr, from, from_addr, buf, (size_t)len, 0);
	}
}

/* One millisecond of the network: both sides send, then timers run. */
static void net_step(struct net *n)
{
	flush(n, n->cli, &n->cli_addr, n->srv, &n->srv_addr);
	if (n->srv)
		flush(n, n->srv, &n->srv_addr, n->cli, &n->cli_addr);
	n->now += MS;
	if (tern_endpoint_next_timeout(n->cli) <= n->now)
		tern_endpoint_handle_timeout(n->cli, n->now);
	if (n->srv && tern_endpoint_next_timeout(n->srv) <= n->now)
		tern_endpoint_handle_timeout(n->srv, n->now);
}

static struct tern_endpoint *net_server(struct net *n, const struct tern_reset_key *key)
{
	struct tern_endpoint_config cfg;
	server_config(&cfg, key);
	cfg.conn.cb = &app_cbs;
	cfg.conn.ecn = n->ecn;
	cfg.token_key = n->token_key;
	cfg.retry = n->retry;
	cfg.cb = &ep_cbs;
	cfg.user = &n->srv_rec;
	n->srv_rec.server_app = &n->srv_app;
	return ep_make(&cfg, n->now);
}

static struct tern_token_key *net_token_key;
static int net_retry;

static void net_init_ecn(struct net *n, int ecn)
{
	memset(n, 0, sizeof(*n));
	n->ecn = ecn;
	n->token_key = net_token_key;
	n->retry = net_retry;
	cur_net = n;
	n->now = T0;
	n->cli_addr = (struct tern_addr){.family = 4, .port = 40000, .ip = {192, 0, 2, 1}};
	n->srv_addr = (struct tern_addr){.family = 6, .port = 443, .ip = {0x20, 0x01, 0x0d, 0xb8, [15] = 1}};
	key_make(&n->cli_key, 0xc1);
	key_make(&n->srv_key, 0x51);
	struct tern_endpoint_config cfg;
	client_config(&cfg, &n->cli_key);
	cfg.conn.cb = &app_cbs;
	cfg.conn.ecn = ecn;
	cfg.cb = &ep_cbs;
	cfg.user = &n->cli_rec;
	n->cli = ep_make(&cfg, n->now);
	n->srv = net_server(n, &n->srv_key);
	struct tern_path path = {.local = n->cli_addr, .remote = n->srv_addr};
	cr_assert_eq(tern_endpoint_connect(n->cli, &path, &n->cli_app, &n->conn, n->now), 0);
	cr_assert_eq(tern_endpoint_conn_app(n->conn), &n->cli_app);
}

static void net_init(struct net *n)
{
	net_init_ecn(n, 0);
}

static void net_handshake(struct net *n)
{
	for (int i = 0; i < 2000 && !(n->srv_app.established &&
				      tern_conn_state(n->conn) == TERN_CONN_ESTABLISHED &&
				      n->cli_app.established); i++)
		net_step(n);
	cr_assert_geq(n->srv_app.established, 1);
	cr_assert_eq(n->cli_app.established, 1);
	cr_assert_eq(tern_conn_state(n->conn), TERN_CONN_ESTABLISHED);
}

static void net_free(struct net *n)
{
	tern_endpoint_free(n->cli);
	tern_endpoint_free(n->srv);
	cur_net = NULL;
}

Test(endpoint, handshake_between_two_endpoints_then_close_all)
{
	struct net n;
	net_init(&n);
	net_handshake(&n);
	cr_assert_eq(n.srv_rec.new_conns, 1);
	cr_assert_eq(n.srv_app.established, 1);
	cr_assert_eq(tern_endpoint_conn_count(n.srv), 1);
	cr_assert_eq(tern_endpoint_conn_count(n.cli), 1);
	cr_assert_lt(tern_endpoint_next_timeout(n.srv), UINT64_MAX);

	/* the server shuts down: an application close with H3_NO_ERROR */
	tern_endpoint_close_all(n.srv, 0x100, "bye", n.now);
	for (int i = 0; i < 5000 && (tern_endpoint_conn_count(n.srv) || tern_endpoint_conn_count(n.cli)); i++)
		net_step(&n);
	cr_assert_eq(tern_endpoint_conn_count(n.srv), 0, "freed after closing (RFC 9000 §10.2)");
	cr_assert_eq(tern_endpoint_conn_count(n.cli), 0, "freed after draining");
	cr_assert_eq(n.srv_rec.closes, 1);
	cr_assert_eq(n.srv_rec.close.reason, TERN_CLOSE_LOCAL);
	cr_assert_eq(n.srv_rec.close.app, 1);
	cr_assert_eq(n.srv_rec.close.code, 0x100);
	cr_assert_eq(n.cli_rec.closes, 1);
	cr_assert_eq(n.cli_rec.close.reason, TERN_CLOSE_PEER);
	cr_assert_eq(n.cli_rec.close.app, 1);
	cr_assert_eq(n.cli_rec.close.code, 0x100);
	cr_assert_str_eq(n.cli_rec.close.reason_phrase, "bye");
	cr_assert_eq(n.cli_app.closes, 1, "the application hears the close too");
	struct tern_endpoint_stats ss = stats_of(n.srv), cs = stats_of(n.cli);
	cr_assert_eq(ss.conns_created, 1);
	cr_assert_eq(ss.conns_closed, 1);
	cr_assert_eq(ss.closed_by_reason[TERN_CLOSE_LOCAL], 1);
	cr_assert_eq(cs.closed_by_reason[TERN_CLOSE_PEER], 1);
	cr_assert_eq(cs.conns_active, 0);
	cr_assert_eq(ss.resets_sent + cs.resets_sent, 0);
	cr_assert_eq(tern_endpoint_next_timeout(n.srv), UINT64_MAX);
	net_free(&n);
}

/* The server restarts with the same static key: the client's next packet
 * names a CID nobody knows, the new server answers with a stateless reset,
 * and the client endpoint routes it, by address, to the connection whose
 * token it carries (RFC 9000 §10.3.1). */
static void restart_and_send(struct net *n, const struct tern_reset_key *new_key)
{
	net_handshake(n);
	for (int i = 0; i < 50; i++)
		net_step(n); /* let acknowledgements and NEW_CONNECTION_IDs settle */
	tern_endpoint_free(n->srv);
	n->srv = net_server(n, new_key);
	uint64_t id;
	uint8_t data[200] = {0};
	cr_assert_eq(tern_conn_stream_open(n->conn, 1, &id), 0);
	cr_assert_eq(tern_conn_stream_write(n->conn, id, data, sizeof(data), 1), (int)sizeof(data));
	net_step(n);
}

Test(endpoint, restart_with_same_key_resets_the_client)
{
	struct net n;
	net_init(&n);
	restart_and_send(&n, &n.srv_key);
	cr_assert_geq(stats_of(n.srv).resets_sent, 1);
	cr_assert_eq(tern_conn_state(n.conn), TERN_CONN_DRAINING);
	cr_assert_eq(n.cli_rec.close.reason, TERN_CLOSE_STATELESS_RESET);
	struct tern_endpoint_stats cs = stats_of(n.cli);
	cr_assert_eq(cs.resets_received, 1);
	cr_assert_eq(cs.resets_sent, 0, "a reset is never answered with one");
	for (int i = 0; i < 5000 && tern_endpoint_conn_count(n.cli); i++)
		net_step(&n);
	cr_assert_eq(stats_of(n.cli).closed_by_reason[TERN_CLOSE_STATELESS_RESET], 1);
	net_free(&n);
}

Test(endpoint, restart_with_another_key_does_not_reset)
{
	struct net n;
	net_init(&n);
	struct tern_reset_key other;
	key_make(&other, 0x99);
	restart_and_send(&n, &other);
	cr_assert_geq(stats_of(n.srv).resets_sent, 1);
	cr_assert_eq(tern_conn_state(n.conn), TERN_CONN_ESTABLISHED);
	cr_assert_eq(stats_of(n.cli).resets_received, 0);
	net_free(&n);
}

Test(endpoint, idle_connections_are_reaped)
{
	struct net n;
	net_init(&n);
	net_handshake(&n);
	/* no traffic: both ends reach the idle timeout (30 s default) and
	 * the endpoints free them */
	tern_endpoint_free(n.srv);
	n.srv = NULL;
	uint64_t t = tern_endpoint_next_timeout(n.cli);
	cr_assert_lt(t, n.now + 31 * SEC);
	for (int i = 0; i < 40000 && tern_endpoint_conn_count(n.cli); i++)
		net_step(&n);
	cr_assert_eq(tern_endpoint_conn_count(n.cli), 0);
	cr_assert_eq(n.cli_rec.close.reason, TERN_CLOSE_IDLE_TIMEOUT);
	cr_assert_eq(stats_of(n.cli).closed_by_reason[TERN_CLOSE_IDLE_TIMEOUT], 1);
	net_free(&n);
}

Test(endpoint, connections_sharing_an_address_are_freed_in_any_order)
{
	/* the address table chains them (reset routing, RFC 9000 §10.3.1);
	 * the older one leaves from the middle of the chain */
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	cfg.conn.handshake_timeout_ns = 10 * SEC;
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[1200], c1[8] = {1, 1, 1, 1, 1, 1, 1, 1}, c2[8] = {2, 2, 2, 2, 2, 2, 2, 2};
	valid_initial(d, sizeof(d), TERN_VERSION_1, c1, 8);
	tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, NULL, 0);
	valid_initial(d, sizeof(d), TERN_VERSION_1, c2, 8);
	tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0 + SEC, NULL, 0);
	cr_assert_eq(tern_endpoint_conn_count(ep), 2);
	tern_endpoint_handle_timeout(ep, T0 + 10 * SEC + SEC / 2);
	cr_assert_eq(tern_endpoint_conn_count(ep), 1, "the older one timed out first");
	tern_endpoint_handle_timeout(ep, T0 + 12 * SEC);
	cr_assert_eq(tern_endpoint_conn_count(ep), 0);
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.closed_by_reason[TERN_CLOSE_HANDSHAKE_TIMEOUT], 2);
	/* the address is free again */
	valid_initial(d, sizeof(d), TERN_VERSION_1, c1, 8);
	tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0 + 13 * SEC, NULL, 0);
	cr_assert_eq(tern_endpoint_conn_count(ep), 1);
	tern_endpoint_free(ep);
}

Test(endpoint, reset_reaches_every_connection_at_the_address)
{
	/* two connections from one client socket to one server: after the
	 * server restarts, each one's reset finds its own connection through
	 * the address chain */
	struct net n;
	net_init(&n);
	struct tern_conn *second;
	struct app_rec app2 = {0};
	struct tern_path path = {.local = n.cli_addr, .remote = n.srv_addr};
	cr_assert_eq(tern_endpoint_connect(n.cli, &path, &app2, &second, n.now), 0);
	net_handshake(&n);
	for (int i = 0; i < 100 && tern_conn_state(second) != TERN_CONN_ESTABLISHED; i++)
		net_step(&n);
	cr_assert_eq(tern_conn_state(second), TERN_CONN_ESTABLISHED);
	tern_endpoint_free(n.srv);
	n.srv = net_server(&n, &n.srv_key);
	uint8_t data[100] = {0};
	uint64_t id;
	struct tern_conn *conns[2] = {n.conn, second};
	for (int k = 0; k < 2; k++) {
		cr_assert_eq(tern_conn_stream_open(conns[k], 1, &id), 0);
		cr_assert_eq(tern_conn_stream_write(conns[k], id, data, sizeof(data), 1), (int)sizeof(data));
	}
	net_step(&n);
	cr_assert_eq(tern_conn_state(n.conn), TERN_CONN_DRAINING);
	cr_assert_eq(tern_conn_state(second), TERN_CONN_DRAINING);
	cr_assert_eq(stats_of(n.cli).resets_received, 2);
	cr_assert_eq(stats_of(n.srv).conns_created, 0, "the new server admitted nothing");
	net_free(&n);
}

Test(endpoint, ecn_marks_travel_both_ways)
{
	/* tern_endpoint_send_ecn hands out the connection's codepoint, and
	 * tern_endpoint_recv_ecn hands the received bits to the connection
	 * (RFC 9000 §13.4: CE marks are counted and echoed in ACK_ECN) */
	struct net n;
	net_init_ecn(&n, 1);
	n.ecn_mark = 3; /* every datagram arrives CE-marked */
	net_handshake(&n);
	struct tern_conn_stats cs, ss;
	tern_conn_stats(n.conn, &cs);
	tern_conn_stats(n.srv_rec.last_new, &ss);
	cr_assert_gt(cs.ecn_ce_seen, 0);
	cr_assert_gt(ss.ecn_ce_seen, 0);
	net_free(&n);
}

/* ---- address validation: Retry and tokens (RFC 9000 §8.1, §17.2.5) -------- */

static struct tern_token_key tkey;

static void token_key_make(struct tern_token_key *k, uint8_t fill)
{
	uint8_t s[32];
	memset(s, fill, sizeof(s));
	cr_assert_eq(tern_token_key_init(k, s, sizeof(s)), 0);
}

static struct tern_endpoint *retry_server(int mode, uint32_t threshold)
{
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	token_key_make(&tkey, 0x7e);
	cfg.token_key = &tkey;
	cfg.retry = mode;
	cfg.retry_threshold = threshold;
	return ep_make(&cfg, T0);
}

/* A client Initial carrying `token`, otherwise like valid_initial(). */
static size_t initial_with_token(uint8_t *buf, size_t dgram_len, const uint8_t *dcid, size_t dl,
				 const uint8_t *token, size_t tl)
{
	struct tern_cid d, s = {.len = 8, .bytes = {1, 2, 3, 4, 5, 6, 7, 8}};
	tern_cid_set(&d, dcid, dl);
	struct tern_crypto_keys cli, srv;
	cr_assert_eq(tern_initial_keys_init(TERN_VERSION_1, dcid, dl, &cli, &srv), 0);
	int off = tern_pkt_long_write(buf, dgram_len, TERN_VERSION_1, TERN_PKT_INITIAL, &d, &s, token, tl,
				      0, 2);
	cr_assert_gt(off, 0);
	size_t hl = (size_t)off + 2, plen = dgram_len - hl - TERN_AEAD_TAG_LEN;
	memset(buf + hl, 0, plen);
	buf[hl] = 0x01;
	cr_assert_eq(tern_pkt_patch_length(buf, (size_t)off, dgram_len), 0);
	cr_assert_eq(tern_aead_seal(&cli, 0, buf, hl, buf + hl, plen, buf + hl + plen), 0);
	cr_assert_eq(tern_hp_protect(&cli, buf, dgram_len, (size_t)off, 2), 0);
	tern_crypto_keys_clear(&cli);
	tern_crypto_keys_clear(&srv);
	return dgram_len;
}

Test(endpoint, retry_always_answers_a_tokenless_initial_with_a_valid_retry)
{
	struct tern_endpoint *ep = retry_server(TERN_RETRY_ALWAYS, 0);
	uint8_t d[1200], reply[TERN_ENDPOINT_REPLY_MAX + 128];
	valid_initial(d, sizeof(d), TERN_VERSION_1, dcid8, 8);
	int r = tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, sizeof(reply));
	cr_assert_gt(r, 0, "a Retry comes back");
	struct tern_pkt_hdr h;
	cr_assert_eq(tern_pkt_parse(reply, (size_t)r, 8, &h), r);
	cr_assert_eq(h.type, TERN_PKT_RETRY);
	cr_assert_eq(h.dcid.len, 8);
	cr_assert_eq(h.dcid.bytes[0], 1, "the Retry goes to the client's SCID");
	cr_assert_gt(h.token_len, 0);
	cr_assert_eq(tern_retry_tag_verify(TERN_VERSION_1, dcid8, 8, reply, (size_t)r), 0,
		     "the integrity tag covers the original DCID (RFC 9001 §5.8)");
	cr_assert_lt((size_t)r, sizeof(d), "a Retry never amplifies");
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.retry_sent, 1);
	cr_assert_eq(st.conns_created, 0, "no state for a Retry");

	/* the client answers with the token, to the Retry's SCID */
	uint8_t d2[1200];
	initial_with_token(d2, sizeof(d2), h.scid.bytes, h.scid.len, h.token, h.token_len);
	cr_assert_eq(tern_endpoint_recv(ep, d2, sizeof(d2), &any_path, T0 + MS, reply, sizeof(reply)), 0);
	st = stats_of(ep);
	cr_assert_eq(st.tokens_accepted, 1);
	cr_assert_eq(st.conns_created, 1);
	cr_assert_eq(st.retry_sent, 1, "a valid token gets no second Retry");
	tern_endpoint_free(ep);
	tern_token_key_clear(&tkey);
}

Test(endpoint, forged_foreign_expired_and_misaddressed_retry_tokens_are_refused)
{
	struct tern_endpoint *ep = retry_server(TERN_RETRY_ALWAYS, 0);
	uint8_t d[1200], reply[TERN_ENDPOINT_REPLY_MAX + 128], tok[TERN_TOKEN_MAX_LEN];
	struct tern_cid odcid;
	tern_cid_set(&odcid, dcid8, 8);
	const uint8_t new_dcid[8] = {9, 9, 9, 9, 9, 9, 9, 9};

	/* forged: random bytes that name themselves a Retry token */
	memset(tok, 0x33, sizeof(tok));
	tok[0] = TERN_TOKEN_RETRY;
	initial_with_token(d, sizeof(d), new_dcid, 8, tok, sizeof(tok));
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, sizeof(reply)), 0);

	/* foreign: sealed by a host with another static key */
	struct tern_token_key other;
	token_key_make(&other, 0x11);
	int tl = tern_token_seal(&other, TERN_TOKEN_RETRY, &any_path.remote, &odcid, T0, &trand, tok, sizeof(tok));
	initial_with_token(d, sizeof(d), new_dcid, 8, tok, (size_t)tl);
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, sizeof(reply)), 0);
	tern_token_key_clear(&other);

	/* expired: 11 s old (Retry tokens live 10 s) */
	tl = tern_token_seal(&tkey, TERN_TOKEN_RETRY, &any_path.remote, &odcid, T0, &trand, tok, sizeof(tok));
	initial_with_token(d, sizeof(d), new_dcid, 8, tok, (size_t)tl);
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0 + 11000 * MS, reply, sizeof(reply)), 0);

	/* another client address */
	struct tern_path elsewhere = any_path;
	elsewhere.remote.port++;
	tl = tern_token_seal(&tkey, TERN_TOKEN_RETRY, &any_path.remote, &odcid, T0, &trand, tok, sizeof(tok));
	initial_with_token(d, sizeof(d), new_dcid, 8, tok, (size_t)tl);
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &elsewhere, T0, reply, sizeof(reply)), 0);

	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.dropped_bad_token, 4);
	cr_assert_eq(st.conns_created, 0);
	cr_assert_eq(st.retry_sent, 0, "a bad Retry token is dropped, not answered");

	/* and the same token from the right address, in time, is accepted */
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0 + MS, reply, sizeof(reply)), 0);
	st = stats_of(ep);
	cr_assert_eq(st.tokens_accepted, 1);
	cr_assert_eq(st.conns_created, 1);
	tern_endpoint_free(ep);
	tern_token_key_clear(&tkey);
}

Test(endpoint, retry_auto_starts_past_the_handshake_threshold)
{
	struct tern_endpoint *ep = retry_server(TERN_RETRY_AUTO, 2);
	uint8_t d[1200], reply[TERN_ENDPOINT_REPLY_MAX + 128];
	for (int i = 0; i < 3; i++) {
		uint8_t dcid[8];
		memset(dcid, 0x40 + i, sizeof(dcid));
		valid_initial(d, sizeof(d), TERN_VERSION_1, dcid, 8);
		int r = tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0, reply, sizeof(reply));
		if (i < 2)
			cr_assert_eq(r, 0, "under the threshold, connection %d is admitted", i);
		else
			cr_assert_gt(r, 0, "at the threshold, a Retry");
	}
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.conns_created, 2);
	cr_assert_eq(st.handshakes_in_progress, 2);
	cr_assert_eq(st.retry_sent, 1);
	tern_endpoint_free(ep);
	tern_token_key_clear(&tkey);
}

Test(endpoint, new_token_validates_a_later_connection_from_the_same_ip)
{
	struct tern_endpoint *ep = retry_server(TERN_RETRY_ALWAYS, 0);
	uint8_t d[1200], reply[TERN_ENDPOINT_REPLY_MAX + 128], tok[TERN_TOKEN_MAX_LEN];
	struct tern_path later = any_path;
	later.remote.port = 61000; /* a new connection comes from another port */
	int tl = tern_token_seal(&tkey, TERN_TOKEN_NEW_TOKEN, &any_path.remote, NULL, T0, &trand, tok, sizeof(tok));
	initial_with_token(d, sizeof(d), dcid8, 8, tok, (size_t)tl);
	cr_assert_eq(tern_endpoint_recv(ep, d, sizeof(d), &later, T0 + 3600 * 1000 * MS, reply, sizeof(reply)), 0,
		     "no Retry: the token already validated the address");
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.tokens_accepted, 1);
	cr_assert_eq(st.conns_created, 1);
	cr_assert_eq(st.retry_sent, 0);
	/* an invalid NEW_TOKEN token is as if there were none: a Retry */
	tok[5] ^= 1;
	uint8_t dcid2[8] = {7, 7, 7, 7, 7, 7, 7, 7};
	initial_with_token(d, sizeof(d), dcid2, 8, tok, (size_t)tl);
	cr_assert_gt(tern_endpoint_recv(ep, d, sizeof(d), &later, T0, reply, sizeof(reply)), 0);
	st = stats_of(ep);
	cr_assert_eq(st.retry_sent, 1);
	cr_assert_eq(st.dropped_bad_token, 0);
	tern_endpoint_free(ep);
	tern_token_key_clear(&tkey);
}

Test(endpoint, handshake_through_a_retry_then_a_new_token_arrives)
{
	token_key_make(&tkey, 0x7e);
	net_token_key = &tkey;
	net_retry = TERN_RETRY_ALWAYS;
	struct net n;
	net_init(&n);
	net_token_key = NULL;
	net_retry = 0;
	net_handshake(&n);
	for (int i = 0; i < 50; i++)
		net_step(&n);
	struct tern_endpoint_stats ss = stats_of(n.srv);
	cr_assert_eq(ss.retry_sent, 1);
	cr_assert_eq(ss.tokens_accepted, 1);
	cr_assert_eq(ss.conns_created, 1);
	cr_assert_eq(ss.handshakes_in_progress, 0);
	cr_assert_eq(n.cli_rec.closes, 0, "the client accepted retry_source_connection_id (RFC 9000 §7.3)");
	struct tern_conn_stats cs;
	tern_conn_stats(n.conn, &cs);
	cr_assert_eq(cs.new_tokens_received, 1, "the server sends a NEW_TOKEN after the handshake");
	net_free(&n);
	tern_token_key_clear(&tkey);
}

/* ---- a flood of valid Initials (issue 9: limits hold, memory bounded) ---- */

static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks;
}

static void flood_valid_initials(struct tern_endpoint *ep, int n, uint64_t *replies)
{
	uint8_t d[1200], reply[TERN_ENDPOINT_REPLY_MAX + 128];
	for (int i = 0; i < n; i++) {
		uint8_t dcid[8];
		memcpy(dcid, &i, sizeof(i));
		memset(dcid + sizeof(i), 0xf1, sizeof(dcid) - sizeof(i));
		valid_initial(d, sizeof(d), TERN_VERSION_1, dcid, 8);
		struct tern_path p = any_path;
		p.remote.port = (uint16_t)(1024 + i % 60000);
		*replies += tern_endpoint_recv(ep, d, sizeof(d), &p, T0 + (uint64_t)i * 1000, reply,
					       sizeof(reply)) > 0;
	}
}

Test(endpoint, valid_initial_flood_respects_the_connection_limit)
{
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	cfg.max_conns = 100;
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint64_t replies = 0;
	size_t before = heap_in_use();
	flood_valid_initials(ep, 3000, &replies);
	size_t grown = heap_in_use() - before;
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.conns_created, 100, "never more than max_conns");
	cr_assert_eq(st.dropped_full, 2900);
	cr_assert_eq(replies, 0);
	/* 100 connections in the handshake cost about 75 KB each (bench_memory) */
	cr_assert_lt(grown, 100 * 150 * 1024, "heap grew by %zu bytes for 100 connections", grown);
	tern_endpoint_free(ep);
}

Test(endpoint, valid_initial_flood_respects_the_handshake_limit)
{
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	cfg.max_handshakes = 40;
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint64_t replies = 0;
	flood_valid_initials(ep, 1000, &replies);
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.conns_created, 40);
	cr_assert_eq(st.handshakes_in_progress, 40);
	cr_assert_eq(st.dropped_full, 960);
	tern_endpoint_free(ep);
}

Test(endpoint, valid_initial_flood_with_retry_auto_keeps_no_state_past_the_threshold)
{
	struct tern_endpoint *ep = retry_server(TERN_RETRY_AUTO, 50);
	uint64_t replies = 0;
	size_t before = heap_in_use();
	flood_valid_initials(ep, 5000, &replies);
	size_t grown = heap_in_use() - before;
	struct tern_endpoint_stats st = stats_of(ep);
	cr_assert_eq(st.conns_created, 50);
	cr_assert_eq(st.retry_sent, 4950, "every Initial past the threshold gets a stateless Retry");
	cr_assert_eq(replies, 4950);
	cr_assert_lt(grown, 50 * 150 * 1024, "Retries cost no memory (heap grew by %zu)", grown);
	tern_endpoint_free(ep);
	tern_token_key_clear(&tkey);
}

/* The timer heap: 300 half-open handshakes from one address, started 10 ms
 * apart, each with its own handshake deadline; their PTOs fire first and
 * the send passes run in between, so the heap is re-filed many times. At
 * every check exactly the connections whose deadline passed are gone (in
 * order, from the middle of the address chain too), and the endpoint's
 * next timeout is the earliest deadline left. */
Test(endpoint, timers_of_many_connections_fire_in_order)
{
	struct tern_endpoint_config cfg;
	server_config(&cfg, NULL);
	cfg.conn.handshake_timeout_ns = 10 * SEC;
	cfg.max_conns = 512;
	struct tern_endpoint *ep = ep_make(&cfg, T0);
	uint8_t d[1200], out[1500];
	struct tern_path p;
	const uint64_t step = 10000000; /* 10 ms */
	for (int i = 0; i < 300; i++) {
		uint8_t cid[8] = {0xc1, 0xd, (uint8_t)(i >> 8), (uint8_t)i, 1, 2, 3, 4};
		valid_initial(d, sizeof(d), TERN_VERSION_1, cid, 8);
		tern_endpoint_recv(ep, d, sizeof(d), &any_path, T0 + (uint64_t)i * step, NULL, 0);
		while (tern_endpoint_send(ep, out, sizeof(out), &p, T0 + (uint64_t)i * step) > 0)
			;
	}
	cr_assert_eq(tern_endpoint_conn_count(ep), 300);
	/* PTOs fire and retransmit, deadlines stay */
	for (uint64_t t = T0 + 3 * SEC; t < T0 + 10 * SEC; t += SEC / 2) {
		tern_endpoint_handle_timeout(ep, t);
		while (tern_endpoint_send(ep, out, sizeof(out), &p, t) > 0)
			;
	}
	cr_assert_eq(tern_endpoint_conn_count(ep), 300);
	for (int k = 0; k < 300; k += 37) {
		uint64_t t = T0 + 10 * SEC + (uint64_t)k * step + step / 2;
		tern_endpoint_handle_timeout(ep, t);
		while (tern_endpoint_send(ep, out, sizeof(out), &p, t) > 0)
			;
		cr_assert_eq(tern_endpoint_conn_count(ep), (size_t)(299 - k), "at +%d ms", k * 10);
		uint64_t next = tern_endpoint_next_timeout(ep);
		cr_assert_gt(next, t);
		cr_assert_leq(next, T0 + 10 * SEC + (uint64_t)(k + 1) * step,
			      "the next deadline is connection %d's", k + 1);
	}
	tern_endpoint_handle_timeout(ep, T0 + 20 * SEC);
	cr_assert_eq(tern_endpoint_conn_count(ep), 0);
	cr_assert_eq(stats_of(ep).closed_by_reason[TERN_CLOSE_HANDSHAKE_TIMEOUT], 300);
	cr_assert_eq(tern_endpoint_next_timeout(ep), UINT64_MAX);
	tern_endpoint_free(ep);
}
