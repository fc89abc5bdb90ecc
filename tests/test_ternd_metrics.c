/* ternd's /metrics exposition (tools/metrics.c): sums over workers, merged
 * close-code tables, per-worker families and the datapath families. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"

static char buf[METRICS_MAX_RESPONSE];

/* The line that starts with `sample ` (name and labels), or NULL. */
static const char *sample(const char *text, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, name, n) == 0 && p[n] == ' ')
			return p + n + 1;
	return NULL;
}

static unsigned long long value(const char *text, const char *name)
{
	const char *v = sample(text, name);
	cr_assert_not_null(v, "no sample %s", name);
	return strtoull(v, NULL, 10);
}

Test(close_counts, merge_adds_matching_codes_and_appends_new_ones)
{
	struct close_counts a = {0}, b = {0};
	close_counts_add(&a, 1, 0x100);
	close_counts_add(&a, 0, 0x0a);
	close_counts_add(&b, 1, 0x100);
	close_counts_add(&b, 1, 0x100);
	close_counts_add(&b, 0, 0x100); /* same code, other type: its own entry */
	b.other[1] = 5;
	close_counts_merge(&a, &b);
	cr_assert_eq(a.n, 3);
	cr_assert_eq(a.e[0].app, 1);
	cr_assert_eq(a.e[0].code, 0x100);
	cr_assert_eq(a.e[0].n, 3);
	cr_assert_eq(a.e[1].code, 0x0a);
	cr_assert_eq(a.e[1].n, 1);
	cr_assert_eq(a.e[2].app, 0);
	cr_assert_eq(a.e[2].code, 0x100);
	cr_assert_eq(a.e[2].n, 1);
	cr_assert_eq(a.other[0], 0);
	cr_assert_eq(a.other[1], 5);
}

Test(close_counts, merge_into_a_full_table_counts_other)
{
	struct close_counts a = {0}, b = {0};
	for (uint64_t c = 0; c < METRICS_MAX_CODES; c++)
		close_counts_add(&a, 0, c);
	close_counts_add(&b, 0, 3);          /* present: still counted one by one */
	close_counts_add(&b, 0, 1000);       /* no room: transport "other" */
	close_counts_add(&b, 1, 1000);       /* no room: application "other" */
	close_counts_add(&b, 1, 1000);
	close_counts_merge(&a, &b);
	cr_assert_eq(a.n, METRICS_MAX_CODES);
	cr_assert_eq(a.e[3].n, 2);
	cr_assert_eq(a.other[0], 1);
	cr_assert_eq(a.other[1], 2);
}

static void two_workers(struct metrics_worker w[2])
{
	memset(w, 0, 2 * sizeof(*w));
	w[0].ep.rx_datagrams = 100;
	w[0].ep.conns_created = 7;
	w[0].ep.conns_active = 3;
	w[0].ep.closed_by_reason[TERN_CLOSE_PEER] = 4;
	w[0].dp.tx_pkts = 90;
	w[0].sock.gso_sends = 2;
	w[0].w.handed_off = 11;
	w[0].w.iterations = 1000;
	w[1].ep.rx_datagrams = 50;
	w[1].ep.conns_created = 5;
	w[1].ep.conns_active = 2;
	w[1].ep.closed_by_reason[TERN_CLOSE_PEER] = 3;
	w[1].dp.tx_pkts = 40;
	w[1].sock.gso_sends = 1;
	w[1].w.tx_full = 6;
}

Test(metrics, sum_adds_every_worker_counter_and_gauge)
{
	struct metrics_worker w[2];
	struct metrics_snapshot s;
	two_workers(w);
	memset(&s, 0xff, sizeof(s)); /* the sums must not start from garbage */
	metrics_sum(&s, w, 2);
	cr_assert_eq(s.ep.rx_datagrams, 150);
	cr_assert_eq(s.ep.conns_created, 12);
	cr_assert_eq(s.ep.conns_active, 5);
	cr_assert_eq(s.ep.closed_by_reason[TERN_CLOSE_PEER], 7);
	cr_assert_eq(s.ep.closed_by_reason[TERN_CLOSE_LOCAL], 0);
	cr_assert_eq(s.dp.tx_pkts, 130);
	cr_assert_eq(s.sock.gso_sends, 3);
}

Test(metrics, render_has_totals_and_one_sample_per_worker)
{
	struct metrics_worker w[2];
	struct close_counts sent = {0}, received = {0};
	struct metrics_snapshot s = {.sent = &sent, .received = &received, .datapath = "socket",
				     .n_workers = 2, .workers = w};
	two_workers(w);
	metrics_sum(&s, w, 2);
	close_counts_add(&sent, 1, 0x100);
	size_t len = metrics_render(&s, buf, sizeof(buf));
	cr_assert_gt(len, 0);
	cr_assert_eq(buf[len], 0);
	cr_assert_eq(value(buf, "tern_connections_created_total"), 12);
	cr_assert_eq(value(buf, "tern_connections_active"), 5);
	cr_assert_eq(value(buf, "tern_connections_closed_total{reason=\"peer_close\"}"), 7);
	cr_assert_eq(value(buf, "tern_close_sent_total{type=\"application\",code=\"0x100\"}"), 1);
	cr_assert_eq(value(buf, "tern_socket_gso_sends_total"), 3);
	cr_assert_eq(value(buf, "tern_workers"), 2);
	cr_assert_eq(value(buf, "tern_worker_datagrams_received_total{worker=\"0\"}"), 100);
	cr_assert_eq(value(buf, "tern_worker_datagrams_received_total{worker=\"1\"}"), 50);
	cr_assert_eq(value(buf, "tern_worker_datagrams_sent_total{worker=\"1\"}"), 40);
	cr_assert_eq(value(buf, "tern_worker_connections_active{worker=\"0\"}"), 3);
	cr_assert_eq(value(buf, "tern_worker_connections_created_total{worker=\"1\"}"), 5);
	cr_assert_eq(value(buf, "tern_worker_handed_off_total{worker=\"0\"}"), 11);
	cr_assert_eq(value(buf, "tern_worker_steps_total{worker=\"0\"}"), 1000);
	cr_assert_eq(value(buf, "tern_worker_tx_full_total{worker=\"1\"}"), 6);
	cr_assert_null(sample(buf, "tern_worker_connections_active{worker=\"2\"}"));
	cr_assert_null(strstr(buf, "tern_datapath_"));
	cr_assert_not_null(strstr(buf, "# TYPE tern_worker_connections_active gauge\n"));
	cr_assert_not_null(strstr(buf, "# TYPE tern_worker_connections_created_total counter\n"));
}

Test(metrics, other_datapaths_render_labelled_datapath_counters)
{
	struct metrics_worker w[2];
	struct metrics_snapshot s = {.datapath = "xdp", .n_workers = 2, .workers = w};
	two_workers(w);
	metrics_sum(&s, w, 2);
	s.dp.rx_pkts = 77;
	size_t len = metrics_render(&s, buf, sizeof(buf));
	cr_assert_gt(len, 0);
	cr_assert_eq(value(buf, "tern_datapath_rx_packets_total{datapath=\"xdp\"}"), 77);
	cr_assert_eq(value(buf, "tern_datapath_tx_packets_total{datapath=\"xdp\"}"), 130);
	cr_assert_null(strstr(buf, "tern_socket_"));
}

Test(metrics, no_workers_no_worker_families)
{
	struct metrics_snapshot s = {0};
	size_t len = metrics_render(&s, buf, sizeof(buf));
	cr_assert_gt(len, 0);
	cr_assert_null(strstr(buf, "tern_worker"));
	cr_assert_not_null(sample(buf, "tern_socket_rx_packets_total"));
}

/* The largest exposition ternd can produce (64 workers with 20-digit
 * counters, both close tables full, both "other" rows) fits the buffer
 * the HTTP server renders into; one byte less room than needed fails
 * cleanly with 0. */
Test(metrics, worst_case_fits_and_short_buffers_fail)
{
	static struct metrics_worker w[64];
	struct close_counts sent = {0}, received = {0};
	memset(w, 0xff, sizeof(w));
	for (uint64_t c = 0; c < METRICS_MAX_CODES; c++) {
		close_counts_add(&sent, c & 1, UINT64_MAX - c);
		close_counts_add(&received, c & 1, UINT64_MAX - c);
	}
	sent.other[0] = sent.other[1] = received.other[0] = received.other[1] = UINT64_MAX;
	struct metrics_snapshot s = {.sent = &sent, .received = &received, .datapath = "socket",
				     .n_workers = 64, .workers = w};
	memset(&s.ep, 0xff, sizeof(s.ep));
	memset(&s.dp, 0xff, sizeof(s.dp));
	memset(&s.sock, 0xff, sizeof(s.sock));
	/* respond() keeps 256 bytes in front for the HTTP header */
	size_t len = metrics_render(&s, buf, sizeof(buf) - 256);
	cr_assert_gt(len, 0);
	cr_assert_eq(value(buf, "tern_worker_tx_full_total{worker=\"63\"}"), UINT64_MAX);
	cr_assert_eq(metrics_render(&s, buf, len), 0);
	cr_assert_eq(metrics_render(&s, buf, len + 1), len);
}
