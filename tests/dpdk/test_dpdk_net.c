/* Tests of the DPDK datapath's framing (dpdk/net.c): no DPDK, no root.
 *
 * The frame vectors were captured from the Linux 6.x kernel (Debian 12) on
 * a veth pair between two network namespaces, tx checksum offload off:
 *   side A: 02:00:00:00:00:01, 198.18.0.1, 2001:2::1 (tern's role)
 *   side B: 02:00:00:00:00:02, 198.18.0.2, 2001:2::2
 * (arping, ping, ping -6, and python UDP sockets with IP_TOS/IPV6_TCLASS
 * for the ECN bits). Where tern must answer as the kernel did, the test
 * compares against the kernel's answer byte for byte. Checksums of crafted
 * frames are fixed up with a textbook RFC 1071 implementation kept here,
 * independent of the one under test. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>

#include "net.h"

#define BUF 2048

/* ---- captured frames ------------------------------------------------------------------ */

#include "vectors.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static size_t unhex(const char *s, uint8_t *out)
{
	size_t n = strlen(s) / 2;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		cr_assert_eq(sscanf(s + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	return n;
}

/* RFC 1071 the slow way: big-endian 16-bit words, carries folded. */
static uint32_t ref_add(uint32_t acc, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		acc += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		acc += (uint32_t)p[n - 1] << 8;
	return acc;
}

static uint16_t ref_fold(uint32_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)acc;
}

static uint32_t ref_pseudo(int fam, const uint8_t *src, const uint8_t *dst, uint32_t len, uint8_t proto)
{
	size_t al = fam == 4 ? 4 : 16;
	uint32_t acc = ref_add(ref_add(0, src, al), dst, al);
	return acc + (len >> 16) + (len & 0xffff) + proto;
}

/* Offsets in an untagged frame. */
#define IP 14
#define L4_4 (IP + 20)
#define L4_6 (IP + 40)

static void fix_ip4(uint8_t *f)
{
	size_t hl = (size_t)(f[IP] & 15) * 4;
	f[IP + 10] = f[IP + 11] = 0;
	tern_put_u16(f + IP + 10, (uint16_t)~ref_fold(ref_add(0, f + IP, hl)));
}

/* Recomputes the L4 checksum (UDP or ICMPv6 over IPv6, UDP over IPv4). */
static void fix_l4(uint8_t *f, int fam, size_t csum_at)
{
	uint8_t *ip = f + IP;
	size_t l4 = fam == 4 ? IP + (size_t)(ip[0] & 15) * 4 : L4_6;
	size_t len = fam == 4 ? tern_get_u16(ip + 2) - (l4 - IP) : tern_get_u16(ip + 4);
	uint8_t proto = fam == 4 ? ip[9] : ip[6];
	f[l4 + csum_at] = f[l4 + csum_at + 1] = 0;
	uint32_t acc = ref_add(fam == 4 ? ref_pseudo(4, ip + 12, ip + 16, (uint32_t)len, proto)
					: ref_pseudo(6, ip + 8, ip + 24, (uint32_t)len, proto),
			       f + l4, len);
	uint16_t c = (uint16_t)~ref_fold(acc);
	tern_put_u16(f + l4 + csum_at, c);
}

static int l4_ok(const uint8_t *f, int fam)
{
	const uint8_t *ip = f + IP;
	size_t l4 = fam == 4 ? IP + (size_t)(ip[0] & 15) * 4 : L4_6;
	size_t len = fam == 4 ? tern_get_u16(ip + 2) - (l4 - IP) : tern_get_u16(ip + 4);
	uint8_t proto = fam == 4 ? ip[9] : ip[6];
	uint32_t acc = proto == 1 ? 0
		       : fam == 4 ? ref_pseudo(4, ip + 12, ip + 16, (uint32_t)len, proto)
				  : ref_pseudo(6, ip + 8, ip + 24, (uint32_t)len, proto);
	return ref_fold(ref_add(acc, f + l4, len)) == 0xffff;
}

static struct tern_net_if if_a(void)
{
	struct tern_net_if i = {.mac = {2, 0, 0, 0, 0, 1},
				.has4 = 1,
				.has6 = 1,
				.ip4 = {198, 18, 0, 1},
				.ip6 = {0x20, 0x01, 0, 2, [15] = 1},
				.port = 4433};
	return i;
}

static struct tern_net_if if_b(void)
{
	struct tern_net_if i = {.mac = {2, 0, 0, 0, 0, 2},
				.has4 = 1,
				.has6 = 1,
				.ip4 = {198, 18, 0, 2},
				.ip6 = {0x20, 0x01, 0, 2, [15] = 2},
				.port = 5555};
	return i;
}

static const uint8_t mac_a[6] = {2, 0, 0, 0, 0, 1}, mac_b[6] = {2, 0, 0, 0, 0, 2};
static const uint8_t ip6_a[16] = {0x20, 0x01, 0, 2, [15] = 1}, ip6_b[16] = {0x20, 0x01, 0, 2, [15] = 2};
static const uint8_t ip4_b[4] = {198, 18, 0, 2};

static struct tern_addr addr(int fam, const uint8_t *ip, uint16_t port)
{
	struct tern_addr a;
	memset(&a, 0, sizeof(a));
	a.family = (uint8_t)fam;
	a.port = port;
	memcpy(a.ip, ip, fam == 4 ? 4 : 16);
	return a;
}

static int rx_hint(const struct tern_net_if *ifc, uint8_t *f, size_t n, const struct tern_net_rx_hint *h,
		   struct tern_net_rx *r)
{
	memset(r, 0xa5, sizeof(*r)); /* nothing may leak from before */
	return tern_net_rx(ifc, f, n, BUF, h, r);
}

static int rx(const struct tern_net_if *ifc, uint8_t *f, size_t n, struct tern_net_rx *r)
{
	return rx_hint(ifc, f, n, NULL, r);
}

static void assert_drop(const struct tern_net_if *ifc, uint8_t *f, size_t n, int reason)
{
	struct tern_net_rx r;
	cr_assert_eq(rx(ifc, f, n, &r), TERN_NET_DROP);
	cr_assert_eq(r.reason, reason, "expected %s, got %s", tern_dpdk_drop_name(reason),
		     tern_dpdk_drop_name(r.reason));
}

/* ---- checksum ---------------------------------------------------------------------------- */

Test(dpdk_net, checksum_rfc1071_example)
{
	/* RFC 1071 §3: octets 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 */
	static const uint8_t b[8] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
	uint16_t s = tern_net_fold(tern_net_sum(b, sizeof(b), 0));
	uint8_t o[2];
	memcpy(o, &s, 2);
	cr_assert_eq(o[0], 0xdd);
	cr_assert_eq(o[1], 0xf2);
	/* the same words in two pieces, and with the tail odd */
	s = tern_net_fold(tern_net_sum(b + 2, 6, tern_net_sum(b, 2, 0)));
	memcpy(o, &s, 2);
	cr_assert(o[0] == 0xdd && o[1] == 0xf2);
}

Test(dpdk_net, checksum_matches_reference_at_every_length)
{
	uint8_t b[300];
	uint32_t x = 12345;
	for (size_t i = 0; i < sizeof(b); i++) {
		x = x * 1103515245u + 12345u;
		b[i] = (uint8_t)(x >> 16);
	}
	for (size_t n = 0; n <= sizeof(b); n++) {
		for (size_t cut = 0; cut <= n; cut += 2) { /* even first piece */
			uint16_t s = tern_net_fold(tern_net_sum(b + cut, n - cut, tern_net_sum(b, cut, 0)));
			uint8_t o[2];
			memcpy(o, &s, 2);
			uint16_t want = ref_fold(ref_add(0, b, n));
			cr_assert_eq(tern_get_u16(o), want, "length %zu cut %zu", n, cut);
		}
	}
	/* all ones stays all ones, huge sums fold */
	memset(b, 0xff, sizeof(b));
	uint16_t s = tern_net_fold(tern_net_sum(b, sizeof(b), 0));
	cr_assert_eq(s, 0xffff);
	/* 2^64 = 1 modulo 0xffff: 2^64 - 2 is -1, and 2^64 - 1 is zero, which a
	 * non-zero sum shows as all ones */
	cr_assert_eq(tern_net_fold(UINT64_MAX - 1), 0xfffe);
	cr_assert_eq(tern_net_fold(UINT64_MAX), 0xffff);
	cr_assert_eq(tern_net_fold(0x1fffe), 0xffff);
}

Test(dpdk_net, checksum_verifies_kernel_frames)
{
	const char *v4[] = {ECHO4_REQ, UDP4_ECT1, UDP4_ODD, UDP4_A_TO_B, ICMP4_UNREACH};
	for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
		uint8_t f[BUF];
		unhex(v4[i], f);
		cr_assert_eq(tern_net_fold(tern_net_sum(f + IP, 20, 0)), 0xffff);
	}
	uint8_t f[BUF];
	unhex(UDP6_TC2, f);
	size_t ulen = tern_get_u16(f + IP + 4);
	uint64_t ps = tern_net_pseudo_sum(6, f + IP + 8, f + IP + 24, (uint32_t)ulen, 17);
	cr_assert_eq(tern_net_fold(tern_net_sum(f + L4_6, ulen, ps)), 0xffff);
	unhex(UDP4_ODD, f);
	ps = tern_net_pseudo_sum(4, f + IP + 12, f + IP + 16, 11, 17);
	cr_assert_eq(tern_net_fold(tern_net_sum(f + L4_4, 11, ps)), 0xffff, "odd length UDP");
	f[L4_4 + 10] ^= 1;
	cr_assert_neq(tern_net_fold(tern_net_sum(f + L4_4, 11, ps)), 0xffff);
}

/* ---- ARP ---------------------------------------------------------------------------------- */

Test(dpdk_net, arp_request_answered_as_the_kernel_does)
{
	struct tern_net_if a = if_a();
	const char *reqs[] = {ARPING_REQ, ARP_REQ_B}; /* arping sets tha ff.., the kernel 00.. */
	for (int i = 0; i < 2; i++) {
		uint8_t f[BUF], want[BUF];
		size_t n = unhex(reqs[i], f);
		size_t wn = unhex(ARP_REPLY_TO_B, want);
		struct tern_net_rx r;
		cr_assert_eq(rx(&a, f, n, &r), TERN_NET_REPLY);
		cr_assert_eq(r.kind, TERN_NET_REPLY_ARP);
		cr_assert_eq(r.len, wn);
		cr_assert_arr_eq(f, want, wn);
		cr_assert_eq(r.learn.family, 4);
		cr_assert_arr_eq(r.learn.ip, ip4_b, 4);
		cr_assert_arr_eq(r.learn_mac, mac_b, 6);
	}
}

Test(dpdk_net, arp_reply_teaches_the_neighbour)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF];
	/* the kernel's answer to A's request, seen from A */
	size_t n = unhex(ARP_REPLY_TO_B, f);
	struct tern_net_if b = if_b();
	struct tern_net_rx r;
	cr_assert_eq(rx(&b, f, n, &r), TERN_NET_NEIGH);
	cr_assert_eq(r.learn.family, 4);
	cr_assert_arr_eq(r.learn.ip, a.ip4, 4);
	cr_assert_arr_eq(r.learn_mac, mac_a, 6);
	/* a reply from 0.0.0.0 teaches nothing, so it is only counted */
	memset(f + IP + 14, 0, 4);
	assert_drop(&b, f, n, TERN_DPDK_DROP_ARP_IGNORED);
}

Test(dpdk_net, arp_not_for_us_is_ignored)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF];
	size_t n = unhex(ARP_REQ_B, f);
	a.ip4[3] = 9;
	assert_drop(&a, f, n, TERN_DPDK_DROP_ARP_IGNORED);
	a = if_a();
	a.has4 = 0;
	assert_drop(&a, f, n, TERN_DPDK_DROP_ARP_IGNORED);
	a = if_a();
	f[IP + 1] = 6; /* hardware type 6 */
	assert_drop(&a, f, n, TERN_DPDK_DROP_ARP_IGNORED);
	n = unhex(ARP_REQ_B, f);
	f[IP + 7] = 3; /* RARP request */
	assert_drop(&a, f, n, TERN_DPDK_DROP_ARP_IGNORED);
	n = unhex(ARP_REQ_B, f);
	memcpy(f + IP + 14, a.ip4, 4); /* someone claims our address */
	assert_drop(&a, f, n, TERN_DPDK_DROP_ARP_IGNORED);
	n = unhex(ARP_REQ_B, f);
	f[IP + 8] |= 1; /* multicast sender hardware address */
	assert_drop(&a, f, n, TERN_DPDK_DROP_ARP_IGNORED);
	n = unhex(ARP_REQ_B, f);
	assert_drop(&a, f, n - 1, TERN_DPDK_DROP_MALFORMED);
	f[0] = 0x04; /* to another station */
	assert_drop(&a, f, n, TERN_DPDK_DROP_OTHER_MAC);
}

Test(dpdk_net, arp_probe_is_answered_but_teaches_nothing)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF];
	size_t n = unhex(ARP_REQ_B, f);
	memset(f + IP + 14, 0, 4); /* RFC 5227 probe: sender IP 0.0.0.0 */
	struct tern_net_rx r;
	cr_assert_eq(rx(&a, f, n, &r), TERN_NET_REPLY);
	cr_assert_eq(r.learn.family, 0);
	cr_assert_arr_eq(f, mac_b, 6);
	cr_assert_eq(tern_get_u16(f + IP + 6), 2);
}

/* ---- IPv4 ---------------------------------------------------------------------------------- */

Test(dpdk_net, udp4_payload_path_and_ecn)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF];
	size_t n = unhex(UDP4_ECT1, f);
	struct tern_net_rx r;
	cr_assert_eq(rx(&a, f, n, &r), TERN_NET_UDP);
	cr_assert_eq(r.len, 10);
	cr_assert_eq(r.off, L4_4 + 8);
	cr_assert_arr_eq(f + r.off, "hello tern", 10);
	cr_assert_eq(r.ecn, 1, "ECT(1) from IP_TOS 1");
	cr_assert_eq(r.path.remote.family, 4);
	cr_assert_arr_eq(r.path.remote.ip, ip4_b, 4);
	cr_assert_eq(r.path.remote.port, 5555);
	cr_assert_eq(r.path.local.family, 4);
	cr_assert_arr_eq(r.path.local.ip, a.ip4, 4);
	cr_assert_eq(r.path.local.port, 4433);
	cr_assert_eq(r.learn.family, 4);
	cr_assert_eq(r.learn.port, 5555);
	cr_assert_arr_eq(r.learn_mac, mac_b, 6);
	n = unhex(UDP4_ODD, f);
	cr_assert_eq(rx(&a, f, n, &r), TERN_NET_UDP);
	cr_assert_eq(r.len, 3);
	cr_assert_arr_eq(f + r.off, "odd", 3);
	cr_assert_eq(r.ecn, 0);
	cr_assert_eq(r.path.remote.port, 5556);
}

Test(dpdk_net, udp4_checksum_rules)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF];
	size_t n = unhex(UDP4_ECT1, f);
	f[n - 1] ^= 0x40;
	assert_drop(&a, f, n, TERN_DPDK_DROP_BAD_CHECKSUM);
	/* RFC 768: zero means the sender computed none */
	f[L4_4 + 6] = f[L4_4 + 7] = 0;
	struct tern_net_rx r;
	cr_assert_eq(rx(&a, f, n, &r), TERN_NET_UDP);
	cr_assert_eq(r.len, 10);
	/* the NIC's verdict wins over ours */
	n = unhex(UDP4_ECT1, f);
	f[n - 1] ^= 0x40;
	struct tern_net_rx_hint good = {.l4_csum = TERN_NET_CSUM_GOOD};
	cr_assert_eq(rx_hint(&a, f, n, &good, &r), TERN_NET_UDP);
	n = unhex(UDP4_ECT1, f);
	struct tern_net_rx_hint bad = {.l4_csum = TERN_NET_CSUM_BAD};
	cr_assert_eq(rx_hint(&a, f, n, &bad, &r), TERN_NET_DROP);
	cr_assert_eq(r.reason, TERN_DPDK_DROP_BAD_CHECKSUM);
	struct tern_net_rx_hint badip = {.ip_csum = TERN_NET_CSUM_BAD};
	cr_assert_eq(rx_hint(&a, f, n, &badip, &r), TERN_NET_DROP);
	cr_assert_eq(r.reason, TERN_DPDK_DROP_BAD_IP);
	f[IP + 10] ^= 1; /* header checksum broken, NIC says it is good */
	struct tern_net_rx_hint goodip = {.ip_csum = TERN_NET_CSUM_GOOD};
	cr_assert_eq(rx_hint(&a, f, n, &goodip, &r), TERN_NET_UDP);
}

/* A load generator tells its flows apart by local port: a range of ports
 * is ours, the destination port is the path's local port, and the ports
 * either side of the range are not ours. */
Test(dpdk_net, udp_port_range)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF];
	size_t n = unhex(UDP4_ECT1, f); /* to port 4433 */
	struct tern_net_rx r;
	a.port = 4430;
	a.n_ports = 4; /* 4430..4433 */
	cr_assert_eq(rx(&a, f, n, &r), TERN_NET_UDP);
	cr_assert_eq(r.path.local.port, 4433);
	cr_assert_eq(r.path.remote.port, 5555);
	a.n_ports = 3; /* 4430..4432 */
	assert_drop(&a, f, n, TERN_DPDK_DROP_WRONG_PORT);
	a.port = 4434;
	a.n_ports = 100; /* above 4433 */
	assert_drop(&a, f, n, TERN_DPDK_DROP_WRONG_PORT);
	a.port = 4433;
	a.n_ports = 0; /* counts as one */
	cr_assert_eq(rx(&a, f, n, &r), TERN_NET_UDP);
	cr_assert_eq(r.path.local.port, 4433);
}

Test(dpdk_net, udp4_drops_by_reason)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF];
	size_t n = unhex(UDP4_ECT1, f);
	a.port = 4434;
	assert_drop(&a, f, n, TERN_DPDK_DROP_WRONG_PORT);
	a = if_a();
	a.ip4[3] = 7;
	assert_drop(&a, f, n, TERN_DPDK_DROP_WRONG_ADDR);
	a = if_a();
	a.has4 = 0;
	assert_drop(&a, f, n, TERN_DPDK_DROP_WRONG_ADDR);
	a = if_a();
	f[IP + 6] |= 0x20; /* more fragments */
	fix_ip4(f);
	assert_drop(&a, f, n, TERN_DPDK_DROP_FRAGMENT);
	n = unhex(UDP4_ECT1, f);
	tern_put_u16(f + IP + 6, 0x0001); /* a later fragment */
	fix_ip4(f);
	assert_drop(&a, f, n, TERN_DPDK_DROP_FRAGMENT);
	n = unhex(UDP4_ECT1, f);
	f[IP + 9] = 6; /* TCP */
	fix_ip4(f);
	assert_drop(&a, f, n, TERN_DPDK_DROP_NOT_UDP);
	n = unhex(UDP4_ECT1, f);
	f[IP + 12] = 224; /* multicast source, RFC 1122 §3.2.1.3 */
	fix_ip4(f);
	assert_drop(&a, f, n, TERN_DPDK_DROP_BAD_IP);
	n = unhex(UDP4_ECT1, f);
	f[IP + 10] ^= 0x10;
	assert_drop(&a, f, n, TERN_DPDK_DROP_BAD_IP);
	n = unhex(UDP4_ECT1, f);
	f[IP] = 0x55; /* version 5 */
	assert_drop(&a, f, n, TERN_DPDK_DROP_BAD_IP);
	f[IP] = 0x44; /* header of 16 bytes */
	assert_drop(&a, f, n, TERN_DPDK_DROP_BAD_IP);
	n = unhex(UDP4_ECT1, f);
	f[6] = 0x33; /* the source MAC does not matter... */
	f[0] = 0xff; /* ...but a broadcast destination does */
	assert_drop(&a, f, n, TERN_DPDK_DROP_OTHER_MAC);
	n = unhex(UDP4_ECT1, f);
	tern_put_u16(f + 12, 0x88cc); /* LLDP */
	assert_drop(&a, f, n, TERN_DPDK_DROP_NOT_IP);
}

Test(dpdk_net, udp4_lengths_that_do_not_add_up)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF];
	size_t n = unhex(UDP4_ECT1, f);
	assert_drop(&a, f, 13, TERN_DPDK_DROP_MALFORMED);
	assert_drop(&a, f, IP + 19, TERN_DPDK_DROP_MALFORMED);
	assert_drop(&a, f, n - 1, TERN_DPDK_DROP_MALFORMED); /* IP total length past the frame */
	tern_put_u16(f + IP + 2, 20 + 7); /* too short for a UDP header */
	fix_ip4(f);
	assert_drop(&a, f, n, TERN_DPDK_DROP_MALFORMED);
	n = unhex(UDP4_ECT1, f);
	tern_put_u16(f + L4_4 + 4, 7); /* UDP length under its header */
	assert_drop(&a, f, n, TERN_DPDK_DROP_MALFORMED);
	tern_put_u16(f + L4_4 + 4, 19); /* UDP length past the IP payload */
	assert_drop(&a, f, n, TERN_DPDK_DROP_MALFORMED);
	/* Ethernet padding after the IP packet is ignored */
	n = unhex(UDP4_ECT1, f);
	memset(f + n, 0, 60 - n);
	struct tern_net_rx r;
	cr_assert_eq(rx(&a, f, 60, &r), TERN_NET_UDP);
	cr_assert_eq(r.len, 10);
	/* a buffer smaller than the frame is the caller's bug */
	cr_assert_eq(tern_net_rx(&a, f, 60, 59, NULL, &r), TERN_NET_DROP);
}

Test(dpdk_net, udp4_with_ip_options)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF], g[BUF];
	size_t n = unhex(UDP4_ECT1, f);
	/* insert one 4-byte option (four NOPs) after the fixed header */
	memcpy(g, f, L4_4);
	memset(g + L4_4, 1, 4);
	memcpy(g + L4_4 + 4, f + L4_4, n - L4_4);
	g[IP] = 0x46;
	tern_put_u16(g + IP + 2, (uint16_t)(tern_get_u16(f + IP + 2) + 4));
	fix_ip4(g);
	struct tern_net_rx r;
	cr_assert_eq(rx(&a, g, n + 4, &r), TERN_NET_UDP);
	cr_assert_eq(r.off, L4_4 + 4 + 8);
	cr_assert_arr_eq(g + r.off, "hello tern", 10);
}

Test(dpdk_net, vlan_tag_must_match)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF], g[BUF];
	size_t n = unhex(UDP4_ECT1, f);
	memcpy(g, f, 12);
	tern_put_u16(g + 12, 0x8100);
	tern_put_u16(g + 14, 0x2064); /* priority 1, VLAN 100 */
	memcpy(g + 16, f + 12, n - 12);
	assert_drop(&a, g, n + 4, TERN_DPDK_DROP_WRONG_VLAN);
	a.vlan = 100;
	struct tern_net_rx r;
	cr_assert_eq(rx(&a, g, n + 4, &r), TERN_NET_UDP);
	cr_assert_eq(r.off, L4_4 + 4 + 8);
	cr_assert_arr_eq(g + r.off, "hello tern", 10);
	assert_drop(&a, f, n, TERN_DPDK_DROP_WRONG_VLAN); /* untagged */
	struct tern_net_rx_hint stripped = {.vlan_stripped = 1, .vlan_tci = 0x2064};
	cr_assert_eq(rx_hint(&a, f, n, &stripped, &r), TERN_NET_UDP, "tag taken off by the NIC");
	assert_drop(&a, g, 17, TERN_DPDK_DROP_MALFORMED);
}

Test(dpdk_net, echo4_answered_like_the_kernel)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF], want[BUF];
	size_t n = unhex(ECHO4_REQ, f);
	unhex(ECHO4_REPLY, want);
	struct tern_net_rx r;
	cr_assert_eq(rx(&a, f, n, &r), TERN_NET_REPLY);
	cr_assert_eq(r.kind, TERN_NET_REPLY_ECHO);
	cr_assert_eq(r.len, n);
	cr_assert_arr_eq(f, want, IP, "Ethernet header");
	/* the kernel picks a fresh IP ID and clears DF; the ICMP message is
	 * the same byte for byte */
	cr_assert_arr_eq(f + L4_4, want + L4_4, n - L4_4);
	cr_assert_arr_eq(f + IP + 12, want + IP + 12, 8, "addresses swapped");
	cr_assert_eq(f[IP + 8], 64);
	cr_assert_eq(f[IP + 9], 1);
	cr_assert_eq(ref_fold(ref_add(0, f + IP, 20)), 0xffff, "IP header checksum");
	cr_assert_eq(r.learn.family, 4);
	cr_assert_arr_eq(r.learn_mac, mac_b, 6);
}

Test(dpdk_net, icmp4_other_than_echo_or_bad)
{
	struct tern_net_if b = if_b();
	uint8_t f[BUF];
	size_t n = unhex(ICMP4_UNREACH, f); /* A's port unreachable, seen by B */
	assert_drop(&b, f, n, TERN_DPDK_DROP_ICMP_IGNORED);
	struct tern_net_if a = if_a();
	n = unhex(ECHO4_REQ, f);
	f[n - 1] ^= 1;
	assert_drop(&a, f, n, TERN_DPDK_DROP_BAD_CHECKSUM);
	n = unhex(ECHO4_REQ, f);
	tern_put_u16(f + IP + 2, 20 + 7);
	fix_ip4(f);
	assert_drop(&a, f, n, TERN_DPDK_DROP_MALFORMED);
}

/* ---- IPv6 ---------------------------------------------------------------------------------- */

Test(dpdk_net, udp6_payload_path_and_ecn)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF];
	size_t n = unhex(UDP6_TC2, f);
	struct tern_net_rx r;
	cr_assert_eq(rx(&a, f, n, &r), TERN_NET_UDP);
	cr_assert_eq(r.off, L4_6 + 8);
	cr_assert_eq(r.len, 11);
	cr_assert_arr_eq(f + r.off, "hello tern6", 11);
	cr_assert_eq(r.ecn, 2, "ECT(0) from IPV6_TCLASS 2");
	cr_assert_eq(r.path.remote.family, 6);
	cr_assert_arr_eq(r.path.remote.ip, ip6_b, 16);
	cr_assert_eq(r.path.remote.port, 5555);
	cr_assert_arr_eq(r.path.local.ip, ip6_a, 16);
	cr_assert_eq(r.path.local.port, 4433);
	cr_assert_eq(r.learn.family, 6);
	cr_assert_arr_eq(r.learn_mac, mac_b, 6);
}

Test(dpdk_net, udp6_drops_by_reason)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF];
	size_t n = unhex(UDP6_TC2, f);
	f[n - 1] ^= 2;
	assert_drop(&a, f, n, TERN_DPDK_DROP_BAD_CHECKSUM);
	f[L4_6 + 6] = f[L4_6 + 7] = 0; /* RFC 8200 §8.1: zero is invalid over IPv6 */
	assert_drop(&a, f, n, TERN_DPDK_DROP_BAD_CHECKSUM);
	n = unhex(UDP6_TC2, f);
	f[IP + 6] = 44;
	assert_drop(&a, f, n, TERN_DPDK_DROP_FRAGMENT);
	f[IP + 6] = 0; /* hop-by-hop options */
	assert_drop(&a, f, n, TERN_DPDK_DROP_NOT_UDP);
	n = unhex(UDP6_TC2, f);
	a.port = 1;
	assert_drop(&a, f, n, TERN_DPDK_DROP_WRONG_PORT);
	a = if_a();
	a.ip6[15] = 3;
	assert_drop(&a, f, n, TERN_DPDK_DROP_WRONG_ADDR);
	a = if_a();
	a.has6 = 0;
	assert_drop(&a, f, n, TERN_DPDK_DROP_WRONG_ADDR);
	a = if_a();
	/* UDP to our solicited-node group is not for us */
	static const uint8_t snm[16] = {0xff, 2, [11] = 1, [12] = 0xff, [15] = 1};
	memcpy(f + IP + 24, snm, 16);
	fix_l4(f, 6, 6);
	assert_drop(&a, f, n, TERN_DPDK_DROP_WRONG_ADDR);
	n = unhex(UDP6_TC2, f);
	f[IP + 8] = 0xff; /* multicast source */
	assert_drop(&a, f, n, TERN_DPDK_DROP_BAD_IP);
	n = unhex(UDP6_TC2, f);
	f[IP] = 0x40;
	assert_drop(&a, f, n, TERN_DPDK_DROP_BAD_IP);
	n = unhex(UDP6_TC2, f);
	assert_drop(&a, f, n - 1, TERN_DPDK_DROP_MALFORMED);
	assert_drop(&a, f, IP + 39, TERN_DPDK_DROP_MALFORMED);
	n = unhex(MLD_REPORT, f); /* to ff02::16, a group we are not in */
	assert_drop(&a, f, n, TERN_DPDK_DROP_WRONG_ADDR);
	n = unhex(UDP6_TC2, f);
	f[0] = 0x33; /* a multicast MAC for an IPv4 frame is not ours */
	tern_put_u16(f + 12, 0x0800);
	assert_drop(&a, f, n, TERN_DPDK_DROP_OTHER_MAC);
}

Test(dpdk_net, ns_answered_with_the_kernels_advertisement)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF], want[BUF];
	size_t n = unhex(NS_B, f);
	size_t wn = unhex(NA_A, want);
	struct tern_net_rx r;
	cr_assert_eq(rx(&a, f, n, &r), TERN_NET_REPLY);
	cr_assert_eq(r.kind, TERN_NET_REPLY_ND);
	cr_assert_eq(r.len, wn);
	cr_assert_arr_eq(f, want, wn);
	cr_assert_eq(r.learn.family, 6);
	cr_assert_arr_eq(r.learn.ip, ip6_b, 16);
	cr_assert_arr_eq(r.learn_mac, mac_b, 6, "from the source link-layer option");
}

Test(dpdk_net, ns_without_source_option_grows_in_place)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF], want[BUF];
	size_t n = unhex(NS_B, f) - 8; /* drop the option */
	tern_put_u16(f + IP + 4, 24);
	fix_l4(f, 6, 2);
	f[6] = 0x02;
	f[11] = 0x02; /* same MAC in the frame */
	struct tern_net_rx r;
	cr_assert_eq(tern_net_rx(&a, f, n, n, NULL, &r), TERN_NET_DROP, "no room for the answer");
	cr_assert_eq(r.reason, TERN_DPDK_DROP_MALFORMED);
	cr_assert_eq(tern_net_rx(&a, f, n, n + 8, NULL, &r), TERN_NET_REPLY);
	size_t wn = unhex(NA_A, want);
	cr_assert_eq(r.len, wn);
	cr_assert_arr_eq(f, want, wn);
	cr_assert_arr_eq(r.learn_mac, mac_b, 6, "from the frame");
}

Test(dpdk_net, ns_for_dad_goes_to_all_nodes)
{
	/* the kernel's DAD probe for fe80::ff:fe00:2: defend it as if ours */
	struct tern_net_if a = if_a();
	static const uint8_t ll[16] = {0xfe, 0x80, [11] = 0xff, [12] = 0xfe, [15] = 2};
	memcpy(a.ip6, ll, 16);
	uint8_t f[BUF];
	size_t n = unhex(NS_DAD, f);
	struct tern_net_rx r;
	/* it carries a nonce option (RFC 7527), which is not a link-layer one */
	cr_assert_eq(rx(&a, f, n, &r), TERN_NET_REPLY);
	cr_assert_eq(r.learn.family, 0, "an address being probed teaches nothing");
	static const uint8_t all_mac[6] = {0x33, 0x33, 0, 0, 0, 1};
	static const uint8_t all_ip[16] = {0xff, 2, [15] = 1};
	cr_assert_arr_eq(f, all_mac, 6);
	cr_assert_arr_eq(f + 6, mac_a, 6);
	cr_assert_arr_eq(f + IP + 8, ll, 16);
	cr_assert_arr_eq(f + IP + 24, all_ip, 16);
	cr_assert_eq(f[IP + 7], 255);
	cr_assert_eq(f[L4_6], 136);
	cr_assert_eq(f[L4_6 + 4], 0x20, "override only: not solicited");
	cr_assert(l4_ok(f, 6));
	/* with a source link-layer option, a DAD probe is invalid (§7.1.1) */
	n = unhex(NS_DAD, f);
	f[L4_6 + 24] = 1;
	fix_l4(f, 6, 2);
	assert_drop(&a, f, n, TERN_DPDK_DROP_ICMP_IGNORED);
}

Test(dpdk_net, ns_invalid_forms)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF];
	size_t n = unhex(NS_B, f);
	f[IP + 7] = 254; /* RFC 4861 §7.1.1: hop limit must be 255 */
	assert_drop(&a, f, n, TERN_DPDK_DROP_ICMP_IGNORED);
	n = unhex(NS_B, f);
	f[L4_6 + 23] = 9; /* another target */
	fix_l4(f, 6, 2);
	assert_drop(&a, f, n, TERN_DPDK_DROP_ICMP_IGNORED);
	n = unhex(NS_B, f);
	f[L4_6 + 25] = 0; /* zero-length option */
	fix_l4(f, 6, 2);
	assert_drop(&a, f, n, TERN_DPDK_DROP_MALFORMED);
	n = unhex(NS_B, f);
	f[L4_6 + 25] = 2; /* option longer than the message */
	fix_l4(f, 6, 2);
	assert_drop(&a, f, n, TERN_DPDK_DROP_MALFORMED);
	n = unhex(NS_B, f);
	f[L4_6 + 1] = 1; /* code 1 */
	fix_l4(f, 6, 2);
	assert_drop(&a, f, n, TERN_DPDK_DROP_ICMP_IGNORED);
	n = unhex(NS_B, f);
	f[L4_6 + 10] ^= 1;
	assert_drop(&a, f, n, TERN_DPDK_DROP_BAD_CHECKSUM);
	n = unhex(NS_B, f);
	f[IP + 39] = 2; /* another solicited-node group */
	assert_drop(&a, f, n, TERN_DPDK_DROP_WRONG_ADDR);
}

Test(dpdk_net, na_teaches_the_neighbour)
{
	/* with a target link-layer option: the kernel's NA, seen by B */
	struct tern_net_if b = if_b();
	uint8_t f[BUF];
	size_t n = unhex(NA_A, f);
	struct tern_net_rx r;
	cr_assert_eq(rx(&b, f, n, &r), TERN_NET_NEIGH);
	cr_assert_eq(r.learn.family, 6);
	cr_assert_arr_eq(r.learn.ip, ip6_a, 16);
	cr_assert_arr_eq(r.learn_mac, mac_a, 6);
	/* without one (an answer to a unicast NS): the frame's source */
	struct tern_net_if a = if_a();
	static const uint8_t ll_a[16] = {0xfe, 0x80, [11] = 0xff, [12] = 0xfe, [15] = 1};
	memcpy(a.ip6, ll_a, 16);
	n = unhex(NA_NO_TLLA, f);
	cr_assert_eq(rx(&a, f, n, &r), TERN_NET_NEIGH);
	cr_assert_arr_eq(r.learn.ip, ip6_b, 16);
	cr_assert_arr_eq(r.learn_mac, mac_b, 6);
	f[6] |= 1; /* no option and a group source MAC: nothing to learn */
	assert_drop(&a, f, n, TERN_DPDK_DROP_ICMP_IGNORED);
	/* an NA for our own address is someone else's claim: ignored */
	a = if_a();
	n = unhex(NA_A, f);
	memcpy(f, mac_a, 6);
	memcpy(f + IP + 24, ip6_a, 16);
	fix_l4(f, 6, 2);
	assert_drop(&a, f, n, TERN_DPDK_DROP_ICMP_IGNORED);
	memcpy(f + L4_6 + 8, ip6_b, 16); /* control: another target is learnt */
	fix_l4(f, 6, 2);
	struct tern_net_rx r2;
	cr_assert_eq(rx(&a, f, n, &r2), TERN_NET_NEIGH);
	n = unhex(NA_A, f);
	b = if_b();
	f[IP + 7] = 64;
	assert_drop(&b, f, n, TERN_DPDK_DROP_ICMP_IGNORED);
}

Test(dpdk_net, echo6_answered_like_the_kernel)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF], want[BUF];
	size_t n = unhex(ECHO6_REQ, f);
	unhex(ECHO6_REPLY, want);
	struct tern_net_rx r;
	cr_assert_eq(rx(&a, f, n, &r), TERN_NET_REPLY);
	cr_assert_eq(r.kind, TERN_NET_REPLY_ECHO);
	cr_assert_eq(r.len, n);
	cr_assert_arr_eq(f, want, IP);
	/* the kernel chose a flow label; everything after it matches,
	 * checksum included (the flow label is not in the pseudo-header) */
	cr_assert_eq(tern_get_u32(f + IP), 0x60000000u);
	cr_assert_arr_eq(f + IP + 4, want + IP + 4, n - IP - 4);
	n = unhex(ECHO6_REQ, f);
	f[n - 1] ^= 1;
	assert_drop(&a, f, n, TERN_DPDK_DROP_BAD_CHECKSUM);
	/* ICMPv6 other than echo, NS, NA */
	struct tern_net_if b = if_b();
	n = unhex(ECHO6_REPLY, f);
	assert_drop(&b, f, n, TERN_DPDK_DROP_ICMP_IGNORED);
}

/* ---- transmit ------------------------------------------------------------------------------ */

Test(dpdk_net, udp4_build_matches_the_kernel)
{
	struct tern_net_if a = if_a();
	uint8_t want[BUF], f[BUF];
	size_t wn = unhex(UDP4_A_TO_B, want);
	struct tern_path p = {.remote = addr(4, ip4_b, 5555)};
	size_t hl = tern_net_udp_hdr_len(&a, 4);
	cr_assert_eq(hl, 42);
	memcpy(f + hl, "reply from tern", 15);
	int n = tern_net_udp_build(f, &a, mac_b, &p, 2, 0xf7bf, 15, 0);
	cr_assert_eq(n, (int)wn);
	cr_assert_arr_eq(f, want, wn);
	/* an explicit local address gives the same bytes */
	p.local = addr(4, a.ip4, 0);
	cr_assert_eq(tern_net_udp_build(f, &a, mac_b, &p, 2, 0xf7bf, 15, 0), (int)wn);
	cr_assert_arr_eq(f, want, wn);
}

Test(dpdk_net, udp6_build_matches_the_kernel)
{
	/* B's datagram rebuilt by B: the kernel's flow label aside */
	struct tern_net_if b = if_b();
	uint8_t want[BUF], f[BUF];
	size_t wn = unhex(UDP6_TC2, want);
	want[IP + 1] &= 0xf0;
	want[IP + 2] = want[IP + 3] = 0;
	struct tern_path p = {.remote = addr(6, ip6_a, 4433)};
	size_t hl = tern_net_udp_hdr_len(&b, 6);
	cr_assert_eq(hl, 62);
	memcpy(f + hl, "hello tern6", 11);
	int n = tern_net_udp_build(f, &b, mac_a, &p, 2, 0, 11, 0);
	cr_assert_eq(n, (int)wn);
	cr_assert_arr_eq(f, want, wn);
}

Test(dpdk_net, udp_build_source_choices_and_errors)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF];
	static const uint8_t other4[4] = {198, 18, 0, 77};
	struct tern_path p = {.remote = addr(4, ip4_b, 9), .local = addr(4, other4, 0)};
	cr_assert_gt(tern_net_udp_build(f, &a, mac_b, &p, 0, 1, 0, 0), 0);
	cr_assert_arr_eq(f + IP + 12, other4, 4);
	cr_assert_eq(tern_get_u16(f + L4_4), 4433, "port 0 means the listen port");
	cr_assert(l4_ok(f, 4));
	p.local.port = 1234;
	cr_assert_gt(tern_net_udp_build(f, &a, mac_b, &p, 0, 1, 0, 0), 0);
	cr_assert_eq(tern_get_u16(f + L4_4), 1234);
	cr_assert(l4_ok(f, 4));
	p.local = addr(6, ip6_a, 0);
	cr_assert_eq(tern_net_udp_build(f, &a, mac_b, &p, 0, 1, 0, 0), TERN_ERR_INVAL);
	p.local.family = 0;
	p.remote.family = 0;
	cr_assert_eq(tern_net_udp_build(f, &a, mac_b, &p, 0, 1, 0, 0), TERN_ERR_INVAL);
	p.remote = addr(6, ip6_b, 9);
	a.has6 = 0;
	cr_assert_eq(tern_net_udp_build(f, &a, mac_b, &p, 0, 1, 0, 0), TERN_ERR_INVAL);
	a = if_a();
	p.remote = addr(4, ip4_b, 9);
	cr_assert_eq(tern_net_udp_build(f, &a, mac_b, &p, 0, 1, 65535 - 28 + 1, 0), TERN_ERR_INVAL);
	static uint8_t big[70000];
	cr_assert_eq(tern_net_udp_build(big, &a, mac_b, &p, 0, 1, 65535 - 28, 0), 14 + 65535);
}

Test(dpdk_net, udp_build_zero_checksum_goes_as_all_ones)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF];
	struct tern_path p = {.remote = addr(4, ip4_b, 5555)};
	memset(f + 42, 0, 4);
	cr_assert_eq(tern_net_udp_build(f, &a, mac_b, &p, 0, 1, 4, 0), 46);
	/* payload word = the checksum just computed cancels the sum */
	memcpy(f + 44, f + L4_4 + 6, 2);
	cr_assert_eq(tern_net_udp_build(f, &a, mac_b, &p, 0, 1, 4, 0), 46);
	cr_assert_eq(tern_get_u16(f + L4_4 + 6), 0xffff, "RFC 768: computed zero is sent as ones");
	cr_assert(l4_ok(f, 4));
}

Test(dpdk_net, udp_build_offload_leaves_what_the_nic_needs)
{
	struct tern_net_if a = if_a();
	uint8_t f[BUF], g[BUF];
	struct tern_path p = {.remote = addr(4, ip4_b, 5555)};
	memcpy(f + 42, "reply from tern", 15);
	memcpy(g + 42, "reply from tern", 15);
	cr_assert_eq(tern_net_udp_build(f, &a, mac_b, &p, 2, 0xf7bf, 15, 1), 57);
	cr_assert_eq(tern_net_udp_build(g, &a, mac_b, &p, 2, 0xf7bf, 15, 0), 57);
	cr_assert_eq(tern_get_u16(f + IP + 10), 0, "IP checksum left to the NIC");
	/* the NIC sums the datagram with the pseudo-header sum in the field */
	cr_assert_eq((uint16_t)~ref_fold(ref_add(0, f + L4_4, 23)), tern_get_u16(g + L4_4 + 6));
	cr_assert_eq((uint16_t)~ref_fold(ref_add(0, f + IP, 20)), tern_get_u16(g + IP + 10));
	struct tern_path p6 = {.remote = addr(6, ip6_b, 5555)};
	memcpy(f + 62, "x", 1);
	memcpy(g + 62, "x", 1);
	cr_assert_eq(tern_net_udp_build(f, &a, mac_b, &p6, 0, 0, 1, 1), 63);
	cr_assert_eq(tern_net_udp_build(g, &a, mac_b, &p6, 0, 0, 1, 0), 63);
	cr_assert_eq((uint16_t)~ref_fold(ref_add(0, f + L4_6, 9)), tern_get_u16(g + L4_6 + 6));
}

Test(dpdk_net, udp_build_vlan)
{
	struct tern_net_if a = if_a();
	a.vlan = 100;
	uint8_t f[BUF];
	struct tern_path p = {.remote = addr(4, ip4_b, 5555)};
	size_t hl = tern_net_udp_hdr_len(&a, 4);
	cr_assert_eq(hl, 46);
	cr_assert_eq(tern_net_udp_hdr_len(&a, 6), 66);
	memcpy(f + hl, "v", 1);
	cr_assert_eq(tern_net_udp_build(f, &a, mac_b, &p, 0, 1, 1, 0), 47);
	cr_assert_eq(tern_get_u16(f + 12), 0x8100);
	cr_assert_eq(tern_get_u16(f + 14), 100);
	cr_assert_eq(tern_get_u16(f + 16), 0x0800);
	/* and it reads back through the receive side of the peer */
	struct tern_net_if b = if_b();
	b.vlan = 100;
	struct tern_net_rx r;
	cr_assert_eq(rx(&b, f, 47, &r), TERN_NET_UDP);
	cr_assert_eq(r.len, 1);
	cr_assert_eq(f[r.off], 'v');
	cr_assert_eq(r.path.remote.port, 4433);
}

Test(dpdk_net, solicitations_match_the_kernel)
{
	struct tern_net_if b = if_b();
	uint8_t f[BUF], want[BUF];
	size_t wn = unhex(ARP_REQ_B, want);
	static const uint8_t ip4_a[4] = {198, 18, 0, 1};
	cr_assert_eq(tern_net_arp_request(f, &b, ip4_a), wn);
	cr_assert_arr_eq(f, want, wn);
	wn = unhex(NS_B, want);
	cr_assert_eq(tern_net_ns(f, &b, ip6_a), wn);
	cr_assert_leq(wn, TERN_NET_SOLICIT_MAX);
	cr_assert_arr_eq(f, want, wn);
	b.has4 = b.has6 = 0;
	cr_assert_eq(tern_net_arp_request(f, &b, ip4_a), 0);
	cr_assert_eq(tern_net_ns(f, &b, ip6_a), 0);
}

Test(dpdk_net, drop_names)
{
	cr_assert_str_eq(tern_dpdk_drop_name(TERN_DPDK_DROP_BAD_CHECKSUM), "bad_checksum");
	cr_assert_str_eq(tern_dpdk_drop_name(TERN_DPDK_DROP_WRONG_PORT), "wrong_port");
	cr_assert_str_eq(tern_dpdk_drop_name(TERN_DPDK_DROP_COUNT), "?");
	cr_assert_str_eq(tern_dpdk_drop_name(-1), "?");
	for (int i = 0; i < TERN_DPDK_DROP_COUNT; i++)
		cr_assert_str_neq(tern_dpdk_drop_name(i), "?");
}

/* ---- neighbour cache ------------------------------------------------------------------------ */

static struct tern_neigh_entry nmem[64];

Test(dpdk_net, neigh_learn_lookup_update)
{
	struct tern_neigh n;
	memset(nmem, 0, sizeof(nmem));
	cr_assert_eq(tern_neigh_init(&n, nmem, 64, 0, 42), 0);
	struct tern_addr v4 = addr(4, ip4_b, 5555), v6 = addr(6, ip6_b, 1);
	uint8_t mac[6];
	cr_assert_eq(tern_neigh_lookup(&n, &v4, mac), TERN_ERR_STATE);
	cr_assert_eq(tern_neigh_learn(&n, &v4, mac_b), 1);
	cr_assert_eq(tern_neigh_learn(&n, &v4, mac_b), 0, "unchanged: nothing written");
	cr_assert_eq(tern_neigh_lookup(&n, &v4, mac), 0);
	cr_assert_arr_eq(mac, mac_b, 6);
	v4.port = 1; /* the port does not matter in learn mode */
	cr_assert_eq(tern_neigh_lookup(&n, &v4, mac), 0);
	cr_assert_eq(tern_neigh_lookup(&n, &v6, mac), TERN_ERR_STATE);
	/* the same first four bytes as IPv6 are another address */
	struct tern_addr v6b = addr(6, (const uint8_t[16]){198, 18, 0, 2}, 0);
	cr_assert_eq(tern_neigh_lookup(&n, &v6b, mac), TERN_ERR_STATE);
	cr_assert_eq(tern_neigh_learn(&n, &v6, mac_a), 1);
	cr_assert_eq(tern_neigh_learn(&n, &v4, mac_a), 1, "a new MAC replaces the old");
	cr_assert_eq(tern_neigh_lookup(&n, &v4, mac), 0);
	cr_assert_arr_eq(mac, mac_a, 6);
	cr_assert_eq(tern_neigh_lookup(&n, &v6, mac), 0);
	cr_assert_arr_eq(mac, mac_a, 6);
	struct tern_addr none = {0};
	cr_assert_eq(tern_neigh_learn(&n, &none, mac_a), TERN_ERR_INVAL);
	cr_assert_eq(tern_neigh_lookup(&n, &none, mac), TERN_ERR_STATE);
}

Test(dpdk_net, neigh_by_port_and_init_errors)
{
	struct tern_neigh n;
	memset(nmem, 0, sizeof(nmem));
	cr_assert_eq(tern_neigh_init(&n, nmem, 3, 1, 0), TERN_ERR_INVAL);
	cr_assert_eq(tern_neigh_init(&n, nmem, 12, 1, 0), TERN_ERR_INVAL);
	cr_assert_eq(tern_neigh_init(&n, NULL, 16, 1, 0), TERN_ERR_INVAL);
	cr_assert_eq(tern_neigh_init(&n, nmem, 64, 1, 7), 0);
	struct tern_addr p1 = addr(4, ip4_b, 1000), p2 = addr(4, ip4_b, 2000);
	cr_assert_eq(tern_neigh_learn(&n, &p1, mac_a), 1);
	cr_assert_eq(tern_neigh_learn(&n, &p2, mac_b), 1);
	uint8_t mac[6];
	cr_assert_eq(tern_neigh_lookup(&n, &p1, mac), 0);
	cr_assert_arr_eq(mac, mac_a, 6);
	cr_assert_eq(tern_neigh_lookup(&n, &p2, mac), 0);
	cr_assert_arr_eq(mac, mac_b, 6);
	p1.port = 3000;
	cr_assert_eq(tern_neigh_lookup(&n, &p1, mac), TERN_ERR_STATE);
}

Test(dpdk_net, neigh_eviction_keeps_the_newest)
{
	struct tern_neigh n;
	memset(nmem, 0, sizeof(nmem));
	cr_assert_eq(tern_neigh_init(&n, nmem, 4, 0, 1), 0); /* one set of four */
	uint8_t mac[6];
	for (uint8_t i = 1; i <= 20; i++) {
		uint8_t ip[4] = {10, 0, 0, i}, m[6] = {2, 0, 0, 0, 0, i};
		struct tern_addr a = addr(4, ip, 0);
		cr_assert_eq(tern_neigh_learn(&n, &a, m), 1);
		cr_assert_eq(tern_neigh_lookup(&n, &a, mac), 0);
		cr_assert_arr_eq(mac, m, 6);
	}
	int found = 0;
	for (uint8_t i = 1; i <= 20; i++) {
		uint8_t ip[4] = {10, 0, 0, i};
		struct tern_addr a = addr(4, ip, 0);
		found += tern_neigh_lookup(&n, &a, mac) == 0;
	}
	cr_assert_eq(found, 4, "four ways hold four entries");
}

Test(dpdk_net, neigh_busy_entry_is_a_miss_not_a_wait)
{
	struct tern_neigh n;
	memset(nmem, 0, sizeof(nmem));
	cr_assert_eq(tern_neigh_init(&n, nmem, 4, 0, 1), 0);
	struct tern_addr a = addr(4, ip4_b, 0);
	cr_assert_eq(tern_neigh_learn(&n, &a, mac_b), 1);
	uint8_t mac[6];
	for (int i = 0; i < 4; i++)
		atomic_fetch_add(&nmem[i].seq, 1); /* a writer holds every way */
	cr_assert_eq(tern_neigh_lookup(&n, &a, mac), TERN_ERR_STATE);
	cr_assert_eq(tern_neigh_learn(&n, &a, mac_a), TERN_ERR_STATE);
	for (int i = 0; i < 4; i++)
		atomic_fetch_add(&nmem[i].seq, 1);
	cr_assert_eq(tern_neigh_lookup(&n, &a, mac), 0);
	cr_assert_arr_eq(mac, mac_b, 6);
}

struct flip {
	struct tern_neigh *n;
	atomic_int stop;
	atomic_uint writes;
};

static void *flipper(void *arg)
{
	struct flip *fl = arg;
	struct tern_addr a = addr(4, ip4_b, 0);
	static const uint8_t m1[6] = {0x11, 0x11, 0x11, 0x11, 0x11, 0x11};
	static const uint8_t m2[6] = {0x22, 0x22, 0x22, 0x22, 0x22, 0x22};
	for (unsigned i = 0; !atomic_load(&fl->stop); i++)
		if (tern_neigh_learn(fl->n, &a, i & 1 ? m1 : m2) == 1)
			atomic_fetch_add(&fl->writes, 1);
	return NULL;
}

Test(dpdk_net, neigh_reader_never_sees_a_torn_mac)
{
	struct tern_neigh n;
	memset(nmem, 0, sizeof(nmem));
	cr_assert_eq(tern_neigh_init(&n, nmem, 4, 0, 1), 0);
	struct tern_addr a = addr(4, ip4_b, 0);
	static const uint8_t m1[6] = {0x11, 0x11, 0x11, 0x11, 0x11, 0x11};
	cr_assert_eq(tern_neigh_learn(&n, &a, m1), 1);
	struct flip fl = {.n = &n};
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, flipper, &fl), 0);
	unsigned hits = 0;
	/* until the writer has changed the entry many times (bounded) */
	for (long i = 0; i < 20000000 && (atomic_load(&fl.writes) < 20000 || hits < 20000); i++) {
		uint8_t mac[6];
		if (tern_neigh_lookup(&n, &a, mac) != 0)
			continue;
		hits++;
		for (int k = 1; k < 6; k++)
			cr_assert_eq(mac[k], mac[0], "torn read: %02x vs %02x", mac[k], mac[0]);
		cr_assert(mac[0] == 0x11 || mac[0] == 0x22);
	}
	atomic_store(&fl.stop, 1);
	pthread_join(t, NULL);
	cr_assert_geq(hits, 20000);
	cr_assert_geq(atomic_load(&fl.writes), 20000);
}
