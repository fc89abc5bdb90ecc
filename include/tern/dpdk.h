/* tern: the DPDK datapath (dpdk/), behind the contract of
 * include/tern/datapath.h.
 *
 * One ethdev port, n_queues RX/TX queue pairs, one worker per queue. The
 * datapath strips Ethernet (one optional VLAN tag), IPv4 or IPv6 and UDP to
 * the listen port, answers ARP, IPv6 Neighbour Solicitation and ICMP/ICMPv6
 * echo for the listen addresses itself, and hands the endpoint only UDP
 * payloads, in place in the receive mbuf. Everything else is dropped and
 * counted by reason.
 *
 * Spreading: where the port advertises RSS on the UDP 4-tuple, each queue
 * reads its own RX queue. Where it does not (af_packet, ring, most vdevs),
 * queue 0 alone reads the port and hands each datagram to the queue its
 * 4-tuple hashes to, so flows still spread over the workers; TX queues the
 * port cannot give one per worker are shared under a lock.
 *
 * Threads: queue q belongs to one thread. Only handoff() may be called by
 * another queue's thread. tern_dpdk_stats() may be read from anywhere
 * (figures may be a moment old).
 *
 * Unlike the core, this library calls DPDK and allocates, at open only.
 * This header needs no DPDK header. */
#ifndef TERN_DPDK_H
#define TERN_DPDK_H

#include "tern/datapath.h"

/* Why a received frame did not become a payload for the endpoint. */
enum tern_dpdk_drop {
	TERN_DPDK_DROP_MALFORMED,    /* truncated frame, lengths that do not add up */
	TERN_DPDK_DROP_OTHER_MAC,    /* not to our MAC (or a broadcast that is not ARP) */
	TERN_DPDK_DROP_WRONG_VLAN,   /* tagged differently from the config */
	TERN_DPDK_DROP_NOT_IP,       /* neither IPv4, IPv6 nor ARP */
	TERN_DPDK_DROP_ARP_IGNORED,  /* ARP not about our IPv4 address */
	TERN_DPDK_DROP_BAD_IP,       /* bad IP version, header length or header checksum */
	TERN_DPDK_DROP_WRONG_ADDR,   /* not to a listen address (or an unset family) */
	TERN_DPDK_DROP_FRAGMENT,     /* IPv4 fragment or IPv6 fragment header */
	TERN_DPDK_DROP_NOT_UDP,      /* another protocol, or an IPv6 extension header */
	TERN_DPDK_DROP_WRONG_PORT,   /* UDP to another port */
	TERN_DPDK_DROP_BAD_CHECKSUM, /* UDP, ICMP or ICMPv6 checksum wrong (or a zero UDP/IPv6 one) */
	TERN_DPDK_DROP_ICMP_IGNORED, /* ICMP other than echo, ND other than NS/NA to us */
	TERN_DPDK_DROP_HANDOFF_FULL, /* software spreading found the owner's ring full */
	TERN_DPDK_DROP_COUNT
};

/* A short name for a drop reason ("bad_checksum"...), "?" when unknown. */
const char *tern_dpdk_drop_name(int reason);

/* Where replies go at L2. */
enum tern_dpdk_neigh_mode {
	/* Peer IP -> MAC, learned from every frame, ARP and ND; a miss sends
	 * an ARP request / Neighbour Solicitation and drops the packet. */
	TERN_DPDK_NEIGH_LEARN,
	/* Behind a load balancer: replies go to the source MAC of the last
	 * frame of the same flow (peer IP and port), whatever MAC the LB used;
	 * a miss never solicits. */
	TERN_DPDK_NEIGH_SRC_MAC,
};

struct tern_dpdk_config {
	/* EAL arguments, split on spaces, e.g. "--no-huge -m 1024 --no-pci
	 * --no-shconf --vdev=net_af_packet0,iface=veth0". Used once per
	 * process (the first open, or tern_dpdk_eal_init); NULL when the EAL
	 * is already up. */
	const char *eal_args;
	const char *port;    /* ethdev name ("net_af_packet0"); NULL: the first port */
	unsigned n_queues;   /* workers; 0 means 1 */
	const char *addr4;   /* listen IPv4 ("198.18.0.1"), NULL for none */
	const char *addr6;   /* listen IPv6 ("2001:2::1"), NULL for none */
	uint16_t udp_port;   /* listen UDP port (not 0) */
	/* Ports udp_port..udp_port+udp_ports-1 are all ours (a load generator
	 * telling flows apart by port); 0 means 1. */
	uint16_t udp_ports;
	uint16_t vlan_id;    /* 1..4094 to send and accept one 802.1Q tag; 0: untagged */
	unsigned rx_desc, tx_desc; /* per queue; 0 means 1024 */
	unsigned n_mbufs;    /* 0: sized from queues and descriptors (see dpdk.c) */
	unsigned handoff_slots; /* per queue, a power of two; 0 means 1024 */
	unsigned tx_slots;   /* mbufs a queue may hold between flushes; 0 means 512 */
	unsigned neigh_entries; /* neighbour cache size, power of two; 0 means 4096 */
	int neigh_mode;      /* enum tern_dpdk_neigh_mode */
	/* Where a packet with no neighbour entry goes, or NULL. Peers that are
	 * not on the link (behind a router) answer no ARP: give the router's
	 * MAC here, or use TERN_DPDK_NEIGH_SRC_MAC. */
	const uint8_t *gateway_mac;
	int no_offload;      /* compute every checksum in software */
	int promiscuous;     /* put the port in promiscuous mode */
	/* Setup messages (RSS or not, offloads); NULL: stderr. */
	void (*log)(void *ctx, const char *line);
	void *log_ctx;
};

/* Counters of one queue. rx_dropped of struct tern_dp_stats is the sum of
 * drop[]; replies answered by the datapath are not rx_pkts. */
struct tern_dpdk_stats {
	uint64_t rx_frames;        /* everything read from the port or the hand-off ring */
	uint64_t rx_pkts, rx_bytes; /* UDP payloads given to the endpoint */
	uint64_t tx_pkts, tx_bytes; /* UDP payloads the port took */
	uint64_t drop[TERN_DPDK_DROP_COUNT];
	uint64_t rx_dropped;       /* sum of drop[] */
	uint64_t handed_off;       /* given to other queues (handoff() and spreading) */
	uint64_t handoff_rx;       /* taken from this queue's ring */
	uint64_t handoff_full;     /* handoff() refused: the ring was full */
	uint64_t arp_replies, nd_replies, echo_replies, solicits_sent;
	uint64_t neigh_learned;    /* cache entries written */
	uint64_t tx_dropped;       /* every payload lost on the way out, the next four */
	uint64_t tx_port_full;     /* the port did not take it at flush */
	uint64_t tx_no_neigh;      /* no MAC for the destination */
	uint64_t tx_too_big;       /* over the port's MTU */
	uint64_t tx_bad_path;      /* no listen address of the destination's family */
	uint64_t tx_nomem;         /* tx_alloc found the mempool empty */
};

#define TERN_DPDK_ALL_QUEUES (~0u)

/* Starts the EAL once per process from a space-separated argument string.
 * Returns 0 (also when it was already up), or TERN_ERR_INVAL with ONE line
 * in err (such as "EAL: unrecognized option '--bogus'"); the EAL's own
 * console output during a failed start is swallowed. DPDK's log goes to
 * stderr afterwards. */
int tern_dpdk_eal_init(const char *args, char *err, size_t errlen);

/* Opens the port and its queues. 0, or TERN_ERR_INVAL (bad config, bad EAL
 * argument, unknown port), TERN_ERR_NOMEM (mempool, rings) or TERN_ERR_IO
 * (the port would not configure or start), with one line in err. Close
 * with dp->ops->close(dp), which stops and closes the port.
 *
 * Contract details for this datapath:
 *  rx_burst   at most n (<= TERN_DP_BURST is best) payloads, in place in
 *             their mbufs (cap = len, rx_ns = 0); payloads handed off to q
 *             come first. ARP/ND/echo answers leave with the next tx_flush.
 *  rx_release frees the mbufs (pkts whose priv is NULL are skipped).
 *  tx_alloc   an mbuf with headroom for Ethernet+VLAN+IPv6+UDP; data is
 *             where the payload goes; TERN_ERR_NOBUF when size exceeds the
 *             mbuf's room, TERN_ERR_NOMEM when tx_slots are out or the pool
 *             is empty. Not enqueued by the next tx_flush: freed there.
 *  tx_enqueue writes the headers (destination MAC from the neighbour cache,
 *             source from path.local when its family is set, else the listen
 *             address; TTL 64, DF, the ECN bits, checksums) and buffers it; a
 *             full burst is sent at once. A payload that cannot go (no
 *             neighbour, over the MTU, no address of that family) is dropped
 *             and counted, and 0 returned, as a router would; TERN_ERR_INVAL
 *             for a pkt that did not come from tx_alloc on q.
 *  tx_flush   sends the buffered packets; what the port does not take is
 *             freed and counted. Returns the payloads sent.
 *  handoff    moves pkt to q_to without copying (a reference on the mbuf);
 *             the caller still rx_releases pkt on q_from. TERN_ERR_NOMEM
 *             when q_to's ring is full. */
int tern_dpdk_open(struct tern_datapath **dp, const struct tern_dpdk_config *cfg, char *err,
		   size_t errlen);

/* Queue q's counters, or the sum over queues for TERN_DPDK_ALL_QUEUES
 * (zeros for a bad q). */
void tern_dpdk_stats(struct tern_datapath *dp, unsigned q, struct tern_dpdk_stats *st);

/* The port's MAC address. */
void tern_dpdk_mac(struct tern_datapath *dp, uint8_t mac[6]);

/* The DPDK port id. */
uint16_t tern_dpdk_port_id(struct tern_datapath *dp);

/* 1 when the port spreads by RSS, 0 when queue 0 spreads in software. */
int tern_dpdk_has_rss(struct tern_datapath *dp);

/* 1 when TX checksums are left to the port. */
int tern_dpdk_tx_offload(struct tern_datapath *dp);

/* Adds or replaces a neighbour entry (a static peer, a router): ip.family
 * 4 or 6 (ip.port matters in TERN_DPDK_NEIGH_SRC_MAC mode). 0 or
 * TERN_ERR_INVAL. */
int tern_dpdk_neigh_add(struct tern_datapath *dp, const struct tern_addr *ip, const uint8_t mac[6]);

/* Runs fn(q, arg) for every queue, queue 0 on the calling (main) lcore and
 * the others on worker lcores, and waits for all. Returns the first
 * non-zero result, or TERN_ERR_INVAL (with a line in err) when the EAL has
 * fewer lcores than queues. */
int tern_dpdk_launch(struct tern_datapath *dp, int (*fn)(unsigned q, void *arg), void *arg,
		     char *err, size_t errlen);

#endif
