/* tern: the endpoint's connection-ID table (DESIGN.md §1: "known CID ->
 * conn_recv()").
 *
 * Maps CIDs (0..20 bytes) to an opaque non-NULL value (the connection);
 * several CIDs may map to the same value (RFC 9000 §5.1: a connection has
 * many CIDs). Open addressing with Robin Hood linear probing and
 * backward-shift deletion, so there are no tombstones and lookups stay short
 * however many removals came before.
 *
 * The slot of a CID comes from SipHash-2-4 under a secret 128-bit seed: the
 * peer chooses the DCIDs of its Initials and of the CIDs it reads back from
 * us, and with an unkeyed hash it could pile them into one probe run and
 * turn every lookup into a scan (hash flooding).
 *
 * The table never allocates: the caller hands it tern_cidtable_mem_size()
 * bytes once, at setup. The 64-bit hashes live in their own array, so a
 * probe mostly reads 8 hashes per cache line and touches a CID only when
 * the full hash matches.
 *
 * Not thread-safe: one table per worker (DESIGN.md §1, one shard each). */
#ifndef TERN_CIDTABLE_H
#define TERN_CIDTABLE_H

#include "tern/common.h"

#define TERN_SIPHASH_KEY_LEN 16

/* SipHash-2-4 (Aumasson and Bernstein, 2012) of msg under a 16-byte key;
 * the 64-bit result is the little-endian reading of the 8 output bytes, as
 * in the reference implementation's test vectors. */
uint64_t tern_siphash24(const uint8_t key[TERN_SIPHASH_KEY_LEN], const uint8_t *msg, size_t len);

struct tern_cidtable_entry {
	void *value;
	struct tern_cid cid;
};

struct tern_cidtable {
	uint64_t *hash;                     /* per slot; 0 = empty */
	struct tern_cidtable_entry *entry;  /* per slot */
	size_t mask;                        /* slots - 1 */
	size_t count;
	size_t max_entries;
	uint8_t seed[TERN_SIPHASH_KEY_LEN];
};

/* Slots for max_entries (a power of two, load factor <= 0.75, at least 8),
 * or 0 when max_entries is 0 or too large to size. */
size_t tern_cidtable_slots(size_t max_entries);

/* Bytes of memory (8-byte aligned) tern_cidtable_init() needs; 0 as above. */
size_t tern_cidtable_mem_size(size_t max_entries);

/* Prepares an empty table for up to max_entries CIDs in mem (mem_len >=
 * tern_cidtable_mem_size(max_entries), 8-byte aligned; the caller owns it
 * and frees it after the table). seed is the secret hash key: draw it from
 * a strong random source and keep it from peers. 0 or TERN_ERR_INVAL. */
int tern_cidtable_init(struct tern_cidtable *t, void *mem, size_t mem_len, size_t max_entries,
		       const uint8_t seed[TERN_SIPHASH_KEY_LEN]);

/* Adds cid -> value (value not NULL). 0; TERN_ERR_NOMEM when max_entries
 * CIDs are stored; TERN_ERR_STATE when cid is already present (the table
 * keeps the old value: a fresh CID colliding with one in use must be
 * redrawn, RFC 9000 §5.1 asks CIDs to be unique per endpoint);
 * TERN_ERR_INVAL for a NULL value or a CID longer than 20 bytes. */
int tern_cidtable_insert(struct tern_cidtable *t, const struct tern_cid *cid, void *value);

/* The value stored for cid, or NULL. */
void *tern_cidtable_lookup(const struct tern_cidtable *t, const struct tern_cid *cid);

/* The same for a CID given as bytes (e.g. a header's raw DCID view). */
void *tern_cidtable_lookup_bytes(const struct tern_cidtable *t, const uint8_t *cid, size_t len);

/* Removes cid and returns the value it mapped to, or NULL when absent. */
void *tern_cidtable_remove(struct tern_cidtable *t, const struct tern_cid *cid);

static inline size_t tern_cidtable_count(const struct tern_cidtable *t)
{
	return t->count;
}

/* The slot holding cid, or -1: lets tests see that the seed decides the
 * layout. */
long tern_cidtable_slot_of(const struct tern_cidtable *t, const struct tern_cid *cid);

#endif
