/* tern: address-validation tokens for Retry and NEW_TOKEN (RFC 9000 §8.1).
 *
 * A token is AES-128-GCM sealed under a key derived from the cluster's
 * static key, so any worker or host holding that key validates it with no
 * shared state. It carries when it was issued and, for Retry, the
 * client's original DCID (which the server must echo in
 * original_destination_connection_id, §7.3); the client's address is the
 * AEAD's additional data, so a token only works from where it was issued
 * to. Layout: type (1) | nonce (12) | sealed { issued_ns (8) | odcid_len
 * (1) | odcid } | tag (16). */
#ifndef TERN_TOKEN_H
#define TERN_TOKEN_H

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>

#include "tern/common.h"

enum tern_token_type {
	TERN_TOKEN_RETRY = 1,
	TERN_TOKEN_NEW_TOKEN = 2,
};

#define TERN_TOKEN_NONCE_LEN 12
#define TERN_TOKEN_MAX_LEN (1 + TERN_TOKEN_NONCE_LEN + 8 + 1 + TERN_MAX_CID_LEN + 16)

struct tern_token_key {
	Aes gcm;
};

/* Derives the token key from a static key of at least 16 bytes. */
int tern_token_key_init(struct tern_token_key *k, const uint8_t *static_key, size_t len);
void tern_token_key_clear(struct tern_token_key *k);

/* Seals a token for addr. Retry tokens bind the full address (the client
 * answers at once from the same port); NEW_TOKEN tokens bind only the IP,
 * since a later connection comes from another port. odcid may be NULL for
 * NEW_TOKEN. Returns the token length. */
int tern_token_seal(struct tern_token_key *k, enum tern_token_type type, const struct tern_addr *addr,
		    const struct tern_cid *odcid, uint64_t now, const struct tern_rand *rnd,
		    uint8_t *out, size_t cap);

/* Opens a token received from addr. 0 with *type and *odcid filled;
 * TERN_ERR_DECRYPT for a forged or foreign token (or one from another
 * address), TERN_ERR_LIMIT when it is older than lifetime_ns or issued in
 * the future, TERN_ERR_MALFORMED when it cannot be a token of ours. */
int tern_token_open(struct tern_token_key *k, const uint8_t *tok, size_t len,
		    const struct tern_addr *addr, uint64_t now, uint64_t lifetime_ns,
		    enum tern_token_type *type, struct tern_cid *odcid);

#endif
