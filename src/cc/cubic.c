/* CUBIC, RFC 9438, on QUIC's loss signals and recovery periods (RFC 9002).
 *
 * Integer arithmetic only, so two runs with the same inputs give the same
 * windows on every machine: windows are bytes, the curve's time runs in
 * microseconds (precise enough for a curve whose unit is a second), and the
 * constants are fractions: C = 4/10, beta_cubic = 7/10,
 * alpha_cubic = 3 * (1 - 7/10) / (1 + 7/10) = 9/17. */
#include "tern/cc.h"

#define FRAC TERN_CUBIC_FRAC_BITS
#define FRAC_MASK ((UINT64_C(1) << FRAC) - 1)
#define US_PER_S3 ((unsigned __int128)1000000000000000000u) /* (10^6 us)^3 */
#define DT_US_MAX (UINT64_C(1) << 36)                        /* ~19 hours */
#define W_LIMIT (UINT64_C(1) << 62)

typedef unsigned __int128 u128;

/* floor(cbrt(v)) for v < 2^126, by bisection: 42 steps, no floating point. */
static uint64_t cbrt_u128(u128 v)
{
	uint64_t lo = 0, hi = UINT64_C(1) << 42; /* lo^3 <= v < hi^3 */
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		if ((u128)mid * mid * mid <= v)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

uint64_t tern_cubic_k(uint64_t w_max, uint64_t cwnd_epoch, uint64_t mds)
{
	if (w_max <= cwnd_epoch || mds == 0)
		return 0;
	/* Figure 2, K = cbrt((W_max - cwnd_epoch) / C) with windows in
	 * segments: in microseconds, K^3 = delta / mds * 10/4 * 10^18. */
	u128 v = (u128)(w_max - cwnd_epoch) * (US_PER_S3 * 10 / 4) / mds;
	u128 lim = ((u128)1 << 126) - 1;
	return cbrt_u128(v < lim ? v : lim) * 1000;
}

uint64_t tern_cubic_window(uint64_t w_max, uint64_t k_ns, uint64_t t_ns, uint64_t mds)
{
	/* Figure 1, W_cubic(t) = C * (t - K)^3 + W_max, the cubic term scaled
	 * from segments to bytes by mds. */
	int neg = t_ns < k_ns;
	uint64_t dt_us = (neg ? k_ns - t_ns : t_ns - k_ns) / 1000;
	if (dt_us > DT_US_MAX)
		dt_us = DT_US_MAX;
	u128 term = (u128)dt_us * dt_us * dt_us * (4 * (u128)mds) / (US_PER_S3 * 10);
	if (neg)
		return term >= w_max ? 0 : w_max - (uint64_t)term;
	if (w_max >= W_LIMIT || term >= W_LIMIT - w_max)
		return W_LIMIT;
	return w_max + (uint64_t)term;
}

/* A new congestion avoidance stage: t_epoch, cwnd_epoch, K and W_est. */
static void cubic_epoch_begin(struct tern_cc *cc, uint64_t now)
{
	struct tern_cubic *c = &cc->u.cubic;
	c->epoch_valid = 1;
	c->epoch_start = now;
	c->cwnd_epoch = cc->cwnd;
	c->cwnd_frac = 0;
	/* §4.8: the first stage after a timeout runs the curve with K = 0 from
	 * the current window; a window already at or past W_max likewise has
	 * no concave part left to climb. */
	if (c->after_timeout || c->w_max <= cc->cwnd) {
		c->w_max = cc->cwnd;
		c->k_ns = 0;
		c->after_timeout = 0;
	} else {
		c->k_ns = tern_cubic_k(c->w_max, cc->cwnd, cc->max_datagram_size);
	}
	/* §4.3: W_est starts at cwnd_epoch. */
	c->w_est = cc->cwnd << FRAC;
}

/* §4.3 Figure 4: W_est += alpha_cubic * segments_acked / cwnd, in bytes. */
static void cubic_grow_w_est(struct tern_cc *cc, uint64_t bytes)
{
	struct tern_cubic *c = &cc->u.cubic;
	/* Once W_est reaches the window before the last reduction, grow at
	 * Reno's own rate (alpha_cubic = 1). */
	int reno = (c->w_est >> FRAC) >= c->cwnd_prior;
	u128 num = (u128)(reno ? 1 : 9) * bytes * cc->max_datagram_size << FRAC;
	u128 den = (u128)(reno ? 1 : 17) * cc->cwnd;
	c->w_est += (uint64_t)(num / den);
}

static void cubic_avoid(struct tern_cc *cc, uint64_t bytes, uint64_t now, uint64_t srtt)
{
	struct tern_cubic *c = &cc->u.cubic;
	uint64_t mds = cc->max_datagram_size;
	if (!c->epoch_valid)
		cubic_epoch_begin(cc, now);
	uint64_t t = now > c->epoch_start ? now - c->epoch_start : 0;
	uint64_t w_cubic = tern_cubic_window(c->w_max, c->k_ns, t, mds);
	cubic_grow_w_est(cc, bytes);
	uint64_t w_est = c->w_est >> FRAC;
	if (w_cubic < w_est) {
		/* §4.3: Reno-friendly region. Never shrink on an ACK: cwnd may
		 * already have climbed toward W_cubic(t + RTT). */
		if (w_est > cc->cwnd)
			cc->cwnd = w_est;
		return;
	}
	/* §4.2: aim at where the curve will be one RTT from now, neither
	 * below the window nor beyond 1.5 times it. */
	uint64_t horizon = t + srtt < t ? UINT64_MAX : t + srtt;
	uint64_t target = tern_cubic_window(c->w_max, c->k_ns, horizon, mds);
	uint64_t cap = cc->cwnd + cc->cwnd / 2;
	if (target < cc->cwnd)
		target = cc->cwnd;
	if (target > cap)
		target = cap;
	/* §4.4, §4.5: (target - cwnd) / cwnd per segment acknowledged; the
	 * fraction carries over so small steps add up. */
	u128 inc = ((u128)(target - cc->cwnd) * bytes << FRAC) / cc->cwnd + c->cwnd_frac;
	cc->cwnd += (uint64_t)(inc >> FRAC);
	c->cwnd_frac = (uint64_t)inc & FRAC_MASK;
}

static void cubic_on_sent(struct tern_cc *cc, uint64_t bytes, uint64_t now)
{
	(void)cc;
	(void)bytes;
	(void)now;
}

static void cubic_on_acked(struct tern_cc *cc, uint64_t bytes, uint64_t sent_time, uint64_t now,
			   const struct tern_rtt *rtt)
{
	/* RFC 9002 B.5: packets sent before the reduction describe the old
	 * window. */
	if (tern_cc_sent_in_recovery(cc, sent_time))
		return;
	/* RFC 9002 §7.8: an unused window says nothing about the path. */
	if (cc->app_limited || bytes == 0)
		return;
	if (cc->cwnd < cc->ssthresh) {
		/* §4.10: standard slow start below ssthresh. */
		cc->cwnd += bytes;
		return;
	}
	cubic_avoid(cc, bytes, now, rtt ? rtt->smoothed_rtt : 0);
}

static void cubic_congestion_event(struct tern_cc *cc, uint64_t sent_time, uint64_t now)
{
	struct tern_cubic *c = &cc->u.cubic;
	/* RFC 9002 §7.3.2: one reduction per recovery period. */
	if (tern_cc_sent_in_recovery(cc, sent_time))
		return;
	cc->recovery_start = now;
	cc->has_recovery_start = 1;
	cc->in_recovery = 1;
	c->epoch_valid = 0;
	/* §4.7 fast convergence: a loss below the previous W_max means
	 * capacity shrank; release some of it to newer flows. */
	if (cc->cwnd < c->w_max)
		c->w_max = (uint64_t)((u128)cc->cwnd * 17 / 20); /* (1 + beta) / 2 */
	else
		c->w_max = cc->cwnd;
	c->cwnd_prior = cc->cwnd;
	/* §4.6 Figure 5: ssthresh = cwnd * beta_cubic, both floored at the
	 * minimum window (RFC 9002 §7.2's 2 * mds, for ECN-CE as well). cwnd
	 * rather than flight_size, which §4.6 allows: an app-limited flight
	 * would otherwise cut far below the window actually in use. */
	uint64_t ss = (uint64_t)((u128)cc->cwnd * 7 / 10);
	if (ss < cc->min_window)
		ss = cc->min_window;
	cc->ssthresh = ss;
	cc->cwnd = ss;
	c->cwnd_frac = 0;
}

static void cubic_on_lost(struct tern_cc *cc, uint64_t bytes, uint64_t sent_time, uint64_t now)
{
	(void)bytes;
	cubic_congestion_event(cc, sent_time, now);
}

static void cubic_on_ecn_ce(struct tern_cc *cc, uint64_t sent_time, uint64_t now)
{
	cubic_congestion_event(cc, sent_time, now);
}

static void cubic_on_persistent_congestion(struct tern_cc *cc, uint64_t now)
{
	(void)now;
	struct tern_cubic *c = &cc->u.cubic;
	/* RFC 9002 §7.6.2 and RFC 9438 §4.8: the minimum window, slow start
	 * back to ssthresh, then a fresh curve with K = 0. */
	cc->cwnd = cc->min_window;
	cc->has_recovery_start = 0;
	cc->recovery_start = 0;
	cc->in_recovery = 0;
	c->epoch_valid = 0;
	c->after_timeout = 1;
	c->cwnd_frac = 0;
}

static uint64_t cubic_cwnd(const struct tern_cc *cc)
{
	return cc->cwnd;
}

static int cubic_in_recovery(const struct tern_cc *cc)
{
	return cc->in_recovery;
}

const struct tern_cc_ops tern_cc_cubic_ops = {
	.name = "cubic",
	.on_sent = cubic_on_sent,
	.on_acked = cubic_on_acked,
	.on_lost = cubic_on_lost,
	.on_persistent_congestion = cubic_on_persistent_congestion,
	.on_ecn_ce = cubic_on_ecn_ce,
	.cwnd = cubic_cwnd,
	.in_recovery = cubic_in_recovery,
};
