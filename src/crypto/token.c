/* Address-validation tokens, see include/tern/token.h. */
#include "tern/token.h"

#include "tern/crypto.h"

#define TAG_LEN 16
#define BODY_MAX (8 + 1 + TERN_MAX_CID_LEN)
/* tokens issued this far ahead of our clock are refused: hosts of a
 * cluster disagree on time by a little, not by this much */
#define MAX_SKEW_NS (10 * UINT64_C(1000000000))

int tern_token_key_init(struct tern_token_key *k, const uint8_t *static_key, size_t len)
{
	static const uint8_t info[] = "tern address validation token";
	uint8_t prk[32], key[16];
	if (!k || !static_key || len < 16)
		return TERN_ERR_INVAL;
	int rv = tern_hkdf_extract(TERN_HASH_SHA256, NULL, 0, static_key, len, prk);
	if (rv == 0)
		rv = tern_hkdf_expand(TERN_HASH_SHA256, prk, sizeof(prk), info, sizeof(info) - 1, key,
				      sizeof(key));
	if (rv == 0 && (wc_AesInit(&k->gcm, NULL, INVALID_DEVID) != 0 ||
			wc_AesGcmSetKey(&k->gcm, key, sizeof(key)) != 0))
		rv = TERN_ERR_CRYPTO;
	tern_crypto_wipe(prk, sizeof(prk));
	tern_crypto_wipe(key, sizeof(key));
	return rv;
}

void tern_token_key_clear(struct tern_token_key *k)
{
	wc_AesFree(&k->gcm);
	tern_crypto_wipe(k, sizeof(*k));
}

/* The AEAD's additional data: the type and where the client is. */
static size_t token_aad(uint8_t *aad, enum tern_token_type type, const struct tern_addr *a)
{
	size_t n = 0, iplen = a->family == 4 ? 4 : 16;
	aad[n++] = (uint8_t)type;
	aad[n++] = a->family;
	memcpy(aad + n, a->ip, iplen);
	n += iplen;
	if (type == TERN_TOKEN_RETRY) {
		aad[n++] = (uint8_t)(a->port >> 8);
		aad[n++] = (uint8_t)a->port;
	}
	return n;
}

int tern_token_seal(struct tern_token_key *k, enum tern_token_type type, const struct tern_addr *addr,
		    const struct tern_cid *odcid, uint64_t now, const struct tern_rand *rnd,
		    uint8_t *out, size_t cap)
{
	size_t cid_len = odcid ? odcid->len : 0;
	size_t body = 8 + 1 + cid_len;
	size_t total = 1 + TERN_TOKEN_NONCE_LEN + body + TAG_LEN;
	if ((type != TERN_TOKEN_RETRY && type != TERN_TOKEN_NEW_TOKEN) || cid_len > TERN_MAX_CID_LEN)
		return TERN_ERR_INVAL;
	if (cap < total)
		return TERN_ERR_NOBUF;
	out[0] = (uint8_t)type;
	uint8_t *nonce = out + 1, *p = nonce + TERN_TOKEN_NONCE_LEN;
	tern_rand_fill(rnd, nonce, TERN_TOKEN_NONCE_LEN);
	for (int i = 7; i >= 0; i--)
		*p++ = (uint8_t)(now >> (8 * i));
	*p++ = (uint8_t)cid_len;
	if (cid_len)
		memcpy(p, odcid->bytes, cid_len);
	uint8_t aad[1 + 1 + 16 + 2];
	size_t aad_len = token_aad(aad, type, addr);
	uint8_t *sealed = nonce + TERN_TOKEN_NONCE_LEN;
	if (wc_AesGcmEncrypt(&k->gcm, sealed, sealed, (word32)body, nonce, TERN_TOKEN_NONCE_LEN,
			     sealed + body, TAG_LEN, aad, (word32)aad_len) != 0)
		return TERN_ERR_CRYPTO;
	return (int)total;
}

int tern_token_open(struct tern_token_key *k, const uint8_t *tok, size_t len,
		    const struct tern_addr *addr, uint64_t now, uint64_t lifetime_ns,
		    enum tern_token_type *type, struct tern_cid *odcid)
{
	if (len < 1 + TERN_TOKEN_NONCE_LEN + 9 + TAG_LEN || len > TERN_TOKEN_MAX_LEN)
		return TERN_ERR_MALFORMED;
	enum tern_token_type t = (enum tern_token_type)tok[0];
	if (t != TERN_TOKEN_RETRY && t != TERN_TOKEN_NEW_TOKEN)
		return TERN_ERR_MALFORMED;
	size_t body = len - 1 - TERN_TOKEN_NONCE_LEN - TAG_LEN;
	uint8_t plain[BODY_MAX];
	uint8_t aad[1 + 1 + 16 + 2];
	size_t aad_len = token_aad(aad, t, addr);
	const uint8_t *nonce = tok + 1, *sealed = nonce + TERN_TOKEN_NONCE_LEN;
	if (wc_AesGcmDecrypt(&k->gcm, plain, sealed, (word32)body, nonce, TERN_TOKEN_NONCE_LEN,
			     sealed + body, TAG_LEN, aad, (word32)aad_len) != 0)
		return TERN_ERR_DECRYPT;
	uint64_t issued = 0;
	for (int i = 0; i < 8; i++)
		issued = issued << 8 | plain[i];
	if (plain[8] != body - 9)
		return TERN_ERR_MALFORMED;
	if (issued > now + MAX_SKEW_NS || (now > issued && now - issued > lifetime_ns))
		return TERN_ERR_LIMIT;
	*type = t;
	if (odcid)
		tern_cid_set(odcid, plain + 9, plain[8]);
	return 0;
}
