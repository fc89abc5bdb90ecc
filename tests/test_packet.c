/* Tests for the packet module: packet numbers (RFC 9000 §17.1, A.2, A.3),
 * header parsing and writing against RFC 9001 Appendix A and RFC 9369
 * Appendix A, coalescing (§12.2), Version Negotiation and Retry. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>

#include "tern/packet.h"

/* ---- vectors, copied from the RFC text --------------------------------- */

/* RFC 9001 A.2: unprotected client Initial header, pn 2 in 4 bytes. */
#define V1_CLIENT_HDR "c300000001088394c8f03e5157080000449e00000002"
/* RFC 9001 A.3: unprotected server Initial header, pn 1 in 2 bytes. */
#define V1_SERVER_HDR "c1000000010008f067a5502a4262b50040750001"
/* RFC 9001 A.3: the protected server Initial, 135 bytes. */
#define V1_SERVER_PKT                                                      \
	"cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a" \
	"5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3" \
	"dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84" \
	"022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4" \
	"2158407dd074ee"
/* RFC 9001 A.4: Retry, token "token", then the integrity tag. */
#define V1_RETRY "ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba"
/* RFC 9001 A.5: ChaCha20 short header packet, empty DCID, pn 654360564 in
 * 3 bytes; unprotected header 4200bff4. */
#define V1_SHORT_PKT "4cfe4189655e5cd55c41f69080575d7999c25a5bfb"
#define V1_SHORT_HDR "4200bff4"

/* RFC 9369 A.2 .. A.4: the same packets in version 2. */
#define V2_CLIENT_HDR "d36b3343cf088394c8f03e5157080000449e00000002"
#define V2_SERVER_HDR "d16b3343cf0008f067a5502a4262b50040750001"
#define V2_SERVER_PKT                                                      \
	"dc6b3343cf0008f067a5502a4262b5004075d92faaf16f05d8a4398c47089698" \
	"baeea26b91eb761d9b89237bbf87263017915358230035f7fd3945d88965cf17" \
	"f9af6e16886c61bfc703106fbaf3cb4cfa52382dd16a393e42757507698075b2" \
	"c984c707f0a0812d8cd5a6881eaf21ceda98f4bd23f6fe1a3e2c43edd9ce7ca8" \
	"4bed8521e2e140"
#define V2_RETRY "cf6b3343cf0008f067a5502a4262b5746f6b656ec8646ce8bfe33952d955543665dcc7b6"

#define CLIENT_DCID "8394c8f03e515708"
#define SERVER_SCID "f067a5502a4262b5"

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex) / 2;
	cr_assert(n <= cap && strlen(hex) % 2 == 0);
	for (size_t i = 0; i < n; i++) {
		unsigned b;
		cr_assert(sscanf(hex + 2 * i, "%2x", &b) == 1);
		out[i] = (uint8_t)b;
	}
	return n;
}

static struct tern_cid cid_hex(const char *hex)
{
	struct tern_cid c;
	uint8_t b[TERN_MAX_CID_LEN];
	size_t n = unhex(hex, b, sizeof(b));
	cr_assert_eq(tern_cid_set(&c, b, n), 0);
	return c;
}

static const struct tern_cid empty_cid = {0};

/* A header followed by zero bytes up to total, as if the payload followed. */
static size_t hdr_padded(const char *hex, uint8_t *buf, size_t total)
{
	memset(buf, 0, total);
	size_t n = unhex(hex, buf, total);
	cr_assert_leq(n, total);
	return total;
}

/* ---- packet numbers ------------------------------------------------------ */

Test(pn, rfc9000_a2_encode_len_examples)
{
	/* "0xac5c02 with largest acked 0xabe8b3 -> 16 bits" */
	cr_assert_eq(tern_pn_encode_len(0xac5c02, 0xabe8b3, 1), 2);
	/* "0xace8fe -> 24 bits" */
	cr_assert_eq(tern_pn_encode_len(0xace8fe, 0xabe8b3, 1), 3);
}

Test(pn, encode_len_boundaries)
{
	/* unacked must stay below 2^(8n-1), §17.1's "more than twice". */
	cr_assert_eq(tern_pn_encode_len(1000 + 127, 1000, 1), 1);
	cr_assert_eq(tern_pn_encode_len(1000 + 128, 1000, 1), 2);
	cr_assert_eq(tern_pn_encode_len(1000 + 32767, 1000, 1), 2);
	cr_assert_eq(tern_pn_encode_len(1000 + 32768, 1000, 1), 3);
	cr_assert_eq(tern_pn_encode_len(1000 + 0x7fffff, 1000, 1), 3);
	cr_assert_eq(tern_pn_encode_len(1000 + 0x800000, 1000, 1), 4);
	cr_assert_eq(tern_pn_encode_len(TERN_PN_MAX, 0, 1), 4);
	/* Nothing acked: the distance is full_pn + 1. */
	cr_assert_eq(tern_pn_encode_len(0, 0, 0), 1);
	cr_assert_eq(tern_pn_encode_len(126, 0, 0), 1);
	cr_assert_eq(tern_pn_encode_len(127, 0, 0), 2);
	cr_assert_eq(tern_pn_encode_len(32766, 0, 0), 2);
	cr_assert_eq(tern_pn_encode_len(32767, 0, 0), 3);
	cr_assert_eq(tern_pn_encode_len(TERN_PN_MAX, 0, 0), 4);
	/* A caller bug (pn not above largest acked) gets the safe maximum. */
	cr_assert_eq(tern_pn_encode_len(5, 5, 1), 4);
	cr_assert_eq(tern_pn_encode_len(4, 5, 1), 4);
}

Test(pn, rfc9000_a3_decode_example)
{
	cr_assert_eq(tern_pn_decode(0xa82f30ea, 0x9b32, 16), 0xa82f9b32);
}

Test(pn, rfc9001_a5_packet_number)
{
	/* A.5 sends 654360564 in 3 bytes; a receiver that saw the previous
	 * packet recovers it, and so does one that is a few behind. */
	uint64_t trunc = tern_pn_read((const uint8_t[]){0x00, 0xbf, 0xf4}, 3);
	cr_assert_eq(trunc, 0x00bff4);
	cr_assert_eq(tern_pn_decode(654360563, trunc, 24), 654360564);
	cr_assert_eq(tern_pn_decode(654360564 - 1000, trunc, 24), 654360564);
}

Test(pn, decode_window_edges)
{
	/* 8 bits: win 256, hwin 128; the window is (expected - 128,
	 * expected + 128]. expected 0x1090: candidate 0x1010 sits exactly
	 * at expected - hwin, outside, so it moves up a window. */
	cr_assert_eq(tern_pn_decode(0x108f, 0x10, 8), 0x1110);
	cr_assert_eq(tern_pn_decode(0x108f, 0x11, 8), 0x1011);
	/* expected 0x1010: candidate 0x1090 == expected + hwin is inside;
	 * 0x1091 is past it and moves down a window. */
	cr_assert_eq(tern_pn_decode(0x100f, 0x90, 8), 0x1090);
	cr_assert_eq(tern_pn_decode(0x100f, 0x91, 8), 0x0f91);
	/* Same edges with 16 bits (hwin 0x8000). */
	cr_assert_eq(tern_pn_decode(0x1238fff, 0x1000, 16), 0x1241000);
	cr_assert_eq(tern_pn_decode(0x1238fff, 0x1001, 16), 0x1231001);
	cr_assert_eq(tern_pn_decode(0x1230fff, 0x9000, 16), 0x1239000);
	cr_assert_eq(tern_pn_decode(0x1230fff, 0x9001, 16), 0x1229001);
}

Test(pn, decode_near_zero_never_wraps)
{
	cr_assert_eq(tern_pn_decode(TERN_PN_NONE, 0, 8), 0);
	cr_assert_eq(tern_pn_decode(TERN_PN_NONE, 0xff, 8), 0xff);
	cr_assert_eq(tern_pn_decode(TERN_PN_NONE, 0xffffffff, 32), 0xffffffff);
	cr_assert_eq(tern_pn_decode(0, 0xff, 8), 0xff);
	cr_assert_eq(tern_pn_decode(0, 0x01, 8), 0x01);
	cr_assert_eq(tern_pn_decode(126, 0xff, 8), 0xff);
	cr_assert_eq(tern_pn_decode(127, 0x00, 8), 0x100);
}

Test(pn, decode_near_2_62_never_exceeds)
{
	const uint64_t max = TERN_PN_MAX;
	/* expected = max: the candidate max itself decodes. */
	cr_assert_eq(tern_pn_decode(max - 1, 0xff, 8), max);
	/* RFC A.3: cand + win would pass 2^62, so no +win. */
	cr_assert_eq(tern_pn_decode(max - 1, 0x00, 8), max - 0xff);
	/* expected = 2^62 (largest = max): only candidates below it exist. */
	cr_assert_eq(tern_pn_decode(max, 0x05, 8), (max & ~UINT64_C(0xff)) | 0x05);
	cr_assert_eq(tern_pn_decode(max, 0xff, 8), max);
	for (unsigned nbits = 8; nbits <= 32; nbits += 8) {
		uint64_t mask = (UINT64_C(1) << nbits) - 1;
		static const uint64_t truncs[] = {0, 1, 0x7f, 0x80, 0x81, 0xff, 0x7fff,
						  0x8000, 0xffff, 0x7fffff, 0xffffff,
						  0x7fffffff, 0x80000000, 0xffffffff};
		for (size_t i = 0; i < sizeof(truncs) / sizeof(truncs[0]); i++) {
			for (uint64_t l = max - 3; l <= max; l++) {
				uint64_t r = tern_pn_decode(l, truncs[i], nbits);
				cr_assert_leq(r, max, "largest %llx trunc %llx nbits %u",
					      (unsigned long long)l,
					      (unsigned long long)truncs[i], nbits);
				cr_assert_eq(r & mask, truncs[i] & mask);
			}
		}
	}
	/* A largest_pn that cannot exist is clamped, not trusted. */
	cr_assert_leq(tern_pn_decode(UINT64_MAX - 1, 0x12, 8), max);
}

/* The decoded value is congruent to the truncated one and, whenever the
 * whole window fits in [0, 2^62), lies in (expected - hwin, expected + hwin]. */
Test(pn, decode_window_property)
{
	static const uint64_t largests[] = {0, 1, 100, 127, 128, 255, 256, 1000, 65535,
					    0xabcdef, 0xa82f30ea, UINT64_C(1) << 40};
	for (size_t i = 0; i < sizeof(largests) / sizeof(largests[0]); i++) {
		for (unsigned nbits = 8; nbits <= 16; nbits += 8) {
			uint64_t win = UINT64_C(1) << nbits, hwin = win / 2;
			uint64_t e = largests[i] + 1;
			for (uint64_t t = 0; t < win; t++) {
				uint64_t r = tern_pn_decode(largests[i], t, nbits);
				cr_assert_eq(r & (win - 1), t);
				if (e >= hwin)
					cr_assert(r + hwin > e && r <= e + hwin,
						  "largest %llu t %llu -> %llu",
						  (unsigned long long)largests[i],
						  (unsigned long long)t, (unsigned long long)r);
				else
					cr_assert_lt(r, win, "no wrap below 0");
			}
		}
	}
}

/* What the sender picks with tern_pn_encode_len() the receiver recovers,
 * as long as it has seen the largest acknowledged packet. */
Test(pn, encode_len_then_decode_round_trip)
{
	static const uint64_t acked[] = {0, 1, 200, 0xabe8b3, 0xffffff, UINT64_C(1) << 33};
	static const uint64_t gaps[] = {1, 2, 127, 128, 129, 32767, 32768, 32769,
					0x7fffff, 0x800000, 0x800001, 0x7fffffff};
	for (size_t i = 0; i < sizeof(acked) / sizeof(acked[0]); i++) {
		for (size_t j = 0; j < sizeof(gaps) / sizeof(gaps[0]); j++) {
			uint64_t full = acked[i] + gaps[j];
			size_t n = tern_pn_encode_len(full, acked[i], 1);
			cr_assert(n >= 1 && n <= 4);
			uint64_t mask = (UINT64_C(1) << (8 * n)) - 1;
			/* Any receiver state between acked and full - 1. */
			cr_assert_eq(tern_pn_decode(acked[i], full & mask, 8 * (unsigned)n), full);
			cr_assert_eq(tern_pn_decode(full - 1, full & mask, 8 * (unsigned)n), full);
		}
	}
	/* Nothing acked yet: the receiver starts from TERN_PN_NONE. */
	for (uint64_t full = 0; full < 70000; full += 97) {
		size_t n = tern_pn_encode_len(full, 0, 0);
		uint64_t mask = (UINT64_C(1) << (8 * n)) - 1;
		cr_assert_eq(tern_pn_decode(TERN_PN_NONE, full & mask, 8 * (unsigned)n), full);
	}
}

Test(pn, decode_odd_bit_counts_are_clamped)
{
	cr_assert_eq(tern_pn_decode(0x1000, 0x1001, 0), 0x1001);
	cr_assert_eq(tern_pn_decode(0x1000, 0x1001, 64), 0x1001);
	cr_assert_eq(tern_pn_decode(0xa82f30ea, 0xa82f9b32, 99), 0xa82f9b32);
}

/* ---- first-byte helpers ------------------------------------------------- */

Test(first_byte, reserved_bits_and_fields)
{
	int pv = TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION);
	cr_assert_eq(tern_pkt_check_reserved(0xc3), 0);
	cr_assert_eq(tern_pkt_check_reserved(0xf3), 0);
	cr_assert_eq(tern_pkt_check_reserved(0xc4), pv);
	cr_assert_eq(tern_pkt_check_reserved(0xc8), pv);
	cr_assert_eq(tern_err_quic_code(tern_pkt_check_reserved(0xcc)),
		     TERN_QUIC_PROTOCOL_VIOLATION);
	cr_assert_eq(tern_pkt_check_reserved(0x42), 0);
	cr_assert_eq(tern_pkt_check_reserved(0x67), 0, "spin and key phase are not reserved");
	cr_assert_eq(tern_pkt_check_reserved(0x48), pv);
	cr_assert_eq(tern_pkt_check_reserved(0x50), pv);

	cr_assert_eq(tern_pkt_pn_len(0xc3), 4);
	cr_assert_eq(tern_pkt_pn_len(0xc1), 2);
	cr_assert_eq(tern_pkt_pn_len(0x42), 3);
	cr_assert_eq(tern_pkt_pn_len(0x40), 1);
	cr_assert_eq(tern_pkt_key_phase(0x44), 1);
	cr_assert_eq(tern_pkt_key_phase(0x43), 0);
	cr_assert(tern_pkt_is_long(0x80));
	cr_assert_not(tern_pkt_is_long(0x7f));
	cr_assert_eq(tern_pn_read((const uint8_t[]){0x00, 0x00, 0x00, 0x02}, 4), 2);
	cr_assert_eq(tern_pn_read((const uint8_t[]){0xfe, 0xdc, 0xba, 0x98}, 4), 0xfedcba98);
	cr_assert_eq(tern_pn_read((const uint8_t[]){0x9b, 0x32}, 2), 0x9b32);
}

/* ---- parsing the RFC vectors --------------------------------------------- */

static void check_cid(const struct tern_cid *c, const uint8_t *raw, size_t raw_len,
		      const char *hex)
{
	uint8_t want[TERN_MAX_CID_LEN];
	size_t n = unhex(hex, want, sizeof(want));
	cr_assert_eq(c->len, n);
	cr_assert_arr_eq(c->bytes, want, n);
	cr_assert_eq(raw_len, n);
	if (n)
		cr_assert_arr_eq(raw, want, n);
}

static void check_client_initial(const char *hdr_hex, uint32_t version, uint8_t first)
{
	uint8_t buf[1200];
	size_t len = hdr_padded(hdr_hex, buf, sizeof(buf));
	struct tern_pkt_hdr h;
	cr_assert_eq(tern_pkt_parse(buf, len, 8, &h), 1200);
	cr_assert_eq(h.first, first);
	cr_assert_eq(h.type, TERN_PKT_INITIAL);
	cr_assert_eq(h.version, version);
	check_cid(&h.dcid, h.dcid_raw, h.dcid_raw_len, CLIENT_DCID);
	check_cid(&h.scid, h.scid_raw, h.scid_raw_len, "");
	cr_assert_eq(h.dcid_raw, buf + 6);
	cr_assert_null(h.token);
	cr_assert_eq(h.token_len, 0);
	cr_assert_eq(h.pn_offset, 18);
	cr_assert_eq(h.length, 1182); /* 0x449e */
	cr_assert_eq(h.pkt_len, 1200);
	cr_assert_null(h.retry_tag);
	cr_assert_null(h.vn_versions);
	/* The header is unprotected here, so the pn can be read back. */
	cr_assert_eq(tern_pkt_pn_len(h.first), 4);
	cr_assert_eq(tern_pn_read(buf + h.pn_offset, 4), 2);
	cr_assert_eq(tern_pkt_check_reserved(h.first), 0);
}

Test(parse, rfc9001_a2_client_initial)
{
	check_client_initial(V1_CLIENT_HDR, TERN_VERSION_1, 0xc3);
}

Test(parse, rfc9369_a2_client_initial_v2)
{
	check_client_initial(V2_CLIENT_HDR, TERN_VERSION_2, 0xd3);
}

static void check_server_initial(const uint8_t *buf, size_t len, uint32_t version)
{
	struct tern_pkt_hdr h;
	cr_assert_eq(len, 135);
	cr_assert_eq(tern_pkt_parse(buf, len, 0, &h), 135);
	cr_assert_eq(h.type, TERN_PKT_INITIAL);
	cr_assert_eq(h.version, version);
	check_cid(&h.dcid, h.dcid_raw, h.dcid_raw_len, "");
	check_cid(&h.scid, h.scid_raw, h.scid_raw_len, SERVER_SCID);
	cr_assert_eq(h.scid_raw, buf + 7);
	cr_assert_eq(h.token_len, 0);
	cr_assert_eq(h.pn_offset, 18);
	cr_assert_eq(h.length, 117); /* 0x4075 */
	cr_assert_eq(h.pkt_len, 135);
}

Test(parse, rfc9001_a3_server_initial_unprotected_and_protected)
{
	uint8_t buf[135];
	check_server_initial(buf, hdr_padded(V1_SERVER_HDR, buf, sizeof(buf)), TERN_VERSION_1);
	cr_assert_eq(tern_pn_read(buf + 18, tern_pkt_pn_len(buf[0])), 1);
	/* The parser reads only unprotected fields, so the protected packet
	 * parses the same (first byte cf: the low 4 bits are masked). */
	check_server_initial(buf, unhex(V1_SERVER_PKT, buf, sizeof(buf)), TERN_VERSION_1);
	cr_assert_eq(buf[0], 0xcf);
}

Test(parse, rfc9369_a3_server_initial_v2)
{
	uint8_t buf[135];
	check_server_initial(buf, hdr_padded(V2_SERVER_HDR, buf, sizeof(buf)), TERN_VERSION_2);
	check_server_initial(buf, unhex(V2_SERVER_PKT, buf, sizeof(buf)), TERN_VERSION_2);
	cr_assert_eq(buf[0], 0xdc);
}

static void check_retry(const char *hex, uint32_t version, const char *tag_hex)
{
	uint8_t buf[64], tag[16];
	size_t len = unhex(hex, buf, sizeof(buf));
	unhex(tag_hex, tag, sizeof(tag));
	struct tern_pkt_hdr h;
	cr_assert_eq(len, 36);
	cr_assert_eq(tern_pkt_parse(buf, len, 8, &h), 36);
	cr_assert_eq(h.type, TERN_PKT_RETRY);
	cr_assert_eq(h.version, version);
	check_cid(&h.dcid, h.dcid_raw, h.dcid_raw_len, "");
	check_cid(&h.scid, h.scid_raw, h.scid_raw_len, SERVER_SCID);
	cr_assert_eq(h.token, buf + 15);
	cr_assert_eq(h.token_len, 5);
	cr_assert_arr_eq(h.token, "token", 5);
	cr_assert_eq(h.retry_tag, buf + 20);
	cr_assert_arr_eq(h.retry_tag, tag, 16);
	cr_assert_eq(h.pn_offset, 0);
	cr_assert_eq(h.pkt_len, 36);
}

Test(parse, rfc9001_a4_retry)
{
	check_retry(V1_RETRY, TERN_VERSION_1, "04a265ba2eff4d829058fb3f0f2496ba");
}

Test(parse, rfc9369_a4_retry_v2)
{
	check_retry(V2_RETRY, TERN_VERSION_2, "c8646ce8bfe33952d955543665dcc7b6");
}

Test(parse, rfc9001_a5_short_header)
{
	uint8_t buf[21];
	size_t len = unhex(V1_SHORT_PKT, buf, sizeof(buf));
	struct tern_pkt_hdr h;
	cr_assert_eq(tern_pkt_parse(buf, len, 0, &h), 21);
	cr_assert_eq(h.type, TERN_PKT_1RTT);
	cr_assert_eq(h.first, 0x4c);
	cr_assert_eq(h.version, 0);
	cr_assert_eq(h.dcid.len, 0);
	cr_assert_eq(h.pn_offset, 1);
	cr_assert_eq(h.length, 20);
	cr_assert_eq(h.pkt_len, 21);
	/* Exactly pn_offset + 4 + 16 bytes: the smallest packet with a sample. */
	cr_assert_eq(h.pn_offset + TERN_PKT_SAMPLE_SKIP + TERN_PKT_SAMPLE_LEN, len);
}

/* v2 renumbers the type bits (RFC 9369 §3.2): the same first byte names a
 * different packet type in each version. */
Test(parse, type_bits_per_version)
{
	static const struct {
		uint8_t first;
		enum tern_pkt_type v1, v2;
	} t[] = {
		{0xc0, TERN_PKT_INITIAL, TERN_PKT_RETRY},
		{0xd0, TERN_PKT_0RTT, TERN_PKT_INITIAL},
		{0xe0, TERN_PKT_HANDSHAKE, TERN_PKT_0RTT},
		{0xf0, TERN_PKT_RETRY, TERN_PKT_HANDSHAKE},
	};
	for (size_t i = 0; i < 4; i++) {
		for (int v = 0; v < 2; v++) {
			uint8_t buf[64] = {0};
			uint32_t version = v ? TERN_VERSION_2 : TERN_VERSION_1;
			enum tern_pkt_type want = v ? t[i].v2 : t[i].v1;
			buf[0] = t[i].first;
			tern_put_u32(buf + 1, version);
			/* dcid 0, scid 0, then token length 0 where an Initial
			 * needs it, then Length 20; a Retry reads the rest as
			 * token + tag. */
			size_t off = 7;
			if (want == TERN_PKT_INITIAL)
				buf[off++] = 0;
			buf[off++] = 20;
			size_t len = want == TERN_PKT_RETRY ? 40 : off + 20;
			struct tern_pkt_hdr h;
			cr_assert_eq(tern_pkt_parse(buf, len, 0, &h), (int)len);
			cr_assert_eq(h.type, want, "first %02x v%d", t[i].first, v + 1);
			if (want != TERN_PKT_RETRY)
				cr_assert_eq(h.pn_offset, off);
		}
	}
}

/* ---- writers reproduce the RFC headers ----------------------------------- */

static void write_initial(uint32_t version, const char *dcid, const char *scid, uint64_t pn,
			  size_t pn_len, size_t pkt_len, const char *want_hex)
{
	uint8_t buf[64], want[64];
	size_t n = unhex(want_hex, want, sizeof(want));
	struct tern_cid d = cid_hex(dcid), s = cid_hex(scid);
	memset(buf, 0xee, sizeof(buf));
	int off = tern_pkt_long_write(buf, sizeof(buf), version, TERN_PKT_INITIAL, &d, &s, NULL,
				      0, pn, pn_len);
	cr_assert_eq(off, 18);
	cr_assert_eq((size_t)off + pn_len, n);
	cr_assert_eq(buf[n], 0xee, "wrote past the header");
	/* Length is reserved as 0x4000 until patched. */
	cr_assert_eq(buf[16], 0x40);
	cr_assert_eq(buf[17], 0x00);
	cr_assert_eq(tern_pkt_patch_length(buf, (size_t)off, pkt_len), 0);
	cr_assert_arr_eq(buf, want, n);
}

Test(write, rfc9001_a2_client_initial)
{
	write_initial(TERN_VERSION_1, CLIENT_DCID, "", 2, 4, 1200, V1_CLIENT_HDR);
}

Test(write, rfc9001_a3_server_initial)
{
	write_initial(TERN_VERSION_1, "", SERVER_SCID, 1, 2, 135, V1_SERVER_HDR);
}

Test(write, rfc9369_a2_client_initial_v2)
{
	write_initial(TERN_VERSION_2, CLIENT_DCID, "", 2, 4, 1200, V2_CLIENT_HDR);
}

Test(write, rfc9369_a3_server_initial_v2)
{
	write_initial(TERN_VERSION_2, "", SERVER_SCID, 1, 2, 135, V2_SERVER_HDR);
}

static void write_retry(uint32_t version, const char *want_hex)
{
	uint8_t buf[64], want[64];
	size_t n = unhex(want_hex, want, sizeof(want));
	struct tern_cid s = cid_hex(SERVER_SCID);
	int len = tern_retry_write(buf, sizeof(buf), version, &empty_cid, &s,
				   (const uint8_t *)"token", 5);
	cr_assert_eq(len, 20);
	cr_assert_arr_eq(buf, want, 20);
	/* The crypto layer appends the tag; the result parses back. */
	memcpy(buf + len, want + 20, 16);
	struct tern_pkt_hdr h;
	cr_assert_eq(tern_pkt_parse(buf, n, 0, &h), 36);
	cr_assert_eq(h.type, TERN_PKT_RETRY);
	cr_assert_eq(h.version, version);
	/* Room for the tag is part of the contract. */
	cr_assert_eq(tern_retry_write(buf, 35, version, &empty_cid, &s,
				      (const uint8_t *)"token", 5), TERN_ERR_NOBUF);
	cr_assert_eq(tern_retry_write(buf, 36, version, &empty_cid, &s,
				      (const uint8_t *)"token", 5), 20);
}

Test(write, rfc9001_a4_retry)
{
	write_retry(TERN_VERSION_1, V1_RETRY);
}

Test(write, rfc9369_a4_retry_v2)
{
	write_retry(TERN_VERSION_2, V2_RETRY);
}

Test(write, rfc9001_a5_short_header)
{
	uint8_t buf[8], want[4];
	memset(buf, 0xee, sizeof(buf));
	unhex(V1_SHORT_HDR, want, sizeof(want));
	cr_assert_eq(tern_pkt_short_write(buf, sizeof(buf), &empty_cid, 654360564, 3, 0, 0), 1);
	cr_assert_arr_eq(buf, want, 4);
	cr_assert_eq(buf[4], 0xee);
}

Test(write, short_header_bits_and_cid)
{
	uint8_t buf[32];
	struct tern_cid d = cid_hex("0102030405060708");
	cr_assert_eq(tern_pkt_short_write(buf, sizeof(buf), &d, 0x1234, 2, 1, 1), 9);
	cr_assert_eq(buf[0], 0x40 | 0x20 | 0x04 | 0x01);
	cr_assert_arr_eq(buf + 1, d.bytes, 8);
	cr_assert_eq(buf[9], 0x12);
	cr_assert_eq(buf[10], 0x34);
	cr_assert_eq(tern_pkt_short_write(buf, sizeof(buf), &d, 0x1234, 1, 1, 0), 9);
	cr_assert_eq(buf[0], 0x44);
	cr_assert_eq(buf[9], 0x34);
	cr_assert_eq(tern_pkt_short_write(buf, sizeof(buf), &d, 0xa1b2c3d4e5, 4, 0, 1), 9);
	cr_assert_eq(buf[0], 0x63);
	cr_assert_eq(tern_pn_read(buf + 9, 4), 0xb2c3d4e5);
	cr_assert_eq(tern_pkt_check_reserved(buf[0]), 0);

	/* Round trip through the parser with a sample's worth of payload. */
	memset(buf + 13, 0, sizeof(buf) - 13);
	struct tern_pkt_hdr h;
	cr_assert_eq(tern_pkt_parse(buf, 9 + 20, 8, &h), 29);
	cr_assert(tern_cid_equal(&h.dcid, &d));
	cr_assert_eq(h.pn_offset, 9);
}

Test(write, short_header_errors)
{
	uint8_t buf[32];
	struct tern_cid d = cid_hex("0102030405060708");
	for (size_t cap = 0; cap < 1 + 8 + 4; cap++)
		cr_assert_eq(tern_pkt_short_write(buf, cap, &d, 1, 4, 0, 0), TERN_ERR_NOBUF);
	cr_assert_eq(tern_pkt_short_write(buf, 13, &d, 1, 4, 0, 0), 9);
	cr_assert_eq(tern_pkt_short_write(buf, sizeof(buf), &d, 1, 0, 0, 0), TERN_ERR_INVAL);
	cr_assert_eq(tern_pkt_short_write(buf, sizeof(buf), &d, 1, 5, 0, 0), TERN_ERR_INVAL);
	d.len = 21;
	cr_assert_eq(tern_pkt_short_write(buf, sizeof(buf), &d, 1, 1, 0, 0), TERN_ERR_INVAL);
	cr_assert_eq(tern_pkt_short_write(buf, sizeof(buf), NULL, 1, 1, 0, 0), TERN_ERR_INVAL);
}

/* Every long type, both versions, every pn length: write, pad, parse back. */
Test(write, long_header_round_trip)
{
	static const enum tern_pkt_type types[] = {TERN_PKT_INITIAL, TERN_PKT_0RTT,
						   TERN_PKT_HANDSHAKE};
	static const uint32_t versions[] = {TERN_VERSION_1, TERN_VERSION_2};
	struct tern_cid d = cid_hex("00112233445566778899aabbccddeeff00112233");
	struct tern_cid s = cid_hex("a0a1a2a3");
	static const uint8_t token[70] = {1, 2, 3};
	for (size_t v = 0; v < 2; v++)
		for (size_t t = 0; t < 3; t++)
			for (size_t pn_len = 1; pn_len <= 4; pn_len++) {
				uint8_t buf[256];
				size_t tok = types[t] == TERN_PKT_INITIAL ? sizeof(token) : 0;
				uint64_t pn = 0x0123456789abcdefULL & TERN_PN_MAX;
				memset(buf, 0, sizeof(buf));
				int off = tern_pkt_long_write(buf, sizeof(buf), versions[v],
							      types[t], &d, &s, tok ? token : NULL,
							      tok, pn, pn_len);
				size_t want_off = 7 + 20 + 4 + 2 + (tok ? 2 + tok : 0);
				cr_assert_eq(off, (int)want_off);
				size_t total = (size_t)off + 100;
				cr_assert_eq(tern_pkt_patch_length(buf, (size_t)off, total), 0);
				struct tern_pkt_hdr h;
				cr_assert_eq(tern_pkt_parse(buf, sizeof(buf), 0, &h), (int)total);
				cr_assert_eq(h.type, types[t]);
				cr_assert_eq(h.version, versions[v]);
				cr_assert(tern_cid_equal(&h.dcid, &d));
				cr_assert(tern_cid_equal(&h.scid, &s));
				cr_assert_eq(h.token_len, tok);
				if (tok)
					cr_assert_arr_eq(h.token, token, tok);
				cr_assert_eq(h.pn_offset, (size_t)off);
				cr_assert_eq(h.length, 100);
				cr_assert_eq(tern_pkt_pn_len(h.first), pn_len);
				cr_assert_eq(tern_pkt_check_reserved(h.first), 0);
				uint64_t mask = (UINT64_C(1) << (8 * pn_len)) - 1;
				cr_assert_eq(tern_pn_read(buf + off, pn_len), pn & mask);
			}
}

Test(write, long_header_errors)
{
	uint8_t buf[128];
	struct tern_cid d = cid_hex(CLIENT_DCID);
	const uint8_t tok[5] = "token";
	/* 1+4+1+8+1+0 + token len 1 + token 5 + Length 2 + pn 4 = 27 */
	for (size_t cap = 0; cap < 27; cap++)
		cr_assert_eq(tern_pkt_long_write(buf, cap, TERN_VERSION_1, TERN_PKT_INITIAL, &d,
						 &empty_cid, tok, 5, 0, 4),
			     TERN_ERR_NOBUF, "cap %zu", cap);
	cr_assert_eq(tern_pkt_long_write(buf, 27, TERN_VERSION_1, TERN_PKT_INITIAL, &d,
					 &empty_cid, tok, 5, 0, 4), 23);
	cr_assert_eq(tern_pkt_long_write(buf, sizeof(buf), 0x12345678, TERN_PKT_INITIAL, &d,
					 &empty_cid, NULL, 0, 0, 1), TERN_ERR_VERSION);
	cr_assert_eq(tern_pkt_long_write(buf, sizeof(buf), 0, TERN_PKT_INITIAL, &d, &empty_cid,
					 NULL, 0, 0, 1), TERN_ERR_VERSION);
	static const enum tern_pkt_type bad_types[] = {TERN_PKT_RETRY, TERN_PKT_1RTT, TERN_PKT_VN,
						       (enum tern_pkt_type)42};
	for (size_t i = 0; i < 4; i++)
		cr_assert_eq(tern_pkt_long_write(buf, sizeof(buf), TERN_VERSION_1, bad_types[i], &d,
						 &empty_cid, NULL, 0, 0, 1), TERN_ERR_INVAL);
	cr_assert_eq(tern_pkt_long_write(buf, sizeof(buf), TERN_VERSION_1, TERN_PKT_HANDSHAKE, &d,
					 &empty_cid, tok, 5, 0, 1), TERN_ERR_INVAL,
		     "only Initial carries a token");
	cr_assert_eq(tern_pkt_long_write(buf, sizeof(buf), TERN_VERSION_1, TERN_PKT_INITIAL, &d,
					 &empty_cid, NULL, 5, 0, 1), TERN_ERR_INVAL);
	cr_assert_eq(tern_pkt_long_write(buf, sizeof(buf), TERN_VERSION_1, TERN_PKT_INITIAL, &d,
					 &empty_cid, NULL, 0, 0, 0), TERN_ERR_INVAL);
	cr_assert_eq(tern_pkt_long_write(buf, sizeof(buf), TERN_VERSION_1, TERN_PKT_INITIAL, &d,
					 &empty_cid, NULL, 0, 0, 5), TERN_ERR_INVAL);
	struct tern_cid big = d;
	big.len = 21;
	cr_assert_eq(tern_pkt_long_write(buf, sizeof(buf), TERN_VERSION_1, TERN_PKT_INITIAL, &big,
					 &empty_cid, NULL, 0, 0, 1), TERN_ERR_INVAL);
	cr_assert_eq(tern_pkt_long_write(buf, sizeof(buf), TERN_VERSION_1, TERN_PKT_INITIAL, &d,
					 &big, NULL, 0, 0, 1), TERN_ERR_INVAL);
	cr_assert_eq(tern_pkt_long_write(buf, sizeof(buf), TERN_VERSION_1, TERN_PKT_INITIAL, NULL,
					 &empty_cid, NULL, 0, 0, 1), TERN_ERR_INVAL);
	/* A token no varint can count is INVAL; a large one NOBUF. */
	cr_assert_eq(tern_pkt_long_write(buf, sizeof(buf), TERN_VERSION_1, TERN_PKT_INITIAL, &d,
					 &empty_cid, tok, SIZE_MAX - 3, 0, 1), TERN_ERR_INVAL);
	cr_assert_eq(tern_pkt_long_write(buf, sizeof(buf), TERN_VERSION_1, TERN_PKT_INITIAL, &d,
					 &empty_cid, tok, 1u << 20, 0, 1), TERN_ERR_NOBUF);
	/* The worst-case macro is enough. */
	struct tern_cid d20 = cid_hex("00112233445566778899aabbccddeeff00112233");
	uint8_t big_tok[300] = {0};
	uint8_t out[TERN_PKT_LONG_HDR_MAX_SIZE(300)];
	int off = tern_pkt_long_write(out, sizeof(out), TERN_VERSION_2, TERN_PKT_INITIAL, &d20,
				      &d20, big_tok, sizeof(big_tok), 0, 4);
	cr_assert_eq(off, 1 + 4 + 21 + 21 + 2 + 300 + 2);
}

Test(write, patch_length_rules)
{
	uint8_t buf[64];
	struct tern_cid d = cid_hex(CLIENT_DCID);
	int off = tern_pkt_long_write(buf, sizeof(buf), TERN_VERSION_1, TERN_PKT_HANDSHAKE, &d,
				      &empty_cid, NULL, 0, 0, 1);
	cr_assert_eq(off, 17);
	/* RFC 9001 §5.4.2: Length must cover pn + 4 + 16-byte sample. */
	cr_assert_eq(tern_pkt_patch_length(buf, 17, 17 + 19), TERN_ERR_INVAL);
	cr_assert_eq(tern_pkt_patch_length(buf, 17, 17 + 20), 0);
	cr_assert_eq(buf[15], 0x40);
	cr_assert_eq(buf[16], 20);
	cr_assert_eq(tern_pkt_patch_length(buf, 17, 17 + 0x3fff), 0);
	cr_assert_eq(buf[15], 0x7f);
	cr_assert_eq(buf[16], 0xff);
	cr_assert_eq(tern_pkt_patch_length(buf, 17, 17 + 0x4000), TERN_ERR_INVAL);
	cr_assert_eq(tern_pkt_patch_length(buf, 17, 10), TERN_ERR_INVAL);
	cr_assert_eq(tern_pkt_patch_length(buf, 8, 100), TERN_ERR_INVAL);
	cr_assert_eq(tern_pkt_patch_length(NULL, 17, 100), TERN_ERR_INVAL);
	/* No reserved 2-byte varint before the pn: refuse to scribble. */
	cr_assert_eq(tern_pkt_patch_length(buf, 16, 100), TERN_ERR_INVAL);
}

Test(write, retry_errors)
{
	uint8_t buf[128];
	struct tern_cid s = cid_hex(SERVER_SCID);
	cr_assert_eq(tern_retry_write(buf, sizeof(buf), TERN_VERSION_1, &empty_cid, &s,
				      (const uint8_t *)"t", 0), TERN_ERR_INVAL);
	cr_assert_eq(tern_retry_write(buf, sizeof(buf), TERN_VERSION_1, &empty_cid, &s, NULL, 3),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_retry_write(buf, sizeof(buf), 0xff00001d, &empty_cid, &s,
				      (const uint8_t *)"t", 1), TERN_ERR_VERSION);
	struct tern_cid big = s;
	big.len = 21;
	cr_assert_eq(tern_retry_write(buf, sizeof(buf), TERN_VERSION_1, &big, &s,
				      (const uint8_t *)"t", 1), TERN_ERR_INVAL);
	for (size_t cap = 0; cap < 15 + 1 + 16; cap++)
		cr_assert_eq(tern_retry_write(buf, cap, TERN_VERSION_1, &empty_cid, &s,
					      (const uint8_t *)"t", 1), TERN_ERR_NOBUF);
	uint8_t out[TERN_RETRY_MAX_SIZE(7)];
	cr_assert_eq(tern_retry_write(out, sizeof(out), TERN_VERSION_2, &s, &s,
				      (const uint8_t *)"abcdefg", 7), 1 + 4 + 1 + 8 + 1 + 8 + 7);
	cr_assert_eq(out[0], 0xcf);
}

/* ---- coalesced datagrams (RFC 9000 §12.2) --------------------------------- */

/* Server -> client: the RFC 9001 A.3 Initial, a Handshake packet written
 * here, and the A.5 1-RTT packet, all to the client's empty CID. */
Test(coalesced, initial_handshake_1rtt)
{
	uint8_t dgram[512];
	size_t len = unhex(V1_SERVER_PKT, dgram, sizeof(dgram));
	struct tern_cid s = cid_hex(SERVER_SCID);
	int off = tern_pkt_long_write(dgram + len, sizeof(dgram) - len, TERN_VERSION_1,
				      TERN_PKT_HANDSHAKE, &empty_cid, &s, NULL, 0, 0, 2);
	cr_assert_eq(off, 17);
	memset(dgram + len + off, 0xab, 50 - (size_t)off);
	cr_assert_eq(tern_pkt_patch_length(dgram + len, (size_t)off, 50), 0);
	len += 50;
	len += unhex(V1_SHORT_PKT, dgram + len, sizeof(dgram) - len);
	cr_assert_eq(len, 135 + 50 + 21);

	static const enum tern_pkt_type want_type[] = {TERN_PKT_INITIAL, TERN_PKT_HANDSHAKE,
						       TERN_PKT_1RTT};
	static const int want_len[] = {135, 50, 21};
	const uint8_t *p = dgram;
	size_t left = len, i = 0;
	while (left) {
		struct tern_pkt_hdr h;
		int n = tern_pkt_parse(p, left, 0, &h);
		cr_assert_lt(i, 3);
		cr_assert_eq(n, want_len[i], "packet %zu", i);
		cr_assert_eq(h.type, want_type[i]);
		cr_assert_eq(h.dcid.len, 0, "§12.2: every packet names the same DCID");
		p += n;
		left -= (size_t)n;
		i++;
	}
	cr_assert_eq(i, 3);
	cr_assert_eq(p, dgram + len);
}

/* Client -> server v2: the RFC 9369 A.2 Initial shortened to 300 bytes,
 * then a 0-RTT and a 1-RTT packet with the server's 8-byte CID. */
Test(coalesced, v2_initial_0rtt_1rtt_and_trailing_zeros)
{
	uint8_t dgram[600];
	struct tern_cid s = cid_hex(SERVER_SCID);
	memset(dgram, 0, sizeof(dgram));
	int off = tern_pkt_long_write(dgram, sizeof(dgram), TERN_VERSION_2, TERN_PKT_INITIAL, &s,
				      &empty_cid, NULL, 0, 2, 4);
	cr_assert_eq(tern_pkt_patch_length(dgram, (size_t)off, 300), 0);
	off = tern_pkt_long_write(dgram + 300, 300, TERN_VERSION_2, TERN_PKT_0RTT, &s, &empty_cid,
				  NULL, 0, 0, 1);
	cr_assert_eq(tern_pkt_patch_length(dgram + 300, (size_t)off, 100), 0);
	off = tern_pkt_short_write(dgram + 400, 200, &s, 7, 1, 0, 0);
	cr_assert_eq(off, 9);

	struct tern_pkt_hdr h;
	cr_assert_eq(tern_pkt_parse(dgram, 500, 8, &h), 300);
	cr_assert_eq(h.type, TERN_PKT_INITIAL);
	cr_assert_eq(h.version, TERN_VERSION_2);
	cr_assert_eq(tern_pkt_parse(dgram + 300, 200, 8, &h), 100);
	cr_assert_eq(h.type, TERN_PKT_0RTT);
	cr_assert_eq(tern_pkt_parse(dgram + 400, 100, 8, &h), 100);
	cr_assert_eq(h.type, TERN_PKT_1RTT);
	cr_assert(tern_cid_equal(&h.dcid, &s));
	/* Zero padding after the last long packet reads as a short header
	 * with the fixed bit clear: the receiver drops the rest. */
	cr_assert_eq(tern_pkt_parse(dgram + 400, 100, 8, &h), 100);
	memset(dgram + 400, 0, 100);
	cr_assert_eq(tern_pkt_parse(dgram + 400, 100, 8, &h), TERN_ERR_MALFORMED);
}

/* ---- Version Negotiation --------------------------------------------------- */

Test(vn, build_exact_bytes_and_parse)
{
	uint8_t buf[64], want[64];
	uint8_t d[8], s[4];
	unhex("0011223344556677", d, sizeof(d));
	unhex("a0a1a2a3", s, sizeof(s));
	static const uint32_t versions[] = {TERN_VERSION_1, TERN_VERSION_2, 0x1a2a3a4a};
	int n = tern_vn_build(buf, sizeof(buf), d, 8, s, 4, versions, 3, 0x00);
	size_t wn = unhex("c000000000" "080011223344556677" "04a0a1a2a3"
			  "00000001" "6b3343cf" "1a2a3a4a", want, sizeof(want));
	cr_assert_eq(n, (int)wn);
	cr_assert_arr_eq(buf, want, wn);

	struct tern_pkt_hdr h;
	cr_assert_eq(tern_pkt_parse(buf, (size_t)n, 8, &h), n);
	cr_assert_eq(h.type, TERN_PKT_VN);
	cr_assert_eq(h.version, 0);
	cr_assert_eq(h.dcid.len, 8);
	cr_assert_arr_eq(h.dcid.bytes, d, 8);
	cr_assert_eq(h.scid.len, 4);
	cr_assert_arr_eq(h.scid.bytes, s, 4);
	cr_assert_eq(h.vn_count, 3);
	cr_assert_eq(h.vn_versions, buf + 19);
	for (size_t i = 0; i < 3; i++)
		cr_assert_eq(tern_vn_version(&h, i), versions[i]);
	cr_assert_eq(h.pn_offset, 0);
}

Test(vn, first_byte_random_bits)
{
	uint8_t buf[32];
	const uint32_t v = TERN_VERSION_1;
	for (unsigned r = 0; r < 256; r++) {
		cr_assert_eq(tern_vn_build(buf, sizeof(buf), NULL, 0, NULL, 0, &v, 1, (uint8_t)r),
			     11);
		/* Long form and the 0x40 bit RFC 9000 §17.2.1 asks for; the
		 * other 6 bits are the caller's randomness. */
		cr_assert_eq(buf[0], 0xc0 | (r & 0x3f));
	}
}

Test(vn, parse_ignores_fixed_bit_and_rejects_bad_lists)
{
	uint8_t buf[32];
	const uint32_t v[2] = {TERN_VERSION_1, TERN_VERSION_2};
	int n = tern_vn_build(buf, sizeof(buf), NULL, 0, NULL, 0, v, 2, 0);
	cr_assert_eq(n, 15);
	struct tern_pkt_hdr h;
	/* The unused bits are arbitrary, the fixed bit included. */
	buf[0] = 0x80;
	cr_assert_eq(tern_pkt_parse(buf, 15, 0, &h), 15);
	cr_assert_eq(h.vn_count, 2);
	/* A 3-byte (or 1, 2-byte) tail: not a list of 32-bit versions. */
	for (size_t cut = 8; cut < 15; cut++) {
		int want = (cut - 7) % 4 == 0 ? (int)cut : TERN_ERR_MALFORMED;
		cr_assert_eq(tern_pkt_parse(buf, cut, 0, &h), want, "cut %zu", cut);
	}
	/* No version at all. */
	cr_assert_eq(tern_pkt_parse(buf, 7, 0, &h), TERN_ERR_MALFORMED);
	for (size_t cut = 0; cut < 7; cut++)
		cr_assert_eq(tern_pkt_parse(buf, cut, 0, &h), TERN_ERR_TRUNCATED);
}

Test(vn, cid_rules)
{
	uint8_t buf[TERN_VN_MAX_SIZE(1)], cid[255];
	const uint32_t v = TERN_VERSION_1;
	memset(cid, 0x5a, sizeof(cid));
	/* The builder echoes any invariant-sized CID (RFC 8999: 255). */
	int n = tern_vn_build(buf, sizeof(buf), cid, 255, cid, 255, &v, 1, 0);
	cr_assert_eq(n, (int)TERN_VN_MAX_SIZE(1));
	cr_assert_eq(buf[5], 255);
	cr_assert_eq(buf[6 + 255], 255);
	/* A client only acts on a VN that echoes its own v1 CIDs, so one
	 * with a CID longer than 20 is dropped. */
	struct tern_pkt_hdr h;
	cr_assert_eq(tern_pkt_parse(buf, (size_t)n, 0, &h), TERN_ERR_MALFORMED);
	n = tern_vn_build(buf, sizeof(buf), cid, 21, NULL, 0, &v, 1, 0);
	cr_assert_eq(tern_pkt_parse(buf, (size_t)n, 0, &h), TERN_ERR_MALFORMED);
	n = tern_vn_build(buf, sizeof(buf), cid, 20, cid, 20, &v, 1, 0);
	cr_assert_eq(tern_pkt_parse(buf, (size_t)n, 0, &h), n);
	/* A cut inside the CIDs is a truncation. */
	for (size_t cut = 0; cut < 1 + 4 + 1 + 20 + 1 + 20; cut++)
		cr_assert_eq(tern_pkt_parse(buf, cut, 0, &h), TERN_ERR_TRUNCATED, "cut %zu", cut);
}

Test(vn, build_errors)
{
	uint8_t buf[64], cid[256] = {0};
	const uint32_t v = TERN_VERSION_1;
	cr_assert_eq(tern_vn_build(buf, sizeof(buf), NULL, 0, NULL, 0, &v, 0, 0), TERN_ERR_INVAL);
	cr_assert_eq(tern_vn_build(buf, sizeof(buf), NULL, 0, NULL, 0, NULL, 1, 0), TERN_ERR_INVAL);
	cr_assert_eq(tern_vn_build(buf, sizeof(buf), cid, 256, NULL, 0, &v, 1, 0), TERN_ERR_INVAL);
	cr_assert_eq(tern_vn_build(buf, sizeof(buf), NULL, 0, cid, 256, &v, 1, 0), TERN_ERR_INVAL);
	cr_assert_eq(tern_vn_build(buf, sizeof(buf), NULL, 3, NULL, 0, &v, 1, 0), TERN_ERR_INVAL);
	for (size_t cap = 0; cap < 1 + 4 + 1 + 3 + 1 + 0 + 4; cap++)
		cr_assert_eq(tern_vn_build(buf, cap, cid, 3, NULL, 0, &v, 1, 0), TERN_ERR_NOBUF);
	cr_assert_eq(tern_vn_build(buf, 14, cid, 3, NULL, 0, &v, 1, 0), 14);
}

/* ---- unknown versions -------------------------------------------------- */

Test(version, unknown_version_fills_invariants)
{
	uint8_t buf[1200];
	memset(buf, 0x77, sizeof(buf));
	buf[0] = 0x80; /* the invariants say nothing about the other bits */
	tern_put_u32(buf + 1, 0x1a2a3a4a);
	buf[5] = 200;
	buf[6 + 200] = 255;
	struct tern_pkt_hdr h;
	cr_assert_eq(tern_pkt_parse(buf, sizeof(buf), 8, &h), TERN_ERR_VERSION);
	cr_assert_eq(h.first, 0x80);
	cr_assert_eq(h.version, 0x1a2a3a4a);
	cr_assert_eq(h.dcid_raw, buf + 6);
	cr_assert_eq(h.dcid_raw_len, 200);
	cr_assert_eq(h.scid_raw, buf + 207);
	cr_assert_eq(h.scid_raw_len, 255);
	cr_assert_eq(h.dcid.len, 0);
	cr_assert_eq(h.scid.len, 0);

	/* Answering it: a VN with the CIDs swapped parses as a VN. */
	uint8_t vn[TERN_VN_MAX_SIZE(2)];
	const uint32_t ours[2] = {TERN_VERSION_1, TERN_VERSION_2};
	int n = tern_vn_build(vn, sizeof(vn), h.scid_raw, h.scid_raw_len, h.dcid_raw,
			      h.dcid_raw_len, ours, 2, 0x2a);
	cr_assert_eq(n, 7 + 255 + 200 + 8);
	cr_assert_arr_eq(vn + 6, buf + 207, 255);

	/* Even CIDs that fit 20 bytes stay out of the value fields: only the
	 * raw views are meaningful after TERN_ERR_VERSION. */
	uint8_t small[64] = {0xc0, 0xff, 0x00, 0x00, 0x1d, 4, 1, 2, 3, 4, 0};
	cr_assert_eq(tern_pkt_parse(small, sizeof(small), 0, &h), TERN_ERR_VERSION);
	cr_assert_eq(h.dcid_raw_len, 4);
	cr_assert_eq(h.dcid.len, 0);
	cr_assert_eq(h.version, 0xff00001d);
	/* Cut inside the CIDs: nothing to echo, so a truncation. */
	for (size_t cut = 0; cut < 11; cut++)
		cr_assert_eq(tern_pkt_parse(small, cut, 0, &h), TERN_ERR_TRUNCATED, "cut %zu", cut);
	cr_assert_eq(tern_pkt_parse(small, 11, 0, &h), TERN_ERR_VERSION);
}

/* ---- malformed input ------------------------------------------------------- */

Test(malformed, truncated_at_every_byte_long)
{
	static uint8_t buf[1200];
	struct tern_pkt_hdr h;
	hdr_padded(V1_CLIENT_HDR, buf, sizeof(buf));
	for (size_t cut = 0; cut < 1200; cut++)
		cr_assert_eq(tern_pkt_parse(buf, cut, 8, &h), TERN_ERR_TRUNCATED, "cut %zu", cut);
	cr_assert_eq(tern_pkt_parse(buf, 1200, 8, &h), 1200);

	const char *const pkts[] = {V1_SERVER_PKT, V2_SERVER_PKT};
	for (size_t i = 0; i < 2; i++) {
		size_t n = unhex(pkts[i], buf, sizeof(buf));
		for (size_t cut = 0; cut < n; cut++)
			cr_assert_eq(tern_pkt_parse(buf, cut, 0, &h), TERN_ERR_TRUNCATED,
				     "pkt %zu cut %zu", i, cut);
	}
}

Test(malformed, truncated_at_every_byte_retry)
{
	const char *const pkts[] = {V1_RETRY, V2_RETRY};
	for (size_t i = 0; i < 2; i++) {
		uint8_t buf[36];
		unhex(pkts[i], buf, sizeof(buf));
		struct tern_pkt_hdr h;
		/* 15 bytes of header; then a Retry runs to the datagram's end,
		 * so a shorter one is a shorter token (the tag catches it). */
		for (size_t cut = 0; cut < 36; cut++) {
			int rc = tern_pkt_parse(buf, cut, 0, &h);
			if (cut < 15 + 16)
				cr_assert_eq(rc, TERN_ERR_TRUNCATED, "cut %zu", cut);
			else if (cut == 15 + 16)
				cr_assert_eq(rc, TERN_ERR_MALFORMED, "empty token");
			else
				cr_assert(rc == (int)cut && h.token_len == cut - 31);
		}
	}
}

Test(malformed, truncated_short_header)
{
	uint8_t buf[21];
	struct tern_pkt_hdr h;
	unhex(V1_SHORT_PKT, buf, sizeof(buf));
	cr_assert_eq(tern_pkt_parse(buf, 0, 0, &h), TERN_ERR_TRUNCATED);
	for (size_t cut = 1; cut < 21; cut++)
		cr_assert_eq(tern_pkt_parse(buf, cut, 0, &h), TERN_ERR_MALFORMED, "cut %zu", cut);

	uint8_t pkt[29];
	struct tern_cid d = cid_hex("0102030405060708");
	cr_assert_eq(tern_pkt_short_write(pkt, sizeof(pkt), &d, 0, 4, 0, 0), 9);
	memset(pkt + 9, 0, 20);
	for (size_t cut = 0; cut < 9; cut++)
		cr_assert_eq(tern_pkt_parse(pkt, cut, 8, &h), TERN_ERR_TRUNCATED, "cut %zu", cut);
	for (size_t cut = 9; cut < 29; cut++)
		cr_assert_eq(tern_pkt_parse(pkt, cut, 8, &h), TERN_ERR_MALFORMED, "cut %zu", cut);
	cr_assert_eq(tern_pkt_parse(pkt, 29, 8, &h), 29);
}

/* A v1 Initial with CIDs of the given lengths and a 20-byte Length. */
static size_t make_initial(uint8_t *buf, size_t cap, size_t dcid_len, size_t scid_len)
{
	memset(buf, 0x11, cap);
	uint8_t *p = buf;
	*p++ = 0xc0;
	p = tern_put_u32(p, TERN_VERSION_1);
	*p++ = (uint8_t)dcid_len;
	p += dcid_len;
	*p++ = (uint8_t)scid_len;
	p += scid_len;
	*p++ = 0;  /* token length */
	*p++ = 20; /* Length */
	size_t len = (size_t)(p - buf) + 20;
	cr_assert_leq(len, cap);
	return len;
}

Test(malformed, cid_length_21)
{
	uint8_t buf[128];
	struct tern_pkt_hdr h;
	size_t len = make_initial(buf, sizeof(buf), 20, 20);
	cr_assert_eq(tern_pkt_parse(buf, len, 0, &h), (int)len);
	cr_assert_eq(h.dcid.len, 20);
	cr_assert_eq(h.scid.len, 20);
	len = make_initial(buf, sizeof(buf), 21, 0);
	cr_assert_eq(tern_pkt_parse(buf, len, 0, &h), TERN_ERR_MALFORMED);
	len = make_initial(buf, sizeof(buf), 0, 21);
	cr_assert_eq(tern_pkt_parse(buf, len, 0, &h), TERN_ERR_MALFORMED);
	len = make_initial(buf, sizeof(buf), 8, 255 - 200);
	cr_assert_eq(tern_pkt_parse(buf, len, 0, &h), TERN_ERR_MALFORMED);
	/* Retry carries the same limit. */
	uint8_t retry[36];
	unhex(V1_RETRY, retry, sizeof(retry));
	retry[6] = 21; /* SCID length: the 8-byte SCID + 13 bytes of the rest */
	cr_assert_eq(tern_pkt_parse(retry, 36, 0, &h), TERN_ERR_MALFORMED);
}

Test(malformed, length_or_token_beyond_datagram)
{
	uint8_t buf[1200];
	struct tern_pkt_hdr h;
	hdr_padded(V1_CLIENT_HDR, buf, sizeof(buf));
	buf[17] = 0x9f; /* Length 1183: one byte past the datagram */
	cr_assert_eq(tern_pkt_parse(buf, 1200, 8, &h), TERN_ERR_TRUNCATED);
	buf[16] = 0x80; /* 4-byte varint Length 0x009f0000 */
	cr_assert_eq(tern_pkt_parse(buf, 1200, 8, &h), TERN_ERR_TRUNCATED);
	buf[16] = 0xff; /* 8-byte varint of 2^62-ish */
	cr_assert_eq(tern_pkt_parse(buf, 1200, 8, &h), TERN_ERR_TRUNCATED);

	hdr_padded(V1_CLIENT_HDR, buf, sizeof(buf));
	/* Token length 63: the token swallows the real Length, and the
	 * Length read from the zeros after it (0) leaves no sample room. */
	buf[15] = 0x3f;
	cr_assert_eq(tern_pkt_parse(buf, 1200, 8, &h), TERN_ERR_MALFORMED);
	buf[15] = 0x7f; /* token length 0x3f44 > what is left */
	cr_assert_eq(tern_pkt_parse(buf, 1200, 8, &h), TERN_ERR_TRUNCATED);
	buf[15] = 0xc0; /* 8-byte token length running past the end */
	cr_assert_eq(tern_pkt_parse(buf, 20, 8, &h), TERN_ERR_TRUNCATED);
	memset(buf + 15, 0xff, 8); /* token length 2^62-1 */
	cr_assert_eq(tern_pkt_parse(buf, 1200, 8, &h), TERN_ERR_TRUNCATED);
}

Test(malformed, non_minimal_length_field_is_accepted)
{
	/* RFC 9000 §16 allows any varint size; tern's own Length is 2 bytes. */
	uint8_t buf[64] = {0xe0, 0, 0, 0, 1, 0, 0, 0x80, 0, 0, 21};
	struct tern_pkt_hdr h;
	cr_assert_eq(tern_pkt_parse(buf, sizeof(buf), 0, &h), 11 + 21);
	cr_assert_eq(h.type, TERN_PKT_HANDSHAKE);
	cr_assert_eq(h.pn_offset, 11);
	cr_assert_eq(h.length, 21);
}

Test(malformed, fixed_bit_clear)
{
	uint8_t buf[1200];
	struct tern_pkt_hdr h;
	hdr_padded(V1_CLIENT_HDR, buf, sizeof(buf));
	buf[0] &= (uint8_t)~TERN_PKT_FIXED_BIT;
	cr_assert_eq(tern_pkt_parse(buf, 1200, 8, &h), TERN_ERR_MALFORMED);
	hdr_padded(V2_CLIENT_HDR, buf, sizeof(buf));
	buf[0] &= (uint8_t)~TERN_PKT_FIXED_BIT;
	cr_assert_eq(tern_pkt_parse(buf, 1200, 8, &h), TERN_ERR_MALFORMED);
	unhex(V1_RETRY, buf, sizeof(buf));
	buf[0] = 0xbf;
	cr_assert_eq(tern_pkt_parse(buf, 36, 8, &h), TERN_ERR_MALFORMED);
	unhex(V1_SHORT_PKT, buf, sizeof(buf));
	buf[0] = 0x0c;
	cr_assert_eq(tern_pkt_parse(buf, 21, 0, &h), TERN_ERR_MALFORMED);
}

Test(malformed, no_sample_room)
{
	uint8_t buf[1200];
	struct tern_pkt_hdr h;
	hdr_padded(V1_CLIENT_HDR, buf, sizeof(buf));
	for (unsigned l = 0; l < 20; l++) {
		buf[16] = 0x40;
		buf[17] = (uint8_t)l;
		cr_assert_eq(tern_pkt_parse(buf, 1200, 8, &h), TERN_ERR_MALFORMED, "Length %u", l);
	}
	buf[17] = 20;
	cr_assert_eq(tern_pkt_parse(buf, 1200, 8, &h), 18 + 20);
	cr_assert_eq(h.pn_offset + TERN_PKT_SAMPLE_SKIP + TERN_PKT_SAMPLE_LEN, h.pkt_len);
}

Test(malformed, bad_arguments)
{
	uint8_t buf[64] = {0x40};
	struct tern_pkt_hdr h;
	cr_assert_eq(tern_pkt_parse(buf, sizeof(buf), 21, &h), TERN_ERR_INVAL);
	cr_assert_eq(tern_pkt_parse(NULL, 5, 0, &h), TERN_ERR_INVAL);
	cr_assert_eq(tern_pkt_parse(NULL, 0, 0, &h), TERN_ERR_TRUNCATED);
	cr_assert_eq(tern_pkt_parse(buf, (size_t)INT_MAX + 1, 0, &h), TERN_ERR_INVAL);
	cr_assert_eq(tern_pkt_parse(buf, sizeof(buf), 20, &h), 64);
	cr_assert_eq(h.dcid.len, 20);
	cr_assert_eq(h.pn_offset, 21);
}

Test(malformed, empty_retry_token)
{
	uint8_t buf[36];
	struct tern_pkt_hdr h;
	unhex(V1_RETRY, buf, sizeof(buf));
	/* Drop the 5-byte token: header then the tag alone. */
	memmove(buf + 15, buf + 20, 16);
	cr_assert_eq(tern_pkt_parse(buf, 31, 0, &h), TERN_ERR_MALFORMED);
}
