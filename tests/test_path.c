/* Path behaviour on the in-memory pair: ECN (RFC 9000 §13.4) and datagram
 * size discovery (RFC 9000 §14.3, DPLPMTUD per RFC 8899). */
#include <criterion/criterion.h>

#include "lib/pair.h"

#define SEC 1000000000ull
#define SIZE (4u << 20)

static uint64_t got, want_id;
static int fin, established;

static int cli_data(struct tern_conn *c, void *u, uint64_t id, const uint8_t *d, size_t len, int f)
{
	(void)c;
	(void)u;
	(void)id;
	for (size_t k = 0; k < len; k++)
		cr_assert_eq(d[k], (uint8_t)(got + k), "corrupt byte at %lu", (unsigned long)(got + k));
	got += len;
	fin |= f;
	return 0;
}

static uint64_t sent;
static void push(struct tern_conn *c, uint64_t id)
{
	uint8_t buf[8192];
	while (sent < SIZE) {
		size_t n = SIZE - sent < sizeof(buf) ? (size_t)(SIZE - sent) : sizeof(buf);
		for (size_t k = 0; k < n; k++)
			buf[k] = (uint8_t)(sent + k);
		int w = tern_conn_stream_write(c, id, buf, n, sent + n == SIZE);
		cr_assert_geq(w, 0);
		sent += (uint64_t)w;
		if ((size_t)w < n)
			return;
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

static void cli_est(struct tern_conn *c, void *u)
{
	(void)c;
	(void)u;
	established = 1;
}

static const struct tern_conn_callbacks scb = {.on_stream_data = srv_data, .on_stream_writable = srv_writable};
static const struct tern_conn_callbacks ccb = {.on_stream_data = cli_data, .on_established = cli_est};
static struct pair P;

static int is_established(struct pair *p, void *a)
{
	(void)p;
	(void)a;
	return established;
}

static int is_done(struct pair *p, void *a)
{
	(void)p;
	(void)a;
	return fin;
}

static size_t link_mtu;

static void start(int ecn, size_t max_datagram)
{
	got = sent = 0;
	fin = established = 0;
	pair_setup(&P, "perf", "perf", &ccb, NULL, &scb, NULL);
	P.cli_cfg.ecn = P.srv_cfg.ecn = ecn;
	P.cli_cfg.max_datagram = P.srv_cfg.max_datagram = max_datagram;
	P.cli_cfg.tparams.max_udp_payload_size = P.srv_cfg.tparams.max_udp_payload_size = max_datagram;
	P.to_cli.mtu = P.to_srv.mtu = link_mtu;
	pair_start(&P);
	cr_assert(pair_run_checked(&P, is_established, NULL, 5 * SEC));
}

static void transfer(void)
{
	uint64_t id;
	cr_assert_eq(tern_conn_stream_open(P.cli, 1, &id), 0);
	cr_assert_eq(tern_conn_stream_write(P.cli, id, (const uint8_t *)"go", 2, 1), 2);
	int ok = pair_run_checked(&P, is_done, NULL, 60 * SEC);
	if (!ok) {
		struct tern_conn_stats a, b;
		tern_conn_stats(P.cli, &a);
		tern_conn_stats(P.srv, &b);
		cr_log_error("cli st=%d mtu=%lu lost=%lu sent=%lu | srv st=%d mtu=%lu lost=%lu sent=%lu | now=%lu cli_to=%lu srv_to=%lu q=%zu,%zu toobig=%lu,%lu",
			tern_conn_state(P.cli), (unsigned long)a.mtu, (unsigned long)a.pkts_lost, (unsigned long)a.pkts_sent,
			tern_conn_state(P.srv), (unsigned long)b.mtu, (unsigned long)b.pkts_lost, (unsigned long)b.pkts_sent,
			(unsigned long)P.now, (unsigned long)tern_conn_next_timeout(P.cli), (unsigned long)tern_conn_next_timeout(P.srv),
			P.to_srv.n, P.to_cli.n, (unsigned long)P.to_srv.too_big, (unsigned long)P.to_cli.too_big);
	}
	cr_assert(ok, "transfer stalled at %lu", (unsigned long)got);
	cr_assert_eq(got, SIZE);
}

Test(ecn, a_clean_path_validates_and_keeps_marking)
{
	start(1, 1200);
	transfer();
	struct tern_conn_stats s;
	tern_conn_stats(P.srv, &s);
	cr_assert_eq(s.ecn_state, 1, "the server's ECN validation should succeed (state %d)", s.ecn_state);
	cr_assert_gt(P.to_cli.ect_seen, 1000, "the server marks ECT(0) throughout");
	pair_free(&P);
}

Test(ecn, a_bleaching_path_fails_validation_and_stops_marking)
{
	start(1, 1200);
	P.to_cli.ecn_bleach = P.to_srv.ecn_bleach = 1;
	transfer();
	struct tern_conn_stats s;
	tern_conn_stats(P.srv, &s);
	cr_assert_eq(s.ecn_state, 2, "acks without ECN counts must fail validation");
	uint64_t marked = P.to_cli.ect_seen;
	cr_assert_lt(marked, 200, "marking stops once validation failed (%lu marked)", (unsigned long)marked);
	pair_free(&P);
}

Test(ecn, ce_marks_reach_the_congestion_controller)
{
	start(1, 1200);
	P.to_cli.ce_pct = 2;
	transfer();
	struct tern_conn_stats s;
	tern_conn_stats(P.srv, &s);
	cr_assert_gt(P.to_cli.ce_marked, 0);
	cr_assert_gt(s.ecn_ce_seen, 0, "the client reported CE counts back");
	cr_assert_eq(s.ecn_state, 1, "CE marks are not a validation failure");
	cr_assert_eq(P.to_cli.dropped, 0);
	cr_assert_eq(s.pkts_lost, 0, "no loss, so any window reduction came from CE");
	pair_free(&P);
}

Test(ecn, off_by_default)
{
	start(0, 1200);
	transfer();
	cr_assert_eq(P.to_cli.ect_seen + P.to_srv.ect_seen, 0);
	pair_free(&P);
}

Test(pmtu, probes_up_to_what_the_path_carries)
{
	start(0, 1452);
	transfer();
	struct tern_conn_stats s;
	tern_conn_stats(P.srv, &s);
	cr_assert_eq(s.mtu, 1452, "a 1500-byte path carries 1452-byte datagrams (got %lu)", (unsigned long)s.mtu);
	pair_free(&P);
}

Test(pmtu, a_smaller_path_settles_between_1200_and_its_limit)
{
	link_mtu = 1350;
	start(0, 1452);
	link_mtu = 0;
	transfer();
	struct tern_conn_stats s;
	tern_conn_stats(P.srv, &s);
	cr_assert_leq(s.mtu, 1350);
	cr_assert_geq(s.mtu, 1200);
	cr_assert_gt(P.to_cli.too_big, 0, "probes above the limit were sent and lost");
	cr_assert_lt(P.to_cli.too_big, 20, "but only a few of them");
	cr_assert_eq(s.pkts_lost, P.to_cli.too_big, "only probes were lost");
	pair_free(&P);
}

Test(pmtu, a_black_hole_after_discovery_falls_back_to_1200)
{
	/* RFC 8899 §4.3: when full-size packets stop getting through, go back
	 * to the base size rather than lose the connection */
	start(0, 1452);
	pair_run_checked(&P, NULL, NULL, SEC); /* let discovery run */
	struct tern_conn_stats s;
	tern_conn_stats(P.srv, &s);
	cr_assert_eq(s.mtu, 1452, "discovery first");
	P.to_cli.mtu = P.to_srv.mtu = 1300;
	transfer();
	tern_conn_stats(P.srv, &s);
	cr_assert_leq(s.mtu, 1300);
	cr_assert_eq(tern_conn_state(P.srv), TERN_CONN_ESTABLISHED);
	pair_free(&P);
}

Test(pmtu, never_above_the_peers_max_udp_payload_size)
{
	got = sent = 0;
	fin = established = 0;
	pair_setup(&P, "perf", "perf", &ccb, NULL, &scb, NULL);
	P.srv_cfg.max_datagram = 1452;
	P.srv_cfg.tparams.max_udp_payload_size = 1452;
	P.cli_cfg.tparams.max_udp_payload_size = 1300;
	pair_start(&P);
	cr_assert(pair_run_checked(&P, is_established, NULL, 5 * SEC));
	transfer();
	struct tern_conn_stats s;
	tern_conn_stats(P.srv, &s);
	cr_assert_eq(s.mtu, 1300);
	pair_free(&P);
}
