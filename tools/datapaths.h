/* ternd's choice of datapath (--datapath socket|xdp|dpdk|auto), kept in
 * one place so the rest of the program sees only the contract of
 * include/tern/datapath.h plus "how does worker q wait". Which datapaths
 * exist depends on the build: the socket one always, XDP with libbpf and
 * libxdp (bpf/), DPDK with libdpdk (dpdk/). */
#ifndef TERN_TOOLS_DATAPATHS_H
#define TERN_TOOLS_DATAPATHS_H

#include "tern/datapath.h"
#include "tern/sock.h"

struct dp_opts {
	const char *kind;      /* "socket", "xdp", "dpdk" or "auto" */
	const char *listen;    /* "ADDR:PORT" */
	const char *ifname;    /* --interface (XDP) */
	const char *dpdk_eal;  /* --dpdk-eal "EAL ARGS" */
	const char *dpdk_port; /* --dpdk-port NAME */
	unsigned n_queues;     /* one per worker */
	/* our server CIDs, for SO_REUSEPORT steering (include/tern/lbcid.h) */
	unsigned cid_len, worker_offset;
};

struct dp_handle {
	struct tern_datapath *dp;
	const char *name; /* "socket", "xdp" or "dpdk" */
	int busy_poll;    /* 1: workers spin on rx_burst (DPDK); there is no fd to wait on */
	char addr[TERN_SOCK_ADDRSTRLEN]; /* the address served, port included */
	char detail[160]; /* for the "listening on" line: ", GSO", ", veth0 native"... */
};

/* NULL when kind names a datapath this build has, else why not (one line,
 * such as "--datapath xdp is not available in this build"). */
const char *dp_unavailable(const char *kind);

/* Opens the datapath o->kind names; auto tries DPDK, then XDP, then the
 * socket datapath and logs one line saying which it chose and why. With
 * several socket queues it also attaches the SO_REUSEPORT steering program
 * (one line: in use, or why not). Any failure ends the program with one
 * line and status 2. */
void dp_open(const struct dp_opts *o, struct dp_handle *h);

/* The fd worker q polls for received datagrams (-1 for busy-poll datapaths). */
int dp_fd(const struct dp_handle *h, unsigned q);

/* Queue q's socket-datapath counters (zeros for the other datapaths). */
void dp_sock_stats(const struct dp_handle *h, unsigned q, struct tern_sock_stats *st);

/* DPDK runs its workers on EAL lcores (queue 0 on the calling thread):
 * runs fn(q, arg) for every queue and returns when all are done. 1 when the
 * datapath has no lcores of its own (the caller starts threads), 0, or a
 * negative TERN_ERR_* with a line in err. */
/* What one queue of the chosen datapath counts beyond the contract's
 * stats: drops by reason and L2/L3 answers (DPDK). Read by the worker that
 * owns the queue. */
#define DP_MAX_DROP_REASONS 32
struct dp_queue_stats {
	unsigned n_drop; /* reasons in drop[], named by dp_drop_name() */
	uint64_t drop[DP_MAX_DROP_REASONS];
	uint64_t arp_replies, nd_replies, echo_replies;
	uint64_t tx_dropped, handoff_full;
};
void dp_queue_stats(const struct dp_handle *h, unsigned q, struct dp_queue_stats *st);
const char *dp_drop_name(const struct dp_handle *h, unsigned reason);

/* The XDP program's own counters (per-CPU maps, summed); valid is 0 on
 * other datapaths. Any thread may read them. */
struct dp_prog_stats {
	int valid;
	uint64_t redirected, no_socket, drop_short_initial, drop_fixed_bit, drop_empty, passed;
};
void dp_prog_stats(const struct dp_handle *h, struct dp_prog_stats *st);

int dp_launch(struct dp_handle *h, int (*fn)(unsigned q, void *arg), void *arg, char *err,
	      size_t errlen);

#endif
