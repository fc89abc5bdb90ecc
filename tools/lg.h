/* tern-bench internals: options, statistics, the datapath wrapper, the
 * client connection pool and the four modes. A program, not the core: it
 * allocates, reads clocks and calls the OS. */
#ifndef TERN_BENCH_LG_H
#define TERN_BENCH_LG_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "glue.h"
#include "tern/conn.h"
#include "tern/datapath.h"

#define LG_MAX_SIZES 16
#define LG_MAX_DEPTH 64

enum lg_mode { LG_HANDSHAKE, LG_RESET_PROBE, LG_BULK, LG_REQUESTS };
enum lg_abandon { LG_ABANDON_NONE, LG_ABANDON_HANDSHAKE, LG_ABANDON_INITIAL };

struct lg_opts {
	enum lg_mode mode;
	const char *mode_name;
	const char *target_text;
	struct tern_addr target;
	const char *datapath;
	const char *local_text; /* --local ADDR:PORT */
	struct tern_addr local;
	const char *ifname;     /* --interface (xdp) */
	const char *dpdk_eal, *dpdk_port;
	int has_peer_mac;
	uint8_t peer_mac[6];
	const char *json;
	const char *label;
	const char *ca;
	const char *sni;
	double duration_s; /* the run's time bound (always set) */
	uint64_t count;    /* 0: no count bound */
	int duration_given;
	double rate;          /* 0: as fast as allowed */
	unsigned concurrency; /* handshake: in flight at once */
	enum lg_abandon abandon;
	unsigned conns, streams, depth;
	uint64_t size;
	int perf;
	uint64_t hs_timeout_ms;
	/* reset-probe */
	unsigned n_sizes;
	uint32_t sizes[LG_MAX_SIZES], weights[LG_MAX_SIZES];
	const char *sizes_text;
	double limit_rate, limit_burst; /* the server's limiter; rate 0: unknown */
	int echo;
	int progress; /* stderr is a terminal and --quiet was not given */
};

extern volatile sig_atomic_t lg_stop;

uint64_t lg_now(void);
/* One line on stderr saying why nothing worked, from the last close seen
 * (reason NONE: nothing came back at all). */
void lg_why_failed(const char *what, const struct tern_close_info *ci);

/* ---- statistics ----------------------------------------------------------- */

struct lg_samples {
	uint64_t *v; /* nanoseconds */
	size_t n, cap;
};

void lg_samples_add(struct lg_samples *s, uint64_t ns);
/* Sorts; then lg_quantile works. */
void lg_samples_sort(struct lg_samples *s);
double lg_quantile_ms(const struct lg_samples *s, double q);
/* Jain's fairness index of n throughputs: (sum x)^2 / (n * sum x^2). */
double lg_jain(const double *x, size_t n);

/* Live progress on a terminal: one rewritten line, at most 4 a second. */
struct lg_progress {
	int on;
	uint64_t t0, last;
	const char *what;
};
void lg_progress_update(struct lg_progress *pg, const struct lg_opts *o, uint64_t now, uint64_t done,
			uint64_t elapsed_base);
void lg_progress_end(struct lg_progress *pg);

/* ---- JSON output ---------------------------------------------------------- */

struct lg_json {
	FILE *f;
	int first[16];
	int depth;
};

/* Opens the result file and writes the common fields. NULL f: no file. */
int lg_json_open(struct lg_json *j, const struct lg_opts *o);
void lg_json_obj(struct lg_json *j, const char *key);
void lg_json_end(struct lg_json *j);
void lg_json_num(struct lg_json *j, const char *key, double v);
void lg_json_int(struct lg_json *j, const char *key, uint64_t v);
void lg_json_str(struct lg_json *j, const char *key, const char *v);
void lg_json_nums(struct lg_json *j, const char *key, const double *v, size_t n);
/* "latency_ms": {p50, p90, p99, p999, mean, max, samples} and
 * "latency_cdf": [[ms, fraction], ...]. Sorts s. */
void lg_json_latency(struct lg_json *j, struct lg_samples *s);
int lg_json_close(struct lg_json *j, double elapsed_s, const char *stopped_by);

/* ---- datapath ------------------------------------------------------------- */

struct lg_dp {
	struct tern_datapath *dp;
	struct tern_addr local; /* the first of n_ports local ports */
	unsigned n_ports;
	int fd; /* for poll; -1 for busy-polled ones (DPDK) */
};

/* Opens queue 0 of the datapath named in o->datapath. The socket one binds
 * --local (or an ephemeral port on the loopback or wildcard address of the
 * target's family) and takes n_ports 1. DPDK and XDP own the ports
 * --local..--local+n_ports-1 and know the target's MAC (from --peer-mac,
 * or resolved by ARP before this returns: before the clock starts). 0, or
 * -1 after one line on stderr. */
int lg_dp_open(struct lg_dp *d, const struct lg_opts *o, unsigned n_ports);
void lg_dp_close(struct lg_dp *d);
/* Waits until one of n datapaths has something or timeout_ns passed. */
void lg_dp_wait(struct lg_dp *d, unsigned n, int64_t timeout_ns);
/* 1 when the datapath name is known to tern-bench; *why says why this
 * build lacks it (NULL when it has it). */
int lg_dp_known(const char *name, const char **why);

/* ---- the client connection pool ------------------------------------------ */

struct lg_pool;

struct lg_req {
	uint64_t sid, t0;
};

struct lg_conn {
	struct glue g; /* first: the engine's user pointer is &g */
	struct lg_pool *pool;
	uint32_t slot;
	uint16_t gen;
	uint8_t in_use, dirty, freeing, established, closed;
	uint8_t want_close, abandon, abandon_after_first;
	size_t heap_idx;
	uint64_t timeout;
	struct lg_conn *dirty_next;
	uint64_t t_start;
	/* bulk and requests */
	uint32_t logical; /* which of the --conns it stands for */
	unsigned inflight;
	struct lg_req *req; /* depth entries, requests mode */
};

struct lg_pool_hooks {
	void (*established)(struct lg_pool *p, struct lg_conn *lc);
	/* The connection closed, was reset or timed out (once). */
	void (*closed)(struct lg_pool *p, struct lg_conn *lc, const struct tern_close_info *ci);
	/* Before each send pass over a connection: issue work. */
	void (*refill)(struct lg_pool *p, struct lg_conn *lc);
	/* A datagram for no live connection (replies to abandoned ones). */
	void (*stray)(struct lg_pool *p, size_t len);
	/* Before a connection is freed (its app is still there). */
	void (*freeing)(struct lg_pool *p, struct lg_conn *lc);
};

struct lg_pool {
	const struct lg_opts *o;
	struct lg_dp dp;
	struct tern_tls_ctx *tls;
	struct tern_conn_config cfg;
	struct tern_conn_callbacks cb;
	struct tern_path path;
	struct lg_conn *slots;
	uint32_t n_slots, *free_slots, n_free;
	struct lg_conn **heap;
	size_t heap_n;
	struct lg_conn *dirty_head, *dirty_tail;
	uint64_t now;
	uint64_t stray, tx_datagrams, rx_datagrams;
	char authority[64];
	const struct lg_pool_hooks *hooks;
	void *user;
	enum tern_app_kind app_kind;
	int with_app;
	const struct tern_app_callbacks *app_cb;
};

/* Opens the datapath and the TLS context and allocates n_slots. with_app:
 * each connection gets an HTTP/3 or perf client (glue.h). 0 or -1 after a
 * line on stderr. */
int lg_pool_init(struct lg_pool *p, const struct lg_opts *o, uint32_t n_slots, int with_app,
		 const struct tern_app_callbacks *app_cb, const struct lg_pool_hooks *hooks, void *user);
void lg_pool_free(struct lg_pool *p);
/* Starts a connection; NULL when every slot is taken or creation failed. */
struct lg_conn *lg_pool_connect(struct lg_pool *p);
void lg_pool_mark(struct lg_pool *p, struct lg_conn *lc);
uint32_t lg_pool_used(const struct lg_pool *p);
/* One turn: send what is pending, wait for datagrams until `deadline` or
 * the next timer, receive, run the timers, send again. */
void lg_pool_step(struct lg_pool *p, uint64_t deadline);
/* Closes every connection (H3_NO_ERROR, or perf's 0) and sends the
 * closes; handshakes in progress are dropped. */
void lg_pool_close_all(struct lg_pool *p);

/* ---- modes ----------------------------------------------------------------- */

int lg_run_handshake(const struct lg_opts *o);
int lg_run_reset_probe(const struct lg_opts *o);
int lg_run_bulk(const struct lg_opts *o);
int lg_run_requests(const struct lg_opts *o);

#endif
