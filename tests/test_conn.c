/* The connection engine against itself: a tern client and a tern server
 * over an in-memory link with a fake clock (tests/lib/pair.c). */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "lib/pair.h"

#define MAX_STREAMS 128

/* A tiny request/response protocol: the client sends an 8-byte size and
 * FIN; the server answers with that many pattern bytes and FIN. */
struct side {
	struct pair *p;
	int is_server;
	int established;
	struct {
		uint64_t id;
		uint64_t want, got, sent;
		uint8_t req[8];
		size_t req_len;
		int fin, bad, active;
	} st[MAX_STREAMS];
	size_t n;
	int streams_done;
	struct tern_close_info closed;
	int close_seen;
};

static uint8_t pattern(uint64_t stream_id, uint64_t off)
{
	return (uint8_t)((off * 131 + stream_id * 7 + (off >> 11)) & 0xff);
}

static int slot(struct side *s, uint64_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->st[i].id == id)
			return (int)i;
	cr_assert_lt(s->n, MAX_STREAMS);
	s->st[s->n].id = id;
	s->st[s->n].active = 1;
	return (int)s->n++;
}

static void server_push(struct tern_conn *c, struct side *s, int i)
{
	uint8_t buf[16384];
	while (s->st[i].sent < s->st[i].want) {
		uint64_t left = s->st[i].want - s->st[i].sent;
		size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf);
		for (size_t k = 0; k < n; k++)
			buf[k] = pattern(s->st[i].id, s->st[i].sent + k);
		int w = tern_conn_stream_write(c, s->st[i].id, buf, n, s->st[i].sent + n == s->st[i].want);
		cr_assert_geq(w, 0);
		s->st[i].sent += (uint64_t)w;
		if ((size_t)w < n)
			return;
	}
	if (s->st[i].want == 0 && !s->st[i].fin) {
		tern_conn_stream_write(c, s->st[i].id, NULL, 0, 1);
		s->st[i].fin = 1;
	}
}

static int on_data(struct tern_conn *c, void *user, uint64_t id, const uint8_t *d, size_t len, int fin)
{
	struct side *s = user;
	int i = slot(s, id);
	if (s->is_server) {
		for (size_t k = 0; k < len && s->st[i].req_len < 8; k++)
			s->st[i].req[s->st[i].req_len++] = d[k];
		if (fin) {
			uint64_t want = 0;
			for (int k = 0; k < 8; k++)
				want = want << 8 | s->st[i].req[k];
			s->st[i].want = want;
			server_push(c, s, i);
		}
		return 0;
	}
	for (size_t k = 0; k < len; k++)
		if (d[k] != pattern(id, s->st[i].got + k))
			s->st[i].bad++;
	s->st[i].got += len;
	if (fin) {
		s->st[i].fin = 1;
		s->streams_done++;
	}
	return 0;
}

static void on_writable(struct tern_conn *c, void *user, uint64_t id)
{
	struct side *s = user;
	if (s->is_server)
		server_push(c, s, slot(s, id));
}

static void on_established(struct tern_conn *c, void *user)
{
	(void)c;
	((struct side *)user)->established = 1;
}

static void on_close(struct tern_conn *c, void *user, const struct tern_close_info *ci)
{
	(void)c;
	struct side *s = user;
	s->closed = *ci;
	s->close_seen++;
}

static const struct tern_conn_callbacks cbs = {
	.on_established = on_established,
	.on_stream_data = on_data,
	.on_stream_writable = on_writable,
	.on_close = on_close,
};

static struct side cli, srv;
static struct pair P;

static void setup_pair(void)
{
	memset(&cli, 0, sizeof(cli));
	memset(&srv, 0, sizeof(srv));
	srv.is_server = 1;
	pair_init(&P, "h3", &cbs, &cli, &cbs, &srv);
	cli.p = srv.p = &P;
}

static int both_established(struct pair *p, void *arg)
{
	(void)p;
	(void)arg;
	return cli.established && srv.established;
}

static int all_done(struct pair *p, void *arg)
{
	(void)p;
	return cli.streams_done == *(int *)arg;
}

static void request(uint64_t size)
{
	uint64_t id;
	cr_assert_eq(tern_conn_stream_open(P.cli, 1, &id), 0);
	uint8_t req[8];
	for (int k = 0; k < 8; k++)
		req[k] = (uint8_t)(size >> (56 - 8 * k));
	cr_assert_eq(tern_conn_stream_write(P.cli, id, req, 8, 1), 8);
	int i = slot(&cli, id);
	cli.st[i].want = size;
}

static void check_streams(void)
{
	for (size_t i = 0; i < cli.n; i++) {
		cr_assert_eq(cli.st[i].got, cli.st[i].want, "stream %lu got %lu of %lu",
			     (unsigned long)cli.st[i].id, (unsigned long)cli.st[i].got,
			     (unsigned long)cli.st[i].want);
		cr_assert_eq(cli.st[i].bad, 0, "stream %lu has %d wrong bytes", (unsigned long)cli.st[i].id,
			     cli.st[i].bad);
		cr_assert(cli.st[i].fin);
	}
}

Test(conn, handshake_completes, .init = setup_pair)
{
	cr_assert(pair_run(&P, both_established, NULL, 2000000000ull), "handshake did not complete");
	cr_assert_eq(tern_conn_state(P.cli), TERN_CONN_ESTABLISHED);
	cr_assert_eq(tern_conn_state(P.srv), TERN_CONN_ESTABLISHED);
	const uint8_t *alpn;
	size_t len;
	cr_assert_eq(tern_conn_alpn(P.cli, &alpn, &len), 0);
	cr_assert_eq(len, 2);
	cr_assert_eq(memcmp(alpn, "h3", 2), 0);
	/* the client's first datagram carried a 1200-byte Initial (§14.1) */
	cr_assert_geq(P.to_srv.sent, 1);
	pair_free(&P);
}

Test(conn, ten_megabytes_on_one_stream, .init = setup_pair)
{
	cr_assert(pair_run(&P, both_established, NULL, 2000000000ull));
	request(10 << 20);
	int want = 1;
	cr_assert(pair_run(&P, all_done, &want, 60ull * 1000000000ull), "transfer did not finish");
	check_streams();
	struct tern_conn_stats cs;
	tern_conn_stats(P.cli, &cs);
	cr_assert_eq(cs.stream_bytes_recv, 10u << 20);
	cr_assert_geq(cs.pkts_recv, (10u << 20) / 1200, "the data crossed the link in packets");
	pair_free(&P);
}

Test(conn, hundred_streams_of_100k, .init = setup_pair)
{
	cr_assert(pair_run(&P, both_established, NULL, 2000000000ull));
	for (int i = 0; i < 100; i++)
		request(100 * 1024);
	int want = 100;
	cr_assert(pair_run(&P, all_done, &want, 60ull * 1000000000ull), "only %d streams finished",
		  cli.streams_done);
	check_streams();
	pair_free(&P);
}

static int some_bytes(struct pair *p, void *arg)
{
	(void)p;
	return cli.st[0].got >= *(uint64_t *)arg;
}

Test(conn, key_update_mid_transfer, .init = setup_pair)
{
	cr_assert(pair_run(&P, both_established, NULL, 2000000000ull));
	request(4 << 20);
	uint64_t first = 1 << 20;
	cr_assert(pair_run(&P, some_bytes, &first, 30ull * 1000000000ull));
	cr_assert_eq(tern_conn_key_update(P.cli), 0);
	int want = 1;
	cr_assert(pair_run(&P, all_done, &want, 60ull * 1000000000ull));
	check_streams();
	struct tern_conn_stats cs, ss;
	tern_conn_stats(P.cli, &cs);
	tern_conn_stats(P.srv, &ss);
	cr_assert_eq(cs.key_updates, 1);
	cr_assert_eq(ss.key_updates, 1, "the server answered the update");
	cr_assert_geq(cs.pkts_recv, (4u << 20) / 1200, "the data really crossed the link");
	pair_free(&P);
}

static int batch_done(struct pair *p, void *arg)
{
	(void)p;
	return cli.streams_done >= *(int *)arg;
}

Test(conn, more_streams_than_the_initial_limit, .init = setup_pair)
{
	/* RFC 9000 §4.6: the server gives credit back as streams finish
	 * (MAX_STREAMS), and finished streams are freed on both sides */
	cr_assert(pair_run(&P, both_established, NULL, 2000000000ull));
	int done = 0, opened = 0;
	while (done < 300) {
		uint64_t id;
		int batch = 0;
		while (opened < 300 && tern_conn_stream_open(P.cli, 1, &id) == 0) {
			uint8_t req[8] = {0, 0, 0, 0, 0, 0, 4, 0}; /* 1024 bytes */
			cr_assert_eq(tern_conn_stream_write(P.cli, id, req, 8, 1), 8);
			cli.st[slot(&cli, id)].want = 1024;
			opened++;
			batch++;
			if (cli.n == MAX_STREAMS)
				break;
		}
		cr_assert_gt(batch, 0, "no stream credit after %d streams: MAX_STREAMS never came", opened);
		done = opened;
		cr_assert(pair_run(&P, batch_done, &done, 30ull * 1000000000ull), "only %d of %d finished",
			  cli.streams_done, done);
		check_streams();
		/* the next batch reuses the slots */
		memset(cli.st, 0, sizeof(cli.st));
		memset(srv.st, 0, sizeof(srv.st));
		cli.n = srv.n = 0;
	}
	pair_run(&P, NULL, NULL, 200000000ull); /* the last acknowledgements */
	struct tern_conn_stats cs, ss;
	tern_conn_stats(P.cli, &cs);
	tern_conn_stats(P.srv, &ss);
	cr_assert_eq(cli.streams_done, 300);
	cr_assert_lt(ss.streams_open, 8, "the server freed finished streams (%lu held)",
		     (unsigned long)ss.streams_open);
	cr_assert_lt(cs.streams_open, 8, "the client freed finished streams (%lu held)",
		     (unsigned long)cs.streams_open);
	pair_free(&P);
}
