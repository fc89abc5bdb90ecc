/* ternd's /metrics endpoint (see metrics.h). */
#include "metrics.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- close codes ------------------------------------------------------------------ */

void close_counts_add(struct close_counts *t, int app, uint64_t code)
{
	for (size_t i = 0; i < t->n; i++) {
		if (t->e[i].app == !!app && t->e[i].code == code) {
			t->e[i].n++;
			return;
		}
	}
	if (t->n == METRICS_MAX_CODES) {
		t->other[!!app]++;
		return;
	}
	t->e[t->n].app = (uint8_t)!!app;
	t->e[t->n].code = code;
	t->e[t->n].n = 1;
	t->n++;
}

void close_counts_merge(struct close_counts *dst, const struct close_counts *src)
{
	for (size_t i = 0; i < src->n; i++) {
		size_t j = 0;
		while (j < dst->n && (dst->e[j].app != src->e[i].app || dst->e[j].code != src->e[i].code))
			j++;
		if (j == dst->n && dst->n == METRICS_MAX_CODES) {
			dst->other[src->e[i].app] += src->e[i].n;
			continue;
		}
		if (j == dst->n) {
			dst->e[j].app = src->e[i].app;
			dst->e[j].code = src->e[i].code;
			dst->e[j].n = 0;
			dst->n++;
		}
		dst->e[j].n += src->e[i].n;
	}
	dst->other[0] += src->other[0];
	dst->other[1] += src->other[1];
}

/* ---- sums over workers ------------------------------------------------------------- */

/* Every counter struct summed here is nothing but uint64_t fields, so it
 * adds up word by word and stays right when a field is added. */
_Static_assert(sizeof(struct tern_endpoint_stats) % sizeof(uint64_t) == 0, "u64 fields only");
_Static_assert(sizeof(struct tern_dp_stats) % sizeof(uint64_t) == 0, "u64 fields only");
_Static_assert(sizeof(struct tern_sock_stats) % sizeof(uint64_t) == 0, "u64 fields only");

static void add_u64s(void *dst, const void *src, size_t size)
{
	uint64_t *d = dst;
	const uint64_t *s = src;
	for (size_t i = 0; i < size / sizeof(uint64_t); i++)
		d[i] += s[i];
}

void metrics_sum(struct metrics_snapshot *s, const struct metrics_worker *w, unsigned n)
{
	memset(&s->ep, 0, sizeof(s->ep));
	memset(&s->dp, 0, sizeof(s->dp));
	memset(&s->sock, 0, sizeof(s->sock));
	for (unsigned i = 0; i < n; i++) {
		add_u64s(&s->ep, &w[i].ep, sizeof(s->ep));
		add_u64s(&s->dp, &w[i].dp, sizeof(s->dp));
		add_u64s(&s->sock, &w[i].sock, sizeof(s->sock));
	}
}

/* ---- the exposition ------------------------------------------------------------------ */

struct out {
	char *p;
	size_t len, cap;
	int full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	if (o->full)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len)
		o->full = 1;
	else
		o->len += (size_t)n;
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct out *o, const char *name, const char *type, const char *help, uint64_t v)
{
	family(o, name, type, help);
	put(o, "%s %llu\n", name, (unsigned long long)v);
}

static void codes(struct out *o, const char *name, const char *help, const struct close_counts *t)
{
	static const char *const type[2] = {"transport", "application"};
	family(o, name, "counter", help);
	for (size_t i = 0; t && i < t->n; i++)
		put(o, "%s{type=\"%s\",code=\"0x%llx\"} %llu\n", name, type[t->e[i].app],
		    (unsigned long long)t->e[i].code, (unsigned long long)t->e[i].n);
	for (int app = 0; t && app < 2; app++)
		if (t->other[app])
			put(o, "%s{type=\"%s\",code=\"other\"} %llu\n", name, type[app],
			    (unsigned long long)t->other[app]);
}

static void render_conns(struct out *o, const struct tern_endpoint_stats *e)
{
	static const struct {
		enum tern_close_reason r;
		const char *name;
	} reasons[] = {
		{TERN_CLOSE_IDLE_TIMEOUT, "idle_timeout"}, {TERN_CLOSE_LOCAL, "local_close"},
		{TERN_CLOSE_PEER, "peer_close"}, {TERN_CLOSE_STATELESS_RESET, "stateless_reset"},
		{TERN_CLOSE_HANDSHAKE_TIMEOUT, "handshake_timeout"}, {TERN_CLOSE_ERROR, "error"},
	};
	one(o, "tern_connections_active", "gauge", "Connections held now.", e->conns_active);
	one(o, "tern_connections_created_total", "counter", "Connections admitted or opened.",
	    e->conns_created);
	family(o, "tern_connections_closed_total", "counter", "Connections freed, by how they ended.");
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		put(o, "tern_connections_closed_total{reason=\"%s\"} %llu\n", reasons[i].name,
		    (unsigned long long)e->closed_by_reason[reasons[i].r]);
}

static void render_endpoint(struct out *o, const struct tern_endpoint_stats *e)
{
	one(o, "tern_datagrams_received_total", "counter", "Datagrams the endpoint took in.",
	    e->rx_datagrams);
	one(o, "tern_datagrams_to_connections_total", "counter", "Datagrams delivered to a connection.",
	    e->to_conn);
	family(o, "tern_datagrams_dropped_total", "counter", "Datagrams dropped without a reply.");
	put(o, "tern_datagrams_dropped_total{why=\"unparsable\"} %llu\n"
	       "tern_datagrams_dropped_total{why=\"short_initial\"} %llu\n"
	       "tern_datagrams_dropped_total{why=\"bad_initial\"} %llu\n"
	       "tern_datagrams_dropped_total{why=\"conn_limit\"} %llu\n"
	       "tern_datagrams_dropped_total{why=\"conn_failed\"} %llu\n"
	       "tern_datagrams_dropped_total{why=\"other\"} %llu\n",
	    (unsigned long long)e->dropped_unparsable, (unsigned long long)e->dropped_short_initial,
	    (unsigned long long)e->dropped_bad_initial, (unsigned long long)e->dropped_full,
	    (unsigned long long)e->dropped_failed, (unsigned long long)e->dropped_other);
	one(o, "tern_stateless_resets_sent_total", "counter", "Stateless resets sent.", e->resets_sent);
	family(o, "tern_stateless_resets_suppressed_total", "counter",
	       "Unknown-CID packets that got no stateless reset.");
	put(o, "tern_stateless_resets_suppressed_total{why=\"too_small\"} %llu\n"
	       "tern_stateless_resets_suppressed_total{why=\"rate_limited\"} %llu\n",
	    (unsigned long long)e->reset_too_small, (unsigned long long)e->reset_rate_limited);
	one(o, "tern_stateless_resets_received_total", "counter",
	    "Stateless resets that ended one of our connections.", e->resets_received);
	one(o, "tern_version_negotiation_sent_total", "counter", "Version Negotiation packets sent.",
	    e->vn_sent);
	family(o, "tern_version_negotiation_suppressed_total", "counter",
	       "Unknown-version packets that got no Version Negotiation.");
	put(o, "tern_version_negotiation_suppressed_total{why=\"too_small\"} %llu\n"
	       "tern_version_negotiation_suppressed_total{why=\"rate_limited\"} %llu\n",
	    (unsigned long long)e->vn_too_small, (unsigned long long)e->vn_rate_limited);
	one(o, "tern_retry_sent_total", "counter", "Initials answered with a Retry.", e->retry_sent);
	one(o, "tern_tokens_accepted_total", "counter",
	    "Initials whose Retry or NEW_TOKEN token validated the address.", e->tokens_accepted);
	one(o, "tern_tokens_refused_total", "counter",
	    "Initials dropped for a forged, foreign or expired Retry token.", e->dropped_bad_token);
	one(o, "tern_handshakes_in_progress", "gauge", "Server connections still in the handshake.",
	    e->handshakes_in_progress);
}

static void render_socket(struct out *o, const struct tern_dp_stats *d, const struct tern_sock_stats *s)
{
	one(o, "tern_socket_rx_packets_total", "counter", "Datagrams received.", d->rx_pkts);
	one(o, "tern_socket_rx_bytes_total", "counter", "UDP payload bytes received.", d->rx_bytes);
	one(o, "tern_socket_tx_packets_total", "counter", "Datagrams sent.", d->tx_pkts);
	one(o, "tern_socket_tx_bytes_total", "counter", "UDP payload bytes sent.", d->tx_bytes);
	one(o, "tern_socket_rx_dropped_total", "counter", "Datagrams the datapath dropped on receive.",
	    d->rx_dropped);
	one(o, "tern_socket_tx_dropped_total", "counter", "Datagrams the kernel did not take.",
	    d->tx_dropped);
	one(o, "tern_socket_rx_syscalls_total", "counter", "recvmmsg calls.", s->syscalls_rx);
	one(o, "tern_socket_tx_syscalls_total", "counter", "sendmmsg calls.", s->syscalls_tx);
	one(o, "tern_socket_gso_sends_total", "counter", "Messages sent with UDP_SEGMENT.", s->gso_sends);
	one(o, "tern_socket_gso_segments_total", "counter", "Datagrams inside GSO messages.",
	    s->gso_segments);
	one(o, "tern_socket_gso_fallbacks_total", "counter", "GSO messages resent one by one.",
	    s->gso_fallbacks);
	one(o, "tern_socket_rx_truncated_total", "counter", "Datagrams too long for a buffer.",
	    s->rx_truncated);
}

/* Another datapath's contract counters, labelled with its name. */
static void render_datapath(struct out *o, const char *dp, const struct tern_dp_stats *d)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} f[] = {
		{"tern_datapath_rx_packets_total", "Datagrams received.", offsetof(struct tern_dp_stats, rx_pkts)},
		{"tern_datapath_rx_bytes_total", "UDP payload bytes received.", offsetof(struct tern_dp_stats, rx_bytes)},
		{"tern_datapath_tx_packets_total", "Datagrams sent.", offsetof(struct tern_dp_stats, tx_pkts)},
		{"tern_datapath_tx_bytes_total", "UDP payload bytes sent.", offsetof(struct tern_dp_stats, tx_bytes)},
		{"tern_datapath_rx_dropped_total", "Datagrams the datapath dropped on receive.",
		 offsetof(struct tern_dp_stats, rx_dropped)},
		{"tern_datapath_tx_dropped_total", "Datagrams the datapath could not send.",
		 offsetof(struct tern_dp_stats, tx_dropped)},
	};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		uint64_t v;
		memcpy(&v, (const uint8_t *)d + f[i].off, sizeof(v));
		family(o, f[i].name, "counter", f[i].help);
		put(o, "%s{datapath=\"%s\"} %llu\n", f[i].name, dp, (unsigned long long)v);
	}
}

/* One family with a sample per worker. */
static void per_worker(struct out *o, const struct metrics_snapshot *s, const char *name,
		       const char *type, const char *help, uint64_t (*get)(const struct metrics_worker *))
{
	family(o, name, type, help);
	for (unsigned i = 0; i < s->n_workers; i++)
		put(o, "%s{worker=\"%u\"} %llu\n", name, i, (unsigned long long)get(&s->workers[i]));
}

static uint64_t w_rx(const struct metrics_worker *w) { return w->ep.rx_datagrams; }
static uint64_t w_tx(const struct metrics_worker *w) { return w->dp.tx_pkts; }
static uint64_t w_active(const struct metrics_worker *w) { return w->ep.conns_active; }
static uint64_t w_created(const struct metrics_worker *w) { return w->ep.conns_created; }
static uint64_t w_handed(const struct metrics_worker *w) { return w->w.handed_off; }
static uint64_t w_steps(const struct metrics_worker *w) { return w->w.iterations; }
static uint64_t w_txfull(const struct metrics_worker *w) { return w->w.tx_full; }

static void render_workers(struct out *o, const struct metrics_snapshot *s)
{
	if (!s->n_workers)
		return;
	one(o, "tern_workers", "gauge", "Worker threads (or lcores), one endpoint shard each.", s->n_workers);
	per_worker(o, s, "tern_worker_datagrams_received_total", "counter",
		   "Datagrams this worker's endpoint shard took in.", w_rx);
	per_worker(o, s, "tern_worker_datagrams_sent_total", "counter",
		   "Datagrams this worker's datapath queue sent.", w_tx);
	per_worker(o, s, "tern_worker_connections_active", "gauge", "Connections this worker holds now.",
		   w_active);
	per_worker(o, s, "tern_worker_connections_created_total", "counter",
		   "Connections this worker admitted.", w_created);
	per_worker(o, s, "tern_worker_handed_off_total", "counter",
		   "Datagrams this worker passed to the worker their CID names.", w_handed);
	per_worker(o, s, "tern_worker_steps_total", "counter", "Run-to-completion steps.", w_steps);
	per_worker(o, s, "tern_worker_tx_full_total", "counter",
		   "Times a send buffer or the send queue was full.", w_txfull);
}

/* Datapath-specific series: DPDK's drops by reason and L2/L3 answers per
 * worker's queue, and the XDP program's verdicts. */
static void render_dp_extra(struct out *o, const struct metrics_snapshot *s)
{
	if (s->n_workers && s->workers[0].q.n_drop && s->drop_name) {
		family(o, "tern_datapath_dropped_total", "counter",
		       "Frames the datapath dropped before the endpoint, by queue and reason.");
		for (unsigned i = 0; i < s->n_workers; i++)
			for (unsigned r = 0; r < s->workers[i].q.n_drop; r++)
				put(o, "tern_datapath_dropped_total{worker=\"%u\",why=\"%s\"} %llu\n", i,
				    s->drop_name(s->drop_name_ctx, r), (unsigned long long)s->workers[i].q.drop[r]);
		family(o, "tern_datapath_replies_total", "counter",
		       "ARP, Neighbour Discovery and ICMP echo answers, by queue.");
		for (unsigned i = 0; i < s->n_workers; i++) {
			const struct dp_queue_stats *q = &s->workers[i].q;
			put(o, "tern_datapath_replies_total{worker=\"%u\",kind=\"arp\"} %llu\n"
			       "tern_datapath_replies_total{worker=\"%u\",kind=\"nd\"} %llu\n"
			       "tern_datapath_replies_total{worker=\"%u\",kind=\"echo\"} %llu\n",
			    i, (unsigned long long)q->arp_replies, i, (unsigned long long)q->nd_replies, i,
			    (unsigned long long)q->echo_replies);
		}
	}
	if (!s->prog.valid)
		return;
	family(o, "tern_xdp_program_packets_total", "counter",
	       "Verdicts of ternd's XDP program, summed over CPUs.");
	put(o, "tern_xdp_program_packets_total{action=\"redirected\"} %llu\n"
	       "tern_xdp_program_packets_total{action=\"no_socket\"} %llu\n"
	       "tern_xdp_program_packets_total{action=\"drop_short_initial\"} %llu\n"
	       "tern_xdp_program_packets_total{action=\"drop_fixed_bit\"} %llu\n"
	       "tern_xdp_program_packets_total{action=\"drop_empty\"} %llu\n"
	       "tern_xdp_program_packets_total{action=\"passed\"} %llu\n",
	    (unsigned long long)s->prog.redirected, (unsigned long long)s->prog.no_socket,
	    (unsigned long long)s->prog.drop_short_initial, (unsigned long long)s->prog.drop_fixed_bit,
	    (unsigned long long)s->prog.drop_empty, (unsigned long long)s->prog.passed);
}

size_t metrics_render(const struct metrics_snapshot *s, char *buf, size_t cap)
{
	struct out o = {.p = buf, .cap = cap};
	render_conns(&o, &s->ep);
	codes(&o, "tern_close_sent_total", "CONNECTION_CLOSE frames we sent, by type and code.", s->sent);
	codes(&o, "tern_close_received_total", "CONNECTION_CLOSE frames the peer sent, by type and code.",
	      s->received);
	render_endpoint(&o, &s->ep);
	if (!s->datapath || strcmp(s->datapath, "socket") == 0)
		render_socket(&o, &s->dp, &s->sock);
	else
		render_datapath(&o, s->datapath, &s->dp);
	render_workers(&o, s);
	render_dp_extra(&o, s);
	return o.full ? 0 : o.len;
}

/* ---- the HTTP server ------------------------------------------------------------------ */

int metrics_open(struct metrics_server *m, const char *addr, char *err, size_t errlen)
{
	struct tern_addr a;
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	for (int i = 0; i < METRICS_MAX_CLIENTS; i++)
		m->c[i].fd = -1;
	m->lfd = -1;
	if (tern_sock_addr_parse(addr, &a, err, errlen) < 0)
		return -1;
	if (a.family == 4) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(a.port);
		memcpy(&in->sin_addr, a.ip, 4);
		sl = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(a.port);
		memcpy(&in6->sin6_addr, a.ip, 16);
		sl = sizeof(*in6);
	}
	int one = 1;
	m->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (m->lfd < 0 || setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(m->lfd, (struct sockaddr *)&ss, sl) < 0 || listen(m->lfd, 16) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
		if (m->lfd >= 0)
			close(m->lfd);
		m->lfd = -1;
		return -1;
	}
	return 0;
}

void metrics_local(const struct metrics_server *m, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct tern_addr a = {0};
	if (getsockname(m->lfd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;
			a.family = 4;
			a.port = ntohs(in->sin_port);
			memcpy(a.ip, &in->sin_addr, 4);
		} else {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
			a.family = 6;
			a.port = ntohs(in6->sin6_port);
			memcpy(a.ip, &in6->sin6_addr, 16);
		}
	}
	tern_sock_addr_format(&a, buf, len);
}

int metrics_pollfds(const struct metrics_server *m, struct pollfd *pfd)
{
	int n = 0, free_slot = 0;
	for (int i = 0; i < METRICS_MAX_CLIENTS; i++) {
		const struct metrics_client *c = &m->c[i];
		if (c->fd < 0) {
			free_slot = 1;
			continue;
		}
		pfd[n].fd = c->fd;
		pfd[n].events = c->resp_len ? POLLOUT : POLLIN;
		pfd[n++].revents = 0;
	}
	/* a full house leaves new clients in the kernel's backlog */
	if (m->lfd >= 0 && free_slot) {
		pfd[n].fd = m->lfd;
		pfd[n].events = POLLIN;
		pfd[n++].revents = 0;
	}
	return n;
}

static void client_drop(struct metrics_client *c)
{
	close(c->fd);
	c->fd = -1;
}

static void respond(struct metrics_server *m, struct metrics_client *c, int status, const char *reason,
		    int head)
{
	struct metrics_snapshot s;
	char *body = c->resp + 256;
	size_t blen;
	if (status == 200) {
		m->snapshot(m->arg, &s);
		blen = metrics_render(&s, body, sizeof(c->resp) - 256);
		if (!blen) {
			status = 500;
			reason = "Internal Server Error";
		}
	}
	if (status != 200)
		blen = (size_t)snprintf(body, 64, "%d %s\n", status, reason);
	int hl = snprintf(c->resp, 256,
			  "HTTP/1.1 %d %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
			  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			  status, reason, blen);
	if (head)
		blen = 0;
	memmove(c->resp + hl, body, blen);
	c->resp_len = (size_t)hl + blen;
	c->resp_off = 0;
}

/* One request line; the headers after it are read and ignored. */
static void handle_request(struct metrics_server *m, struct metrics_client *c)
{
	char method[8], target[256];
	c->req[c->req_len] = 0;
	if (sscanf(c->req, "%7s %255s HTTP/1.%*c", method, target) != 2) {
		respond(m, c, 400, "Bad Request", 0);
		return;
	}
	int head = strcmp(method, "HEAD") == 0;
	if (!head && strcmp(method, "GET") != 0)
		respond(m, c, 405, "Method Not Allowed", 0);
	else if (strcmp(target, "/metrics") == 0 || strncmp(target, "/metrics?", 9) == 0)
		respond(m, c, 200, "OK", head);
	else
		respond(m, c, 404, "Not Found", head);
}

static void client_read(struct metrics_server *m, struct metrics_client *c)
{
	for (;;) {
		ssize_t r = recv(c->fd, c->req + c->req_len, sizeof(c->req) - 1 - c->req_len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) {
			client_drop(c);
			return;
		}
		c->req_len += (size_t)r;
		c->req[c->req_len] = 0;
		if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n")) {
			handle_request(m, c);
			return;
		}
		if (c->req_len == sizeof(c->req) - 1) {
			respond(m, c, 431, "Request Header Fields Too Large", 0);
			return;
		}
	}
}

static void client_write(struct metrics_client *c)
{
	while (c->resp_off < c->resp_len) {
		ssize_t w = send(c->fd, c->resp + c->resp_off, c->resp_len - c->resp_off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (w <= 0)
			break;
		c->resp_off += (size_t)w;
	}
	/* answered (or the peer left): close, FIN first so the answer is
	 * not cut by a reset */
	shutdown(c->fd, SHUT_WR);
	client_drop(c);
}

static void accept_all(struct metrics_server *m, uint64_t now)
{
	for (int i = 0; i < METRICS_MAX_CLIENTS; i++) {
		struct metrics_client *c = &m->c[i];
		if (c->fd >= 0)
			continue;
		int fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		c->fd = fd;
		c->deadline = now + METRICS_CLIENT_TIMEOUT_NS;
		c->req_len = c->resp_len = c->resp_off = 0;
	}
}

void metrics_service(struct metrics_server *m, uint64_t now)
{
	if (m->lfd < 0)
		return;
	for (int i = 0; i < METRICS_MAX_CLIENTS; i++) {
		struct metrics_client *c = &m->c[i];
		if (c->fd < 0)
			continue;
		if (now >= c->deadline) {
			client_drop(c);
			continue;
		}
		if (!c->resp_len)
			client_read(m, c);
		if (c->fd >= 0 && c->resp_len)
			client_write(c);
	}
	accept_all(m, now);
	/* a client may have sent its request with the connection */
	for (int i = 0; i < METRICS_MAX_CLIENTS; i++) {
		struct metrics_client *c = &m->c[i];
		if (c->fd >= 0 && !c->resp_len && c->req_len == 0)
			client_read(m, c);
		if (c->fd >= 0 && c->resp_len && c->resp_off == 0)
			client_write(c);
	}
}

uint64_t metrics_next_deadline(const struct metrics_server *m)
{
	uint64_t t = UINT64_MAX;
	for (int i = 0; i < METRICS_MAX_CLIENTS; i++)
		if (m->c[i].fd >= 0 && m->c[i].deadline < t)
			t = m->c[i].deadline;
	return t;
}

void metrics_close(struct metrics_server *m)
{
	for (int i = 0; i < METRICS_MAX_CLIENTS; i++)
		if (m->c[i].fd >= 0)
			client_drop(&m->c[i]);
	if (m->lfd >= 0)
		close(m->lfd);
	m->lfd = -1;
}
