/* tern: Ethernet/IP/UDP framing for the AF_XDP datapath
 * (include/tern/xdp.h). No OS calls, no libbpf: the unit tests and the
 * fuzzer link this file alone. */
#include "tern/xdp.h"

#define ETH_HLEN 14
#define VLAN_HLEN 4
#define IP4_HLEN 20
#define IP6_HLEN 40
#define UDP_HLEN 8
#define ETHERTYPE_IP 0x0800
#define ETHERTYPE_IPV6 0x86dd
#define ETHERTYPE_VLAN 0x8100
#define ETHERTYPE_QINQ 0x88a8
#define PROTO_UDP 17
#define IP4_DF 0x4000
#define IP4_FRAG_MASK 0x3fff /* MF and the fragment offset */
#define HOP_LIMIT 64

/* ---- the Internet checksum, RFC 1071 ----------------------------------- */

/* Sums 32-bit big-endian words into a 64-bit accumulator: 2^16 = 1 modulo
 * 0xffff, so this is the same ones' complement sum as 16-bit words
 * (RFC 1071 §2), with fewer carries to fold. An odd trailing byte is
 * padded with zero, so only the last block may have an odd length. */
uint32_t tern_xdp_csum_add(uint32_t sum, const uint8_t *buf, size_t len)
{
	uint64_t acc = sum;
	size_t i = 0;
	for (; i + 4 <= len; i += 4)
		acc += (uint32_t)buf[i] << 24 | (uint32_t)buf[i + 1] << 16 |
		       (uint32_t)buf[i + 2] << 8 | buf[i + 3];
	if (i + 2 <= len) {
		acc += (uint32_t)buf[i] << 8 | buf[i + 1];
		i += 2;
	}
	if (i < len)
		acc += (uint32_t)buf[i] << 8;
	while (acc >> 32)
		acc = (acc & 0xffffffffu) + (acc >> 32);
	return (uint32_t)acc;
}

uint16_t tern_xdp_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* ---- parsing ------------------------------------------------------------ */

static void addr_set(struct tern_addr *a, int family, const uint8_t *ip, const uint8_t *port)
{
	a->family = (uint8_t)family;
	a->port = tern_get_u16(port);
	memcpy(a->ip, ip, family == 4 ? 4 : 16);
}

/* u points at the UDP header; ip_len is what the IP header says the
 * datagram holds (already checked to lie inside the frame). */
static int parse_udp(const uint8_t *u, size_t ip_len, size_t off, struct tern_xdp_frame *out)
{
	if (ip_len < UDP_HLEN)
		return TERN_ERR_MALFORMED;
	size_t ulen = tern_get_u16(u + 4);
	/* RFC 768: the length covers header and data; IP may carry trailing
	 * bytes after it (the kernel trims them too), never fewer. */
	if (ulen < UDP_HLEN || ulen > ip_len)
		return TERN_ERR_MALFORMED;
	out->path.remote.port = tern_get_u16(u);
	out->path.local.port = tern_get_u16(u + 2);
	out->payload_off = (uint16_t)(off + UDP_HLEN);
	out->payload_len = (uint16_t)(ulen - UDP_HLEN);
	return 0;
}

static int parse_ipv4(const uint8_t *p, size_t n, size_t off, struct tern_xdp_frame *out)
{
	if (n < IP4_HLEN)
		return TERN_ERR_TRUNCATED;
	if (p[0] >> 4 != 4)
		return TERN_ERR_MALFORMED;
	size_t ihl = (size_t)(p[0] & 0x0f) * 4;
	if (ihl < IP4_HLEN)
		return TERN_ERR_MALFORMED;
	if (n < ihl)
		return TERN_ERR_TRUNCATED;
	size_t tot = tern_get_u16(p + 2);
	if (tot < ihl)
		return TERN_ERR_MALFORMED;
	/* Ethernet pads short frames, so the frame may be longer than the
	 * datagram; shorter means it was cut. */
	if (tot > n)
		return TERN_ERR_TRUNCATED;
	/* QUIC sets DF (RFC 9000 §14); fragments are the kernel's business. */
	if (tern_get_u16(p + 6) & IP4_FRAG_MASK)
		return TERN_ERR_MALFORMED;
	if (p[9] != PROTO_UDP)
		return TERN_ERR_MALFORMED;
	if (tern_xdp_csum_fold(tern_xdp_csum_add(0, p, ihl)) != 0xffff)
		return TERN_ERR_MALFORMED;
	out->ecn = p[1] & 3;
	addr_set(&out->path.remote, 4, p + 12, p + 12); /* ports come from UDP */
	addr_set(&out->path.local, 4, p + 16, p + 16);
	return parse_udp(p + ihl, tot - ihl, off + ihl, out);
}

static int parse_ipv6(const uint8_t *p, size_t n, size_t off, struct tern_xdp_frame *out)
{
	if (n < IP6_HLEN)
		return TERN_ERR_TRUNCATED;
	if (p[0] >> 4 != 6)
		return TERN_ERR_MALFORMED;
	/* Extension headers are left to the kernel (the XDP program passes
	 * them), and a payload length of 0 would be a jumbogram. */
	if (p[6] != PROTO_UDP)
		return TERN_ERR_MALFORMED;
	size_t plen = tern_get_u16(p + 4);
	if (plen == 0)
		return TERN_ERR_MALFORMED;
	if (plen > n - IP6_HLEN)
		return TERN_ERR_TRUNCATED;
	out->ecn = (uint8_t)((tern_get_u32(p) >> 20) & 3);
	addr_set(&out->path.remote, 6, p + 8, p + 8);
	addr_set(&out->path.local, 6, p + 24, p + 24);
	return parse_udp(p + IP6_HLEN, plen, off + IP6_HLEN, out);
}

int tern_xdp_frame_parse(const uint8_t *f, size_t len, struct tern_xdp_frame *out)
{
	memset(out, 0, sizeof(*out));
	if (len < ETH_HLEN)
		return TERN_ERR_TRUNCATED;
	/* Nothing after this can be longer than a 16-bit IP length plus the
	 * link headers; cap so every offset fits the frame struct. */
	if (len > 0xffff)
		len = 0xffff;
	memcpy(out->l2.dst, f, 6);
	memcpy(out->l2.src, f + 6, 6);
	uint16_t et = tern_get_u16(f + 12);
	size_t off = ETH_HLEN;
	if (et == ETHERTYPE_VLAN || et == ETHERTYPE_QINQ) {
		if (len < ETH_HLEN + VLAN_HLEN)
			return TERN_ERR_TRUNCATED;
		out->l2.vlan_proto = et;
		out->l2.vlan_tci = tern_get_u16(f + 14);
		et = tern_get_u16(f + 16);
		off += VLAN_HLEN;
	}
	if (et == ETHERTYPE_IP)
		return parse_ipv4(f + off, len - off, off, out);
	if (et == ETHERTYPE_IPV6)
		return parse_ipv6(f + off, len - off, off, out);
	return TERN_ERR_MALFORMED;
}

/* ---- building ----------------------------------------------------------- */

size_t tern_xdp_hdr_len(int family, int vlan)
{
	return ETH_HLEN + (vlan ? VLAN_HLEN : 0) + (family == 6 ? IP6_HLEN : IP4_HLEN) + UDP_HLEN;
}

static uint8_t *put_eth(uint8_t *f, const struct tern_xdp_l2 *l2, uint16_t ethertype)
{
	memcpy(f, l2->dst, 6);
	memcpy(f + 6, l2->src, 6);
	f += 12;
	if (l2->vlan_proto) {
		f = tern_put_u16(f, l2->vlan_proto);
		f = tern_put_u16(f, l2->vlan_tci);
	}
	return tern_put_u16(f, ethertype);
}

static uint8_t *put_ipv4(uint8_t *ip, const struct tern_path *path, uint8_t ecn, size_t ulen,
			 uint16_t ip_id)
{
	ip[0] = 0x45;
	ip[1] = ecn & 3; /* DSCP 0 */
	tern_put_u16(ip + 2, (uint16_t)(IP4_HLEN + ulen));
	tern_put_u16(ip + 4, ip_id);
	tern_put_u16(ip + 6, IP4_DF);
	ip[8] = HOP_LIMIT;
	ip[9] = PROTO_UDP;
	tern_put_u16(ip + 10, 0);
	memcpy(ip + 12, path->local.ip, 4);
	memcpy(ip + 16, path->remote.ip, 4);
	tern_put_u16(ip + 10, (uint16_t)~tern_xdp_csum_fold(tern_xdp_csum_add(0, ip, IP4_HLEN)));
	return ip + IP4_HLEN;
}

static uint8_t *put_ipv6(uint8_t *ip, const struct tern_path *path, uint8_t ecn, size_t ulen)
{
	tern_put_u32(ip, 6u << 28 | (uint32_t)(ecn & 3) << 20);
	tern_put_u16(ip + 4, (uint16_t)ulen);
	ip[6] = PROTO_UDP;
	ip[7] = HOP_LIMIT;
	memcpy(ip + 8, path->local.ip, 16);
	memcpy(ip + 24, path->remote.ip, 16);
	return ip + IP6_HLEN;
}

/* The UDP checksum over the pseudo-header (RFC 768; RFC 8200 §8.1 for
 * IPv6), the header and the payload. */
static void put_udp(uint8_t *u, const struct tern_path *path, size_t plen)
{
	int fam = path->local.family;
	size_t alen = fam == 4 ? 4 : 16;
	uint16_t ulen = (uint16_t)(UDP_HLEN + plen);
	tern_put_u16(u, path->local.port);
	tern_put_u16(u + 2, path->remote.port);
	tern_put_u16(u + 4, ulen);
	tern_put_u16(u + 6, 0);
	const uint8_t pseudo[4] = {0, PROTO_UDP, (uint8_t)(ulen >> 8), (uint8_t)ulen};
	uint32_t sum = tern_xdp_csum_add(0, path->local.ip, alen);
	sum = tern_xdp_csum_add(sum, path->remote.ip, alen);
	sum = tern_xdp_csum_add(sum, pseudo, sizeof(pseudo));
	sum = tern_xdp_csum_add(sum, u, UDP_HLEN + plen);
	uint16_t c = (uint16_t)~tern_xdp_csum_fold(sum);
	/* 0 means "no checksum" in IPv4 and is forbidden in IPv6: send the
	 * other representation of zero. */
	tern_put_u16(u + 6, c ? c : 0xffff);
}

int tern_xdp_frame_build(uint8_t *payload, size_t payload_len, size_t headroom,
			 const struct tern_xdp_l2 *l2, const struct tern_path *path, uint8_t ecn,
			 uint16_t ip_id)
{
	int fam = path->remote.family;
	if ((fam != 4 && fam != 6) || path->local.family != fam)
		return TERN_ERR_INVAL;
	size_t hl = tern_xdp_hdr_len(fam, l2->vlan_proto != 0);
	size_t ulen = UDP_HLEN + payload_len;
	if (payload_len > 0xffff || ulen + (fam == 4 ? IP4_HLEN : 0) > 0xffff)
		return TERN_ERR_INVAL;
	if (headroom < hl)
		return TERN_ERR_NOBUF;
	uint8_t *p = put_eth(payload - hl, l2, fam == 4 ? ETHERTYPE_IP : ETHERTYPE_IPV6);
	if (fam == 4)
		p = put_ipv4(p, path, ecn, ulen, ip_id);
	else
		p = put_ipv6(p, path, ecn, ulen);
	put_udp(p, path, payload_len);
	return (int)hl;
}
