/* tern: the kernel-socket datapath (src/sock/), behind the contract of
 * include/tern/datapath.h.
 *
 * One UDP socket per queue, all bound to the same address with
 * SO_REUSEPORT, so the kernel spreads flows over the queues (a BPF program
 * that steers by CID comes later). Receive uses recvmmsg into buffers
 * allocated once at open; send uses sendmmsg, with UDP_SEGMENT (GSO) for
 * runs of same-size datagrams to one destination.
 *
 * Threads: queue q belongs to one thread (its worker). Only handoff() may be
 * called by another queue's thread, and it is safe to do so.
 *
 * Unlike the core, this file calls the OS and allocates (at open only). */
#ifndef TERN_SOCK_H
#define TERN_SOCK_H

#include "tern/datapath.h"

/* Longest "ADDR:PORT" text tern_sock_addr_format() writes, NUL included. */
#define TERN_SOCK_ADDRSTRLEN 56

struct tern_sock_config {
	/* "ADDR:PORT" to bind: "127.0.0.1:4433", "[::1]:0", "0.0.0.0:443",
	 * "[::]:443" (the last also takes IPv4, as v4-mapped, reported as
	 * family 4). Port 0 asks for an ephemeral port; read it back with
	 * tern_sock_local_addr(). */
	const char *listen;
	unsigned n_queues; /* sockets sharing the port; 0 means 1 */
	int rcvbuf;        /* SO_RCVBUF bytes; 0 leaves the kernel default */
	int sndbuf;        /* SO_SNDBUF bytes; 0 leaves the kernel default */
	unsigned rx_slots; /* receive buffers per queue; 0 means 4 * TERN_DP_BURST */
	unsigned tx_slots; /* send buffers per queue; 0 means 8 * TERN_DP_BURST */
	size_t buf_size;   /* bytes per buffer; 0 means TERN_DP_MAX_PAYLOAD */
	int no_gso;        /* never use UDP_SEGMENT */
};

/* Counters of this datapath beyond struct tern_dp_stats. */
struct tern_sock_stats {
	uint64_t syscalls_rx, syscalls_tx;
	uint64_t gso_sends;     /* sendmmsg messages that carried UDP_SEGMENT */
	uint64_t gso_segments;  /* datagrams sent inside them */
	uint64_t gso_fallbacks; /* GSO messages the kernel refused, resent one by one */
	uint64_t rx_truncated;  /* datagrams longer than buf_size, dropped */
};

/* Opens the sockets and allocates every buffer. 0, or TERN_ERR_INVAL (bad
 * config or address), TERN_ERR_IO (a socket call failed) or TERN_ERR_NOMEM,
 * with one line in err such as "cannot bind 127.0.0.1:443: Permission
 * denied". Close with dp->ops->close(dp).
 *
 * Contract details for this datapath:
 *  rx_burst   returns at most TERN_DP_BURST packets; TERN_ERR_NOMEM when
 *             every receive buffer is still held (rx_release them);
 *             packets handed off to q by other queues come first.
 *  tx_alloc   TERN_ERR_NOMEM when tx_slots buffers are out, TERN_ERR_NOBUF
 *             when size > buf_size. A buffer allocated but not enqueued
 *             comes back at the next tx_flush, so an allocation that
 *             turned out not to be needed costs nothing.
 *  tx_enqueue pkt->len bytes to pkt->path.remote, from pkt->path.local
 *             when its family is set (IP_PKTINFO / IPV6_PKTINFO, so a
 *             reply leaves from the address the client used), with the
 *             ECN bits pkt->ecn.
 *  tx_flush   returns the datagrams the kernel took; the rest (full socket
 *             buffer, unreachable destination) are dropped and counted in
 *             tx_dropped, as a router would drop them.
 *  handoff    copies pkt to q_to (which sees it in its next rx_burst); the
 *             caller still rx_releases pkt on q_from. TERN_ERR_NOMEM when
 *             q_to's ring is full. */
int tern_sock_open(struct tern_datapath **dp, const struct tern_sock_config *cfg, char *err,
		   size_t errlen);

/* The bound address of queue q's socket (the port read back after port 0).
 * 0 or TERN_ERR_INVAL. */
int tern_sock_local_addr(struct tern_datapath *dp, unsigned q, struct tern_addr *out);

/* Queue q's socket, for a caller's own epoll; -1 for a bad q. */
int tern_sock_fd(struct tern_datapath *dp, unsigned q);

/* 1 while sends use GSO (the kernel has UDP_SEGMENT, the config allows it
 * and no send was refused yet). */
int tern_sock_gso(struct tern_datapath *dp);

/* Queue q's extra counters (zeros for a bad q). */
void tern_sock_stats(struct tern_datapath *dp, unsigned q, struct tern_sock_stats *st);

/* Waits until queue q (or, for q < 0, any queue) has something to receive,
 * or timeout_ns passes (< 0: no limit; 0: just look). Returns 1 when
 * readable, 0 on timeout or when a signal interrupted the wait (so a
 * program loop sees its stop flag), TERN_ERR_INVAL or TERN_ERR_IO. */
int tern_sock_wait(struct tern_datapath *dp, int q, int64_t timeout_ns);

/* Parses "A.B.C.D:PORT" or "[IPv6]:PORT" (numeric only, port 0..65535).
 * 0, or TERN_ERR_INVAL with a line in err. */
int tern_sock_addr_parse(const char *s, struct tern_addr *out, char *err, size_t errlen);

/* Writes "A.B.C.D:PORT" or "[IPv6]:PORT" into buf (TERN_SOCK_ADDRSTRLEN
 * bytes always suffice); returns buf. */
char *tern_sock_addr_format(const struct tern_addr *a, char *buf, size_t len);

#endif
