/* tern: QUIC packet headers, packet numbers, Version Negotiation and Retry
 * framing. See include/tern/packet.h for the contracts. */
#include <limits.h>

#include "tern/packet.h"

/* ---- packet numbers ------------------------------------------------------ */

size_t tern_pn_encode_len(uint64_t full_pn, uint64_t largest_acked, int has_acked)
{
	uint64_t unacked;

	if (!has_acked)
		unacked = full_pn + 1;
	else if (full_pn > largest_acked)
		unacked = full_pn - largest_acked;
	else
		return TERN_PKT_MAX_PN_LEN;
	/* RFC 9000 §17.1: the window 2^(8n) must be more than twice the
	 * distance, i.e. unacked < 2^(8n-1). Appendix A.2's real-valued
	 * log2 pseudocode allows unacked == 2^(8n-1); the normative text
	 * does not, so tern takes the stricter rule. */
	for (size_t n = 1; n < TERN_PKT_MAX_PN_LEN; n++)
		if (unacked < (UINT64_C(1) << (8 * n - 1)))
			return n;
	return TERN_PKT_MAX_PN_LEN;
}

uint64_t tern_pn_decode(uint64_t largest_pn, uint64_t truncated_pn, unsigned pn_nbits)
{
	if (pn_nbits < 1)
		pn_nbits = 1;
	if (pn_nbits > 32)
		pn_nbits = 32;
	/* A largest_pn beyond the 62-bit space (TERN_PN_NONE excepted) cannot
	 * be real; clamping keeps every sum below 2^63. */
	if (largest_pn != TERN_PN_NONE && largest_pn > TERN_PN_MAX)
		largest_pn = TERN_PN_MAX;

	uint64_t expected = largest_pn + 1; /* TERN_PN_NONE wraps to 0 */
	uint64_t win = UINT64_C(1) << pn_nbits;
	uint64_t hwin = win / 2;
	uint64_t mask = win - 1;
	uint64_t cand = (expected & ~mask) | (truncated_pn & mask);

	/* Appendix A.3 with the subtractions moved to the other side, so
	 * that nothing wraps near 0 or 2^62. */
	if (cand + hwin <= expected && cand + win <= TERN_PN_MAX)
		return cand + win;
	if (cand > expected + hwin && cand >= win)
		return cand - win;
	/* Only reachable when largest_pn is near 2^62: no packet number can
	 * exceed 2^62-1 (§12.3), so the one below is the only candidate. */
	if (cand > TERN_PN_MAX)
		return cand - win;
	return cand;
}

int tern_pkt_check_reserved(uint8_t first)
{
	uint8_t bits = tern_pkt_is_long(first) ? TERN_PKT_LONG_RESERVED_BITS
					       : TERN_PKT_SHORT_RESERVED_BITS;
	return (first & bits) ? TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION) : 0;
}

/* ---- long-header type bits, RFC 9000 §17.2 and RFC 9369 §3.2 ------------ */

static const enum tern_pkt_type v1_types[4] = {
	TERN_PKT_INITIAL, TERN_PKT_0RTT, TERN_PKT_HANDSHAKE, TERN_PKT_RETRY};
static const enum tern_pkt_type v2_types[4] = {
	TERN_PKT_RETRY, TERN_PKT_INITIAL, TERN_PKT_0RTT, TERN_PKT_HANDSHAKE};

static enum tern_pkt_type type_from_bits(uint32_t version, uint8_t first)
{
	unsigned bits = (first >> 4) & 3;
	return version == TERN_VERSION_2 ? v2_types[bits] : v1_types[bits];
}

/* -1 for a type that has no long-header encoding. */
static int type_to_bits(uint32_t version, enum tern_pkt_type type)
{
	const enum tern_pkt_type *t = version == TERN_VERSION_2 ? v2_types : v1_types;
	for (int i = 0; i < 4; i++)
		if (t[i] == type)
			return i;
	return -1;
}

/* ---- parsing ------------------------------------------------------------- */

/* Reads one length-prefixed CID of at most `max` bytes at *p. */
static int read_cid(const uint8_t **p, const uint8_t *end, size_t max, const uint8_t **cid,
		    uint8_t *cid_len)
{
	if (*p >= end)
		return TERN_ERR_TRUNCATED;
	size_t n = **p;
	if ((size_t)(end - *p - 1) < n)
		return TERN_ERR_TRUNCATED;
	if (n > max)
		return TERN_ERR_MALFORMED;
	*cid = *p + 1;
	*cid_len = (uint8_t)n;
	*p += 1 + n;
	return 0;
}

/* The invariant part of every long header, RFC 8999 §5.1: CIDs of up to 255
 * bytes. v1/v2 (and VN answering them) tighten that to 20 (RFC 9000 §17.2);
 * the truncation check comes first so a cut-off header reads as such. */
static int parse_long_cids(const uint8_t **p, const uint8_t *end, size_t max,
			   struct tern_pkt_hdr *hdr)
{
	int rc = read_cid(p, end, 255, &hdr->dcid_raw, &hdr->dcid_raw_len);
	if (rc)
		return rc;
	rc = read_cid(p, end, 255, &hdr->scid_raw, &hdr->scid_raw_len);
	if (rc)
		return rc;
	if (hdr->dcid_raw_len > max || hdr->scid_raw_len > max)
		return TERN_ERR_MALFORMED;
	if (max <= TERN_MAX_CID_LEN) {
		tern_cid_set(&hdr->dcid, hdr->dcid_raw, hdr->dcid_raw_len);
		tern_cid_set(&hdr->scid, hdr->scid_raw, hdr->scid_raw_len);
	}
	return 0;
}

/* VN, RFC 9000 §17.2.1: the rest of the datagram is a list of 32-bit
 * versions; an empty or ragged list is not a VN anyone could have sent. */
static int parse_vn(const uint8_t *p, const uint8_t *end, struct tern_pkt_hdr *hdr)
{
	size_t rest = (size_t)(end - p);
	if (rest == 0 || rest % 4 != 0)
		return TERN_ERR_MALFORMED;
	hdr->type = TERN_PKT_VN;
	hdr->vn_versions = p;
	hdr->vn_count = rest / 4;
	return 0;
}

/* Retry, RFC 9000 §17.2.5: token then a 16-byte tag, to the datagram's end;
 * §17.2.5.2 has the client discard a Retry with an empty token. */
static int parse_retry(const uint8_t *p, const uint8_t *end, struct tern_pkt_hdr *hdr)
{
	size_t rest = (size_t)(end - p);
	if (rest < TERN_RETRY_TAG_LEN)
		return TERN_ERR_TRUNCATED;
	if (rest == TERN_RETRY_TAG_LEN)
		return TERN_ERR_MALFORMED;
	hdr->token = p;
	hdr->token_len = rest - TERN_RETRY_TAG_LEN;
	hdr->retry_tag = end - TERN_RETRY_TAG_LEN;
	return 0;
}

/* Initial, 0-RTT and Handshake: [token,] Length, then the protected packet
 * number and payload; fills the pn offset and the packet's size. */
static int parse_long_pn(const uint8_t *buf, const uint8_t *p, const uint8_t *end,
			 struct tern_pkt_hdr *hdr)
{
	uint64_t v;

	if (hdr->type == TERN_PKT_INITIAL) {
		if (tern_varint_decode(&p, end, &v))
			return TERN_ERR_TRUNCATED;
		if (v > (uint64_t)(end - p))
			return TERN_ERR_TRUNCATED;
		hdr->token = v ? p : NULL;
		hdr->token_len = (size_t)v;
		p += v;
	}
	if (tern_varint_decode(&p, end, &v))
		return TERN_ERR_TRUNCATED;
	if (v > (uint64_t)(end - p))
		return TERN_ERR_TRUNCATED;
	/* RFC 9001 §5.4.2: the sample starts 4 bytes after the pn field and
	 * is 16 bytes long; a packet too short for it cannot be unprotected. */
	if (v < TERN_PKT_SAMPLE_SKIP + TERN_PKT_SAMPLE_LEN)
		return TERN_ERR_MALFORMED;
	hdr->pn_offset = (size_t)(p - buf);
	hdr->length = v;
	hdr->pkt_len = hdr->pn_offset + (size_t)v;
	return 0;
}

static int parse_long(const uint8_t *buf, const uint8_t *end, struct tern_pkt_hdr *hdr)
{
	const uint8_t *p = buf + 1;
	int rc;

	if (end - p < 4)
		return TERN_ERR_TRUNCATED;
	hdr->version = tern_get_u32(p);
	p += 4;
	if (!hdr->version) {
		if ((rc = parse_long_cids(&p, end, TERN_MAX_CID_LEN, hdr)))
			return rc;
		hdr->pkt_len = (size_t)(end - buf);
		return parse_vn(p, end, hdr);
	}
	if (!tern_version_is_supported(hdr->version)) {
		if ((rc = parse_long_cids(&p, end, 255, hdr)))
			return rc;
		hdr->pkt_len = (size_t)(end - buf);
		return TERN_ERR_VERSION;
	}
	/* RFC 9000 §17.2: a v1 packet with the fixed bit clear is invalid
	 * and discarded (RFC 9287 greasing is not negotiated by tern). */
	if (!(hdr->first & TERN_PKT_FIXED_BIT))
		return TERN_ERR_MALFORMED;
	if ((rc = parse_long_cids(&p, end, TERN_MAX_CID_LEN, hdr)))
		return rc;
	hdr->type = type_from_bits(hdr->version, hdr->first);
	if (hdr->type == TERN_PKT_RETRY) {
		hdr->pkt_len = (size_t)(end - buf);
		return parse_retry(p, end, hdr);
	}
	return parse_long_pn(buf, p, end, hdr);
}

/* Short header, RFC 9000 §17.3.1: it runs to the end of the datagram. */
static int parse_short(const uint8_t *buf, const uint8_t *end, size_t dcid_len,
		       struct tern_pkt_hdr *hdr)
{
	size_t len = (size_t)(end - buf);

	if (!(hdr->first & TERN_PKT_FIXED_BIT))
		return TERN_ERR_MALFORMED;
	if (len < 1 + dcid_len)
		return TERN_ERR_TRUNCATED;
	hdr->type = TERN_PKT_1RTT;
	hdr->dcid_raw = buf + 1;
	hdr->dcid_raw_len = (uint8_t)dcid_len;
	tern_cid_set(&hdr->dcid, buf + 1, dcid_len);
	hdr->pn_offset = 1 + dcid_len;
	if (len < hdr->pn_offset + TERN_PKT_SAMPLE_SKIP + TERN_PKT_SAMPLE_LEN)
		return TERN_ERR_MALFORMED;
	hdr->length = len - hdr->pn_offset;
	hdr->pkt_len = len;
	return 0;
}

int tern_pkt_parse(const uint8_t *buf, size_t len, size_t short_dcid_len,
		   struct tern_pkt_hdr *hdr)
{
	memset(hdr, 0, sizeof(*hdr));
	if (short_dcid_len > TERN_MAX_CID_LEN || len > INT_MAX || (len && !buf))
		return TERN_ERR_INVAL;
	if (len == 0)
		return TERN_ERR_TRUNCATED;

	const uint8_t *end = buf + len;
	int rc;

	hdr->first = buf[0];
	if (tern_pkt_is_long(buf[0]))
		rc = parse_long(buf, end, hdr);
	else
		rc = parse_short(buf, end, short_dcid_len, hdr);
	if (rc)
		return rc;
	return (int)hdr->pkt_len;
}

/* ---- writing ------------------------------------------------------------- */

static int cid_ok(const struct tern_cid *cid)
{
	return cid && cid->len <= TERN_MAX_CID_LEN;
}

static uint8_t *put_cid(uint8_t *p, const uint8_t *cid, size_t len)
{
	*p++ = (uint8_t)len;
	if (len)
		memcpy(p, cid, len);
	return p + len;
}

/* The low pn_len bytes of pn, big-endian (RFC 9000 §17.1). */
static uint8_t *put_pn(uint8_t *p, uint64_t pn, size_t pn_len)
{
	for (size_t i = pn_len; i-- > 0; pn >>= 8)
		p[i] = (uint8_t)pn;
	return p + pn_len;
}

int tern_pkt_long_write(uint8_t *out, size_t cap, uint32_t version, enum tern_pkt_type type,
			const struct tern_cid *dcid, const struct tern_cid *scid,
			const uint8_t *token, size_t token_len, uint64_t pn, size_t pn_len)
{
	if (!tern_version_is_supported(version))
		return TERN_ERR_VERSION;
	int bits = type_to_bits(version, type);
	if (bits < 0 || type == TERN_PKT_RETRY || pn_len < 1 || pn_len > TERN_PKT_MAX_PN_LEN ||
	    !cid_ok(dcid) || !cid_ok(scid) || (token_len && !token) ||
	    (token_len && type != TERN_PKT_INITIAL) || token_len > TERN_VARINT_MAX)
		return TERN_ERR_INVAL;

	size_t need = 1 + 4 + 1 + dcid->len + 1 + scid->len + TERN_PKT_LENGTH_FIELD_SIZE + pn_len;
	if (type == TERN_PKT_INITIAL) {
		if (token_len > cap)
			return TERN_ERR_NOBUF;
		need += tern_varint_size(token_len) + token_len;
	}
	if (need > cap || need > INT_MAX)
		return TERN_ERR_NOBUF;

	uint8_t *p = out;
	*p++ = (uint8_t)(TERN_PKT_FORM_LONG | TERN_PKT_FIXED_BIT | bits << 4 | (pn_len - 1));
	p = tern_put_u32(p, version);
	p = put_cid(p, dcid->bytes, dcid->len);
	p = put_cid(p, scid->bytes, scid->len);
	if (type == TERN_PKT_INITIAL) {
		p = tern_varint_encode(p, token_len);
		if (token_len)
			memcpy(p, token, token_len);
		p += token_len;
	}
	/* Reserved now, patched once the payload size is known. */
	p = tern_varint_encode_fixed(p, 0, TERN_PKT_LENGTH_FIELD_SIZE);
	int pn_offset = (int)(p - out);
	put_pn(p, pn, pn_len);
	return pn_offset;
}

int tern_pkt_patch_length(uint8_t *pkt, size_t pn_offset, size_t pkt_len)
{
	/* 7 bytes of invariant header precede any Length field. */
	if (!pkt || pn_offset < 7 + TERN_PKT_LENGTH_FIELD_SIZE || pkt_len < pn_offset)
		return TERN_ERR_INVAL;
	uint8_t *field = pkt + pn_offset - TERN_PKT_LENGTH_FIELD_SIZE;
	if ((field[0] & 0xc0) != 0x40)
		return TERN_ERR_INVAL;
	size_t length = pkt_len - pn_offset;
	if (length > TERN_PKT_LENGTH_FIELD_MAX ||
	    length < TERN_PKT_SAMPLE_SKIP + TERN_PKT_SAMPLE_LEN)
		return TERN_ERR_INVAL;
	tern_varint_encode_fixed(field, length, TERN_PKT_LENGTH_FIELD_SIZE);
	return 0;
}

int tern_pkt_short_write(uint8_t *out, size_t cap, const struct tern_cid *dcid, uint64_t pn,
			 size_t pn_len, int key_phase, int spin)
{
	if (!cid_ok(dcid) || pn_len < 1 || pn_len > TERN_PKT_MAX_PN_LEN)
		return TERN_ERR_INVAL;
	if (cap < 1 + (size_t)dcid->len + pn_len)
		return TERN_ERR_NOBUF;

	uint8_t *p = out;
	*p++ = (uint8_t)(TERN_PKT_FIXED_BIT | (spin ? TERN_PKT_SPIN_BIT : 0) |
			 (key_phase ? TERN_PKT_KEY_PHASE_BIT : 0) | (pn_len - 1));
	if (dcid->len)
		memcpy(p, dcid->bytes, dcid->len);
	p += dcid->len;
	put_pn(p, pn, pn_len);
	return 1 + dcid->len;
}

int tern_vn_build(uint8_t *out, size_t cap, const uint8_t *dcid, size_t dcid_len,
		  const uint8_t *scid, size_t scid_len, const uint32_t *versions, size_t n,
		  uint8_t unused_bits_random)
{
	if (dcid_len > 255 || scid_len > 255 || (dcid_len && !dcid) || (scid_len && !scid) ||
	    n == 0 || !versions || n > (INT_MAX - 1 - 4 - 1 - 255 - 1 - 255) / 4)
		return TERN_ERR_INVAL;
	size_t need = 1 + 4 + 1 + dcid_len + 1 + scid_len + 4 * n;
	if (need > cap)
		return TERN_ERR_NOBUF;

	uint8_t *p = out;
	*p++ = (uint8_t)(TERN_PKT_FORM_LONG | TERN_PKT_FIXED_BIT | (unused_bits_random & 0x3f));
	p = tern_put_u32(p, 0);
	p = put_cid(p, dcid, dcid_len);
	p = put_cid(p, scid, scid_len);
	for (size_t i = 0; i < n; i++)
		p = tern_put_u32(p, versions[i]);
	return (int)need;
}

int tern_retry_write(uint8_t *out, size_t cap, uint32_t version, const struct tern_cid *dcid,
		     const struct tern_cid *scid, const uint8_t *token, size_t token_len)
{
	if (!tern_version_is_supported(version))
		return TERN_ERR_VERSION;
	if (!cid_ok(dcid) || !cid_ok(scid) || token_len == 0 || !token || token_len > INT_MAX / 2)
		return TERN_ERR_INVAL;
	size_t len = 1 + 4 + 1 + dcid->len + 1 + scid->len + token_len;
	if (len + TERN_RETRY_TAG_LEN > cap)
		return TERN_ERR_NOBUF;

	uint8_t *p = out;
	*p++ = (uint8_t)(TERN_PKT_FORM_LONG | TERN_PKT_FIXED_BIT |
			 type_to_bits(version, TERN_PKT_RETRY) << 4 | 0x0f);
	p = tern_put_u32(p, version);
	p = put_cid(p, dcid->bytes, dcid->len);
	p = put_cid(p, scid->bytes, scid->len);
	memcpy(p, token, token_len);
	return (int)len;
}
