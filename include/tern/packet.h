/* tern: QUIC packet headers (RFC 9000 §17, RFC 8999 invariants, RFC 9369
 * §3.2 for version 2), packet numbers (RFC 9000 §17.1, Appendix A.2/A.3),
 * Version Negotiation (§17.2.1) and Retry (§17.2.5) framing.
 *
 * The parser runs before header protection is removed (RFC 9001 §5.4), so it
 * reads only what is not protected: the header form, the fixed bit, the
 * long-header type, the version, the CIDs, the token and the Length field. It
 * finds where the packet number starts and where the packet ends inside the
 * datagram; the packet-number length, the reserved bits and the key phase
 * are read later from the unprotected first byte (tern_pkt_pn_len(),
 * tern_pkt_check_reserved(), tern_pkt_key_phase()).
 *
 * Parsed tokens, CIDs views, VN version lists and Retry tags point into the
 * input, which must outlive the header. Nothing here allocates. */
#ifndef TERN_PACKET_H
#define TERN_PACKET_H

#include "tern/common.h"

/* Packet numbers are 62-bit, RFC 9000 §12.3. */
#define TERN_PN_MAX TERN_VARINT_MAX

/* "No packet processed yet" for tern_pn_decode(): largest_pn + 1 wraps to
 * the expected packet number 0. */
#define TERN_PN_NONE UINT64_MAX

/* Header protection samples 16 bytes starting 4 bytes after the start of
 * the Packet Number field, RFC 9001 §5.4.2. */
#define TERN_PKT_SAMPLE_LEN 16
#define TERN_PKT_SAMPLE_SKIP 4
#define TERN_PKT_MAX_PN_LEN 4

/* The Retry Integrity Tag, RFC 9001 §5.8. */
#define TERN_RETRY_TAG_LEN 16

/* The Length field the long-header writer reserves (a 2-byte varint) and
 * the largest value it can later hold. */
#define TERN_PKT_LENGTH_FIELD_SIZE 2
#define TERN_PKT_LENGTH_FIELD_MAX 0x3fff

/* Worst-case header sizes for the writers: first byte, version, two
 * 20-byte CIDs with their lengths, an 8-byte token length, the 2-byte
 * Length field and a 4-byte packet number. */
#define TERN_PKT_LONG_HDR_MAX_SIZE(token_len) \
	(1 + 4 + 1 + TERN_MAX_CID_LEN + 1 + TERN_MAX_CID_LEN + TERN_VARINT_MAX_SIZE + \
	 (size_t)(token_len) + TERN_PKT_LENGTH_FIELD_SIZE + TERN_PKT_MAX_PN_LEN)
#define TERN_PKT_SHORT_HDR_MAX_SIZE (1 + TERN_MAX_CID_LEN + TERN_PKT_MAX_PN_LEN)
#define TERN_RETRY_MAX_SIZE(token_len) \
	(1 + 4 + 1 + TERN_MAX_CID_LEN + 1 + TERN_MAX_CID_LEN + (size_t)(token_len) + \
	 TERN_RETRY_TAG_LEN)
/* RFC 8999 allows a VN to echo CIDs of up to 255 bytes. */
#define TERN_VN_MAX_SIZE(n_versions) (1 + 4 + 1 + 255 + 1 + 255 + 4 * (size_t)(n_versions))

/* First-byte bits, RFC 9000 §17.2 and §17.3.1. */
#define TERN_PKT_FORM_LONG 0x80
#define TERN_PKT_FIXED_BIT 0x40
#define TERN_PKT_SPIN_BIT 0x20
#define TERN_PKT_KEY_PHASE_BIT 0x04
#define TERN_PKT_LONG_RESERVED_BITS 0x0c
#define TERN_PKT_SHORT_RESERVED_BITS 0x18
#define TERN_PKT_PN_LEN_BITS 0x03

struct tern_pkt_hdr {
	uint8_t first;          /* first byte as received (still protected) */
	enum tern_pkt_type type;
	uint32_t version;       /* 0 for VN and for short headers */
	/* The CIDs as values. Valid when tern_pkt_parse() succeeds; both are
	 * empty after TERN_ERR_VERSION, whose CIDs may be up to 255 bytes
	 * (RFC 8999 §5.1): use the raw views below to answer it. A short
	 * header has no SCID. */
	struct tern_cid dcid;
	struct tern_cid scid;
	/* Zero-copy views of the CIDs, set for every header that got as far
	 * as its CIDs, including unknown versions. */
	const uint8_t *dcid_raw;
	const uint8_t *scid_raw;
	uint8_t dcid_raw_len;
	uint8_t scid_raw_len;
	/* Initial: the token (NULL/0 when absent). Retry: the Retry token,
	 * never empty. */
	const uint8_t *token;
	size_t token_len;
	/* Retry: the 16-byte integrity tag, the last bytes of the packet. */
	const uint8_t *retry_tag;
	/* VN: the supported versions, vn_count big-endian 32-bit values;
	 * read them with tern_vn_version(). */
	const uint8_t *vn_versions;
	size_t vn_count;
	/* Initial, 0-RTT, Handshake and 1-RTT: offset of the Packet Number
	 * field from the start of the packet; 0 for VN and Retry. */
	size_t pn_offset;
	/* Long headers with a Length field: its value (packet number and
	 * protected payload). 1-RTT: what follows pn_offset. */
	uint64_t length;
	/* This packet's size inside the datagram (RFC 9000 §12.2). */
	size_t pkt_len;
};

/* ---- packet numbers ---------------------------------------------------- */

/* Bytes (1..4) to encode full_pn so a receiver that has seen largest_acked
 * decodes it, RFC 9000 §17.1: the encoding must represent more than twice
 * the distance to the largest acknowledged packet. has_acked = 0 when
 * nothing was acknowledged yet in this space. 4 when even 4 bytes are not
 * enough (the caller must then not have that many packets in flight) or
 * when full_pn <= largest_acked (a caller bug; the longest form is safe). */
size_t tern_pn_encode_len(uint64_t full_pn, uint64_t largest_acked, int has_acked);

/* Recovers a full packet number, RFC 9000 Appendix A.3. largest_pn is the
 * largest packet number successfully processed in this space, or
 * TERN_PN_NONE. pn_nbits is 8, 16, 24 or 32 (other values are clamped to
 * 1..32). The result is never above TERN_PN_MAX and never wraps below 0. */
uint64_t tern_pn_decode(uint64_t largest_pn, uint64_t truncated_pn, unsigned pn_nbits);

/* Reads a pn_len-byte (1..4) truncated packet number at p. */
static inline uint64_t tern_pn_read(const uint8_t *p, size_t pn_len)
{
	uint64_t v = 0;
	for (size_t i = 0; i < pn_len; i++)
		v = (v << 8) | p[i];
	return v;
}

/* ---- first-byte helpers (after header protection is removed) ----------- */

static inline int tern_pkt_is_long(uint8_t first)
{
	return (first & TERN_PKT_FORM_LONG) != 0;
}

static inline size_t tern_pkt_pn_len(uint8_t first)
{
	return (size_t)(first & TERN_PKT_PN_LEN_BITS) + 1;
}

static inline int tern_pkt_key_phase(uint8_t first)
{
	return (first & TERN_PKT_KEY_PHASE_BIT) != 0;
}

/* 0, or TERN_ERR_QUIC(PROTOCOL_VIOLATION) when the reserved bits of an
 * unprotected first byte are set (RFC 9000 §17.2 and §17.3.1: checked only
 * after packet and header protection are both removed). */
int tern_pkt_check_reserved(uint8_t first);

static inline int tern_version_is_supported(uint32_t version)
{
	return version == TERN_VERSION_1 || version == TERN_VERSION_2;
}

/* ---- parsing -------------------------------------------------------------- */

/* Parses the packet at the start of buf (len bytes left in the datagram).
 * short_dcid_len (0..20) is the length of the CIDs this endpoint issues, the
 * only way to find the end of a short header's DCID.
 *
 * Returns this packet's size inside the datagram (> 0), so a receiver walks
 * coalesced packets by advancing that many bytes (RFC 9000 §12.2); a short
 * header, a VN or a Retry always runs to the end of the datagram. Errors:
 *   TERN_ERR_TRUNCATED  the input ends inside the header, the token, the
 *                       Retry tag, or before the end the Length field names;
 *   TERN_ERR_MALFORMED  fixed bit clear (v1/v2), a CID longer than 20 bytes
 *                       (v1/v2 and VN), no room for the header-protection
 *                       sample (RFC 9001 §5.4.2), an empty Retry token, a VN
 *                       whose version list is empty or not a multiple of 4;
 *   TERN_ERR_VERSION    a long header with a version other than 0, 1 and 2:
 *                       first, version and the raw CID views are filled so
 *                       the endpoint can answer with VN (RFC 9000 §6.1;
 *                       the 1200-byte rule of §14.1 is the endpoint's);
 *   TERN_ERR_INVAL      short_dcid_len > 20 or len above INT_MAX.
 * Every failure means "drop this packet and the rest of the datagram". */
int tern_pkt_parse(const uint8_t *buf, size_t len, size_t short_dcid_len,
		   struct tern_pkt_hdr *hdr);

/* The i-th version of a parsed VN (i < vn_count). */
static inline uint32_t tern_vn_version(const struct tern_pkt_hdr *hdr, size_t i)
{
	return tern_get_u32(hdr->vn_versions + 4 * i);
}

/* ---- writing -------------------------------------------------------------- */

/* Writes an Initial, 0-RTT or Handshake long header for version 1 or 2: the
 * first byte (type bits for the version, reserved bits zero, pn length
 * bits), version, DCID, SCID, for an Initial the token, a 2-byte Length
 * field to fill with tern_pkt_patch_length() once the payload is known, and
 * the low pn_len (1..4) bytes of pn. Returns the pn offset (the header ends
 * pn_len bytes later), TERN_ERR_NOBUF, or TERN_ERR_INVAL (bad type, pn_len,
 * CID, or a token on a packet other than Initial). TERN_ERR_VERSION for any
 * other version. TERN_PKT_LONG_HDR_MAX_SIZE(token_len) is always enough. */
int tern_pkt_long_write(uint8_t *out, size_t cap, uint32_t version, enum tern_pkt_type type,
			const struct tern_cid *dcid, const struct tern_cid *scid,
			const uint8_t *token, size_t token_len, uint64_t pn, size_t pn_len);

/* Fills the Length field of a long header written by tern_pkt_long_write()
 * whose pn starts at pn_offset, for a packet of pkt_len bytes in total (AEAD
 * tag included): Length = pkt_len - pn_offset. TERN_ERR_INVAL when that
 * does not fit the reserved 2 bytes, when the packet is too short to hold
 * the header-protection sample (RFC 9001 §5.4.2: the encoder must pad), or
 * when no reserved Length field sits before pn_offset. */
int tern_pkt_patch_length(uint8_t *pkt, size_t pn_offset, size_t pkt_len);

/* Writes a 1-RTT short header: first byte (fixed bit, spin bit if spin,
 * key phase bit if key_phase, reserved bits zero, pn length bits), the DCID
 * and the low pn_len (1..4) bytes of pn. Returns the pn offset,
 * TERN_ERR_NOBUF or TERN_ERR_INVAL. */
int tern_pkt_short_write(uint8_t *out, size_t cap, const struct tern_cid *dcid, uint64_t pn,
			 size_t pn_len, int key_phase, int spin);

/* Builds a Version Negotiation packet (RFC 9000 §17.2.1). The caller passes
 * the CIDs already swapped: dcid is the SCID of the packet that triggered
 * it and scid its DCID (up to 255 bytes each, RFC 8999 §6). The first byte
 * is 0x80 | 0x40 | 6 random bits: §17.2.1 lets the unused bits be arbitrary
 * but asks servers to set 0x40 so the packet demultiplexes like QUIC
 * (RFC 7983). versions (n >= 1) are written big-endian in order. Returns
 * the packet length, TERN_ERR_NOBUF or TERN_ERR_INVAL. */
int tern_vn_build(uint8_t *out, size_t cap, const uint8_t *dcid, size_t dcid_len,
		  const uint8_t *scid, size_t scid_len, const uint32_t *versions, size_t n,
		  uint8_t unused_bits_random);

/* Writes a Retry packet (RFC 9000 §17.2.5) for version 1 or 2 up to, not
 * including, its integrity tag, which the crypto layer computes over the
 * pseudo-packet (RFC 9001 §5.8) and appends at the returned length; cap
 * must leave room for it. dcid is the client's SCID, scid the new CID the
 * server chose, token non-empty (§17.2.5.2). The unused low bits are set to
 * 1111, as in the RFC 9001 A.4 and RFC 9369 A.4 examples. Returns the length
 * written, TERN_ERR_NOBUF, TERN_ERR_INVAL or TERN_ERR_VERSION. */
int tern_retry_write(uint8_t *out, size_t cap, uint32_t version, const struct tern_cid *dcid,
		     const struct tern_cid *scid, const uint8_t *token, size_t token_len);

#endif
