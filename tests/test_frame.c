/* Criterion suite for the frame codecs (RFC 9000 §19, RFC 9221 §4). */
#include <criterion/criterion.h>
#include <stdio.h>

#include "tern/frame.h"
#include "lib/frame_eq.h"

#define FEE TERN_ERR_QUIC(TERN_QUIC_FRAME_ENCODING_ERROR)
#define PV TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION)
#define V62 TERN_VARINT_MAX

/* ---- helpers --------------------------------------------------------------- */

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;
	int hi = -1;

	for (; *s; s++) {
		int v;
		if (*s == ' ')
			continue;
		if (*s >= '0' && *s <= '9')
			v = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			v = *s - 'a' + 10;
		else
			cr_assert_fail("bad hex character '%c'", *s);
		if (hi < 0) {
			hi = v;
		} else {
			cr_assert_lt(n, cap);
			out[n++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	cr_assert_eq(hi, -1, "odd number of hex digits");
	return n;
}


static uint8_t want[4096], buf[4096];

/* Checks f encodes to exactly `hex`; that every smaller buffer gets NOBUF
 * with nothing written; that decoding both our output and the hand-written
 * bytes gives f back and consumes everything. */
static void expect_encoding(const struct tern_frame *f, const char *hex)
{
	size_t n = unhex(hex, want, sizeof(want));
	struct tern_frame g;
	const uint8_t *q;
	uint8_t *w;

	cr_assert_eq(tern_frame_encoded_size(f), n, "size of type 0x%llx",
		     (unsigned long long)f->type);
	for (size_t cap = 0; cap < n; cap++) {
		memset(buf, 0xa5, n + 1);
		w = buf;
		cr_assert_eq(tern_frame_encode(&w, buf + cap, f), TERN_ERR_NOBUF);
		cr_assert_eq(w, buf);
		for (size_t i = 0; i <= n; i++)
			cr_assert_eq(buf[i], 0xa5, "byte %zu written on NOBUF", i);
	}
	memset(buf, 0xa5, sizeof(buf));
	w = buf;
	cr_assert_eq(tern_frame_encode(&w, buf + sizeof(buf), f), 0);
	cr_assert_eq((size_t)(w - buf), n);
	cr_assert_arr_eq(buf, want, n, "encoding of type 0x%llx", (unsigned long long)f->type);
	cr_assert_eq(buf[n], 0xa5);

	q = want;
	cr_assert_eq(tern_frame_decode(&q, want + n, &g), 0);
	cr_assert_eq(q, want + n);
	cr_assert(same_frame(f, &g), "decode(hex) differs for type 0x%llx",
		  (unsigned long long)f->type);
	q = buf;
	cr_assert_eq(tern_frame_decode(&q, buf + n, &g), 0);
	cr_assert(same_frame(f, &g));
}

static int decode_hex(const char *hex, struct tern_frame *f, size_t *consumed)
{
	size_t n = unhex(hex, want, sizeof(want));
	const uint8_t *q = want;
	int r = tern_frame_decode(&q, want + n, f);

	if (r != 0)
		cr_assert_eq(q, want, "cursor moved on error");
	if (consumed)
		*consumed = (size_t)(q - want);
	return r;
}

static void expect_decode_error(const char *hex, int err)
{
	struct tern_frame f;
	int r = decode_hex(hex, &f, NULL);
	cr_assert_eq(r, err, "%s: got %d want %d", hex, r, err);
}

/* Every proper prefix (down to empty) fails with FRAME_ENCODING_ERROR. */
static void expect_truncations_fail(const char *hex)
{
	size_t n = unhex(hex, want, sizeof(want));
	struct tern_frame f;

	for (size_t len = 0; len < n; len++) {
		const uint8_t *q = want;
		int r = tern_frame_decode(&q, want + len, &f);
		cr_assert_eq(r, FEE, "%s cut at %zu: got %d", hex, len, r);
		cr_assert_eq(q, want);
	}
	const uint8_t *q = want;
	cr_assert_eq(tern_frame_decode(&q, want + n, &f), 0, "%s whole", hex);
	cr_assert_eq(q, want + n);
}

static const uint8_t abc[] = "abc";
static const uint8_t hi[] = "hi";

/* ---- byte-exact encodings, one per type -------------------------------------- */

Test(frame_encode, padding_ping_handshake_done)
{
	struct tern_frame f = {.type = TERN_FRAME_PADDING, .padding.len = 3};
	expect_encoding(&f, "000000");
	f = (struct tern_frame){.type = TERN_FRAME_PING};
	expect_encoding(&f, "01");
	f = (struct tern_frame){.type = TERN_FRAME_HANDSHAKE_DONE};
	expect_encoding(&f, "1e");
}

Test(frame_encode, ack_and_ack_ecn_from_decoded)
{
	struct tern_frame f;
	/* largest 100 (2-byte varint), delay 25, one extra pair: gap 3 len 4. */
	cr_assert_eq(decode_hex("02 4064 19 01 02 03 04", &f, NULL), 0);
	cr_assert_eq(f.type, TERN_FRAME_ACK);
	cr_assert_eq(f.ack.largest, 100);
	cr_assert_eq(f.ack.ack_delay, 25);
	cr_assert_eq(f.ack.range_count, 1);
	cr_assert_eq(f.ack.first_range, 2);
	cr_assert_eq(f.ack.ranges_len, 2);
	cr_assert_eq(f.ack.ranges, want + 6);
	struct tern_frame copy = f;
	expect_encoding(&copy, "02 4064 19 01 02 03 04");

	cr_assert_eq(decode_hex("03 4064 19 00 02 01 02 3f", &f, NULL), 0);
	cr_assert_eq(f.type, TERN_FRAME_ACK_ECN);
	cr_assert_eq(f.ack.ecn.ect0, 1);
	cr_assert_eq(f.ack.ecn.ect1, 2);
	cr_assert_eq(f.ack.ecn.ce, 63);
	copy = f;
	expect_encoding(&copy, "03 4064 19 00 02 01 02 3f");
}

Test(frame_encode, reset_stream_stop_sending)
{
	struct tern_frame f = {.type = TERN_FRAME_RESET_STREAM,
			       .reset_stream = {.stream_id = 4, .error_code = 0x100,
						.final_size = 0x12345}};
	expect_encoding(&f, "04 04 4100 80012345");
	f = (struct tern_frame){.type = TERN_FRAME_STOP_SENDING,
				.stop_sending = {.stream_id = 8, .error_code = 0}};
	expect_encoding(&f, "05 08 00");
}

Test(frame_encode, crypto_new_token)
{
	struct tern_frame f = {.type = TERN_FRAME_CRYPTO,
			       .crypto = {.offset = 0, .data = abc, .len = 3}};
	expect_encoding(&f, "06 00 03 616263");
	f.crypto.offset = 1000;
	expect_encoding(&f, "06 43e8 03 616263");
	static const uint8_t tok[] = {0xde, 0xad, 0xbe, 0xef};
	f = (struct tern_frame){.type = TERN_FRAME_NEW_TOKEN, .new_token = {.token = tok, .len = 4}};
	expect_encoding(&f, "07 04 deadbeef");
}

Test(frame_encode, stream_all_eight_types)
{
	struct tern_frame f = {.type = 0x08, .stream = {.stream_id = 0, .data = abc, .len = 1}};
	expect_encoding(&f, "08 00 61");
	f.type = 0x09;
	expect_encoding(&f, "09 00 61");
	f = (struct tern_frame){.type = 0x0a, .stream = {.stream_id = 4, .data = NULL, .len = 0}};
	expect_encoding(&f, "0a 04 00");
	f.type = 0x0b;
	expect_encoding(&f, "0b 04 00");
	f = (struct tern_frame){.type = 0x0c,
				.stream = {.stream_id = 2, .offset = 5, .data = hi, .len = 2}};
	expect_encoding(&f, "0c 02 05 6869");
	f.type = 0x0d;
	expect_encoding(&f, "0d 02 05 6869");
	f = (struct tern_frame){.type = 0x0e,
				.stream = {.stream_id = 1, .offset = 0x40, .data = hi, .len = 2}};
	expect_encoding(&f, "0e 01 4040 02 6869");
	f.type = 0x0f;
	expect_encoding(&f, "0f 01 4040 02 6869");
	cr_assert(tern_frame_stream_fin(&f));
	f.type = 0x0e;
	cr_assert_not(tern_frame_stream_fin(&f));
	/* OFF set with a zero offset still writes the field. */
	f = (struct tern_frame){.type = 0x0e, .stream = {.stream_id = 1, .data = hi, .len = 2}};
	expect_encoding(&f, "0e 01 00 02 6869");
}

Test(frame_encode, flow_control_frames)
{
	struct tern_frame f = {.type = TERN_FRAME_MAX_DATA, .max_data.max = V62};
	expect_encoding(&f, "10 ffffffffffffffff");
	f = (struct tern_frame){.type = TERN_FRAME_MAX_STREAM_DATA,
				.max_stream_data = {.stream_id = 4, .max = 0x400}};
	expect_encoding(&f, "11 04 4400");
	f = (struct tern_frame){.type = TERN_FRAME_MAX_STREAMS_BIDI,
				.max_streams.max = TERN_MAX_STREAMS_LIMIT};
	expect_encoding(&f, "12 d000000000000000");
	f = (struct tern_frame){.type = TERN_FRAME_MAX_STREAMS_UNI, .max_streams.max = 100};
	expect_encoding(&f, "13 4064");
	f = (struct tern_frame){.type = TERN_FRAME_DATA_BLOCKED, .data_blocked.limit = 63};
	expect_encoding(&f, "14 3f");
	f = (struct tern_frame){.type = TERN_FRAME_STREAM_DATA_BLOCKED,
				.stream_data_blocked = {.stream_id = 0, .limit = 0}};
	expect_encoding(&f, "15 00 00");
	f = (struct tern_frame){.type = TERN_FRAME_STREAMS_BLOCKED_BIDI,
				.streams_blocked.limit = 10};
	expect_encoding(&f, "16 0a");
	f = (struct tern_frame){.type = TERN_FRAME_STREAMS_BLOCKED_UNI,
				.streams_blocked.limit = TERN_MAX_STREAMS_LIMIT};
	expect_encoding(&f, "17 d000000000000000");
}

Test(frame_encode, connection_ids_and_paths)
{
	struct tern_frame f = {.type = TERN_FRAME_NEW_CONNECTION_ID,
			       .new_cid = {.seq = 2, .retire_prior_to = 1}};
	static const uint8_t cid[] = {1, 2, 3, 4};
	tern_cid_set(&f.new_cid.cid, cid, 4);
	for (int i = 0; i < 16; i++)
		f.new_cid.reset_token[i] = (uint8_t)i;
	expect_encoding(&f, "18 02 01 04 01020304 000102030405060708090a0b0c0d0e0f");

	uint8_t big[20];
	memset(big, 0xcc, sizeof(big));
	tern_cid_set(&f.new_cid.cid, big, 20);
	f.new_cid.seq = f.new_cid.retire_prior_to = 7;
	expect_encoding(&f, "18 07 07 14 cccccccccccccccccccccccccccccccccccccccc"
			    " 000102030405060708090a0b0c0d0e0f");

	f = (struct tern_frame){.type = TERN_FRAME_RETIRE_CONNECTION_ID, .retire_cid.seq = 5};
	expect_encoding(&f, "19 05");
	f = (struct tern_frame){.type = TERN_FRAME_PATH_CHALLENGE,
				.path.data = {0, 1, 2, 3, 4, 5, 6, 7}};
	expect_encoding(&f, "1a 0001020304050607");
	f.type = TERN_FRAME_PATH_RESPONSE;
	expect_encoding(&f, "1b 0001020304050607");
}

Test(frame_encode, connection_close)
{
	static const uint8_t bad[] = "bad";
	struct tern_frame f = {.type = TERN_FRAME_CONNECTION_CLOSE,
			       .close = {.error_code = TERN_QUIC_PROTOCOL_VIOLATION,
					 .frame_type = 0x08, .reason = bad, .reason_len = 3}};
	expect_encoding(&f, "1c 0a 08 03 626164");
	f = (struct tern_frame){.type = TERN_FRAME_CONNECTION_CLOSE_APP,
				.close = {.error_code = 0x4000}};
	expect_encoding(&f, "1d 80004000 00");
}

Test(frame_encode, datagram)
{
	struct tern_frame f = {.type = TERN_FRAME_DATAGRAM, .datagram = {.data = hi, .len = 2}};
	expect_encoding(&f, "30 6869");
	f.type = TERN_FRAME_DATAGRAM_LEN;
	expect_encoding(&f, "31 02 6869");
	f.datagram.len = 0;
	expect_encoding(&f, "31 00");
	f.type = TERN_FRAME_DATAGRAM;
	expect_encoding(&f, "30");
}

Test(frame_encode, fixed_size_macros_are_worst_cases)
{
	struct tern_frame f = {.type = TERN_FRAME_RESET_STREAM,
			       .reset_stream = {V62, V62, V62}};
	cr_assert_eq(tern_frame_encoded_size(&f), TERN_RESET_STREAM_FRAME_MAX_SIZE);
	f = (struct tern_frame){.type = TERN_FRAME_STOP_SENDING, .stop_sending = {V62, V62}};
	cr_assert_eq(tern_frame_encoded_size(&f), TERN_STOP_SENDING_FRAME_MAX_SIZE);
	f = (struct tern_frame){.type = TERN_FRAME_MAX_DATA, .max_data.max = V62};
	cr_assert_eq(tern_frame_encoded_size(&f), TERN_MAX_DATA_FRAME_MAX_SIZE);
	f = (struct tern_frame){.type = TERN_FRAME_MAX_STREAM_DATA, .max_stream_data = {V62, V62}};
	cr_assert_eq(tern_frame_encoded_size(&f), TERN_MAX_STREAM_DATA_FRAME_MAX_SIZE);
	f = (struct tern_frame){.type = TERN_FRAME_MAX_STREAMS_UNI,
				.max_streams.max = TERN_MAX_STREAMS_LIMIT};
	cr_assert_eq(tern_frame_encoded_size(&f), TERN_MAX_STREAMS_FRAME_MAX_SIZE);
	f = (struct tern_frame){.type = TERN_FRAME_DATA_BLOCKED, .data_blocked.limit = V62};
	cr_assert_eq(tern_frame_encoded_size(&f), TERN_DATA_BLOCKED_FRAME_MAX_SIZE);
	f = (struct tern_frame){.type = TERN_FRAME_STREAM_DATA_BLOCKED,
				.stream_data_blocked = {V62, V62}};
	cr_assert_eq(tern_frame_encoded_size(&f), TERN_STREAM_DATA_BLOCKED_FRAME_MAX_SIZE);
	f = (struct tern_frame){.type = TERN_FRAME_STREAMS_BLOCKED_BIDI,
				.streams_blocked.limit = TERN_MAX_STREAMS_LIMIT};
	cr_assert_eq(tern_frame_encoded_size(&f), TERN_STREAMS_BLOCKED_FRAME_MAX_SIZE);
	f = (struct tern_frame){.type = TERN_FRAME_RETIRE_CONNECTION_ID, .retire_cid.seq = V62};
	cr_assert_eq(tern_frame_encoded_size(&f), TERN_RETIRE_CONNECTION_ID_FRAME_MAX_SIZE);
	f = (struct tern_frame){.type = TERN_FRAME_NEW_CONNECTION_ID,
				.new_cid = {.seq = V62, .retire_prior_to = V62}};
	f.new_cid.cid.len = 20;
	cr_assert_eq(tern_frame_encoded_size(&f), TERN_NEW_CONNECTION_ID_FRAME_MAX_SIZE);
	f = (struct tern_frame){.type = TERN_FRAME_PATH_RESPONSE};
	cr_assert_eq(tern_frame_encoded_size(&f), TERN_PATH_FRAME_SIZE);
	f = (struct tern_frame){.type = TERN_FRAME_PING};
	cr_assert_eq(tern_frame_encoded_size(&f), TERN_PING_FRAME_SIZE);
	f = (struct tern_frame){.type = 0x0f, .stream = {.stream_id = V62, .offset = V62 - 1,
							 .data = abc, .len = 1}};
	cr_assert_eq(tern_frame_encoded_size(&f), TERN_STREAM_FRAME_HEADER_MAX_SIZE - 7 + 1);
	f = (struct tern_frame){.type = TERN_FRAME_CONNECTION_CLOSE,
				.close = {.error_code = V62, .frame_type = V62}};
	cr_assert_eq(tern_frame_encoded_size(&f), TERN_CONNECTION_CLOSE_FRAME_HEADER_MAX_SIZE - 7);
}

/* ---- round trips at every varint size boundary ------------------------------ */

static const uint64_t edges[] = {0,          1,          63,         64,  16383,
				 16384,      0x3fffffff, 0x40000000, V62 - 1, V62};

static void roundtrip(const struct tern_frame *f)
{
	struct tern_frame g;
	size_t n = tern_frame_encoded_size(f);
	uint8_t *w = buf;
	const uint8_t *q = buf;

	cr_assert_gt(n, 0);
	cr_assert_eq(tern_frame_encode(&w, buf + n, f), 0);
	cr_assert_eq((size_t)(w - buf), n);
	cr_assert_eq(tern_frame_decode(&q, buf + n, &g), 0);
	cr_assert_eq(q, buf + n);
	cr_assert(same_frame(f, &g), "round trip of type 0x%llx", (unsigned long long)f->type);
}

Test(frame_roundtrip, varint_fields_at_every_size)
{
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
		uint64_t v = edges[i], w = edges[(i + 3) % 10];
		uint64_t cnt = v > TERN_MAX_STREAMS_LIMIT ? TERN_MAX_STREAMS_LIMIT : v;
		uint64_t off = v > V62 - 3 ? V62 - 3 : v; /* room for 3 data bytes */
		size_t vs = tern_varint_size(v), ws = tern_varint_size(w);
		struct tern_frame f[] = {
			{.type = TERN_FRAME_RESET_STREAM, .reset_stream = {v, w, v}},
			{.type = TERN_FRAME_STOP_SENDING, .stop_sending = {w, v}},
			{.type = TERN_FRAME_MAX_DATA, .max_data.max = v},
			{.type = TERN_FRAME_MAX_STREAM_DATA, .max_stream_data = {v, w}},
			{.type = TERN_FRAME_MAX_STREAMS_BIDI, .max_streams.max = cnt},
			{.type = TERN_FRAME_MAX_STREAMS_UNI, .max_streams.max = cnt},
			{.type = TERN_FRAME_DATA_BLOCKED, .data_blocked.limit = v},
			{.type = TERN_FRAME_STREAM_DATA_BLOCKED, .stream_data_blocked = {w, v}},
			{.type = TERN_FRAME_STREAMS_BLOCKED_BIDI, .streams_blocked.limit = cnt},
			{.type = TERN_FRAME_STREAMS_BLOCKED_UNI, .streams_blocked.limit = cnt},
			{.type = TERN_FRAME_RETIRE_CONNECTION_ID, .retire_cid.seq = v},
			{.type = TERN_FRAME_CONNECTION_CLOSE, .close = {v, w, abc, 3}},
			{.type = TERN_FRAME_CONNECTION_CLOSE_APP, .close = {v, 0, abc, 2}},
			{.type = TERN_FRAME_CRYPTO, .crypto = {off, abc, 3}},
			{.type = 0x0e, .stream = {w, off, hi, 2}},
			{.type = TERN_FRAME_NEW_CONNECTION_ID, .new_cid = {.seq = v, .retire_prior_to = v}},
		};
		f[15].new_cid.cid.len = 8;
		for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++)
			roundtrip(&f[k]);
		cr_assert_eq(tern_frame_encoded_size(&f[0]), 1 + 2 * vs + ws);
		cr_assert_eq(tern_frame_encoded_size(&f[2]), 1 + vs);
	}
}

Test(frame_roundtrip, fields_with_longer_varints_decode_and_reencode_short)
{
	struct tern_frame f;
	size_t used;
	/* RFC 9000 §16 allows any field varint to be longer than needed. */
	cr_assert_eq(decode_hex("04 4004 80000000 c000000000000025", &f, &used), 0);
	cr_assert_eq(used, 15);
	cr_assert_eq(f.reset_stream.stream_id, 4);
	cr_assert_eq(f.reset_stream.error_code, 0);
	cr_assert_eq(f.reset_stream.final_size, 37);
	struct tern_frame copy = f;
	expect_encoding(&copy, "04 04 00 25");
}

/* ---- decoding particulars ---------------------------------------------------- */

/* RFC 9001 Appendix A.3: the server Initial's payload, an ACK then a CRYPTO
 * frame carrying the ServerHello. */
static const char rfc9001_server_payload[] =
	"02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf739"
	"88cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c94"
	"0d89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b00"
	"020304";

Test(frame_decode, rfc9001_server_initial_payload)
{
	uint8_t in[128], out[128];
	size_t n = unhex(rfc9001_server_payload, in, sizeof(in));
	const uint8_t *q = in;
	uint8_t *w = out;
	struct tern_frame f;
	struct tern_ack_iter it;
	struct tern_ack_range r;

	cr_assert_eq(n, 99);
	cr_assert_eq(tern_frame_decode(&q, in + n, &f), 0);
	cr_assert_eq(f.type, TERN_FRAME_ACK);
	cr_assert_eq(f.ack.largest, 0);
	cr_assert_eq(f.ack.ack_delay, 0);
	cr_assert_eq(f.ack.range_count, 0);
	tern_ack_iter_init(&it, &f.ack);
	cr_assert_eq(tern_ack_iter_next(&it, &r), 1);
	cr_assert_eq(r.smallest, 0);
	cr_assert_eq(r.largest, 0);
	cr_assert_eq(tern_ack_iter_next(&it, &r), 0);
	cr_assert_not(tern_frame_is_ack_eliciting(f.type));
	cr_assert_eq(tern_frame_encode(&w, out + sizeof(out), &f), 0);

	cr_assert_eq(tern_frame_decode(&q, in + n, &f), 0);
	cr_assert_eq(f.type, TERN_FRAME_CRYPTO);
	cr_assert_eq(f.crypto.offset, 0);
	cr_assert_eq(f.crypto.len, 90);
	cr_assert_eq(f.crypto.data, in + 9, "CRYPTO data must point into the input");
	cr_assert_eq(f.crypto.data[0], 0x02, "a TLS ServerHello");
	cr_assert_eq(q, in + n);
	cr_assert_eq(tern_frame_encode(&w, out + sizeof(out), &f), 0);

	cr_assert_eq((size_t)(w - out), n);
	cr_assert_arr_eq(out, in, n);
}

Test(frame_decode, padding_run_is_one_frame)
{
	uint8_t in[1200];
	struct tern_frame f;
	const uint8_t *q = in;

	memset(in, 0, sizeof(in));
	in[0] = 0x01;          /* PING */
	in[1000] = 0x1e;       /* HANDSHAKE_DONE in the middle of the padding */
	cr_assert_eq(tern_frame_decode(&q, in + sizeof(in), &f), 0);
	cr_assert_eq(f.type, TERN_FRAME_PING);
	cr_assert_eq(tern_frame_decode(&q, in + sizeof(in), &f), 0);
	cr_assert_eq(f.type, TERN_FRAME_PADDING);
	cr_assert_eq(f.padding.len, 999);
	cr_assert_eq(q, in + 1000);
	cr_assert_eq(tern_frame_decode(&q, in + sizeof(in), &f), 0);
	cr_assert_eq(f.type, TERN_FRAME_HANDSHAKE_DONE);
	cr_assert_eq(tern_frame_decode(&q, in + sizeof(in), &f), 0);
	cr_assert_eq(f.type, TERN_FRAME_PADDING);
	cr_assert_eq(f.padding.len, 199);
	cr_assert_eq(q, in + sizeof(in));
}

Test(frame_decode, stream_without_len_takes_the_rest)
{
	struct tern_frame f;
	size_t used;
	cr_assert_eq(decode_hex("0d 02 05 6869 6a", &f, &used), 0);
	cr_assert_eq(used, 6);
	cr_assert_eq(f.stream.stream_id, 2);
	cr_assert_eq(f.stream.offset, 5);
	cr_assert_eq(f.stream.len, 3);
	cr_assert_eq(f.stream.data, want + 3);
	cr_assert(tern_frame_stream_fin(&f));
	cr_assert_eq(decode_hex("08 00", &f, &used), 0);
	cr_assert_eq(f.stream.len, 0);
	cr_assert_eq(f.stream.offset, 0);
	cr_assert_eq(decode_hex("30 0102", &f, &used), 0);
	cr_assert_eq(f.datagram.len, 2);
	cr_assert_eq(f.datagram.data, want + 1);
	/* With LEN, what follows is the next frame. */
	cr_assert_eq(decode_hex("0a 04 01 61 01", &f, &used), 0);
	cr_assert_eq(used, 4);
	cr_assert_eq(decode_hex("31 01 61 01", &f, &used), 0);
	cr_assert_eq(used, 3);
}

Test(frame_decode, ack_iteration_with_gaps)
{
	struct tern_frame f;
	struct tern_ack_iter it;
	struct tern_ack_range r;
	/* [95,100] gap 1 [90,92] gap 3 [80,85] gap 68 [0,10] */
	cr_assert_eq(decode_hex("02 4064 07 03 05 01 02 03 05 4044 0a", &f, NULL), 0);
	static const struct tern_ack_range exp[] = {{95, 100}, {90, 92}, {80, 85}, {0, 10}};
	tern_ack_iter_init(&it, &f.ack);
	for (size_t i = 0; i < 4; i++) {
		cr_assert_eq(tern_ack_iter_next(&it, &r), 1);
		cr_assert_eq(r.smallest, exp[i].smallest, "range %zu", i);
		cr_assert_eq(r.largest, exp[i].largest, "range %zu", i);
	}
	cr_assert_eq(tern_ack_iter_next(&it, &r), 0);
	cr_assert_eq(tern_ack_iter_next(&it, &r), 0);
}

Test(frame_decode, ack_ranges_reaching_exactly_zero_are_valid)
{
	struct tern_frame f;
	cr_assert_eq(decode_hex("02 05 00 00 05", &f, NULL), 0); /* [0,5] */
	/* [4,5], gap 2 -> largest 0, length 0 -> [0,0] */
	cr_assert_eq(decode_hex("02 05 00 01 01 02 00", &f, NULL), 0);
	struct tern_ack_iter it;
	struct tern_ack_range r;
	tern_ack_iter_init(&it, &f.ack);
	cr_assert_eq(tern_ack_iter_next(&it, &r), 1);
	cr_assert_eq(tern_ack_iter_next(&it, &r), 1);
	cr_assert_eq(r.smallest, 0);
	cr_assert_eq(r.largest, 0);
}

/* ---- malformed input ------------------------------------------------------- */

Test(frame_malformed, unknown_types)
{
	expect_decode_error("1f", FEE);
	expect_decode_error("20", FEE);
	expect_decode_error("2f", FEE);
	expect_decode_error("32 00", FEE);
	expect_decode_error("3f", FEE);
	expect_decode_error("4040", FEE); /* 0x40 in its shortest form */
	expect_decode_error("80004000", FEE);
	expect_decode_error("bfffffff", FEE);
	expect_decode_error("ffffffffffffffff", FEE);
	expect_decode_error("", FEE);
}

Test(frame_malformed, non_minimal_frame_type)
{
	/* RFC 9000 §12.4: a longer-than-needed type MAY be PROTOCOL_VIOLATION. */
	expect_decode_error("4001", PV);
	expect_decode_error("4000", PV);
	expect_decode_error("80000001", PV);
	expect_decode_error("c000000000000001", PV);
	expect_decode_error("4002 00 00 00 00", PV);
	expect_decode_error("400f 00 00 00", PV);
	expect_decode_error("4030", PV);
	expect_decode_error("401f", PV); /* checked before whether the type is known */
	expect_decode_error("80000040", PV);
	/* A truncated type varint is FRAME_ENCODING_ERROR. */
	expect_decode_error("40", FEE);
	expect_decode_error("c0000000000000", FEE);
}

Test(frame_malformed, ack_ranges)
{
	expect_decode_error("02 05 00 00 06", FEE);      /* first range above largest */
	expect_decode_error("02 00 00 00 01", FEE);
	expect_decode_error("02 05 00 01 01 03 00", FEE); /* gap past 0: 4-3-2 < 0 */
	expect_decode_error("02 05 00 01 01 02 01", FEE); /* length past 0 */
	expect_decode_error("02 05 00 01 04 00 00", FEE); /* smallest 1: gap 0 is -1 */
	expect_decode_error("02 05 00 01 05 00 00", FEE); /* smallest 0: nothing below */
	expect_decode_error("02 4064 00 02 00 00 00 bfffffff 00", FEE);
	/* A huge range count cannot outrun the input. */
	expect_decode_error("02 3f 00 bfffffff 00 00 00 00 00", FEE);
	expect_decode_error("02 ffffffffffffffff 00 ffffffffffffffff 00", FEE);
	/* ACK_ECN needs all three counts. */
	expect_decode_error("03 05 00 00 00 01 02", FEE);
}

Test(frame_malformed, stream_and_crypto_offset_bound)
{
	/* RFC 9000 §19.8 and §19.6: offset + length above 2^62-1. */
	expect_decode_error("0e 00 ffffffffffffffff 01 41", FEE);
	expect_decode_error("0c 00 ffffffffffffffff 41", FEE);
	expect_decode_error("0e 00 fffffffffffffffe 02 4142", FEE);
	expect_decode_error("06 ffffffffffffffff 01 41", FEE);
	struct tern_frame f;
	cr_assert_eq(decode_hex("0e 00 ffffffffffffffff 00", &f, NULL), 0);
	cr_assert_eq(f.stream.offset, V62);
	cr_assert_eq(decode_hex("0e 00 fffffffffffffffe 01 41", &f, NULL), 0);
	cr_assert_eq(decode_hex("0c 00 fffffffffffffffe 41", &f, NULL), 0);
	cr_assert_eq(decode_hex("06 fffffffffffffffe 01 41", &f, NULL), 0);
	cr_assert_eq(decode_hex("06 ffffffffffffffff 00", &f, NULL), 0);
	/* A Length beyond the packet. */
	expect_decode_error("0a 00 02 41", FEE);
	expect_decode_error("06 00 4002 41", FEE);
	expect_decode_error("0a 00 ffffffffffffffff 41", FEE);
}

Test(frame_malformed, stream_counts_above_2_60)
{
	expect_decode_error("12 d000000000000001", FEE);
	expect_decode_error("13 ffffffffffffffff", FEE);
	expect_decode_error("16 d000000000000001", FEE);
	expect_decode_error("17 e000000000000000", FEE);
	struct tern_frame f;
	cr_assert_eq(decode_hex("13 d000000000000000", &f, NULL), 0);
	cr_assert_eq(f.max_streams.max, TERN_MAX_STREAMS_LIMIT);
	cr_assert_eq(decode_hex("16 d000000000000000", &f, NULL), 0);
	cr_assert_eq(f.streams_blocked.limit, TERN_MAX_STREAMS_LIMIT);
}

Test(frame_malformed, new_connection_id)
{
	const char *tok = " 000102030405060708090a0b0c0d0e0f";
	char h[256];
	snprintf(h, sizeof(h), "18 01 00 00 %s", tok); /* length 0 */
	expect_decode_error(h, FEE);
	snprintf(h, sizeof(h), "18 01 00 15 %s%s", "cccccccccccccccccccccccccccccccccccccccccc", tok);
	expect_decode_error(h, FEE); /* length 21 */
	snprintf(h, sizeof(h), "18 01 02 01 aa%s", tok); /* retire_prior_to > seq */
	expect_decode_error(h, FEE);
	snprintf(h, sizeof(h), "18 01 ff 01 aa%s", tok);
	expect_decode_error(h, FEE);
	snprintf(h, sizeof(h), "18 01 01 01 aa%s", tok);
	struct tern_frame f;
	cr_assert_eq(decode_hex(h, &f, NULL), 0);
	cr_assert_eq(f.new_cid.cid.len, 1);
	cr_assert_eq(f.new_cid.cid.bytes[0], 0xaa);
	cr_assert_eq(f.new_cid.reset_token[15], 0x0f);
}

Test(frame_malformed, empty_token_and_short_fields)
{
	expect_decode_error("07 00", FEE);
	expect_decode_error("07 02 61", FEE);
	expect_decode_error("1a 00010203040506", FEE);
	expect_decode_error("1c 00 00 04 616263", FEE);
	expect_decode_error("1d 00 01", FEE);
	expect_decode_error("31 03 6869", FEE);
}

/* Every frame that carries its own length fails at every cut. */
Test(frame_malformed, truncation_at_every_byte)
{
	static const char *const frames[] = {
		"01",
		"1e",
		"02 4064 19 01 02 03 04",
		"03 4064 19 01 02 03 04 01 02 3f",
		"04 04 4100 80012345",
		"05 08 4000",
		"06 43e8 03 616263",
		"07 04 deadbeef",
		"0a 04 02 6869",
		"0b 04 00",
		"0e 01 4040 02 6869",
		"0f 01 4040 02 6869",
		"10 ffffffffffffffff",
		"11 04 4400",
		"12 d000000000000000",
		"13 4064",
		"14 3f",
		"15 00 80000000",
		"16 0a",
		"17 d000000000000000",
		"18 02 01 04 01020304 000102030405060708090a0b0c0d0e0f",
		"19 05",
		"1a 0001020304050607",
		"1b 0001020304050607",
		"1c 0a 08 03 626164",
		"1d 80004000 00",
		"31 02 6869",
	};
	for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++)
		expect_truncations_fail(frames[i]);
}

/* Frames that run to the end of the packet fail only inside the header. */
Test(frame_malformed, truncation_of_open_ended_frames)
{
	struct tern_frame f;
	static const char *const headers[] = {"08 4004", "09 00", "0c 4004 4005", "0d 01 80000005"};
	for (size_t i = 0; i < 4; i++) {
		size_t n = unhex(headers[i], want, sizeof(want));
		for (size_t len = 0; len < n; len++) {
			const uint8_t *q = want;
			cr_assert_eq(tern_frame_decode(&q, want + len, &f), FEE);
		}
		const uint8_t *q = want;
		cr_assert_eq(tern_frame_decode(&q, want + n, &f), 0);
		cr_assert_eq(f.stream.len, 0);
	}
}

/* ---- encoder argument checks ------------------------------------------------- */

static void expect_inval(const struct tern_frame *f)
{
	uint8_t *w = buf;
	cr_assert_eq(tern_frame_encoded_size(f), 0, "type 0x%llx", (unsigned long long)f->type);
	cr_assert_eq(tern_frame_encode(&w, buf + sizeof(buf), f), TERN_ERR_INVAL,
		     "type 0x%llx", (unsigned long long)f->type);
	cr_assert_eq(w, buf);
}

Test(frame_encode, rejects_what_the_decoder_would)
{
	struct tern_frame f = {.type = TERN_FRAME_MAX_DATA, .max_data.max = V62 + 1};
	expect_inval(&f);
	f = (struct tern_frame){.type = TERN_FRAME_MAX_STREAMS_BIDI,
				.max_streams.max = TERN_MAX_STREAMS_LIMIT + 1};
	expect_inval(&f);
	f.type = TERN_FRAME_STREAMS_BLOCKED_UNI;
	expect_inval(&f);
	f = (struct tern_frame){.type = 0x08, .stream = {.stream_id = 0, .offset = 1}};
	expect_inval(&f); /* an offset without OFF */
	f = (struct tern_frame){.type = 0x0e, .stream = {.offset = V62, .data = abc, .len = 1}};
	expect_inval(&f);
	f = (struct tern_frame){.type = 0x0a, .stream = {.data = NULL, .len = 1}};
	expect_inval(&f);
	f = (struct tern_frame){.type = TERN_FRAME_CRYPTO, .crypto = {V62, abc, 1}};
	expect_inval(&f);
	f = (struct tern_frame){.type = TERN_FRAME_NEW_TOKEN, .new_token = {abc, 0}};
	expect_inval(&f);
	f = (struct tern_frame){.type = TERN_FRAME_NEW_CONNECTION_ID, .new_cid = {.seq = 1}};
	expect_inval(&f); /* empty CID */
	f.new_cid.cid.len = 21;
	expect_inval(&f);
	f.new_cid.cid.len = 4;
	f.new_cid.retire_prior_to = 2;
	expect_inval(&f);
	f = (struct tern_frame){.type = TERN_FRAME_CONNECTION_CLOSE, .close = {.reason_len = 2}};
	expect_inval(&f);
	f = (struct tern_frame){.type = TERN_FRAME_PADDING, .padding.len = 0};
	expect_inval(&f);
	f = (struct tern_frame){.type = 0x1f};
	expect_inval(&f);
	f = (struct tern_frame){.type = 0x40};
	expect_inval(&f);
	/* A hand-built ACK whose raw ranges do not hold together. */
	static const uint8_t bad_pairs[] = {0x05, 0x00};
	f = (struct tern_frame){.type = TERN_FRAME_ACK,
				.ack = {.largest = 5, .first_range = 1, .range_count = 1,
					.ranges = bad_pairs, .ranges_len = 2}};
	expect_inval(&f);
	f.ack.range_count = 2; /* more pairs claimed than present */
	expect_inval(&f);
	static const uint8_t extra[] = {0x00, 0x00, 0x00}; /* one pair plus a stray byte */
	f.ack.ranges = extra;
	f.ack.range_count = 1;
	f.ack.ranges_len = 3;
	expect_inval(&f);
	f.ack.ranges_len = 2;
	cr_assert_eq(tern_frame_encoded_size(&f), 7);
	f.ack.first_range = 6;
	f.ack.range_count = 0;
	f.ack.ranges_len = 0;
	expect_inval(&f);
}

/* ---- tern_ack_encode ----------------------------------------------------------- */

static const struct tern_ack_range four[] = {{95, 100}, {90, 92}, {80, 85}, {0, 10}};

Test(ack_encode, all_ranges_fit)
{
	uint8_t *w = buf;
	uint8_t exp[32];
	size_t n = unhex("02 4064 07 03 05 01 02 03 05 4044 0a", exp, sizeof(exp));

	cr_assert_eq(tern_ack_encode(&w, buf + sizeof(buf), four, 4, 7, NULL), 4);
	cr_assert_eq((size_t)(w - buf), n);
	cr_assert_arr_eq(buf, exp, n);

	struct tern_ecn_counts ecn = {1, 2, 300};
	n = unhex("03 4064 07 03 05 01 02 03 05 4044 0a 01 02 412c", exp, sizeof(exp));
	w = buf;
	cr_assert_eq(tern_ack_encode(&w, buf + sizeof(buf), four, 4, 7, &ecn), 4);
	cr_assert_eq((size_t)(w - buf), n);
	cr_assert_arr_eq(buf, exp, n);

	/* The iterator gives the input back. */
	struct tern_frame f;
	const uint8_t *q = buf;
	struct tern_ack_iter it;
	struct tern_ack_range r;
	cr_assert_eq(tern_frame_decode(&q, buf + n, &f), 0);
	cr_assert_eq(f.ack.ecn.ce, 300);
	tern_ack_iter_init(&it, &f.ack);
	for (size_t i = 0; i < 4; i++) {
		cr_assert_eq(tern_ack_iter_next(&it, &r), 1);
		cr_assert_eq(r.smallest, four[i].smallest);
		cr_assert_eq(r.largest, four[i].largest);
	}
	cr_assert_eq(tern_ack_iter_next(&it, &r), 0);
}

Test(ack_encode, fits_as_many_ranges_as_the_buffer_allows)
{
	/* 1 range: 6 bytes; 2: 8; 3: 10; 4: 13. */
	static const struct {
		size_t cap;
		int ranges;
		size_t used;
	} cases[] = {{5, TERN_ERR_NOBUF, 0}, {6, 1, 6},   {7, 1, 6},   {8, 2, 8},  {9, 2, 8},
		     {10, 3, 10},           {11, 3, 10}, {12, 3, 10}, {13, 4, 13}, {100, 4, 13}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t *w = buf;
		cr_assert_eq(tern_ack_encode(&w, buf + cases[i].cap, four, 4, 7, NULL),
			     cases[i].ranges, "cap %zu", cases[i].cap);
		cr_assert_eq((size_t)(w - buf), cases[i].used, "cap %zu", cases[i].cap);
		if (cases[i].ranges > 0) {
			struct tern_frame f;
			const uint8_t *q = buf;
			cr_assert_eq(tern_frame_decode(&q, w, &f), 0);
			cr_assert_eq(q, w);
			cr_assert_eq(f.ack.range_count, (uint64_t)cases[i].ranges - 1);
		}
	}
	/* ECN counts (3 bytes here) are reserved before any extra range. */
	struct tern_ecn_counts ecn = {0, 0, 0};
	uint8_t *w = buf;
	cr_assert_eq(tern_ack_encode(&w, buf + 8, four, 4, 7, &ecn), TERN_ERR_NOBUF);
	cr_assert_eq(w, buf);
	cr_assert_eq(tern_ack_encode(&w, buf + 10, four, 4, 7, &ecn), 1);
	cr_assert_eq(w - buf, 9);
	w = buf;
	cr_assert_eq(tern_ack_encode(&w, buf + 11, four, 4, 7, &ecn), 2);
	cr_assert_eq(w - buf, 11);
}

Test(ack_encode, range_count_varint_growth)
{
	/* 70 single-packet ranges two apart: each pair is "00 00". Range Count
	 * takes one byte up to 63 and two from 64. */
	struct tern_ack_range r[70];
	for (int i = 0; i < 70; i++)
		r[i].smallest = r[i].largest = 1000 - 2 * (uint64_t)i;
	static const struct {
		size_t cap;
		int ranges;
	} cases[] = {{132, 64}, {133, 64}, {134, 64}, {135, 65}, {136, 65}, {137, 66}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t *w = buf;
		int k = tern_ack_encode(&w, buf + cases[i].cap, r, 70, 0, NULL);
		cr_assert_eq(k, cases[i].ranges, "cap %zu: %d", cases[i].cap, k);
		cr_assert_leq((size_t)(w - buf), cases[i].cap);
		struct tern_frame f;
		const uint8_t *q = buf;
		cr_assert_eq(tern_frame_decode(&q, w, &f), 0);
		cr_assert_eq(f.ack.range_count, (uint64_t)k - 1);
	}
}

Test(ack_encode, rejects_bad_ranges)
{
	uint8_t *w = buf;
	uint8_t *e = buf + sizeof(buf);
	struct tern_ack_range adj[] = {{5, 10}, {4, 4}};
	struct tern_ack_range ovl[] = {{5, 10}, {3, 6}};
	struct tern_ack_range inv[] = {{10, 5}};
	struct tern_ack_range big[] = {{0, V62 + 1}};
	struct tern_ack_range ok[] = {{5, 10}, {3, 3}};
	struct tern_ack_range asc[] = {{3, 3}, {5, 10}};
	struct tern_ecn_counts ecn = {V62 + 1, 0, 0};

	cr_assert_eq(tern_ack_encode(&w, e, adj, 2, 0, NULL), TERN_ERR_INVAL);
	cr_assert_eq(tern_ack_encode(&w, e, ovl, 2, 0, NULL), TERN_ERR_INVAL);
	cr_assert_eq(tern_ack_encode(&w, e, inv, 1, 0, NULL), TERN_ERR_INVAL);
	cr_assert_eq(tern_ack_encode(&w, e, big, 1, 0, NULL), TERN_ERR_INVAL);
	cr_assert_eq(tern_ack_encode(&w, e, asc, 2, 0, NULL), TERN_ERR_INVAL);
	cr_assert_eq(tern_ack_encode(&w, e, ok, 0, 0, NULL), TERN_ERR_INVAL);
	cr_assert_eq(tern_ack_encode(&w, e, ok, 2, V62 + 1, NULL), TERN_ERR_INVAL);
	cr_assert_eq(tern_ack_encode(&w, e, ok, 2, 0, &ecn), TERN_ERR_INVAL);
	cr_assert_eq(w, buf);
	cr_assert_eq(tern_ack_encode(&w, e, ok, 2, 0, NULL), 2);
	uint8_t exp[8];
	size_t n = unhex("02 0a 00 01 05 00 00", exp, sizeof(exp));
	cr_assert_eq((size_t)(w - buf), n);
	cr_assert_arr_eq(buf, exp, n);
}

/* ---- tern_stream_frame_fit ------------------------------------------------------ */

Test(stream_fit, cases)
{
	int wl = -1;
	/* id 4, offset 0: header 2 bytes. */
	cr_assert_eq(tern_stream_frame_fit(4, 0, 100, 50, &wl), 48);
	cr_assert_eq(wl, 0);
	cr_assert_eq(tern_stream_frame_fit(4, 0, 48, 50, &wl), 48);
	cr_assert_eq(wl, 0);
	cr_assert_eq(tern_stream_frame_fit(4, 0, 47, 50, &wl), 47);
	cr_assert_eq(wl, 1);
	cr_assert_eq(tern_stream_frame_fit(4, 0, 10, 50, &wl), 10);
	cr_assert_eq(wl, 1);
	/* Length would need 2 bytes but only one spare: no Length, ends early. */
	cr_assert_eq(tern_stream_frame_fit(4, 0, 97, 100, &wl), 97);
	cr_assert_eq(wl, 0);
	cr_assert_eq(tern_stream_frame_fit(4, 0, 96, 100, &wl), 96);
	cr_assert_eq(wl, 1);
	/* Offset 1000 is a 2-byte field: header 1 + 1 + 2. */
	cr_assert_eq(tern_stream_frame_fit(0, 1000, 500, 104, &wl), 100);
	cr_assert_eq(wl, 0);
	/* Nothing fits. */
	cr_assert_eq(tern_stream_frame_fit(4, 0, 1, 2, &wl), TERN_ERR_NOBUF);
	cr_assert_eq(tern_stream_frame_fit(4, 0, 0, 1, &wl), TERN_ERR_NOBUF);
	cr_assert_eq(tern_stream_frame_fit(4, 0, 1, 0, &wl), TERN_ERR_NOBUF);
	/* A bare FIN. */
	cr_assert_eq(tern_stream_frame_fit(4, 0, 0, 2, &wl), 0);
	cr_assert_eq(wl, 0);
	cr_assert_eq(tern_stream_frame_fit(4, 0, 0, 3, &wl), 0);
	cr_assert_eq(wl, 1);
	/* Out of range. */
	cr_assert_eq(tern_stream_frame_fit(V62 + 1, 0, 1, 100, &wl), TERN_ERR_INVAL);
	cr_assert_eq(tern_stream_frame_fit(0, V62, 1, 100, &wl), TERN_ERR_INVAL);
	cr_assert_eq(tern_stream_frame_fit(0, V62 - 1, 1, 100, &wl), 1);
}

Test(stream_fit, chosen_frame_always_fits_and_fills)
{
	static const uint64_t lens[] = {0, 1, 5, 62, 63, 64, 65, 200, 16383, 16384, 20000};
	static const uint64_t offs[] = {0, 1, 63, 64, 16384, 0x40000000};
	static uint8_t data[20000];

	for (size_t o = 0; o < sizeof(offs) / sizeof(offs[0]); o++)
		for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++)
			for (size_t space = 0; space < 300; space += 1) {
				int wl = -1;
				int n = tern_stream_frame_fit(100, offs[o], lens[l], space, &wl);
				if (n < 0) {
					cr_assert_eq(n, TERN_ERR_NOBUF);
					continue;
				}
				cr_assert_leq((uint64_t)n, lens[l]);
				struct tern_frame f = {
					.type = TERN_FRAME_STREAM | (offs[o] ? TERN_FRAME_STREAM_OFF : 0) |
						(wl ? TERN_FRAME_STREAM_LEN : 0),
					.stream = {100, offs[o], data, (uint64_t)n}};
				size_t sz = tern_frame_encoded_size(&f);
				cr_assert_leq(sz, space, "off %llu len %llu space %zu",
					      (unsigned long long)offs[o],
					      (unsigned long long)lens[l], space);
				/* Partial data always fills the space exactly. */
				if ((uint64_t)n < lens[l])
					cr_assert_eq(sz, space);
				/* Without Length, at most 7 bytes are left over. */
				if (!wl)
					cr_assert_leq(space - sz, 7);
			}
}

/* ---- RFC 9000 §12.4 Table 3 and §13.2 ------------------------------------------ */

Test(frame_rules, table3_permissions)
{
	/* Pkts column of Table 3: I, 0, H, 1. */
	static const struct {
		uint64_t type;
		const char *pkts;
	} t3[] = {
		{0x00, "I0H1"}, {0x01, "I0H1"}, {0x02, "I_H1"}, {0x03, "I_H1"}, {0x04, "_0_1"},
		{0x05, "_0_1"}, {0x06, "I_H1"}, {0x07, "___1"}, {0x08, "_0_1"}, {0x09, "_0_1"},
		{0x0a, "_0_1"}, {0x0b, "_0_1"}, {0x0c, "_0_1"}, {0x0d, "_0_1"}, {0x0e, "_0_1"},
		{0x0f, "_0_1"}, {0x10, "_0_1"}, {0x11, "_0_1"}, {0x12, "_0_1"}, {0x13, "_0_1"},
		{0x14, "_0_1"}, {0x15, "_0_1"}, {0x16, "_0_1"}, {0x17, "_0_1"}, {0x18, "_0_1"},
		{0x19, "_0_1"}, {0x1a, "_0_1"}, {0x1b, "___1"}, {0x1c, "I0H1"}, {0x1d, "_0_1"},
		{0x1e, "___1"}, {0x30, "_0_1"}, {0x31, "_0_1"},
	};
	static const enum tern_pkt_type pt[4] = {TERN_PKT_INITIAL, TERN_PKT_0RTT,
						 TERN_PKT_HANDSHAKE, TERN_PKT_1RTT};
	for (size_t i = 0; i < sizeof(t3) / sizeof(t3[0]); i++)
		for (int k = 0; k < 4; k++) {
			int exp = t3[i].pkts[k] == '_' ? PV : 0;
			cr_assert_eq(tern_frame_allowed(t3[i].type, pt[k]), exp,
				     "type 0x%02llx pkt %d", (unsigned long long)t3[i].type, k);
		}
	cr_assert_eq(tern_frame_allowed(TERN_FRAME_PING, TERN_PKT_RETRY), PV);
	cr_assert_eq(tern_frame_allowed(TERN_FRAME_PING, TERN_PKT_VN), PV);
	cr_assert_eq(tern_frame_allowed(0x1f, TERN_PKT_1RTT), FEE);
	cr_assert_eq(tern_frame_allowed(0x21, TERN_PKT_INITIAL), FEE);
	cr_assert_eq(tern_frame_allowed(UINT64_MAX, TERN_PKT_1RTT), FEE);
}

Test(frame_rules, ack_eliciting)
{
	for (uint64_t t = 0; t <= 0x1e; t++) {
		int exp = !(t == 0x00 || t == 0x02 || t == 0x03 || t == 0x1c || t == 0x1d);
		cr_assert_eq(tern_frame_is_ack_eliciting(t), exp, "type 0x%02llx",
			     (unsigned long long)t);
	}
	cr_assert_eq(tern_frame_is_ack_eliciting(TERN_FRAME_DATAGRAM), 1);
	cr_assert_eq(tern_frame_is_ack_eliciting(TERN_FRAME_DATAGRAM_LEN), 1);
}
