/* tern: what the BPF programs under bpf/ and their loaders agree on (counter
 * indices). Included by BPF C (no libc) and by userspace. */
#ifndef TERN_BPF_SHARED_H
#define TERN_BPF_SHARED_H

/* Per-CPU counters of tern_xdp.bpf.c, one array slot each. */
enum tern_xdp_counter {
	TERN_XDP_CNT_REDIRECTED,         /* handed to the queue's AF_XDP socket */
	TERN_XDP_CNT_NO_SOCKET,          /* ours, but no socket on the queue: XDP_PASS */
	TERN_XDP_CNT_DROP_SHORT_INITIAL, /* Initial in a datagram under 1200 bytes */
	TERN_XDP_CNT_DROP_FIXED_BIT,     /* v1/v2 long or short header, fixed bit clear */
	TERN_XDP_CNT_DROP_EMPTY,         /* zero-length UDP payload */
	TERN_XDP_CNT_PASSED,             /* not for the listen address and port */
	TERN_XDP_CNT_MAX,
};

/* Per-CPU counters of tern_reuseport.bpf.c. */
enum tern_reuseport_counter {
	TERN_RP_CNT_SELECTED,  /* short header steered to the worker its CID names */
	TERN_RP_CNT_LONG,      /* long header: left to the kernel's hash */
	TERN_RP_CNT_UNROUTED,  /* too short, or a worker index with no socket */
	TERN_RP_CNT_FAILED,    /* bpf_sk_select_reuseport refused (socket gone) */
	TERN_RP_CNT_MAX,
};

/* Worker sockets one reuseport group may hold (the CID's worker byte). */
#define TERN_RP_MAX_WORKERS 256
/* AF_XDP queues the XDP program serves at most. */
#define TERN_XDP_MAX_QUEUES 256

#endif
