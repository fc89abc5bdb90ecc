/* Ethernet/IP/UDP framing of the AF_XDP datapath (bpf/frame.c): the
 * checksum against RFC 1071's example, exact header bytes, round trips and
 * every malformed frame's error. No root needed. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "tern/xdp.h"

/* A second, deliberately naive RFC 1071 checksum: 16-bit words, one at a
 * time, to cross-check the 32-bit-word implementation. */
static uint16_t naive_sum(const uint8_t *const *blocks, const size_t *lens, int n)
{
	uint32_t s = 0;
	for (int b = 0; b < n; b++)
		for (size_t i = 0; i < lens[b]; i += 2)
			s += (uint32_t)blocks[b][i] << 8 | (i + 1 < lens[b] ? blocks[b][i + 1] : 0);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static const uint8_t mac_a[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x0a};
static const uint8_t mac_b[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x0b};

static struct tern_path path4(const char *l, uint16_t lp, const char *r, uint16_t rp)
{
	struct tern_path p;
	memset(&p, 0, sizeof(p));
	p.local.family = p.remote.family = 4;
	unsigned a, b, c, d;
	sscanf(l, "%u.%u.%u.%u", &a, &b, &c, &d);
	p.local.ip[0] = (uint8_t)a, p.local.ip[1] = (uint8_t)b, p.local.ip[2] = (uint8_t)c;
	p.local.ip[3] = (uint8_t)d;
	sscanf(r, "%u.%u.%u.%u", &a, &b, &c, &d);
	p.remote.ip[0] = (uint8_t)a, p.remote.ip[1] = (uint8_t)b, p.remote.ip[2] = (uint8_t)c;
	p.remote.ip[3] = (uint8_t)d;
	p.local.port = lp;
	p.remote.port = rp;
	return p;
}

static struct tern_path path6(void)
{
	struct tern_path p;
	memset(&p, 0, sizeof(p));
	p.local.family = p.remote.family = 6;
	const uint8_t l[16] = {0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	const uint8_t r[16] = {0x20, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
	memcpy(p.local.ip, l, 16);
	memcpy(p.remote.ip, r, 16);
	p.local.port = 4433;
	p.remote.port = 50000;
	return p;
}

static struct tern_xdp_l2 l2_plain(void)
{
	struct tern_xdp_l2 l2;
	memset(&l2, 0, sizeof(l2));
	memcpy(l2.dst, mac_b, 6);
	memcpy(l2.src, mac_a, 6);
	return l2;
}

#define HEAD 128
static uint8_t buf[HEAD + 70000];

/* Builds a frame with payload bytes i*7+1; returns its start, *len set. */
static uint8_t *build(const struct tern_xdp_l2 *l2, const struct tern_path *p, size_t plen,
		      uint8_t ecn, uint16_t id, size_t *len)
{
	for (size_t i = 0; i < plen; i++)
		buf[HEAD + i] = (uint8_t)(i * 7 + 1);
	int hl = tern_xdp_frame_build(buf + HEAD, plen, HEAD, l2, p, ecn, id);
	cr_assert_gt(hl, 0);
	*len = (size_t)hl + plen;
	return buf + HEAD - hl;
}

/* ---- checksum ---------------------------------------------------------- */

Test(xdp_frame, csum_rfc1071_example)
{
	/* RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2. */
	const uint8_t b[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
	cr_assert_eq(tern_xdp_csum_fold(tern_xdp_csum_add(0, b, sizeof(b))), 0xddf2);
	/* the same sum from any split into even-length blocks */
	uint32_t s = tern_xdp_csum_add(0, b, 2);
	s = tern_xdp_csum_add(s, b + 2, 6);
	cr_assert_eq(tern_xdp_csum_fold(s), 0xddf2);
	s = tern_xdp_csum_add(tern_xdp_csum_add(0, b, 6), b + 6, 2);
	cr_assert_eq(tern_xdp_csum_fold(s), 0xddf2);
}

Test(xdp_frame, csum_matches_naive_for_every_length)
{
	uint8_t b[300];
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(0xff - i * 13);
	for (size_t n = 0; n <= sizeof(b); n++) {
		const uint8_t *blk[] = {b};
		size_t l[] = {n};
		cr_assert_eq(tern_xdp_csum_fold(tern_xdp_csum_add(0, b, n)), naive_sum(blk, l, 1),
			     "length %zu", n);
	}
	/* all-ones input: carries on every word */
	memset(b, 0xff, sizeof(b));
	cr_assert_eq(tern_xdp_csum_fold(tern_xdp_csum_add(0, b, sizeof(b))), 0xffff);
	memset(b, 0, sizeof(b));
	cr_assert_eq(tern_xdp_csum_fold(tern_xdp_csum_add(0, b, sizeof(b))), 0);
}

/* ---- building ---------------------------------------------------------- */

Test(xdp_frame, header_lengths)
{
	cr_assert_eq(tern_xdp_hdr_len(4, 0), 42);
	cr_assert_eq(tern_xdp_hdr_len(4, 1), 46);
	cr_assert_eq(tern_xdp_hdr_len(6, 0), 62);
	cr_assert_eq(tern_xdp_hdr_len(6, 1), 66);
	cr_assert_eq(TERN_XDP_HDR_MAX, 66);
}

Test(xdp_frame, ipv4_header_bytes_and_checksum)
{
	/* The classic worked example of the IPv4 header checksum: a 115-byte
	 * UDP datagram, DF, TTL 64, 192.168.0.1 -> 192.168.0.199: b861. Our
	 * builder writes exactly these fields with IP ID 0. */
	const uint8_t want[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
				  0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
	struct tern_path p = path4("192.168.0.1", 4433, "192.168.0.199", 443);
	struct tern_xdp_l2 l2 = l2_plain();
	size_t len;
	uint8_t *f = build(&l2, &p, 115 - 28, 0, 0, &len);
	cr_assert_eq(len, 14 + 115);
	cr_assert_arr_eq(f, mac_b, 6);
	cr_assert_arr_eq(f + 6, mac_a, 6);
	cr_assert_eq(f[12], 0x08);
	cr_assert_eq(f[13], 0x00);
	cr_assert_arr_eq(f + 14, want, 20);
	/* UDP: ports, length, and a checksum that verifies */
	const uint8_t *u = f + 34;
	cr_assert_eq(tern_get_u16(u), 4433);
	cr_assert_eq(tern_get_u16(u + 2), 443);
	cr_assert_eq(tern_get_u16(u + 4), 95);
	const uint8_t pseudo[4] = {0, 17, 0, 95};
	const uint8_t *blk[] = {p.local.ip, p.remote.ip, pseudo, u};
	size_t l[] = {4, 4, 4, 95};
	cr_assert_eq(naive_sum(blk, l, 4), 0xffff);
	cr_assert_neq(tern_get_u16(u + 6), 0);
}

Test(xdp_frame, ipv4_ecn_and_ip_id)
{
	struct tern_path p = path4("198.18.0.1", 1, "198.18.0.2", 2);
	struct tern_xdp_l2 l2 = l2_plain();
	for (uint8_t ecn = 0; ecn < 4; ecn++) {
		size_t len;
		uint8_t *f = build(&l2, &p, 10, ecn | 0xfc, 0xbeef, &len);
		cr_assert_eq(f[15], ecn, "only the ECN bits are written");
		cr_assert_eq(tern_get_u16(f + 18), 0xbeef);
		cr_assert_eq(tern_xdp_csum_fold(tern_xdp_csum_add(0, f + 14, 20)), 0xffff);
	}
}

Test(xdp_frame, ipv6_header_bytes)
{
	struct tern_path p = path6();
	struct tern_xdp_l2 l2 = l2_plain();
	size_t len;
	uint8_t *f = build(&l2, &p, 1200, 3, 0, &len);
	cr_assert_eq(len, 62 + 1200);
	cr_assert_eq(tern_get_u16(f + 12), 0x86dd);
	const uint8_t *ip = f + 14;
	cr_assert_eq(tern_get_u32(ip), 0x60300000, "version 6, ECN CE in the traffic class");
	cr_assert_eq(tern_get_u16(ip + 4), 1208);
	cr_assert_eq(ip[6], 17);
	cr_assert_eq(ip[7], 64);
	cr_assert_arr_eq(ip + 8, p.local.ip, 16);
	cr_assert_arr_eq(ip + 24, p.remote.ip, 16);
	const uint8_t *u = ip + 40;
	const uint8_t pseudo[4] = {0, 17, 0x04, 0xb8};
	const uint8_t *blk[] = {p.local.ip, p.remote.ip, pseudo, u};
	size_t l[] = {16, 16, 4, 1208};
	cr_assert_eq(naive_sum(blk, l, 4), 0xffff);
}

Test(xdp_frame, udp_checksum_zero_is_sent_as_ffff)
{
	/* RFC 768 / RFC 8200 §8.1: a computed checksum of 0 goes out as
	 * ffff. Choose the last two payload bytes so the sum is ffff. */
	for (int fam = 4; fam <= 6; fam += 2) {
		struct tern_path p = fam == 4 ? path4("10.0.0.1", 4433, "10.0.0.2", 1234) : path6();
		struct tern_xdp_l2 l2 = l2_plain();
		size_t len, plen = 20;
		uint8_t *f = build(&l2, &p, plen, 0, 0, &len);
		uint8_t *u = f + (fam == 4 ? 34 : 54);
		buf[HEAD + plen - 2] = buf[HEAD + plen - 1] = 0;
		tern_put_u16(u + 6, 0);
		size_t al = fam == 4 ? 4 : 16;
		const uint8_t pseudo[4] = {0, 17, 0, (uint8_t)(plen + 8)};
		const uint8_t *blk[] = {p.local.ip, p.remote.ip, pseudo, u};
		size_t l[] = {al, al, 4, plen + 8};
		uint16_t s = naive_sum(blk, l, 4);
		tern_put_u16(buf + HEAD + plen - 2, (uint16_t)(0xffff - s));
		f = buf + HEAD - tern_xdp_frame_build(buf + HEAD, plen, HEAD, &l2, &p, 0, 0);
		cr_assert_eq(tern_get_u16(u + 6), 0xffff, "family %d", fam);
	}
}

Test(xdp_frame, vlan_tag_is_written)
{
	struct tern_path p = path4("10.0.0.1", 1, "10.0.0.2", 2);
	struct tern_xdp_l2 l2 = l2_plain();
	l2.vlan_proto = 0x8100;
	l2.vlan_tci = 0x2064;
	size_t len;
	uint8_t *f = build(&l2, &p, 5, 0, 0, &len);
	cr_assert_eq(len, 46 + 5);
	const uint8_t want[] = {0x81, 0x00, 0x20, 0x64, 0x08, 0x00};
	cr_assert_arr_eq(f + 12, want, sizeof(want));
}

Test(xdp_frame, build_refuses_bad_arguments)
{
	struct tern_xdp_l2 l2 = l2_plain();
	struct tern_path p = path4("10.0.0.1", 1, "10.0.0.2", 2);
	cr_assert_eq(tern_xdp_frame_build(buf + HEAD, 10, 41, &l2, &p, 0, 0), TERN_ERR_NOBUF);
	cr_assert_eq(tern_xdp_frame_build(buf + HEAD, 10, 42, &l2, &p, 0, 0), 42);
	l2.vlan_proto = 0x8100;
	cr_assert_eq(tern_xdp_frame_build(buf + HEAD, 10, 45, &l2, &p, 0, 0), TERN_ERR_NOBUF);
	l2.vlan_proto = 0;
	/* 65535-byte IPv4 packets at most */
	cr_assert_eq(tern_xdp_frame_build(buf + HEAD, 65507, HEAD, &l2, &p, 0, 0), 42);
	cr_assert_eq(tern_xdp_frame_build(buf + HEAD, 65508, HEAD, &l2, &p, 0, 0), TERN_ERR_INVAL);
	struct tern_path p6 = path6();
	cr_assert_eq(tern_xdp_frame_build(buf + HEAD, 65527, HEAD, &l2, &p6, 0, 0), 62);
	cr_assert_eq(tern_xdp_frame_build(buf + HEAD, 65528, HEAD, &l2, &p6, 0, 0), TERN_ERR_INVAL);
	struct tern_path mixed = p;
	mixed.local = p6.local;
	cr_assert_eq(tern_xdp_frame_build(buf + HEAD, 10, HEAD, &l2, &mixed, 0, 0), TERN_ERR_INVAL);
	struct tern_path none;
	memset(&none, 0, sizeof(none));
	cr_assert_eq(tern_xdp_frame_build(buf + HEAD, 10, HEAD, &l2, &none, 0, 0), TERN_ERR_INVAL);
}

/* ---- parsing ----------------------------------------------------------- */

static void check_round_trip(const struct tern_xdp_l2 *l2, const struct tern_path *p, size_t plen,
			     uint8_t ecn)
{
	size_t len;
	uint8_t *f = build(l2, p, plen, ecn, 7, &len);
	struct tern_xdp_frame fr;
	cr_assert_eq(tern_xdp_frame_parse(f, len, &fr), 0);
	cr_assert_arr_eq(fr.l2.dst, l2->dst, 6);
	cr_assert_arr_eq(fr.l2.src, l2->src, 6);
	cr_assert_eq(fr.l2.vlan_proto, l2->vlan_proto);
	cr_assert_eq(fr.l2.vlan_tci, l2->vlan_tci);
	/* what we sent from is what the receiver sees as its remote */
	cr_assert(tern_addr_equal(&fr.path.remote, &p->local));
	cr_assert(tern_addr_equal(&fr.path.local, &p->remote));
	cr_assert_eq(fr.ecn, ecn);
	cr_assert_eq(fr.payload_len, plen);
	cr_assert_eq(fr.payload_off, len - plen);
	cr_assert_eq(f + fr.payload_off, buf + HEAD);
}

Test(xdp_frame, round_trips)
{
	struct tern_xdp_l2 l2 = l2_plain();
	struct tern_path p4 = path4("198.18.0.1", 4433, "198.18.0.2", 65535);
	struct tern_path p6 = path6();
	const size_t sizes[] = {0, 1, 2, 3, 1199, 1200, 1472, 9000};
	for (int v = 0; v < 3; v++) {
		l2.vlan_proto = v == 0 ? 0 : v == 1 ? 0x8100 : 0x88a8;
		l2.vlan_tci = v ? 0x0fff : 0;
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			for (uint8_t ecn = 0; ecn < 4; ecn++) {
				check_round_trip(&l2, &p4, sizes[i], ecn);
				check_round_trip(&l2, &p6, sizes[i], ecn);
			}
	}
}

/* A fresh valid IPv4 frame with a 16-byte payload, for mutation. */
static uint8_t f4[64];
static size_t f4_len;

static void make_f4(void)
{
	struct tern_xdp_l2 l2 = l2_plain();
	struct tern_path p = path4("10.1.1.1", 4433, "10.1.1.2", 999);
	size_t len;
	uint8_t *f = build(&l2, &p, 16, 0, 1, &len);
	memcpy(f4, f, len);
	f4_len = len;
}

/* Rewrites the IPv4 header checksum after a mutation. */
static void fix_ip4_csum(uint8_t *ip, size_t ihl)
{
	tern_put_u16(ip + 10, 0);
	tern_put_u16(ip + 10, (uint16_t)~tern_xdp_csum_fold(tern_xdp_csum_add(0, ip, ihl)));
}

static int parse4(void)
{
	struct tern_xdp_frame fr;
	return tern_xdp_frame_parse(f4, f4_len, &fr);
}

Test(xdp_frame, truncated_frames)
{
	make_f4();
	struct tern_xdp_frame fr;
	for (size_t n = 0; n < 14; n++)
		cr_assert_eq(tern_xdp_frame_parse(f4, n, &fr), TERN_ERR_TRUNCATED, "len %zu", n);
	/* IPv4 header cut, then the datagram cut */
	for (size_t n = 14; n < f4_len; n++)
		cr_assert_eq(tern_xdp_frame_parse(f4, n, &fr), TERN_ERR_TRUNCATED, "len %zu", n);
	cr_assert_eq(tern_xdp_frame_parse(f4, f4_len, &fr), 0);
	/* Ethernet padding after the datagram is fine */
	uint8_t padded[80];
	memcpy(padded, f4, f4_len);
	memset(padded + f4_len, 0, sizeof(padded) - f4_len);
	cr_assert_eq(tern_xdp_frame_parse(padded, sizeof(padded), &fr), 0);
	cr_assert_eq(fr.payload_len, 16);
	/* a VLAN tag cut in the middle */
	const uint8_t vlan[17] = {[12] = 0x81, [13] = 0x00};
	cr_assert_eq(tern_xdp_frame_parse(vlan, sizeof(vlan), &fr), TERN_ERR_TRUNCATED);
}

Test(xdp_frame, not_ip_or_not_udp)
{
	make_f4();
	f4[12] = 0x08, f4[13] = 0x06; /* ARP */
	cr_assert_eq(parse4(), TERN_ERR_MALFORMED);
	make_f4();
	f4[14 + 9] = 6; /* TCP */
	fix_ip4_csum(f4 + 14, 20);
	cr_assert_eq(parse4(), TERN_ERR_MALFORMED);
	make_f4();
	f4[14] = 0x55; /* IP version 5 */
	fix_ip4_csum(f4 + 14, 20);
	cr_assert_eq(parse4(), TERN_ERR_MALFORMED);
	make_f4();
	f4[12] = 0x86, f4[13] = 0xdd; /* an IPv4 header under the IPv6 ethertype */
	cr_assert_eq(parse4(), TERN_ERR_MALFORMED);
}

Test(xdp_frame, ipv4_header_rules)
{
	make_f4();
	f4[14] = 0x44; /* IHL 4 */
	fix_ip4_csum(f4 + 14, 20);
	cr_assert_eq(parse4(), TERN_ERR_MALFORMED);
	make_f4();
	f4[14 + 10] ^= 1; /* bad header checksum */
	cr_assert_eq(parse4(), TERN_ERR_MALFORMED);
	make_f4();
	tern_put_u16(f4 + 14 + 6, 0x2000); /* MF */
	fix_ip4_csum(f4 + 14, 20);
	cr_assert_eq(parse4(), TERN_ERR_MALFORMED);
	make_f4();
	tern_put_u16(f4 + 14 + 6, 0x0001); /* fragment offset 8 */
	fix_ip4_csum(f4 + 14, 20);
	cr_assert_eq(parse4(), TERN_ERR_MALFORMED);
	make_f4();
	tern_put_u16(f4 + 14 + 6, 0x0000); /* DF clear is not a fragment */
	fix_ip4_csum(f4 + 14, 20);
	cr_assert_eq(parse4(), 0);
	make_f4();
	tern_put_u16(f4 + 14 + 2, 19); /* total length under the header */
	fix_ip4_csum(f4 + 14, 20);
	cr_assert_eq(parse4(), TERN_ERR_MALFORMED);
	make_f4();
	tern_put_u16(f4 + 14 + 2, 27); /* room for no UDP header */
	fix_ip4_csum(f4 + 14, 20);
	cr_assert_eq(parse4(), TERN_ERR_MALFORMED);
	make_f4();
	tern_put_u16(f4 + 14 + 2, (uint16_t)(f4_len - 14 + 1)); /* longer than the frame */
	fix_ip4_csum(f4 + 14, 20);
	cr_assert_eq(parse4(), TERN_ERR_TRUNCATED);
	make_f4();
	f4[14] = 0x4f; /* IHL 60 bytes: more than the frame holds */
	fix_ip4_csum(f4 + 14, 20);
	struct tern_xdp_frame fr;
	cr_assert_eq(tern_xdp_frame_parse(f4, 14 + 40, &fr), TERN_ERR_TRUNCATED);
}

Test(xdp_frame, ipv4_options_are_skipped)
{
	make_f4();
	/* insert 4 bytes of options (NOP NOP NOP EOL) after the header */
	uint8_t f[80];
	memcpy(f, f4, 34);
	memcpy(f + 34, "\x01\x01\x01\x00", 4);
	memcpy(f + 38, f4 + 34, f4_len - 34);
	f[14] = 0x46;
	tern_put_u16(f + 16, (uint16_t)(f4_len - 14 + 4));
	fix_ip4_csum(f + 14, 24);
	struct tern_xdp_frame fr;
	cr_assert_eq(tern_xdp_frame_parse(f, f4_len + 4, &fr), 0);
	cr_assert_eq(fr.payload_off, 14 + 24 + 8);
	cr_assert_eq(fr.payload_len, 16);
	cr_assert_eq(fr.path.remote.port, 4433);
	cr_assert_eq(fr.path.local.port, 999);
}

Test(xdp_frame, udp_length_rules)
{
	make_f4();
	uint8_t *u = f4 + 34;
	tern_put_u16(u + 4, 7);
	cr_assert_eq(parse4(), TERN_ERR_MALFORMED);
	tern_put_u16(u + 4, 25); /* one more than IP carries */
	cr_assert_eq(parse4(), TERN_ERR_MALFORMED);
	tern_put_u16(u + 4, 8); /* shorter than IP: the rest is trailer */
	struct tern_xdp_frame fr;
	cr_assert_eq(tern_xdp_frame_parse(f4, f4_len, &fr), 0);
	cr_assert_eq(fr.payload_len, 0);
	tern_put_u16(u + 4, 24);
	cr_assert_eq(tern_xdp_frame_parse(f4, f4_len, &fr), 0);
	cr_assert_eq(fr.payload_len, 16);
}

Test(xdp_frame, ipv6_rules)
{
	struct tern_xdp_l2 l2 = l2_plain();
	struct tern_path p = path6();
	size_t len;
	uint8_t f[200];
	uint8_t *b = build(&l2, &p, 20, 1, 0, &len);
	memcpy(f, b, len);
	struct tern_xdp_frame fr;
	cr_assert_eq(tern_xdp_frame_parse(f, len, &fr), 0);
	cr_assert_eq(fr.ecn, 1);
	for (size_t n = 14; n < len; n++)
		cr_assert_eq(tern_xdp_frame_parse(f, n, &fr), TERN_ERR_TRUNCATED, "len %zu", n);
	f[14 + 6] = 0; /* hop-by-hop options before UDP */
	cr_assert_eq(tern_xdp_frame_parse(f, len, &fr), TERN_ERR_MALFORMED);
	f[14 + 6] = 17;
	f[14] = 0x40; /* version 4 */
	cr_assert_eq(tern_xdp_frame_parse(f, len, &fr), TERN_ERR_MALFORMED);
	f[14] = 0x60;
	tern_put_u16(f + 18, 0); /* jumbogram */
	cr_assert_eq(tern_xdp_frame_parse(f, len, &fr), TERN_ERR_MALFORMED);
	tern_put_u16(f + 18, 7); /* no room for UDP */
	cr_assert_eq(tern_xdp_frame_parse(f, len, &fr), TERN_ERR_MALFORMED);
	tern_put_u16(f + 18, 29);
	cr_assert_eq(tern_xdp_frame_parse(f, len, &fr), TERN_ERR_TRUNCATED);
	tern_put_u16(f + 18, 28);
	cr_assert_eq(tern_xdp_frame_parse(f, len, &fr), 0);
}

Test(xdp_frame, huge_lengths_are_capped)
{
	/* a frame longer than any IP datagram still parses what it holds */
	static uint8_t big[70000];
	struct tern_xdp_l2 l2 = l2_plain();
	struct tern_path p = path6();
	size_t len;
	uint8_t *f = build(&l2, &p, 65000, 0, 0, &len);
	memcpy(big, f, len);
	struct tern_xdp_frame fr;
	cr_assert_eq(tern_xdp_frame_parse(big, sizeof(big), &fr), 0);
	cr_assert_eq(fr.payload_len, 65000);
	cr_assert_eq(fr.payload_off, 62);
}
