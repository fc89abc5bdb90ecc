/* ternd: the tern QUIC endpoint daemon (HTTP/3 server).
 *
 *   ternd --datapath socket|xdp|dpdk|auto --listen ADDR:PORT --cert FILE --key FILE
 *         [--docroot DIR] [--keylog-file FILE] [--qlog-dir DIR] [--idle-timeout DUR] [--keepalive]
 *         [--retry off|always|auto] [--retry-threshold N] [--server-id HEX]
 *         [--reset-key-file FILE] [--reset-rate N] [--reset-burst N]
 *         [--metrics ADDR:PORT] [--workers N] [--interface IFNAME]
 *         [--dpdk-eal "EAL ARGS"] [--dpdk-port NAME]
 *
 * A thin program (DESIGN.md §2): configuration, files, signals, metrics and
 * N workers. Worker q owns datapath queue q and an endpoint shard
 * (include/tern/endpoint.h) whose server CIDs name q (include/tern/lbcid.h),
 * and loops on tern_worker_step (include/tern/worker.h); a datagram whose
 * CID names another worker is handed off to it. On the socket and XDP
 * datapaths the workers are threads that sleep in poll(2); on DPDK they are
 * EAL lcores that busy-poll. A control thread takes the signals, serves
 * --metrics and coordinates shutdown; it never touches a worker's state:
 * workers publish counter snapshots (every 100 ms while busy, and when
 * /metrics asks) under a per-worker mutex, off the per-packet path. Any bad or missing flag, unreadable file or
 * certificate/key mismatch ends the program with one line on stderr and
 * exit status 2.
 *
 * --idle-timeout DUR (ms, s, m, h; plain number: seconds; 0: none) sets
 * max_idle_timeout; --keepalive makes connections PING at half of it;
 * --reset-key-file FILE holds the 32-byte static key of stateless resets
 * and tokens (created, mode 0600, when missing; without it a key per run),
 * so a restarted ternd still resets its old clients (RFC 9000 §10.3);
 * --reset-rate/--reset-burst and --retry-threshold are for the whole
 * process, split evenly over the workers' shards; --metrics ADDR:PORT
 * serves Prometheus text at /metrics (process totals, and per-worker
 * families labelled worker="N"). --datapath auto takes DPDK (when
 * --dpdk-eal is given), then XDP (on --interface, or the interface holding
 * the listen address), then sockets, and says which and why.
 *
 * SIGTERM/SIGINT: every worker gives each of its connections an HTTP/3
 * shutdown (GOAWAY, then H3_NO_ERROR once its requests are done); after a
 * second's grace the rest are closed with H3_NO_ERROR; each worker runs
 * until its connections are freed (closing lasts three PTOs, RFC 9000
 * §10.2) or 3 s passed, and the program exits 0. A second signal exits at
 * once with 128 + the signal. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "datapaths.h"
#include "glue.h"
#include "metrics.h"
#include "tern/app.h"
#include "tern/cc.h"
#include "tern/endpoint.h"
#include "tern/lbcid.h"
#include "tern/reset.h"
#include "tern/tls.h"
#include "tern/token.h"
#include "tern/worker.h"
#include "util.h"

#define MAX_WORKERS 64 /* a worker's hand-off targets fit one uint64_t mask */
#define MAX_CONNS 4096 /* per worker */
#define MAX_PEM (1 << 20)
#define MAX_BODY (256u << 20)
#define MAX_WAIT_NS 1000000000 /* wake at least once a second */
#define RESET_KEY_LEN 32
#define SHUTDOWN_GRACE_NS 1000000000ull
#define SHUTDOWN_MAX_NS 3000000000ull
#define MAX_BURSTS 64 /* steps between two looks at shutdown and metrics requests */
#define PUBLISH_NS 100000000ull     /* a busy worker's counters are at most this old */
#define SNAPSHOT_WAIT_NS 250000000ull /* how long /metrics waits for fresh counters */
#define ACK_WAIT_NS 1000000000ull   /* how long shutdown waits for workers to start it */

static volatile sig_atomic_t stop_flag; /* the first signal's number */

struct opts {
	const char *datapath, *listen, *cert, *key, *docroot, *keylog, *reset_key_file, *metrics, *qlog_dir;
	const char *retry, *retry_threshold, *server_id, *ifname, *dpdk_eal, *dpdk_port;
	const char *max_conns_s, *max_hs_s, *cc;
	uint64_t max_conns, max_hs;
	int cc_algo;
	int retry_mode;
	uint32_t retry_thresh;
	uint64_t idle_ms;
	int idle_set, keepalive;
	uint64_t reset_rate;
	uint32_t reset_burst;
	unsigned workers;
};

struct ternd;

/* What a worker shows the control thread: a copy of its counters, taken by
 * the worker and read by the control thread under mu. */
struct published {
	pthread_mutex_t mu;
	struct metrics_worker m;
	struct close_counts sent, received;
};

/* One worker: everything here but the atomics belongs to its thread. */
struct worker {
	struct ternd *d;
	unsigned id;
	struct tern_endpoint *ep;
	struct tern_worker w;
	struct tern_reset_key reset_key;
	struct tern_token_key token_key;
	struct glue *conns;
	uint64_t now; /* this worker's clock (glue closes read it) */
	int efd;      /* eventfd: hand-offs, shutdown and /metrics wake the worker */
	uint64_t wake; /* workers this one handed datagrams to since it last woke them */
	int shutting, closed_all;
	uint64_t grace_end, shutdown_end;
	struct close_counts close_sent, close_received;
	uint64_t next_publish, snap_seen;
	pthread_t thread;
	/* shared with the control thread */
	_Atomic uint64_t snap_done; /* the last /metrics request it published for */
	_Atomic size_t shutdown_ack; /* its connections + 1, once it began shutting down */
	_Atomic int exited;
	struct published pub;
} __attribute__((aligned(64)));

struct ternd {
	struct opts o;
	struct dp_handle dp;
	struct tern_tls_ctx *tls;
	uint8_t static_key[RESET_KEY_LEN];
	struct tern_lbcid_config lbcid;
	size_t cid_len;
	FILE *keylog;
	struct worker *w;
	unsigned n;
	/* control thread -> workers */
	_Atomic int shutdown; /* the signal, once shutdown began */
	_Atomic uint64_t grace_end, shutdown_end;
	_Atomic uint64_t snap_req;
	/* workers -> control thread */
	_Atomic unsigned running;
	int ctl_efd;
	/* the control thread's */
	int shutting;
	struct metrics_server metrics;
	int metrics_on;
	struct metrics_worker *agg;
	struct close_counts sent_sum, received_sum;
};

/* ---- configuration ------------------------------------------------------------ */

static void usage(void)
{
	printf("usage: ternd --datapath socket|xdp|dpdk|auto --listen ADDR:PORT --cert FILE --key FILE\n"
	       "             [--docroot DIR] [--keylog-file FILE] [--qlog-dir DIR] [--idle-timeout DUR] [--keepalive]\n"
	       "             [--retry off|always|auto] [--retry-threshold N] [--server-id HEX]\n"
	       "             [--reset-key-file FILE] [--reset-rate N] [--reset-burst N]\n"
	       "             [--metrics ADDR:PORT] [--workers 1..%d] [--interface IFNAME]\n"
	       "             [--dpdk-eal \"EAL ARGS\"] [--dpdk-port NAME]\n"
	       "             [--max-connections N] [--max-handshakes N] [--cc cubic|newreno]\n",
	       MAX_WORKERS);
	exit(0);
}

static uint64_t parse_count(const char *flag, const char *v, uint64_t max)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || n > max)
		die_usage("bad %s '%s': expected a number from 0 to %llu", flag, v,
			  (unsigned long long)max);
	return n;
}

/* Flags that take a value: the slot each one fills. */
static const char **value_slot(struct opts *o, const char *a, const char **idle, const char **workers,
			       const char **rate, const char **burst)
{
	static const char *const names[] = {"--datapath", "--listen", "--cert", "--key", "--docroot",
					    "--keylog-file", "--reset-key-file", "--metrics",
					    "--idle-timeout", "--workers", "--reset-rate", "--reset-burst",
					    "--qlog-dir", "--retry", "--retry-threshold", "--server-id",
					    "--interface", "--dpdk-eal", "--dpdk-port", "--max-connections",
					    "--max-handshakes", "--cc"};
	const char **slots[] = {&o->datapath, &o->listen, &o->cert, &o->key, &o->docroot, &o->keylog,
				&o->reset_key_file, &o->metrics, idle, workers, rate, burst, &o->qlog_dir,
				&o->retry, &o->retry_threshold, &o->server_id, &o->ifname,
				&o->dpdk_eal, &o->dpdk_port, &o->max_conns_s, &o->max_hs_s, &o->cc};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(a, names[i]) == 0)
			return slots[i];
	return NULL;
}

static void check_datapath(const struct opts *o)
{
	static const char *const kinds[] = {"socket", "xdp", "dpdk", "auto"};
	size_t k = 0;
	if (!o->datapath)
		die_usage("missing --datapath (socket, xdp, dpdk or auto)");
	while (k < 4 && strcmp(o->datapath, kinds[k]) != 0)
		k++;
	if (k == 4)
		die_usage("bad --datapath '%s': expected socket, xdp, dpdk or auto", o->datapath);
	const char *why = dp_unavailable(o->datapath);
	if (why)
		die_usage("%s", why);
	if (o->ifname && k != 1 && k != 3)
		die_usage("--interface is for --datapath xdp or auto, not %s", o->datapath);
	if ((o->dpdk_eal || o->dpdk_port) && k != 2 && k != 3)
		die_usage("--%s is for --datapath dpdk or auto, not %s", o->dpdk_eal ? "dpdk-eal" : "dpdk-port",
			  o->datapath);
}

static unsigned parse_workers(const char *v)
{
	char *end;
	if (!v)
		return 1;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || n < 1 || n > MAX_WORKERS)
		die_usage("bad --workers '%s': expected a number from 1 to %d", v, MAX_WORKERS);
	return (unsigned)n;
}

static void check_args(struct opts *o, const char *idle, const char *workers, const char *rate,
		       const char *burst)
{
	check_datapath(o);
	o->workers = parse_workers(workers);
	if (!o->listen)
		die_usage("missing --listen ADDR:PORT");
	if (!o->cert)
		die_usage("missing --cert FILE");
	if (!o->key)
		die_usage("missing --key FILE");
	if (idle && parse_duration_ms(idle, &o->idle_ms) < 0)
		die_usage("bad --idle-timeout '%s': expected a duration such as 30s or 500ms", idle);
	o->idle_set = idle != NULL;
	o->retry_mode = TERN_RETRY_OFF;
	if (o->retry && strcmp(o->retry, "always") == 0)
		o->retry_mode = TERN_RETRY_ALWAYS;
	else if (o->retry && strcmp(o->retry, "auto") == 0)
		o->retry_mode = TERN_RETRY_AUTO;
	else if (o->retry && strcmp(o->retry, "off") != 0)
		die_usage("bad --retry '%s': expected off, always or auto", o->retry);
	o->retry_thresh = o->retry_threshold
				  ? (uint32_t)parse_count("--retry-threshold", o->retry_threshold, UINT32_MAX)
				  : 256;
	struct tern_lbcid_config lb;
	tern_lbcid_config_init(&lb);
	if (o->server_id && tern_lbcid_set_server_id_hex(&lb, o->server_id) < 0)
		die_usage("bad --server-id '%s': expected 1 to 15 bytes in hex", o->server_id);
	o->max_conns = o->max_conns_s ? parse_count("--max-connections", o->max_conns_s, 1u << 24) : 0;
	if (o->max_conns_s && o->max_conns == 0)
		die_usage("bad --max-connections '%s': expected a number from 1 to %u", o->max_conns_s, 1u << 24);
	o->max_hs = o->max_hs_s ? parse_count("--max-handshakes", o->max_hs_s, UINT32_MAX) : 0;
	o->cc_algo = TERN_CC_CUBIC;
	if (o->cc && strcmp(o->cc, "newreno") == 0)
		o->cc_algo = TERN_CC_NEWRENO;
	else if (o->cc && strcmp(o->cc, "cubic") != 0)
		die_usage("bad --cc '%s': expected cubic or newreno", o->cc);
	o->reset_rate = rate ? parse_count("--reset-rate", rate, 1000000000) : 10000;
	o->reset_burst = burst ? (uint32_t)parse_count("--reset-burst", burst, UINT32_MAX) : 100;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	const char *workers = NULL, *idle = NULL, *rate = NULL, *burst = NULL;
	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **slot;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			usage();
		else if (strcmp(a, "--keepalive") == 0)
			o->keepalive = 1;
		else if ((slot = value_slot(o, a, &idle, &workers, &rate, &burst)))
			set_once(slot, a, flag_value(argc, argv, &i));
		else
			die_usage("unknown argument '%s' (try --help)", a);
	}
	check_args(o, idle, workers, rate, burst);
}

static void keylog_line(void *arg, const char *line)
{
	FILE *f = arg;
	fprintf(f, "%s\n", line);
	fflush(f);
}

/* A directory we write into: one clear line if it is not one. */
static void setup_dir(const char *flag, const char *dir)
{
	struct stat st;
	if (stat(dir, &st) < 0)
		die_usage("cannot use %s %s: %s", flag, dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		die_usage("cannot use %s %s: not a directory", flag, dir);
	if (access(dir, W_OK) < 0)
		die_usage("cannot use %s %s: %s", flag, dir, strerror(errno));
}

static void setup_docroot(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) < 0)
		die_usage("cannot use --docroot %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		die_usage("cannot use --docroot %s: not a directory", dir);
	if (access(dir, R_OK | X_OK) < 0)
		die_usage("cannot use --docroot %s: %s", dir, strerror(errno));
}

static void setup_files(struct ternd *d)
{
	size_t cert_len, key_len;
	uint8_t *cert = read_small_file("--cert", d->o.cert, MAX_PEM, &cert_len);
	uint8_t *key = read_small_file("--key", d->o.key, MAX_PEM, &key_len);
	/* HTTP/3 first; perf (draft-banks-quic-performance) for raw-transport
	 * benchmarks */
	const char *alpn[] = {tern_app_alpn(TERN_APP_H3_SERVER), tern_app_alpn(TERN_APP_PERF_SERVER)};
	char err[256] = "unknown error";
	if (tern_tls_ctx_new_server(&d->tls, cert, cert_len, key, key_len, alpn, 2, err,
				    sizeof(err)) < 0)
		die_usage("--cert %s / --key %s: %s", d->o.cert, d->o.key, err);
	memset(key, 0, key_len);
	free(key);
	free(cert);
	if (d->o.docroot)
		setup_docroot(d->o.docroot);
	if (d->o.qlog_dir)
		setup_dir("--qlog-dir", d->o.qlog_dir);
	if (d->o.keylog) {
		d->keylog = fopen(d->o.keylog, "a");
		if (!d->keylog)
			die_usage("cannot open --keylog-file %s: %s", d->o.keylog, strerror(errno));
		tern_tls_ctx_set_keylog(d->tls, keylog_line, d->keylog);
	}
}

/* ---- the stateless reset key (RFC 9000 §10.3.2, DESIGN.md §4) -------------------- */

/* Creates FILE with 32 fresh random bytes, mode 0600, durably: a key that
 * vanished in a crash would make the next run's resets useless. 0, or -1
 * with errno EEXIST when someone else created it first. */
static int create_key_file(const char *path, uint8_t key[RESET_KEY_LEN])
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST)
		return -1;
	if (fd < 0)
		die_usage("cannot create --reset-key-file %s: %s", path, strerror(errno));
	os_random(NULL, key, RESET_KEY_LEN);
	size_t off = 0;
	while (off < RESET_KEY_LEN) {
		ssize_t w = write(fd, key + off, RESET_KEY_LEN - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = errno;
			close(fd);
			unlink(path);
			die_usage("cannot write --reset-key-file %s: %s", path, strerror(e));
		}
		off += (size_t)w;
	}
	if (fsync(fd) < 0)
		die_usage("cannot write --reset-key-file %s: %s", path, strerror(errno));
	close(fd);
	/* the new name must survive a crash too */
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = 0;
	int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

static void load_reset_key(struct ternd *d)
{
	uint8_t key[RESET_KEY_LEN];
	const char *path = d->o.reset_key_file;
	if (!path) {
		os_random(NULL, key, sizeof(key)); /* this run only */
	} else if (access(path, F_OK) < 0 && errno == ENOENT && create_key_file(path, key) == 0) {
		fprintf(stderr, "ternd: created --reset-key-file %s\n", path);
	} else {
		size_t len;
		struct stat st;
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size != RESET_KEY_LEN)
			die_usage("bad --reset-key-file %s: %lld bytes, expected %d", path,
				  (long long)st.st_size, RESET_KEY_LEN);
		uint8_t *buf = read_small_file("--reset-key-file", path, RESET_KEY_LEN, &len);
		if (len != RESET_KEY_LEN)
			die_usage("bad --reset-key-file %s: %zu bytes, expected %d", path, len, RESET_KEY_LEN);
		memcpy(key, buf, sizeof(key));
		memset(buf, 0, len);
		free(buf);
	}
	/* each worker derives its own reset and token keys from it
	 * (setup_worker), then it is wiped */
	memcpy(d->static_key, key, sizeof(key));
	memset(key, 0, sizeof(key));
}

/* ---- docroot ----------------------------------------------------------------- */

static int docroot_lookup(void *user, const char *path, const uint8_t **body, size_t *len)
{
	struct ternd *d = user;
	char full[4096];
	struct stat st;
	if (!d->o.docroot)
		return -1;
	/* The app never passes ".." or NUL (app.h), so the path stays under
	 * the docroot. */
	int n = snprintf(full, sizeof(full), "%s%s%s", d->o.docroot, path[0] == '/' ? "" : "/", path);
	if (n < 0 || (size_t)n >= sizeof(full) - 12)
		return -1;
	if (stat(full, &st) == 0 && S_ISDIR(st.st_mode))
		strcat(full, "/index.html");
	int fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* mapped, not read: a large file costs page-cache references, not a
	 * private copy per request */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_BODY) {
		close(fd);
		return -1;
	}
	void *map = st.st_size ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
	close(fd);
	if (map == MAP_FAILED)
		return -1;
	if (map)
		madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
	*body = map ? map : (const uint8_t *)"";
	*len = (size_t)st.st_size;
	return 0;
}

static void docroot_release(void *user, const uint8_t *body, size_t len)
{
	(void)user;
	if (len)
		munmap((void *)body, len);
}

static const struct tern_app_callbacks app_cbs = {
	.lookup = docroot_lookup,
	.release = docroot_release,
};

/* ---- the endpoint's hooks (each runs on the worker that owns the shard) ---------- */

/* The application follows the ALPN TLS agreed on: perf or HTTP/3. */
static int make_app(struct glue *g)
{
	const uint8_t *alpn;
	size_t len;
	enum tern_app_kind kind = TERN_APP_H3_SERVER;
	if (tern_conn_alpn(g->conn, &alpn, &len) == 0 && len == 4 && memcmp(alpn, "perf", 4) == 0)
		kind = TERN_APP_PERF_SERVER;
	int rv = glue_app_new(g, kind, &app_cbs, g->user);
	if (rv == 0 && ((struct worker *)g->user_worker)->shutting)
		tern_app_shutdown(g->app); /* not taking new work: closes it at once */
	return rv;
}

static void on_new_conn(struct tern_endpoint *ep, struct tern_conn *c, void *user)
{
	struct worker *w = user;
	(void)ep;
	struct glue *g = calloc(1, sizeof(*g));
	if (!g) {
		tern_conn_close(c, 0, TERN_QUIC_INTERNAL_ERROR, "out of memory", w->now);
		return;
	}
	g->conn = c;
	g->now = &w->now;
	g->user = w->d;
	g->user_worker = w;
	g->make_app = make_app;
	if (w->d->o.qlog_dir)
		g->qlog = glue_qlog_open(w->d->o.qlog_dir, c);
	tern_endpoint_conn_set_app(c, g);
	glue_list_add(&w->conns, g);
	if (w->shutting) /* still in the handshake: nothing to finish */
		tern_conn_close(c, 1, TERN_H3_NO_ERROR, "shutting down", w->now);
}

static void on_conn_free(struct tern_endpoint *ep, struct tern_conn *c, void *app)
{
	struct worker *w = tern_endpoint_user(ep);
	struct glue *g = app;
	(void)c;
	if (!g)
		return;
	glue_list_del(&w->conns, g);
	if (g->app)
		tern_app_free(g->app);
	if (g->qlog)
		fclose(g->qlog);
	free(g);
}

/* RFC 9000 §10.2: LOCAL and ERROR closes are the CONNECTION_CLOSE we sent,
 * PEER the one we received; idle timeouts, resets and handshake timeouts
 * send nothing. */
static void on_close(struct tern_endpoint *ep, struct tern_conn *c, void *app,
		     const struct tern_close_info *ci)
{
	struct worker *w = tern_endpoint_user(ep);
	(void)c;
	(void)app;
	if (ci->reason == TERN_CLOSE_LOCAL || ci->reason == TERN_CLOSE_ERROR)
		close_counts_add(&w->close_sent, ci->app, ci->code);
	else if (ci->reason == TERN_CLOSE_PEER)
		close_counts_add(&w->close_received, ci->app, ci->code);
}

static const struct tern_endpoint_callbacks ep_cbs = {
	.on_new_conn = on_new_conn,
	.on_conn_free = on_conn_free,
	.on_close = on_close,
};

/* Server CIDs (and Retry SCIDs) name the worker that made them, so every
 * later packet of the connection finds its way back (DESIGN.md §4). */
static void gen_cid(void *ctx, struct tern_cid *cid)
{
	struct worker *w = ctx;
	static const struct tern_rand rnd = {.fn = os_random};
	tern_lbcid_generate(&w->d->lbcid, w->id, &rnd, cid);
}

/* The worker a datagram belongs to, from the DCID of a short header: the
 * kernel's hash (or RSS) picked where it landed, which after a NAT rebind
 * or migration, or without the steering program, may be another worker.
 * Long headers stay: the client chose an Initial's DCID, and the rest of a
 * handshake comes from the same 4-tuple, so it lands where it began. */
static int cid_owner(void *ctx, const uint8_t *dgram, size_t len)
{
	struct worker *w = ctx;
	size_t cl = w->d->cid_len;
	if (len < 1 + cl || (dgram[0] & 0x80))
		return -1;
	int o = tern_lbcid_worker(&w->d->lbcid, dgram + 1, cl);
	/* its ring gets a packet: wake it after the step (busy pollers need not) */
	if (o >= 0 && (unsigned)o != w->id && (unsigned)o < w->d->n && !w->d->dp.busy_poll)
		w->wake |= UINT64_C(1) << o;
	return o;
}

/* Per-process limits shared evenly by the shards, rounding up. */
static uint64_t share(uint64_t total, unsigned n)
{
	return total / n + (total % n != 0);
}

static void endpoint_config(struct ternd *d, struct worker *w, struct tern_endpoint_config *cfg)
{
	tern_endpoint_config_init(cfg, 1);
	struct tern_conn_config *c = &cfg->conn;
	c->tls = d->tls;
	c->rand = (struct tern_rand){.fn = os_random};
	c->cb = d->o.qlog_dir ? &glue_conn_callbacks_qlog : &glue_conn_callbacks;
	/* start at 1200 and let DPLPMTUD find what the path carries, up to
	 * a 1500-byte MTU less IPv6 and UDP headers */
	c->max_datagram = 1452;
	/* mark ECT(0); RFC 9000 §13.4.2 validation stops it on paths that
	 * bleach or lose marks */
	c->ecn = 1;
	/* Our receive buffers hold TERN_DP_MAX_PAYLOAD bytes (RFC 9000
	 * §18.2: the peer must not send larger datagrams). */
	c->tparams.max_udp_payload_size = TERN_DP_MAX_PAYLOAD;
	c->tparams.present |= TERN_TP_HAS_MAX_UDP_PAYLOAD_SIZE;
	if (d->o.idle_set) {
		/* RFC 9000 §10.1: 0 (or absent) means no idle timeout */
		c->tparams.max_idle_timeout = d->o.idle_ms;
		if (d->o.idle_ms)
			c->tparams.present |= TERN_TP_HAS_MAX_IDLE_TIMEOUT;
		else
			c->tparams.present &= ~TERN_TP_HAS_MAX_IDLE_TIMEOUT;
	}
	/* a PING at half the idle timeout keeps quiet clients (RFC 9000
	 * §10.1.2) */
	c->keepalive = d->o.keepalive;
	/* server CIDs a QUIC-LB load balancer routes: --server-id, this worker */
	c->scid_len = (uint8_t)d->cid_len;
	c->gen_cid = gen_cid;
	c->gen_cid_ctx = w;
	cfg->gen_cid = gen_cid;
	cfg->gen_cid_ctx = w;
	cfg->cb = &ep_cbs;
	cfg->user = w;
	cfg->max_conns = d->o.max_conns ? share(d->o.max_conns, d->n) : MAX_CONNS;
	cfg->max_handshakes = (uint32_t)(d->o.max_hs ? share(d->o.max_hs, d->n) : 0);
	c->cc_algo = d->o.cc_algo;
	cfg->reset_key = &w->reset_key;
	cfg->token_key = &w->token_key;
	cfg->retry = d->o.retry_mode;
	cfg->retry_threshold = (uint32_t)share(d->o.retry_thresh, d->n);
	cfg->reset_rate = share(d->o.reset_rate, d->n);
	cfg->reset_burst = (uint32_t)share(d->o.reset_burst, d->n);
	os_random(NULL, cfg->table_seed, sizeof(cfg->table_seed));
}

static void setup_lbcid(struct ternd *d)
{
	tern_lbcid_config_init(&d->lbcid);
	if (d->o.server_id)
		tern_lbcid_set_server_id_hex(&d->lbcid, d->o.server_id);
	if (tern_lbcid_config_check(&d->lbcid) < 0)
		die_usage("bad --server-id '%s': too long for a 20-byte CID", d->o.server_id);
	d->cid_len = tern_lbcid_len(&d->lbcid);
}

/* Worker q's shard. Its own copies of the reset and token keys (all
 * derived from the one static key, so any worker answers for any CID and
 * validates any token, DESIGN.md §4): wolfCrypt objects are not shared
 * between threads. */
static void setup_worker(struct ternd *d, unsigned q)
{
	struct worker *w = &d->w[q];
	struct tern_endpoint_config cfg;
	w->d = d;
	w->id = q;
	if (tern_reset_key_init(&w->reset_key, d->static_key, sizeof(d->static_key)) < 0 ||
	    tern_token_key_init(&w->token_key, d->static_key, sizeof(d->static_key)) < 0)
		die_usage("cannot prepare the stateless reset and token keys");
	endpoint_config(d, w, &cfg);
	if (tern_endpoint_new(&w->ep, &cfg, mono_ns()) < 0)
		die_usage("cannot allocate the endpoint");
	tern_worker_init(&w->w, d->dp.dp, q, w->ep);
	if (d->n > 1) {
		w->w.owner = cid_owner;
		w->w.owner_ctx = w;
	}
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd < 0)
		die_usage("cannot create an eventfd: %s", strerror(errno));
	pthread_mutex_init(&w->pub.mu, NULL);
}

static void setup_workers(struct ternd *d)
{
	d->n = d->o.workers;
	if (posix_memalign((void **)&d->w, 64, d->n * sizeof(*d->w)) != 0 ||
	    !(d->agg = calloc(d->n, sizeof(*d->agg))))
		die_usage("cannot allocate %u workers", d->n);
	memset(d->w, 0, d->n * sizeof(*d->w));
	for (unsigned q = 0; q < d->n; q++)
		setup_worker(d, q);
	memset(d->static_key, 0, sizeof(d->static_key));
	atomic_store(&d->running, d->n);
	d->ctl_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->ctl_efd < 0)
		die_usage("cannot create an eventfd: %s", strerror(errno));
}

/* ---- a worker ------------------------------------------------------------------------ */

static void wake(int efd)
{
	uint64_t one = 1;
	ssize_t r = write(efd, &one, sizeof(one));
	(void)r; /* a full counter already wakes the reader */
}

/* The workers this one handed datagrams to may be asleep in poll. */
static void wake_targets(struct worker *w)
{
	while (w->wake) {
		int o = __builtin_ctzll(w->wake);
		w->wake &= w->wake - 1;
		wake(w->d->w[o].efd);
	}
}

static void publish(struct worker *w, uint64_t req)
{
	struct ternd *d = w->d;
	struct metrics_worker m;
	tern_endpoint_stats(w->ep, &m.ep);
	d->dp.dp->ops->stats(d->dp.dp, w->id, &m.dp);
	dp_sock_stats(&d->dp, w->id, &m.sock);
	dp_queue_stats(&d->dp, w->id, &m.q);
	m.w = w->w.st;
	pthread_mutex_lock(&w->pub.mu);
	w->pub.m = m;
	w->pub.sent = w->close_sent;
	w->pub.received = w->close_received;
	pthread_mutex_unlock(&w->pub.mu);
	atomic_store_explicit(&w->snap_done, req, memory_order_release);
	w->snap_seen = req;
	w->next_publish = w->now + PUBLISH_NS;
}

/* RFC 9114 §5.2: GOAWAY, then H3_NO_ERROR once the requests in flight are
 * done (at once for idle connections). */
static void worker_begin_shutdown(struct worker *w)
{
	struct ternd *d = w->d;
	size_t n = tern_endpoint_conn_count(w->ep);
	w->shutting = 1;
	w->grace_end = atomic_load_explicit(&d->grace_end, memory_order_relaxed);
	w->shutdown_end = atomic_load_explicit(&d->shutdown_end, memory_order_relaxed);
	for (struct glue *g = w->conns, *next; g; g = next) {
		next = g->next;
		if (g->app)
			tern_app_shutdown(g->app);
		else /* still in the handshake: nothing to finish */
			tern_conn_close(g->conn, 1, TERN_H3_NO_ERROR, "shutting down", w->now);
		tern_endpoint_conn_wake(g->conn); /* GOAWAY or the close to send */
	}
	atomic_store_explicit(&w->shutdown_ack, n + 1, memory_order_release);
}

/* What the control thread asked for. 1 while the worker should keep running. */
static int worker_control(struct worker *w)
{
	struct ternd *d = w->d;
	uint64_t req = atomic_load_explicit(&d->snap_req, memory_order_acquire);
	if (req != w->snap_seen || w->now >= w->next_publish)
		publish(w, req);
	if (!w->shutting && atomic_load_explicit(&d->shutdown, memory_order_acquire))
		worker_begin_shutdown(w);
	if (!w->shutting)
		return 1;
	if (!w->closed_all && w->now >= w->grace_end) {
		tern_endpoint_close_all(w->ep, TERN_H3_NO_ERROR, "shutting down", w->now);
		w->closed_all = 1;
	}
	return tern_endpoint_conn_count(w->ep) > 0 && w->now < w->shutdown_end;
}

static int64_t worker_wait_ns(const struct worker *w)
{
	uint64_t next = w->now + MAX_WAIT_NS, t = tern_worker_next_timeout(&w->w);
	if (t < next)
		next = t;
	if (w->shutting && !w->closed_all && w->grace_end < next)
		next = w->grace_end;
	if (w->shutting && w->shutdown_end < next)
		next = w->shutdown_end;
	return next > w->now ? (int64_t)(next - w->now) : 0;
}

/* Sleeps until a datagram, a hand-off or the control thread wakes the worker,
 * or its next timer is due. Busy-poll datapaths do not sleep. */
static void worker_wait(struct worker *w)
{
	if (w->d->dp.busy_poll)
		return;
	struct pollfd pfd[2] = {
		{.fd = dp_fd(&w->d->dp, w->id), .events = POLLIN},
		{.fd = w->efd, .events = POLLIN},
	};
	int64_t ns = worker_wait_ns(w);
	struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
	/* signals stay blocked here: the control thread takes them */
	if (ppoll(pfd, 2, &ts, NULL) < 0 && errno != EINTR) {
		fprintf(stderr, "ternd: worker %u: waiting for packets failed: %s\n", w->id, strerror(errno));
		exit(1);
	}
	if (pfd[1].revents & POLLIN) {
		uint64_t v;
		ssize_t r = read(w->efd, &v, sizeof(v));
		(void)r;
	}
}

static int worker_run(unsigned q, void *arg)
{
	struct ternd *d = arg;
	struct worker *w = &d->w[q];
	for (;;) {
		w->now = mono_ns();
		if (!worker_control(w))
			break;
		int moved = 0, n;
		/* bounded, so shutdown and /metrics requests are seen under a flood */
		for (int b = 0; b < MAX_BURSTS; b++) {
			/* a fresh clock per step: RTT samples and send times need it */
			w->now = mono_ns();
			n = tern_worker_step(&w->w, w->now);
			if (w->wake)
				wake_targets(w);
			if (n <= 0)
				break;
			moved += n;
		}
		if (!moved)
			worker_wait(w);
	}
	w->now = mono_ns();
	tern_worker_step(&w->w, w->now); /* what the last timers queued */
	publish(w, atomic_load(&d->snap_req));
	atomic_store(&w->exited, 1);
	atomic_fetch_sub(&d->running, 1);
	wake(d->ctl_efd);
	return 0;
}

static void *worker_thread(void *arg)
{
	struct worker *w = arg;
	worker_run(w->id, w->d);
	return NULL;
}

/* ---- the control thread: metrics, signals, shutdown ------------------------------------- */

static void wake_workers(struct ternd *d)
{
	for (unsigned i = 0; i < d->n && !d->dp.busy_poll; i++)
		wake(d->w[i].efd);
}

static void pause_briefly(void)
{
	struct timespec ts = {.tv_nsec = 100000};
	nanosleep(&ts, NULL);
}

static const char *drop_name(void *ctx, unsigned reason)
{
	return dp_drop_name(&((struct ternd *)ctx)->dp, reason);
}

/* Fresh counters for /metrics: every worker publishes at its next loop
 * turn; one stuck in a long burst is read as it last published. */
static void snapshot(void *arg, struct metrics_snapshot *s)
{
	struct ternd *d = arg;
	uint64_t req = atomic_fetch_add(&d->snap_req, 1) + 1, deadline = mono_ns() + SNAPSHOT_WAIT_NS;
	wake_workers(d);
	memset(&d->sent_sum, 0, sizeof(d->sent_sum));
	memset(&d->received_sum, 0, sizeof(d->received_sum));
	for (unsigned i = 0; i < d->n; i++) {
		struct worker *w = &d->w[i];
		while (atomic_load_explicit(&w->snap_done, memory_order_acquire) < req &&
		       !atomic_load(&w->exited) && mono_ns() < deadline)
			pause_briefly();
		pthread_mutex_lock(&w->pub.mu);
		d->agg[i] = w->pub.m;
		close_counts_merge(&d->sent_sum, &w->pub.sent);
		close_counts_merge(&d->received_sum, &w->pub.received);
		pthread_mutex_unlock(&w->pub.mu);
	}
	metrics_sum(s, d->agg, d->n);
	s->sent = &d->sent_sum;
	s->received = &d->received_sum;
	s->datapath = d->dp.name;
	s->n_workers = d->n;
	s->workers = d->agg;
	s->drop_name = drop_name;
	s->drop_name_ctx = d;
	dp_prog_stats(&d->dp, &s->prog);
}

static void setup_metrics(struct ternd *d)
{
	char err[256];
	if (!d->o.metrics)
		return;
	if (metrics_open(&d->metrics, d->o.metrics, err, sizeof(err)) < 0)
		die_usage("--metrics: %s", err);
	d->metrics.snapshot = snapshot;
	d->metrics.arg = d;
	d->metrics_on = 1;
}

/* Every worker starts its shutdown at the same deadlines and answers with
 * how many connections it had, for the one log line. */
static void begin_shutdown(struct ternd *d)
{
	uint64_t now = mono_ns(), deadline = now + ACK_WAIT_NS;
	size_t conns = 0;
	d->shutting = 1;
	atomic_store_explicit(&d->grace_end, now + SHUTDOWN_GRACE_NS, memory_order_relaxed);
	atomic_store_explicit(&d->shutdown_end, now + SHUTDOWN_MAX_NS, memory_order_relaxed);
	atomic_store_explicit(&d->shutdown, stop_flag, memory_order_release);
	wake_workers(d);
	for (unsigned i = 0; i < d->n; i++) {
		size_t a;
		while (!(a = atomic_load_explicit(&d->w[i].shutdown_ack, memory_order_acquire)) &&
		       !atomic_load(&d->w[i].exited) && mono_ns() < deadline)
			pause_briefly();
		conns += a ? a - 1 : 0;
	}
	fprintf(stderr, "ternd: shutting down on %s (%zu connections)\n",
		stop_flag == SIGINT ? "SIGINT" : "SIGTERM", conns);
}

/* Waits for metrics clients, a worker's exit or a signal (blocked outside
 * this wait, so none is missed), until every worker is done. */
static void control(struct ternd *d, const sigset_t *unblocked)
{
	while (atomic_load(&d->running) > 0) {
		struct pollfd pfd[1 + 1 + METRICS_MAX_CLIENTS];
		int n = 1;
		uint64_t now = mono_ns(), next = now + MAX_WAIT_NS, t;
		pfd[0] = (struct pollfd){.fd = d->ctl_efd, .events = POLLIN};
		if (d->metrics_on) {
			n += metrics_pollfds(&d->metrics, pfd + 1);
			if ((t = metrics_next_deadline(&d->metrics)) < next)
				next = t;
		}
		int64_t ns = next > now ? (int64_t)(next - now) : 0;
		struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
		if (ppoll(pfd, (nfds_t)n, &ts, unblocked) < 0 && errno != EINTR) {
			fprintf(stderr, "ternd: waiting for metrics clients failed: %s\n", strerror(errno));
			exit(1);
		}
		if (pfd[0].revents & POLLIN) {
			uint64_t v;
			ssize_t r = read(d->ctl_efd, &v, sizeof(v));
			(void)r;
		}
		if (stop_flag && !d->shutting)
			begin_shutdown(d);
		if (d->metrics_on)
			metrics_service(&d->metrics, mono_ns());
	}
}

struct control_arg {
	struct ternd *d;
	const sigset_t *unblocked;
};

static void *control_thread(void *arg)
{
	struct control_arg *c = arg;
	control(c->d, c->unblocked);
	return NULL;
}

static void on_signal(int sig)
{
	if (stop_flag)
		_exit(128 + sig); /* the second one: no more waiting */
	stop_flag = sig;
}

/* Blocks SIGINT and SIGTERM in this thread and every thread started after
 * (workers, EAL lcores); only the control loop's wait takes them. */
static void setup_signals(sigset_t *unblocked)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigset_t block;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, unblocked);
	sigdelset(unblocked, SIGINT);
	sigdelset(unblocked, SIGTERM);
}

/* The control loop gets a thread; DPDK runs the workers on its lcores
 * (worker 0 on this one, the EAL's main lcore), the other datapaths on
 * threads of their own while this one waits for them. */
static void run(struct ternd *d, const sigset_t *unblocked)
{
	char err[256], name[16];
	struct control_arg ca = {d, unblocked};
	pthread_t ctl;
	if (pthread_create(&ctl, NULL, control_thread, &ca) != 0)
		die_usage("cannot start the control thread");
	int r = dp_launch(&d->dp, worker_run, d, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "ternd: %s\n", err);
		exit(EXIT_USAGE);
	}
	for (unsigned q = 0; r == 1 && q < d->n; q++) {
		if (pthread_create(&d->w[q].thread, NULL, worker_thread, &d->w[q]) != 0)
			die_usage("cannot start worker %u", q);
		snprintf(name, sizeof(name), "ternd-w%u", q);
		pthread_setname_np(d->w[q].thread, name);
	}
	for (unsigned q = 0; r == 1 && q < d->n; q++)
		pthread_join(d->w[q].thread, NULL);
	pthread_join(ctl, NULL);
}

static uint64_t dropped(const struct tern_endpoint *ep)
{
	struct tern_endpoint_stats st;
	tern_endpoint_stats(ep, &st);
	return st.dropped_unparsable + st.dropped_short_initial + st.dropped_bad_initial +
	       st.dropped_full + st.dropped_failed + st.dropped_other;
}

static void teardown(struct ternd *d)
{
	uint64_t n_dropped = 0;
	for (unsigned q = 0; q < d->n; q++) {
		struct worker *w = &d->w[q];
		n_dropped += dropped(w->ep);
		tern_endpoint_free(w->ep);
		tern_reset_key_clear(&w->reset_key);
		tern_token_key_clear(&w->token_key);
		close(w->efd);
		pthread_mutex_destroy(&w->pub.mu);
	}
	if (d->metrics_on)
		metrics_close(&d->metrics);
	d->dp.dp->ops->close(d->dp.dp);
	tern_tls_ctx_free(d->tls);
	if (d->keylog)
		fclose(d->keylog);
	close(d->ctl_efd);
	free(d->agg);
	free(d->w);
	fprintf(stderr, "ternd: stopped (%llu datagrams dropped)\n", (unsigned long long)n_dropped);
}

int main(int argc, char **argv)
{
	static struct ternd d;
	char err[256], name[TERN_SOCK_ADDRSTRLEN], workers[32] = "";
	sigset_t unblocked;
	tool_name = "ternd";
	parse_args(argc, argv, &d.o);
	struct tern_addr probe;
	if (tern_sock_addr_parse(d.o.listen, &probe, err, sizeof(err)) < 0)
		die_usage("--listen: %s", err);
	setup_files(&d);
	load_reset_key(&d);
	setup_lbcid(&d);
	setup_signals(&unblocked);
	struct dp_opts dpo = {.kind = d.o.datapath, .listen = d.o.listen, .ifname = d.o.ifname,
			      .dpdk_eal = d.o.dpdk_eal, .dpdk_port = d.o.dpdk_port,
			      .n_queues = d.o.workers, .cid_len = (unsigned)d.cid_len,
			      .worker_offset = 1u + d.lbcid.server_id_len};
	dp_open(&dpo, &d.dp);
	setup_workers(&d);
	setup_metrics(&d);
	if (d.n > 1)
		snprintf(workers, sizeof(workers), ", %u workers", d.n);
	fprintf(stderr, "ternd: listening on %s (%s datapath%s%s)\n", d.dp.addr, d.dp.name, d.dp.detail,
		workers);
	if (d.metrics_on) {
		metrics_local(&d.metrics, name, sizeof(name));
		fprintf(stderr, "ternd: metrics on %s\n", name);
	}
	run(&d, &unblocked);
	teardown(&d);
	return 0;
}
