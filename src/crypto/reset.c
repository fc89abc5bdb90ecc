/* tern: stateless reset tokens, builder and detector (RFC 9000 §10.3). */
#include "tern/reset.h"

#include <limits.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/cmac.h>
#include <wolfssl/wolfcrypt/hmac.h>

#define RESET_BLOCK 16

/* HKDF info that binds the derived key to this one use, so the cluster's
 * static key can key other PRFs under other labels (RFC 5869 §3.2). */
static const char reset_info[] = "tern reset token";

/* Keeps the compiler from turning a constant-time accumulation into a
 * data-dependent branch or early exit. */
static inline uint32_t value_barrier(uint32_t v)
{
	__asm__ volatile("" : "+r"(v));
	return v;
}

/* Zeroing that the optimiser may not drop as a dead store. */
static void wipe(void *p, size_t n)
{
	volatile uint8_t *v = p;
	while (n--)
		*v++ = 0;
}

/* 1 if equal, else 0, touching every byte whatever the data. */
static uint32_t ct_eq16(const uint8_t *a, const uint8_t *b)
{
	uint32_t diff = 0;
	for (size_t i = 0; i < TERN_RESET_TOKEN_LEN; i++)
		diff |= (uint32_t)(a[i] ^ b[i]);
	diff = value_barrier(diff);
	/* diff is 0..255: diff - 1 wraps to 0xffffffff only when diff == 0. */
	return (diff - 1) >> 31;
}

int tern_reset_key_init_raw(struct tern_reset_key *k, const uint8_t aes128_key[16])
{
	if (!k || !aes128_key)
		return TERN_ERR_INVAL;
	/* wolfCrypt expands the AES key and derives K1/K2 (RFC 4493 §2.3)
	 * here, once; tokens then reuse them without touching the schedule. */
	if (wc_InitCmac(&k->cmac, aes128_key, 16, WC_CMAC_AES, NULL) != 0) {
		wipe(k, sizeof(*k));
		return TERN_ERR_CRYPTO;
	}
	return 0;
}

int tern_reset_key_init(struct tern_reset_key *k, const uint8_t *static_key, size_t len)
{
	uint8_t kr[16];
	int ret;

	if (!k || !static_key || len < 16 || len > UINT32_MAX)
		return TERN_ERR_INVAL;
	/* No salt: the static key is already uniformly random, and HKDF then
	 * uses a zero salt (RFC 5869 §2.2); what separates uses is the info. */
	if (wc_HKDF(WC_SHA256, static_key, (word32)len, NULL, 0, (const byte *)reset_info,
		    (word32)(sizeof(reset_info) - 1), kr, sizeof(kr)) != 0) {
		wipe(kr, sizeof(kr));
		return TERN_ERR_CRYPTO;
	}
	ret = tern_reset_key_init_raw(k, kr);
	wipe(kr, sizeof(kr));
	return ret;
}

void tern_reset_key_clear(struct tern_reset_key *k)
{
	if (!k)
		return;
	wc_AesFree(&k->cmac.aes);
	wipe(k, sizeof(*k));
}

/* One AES block under the prepared key. wolfCrypt's direct encrypt only
 * reads the key schedule, so the const cast is safe and lets several
 * workers share one key. `in` must be 16-byte aligned: wolfCrypt's AES-NI
 * path would otherwise allocate a bounce buffer per block. */
static int aes_block(const struct tern_reset_key *k, uint8_t *out, const uint8_t *in)
{
	Aes *aes = (Aes *)(uintptr_t)&k->cmac.aes;
	return wc_AesEncryptDirect(aes, out, in) == 0 ? 0 : TERN_ERR_CRYPTO;
}

static void xor16(uint8_t *x, const uint8_t *y)
{
	for (size_t i = 0; i < RESET_BLOCK; i++)
		x[i] ^= y[i];
}

/* RFC 4493 §2.4, with K1/K2 taken from the wolfCrypt CMAC state prepared
 * in key_init: CBC-MAC over all blocks but the last, then the last block
 * either whole and XORed with K1, or padded 10* and XORed with K2. */
int tern_reset_cmac(const struct tern_reset_key *k, const uint8_t *msg, size_t len,
		    uint8_t tag[TERN_RESET_TOKEN_LEN])
{
	_Alignas(16) uint8_t x[RESET_BLOCK] = {0};
	_Alignas(16) uint8_t y[RESET_BLOCK];
	size_t nblocks, rem;
	int ret;

	if (!k || !tag || (!msg && len))
		return TERN_ERR_INVAL;
	nblocks = len ? (len + RESET_BLOCK - 1) / RESET_BLOCK : 1;
	for (size_t i = 0; i + 1 < nblocks; i++) {
		xor16(x, msg + i * RESET_BLOCK);
		if ((ret = aes_block(k, y, x)) != 0)
			return ret;
		memcpy(x, y, RESET_BLOCK);
	}
	rem = len - (nblocks - 1) * RESET_BLOCK;
	memset(y, 0, RESET_BLOCK);
	if (rem)
		memcpy(y, msg + (nblocks - 1) * RESET_BLOCK, rem);
	if (rem == RESET_BLOCK) {
		xor16(y, k->cmac.k1);
	} else {
		y[rem] = 0x80;
		xor16(y, k->cmac.k2);
	}
	xor16(y, x);
	if ((ret = aes_block(k, x, y)) != 0)
		return ret;
	memcpy(tag, x, TERN_RESET_TOKEN_LEN);
	return 0;
}

int tern_reset_token(const struct tern_reset_key *k, const uint8_t *cid, size_t cid_len,
		     uint8_t token[TERN_RESET_TOKEN_LEN])
{
	if (cid_len > TERN_MAX_CID_LEN)
		return TERN_ERR_INVAL;
	return tern_reset_cmac(k, cid, cid_len, token);
}

/* Length for a trigger longer than TERN_RESET_EXACT_MAX_TRIGGER: uniform
 * in [43, hi]. A 64-bit draw reduced modulo a span of at most 22 has a
 * bias below 2^-59, and unlike rejection sampling it cannot loop on a bad
 * random source. */
static size_t reset_pick_len(const struct tern_rand *rnd, size_t hi)
{
	const size_t lo = TERN_RESET_EXACT_MAX_TRIGGER;
	uint8_t r[8];
	uint64_t x = 0;

	tern_rand_fill(rnd, r, sizeof(r));
	for (size_t i = 0; i < sizeof(r); i++)
		x = (x << 8) | r[i];
	return lo + (size_t)(x % (uint64_t)(hi - lo + 1));
}

int tern_reset_build(uint8_t *out, size_t cap, size_t trigger_len,
		     const uint8_t token[TERN_RESET_TOKEN_LEN], const struct tern_rand *rnd)
{
	size_t hi, len;

	if (!out || !token || !rnd || !rnd->fn)
		return TERN_ERR_INVAL;
	/* RFC 9000 §10.3.3: strictly smaller than the trigger, so reset
	 * loops shrink to nothing; §10.3: never under 21 bytes. */
	if (trigger_len <= TERN_RESET_MIN_LEN)
		return TERN_ERR_LIMIT;
	hi = trigger_len - 1;
	if (hi > TERN_RESET_MAX_LEN)
		hi = TERN_RESET_MAX_LEN;
	if (cap < hi)
		return TERN_ERR_NOBUF;
	len = trigger_len <= TERN_RESET_EXACT_MAX_TRIGGER ? hi : reset_pick_len(rnd, hi);

	tern_rand_fill(rnd, out, len - TERN_RESET_TOKEN_LEN);
	/* RFC 9000 §10.3: looks like a short header, form 0 and fixed bit 1;
	 * the other six bits stay random. */
	out[0] = (uint8_t)((out[0] & 0x3f) | 0x40);
	memcpy(out + len - TERN_RESET_TOKEN_LEN, token, TERN_RESET_TOKEN_LEN);
	return (int)len;
}

int tern_reset_detect(const uint8_t *pkt, size_t len, const uint8_t (*tokens)[TERN_RESET_TOKEN_LEN],
		      size_t n)
{
	const uint8_t *tail;
	uint32_t found = 0, idx = 0;

	if (!pkt || len < TERN_RESET_MIN_LEN || !tokens || n == 0 || n > INT_MAX)
		return -1;
	tail = pkt + len - TERN_RESET_TOKEN_LEN;
	/* Every token is compared in full, matched or not, so timing says
	 * nothing about which token (or how much of one) matched. */
	for (size_t i = 0; i < n; i++) {
		uint32_t eq = ct_eq16(tail, tokens[i]);
		uint32_t take = value_barrier(eq & ~found);
		uint32_t mask = 0u - take;
		idx = (idx & ~mask) | ((uint32_t)i & mask);
		found |= eq;
	}
	return found ? (int)idx : -1;
}

int tern_reset_token_equal(const uint8_t a[TERN_RESET_TOKEN_LEN], const uint8_t b[TERN_RESET_TOKEN_LEN])
{
	return (int)ct_eq16(a, b);
}
