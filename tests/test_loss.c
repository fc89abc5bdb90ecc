/* Reliable delivery over bad links (RFC 9002): 20 MB crosses the in-memory
 * link with random loss, reordering and duplication, byte-identical, within
 * a bound of fake time stated per case. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "lib/pair.h"

#define SIZE (20u << 20)

struct rx {
	uint64_t got;
	int bad, fin, established;
	uint64_t id;
};

struct tx {
	uint64_t want, sent, id;
	uint8_t req[8];
	size_t req_len;
};

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 131 + (off >> 13));
}

static struct rx cli;
static struct tx srv;
static struct pair P;

static void push(struct tern_conn *c)
{
	uint8_t buf[16384];
	while (srv.sent < srv.want) {
		size_t n = srv.want - srv.sent < sizeof(buf) ? (size_t)(srv.want - srv.sent) : sizeof(buf);
		for (size_t k = 0; k < n; k++)
			buf[k] = pattern(srv.sent + k);
		int w = tern_conn_stream_write(c, srv.id, buf, n, srv.sent + n == srv.want);
		cr_assert_geq(w, 0);
		srv.sent += (uint64_t)w;
		if ((size_t)w < n)
			return;
	}
}

static int srv_data(struct tern_conn *c, void *u, uint64_t id, const uint8_t *d, size_t len, int fin)
{
	(void)u;
	(void)d;
	srv.id = id;
	srv.req_len += len;
	if (fin) {
		srv.want = SIZE;
		push(c);
	}
	return 0;
}

static void srv_writable(struct tern_conn *c, void *u, uint64_t id)
{
	(void)u;
	(void)id;
	push(c);
}

static int cli_data(struct tern_conn *c, void *u, uint64_t id, const uint8_t *d, size_t len, int fin)
{
	(void)c;
	(void)u;
	(void)id;
	for (size_t k = 0; k < len; k++)
		cli.bad += d[k] != pattern(cli.got + k);
	cli.got += len;
	cli.fin |= fin;
	return 0;
}

static void cli_est(struct tern_conn *c, void *u)
{
	(void)c;
	(void)u;
	cli.established = 1;
}

static const struct tern_conn_callbacks scb = {.on_stream_data = srv_data, .on_stream_writable = srv_writable};
static const struct tern_conn_callbacks ccb = {.on_stream_data = cli_data, .on_established = cli_est};

static int established(struct pair *p, void *a)
{
	(void)p;
	(void)a;
	return cli.established;
}

static int finished(struct pair *p, void *a)
{
	(void)p;
	(void)a;
	return cli.fin;
}

/* Bounds: a loss-based controller moves about mss/rtt * 1.22/sqrt(p)
 * (Mathis et al.): with 1200-byte packets and a 10 ms RTT that is 1.5, 0.65
 * and 0.46 MB/s at 1, 5 and 10% loss, so 20 MB takes 14, 32 and 45 s at
 * best. Each bound allows a little over twice that, and reordering (which
 * makes packet-threshold loss detection fire spuriously) twice again. */
struct link_case {
	unsigned loss, reorder, dup;
	unsigned bound_s; /* fake seconds the transfer may take */
};

ParameterizedTestParameters(loss, twenty_megabytes)
{
	static struct link_case cases[] = {
		{1, 0, 0, 30}, {5, 0, 0, 75}, {10, 0, 0, 110}, {1, 10, 5, 60}, {5, 10, 5, 150}, {10, 10, 5, 220},
	};
	return cr_make_param_array(struct link_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct link_case *lc, loss, twenty_megabytes, .timeout = 60)
{
	memset(&cli, 0, sizeof(cli));
	memset(&srv, 0, sizeof(srv));
	pair_init(&P, "perf", &ccb, NULL, &scb, NULL);
	P.to_srv.loss_pct = P.to_cli.loss_pct = lc->loss;
	P.to_srv.reorder_pct = P.to_cli.reorder_pct = lc->reorder;
	P.to_srv.dup_pct = P.to_cli.dup_pct = lc->dup;
	cr_assert(pair_run_checked(&P, established, NULL, 20ull * 1000000000ull), "no handshake");
	uint64_t id;
	cr_assert_eq(tern_conn_stream_open(P.cli, 1, &id), 0);
	cr_assert_eq(tern_conn_stream_write(P.cli, id, (const uint8_t *)"GET", 3, 1), 3);
	uint64_t start = P.now;
	cr_assert(pair_run_checked(&P, finished, NULL, (uint64_t)lc->bound_s * 1000000000ull),
		  "loss %u%% reorder %u%% dup %u%%: %lu of %u bytes after %u s", lc->loss, lc->reorder,
		  lc->dup, (unsigned long)cli.got, SIZE, lc->bound_s);
	cr_assert_eq(cli.got, SIZE);
	cr_assert_eq(cli.bad, 0);
	cr_assert_gt(P.to_cli.dropped, 0, "the link really dropped packets");
	cr_log_info("loss %u%%: %.2f fake s", lc->loss, (double)(P.now - start) / 1e9);
	pair_free(&P);
}
