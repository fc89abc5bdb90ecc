/* tern: the kernel-socket datapath (include/tern/sock.h). The only file
 * under src/ that talks to the OS. */
#include "tern/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_QUEUES 1024
#define MAX_SLOTS 65536
/* The kernel's UDP_MAX_SEGMENTS. */
#define GSO_MAX_SEGS 64
/* One GSO send becomes one UDP datagram before segmentation, so its
 * payload must fit a 16-bit IP/UDP length with headers and options. */
#define GSO_MAX_BYTES 65000
#define HANDOFF_SLOTS 256
#define CTRL_LEN 128

struct tx_meta {
	uint32_t len;
	uint8_t ecn;
	uint8_t state; /* TX_FREE, TX_ALLOCATED, TX_QUEUED */
	struct tern_path path;
};

enum { TX_FREE, TX_ALLOCATED, TX_QUEUED };

/* Handoff: a bounded multi-producer queue per destination (Vyukov's
 * sequence-numbered ring), so any worker may push and only the owner pops,
 * without locks (DESIGN.md §1: workers meet only through hand-off rings). */
struct ho_slot {
	_Atomic size_t seq;
	uint32_t len;
	uint8_t ecn;
	uint64_t rx_ns;
	struct tern_path path;
};

struct ho_ring {
	_Alignas(64) _Atomic size_t enq;
	_Alignas(64) size_t deq;
	struct ho_slot *slots;
	uint8_t *data;
};

struct sock_queue {
	int fd;
	int family; /* AF_INET or AF_INET6 */
	int gso, gso_confirmed;
	struct tern_addr local;
	/* receive */
	uint8_t *rx_mem;
	unsigned *rx_free, rx_nfree;
	struct mmsghdr rx_msg[TERN_DP_BURST];
	struct iovec rx_iov[TERN_DP_BURST];
	struct sockaddr_in6 rx_name[TERN_DP_BURST];
	_Alignas(struct cmsghdr) char rx_ctrl[TERN_DP_BURST][CTRL_LEN];
	/* send */
	uint8_t *tx_mem;
	struct tx_meta *tx_meta;
	unsigned *tx_pending, tx_npending, tx_nalloc;
	struct mmsghdr *tx_msg;
	struct iovec *tx_iov;
	struct sockaddr_in6 *tx_name;
	char (*tx_ctrl)[CTRL_LEN];
	unsigned *tx_msg_first, *tx_msg_nseg;
	struct ho_ring ho;
	struct tern_dp_stats st;
	struct tern_sock_stats sst;
} __attribute__((aligned(64)));

struct sock_dp {
	struct tern_datapath dp; /* first: the contract's handle */
	unsigned rx_slots, tx_slots;
	size_t buf_size;
	struct sock_queue *q;
	struct pollfd *pfd;
};

static inline struct sock_dp *to_sdp(struct tern_datapath *dp)
{
	return (struct sock_dp *)dp;
}


/* ---- addresses ------------------------------------------------------------- */

int tern_sock_addr_parse(const char *s, struct tern_addr *out, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN];
	const char *colon, *h = s;
	size_t hlen;
	if (!s || !out) {
		tern_errf(err, errlen, "no address given");
		return TERN_ERR_INVAL;
	}
	memset(out, 0, sizeof(*out));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			goto bad;
		h = s + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
		out->family = 6;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			goto bad;
		hlen = (size_t)(colon - s);
		out->family = 4;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = 0;
	if (inet_pton(out->family == 4 ? AF_INET : AF_INET6, host, out->ip) != 1)
		goto bad;
	const char *p = colon + 1;
	unsigned long port = 0;
	if (*p == 0 || strlen(p) > 5)
		goto bad_port;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			goto bad_port;
		port = port * 10 + (unsigned long)(*p - '0');
	}
	if (port > 65535)
		goto bad_port;
	out->port = (uint16_t)port;
	return 0;
bad:
	tern_errf(err, errlen, "bad address '%s': expected A.B.C.D:PORT or [IPv6]:PORT", s);
	return TERN_ERR_INVAL;
bad_port:
	tern_errf(err, errlen, "bad port in '%s': expected 0..65535", s);
	return TERN_ERR_INVAL;
}

char *tern_sock_addr_format(const struct tern_addr *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	if (a->family == 4)
		inet_ntop(AF_INET, a->ip, ip, sizeof(ip));
	else if (a->family == 6)
		inet_ntop(AF_INET6, a->ip, ip, sizeof(ip));
	snprintf(buf, len, a->family == 6 ? "[%s]:%u" : "%s:%u", ip, a->port);
	return buf;
}

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* A v4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) is
 * reported as IPv4, so the core sees one address per peer however the
 * socket was opened. */
static void addr_from_in6(struct tern_addr *a, const struct in6_addr *ip, uint16_t port_be)
{
	memset(a, 0, sizeof(*a));
	a->port = ntohs(port_be);
	if (memcmp(ip->s6_addr, v4mapped_prefix, 12) == 0) {
		a->family = 4;
		memcpy(a->ip, ip->s6_addr + 12, 4);
	} else {
		a->family = 6;
		memcpy(a->ip, ip->s6_addr, 16);
	}
}

static void addr_from_sockaddr(struct tern_addr *a, const void *sa)
{
	const struct sockaddr_in *s4 = sa;
	if (s4->sin_family == AF_INET) {
		memset(a, 0, sizeof(*a));
		a->family = 4;
		a->port = ntohs(s4->sin_port);
		memcpy(a->ip, &s4->sin_addr, 4);
	} else {
		const struct sockaddr_in6 *s6 = sa;
		addr_from_in6(a, &s6->sin6_addr, s6->sin6_port);
	}
}

/* Fills sa for a socket of family af; 0 when the address cannot be
 * reached from such a socket (IPv6 from an IPv4 socket). */
static socklen_t addr_to_sockaddr(const struct tern_addr *a, int af, struct sockaddr_in6 *sa)
{
	memset(sa, 0, sizeof(*sa));
	if (af == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
		if (a->family != 4)
			return 0;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(a->port);
		memcpy(&s4->sin_addr, a->ip, 4);
		return sizeof(*s4);
	}
	sa->sin6_family = AF_INET6;
	sa->sin6_port = htons(a->port);
	if (a->family == 4) {
		memcpy(sa->sin6_addr.s6_addr, v4mapped_prefix, 12);
		memcpy(sa->sin6_addr.s6_addr + 12, a->ip, 4);
	} else if (a->family == 6) {
		memcpy(sa->sin6_addr.s6_addr, a->ip, 16);
	} else {
		return 0;
	}
	return sizeof(*sa);
}

static int addr_is_unspecified(const struct tern_addr *a)
{
	static const uint8_t zero[16];
	return memcmp(a->ip, zero, a->family == 4 ? 4 : 16) == 0;
}

/* ---- socket setup ------------------------------------------------------------ */

static int setopt_int(int fd, int level, int name, int v)
{
	return setsockopt(fd, level, name, &v, sizeof(v));
}

/* Root may go past net.core.rmem_max/wmem_max with the FORCE variants,
 * which a busy server needs; anyone else gets what the sysctl allows. */
static int set_bufsize(int fd, int force_name, int name, int bytes)
{
	if (bytes <= 0)
		return 0;
	if (geteuid() == 0 && setopt_int(fd, SOL_SOCKET, force_name, bytes) == 0)
		return 0;
	return setopt_int(fd, SOL_SOCKET, name, bytes);
}

/* Receive options: the local address (so replies leave from the address
 * the client used, RFC 9000 §9 treats a changed address as migration) and
 * the TOS/traffic class (for the ECN counts of RFC 9000 §13.4). */
static int set_rx_options(int fd, int af, int dual)
{
	if (af == AF_INET)
		return setopt_int(fd, IPPROTO_IP, IP_PKTINFO, 1) | setopt_int(fd, IPPROTO_IP, IP_RECVTOS, 1);
	int rc = setopt_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1) |
		 setopt_int(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, 1);
	if (dual)
		rc |= setopt_int(fd, IPPROTO_IP, IP_PKTINFO, 1) | setopt_int(fd, IPPROTO_IP, IP_RECVTOS, 1);
	return rc;
}

static int open_socket(struct sock_queue *q, const struct tern_addr *bind_addr, int reuseport,
		       const struct tern_sock_config *cfg, char *err, size_t errlen)
{
	char name[TERN_SOCK_ADDRSTRLEN];
	struct sockaddr_in6 sa;
	int dual = bind_addr->family == 6 && addr_is_unspecified(bind_addr);
	tern_sock_addr_format(bind_addr, name, sizeof(name));
	q->family = bind_addr->family == 4 ? AF_INET : AF_INET6;
	q->fd = socket(q->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (q->fd < 0) {
		tern_errf(err, errlen, "cannot create a UDP socket for %s: %s", name, strerror(errno));
		return TERN_ERR_IO;
	}
	const char *what = NULL;
	if (reuseport && setopt_int(q->fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0)
		what = "SO_REUSEPORT";
	else if (q->family == AF_INET6 && setopt_int(q->fd, IPPROTO_IPV6, IPV6_V6ONLY, !dual) < 0)
		what = "IPV6_V6ONLY";
	else if (set_rx_options(q->fd, q->family, dual) < 0)
		what = "IP_PKTINFO/IP_RECVTOS";
	else if (set_bufsize(q->fd, SO_RCVBUFFORCE, SO_RCVBUF, cfg->rcvbuf) < 0)
		what = "SO_RCVBUF";
	else if (set_bufsize(q->fd, SO_SNDBUFFORCE, SO_SNDBUF, cfg->sndbuf) < 0)
		what = "SO_SNDBUF";
	if (what) {
		tern_errf(err, errlen, "cannot set %s on the socket for %s: %s", what, name, strerror(errno));
		return TERN_ERR_IO;
	}
	/* RFC 9000 §14: QUIC datagrams must not be fragmented, so set DF.
	 * PROBE sets DF without letting a cached (spoofable) ICMP path MTU
	 * shrink what we may send; QUIC runs its own PMTU discovery. */
	if (q->family == AF_INET6)
		setopt_int(q->fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE);
	if (q->family == AF_INET || dual)
		setopt_int(q->fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE);

	socklen_t sl = addr_to_sockaddr(bind_addr, q->family, &sa);
	if (bind(q->fd, (struct sockaddr *)&sa, sl) < 0) {
		tern_errf(err, errlen, "cannot bind %s: %s", name, strerror(errno));
		return TERN_ERR_IO;
	}
	sl = sizeof(sa);
	if (getsockname(q->fd, (struct sockaddr *)&sa, &sl) < 0) {
		tern_errf(err, errlen, "cannot read the address bound for %s: %s", name, strerror(errno));
		return TERN_ERR_IO;
	}
	addr_from_sockaddr(&q->local, &sa);
	int seg = 0;
	socklen_t optlen = sizeof(seg);
	q->gso = !cfg->no_gso && getsockopt(q->fd, SOL_UDP, UDP_SEGMENT, &seg, &optlen) == 0;
	return 0;
}

/* ---- allocation --------------------------------------------------------------- */

static void *zalloc(size_t n, size_t size)
{
	void *p = NULL;
	if (n == 0 || size == 0 || n > SIZE_MAX / size)
		return NULL;
	if (posix_memalign(&p, 64, n * size) != 0)
		return NULL;
	memset(p, 0, n * size);
	return p;
}

static int queue_alloc(struct sock_dp *s, struct sock_queue *q)
{
	unsigned rs = s->rx_slots, ts = s->tx_slots;
	q->rx_mem = zalloc(rs, s->buf_size);
	q->rx_free = zalloc(rs, sizeof(unsigned));
	q->tx_mem = zalloc(ts, s->buf_size);
	q->tx_meta = zalloc(ts, sizeof(*q->tx_meta));
	q->tx_pending = zalloc(ts, sizeof(unsigned));
	q->tx_msg = zalloc(ts, sizeof(*q->tx_msg));
	q->tx_iov = zalloc(ts, sizeof(*q->tx_iov));
	q->tx_name = zalloc(ts, sizeof(*q->tx_name));
	q->tx_ctrl = zalloc(ts, sizeof(*q->tx_ctrl));
	q->tx_msg_first = zalloc(ts, sizeof(unsigned));
	q->tx_msg_nseg = zalloc(ts, sizeof(unsigned));
	if (!q->rx_mem || !q->rx_free || !q->tx_mem || !q->tx_meta || !q->tx_pending ||
	    !q->tx_msg || !q->tx_iov || !q->tx_name || !q->tx_ctrl || !q->tx_msg_first ||
	    !q->tx_msg_nseg)
		return TERN_ERR_NOMEM;
	for (unsigned i = 0; i < rs; i++)
		q->rx_free[i] = rs - 1 - i;
	q->rx_nfree = rs;
	if (s->dp.n_queues > 1) {
		q->ho.slots = zalloc(HANDOFF_SLOTS, sizeof(struct ho_slot));
		q->ho.data = zalloc(HANDOFF_SLOTS, s->buf_size);
		if (!q->ho.slots || !q->ho.data)
			return TERN_ERR_NOMEM;
		for (size_t i = 0; i < HANDOFF_SLOTS; i++)
			atomic_init(&q->ho.slots[i].seq, i);
		atomic_init(&q->ho.enq, 0);
		q->ho.deq = 0;
	}
	return 0;
}

static void queue_free(struct sock_queue *q)
{
	if (q->fd >= 0)
		close(q->fd);
	free(q->rx_mem);
	free(q->rx_free);
	free(q->tx_mem);
	free(q->tx_meta);
	free(q->tx_pending);
	free(q->tx_msg);
	free(q->tx_iov);
	free(q->tx_name);
	free(q->tx_ctrl);
	free(q->tx_msg_first);
	free(q->tx_msg_nseg);
	free(q->ho.slots);
	free(q->ho.data);
}

static void sock_close(struct tern_datapath *dp)
{
	struct sock_dp *s = to_sdp(dp);
	if (!s)
		return;
	for (unsigned i = 0; s->q && i < dp->n_queues; i++)
		queue_free(&s->q[i]);
	free(s->q);
	free(s->pfd);
	free(s);
}

/* ---- receive -------------------------------------------------------------------- */

static void parse_rx_cmsgs(struct msghdr *mh, struct tern_dp_pkt *pkt)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			pkt->path.local.family = 4;
			memcpy(pkt->path.local.ip, &pi.ipi_addr, 4);
		} else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) {
			pkt->ecn = *(const uint8_t *)CMSG_DATA(c) & 3;
		} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			uint16_t port = pkt->path.local.port;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			addr_from_in6(&pkt->path.local, &pi.ipi6_addr, 0);
			pkt->path.local.port = port;
		} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS) {
			int tc;
			memcpy(&tc, CMSG_DATA(c), sizeof(tc));
			pkt->ecn = (uint8_t)(tc & 3);
		}
	}
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned rx_pop(struct sock_queue *q)
{
	return q->rx_free[--q->rx_nfree];
}

/* Moves packets other queues handed to q into q's own receive buffers, so
 * every packet rx_burst returns is released the same way. */
static unsigned handoff_drain(struct sock_dp *s, struct sock_queue *q, struct tern_dp_pkt *pkts,
			      unsigned n)
{
	struct ho_ring *r = &q->ho;
	unsigned got = 0;
	if (!r->slots)
		return 0;
	while (got < n && q->rx_nfree > 0) {
		struct ho_slot *sl = &r->slots[r->deq & (HANDOFF_SLOTS - 1)];
		if (atomic_load_explicit(&sl->seq, memory_order_acquire) != r->deq + 1)
			break;
		unsigned idx = rx_pop(q);
		struct tern_dp_pkt *p = &pkts[got++];
		p->data = q->rx_mem + (size_t)idx * s->buf_size;
		memcpy(p->data, r->data + (r->deq & (HANDOFF_SLOTS - 1)) * s->buf_size, sl->len);
		p->len = sl->len;
		p->cap = (uint32_t)s->buf_size;
		p->path = sl->path;
		p->ecn = sl->ecn;
		p->rx_ns = sl->rx_ns;
		p->priv = (void *)(uintptr_t)(idx + 1);
		atomic_store_explicit(&sl->seq, r->deq + HANDOFF_SLOTS, memory_order_release);
		r->deq++;
	}
	return got;
}

static int sock_rx_burst(struct tern_datapath *dp, unsigned qi, struct tern_dp_pkt *pkts, unsigned n)
{
	struct sock_dp *s = to_sdp(dp);
	if (qi >= dp->n_queues || !pkts)
		return TERN_ERR_INVAL;
	struct sock_queue *q = &s->q[qi];
	unsigned idx[TERN_DP_BURST];
	n = n > TERN_DP_BURST ? TERN_DP_BURST : n;
	unsigned got = handoff_drain(s, q, pkts, n);
	unsigned want = n - got < q->rx_nfree ? n - got : q->rx_nfree;
	if (want == 0)
		return got || n == 0 ? (int)got : TERN_ERR_NOMEM;
	for (unsigned k = 0; k < want; k++) {
		idx[k] = rx_pop(q);
		q->rx_iov[k].iov_base = q->rx_mem + (size_t)idx[k] * s->buf_size;
		q->rx_iov[k].iov_len = s->buf_size;
		struct msghdr *mh = &q->rx_msg[k].msg_hdr;
		mh->msg_name = &q->rx_name[k];
		mh->msg_namelen = sizeof(q->rx_name[k]);
		mh->msg_iov = &q->rx_iov[k];
		mh->msg_iovlen = 1;
		mh->msg_control = q->rx_ctrl[k];
		mh->msg_controllen = CTRL_LEN;
		mh->msg_flags = 0;
	}
	int r = recvmmsg(q->fd, q->rx_msg, want, MSG_DONTWAIT, NULL);
	q->sst.syscalls_rx++;
	int fail = r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
	unsigned nr = r > 0 ? (unsigned)r : 0;
	uint64_t now = nr ? mono_ns() : 0;
	for (unsigned k = 0; k < want; k++) {
		struct msghdr *mh = &q->rx_msg[k].msg_hdr;
		if (k >= nr || (mh->msg_flags & MSG_TRUNC)) {
			/* A datagram longer than our buffers is larger than the
			 * max_udp_payload_size we advertise (RFC 9000 §18.2):
			 * drop it. */
			if (k < nr) {
				q->sst.rx_truncated++;
				q->st.rx_dropped++;
			}
			q->rx_free[q->rx_nfree++] = idx[k];
			continue;
		}
		struct tern_dp_pkt *p = &pkts[got++];
		memset(p, 0, sizeof(*p));
		p->data = q->rx_iov[k].iov_base;
		p->len = q->rx_msg[k].msg_len;
		p->cap = (uint32_t)s->buf_size;
		addr_from_sockaddr(&p->path.remote, mh->msg_name);
		p->path.local = q->local;
		parse_rx_cmsgs(mh, p);
		p->rx_ns = now;
		p->priv = (void *)(uintptr_t)(idx[k] + 1);
		q->st.rx_pkts++;
		q->st.rx_bytes += p->len;
	}
	return got == 0 && fail ? TERN_ERR_IO : (int)got;
}

static void sock_rx_release(struct tern_datapath *dp, unsigned qi, struct tern_dp_pkt *pkts, unsigned n)
{
	struct sock_dp *s = to_sdp(dp);
	if (qi >= dp->n_queues || !pkts)
		return;
	struct sock_queue *q = &s->q[qi];
	for (unsigned i = 0; i < n; i++) {
		uintptr_t v = (uintptr_t)pkts[i].priv;
		/* Ignore what is not one of our buffers or comes back twice,
		 * rather than corrupt the free list. */
		if (v == 0 || v > s->rx_slots || q->rx_nfree >= s->rx_slots)
			continue;
		q->rx_free[q->rx_nfree++] = (unsigned)(v - 1);
		pkts[i].priv = NULL;
	}
}

/* ---- send ------------------------------------------------------------------------ */

static int sock_tx_alloc(struct tern_datapath *dp, unsigned qi, struct tern_dp_pkt *pkt, size_t size)
{
	struct sock_dp *s = to_sdp(dp);
	if (qi >= dp->n_queues || !pkt)
		return TERN_ERR_INVAL;
	if (size > s->buf_size)
		return TERN_ERR_NOBUF;
	struct sock_queue *q = &s->q[qi];
	if (q->tx_nalloc >= s->tx_slots)
		return TERN_ERR_NOMEM;
	unsigned idx = q->tx_nalloc++;
	q->tx_meta[idx].state = TX_ALLOCATED;
	memset(pkt, 0, sizeof(*pkt));
	pkt->data = q->tx_mem + (size_t)idx * s->buf_size;
	pkt->cap = (uint32_t)s->buf_size;
	pkt->priv = (void *)(uintptr_t)(idx + 1);
	return 0;
}

static int sock_tx_enqueue(struct tern_datapath *dp, unsigned qi, struct tern_dp_pkt *pkt)
{
	struct sock_dp *s = to_sdp(dp);
	struct sockaddr_in6 sa;
	if (qi >= dp->n_queues || !pkt)
		return TERN_ERR_INVAL;
	struct sock_queue *q = &s->q[qi];
	uintptr_t v = (uintptr_t)pkt->priv;
	if (v == 0 || v > q->tx_nalloc || q->tx_meta[v - 1].state != TX_ALLOCATED ||
	    pkt->data != q->tx_mem + (v - 1) * s->buf_size)
		return TERN_ERR_INVAL;
	if (pkt->len == 0 || pkt->len > s->buf_size ||
	    addr_to_sockaddr(&pkt->path.remote, q->family, &sa) == 0)
		return TERN_ERR_INVAL;
	struct tx_meta *m = &q->tx_meta[v - 1];
	m->len = pkt->len;
	m->ecn = pkt->ecn & 3;
	m->path = pkt->path;
	m->state = TX_QUEUED;
	q->tx_pending[q->tx_npending++] = (unsigned)(v - 1);
	return 0;
}

static int same_flow(const struct tx_meta *a, const struct tx_meta *b)
{
	return a->ecn == b->ecn && tern_addr_equal(&a->path.remote, &b->path.remote) &&
	       a->path.local.family == b->path.local.family &&
	       (a->path.local.family == 0 || tern_addr_equal(&a->path.local, &b->path.local));
}

static void put_cmsg(struct msghdr *mh, size_t *off, int level, int type, const void *data,
		     size_t len)
{
	struct cmsghdr *c = (struct cmsghdr *)((char *)mh->msg_control + *off);
	c->cmsg_level = level;
	c->cmsg_type = type;
	c->cmsg_len = CMSG_LEN(len);
	memcpy(CMSG_DATA(c), data, len);
	*off += CMSG_SPACE(len);
}

/* Source address, ECN bits and GSO segment size of one message, at the
 * level of the destination's family (a dual-stack socket sends to IPv4
 * peers through the IPv4 code, which reads SOL_IP options). */
static size_t tx_cmsgs(struct msghdr *mh, const struct tx_meta *m, uint16_t gso_size)
{
	size_t off = 0;
	int ecn = m->ecn;
	const struct tern_addr *l = &m->path.local;
	if (m->path.remote.family == 4) {
		if (l->family == 4 && !addr_is_unspecified(l)) {
			struct in_pktinfo pi = {0};
			memcpy(&pi.ipi_spec_dst, l->ip, 4);
			put_cmsg(mh, &off, IPPROTO_IP, IP_PKTINFO, &pi, sizeof(pi));
		}
		if (ecn)
			put_cmsg(mh, &off, IPPROTO_IP, IP_TOS, &ecn, sizeof(ecn));
	} else {
		if (l->family == 6 && !addr_is_unspecified(l)) {
			struct in6_pktinfo pi = {0};
			memcpy(&pi.ipi6_addr, l->ip, 16);
			put_cmsg(mh, &off, IPPROTO_IPV6, IPV6_PKTINFO, &pi, sizeof(pi));
		}
		if (ecn)
			put_cmsg(mh, &off, IPPROTO_IPV6, IPV6_TCLASS, &ecn, sizeof(ecn));
	}
	if (gso_size)
		put_cmsg(mh, &off, SOL_UDP, UDP_SEGMENT, &gso_size, sizeof(gso_size));
	return off;
}

/* How many pending datagrams from position i go in one GSO send: same
 * flow, same size, except that the last may be shorter (the kernel cuts
 * the payload every gso_size bytes). */
static unsigned gso_run(const struct sock_queue *q, unsigned i)
{
	const struct tx_meta *m = &q->tx_meta[q->tx_pending[i]];
	unsigned nseg = 1;
	size_t total = m->len;
	while (i + nseg < q->tx_npending && nseg < GSO_MAX_SEGS) {
		const struct tx_meta *nx = &q->tx_meta[q->tx_pending[i + nseg]];
		if (nx->len > m->len || total + nx->len > GSO_MAX_BYTES || !same_flow(m, nx))
			break;
		nseg++;
		total += nx->len;
		if (nx->len < m->len)
			break;
	}
	return nseg;
}

/* Builds the sendmmsg messages for the pending datagrams from position
 * `from`; returns how many. */
static unsigned tx_build(struct sock_queue *q, unsigned from, int gso, size_t buf_size)
{
	unsigned nm = 0;
	for (unsigned i = from; i < q->tx_npending; nm++) {
		unsigned nseg = gso ? gso_run(q, i) : 1;
		const struct tx_meta *m = &q->tx_meta[q->tx_pending[i]];
		for (unsigned k = 0; k < nseg; k++) {
			unsigned idx = q->tx_pending[i + k];
			q->tx_iov[i + k].iov_base = q->tx_mem + (size_t)idx * buf_size;
			q->tx_iov[i + k].iov_len = q->tx_meta[idx].len;
		}
		struct msghdr *mh = &q->tx_msg[nm].msg_hdr;
		memset(mh, 0, sizeof(*mh));
		mh->msg_name = &q->tx_name[nm];
		mh->msg_namelen = addr_to_sockaddr(&m->path.remote, q->family, &q->tx_name[nm]);
		mh->msg_iov = &q->tx_iov[i];
		mh->msg_iovlen = nseg;
		mh->msg_control = q->tx_ctrl[nm];
		mh->msg_controllen = tx_cmsgs(mh, m, nseg > 1 ? (uint16_t)m->len : 0);
		if (mh->msg_controllen == 0)
			mh->msg_control = NULL;
		q->tx_msg_first[nm] = i;
		q->tx_msg_nseg[nm] = nseg;
		i += nseg;
	}
	return nm;
}

static void tx_account(struct sock_queue *q, unsigned msg)
{
	unsigned nseg = q->tx_msg_nseg[msg], first = q->tx_msg_first[msg];
	q->st.tx_pkts += nseg;
	for (unsigned k = 0; k < nseg; k++)
		q->st.tx_bytes += q->tx_meta[q->tx_pending[first + k]].len;
	if (nseg > 1) {
		q->sst.gso_sends++;
		q->sst.gso_segments += nseg;
		q->gso_confirmed = 1;
	}
}

static int sock_tx_flush(struct tern_datapath *dp, unsigned qi)
{
	struct sock_dp *s = to_sdp(dp);
	if (qi >= dp->n_queues)
		return TERN_ERR_INVAL;
	struct sock_queue *q = &s->q[qi];
	uint64_t before = q->st.tx_pkts;
	unsigned nm = tx_build(q, 0, q->gso, s->buf_size), i = 0;
	while (i < nm) {
		int r = sendmmsg(q->fd, &q->tx_msg[i], nm - i, 0);
		q->sst.syscalls_tx++;
		if (r > 0) {
			for (unsigned k = 0; k < (unsigned)r; k++)
				tx_account(q, i + k);
			i += (unsigned)r;
		} else if (errno == EINTR) {
			continue;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
			for (; i < nm; i++)
				q->st.tx_dropped += q->tx_msg_nseg[i];
		} else if ((errno == EIO || errno == EINVAL) && q->tx_msg_nseg[i] > 1) {
			/* The kernel or the device cannot segment (no checksum
			 * offload: EIO; SO_NO_CHECK, xfrm, MTU: EINVAL). If
			 * GSO never worked on this socket, stop trying; either
			 * way, resend the rest one datagram per message. */
			q->sst.gso_fallbacks++;
			if (!q->gso_confirmed)
				q->gso = 0;
			nm = tx_build(q, q->tx_msg_first[i], 0, s->buf_size);
			i = 0;
		} else {
			/* This destination is refused (unreachable, too big,
			 * filtered): drop its datagrams, send the others. */
			q->st.tx_dropped += q->tx_msg_nseg[i++];
		}
	}
	for (unsigned k = 0; k < q->tx_nalloc; k++)
		q->tx_meta[k].state = TX_FREE;
	q->tx_npending = q->tx_nalloc = 0;
	return (int)(q->st.tx_pkts - before);
}

/* ---- handoff ------------------------------------------------------------------- */

static int sock_handoff(struct tern_datapath *dp, unsigned q_from, unsigned q_to, struct tern_dp_pkt *pkt)
{
	struct sock_dp *s = to_sdp(dp);
	if (q_from >= dp->n_queues || q_to >= dp->n_queues || !pkt || pkt->len > s->buf_size)
		return TERN_ERR_INVAL;
	struct ho_ring *r = &s->q[q_to].ho;
	if (!r->slots)
		return TERN_ERR_INVAL;
	size_t pos = atomic_load_explicit(&r->enq, memory_order_relaxed);
	struct ho_slot *sl;
	for (;;) {
		sl = &r->slots[pos & (HANDOFF_SLOTS - 1)];
		size_t seq = atomic_load_explicit(&sl->seq, memory_order_acquire);
		intptr_t diff = (intptr_t)seq - (intptr_t)pos;
		if (diff == 0) {
			if (atomic_compare_exchange_weak_explicit(&r->enq, &pos, pos + 1,
								  memory_order_relaxed, memory_order_relaxed))
				break;
		} else if (diff < 0) {
			return TERN_ERR_NOMEM; /* the consumer is a lap behind */
		} else {
			pos = atomic_load_explicit(&r->enq, memory_order_relaxed);
		}
	}
	memcpy(r->data + (pos & (HANDOFF_SLOTS - 1)) * s->buf_size, pkt->data, pkt->len);
	sl->len = pkt->len;
	sl->ecn = pkt->ecn;
	sl->rx_ns = pkt->rx_ns;
	sl->path = pkt->path;
	atomic_store_explicit(&sl->seq, pos + 1, memory_order_release);
	s->q[q_from].st.handed_off++;
	return 0;
}

/* ---- the rest of the contract -------------------------------------------------- */

static void sock_stats(struct tern_datapath *dp, unsigned qi, struct tern_dp_stats *st)
{
	if (qi >= dp->n_queues) {
		memset(st, 0, sizeof(*st));
		return;
	}
	*st = to_sdp(dp)->q[qi].st;
}

static const struct tern_datapath_ops sock_ops = {
	.name = "socket",
	.rx_burst = sock_rx_burst,
	.rx_release = sock_rx_release,
	.tx_alloc = sock_tx_alloc,
	.tx_enqueue = sock_tx_enqueue,
	.tx_flush = sock_tx_flush,
	.handoff = sock_handoff,
	.stats = sock_stats,
	.close = sock_close,
};

static int check_config(const struct tern_sock_config *cfg, struct tern_addr *addr, char *err,
			size_t errlen)
{
	if (!cfg) {
		tern_errf(err, errlen, "no socket configuration given");
		return TERN_ERR_INVAL;
	}
	if (cfg->n_queues > MAX_QUEUES || cfg->rx_slots > MAX_SLOTS || cfg->tx_slots > MAX_SLOTS ||
	    cfg->buf_size > 65535 || (cfg->buf_size && cfg->buf_size < 1200)) {
		tern_errf(err, errlen, "bad socket configuration: at most %d queues, %d slots, "
			"buffers of 1200..65535 bytes", MAX_QUEUES, MAX_SLOTS);
		return TERN_ERR_INVAL;
	}
	if (cfg->rcvbuf < 0 || cfg->sndbuf < 0) {
		tern_errf(err, errlen, "bad socket configuration: negative buffer size");
		return TERN_ERR_INVAL;
	}
	return tern_sock_addr_parse(cfg->listen, addr, err, errlen);
}

int tern_sock_open(struct tern_datapath **dpp, const struct tern_sock_config *cfg, char *err,
		   size_t errlen)
{
	struct tern_addr addr;
	if (!dpp)
		return TERN_ERR_INVAL;
	*dpp = NULL;
	int rc = check_config(cfg, &addr, err, errlen);
	if (rc < 0)
		return rc;
	struct sock_dp *s = calloc(1, sizeof(*s));
	if (!s)
		goto nomem;
	s->dp.ops = &sock_ops;
	s->dp.n_queues = cfg->n_queues ? cfg->n_queues : 1;
	s->rx_slots = cfg->rx_slots ? cfg->rx_slots : 4 * TERN_DP_BURST;
	s->tx_slots = cfg->tx_slots ? cfg->tx_slots : 8 * TERN_DP_BURST;
	s->buf_size = cfg->buf_size ? cfg->buf_size : TERN_DP_MAX_PAYLOAD;
	s->q = zalloc(s->dp.n_queues, sizeof(*s->q));
	s->pfd = zalloc(s->dp.n_queues, sizeof(*s->pfd));
	if (!s->q || !s->pfd) {
		free(s->q);
		s->q = NULL;
		goto nomem;
	}
	for (unsigned i = 0; i < s->dp.n_queues; i++)
		s->q[i].fd = -1;
	for (unsigned i = 0; i < s->dp.n_queues; i++) {
		/* Port 0: the first socket gets an ephemeral port and the
		 * others join it there. */
		rc = open_socket(&s->q[i], &addr, s->dp.n_queues > 1, cfg, err, errlen);
		if (rc == 0 && queue_alloc(s, &s->q[i]) < 0)
			goto nomem;
		if (rc < 0)
			goto fail;
		addr.port = s->q[i].local.port;
		s->pfd[i].fd = s->q[i].fd;
		s->pfd[i].events = POLLIN;
	}
	*dpp = &s->dp;
	return 0;
nomem:
	tern_errf(err, errlen, "cannot allocate the socket datapath's buffers");
	rc = TERN_ERR_NOMEM;
fail:
	if (s)
		sock_close(&s->dp);
	return rc;
}

/* ---- helpers for programs ---------------------------------------------------------- */

int tern_sock_local_addr(struct tern_datapath *dp, unsigned q, struct tern_addr *out)
{
	if (!dp || q >= dp->n_queues || !out)
		return TERN_ERR_INVAL;
	*out = to_sdp(dp)->q[q].local;
	return 0;
}

int tern_sock_fd(struct tern_datapath *dp, unsigned q)
{
	return dp && q < dp->n_queues ? to_sdp(dp)->q[q].fd : -1;
}

int tern_sock_gso(struct tern_datapath *dp)
{
	for (unsigned i = 0; i < dp->n_queues; i++)
		if (!to_sdp(dp)->q[i].gso)
			return 0;
	return 1;
}

void tern_sock_stats(struct tern_datapath *dp, unsigned q, struct tern_sock_stats *st)
{
	if (!dp || q >= dp->n_queues)
		memset(st, 0, sizeof(*st));
	else
		*st = to_sdp(dp)->q[q].sst;
}

int tern_sock_wait(struct tern_datapath *dp, int q, int64_t timeout_ns)
{
	struct sock_dp *s = to_sdp(dp);
	struct pollfd one, *fds = s->pfd;
	nfds_t n = dp->n_queues;
	if (q >= (int)dp->n_queues)
		return TERN_ERR_INVAL;
	if (q >= 0) {
		/* A local pollfd, so workers may wait on their own queue at
		 * the same time. */
		one.fd = s->q[q].fd;
		one.events = POLLIN;
		fds = &one;
		n = 1;
	}
	struct timespec ts, *tsp = NULL;
	if (timeout_ns >= 0) {
		ts.tv_sec = (time_t)(timeout_ns / 1000000000);
		ts.tv_nsec = (long)(timeout_ns % 1000000000);
		tsp = &ts;
	}
	int r = ppoll(fds, n, tsp, NULL);
	if (r < 0)
		return errno == EINTR ? 0 : TERN_ERR_IO;
	return r > 0;
}
