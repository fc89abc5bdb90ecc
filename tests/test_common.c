/* Tests for include/tern/common.h and src/common.c: varints (RFC 9000 §16,
 * Appendix A.1), big-endian helpers, CIDs and the error scheme. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "tern/common.h"

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

/* RFC 9000 Appendix A.1, "Sample Variable-Length Integer Decoding". */
static const struct {
	const char *hex;
	uint64_t value;
	int minimal;
} rfc_samples[] = {
	{"c2197c5eff14e88c", UINT64_C(151288809941952652), 1},
	{"9d7f3e7d", 494878333, 1},
	{"7bbd", 15293, 1},
	{"25", 37, 1},
	{"4025", 37, 0}, /* two-byte, non-minimal: still decodes to 37 */
};

Test(varint, rfc9000_a1_samples_decode)
{
	for (size_t i = 0; i < sizeof(rfc_samples) / sizeof(rfc_samples[0]); i++) {
		uint8_t buf[8];
		size_t n = unhex(rfc_samples[i].hex, buf, sizeof(buf));
		const uint8_t *p = buf;
		uint64_t v = 0;
		cr_assert_eq(tern_varint_size_from_byte(buf[0]), n);
		cr_assert_eq(tern_varint_decode(&p, buf + n, &v), 0);
		cr_assert_eq(v, rfc_samples[i].value, "sample %s", rfc_samples[i].hex);
		cr_assert_eq(p, buf + n);
	}
}

Test(varint, rfc9000_a1_samples_reencode_minimal)
{
	for (size_t i = 0; i < sizeof(rfc_samples) / sizeof(rfc_samples[0]); i++) {
		if (!rfc_samples[i].minimal)
			continue;
		uint8_t want[8], got[8];
		size_t n = unhex(rfc_samples[i].hex, want, sizeof(want));
		cr_assert_eq(tern_varint_size(rfc_samples[i].value), n);
		uint8_t *e = tern_varint_encode(got, rfc_samples[i].value);
		cr_assert_eq((size_t)(e - got), n);
		cr_assert_arr_eq(got, want, n);
	}
}

/* Shortest form at every size boundary, RFC 9000 §16 Table 4. */
static const struct {
	uint64_t value;
	const char *hex;
} boundaries[] = {
	{0, "00"},
	{63, "3f"},
	{64, "4040"},
	{16383, "7fff"},
	{16384, "80004000"},
	{(UINT64_C(1) << 30) - 1, "bfffffff"},
	{UINT64_C(1) << 30, "c000000040000000"},
	{(UINT64_C(1) << 62) - 1, "ffffffffffffffff"},
};

Test(varint, shortest_form_at_each_boundary)
{
	for (size_t i = 0; i < sizeof(boundaries) / sizeof(boundaries[0]); i++) {
		uint8_t want[8], got[9];
		size_t n = unhex(boundaries[i].hex, want, sizeof(want));
		memset(got, 0xee, sizeof(got));
		cr_assert_eq(tern_varint_size(boundaries[i].value), n, "size of %s",
			     boundaries[i].hex);
		uint8_t *e = tern_varint_encode(got, boundaries[i].value);
		cr_assert_eq((size_t)(e - got), n);
		cr_assert_arr_eq(got, want, n);
		cr_assert_eq(got[n], 0xee, "wrote past the varint");

		const uint8_t *p = got;
		uint64_t v;
		cr_assert_eq(tern_varint_decode(&p, got + n, &v), 0);
		cr_assert_eq(v, boundaries[i].value);
		cr_assert_eq(p, got + n);
	}
	cr_assert_eq(TERN_VARINT_MAX, (UINT64_C(1) << 62) - 1);
}

Test(varint, size_from_first_byte)
{
	static const struct {
		uint8_t b;
		size_t n;
	} t[] = {{0x00, 1}, {0x3f, 1}, {0x40, 2}, {0x7f, 2},
		 {0x80, 4}, {0xbf, 4}, {0xc0, 8}, {0xff, 8}};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		cr_assert_eq(tern_varint_size_from_byte(t[i].b), t[i].n, "byte %02x", t[i].b);
}

Test(varint, encode_fixed_every_size)
{
	static const struct {
		uint64_t v;
		size_t size;
		const char *hex;
	} t[] = {
		{37, 1, "25"},
		{37, 2, "4025"}, /* RFC 9000 A.1's non-minimal sample */
		{37, 4, "80000025"},
		{37, 8, "c000000000000025"},
		{0, 2, "4000"},
		{63, 1, "3f"},
		{16383, 2, "7fff"},
		{15293, 2, "7bbd"},
		{494878333, 4, "9d7f3e7d"},
		{494878333, 8, "c00000001d7f3e7d"},
		{UINT64_C(151288809941952652), 8, "c2197c5eff14e88c"},
		{(UINT64_C(1) << 62) - 1, 8, "ffffffffffffffff"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint8_t want[8], got[9];
		size_t n = unhex(t[i].hex, want, sizeof(want));
		memset(got, 0xee, sizeof(got));
		uint8_t *e = tern_varint_encode_fixed(got, t[i].v, t[i].size);
		cr_assert_eq((size_t)(e - got), t[i].size);
		cr_assert_arr_eq(got, want, n, "fixed %s", t[i].hex);
		cr_assert_eq(got[n], 0xee);

		const uint8_t *p = got;
		uint64_t v;
		cr_assert_eq(tern_varint_decode(&p, got + n, &v), 0);
		cr_assert_eq(v, t[i].v);
		cr_assert_eq(p, got + n);
	}
}

/* A varint cut at every length reports truncation and moves nothing. */
Test(varint, truncated_at_every_length)
{
	static const char *const hex[] = {"c2197c5eff14e88c", "9d7f3e7d", "7bbd", "25",
					  "4025", "ffffffffffffffff"};
	for (size_t i = 0; i < sizeof(hex) / sizeof(hex[0]); i++) {
		uint8_t buf[8];
		size_t n = unhex(hex[i], buf, sizeof(buf));
		for (size_t cut = 0; cut < n; cut++) {
			const uint8_t *p = buf;
			uint64_t v = 0xdeadbeef;
			cr_assert_eq(tern_varint_decode(&p, buf + cut, &v), TERN_ERR_TRUNCATED,
				     "%s cut at %zu", hex[i], cut);
			cr_assert_eq(p, buf);
			cr_assert_eq(v, 0xdeadbeef);
		}
	}
}

Test(varint, cursor_walks_a_sequence)
{
	uint8_t buf[32];
	size_t n = unhex("25" "4025" "7bbd" "9d7f3e7d" "c2197c5eff14e88c", buf, sizeof(buf));
	static const uint64_t want[] = {37, 37, 15293, 494878333, UINT64_C(151288809941952652)};
	const uint8_t *p = buf, *end = buf + n;
	for (size_t i = 0; i < 5; i++) {
		uint64_t v;
		cr_assert_eq(tern_varint_decode(&p, end, &v), 0);
		cr_assert_eq(v, want[i]);
	}
	cr_assert_eq(p, end);
	uint64_t v;
	cr_assert_eq(tern_varint_decode(&p, end, &v), TERN_ERR_TRUNCATED);
}

Test(varint, round_trip_sweep)
{
	/* Powers of two and their neighbours across the whole 62-bit range. */
	for (int s = 0; s < 62; s++) {
		uint64_t base = UINT64_C(1) << s;
		uint64_t vals[3] = {base - 1, base, base + 1};
		for (int k = 0; k < 3; k++) {
			uint64_t x = vals[k], y;
			uint8_t buf[8];
			uint8_t *e = tern_varint_encode(buf, x);
			cr_assert_eq((size_t)(e - buf), tern_varint_size(x));
			const uint8_t *p = buf;
			cr_assert_eq(tern_varint_decode(&p, e, &y), 0);
			cr_assert_eq(y, x);
		}
	}
}

Test(bytes, big_endian_helpers)
{
	uint8_t b[6] = {0};
	cr_assert_eq(tern_put_u16(b, 0xa1b2), b + 2);
	cr_assert_eq(b[0], 0xa1);
	cr_assert_eq(b[1], 0xb2);
	cr_assert_eq(tern_get_u16(b), 0xa1b2);
	cr_assert_eq(tern_put_u32(b + 2, 0x6b3343cf), b + 6);
	cr_assert_eq(b[2], 0x6b);
	cr_assert_eq(b[3], 0x33);
	cr_assert_eq(b[4], 0x43);
	cr_assert_eq(b[5], 0xcf);
	cr_assert_eq(tern_get_u32(b + 2), 0x6b3343cfu);
	tern_put_u32(b, 0xffffffffu);
	cr_assert_eq(tern_get_u32(b), 0xffffffffu);
	tern_put_u16(b, 0xffff);
	cr_assert_eq(tern_get_u16(b), 0xffff);
}

Test(cid, set_and_compare)
{
	uint8_t bytes[21];
	for (int i = 0; i < 21; i++)
		bytes[i] = (uint8_t)i;
	struct tern_cid a, b;
	cr_assert_eq(tern_cid_set(&a, bytes, 20), 0);
	cr_assert_eq(a.len, 20);
	cr_assert_arr_eq(a.bytes, bytes, 20);
	cr_assert_eq(tern_cid_set(&b, bytes, 21), TERN_ERR_INVAL);
	cr_assert_eq(tern_cid_set(&b, bytes, 20), 0);
	cr_assert(tern_cid_equal(&a, &b));
	b.bytes[19] ^= 1;
	cr_assert_not(tern_cid_equal(&a, &b));
	cr_assert_eq(tern_cid_set(&b, bytes, 19), 0);
	cr_assert_not(tern_cid_equal(&a, &b), "a prefix is a different CID");
	cr_assert_eq(tern_cid_set(&a, NULL, 0), 0);
	cr_assert_eq(tern_cid_set(&b, NULL, 0), 0);
	cr_assert_eq(a.len, 0);
	cr_assert(tern_cid_equal(&a, &b));
}

/* ---- the error scheme -------------------------------------------------- */

Test(err, quic_codes_round_trip)
{
	static const uint64_t codes[] = {
		TERN_QUIC_NO_ERROR, TERN_QUIC_INTERNAL_ERROR, TERN_QUIC_CONNECTION_REFUSED,
		TERN_QUIC_FLOW_CONTROL_ERROR, TERN_QUIC_STREAM_LIMIT_ERROR,
		TERN_QUIC_STREAM_STATE_ERROR, TERN_QUIC_FINAL_SIZE_ERROR,
		TERN_QUIC_FRAME_ENCODING_ERROR, TERN_QUIC_TRANSPORT_PARAMETER_ERROR,
		TERN_QUIC_CONNECTION_ID_LIMIT_ERROR, TERN_QUIC_PROTOCOL_VIOLATION,
		TERN_QUIC_INVALID_TOKEN, TERN_QUIC_APPLICATION_ERROR,
		TERN_QUIC_CRYPTO_BUFFER_EXCEEDED, TERN_QUIC_KEY_UPDATE_ERROR,
		TERN_QUIC_AEAD_LIMIT_REACHED, TERN_QUIC_NO_VIABLE_PATH};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		int e = TERN_ERR_QUIC(codes[i]);
		cr_assert_lt(e, 0);
		cr_assert(tern_err_is_quic(e));
		cr_assert_eq(tern_err_quic_code(e), codes[i]);
		cr_assert_eq(codes[i], i, "RFC 9000 §20.1 numbers them 0x00..0x10");
		cr_assert_str_eq(tern_strerror(e), "QUIC transport error");
	}
	for (unsigned alert = 0; alert < 256; alert++) {
		int e = TERN_ERR_QUIC(TERN_QUIC_CRYPTO_ERROR(alert));
		cr_assert(tern_err_is_quic(e));
		cr_assert_eq(tern_err_quic_code(e), 0x100u + alert);
	}
}

Test(err, crypto_error_range)
{
	/* RFC 9001 §4.8: 0x0100 + the TLS alert, which is one byte. */
	cr_assert_eq(TERN_QUIC_CRYPTO_ERROR(0), 0x100);
	cr_assert_eq(TERN_QUIC_CRYPTO_ERROR(40), 0x128); /* handshake_failure */
	cr_assert_eq(TERN_QUIC_CRYPTO_ERROR(120), 0x178); /* no_application_protocol */
	cr_assert_eq(TERN_QUIC_CRYPTO_ERROR(255), 0x1ff);
}

Test(err, plain_errors_are_not_quic)
{
	static const int errs[] = {TERN_OK, TERN_ERR_TRUNCATED, TERN_ERR_NOBUF,
				   TERN_ERR_INVAL, TERN_ERR_CRYPTO, TERN_ERR_DECRYPT,
				   TERN_ERR_VERSION, TERN_ERR_NOMEM, TERN_ERR_LIMIT,
				   TERN_ERR_MALFORMED, TERN_ERR_STATE, TERN_ERR_IO};
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		cr_assert_not(tern_err_is_quic(errs[i]));
		cr_assert_eq(errs[i], -(int)i, "codes are 0..-11 in order");
	}
	cr_assert_not(tern_err_is_quic(-TERN_ERR_QUIC_BASE + 1));
	cr_assert(tern_err_is_quic(-TERN_ERR_QUIC_BASE));
}

Test(err, strerror_names_every_code)
{
	static const struct {
		int err;
		const char *name;
	} t[] = {
		{TERN_OK, "ok"},
		{TERN_ERR_TRUNCATED, "input truncated"},
		{TERN_ERR_NOBUF, "output buffer too small"},
		{TERN_ERR_INVAL, "invalid argument"},
		{TERN_ERR_CRYPTO, "crypto library failure"},
		{TERN_ERR_DECRYPT, "decryption failed"},
		{TERN_ERR_VERSION, "unsupported QUIC version"},
		{TERN_ERR_NOMEM, "out of memory or table full"},
		{TERN_ERR_LIMIT, "limit reached"},
		{TERN_ERR_MALFORMED, "malformed packet"},
		{TERN_ERR_STATE, "invalid state"},
		{TERN_ERR_IO, "I/O error"},
	};
	size_t n = sizeof(t) / sizeof(t[0]);
	for (size_t i = 0; i < n; i++) {
		cr_assert_str_eq(tern_strerror(t[i].err), t[i].name);
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(tern_strerror(t[i].err), tern_strerror(t[j].err));
	}
	cr_assert_str_eq(tern_strerror(-12), "unknown error");
	cr_assert_str_eq(tern_strerror(1), "unknown error");
	cr_assert_str_eq(tern_strerror(-TERN_ERR_QUIC_BASE + 1), "unknown error");
	cr_assert_str_eq(tern_strerror(TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION)),
			 "QUIC transport error");
}
