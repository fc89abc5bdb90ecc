/* tern: server connection IDs that route without a lookup (DESIGN.md §4).
 *
 * The layout is the plaintext one of QUIC-LB (draft-ietf-quic-load-
 * balancers): a first octet whose top 3 bits are the config rotation
 * codepoint and whose low 5 bits are either the CID length minus one
 * (self-encoded length, so a load balancer can find the end of a short
 * header's DCID) or random; then the server ID, which a stateless load
 * balancer reads to pick this host; then the nonce. tern puts the owning
 * worker in the nonce's first byte, so any worker on the host knows where
 * a packet belongs; the rest of the nonce is random (at least 4 bytes, so
 * CIDs are unpredictable and collide rarely). */
#ifndef TERN_LBCID_H
#define TERN_LBCID_H

#include "tern/common.h"

#define TERN_LBCID_MAX_SERVER_ID 15
#define TERN_LBCID_MIN_RANDOM 4
#define TERN_LBCID_UNROUTABLE_CR 7 /* reserved: no config applies */

struct tern_lbcid_config {
	uint8_t config_rotation; /* 0..6 */
	uint8_t server_id_len;   /* 0..15 */
	uint8_t server_id[TERN_LBCID_MAX_SERVER_ID];
	uint8_t nonce_len;       /* worker byte + random bytes, >= 5 */
	uint8_t self_encode_length;
};

/* Sets a configuration with defaults (CR 0, no server ID, 7-byte nonce:
 * 8-byte CIDs, self-encoded length). */
void tern_lbcid_config_init(struct tern_lbcid_config *cfg);
/* Parses a server ID given as hex ("0a1b..", 1..15 bytes). */
int tern_lbcid_set_server_id_hex(struct tern_lbcid_config *cfg, const char *hex);
/* 0, or TERN_ERR_INVAL when the layout is impossible (over 20 bytes...). */
int tern_lbcid_config_check(const struct tern_lbcid_config *cfg);
size_t tern_lbcid_len(const struct tern_lbcid_config *cfg);

/* A fresh CID owned by worker (0..255). */
int tern_lbcid_generate(const struct tern_lbcid_config *cfg, unsigned worker,
			const struct tern_rand *rnd, struct tern_cid *out);

/* The worker a CID of ours names, or -1 when the CID does not follow this
 * configuration (another config rotation, wrong length). */
int tern_lbcid_worker(const struct tern_lbcid_config *cfg, const uint8_t *cid, size_t len);

/* What a load balancer reads: 1 and the server ID bytes when the CID's
 * config rotation matches, else 0. */
int tern_lbcid_server_id(const struct tern_lbcid_config *cfg, const uint8_t *cid, size_t len,
			 uint8_t *server_id);

#endif
