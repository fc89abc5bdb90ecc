/* Shared by the structure-aware QUIC fuzz targets (fuzz_endpoint.c,
 * fuzz_client.c): a throw-away certificate made in memory, deterministic
 * randomness, secrets learned from the TLS key log, packets forged with the
 * right keys at every level, and the checks every datagram a tern
 * connection emits must pass. Header-only: each target is one translation
 * unit and meson lists no extra source for it. */
#ifndef TERN_FUZZ_QUIC_H
#define TERN_FUZZ_QUIC_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include "tern/crypto.h"
#include "tern/frame.h"
#include "tern/packet.h"
#include "tern/tls.h"

/* A broken invariant must stop the fuzzer with a crash it keeps. */
#define CHECK(c)                          \
	do {                              \
		if (!(c))                 \
			__builtin_trap(); \
	} while (0)

#define FQ_MS UINT64_C(1000000)
#define FQ_SEC (1000 * FQ_MS)
#define FQ_DGRAM_MAX 1500
/* The engine probes the path up to this (DPLPMTUD), so no datagram from it
 * may be longer. */
#define FQ_MAX_DATAGRAM 1452
/* Forged packet numbers start here: above anything the real peer used, and
 * within the 4-byte encoding's window of the receiver's largest. */
#define FQ_PN_BASE 0x4000
/* Key generations the fuzzer may move 1-RTT packets to (RFC 9001 §6). */
#define FQ_GENS 4

enum { FQ_INITIAL, FQ_HANDSHAKE, FQ_APP, FQ_RAW };

/* TERN_FUZZ_DEBUG set: the targets say what each input did. */
static int fq_debug;

/* ---- randomness ------------------------------------------------------------ */

static inline void fq_rand(void *ctx, uint8_t *buf, size_t len)
{
	uint64_t *s = ctx;
	for (size_t i = 0; i < len; i++) {
		uint64_t x = *s;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		*s = x;
		buf[i] = (uint8_t)(x >> 24);
	}
}

/* ---- a self-signed P-256 certificate, made once per process ---------------- */

/* wolfCrypt makes it, so no private key sits in the repository and the
 * fuzzer needs no file at run time. */
static inline int fq_make_cert(uint8_t *cert, size_t *cert_len, uint8_t *key, size_t *key_len)
{
	static uint8_t der[2048], kder[256];
	WC_RNG rng;
	ecc_key k;
	Cert c;
	int rv = -1;
	if (wc_InitRng(&rng) != 0)
		return -1;
	if (wc_ecc_init(&k) != 0)
		goto out_rng;
	if (wc_ecc_make_key_ex(&rng, 32, &k, ECC_SECP256R1) != 0 || wc_InitCert(&c) != 0)
		goto out;
	strncpy(c.subject.commonName, "localhost", CTC_NAME_SIZE - 1);
	c.sigType = CTC_SHA256wECDSA;
	c.daysValid = 3650;
	if (wc_MakeCert_ex(&c, der, sizeof(der), ECC_TYPE, &k, &rng) < 0)
		goto out;
	int n = wc_SignCert_ex(c.bodySz, c.sigType, der, sizeof(der), ECC_TYPE, &k, &rng);
	int kn = n > 0 ? wc_EccKeyToDer(&k, kder, sizeof(kder)) : -1;
	int p = kn > 0 ? wc_DerToPem(der, (word32)n, cert, (word32)*cert_len, CERT_TYPE) : -1;
	int kp = p > 0 ? wc_DerToPem(kder, (word32)kn, key, (word32)*key_len, ECC_PRIVATEKEY_TYPE)
		       : -1;
	if (kp > 0) {
		*cert_len = (size_t)p;
		*key_len = (size_t)kp;
		rv = 0;
	}
out:
	wc_ecc_free(&k);
out_rng:
	wc_FreeRng(&rng);
	return rv;
}

/* ---- secrets from the key log ------------------------------------------------- */

/* [from_client][0: handshake, 1: application], SHA-256 suites only (the
 * fuzzers pin TLS_AES_128_GCM_SHA256 so a secret is 32 bytes). */
struct fq_secrets {
	int has[2][2];
	uint8_t s[2][2][32];
};

static struct fq_secrets fq_sec;

static inline int fq_hex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 0;
}

/* Both sides may log one secret: the first one wins, as they are equal. */
static inline void fq_keylog(void *arg, const char *line)
{
	static const struct {
		const char *label;
		int from_client, app;
	} labels[] = {
		{"CLIENT_HANDSHAKE_TRAFFIC_SECRET ", 1, 0},
		{"SERVER_HANDSHAKE_TRAFFIC_SECRET ", 0, 0},
		{"CLIENT_TRAFFIC_SECRET_0 ", 1, 1},
		{"SERVER_TRAFFIC_SECRET_0 ", 0, 1},
	};
	struct fq_secrets *s = arg;
	for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
		if (strncmp(line, labels[i].label, strlen(labels[i].label)) != 0)
			continue;
		const char *hex = strrchr(line, ' ') + 1;
		int fc = labels[i].from_client, app = labels[i].app;
		if (s->has[fc][app] || strlen(hex) != 64)
			return;
		for (int j = 0; j < 32; j++)
			s->s[fc][app][j] = (uint8_t)(fq_hex(hex[2 * j]) << 4 | fq_hex(hex[2 * j + 1]));
		s->has[fc][app] = 1;
	}
}

/* Server and client contexts with one suite and the key log on both. */
static inline void fq_tls_init(struct tern_tls_ctx **srv, struct tern_tls_ctx **cli,
			       const char *alpn)
{
	static uint8_t cert[4096], key[1024];
	size_t cl = sizeof(cert), kl = sizeof(key);
	char err[256] = "";
	const char *alpns[] = {alpn};
	const uint16_t suite = TERN_TLS_AES_128_GCM_SHA256;
	if (fq_make_cert(cert, &cl, key, &kl) != 0 ||
	    tern_tls_ctx_new_server(srv, cert, cl, key, kl, alpns, 1, err, sizeof(err)) != 0 ||
	    tern_tls_ctx_new_client(cli, alpns, 1, false, NULL, 0, err, sizeof(err)) != 0 ||
	    tern_tls_ctx_set_suites(*srv, &suite, 1) != 0 ||
	    tern_tls_ctx_set_suites(*cli, &suite, 1) != 0) {
		fprintf(stderr, "fuzz: TLS setup failed: %s\n", err);
		abort();
	}
	tern_tls_ctx_set_keylog(*srv, fq_keylog, &fq_sec);
	tern_tls_ctx_set_keylog(*cli, fq_keylog, &fq_sec);
}

/* ---- forging packets ------------------------------------------------------------ */

/* Everything one sender protects with, built as its secrets appear. */
struct fq_sender {
	int from_client;
	struct tern_crypto_keys initial, hs, app[FQ_GENS];
	int has_initial, has_hs, n_app;
	uint8_t app_secret[32];
	uint64_t pn[3];
};

static inline void fq_sender_init(struct fq_sender *s, int from_client)
{
	memset(s, 0, sizeof(*s));
	s->from_client = from_client;
	for (int i = 0; i < 3; i++)
		s->pn[i] = FQ_PN_BASE;
}

static inline void fq_sender_clear(struct fq_sender *s)
{
	tern_crypto_keys_clear(&s->initial);
	tern_crypto_keys_clear(&s->hs);
	for (int i = 0; i < FQ_GENS; i++)
		tern_crypto_keys_clear(&s->app[i]);
}

/* Initial keys from the client's first DCID (RFC 9001 §5.2). */
static inline void fq_sender_set_initial(struct fq_sender *s, const struct tern_cid *odcid)
{
	struct tern_crypto_keys other;
	struct tern_crypto_keys *cli = s->from_client ? &s->initial : &other;
	struct tern_crypto_keys *srv = s->from_client ? &other : &s->initial;
	CHECK(tern_initial_keys_init(TERN_VERSION_1, odcid->bytes, odcid->len, cli, srv) == 0);
	tern_crypto_keys_clear(&other);
	s->has_initial = 1;
}

/* Picks up handshake and 1-RTT secrets the key log delivered since. */
static inline void fq_sender_sync(struct fq_sender *s)
{
	int fc = s->from_client;
	if (!s->has_hs && fq_sec.has[fc][0]) {
		CHECK(tern_crypto_keys_init(&s->hs, TERN_VERSION_1, TERN_AEAD_AES_128_GCM,
					    fq_sec.s[fc][0], 32) == 0);
		s->has_hs = 1;
	}
	if (!s->n_app && fq_sec.has[fc][1]) {
		memcpy(s->app_secret, fq_sec.s[fc][1], 32);
		CHECK(tern_crypto_keys_init(&s->app[0], TERN_VERSION_1, TERN_AEAD_AES_128_GCM,
					    s->app_secret, 32) == 0);
		s->n_app = 1;
	}
}

/* The AEAD of 1-RTT key generation g (RFC 9001 §6.1: each is derived from
 * the previous secret; the header-protection key never changes). */
static inline struct tern_crypto_keys *fq_app_keys(struct fq_sender *s, int g)
{
	while (s->n_app && s->n_app <= g && s->n_app < FQ_GENS) {
		CHECK(tern_crypto_secret_update(TERN_VERSION_1, TERN_HASH_SHA256, s->app_secret, 32) == 0);
		CHECK(tern_crypto_keys_init_aead(&s->app[s->n_app], TERN_VERSION_1,
						 TERN_AEAD_AES_128_GCM, s->app_secret, 32) == 0);
		s->n_app++;
	}
	return s->n_app > g ? &s->app[g] : NULL;
}

/* Appends one packet of `level` carrying `frames` (zero-padded so the
 * packet is at least min_len bytes; an Initial carries token) at out. Returns its length, or 0 when
 * the sender lacks those keys or it does not fit. */
static inline size_t fq_forge(struct fq_sender *s, int level, int gen, const struct tern_cid *dcid,
			      const struct tern_cid *scid, const uint8_t *token, size_t token_len,
			      uint64_t pn, const uint8_t *frames, size_t len, size_t min_len,
			      uint8_t *out, size_t cap)
{
	struct tern_crypto_keys *aead, *hp;
	int off;
	fq_sender_sync(s);
	if (level == FQ_INITIAL || level == FQ_HANDSHAKE) {
		aead = hp = level == FQ_INITIAL ? (s->has_initial ? &s->initial : NULL)
						: (s->has_hs ? &s->hs : NULL);
		if (!aead)
			return 0;
		off = tern_pkt_long_write(out, cap, TERN_VERSION_1,
					  level == FQ_INITIAL ? TERN_PKT_INITIAL : TERN_PKT_HANDSHAKE,
					  dcid, scid, level == FQ_INITIAL ? token : NULL,
					  level == FQ_INITIAL ? token_len : 0, pn, 4);
	} else {
		aead = fq_app_keys(s, gen);
		hp = &s->app[0];
		if (!aead)
			return 0;
		off = tern_pkt_short_write(out, cap, dcid, pn, 4, gen & 1, 0);
	}
	if (off < 0)
		return 0;
	size_t hl = (size_t)off + 4;
	size_t plen = len;
	if (hl + plen + TERN_AEAD_TAG_LEN < min_len)
		plen = min_len - hl - TERN_AEAD_TAG_LEN;
	if (hl + plen + TERN_AEAD_TAG_LEN > cap)
		return 0;
	memcpy(out + hl, frames, len);
	memset(out + hl + len, 0, plen - len);
	size_t total = hl + plen + TERN_AEAD_TAG_LEN;
	if (level != FQ_APP && tern_pkt_patch_length(out, (size_t)off, total) < 0)
		return 0;
	CHECK(tern_aead_seal(aead, pn, out, hl, out + hl, plen, out + hl + plen) == 0);
	CHECK(tern_hp_protect(hp, out, total, (size_t)off, 4) == 0);
	return total;
}

/* ---- the fuzz input as records -------------------------------------------------- */

struct fq_input {
	const uint8_t *p, *end;
};

static inline int fq_byte(struct fq_input *in)
{
	return in->p < in->end ? *in->p++ : 0;
}

/* Up to a 2-byte length's worth of bytes, clamped to what is left. */
static inline size_t fq_take(struct fq_input *in, const uint8_t **data)
{
	size_t n = (size_t)fq_byte(in) << 8;
	n |= (size_t)fq_byte(in);
	size_t left = (size_t)(in->end - in->p);
	if (n > left)
		n = left;
	*data = in->p;
	in->p += n;
	return n;
}

/* Clock steps a record may ask for: nothing, within a PTO, beyond the
 * idle timeout. */
static inline uint64_t fq_step(int code)
{
	static const uint64_t steps[8] = {0,	      1 * FQ_MS,   5 * FQ_MS,	25 * FQ_MS,
					  100 * FQ_MS, 500 * FQ_MS, 3 * FQ_SEC, 40 * FQ_SEC};
	return steps[code & 7];
}

/* ---- checks on what a connection sends ------------------------------------------ */

struct fq_walk {
	int has_initial, has_handshake, has_short;
	size_t n_pkts;
	struct tern_cid first_scid; /* SCID of the first long header */
	struct tern_cid first_dcid;
	uint32_t version;
};

/* Every datagram a connection emits is a run of coalesced packets that
 * parse (RFC 9000 §12.2): long headers of one supported version, then at
 * most one short header, which ends it; nothing left over. */
static inline void fq_check_datagram(const uint8_t *d, size_t len, size_t short_dcid_len,
			      struct fq_walk *w)
{
	memset(w, 0, sizeof(*w));
	CHECK(len > 0 && len <= FQ_MAX_DATAGRAM);
	size_t off = 0;
	while (off < len) {
		struct tern_pkt_hdr h;
		int n = tern_pkt_parse(d + off, len - off, short_dcid_len, &h);
		CHECK(n > 0 && (size_t)n <= len - off);
		/* tern sends no 0-RTT, and VN/Retry only statelessly */
		CHECK(h.type == TERN_PKT_INITIAL || h.type == TERN_PKT_HANDSHAKE ||
		      h.type == TERN_PKT_1RTT);
		if (h.type != TERN_PKT_1RTT) {
			CHECK(tern_version_is_supported(h.version));
			CHECK(!w->version || w->version == h.version);
			w->version = h.version;
			if (!w->n_pkts) {
				w->first_scid = h.scid;
				w->first_dcid = h.dcid;
			}
		}
		w->has_initial |= h.type == TERN_PKT_INITIAL;
		w->has_handshake |= h.type == TERN_PKT_HANDSHAKE;
		w->has_short |= h.type == TERN_PKT_1RTT;
		w->n_pkts++;
		off += (size_t)n;
	}
	CHECK(off == len);
}

/* ---- seeds (TERN_FUZZ_WRITE_SEEDS=dir) ------------------------------------------ */

/* A seed is built record by record, in the format the target reads. */
struct fq_seed {
	uint8_t b[4096];
	size_t n;
};

static inline void fq_seed_bytes(struct fq_seed *s, const void *d, size_t len)
{
	CHECK(s->n + len <= sizeof(s->b));
	memcpy(s->b + s->n, d, len);
	s->n += len;
}

static inline void fq_seed_byte(struct fq_seed *s, int b)
{
	uint8_t v = (uint8_t)b;
	fq_seed_bytes(s, &v, 1);
}

/* The 2-byte length and the bytes, as fq_take() reads them. */
static inline void fq_seed_data(struct fq_seed *s, const void *d, size_t len)
{
	fq_seed_byte(s, (int)(len >> 8));
	fq_seed_byte(s, (int)(len & 0xff));
	fq_seed_bytes(s, d, len);
}

static inline void fq_seed_write(const char *dir, const char *name, const struct fq_seed *s)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(s->b, 1, s->n, f) != s->n) {
		fprintf(stderr, "fuzz: cannot write %s\n", path);
		exit(1);
	}
	fclose(f);
}

/* Frame builders for seeds: each appends one encoded frame to buf. */
struct fq_frames {
	uint8_t b[1400];
	size_t n;
};

static inline void fq_frame(struct fq_frames *fr, const struct tern_frame *f)
{
	uint8_t *p = fr->b + fr->n;
	CHECK(tern_frame_encode(&p, fr->b + sizeof(fr->b), f) == 0);
	fr->n = (size_t)(p - fr->b);
}

static inline void fq_frame_raw(struct fq_frames *fr, const void *d, size_t len)
{
	CHECK(fr->n + len <= sizeof(fr->b));
	memcpy(fr->b + fr->n, d, len);
	fr->n += len;
}

static inline void fq_frame_stream(struct fq_frames *fr, uint64_t id, uint64_t off,
				   const char *data, int fin)
{
	struct tern_frame f = {.type = TERN_FRAME_STREAM | TERN_FRAME_STREAM_LEN |
				       (off ? TERN_FRAME_STREAM_OFF : 0) | (fin ? TERN_FRAME_STREAM_FIN : 0)};
	f.stream.stream_id = id;
	f.stream.offset = off;
	f.stream.data = (const uint8_t *)data;
	f.stream.len = strlen(data);
	fq_frame(fr, &f);
}

static inline void fq_frame_crypto(struct fq_frames *fr, uint64_t off, const uint8_t *data,
				   size_t len)
{
	struct tern_frame f = {.type = TERN_FRAME_CRYPTO};
	f.crypto.offset = off;
	f.crypto.data = data;
	f.crypto.len = len;
	fq_frame(fr, &f);
}

static inline void fq_frame_ack(struct fq_frames *fr, uint64_t largest, uint64_t first_range)
{
	struct tern_ack_range r = {largest - first_range, largest};
	uint8_t *p = fr->b + fr->n;
	CHECK(tern_ack_encode(&p, fr->b + sizeof(fr->b), &r, 1, 0, NULL) == 1);
	fr->n = (size_t)(p - fr->b);
}

static inline void fq_frame_close(struct fq_frames *fr, int app, uint64_t code)
{
	struct tern_frame f = {.type = app ? TERN_FRAME_CONNECTION_CLOSE_APP
					   : TERN_FRAME_CONNECTION_CLOSE};
	f.close.error_code = code;
	f.close.reason = (const uint8_t *)"fuzz";
	f.close.reason_len = 4;
	fq_frame(fr, &f);
}

/* Opens a protected packet in place (a private copy) with known keys and
 * copies its frames but PADDING (the target pads again when asked) to out,
 * for seeds built from real traffic. Returns their length. */
static inline size_t fq_open(struct tern_crypto_keys *k, uint8_t *pkt, const struct tern_pkt_hdr *h,
		      uint8_t *out, size_t cap)
{
	size_t pn_len;
	CHECK(tern_hp_unprotect(k, pkt, h->pkt_len, h->pn_offset, &pn_len) == 0);
	size_t hl = h->pn_offset + pn_len;
	uint64_t pn = tern_pn_decode(TERN_PN_NONE, tern_pn_read(pkt + h->pn_offset, pn_len),
				     (unsigned)pn_len * 8);
	size_t plen = h->pkt_len - hl - TERN_AEAD_TAG_LEN;
	CHECK(tern_aead_open(k, pn, pkt, hl, pkt + hl, plen, pkt + hl + plen) == 0);
	const uint8_t *p = pkt + hl, *end = p + plen;
	size_t n = 0;
	while (p < end) {
		const uint8_t *at = p;
		struct tern_frame f;
		CHECK(tern_frame_decode(&p, end, &f) == 0);
		if (f.type == TERN_FRAME_PADDING)
			continue;
		CHECK(n + (size_t)(p - at) <= cap);
		memcpy(out + n, at, (size_t)(p - at));
		n += (size_t)(p - at);
	}
	return n;
}

#endif
