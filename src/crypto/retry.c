/* tern: Retry Integrity Tag (RFC 9001 §5.8, RFC 9369 §3.3.3). */
#include "tern/crypto.h"

#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>

/* The fixed AES-128-GCM key and nonce of each version. They are public:
 * the tag protects against corruption and off-path injection only, since
 * only a party that saw the client's Initial knows the ODCID. */
struct retry_params {
	uint8_t key[16];
	uint8_t nonce[TERN_AEAD_IV_LEN];
};

/* RFC 9001 §5.8. */
static const struct retry_params retry_v1 = {
	{0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a,
	 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e},
	{0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb},
};

/* RFC 9369 §3.3.3. */
static const struct retry_params retry_v2 = {
	{0x8f, 0xb4, 0xb0, 0x1b, 0x56, 0xac, 0x48, 0xe2,
	 0x60, 0xfb, 0xcb, 0xce, 0xad, 0x7c, 0xcc, 0x92},
	{0xd8, 0x69, 0x69, 0xbc, 0x2d, 0x7c, 0x6d, 0x99, 0x90, 0xef, 0xb0, 0x4a},
};

/* Pseudo-packet buffer: ODCID length, ODCID, Retry without its tag. */
#define PSEUDO_MAX (1 + TERN_MAX_CID_LEN + TERN_RETRY_TAG_INPUT_MAX - TERN_RETRY_TAG_LEN)

static int retry_tag(const struct retry_params *rp, const uint8_t *odcid, size_t odcid_len,
		     const uint8_t *retry, size_t retry_len, uint8_t tag[TERN_RETRY_TAG_LEN])
{
	/* wolfCrypt's one-shot GCM takes the AAD in one piece, so the
	 * pseudo-packet (RFC 9001 Figure 8) is assembled here, bounded by
	 * TERN_RETRY_TAG_INPUT_MAX, rather than allocated. */
	uint8_t pseudo[PSEUDO_MAX];
	size_t n = 0;
	Aes aes;
	int ret = TERN_ERR_CRYPTO;

	pseudo[n++] = (uint8_t)odcid_len;
	if (odcid_len)
		memcpy(pseudo + n, odcid, odcid_len);
	n += odcid_len;
	memcpy(pseudo + n, retry, retry_len);
	n += retry_len;

	if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0)
		return TERN_ERR_CRYPTO;
	/* The plaintext is empty: the tag is a GMAC over the pseudo-packet. */
	if (wc_AesGcmSetKey(&aes, rp->key, sizeof(rp->key)) == 0 &&
	    wc_AesGcmEncrypt(&aes, NULL, NULL, 0, rp->nonce, sizeof(rp->nonce), tag,
			     TERN_RETRY_TAG_LEN, pseudo, (word32)n) == 0)
		ret = 0;
	wc_AesFree(&aes);
	tern_crypto_wipe(&aes, sizeof(aes));
	return ret;
}

static const struct retry_params *params_for(uint32_t version)
{
	switch (version) {
	case TERN_VERSION_1:
		return &retry_v1;
	case TERN_VERSION_2:
		return &retry_v2;
	}
	return NULL;
}

int tern_retry_tag_compute(uint32_t version, const uint8_t *odcid, size_t odcid_len,
			   const uint8_t *retry, size_t retry_len, uint8_t tag[TERN_RETRY_TAG_LEN])
{
	const struct retry_params *rp = params_for(version);

	if (!rp)
		return TERN_ERR_VERSION;
	if ((!odcid && odcid_len) || odcid_len > TERN_MAX_CID_LEN || !retry || !retry_len ||
	    retry_len > TERN_RETRY_TAG_INPUT_MAX - TERN_RETRY_TAG_LEN || !tag)
		return TERN_ERR_INVAL;
	return retry_tag(rp, odcid, odcid_len, retry, retry_len, tag);
}

int tern_retry_tag_verify(uint32_t version, const uint8_t *odcid, size_t odcid_len,
			  const uint8_t *pkt, size_t pkt_len)
{
	const struct retry_params *rp = params_for(version);
	uint8_t tag[TERN_RETRY_TAG_LEN];

	if (!rp)
		return TERN_ERR_VERSION;
	if ((!odcid && odcid_len) || odcid_len > TERN_MAX_CID_LEN || !pkt)
		return TERN_ERR_INVAL;
	if (pkt_len <= TERN_RETRY_TAG_LEN || pkt_len > TERN_RETRY_TAG_INPUT_MAX)
		return TERN_ERR_MALFORMED;

	size_t body = pkt_len - TERN_RETRY_TAG_LEN;
	int ret = retry_tag(rp, odcid, odcid_len, pkt, body, tag);
	if (ret != 0)
		return ret;
	/* Constant time, so a forger learns nothing from how long a wrong
	 * guess takes to be rejected. */
	return tern_crypto_ct_equal(tag, pkt + body, TERN_RETRY_TAG_LEN) ? 0 : TERN_ERR_DECRYPT;
}
