/* tern: the AF_XDP datapath (bpf/), behind the contract of
 * include/tern/datapath.h.
 *
 * An XDP program (bpf/tern_xdp.bpf.c) on the interface sends UDP datagrams
 * for the listen address and port to one AF_XDP socket per RX queue, drops
 * QUIC that can be refused without state (an Initial in a datagram under
 * 1200 bytes, RFC 9000 §14.1; the fixed bit clear, §17.2/§17.3; an empty
 * payload) and passes everything else to the kernel, so ARP, ND, ping and
 * TCP keep working on the interface. The program is attached through a
 * bpf_link held by this process: it goes away when the datapath is closed
 * or the process exits or is killed.
 *
 * Each queue has its own UMEM (ring_size RX frames, all in the fill ring
 * while the endpoint does not hold them, and ring_size TX frames). Received
 * payloads are handed to the endpoint in place; TX writes Ethernet, IPv4 or
 * IPv6 and UDP headers in front of the payload in the UMEM frame, with both
 * checksums computed in software. The destination MAC is the one learned
 * from frames received from that IP address (per queue, handed-off packets
 * included), else cfg.peer_mac when set, else the source MAC of the last
 * frame the queue received (the gateway, on a routed network).
 *
 * Threads: queue q belongs to one thread (its worker). Only handoff() may be
 * called by another queue's thread, and it is safe to do so.
 *
 * Like src/sock/, this calls the OS and allocates (at open only). */
#ifndef TERN_XDP_H
#define TERN_XDP_H

#include "tern/datapath.h"

/* Bytes in front of a TX payload that headers may take (Ethernet, one VLAN
 * tag, IPv6, UDP). */
#define TERN_XDP_HDR_MAX (14 + 4 + 40 + 8)

struct tern_xdp_config {
	const char *ifname;
	/* What the program steers to the sockets: one address per family at
	 * most (family 4 or 6, port required). An all-zero ip means every
	 * address of that family on the interface. */
	struct tern_addr listen[2];
	unsigned n_listen;
	/* Ports listen[i].port..+n_ports-1 are all steered (a load generator
	 * telling flows apart by port); 0 means 1. */
	unsigned n_ports;
	unsigned n_queues;  /* RX queues 0..n_queues-1 (256 at most), one socket each; 0 means 1 */
	unsigned ring_size; /* frames per ring, power of 2 (64..16384); 0 means 2048 */
	int replace;        /* replace an XDP program attached through netlink */
	int force_copy;     /* skip the zero-copy attempt */
	int busy_poll;      /* SO_PREFER_BUSY_POLL and SO_BUSY_POLL on each socket */
	int has_peer_mac;
	uint8_t peer_mac[6]; /* next hop for destinations no frame came from */
	/* Called with one line describing the setup (attach mode, zero-copy
	 * or copy and why); NULL writes it to stderr. */
	void (*log)(void *ctx, const char *line);
	void *log_ctx;
};

/* Queue q's counters beyond struct tern_dp_stats. */
struct tern_xdp_qstats {
	uint64_t rx_bad_frames; /* redirected frames that did not parse (dropped) */
	uint64_t rx_wakeups;    /* recvfrom kicks for the fill ring / busy poll */
	uint64_t tx_kicks;      /* sendto kicks */
	uint64_t tx_no_mac;     /* enqueues refused: no destination MAC known yet */
	uint64_t tx_too_long;   /* datagrams over the interface MTU, dropped */
};

/* The XDP program's counters, summed over CPUs. */
struct tern_xdp_prog_stats {
	uint64_t redirected;         /* to an AF_XDP socket */
	uint64_t no_socket;          /* ours, but the queue had no socket: passed */
	uint64_t drop_short_initial; /* Initial in a datagram under 1200 bytes */
	uint64_t drop_fixed_bit;     /* QUIC v1/v2 fixed bit clear */
	uint64_t drop_empty;         /* empty UDP payload */
	uint64_t passed;             /* not for us: to the kernel */
};

struct tern_xdp_info {
	int ifindex;
	uint32_t prog_id;
	int native;     /* 1: driver (native) XDP; 0: generic (skb) mode */
	int zerocopy;   /* 1 when every socket is bound in zero-copy mode */
	unsigned mtu;
	uint8_t mac[6]; /* the interface's, the source of every frame sent */
};

/* Loads and attaches the program, opens the sockets. 0, or TERN_ERR_INVAL
 * (bad config, no such interface), TERN_ERR_STATE (another XDP program is
 * attached and cfg.replace is not set, or it is held by another process's
 * bpf_link), TERN_ERR_IO (a kernel call failed, e.g. another AF_XDP socket
 * holds a queue; a queue released a moment ago is waited for up to 1 s) or
 * TERN_ERR_NOMEM, with one line in err. Close with dp->ops->close(dp).
 *
 * Contract details for this datapath:
 *  rx_burst   at most n packets; packets handed off to q come first. Every
 *             payload stays valid until rx_release.
 *  tx_alloc   TERN_ERR_NOMEM when every TX frame is out, TERN_ERR_NOBUF
 *             when size exceeds cap (3968: a 4096-byte UMEM frame less 128
 *             bytes kept for headers; the MTU is checked at enqueue). A
 *             buffer allocated but not enqueued comes back at the next
 *             tx_flush.
 *  tx_enqueue builds the headers for pkt->path.remote from path.local (or
 *             the served address of that family when path.local is unset
 *             or all-zero, the interface's first address when that is a
 *             wildcard), with ECN pkt->ecn. TERN_ERR_INVAL when the family
 *             is not served or the buffer is not an allocated one;
 *             TERN_ERR_STATE when no destination MAC is known. A datagram
 *             over the MTU is dropped and counted in tx_dropped (0 is
 *             returned, as a router would drop it).
 *  tx_flush   returns the datagrams put on the TX ring.
 *  handoff    copies pkt into q_to's hand-off ring (q_to sees it first in
 *             its next rx_burst); the caller still rx_releases pkt on
 *             q_from. TERN_ERR_NOMEM when the ring (256 slots) is full,
 *             TERN_ERR_NOBUF for a payload over 4096 bytes. */
int tern_xdp_open(struct tern_datapath **dp, const struct tern_xdp_config *cfg, char *err,
		  size_t errlen);

/* Queue q's AF_XDP socket, for a caller's own poll; -1 for a bad q. */
int tern_xdp_fd(struct tern_datapath *dp, unsigned q);

/* Waits until queue q has something to receive or timeout_ns passes (< 0:
 * no limit; 0: just look). 1 when readable, 0 on timeout or signal,
 * TERN_ERR_INVAL or TERN_ERR_IO. It polls the socket only: a hand-off
 * pushed during the wait is seen when it returns, so workers that receive
 * hand-offs should wait in short slices. */
int tern_xdp_wait(struct tern_datapath *dp, unsigned q, int64_t timeout_ns);

void tern_xdp_qstats(struct tern_datapath *dp, unsigned q, struct tern_xdp_qstats *st);
int tern_xdp_prog_stats(struct tern_datapath *dp, struct tern_xdp_prog_stats *st);
void tern_xdp_info(struct tern_datapath *dp, struct tern_xdp_info *info);

/* ---- frames (bpf/frame.c: no OS, no libbpf; the fuzzer's target) ------- */

struct tern_xdp_l2 {
	uint8_t dst[6], src[6];
	uint16_t vlan_proto; /* 0x8100 or 0x88a8 when tagged, 0 when not */
	uint16_t vlan_tci;
};

struct tern_xdp_frame {
	struct tern_xdp_l2 l2;
	struct tern_path path; /* local: the destination; remote: the source */
	uint8_t ecn;
	uint16_t payload_off;
	uint16_t payload_len;
};

/* Parses an Ethernet frame (one VLAN tag at most) carrying IPv4 or IPv6
 * and UDP. 0, TERN_ERR_TRUNCATED (the frame ends before a header or the
 * datagram does) or TERN_ERR_MALFORMED (not IPv4/IPv6, not UDP, IPv6
 * extension headers, an IPv4 fragment, a bad IPv4 header checksum, an
 * inconsistent IP or UDP length). UDP checksums are not verified: QUIC's
 * AEAD authenticates the payload, and veth hands over partial checksums. */
int tern_xdp_frame_parse(const uint8_t *frame, size_t len, struct tern_xdp_frame *out);

/* Header bytes for family 4 or 6 with or without a VLAN tag. */
size_t tern_xdp_hdr_len(int family, int vlan);

/* Writes the Ethernet, IP and UDP headers for the payload_len bytes at
 * payload into the headroom bytes before it, checksums included (IPv4 DF
 * set: RFC 9000 §14 forbids fragmentation; TTL/hop limit 64). Returns the
 * header length (the frame starts that many bytes before payload),
 * TERN_ERR_NOBUF when headroom is too small, TERN_ERR_INVAL when the
 * path's families differ or are not 4/6, or the datagram exceeds 65535. */
int tern_xdp_frame_build(uint8_t *payload, size_t payload_len, size_t headroom,
			 const struct tern_xdp_l2 *l2, const struct tern_path *path, uint8_t ecn,
			 uint16_t ip_id);

/* The Internet checksum (RFC 1071) of buf folded into sum, not inverted:
 * a block whose checksum field is right sums to 0xffff. */
uint32_t tern_xdp_csum_add(uint32_t sum, const uint8_t *buf, size_t len);
uint16_t tern_xdp_csum_fold(uint32_t sum);

#endif
