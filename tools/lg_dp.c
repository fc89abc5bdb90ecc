/* tern-bench's datapaths: the kernel socket one always, AF_XDP and DPDK
 * where this build has them, behind the contract of tern/datapath.h. A
 * load generator is a client: unlike ternd it must find its peer's MAC
 * before it sends (the server learns its peers from their frames), and the
 * reset probe owns a range of local ports so that a reply names its trigger
 * by the port it comes back to. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "datapaths.h"
#include "lg.h"
#include "tern/sock.h"
#ifdef TERN_HAVE_XDP
#include "tern/xdp.h"
#endif
#ifdef TERN_HAVE_DPDK
#include "tern/dpdk.h"
#endif

#define RESOLVE_NS 3000000000ull /* how long ARP may take before the run */
#define RESOLVE_RETRY_NS 200000000ull
#define DISCARD_PORT 9 /* RFC 863: where the one probe datagram goes */

/* What this build has is ternd's answer too (datapaths.c). */
int lg_dp_known(const char *name, const char **why)
{
	*why = dp_unavailable(name);
	return !strcmp(name, "socket") || !strcmp(name, "xdp") || !strcmp(name, "dpdk");
}

#if defined(TERN_HAVE_XDP) || defined(TERN_HAVE_DPDK)
static void log_line(void *ctx, const char *line)
{
	(void)ctx;
	fprintf(stderr, "tern-bench: %s\n", line);
}
#endif

/* ---- kernel sockets ---------------------------------------------------------- */

/* The local address to bind: the loopback of the target's family, so the
 * path the engine sees is the one datagrams arrive on; the wildcard for
 * the benchmark range (RFC 2544's 198.18.0.0/15), where routing picks. */
static const char *bind_for(const struct tern_addr *t)
{
	if (t->family == 6)
		return "[::1]:0";
	return t->ip[0] == 127 ? "127.0.0.1:0" : "0.0.0.0:0";
}

static int open_socket(struct lg_dp *d, const struct lg_opts *o, char *err, size_t errlen)
{
	struct tern_sock_config sc = {
		.listen = o->local_text ? o->local_text : bind_for(&o->target),
		.rcvbuf = 4 << 20,
		.sndbuf = 4 << 20,
		.rx_slots = 8 * TERN_DP_BURST,
		.tx_slots = 16 * TERN_DP_BURST,
	};
	if (tern_sock_open(&d->dp, &sc, err, errlen) < 0)
		return -1;
	tern_sock_local_addr(d->dp, 0, &d->local);
	d->fd = tern_sock_fd(d->dp, 0);
	d->n_ports = 1;
	return 0;
}

/* ---- AF_XDP ------------------------------------------------------------------- */

#ifdef TERN_HAVE_XDP
/* The kernel's ARP entry for ip on ifname (complete ones only). */
static int arp_table_lookup(const uint8_t ip[4], const char *ifname, uint8_t mac[6])
{
	FILE *f = fopen("/proc/net/arp", "r");
	char line[256], want[INET_ADDRSTRLEN];
	int found = -1;
	if (!f)
		return -1;
	inet_ntop(AF_INET, ip, want, sizeof(want));
	while (found < 0 && fgets(line, sizeof(line), f)) {
		char a[64], hw[64], dev[64];
		unsigned type, flags, m[6];
		if (sscanf(line, "%63s 0x%x 0x%x %63s %*s %63s", a, &type, &flags, hw, dev) != 5 ||
		    strcmp(a, want) || strcmp(dev, ifname) || !(flags & 0x2) ||
		    sscanf(hw, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
			continue;
		for (int i = 0; i < 6; i++)
			mac[i] = (uint8_t)m[i];
		found = 0;
	}
	fclose(f);
	return found;
}

/* The interface still belongs to the kernel (the program steers only our
 * ports): let its ARP find the target, nudged by one empty datagram to the
 * discard port, and read the answer from its table. */
static int kernel_resolve(const struct lg_opts *o, uint8_t mac[6], char *err, size_t errlen)
{
	if (o->target.family != 4) {
		snprintf(err, errlen, "--datapath xdp to an IPv6 target needs --peer-mac");
		return -1;
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(DISCARD_PORT)};
	memcpy(&sa.sin_addr, o->target.ip, 4);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	uint64_t t0 = lg_now(), last = 0;
	int r = -1;
	while (s >= 0 && (r = arp_table_lookup(o->target.ip, o->ifname, mac)) < 0 &&
	       lg_now() - t0 < RESOLVE_NS && !lg_stop) {
		if (!last || lg_now() - last >= RESOLVE_RETRY_NS) {
			sendto(s, "", 0, 0, (const struct sockaddr *)&sa, sizeof(sa));
			last = lg_now();
		}
		nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
	}
	if (s >= 0)
		close(s);
	if (r < 0)
		snprintf(err, errlen, "no ARP answer for %s on %s within 3 s (give --peer-mac)",
			 o->target_text, o->ifname);
	return r;
}

static int open_xdp(struct lg_dp *d, const struct lg_opts *o, unsigned n_ports, char *err,
		    size_t errlen)
{
	struct tern_xdp_config xc = {.ifname = o->ifname, .n_listen = 1, .n_queues = 1,
				     .n_ports = n_ports, .log = log_line};
	xc.listen[0] = o->local;
	if (o->has_peer_mac) {
		xc.has_peer_mac = 1;
		memcpy(xc.peer_mac, o->peer_mac, 6);
	} else if (kernel_resolve(o, xc.peer_mac, err, errlen) < 0) {
		return -1;
	} else {
		xc.has_peer_mac = 1;
	}
	if (tern_xdp_open(&d->dp, &xc, err, errlen) < 0)
		return -1;
	d->local = o->local;
	d->n_ports = n_ports;
	d->fd = tern_xdp_fd(d->dp, 0);
	return 0;
}
#endif

/* ---- DPDK --------------------------------------------------------------------- */

#ifdef TERN_HAVE_DPDK
/* One empty datagram to the target's discard port: while the target's MAC
 * is unknown the datapath drops it and solicits (ARP or ND), and the answer
 * teaches the cache as the datapath reads it. Done when a probe leaves. */
static int dpdk_probe(struct tern_datapath *dp, const struct tern_addr *target)
{
	struct tern_dpdk_stats before, after;
	struct tern_dp_pkt pkt;
	tern_dpdk_stats(dp, 0, &before);
	if (dp->ops->tx_alloc(dp, 0, &pkt, 0) < 0)
		return -1;
	pkt.len = 0;
	memset(&pkt.path, 0, sizeof(pkt.path));
	pkt.path.remote = *target;
	pkt.path.remote.port = DISCARD_PORT;
	dp->ops->tx_enqueue(dp, 0, &pkt);
	dp->ops->tx_flush(dp, 0);
	tern_dpdk_stats(dp, 0, &after);
	return after.tx_no_neigh == before.tx_no_neigh && after.tx_pkts > before.tx_pkts ? 0 : -1;
}

static int dpdk_resolve(struct lg_dp *d, const struct lg_opts *o, char *err, size_t errlen)
{
	uint64_t t0 = lg_now();
	while (lg_now() - t0 < RESOLVE_NS && !lg_stop) {
		if (dpdk_probe(d->dp, &o->target) == 0)
			return 0;
		uint64_t t1 = lg_now();
		while (lg_now() - t1 < RESOLVE_RETRY_NS) {
			struct tern_dp_pkt pkts[TERN_DP_BURST];
			int n = d->dp->ops->rx_burst(d->dp, 0, pkts, TERN_DP_BURST);
			if (n > 0) /* stray datagrams before the run: not ours yet */
				d->dp->ops->rx_release(d->dp, 0, pkts, (unsigned)n);
			d->dp->ops->tx_flush(d->dp, 0); /* ARP/ND answers we owe */
		}
	}
	snprintf(err, errlen, "no ARP/ND answer for %s within 3 s (give --peer-mac)", o->target_text);
	return -1;
}

static int open_dpdk(struct lg_dp *d, const struct lg_opts *o, unsigned n_ports, char *err,
		     size_t errlen)
{
	char ip[INET6_ADDRSTRLEN];
	inet_ntop(o->local.family == 4 ? AF_INET : AF_INET6, o->local.ip, ip, sizeof(ip));
	struct tern_dpdk_config dc = {.eal_args = o->dpdk_eal, .port = o->dpdk_port, .n_queues = 1,
				      .udp_port = o->local.port, .udp_ports = (uint16_t)n_ports,
				      .log = log_line};
	if (o->local.family == 4)
		dc.addr4 = ip;
	else
		dc.addr6 = ip;
	if (tern_dpdk_open(&d->dp, &dc, err, errlen) < 0)
		return -1;
	d->local = o->local;
	d->n_ports = n_ports;
	d->fd = -1;
	if (o->has_peer_mac)
		return tern_dpdk_neigh_add(d->dp, &o->target, o->peer_mac) < 0 ? -1 : 0;
	return dpdk_resolve(d, o, err, errlen);
}
#endif

/* ---- the choice ------------------------------------------------------------------ */

int lg_dp_open(struct lg_dp *d, const struct lg_opts *o, unsigned n_ports)
{
	char err[256] = "this datapath is not in this build";
	int r = -1;
	memset(d, 0, sizeof(*d));
	d->fd = -1;
	if (!strcmp(o->datapath, "socket"))
		r = open_socket(d, o, err, sizeof(err));
#ifdef TERN_HAVE_XDP
	else if (!strcmp(o->datapath, "xdp"))
		r = open_xdp(d, o, n_ports, err, sizeof(err));
#endif
#ifdef TERN_HAVE_DPDK
	else if (!strcmp(o->datapath, "dpdk"))
		r = open_dpdk(d, o, n_ports, err, sizeof(err));
#endif
	(void)n_ports;
	if (r < 0) {
		fprintf(stderr, "tern-bench: --datapath %s: %s\n", o->datapath, err);
		lg_dp_close(d);
	} else if (strcmp(o->datapath, "socket")) {
		char a[TERN_SOCK_ADDRSTRLEN];
		tern_sock_addr_format(&d->local, a, sizeof(a));
		fprintf(stderr, "tern-bench: sending from %s (%u port%s) on the %s datapath\n", a,
			d->n_ports, d->n_ports > 1 ? "s" : "", o->datapath);
	}
	return r;
}

void lg_dp_close(struct lg_dp *d)
{
	if (d->dp)
		d->dp->ops->close(d->dp);
	d->dp = NULL;
}

void lg_dp_wait(struct lg_dp *d, unsigned n, int64_t timeout_ns)
{
	struct pollfd pfd[LG_MAX_SIZES];
	nfds_t k = 0;
	for (unsigned i = 0; i < n && k < LG_MAX_SIZES; i++)
		if (d[i].fd >= 0)
			pfd[k++] = (struct pollfd){.fd = d[i].fd, .events = POLLIN};
	if (timeout_ns <= 0 || k < n)
		return; /* busy-polled datapaths never sleep */
	struct timespec ts = {.tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000};
	ppoll(pfd, k, &ts, NULL);
}
