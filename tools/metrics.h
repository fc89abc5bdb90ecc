/* ternd's metrics: the counters behind /metrics (Prometheus text format
 * 0.0.4) and the tiny HTTP/1.1 server that serves them. One request per
 * connection, bounded request size and client count, answer then close; a
 * non-blocking listen socket polled from the main loop, so the datapath
 * never waits on a metrics client. */
#ifndef TERN_TOOLS_METRICS_H
#define TERN_TOOLS_METRICS_H

#include <poll.h>

#include "tern/endpoint.h"
#include "tern/sock.h"
#include "tern/worker.h"

#include "datapaths.h"

/* Close codes counted one by one; later distinct codes share "other"
 * (per type), so a peer sending random codes cannot grow the table. */
#define METRICS_MAX_CODES 64

struct close_counts {
	struct {
		uint8_t app;
		uint64_t code;
		uint64_t n;
	} e[METRICS_MAX_CODES];
	size_t n;
	uint64_t other[2]; /* [app] */
};

void close_counts_add(struct close_counts *t, int app, uint64_t code);
/* Adds every count of src to dst (codes dst has no room for go to "other"). */
void close_counts_merge(struct close_counts *dst, const struct close_counts *src);

/* One worker's counters, as it last published them. */
struct metrics_worker {
	struct tern_endpoint_stats ep;
	struct tern_dp_stats dp;     /* its datapath queue */
	struct tern_sock_stats sock; /* zeros off the socket datapath */
	struct tern_worker_stats w;
	struct dp_queue_stats q;     /* datapath-specific (DPDK drop reasons...) */
};

struct metrics_snapshot {
	/* the whole process: the sums over workers (metrics_sum) */
	struct tern_endpoint_stats ep;
	struct tern_dp_stats dp;
	struct tern_sock_stats sock;
	const struct close_counts *sent, *received;
	/* "socket" (or NULL) renders the tern_socket_* families; any other
	 * datapath renders tern_datapath_*{datapath="NAME"} */
	const char *datapath;
	/* per-worker families, labelled worker="0".. (none when 0) */
	unsigned n_workers;
	const struct metrics_worker *workers;
	/* names of the reasons in workers[].q.drop (NULL: none) */
	const char *(*drop_name)(void *ctx, unsigned reason);
	void *drop_name_ctx;
	struct dp_prog_stats prog; /* the XDP program's counters */
};

/* Sets s->ep, s->dp and s->sock to the sums of the n workers' counters
 * (gauges such as connections_active add up too). */
void metrics_sum(struct metrics_snapshot *s, const struct metrics_worker *w, unsigned n);

/* Writes the exposition; returns its length, or 0 when cap is too small. */
size_t metrics_render(const struct metrics_snapshot *s, char *buf, size_t cap);

#define METRICS_MAX_CLIENTS 8
#define METRICS_MAX_REQUEST 4096
/* 64 workers' labelled families and both full close-code tables fit
 * (about 45 KB; tests/test_ternd_metrics.c checks) */
#define METRICS_MAX_RESPONSE 65536
#define METRICS_CLIENT_TIMEOUT_NS (5 * UINT64_C(1000000000))

struct metrics_client {
	int fd;
	uint64_t deadline;
	size_t req_len;
	char req[METRICS_MAX_REQUEST];
	size_t resp_len, resp_off; /* resp_len 0: still reading */
	char resp[METRICS_MAX_RESPONSE];
};

struct metrics_server {
	int lfd;
	struct metrics_client c[METRICS_MAX_CLIENTS];
	/* fills a snapshot when a request for /metrics arrives */
	void (*snapshot)(void *arg, struct metrics_snapshot *s);
	void *arg;
};

/* Binds and listens on "ADDR:PORT" (port 0: any). 0, or -1 with one line
 * in err. */
int metrics_open(struct metrics_server *m, const char *addr, char *err, size_t errlen);
/* The bound address, "ADDR:PORT". */
void metrics_local(const struct metrics_server *m, char *buf, size_t len);
/* Appends the fds to poll (at most 1 + METRICS_MAX_CLIENTS); returns how many. */
int metrics_pollfds(const struct metrics_server *m, struct pollfd *pfd);
/* Accepts, reads, answers and closes what is ready, and drops clients past
 * their deadline. Never blocks. */
void metrics_service(struct metrics_server *m, uint64_t now);
/* The earliest client deadline, or UINT64_MAX. */
uint64_t metrics_next_deadline(const struct metrics_server *m);
void metrics_close(struct metrics_server *m);

#endif
