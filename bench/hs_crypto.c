/* hs_crypto: the crypto-only cost of one server handshake, timed through
 * wolfCrypt directly (no TLS state machine, no QUIC, no I/O), which bounds
 * the handshakes per second one core can ever reach:
 *
 *   X25519 key generation + X25519 shared secret (the key share),
 *   one ECDSA P-256 signature (CertificateVerify),
 *   the HKDF work of a QUIC handshake (TLS 1.3 key schedule, RFC 8446
 *   §7.1, plus the QUIC packet keys of RFC 9001 §5.1): 4 extracts and 30
 *   expands with SHA-256.
 *
 *   hs_crypto [--seconds S] [--json FILE]
 *
 * Prints microseconds per operation and the resulting limit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/curve25519.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/random.h>

/* Counted from RFC 8446 §7.1 and RFC 9001 §5: extracts for the Initial
 * secret, early, handshake and master secrets; expands for the two Initial
 * secrets, derived x2, the handshake and application traffic secrets (4),
 * exporter and resumption masters (2), two Finished keys, and key+iv+hp
 * for both directions at three levels (18). */
#define HKDF_EXTRACTS 4
#define HKDF_EXPANDS 30

static double min_seconds = 0.5;
static volatile unsigned sink;

struct ctx {
	WC_RNG rng;
	curve25519_key peer;
	ecc_key ecdsa;
	uint8_t hash[32], prk[32], info[54];
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(const char *what, int rc)
{
	fprintf(stderr, "hs_crypto: %s failed (wolfCrypt error %d)\n", what, rc);
	exit(1);
}

/* Runs fn in growing batches until min_seconds passed; microseconds per call. */
static double measure(void (*fn)(struct ctx *c, unsigned n), struct ctx *c)
{
	unsigned n = 4;
	for (;;) {
		uint64_t t0 = now_ns();
		fn(c, n);
		uint64_t dt = now_ns() - t0;
		if (dt >= (uint64_t)(min_seconds * 1e9))
			return (double)dt / n / 1e3;
		n = dt < 1000000 ? n * 8 : (unsigned)((double)n * min_seconds * 1.2e9 / (double)dt) + 1;
	}
}

static void run_keygen(struct ctx *c, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		curve25519_key k;
		wc_curve25519_init(&k);
		int rc = wc_curve25519_make_key(&c->rng, CURVE25519_KEYSIZE, &k);
		if (rc != 0)
			fail("wc_curve25519_make_key", rc);
		sink++;
		wc_curve25519_free(&k);
	}
}

static void run_shared(struct ctx *c, unsigned n)
{
	curve25519_key k;
	uint8_t out[32];
	wc_curve25519_init(&k);
	if (wc_curve25519_make_key(&c->rng, CURVE25519_KEYSIZE, &k) != 0)
		fail("wc_curve25519_make_key", -1);
	for (unsigned i = 0; i < n; i++) {
		word32 len = sizeof(out);
		int rc = wc_curve25519_shared_secret(&k, &c->peer, out, &len);
		if (rc != 0)
			fail("wc_curve25519_shared_secret", rc);
		sink += out[0];
	}
	wc_curve25519_free(&k);
}

static void run_sign(struct ctx *c, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint8_t sig[80];
		word32 len = sizeof(sig);
		c->hash[0] = (uint8_t)i;
		int rc = wc_ecc_sign_hash(c->hash, sizeof(c->hash), sig, &len, &c->rng, &c->ecdsa);
		if (rc != 0)
			fail("wc_ecc_sign_hash", rc);
		sink += sig[len - 1];
	}
}

static void run_extract(struct ctx *c, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		c->hash[0] = (uint8_t)i;
		int rc = wc_HKDF_Extract(WC_SHA256, c->prk, 32, c->hash, 32, c->prk);
		if (rc != 0)
			fail("wc_HKDF_Extract", rc);
	}
	sink += c->prk[0];
}

static void run_expand(struct ctx *c, unsigned n)
{
	uint8_t out[32];
	for (unsigned i = 0; i < n; i++) {
		c->info[20] = (uint8_t)i;
		int rc = wc_HKDF_Expand(WC_SHA256, c->prk, 32, c->info, sizeof(c->info), out, 32);
		if (rc != 0)
			fail("wc_HKDF_Expand", rc);
		sink += out[0];
	}
}

static void setup(struct ctx *c)
{
	int rc;
	if ((rc = wc_InitRng(&c->rng)) != 0)
		fail("wc_InitRng", rc);
	wc_curve25519_init(&c->peer);
	if ((rc = wc_curve25519_make_key(&c->rng, CURVE25519_KEYSIZE, &c->peer)) != 0)
		fail("wc_curve25519_make_key", rc);
	wc_ecc_init(&c->ecdsa);
	if ((rc = wc_ecc_make_key_ex(&c->rng, 32, &c->ecdsa, ECC_SECP256R1)) != 0)
		fail("wc_ecc_make_key_ex", rc);
	/* an HkdfLabel as TLS 1.3 builds it (RFC 8446 §7.1): length, "tls13 "
	 * + label, and a 32-byte transcript hash as context */
	static const char label[] = "tls13 s hs traffic";
	c->info[0] = 0;
	c->info[1] = 32;
	c->info[2] = (uint8_t)(sizeof(label) - 1);
	memcpy(c->info + 3, label, sizeof(label) - 1);
	c->info[3 + sizeof(label) - 1] = 32;
	memset(c->hash, 0x5a, sizeof(c->hash));
	memset(c->prk, 0xa5, sizeof(c->prk));
}

static void output(const double us[5], const char *json)
{
	double hkdf = HKDF_EXTRACTS * us[3] + HKDF_EXPANDS * us[4];
	double total = us[0] + us[1] + us[2] + hkdf;
	printf("X25519 key generation     %9.2f us\n", us[0]);
	printf("X25519 shared secret      %9.2f us\n", us[1]);
	printf("ECDSA P-256 sign          %9.2f us\n", us[2]);
	printf("HKDF (%d extracts, %d expands) %6.2f us\n", HKDF_EXTRACTS, HKDF_EXPANDS, hkdf);
	printf("crypto per handshake      %9.2f us: at most %.0f handshakes/s per core\n", total,
	       1e6 / total);
	if (!json)
		return;
	FILE *f = fopen(json, "w");
	if (!f) {
		fprintf(stderr, "hs_crypto: cannot write %s\n", json);
		exit(1);
	}
	fprintf(f, "{\"x25519_keygen_us\": %.3f, \"x25519_shared_us\": %.3f, \"ecdsa_p256_sign_us\": %.3f, "
		"\"hkdf_extract_us\": %.3f, \"hkdf_expand_us\": %.3f, \"hkdf_extracts\": %d, "
		"\"hkdf_expands\": %d, \"hkdf_us\": %.3f, \"handshake_crypto_us\": %.3f, "
		"\"handshakes_per_s\": %.1f}\n", us[0], us[1], us[2], us[3], us[4], HKDF_EXTRACTS,
		HKDF_EXPANDS, hkdf, total, 1e6 / total);
	if (fclose(f) != 0) {
		fprintf(stderr, "hs_crypto: cannot write %s\n", json);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	const char *json = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json") && i + 1 < argc) {
			json = argv[++i];
		} else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			min_seconds = atof(argv[++i]);
			if (!(min_seconds > 0 && min_seconds <= 60)) {
				fprintf(stderr, "hs_crypto: --seconds wants a number in (0, 60]\n");
				return 2;
			}
		} else {
			fprintf(stderr, "usage: hs_crypto [--seconds S] [--json FILE]\n");
			return 2;
		}
	}
	static struct ctx c;
	setup(&c);
	double us[5] = {
		measure(run_keygen, &c), measure(run_shared, &c), measure(run_sign, &c),
		measure(run_extract, &c), measure(run_expand, &c),
	};
	output(us, json);
	wc_ecc_free(&c.ecdsa);
	wc_curve25519_free(&c.peer);
	wc_FreeRng(&c.rng);
	return 0;
}
