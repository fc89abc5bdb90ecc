/* tern: HKDF and TLS 1.3 HKDF-Expand-Label over wolfCrypt (RFC 5869,
 * RFC 8446 §7.1), as QUIC derives every secret (RFC 9001 §5.1). */
#include "tern/crypto.h"

#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>

/* RFC 8446 §7.1: every TLS 1.3 label is prefixed with "tls13 ". */
static const char label_prefix[] = "tls13 ";
#define LABEL_PREFIX_LEN (sizeof(label_prefix) - 1)

/* HkdfLabel.label is opaque<7..255>, so the caller's part is at most
 * 255 - 6 bytes. */
#define LABEL_MAX_LEN (255 - LABEL_PREFIX_LEN)

size_t tern_hash_len(enum tern_hash h)
{
	switch (h) {
	case TERN_HASH_SHA256:
		return 32;
	case TERN_HASH_SHA384:
		return 48;
	}
	return 0;
}

static int hash_type(enum tern_hash h)
{
	return h == TERN_HASH_SHA384 ? WC_SHA384 : WC_SHA256;
}

int tern_hkdf_extract(enum tern_hash h, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
		      size_t ikm_len, uint8_t *prk)
{
	/* wolfCrypt rejects NULL with a zero length, and an empty DCID is a
	 * legal IKM (a server may pick a zero-length CID in its Retry). */
	static const uint8_t empty[1];

	if (!tern_hash_len(h) || !prk || (!salt && salt_len) || (!ikm && ikm_len) ||
	    salt_len > UINT32_MAX || ikm_len > UINT32_MAX)
		return TERN_ERR_INVAL;
	if (wc_HKDF_Extract(hash_type(h), salt_len ? salt : empty, (word32)salt_len,
			    ikm_len ? ikm : empty, (word32)ikm_len, prk) != 0)
		return TERN_ERR_CRYPTO;
	return 0;
}

int tern_hkdf_expand(enum tern_hash h, const uint8_t *prk, size_t prk_len, const uint8_t *info,
		     size_t info_len, uint8_t *out, size_t out_len)
{
	static const uint8_t empty[1];
	size_t hl = tern_hash_len(h);

	/* RFC 5869 §2.3: L <= 255 * HashLen. */
	if (!hl || !prk || !prk_len || prk_len > UINT32_MAX || (!info && info_len) ||
	    info_len > UINT32_MAX || !out || !out_len || out_len > 255 * hl)
		return TERN_ERR_INVAL;
	if (wc_HKDF_Expand(hash_type(h), prk, (word32)prk_len, info_len ? info : empty,
			   (word32)info_len, out, (word32)out_len) != 0)
		return TERN_ERR_CRYPTO;
	return 0;
}

int tern_hkdf_label_encode(uint8_t *buf, size_t cap, uint16_t out_len, const char *label)
{
	if (!buf || !label)
		return TERN_ERR_INVAL;
	size_t n = strlen(label);
	if (n > LABEL_MAX_LEN)
		return TERN_ERR_INVAL;
	size_t total = 2 + 1 + LABEL_PREFIX_LEN + n + 1;
	if (cap < total)
		return TERN_ERR_NOBUF;

	uint8_t *p = tern_put_u16(buf, out_len);
	*p++ = (uint8_t)(LABEL_PREFIX_LEN + n);
	memcpy(p, label_prefix, LABEL_PREFIX_LEN);
	p += LABEL_PREFIX_LEN;
	memcpy(p, label, n);
	p += n;
	*p++ = 0; /* empty context: RFC 9001 §5.1 uses "" everywhere */
	return (int)(p - buf);
}

int tern_hkdf_expand_label(enum tern_hash h, const uint8_t *secret, size_t secret_len,
			   const char *label, uint8_t *out, size_t out_len)
{
	uint8_t info[TERN_HKDF_LABEL_MAX_SIZE];

	/* HkdfLabel.length is a uint16. */
	if (out_len > UINT16_MAX)
		return TERN_ERR_INVAL;
	int n = tern_hkdf_label_encode(info, sizeof(info), (uint16_t)out_len, label);
	if (n < 0)
		return n;
	return tern_hkdf_expand(h, secret, secret_len, info, (size_t)n, out, out_len);
}

void tern_crypto_wipe(void *p, size_t n)
{
	if (!p || !n)
		return;
	memset(p, 0, n);
	/* Makes the stores observable, so they are not removed as dead. */
	__asm__ __volatile__("" : : "r"(p) : "memory");
}

int tern_crypto_ct_equal(const void *a, const void *b, size_t n)
{
	const volatile uint8_t *x = a;
	const volatile uint8_t *y = b;
	uint8_t diff = 0;

	for (size_t i = 0; i < n; i++)
		diff |= (uint8_t)(x[i] ^ y[i]);
	/* Maps 0 -> 1 and 1..255 -> 0 without a branch on the secret. */
	return (int)(1 & (((unsigned)diff - 1) >> 8));
}
