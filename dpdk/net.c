/* tern DPDK datapath: L2-L4 framing and the neighbour cache (net.h). */
#include "net.h"

#define ETH_ARP 0x0806
#define ETH_IP4 0x0800
#define ETH_IP6 0x86dd
#define ETH_VLAN 0x8100
#define PROTO_ICMP 1
#define PROTO_UDP 17
#define PROTO_FRAG6 44
#define PROTO_ICMP6 58
#define ARP_LEN 28
#define ND_LEN 24 /* ICMPv6 header, reserved/flags, target */
#define ND_HOPS 255

static const uint8_t bcast_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t all_nodes_mac[6] = {0x33, 0x33, 0, 0, 0, 1};
static const uint8_t all_nodes_ip6[16] = {0xff, 0x02, [15] = 1};
static const uint8_t zero_ip6[16];

const char *tern_dpdk_drop_name(int reason)
{
	static const char *const names[TERN_DPDK_DROP_COUNT] = {
		[TERN_DPDK_DROP_MALFORMED] = "malformed",
		[TERN_DPDK_DROP_OTHER_MAC] = "other_mac",
		[TERN_DPDK_DROP_WRONG_VLAN] = "wrong_vlan",
		[TERN_DPDK_DROP_NOT_IP] = "not_ip",
		[TERN_DPDK_DROP_ARP_IGNORED] = "arp_ignored",
		[TERN_DPDK_DROP_BAD_IP] = "bad_ip",
		[TERN_DPDK_DROP_WRONG_ADDR] = "wrong_addr",
		[TERN_DPDK_DROP_FRAGMENT] = "fragment",
		[TERN_DPDK_DROP_NOT_UDP] = "not_udp",
		[TERN_DPDK_DROP_WRONG_PORT] = "wrong_port",
		[TERN_DPDK_DROP_BAD_CHECKSUM] = "bad_checksum",
		[TERN_DPDK_DROP_ICMP_IGNORED] = "icmp_ignored",
		[TERN_DPDK_DROP_HANDOFF_FULL] = "handoff_full",
	};
	if (reason < 0 || reason >= TERN_DPDK_DROP_COUNT)
		return "?";
	return names[reason];
}

/* ---- checksums ----------------------------------------------------------------------- */

uint64_t tern_net_sum(const void *vp, size_t len, uint64_t acc)
{
	const uint8_t *p = vp;
	/* 32-bit words in 64-bit sums: 2^16 = 1 modulo 0xffff, so this is
	 * the RFC 1071 sum of 16-bit words with the carries deferred; four
	 * independent sums keep the adders busy (twice as fast on payloads) */
	uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
	for (; len >= 32; p += 32, len -= 32) {
		uint64_t w[4];
		memcpy(w, p, 32);
		a0 += (w[0] & 0xffffffffu) + (w[0] >> 32);
		a1 += (w[1] & 0xffffffffu) + (w[1] >> 32);
		a2 += (w[2] & 0xffffffffu) + (w[2] >> 32);
		a3 += (w[3] & 0xffffffffu) + (w[3] >> 32);
	}
	acc += a0 + a1 + a2 + a3;
	for (; len >= 8; p += 8, len -= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		acc += (w & 0xffffffffu) + (w >> 32);
	}
	if (len >= 4) {
		uint32_t w;
		memcpy(&w, p, 4);
		acc += w;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		uint16_t w;
		memcpy(&w, p, 2);
		acc += w;
		p += 2;
		len -= 2;
	}
	if (len) {
		/* an odd tail is padded with a zero byte (RFC 1071 §4.1) */
		uint8_t b[2] = {p[0], 0};
		uint16_t w;
		memcpy(&w, b, 2);
		acc += w;
	}
	return acc;
}

uint16_t tern_net_fold(uint64_t acc)
{
	acc = (acc >> 32) + (acc & 0xffffffffu);
	while (acc >> 16)
		acc = (acc >> 16) + (acc & 0xffff);
	return (uint16_t)acc;
}

uint64_t tern_net_pseudo_sum(int family, const uint8_t *src, const uint8_t *dst, uint32_t ulen,
			     uint8_t proto)
{
	size_t alen = family == 4 ? 4 : 16;
	/* RFC 8200 §8.1 layout (32-bit length, 3 zero bytes, next header);
	 * in 16-bit words it sums the same as RFC 768's zero/proto/length */
	const uint8_t tail[8] = {(uint8_t)(ulen >> 24), (uint8_t)(ulen >> 16), (uint8_t)(ulen >> 8),
				 (uint8_t)ulen, 0, 0, 0, proto};
	return tern_net_sum(tail, 8, tern_net_sum(dst, alen, tern_net_sum(src, alen, 0)));
}

/* A received checksum is right when the whole sum, checksum field
 * included, folds to all ones. */
static int sum_ok(uint64_t acc)
{
	return tern_net_fold(acc) == 0xffff;
}

static void put_csum(uint8_t *field, uint64_t acc)
{
	uint16_t c = (uint16_t)~tern_net_fold(acc);
	memcpy(field, &c, 2);
}

/* ---- receive ------------------------------------------------------------------------- */

static int drop(struct tern_net_rx *out, int reason)
{
	out->reason = reason;
	return TERN_NET_DROP;
}

static void set_addr(struct tern_addr *a, int family, const uint8_t *ip, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	a->family = (uint8_t)family;
	a->port = port;
	memcpy(a->ip, ip, family == 4 ? 4 : 16);
}

static int mac_is_multicast(const uint8_t *mac)
{
	return mac[0] & 1;
}

/* 1 when there is something to learn: a group address never names one
 * neighbour. */
static int learn(struct tern_net_rx *out, int family, const uint8_t *ip, uint16_t port,
		 const uint8_t *mac)
{
	if (mac_is_multicast(mac))
		return 0;
	set_addr(&out->learn, family, ip, port);
	memcpy(out->learn_mac, mac, 6);
	return 1;
}

/* The solicited-node group of our address, ff02::1:ffXX:XXXX (RFC 4291
 * §2.7.1), where Neighbour Solicitations for it arrive. */
static int is_our_snm(const struct tern_net_if *ifc, const uint8_t *ip)
{
	static const uint8_t pfx[13] = {0xff, 0x02, [11] = 1, [12] = 0xff};
	return ifc->has6 && memcmp(ip, pfx, 13) == 0 && memcmp(ip + 13, ifc->ip6 + 13, 3) == 0;
}

static void eth_reply(uint8_t *frame, const struct tern_net_if *ifc, const uint8_t *dst)
{
	memmove(frame, dst, 6);
	memcpy(frame + 6, ifc->mac, 6);
}

static int rx_arp(const struct tern_net_if *ifc, uint8_t *frame, size_t off, size_t len,
		  struct tern_net_rx *out)
{
	if (len - off < ARP_LEN)
		return drop(out, TERN_DPDK_DROP_MALFORMED);
	uint8_t *a = frame + off;
	/* RFC 826: only Ethernet/IPv4 resolution concerns us */
	if (tern_get_u16(a) != 1 || tern_get_u16(a + 2) != ETH_IP4 || a[4] != 6 || a[5] != 4)
		return drop(out, TERN_DPDK_DROP_ARP_IGNORED);
	uint16_t op = tern_get_u16(a + 6);
	uint8_t sha[6], spa[4];
	memcpy(sha, a + 8, 6);
	memcpy(spa, a + 14, 4);
	if (!ifc->has4 || memcmp(a + 24, ifc->ip4, 4) != 0 || mac_is_multicast(sha) ||
	    memcmp(spa, ifc->ip4, 4) == 0)
		return drop(out, TERN_DPDK_DROP_ARP_IGNORED);
	/* RFC 826 "merge": the sender asks us, so we will talk to it; an ARP
	 * probe (RFC 5227 §2.1.1, sender 0.0.0.0) teaches nothing */
	static const uint8_t any4[4];
	int learnt = memcmp(spa, any4, 4) != 0 && learn(out, 4, spa, 0, sha);
	if (op == 2)
		return learnt ? TERN_NET_NEIGH : drop(out, TERN_DPDK_DROP_ARP_IGNORED);
	if (op != 1)
		return drop(out, TERN_DPDK_DROP_ARP_IGNORED);
	tern_put_u16(a + 6, 2);
	memcpy(a + 8, ifc->mac, 6);
	memcpy(a + 14, ifc->ip4, 4);
	memcpy(a + 18, sha, 6);
	memcpy(a + 24, spa, 4);
	eth_reply(frame, ifc, sha);
	out->kind = TERN_NET_REPLY_ARP;
	out->off = 0;
	out->len = (uint32_t)(off + ARP_LEN);
	return TERN_NET_REPLY;
}

static int rx_udp(const struct tern_net_if *ifc, const uint8_t *frame, int family,
		  const uint8_t *src, const uint8_t *dst, const uint8_t *udp, size_t l4len, uint8_t ecn,
		  const struct tern_net_rx_hint *hint, struct tern_net_rx *out)
{
	if (l4len < TERN_NET_UDP_LEN)
		return drop(out, TERN_DPDK_DROP_MALFORMED);
	size_t ulen = tern_get_u16(udp + 4);
	if (ulen < TERN_NET_UDP_LEN || ulen > l4len)
		return drop(out, TERN_DPDK_DROP_MALFORMED);
	uint16_t dport = tern_get_u16(udp + 2);
	if ((uint16_t)(dport - ifc->port) >= (ifc->n_ports ? ifc->n_ports : 1))
		return drop(out, TERN_DPDK_DROP_WRONG_PORT);
	if (hint->l4_csum == TERN_NET_CSUM_BAD)
		return drop(out, TERN_DPDK_DROP_BAD_CHECKSUM);
	if (hint->l4_csum != TERN_NET_CSUM_GOOD) {
		if (udp[6] == 0 && udp[7] == 0) {
			/* "no checksum" exists for IPv4 only (RFC 768); IPv6
			 * receivers discard it (RFC 8200 §8.1) */
			if (family == 6)
				return drop(out, TERN_DPDK_DROP_BAD_CHECKSUM);
		} else if (!sum_ok(tern_net_sum(udp, ulen,
						tern_net_pseudo_sum(family, src, dst, (uint32_t)ulen,
								    PROTO_UDP)))) {
			return drop(out, TERN_DPDK_DROP_BAD_CHECKSUM);
		}
	}
	out->off = (uint32_t)(udp + TERN_NET_UDP_LEN - frame);
	out->len = (uint32_t)(ulen - TERN_NET_UDP_LEN);
	out->ecn = ecn;
	set_addr(&out->path.remote, family, src, tern_get_u16(udp));
	set_addr(&out->path.local, family, dst, dport);
	learn(out, family, src, out->path.remote.port, frame + 6);
	return TERN_NET_UDP;
}

static int rx_echo4(const struct tern_net_if *ifc, uint8_t *frame, uint8_t *ip, size_t hl,
		    size_t tot, struct tern_net_rx *out)
{
	uint8_t *icmp = ip + hl;
	size_t l = tot - hl;
	if (l < 8)
		return drop(out, TERN_DPDK_DROP_MALFORMED);
	if (icmp[0] != 8 || icmp[1] != 0)
		return drop(out, TERN_DPDK_DROP_ICMP_IGNORED);
	if (!sum_ok(tern_net_sum(icmp, l, 0)))
		return drop(out, TERN_DPDK_DROP_BAD_CHECKSUM);
	/* RFC 792: the reply is the request with the type changed and the
	 * addresses reversed */
	icmp[0] = 0;
	icmp[2] = icmp[3] = 0;
	put_csum(icmp + 2, tern_net_sum(icmp, l, 0));
	uint8_t peer[4];
	memcpy(peer, ip + 12, 4);
	memcpy(ip + 12, ifc->ip4, 4);
	memcpy(ip + 16, peer, 4);
	ip[8] = TERN_NET_TTL;
	ip[10] = ip[11] = 0;
	put_csum(ip + 10, tern_net_sum(ip, hl, 0));
	learn(out, 4, peer, 0, frame + 6);
	eth_reply(frame, ifc, frame + 6);
	out->kind = TERN_NET_REPLY_ECHO;
	out->off = 0;
	out->len = (uint32_t)(ip - frame + tot);
	return TERN_NET_REPLY;
}

static int rx_ip4(const struct tern_net_if *ifc, uint8_t *frame, size_t off, size_t len,
		  const struct tern_net_rx_hint *hint, struct tern_net_rx *out)
{
	uint8_t *ip = frame + off;
	size_t avail = len - off;
	if (avail < TERN_NET_IP4_LEN)
		return drop(out, TERN_DPDK_DROP_MALFORMED);
	size_t hl = (size_t)(ip[0] & 15) * 4;
	if (ip[0] >> 4 != 4 || hl < TERN_NET_IP4_LEN)
		return drop(out, TERN_DPDK_DROP_BAD_IP);
	size_t tot = tern_get_u16(ip + 2);
	if (avail < hl || tot < hl || tot > avail)
		return drop(out, TERN_DPDK_DROP_MALFORMED);
	if (hint->ip_csum == TERN_NET_CSUM_BAD ||
	    (hint->ip_csum != TERN_NET_CSUM_GOOD && !sum_ok(tern_net_sum(ip, hl, 0))))
		return drop(out, TERN_DPDK_DROP_BAD_IP);
	/* RFC 1122 §3.2.1.3: a multicast or broadcast source is invalid, and
	 * answering it would reach many */
	if (ip[12] >= 224)
		return drop(out, TERN_DPDK_DROP_BAD_IP);
	if (!ifc->has4 || memcmp(ip + 16, ifc->ip4, 4) != 0)
		return drop(out, TERN_DPDK_DROP_WRONG_ADDR);
	if (tern_get_u16(ip + 6) & 0x3fff) /* MF or a fragment offset */
		return drop(out, TERN_DPDK_DROP_FRAGMENT);
	if (ip[9] == PROTO_ICMP)
		return rx_echo4(ifc, frame, ip, hl, tot, out);
	if (ip[9] != PROTO_UDP)
		return drop(out, TERN_DPDK_DROP_NOT_UDP);
	return rx_udp(ifc, frame, 4, ip + 12, ip + 16, ip + hl, tot - hl, ip[1] & 3, hint, out);
}

/* Finds the link-layer address option of type `type` (RFC 4861 §4.6.1).
 * 0 (with *mac NULL when absent), or -1 for a malformed option list. */
static int nd_lladdr(const uint8_t *p, size_t l, uint8_t type, const uint8_t **mac)
{
	*mac = NULL;
	while (l > 0) {
		if (l < 2)
			return -1;
		size_t olen = (size_t)p[1] * 8;
		/* RFC 4861 §7.1.1: a zero-length option makes the message invalid */
		if (olen == 0 || olen > l)
			return -1;
		if (p[0] == type && olen == 8)
			*mac = p + 2;
		p += olen;
		l -= olen;
	}
	return 0;
}

static void icmp6_csum(uint8_t *ip, size_t l)
{
	uint8_t *icmp = ip + TERN_NET_IP6_LEN;
	icmp[2] = icmp[3] = 0;
	put_csum(icmp + 2,
		 tern_net_sum(icmp, l,
			      tern_net_pseudo_sum(6, ip + 8, ip + 24, (uint32_t)l, PROTO_ICMP6)));
}

static void ip6_header(uint8_t *ip, uint16_t plen, uint8_t hops, const uint8_t *src,
		       const uint8_t *dst)
{
	tern_put_u32(ip, 0x60000000u);
	tern_put_u16(ip + 4, plen);
	ip[6] = PROTO_ICMP6;
	ip[7] = hops;
	memmove(ip + 24, dst, 16); /* dst may be the old source */
	memmove(ip + 8, src, 16);
}

static int rx_ns(const struct tern_net_if *ifc, uint8_t *frame, uint8_t *ip, size_t l, size_t cap,
		 struct tern_net_rx *out)
{
	uint8_t *icmp = ip + TERN_NET_IP6_LEN;
	/* RFC 4861 §7.1.1: hop limit 255 proves the sender is on-link */
	if (ip[7] != ND_HOPS || icmp[1] != 0 || l < ND_LEN)
		return drop(out, TERN_DPDK_DROP_ICMP_IGNORED);
	if (memcmp(icmp + 8, ifc->ip6, 16) != 0)
		return drop(out, TERN_DPDK_DROP_ICMP_IGNORED);
	const uint8_t *slla;
	if (nd_lladdr(icmp + ND_LEN, l - ND_LEN, 1, &slla) < 0)
		return drop(out, TERN_DPDK_DROP_MALFORMED);
	int dad = memcmp(ip + 8, zero_ip6, 16) == 0;
	/* §7.1.1: an unspecified source goes to the solicited-node group
	 * and carries no source link-layer address */
	if (dad && (!is_our_snm(ifc, ip + 24) || slla))
		return drop(out, TERN_DPDK_DROP_ICMP_IGNORED);
	size_t need = (size_t)(ip - frame) + TERN_NET_IP6_LEN + 32;
	if (cap < need)
		return drop(out, TERN_DPDK_DROP_MALFORMED);
	uint8_t peer_mac[6], peer_ip[16];
	memcpy(peer_mac, slla ? slla : frame + 6, 6);
	memcpy(peer_ip, ip + 8, 16);
	if (!dad)
		learn(out, 6, peer_ip, 0, peer_mac);
	/* §7.2.4: answer the soliciting node, or all nodes (S clear) when it
	 * has no address yet; O set since the address is ours alone */
	ip6_header(ip, 32, ND_HOPS, ifc->ip6, dad ? all_nodes_ip6 : peer_ip);
	icmp[0] = 136;
	icmp[1] = 0;
	tern_put_u32(icmp + 4, dad ? 0x20000000u : 0x60000000u);
	icmp[24] = 2; /* target link-layer address */
	icmp[25] = 1;
	memcpy(icmp + 26, ifc->mac, 6);
	icmp6_csum(ip, 32);
	eth_reply(frame, ifc, dad ? all_nodes_mac : peer_mac);
	out->kind = TERN_NET_REPLY_ND;
	out->off = 0;
	out->len = (uint32_t)need;
	return TERN_NET_REPLY;
}

static int rx_na(const struct tern_net_if *ifc, const uint8_t *frame, const uint8_t *ip, size_t l,
		 struct tern_net_rx *out)
{
	const uint8_t *icmp = ip + TERN_NET_IP6_LEN;
	if (ip[7] != ND_HOPS || icmp[1] != 0 || l < ND_LEN || icmp[8] == 0xff ||
	    memcmp(icmp + 8, ifc->ip6, 16) == 0)
		return drop(out, TERN_DPDK_DROP_ICMP_IGNORED);
	const uint8_t *tlla;
	if (nd_lladdr(icmp + ND_LEN, l - ND_LEN, 2, &tlla) < 0)
		return drop(out, TERN_DPDK_DROP_MALFORMED);
	if (!learn(out, 6, icmp + 8, 0, tlla ? tlla : frame + 6))
		return drop(out, TERN_DPDK_DROP_ICMP_IGNORED);
	return TERN_NET_NEIGH;
}

static int rx_echo6(const struct tern_net_if *ifc, uint8_t *frame, uint8_t *ip, size_t l,
		    struct tern_net_rx *out)
{
	uint8_t peer[16];
	memcpy(peer, ip + 8, 16);
	ip6_header(ip, (uint16_t)l, TERN_NET_TTL, ifc->ip6, peer);
	ip[TERN_NET_IP6_LEN] = 129; /* RFC 4443 §4.2 */
	icmp6_csum(ip, l);
	learn(out, 6, peer, 0, frame + 6);
	eth_reply(frame, ifc, frame + 6);
	out->kind = TERN_NET_REPLY_ECHO;
	out->off = 0;
	out->len = (uint32_t)(ip - frame + TERN_NET_IP6_LEN + l);
	return TERN_NET_REPLY;
}

static int rx_icmp6(const struct tern_net_if *ifc, uint8_t *frame, uint8_t *ip, size_t l, size_t cap,
		    int to_us, struct tern_net_rx *out)
{
	uint8_t *icmp = ip + TERN_NET_IP6_LEN;
	if (l < 4)
		return drop(out, TERN_DPDK_DROP_MALFORMED);
	/* RFC 4443 §2.3 and RFC 4861 §7.1.1: verify before anything is used */
	if (!sum_ok(tern_net_sum(icmp, l,
				 tern_net_pseudo_sum(6, ip + 8, ip + 24, (uint32_t)l, PROTO_ICMP6))))
		return drop(out, TERN_DPDK_DROP_BAD_CHECKSUM);
	switch (icmp[0]) {
	case 128:
		if (!to_us || icmp[1] != 0 || l < 8)
			return drop(out, TERN_DPDK_DROP_ICMP_IGNORED);
		return rx_echo6(ifc, frame, ip, l, out);
	case 135:
		return rx_ns(ifc, frame, ip, l, cap, out);
	case 136:
		return rx_na(ifc, frame, ip, l, out);
	default:
		return drop(out, TERN_DPDK_DROP_ICMP_IGNORED);
	}
}

static int rx_ip6(const struct tern_net_if *ifc, uint8_t *frame, size_t off, size_t len, size_t cap,
		  const struct tern_net_rx_hint *hint, struct tern_net_rx *out)
{
	uint8_t *ip = frame + off;
	size_t avail = len - off;
	if (avail < TERN_NET_IP6_LEN)
		return drop(out, TERN_DPDK_DROP_MALFORMED);
	if (ip[0] >> 4 != 6)
		return drop(out, TERN_DPDK_DROP_BAD_IP);
	size_t plen = tern_get_u16(ip + 4);
	if (plen > avail - TERN_NET_IP6_LEN)
		return drop(out, TERN_DPDK_DROP_MALFORMED);
	/* RFC 4291 §2.7: multicast addresses are never sources */
	if (ip[8] == 0xff)
		return drop(out, TERN_DPDK_DROP_BAD_IP);
	int to_us = ifc->has6 && memcmp(ip + 24, ifc->ip6, 16) == 0;
	if (!to_us && !is_our_snm(ifc, ip + 24))
		return drop(out, TERN_DPDK_DROP_WRONG_ADDR);
	switch (ip[6]) {
	case PROTO_UDP:
		if (!to_us)
			return drop(out, TERN_DPDK_DROP_WRONG_ADDR);
		/* the ECN field is the low two bits of the traffic class,
		 * which straddles bytes 0 and 1 (RFC 8200 §3, RFC 3168 §5) */
		return rx_udp(ifc, frame, 6, ip + 8, ip + 24, ip + TERN_NET_IP6_LEN, plen,
			      (ip[1] >> 4) & 3, hint, out);
	case PROTO_ICMP6:
		return rx_icmp6(ifc, frame, ip, plen, cap, to_us, out);
	case PROTO_FRAG6:
		return drop(out, TERN_DPDK_DROP_FRAGMENT);
	default:
		return drop(out, TERN_DPDK_DROP_NOT_UDP);
	}
}

int tern_net_rx(const struct tern_net_if *ifc, uint8_t *frame, size_t len, size_t cap,
		const struct tern_net_rx_hint *hint, struct tern_net_rx *out)
{
	static const struct tern_net_rx_hint none;
	if (!hint)
		hint = &none;
	out->learn.family = 0;
	if (len < TERN_NET_ETH_LEN || cap < len)
		return drop(out, TERN_DPDK_DROP_MALFORMED);
	size_t off = TERN_NET_ETH_LEN;
	uint16_t type = tern_get_u16(frame + 12);
	uint16_t vlan = hint->vlan_stripped ? hint->vlan_tci & 0xfff : 0;
	if (type == ETH_VLAN) {
		if (len < off + TERN_NET_VLAN_LEN)
			return drop(out, TERN_DPDK_DROP_MALFORMED);
		vlan = tern_get_u16(frame + 14) & 0xfff;
		type = tern_get_u16(frame + 16);
		off += TERN_NET_VLAN_LEN;
	}
	if (vlan != ifc->vlan)
		return drop(out, TERN_DPDK_DROP_WRONG_VLAN);
	int ours = memcmp(frame, ifc->mac, 6) == 0;
	int bcast = !ours && memcmp(frame, bcast_mac, 6) == 0;
	int mcast6 = frame[0] == 0x33 && frame[1] == 0x33;
	switch (type) {
	case ETH_ARP:
		if (!ours && !bcast)
			return drop(out, TERN_DPDK_DROP_OTHER_MAC);
		return rx_arp(ifc, frame, off, len, out);
	case ETH_IP4:
		if (!ours)
			return drop(out, TERN_DPDK_DROP_OTHER_MAC);
		return rx_ip4(ifc, frame, off, len, hint, out);
	case ETH_IP6:
		if (!ours && !mcast6)
			return drop(out, TERN_DPDK_DROP_OTHER_MAC);
		return rx_ip6(ifc, frame, off, len, cap, hint, out);
	default:
		return drop(out, TERN_DPDK_DROP_NOT_IP);
	}
}

/* ---- transmit ------------------------------------------------------------------------ */

size_t tern_net_udp_hdr_len(const struct tern_net_if *ifc, int family)
{
	return TERN_NET_ETH_LEN + (ifc->vlan ? TERN_NET_VLAN_LEN : 0) +
	       (family == 6 ? TERN_NET_IP6_LEN : TERN_NET_IP4_LEN) + TERN_NET_UDP_LEN;
}

static uint8_t *put_eth(uint8_t *p, const struct tern_net_if *ifc, const uint8_t *dst, uint16_t type)
{
	memcpy(p, dst, 6);
	memcpy(p + 6, ifc->mac, 6);
	p += 12;
	if (ifc->vlan) {
		p = tern_put_u16(p, ETH_VLAN);
		p = tern_put_u16(p, ifc->vlan);
	}
	return tern_put_u16(p, type);
}

static uint8_t *put_ip4(uint8_t *p, const uint8_t *src, const uint8_t *dst, size_t ulen, uint8_t ecn,
			uint16_t id, int offload)
{
	p[0] = 0x45;
	p[1] = ecn & 3;
	tern_put_u16(p + 2, (uint16_t)(TERN_NET_IP4_LEN + ulen));
	tern_put_u16(p + 4, id);
	tern_put_u16(p + 6, 0x4000); /* DF: QUIC does its own PMTU discovery (RFC 9000 §14) */
	p[8] = TERN_NET_TTL;
	p[9] = PROTO_UDP;
	p[10] = p[11] = 0;
	memcpy(p + 12, src, 4);
	memcpy(p + 16, dst, 4);
	if (!offload)
		put_csum(p + 10, tern_net_sum(p, TERN_NET_IP4_LEN, 0));
	return p + TERN_NET_IP4_LEN;
}

static uint8_t *put_ip6(uint8_t *p, const uint8_t *src, const uint8_t *dst, size_t ulen, uint8_t ecn)
{
	tern_put_u32(p, 0x60000000u | (uint32_t)(ecn & 3) << 20);
	tern_put_u16(p + 4, (uint16_t)ulen);
	p[6] = PROTO_UDP;
	p[7] = TERN_NET_TTL;
	memcpy(p + 8, src, 16);
	memcpy(p + 24, dst, 16);
	return p + TERN_NET_IP6_LEN;
}

int tern_net_udp_build(uint8_t *frame, const struct tern_net_if *ifc, const uint8_t dst_mac[6],
		       const struct tern_path *path, uint8_t ecn, uint16_t ip_id, size_t payload_len,
		       int offload)
{
	const struct tern_addr *r = &path->remote, *l = &path->local;
	int fam = r->family;
	if ((fam != 4 && fam != 6) || (l->family && l->family != fam))
		return TERN_ERR_INVAL;
	if (!l->family && !(fam == 4 ? ifc->has4 : ifc->has6))
		return TERN_ERR_INVAL;
	size_t ulen = TERN_NET_UDP_LEN + payload_len;
	if (ulen > 0xffff - (fam == 4 ? TERN_NET_IP4_LEN : 0))
		return TERN_ERR_INVAL;
	const uint8_t *sip = l->family ? l->ip : fam == 4 ? ifc->ip4 : ifc->ip6;
	uint16_t sport = l->family && l->port ? l->port : ifc->port;
	uint8_t *p = put_eth(frame, ifc, dst_mac, fam == 4 ? ETH_IP4 : ETH_IP6);
	p = fam == 4 ? put_ip4(p, sip, r->ip, ulen, ecn, ip_id, offload)
		     : put_ip6(p, sip, r->ip, ulen, ecn);
	tern_put_u16(p, sport);
	tern_put_u16(p + 2, r->port);
	tern_put_u16(p + 4, (uint16_t)ulen);
	p[6] = p[7] = 0;
	uint64_t ps = tern_net_pseudo_sum(fam, sip, r->ip, (uint32_t)ulen, PROTO_UDP);
	if (offload) {
		uint16_t c = tern_net_fold(ps);
		memcpy(p + 6, &c, 2);
	} else {
		uint16_t c = (uint16_t)~tern_net_fold(tern_net_sum(p, ulen, ps));
		/* zero means "no checksum": send all ones (RFC 768, RFC 8200 §8.1) */
		if (c == 0)
			c = 0xffff;
		memcpy(p + 6, &c, 2);
	}
	return (int)(p + ulen - frame);
}

size_t tern_net_arp_request(uint8_t *frame, const struct tern_net_if *ifc, const uint8_t ip[4])
{
	if (!ifc->has4)
		return 0;
	uint8_t *a = put_eth(frame, ifc, bcast_mac, ETH_ARP);
	tern_put_u16(a, 1);
	tern_put_u16(a + 2, ETH_IP4);
	a[4] = 6;
	a[5] = 4;
	tern_put_u16(a + 6, 1);
	memcpy(a + 8, ifc->mac, 6);
	memcpy(a + 14, ifc->ip4, 4);
	memset(a + 18, 0, 6);
	memcpy(a + 24, ip, 4);
	return (size_t)(a + ARP_LEN - frame);
}

size_t tern_net_ns(uint8_t *frame, const struct tern_net_if *ifc, const uint8_t ip6[16])
{
	if (!ifc->has6)
		return 0;
	/* RFC 4861 §7.2.2: to the target's solicited-node group, whose MAC is
	 * 33:33 and the group's last 32 bits (RFC 2464 §7) */
	const uint8_t mac[6] = {0x33, 0x33, 0xff, ip6[13], ip6[14], ip6[15]};
	uint8_t group[16] = {0xff, 0x02, [11] = 1, [12] = 0xff};
	memcpy(group + 13, ip6 + 13, 3);
	uint8_t *ip = put_eth(frame, ifc, mac, ETH_IP6);
	ip6_header(ip, 32, ND_HOPS, ifc->ip6, group);
	uint8_t *icmp = ip + TERN_NET_IP6_LEN;
	memset(icmp, 0, 8);
	icmp[0] = 135;
	memcpy(icmp + 8, ip6, 16);
	icmp[24] = 1; /* source link-layer address */
	icmp[25] = 1;
	memcpy(icmp + 26, ifc->mac, 6);
	icmp6_csum(ip, 32);
	return (size_t)(icmp + 32 - frame);
}

/* ---- neighbour cache ----------------------------------------------------------------- */

#define WAYS 4

int tern_neigh_init(struct tern_neigh *n, struct tern_neigh_entry *mem, size_t entries, int by_port,
		    uint64_t seed)
{
	if (!mem || entries < WAYS || (entries & (entries - 1)) || entries > UINT32_MAX)
		return TERN_ERR_INVAL;
	n->e = mem;
	n->mask = (uint32_t)(entries - 1);
	n->by_port = by_port;
	n->seed = seed;
	return 0;
}

static uint64_t neigh_hash(const struct tern_neigh *n, const struct tern_addr *a)
{
	uint64_t w0 = 0, w1 = 0;
	if (a->family == 4) {
		uint32_t v;
		memcpy(&v, a->ip, 4);
		w0 = v;
	} else {
		memcpy(&w0, a->ip, 8);
		memcpy(&w1, a->ip + 8, 8);
	}
	/* seeded, so a peer cannot aim many addresses at one set */
	uint64_t h = n->seed ^ a->family ^ (uint64_t)(n->by_port ? a->port : 0) << 8;
	h = (h ^ w0) * 0x9e3779b97f4a7c15u;
	h = (h ^ (h >> 29) ^ w1) * 0xbf58476d1ce4e5b9u;
	return h ^ (h >> 32);
}

/* Inline word compares: a libc memcmp call per way cost more than the
 * whole hash in the reset benchmark. */
static int neigh_key_eq(const struct tern_neigh *n, const struct tern_neigh_entry *e,
			const struct tern_addr *a)
{
	if (e->family != a->family || (n->by_port && e->port != a->port))
		return 0;
	uint64_t x0, x1, y0, y1;
	if (a->family == 4) {
		uint32_t x, y;
		memcpy(&x, e->ip, 4);
		memcpy(&y, a->ip, 4);
		return x == y;
	}
	memcpy(&x0, e->ip, 8);
	memcpy(&x1, e->ip + 8, 8);
	memcpy(&y0, a->ip, 8);
	memcpy(&y1, a->ip + 8, 8);
	return ((x0 ^ y0) | (x1 ^ y1)) == 0;
}

static int mac_eq(const uint8_t *a, const uint8_t *b)
{
	uint32_t a0, b0;
	uint16_t a1, b1;
	memcpy(&a0, a, 4);
	memcpy(&b0, b, 4);
	memcpy(&a1, a + 4, 2);
	memcpy(&b1, b + 4, 2);
	return a0 == b0 && a1 == b1;
}

/* A consistent copy of *e, or 0 while a writer is at it. */
static int neigh_read(const struct tern_neigh_entry *e, struct tern_neigh_entry *copy)
{
	uint32_t s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
	if (s1 & 1)
		return 0;
	copy->family = e->family;
	memcpy(copy->mac, e->mac, 6);
	copy->port = e->port;
	memcpy(copy->ip, e->ip, 16);
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&e->seq, memory_order_relaxed) == s1;
}

int tern_neigh_lookup(const struct tern_neigh *n, const struct tern_addr *a, uint8_t mac[6])
{
	if (a->family != 4 && a->family != 6)
		return TERN_ERR_STATE;
	uint32_t set = (uint32_t)neigh_hash(n, a) & n->mask & ~(uint32_t)(WAYS - 1);
	for (unsigned i = 0; i < WAYS; i++) {
		struct tern_neigh_entry c;
		if (neigh_read(&n->e[set + i], &c) && neigh_key_eq(n, &c, a)) {
			memcpy(mac, c.mac, 6);
			return 0;
		}
	}
	return TERN_ERR_STATE;
}

static int neigh_write(struct tern_neigh_entry *e, const struct tern_neigh *n,
		       const struct tern_addr *a, const uint8_t mac[6])
{
	uint32_t s = atomic_load_explicit(&e->seq, memory_order_relaxed);
	if ((s & 1) || !atomic_compare_exchange_strong_explicit(&e->seq, &s, s + 1,
								memory_order_acquire,
								memory_order_relaxed))
		return TERN_ERR_STATE;
	atomic_thread_fence(memory_order_release);
	e->family = a->family;
	memcpy(e->mac, mac, 6);
	e->port = n->by_port ? a->port : 0;
	memset(e->ip, 0, 16);
	memcpy(e->ip, a->ip, a->family == 4 ? 4 : 16);
	atomic_store_explicit(&e->seq, s + 2, memory_order_release);
	return 1;
}

int tern_neigh_learn(struct tern_neigh *n, const struct tern_addr *a, const uint8_t mac[6])
{
	if (a->family != 4 && a->family != 6)
		return TERN_ERR_INVAL;
	uint64_t h = neigh_hash(n, a);
	uint32_t set = (uint32_t)h & n->mask & ~(uint32_t)(WAYS - 1);
	struct tern_neigh_entry *victim = NULL;
	for (unsigned i = 0; i < WAYS; i++) {
		struct tern_neigh_entry *e = &n->e[set + i], c;
		if (!neigh_read(e, &c))
			continue;
		if (neigh_key_eq(n, &c, a)) {
			/* only a change is written: the common case, the same
			 * peer again, costs no cache-line transfer */
			if (mac_eq(c.mac, mac))
				return 0;
			return neigh_write(e, n, a, mac);
		}
		if (!victim && c.family == 0)
			victim = e;
	}
	if (!victim)
		victim = &n->e[set + ((h >> 40) & (WAYS - 1))];
	return neigh_write(victim, n, a, mac);
}
