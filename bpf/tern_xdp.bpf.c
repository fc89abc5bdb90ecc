// SPDX-License-Identifier: MIT
/* tern: the XDP program of the AF_XDP datapath (include/tern/xdp.h).
 *
 * UDP datagrams to the listen address and port go to the AF_XDP socket of
 * the RX queue they arrived on; QUIC that can be refused without any state
 * is dropped here and counted, before it costs a copy; everything else
 * (ARP, ND, ICMP, TCP, other UDP) goes on to the kernel stack, so the
 * interface keeps working as a host interface.
 *
 * Every header access is bounds-checked against data_end first (the
 * verifier insists, and a frame may end anywhere). Configuration is
 * rodata, fixed at load time, so the verifier prunes what is not served. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "tern_bpf_shared.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define QUIC_MIN_INITIAL_DGRAM 1200
#define QUIC_V1 0x00000001
#define QUIC_V2 0x6b3343cf

/* Network byte order throughout; a port of 0 means the family is not
 * served; an address of zero (cfg_any6 for IPv6) means any address. */
const volatile __u32 cfg_n_queues = 1;
const volatile __u16 cfg_port4 = 0;
const volatile __u32 cfg_addr4 = 0;
const volatile __u16 cfg_port6 = 0;
/* Ports port..port+cfg_n_ports-1 (host order count) are all ours. */
const volatile __u16 cfg_n_ports = 1;
const volatile __u8 cfg_any6 = 1;
const volatile __u32 cfg_addr6[4] = {0, 0, 0, 0};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, TERN_XDP_MAX_QUEUES); /* the loader sets n_queues */
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TERN_XDP_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += 1; /* per-CPU slot: no other writer */
}

static __always_inline int pass(void)
{
	count(TERN_XDP_CNT_PASSED);
	return XDP_PASS;
}

/* The stateless checks on the UDP payload q of plen bytes (already known
 * to lie inside the frame). Returns -1 to deliver, else the counter of the
 * drop. */
static __always_inline int quic_refuse(const __u8 *q, const void *end, __u32 plen)
{
	if (plen == 0)
		return TERN_XDP_CNT_DROP_EMPTY;
	if ((const void *)(q + 5) > end) {
		/* Too short to judge (a 1..4-byte payload): a short header
		 * still has its first byte to check. */
		if ((const void *)(q + 1) > end)
			return -1;
		if (!(q[0] & 0x80) && !(q[0] & 0x40))
			return TERN_XDP_CNT_DROP_FIXED_BIT;
		return -1;
	}
	__u8 first = q[0];
	if (!(first & 0x80)) {
		/* RFC 9000 §17.3.1: tern never negotiates grease_quic_bit
		 * (RFC 9287), so a short header without it is invalid. */
		return (first & 0x40) ? -1 : TERN_XDP_CNT_DROP_FIXED_BIT;
	}
	__u32 version = (__u32)q[1] << 24 | (__u32)q[2] << 16 | (__u32)q[3] << 8 | q[4];
	/* Other versions have their own rules (and may deserve a Version
	 * Negotiation packet): userspace decides. */
	if (version != QUIC_V1 && version != QUIC_V2)
		return -1;
	/* RFC 9000 §17.2: the fixed bit clear makes the packet invalid. */
	if (!(first & 0x40))
		return TERN_XDP_CNT_DROP_FIXED_BIT;
	/* RFC 9000 §14.1: a server MUST discard an Initial in a datagram
	 * under 1200 bytes. Initial is type 0 in v1, 1 in v2 (RFC 9369 §3.2). */
	__u8 type = (first >> 4) & 3;
	int initial = version == QUIC_V1 ? type == 0 : type == 1;
	if (initial && plen < QUIC_MIN_INITIAL_DGRAM)
		return TERN_XDP_CNT_DROP_SHORT_INITIAL;
	return -1;
}

/* The UDP header at udp, inside [.., end): our port? Then the verdict. */
static __always_inline int udp_verdict(struct xdp_md *ctx, struct udphdr *udp, void *end,
				       __u16 port, __u32 ip_payload_len)
{
	if ((void *)(udp + 1) > end)
		return pass();
	if ((__u16)(bpf_ntohs(udp->dest) - bpf_ntohs(port)) >= cfg_n_ports)
		return pass();
	__u32 udp_len = bpf_ntohs(udp->len);
	/* A UDP length the frame cannot hold is the kernel's to drop. */
	if (udp_len < sizeof(*udp) || udp_len > ip_payload_len || (void *)udp + udp_len > end)
		return pass();
	__u32 plen = udp_len - sizeof(*udp);
	const __u8 *q = (const __u8 *)(udp + 1);
	int drop = quic_refuse(q, end, plen);
	if (drop >= 0) {
		count((__u32)drop);
		return XDP_DROP;
	}
	__u32 qid = ctx->rx_queue_index;
	if (qid >= cfg_n_queues) {
		count(TERN_XDP_CNT_NO_SOCKET);
		return XDP_PASS;
	}
	/* The low bits of flags are the action when the slot is empty. */
	long act = bpf_redirect_map(&xsks, qid, XDP_PASS);
	count(act == XDP_REDIRECT ? TERN_XDP_CNT_REDIRECTED : TERN_XDP_CNT_NO_SOCKET);
	return (int)act;
}

static __always_inline int ipv4(struct xdp_md *ctx, struct iphdr *ip, void *end)
{
	if (!cfg_port4 || (void *)(ip + 1) > end)
		return pass();
	if (ip->version != 4 || ip->ihl < 5 || ip->protocol != IPPROTO_UDP)
		return pass();
	if (cfg_addr4 && ip->daddr != cfg_addr4)
		return pass();
	/* Fragments go to the kernel: QUIC never sends them (RFC 9000 §14
	 * sets DF), and reassembly is the stack's job. */
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return pass();
	__u32 hlen = (__u32)ip->ihl * 4;
	__u32 tot = bpf_ntohs(ip->tot_len);
	if (tot < hlen)
		return pass();
	struct udphdr *udp = (void *)ip + hlen;
	return udp_verdict(ctx, udp, end, cfg_port4, tot - hlen);
}

static __always_inline int ipv6(struct xdp_md *ctx, struct ipv6hdr *ip6, void *end)
{
	if (!cfg_port6 || (void *)(ip6 + 1) > end)
		return pass();
	/* Extension headers before UDP are rare for QUIC; the kernel handles
	 * them (and a socket there still receives the datagram). */
	if (ip6->version != 6 || ip6->nexthdr != IPPROTO_UDP)
		return pass();
	if (!cfg_any6) {
		const __u32 *d = ip6->daddr.in6_u.u6_addr32;
		if (d[0] != cfg_addr6[0] || d[1] != cfg_addr6[1] || d[2] != cfg_addr6[2] ||
		    d[3] != cfg_addr6[3])
			return pass();
	}
	return udp_verdict(ctx, (struct udphdr *)(ip6 + 1), end, cfg_port6,
			   bpf_ntohs(ip6->payload_len));
}

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

SEC("xdp")
int tern_xdp_prog(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return pass();
	__u16 proto = eth->h_proto;
	void *l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_tag *vt = l3;
		if ((void *)(vt + 1) > end)
			return pass();
		proto = vt->proto;
		l3 = vt + 1;
	}
	if (proto == bpf_htons(ETH_P_IP))
		return ipv4(ctx, l3, end);
	if (proto == bpf_htons(ETH_P_IPV6))
		return ipv6(ctx, l3, end);
	return pass();
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
