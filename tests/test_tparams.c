/* Transport parameters: RFC 9000 §7.3, §7.4, §18; RFC 9368, 9221, 9287. */
#include <criterion/criterion.h>

#include "tern/tparams.h"

#define TPE TERN_ERR_QUIC(TERN_QUIC_TRANSPORT_PARAMETER_ERROR)
#define PV TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION)
#define CLIENT 0
#define SERVER 1

/* Field-by-field comparison of what both structs say is present, plus the
 * defaults that absence implies. Grease is encode-only and not compared. */
static int tp_equal(const struct tern_tparams *a, const struct tern_tparams *b)
{
	uint32_t m = TERN_TP_HAS_GREASE;
	if ((a->present & ~m) != (b->present & ~m))
		return 0;
	if (!tern_cid_equal(&a->original_dcid, &b->original_dcid) ||
	    !tern_cid_equal(&a->initial_scid, &b->initial_scid) ||
	    !tern_cid_equal(&a->retry_scid, &b->retry_scid))
		return 0;
	if (memcmp(a->stateless_reset_token, b->stateless_reset_token, 16) != 0)
		return 0;
	if (a->max_idle_timeout != b->max_idle_timeout ||
	    a->max_udp_payload_size != b->max_udp_payload_size ||
	    a->initial_max_data != b->initial_max_data ||
	    a->initial_max_stream_data_bidi_local != b->initial_max_stream_data_bidi_local ||
	    a->initial_max_stream_data_bidi_remote != b->initial_max_stream_data_bidi_remote ||
	    a->initial_max_stream_data_uni != b->initial_max_stream_data_uni ||
	    a->initial_max_streams_bidi != b->initial_max_streams_bidi ||
	    a->initial_max_streams_uni != b->initial_max_streams_uni ||
	    a->ack_delay_exponent != b->ack_delay_exponent ||
	    a->max_ack_delay != b->max_ack_delay ||
	    a->active_connection_id_limit != b->active_connection_id_limit ||
	    a->max_datagram_frame_size != b->max_datagram_frame_size)
		return 0;
	const struct tern_tparams_preferred_address *pa = &a->preferred_address,
						    *pb = &b->preferred_address;
	if (memcmp(pa->ipv4, pb->ipv4, 4) || pa->ipv4_port != pb->ipv4_port ||
	    memcmp(pa->ipv6, pb->ipv6, 16) || pa->ipv6_port != pb->ipv6_port ||
	    !tern_cid_equal(&pa->cid, &pb->cid) || memcmp(pa->reset_token, pb->reset_token, 16))
		return 0;
	const struct tern_tparams_version_info *va = &a->version_info, *vb = &b->version_info;
	if (va->chosen != vb->chosen || va->n_available != vb->n_available)
		return 0;
	return va->n_available == 0 || memcmp(va->available, vb->available, 4 * va->n_available) == 0;
}

/* ---- the hand-computed client block ------------------------------------ */

static const uint8_t vi_avail[] = {0x6b, 0x33, 0x43, 0xcf, 0x00, 0x00, 0x00, 0x01};
static const uint8_t grease_val[] = {0xde, 0xad};

static void client_tp(struct tern_tparams *tp)
{
	tern_tparams_init(tp);
	tp->present = TERN_TP_HAS_MAX_IDLE_TIMEOUT | TERN_TP_HAS_MAX_UDP_PAYLOAD_SIZE |
		      TERN_TP_HAS_INITIAL_MAX_DATA | TERN_TP_HAS_INITIAL_MAX_STREAM_DATA_BIDI_LOCAL |
		      TERN_TP_HAS_INITIAL_MAX_STREAMS_BIDI | TERN_TP_HAS_ACK_DELAY_EXPONENT |
		      TERN_TP_HAS_DISABLE_ACTIVE_MIGRATION | TERN_TP_HAS_ACTIVE_CONNECTION_ID_LIMIT |
		      TERN_TP_HAS_INITIAL_SCID | TERN_TP_HAS_VERSION_INFORMATION |
		      TERN_TP_HAS_MAX_DATAGRAM_FRAME_SIZE | TERN_TP_HAS_GREASE_QUIC_BIT |
		      TERN_TP_HAS_GREASE;
	tp->max_idle_timeout = 30000;
	tp->max_udp_payload_size = 1472;
	tp->initial_max_data = 1048576;
	tp->initial_max_stream_data_bidi_local = 262144;
	tp->initial_max_streams_bidi = 100;
	tp->ack_delay_exponent = 3;
	tp->active_connection_id_limit = 8;
	tern_cid_set(&tp->initial_scid, (const uint8_t *)"\xc1\xc2\xc3\xc4", 4);
	tp->version_info.chosen = TERN_VERSION_1;
	tp->version_info.available = vi_avail;
	tp->version_info.n_available = 2;
	tp->max_datagram_frame_size = 65535;
	tp->grease.id = TERN_TP_GREASE_ID(2); /* 89 */
	tp->grease.value = grease_val;
	tp->grease.len = sizeof(grease_val);
}

static const uint8_t client_block[] = {
	0x01, 0x04, 0x80, 0x00, 0x75, 0x30,             /* max_idle_timeout 30000 */
	0x03, 0x02, 0x45, 0xc0,                         /* max_udp_payload_size 1472 */
	0x04, 0x04, 0x80, 0x10, 0x00, 0x00,             /* initial_max_data 2^20 */
	0x05, 0x04, 0x80, 0x04, 0x00, 0x00,             /* bidi_local 2^18 */
	0x08, 0x02, 0x40, 0x64,                         /* initial_max_streams_bidi 100 */
	0x0a, 0x01, 0x03,                               /* ack_delay_exponent 3 */
	0x0c, 0x00,                                     /* disable_active_migration */
	0x0e, 0x01, 0x08,                               /* active_connection_id_limit 8 */
	0x0f, 0x04, 0xc1, 0xc2, 0xc3, 0xc4,             /* initial_source_connection_id */
	0x11, 0x0c, 0x00, 0x00, 0x00, 0x01,             /* version_information: v1 */
	0x6b, 0x33, 0x43, 0xcf, 0x00, 0x00, 0x00, 0x01, /*   available: v2, v1 */
	0x20, 0x04, 0x80, 0x00, 0xff, 0xff,             /* max_datagram_frame_size 65535 */
	0x6a, 0xb2, 0x00,                               /* grease_quic_bit */
	0x40, 0x59, 0x02, 0xde, 0xad,                   /* reserved id 31*2+27 */
};

/* Offsets where a parameter starts: a block cut there is still valid. */
static const size_t client_bounds[] = {0, 6, 10, 16, 22, 26, 29, 31, 34, 40, 54, 60, 63, 68};

/* ---- the hand-computed server block ------------------------------------ */

static void server_tp(struct tern_tparams *tp)
{
	static const uint8_t odcid[] = {0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08};
	tern_tparams_init(tp);
	tp->present = TERN_TP_HAS_ORIGINAL_DCID | TERN_TP_HAS_STATELESS_RESET_TOKEN |
		      TERN_TP_HAS_INITIAL_MAX_STREAMS_UNI | TERN_TP_HAS_MAX_ACK_DELAY |
		      TERN_TP_HAS_PREFERRED_ADDRESS | TERN_TP_HAS_INITIAL_SCID | TERN_TP_HAS_RETRY_SCID;
	tern_cid_set(&tp->original_dcid, odcid, sizeof(odcid));
	for (int i = 0; i < 16; i++) {
		tp->stateless_reset_token[i] = (uint8_t)i;
		tp->preferred_address.reset_token[i] = (uint8_t)(0xf0 + i);
	}
	tp->initial_max_streams_uni = UINT64_C(1) << 60;
	tp->max_ack_delay = 16383;
	struct tern_tparams_preferred_address *pa = &tp->preferred_address;
	memcpy(pa->ipv4, "\xc0\x00\x02\x01", 4); /* 192.0.2.1 */
	pa->ipv4_port = 443;
	memcpy(pa->ipv6, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16); /* 2001:db8::1 */
	pa->ipv6_port = 4433;
	tern_cid_set(&pa->cid, (const uint8_t *)"\xaa\xbb", 2);
	tern_cid_set(&tp->initial_scid, NULL, 0);
	tern_cid_set(&tp->retry_scid, (const uint8_t *)"\x01\x02\x03\x04\x05", 5);
}

static const uint8_t server_block[] = {
	0x00, 0x08, 0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08, /* original_dcid */
	0x02, 0x10, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, /* stateless_reset_token */
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x09, 0x08, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* max_streams_uni 2^60 */
	0x0b, 0x02, 0x7f, 0xff,                                     /* max_ack_delay 16383 */
	0x0d, 0x2b,                                                 /* preferred_address */
	0xc0, 0x00, 0x02, 0x01, 0x01, 0xbb,                         /*   192.0.2.1:443 */
	0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,             /*   [2001:db8::1] */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x11, 0x51, /*   :4433 */
	0x02, 0xaa, 0xbb,                                           /*   CID */
	0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7,             /*   reset token */
	0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
	0x0f, 0x00,                                                 /* initial_scid, empty */
	0x10, 0x05, 0x01, 0x02, 0x03, 0x04, 0x05,                   /* retry_scid */
};

static const size_t server_bounds[] = {0, 10, 28, 38, 42, 87, 89, 96};

/* ---- helpers ------------------------------------------------------------ */

static int dec(const uint8_t *b, size_t n, int server)
{
	struct tern_tparams tp;
	return tern_tparams_decode(b, n, server, &tp);
}

#define DEC(server, ...)                                                       \
	({                                                                     \
		const uint8_t b_[] = {__VA_ARGS__};                            \
		dec(b_, sizeof(b_), server);                                   \
	})

/* ---- defaults ----------------------------------------------------------- */

Test(tparams, init_defaults)
{
	struct tern_tparams tp;
	memset(&tp, 0xa5, sizeof(tp));
	tern_tparams_init(&tp);
	cr_expect_eq(tp.present, 0);
	cr_expect_eq(tp.max_udp_payload_size, 65527);
	cr_expect_eq(tp.ack_delay_exponent, 3);
	cr_expect_eq(tp.max_ack_delay, 25);
	cr_expect_eq(tp.active_connection_id_limit, 2);
	cr_expect_eq(tp.max_idle_timeout, 0);
	cr_expect_eq(tp.initial_max_data, 0);
	cr_expect_eq(tp.initial_max_streams_bidi, 0);
	cr_expect_eq(tp.max_datagram_frame_size, 0);
	cr_expect_eq(tp.initial_scid.len, 0);
	cr_expect_eq(tp.version_info.n_available, 0);
}

Test(tparams, decode_empty_gives_defaults)
{
	struct tern_tparams tp, def;
	memset(&tp, 0x5a, sizeof(tp));
	tern_tparams_init(&def);
	cr_assert_eq(tern_tparams_decode(NULL, 0, CLIENT, &tp), 0);
	cr_expect(tp_equal(&tp, &def));
	cr_expect_eq(tp.present, 0);
	cr_expect_eq(tp.max_udp_payload_size, 65527);
}

Test(tparams, absent_params_keep_defaults)
{
	/* Only initial_max_data: everything else at its default. */
	struct tern_tparams tp;
	const uint8_t b[] = {0x04, 0x01, 0x07};
	cr_assert_eq(tern_tparams_decode(b, sizeof(b), SERVER, &tp), 0);
	cr_expect_eq(tp.present, TERN_TP_HAS_INITIAL_MAX_DATA);
	cr_expect_eq(tp.initial_max_data, 7);
	cr_expect_eq(tp.max_udp_payload_size, 65527);
	cr_expect_eq(tp.ack_delay_exponent, 3);
	cr_expect_eq(tp.max_ack_delay, 25);
	cr_expect_eq(tp.active_connection_id_limit, 2);
	cr_expect_eq(tp.max_idle_timeout, 0);
}

/* ---- byte-exact encodings ---------------------------------------------- */

Test(tparams, encode_client_block_exact)
{
	struct tern_tparams tp;
	uint8_t out[128];
	client_tp(&tp);
	int n = tern_tparams_encode(out, sizeof(out), &tp, CLIENT);
	cr_assert_eq(n, (int)sizeof(client_block));
	cr_expect_arr_eq(out, client_block, sizeof(client_block));
}

Test(tparams, encode_server_block_exact)
{
	struct tern_tparams tp;
	uint8_t out[128];
	server_tp(&tp);
	int n = tern_tparams_encode(out, sizeof(out), &tp, SERVER);
	cr_assert_eq(n, (int)sizeof(server_block));
	cr_expect_arr_eq(out, server_block, sizeof(server_block));
}

Test(tparams, decode_client_block_fields)
{
	struct tern_tparams tp, want;
	cr_assert_eq(tern_tparams_decode(client_block, sizeof(client_block), CLIENT, &tp), 0);
	client_tp(&want);
	cr_expect_eq(tp.present, want.present & ~TERN_TP_HAS_GREASE);
	cr_expect(tp_equal(&tp, &want));
	cr_expect_eq(tp.max_idle_timeout, 30000);
	cr_expect_eq(tp.max_datagram_frame_size, 65535);
	cr_expect_eq(tp.version_info.chosen, TERN_VERSION_1);
	cr_assert_eq(tp.version_info.n_available, 2);
	cr_expect_eq(tern_tparams_available_version(&tp, 0), TERN_VERSION_2);
	cr_expect_eq(tern_tparams_available_version(&tp, 1), TERN_VERSION_1);
	/* Zero-copy: the list is the input's own bytes. */
	cr_expect_eq(tp.version_info.available, client_block + 46);
}

Test(tparams, decode_server_block_fields)
{
	struct tern_tparams tp, want;
	cr_assert_eq(tern_tparams_decode(server_block, sizeof(server_block), SERVER, &tp), 0);
	server_tp(&want);
	cr_expect_eq(tp.present, want.present);
	cr_expect(tp_equal(&tp, &want));
	cr_expect_eq(tp.preferred_address.ipv4_port, 443);
	cr_expect_eq(tp.preferred_address.ipv6_port, 4433);
	cr_expect_eq(tp.preferred_address.cid.len, 2);
	cr_expect_eq(tp.preferred_address.reset_token[15], 0xff);
	cr_expect_eq(tp.initial_scid.len, 0);
	cr_expect(tp.present & TERN_TP_HAS_INITIAL_SCID);
	cr_expect_eq(tp.initial_max_streams_uni, UINT64_C(1) << 60);
}

Test(tparams, encode_nothing_present_is_empty)
{
	struct tern_tparams tp;
	uint8_t out[4] = {0xee};
	tern_tparams_init(&tp);
	cr_expect_eq(tern_tparams_encode(out, sizeof(out), &tp, SERVER), 0);
	cr_expect_eq(tern_tparams_encode(NULL, 0, &tp, CLIENT), 0);
	cr_expect_eq(out[0], 0xee);
}

Test(tparams, encode_default_values_when_present)
{
	/* Present means sent, even at the default value. */
	struct tern_tparams tp;
	uint8_t out[16];
	const uint8_t want[] = {0x0a, 0x01, 0x03, 0x0b, 0x01, 0x19};
	tern_tparams_init(&tp);
	tp.present = TERN_TP_HAS_ACK_DELAY_EXPONENT | TERN_TP_HAS_MAX_ACK_DELAY;
	cr_assert_eq(tern_tparams_encode(out, sizeof(out), &tp, CLIENT), (int)sizeof(want));
	cr_expect_arr_eq(out, want, sizeof(want));
}

Test(tparams, encode_varint_max_value)
{
	struct tern_tparams tp;
	uint8_t out[16];
	const uint8_t want[] = {0x04, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	tern_tparams_init(&tp);
	tp.present = TERN_TP_HAS_INITIAL_MAX_DATA;
	tp.initial_max_data = TERN_VARINT_MAX;
	cr_assert_eq(tern_tparams_encode(out, sizeof(out), &tp, CLIENT), (int)sizeof(want));
	cr_expect_arr_eq(out, want, sizeof(want));
	cr_assert_eq(tern_tparams_decode(out, sizeof(want), CLIENT, &tp), 0);
	cr_expect_eq(tp.initial_max_data, TERN_VARINT_MAX);
}

/* ---- round trips --------------------------------------------------------- */

static void fill_all(struct tern_tparams *tp, uint64_t seed)
{
	server_tp(tp);
	tp->present = (TERN_TP_HAS_GREASE_QUIC_BIT << 1) - 1; /* every wire parameter */
	tp->max_idle_timeout = seed * 7;
	tp->max_udp_payload_size = 1200 + seed;
	tp->initial_max_data = seed << 40;
	tp->initial_max_stream_data_bidi_local = seed << 20;
	tp->initial_max_stream_data_bidi_remote = seed + 63;
	tp->initial_max_stream_data_uni = seed + 16383;
	tp->initial_max_streams_bidi = seed % 3 ? seed : TERN_TP_MAX_STREAMS;
	tp->initial_max_streams_uni = seed * 1000;
	tp->ack_delay_exponent = seed % 21;
	tp->max_ack_delay = seed % 16384;
	tp->active_connection_id_limit = 2 + seed;
	tp->max_datagram_frame_size = seed * 1200;
	tp->preferred_address.ipv4_port = (uint16_t)(seed * 31);
	tp->preferred_address.ipv6_port = (uint16_t)(seed * 77);
	tp->preferred_address.ipv4[3] = (uint8_t)seed;
	tp->preferred_address.ipv6[7] = (uint8_t)(seed >> 1);
	uint8_t cid[22]; /* 20 bytes read from offsets up to 2 */
	for (int i = 0; i < 22; i++)
		cid[i] = (uint8_t)(seed + (uint64_t)i);
	tern_cid_set(&tp->original_dcid, cid, seed % 21);
	tern_cid_set(&tp->initial_scid, cid + 1, (seed + 5) % 21);
	tern_cid_set(&tp->retry_scid, cid + 2, (seed + 11) % 21);
	tern_cid_set(&tp->preferred_address.cid, cid, 1 + seed % 20);
	tp->stateless_reset_token[seed % 16] ^= 0x5a;
	tp->version_info.chosen = TERN_VERSION_2;
	tp->version_info.available = vi_avail;
	tp->version_info.n_available = seed % 3;
}

Test(tparams, round_trip_every_field)
{
	for (uint64_t seed = 0; seed < 64; seed++) {
		struct tern_tparams a, b;
		uint8_t buf[512];
		fill_all(&a, seed);
		int n = tern_tparams_encode(buf, sizeof(buf), &a, SERVER);
		cr_assert_gt(n, 0, "seed %lu: %d", (unsigned long)seed, n);
		cr_assert_eq(tern_tparams_decode(buf, (size_t)n, SERVER, &b), 0, "seed %lu",
			     (unsigned long)seed);
		cr_expect(tp_equal(&a, &b), "seed %lu", (unsigned long)seed);
		cr_expect_eq(b.present, (TERN_TP_HAS_GREASE_QUIC_BIT << 1) - 1);
	}
}

Test(tparams, round_trip_client_role)
{
	struct tern_tparams a, b;
	uint8_t buf[512];
	fill_all(&a, 9);
	struct tern_tparams d;
	tern_tparams_init(&d);
	a.present &= ~TERN_TP_SERVER_ONLY;
	a.original_dcid = d.original_dcid;
	a.retry_scid = d.retry_scid;
	a.preferred_address = d.preferred_address;
	memset(a.stateless_reset_token, 0, sizeof(a.stateless_reset_token));
	/* A client's Available Versions must list its Chosen Version. */
	a.version_info.n_available = 1;
	a.version_info.available = vi_avail;
	int n = tern_tparams_encode(buf, sizeof(buf), &a, CLIENT);
	cr_assert_gt(n, 0);
	cr_assert_eq(tern_tparams_decode(buf, (size_t)n, CLIENT, &b), 0);
	cr_expect(tp_equal(&a, &b));
}

Test(tparams, round_trip_each_field_alone)
{
	struct tern_tparams all;
	fill_all(&all, 13);
	for (int bit = 0; bit < 20; bit++) {
		struct tern_tparams a = all, b;
		uint8_t buf[128];
		a.present = 1u << bit;
		int n = tern_tparams_encode(buf, sizeof(buf), &a, SERVER);
		cr_assert_gt(n, 0, "bit %d", bit);
		cr_assert_eq(tern_tparams_decode(buf, (size_t)n, SERVER, &b), 0, "bit %d", bit);
		cr_expect_eq(b.present, 1u << bit, "bit %d", bit);
		/* Re-encoding what was decoded gives the same bytes. */
		uint8_t again[128];
		cr_assert_eq(tern_tparams_encode(again, sizeof(again), &b, SERVER), n, "bit %d", bit);
		cr_expect_arr_eq(again, buf, (size_t)n, "bit %d", bit);
	}
}

/* ---- boundaries that must be accepted ---------------------------------- */

Test(tparams, accept_boundary_values)
{
	struct tern_tparams tp;
	const uint8_t b[] = {
		0x03, 0x02, 0x44, 0xb0,                   /* max_udp_payload_size 1200 */
		0x0a, 0x01, 0x14,                         /* ack_delay_exponent 20 */
		0x0b, 0x02, 0x7f, 0xff,                   /* max_ack_delay 2^14-1 */
		0x08, 0x08, 0xd0, 0, 0, 0, 0, 0, 0, 0,    /* streams_bidi 2^60 */
		0x0e, 0x01, 0x02,                         /* active_connection_id_limit 2 */
		0x01, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	cr_assert_eq(tern_tparams_decode(b, sizeof(b), CLIENT, &tp), 0);
	cr_expect_eq(tp.max_udp_payload_size, 1200);
	cr_expect_eq(tp.ack_delay_exponent, 20);
	cr_expect_eq(tp.max_ack_delay, 16383);
	cr_expect_eq(tp.initial_max_streams_bidi, UINT64_C(1) << 60);
	cr_expect_eq(tp.active_connection_id_limit, 2);
	cr_expect_eq(tp.max_idle_timeout, TERN_VARINT_MAX);
}

Test(tparams, accept_non_minimal_varints)
{
	/* RFC 9000 §16 lets any varint be longer than needed. */
	struct tern_tparams tp;
	const uint8_t b[] = {
		0x40, 0x01, 0x40, 0x02, 0x40, 0x05,      /* id 1, len 2, value 5, all 2-byte */
		0x0e, 0x04, 0x80, 0x00, 0x00, 0x03,      /* active_connection_id_limit 3 */
	};
	cr_assert_eq(tern_tparams_decode(b, sizeof(b), CLIENT, &tp), 0);
	cr_expect_eq(tp.max_idle_timeout, 5);
	cr_expect_eq(tp.active_connection_id_limit, 3);
}

Test(tparams, accept_cid_lengths_0_and_20)
{
	struct tern_tparams tp;
	uint8_t b[2 + 20 + 2];
	b[0] = 0x0f;
	b[1] = 20;
	for (int i = 0; i < 20; i++)
		b[2 + i] = (uint8_t)(0x30 + i);
	b[22] = 0x10;
	b[23] = 0;
	cr_assert_eq(tern_tparams_decode(b, sizeof(b), SERVER, &tp), 0);
	cr_expect_eq(tp.initial_scid.len, 20);
	cr_expect_arr_eq(tp.initial_scid.bytes, b + 2, 20);
	cr_expect_eq(tp.retry_scid.len, 0);
	cr_expect(tp.present & TERN_TP_HAS_RETRY_SCID);
}

/* ---- rejections ----------------------------------------------------------- */

Test(tparams, reject_out_of_range_values)
{
	cr_expect_eq(DEC(CLIENT, 0x03, 0x02, 0x44, 0xaf), TPE);             /* 1199 */
	cr_expect_eq(DEC(CLIENT, 0x03, 0x01, 0x00), TPE);                   /* 0 */
	cr_expect_eq(DEC(CLIENT, 0x0a, 0x01, 0x15), TPE);                   /* exponent 21 */
	cr_expect_eq(DEC(CLIENT, 0x0a, 0x01, 0x3f), TPE);                   /* exponent 63 */
	cr_expect_eq(DEC(CLIENT, 0x0b, 0x04, 0x80, 0x00, 0x40, 0x00), TPE); /* 2^14 */
	cr_expect_eq(DEC(CLIENT, 0x08, 0x08, 0xd0, 0, 0, 0, 0, 0, 0, 1), TPE); /* 2^60+1 */
	cr_expect_eq(DEC(CLIENT, 0x09, 0x08, 0xd0, 0, 0, 0, 0, 0, 0, 1), TPE);
	cr_expect_eq(DEC(SERVER, 0x09, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), TPE);
	cr_expect_eq(DEC(CLIENT, 0x0e, 0x01, 0x01), TPE);                   /* limit 1 */
	cr_expect_eq(DEC(CLIENT, 0x0e, 0x01, 0x00), TPE);                   /* limit 0 */
}

Test(tparams, reject_value_length_mismatch)
{
	/* Every integer parameter: empty, one byte too many, one too few. */
	const uint8_t ids[] = {0x01, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0e, 0x20};
	for (size_t i = 0; i < sizeof(ids); i++) {
		const uint8_t empty[] = {ids[i], 0x00};
		const uint8_t longer[] = {ids[i], 0x03, 0x44, 0xb0, 0x00};
		const uint8_t shorter[] = {ids[i], 0x01, 0x44};
		const uint8_t shorter4[] = {ids[i], 0x03, 0x80, 0x00, 0x05};
		cr_expect_eq(dec(empty, sizeof(empty), SERVER), TPE, "id %#x", ids[i]);
		cr_expect_eq(dec(longer, sizeof(longer), SERVER), TPE, "id %#x", ids[i]);
		cr_expect_eq(dec(shorter, sizeof(shorter), SERVER), TPE, "id %#x", ids[i]);
		cr_expect_eq(dec(shorter4, sizeof(shorter4), SERVER), TPE, "id %#x", ids[i]);
	}
	/* max_datagram_frame_size's id is a two-byte varint when padded. */
	cr_expect_eq(DEC(CLIENT, 0x40, 0x20, 0x02, 0x05, 0x00), TPE);
}

Test(tparams, reject_flags_with_content)
{
	cr_expect_eq(DEC(CLIENT, 0x0c, 0x01, 0x00), TPE);
	cr_expect_eq(DEC(SERVER, 0x0c, 0x02, 0x00, 0x00), TPE);
	cr_expect_eq(DEC(CLIENT, 0x6a, 0xb2, 0x01, 0x00), TPE);
	cr_expect_eq(DEC(SERVER, 0x6a, 0xb2, 0x01, 0x01), TPE);
	cr_expect_eq(DEC(CLIENT, 0x0c, 0x00, 0x6a, 0xb2, 0x00), 0);
}

Test(tparams, reject_reset_token_length)
{
	uint8_t b[2 + 17] = {0x02};
	for (size_t n = 0; n <= 17; n++) {
		b[1] = (uint8_t)n;
		cr_expect_eq(dec(b, 2 + n, SERVER), n == 16 ? 0 : TPE, "len %zu", n);
	}
}

Test(tparams, reject_cid_over_20)
{
	uint8_t b[2 + 21] = {0};
	const uint8_t ids[] = {0x00, 0x0f, 0x10};
	for (size_t i = 0; i < sizeof(ids); i++) {
		b[0] = ids[i];
		b[1] = 21;
		cr_expect_eq(dec(b, sizeof(b), SERVER), TPE, "id %#x", ids[i]);
		b[1] = 20;
		cr_expect_eq(dec(b, sizeof(b) - 1, SERVER), 0, "id %#x", ids[i]);
	}
	b[0] = 0x0f;
	b[1] = 21;
	cr_expect_eq(dec(b, sizeof(b), CLIENT), TPE);
}

/* server_block's preferred_address value starts at offset 44, 43 bytes. */
static int dec_pa(const uint8_t *v, size_t len)
{
	uint8_t b[2 + 128];
	b[0] = 0x0d;
	b[1] = (uint8_t)len;
	memcpy(b + 2, v, len);
	return dec(b, 2 + len, SERVER);
}

Test(tparams, reject_preferred_address_shapes)
{
	uint8_t v[80];
	memset(v, 0x11, sizeof(v));
	memcpy(v, server_block + 44, 43);
	cr_expect_eq(dec_pa(v, 43), 0);
	/* Wrong total for a 2-byte CID: one short, one over. */
	cr_expect_eq(dec_pa(v, 42), TPE);
	cr_expect_eq(dec_pa(v, 44), TPE);
	/* Too short to hold even the fixed fields. */
	for (size_t n = 0; n < 41; n++)
		cr_expect_eq(dec_pa(v, n), TPE, "len %zu", n);
	/* Zero-length CID, with a length that would otherwise fit. */
	v[24] = 0;
	cr_expect_eq(dec_pa(v, 41), TPE);
	/* CID of 20 fits; 21 does not, even with the matching length. */
	v[24] = 20;
	cr_expect_eq(dec_pa(v, 61), 0);
	v[24] = 21;
	cr_expect_eq(dec_pa(v, 62), TPE);
	v[24] = 255;
	cr_expect_eq(dec_pa(v, 80), TPE);
}

Test(tparams, reject_server_only_from_client)
{
	uint8_t tok[2 + 16] = {0x02, 0x10};
	cr_expect_eq(DEC(CLIENT, 0x00, 0x00), TPE);
	cr_expect_eq(DEC(CLIENT, 0x00, 0x01, 0xaa), TPE);
	cr_expect_eq(dec(tok, sizeof(tok), CLIENT), TPE);
	cr_expect_eq(dec(tok, sizeof(tok), SERVER), 0);
	cr_expect_eq(dec_pa(server_block + 44, 43), 0);
	cr_expect_eq(dec(server_block + 42, 45, CLIENT), TPE); /* preferred_address */
	cr_expect_eq(DEC(CLIENT, 0x10, 0x00), TPE);
	cr_expect_eq(DEC(CLIENT, 0x10, 0x02, 0x01, 0x02), TPE);
	cr_expect_eq(dec(server_block, sizeof(server_block), CLIENT), TPE);
	/* Parameters either side may send are fine from a client. */
	cr_expect_eq(DEC(CLIENT, 0x0f, 0x01, 0x01, 0x01, 0x01, 0x00), 0);
}

/* One valid encoding of each of the 20 known parameters. */
static size_t one_param(int bit, uint8_t *out)
{
	struct tern_tparams tp;
	fill_all(&tp, 4);
	tp.present = 1u << bit;
	int n = tern_tparams_encode(out, 128, &tp, SERVER);
	cr_assert_gt(n, 0);
	return (size_t)n;
}

Test(tparams, reject_every_known_duplicate)
{
	for (int bit = 0; bit < 20; bit++) {
		uint8_t b[256];
		size_t n = one_param(bit, b);
		cr_expect_eq(dec(b, n, SERVER), 0, "bit %d", bit);
		memcpy(b + n, b, n);
		cr_expect_eq(dec(b, 2 * n, SERVER), TPE, "bit %d", bit);
		/* Duplicates need not be adjacent. */
		const uint8_t other[] = {0x1b, 0x01, 0x00}; /* reserved id 27 */
		memmove(b + n + sizeof(other), b + n, n);
		memcpy(b + n, other, sizeof(other));
		cr_expect_eq(dec(b, 2 * n + sizeof(other), SERVER), TPE, "bit %d", bit);
	}
	/* Same id, different encodings of the id. */
	cr_expect_eq(DEC(CLIENT, 0x04, 0x01, 0x01, 0x40, 0x04, 0x01, 0x01), TPE);
}

Test(tparams, reject_version_information)
{
	/* Too short, or not whole versions (RFC 9368 §4). */
	cr_expect_eq(DEC(SERVER, 0x11, 0x00), TPE);
	cr_expect_eq(DEC(SERVER, 0x11, 0x03, 0x00, 0x00, 0x01), TPE);
	cr_expect_eq(DEC(SERVER, 0x11, 0x06, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00), TPE);
	cr_expect_eq(DEC(SERVER, 0x11, 0x07, 0, 0, 0, 1, 0, 0, 0), TPE);
	/* Version zero anywhere. */
	cr_expect_eq(DEC(SERVER, 0x11, 0x04, 0x00, 0x00, 0x00, 0x00), TPE);
	cr_expect_eq(DEC(SERVER, 0x11, 0x08, 0, 0, 0, 1, 0, 0, 0, 0), TPE);
	cr_expect_eq(DEC(CLIENT, 0x11, 0x0c, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0), TPE);
	/* A client must list its Chosen Version; a server need not. */
	cr_expect_eq(DEC(CLIENT, 0x11, 0x08, 0, 0, 0, 1, 0x6b, 0x33, 0x43, 0xcf), TPE);
	cr_expect_eq(DEC(CLIENT, 0x11, 0x04, 0, 0, 0, 1), TPE);
	cr_expect_eq(DEC(SERVER, 0x11, 0x08, 0, 0, 0, 1, 0x6b, 0x33, 0x43, 0xcf), 0);
	cr_expect_eq(DEC(SERVER, 0x11, 0x04, 0, 0, 0, 1), 0);
	cr_expect_eq(DEC(CLIENT, 0x11, 0x08, 0, 0, 0, 1, 0, 0, 0, 1), 0);
	/* Reserved versions (0x?a?a?a?a) are just versions. */
	cr_expect_eq(DEC(CLIENT, 0x11, 0x0c, 0, 0, 0, 1, 0x1a, 0x2a, 0x3a, 0x4a, 0, 0, 0, 1), 0);
}

static void expect_truncation(const uint8_t *blk, size_t len, const size_t *bounds, size_t nb,
			      int server)
{
	for (size_t cut = 0; cut <= len; cut++) {
		int boundary = cut == len;
		for (size_t i = 0; i < nb; i++)
			boundary |= bounds[i] == cut;
		uint8_t copy[128];
		memcpy(copy, blk, cut); /* a tight copy lets ASan see overreads */
		cr_expect_eq(dec(copy, cut, server), boundary ? 0 : TPE, "cut at %zu", cut);
	}
}

Test(tparams, truncation_at_every_byte)
{
	expect_truncation(client_block, sizeof(client_block), client_bounds,
			  sizeof(client_bounds) / sizeof(client_bounds[0]), CLIENT);
	expect_truncation(server_block, sizeof(server_block), server_bounds,
			  sizeof(server_bounds) / sizeof(server_bounds[0]), SERVER);
}

Test(tparams, reject_truncated_headers_and_lengths)
{
	cr_expect_eq(DEC(CLIENT, 0x40), TPE);                   /* id cut */
	cr_expect_eq(DEC(CLIENT, 0xc0, 0, 0, 0), TPE);          /* 8-byte id cut */
	cr_expect_eq(DEC(CLIENT, 0x01), TPE);                   /* no length */
	cr_expect_eq(DEC(CLIENT, 0x01, 0x40), TPE);             /* length cut */
	cr_expect_eq(DEC(CLIENT, 0x01, 0x02, 0x05), TPE);       /* value cut */
	cr_expect_eq(DEC(CLIENT, 0x1b, 0x05, 0, 0, 0, 0), TPE); /* unknown id, value cut */
	cr_expect_eq(DEC(CLIENT, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0), TPE);
	cr_expect_eq(DEC(CLIENT, 0x1b, 0xbf, 0xff, 0xff, 0xff, 0), TPE);
}

/* ---- unknown and reserved ids -------------------------------------------- */

Test(tparams, skip_reserved_and_unknown_ids)
{
	struct tern_tparams tp;
	const uint8_t b[] = {
		0x1b, 0x00,                               /* reserved 27, empty */
		0x04, 0x01, 0x07,                         /* initial_max_data 7 */
		0x40, 0x59, 0x03, 0x0c, 0x00, 0x00,       /* reserved 89, holds "0c 00 00" */
		0xc0, 0, 0, 0, 0, 0, 0, 0x3a, 0x02, 0xab, 0xcd, /* reserved 31*1+27, 8-byte id */
		0x12, 0x01, 0xff,                         /* unknown 0x12 */
		0x21, 0x00,                               /* unknown 0x21 */
		0x7f, 0x00, 0x02, 0x00, 0x00,             /* unknown 0x3f00 */
		0x12, 0x01, 0xff,                         /* unknown 0x12 again: ignored */
		0x1b, 0x01, 0x00,                         /* reserved 27 again */
		0x0e, 0x01, 0x04,                         /* active_connection_id_limit 4 */
	};
	cr_assert_eq(tern_tparams_decode(b, sizeof(b), CLIENT, &tp), 0);
	cr_expect_eq(tp.present, TERN_TP_HAS_INITIAL_MAX_DATA | TERN_TP_HAS_ACTIVE_CONNECTION_ID_LIMIT);
	cr_expect_eq(tp.initial_max_data, 7);
	cr_expect_eq(tp.active_connection_id_limit, 4);
	cr_expect_eq(TERN_TP_GREASE_ID(1), 0x3a);
	/* Unknown ids of server-only shape are ignored for a server too. */
	cr_assert_eq(tern_tparams_decode(b, sizeof(b), SERVER, &tp), 0);
}

/* ---- encoder limits --------------------------------------------------------- */

Test(tparams, encode_nobuf_at_every_short_cap)
{
	struct tern_tparams c, s;
	uint8_t out[128];
	client_tp(&c);
	server_tp(&s);
	for (size_t cap = 0; cap < sizeof(client_block); cap++)
		cr_expect_eq(tern_tparams_encode(out, cap, &c, CLIENT), TERN_ERR_NOBUF, "cap %zu", cap);
	for (size_t cap = 0; cap < sizeof(server_block); cap++)
		cr_expect_eq(tern_tparams_encode(out, cap, &s, SERVER), TERN_ERR_NOBUF, "cap %zu", cap);
	cr_expect_eq(tern_tparams_encode(out, sizeof(client_block), &c, CLIENT),
		     (int)sizeof(client_block));
	cr_expect_eq(tern_tparams_encode(out, sizeof(server_block), &s, SERVER),
		     (int)sizeof(server_block));
	cr_expect_eq(tern_tparams_encode(NULL, 0, &s, SERVER), TERN_ERR_NOBUF);
	cr_expect_eq(tern_tparams_encode(NULL, 8, &s, SERVER), TERN_ERR_INVAL);
}

Test(tparams, encode_refuses_what_peer_would_reject)
{
	struct tern_tparams tp;
	uint8_t out[256];
	/* Server-only parameters from a client. */
	uint32_t so[] = {TERN_TP_HAS_ORIGINAL_DCID, TERN_TP_HAS_STATELESS_RESET_TOKEN,
			 TERN_TP_HAS_PREFERRED_ADDRESS, TERN_TP_HAS_RETRY_SCID};
	for (size_t i = 0; i < 4; i++) {
		server_tp(&tp);
		tp.present = so[i];
		cr_expect_eq(tern_tparams_encode(out, sizeof(out), &tp, CLIENT), TERN_ERR_INVAL);
		cr_expect_gt(tern_tparams_encode(out, sizeof(out), &tp, SERVER), 0);
	}
#define BAD(field, bit, value)                                                           \
	do {                                                                             \
		tern_tparams_init(&tp);                                                  \
		tp.present = bit;                                                        \
		tp.field = value;                                                        \
		cr_expect_eq(tern_tparams_encode(out, sizeof(out), &tp, SERVER), TERN_ERR_INVAL, \
			     #field);                                                    \
	} while (0)
	BAD(max_udp_payload_size, TERN_TP_HAS_MAX_UDP_PAYLOAD_SIZE, 1199);
	BAD(ack_delay_exponent, TERN_TP_HAS_ACK_DELAY_EXPONENT, 21);
	BAD(max_ack_delay, TERN_TP_HAS_MAX_ACK_DELAY, 16384);
	BAD(initial_max_streams_bidi, TERN_TP_HAS_INITIAL_MAX_STREAMS_BIDI, TERN_TP_MAX_STREAMS + 1);
	BAD(initial_max_streams_uni, TERN_TP_HAS_INITIAL_MAX_STREAMS_UNI, TERN_TP_MAX_STREAMS + 1);
	BAD(active_connection_id_limit, TERN_TP_HAS_ACTIVE_CONNECTION_ID_LIMIT, 1);
	BAD(initial_max_data, TERN_TP_HAS_INITIAL_MAX_DATA, TERN_VARINT_MAX + 1);
	BAD(initial_scid.len, TERN_TP_HAS_INITIAL_SCID, 21);
	BAD(preferred_address.cid.len, TERN_TP_HAS_PREFERRED_ADDRESS, 0);
	BAD(preferred_address.cid.len, TERN_TP_HAS_PREFERRED_ADDRESS, 21);
	BAD(version_info.chosen, TERN_TP_HAS_VERSION_INFORMATION, 0);
	BAD(grease.id, TERN_TP_HAS_GREASE, 28);
	BAD(grease.id, TERN_TP_HAS_GREASE, TERN_TP_GREASE_ID(UINT64_C(1) << 58));
#undef BAD
	/* An out-of-range value in an absent parameter is not sent, so fine. */
	tern_tparams_init(&tp);
	tp.ack_delay_exponent = 99;
	cr_expect_eq(tern_tparams_encode(out, sizeof(out), &tp, SERVER), 0);
	/* A client's version_information must list its Chosen Version. */
	client_tp(&tp);
	tp.version_info.n_available = 1; /* v2 only, chosen v1 */
	cr_expect_eq(tern_tparams_encode(out, sizeof(out), &tp, CLIENT), TERN_ERR_INVAL);
	cr_expect_gt(tern_tparams_encode(out, sizeof(out), &tp, SERVER), 0);
}

Test(tparams, encode_grease_with_large_id_and_empty_value)
{
	struct tern_tparams tp, back;
	uint8_t out[32];
	/* 31 * 10^9 + 27 = 0x737be761b needs the 8-byte varint form. */
	const uint8_t want[] = {0xc0, 0x00, 0x00, 0x07, 0x37, 0xbe, 0x76, 0x1b, 0x00};
	tern_tparams_init(&tp);
	tp.present = TERN_TP_HAS_GREASE;
	tp.grease.id = TERN_TP_GREASE_ID(1000000000);
	int n = tern_tparams_encode(out, sizeof(out), &tp, CLIENT);
	cr_assert_eq(n, (int)sizeof(want));
	cr_expect_arr_eq(out, want, sizeof(want));
	/* The decoder skips it: nothing known is present. */
	cr_assert_eq(tern_tparams_decode(out, (size_t)n, CLIENT, &back), 0);
	cr_expect_eq(back.present, 0);
}

/* ---- RFC 9000 §7.3 connection ID authentication ---------------------------- */

static struct tern_cid mkcid(const char *s)
{
	struct tern_cid c;
	tern_cid_set(&c, (const uint8_t *)s, strlen(s));
	return c;
}

Test(tparams, validate_server_peer)
{
	struct tern_tparams tp;
	struct tern_cid scid = mkcid(""), odcid = mkcid("\x83\x94\xc8\xf0\x3e\x51\x57\x08"),
			rscid = mkcid("\x01\x02\x03\x04\x05"), other = mkcid("\x01\x02\x03\x04\x06");
	cr_assert_eq(tern_tparams_decode(server_block, sizeof(server_block), SERVER, &tp), 0);
	cr_expect_eq(tern_tparams_validate_peer(&tp, SERVER, &scid, &odcid, &rscid), 0);
	/* Mismatches and Retry contradictions: PROTOCOL_VIOLATION. */
	cr_expect_eq(tern_tparams_validate_peer(&tp, SERVER, &other, &odcid, &rscid), PV);
	cr_expect_eq(tern_tparams_validate_peer(&tp, SERVER, &scid, &other, &rscid), PV);
	cr_expect_eq(tern_tparams_validate_peer(&tp, SERVER, &scid, &odcid, &other), PV);
	cr_expect_eq(tern_tparams_validate_peer(&tp, SERVER, &scid, &odcid, NULL), PV);
	struct tern_tparams no_retry = tp;
	no_retry.present &= ~TERN_TP_HAS_RETRY_SCID;
	cr_expect_eq(tern_tparams_validate_peer(&no_retry, SERVER, &scid, &odcid, NULL), 0);
	cr_expect_eq(tern_tparams_validate_peer(&no_retry, SERVER, &scid, &odcid, &rscid), PV);
	/* An empty retry_scid is present, and does not match an empty-handed
	 * client that saw no Retry. */
	struct tern_tparams empty_retry = tp;
	empty_retry.retry_scid.len = 0;
	struct tern_cid empty = mkcid("");
	cr_expect_eq(tern_tparams_validate_peer(&empty_retry, SERVER, &scid, &odcid, NULL), PV);
	cr_expect_eq(tern_tparams_validate_peer(&empty_retry, SERVER, &scid, &odcid, &empty), 0);
	/* Missing mandatory parameters: TRANSPORT_PARAMETER_ERROR. */
	struct tern_tparams m = tp;
	m.present &= ~TERN_TP_HAS_INITIAL_SCID;
	cr_expect_eq(tern_tparams_validate_peer(&m, SERVER, &scid, &odcid, &rscid), TPE);
	m = tp;
	m.present &= ~TERN_TP_HAS_ORIGINAL_DCID;
	cr_expect_eq(tern_tparams_validate_peer(&m, SERVER, &scid, &odcid, &rscid), TPE);
	/* A zero-length ISCID is not the same as a 1-byte one. */
	struct tern_cid one = {.len = 1, .bytes = {0}};
	cr_expect_eq(tern_tparams_validate_peer(&tp, SERVER, &one, &odcid, &rscid), PV);
	cr_expect_eq(tern_tparams_validate_peer(&tp, SERVER, &scid, NULL, &rscid), TERN_ERR_INVAL);
}

Test(tparams, validate_client_peer)
{
	struct tern_tparams tp;
	struct tern_cid scid = mkcid("\xc1\xc2\xc3\xc4"), other = mkcid("\xc1\xc2\xc3");
	cr_assert_eq(tern_tparams_decode(client_block, sizeof(client_block), CLIENT, &tp), 0);
	cr_expect_eq(tern_tparams_validate_peer(&tp, CLIENT, &scid, NULL, NULL), 0);
	cr_expect_eq(tern_tparams_validate_peer(&tp, CLIENT, &other, NULL, NULL), PV);
	tp.present &= ~TERN_TP_HAS_INITIAL_SCID;
	cr_expect_eq(tern_tparams_validate_peer(&tp, CLIENT, &scid, NULL, NULL), TPE);
	cr_expect_eq(tern_tparams_validate_peer(&tp, CLIENT, NULL, NULL, NULL), TERN_ERR_INVAL);
}

Test(tparams, error_code_recoverable)
{
	int rc = DEC(CLIENT, 0x0a, 0x01, 0x15);
	cr_assert(tern_err_is_quic(rc));
	cr_expect_eq(tern_err_quic_code(rc), 0x08);
}
