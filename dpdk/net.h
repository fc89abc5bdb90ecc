/* tern DPDK datapath: the L2-L4 framing, free of DPDK so the tests can feed
 * it byte strings. Receive classifies one Ethernet frame (UDP payload for
 * the endpoint, a reply rewritten in place, a neighbour to learn, or a drop
 * with its reason); transmit writes the headers in front of a payload. The
 * neighbour cache lives here too. Internal to dpdk/. */
#ifndef TERN_DPDK_NET_H
#define TERN_DPDK_NET_H

#include <stdatomic.h>

#include "tern/dpdk.h"

#define TERN_NET_ETH_LEN 14
#define TERN_NET_VLAN_LEN 4
#define TERN_NET_IP4_LEN 20
#define TERN_NET_IP6_LEN 40
#define TERN_NET_UDP_LEN 8
/* Ethernet + VLAN + IPv6 + UDP: the headroom a TX payload needs. */
#define TERN_NET_HDR_MAX (TERN_NET_ETH_LEN + TERN_NET_VLAN_LEN + TERN_NET_IP6_LEN + TERN_NET_UDP_LEN)
/* A Neighbour Advertisement answering a Solicitation (86 bytes + a tag):
 * a receive buffer needs this much room for the in-place answer. */
#define TERN_NET_NA_LEN (TERN_NET_ETH_LEN + TERN_NET_IP6_LEN + 32)
/* Room for tern_net_arp_request() and tern_net_ns(). */
#define TERN_NET_SOLICIT_MAX (TERN_NET_NA_LEN + TERN_NET_VLAN_LEN)
#define TERN_NET_TTL 64

/* The local side of the port. */
struct tern_net_if {
	uint8_t mac[6];
	uint8_t has4, has6;
	uint8_t ip4[4];
	uint8_t ip6[16];
	uint16_t port; /* UDP listen port, host order */
	uint16_t n_ports; /* ports port..port+n_ports-1 are ours; 0 counts as 1 */
	uint16_t vlan; /* 0: untagged */
};

enum { TERN_NET_CSUM_UNKNOWN, TERN_NET_CSUM_GOOD, TERN_NET_CSUM_BAD };

/* What the NIC already did to the frame. */
struct tern_net_rx_hint {
	uint8_t ip_csum; /* TERN_NET_CSUM_*: the IPv4 header checksum */
	uint8_t l4_csum; /* TERN_NET_CSUM_*: the UDP checksum */
	uint8_t vlan_stripped;
	uint16_t vlan_tci;
};

enum tern_net_verdict {
	TERN_NET_DROP,  /* reason says why */
	TERN_NET_UDP,   /* payload at off, len bytes */
	TERN_NET_REPLY, /* the frame now holds the answer, len bytes from its start */
	TERN_NET_NEIGH, /* nothing to answer, only a neighbour to learn */
};

enum tern_net_reply_kind { TERN_NET_REPLY_ARP, TERN_NET_REPLY_ND, TERN_NET_REPLY_ECHO };

struct tern_net_rx {
	int reason;      /* enum tern_dpdk_drop, for TERN_NET_DROP */
	uint8_t kind;    /* enum tern_net_reply_kind, for TERN_NET_REPLY */
	uint8_t ecn;     /* the IP ECN bits, for TERN_NET_UDP */
	uint32_t off, len;
	struct tern_path path;  /* TERN_NET_UDP: remote = source, local = destination */
	struct tern_addr learn; /* family 0: nothing to learn; port set for UDP */
	uint8_t learn_mac[6];
};

/* Classifies frame[0..len) (cap: room in the buffer, for an answer longer
 * than the question). hint may be NULL. Returns the verdict. */
int tern_net_rx(const struct tern_net_if *ifc, uint8_t *frame, size_t len, size_t cap,
		const struct tern_net_rx_hint *hint, struct tern_net_rx *out);

/* Header bytes in front of a UDP payload for family 4 or 6. */
size_t tern_net_udp_hdr_len(const struct tern_net_if *ifc, int family);

/* Writes Ethernet (+VLAN), IP and UDP headers at frame, which is
 * tern_net_udp_hdr_len() bytes before the payload_len-byte payload. Source:
 * path->local when its family is set (port 0 means the listen port), else
 * the listen address of path->remote's family. IPv4 gets DF, TTL 64 and
 * ip_id; the ECN bits go into TOS / traffic class. offload: leave the IPv4
 * header checksum 0 and put the pseudo-header sum in the UDP checksum, as
 * NIC checksum offload expects. Returns the frame length, or TERN_ERR_INVAL
 * (no listen address of that family, families that differ, too long). */
int tern_net_udp_build(uint8_t *frame, const struct tern_net_if *ifc, const uint8_t dst_mac[6],
		       const struct tern_path *path, uint8_t ecn, uint16_t ip_id, size_t payload_len,
		       int offload);

/* An ARP request for ip (42 bytes: NICs pad to the minimum), or an
 * IPv6 Neighbour Solicitation for ip6 to its solicited-node group. Return
 * the frame length (at most TERN_NET_SOLICIT_MAX), 0 without a listen
 * address of that family. */
size_t tern_net_arp_request(uint8_t *frame, const struct tern_net_if *ifc, const uint8_t ip[4]);
size_t tern_net_ns(uint8_t *frame, const struct tern_net_if *ifc, const uint8_t ip6[16]);

/* ---- Internet checksum (RFC 1071) -------------------------------------------------- */

/* Adds p[0..len) to a running sum of 16-bit words in host order (RFC 1071
 * §2(B): the sum is byte-order independent). Only the last piece of a
 * chain may have an odd length. */
uint64_t tern_net_sum(const void *p, size_t len, uint64_t acc);

/* Folds the sum to 16 bits, still host order; the checksum field is its
 * complement, stored with memcpy. */
uint16_t tern_net_fold(uint64_t acc);

/* The pseudo-header sum (RFC 768, RFC 8200 §8.1) for upper-layer length
 * ulen and protocol proto: family 4 takes 4-byte addresses, 6 16-byte. */
uint64_t tern_net_pseudo_sum(int family, const uint8_t *src, const uint8_t *dst, uint32_t ulen,
			     uint8_t proto);

/* ---- neighbour cache ----------------------------------------------------------------- */

/* Shared by every queue: a writer takes an entry's sequence lock (odd while
 * it writes), readers retry nothing and treat a busy or changed entry as a
 * miss, so no queue ever waits. */
struct tern_neigh_entry {
	_Atomic uint32_t seq;
	uint8_t family; /* 0: empty */
	uint8_t mac[6];
	uint8_t pad;
	uint16_t port;
	uint8_t ip[16];
	uint8_t pad2[2];
};

struct tern_neigh {
	struct tern_neigh_entry *e;
	uint32_t mask;
	int by_port; /* TERN_DPDK_NEIGH_SRC_MAC: the key includes the port */
	uint64_t seed;
};

/* entries: a power of two, at least 4. mem: entries zeroed entries.
 * 0 or TERN_ERR_INVAL. */
int tern_neigh_init(struct tern_neigh *n, struct tern_neigh_entry *mem, size_t entries, int by_port,
		    uint64_t seed);

/* Records a -> mac. 1 when an entry was written, 0 when it already said
 * so, TERN_ERR_STATE when another writer held the entry (the next frame
 * will teach it), TERN_ERR_INVAL for a family other than 4 or 6. */
int tern_neigh_learn(struct tern_neigh *n, const struct tern_addr *a, const uint8_t mac[6]);

/* 0 with mac filled, or TERN_ERR_STATE when a is not known. */
int tern_neigh_lookup(const struct tern_neigh *n, const struct tern_addr *a, uint8_t mac[6]);

#endif
