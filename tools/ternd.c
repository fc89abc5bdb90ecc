/* ternd: the tern QUIC endpoint daemon (HTTP/3 server).
 *
 *   ternd --datapath socket --listen ADDR:PORT --cert FILE --key FILE
 *         [--docroot DIR] [--keylog-file FILE] [--qlog-dir DIR] [--idle-timeout DUR] [--keepalive]
 *         [--reset-key-file FILE] [--reset-rate N] [--reset-burst N]
 *         [--metrics ADDR:PORT] [--workers 1]
 *
 * A thin program (DESIGN.md §2): configuration, files, signals, metrics and
 * the loop that moves datagrams between the datapath and the endpoint
 * shard (include/tern/endpoint.h), which does dispatch, admission, Version
 * Negotiation and stateless resets. Any bad or missing flag, unreadable
 * file or certificate/key mismatch ends the program with one line on
 * stderr and exit status 2.
 *
 * --idle-timeout DUR (ms, s, m, h; plain number: seconds; 0: none) sets
 * max_idle_timeout; --keepalive makes connections PING at half of it;
 * --reset-key-file FILE holds the 32-byte static key of stateless resets
 * (created, mode 0600, when missing; without it a key per run), so a
 * restarted ternd still resets its old clients (RFC 9000 §10.3);
 * --metrics ADDR:PORT serves Prometheus text at /metrics.
 *
 * SIGTERM/SIGINT: every connection gets an HTTP/3 shutdown (GOAWAY, then
 * H3_NO_ERROR once its requests are done); after a second's grace the rest
 * are closed with H3_NO_ERROR; the loop runs until every connection is
 * freed (closing lasts three PTOs, RFC 9000 §10.2) or 3 s passed, and the
 * program exits 0. A second signal exits at once with 128 + the signal. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "glue.h"
#include "metrics.h"
#include "tern/app.h"
#include "tern/endpoint.h"
#include "tern/lbcid.h"
#include "tern/token.h"
#include "tern/reset.h"
#include "tern/sock.h"
#include "tern/tls.h"
#include "util.h"

#define SCID_LEN 8
#define MAX_CONNS 4096
#define MAX_PEM (1 << 20)
#define MAX_BODY (256u << 20)
#define MAX_WAIT_NS 1000000000 /* wake at least once a second */
#define RESET_KEY_LEN 32
#define SHUTDOWN_GRACE_NS 1000000000ull
#define SHUTDOWN_MAX_NS 3000000000ull
#define MAX_BURSTS 64 /* receive bursts between two looks at timers and signals */

static volatile sig_atomic_t stop_flag; /* the first signal's number */

struct opts {
	const char *datapath, *listen, *cert, *key, *docroot, *keylog, *reset_key_file, *metrics, *qlog_dir;
	const char *retry, *retry_threshold, *server_id;
	int retry_mode;
	uint32_t retry_thresh;
	uint64_t idle_ms;
	int idle_set, keepalive;
	uint64_t reset_rate;
	uint32_t reset_burst;
	unsigned workers;
};

struct ternd {
	struct opts o;
	struct tern_datapath *dp;
	struct tern_endpoint *ep;
	struct tern_tls_ctx *tls;
	struct tern_reset_key reset_key;
	struct tern_token_key token_key;
	struct tern_lbcid_config lbcid;
	struct glue *conns;
	FILE *keylog;
	uint64_t now;
	/* a send buffer the endpoint may write a stateless reply into */
	struct tern_dp_pkt spare;
	int have_spare;
	int shutting, closed_all;
	uint64_t grace_end, shutdown_end;
	struct close_counts close_sent, close_received;
	struct metrics_server metrics;
	int metrics_on;
};

/* ---- configuration ------------------------------------------------------------ */

static void usage(void)
{
	printf("usage: ternd --datapath socket --listen ADDR:PORT --cert FILE --key FILE\n"
	       "             [--docroot DIR] [--keylog-file FILE] [--qlog-dir DIR] [--idle-timeout DUR] [--keepalive]\n"
	       "             [--retry off|always|auto] [--retry-threshold N] [--server-id HEX]\n"
	       "             [--reset-key-file FILE] [--reset-rate N] [--reset-burst N]\n"
	       "             [--metrics ADDR:PORT] [--workers 1]\n");
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
					    "--qlog-dir", "--retry", "--retry-threshold", "--server-id"};
	const char **slots[] = {&o->datapath, &o->listen, &o->cert, &o->key, &o->docroot, &o->keylog,
				&o->reset_key_file, &o->metrics, idle, workers, rate, burst, &o->qlog_dir,
				&o->retry, &o->retry_threshold, &o->server_id};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(a, names[i]) == 0)
			return slots[i];
	return NULL;
}

static void check_args(struct opts *o, const char *idle, const char *workers, const char *rate,
		       const char *burst)
{
	if (!o->datapath)
		die_usage("missing --datapath (socket)");
	if (strcmp(o->datapath, "socket") != 0)
		die_usage("--datapath '%s' is not available in this build (only 'socket')", o->datapath);
	if (!o->listen)
		die_usage("missing --listen ADDR:PORT");
	if (!o->cert)
		die_usage("missing --cert FILE");
	if (!o->key)
		die_usage("missing --key FILE");
	if (idle && parse_duration_ms(idle, &o->idle_ms) < 0)
		die_usage("bad --idle-timeout '%s': expected a duration such as 30s or 500ms", idle);
	o->idle_set = idle != NULL;
	o->workers = 1;
	if (workers && strcmp(workers, "1") != 0)
		die_usage("bad --workers '%s': the socket datapath runs one worker for now", workers);
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
	const char *alpn[] = {tern_app_alpn(TERN_APP_H3_SERVER)};
	char err[256] = "unknown error";
	if (tern_tls_ctx_new_server(&d->tls, cert, cert_len, key, key_len, alpn, 1, err,
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
	/* one static key, two derived keys: every host holding the file
	 * answers resets and validates tokens for the others */
	if (tern_reset_key_init(&d->reset_key, key, sizeof(key)) < 0 ||
	    tern_token_key_init(&d->token_key, key, sizeof(key)) < 0)
		die_usage("cannot prepare the stateless reset and token keys");
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

/* ---- the endpoint's hooks ----------------------------------------------------------- */

static void on_new_conn(struct tern_endpoint *ep, struct tern_conn *c, void *user)
{
	struct ternd *d = user;
	(void)ep;
	struct glue *g = calloc(1, sizeof(*g));
	if (!g || (g->conn = c, g->now = &d->now, glue_app_new(g, TERN_APP_H3_SERVER, &app_cbs, d) < 0)) {
		free(g);
		tern_conn_close(c, 0, TERN_QUIC_INTERNAL_ERROR, "out of memory", d->now);
		return;
	}
	if (d->o.qlog_dir)
		g->qlog = glue_qlog_open(d->o.qlog_dir, c);
	tern_endpoint_conn_set_app(c, g);
	glue_list_add(&d->conns, g);
	if (d->shutting)
		tern_app_shutdown(g->app); /* not taking new work: closes it at once */
}

static void on_conn_free(struct tern_endpoint *ep, struct tern_conn *c, void *app)
{
	struct ternd *d = tern_endpoint_user(ep);
	struct glue *g = app;
	(void)c;
	if (!g)
		return;
	glue_list_del(&d->conns, g);
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
	struct ternd *d = tern_endpoint_user(ep);
	(void)c;
	(void)app;
	if (ci->reason == TERN_CLOSE_LOCAL || ci->reason == TERN_CLOSE_ERROR)
		close_counts_add(&d->close_sent, ci->app, ci->code);
	else if (ci->reason == TERN_CLOSE_PEER)
		close_counts_add(&d->close_received, ci->app, ci->code);
}

static const struct tern_endpoint_callbacks ep_cbs = {
	.on_new_conn = on_new_conn,
	.on_conn_free = on_conn_free,
	.on_close = on_close,
};

static void gen_cid(void *ctx, struct tern_cid *cid)
{
	struct ternd *d = ctx;
	static const struct tern_rand rnd = {.fn = os_random};
	tern_lbcid_generate(&d->lbcid, 0, &rnd, cid);
}

static void setup_endpoint(struct ternd *d)
{
	struct tern_endpoint_config cfg;
	tern_endpoint_config_init(&cfg, 1);
	struct tern_conn_config *c = &cfg.conn;
	c->tls = d->tls;
	c->scid_len = SCID_LEN;
	c->rand = (struct tern_rand){.fn = os_random};
	c->cb = d->o.qlog_dir ? &glue_conn_callbacks_qlog : &glue_conn_callbacks;
	/* start at 1200 and let DPLPMTUD find what the path carries, up to
	 * a 1500-byte MTU less IPv6 and UDP headers */
	c->max_datagram = 1452;
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
	cfg.cb = &ep_cbs;
	cfg.user = d;
	cfg.max_conns = MAX_CONNS;
	cfg.reset_key = &d->reset_key;
	cfg.token_key = &d->token_key;
	cfg.retry = d->o.retry_mode;
	cfg.retry_threshold = d->o.retry_thresh;
	/* server CIDs a QUIC-LB load balancer routes: --server-id, worker 0 */
	tern_lbcid_config_init(&d->lbcid);
	if (d->o.server_id)
		tern_lbcid_set_server_id_hex(&d->lbcid, d->o.server_id);
	if (tern_lbcid_config_check(&d->lbcid) < 0)
		die_usage("bad --server-id '%s': too long for a 20-byte CID", d->o.server_id);
	c->scid_len = (uint8_t)tern_lbcid_len(&d->lbcid);
	c->gen_cid = gen_cid;
	c->gen_cid_ctx = d;
	cfg.gen_cid = gen_cid;
	cfg.gen_cid_ctx = d;
	cfg.reset_rate = d->o.reset_rate;
	cfg.reset_burst = d->o.reset_burst;
	os_random(NULL, cfg.table_seed, sizeof(cfg.table_seed));
	if (tern_endpoint_new(&d->ep, &cfg, mono_ns()) < 0)
		die_usage("cannot allocate the endpoint");
}

/* ---- the loop ----------------------------------------------------------------------- */

static void flush(struct ternd *d)
{
	d->dp->ops->tx_flush(d->dp, 0);
	d->have_spare = 0; /* an unused buffer comes back at the flush (sock.h) */
}

/* A send buffer, flushing once when they are all queued. */
static int tx_get(struct ternd *d, struct tern_dp_pkt *p)
{
	if (d->dp->ops->tx_alloc(d->dp, 0, p, TERN_DP_MAX_PAYLOAD) == 0)
		return 0;
	flush(d);
	return d->dp->ops->tx_alloc(d->dp, 0, p, TERN_DP_MAX_PAYLOAD);
}

static void rx_datagram(struct ternd *d, struct tern_dp_pkt *p)
{
	if (!d->have_spare)
		d->have_spare = tx_get(d, &d->spare) == 0;
	uint8_t *reply = d->have_spare ? d->spare.data : NULL;
	size_t cap = d->have_spare ? d->spare.cap : 0;
	int n = tern_endpoint_recv_ecn(d->ep, p->data, p->len, &p->path, p->ecn, d->now, reply, cap);
	if (n <= 0)
		return;
	/* a stateless reply goes back the way the trigger came */
	d->spare.len = (uint32_t)n;
	d->spare.path = p->path;
	d->spare.ecn = 0;
	if (d->dp->ops->tx_enqueue(d->dp, 0, &d->spare) == 0)
		d->have_spare = 0;
}

/* Pulls every datagram the connections have for now into the datapath. */
static void tx_all(struct ternd *d)
{
	struct tern_dp_pkt p;
	for (;;) {
		if (d->have_spare) {
			p = d->spare;
			d->have_spare = 0;
		} else if (tx_get(d, &p) < 0) {
			break;
		}
		int n = tern_endpoint_send_ecn(d->ep, p.data, p.cap, &p.path, &p.ecn, d->now);
		if (n <= 0)
			break;
		p.len = (uint32_t)n;
		d->dp->ops->tx_enqueue(d->dp, 0, &p);
	}
	flush(d);
}

static void timers(struct ternd *d)
{
	if (tern_endpoint_next_timeout(d->ep) <= d->now)
		tern_endpoint_handle_timeout(d->ep, d->now);
}

static void begin_shutdown(struct ternd *d)
{
	d->shutting = 1;
	d->grace_end = d->now + SHUTDOWN_GRACE_NS;
	d->shutdown_end = d->now + SHUTDOWN_MAX_NS;
	fprintf(stderr, "ternd: shutting down on %s (%zu connections)\n",
		stop_flag == SIGINT ? "SIGINT" : "SIGTERM", tern_endpoint_conn_count(d->ep));
	/* RFC 9114 §5.2: GOAWAY, then H3_NO_ERROR once the requests in
	 * flight are done (at once for idle connections) */
	for (struct glue *g = d->conns, *next; g; g = next) {
		next = g->next;
		tern_app_shutdown(g->app);
	}
}

/* 1 while the loop should keep running. */
static int shutdown_step(struct ternd *d)
{
	if (stop_flag && !d->shutting)
		begin_shutdown(d);
	if (!d->shutting)
		return 1;
	if (!d->closed_all && d->now >= d->grace_end) {
		tern_endpoint_close_all(d->ep, TERN_H3_NO_ERROR, "shutting down", d->now);
		d->closed_all = 1;
	}
	return tern_endpoint_conn_count(d->ep) > 0 && d->now < d->shutdown_end;
}

static int64_t wait_ns(struct ternd *d)
{
	uint64_t next = d->now + MAX_WAIT_NS, t = tern_endpoint_next_timeout(d->ep);
	if (t < next)
		next = t;
	if (d->metrics_on && (t = metrics_next_deadline(&d->metrics)) < next)
		next = t;
	if (d->shutting && !d->closed_all && d->grace_end < next)
		next = d->grace_end;
	if (d->shutting && d->shutdown_end < next)
		next = d->shutdown_end;
	return next > d->now ? (int64_t)(next - d->now) : 0;
}

/* Waits for datagrams, metrics clients or the next timer; signals (blocked
 * outside this wait, so none is missed) cut it short. */
static void wait_io(struct ternd *d, const sigset_t *unblocked)
{
	struct pollfd pfd[2 + METRICS_MAX_CLIENTS];
	int n = 1;
	pfd[0] = (struct pollfd){.fd = tern_sock_fd(d->dp, 0), .events = POLLIN};
	if (d->metrics_on)
		n += metrics_pollfds(&d->metrics, pfd + 1);
	int64_t ns = wait_ns(d);
	struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
	if (ppoll(pfd, (nfds_t)n, &ts, unblocked) < 0 && errno != EINTR) {
		fprintf(stderr, "ternd: waiting for packets failed: %s\n", strerror(errno));
		exit(1);
	}
}

static void run(struct ternd *d, const sigset_t *unblocked)
{
	struct tern_dp_pkt pkts[TERN_DP_BURST];
	for (;;) {
		d->now = mono_ns();
		if (!shutdown_step(d))
			break;
		tx_all(d);
		wait_io(d, unblocked);
		d->now = mono_ns();
		/* bounded, so timers, signals and metrics run under a flood too */
		int n;
		for (int b = 0; b < MAX_BURSTS && (n = d->dp->ops->rx_burst(d->dp, 0, pkts, TERN_DP_BURST)) > 0; b++) {
			/* a fresh clock per burst: RTT samples and send times need it */
			d->now = mono_ns();
			for (int i = 0; i < n; i++)
				rx_datagram(d, &pkts[i]);
			d->dp->ops->rx_release(d->dp, 0, pkts, (unsigned)n);
			tx_all(d);
		}
		d->now = mono_ns();
		timers(d);
		if (d->metrics_on)
			metrics_service(&d->metrics, d->now);
	}
	tx_all(d);
}

/* ---- metrics and signals -------------------------------------------------------------- */

static void snapshot(void *arg, struct metrics_snapshot *s)
{
	struct ternd *d = arg;
	tern_endpoint_stats(d->ep, &s->ep);
	d->dp->ops->stats(d->dp, 0, &s->dp);
	tern_sock_stats(d->dp, 0, &s->sock);
	s->sent = &d->close_sent;
	s->received = &d->close_received;
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

static void on_signal(int sig)
{
	if (stop_flag)
		_exit(128 + sig); /* the second one: no more waiting */
	stop_flag = sig;
}

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

static uint64_t dropped(const struct tern_endpoint *ep)
{
	struct tern_endpoint_stats st;
	tern_endpoint_stats(ep, &st);
	return st.dropped_unparsable + st.dropped_short_initial + st.dropped_bad_initial +
	       st.dropped_full + st.dropped_failed + st.dropped_other;
}

int main(int argc, char **argv)
{
	static struct ternd d;
	char err[256], name[TERN_SOCK_ADDRSTRLEN];
	sigset_t unblocked;
	tool_name = "ternd";
	parse_args(argc, argv, &d.o);
	struct tern_addr probe;
	if (tern_sock_addr_parse(d.o.listen, &probe, err, sizeof(err)) < 0)
		die_usage("--listen: %s", err);
	setup_files(&d);
	load_reset_key(&d);
	setup_endpoint(&d);
	struct tern_sock_config sc = {.listen = d.o.listen, .n_queues = d.o.workers,
				      .rcvbuf = 4 << 20, .sndbuf = 4 << 20};
	if (tern_sock_open(&d.dp, &sc, err, sizeof(err)) < 0)
		die_usage("%s", err);
	setup_metrics(&d);
	setup_signals(&unblocked);
	struct tern_addr bound;
	tern_sock_local_addr(d.dp, 0, &bound);
	fprintf(stderr, "ternd: listening on %s (socket datapath%s)\n",
		tern_sock_addr_format(&bound, name, sizeof(name)), tern_sock_gso(d.dp) ? ", GSO" : "");
	if (d.metrics_on) {
		metrics_local(&d.metrics, name, sizeof(name));
		fprintf(stderr, "ternd: metrics on %s\n", name);
	}
	run(&d, &unblocked);
	uint64_t n_dropped = dropped(d.ep);
	tern_endpoint_free(d.ep);
	if (d.metrics_on)
		metrics_close(&d.metrics);
	d.dp->ops->close(d.dp);
	tern_tls_ctx_free(d.tls);
	tern_reset_key_clear(&d.reset_key);
	tern_token_key_clear(&d.token_key);
	if (d.keylog)
		fclose(d.keylog);
	fprintf(stderr, "ternd: stopped (%llu datagrams dropped)\n", (unsigned long long)n_dropped);
	return 0;
}
