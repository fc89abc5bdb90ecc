/* A bounded soak: many connections, one after another, each moving data
 * over an in-memory link that drops, reorders, duplicates, truncates and
 * flips bits. Every transfer must either arrive byte-identical or end in a
 * proper close (an on_close with a reason); no connection may hang; and
 * the heap must come back to where it started. */
#include <criterion/criterion.h>
#include <malloc.h>

#include "lib/pair.h"

#define CONNS 200
#define SIZE (256u * 1024)
#define SEC 1000000000ull

static uint64_t got, sent, want_id;
static int fin, bad, closes_cli, closes_srv, established;
static struct tern_close_info last_close;

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 7 + (off >> 9));
}

static void push(struct tern_conn *c, uint64_t id)
{
	uint8_t buf[4096];
	while (sent < SIZE) {
		size_t n = SIZE - sent < sizeof(buf) ? (size_t)(SIZE - sent) : sizeof(buf);
		for (size_t k = 0; k < n; k++)
			buf[k] = pattern(sent + k);
		int w = tern_conn_stream_write(c, id, buf, n, sent + n == SIZE);
		if (w <= 0)
			return;
		sent += (uint64_t)w;
	}
}

static int srv_data(struct tern_conn *c, void *u, uint64_t id, const uint8_t *d, size_t len, int f)
{
	(void)u;
	(void)d;
	(void)len;
	want_id = id;
	if (f)
		push(c, id);
	return 0;
}

static void srv_writable(struct tern_conn *c, void *u, uint64_t id)
{
	(void)u;
	push(c, id);
}

static int cli_data(struct tern_conn *c, void *u, uint64_t id, const uint8_t *d, size_t len, int f)
{
	(void)c;
	(void)u;
	(void)id;
	for (size_t k = 0; k < len; k++)
		bad += d[k] != pattern(got + k);
	got += len;
	fin |= f;
	return 0;
}

static void cli_est(struct tern_conn *c, void *u)
{
	(void)c;
	(void)u;
	established = 1;
}

static void cli_close(struct tern_conn *c, void *u, const struct tern_close_info *ci)
{
	(void)c;
	(void)u;
	closes_cli++;
	last_close = *ci;
}

static void srv_close(struct tern_conn *c, void *u, const struct tern_close_info *ci)
{
	(void)c;
	(void)u;
	(void)ci;
	closes_srv++;
}

static const struct tern_conn_callbacks scb = {
	.on_stream_data = srv_data, .on_stream_writable = srv_writable, .on_close = srv_close};
static const struct tern_conn_callbacks ccb = {
	.on_stream_data = cli_data, .on_established = cli_est, .on_close = cli_close};

static int done(struct pair *p, void *a)
{
	(void)a;
	if (fin)
		return 1;
	if (established && !p->cli)
		return 1;
	int started = 0;
	if (established && want_id == 0 && sent == 0 && got == 0 && !fin) {
		uint64_t id;
		if (tern_conn_stream_open(p->cli, 1, &id) == 0)
			started = tern_conn_stream_write(p->cli, id, (const uint8_t *)"go", 2, 1) == 2;
		want_id = started ? UINT64_MAX : 0;
	}
	return tern_conn_state(p->cli) >= TERN_CONN_DRAINING;
}

Test(soak, two_hundred_connections_through_every_fault, .timeout = 120)
{
	unsigned completed = 0, closed = 0;
	struct mallinfo2 before = mallinfo2();
	for (int i = 0; i < CONNS; i++) {
		struct pair P;
		got = sent = want_id = 0;
		fin = bad = closes_cli = closes_srv = established = 0;
		memset(&last_close, 0, sizeof(last_close));
		pair_init(&P, "perf", &ccb, NULL, &scb, NULL);
		P.rng ^= (uint64_t)i * 0x9e3779b97f4a7c15ull;
		struct pair_link *links[2] = {&P.to_srv, &P.to_cli};
		for (int k = 0; k < 2; k++) {
			links[k]->loss_pct = 3;
			links[k]->reorder_pct = 5;
			links[k]->dup_pct = 3;
			links[k]->truncate_pct = 2;
			links[k]->flip_pct = 2;
		}
		uint64_t t0 = P.now;
		pair_run_checked(&P, done, NULL, 120 * SEC);
		cr_log_info("connection %d: %s after %.2f fake s (%lu bytes, est %d, srv %p, close reason %d code 0x%lx)", i,
			    fin ? "done" : "closed", (double)(P.now - t0) / 1e9, (unsigned long)got,
			    established, (void *)P.srv, last_close.reason, (unsigned long)last_close.code);
		if (fin) {
			cr_assert_eq(got, SIZE, "connection %d: %lu of %u bytes", i, (unsigned long)got, SIZE);
			cr_assert_eq(bad, 0, "connection %d delivered corrupted bytes", i);
			completed++;
		} else {
			/* no hang: a connection that did not finish ended properly */
			cr_assert_geq(tern_conn_state(P.cli), TERN_CONN_CLOSING,
				      "connection %d neither finished nor closed (state %d, %lu bytes)", i,
				      tern_conn_state(P.cli), (unsigned long)got);
			cr_assert_eq(closes_cli, 1, "connection %d closed without saying why", i);
			closed++;
		}
		pair_free(&P);
	}
	struct mallinfo2 after = mallinfo2();
	cr_log_info("%u completed, %u closed properly", completed, closed);
	cr_assert_gt(completed, CONNS / 2, "most transfers survive these faults");
	/* everything a connection allocated went back */
	cr_assert_leq(after.uordblks, before.uordblks + 64 * 1024, "heap grew by %zu bytes over %d connections",
		      after.uordblks - before.uordblks, CONNS);
}
