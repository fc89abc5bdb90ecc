/* SO_REUSEPORT steering by CID (bpf/tern_reuseport.bpf.c): UDP sockets in
 * one reuseport group on loopback, datagrams from many client ports, and
 * every short header must land on the socket of the worker its CID names.
 * Root only (loading BPF). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tern/reuseport.h"

#define MAX_W 4
#define CLIENTS 16

static int workers[MAX_W], clients[CLIENTS];
static int n_workers, fam;
static struct sockaddr_in6 server;
static socklen_t server_len;

static void need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("needs root (loading BPF)");
	for (int i = 0; i < MAX_W; i++)
		workers[i] = -1;
	for (int i = 0; i < CLIENTS; i++)
		clients[i] = -1;
}

static void close_all(void)
{
	for (int i = 0; i < MAX_W; i++)
		if (workers[i] >= 0)
			close(workers[i]);
	for (int i = 0; i < CLIENTS; i++)
		if (clients[i] >= 0)
			close(clients[i]);
}

/* n workers' sockets on one ephemeral loopback port, and client sockets
 * (each its own source port, so the kernel's hash would spread them). */
static void make_group(int family, int n)
{
	fam = family;
	n_workers = n;
	memset(&server, 0, sizeof(server));
	int af = family == 4 ? AF_INET : AF_INET6;
	if (family == 4) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&server;
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		server_len = sizeof(*s4);
	} else {
		server.sin6_family = AF_INET6;
		server.sin6_addr = in6addr_loopback;
		server_len = sizeof(server);
	}
	for (int i = 0; i < n; i++) {
		workers[i] = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int one = 1, big = 4 << 20;
		setsockopt(workers[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
		setsockopt(workers[i], SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
		int rc = bind(workers[i], (struct sockaddr *)&server, server_len);
		if (rc && family == 6 && i == 0)
			cr_skip_test("no IPv6 loopback here");
		cr_assert_eq(rc, 0, "bind: %s", strerror(errno));
		if (i == 0)
			getsockname(workers[0], (struct sockaddr *)&server, &server_len);
	}
	for (int i = 0; i < CLIENTS; i++) {
		clients[i] = socket(af, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		cr_assert_geq(clients[i], 0);
	}
}

static void attach(unsigned cid_len, unsigned off)
{
	char err[256] = "";
	int rc = tern_reuseport_attach(workers, (unsigned)n_workers, cid_len, off, err, sizeof(err));
	cr_assert_eq(rc, 0, "attach: %d %s", rc, err);
}

static void send_dgram(int client, const uint8_t *buf, size_t len)
{
	cr_assert_eq(sendto(clients[client], buf, len, 0, (struct sockaddr *)&server, server_len),
		     (ssize_t)len, "sendto: %s", strerror(errno));
}

/* A short header: first byte, then the CID with `worker` at offset off. */
static size_t short_hdr(uint8_t *buf, size_t len, unsigned cid_len, unsigned off, uint8_t worker,
			unsigned seq)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seq * 13 + i * 7);
	buf[0] = 0x40 | (seq & 0x3f);
	for (unsigned i = 0; i < cid_len && 1 + i < len; i++)
		buf[1 + i] = (uint8_t)(0xa0 + i); /* decoys everywhere else */
	if (1 + off < len)
		buf[1 + off] = worker;
	return len;
}

/* Drains every worker socket; counts[w] datagrams on worker w. Each one
 * must satisfy check(worker socket, datagram) when given. */
static unsigned drain(unsigned *counts, int (*check)(int w, const uint8_t *d, ssize_t n))
{
	unsigned total = 0;
	for (int w = 0; w < n_workers; w++) {
		uint8_t buf[2048];
		ssize_t n;
		counts[w] = 0;
		while ((n = recv(workers[w], buf, sizeof(buf), 0)) >= 0) {
			if (check)
				cr_assert(check(w, buf, n), "datagram on worker %d", w);
			counts[w]++;
			total++;
		}
		cr_assert_eq(errno, EAGAIN);
	}
	return total;
}

static unsigned check_off = 1;

static int names_its_worker(int w, const uint8_t *d, ssize_t n)
{
	return n > (ssize_t)(1 + check_off) && d[1 + check_off] == w;
}

static void steer_each(unsigned cid_len, unsigned off, unsigned per_worker)
{
	uint8_t buf[64];
	check_off = off;
	for (int w = 0; w < n_workers; w++)
		for (unsigned i = 0; i < per_worker; i++)
			send_dgram((int)(i % CLIENTS), buf,
				   short_hdr(buf, 40, cid_len, off, (uint8_t)w, i));
	unsigned counts[MAX_W];
	cr_assert_eq(drain(counts, names_its_worker), per_worker * (unsigned)n_workers);
	for (int w = 0; w < n_workers; w++)
		cr_assert_eq(counts[w], per_worker, "worker %d got %u", w, counts[w]);
}

Test(reuseport, short_headers_reach_the_worker_their_cid_names, .init = need_root,
     .fini = close_all)
{
	make_group(4, 2);
	attach(8, 1);
	steer_each(8, 1, 100);
}

Test(reuseport, the_worker_byte_is_read_at_the_configured_offset, .init = need_root,
     .fini = close_all)
{
	/* QUIC-LB layout with a 4-byte server ID: worker at 1 + 4 */
	make_group(4, 3);
	attach(12, 5);
	steer_each(12, 5, 50);
	/* a group is steered once: a second attach is refused, the first
	 * program stays in charge */
	char err[256] = "";
	cr_assert_eq(tern_reuseport_attach(workers, 3, 8, 1, err, sizeof(err)), TERN_ERR_STATE);
	cr_assert(strstr(err, "attach once per group"), "err: %s", err);
	steer_each(12, 5, 30);
}

Test(reuseport, ipv6_groups_are_steered_too, .init = need_root, .fini = close_all)
{
	make_group(6, 2);
	attach(8, 1);
	steer_each(8, 1, 50);
}

Test(reuseport, long_headers_and_unroutable_ones_arrive_somewhere, .init = need_root,
     .fini = close_all)
{
	make_group(4, 2);
	attach(8, 1);
	uint8_t buf[1200];
	unsigned sent = 0;
	for (unsigned i = 0; i < 64; i++) {
		memset(buf, 0, sizeof(buf));
		buf[0] = 0xc0; /* Initial */
		buf[4] = 1;
		buf[5] = 8;
		buf[6 + 1] = 1; /* a DCID byte that must not be taken as a worker */
		send_dgram((int)(i % CLIENTS), buf, sizeof(buf));
		sent++;
	}
	/* worker 7 has no socket; a 5-byte short header holds no full CID */
	for (unsigned i = 0; i < 32; i++) {
		send_dgram((int)(i % CLIENTS), buf, short_hdr(buf, 40, 8, 1, 7, i));
		send_dgram((int)(i % CLIENTS), buf, short_hdr(buf, 5, 8, 1, 1, i));
		sent += 2;
	}
	unsigned counts[MAX_W];
	cr_assert_eq(drain(counts, NULL), sent, "every datagram lands on some worker");
}

Test(reuseport, a_datagram_just_long_enough_for_the_cid_is_steered, .init = need_root,
     .fini = close_all)
{
	make_group(4, 2);
	attach(8, 1);
	check_off = 1;
	uint8_t buf[16];
	for (unsigned i = 0; i < 40; i++)
		send_dgram((int)(i % CLIENTS), buf, short_hdr(buf, 1 + 8, 8, 1, (uint8_t)(i & 1), i));
	unsigned counts[MAX_W];
	cr_assert_eq(drain(counts, names_its_worker), 40);
	cr_assert_eq(counts[0], 20);
	cr_assert_eq(counts[1], 20);
}

Test(reuseport, bad_arguments_are_refused, .init = need_root, .fini = close_all)
{
	make_group(4, 2);
	char err[256];
	cr_assert_eq(tern_reuseport_attach(NULL, 2, 8, 1, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_eq(tern_reuseport_attach(workers, 0, 8, 1, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_eq(tern_reuseport_attach(workers, 257, 8, 1, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_eq(tern_reuseport_attach(workers, 2, 0, 0, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_eq(tern_reuseport_attach(workers, 2, 21, 1, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_eq(tern_reuseport_attach(workers, 2, 8, 8, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert_eq(tern_reuseport_attach(workers, 2, 20, 19, err, sizeof(err)), 0, "%s", err);

	int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(tern_reuseport_attach(&tcp, 1, 8, 1, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert(strstr(err, "not a UDP socket with SO_REUSEPORT"), "err: %s", err);
	close(tcp);
	/* SO_REUSEPORT but never bound: no group to join */
	int lone = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lone, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	cr_assert_eq(tern_reuseport_attach(&lone, 1, 8, 1, err, sizeof(err)), TERN_ERR_INVAL);
	cr_assert(strstr(err, "cannot join"), "err: %s", err);
	close(lone);
	/* bound without SO_REUSEPORT */
	int plain = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(bind(plain, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(tern_reuseport_attach(&plain, 1, 8, 1, err, sizeof(err)), TERN_ERR_INVAL);
	close(plain);
}
