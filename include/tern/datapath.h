/* tern: the datapath contract (DESIGN.md §3, msquic datapath_raw style).
 *
 * Every datapath (kernel sockets in src/sock/, DPDK in dpdk/, AF_XDP in
 * bpf/) hands the endpoint batches of received UDP payloads with their
 * path, and takes UDP payloads to send. The endpoint never sees an mbuf,
 * a UMEM descriptor or a socket: only struct tern_dp_pkt. Datapaths never
 * parse QUIC frames. */
#ifndef TERN_DATAPATH_H
#define TERN_DATAPATH_H

#include "tern/common.h"
#include "tern/conn.h"

#define TERN_DP_BURST 32
#define TERN_DP_MAX_PAYLOAD 1500

/* One UDP payload in a datapath-owned buffer. */
struct tern_dp_pkt {
	uint8_t *data;
	uint32_t len;           /* payload bytes */
	uint32_t cap;           /* room in data (tx) */
	struct tern_path path;  /* rx: as received; tx: where it goes */
	uint8_t ecn;            /* the IP ECN bits */
	uint64_t rx_ns;         /* receive timestamp, when the datapath has one */
	void *priv;             /* the datapath's handle (mbuf, frame address...) */
};

struct tern_dp_stats {
	uint64_t rx_pkts, rx_bytes, tx_pkts, tx_bytes;
	uint64_t rx_dropped, tx_dropped, handed_off;
};

struct tern_datapath;

struct tern_datapath_ops {
	const char *name;
	/* Up to n received payloads of queue q; 0 when none. */
	int (*rx_burst)(struct tern_datapath *dp, unsigned q, struct tern_dp_pkt *pkts, unsigned n);
	/* Gives the buffers of a burst back after the endpoint is done. */
	void (*rx_release)(struct tern_datapath *dp, unsigned q, struct tern_dp_pkt *pkts, unsigned n);
	/* A buffer of at least `size` bytes to fill and enqueue. */
	int (*tx_alloc)(struct tern_datapath *dp, unsigned q, struct tern_dp_pkt *pkt, size_t size);
	int (*tx_enqueue)(struct tern_datapath *dp, unsigned q, struct tern_dp_pkt *pkt);
	/* Sends what is enqueued (one syscall, GSO, or one tx burst). */
	int (*tx_flush)(struct tern_datapath *dp, unsigned q);
	/* Moves a received packet to the worker that owns its CID. */
	int (*handoff)(struct tern_datapath *dp, unsigned q_from, unsigned q_to, struct tern_dp_pkt *pkt);
	void (*stats)(struct tern_datapath *dp, unsigned q, struct tern_dp_stats *st);
	void (*close)(struct tern_datapath *dp);
};

struct tern_datapath {
	const struct tern_datapath_ops *ops;
	unsigned n_queues;
};

#endif
