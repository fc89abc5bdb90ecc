/* tern-bench reset-probe: short-header packets with random CIDs no server
 * knows, at --rate a second (0: as fast as this core can), in a size mix.
 *
 * Each size class sends from its own local port, so every reply names its
 * trigger's size without any shared key: a stateless reset carries no CID
 * (RFC 9000 §10.3). On the socket datapath each class has a socket; DPDK
 * and XDP own one range of ports, a port per class. Rules checked on every
 * reply:
 *   - strictly smaller than its trigger (RFC 9000 §10.3.3, no loops or
 *     amplification),
 *   - at least 21 bytes (RFC 9000 §10.3: 5 unpredictable bytes + token),
 *   - first bits 01, like a short header (RFC 9000 §10.3 figure 10),
 *   - never more replies than the server's limiter (--reset-limit R:B)
 *     allows: replies received by time t <= B + R * (t - first send).
 * With --echo the target is a UDP echo (the plain-forwarding reference):
 * a reply must then be exactly its trigger's size. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lg.h"
#include "util.h"

#define DRAIN_NS 200000000 /* late replies still count after the last send */
#define MAX_SEND_PER_STEP 512
#define FULL_SPEED_BATCH 64
#define MAX_WAIT_NS 1000000

struct rp_class {
	struct lg_dp *dp;
	uint16_t port; /* local: replies come back to it */
	uint32_t size, weight;
	int64_t cur; /* smooth weighted round robin */
	uint64_t sent, replies, reply_bytes, not_smaller, under_min, not_short, size_mismatch;
	uint32_t min_reply, max_reply;
};

struct rp {
	const struct lg_opts *o;
	struct rp_class c[LG_MAX_SIZES];
	unsigned n;
	struct lg_dp dp[LG_MAX_SIZES];
	unsigned n_dp;
	uint64_t unmatched; /* replies to a port no class sends from */
	int64_t total_w;
	uint64_t attempted, sent, replies, tx_dropped;
	uint64_t over_limit;
	double max_excess;
	uint64_t t0;
	uint64_t rng;
};

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Sizes in proportion to their weights, evenly interleaved (the smooth
 * weighted round robin of nginx). */
static struct rp_class *next_class(struct rp *r)
{
	struct rp_class *best = NULL;
	for (unsigned i = 0; i < r->n; i++) {
		r->c[i].cur += r->c[i].weight;
		if (!best || r->c[i].cur > best->cur)
			best = &r->c[i];
	}
	best->cur -= r->total_w;
	return best;
}

static void fill_trigger(struct rp *r, uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = xorshift(&r->rng);
		memcpy(p + i, &v, len - i < 8 ? len - i : 8);
	}
	/* a short header: form 0, fixed bit 1 (RFC 9000 §17.3.1); the DCID
	 * and everything after it are random, so it names nobody */
	p[0] = (uint8_t)(0x40 | (p[0] & 0x3f));
}

/* Per class, what was handed to the datapath is counted at enqueue; the
 * total sent is what the flushes say left. */
static void flush_all(struct rp *r)
{
	for (unsigned i = 0; i < r->n_dp; i++) {
		struct tern_datapath *dp = r->dp[i].dp;
		int k = dp->ops->tx_flush(dp, 0);
		if (k > 0)
			r->sent += (uint64_t)k;
	}
}

static void send_some(struct rp *r, unsigned n)
{
	for (unsigned k = 0; k < n; k++) {
		struct rp_class *c = next_class(r);
		struct tern_datapath *dp = c->dp->dp;
		struct tern_dp_pkt pkt;
		if (dp->ops->tx_alloc(dp, 0, &pkt, c->size) < 0) {
			flush_all(r);
			if (dp->ops->tx_alloc(dp, 0, &pkt, c->size) < 0)
				return;
		}
		fill_trigger(r, pkt.data, c->size);
		pkt.len = c->size;
		pkt.path.remote = r->o->target;
		pkt.path.local = c->dp->local;
		pkt.path.local.port = c->port;
		r->attempted++;
		if (dp->ops->tx_enqueue(dp, 0, &pkt) < 0)
			r->tx_dropped++;
		else
			c->sent++;
	}
	flush_all(r);
}

static void check_reply(struct rp *r, struct rp_class *c, const uint8_t *d, uint32_t len, uint64_t now)
{
	const struct lg_opts *o = r->o;
	c->replies++;
	r->replies++;
	c->reply_bytes += len;
	if (!c->min_reply || len < c->min_reply)
		c->min_reply = len;
	if (len > c->max_reply)
		c->max_reply = len;
	if (o->echo) {
		c->size_mismatch += len != c->size;
		return;
	}
	c->not_smaller += len >= c->size;
	c->under_min += len < 21;
	c->not_short += !len || (d[0] & 0xc0) != 0x40;
	if (o->limit_rate > 0) {
		/* generous by 0.1% and 2 packets for clock reads on two sides */
		double allowed = o->limit_burst + o->limit_rate * (double)(now - r->t0) / 1e9;
		double excess = (double)r->replies - (allowed * 1.001 + 2);
		if (excess > 0) {
			r->over_limit++;
			if (excess > r->max_excess)
				r->max_excess = excess;
		}
	}
}

static struct rp_class *class_of(struct rp *r, const struct lg_dp *d, uint16_t port)
{
	for (unsigned i = 0; i < r->n; i++)
		if (r->c[i].dp == d && r->c[i].port == port)
			return &r->c[i];
	return NULL;
}

static void receive(struct rp *r)
{
	struct tern_dp_pkt pkts[TERN_DP_BURST];
	for (unsigned i = 0; i < r->n_dp; i++) {
		struct tern_datapath *dp = r->dp[i].dp;
		int n;
		while ((n = dp->ops->rx_burst(dp, 0, pkts, TERN_DP_BURST)) > 0) {
			uint64_t now = lg_now();
			for (int k = 0; k < n; k++) {
				struct rp_class *c = class_of(r, &r->dp[i], pkts[k].path.local.port);
				if (c)
					check_reply(r, c, pkts[k].data, pkts[k].len, now);
				else
					r->unmatched++;
			}
			dp->ops->rx_release(dp, 0, pkts, (unsigned)n);
		}
	}
}

/* Sends what --rate says is due (or a batch at full speed); returns how
 * long to wait for the next send. */
static int64_t send_due(struct rp *r, uint64_t now)
{
	const struct lg_opts *o = r->o;
	uint64_t left = o->count ? o->count - r->attempted : UINT64_MAX;
	if (o->rate <= 0) {
		send_some(r, (unsigned)(left < FULL_SPEED_BATCH ? left : FULL_SPEED_BATCH));
		return 0;
	}
	uint64_t due = (uint64_t)floor(o->rate * (double)(now - r->t0) / 1e9) + 1;
	if (due > r->attempted) {
		uint64_t n = due - r->attempted;
		n = n < left ? n : left;
		send_some(r, (unsigned)(n < MAX_SEND_PER_STEP ? n : MAX_SEND_PER_STEP));
	}
	/* at high rates, wake for batches of 16 rather than every packet */
	uint64_t next = r->t0 + (uint64_t)ceil((double)(r->attempted + 16) / o->rate * 1e9);
	int64_t w = next > now ? (int64_t)(next - now) : 0;
	return w > MAX_WAIT_NS ? MAX_WAIT_NS : w;
}

static const char *run_loop(struct rp *r, uint64_t *t_send_end)
{
	const struct lg_opts *o = r->o;
	struct lg_progress pg = {.on = o->progress, .what = "replies"};
	uint64_t t_end = r->t0 + (uint64_t)(o->duration_s * 1e9);
	const char *why = "duration";
	for (;;) {
		uint64_t now = lg_now();
		if (lg_stop) {
			why = "signal";
			break;
		}
		if (now >= t_end)
			break;
		if (o->count && r->attempted >= o->count) {
			why = "count";
			break;
		}
		int64_t w = send_due(r, now);
		lg_dp_wait(r->dp, r->n_dp, w);
		receive(r);
		lg_progress_update(&pg, o, lg_now(), r->replies, r->t0);
	}
	*t_send_end = lg_now();
	lg_progress_end(&pg);
	/* replies still in flight belong to this run */
	while (!lg_stop && lg_now() < *t_send_end + DRAIN_NS) {
		lg_dp_wait(r->dp, r->n_dp, 10000000);
		receive(r);
	}
	return why;
}

static uint64_t rules_broken(const struct rp *r)
{
	uint64_t n = r->over_limit + r->unmatched;
	for (unsigned i = 0; i < r->n; i++)
		n += r->c[i].not_smaller + r->c[i].under_min + r->c[i].not_short + r->c[i].size_mismatch;
	return n;
}

static void report_classes(struct rp *r, struct lg_json *j)
{
	if (!j->f)
		return;
	fprintf(j->f, ",\n    \"by_size\": [");
	for (unsigned i = 0; i < r->n; i++) {
		const struct rp_class *c = &r->c[i];
		fprintf(j->f, "%s\n      {\"size\": %u, \"weight\": %u, \"sent\": %llu, \"replies\": %llu, "
			"\"min_reply\": %u, \"max_reply\": %u, \"mean_reply\": %.2f, \"not_smaller\": %llu, "
			"\"under_21\": %llu, \"not_short_header\": %llu, \"size_mismatch\": %llu}",
			i ? "," : "", c->size, c->weight, (unsigned long long)c->sent,
			(unsigned long long)c->replies, c->min_reply, c->max_reply,
			c->replies ? (double)c->reply_bytes / (double)c->replies : 0.0,
			(unsigned long long)c->not_smaller, (unsigned long long)c->under_min,
			(unsigned long long)c->not_short, (unsigned long long)c->size_mismatch);
	}
	fprintf(j->f, "\n    ]");
}

static void report(struct rp *r, double el, const char *why)
{
	const struct lg_opts *o = r->o;
	struct lg_json j;
	uint64_t ns = 0, u21 = 0, nsh = 0, mis = 0;
	for (unsigned i = 0; i < r->n; i++) {
		ns += r->c[i].not_smaller;
		u21 += r->c[i].under_min;
		nsh += r->c[i].not_short;
		mis += r->c[i].size_mismatch;
	}
	printf("reset-probe: %llu sent in %.2f s (%.0f/s), %llu replies (%.0f/s), %llu rules broken "
	       "(not smaller %llu, under 21 bytes %llu, not short-header %llu, over the limiter %llu%s)\n",
	       (unsigned long long)r->sent, el, (double)r->sent / el, (unsigned long long)r->replies,
	       (double)r->replies / el, (unsigned long long)rules_broken(r), (unsigned long long)ns,
	       (unsigned long long)u21, (unsigned long long)nsh, (unsigned long long)r->over_limit,
	       o->echo ? ", echo size mismatches counted" : "");
	if (lg_json_open(&j, o) < 0)
		return;
	lg_json_obj(&j, "results");
	lg_json_int(&j, "sent", r->sent);
	lg_json_int(&j, "tx_dropped", r->attempted - r->sent);
	lg_json_int(&j, "replies_unmatched", r->unmatched);
	lg_json_num(&j, "offered_rate", o->rate);
	lg_json_num(&j, "sent_per_s", el > 0 ? (double)r->sent / el : NAN);
	lg_json_int(&j, "replies", r->replies);
	lg_json_num(&j, "replies_per_s", el > 0 ? (double)r->replies / el : NAN);
	lg_json_num(&j, "reply_fraction", r->sent ? (double)r->replies / (double)r->sent : NAN);
	lg_json_int(&j, "rules_broken", rules_broken(r));
	lg_json_obj(&j, "rules");
	lg_json_int(&j, "reply_not_smaller", ns);
	lg_json_int(&j, "reply_under_21", u21);
	lg_json_int(&j, "reply_not_short_header", nsh);
	lg_json_int(&j, "over_limiter", r->over_limit);
	lg_json_num(&j, "over_limiter_max_excess", r->max_excess);
	lg_json_int(&j, "echo_size_mismatch", mis);
	lg_json_end(&j);
	report_classes(r, &j);
	lg_json_end(&j);
	lg_json_close(&j, el, why);
}

int lg_run_reset_probe(const struct lg_opts *o)
{
	static struct rp r;
	struct lg_json probe;
	r.o = o;
	if (lg_json_open(&probe, o) < 0)
		return 2;
	lg_json_close(&probe, 0, "not run");
	/* sockets: one per class; DPDK and XDP: one datapath, a port per class */
	int per_class = !strcmp(o->datapath, "socket");
	for (unsigned i = 0; i < o->n_sizes; i++) {
		if ((per_class || i == 0) && lg_dp_open(&r.dp[r.n_dp++], o, per_class ? 1 : o->n_sizes) < 0)
			return 1;
		struct rp_class *c = &r.c[r.n++];
		c->size = o->sizes[i];
		c->weight = o->weights[i];
		c->dp = &r.dp[r.n_dp - 1];
		c->port = (uint16_t)(c->dp->local.port + (per_class ? 0 : i));
		r.total_w += o->weights[i];
	}
	os_random(NULL, (uint8_t *)&r.rng, sizeof(r.rng));
	r.rng |= 1;
	uint64_t t_send_end;
	r.t0 = lg_now();
	const char *why = run_loop(&r, &t_send_end);
	double el = (double)(t_send_end - r.t0) / 1e9;
	report(&r, el, why);
	for (unsigned i = 0; i < r.n_dp; i++)
		lg_dp_close(&r.dp[i]);
	return r.sent && !rules_broken(&r) ? 0 : 1;
}
