/* ternd's datapath choice (see datapaths.h). */
#include "datapaths.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#ifdef TERN_HAVE_REUSEPORT
#include <bpf/libbpf.h>

#include "tern/reuseport.h"
#endif
#ifdef TERN_HAVE_XDP
#include "tern/xdp.h"
#endif
#ifdef TERN_HAVE_DPDK
#include "tern/dpdk.h"
#endif

#define SOCK_BUF (4 << 20)

const char *dp_unavailable(const char *kind)
{
	if (strcmp(kind, "socket") == 0 || strcmp(kind, "auto") == 0)
		return NULL;
#ifdef TERN_HAVE_XDP
	if (strcmp(kind, "xdp") == 0)
		return NULL;
#endif
#ifdef TERN_HAVE_DPDK
	if (strcmp(kind, "dpdk") == 0)
		return NULL;
#endif
	if (strcmp(kind, "xdp") == 0)
		return "--datapath xdp is not available in this build (it needs libbpf, libxdp and bpftool)";
	if (strcmp(kind, "dpdk") == 0)
		return "--datapath dpdk is not available in this build (it needs libdpdk)";
	return NULL; /* not a datapath name at all: the caller says so */
}

#if defined(TERN_HAVE_XDP) || defined(TERN_HAVE_DPDK)
static void log_line(void *ctx, const char *line)
{
	(void)ctx; /* the datapath names itself */
	fprintf(stderr, "ternd: %s\n", line);
}
#endif

/* ---- kernel sockets ---------------------------------------------------------- */

/* With one socket per worker, the kernel's 4-tuple hash decides where a
 * datagram lands; the steering program sends short headers to the worker
 * their CID names instead, so established connections need no hand-off
 * (DESIGN.md §4). Without it everything still works, through hand-offs. */
static void attach_steering(const struct dp_opts *o, struct dp_handle *h)
{
	if (o->n_queues < 2)
		return;
#ifdef TERN_HAVE_REUSEPORT
	int fds[64];
	char err[256];
	unsigned n = o->n_queues < 64 ? o->n_queues : 64;
	for (unsigned q = 0; q < n; q++)
		fds[q] = tern_sock_fd(h->dp, q);
	/* libbpf's own lines would only repeat the one below */
	libbpf_print_fn_t old = libbpf_set_print(NULL);
	int r = tern_reuseport_attach(fds, n, o->cid_len, o->worker_offset, err, sizeof(err));
	libbpf_set_print(old);
	if (r == 0)
		fprintf(stderr, "ternd: SO_REUSEPORT steering by CID in use (%u sockets)\n", n);
	else
		fprintf(stderr, "ternd: SO_REUSEPORT steering by CID not in use: %s; packets are handed off to their worker\n",
			err);
#else
	(void)h;
	fprintf(stderr, "ternd: SO_REUSEPORT steering by CID not in use: not in this build (no libbpf); packets are handed off to their worker\n");
#endif
}

static int open_socket(const struct dp_opts *o, struct dp_handle *h, char *err, size_t errlen)
{
	struct tern_sock_config sc = {.listen = o->listen, .n_queues = o->n_queues,
				      .rcvbuf = SOCK_BUF, .sndbuf = SOCK_BUF};
	if (tern_sock_open(&h->dp, &sc, err, errlen) < 0)
		return -1;
	struct tern_addr bound;
	tern_sock_local_addr(h->dp, 0, &bound);
	tern_sock_addr_format(&bound, h->addr, sizeof(h->addr));
	h->name = "socket";
	snprintf(h->detail, sizeof(h->detail), "%s", tern_sock_gso(h->dp) ? ", GSO" : "");
	attach_steering(o, h);
	return 0;
}

/* ---- AF_XDP ------------------------------------------------------------------- */

#ifdef TERN_HAVE_XDP
static int open_xdp(const struct dp_opts *o, const char *ifname, struct dp_handle *h, char *err,
		    size_t errlen)
{
	struct tern_xdp_config xc = {.ifname = ifname, .n_listen = 1, .n_queues = o->n_queues,
				     .log = log_line, .log_ctx = "xdp"};
	if (tern_sock_addr_parse(o->listen, &xc.listen[0], err, errlen) < 0)
		return -1;
	if (xc.listen[0].port == 0) {
		snprintf(err, errlen, "--datapath xdp needs a --listen port (not 0)");
		return -1;
	}
	if (tern_xdp_open(&h->dp, &xc, err, errlen) < 0)
		return -1;
	struct tern_xdp_info info;
	tern_xdp_info(h->dp, &info);
	h->name = "xdp";
	tern_sock_addr_format(&xc.listen[0], h->addr, sizeof(h->addr));
	snprintf(h->detail, sizeof(h->detail), " on %s, %s, %s", ifname,
		 info.native ? "native" : "generic", info.zerocopy ? "zero-copy" : "copy");
	return 0;
}
#endif

/* The interface holding the listen address, for --datapath auto without
 * --interface. NULL with the reason in why. */
static const char *iface_of(const char *listen, char *name, size_t len, char *why, size_t wlen)
{
	struct tern_addr a;
	struct ifaddrs *ifs, *i;
	static const uint8_t zero[16];
	if (tern_sock_addr_parse(listen, &a, why, wlen) < 0)
		return NULL;
	if (memcmp(a.ip, zero, a.family == 4 ? 4 : 16) == 0) {
		snprintf(why, wlen, "no --interface, and %s is a wildcard address", listen);
		return NULL;
	}
	if (getifaddrs(&ifs) < 0) {
		snprintf(why, wlen, "no --interface, and getifaddrs failed");
		return NULL;
	}
	const char *found = NULL;
	for (i = ifs; i && !found; i = i->ifa_next) {
		const struct sockaddr *sa = i->ifa_addr;
		if (!sa || (sa->sa_family == AF_INET) != (a.family == 4) ||
		    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
			continue;
		const void *ip = sa->sa_family == AF_INET
					 ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
					 : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (memcmp(ip, a.ip, a.family == 4 ? 4 : 16) != 0)
			continue;
		if (i->ifa_flags & IFF_LOOPBACK) {
			snprintf(why, wlen, "no --interface, and %s is on the loopback interface %s",
				 listen, i->ifa_name);
			break;
		}
		snprintf(name, len, "%s", i->ifa_name);
		found = name;
	}
	if (!found && !i)
		snprintf(why, wlen, "no --interface, and no interface holds %s", listen);
	freeifaddrs(ifs);
	return found;
}

/* ---- DPDK --------------------------------------------------------------------- */

#ifdef TERN_HAVE_DPDK
static int open_dpdk(const struct dp_opts *o, struct dp_handle *h, char *err, size_t errlen)
{
	struct tern_addr a;
	char ip[INET6_ADDRSTRLEN];
	if (tern_sock_addr_parse(o->listen, &a, err, errlen) < 0)
		return -1;
	if (a.port == 0) {
		snprintf(err, errlen, "--datapath dpdk needs a --listen port (not 0)");
		return -1;
	}
	inet_ntop(a.family == 4 ? AF_INET : AF_INET6, a.ip, ip, sizeof(ip));
	struct tern_dpdk_config dc = {.eal_args = o->dpdk_eal, .port = o->dpdk_port,
				      .n_queues = o->n_queues, .udp_port = a.port,
				      .log = log_line, .log_ctx = "dpdk"};
	if (a.family == 4)
		dc.addr4 = ip;
	else
		dc.addr6 = ip;
	if (tern_dpdk_open(&h->dp, &dc, err, errlen) < 0)
		return -1;
	h->name = "dpdk";
	h->busy_poll = 1;
	tern_sock_addr_format(&a, h->addr, sizeof(h->addr));
	snprintf(h->detail, sizeof(h->detail), " on port %u, %s", tern_dpdk_port_id(h->dp),
		 tern_dpdk_has_rss(h->dp) ? "RSS" : "software spreading");
	return 0;
}
#endif

/* ---- the choice ----------------------------------------------------------------- */

/* DPDK, then XDP, then sockets: the fastest datapath that is built,
 * configured and opens. */
static void open_auto(const struct dp_opts *o, struct dp_handle *h)
{
	char why_dpdk[256] = "not in this build", why_xdp[256] = "not in this build", err[256];
	char ifname[IF_NAMESIZE + 1];
#ifdef TERN_HAVE_DPDK
	if (!o->dpdk_eal)
		snprintf(why_dpdk, sizeof(why_dpdk), "no --dpdk-eal");
	else if (open_dpdk(o, h, why_dpdk, sizeof(why_dpdk)) == 0) {
		fprintf(stderr, "ternd: --datapath auto chose dpdk (--dpdk-eal given and the port opened)\n");
		return;
	}
#endif
#ifdef TERN_HAVE_XDP
	const char *ifn = o->ifname ? o->ifname : iface_of(o->listen, ifname, sizeof(ifname), why_xdp, sizeof(why_xdp));
	if (ifn && open_xdp(o, ifn, h, why_xdp, sizeof(why_xdp)) == 0) {
		fprintf(stderr, "ternd: --datapath auto chose xdp (dpdk: %s; %s %s)\n", why_dpdk,
			o->ifname ? "--interface" : "the listen address is on", ifn);
		return;
	}
#else
	(void)iface_of;
	(void)ifname;
#endif
	if (open_socket(o, h, err, sizeof(err)) < 0)
		die_usage("%s", err);
	fprintf(stderr, "ternd: --datapath auto chose socket (dpdk: %s; xdp: %s)\n", why_dpdk, why_xdp);
}

void dp_open(const struct dp_opts *o, struct dp_handle *h)
{
	char err[256] = "unknown error";
	int r = -1;
	memset(h, 0, sizeof(*h));
	if (strcmp(o->kind, "auto") == 0) {
		open_auto(o, h);
		return;
	}
	if (strcmp(o->kind, "socket") == 0)
		r = open_socket(o, h, err, sizeof(err));
#ifdef TERN_HAVE_XDP
	if (strcmp(o->kind, "xdp") == 0) {
		char ifname[IF_NAMESIZE + 1];
		const char *ifn = o->ifname ? o->ifname : iface_of(o->listen, ifname, sizeof(ifname), err, sizeof(err));
		r = ifn ? open_xdp(o, ifn, h, err, sizeof(err)) : -1;
	}
#endif
#ifdef TERN_HAVE_DPDK
	if (strcmp(o->kind, "dpdk") == 0)
		r = o->dpdk_eal ? open_dpdk(o, h, err, sizeof(err))
				: (snprintf(err, sizeof(err), "--datapath dpdk needs --dpdk-eal \"EAL ARGS\""), -1);
#endif
	if (r < 0)
		die_usage("%s", err);
}

int dp_fd(const struct dp_handle *h, unsigned q)
{
	if (strcmp(h->name, "socket") == 0)
		return tern_sock_fd(h->dp, q);
#ifdef TERN_HAVE_XDP
	if (strcmp(h->name, "xdp") == 0)
		return tern_xdp_fd(h->dp, q);
#endif
	return -1;
}

void dp_sock_stats(const struct dp_handle *h, unsigned q, struct tern_sock_stats *st)
{
	if (strcmp(h->name, "socket") == 0)
		tern_sock_stats(h->dp, q, st);
	else
		memset(st, 0, sizeof(*st));
}

void dp_queue_stats(const struct dp_handle *h, unsigned q, struct dp_queue_stats *st)
{
	memset(st, 0, sizeof(*st));
#ifdef TERN_HAVE_DPDK
	if (strcmp(h->name, "dpdk") == 0) {
		struct tern_dpdk_stats d;
		tern_dpdk_stats(h->dp, q, &d);
		st->n_drop = TERN_DPDK_DROP_COUNT < DP_MAX_DROP_REASONS ? TERN_DPDK_DROP_COUNT
									: DP_MAX_DROP_REASONS;
		memcpy(st->drop, d.drop, st->n_drop * sizeof(st->drop[0]));
		st->arp_replies = d.arp_replies;
		st->nd_replies = d.nd_replies;
		st->echo_replies = d.echo_replies;
		st->tx_dropped = d.tx_dropped;
		st->handoff_full = d.handoff_full;
	}
#else
	(void)h;
	(void)q;
#endif
}

const char *dp_drop_name(const struct dp_handle *h, unsigned reason)
{
#ifdef TERN_HAVE_DPDK
	if (strcmp(h->name, "dpdk") == 0)
		return tern_dpdk_drop_name((int)reason);
#endif
	(void)h;
	(void)reason;
	return "unknown";
}

void dp_prog_stats(const struct dp_handle *h, struct dp_prog_stats *st)
{
	memset(st, 0, sizeof(*st));
#ifdef TERN_HAVE_XDP
	struct tern_xdp_prog_stats x;
	if (strcmp(h->name, "xdp") == 0 && tern_xdp_prog_stats(h->dp, &x) == 0) {
		st->valid = 1;
		st->redirected = x.redirected;
		st->no_socket = x.no_socket;
		st->drop_short_initial = x.drop_short_initial;
		st->drop_fixed_bit = x.drop_fixed_bit;
		st->drop_empty = x.drop_empty;
		st->passed = x.passed;
	}
#else
	(void)h;
#endif
}

int dp_launch(struct dp_handle *h, int (*fn)(unsigned q, void *arg), void *arg, char *err,
	      size_t errlen)
{
#ifdef TERN_HAVE_DPDK
	if (strcmp(h->name, "dpdk") == 0)
		return tern_dpdk_launch(h->dp, fn, arg, err, errlen);
#endif
	(void)h;
	(void)fn;
	(void)arg;
	(void)err;
	(void)errlen;
	return 1;
}
