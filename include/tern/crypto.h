/* tern: QUIC packet protection over wolfCrypt (RFC 9001 §5, §6; RFC 9369
 * for version 2).
 *
 * Everything a packet needs is prepared once, when keys are installed:
 * the AES-GCM key schedule and GHASH table (wc_AesGcmSetKey), the AES-ECB
 * or ChaCha20 header-protection key, and the 12-byte IV. Sealing, opening
 * and header protection then run without any key schedule, allocation or
 * copy of the key state, in place in the caller's packet buffer.
 *
 * A key context is owned by one worker: the ChaCha20 header-protection
 * state is rewritten on every packet, so contexts are not shared between
 * threads. Contexts hold AES-NI state that is 16-byte aligned by type;
 * keep them in properly typed storage.
 */
#ifndef TERN_CRYPTO_H
#define TERN_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/chacha.h>

#include "tern/common.h"

#define TERN_AEAD_TAG_LEN 16  /* every QUIC v1/v2 AEAD, RFC 9001 §5.3 */
#define TERN_AEAD_IV_LEN 12   /* RFC 9001 §5.3: nonce = iv XOR pn */
#define TERN_AEAD_MAX_KEY_LEN 32
#define TERN_HP_SAMPLE_LEN 16 /* RFC 9001 §5.4.2 */
#define TERN_HP_MASK_LEN 5    /* first byte + up to 4 PN bytes */
#define TERN_PN_MAX_LEN 4
#define TERN_SECRET_MAX_LEN 48 /* SHA-384 */
#define TERN_INITIAL_SECRET_LEN 32 /* Initial secrets use SHA-256, RFC 9001 §5.2 */
#define TERN_RETRY_TAG_LEN 16 /* RFC 9001 §5.8 */

/* Largest Retry packet (tag included) tern_retry_tag_* accept: the
 * pseudo-packet is built on the stack, so it is bounded. A Retry carries a
 * header, two CIDs, a token and the tag; real ones are well under 200
 * bytes, and this leaves room for a token of some 4000 bytes. */
#define TERN_RETRY_TAG_INPUT_MAX 4096

/* ---- HKDF (hkdf.c) ---------------------------------------------------- */

enum tern_hash {
	TERN_HASH_SHA256,
	TERN_HASH_SHA384,
};

/* Output length of the hash: 32 or 48; 0 for a value outside the enum. */
size_t tern_hash_len(enum tern_hash h);

/* HKDF-Extract (RFC 5869 §2.2): prk gets tern_hash_len(h) bytes.
 * 0, TERN_ERR_INVAL or TERN_ERR_CRYPTO. */
int tern_hkdf_extract(enum tern_hash h, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
		      size_t ikm_len, uint8_t *prk);

/* HKDF-Expand (RFC 5869 §2.3) with a raw info string; out_len at most
 * 255 * hash length. 0, TERN_ERR_INVAL or TERN_ERR_CRYPTO. */
int tern_hkdf_expand(enum tern_hash h, const uint8_t *prk, size_t prk_len, const uint8_t *info,
		     size_t info_len, uint8_t *out, size_t out_len);

/* Longest HkdfLabel tern_hkdf_label_encode() writes: 2 + 1 + 255 + 1. */
#define TERN_HKDF_LABEL_MAX_SIZE 259

/* Writes the TLS 1.3 HkdfLabel (RFC 8446 §7.1) for "tls13 " + label with
 * an empty context, as QUIC always uses (RFC 9001 §5.1): the bytes RFC 9001
 * A.1 prints as "client in: 00200f...". Returns its length, TERN_ERR_INVAL
 * (label longer than 249 bytes) or TERN_ERR_NOBUF. */
int tern_hkdf_label_encode(uint8_t *buf, size_t cap, uint16_t out_len, const char *label);

/* HKDF-Expand-Label(secret, label, "", out_len) (RFC 8446 §7.1).
 * 0, TERN_ERR_INVAL or TERN_ERR_CRYPTO. */
int tern_hkdf_expand_label(enum tern_hash h, const uint8_t *secret, size_t secret_len,
			   const char *label, uint8_t *out, size_t out_len);

/* Zeroes n bytes in a way the optimiser may not drop. */
void tern_crypto_wipe(void *p, size_t n);

/* 1 if the n bytes at a and b are equal, else 0; the time taken depends
 * only on n. */
int tern_crypto_ct_equal(const void *a, const void *b, size_t n);

/* ---- packet protection keys (aead.c) ----------------------------------- */

enum tern_aead_suite {
	TERN_AEAD_AES_128_GCM,       /* TLS_AES_128_GCM_SHA256 */
	TERN_AEAD_AES_256_GCM,       /* TLS_AES_256_GCM_SHA384 */
	TERN_AEAD_CHACHA20_POLY1305, /* TLS_CHACHA20_POLY1305_SHA256 */
};

/* The suite for a TLS 1.3 cipher suite code point (0x1301, 0x1302,
 * 0x1303), or TERN_ERR_INVAL for any other (TLS_AES_128_CCM_SHA256 is not
 * offered, RFC 9001 §5.3 leaves it optional). */
int tern_aead_suite_from_tls(uint16_t cipher_suite);

/* The hash a suite's secrets are derived with (its TLS 1.3 suite hash). */
enum tern_hash tern_aead_suite_hash(enum tern_aead_suite s);

/* AEAD key length: 16 or 32 (also the header-protection key length). */
size_t tern_aead_key_len(enum tern_aead_suite s);

/* One direction's packet protection at one encryption level. The AEAD
 * part changes at each key update (RFC 9001 §6); the header-protection
 * part does not (RFC 9001 §6.1, "the header protection key is not
 * updated"), so it can be left out of contexts that only hold another
 * key phase (tern_crypto_keys_init_aead). */
struct tern_crypto_keys {
	union {
		Aes gcm;                            /* keyed by wc_AesGcmSetKey */
		uint8_t chacha[TERN_AEAD_MAX_KEY_LEN]; /* raw key: ChaCha20 has no schedule */
	} aead;
	union {
		Aes ecb;       /* keyed for encryption: mask = AES(hp, sample) */
		ChaCha chacha; /* keyed once, nonce/counter set per packet */
	} hp;
	uint8_t iv[TERN_AEAD_IV_LEN];
	uint8_t suite;    /* enum tern_aead_suite */
	uint8_t has_aead;
	uint8_t has_hp;
	uint32_t version; /* TERN_VERSION_1 or TERN_VERSION_2: picks the labels */
};

/* Derives key, iv and hp from a traffic secret with the version's labels
 * ("quic key"/"quic iv"/"quic hp", or "quicv2 ..." for v2, RFC 9369
 * §3.3.2) and prepares the cipher states. secret_len must equal the
 * suite's hash length. 0, TERN_ERR_VERSION, TERN_ERR_INVAL or
 * TERN_ERR_CRYPTO (k is left cleared on any error). */
int tern_crypto_keys_init(struct tern_crypto_keys *k, uint32_t version, enum tern_aead_suite suite,
			  const uint8_t *secret, size_t secret_len);

/* As tern_crypto_keys_init, but prepares the AEAD only: for contexts that
 * hold the previous or next key phase beside the one that keeps the
 * header-protection key. tern_hp_* on such a context give TERN_ERR_STATE. */
int tern_crypto_keys_init_aead(struct tern_crypto_keys *k, uint32_t version,
			       enum tern_aead_suite suite, const uint8_t *secret, size_t secret_len);

/* Key update in place (RFC 9001 §6): re-keys only the AEAD part (key and
 * iv) from the next secret, keeping the version, the suite and the
 * header-protection state. 0, TERN_ERR_STATE (k holds no AEAD),
 * TERN_ERR_INVAL or TERN_ERR_CRYPTO (the AEAD part is then cleared). */
int tern_crypto_keys_update(struct tern_crypto_keys *k, const uint8_t *secret, size_t secret_len);

/* Wipes every key, state and the IV. Safe on a cleared context. */
void tern_crypto_keys_clear(struct tern_crypto_keys *k);

/* The next generation's secret, in place (RFC 9001 §6.1):
 * secret = HKDF-Expand-Label(secret, "quic ku" or "quicv2 ku", "", len).
 * len must be the hash length. 0, TERN_ERR_VERSION, TERN_ERR_INVAL or
 * TERN_ERR_CRYPTO. */
int tern_crypto_secret_update(uint32_t version, enum tern_hash h, uint8_t *secret, size_t len);

/* AEAD-seals payload in place with nonce = iv XOR pn (RFC 9001 §5.3);
 * aad is the whole unprotected header, ending with the packet number.
 * Writes the 16-byte tag at tag_out (normally right after the payload).
 * 0, TERN_ERR_STATE, TERN_ERR_INVAL or TERN_ERR_CRYPTO. */
int tern_aead_seal(struct tern_crypto_keys *k, uint64_t pn, const uint8_t *aad, size_t aad_len,
		   uint8_t *payload, size_t payload_len, uint8_t *tag_out);

/* Opens payload in place. 0 on success; TERN_ERR_DECRYPT when the tag
 * does not authenticate (RFC 9001 §5.3: drop the packet), and then the
 * payload bytes are unspecified (the tag is left untouched, so a caller
 * can still check it as a stateless reset token, RFC 9000 §10.3.1).
 * TERN_ERR_STATE, TERN_ERR_INVAL or TERN_ERR_CRYPTO otherwise. */
int tern_aead_open(struct tern_crypto_keys *k, uint64_t pn, const uint8_t *aad, size_t aad_len,
		   uint8_t *payload, size_t payload_len, const uint8_t *tag);

/* The 5-byte header-protection mask for a 16-byte sample (RFC 9001
 * §5.4.3 AES-ECB, §5.4.4 ChaCha20). 0, TERN_ERR_STATE or TERN_ERR_CRYPTO. */
int tern_hp_mask(struct tern_crypto_keys *k, const uint8_t *sample, uint8_t mask[TERN_HP_MASK_LEN]);

/* Applies header protection to a sealed packet of pkt_len bytes whose
 * packet number (pn_len bytes, 1..4) starts at pn_offset: the sample is
 * the 16 bytes at pn_offset + 4 (RFC 9001 §5.4.2); the low 4 bits of a
 * long header's first byte or 5 of a short header's are masked, then the
 * PN bytes. 0, TERN_ERR_MALFORMED (the sample does not fit: the sender
 * must pad, RFC 9001 §5.4.2), TERN_ERR_INVAL, TERN_ERR_STATE or
 * TERN_ERR_CRYPTO. Nothing is written on error. */
int tern_hp_protect(struct tern_crypto_keys *k, uint8_t *pkt, size_t pkt_len, size_t pn_offset,
		    size_t pn_len);

/* Removes header protection in place: unmasks the first byte, reads the
 * PN length from it into *pn_len and unmasks that many PN bytes. pkt_len
 * ends this packet (for a long header, where its Length field says).
 * 0, TERN_ERR_MALFORMED (the sample does not fit), TERN_ERR_INVAL,
 * TERN_ERR_STATE or TERN_ERR_CRYPTO. Nothing is written on error. */
int tern_hp_unprotect(struct tern_crypto_keys *k, uint8_t *pkt, size_t pkt_len, size_t pn_offset,
		      size_t *pn_len);

/* ---- Initial secrets (initial.c) --------------------------------------- */

/* client_in and server_in secrets (32 bytes each) from the Destination
 * Connection ID of the client's first Initial (or the one the server chose
 * in a Retry), with the version's salt (RFC 9001 §5.2, RFC 9369 §3.3.1).
 * 0, TERN_ERR_VERSION, TERN_ERR_INVAL (dcid_len > 20) or TERN_ERR_CRYPTO. */
int tern_initial_secrets(uint32_t version, const uint8_t *dcid, size_t dcid_len,
			 uint8_t client_secret[TERN_INITIAL_SECRET_LEN],
			 uint8_t server_secret[TERN_INITIAL_SECRET_LEN]);

/* Both directions' Initial keys (AES-128-GCM, RFC 9001 §5.2): a client
 * seals with *client and opens with *server, a server the reverse. The
 * intermediate secrets are wiped. Errors as tern_initial_secrets; both
 * contexts are left cleared on error. */
int tern_initial_keys_init(uint32_t version, const uint8_t *dcid, size_t dcid_len,
			   struct tern_crypto_keys *client, struct tern_crypto_keys *server);

/* ---- Retry integrity (retry.c) ------------------------------------------ */

/* The Retry Integrity Tag (RFC 9001 §5.8, RFC 9369 §3.3.3): AES-128-GCM
 * with the version's fixed key and nonce over the pseudo-packet
 * ODCID length || ODCID || retry (the Retry packet without its tag).
 * 0, TERN_ERR_VERSION, TERN_ERR_INVAL (odcid_len > 20, or retry_len +
 * 16 > TERN_RETRY_TAG_INPUT_MAX) or TERN_ERR_CRYPTO. */
int tern_retry_tag_compute(uint32_t version, const uint8_t *odcid, size_t odcid_len,
			   const uint8_t *retry, size_t retry_len, uint8_t tag[TERN_RETRY_TAG_LEN]);

/* Checks a received Retry packet of pkt_len bytes whose last 16 bytes are
 * the tag, in constant time. 0 when it authenticates; TERN_ERR_DECRYPT
 * when not (RFC 9001 §5.8: discard it); TERN_ERR_MALFORMED when pkt_len is
 * under 17 or over TERN_RETRY_TAG_INPUT_MAX; TERN_ERR_VERSION, TERN_ERR_INVAL
 * (odcid_len > 20) or TERN_ERR_CRYPTO. */
int tern_retry_tag_verify(uint32_t version, const uint8_t *odcid, size_t odcid_len,
			  const uint8_t *pkt, size_t pkt_len);

#endif
