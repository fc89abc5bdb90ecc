/* tern-bench handshake: connections opened closed-loop (--concurrency in
 * flight) or open-loop (--rate arrivals a second, at most IN_FLIGHT_CAP in
 * flight, the rest counted as skipped). Each connection is closed with
 * H3_NO_ERROR once the handshake is confirmed, or abandoned: dropped
 * without a word after the handshake (the server keeps it until its idle
 * timeout) or after the first Initial (the server keeps a half-open
 * handshake and retransmits into the void). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lg.h"

#define IN_FLIGHT_CAP 4096
#define MAX_STARTS_PER_STEP 256

struct hs {
	const struct lg_opts *o;
	struct lg_pool pool;
	struct lg_samples lat;
	uint64_t scheduled, started, completed, failed, skipped, in_flight, start_errors;
	uint64_t initials, stray;
	uint64_t fail_timeout, fail_peer, fail_other;
	struct tern_close_info last_close;
	uint64_t t0;
};

static void hs_established(struct lg_pool *p, struct lg_conn *lc)
{
	struct hs *h = p->user;
	h->completed++;
	h->in_flight--;
	lg_samples_add(&h->lat, p->now - lc->t_start);
	if (h->o->abandon == LG_ABANDON_HANDSHAKE)
		lc->abandon = 1;
	else
		lc->want_close = 1;
}

static void hs_closed(struct lg_pool *p, struct lg_conn *lc, const struct tern_close_info *ci)
{
	struct hs *h = p->user;
	if (lc->established || lc->abandon_after_first)
		return;
	h->failed++;
	h->in_flight--;
	h->last_close = *ci;
	if (ci->reason == TERN_CLOSE_HANDSHAKE_TIMEOUT || ci->reason == TERN_CLOSE_IDLE_TIMEOUT)
		h->fail_timeout++;
	else if (ci->reason == TERN_CLOSE_PEER || ci->reason == TERN_CLOSE_STATELESS_RESET)
		h->fail_peer++;
	else
		h->fail_other++;
}

static void hs_freeing(struct lg_pool *p, struct lg_conn *lc)
{
	struct hs *h = p->user;
	if (lc->abandon_after_first)
		h->initials++;
}

static void hs_stray(struct lg_pool *p, size_t len)
{
	(void)len;
	((struct hs *)p->user)->stray++;
}

static const struct lg_pool_hooks hooks = {
	.established = hs_established,
	.closed = hs_closed,
	.freeing = hs_freeing,
	.stray = hs_stray,
};

static int start_one(struct hs *h)
{
	struct lg_conn *lc = lg_pool_connect(&h->pool);
	if (!lc) {
		h->start_errors++;
		return -1;
	}
	h->started++;
	if (h->o->abandon == LG_ABANDON_INITIAL)
		lc->abandon_after_first = 1;
	else
		h->in_flight++;
	return 0;
}

/* Starts what is due now; returns when the next arrival is due. */
static uint64_t start_due(struct hs *h, uint64_t now, uint64_t t_end)
{
	const struct lg_opts *o = h->o;
	unsigned n = 0;
	if (o->rate <= 0) {
		/* closed loop: keep --concurrency handshakes in flight */
		/* (abandoned Initials are never in flight: --concurrency of
		 * them go out per turn) */
		while ((o->abandon == LG_ABANDON_INITIAL ? n < o->concurrency
							  : h->in_flight < o->concurrency) &&
		       n++ < MAX_STARTS_PER_STEP && (!o->count || h->started < o->count) &&
		       start_one(h) == 0)
			;
		return t_end;
	}
	uint64_t due = (uint64_t)floor(o->rate * (double)(now - h->t0) / 1e9) + 1;
	while (h->scheduled < due && n++ < MAX_STARTS_PER_STEP && (!o->count || h->scheduled < o->count)) {
		h->scheduled++;
		if (h->in_flight >= IN_FLIGHT_CAP || start_one(h) < 0)
			h->skipped++;
	}
	uint64_t next = h->t0 + (uint64_t)ceil((double)h->scheduled / o->rate * 1e9);
	return next < t_end ? next : t_end;
}

static void hs_report(struct hs *h, double el, const char *stopped_by)
{
	const struct lg_opts *o = h->o;
	struct lg_json j;
	if (lg_json_open(&j, o) < 0)
		return;
	lg_json_obj(&j, "results");
	lg_json_int(&j, "started", h->started);
	lg_json_int(&j, "completed", h->completed);
	lg_json_int(&j, "failed", h->failed);
	lg_json_int(&j, "unfinished", h->in_flight);
	lg_json_int(&j, "skipped", h->skipped);
	lg_json_int(&j, "start_errors", h->start_errors);
	lg_json_num(&j, "offered_rate", o->rate);
	lg_json_num(&j, "handshakes_per_s", el > 0 ? (double)h->completed / el : NAN);
	lg_json_obj(&j, "failed_by");
	lg_json_int(&j, "timeout", h->fail_timeout);
	lg_json_int(&j, "peer_close", h->fail_peer);
	lg_json_int(&j, "other", h->fail_other);
	lg_json_end(&j);
	lg_json_int(&j, "initials_sent", h->initials);
	lg_json_num(&j, "initials_per_s", el > 0 ? (double)h->initials / el : NAN);
	lg_json_int(&j, "server_datagrams_to_abandoned", h->stray);
	lg_json_int(&j, "client_datagrams_sent", h->pool.tx_datagrams);
	lg_json_int(&j, "client_datagrams_received", h->pool.rx_datagrams);
	lg_json_end(&j);
	lg_json_latency(&j, &h->lat);
	lg_json_close(&j, el, stopped_by);
}

static void hs_summary(struct hs *h, double el)
{
	if (h->o->abandon == LG_ABANDON_INITIAL) {
		printf("handshake: %llu Initials abandoned in %.2f s: %.1f/s; the server sent %llu "
		       "datagrams after them\n", (unsigned long long)h->initials, el,
		       (double)h->initials / el, (unsigned long long)h->stray);
		return;
	}
	lg_samples_sort(&h->lat);
	printf("handshake: %llu in %.2f s: %.1f/s, latency p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms "
	       "(%llu failed, %llu skipped)\n", (unsigned long long)h->completed, el,
	       (double)h->completed / el, lg_quantile_ms(&h->lat, 0.5), lg_quantile_ms(&h->lat, 0.99),
	       lg_quantile_ms(&h->lat, 0.999), (unsigned long long)h->failed,
	       (unsigned long long)h->skipped);
}

int lg_run_handshake(const struct lg_opts *o)
{
	static struct hs h;
	struct lg_json probe;
	h.o = o;
	/* the result file must be writable before the run, not after it */
	if (lg_json_open(&probe, o) < 0)
		return 2;
	lg_json_close(&probe, 0, "not run");
	uint32_t slots = (o->rate > 0 ? IN_FLIGHT_CAP : o->concurrency) + MAX_STARTS_PER_STEP;
	if (lg_pool_init(&h.pool, o, slots, 0, NULL, &hooks, &h) < 0)
		return 1;
	struct lg_progress pg = {.on = o->progress,
				 .what = o->abandon == LG_ABANDON_INITIAL ? "initials" : "handshakes"};
	const char *stopped_by = "duration";
	h.t0 = h.pool.now = lg_now();
	uint64_t t_end = h.t0 + (uint64_t)(o->duration_s * 1e9), now = h.t0;
	while (!lg_stop) {
		now = lg_now();
		if (now >= t_end)
			break;
		if (o->count && (o->rate > 0 ? h.scheduled : h.started) >= o->count && h.in_flight == 0) {
			stopped_by = "count";
			break;
		}
		h.pool.now = now;
		lg_pool_step(&h.pool, start_due(&h, now, t_end));
		lg_progress_update(&pg, o, now, o->abandon == LG_ABANDON_INITIAL ? h.initials : h.completed,
				   h.t0);
	}
	if (lg_stop)
		stopped_by = "signal";
	lg_progress_end(&pg);
	double el = (double)((now < t_end ? now : t_end) - h.t0) / 1e9;
	lg_pool_close_all(&h.pool);
	if (!h.completed && o->abandon != LG_ABANDON_INITIAL)
		lg_why_failed("no handshake completed", &h.last_close);
	else if (h.failed)
		lg_why_failed("the last failed handshake", &h.last_close);
	hs_summary(&h, el);
	hs_report(&h, el, stopped_by);
	int ok = o->abandon == LG_ABANDON_INITIAL ? h.initials > 0 : h.completed > 0;
	lg_pool_free(&h.pool);
	free(h.lat.v);
	return ok ? 0 : 1;
}
