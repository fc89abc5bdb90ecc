/* tern-client: fetches URLs over HTTP/3 and writes the bodies to stdout.
 *
 *   tern-client [--insecure] [--ca FILE] [-n N] [--keylog-file FILE] URL...
 *
 * Each URL (https://HOST[:PORT]/PATH) is fetched N times (default 1), one
 * request after another; consecutive URLs with the same HOST:PORT share a
 * connection. Without --insecure the server's certificate must chain to
 * --ca FILE, or to the system bundle when --ca is absent.
 *
 * Exit status: 0 when every response was complete and 2xx, 1 otherwise,
 * 2 for a bad command line or an unreadable file (one line on stderr).
 * A thin program: the protocol lives in src/. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <sys/random.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <unistd.h>

#include "glue.h"
#include "tern/app.h"
#include "tern/endpoint.h"
#include "tern/reset.h"
#include "tern/sock.h"
#include "tern/tls.h"
#include "util.h"

#define MAX_PEM (4 << 20)
#define MAX_WAIT_NS 1000000000
#define SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

static volatile sig_atomic_t stop_flag;

struct url {
	const char *text;
	char host[256];
	char port[8];
	char authority[272];
	const char *path;
};

struct client {
	int insecure;
	double tx_loss, rx_loss; /* simulated datagram loss, for tests */
	double corrupt;          /* received datagrams cut short or with a bit flipped */
	uint64_t loss_rng;
	unsigned long repeat;
	const char *ca_file, *keylog_file;
	struct url *urls;
	int nurls;
	FILE *keylog;
	struct tern_tls_ctx *tls;
	struct tern_reset_key reset_key;
	/* the connection in use, alone on its endpoint and socket */
	struct tern_datapath *dp;
	struct tern_endpoint *ep;
	struct tern_conn *c;   /* NULL once the endpoint freed it */
	struct glue g;
	struct tern_close_info close; /* how it ended */
	struct tern_dp_pkt spare;     /* a send buffer for stateless replies */
	int have_spare;
	uint64_t now;
	int established;
	int active;            /* a request is in flight */
	const struct url *cur; /* its URL */
	int status;
	int failures;
};

/* ---- command line ------------------------------------------------------------- */

static void parse_url(const char *s, struct url *u)
{
	const char *p = s, *host, *hend, *port = NULL;
	memset(u, 0, sizeof(*u));
	u->text = s;
	if (strncmp(p, "https://", 8) != 0)
		goto bad;
	host = p + 8;
	if (*host == '[') {
		hend = strchr(host, ']');
		if (!hend)
			goto bad;
		host++;
		p = hend + 1;
	} else {
		hend = host + strcspn(host, ":/");
		p = hend;
	}
	if (hend == host || (size_t)(hend - host) >= sizeof(u->host))
		goto bad;
	memcpy(u->host, host, (size_t)(hend - host));
	if (*p == ':') {
		port = ++p;
		p += strspn(p, "0123456789");
		if (p == port || p - port > 5 || atoi(port) > 65535 || atoi(port) == 0)
			goto bad;
		memcpy(u->port, port, (size_t)(p - port));
	} else {
		strcpy(u->port, "443");
	}
	if (*p != '/' && *p != 0)
		goto bad;
	u->path = *p ? p : "/";
	snprintf(u->authority, sizeof(u->authority), strchr(u->host, ':') ? "[%s]:%s" : "%s:%s",
		 u->host, u->port);
	return;
bad:
	die_usage("bad URL '%s': expected https://HOST[:PORT]/PATH", s);
}

static void parse_args(int argc, char **argv, struct client *cl)
{
	int i;
	cl->repeat = 1;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "--insecure") == 0) {
			cl->insecure = 1;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			printf("usage: tern-client [--insecure] [--ca FILE] [-n N] [--keylog-file FILE]\n"
			       "                   [--tx-loss P] [--rx-loss P] [--corrupt P] URL...\n");
			exit(0);
		}
		if (strcmp(a, "-n") != 0 && strcmp(a, "--keylog-file") != 0 && strcmp(a, "--ca") != 0 &&
		    strcmp(a, "--tx-loss") != 0 && strcmp(a, "--rx-loss") != 0 && strcmp(a, "--corrupt") != 0)
			die_usage("unknown argument '%s' (try --help)", a);
		if (i + 1 >= argc)
			die_usage("%s needs a value", a);
		const char *v = argv[++i];
		if (strcmp(a, "-n") == 0) {
			char *end;
			errno = 0;
			cl->repeat = strtoul(v, &end, 10);
			if (errno || *end || v[0] == '-' || cl->repeat == 0 || cl->repeat > 1000000)
				die_usage("bad -n '%s': expected a count from 1 to 1000000", v);
		} else if (strcmp(a, "--ca") == 0) {
			cl->ca_file = v;
		} else if (strcmp(a, "--tx-loss") == 0 || strcmp(a, "--rx-loss") == 0 ||
			   strcmp(a, "--corrupt") == 0) {
			char *end;
			double pr = strtod(v, &end);
			if (*end || end == v || !(pr >= 0.0 && pr <= 1.0))
				die_usage("bad %s '%s': expected a probability from 0 to 1", a, v);
			*(a[2] == 't' ? &cl->tx_loss : a[2] == 'r' ? &cl->rx_loss : &cl->corrupt) = pr;
		} else {
			cl->keylog_file = v;
		}
	}
	if (i >= argc)
		die_usage("no URL given (try --help)");
	cl->nurls = argc - i;
	cl->urls = calloc((size_t)cl->nurls, sizeof(*cl->urls));
	if (!cl->urls)
		die_usage("out of memory");
	for (int k = 0; k < cl->nurls; k++)
		parse_url(argv[i + k], &cl->urls[k]);
	if (cl->insecure && cl->ca_file)
		die_usage("--insecure and --ca exclude each other");
}

static uint8_t *read_file(const char *what, const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		die_usage("cannot read %s %s: %s", what, path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_PEM)
		die_usage("cannot read %s %s: not a regular file under %d bytes", what, path, MAX_PEM);
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	size_t off = 0;
	if (!buf)
		die_usage("out of memory");
	while (off < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + off, (size_t)st.st_size - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die_usage("cannot read %s %s: %s", what, path, r < 0 ? strerror(errno) : "short read");
		off += (size_t)r;
	}
	close(fd);
	buf[off] = 0;
	*len = off;
	return buf;
}

static void keylog_line(void *arg, const char *line)
{
	fprintf(arg, "%s\n", line);
	fflush(arg);
}

static void setup_tls(struct client *cl)
{
	const char *alpn[] = {tern_app_alpn(TERN_APP_H3_CLIENT)};
	uint8_t *ca = NULL;
	size_t ca_len = 0;
	char err[256] = "unknown error";
	if (!cl->insecure)
		ca = read_file(cl->ca_file ? "--ca" : "the CA bundle", cl->ca_file ? cl->ca_file : SYSTEM_CA,
			       &ca_len);
	if (tern_tls_ctx_new_client(&cl->tls, alpn, 1, !cl->insecure, ca, ca_len, err, sizeof(err)) < 0)
		die_usage("TLS setup failed: %s", err);
	free(ca);
	if (cl->keylog_file) {
		cl->keylog = fopen(cl->keylog_file, "a");
		if (!cl->keylog)
			die_usage("cannot open --keylog-file %s: %s", cl->keylog_file, strerror(errno));
		tern_tls_ctx_set_keylog(cl->tls, keylog_line, cl->keylog);
	}
	uint8_t secret[32];
	os_random(NULL, secret, sizeof(secret));
	if (tern_reset_key_init(&cl->reset_key, secret, sizeof(secret)) < 0)
		die_usage("cannot prepare the stateless reset key");
	memset(secret, 0, sizeof(secret));
}

/* ---- the application's callbacks ------------------------------------------------- */

static void on_status(void *user, uint64_t sid, int status, int64_t content_length)
{
	(void)sid;
	(void)content_length;
	((struct client *)user)->status = status;
}

static void on_body(void *user, uint64_t sid, const uint8_t *data, size_t len)
{
	(void)user;
	(void)sid;
	if (fwrite(data, 1, len, stdout) != len) {
		fprintf(stderr, "tern-client: cannot write to stdout: %s\n", strerror(errno));
		stop_flag = 1;
	}
}

static void on_done(void *user, uint64_t sid, int ok)
{
	(void)sid;
	struct client *cl = user;
	cl->active = 0;
	if (!ok || cl->status < 200 || cl->status > 299) {
		cl->failures++;
		if (!ok)
			fprintf(stderr, "tern-client: %s: response incomplete\n", cl->cur->text);
		else
			fprintf(stderr, "tern-client: %s: HTTP status %d\n", cl->cur->text, cl->status);
	}
}

static const struct tern_app_callbacks app_cbs = {
	.on_response_status = on_status,
	.on_body = on_body,
	.on_response_done = on_done,
};

/* ---- one connection ------------------------------------------------------------- */

static void on_established(struct glue *g)
{
	((struct client *)g->user)->established = 1;
}

static void ep_on_close(struct tern_endpoint *ep, struct tern_conn *c, void *app,
			const struct tern_close_info *ci)
{
	(void)c;
	(void)app;
	((struct client *)tern_endpoint_user(ep))->close = *ci;
}

static void ep_on_free(struct tern_endpoint *ep, struct tern_conn *c, void *app)
{
	(void)c;
	(void)app;
	((struct client *)tern_endpoint_user(ep))->c = NULL;
}

static const struct tern_endpoint_callbacks ep_cbs = {
	.on_conn_free = ep_on_free,
	.on_close = ep_on_close,
};

/* Resolves the URL's host into path->remote. 0, or -1 after a line on
 * stderr. */
static int resolve(const struct url *u, struct tern_path *path)
{
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV}, *res;
	int rc = getaddrinfo(u->host, u->port, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "tern-client: %s: cannot resolve %s: %s\n", u->text, u->host, gai_strerror(rc));
		return -1;
	}
	memset(path, 0, sizeof(*path));
	path->remote.port = (uint16_t)atoi(u->port);
	if (res->ai_family == AF_INET) {
		path->remote.family = 4;
		memcpy(path->remote.ip, &((struct sockaddr_in *)res->ai_addr)->sin_addr, 4);
	} else {
		path->remote.family = 6;
		memcpy(path->remote.ip, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, 16);
	}
	freeaddrinfo(res);
	return 0;
}

static int endpoint_start(struct client *cl, const struct url *u)
{
	struct tern_endpoint_config cfg;
	tern_endpoint_config_init(&cfg, 0);
	cfg.conn.tls = cl->tls;
	cfg.conn.server_name = u->host;
	cfg.conn.rand = (struct tern_rand){.fn = os_random};
	cfg.conn.scid_len = 8;
	cfg.conn.cb = &glue_conn_callbacks;
	cfg.conn.max_datagram = 1452; /* DPLPMTUD finds what the path carries */
	cfg.conn.ecn = 1;             /* mark ECT(0); validation turns it off if the path bleaches */
	cfg.conn.tparams.max_udp_payload_size = TERN_DP_MAX_PAYLOAD;
	cfg.conn.tparams.present |= TERN_TP_HAS_MAX_UDP_PAYLOAD_SIZE;
	cfg.cb = &ep_cbs;
	cfg.user = cl;
	cfg.max_conns = 1;
	cfg.reset_key = &cl->reset_key;
	return tern_endpoint_new(&cl->ep, &cfg, cl->now);
}

/* Resolves the URL's host, opens a socket of the same family and starts
 * the connection. 0, or -1 after a line on stderr. */
static int conn_start(struct client *cl, const struct url *u)
{
	char err[256];
	struct tern_path path;
	if (resolve(u, &path) < 0)
		return -1;
	struct tern_sock_config sc = {.listen = path.remote.family == 4 ? "0.0.0.0:0" : "[::]:0"};
	if (tern_sock_open(&cl->dp, &sc, err, sizeof(err)) < 0) {
		fprintf(stderr, "tern-client: %s\n", err);
		return -1;
	}
	tern_sock_local_addr(cl->dp, 0, &path.local);
	cl->established = cl->active = cl->have_spare = 0;
	cl->now = mono_ns();
	memset(&cl->g, 0, sizeof(cl->g));
	memset(&cl->close, 0, sizeof(cl->close));
	cl->g.now = &cl->now;
	cl->g.user = cl;
	cl->g.on_established = on_established;
	if (endpoint_start(cl, u) < 0 || glue_app_new(&cl->g, TERN_APP_H3_CLIENT, &app_cbs, cl) < 0 ||
	    tern_endpoint_connect(cl->ep, &path, &cl->g, &cl->c, cl->now) < 0) {
		fprintf(stderr, "tern-client: %s: cannot start a connection\n", u->text);
		return -1;
	}
	cl->g.conn = cl->c;
	return 0;
}

static void conn_end(struct client *cl)
{
	if (cl->g.app)
		tern_app_free(cl->g.app);
	if (cl->ep)
		tern_endpoint_free(cl->ep);
	if (cl->dp)
		cl->dp->ops->close(cl->dp);
	cl->g.app = NULL;
	cl->ep = NULL;
	cl->c = NULL;
	cl->dp = NULL;
}

/* 1 with probability p: ngtcp2's examples' --tx-loss/--rx-loss, to test
 * recovery against a real peer. */
static int lose(struct client *cl, double p)
{
	if (p <= 0.0)
		return 0;
	cl->loss_rng ^= cl->loss_rng << 13;
	cl->loss_rng ^= cl->loss_rng >> 7;
	cl->loss_rng ^= cl->loss_rng << 17;
	return (double)(cl->loss_rng >> 11) / 9007199254740992.0 < p;
}

/* Fault injection for soak tests: cut a datagram at a random length or
 * flip one random bit of it. */
static void maybe_corrupt(struct client *cl, struct tern_dp_pkt *p)
{
	if (!lose(cl, cl->corrupt) || p->len == 0)
		return;
	lose(cl, 1.0); /* advance the generator */
	if (cl->loss_rng & 1)
		p->len = (uint32_t)((cl->loss_rng >> 8) % p->len);
	else
		p->data[(cl->loss_rng >> 8) % p->len] ^= (uint8_t)(1u << ((cl->loss_rng >> 4) & 7));
}

static void rx_all(struct client *cl)
{
	struct tern_dp_pkt pkts[TERN_DP_BURST];
	int n;
	while ((n = cl->dp->ops->rx_burst(cl->dp, 0, pkts, TERN_DP_BURST)) > 0) {
		for (int i = 0; i < n; i++) {
			if (lose(cl, cl->rx_loss))
				continue;
			maybe_corrupt(cl, &pkts[i]);
			if (!cl->have_spare)
				cl->have_spare =
					cl->dp->ops->tx_alloc(cl->dp, 0, &cl->spare, TERN_DP_MAX_PAYLOAD) == 0;
			int r = tern_endpoint_recv_ecn(cl->ep, pkts[i].data, pkts[i].len, &pkts[i].path,
						       pkts[i].ecn, cl->now,
						       cl->have_spare ? cl->spare.data : NULL,
						       cl->have_spare ? cl->spare.cap : 0);
			if (r <= 0)
				continue;
			/* a stateless reply goes back the way the trigger came */
			cl->spare.len = (uint32_t)r;
			cl->spare.path = pkts[i].path;
			cl->spare.ecn = 0;
			if (cl->dp->ops->tx_enqueue(cl->dp, 0, &cl->spare) == 0)
				cl->have_spare = 0;
		}
		cl->dp->ops->rx_release(cl->dp, 0, pkts, (unsigned)n);
	}
}

static void tx_all(struct client *cl)
{
	struct tern_dp_pkt p;
	while (cl->dp->ops->tx_alloc(cl->dp, 0, &p, TERN_DP_MAX_PAYLOAD) == 0) {
		int len = tern_endpoint_send_ecn(cl->ep, p.data, p.cap, &p.path, &p.ecn, cl->now);
		if (len <= 0)
			break;
		if (lose(cl, cl->tx_loss))
			continue; /* the buffer comes back at the flush */
		p.len = (uint32_t)len;
		cl->dp->ops->tx_enqueue(cl->dp, 0, &p);
	}
	cl->dp->ops->tx_flush(cl->dp, 0);
	cl->have_spare = 0; /* an unused buffer comes back at the flush (sock.h) */
}

/* Sends what is ready first (a request just written must not wait for the
 * next timer), then waits for datagrams or that timer. */
static void io_once(struct client *cl)
{
	cl->now = mono_ns();
	tx_all(cl);
	uint64_t t = tern_endpoint_next_timeout(cl->ep);
	int64_t wait = MAX_WAIT_NS;
	if (t <= cl->now)
		wait = 0;
	else if (t - cl->now < (uint64_t)MAX_WAIT_NS)
		wait = (int64_t)(t - cl->now);
	tern_sock_wait(cl->dp, 0, wait);
	cl->now = mono_ns();
	rx_all(cl);
	if (tern_endpoint_next_timeout(cl->ep) <= cl->now)
		tern_endpoint_handle_timeout(cl->ep, cl->now);
	tx_all(cl);
}

static void report_close(struct client *cl, const struct url *u)
{
	const struct tern_close_info *ci = &cl->close;
	fprintf(stderr, "tern-client: %s: connection closed early (%s code 0x%llx%s%s)\n", u->authority,
		ci->app ? "application" : "transport", (unsigned long long)ci->code,
		ci->reason_phrase[0] ? ": " : "", ci->reason_phrase);
}

/* Fetches urls[first..last) `repeat` times each over one connection. */
static void fetch_group(struct client *cl, int first, int last)
{
	const struct url *u = &cl->urls[first];
	unsigned long total = (unsigned long)(last - first) * cl->repeat, next = 0;
	if (conn_start(cl, u) < 0) {
		cl->failures += (int)total;
		conn_end(cl);
		return;
	}
	int shutting = 0;
	while (!stop_flag && cl->c && tern_conn_state(cl->c) < TERN_CONN_CLOSING) {
		if (cl->established && !cl->active && next < total) {
			cl->cur = &cl->urls[first + (int)(next / cl->repeat)];
			cl->status = 0;
			if (tern_app_h3_request(cl->g.app, cl->cur->authority, cl->cur->path, NULL) == 0) {
				cl->active = 1;
				next++;
			}
		} else if (cl->established && !cl->active && !shutting) {
			tern_app_shutdown(cl->g.app); /* closes once nothing is in flight */
			shutting = 1;
		}
		io_once(cl);
	}
	if (!shutting || cl->active) {
		if (!stop_flag)
			report_close(cl, u);
		/* The request in flight, if any, is reported (and counted) by
		 * on_done when conn_end frees the app. */
		cl->failures += (int)(total - next);
	}
	conn_end(cl);
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

int main(int argc, char **argv)
{
	static struct client cl;
	tool_name = "tern-client";
	parse_args(argc, argv, &cl);
	if (getrandom(&cl.loss_rng, sizeof(cl.loss_rng), 0) != (ssize_t)sizeof(cl.loss_rng) || !cl.loss_rng)
		cl.loss_rng = 0x9e3779b97f4a7c15ull;
	setup_tls(&cl);
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (int i = 0; i < cl.nurls && !stop_flag;) {
		int j = i + 1;
		while (j < cl.nurls && strcmp(cl.urls[j].authority, cl.urls[i].authority) == 0)
			j++;
		fetch_group(&cl, i, j);
		i = j;
	}
	fflush(stdout);
	tern_tls_ctx_free(cl.tls);
	tern_reset_key_clear(&cl.reset_key);
	if (cl.keylog)
		fclose(cl.keylog);
	free(cl.urls);
	return cl.failures || stop_flag ? 1 : 0;
}
