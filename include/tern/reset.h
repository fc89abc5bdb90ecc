/* tern: stateless reset primitives (RFC 9000 §10.3) and the token-bucket
 * limiter that caps how many resets a worker sends.
 *
 * Token PRF. token = AES-128-CMAC(k_reset, CID) (RFC 4493), where
 * k_reset = HKDF-SHA256(IKM = the cluster's static key, no salt,
 * info = "tern reset token", L = 16). RFC 9000 §10.3.2 asks for a token
 * an attacker cannot predict and that any endpoint able to receive packets
 * for the CID can recompute without per-connection state. CMAC is a PRF
 * and deterministic, so every worker and every host that holds the static
 * key derives the same token for a CID with no synchronisation (DESIGN §4);
 * with AES-NI a CID of up to 20 bytes costs two AES blocks (tens of ns),
 * cheap enough to answer millions of unknown-CID packets per second per
 * core. The HKDF step (RFC 5869) gives the reset PRF its own key, so the
 * same static key can safely key other things (Retry tokens, ...) under
 * other info strings.
 *
 * The key schedule and the CMAC subkeys K1/K2 are computed once, by
 * wolfCrypt, in tern_reset_key_init(). tern_reset_token() only reads the
 * prepared key (no per-call key expansion, no copy of the state), so one
 * key object may be shared read-only by every worker thread.
 */
#ifndef TERN_RESET_H
#define TERN_RESET_H

#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/cmac.h>

#include "tern/common.h"

#define TERN_RESET_TOKEN_LEN 16

/* Smallest reset: 5 unpredictable bytes (first byte included) + token,
 * RFC 9000 §10.3 ("at least 21 bytes"). A trigger must be strictly longer,
 * RFC 9000 §10.3.3, so triggers of 21 bytes or less get no reply. */
#define TERN_RESET_MIN_LEN 21

/* Up to this trigger length the reply is exactly one byte shorter:
 * RFC 9000 §10.3 "SHOULD send a Stateless Reset that is one byte shorter"
 * for triggers of 43 bytes or less, so a reset to a small packet looks
 * like a packet the trigger's sender could itself have received. */
#define TERN_RESET_EXACT_MAX_TRIGGER 43

/* Longest reply: longer triggers get a length drawn uniformly from
 * [43, min(trigger_len - 1, TERN_RESET_MAX_LEN)]. 64 bytes still looks
 * like a small short-header packet with a 20-byte CID, stays well under
 * any trigger it answers (no amplification, RFC 9000 §10.3), and keeps the
 * reset path's bandwidth bounded under a flood. A buffer of this size is
 * always enough for tern_reset_build(). */
#define TERN_RESET_MAX_LEN 64

/* A prepared reset-token key. Holds the AES key schedule and CMAC subkeys;
 * it is 16-byte aligned (AES-NI) and must not be copied with memcpy into
 * unaligned storage. Clear it with tern_reset_key_clear(). */
struct tern_reset_key {
	Cmac cmac;
};

/* Derives k_reset from the static key (len >= 16 bytes) and prepares it.
 * 0, TERN_ERR_INVAL (NULL or key shorter than 16 bytes) or TERN_ERR_CRYPTO. */
int tern_reset_key_init(struct tern_reset_key *k, const uint8_t *static_key, size_t len);

/* Prepares k directly from a raw AES-128 key, bypassing HKDF: for the
 * RFC 4493 test vectors and for callers that already hold a derived key.
 * 0, TERN_ERR_INVAL or TERN_ERR_CRYPTO. */
int tern_reset_key_init_raw(struct tern_reset_key *k, const uint8_t aes128_key[16]);

/* Wipes the key material. */
void tern_reset_key_clear(struct tern_reset_key *k);

/* AES-CMAC (RFC 4493 §2.4) of msg under the prepared key: the PRF behind
 * tern_reset_token(), exposed so tests can check it against RFC 4493 §4.
 * 0, TERN_ERR_INVAL or TERN_ERR_CRYPTO. */
int tern_reset_cmac(const struct tern_reset_key *k, const uint8_t *msg, size_t len,
		    uint8_t tag[TERN_RESET_TOKEN_LEN]);

/* The stateless reset token for a CID of 0..20 bytes (a zero-length CID
 * is allowed so the function is total; RFC 9000 §10.3 has no token for it
 * in practice). 0, TERN_ERR_INVAL (cid_len > 20) or TERN_ERR_CRYPTO. */
int tern_reset_token(const struct tern_reset_key *k, const uint8_t *cid, size_t cid_len,
		     uint8_t token[TERN_RESET_TOKEN_LEN]);

/* Builds a stateless reset answering a trigger datagram of trigger_len
 * bytes: 0b01xxxxxx, unpredictable bytes, then the token (RFC 9000 §10.3).
 * Returns the reply length, TERN_ERR_LIMIT when the size rules allow no
 * reply (trigger_len <= 21), or TERN_ERR_NOBUF when cap is smaller than
 * the longest reply this trigger may get, min(trigger_len - 1,
 * TERN_RESET_MAX_LEN) (checked before any random draw, so the outcome does
 * not depend on the length drawn). Randomness comes only from rnd. */
int tern_reset_build(uint8_t *out, size_t cap, size_t trigger_len,
		     const uint8_t token[TERN_RESET_TOKEN_LEN], const struct tern_rand *rnd);

/* Receive side, RFC 9000 §10.3.1: if the datagram is at least
 * TERN_RESET_MIN_LEN bytes, compares its last 16 bytes with every one of
 * the n tokens in constant time (no early exit, RFC 9000 §10.3.1 "MUST
 * perform the comparison without leaking information about the value of
 * the token") and returns the index of the first match, else -1 (also for
 * n == 0 or n > INT_MAX).
 * The header form is deliberately not checked: RFC 9000 §10.3 says
 * endpoints "MUST treat any packet ending in a valid stateless reset token
 * as a Stateless Reset, as other QUIC versions might allow the use of a
 * long header", and §10.3.1 compares the trailing bytes of the datagram,
 * whatever its first packet is. */
int tern_reset_detect(const uint8_t *pkt, size_t len, const uint8_t (*tokens)[TERN_RESET_TOKEN_LEN],
		      size_t n);

/* 1 if the two tokens are equal, else 0, in constant time. */
int tern_reset_token_equal(const uint8_t a[TERN_RESET_TOKEN_LEN], const uint8_t b[TERN_RESET_TOKEN_LEN]);

/* ---- token bucket (bucket.c) ----------------------------------------- */

/* A per-worker token bucket for outgoing resets (DESIGN §5). Integer only:
 * the level is kept in nano-tokens (1 token = 10^9), so a refill of
 * rate * dt_ns nano-tokens is exact and no fraction is ever lost however
 * often the bucket is polled. */
struct tern_bucket {
	uint64_t rate;    /* tokens per second */
	uint64_t cap_nt;  /* burst, in nano-tokens */
	uint64_t level;   /* current level, in nano-tokens, <= cap_nt */
	uint64_t last_ns; /* latest time seen */
};

/* Starts full (burst tokens). burst is 32-bit so burst * 10^9 always fits
 * in 64 bits. rate 0: the burst is all there will ever be. */
void tern_bucket_init(struct tern_bucket *b, uint64_t rate_per_sec, uint32_t burst, uint64_t now_ns);

/* 1 and consumes a token if a reply may go now, else 0. A clock that goes
 * backwards counts as no time passing; any gap, however large, refills at
 * most to the burst. */
int tern_bucket_take(struct tern_bucket *b, uint64_t now_ns);

#endif
