/* tern: one worker's run-to-completion step (DESIGN.md §1), the same for
 * every datapath: a burst in, the endpoint shard, everything the shard's
 * connections want to send, one flush, the due timers. The caller owns the
 * loop, the clock and the waiting (busy poll for DPDK, poll(2) for
 * sockets), so this stays free of OS calls. */
#ifndef TERN_WORKER_H
#define TERN_WORKER_H

#include "tern/datapath.h"
#include "tern/endpoint.h"

struct tern_worker_stats {
	uint64_t iterations, rx, tx, replies, tx_full, handed_off;
};

struct tern_worker {
	struct tern_datapath *dp;
	unsigned queue;
	struct tern_endpoint *ep;
	unsigned tx_budget; /* datagrams per step at most, so rx is never starved */
	/* Multi-worker: which worker owns a received packet, from its DCID
	 * (-1: this one, or nobody in particular). NULL: single worker. */
	int (*owner)(void *ctx, const uint8_t *dgram, size_t len);
	void *owner_ctx;
	struct tern_worker_stats st;
};

void tern_worker_init(struct tern_worker *w, struct tern_datapath *dp, unsigned queue,
		      struct tern_endpoint *ep);

/* One step at time now. Returns how many datagrams moved (0: idle). */
int tern_worker_step(struct tern_worker *w, uint64_t now);

/* When the next step has timer work to do (UINT64_MAX: none). */
uint64_t tern_worker_next_timeout(const struct tern_worker *w);

#endif
