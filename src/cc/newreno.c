/* NewReno as RFC 9002 §7 and Appendix B describe it for QUIC. */
#include "tern/cc.h"

static void newreno_on_sent(struct tern_cc *cc, uint64_t bytes, uint64_t now)
{
	(void)cc;
	(void)bytes;
	(void)now;
}

static void newreno_on_acked(struct tern_cc *cc, uint64_t bytes, uint64_t sent_time,
			     uint64_t now, const struct tern_rtt *rtt)
{
	(void)now;
	(void)rtt;
	/* B.5: packets sent before the reduction describe the old window. */
	if (tern_cc_sent_in_recovery(cc, sent_time))
		return;
	/* §7.8: an unused window says nothing about the path's capacity. */
	if (cc->app_limited)
		return;
	if (cc->cwnd < cc->ssthresh) {
		/* §7.3.1: slow start grows by the bytes acknowledged. */
		cc->cwnd += bytes;
		return;
	}
	/* §7.3.3: at most one datagram per window acknowledged. Counting
	 * bytes gives exactly that, where B.5's per-packet
	 * mds * bytes / cwnd rounds down on every ACK. */
	struct tern_newreno *r = &cc->u.newreno;
	r->ca_acked += bytes;
	if (r->ca_acked >= cc->cwnd) {
		uint64_t n = r->ca_acked / cc->cwnd;
		r->ca_acked -= n * cc->cwnd;
		cc->cwnd += n * cc->max_datagram_size;
	}
}

/* B.6 OnCongestionEvent. */
static void newreno_congestion_event(struct tern_cc *cc, uint64_t sent_time, uint64_t now)
{
	/* §7.3.2: one reduction per round trip; losses of packets sent before
	 * the current recovery period began are part of the same event. */
	if (tern_cc_sent_in_recovery(cc, sent_time))
		return;
	cc->recovery_start = now;
	cc->has_recovery_start = 1;
	cc->in_recovery = 1;
	/* §7.3.2: kLossReductionFactor = 0.5; ssthresh itself is not floored
	 * (B.6), only the window is. */
	cc->ssthresh = cc->cwnd / 2;
	cc->cwnd = cc->ssthresh > cc->min_window ? cc->ssthresh : cc->min_window;
	cc->u.newreno.ca_acked = 0;
}

static void newreno_on_lost(struct tern_cc *cc, uint64_t bytes, uint64_t sent_time, uint64_t now)
{
	(void)bytes;
	newreno_congestion_event(cc, sent_time, now);
}

static void newreno_on_ecn_ce(struct tern_cc *cc, uint64_t sent_time, uint64_t now)
{
	/* §7.3.2: a CE mark is a congestion signal like a loss. */
	newreno_congestion_event(cc, sent_time, now);
}

static void newreno_on_persistent_congestion(struct tern_cc *cc, uint64_t now)
{
	(void)now;
	/* §7.6.2, B.8: collapse to the minimum window and leave recovery, so
	 * the window grows again from the next ACK. */
	cc->cwnd = cc->min_window;
	cc->has_recovery_start = 0;
	cc->recovery_start = 0;
	cc->in_recovery = 0;
	cc->u.newreno.ca_acked = 0;
}

static uint64_t newreno_cwnd(const struct tern_cc *cc)
{
	return cc->cwnd;
}

static int newreno_in_recovery(const struct tern_cc *cc)
{
	return cc->in_recovery;
}

const struct tern_cc_ops tern_cc_newreno_ops = {
	.name = "newreno",
	.on_sent = newreno_on_sent,
	.on_acked = newreno_on_acked,
	.on_lost = newreno_on_lost,
	.on_persistent_congestion = newreno_on_persistent_congestion,
	.on_ecn_ce = newreno_on_ecn_ce,
	.cwnd = newreno_cwnd,
	.in_recovery = newreno_in_recovery,
};
