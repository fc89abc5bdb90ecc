/* Tests for the stateless reset module: token PRF (RFC 4493 AES-CMAC over
 * an HKDF-derived key), reset builder and detector (RFC 9000 §10.3), and
 * the token bucket. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <string.h>

#include "tern/reset.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/cmac.h>
#include <wolfssl/wolfcrypt/hmac.h>

/* ---- helpers ---------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes hex, skipping spaces (RFC texts group bytes in 4s), and checks
 * the text round-trips: re-encoding the bytes gives the same digits. */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	static const char digits[] = "0123456789abcdef";
	char again[512], orig[512];
	size_t n = 0, no = 0, na = 0;

	for (const char *p = s; *p; p++) {
		if (*p == ' ')
			continue;
		cr_assert(hexval(*p) >= 0, "bad hex digit in %s", s);
		cr_assert(no < sizeof(orig) - 1);
		orig[no++] = *p;
	}
	orig[no] = 0;
	cr_assert(no % 2 == 0, "odd hex length in %s", s);
	for (size_t i = 0; i < no; i += 2) {
		cr_assert(n < cap);
		out[n++] = (uint8_t)(hexval(orig[i]) << 4 | hexval(orig[i + 1]));
	}
	for (size_t i = 0; i < n; i++) {
		again[na++] = digits[out[i] >> 4];
		again[na++] = digits[out[i] & 15];
	}
	again[na] = 0;
	cr_assert_str_eq(again, orig);
	return n;
}

/* RFC 4493 §4 "Test Vectors". */
static const char rfc_key[] = "2b7e1516 28aed2a6 abf71588 09cf4f3c";
static const char rfc_k1[] = "fbeed618 35713366 7c85e08f 7236a8de";
static const char rfc_k2[] = "f7ddac30 6ae266cc f90bc11e e46d513b";
static const char rfc_msg[] = "6bc1bee2 2e409f96 e93d7e11 7393172a"
			      "ae2d8a57 1e03ac9c 9eb76fac 45af8e51"
			      "30c81c46 a35ce411 e5fbc119 1a0a52ef"
			      "f69f2445 df4f9b17 ad2b417b e66c3710";
static const struct {
	size_t len;
	const char *tag;
} rfc_examples[] = {
	{0, "bb1d6929 e9593728 7fa37d12 9b756746"},
	{16, "070a16b4 6b4d4144 f79bdd9d d04a287c"},
	{40, "dfa66747 de9ae630 30ca3261 1497c827"},
	{64, "51f0bebf 7e3b9d92 fc497417 79363cfe"},
};

static void rfc_key_init(struct tern_reset_key *k)
{
	uint8_t key[16];
	cr_assert_eq(unhex(rfc_key, key, sizeof(key)), 16);
	cr_assert_eq(tern_reset_key_init_raw(k, key), 0);
}

static const uint8_t static_key32[32] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};

/* Fake randomness: a byte counter, recording every call. */
struct fake_rand {
	uint8_t next;
	int calls;
	size_t lens[4];
};

static void fake_fill(void *ctx, uint8_t *buf, size_t len)
{
	struct fake_rand *f = ctx;
	if (f->calls < 4)
		f->lens[f->calls] = len;
	f->calls++;
	for (size_t i = 0; i < len; i++)
		buf[i] = f->next++;
}

/* Randomness that returns the same byte everywhere. */
static void const_fill(void *ctx, uint8_t *buf, size_t len)
{
	memset(buf, *(const uint8_t *)ctx, len);
}

/* Length draw as a big-endian u64 v, then 0x5a bytes. */
struct len_rand {
	uint64_t v;
	int calls;
};

static void len_fill(void *ctx, uint8_t *buf, size_t len)
{
	struct len_rand *r = ctx;
	if (r->calls++ == 0 && len == 8) {
		for (int i = 7; i >= 0; i--, r->v >>= 8)
			buf[i] = (uint8_t)r->v;
		return;
	}
	memset(buf, 0x5a, len);
}

static const uint8_t tok_a[16] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
				  0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf};

/* ---- AES-CMAC and the token PRF --------------------------------------- */

Test(reset_cmac, rfc4493_subkeys)
{
	struct tern_reset_key k;
	uint8_t k1[16], k2[16];

	rfc_key_init(&k);
	cr_assert_eq(unhex(rfc_k1, k1, sizeof(k1)), 16);
	cr_assert_eq(unhex(rfc_k2, k2, sizeof(k2)), 16);
	cr_assert_arr_eq(k.cmac.k1, k1, 16);
	cr_assert_arr_eq(k.cmac.k2, k2, 16);
	tern_reset_key_clear(&k);
}

Test(reset_cmac, rfc4493_examples)
{
	struct tern_reset_key k;
	uint8_t msg[64], want[16], tag[16];

	rfc_key_init(&k);
	cr_assert_eq(unhex(rfc_msg, msg, sizeof(msg)), 64);
	for (size_t i = 0; i < sizeof(rfc_examples) / sizeof(rfc_examples[0]); i++) {
		cr_assert_eq(unhex(rfc_examples[i].tag, want, sizeof(want)), 16);
		memset(tag, 0, sizeof(tag));
		cr_assert_eq(tern_reset_cmac(&k, msg, rfc_examples[i].len, tag), 0);
		cr_assert_arr_eq(tag, want, 16, "RFC 4493 example with len %zu", rfc_examples[i].len);
	}
	tern_reset_key_clear(&k);
}

/* Every length 0..80, at an odd (unaligned) address, against wolfCrypt's
 * own one-shot CMAC: covers each of the whole-block / padded paths and
 * the block boundaries between the RFC examples. */
Test(reset_cmac, matches_wolfcrypt_every_length)
{
	struct tern_reset_key k;
	uint8_t key[16], buf[81], tag[16], want[16];
	word32 wlen;

	rfc_key_init(&k);
	cr_assert_eq(unhex(rfc_key, key, sizeof(key)), 16);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 37 + 11);
	for (size_t len = 0; len <= 80; len++) {
		wlen = sizeof(want);
		cr_assert_eq(wc_AesCmacGenerate(want, &wlen, buf + 1, (word32)len, key, 16), 0);
		cr_assert_eq(tern_reset_cmac(&k, buf + 1, len, tag), 0);
		cr_assert_arr_eq(tag, want, 16, "len %zu", len);
	}
}

Test(reset_cmac, bad_arguments)
{
	struct tern_reset_key k;
	uint8_t tag[16], key[16] = {0};

	rfc_key_init(&k);
	cr_assert_eq(tern_reset_cmac(&k, NULL, 1, tag), TERN_ERR_INVAL);
	cr_assert_eq(tern_reset_cmac(NULL, key, 1, tag), TERN_ERR_INVAL);
	cr_assert_eq(tern_reset_cmac(&k, key, 1, NULL), TERN_ERR_INVAL);
	cr_assert_eq(tern_reset_cmac(&k, NULL, 0, tag), 0); /* empty message */
	cr_assert_eq(tern_reset_key_init_raw(NULL, key), TERN_ERR_INVAL);
	cr_assert_eq(tern_reset_key_init_raw(&k, NULL), TERN_ERR_INVAL);
}

/* The token path only reads the key: it can be shared by all workers. */
Test(reset_cmac, token_leaves_key_untouched)
{
	static struct tern_reset_key k, before;
	uint8_t cid[20] = {1, 2, 3}, tok[16];

	cr_assert_eq(tern_reset_key_init(&k, static_key32, sizeof(static_key32)), 0);
	memcpy(&before, &k, sizeof(k));
	for (size_t len = 0; len <= 20; len++)
		cr_assert_eq(tern_reset_token(&k, cid, len, tok), 0);
	cr_assert_eq(memcmp(&before, &k, sizeof(k)), 0);
}

/* k_reset = HKDF-SHA256(IKM = static key, salt = none, info = "tern reset
 * token", L = 16), recomputed here from HMAC by RFC 5869 §2.2-2.3 (zero
 * salt of hash length, one expand block), independently of wc_HKDF. */
static void hkdf_by_hand(const uint8_t *ikm, size_t ikm_len, uint8_t out[16])
{
	static const char info[] = "tern reset token";
	uint8_t zeros[32] = {0}, prk[32], t1[32], one = 1;
	Hmac h;

	cr_assert_eq(wc_HmacInit(&h, NULL, INVALID_DEVID), 0);
	cr_assert_eq(wc_HmacSetKey(&h, WC_SHA256, zeros, sizeof(zeros)), 0);
	cr_assert_eq(wc_HmacUpdate(&h, ikm, (word32)ikm_len), 0);
	cr_assert_eq(wc_HmacFinal(&h, prk), 0);
	cr_assert_eq(wc_HmacSetKey(&h, WC_SHA256, prk, sizeof(prk)), 0);
	cr_assert_eq(wc_HmacUpdate(&h, (const byte *)info, sizeof(info) - 1), 0);
	cr_assert_eq(wc_HmacUpdate(&h, &one, 1), 0);
	cr_assert_eq(wc_HmacFinal(&h, t1), 0);
	wc_HmacFree(&h);
	memcpy(out, t1, 16);
}

Test(reset_token, derivation_is_hkdf_sha256)
{
	static const size_t key_lens[] = {16, 32, 100};
	uint8_t ikm[100], kr[16], cid[20], t1[16], t2[16];
	struct tern_reset_key a, b;

	for (size_t i = 0; i < sizeof(ikm); i++)
		ikm[i] = (uint8_t)(0xc3 ^ i);
	for (size_t i = 0; i < sizeof(cid); i++)
		cid[i] = (uint8_t)(i + 1);
	for (size_t j = 0; j < 3; j++) {
		hkdf_by_hand(ikm, key_lens[j], kr);
		cr_assert_eq(tern_reset_key_init(&a, ikm, key_lens[j]), 0);
		cr_assert_eq(tern_reset_key_init_raw(&b, kr), 0);
		for (size_t len = 0; len <= 20; len++) {
			cr_assert_eq(tern_reset_token(&a, cid, len, t1), 0);
			cr_assert_eq(tern_reset_token(&b, cid, len, t2), 0);
			cr_assert_arr_eq(t1, t2, 16, "key len %zu cid len %zu", key_lens[j], len);
		}
	}
}

/* Regression pin: values computed with Python's `cryptography` package
 * (HKDF-SHA256 and AES-CMAC, a separate implementation), not RFC vectors.
 * A change here would break token agreement across a mixed-version
 * cluster. */
Test(reset_token, cross_implementation_pin)
{
	static const struct {
		const char *cid, *token;
	} pins[] = {
		{"", "3c956260 e0bdb12e 4276cb79 dfb60e80"},
		{"01020304 05060708", "b711b4aa 2afb73e2 69f2a598 481c1c1e"},
		{"a0a1a2a3 a4a5a6a7 a8a9aaab acadaeaf b0b1b2b3", "9bf31d86 99e96251 82803b01 ccfe3aa9"},
	};
	uint8_t kr[16], cid[20], want[16], tok[16];
	struct tern_reset_key k;

	hkdf_by_hand(static_key32, sizeof(static_key32), kr);
	cr_assert_eq(unhex("50f22b5b c146305f 09e249b6 d6ab6de7", want, 16), 16);
	cr_assert_arr_eq(kr, want, 16);
	cr_assert_eq(tern_reset_key_init(&k, static_key32, sizeof(static_key32)), 0);
	for (size_t i = 0; i < 3; i++) {
		size_t n = unhex(pins[i].cid, cid, sizeof(cid));
		cr_assert_eq(unhex(pins[i].token, want, 16), 16);
		cr_assert_eq(tern_reset_token(&k, cid, n, tok), 0);
		cr_assert_arr_eq(tok, want, 16, "cid len %zu", n);
	}
	tern_reset_key_clear(&k);
}

Test(reset_token, deterministic_across_key_objects)
{
	struct tern_reset_key a, b;
	uint8_t cid[20], t1[16], t2[16];

	cr_assert_eq(tern_reset_key_init(&a, static_key32, sizeof(static_key32)), 0);
	cr_assert_eq(tern_reset_key_init(&b, static_key32, sizeof(static_key32)), 0);
	for (size_t i = 0; i < sizeof(cid); i++)
		cid[i] = (uint8_t)(0x30 + i);
	for (size_t len = 0; len <= 20; len++) {
		cr_assert_eq(tern_reset_token(&a, cid, len, t1), 0);
		cr_assert_eq(tern_reset_token(&a, cid, len, t2), 0);
		cr_assert_arr_eq(t1, t2, 16); /* same object, twice */
		cr_assert_eq(tern_reset_token(&b, cid, len, t2), 0);
		cr_assert_arr_eq(t1, t2, 16, "cid len %zu", len);
	}
}

Test(reset_token, different_keys_and_cids_differ)
{
	struct tern_reset_key a, b, c;
	uint8_t other[32], cid[20] = {0}, toks[21][16], t[16];

	memcpy(other, static_key32, sizeof(other));
	other[31] ^= 1;
	cr_assert_eq(tern_reset_key_init(&a, static_key32, sizeof(static_key32)), 0);
	cr_assert_eq(tern_reset_key_init(&b, other, sizeof(other)), 0);
	/* A longer static key sharing the first 16 bytes is a different key. */
	cr_assert_eq(tern_reset_key_init(&c, static_key32, 16), 0);
	for (size_t len = 0; len <= 20; len++) {
		cr_assert_eq(tern_reset_token(&a, cid, len, toks[len]), 0);
		cr_assert_eq(tern_reset_token(&b, cid, len, t), 0);
		cr_assert_arr_neq(toks[len], t, 16);
		cr_assert_eq(tern_reset_token(&c, cid, len, t), 0);
		cr_assert_arr_neq(toks[len], t, 16);
	}
	/* All-zero CIDs of different lengths: CMAC padding keeps them apart. */
	for (size_t i = 0; i <= 20; i++)
		for (size_t j = i + 1; j <= 20; j++)
			cr_assert_arr_neq(toks[i], toks[j], 16, "len %zu vs %zu", i, j);
	/* One bit flipped in any byte of a 20-byte CID changes the token. */
	for (size_t i = 0; i < 20; i++) {
		cid[i] ^= 0x80;
		cr_assert_eq(tern_reset_token(&a, cid, 20, t), 0);
		cr_assert_arr_neq(toks[20], t, 16, "byte %zu", i);
		cid[i] ^= 0x80;
	}
}

Test(reset_token, bad_arguments)
{
	struct tern_reset_key k;
	uint8_t cid[21] = {0}, tok[16];

	cr_assert_eq(tern_reset_key_init(&k, static_key32, 15), TERN_ERR_INVAL);
	cr_assert_eq(tern_reset_key_init(&k, NULL, 32), TERN_ERR_INVAL);
	cr_assert_eq(tern_reset_key_init(NULL, static_key32, 32), TERN_ERR_INVAL);
	cr_assert_eq(tern_reset_key_init(&k, static_key32, 16), 0);
	cr_assert_eq(tern_reset_token(&k, cid, 21, tok), TERN_ERR_INVAL);
	cr_assert_eq(tern_reset_token(&k, NULL, 4, tok), TERN_ERR_INVAL);
	cr_assert_eq(tern_reset_token(&k, NULL, 0, tok), 0);
}

Test(reset_token, clear_wipes_key)
{
	static struct tern_reset_key k;
	static const uint8_t zero[sizeof(struct tern_reset_key)];

	cr_assert_eq(tern_reset_key_init(&k, static_key32, sizeof(static_key32)), 0);
	cr_assert_arr_neq((const uint8_t *)&k, zero, sizeof(k));
	tern_reset_key_clear(&k);
	cr_assert_arr_eq((const uint8_t *)&k, zero, sizeof(k));
	tern_reset_key_clear(NULL); /* harmless */
}

/* ---- builder ---------------------------------------------------------- */

Test(reset_build, no_reply_to_21_bytes_or_less)
{
	static const size_t triggers[] = {0, 1, 20, 21};
	struct fake_rand f = {.next = 0};
	struct tern_rand rnd = {fake_fill, &f};
	uint8_t out[128];

	memset(out, 0xee, sizeof(out));
	for (size_t i = 0; i < 4; i++)
		cr_assert_eq(tern_reset_build(out, sizeof(out), triggers[i], tok_a, &rnd), TERN_ERR_LIMIT);
	cr_assert_eq(f.calls, 0);
	for (size_t i = 0; i < sizeof(out); i++)
		cr_assert_eq(out[i], 0xee);
}

/* Triggers of 22..43 bytes get exactly trigger - 1, byte for byte. */
Test(reset_build, exact_bytes_one_shorter)
{
	static const size_t triggers[] = {22, 30, 43};
	uint8_t out[TERN_RESET_MAX_LEN + 8];

	for (size_t t = 0; t < 3; t++) {
		struct fake_rand f = {.next = 0xa5};
		struct tern_rand rnd = {fake_fill, &f};
		size_t want = triggers[t] - 1;

		memset(out, 0xee, sizeof(out));
		cr_assert_eq(tern_reset_build(out, sizeof(out), triggers[t], tok_a, &rnd), (int)want);
		cr_assert_eq(f.calls, 1); /* no length draw */
		cr_assert_eq(f.lens[0], want - 16);
		cr_assert_eq(out[0], (0xa5 & 0x3f) | 0x40); /* 0x65 */
		for (size_t i = 1; i < want - 16; i++)
			cr_assert_eq(out[i], (uint8_t)(0xa5 + i), "byte %zu", i);
		cr_assert_arr_eq(out + want - 16, tok_a, 16);
		for (size_t i = want; i < sizeof(out); i++)
			cr_assert_eq(out[i], 0xee);
	}
}

/* 44 bytes: the range [43, min(43, 64)] holds one length. */
Test(reset_build, trigger_44_gives_43)
{
	struct fake_rand f = {.next = 0x10};
	struct tern_rand rnd = {fake_fill, &f};
	uint8_t out[TERN_RESET_MAX_LEN];

	cr_assert_eq(tern_reset_build(out, sizeof(out), 44, tok_a, &rnd), 43);
	cr_assert_eq(f.calls, 2);
	cr_assert_eq(f.lens[0], 8);
	cr_assert_eq(f.lens[1], 27);
	/* The length draw used bytes 0x10..0x17; the body starts at 0x18. */
	cr_assert_eq(out[0], (0x18 & 0x3f) | 0x40);
	cr_assert_eq(out[26], 0x18 + 26);
	cr_assert_arr_eq(out + 27, tok_a, 16);
}

/* Long triggers: the length is 43 + (draw mod span), span = hi - 42, with
 * hi = min(trigger - 1, 64); every length of the range is reachable and
 * none outside it. */
Test(reset_build, long_trigger_length_range)
{
	static const size_t triggers[] = {45, 50, 64, 65, 66, 1200, 1500, 65535};
	uint8_t out[TERN_RESET_MAX_LEN];

	for (size_t t = 0; t < sizeof(triggers) / sizeof(triggers[0]); t++) {
		size_t hi = triggers[t] - 1 < 64 ? triggers[t] - 1 : 64;
		size_t span = hi - 43 + 1;
		for (uint64_t v = 0; v < 2 * span; v++) {
			struct len_rand r = {.v = v};
			struct tern_rand rnd = {len_fill, &r};
			int n = tern_reset_build(out, sizeof(out), triggers[t], tok_a, &rnd);
			cr_assert_eq(n, (int)(43 + v % span), "trigger %zu draw %llu", triggers[t],
				     (unsigned long long)v);
			cr_assert_arr_eq(out + n - 16, tok_a, 16);
			cr_assert_eq(out[0], 0x40 | (0x5a & 0x3f));
		}
		struct len_rand r = {.v = UINT64_MAX};
		struct tern_rand rnd = {len_fill, &r};
		int n = tern_reset_build(out, sizeof(out), triggers[t], tok_a, &rnd);
		cr_assert(n >= 43 && n <= (int)hi);
	}
}

Test(reset_build, first_byte_is_short_header_for_any_random)
{
	uint8_t out[TERN_RESET_MAX_LEN];

	for (int b = 0; b < 256; b++) {
		uint8_t c = (uint8_t)b;
		struct tern_rand rnd = {const_fill, &c};
		int n = tern_reset_build(out, sizeof(out), 1200, tok_a, &rnd);
		cr_assert(n >= 43 && n <= 64);
		cr_assert_eq(out[0] & 0xc0, 0x40);
		cr_assert_eq(out[0] & 0x3f, b & 0x3f); /* the other six bits stay random */
		for (int i = 1; i < n - 16; i++)
			cr_assert_eq(out[i], c);
		cr_assert_arr_eq(out + n - 16, tok_a, 16);
	}
}

/* Every trigger size: strictly shorter, at least 21, at most 64, never
 * past cap when cap is exactly the documented requirement. */
Test(reset_build, sweep_sizes_and_bounds)
{
	uint8_t buf[TERN_RESET_MAX_LEN + 16];
	struct fake_rand f = {.next = 0};
	struct tern_rand rnd = {fake_fill, &f};

	for (size_t trig = 22; trig <= 1500; trig++) {
		size_t cap = trig - 1 < 64 ? trig - 1 : 64;
		memset(buf, 0xee, sizeof(buf));
		int n = tern_reset_build(buf, cap, trig, tok_a, &rnd);
		cr_assert(n >= 21 && (size_t)n < trig && n <= 64 && (size_t)n <= cap, "trigger %zu -> %d", trig,
			  n);
		if (trig <= 43)
			cr_assert_eq(n, (int)trig - 1);
		else
			cr_assert(n >= 43);
		cr_assert_arr_eq(buf + n - 16, tok_a, 16);
		for (size_t i = cap; i < sizeof(buf); i++)
			cr_assert_eq(buf[i], 0xee, "trigger %zu wrote past cap", trig);
	}
}

Test(reset_build, cap_too_small)
{
	struct fake_rand f = {.next = 0};
	struct tern_rand rnd = {fake_fill, &f};
	uint8_t out[TERN_RESET_MAX_LEN];

	memset(out, 0xee, sizeof(out));
	cr_assert_eq(tern_reset_build(out, 20, 22, tok_a, &rnd), TERN_ERR_NOBUF);
	cr_assert_eq(tern_reset_build(out, 28, 30, tok_a, &rnd), TERN_ERR_NOBUF);
	cr_assert_eq(tern_reset_build(out, 41, 43, tok_a, &rnd), TERN_ERR_NOBUF);
	/* A long trigger needs room for the longest length it may draw. */
	cr_assert_eq(tern_reset_build(out, 43, 1200, tok_a, &rnd), TERN_ERR_NOBUF);
	cr_assert_eq(tern_reset_build(out, 63, 1200, tok_a, &rnd), TERN_ERR_NOBUF);
	cr_assert_eq(tern_reset_build(out, 0, 1200, tok_a, &rnd), TERN_ERR_NOBUF);
	cr_assert_eq(f.calls, 0);
	for (size_t i = 0; i < sizeof(out); i++)
		cr_assert_eq(out[i], 0xee);
	cr_assert_eq(tern_reset_build(out, 21, 22, tok_a, &rnd), 21);
	cr_assert_eq(tern_reset_build(out, 29, 30, tok_a, &rnd), 29);
	cr_assert(tern_reset_build(out, 64, 1200, tok_a, &rnd) >= 43);
	/* 45-byte trigger: hi is 44, so 44 bytes of room suffice. */
	cr_assert(tern_reset_build(out, 44, 45, tok_a, &rnd) >= 43);
}

Test(reset_build, bad_arguments)
{
	struct fake_rand f = {.next = 0};
	struct tern_rand rnd = {fake_fill, &f};
	struct tern_rand nofn = {NULL, NULL};
	uint8_t out[TERN_RESET_MAX_LEN];

	cr_assert_eq(tern_reset_build(NULL, 64, 100, tok_a, &rnd), TERN_ERR_INVAL);
	cr_assert_eq(tern_reset_build(out, 64, 100, NULL, &rnd), TERN_ERR_INVAL);
	cr_assert_eq(tern_reset_build(out, 64, 100, tok_a, NULL), TERN_ERR_INVAL);
	cr_assert_eq(tern_reset_build(out, 64, 100, tok_a, &nofn), TERN_ERR_INVAL);
}

/* ---- detection -------------------------------------------------------- */

static void make_tokens(uint8_t toks[][16], size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < 16; j++)
			toks[i][j] = (uint8_t)(i * 16 + j + 1);
}

Test(reset_detect, match_at_each_index)
{
	uint8_t toks[8][16], pkt[60];

	make_tokens(toks, 8);
	memset(pkt, 0x41, sizeof(pkt));
	for (size_t i = 0; i < 8; i++) {
		memcpy(pkt + sizeof(pkt) - 16, toks[i], 16);
		cr_assert_eq(tern_reset_detect(pkt, sizeof(pkt), (const uint8_t(*)[16])toks, 8), (int)i);
		/* The token must be the last 16 bytes, not anywhere. */
		cr_assert_eq(tern_reset_detect(pkt, sizeof(pkt) - 1, (const uint8_t(*)[16])toks, 8), -1);
	}
}

Test(reset_detect, no_match_any_byte_or_bit)
{
	uint8_t toks[4][16], pkt[40];

	make_tokens(toks, 4);
	memset(pkt, 0x40, sizeof(pkt));
	memcpy(pkt + 24, toks[2], 16);
	cr_assert_eq(tern_reset_detect(pkt, 40, (const uint8_t(*)[16])toks, 4), 2);
	for (size_t i = 24; i < 40; i++)
		for (int bit = 0; bit < 8; bit++) {
			pkt[i] ^= (uint8_t)(1u << bit);
			cr_assert_eq(tern_reset_detect(pkt, 40, (const uint8_t(*)[16])toks, 4), -1,
				     "byte %zu bit %d", i, bit);
			pkt[i] ^= (uint8_t)(1u << bit);
		}
	/* The token is only in the first 2, so n = 2 misses it. */
	cr_assert_eq(tern_reset_detect(pkt, 40, (const uint8_t(*)[16])toks, 2), -1);
	cr_assert_eq(tern_reset_detect(pkt, 40, (const uint8_t(*)[16])toks, 0), -1);
	cr_assert_eq(tern_reset_detect(pkt, 40, NULL, 4), -1);
	cr_assert_eq(tern_reset_detect(NULL, 40, (const uint8_t(*)[16])toks, 4), -1);
}

Test(reset_detect, length_threshold)
{
	uint8_t toks[1][16], pkt[21];

	make_tokens(toks, 1);
	memset(pkt, 0x40, sizeof(pkt));
	memcpy(pkt + 5, toks[0], 16);
	cr_assert_eq(tern_reset_detect(pkt, 21, (const uint8_t(*)[16])toks, 1), 0);
	/* 20 bytes ending in the token: too short to be a reset (§10.3). */
	cr_assert_eq(tern_reset_detect(pkt + 1, 20, (const uint8_t(*)[16])toks, 1), -1);
	cr_assert_eq(tern_reset_detect(pkt + 5, 16, (const uint8_t(*)[16])toks, 1), -1);
	cr_assert_eq(tern_reset_detect(pkt, 0, (const uint8_t(*)[16])toks, 1), -1);
}

/* RFC 9000 §10.3: "endpoints MUST treat any packet ending in a valid
 * stateless reset token as a Stateless Reset, as other QUIC versions
 * might allow the use of a long header" -- so the header form bit does not
 * hide a reset. */
Test(reset_detect, long_header_form_still_detected)
{
	uint8_t toks[3][16], pkt[50];

	make_tokens(toks, 3);
	for (int first = 0; first < 256; first += 0x40) {
		memset(pkt, 0, sizeof(pkt));
		pkt[0] = (uint8_t)first;
		memcpy(pkt + 34, toks[1], 16);
		cr_assert_eq(tern_reset_detect(pkt, sizeof(pkt), (const uint8_t(*)[16])toks, 3), 1,
			     "first byte %#x", first);
	}
}

Test(reset_detect, duplicate_tokens_give_first_index)
{
	uint8_t toks[5][16], pkt[30];

	make_tokens(toks, 5);
	memcpy(toks[3], toks[1], 16);
	memset(pkt, 0x55, sizeof(pkt));
	memcpy(pkt + 14, toks[1], 16);
	cr_assert_eq(tern_reset_detect(pkt, sizeof(pkt), (const uint8_t(*)[16])toks, 5), 1);
	cr_assert_eq(tern_reset_detect(pkt, sizeof(pkt), (const uint8_t(*)[16])(toks + 2), 3), 1);
}

Test(reset_detect, token_equal)
{
	uint8_t a[16], b[16];

	memcpy(a, tok_a, 16);
	memcpy(b, tok_a, 16);
	cr_assert_eq(tern_reset_token_equal(a, b), 1);
	for (size_t i = 0; i < 16; i++)
		for (int bit = 0; bit < 8; bit++) {
			b[i] ^= (uint8_t)(1u << bit);
			cr_assert_eq(tern_reset_token_equal(a, b), 0, "byte %zu bit %d", i, bit);
			b[i] ^= (uint8_t)(1u << bit);
		}
	memset(a, 0, 16);
	memset(b, 0xff, 16);
	cr_assert_eq(tern_reset_token_equal(a, b), 0);
	cr_assert_eq(tern_reset_token_equal(a, a), 1);
}

/* Whole path: token from a CID, reset built for a 1200-byte trigger, the
 * peer finds it among its tokens. */
Test(reset_detect, build_then_detect)
{
	struct tern_reset_key k;
	uint8_t cid[8] = {9, 8, 7, 6, 5, 4, 3, 2}, toks[3][16], out[TERN_RESET_MAX_LEN];
	struct fake_rand f = {.next = 0x77};
	struct tern_rand rnd = {fake_fill, &f};

	cr_assert_eq(tern_reset_key_init(&k, static_key32, sizeof(static_key32)), 0);
	make_tokens(toks, 3);
	cr_assert_eq(tern_reset_token(&k, cid, sizeof(cid), toks[2]), 0);
	int n = tern_reset_build(out, sizeof(out), 1200, toks[2], &rnd);
	cr_assert(n >= 43 && n <= 64);
	cr_assert_eq(tern_reset_detect(out, (size_t)n, (const uint8_t(*)[16])toks, 3), 2);
	n = tern_reset_build(out, sizeof(out), 22, toks[2], &rnd);
	cr_assert_eq(n, 21);
	cr_assert_eq(tern_reset_detect(out, (size_t)n, (const uint8_t(*)[16])toks, 3), 2);
	tern_reset_key_clear(&k);
}

/* ---- token bucket ----------------------------------------------------- */

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

static int take_all(struct tern_bucket *b, uint64_t now)
{
	int n = 0;
	while (n < 1000000 && tern_bucket_take(b, now))
		n++;
	return n;
}

Test(bucket, starts_full_empties_refuses)
{
	struct tern_bucket b;

	tern_bucket_init(&b, 10, 5, 1000);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(tern_bucket_take(&b, 1000), 1, "take %d", i);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(tern_bucket_take(&b, 1000), 0);
	cr_assert_eq(b.level, 0);
}

Test(bucket, refills_exactly_rate_times_dt)
{
	struct tern_bucket b;
	const uint64_t t0 = 7 * SEC;

	tern_bucket_init(&b, 1000, 10, t0);
	cr_assert_eq(take_all(&b, t0), 10);
	/* 1000/s: one token per ms, to the nanosecond. */
	cr_assert_eq(tern_bucket_take(&b, t0 + MS - 1), 0);
	cr_assert_eq(b.level, (MS - 1) * 1000);
	cr_assert_eq(tern_bucket_take(&b, t0 + MS), 1);
	cr_assert_eq(b.level, 0);
	cr_assert_eq(tern_bucket_take(&b, t0 + MS), 0);
	/* 2.5 ms later: two tokens and half a token kept. */
	cr_assert_eq(take_all(&b, t0 + MS + 2 * MS + MS / 2), 2);
	cr_assert_eq(b.level, SEC / 2);
	cr_assert_eq(tern_bucket_take(&b, t0 + 4 * MS - 1), 0);
	cr_assert_eq(tern_bucket_take(&b, t0 + 4 * MS), 1);
}

Test(bucket, caps_at_burst)
{
	struct tern_bucket b;

	tern_bucket_init(&b, 1000, 4, 0);
	cr_assert_eq(take_all(&b, 0), 4);
	cr_assert_eq(take_all(&b, 3600 * SEC), 4);
	cr_assert_eq(b.level, 0);
	/* Full and idle, then polled: still only the burst. */
	tern_bucket_init(&b, 1000, 4, 0);
	cr_assert_eq(tern_bucket_take(&b, 10 * SEC), 1);
	cr_assert_eq(take_all(&b, 10 * SEC), 3);
	/* Refill that lands exactly on the cap. */
	tern_bucket_init(&b, 1000, 4, 0);
	cr_assert_eq(take_all(&b, 0), 4);
	cr_assert_eq(tern_bucket_take(&b, 4 * MS - 1), 1);
	cr_assert_eq(b.level, 4 * SEC - 1000 - SEC);
	tern_bucket_init(&b, 1000, 4, 0);
	cr_assert_eq(take_all(&b, 0), 4);
	cr_assert_eq(tern_bucket_take(&b, 4 * MS), 1);
	cr_assert_eq(b.level, 3 * SEC);
}

/* With burst 1 the level cannot hold more than one token: at 3/s polled
 * every 100 ms the 0.2 above the cap at the 4th poll is dropped, so a
 * reply goes every 4th poll (0.3 0.6 0.9 1.0|0 ...), 25 in 10 s. */
Test(bucket, level_above_burst_is_dropped)
{
	struct tern_bucket b;
	int got = 0;

	tern_bucket_init(&b, 3, 1, 0);
	cr_assert_eq(tern_bucket_take(&b, 0), 1);
	for (int i = 1; i <= 100; i++) {
		int ok = tern_bucket_take(&b, (uint64_t)i * 100 * MS);
		cr_assert_eq(ok, i % 4 == 0, "poll %d", i);
		got += ok;
	}
	cr_assert_eq(got, 25);
}

/* 3 tokens/s polled every 100 ms: each poll adds 0.3 of a token; an
 * implementation that rounds per poll would never refill. */
Test(bucket, fractional_refill_accumulates)
{
	struct tern_bucket b;
	int got = 0, first_second[10];

	/* Burst 2 so the level (at most 1.2 here) never touches the cap. */
	tern_bucket_init(&b, 3, 2, 0);
	cr_assert_eq(take_all(&b, 0), 2);
	for (int i = 1; i <= 100; i++) {
		int ok = tern_bucket_take(&b, (uint64_t)i * 100 * MS);
		if (i <= 10)
			first_second[i - 1] = ok;
		got += ok;
	}
	/* Levels 0.3 0.6 0.9 1.2|0.2 0.5 0.8 1.1|0.1 0.4 0.7 1.0|0 ... */
	static const int want[10] = {0, 0, 0, 1, 0, 0, 1, 0, 0, 1};
	for (int i = 0; i < 10; i++)
		cr_assert_eq(first_second[i], want[i], "poll %d", i + 1);
	cr_assert_eq(got, 30); /* 10 s at 3/s, no drift */
	cr_assert_eq(b.level, 0);
}

/* Polled every nanosecond: 10^6/s gives exactly one token per 1000 ns. */
Test(bucket, nanosecond_polling_no_drift)
{
	struct tern_bucket b;
	int got = 0;

	tern_bucket_init(&b, 1000000, 1, 0);
	cr_assert_eq(tern_bucket_take(&b, 0), 1);
	for (uint64_t t = 1; t <= 5000; t++) {
		int ok = tern_bucket_take(&b, t);
		cr_assert_eq(ok, t % 1000 == 0, "t=%llu", (unsigned long long)t);
		got += ok;
	}
	cr_assert_eq(got, 5);
}

Test(bucket, time_backwards_is_no_time)
{
	struct tern_bucket b;

	tern_bucket_init(&b, 1, 5, 10 * SEC);
	cr_assert_eq(take_all(&b, 10 * SEC), 5);
	cr_assert_eq(tern_bucket_take(&b, 5 * SEC), 0);
	cr_assert_eq(tern_bucket_take(&b, 0), 0);
	cr_assert_eq(b.level, 0);
	cr_assert_eq(b.last_ns, 10 * SEC);
	/* One second after the latest time seen: exactly one token, not the
	 * six a clock reset to 5 s would credit. */
	cr_assert_eq(take_all(&b, 11 * SEC), 1);
	/* Backwards while partly refilled keeps the fraction. */
	cr_assert_eq(tern_bucket_take(&b, 11 * SEC + SEC / 2), 0);
	cr_assert_eq(tern_bucket_take(&b, 3 * SEC), 0);
	cr_assert_eq(b.level, SEC / 2);
	cr_assert_eq(tern_bucket_take(&b, 12 * SEC), 1);
}

Test(bucket, huge_gaps_do_not_overflow)
{
	struct tern_bucket b;
	const uint64_t gap = UINT64_C(1) << 63;
	static const uint64_t rates[] = {1, 3, 1000000000, UINT64_C(1) << 40, UINT64_MAX};

	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		tern_bucket_init(&b, rates[i], 7, 0);
		cr_assert_eq(take_all(&b, 0), 7);
		cr_assert_eq(take_all(&b, gap), 7, "rate %llu", (unsigned long long)rates[i]);
		cr_assert_eq(take_all(&b, UINT64_MAX), 7);
		cr_assert_eq(take_all(&b, UINT64_MAX), 0);
	}
	/* The largest burst: 2^32 - 1 tokens still fit in nano-tokens. */
	tern_bucket_init(&b, UINT64_MAX, UINT32_MAX, 0);
	cr_assert_eq(b.level, (uint64_t)UINT32_MAX * SEC);
	cr_assert_eq(tern_bucket_take(&b, 0), 1);
	cr_assert_eq(tern_bucket_take(&b, gap), 1);
	cr_assert_eq(b.level, ((uint64_t)UINT32_MAX - 1) * SEC);
	/* A slow rate at a huge gap: rate * dt overflows 64 bits. */
	tern_bucket_init(&b, 3, UINT32_MAX, 0);
	cr_assert_eq(tern_bucket_take(&b, 0), 1);
	cr_assert_eq(tern_bucket_take(&b, gap), 1);
	cr_assert_eq(b.level, ((uint64_t)UINT32_MAX - 1) * SEC);
}

Test(bucket, rate_zero_and_burst_zero)
{
	struct tern_bucket b;

	tern_bucket_init(&b, 0, 3, 0);
	cr_assert_eq(take_all(&b, 0), 3);
	cr_assert_eq(take_all(&b, SEC), 0);
	cr_assert_eq(take_all(&b, UINT64_C(1) << 63), 0);
	tern_bucket_init(&b, 1000000, 0, 0);
	cr_assert_eq(take_all(&b, 0), 0);
	cr_assert_eq(take_all(&b, 100 * SEC), 0);
}
