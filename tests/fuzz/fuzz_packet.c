/* libFuzzer target for the packet parser: walks each input as a receiver
 * walks a datagram (coalesced packets, RFC 9000 §12.2) with several short
 * header CID lengths, and traps when an invariant of tern_pkt_parse()
 * breaks. Writers are exercised by rebuilding what was parsed. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tern/packet.h"

#define CHECK(c)                         \
	do {                             \
		if (!(c))                \
			__builtin_trap(); \
	} while (0)

static int inside(const uint8_t *p, size_t n, const uint8_t *lo, const uint8_t *hi)
{
	return p && p >= lo && p <= hi && (size_t)(hi - p) >= n;
}

static void check_fields(const struct tern_pkt_hdr *h, const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n;

	CHECK(h->first == p[0]);
	if (h->dcid_raw_len)
		CHECK(inside(h->dcid_raw, h->dcid_raw_len, p, end));
	if (h->scid_raw_len)
		CHECK(inside(h->scid_raw, h->scid_raw_len, p, end));
	CHECK(h->dcid.len <= TERN_MAX_CID_LEN && h->scid.len <= TERN_MAX_CID_LEN);
	if (h->token_len)
		CHECK(inside(h->token, h->token_len, p, end));
	switch (h->type) {
	case TERN_PKT_VN:
		CHECK(h->vn_count >= 1 && inside(h->vn_versions, 4 * h->vn_count, p, end));
		CHECK(h->vn_versions + 4 * h->vn_count == end);
		break;
	case TERN_PKT_RETRY:
		CHECK(h->token_len >= 1 && h->retry_tag == end - TERN_RETRY_TAG_LEN);
		CHECK(h->token + h->token_len == h->retry_tag);
		break;
	default:
		/* Room for the header-protection sample, RFC 9001 §5.4.2. */
		CHECK(h->pn_offset >= 1 && h->pn_offset < n);
		CHECK(h->pn_offset + TERN_PKT_SAMPLE_SKIP + TERN_PKT_SAMPLE_LEN <= n);
		CHECK(h->pn_offset + h->length == n);
		break;
	}
}

/* Rewrites a parsed long header with the writer and parses it back. */
static void rewrite_long(const struct tern_pkt_hdr *h)
{
	static uint8_t buf[TERN_PKT_LONG_HDR_MAX_SIZE(4096) + 64]; /* max_len is 4096 */
	size_t pn_len = tern_pkt_pn_len(h->first);
	int off = tern_pkt_long_write(buf, sizeof(buf), h->version, h->type, &h->dcid, &h->scid,
				      h->token, h->token_len, 0x12345678, pn_len);
	CHECK(off > 0);
	size_t total = (size_t)off + TERN_PKT_SAMPLE_SKIP + TERN_PKT_SAMPLE_LEN;
	CHECK(total <= sizeof(buf));
	memset(buf + off + pn_len, 0, total - (size_t)off - pn_len);
	CHECK(tern_pkt_patch_length(buf, (size_t)off, total) == 0);
	struct tern_pkt_hdr g;
	CHECK(tern_pkt_parse(buf, total, 0, &g) == (int)total);
	CHECK(g.type == h->type && g.version == h->version);
	CHECK(tern_cid_equal(&g.dcid, &h->dcid) && tern_cid_equal(&g.scid, &h->scid));
	CHECK(g.token_len == h->token_len);
	CHECK(h->token_len == 0 || memcmp(g.token, h->token, h->token_len) == 0);
	CHECK(tern_pkt_pn_len(g.first) == pn_len && tern_pkt_check_reserved(g.first) == 0);
}

static void rebuild_vn(const struct tern_pkt_hdr *h, const uint8_t *p, size_t n)
{
	static uint8_t buf[4096];
	static uint32_t versions[400];
	if (h->vn_count > sizeof(versions) / sizeof(versions[0]))
		return;
	for (size_t i = 0; i < h->vn_count; i++)
		versions[i] = tern_vn_version(h, i);
	int len = tern_vn_build(buf, sizeof(buf), h->dcid_raw, h->dcid_raw_len, h->scid_raw,
				h->scid_raw_len, versions, h->vn_count, h->first);
	CHECK(len == (int)n && memcmp(buf + 1, p + 1, n - 1) == 0);
}

static void walk(const uint8_t *data, size_t size, size_t short_dcid_len)
{
	const uint8_t *p = data;
	size_t left = size;
	unsigned packets = 0;

	while (left) {
		struct tern_pkt_hdr h;
		int rc = tern_pkt_parse(p, left, short_dcid_len, &h);
		if (rc == TERN_ERR_VERSION) {
			CHECK(h.version != 0 && !tern_version_is_supported(h.version));
			CHECK(inside(h.dcid_raw, h.dcid_raw_len, p, p + left));
			CHECK(inside(h.scid_raw, h.scid_raw_len, p, p + left));
			return;
		}
		if (rc < 0) {
			CHECK(rc == TERN_ERR_TRUNCATED || rc == TERN_ERR_MALFORMED);
			return;
		}
		CHECK(rc > 0 && (size_t)rc <= left);
		check_fields(&h, p, (size_t)rc);
		if (h.type == TERN_PKT_1RTT || h.type == TERN_PKT_VN || h.type == TERN_PKT_RETRY)
			CHECK((size_t)rc == left);
		if (h.type == TERN_PKT_INITIAL || h.type == TERN_PKT_0RTT ||
		    h.type == TERN_PKT_HANDSHAKE)
			rewrite_long(&h);
		if (h.type == TERN_PKT_VN)
			rebuild_vn(&h, p, (size_t)rc);
		p += rc;
		left -= (size_t)rc;
		CHECK(++packets <= size); /* progress on every step */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t lens[] = {0, 4, 8, 20};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		walk(data, size, lens[i]);

	/* Packet-number decoding: never above 2^62-1, always congruent. */
	if (size >= 13) {
		uint64_t largest = 0, trunc = 0;
		for (int i = 0; i < 8; i++)
			largest = largest << 8 | data[i];
		for (int i = 8; i < 12; i++)
			trunc = trunc << 8 | data[i];
		unsigned nbits = 8 * ((data[12] & 3) + 1);
		uint64_t r = tern_pn_decode(largest, trunc, nbits);
		CHECK(r <= TERN_PN_MAX);
		CHECK((r & ((UINT64_C(1) << nbits) - 1)) == (trunc & ((UINT64_C(1) << nbits) - 1)));
		size_t n = tern_pn_encode_len(largest & TERN_PN_MAX, trunc, data[12] & 4);
		CHECK(n >= 1 && n <= 4);
	}
	return 0;
}
