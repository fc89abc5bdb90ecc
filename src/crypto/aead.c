/* tern: per-direction packet protection keys, AEAD and header protection
 * (RFC 9001 §5.1, §5.3, §5.4), and key update (RFC 9001 §6). */
#include "tern/crypto.h"

#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/chacha.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

/* The labels each version derives its keys with: RFC 9001 §5.1 and §6.1
 * for v1, RFC 9369 §3.3.2 for v2 (which renames them so v1 keys can never
 * open v2 packets). */
struct version_labels {
	const char *key, *iv, *hp, *ku;
};

static const struct version_labels v1_labels = {"quic key", "quic iv", "quic hp", "quic ku"};
static const struct version_labels v2_labels = {"quicv2 key", "quicv2 iv", "quicv2 hp",
						 "quicv2 ku"};

static const struct version_labels *labels_for(uint32_t version)
{
	switch (version) {
	case TERN_VERSION_1:
		return &v1_labels;
	case TERN_VERSION_2:
		return &v2_labels;
	}
	return NULL;
}

int tern_aead_suite_from_tls(uint16_t cipher_suite)
{
	switch (cipher_suite) {
	case 0x1301:
		return TERN_AEAD_AES_128_GCM;
	case 0x1302:
		return TERN_AEAD_AES_256_GCM;
	case 0x1303:
		return TERN_AEAD_CHACHA20_POLY1305;
	}
	return TERN_ERR_INVAL;
}

enum tern_hash tern_aead_suite_hash(enum tern_aead_suite s)
{
	return s == TERN_AEAD_AES_256_GCM ? TERN_HASH_SHA384 : TERN_HASH_SHA256;
}

size_t tern_aead_key_len(enum tern_aead_suite s)
{
	switch (s) {
	case TERN_AEAD_AES_128_GCM:
		return 16;
	case TERN_AEAD_AES_256_GCM:
	case TERN_AEAD_CHACHA20_POLY1305:
		return 32;
	}
	return 0;
}

static int is_chacha(const struct tern_crypto_keys *k)
{
	return k->suite == TERN_AEAD_CHACHA20_POLY1305;
}

static void aead_clear(struct tern_crypto_keys *k)
{
	if (k->has_aead && !is_chacha(k))
		wc_AesFree(&k->aead.gcm);
	tern_crypto_wipe(&k->aead, sizeof(k->aead));
	tern_crypto_wipe(k->iv, sizeof(k->iv));
	k->has_aead = 0;
}

static void hp_clear(struct tern_crypto_keys *k)
{
	if (k->has_hp && !is_chacha(k))
		wc_AesFree(&k->hp.ecb);
	tern_crypto_wipe(&k->hp, sizeof(k->hp));
	k->has_hp = 0;
}

void tern_crypto_keys_clear(struct tern_crypto_keys *k)
{
	if (!k)
		return;
	aead_clear(k);
	hp_clear(k);
	tern_crypto_wipe(k, sizeof(*k));
}

/* Derives key and iv (RFC 9001 §5.1) and prepares the AEAD state once, so
 * no packet pays for a key schedule. k->suite and k->version are set. */
static int aead_setup(struct tern_crypto_keys *k, const struct version_labels *l,
		      const uint8_t *secret, size_t secret_len)
{
	enum tern_hash h = tern_aead_suite_hash(k->suite);
	size_t klen = tern_aead_key_len(k->suite);
	uint8_t key[TERN_AEAD_MAX_KEY_LEN];
	int ret;

	ret = tern_hkdf_expand_label(h, secret, secret_len, l->key, key, klen);
	if (ret == 0)
		ret = tern_hkdf_expand_label(h, secret, secret_len, l->iv, k->iv, TERN_AEAD_IV_LEN);
	if (ret == 0 && is_chacha(k)) {
		memcpy(k->aead.chacha, key, klen);
		k->has_aead = 1;
	} else if (ret == 0 && wc_AesInit(&k->aead.gcm, NULL, INVALID_DEVID) != 0) {
		ret = TERN_ERR_CRYPTO;
	} else if (ret == 0) {
		k->has_aead = 1; /* from here on aead_clear() must free it */
		if (wc_AesGcmSetKey(&k->aead.gcm, key, (word32)klen) != 0)
			ret = TERN_ERR_CRYPTO;
	}
	tern_crypto_wipe(key, sizeof(key));
	if (ret != 0)
		aead_clear(k);
	return ret;
}

/* Derives hp (RFC 9001 §5.4) and keys the mask cipher once. */
static int hp_setup(struct tern_crypto_keys *k, const struct version_labels *l,
		    const uint8_t *secret, size_t secret_len)
{
	enum tern_hash h = tern_aead_suite_hash(k->suite);
	size_t klen = tern_aead_key_len(k->suite);
	uint8_t key[TERN_AEAD_MAX_KEY_LEN];
	int ret;

	ret = tern_hkdf_expand_label(h, secret, secret_len, l->hp, key, klen);
	if (ret == 0 && is_chacha(k)) {
		if (wc_Chacha_SetKey(&k->hp.chacha, key, (word32)klen) != 0)
			ret = TERN_ERR_CRYPTO;
		else
			k->has_hp = 1;
	} else if (ret == 0 && wc_AesInit(&k->hp.ecb, NULL, INVALID_DEVID) != 0) {
		ret = TERN_ERR_CRYPTO;
	} else if (ret == 0) {
		k->has_hp = 1; /* from here on hp_clear() must free it */
		if (wc_AesSetKey(&k->hp.ecb, key, (word32)klen, NULL, AES_ENCRYPTION) != 0)
			ret = TERN_ERR_CRYPTO;
	}
	tern_crypto_wipe(key, sizeof(key));
	if (ret != 0)
		hp_clear(k);
	return ret;
}

/* Common checks of the init functions; fills in version and suite. */
static int keys_start(struct tern_crypto_keys *k, uint32_t version, enum tern_aead_suite suite,
		      const uint8_t *secret, size_t secret_len, const struct version_labels **l)
{
	if (!k)
		return TERN_ERR_INVAL;
	/* Zeroed, not freed: k may hold garbage before its first init. */
	tern_crypto_wipe(k, sizeof(*k));
	*l = labels_for(version);
	if (!*l)
		return TERN_ERR_VERSION;
	if (!tern_aead_key_len(suite) || !secret ||
	    secret_len != tern_hash_len(tern_aead_suite_hash(suite)))
		return TERN_ERR_INVAL;
	k->version = version;
	k->suite = (uint8_t)suite;
	return 0;
}

int tern_crypto_keys_init(struct tern_crypto_keys *k, uint32_t version, enum tern_aead_suite suite,
			  const uint8_t *secret, size_t secret_len)
{
	const struct version_labels *l;
	int ret = keys_start(k, version, suite, secret, secret_len, &l);

	if (ret == 0)
		ret = aead_setup(k, l, secret, secret_len);
	if (ret == 0)
		ret = hp_setup(k, l, secret, secret_len);
	if (ret != 0 && k)
		tern_crypto_keys_clear(k);
	return ret;
}

int tern_crypto_keys_init_aead(struct tern_crypto_keys *k, uint32_t version,
			       enum tern_aead_suite suite, const uint8_t *secret, size_t secret_len)
{
	const struct version_labels *l;
	int ret = keys_start(k, version, suite, secret, secret_len, &l);

	if (ret == 0)
		ret = aead_setup(k, l, secret, secret_len);
	if (ret != 0 && k)
		tern_crypto_keys_clear(k);
	return ret;
}

int tern_crypto_keys_update(struct tern_crypto_keys *k, const uint8_t *secret, size_t secret_len)
{
	if (!k)
		return TERN_ERR_INVAL;
	if (!k->has_aead)
		return TERN_ERR_STATE;
	const struct version_labels *l = labels_for(k->version);
	if (!l)
		return TERN_ERR_STATE;
	if (!secret || secret_len != tern_hash_len(tern_aead_suite_hash(k->suite)))
		return TERN_ERR_INVAL;
	aead_clear(k);
	return aead_setup(k, l, secret, secret_len);
}

int tern_crypto_secret_update(uint32_t version, enum tern_hash h, uint8_t *secret, size_t len)
{
	uint8_t next[TERN_SECRET_MAX_LEN];
	const struct version_labels *l = labels_for(version);

	if (!l)
		return TERN_ERR_VERSION;
	if (!secret || !tern_hash_len(h) || len != tern_hash_len(h))
		return TERN_ERR_INVAL;
	/* Into a scratch buffer first: HKDF-Expand reads the secret as its
	 * PRK while it writes the output. */
	int ret = tern_hkdf_expand_label(h, secret, len, l->ku, next, len);
	if (ret == 0)
		memcpy(secret, next, len);
	tern_crypto_wipe(next, sizeof(next));
	return ret;
}

/* RFC 9001 §5.3: the 62-bit packet number, left-padded to the IV's size,
 * XORed into the IV. */
static inline void nonce_make(const uint8_t *iv, uint64_t pn, uint8_t *nonce)
{
	memcpy(nonce, iv, TERN_AEAD_IV_LEN);
	for (int i = 0; i < 8; i++)
		nonce[TERN_AEAD_IV_LEN - 1 - i] ^= (uint8_t)(pn >> (8 * i));
}

static int aead_args_check(const struct tern_crypto_keys *k, const uint8_t *aad, size_t aad_len,
			   const uint8_t *payload, size_t payload_len, const uint8_t *tag)
{
	if (!k || !tag || (!aad && aad_len) || (!payload && payload_len) || aad_len > UINT32_MAX ||
	    payload_len > UINT32_MAX)
		return TERN_ERR_INVAL;
	return k->has_aead ? 0 : TERN_ERR_STATE;
}

int tern_aead_seal(struct tern_crypto_keys *k, uint64_t pn, const uint8_t *aad, size_t aad_len,
		   uint8_t *payload, size_t payload_len, uint8_t *tag_out)
{
	uint8_t nonce[TERN_AEAD_IV_LEN];
	uint8_t empty[1];
	int ret = aead_args_check(k, aad, aad_len, payload, payload_len, tag_out);

	if (ret != 0)
		return ret;
	if (!payload_len)
		payload = empty; /* wolfCrypt wants a buffer even for no data */
	if (!aad_len)
		aad = empty;
	nonce_make(k->iv, pn, nonce);
	if (is_chacha(k))
		ret = wc_ChaCha20Poly1305_Encrypt(k->aead.chacha, nonce, aad, (word32)aad_len, payload,
						  (word32)payload_len, payload, tag_out);
	else
		ret = wc_AesGcmEncrypt(&k->aead.gcm, payload, payload, (word32)payload_len, nonce,
				       TERN_AEAD_IV_LEN, tag_out, TERN_AEAD_TAG_LEN, aad,
				       (word32)aad_len);
	return ret == 0 ? 0 : TERN_ERR_CRYPTO;
}

int tern_aead_open(struct tern_crypto_keys *k, uint64_t pn, const uint8_t *aad, size_t aad_len,
		   uint8_t *payload, size_t payload_len, const uint8_t *tag)
{
	uint8_t nonce[TERN_AEAD_IV_LEN];
	uint8_t empty[1];
	int ret = aead_args_check(k, aad, aad_len, payload, payload_len, tag);

	if (ret != 0)
		return ret;
	if (!payload_len)
		payload = empty;
	if (!aad_len)
		aad = empty;
	nonce_make(k->iv, pn, nonce);
	if (is_chacha(k))
		ret = wc_ChaCha20Poly1305_Decrypt(k->aead.chacha, nonce, aad, (word32)aad_len, payload,
						  (word32)payload_len, tag, payload);
	else
		ret = wc_AesGcmDecrypt(&k->aead.gcm, payload, payload, (word32)payload_len, nonce,
				       TERN_AEAD_IV_LEN, tag, TERN_AEAD_TAG_LEN, aad,
				       (word32)aad_len);
	if (ret == 0)
		return 0;
	if (ret == AES_GCM_AUTH_E || ret == MAC_CMP_FAILED_E)
		return TERN_ERR_DECRYPT;
	return TERN_ERR_CRYPTO;
}

int tern_hp_mask(struct tern_crypto_keys *k, const uint8_t *sample, uint8_t mask[TERN_HP_MASK_LEN])
{
	if (!k || !sample || !mask)
		return TERN_ERR_INVAL;
	if (!k->has_hp)
		return TERN_ERR_STATE;

	if (is_chacha(k)) {
		/* RFC 9001 §5.4.4: counter = sample[0..3] little-endian,
		 * nonce = sample[4..15]; mask = ChaCha20 of five zero bytes. */
		static const uint8_t zeros[TERN_HP_MASK_LEN];
		uint32_t ctr = (uint32_t)sample[0] | (uint32_t)sample[1] << 8 |
			       (uint32_t)sample[2] << 16 | (uint32_t)sample[3] << 24;
		if (wc_Chacha_SetIV(&k->hp.chacha, sample + 4, ctr) != 0 ||
		    wc_Chacha_Process(&k->hp.chacha, mask, zeros, TERN_HP_MASK_LEN) != 0)
			return TERN_ERR_CRYPTO;
		return 0;
	}
	/* RFC 9001 §5.4.3: mask = AES-ECB(hp_key, sample). wolfCrypt's AES-NI
	 * path mallocs a bounce buffer for unaligned blocks, and a sample sits
	 * anywhere in a packet: copy it to an aligned block first. */
	_Alignas(16) uint8_t in[TERN_HP_SAMPLE_LEN];
	_Alignas(16) uint8_t block[TERN_HP_SAMPLE_LEN];
	memcpy(in, sample, sizeof(in));
	if (wc_AesEncryptDirect(&k->hp.ecb, block, in) != 0)
		return TERN_ERR_CRYPTO;
	memcpy(mask, block, TERN_HP_MASK_LEN);
	return 0;
}

/* Checks that the sample, the 16 bytes at pn_offset + 4 (RFC 9001
 * §5.4.2, which assumes a 4-byte PN whatever its real length), lies
 * inside the packet, without overflowing on hostile offsets. */
static int hp_sample_check(const struct tern_crypto_keys *k, const uint8_t *pkt, size_t pkt_len,
			   size_t pn_offset)
{
	if (!k || !pkt)
		return TERN_ERR_INVAL;
	if (!k->has_hp)
		return TERN_ERR_STATE;
	/* The first byte must precede the packet number. */
	if (pn_offset == 0 || pn_offset > pkt_len ||
	    pkt_len - pn_offset < TERN_PN_MAX_LEN + TERN_HP_SAMPLE_LEN)
		return TERN_ERR_MALFORMED;
	return 0;
}

/* RFC 9001 §5.4.1: a long header protects the low 4 bits of its first
 * byte, a short header the low 5 (Key Phase and Reserved Bits too). */
static inline uint8_t first_byte_mask(uint8_t first)
{
	return (first & 0x80) ? 0x0f : 0x1f;
}

int tern_hp_protect(struct tern_crypto_keys *k, uint8_t *pkt, size_t pkt_len, size_t pn_offset,
		    size_t pn_len)
{
	uint8_t mask[TERN_HP_MASK_LEN];
	int ret = hp_sample_check(k, pkt, pkt_len, pn_offset);

	if (ret != 0)
		return ret;
	if (pn_len < 1 || pn_len > TERN_PN_MAX_LEN)
		return TERN_ERR_INVAL;
	ret = tern_hp_mask(k, pkt + pn_offset + TERN_PN_MAX_LEN, mask);
	if (ret != 0)
		return ret;
	pkt[0] ^= mask[0] & first_byte_mask(pkt[0]);
	for (size_t i = 0; i < pn_len; i++)
		pkt[pn_offset + i] ^= mask[1 + i];
	return 0;
}

int tern_hp_unprotect(struct tern_crypto_keys *k, uint8_t *pkt, size_t pkt_len, size_t pn_offset,
		      size_t *pn_len)
{
	uint8_t mask[TERN_HP_MASK_LEN];
	int ret = hp_sample_check(k, pkt, pkt_len, pn_offset);

	if (ret != 0)
		return ret;
	if (!pn_len)
		return TERN_ERR_INVAL;
	ret = tern_hp_mask(k, pkt + pn_offset + TERN_PN_MAX_LEN, mask);
	if (ret != 0)
		return ret;
	pkt[0] ^= mask[0] & first_byte_mask(pkt[0]);
	/* The PN length is only readable once the first byte is unmasked. */
	size_t n = (size_t)(pkt[0] & 0x03) + 1;
	for (size_t i = 0; i < n; i++)
		pkt[pn_offset + i] ^= mask[1 + i];
	*pn_len = n;
	return 0;
}
