/* libFuzzer target for the DPDK datapath's frame parser (dpdk/net.c): every
 * input is a received Ethernet frame, classified under a few interface
 * configurations. Traps when an invariant breaks:
 *  - a UDP payload lies inside the frame, and a reply built to its sender
 *    parses back, at the sender, into the same payload and the mirrored path;
 *  - an answer (ARP, NA, echo) fits the buffer and, for IP, carries valid
 *    checksums;
 *  - a drop has a known reason.
 * Input: byte 0 picks the interface config and NIC hints; byte 1 below 0x80
 * means the rest is the frame, else it picks one of the kernel-captured
 * frames of test_dpdk_net.c, patches it with the (offset, value) pairs that
 * follow and, with bit 0x40, fixes its checksums, so mutations reach the
 * paths behind the checksums. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "net.h"

#define CHECK(c)                         \
	do {                             \
		if (!(c))                \
			__builtin_trap(); \
	} while (0)

#define ROOM 64

#include "vectors.h"

static const char *const templates[] = {ARPING_REQ, ECHO4_REQ, NS_B,     ECHO6_REQ, UDP4_ECT1,
					  UDP6_TC2,   UDP4_ODD,  NS_DAD, NA_A,      ARP_REPLY_TO_B};
#define NT (sizeof(templates) / sizeof(templates[0]))
#define MAXF 2048

static void config(struct tern_net_if *ifc, uint8_t sel)
{
	static const struct tern_net_if base = {.mac = {2, 0, 0, 0, 0, 1}, .has4 = 1, .has6 = 1,
						.ip4 = {198, 18, 0, 1},
						.ip6 = {0x20, 0x01, 0, 2, [15] = 1}, .port = 4433};
	*ifc = base;
	ifc->vlan = sel & 1 ? 100 : 0;
	ifc->has4 = !(sel & 2);
	ifc->has6 = !(sel & 4);
	if (sel & 8)
		ifc->port = 0; /* a port number the input may well carry */
}

static int ip_ok(const uint8_t *f, size_t len)
{
	size_t off = f[12] == 0x81 && f[13] == 0 ? 18 : 14;
	uint16_t type = tern_get_u16(f + off - 2);
	if (type == 0x0806)
		return len == off + 28;
	const uint8_t *ip = f + off;
	if (type == 0x0800) {
		size_t hl = (size_t)(ip[0] & 15) * 4, tot = tern_get_u16(ip + 2);
		return tern_net_fold(tern_net_sum(ip, hl, 0)) == 0xffff &&
		       tern_net_fold(tern_net_sum(ip + hl, tot - hl, 0)) == 0xffff && off + tot == len;
	}
	size_t plen = tern_get_u16(ip + 4);
	uint64_t ps = tern_net_pseudo_sum(6, ip + 8, ip + 24, (uint32_t)plen, 58);
	return type == 0x86dd && off + 40 + plen == len &&
	       tern_net_fold(tern_net_sum(ip + 40, plen, ps)) == 0xffff;
}

static void reply_roundtrip(const struct tern_net_if *ifc, const struct tern_net_rx *r,
			    const uint8_t *payload)
{
	static uint8_t out[MAXF + ROOM];
	int fam = r->path.remote.family;
	CHECK(fam == 4 || fam == 6);
	CHECK(r->path.local.family == fam && r->path.local.port == ifc->port);
	struct tern_net_if peer = {
		.mac = {2, 0, 0, 0, 0, 9}, .port = r->path.remote.port, .vlan = ifc->vlan};
	if (fam == 4) {
		peer.has4 = 1;
		memcpy(peer.ip4, r->path.remote.ip, 4);
	} else {
		peer.has6 = 1;
		memcpy(peer.ip6, r->path.remote.ip, 16);
	}
	struct tern_path back = {.remote = r->path.remote};
	size_t hl = tern_net_udp_hdr_len(ifc, fam);
	memcpy(out + hl, payload, r->len);
	int n = tern_net_udp_build(out, ifc, peer.mac, &back, r->ecn, 7, r->len, 0);
	CHECK(n == (int)(hl + r->len));
	struct tern_net_rx pr;
	CHECK(tern_net_rx(&peer, out, (size_t)n, sizeof(out), NULL, &pr) == TERN_NET_UDP);
	CHECK(pr.len == r->len && pr.off == hl && memcmp(out + pr.off, payload, r->len) == 0);
	CHECK(pr.ecn == r->ecn && pr.path.remote.port == ifc->port);
	CHECK(memcmp(pr.path.remote.ip, r->path.local.ip, fam == 4 ? 4 : 16) == 0);
}

static size_t unhex(const char *s, uint8_t *out)
{
	size_t n = strlen(s) / 2;
	for (size_t i = 0; i < n; i++) {
		uint8_t hi = (uint8_t)s[2 * i], lo = (uint8_t)s[2 * i + 1];
		hi = hi <= '9' ? hi - '0' : hi - 'a' + 10;
		lo = lo <= '9' ? lo - '0' : lo - 'a' + 10;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return n;
}

static void put_sum(uint8_t *field, uint64_t acc)
{
	field[0] = field[1] = 0;
	uint16_t c = (uint16_t)~tern_net_fold(acc);
	memcpy(field, &c, 2);
}

/* Makes an untagged template's checksums right again after patching. */
static void fix_sums(uint8_t *f, size_t len)
{
	uint16_t type = tern_get_u16(f + 12);
	uint8_t *ip = f + 14;
	if (type == 0x0800 && len >= 34) {
		size_t hl = (size_t)(ip[0] & 15) * 4, tot = tern_get_u16(ip + 2);
		if (hl < 20 || 14 + hl > len || tot < hl || 14 + tot > len)
			return;
		ip[10] = ip[11] = 0;
		put_sum(ip + 10, tern_net_sum(ip, hl, 0));
		uint8_t *l4 = ip + hl;
		size_t l = tot - hl;
		if (ip[9] == 1 && l >= 4) {
			l4[2] = l4[3] = 0;
			put_sum(l4 + 2, tern_net_sum(l4, l, 0));
		} else if (ip[9] == 17 && l >= 8) {
			l4[6] = l4[7] = 0;
			put_sum(l4 + 6, tern_net_sum(l4, l,
						     tern_net_pseudo_sum(4, ip + 12, ip + 16,
									 (uint32_t)l, 17)));
		}
	} else if (type == 0x86dd && len >= 54) {
		size_t l = tern_get_u16(ip + 4);
		uint8_t *l4 = ip + 40;
		size_t at = ip[6] == 17 ? 6 : 2;
		if (54 + l > len || l < at + 2)
			return;
		l4[at] = l4[at + 1] = 0;
		put_sum(l4 + at,
			tern_net_sum(l4, l,
				     tern_net_pseudo_sum(6, ip + 8, ip + 24, (uint32_t)l, ip[6])));
	}
}

/* The frame to classify, from the input; 0 when there is none. */
static size_t make_frame(const uint8_t *data, size_t size, uint8_t *f)
{
	if (size < 2)
		return 0;
	if (data[1] < 0x80) {
		if (size - 2 > MAXF)
			return 0;
		memcpy(f, data + 2, size - 2);
		return size - 2;
	}
	size_t len = unhex(templates[data[1] % NT], f);
	for (size_t i = 2; i + 1 < size; i += 2) {
		if (data[i] == 0xff && data[i + 1] < len)
			len = data[i + 1]; /* truncate */
		else if (data[i] < len)
			f[data[i]] = data[i + 1];
	}
	if (data[1] & 0x40)
		fix_sums(f, len);
	return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t f[MAXF + ROOM];
	size_t len = make_frame(data, size, f);
	if (size < 2)
		return 0;
	struct tern_net_if ifc;
	config(&ifc, data[0]);
	struct tern_net_rx_hint hint = {.ip_csum = (uint8_t)(data[0] >> 4 & 3) % 3,
					.l4_csum = (uint8_t)(data[0] >> 6) % 3};
	int hinted = (data[0] & 0xf0) != 0;
	struct tern_net_rx r;
	int v = tern_net_rx(&ifc, f, len, len + ROOM, hinted ? &hint : NULL, &r);
	switch (v) {
	case TERN_NET_UDP:
		CHECK(r.off <= len && r.len <= len - r.off);
		CHECK(r.ecn <= 3);
		if (!hinted && r.len <= 1400)
			reply_roundtrip(&ifc, &r, f + r.off);
		break;
	case TERN_NET_REPLY:
		CHECK(r.off == 0 && r.len <= len + ROOM && r.len >= 14);
		CHECK(memcmp(f + 6, ifc.mac, 6) == 0);
		CHECK(r.kind <= TERN_NET_REPLY_ECHO);
		CHECK(hinted || ip_ok(f, r.len));
		break;
	case TERN_NET_NEIGH:
		CHECK(r.learn.family == 4 || r.learn.family == 6);
		break;
	case TERN_NET_DROP:
		CHECK(r.reason >= 0 && r.reason < TERN_DPDK_DROP_COUNT);
		break;
	default:
		CHECK(0);
	}
	if (r.learn.family)
		CHECK(!(r.learn_mac[0] & 1));
	return 0;
}
