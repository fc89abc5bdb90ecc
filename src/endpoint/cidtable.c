/* tern: the CID table (include/tern/cidtable.h). */
#include "tern/cidtable.h"

/* ---- SipHash-2-4 ---------------------------------------------------------- */

static inline uint64_t rotl64(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

static inline uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#define SIPROUND(v0, v1, v2, v3)                                                   \
	do {                                                                       \
		v0 += v1; v1 = rotl64(v1, 13); v1 ^= v0; v0 = rotl64(v0, 32);     \
		v2 += v3; v3 = rotl64(v3, 16); v3 ^= v2;                           \
		v0 += v3; v3 = rotl64(v3, 21); v3 ^= v0;                           \
		v2 += v1; v1 = rotl64(v1, 17); v1 ^= v2; v2 = rotl64(v2, 32);     \
	} while (0)

uint64_t tern_siphash24(const uint8_t key[TERN_SIPHASH_KEY_LEN], const uint8_t *msg, size_t len)
{
	uint64_t k0 = get_le64(key), k1 = get_le64(key + 8);
	/* The initialisation constants spell "somepseudorandomlygeneratedbytes". */
	uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575);
	uint64_t v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
	uint64_t v2 = k0 ^ UINT64_C(0x6c7967656e657261);
	uint64_t v3 = k1 ^ UINT64_C(0x7465646279746573);
	size_t full = len & ~(size_t)7;

	for (size_t i = 0; i < full; i += 8) {
		uint64_t m = get_le64(msg + i);
		v3 ^= m;
		SIPROUND(v0, v1, v2, v3);
		SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	/* The last block carries the message length in its top byte, so
	 * messages that differ only by trailing zero bytes differ here. */
	uint64_t b = (uint64_t)(len & 0xff) << 56;
	for (size_t i = full; i < len; i++)
		b |= (uint64_t)msg[i] << (8 * (i - full));
	v3 ^= b;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- sizing ----------------------------------------------------------------- */

#define MIN_SLOTS 8

size_t tern_cidtable_slots(size_t max_entries)
{
	if (max_entries == 0 || max_entries > SIZE_MAX / 64)
		return 0;
	/* Load factor <= 3/4: slots * 3 >= max_entries * 4. Robin Hood probe
	 * lengths stay short below that, and at least one slot is always
	 * empty, which is what bounds every probe loop. */
	size_t slots = MIN_SLOTS;
	while (slots * 3 < max_entries * 4)
		slots <<= 1;
	return slots;
}

size_t tern_cidtable_mem_size(size_t max_entries)
{
	size_t slots = tern_cidtable_slots(max_entries);
	return slots * (sizeof(uint64_t) + sizeof(struct tern_cidtable_entry));
}

int tern_cidtable_init(struct tern_cidtable *t, void *mem, size_t mem_len, size_t max_entries,
		       const uint8_t seed[TERN_SIPHASH_KEY_LEN])
{
	size_t slots = tern_cidtable_slots(max_entries);
	if (!t || !mem || !seed || slots == 0 || mem_len < tern_cidtable_mem_size(max_entries) ||
	    ((uintptr_t)mem & 7) != 0)
		return TERN_ERR_INVAL;
	t->hash = mem;
	t->entry = (struct tern_cidtable_entry *)(t->hash + slots);
	t->mask = slots - 1;
	t->count = 0;
	t->max_entries = max_entries;
	memcpy(t->seed, seed, TERN_SIPHASH_KEY_LEN);
	memset(t->hash, 0, slots * sizeof(uint64_t));
	return 0;
}

/* ---- probing ---------------------------------------------------------------- */

static inline uint64_t cid_hash(const struct tern_cidtable *t, const uint8_t *cid, size_t len)
{
	uint64_t h = tern_siphash24(t->seed, cid, len);
	return h ? h : 1; /* 0 marks an empty slot */
}

/* How far slot i sits from the home slot of the hash stored in it. */
static inline size_t slot_dist(const struct tern_cidtable *t, size_t i)
{
	return (i - (size_t)(t->hash[i] & t->mask)) & t->mask;
}

static long find_slot(const struct tern_cidtable *t, uint64_t h, const uint8_t *cid, size_t len)
{
	size_t i = (size_t)h & t->mask;
	/* Robin Hood keeps every run sorted by distance from home: once a
	 * resident is closer to its home than we are to ours, our CID would
	 * have displaced it on insert, so it is not in the table. */
	for (size_t d = 0; d <= t->mask; d++, i = (i + 1) & t->mask) {
		uint64_t hi = t->hash[i];
		if (hi == 0 || slot_dist(t, i) < d)
			return -1;
		if (hi == h && t->entry[i].cid.len == len &&
		    (len == 0 || memcmp(t->entry[i].cid.bytes, cid, len) == 0))
			return (long)i;
	}
	return -1;
}

long tern_cidtable_slot_of(const struct tern_cidtable *t, const struct tern_cid *cid)
{
	if (cid->len > TERN_MAX_CID_LEN)
		return -1;
	return find_slot(t, cid_hash(t, cid->bytes, cid->len), cid->bytes, cid->len);
}

void *tern_cidtable_lookup_bytes(const struct tern_cidtable *t, const uint8_t *cid, size_t len)
{
	if (len > TERN_MAX_CID_LEN)
		return NULL;
	long i = find_slot(t, cid_hash(t, cid, len), cid, len);
	return i < 0 ? NULL : t->entry[i].value;
}

void *tern_cidtable_lookup(const struct tern_cidtable *t, const struct tern_cid *cid)
{
	return tern_cidtable_lookup_bytes(t, cid->bytes, cid->len);
}

int tern_cidtable_insert(struct tern_cidtable *t, const struct tern_cid *cid, void *value)
{
	if (!value || cid->len > TERN_MAX_CID_LEN)
		return TERN_ERR_INVAL;
	uint64_t h = cid_hash(t, cid->bytes, cid->len);
	if (find_slot(t, h, cid->bytes, cid->len) >= 0)
		return TERN_ERR_STATE;
	if (t->count >= t->max_entries)
		return TERN_ERR_NOMEM;

	struct tern_cidtable_entry carry = {.value = value, .cid = *cid};
	size_t i = (size_t)h & t->mask;
	/* count < max_entries < slots guarantees an empty slot ahead. */
	for (size_t d = 0;; d++, i = (i + 1) & t->mask) {
		if (t->hash[i] == 0) {
			t->hash[i] = h;
			t->entry[i] = carry;
			break;
		}
		size_t di = slot_dist(t, i);
		if (di < d) {
			/* Take from the rich: the resident is nearer its home
			 * than we are, so it moves on instead. */
			uint64_t th = t->hash[i];
			struct tern_cidtable_entry te = t->entry[i];
			t->hash[i] = h;
			t->entry[i] = carry;
			h = th;
			carry = te;
			d = di;
		}
	}
	t->count++;
	return 0;
}

void *tern_cidtable_remove(struct tern_cidtable *t, const struct tern_cid *cid)
{
	if (cid->len > TERN_MAX_CID_LEN)
		return NULL;
	long found = find_slot(t, cid_hash(t, cid->bytes, cid->len), cid->bytes, cid->len);
	if (found < 0)
		return NULL;
	size_t i = (size_t)found;
	void *value = t->entry[i].value;
	/* Backward-shift deletion: pull the rest of the run one slot back
	 * until an empty slot or an entry already at home, which leaves the
	 * table exactly as if the CID had never been inserted (no
	 * tombstones to slow later lookups). */
	for (;;) {
		size_t j = (i + 1) & t->mask;
		if (t->hash[j] == 0 || slot_dist(t, j) == 0)
			break;
		t->hash[i] = t->hash[j];
		t->entry[i] = t->entry[j];
		i = j;
	}
	t->hash[i] = 0;
	t->count--;
	return value;
}
