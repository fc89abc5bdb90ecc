/* RTT estimation (RFC 9002 §5), the probe timeout period (§6.2.1),
 * persistent congestion (§7.6) and the controller-independent half of the
 * congestion controller interface. */
#include "tern/cc.h"

/* ---- RTT, RFC 9002 §5 ----------------------------------------------------- */

void tern_rtt_init(struct tern_rtt *rtt)
{
	/* §6.2.2: before a sample, smoothed_rtt = kInitialRtt and rttvar half
	 * of it, so the first PTO is roughly a second. */
	rtt->latest_rtt = 0;
	rtt->min_rtt = 0;
	rtt->smoothed_rtt = TERN_RTT_INITIAL_NS;
	rtt->rttvar = TERN_RTT_INITIAL_NS / 2;
	rtt->has_sample = 0;
}

void tern_rtt_update(struct tern_rtt *rtt, uint64_t latest_ns, uint64_t ack_delay_ns,
		     int handshake_confirmed, uint64_t max_ack_delay_ns)
{
	rtt->latest_rtt = latest_ns;
	if (!rtt->has_sample) {
		/* §5.3: the first sample replaces the initial values outright and
		 * ignores ack delay. */
		rtt->has_sample = 1;
		rtt->min_rtt = latest_ns;
		rtt->smoothed_rtt = latest_ns;
		rtt->rttvar = latest_ns / 2;
		return;
	}
	/* §5.2: min_rtt comes from raw samples, never delay-adjusted ones. */
	if (latest_ns < rtt->min_rtt)
		rtt->min_rtt = latest_ns;
	/* §5.3: after confirmation a peer cannot legitimately delay an ACK by
	 * more than its max_ack_delay. */
	if (handshake_confirmed && ack_delay_ns > max_ack_delay_ns)
		ack_delay_ns = max_ack_delay_ns;
	/* §5.3: subtract the delay only when the result stays >= min_rtt;
	 * written as a difference because the peer chooses ack_delay. */
	uint64_t adjusted = latest_ns;
	if (latest_ns - rtt->min_rtt >= ack_delay_ns)
		adjusted = latest_ns - ack_delay_ns;
	uint64_t diff = rtt->smoothed_rtt > adjusted ? rtt->smoothed_rtt - adjusted
						     : adjusted - rtt->smoothed_rtt;
	/* 128-bit so a nonsense sample cannot wrap the weighted sums. */
	rtt->rttvar = (uint64_t)((3 * (unsigned __int128)rtt->rttvar + diff) / 4);
	rtt->smoothed_rtt = (uint64_t)((7 * (unsigned __int128)rtt->smoothed_rtt + adjusted) / 8);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

uint64_t tern_rtt_pto(const struct tern_rtt *rtt, uint64_t max_ack_delay_ns)
{
	uint64_t var = rtt->rttvar > UINT64_MAX / 4 ? UINT64_MAX : 4 * rtt->rttvar;
	if (var < TERN_RTT_GRANULARITY_NS)
		var = TERN_RTT_GRANULARITY_NS;
	return sat_add(sat_add(rtt->smoothed_rtt, var), max_ack_delay_ns);
}

/* ---- persistent congestion, RFC 9002 §7.6 -------------------------------- */

uint64_t tern_cc_persistent_congestion_duration(const struct tern_rtt *rtt,
						uint64_t max_ack_delay_ns)
{
	uint64_t pto = tern_rtt_pto(rtt, max_ack_delay_ns);
	if (pto > UINT64_MAX / TERN_PERSISTENT_CONGESTION_THRESHOLD)
		return UINT64_MAX;
	return pto * TERN_PERSISTENT_CONGESTION_THRESHOLD;
}

int tern_cc_persistent_congestion(const struct tern_rtt *rtt, uint64_t max_ack_delay_ns,
				  uint64_t first_rtt_sample_time, const struct tern_cc_pkt *pkts,
				  size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (pkts[i].sent_time < pkts[i - 1].sent_time)
			return TERN_ERR_INVAL;
	/* §7.6.2: without a sample the PTO rests on kInitialRtt, which could
	 * declare congestion from too few probes. */
	if (!rtt->has_sample)
		return 0;
	uint64_t duration = tern_cc_persistent_congestion_duration(rtt, max_ack_delay_ns);
	int have_start = 0;
	uint64_t start = 0;
	for (size_t i = 0; i < n; i++) {
		const struct tern_cc_pkt *p = &pkts[i];
		/* §7.6.2: a packet that was acknowledged (or not lost), or one
		 * sent before the first RTT sample, ends the run. */
		if (!p->lost || p->sent_time <= first_rtt_sample_time) {
			have_start = 0;
			continue;
		}
		/* Only ack-eliciting packets bound the period; others inside it
		 * just have to be lost too. */
		if (!p->ack_eliciting)
			continue;
		if (!have_start) {
			have_start = 1;
			start = p->sent_time;
		} else if (p->sent_time - start > duration) {
			return 1;
		}
	}
	return 0;
}

/* ---- controller interface ------------------------------------------------- */

int tern_cc_init(struct tern_cc *cc, enum tern_cc_algo algo, uint64_t max_datagram_size)
{
	const struct tern_cc_ops *ops;
	switch (algo) {
	case TERN_CC_NEWRENO:
		ops = &tern_cc_newreno_ops;
		break;
	case TERN_CC_CUBIC:
		ops = &tern_cc_cubic_ops;
		break;
	default:
		return TERN_ERR_INVAL;
	}
	if (max_datagram_size < TERN_CC_MIN_DATAGRAM_SIZE ||
	    max_datagram_size > TERN_CC_MAX_DATAGRAM_SIZE)
		return TERN_ERR_INVAL;
	memset(cc, 0, sizeof(*cc));
	cc->ops = ops;
	cc->max_datagram_size = max_datagram_size;
	/* §7.2: two datagrams, so a loss can still be detected by ACKs. */
	cc->min_window = 2 * max_datagram_size;
	cc->cwnd = tern_cc_initial_window(max_datagram_size);
	cc->ssthresh = UINT64_MAX;
	return 0;
}

static void flight_remove(struct tern_cc *cc, uint64_t bytes)
{
	cc->bytes_in_flight -= bytes < cc->bytes_in_flight ? bytes : cc->bytes_in_flight;
}

void tern_cc_on_sent(struct tern_cc *cc, uint64_t bytes, uint64_t now)
{
	cc->bytes_in_flight = sat_add(cc->bytes_in_flight, bytes);
	if (cc->ops->on_sent)
		cc->ops->on_sent(cc, bytes, now);
}

void tern_cc_on_acked(struct tern_cc *cc, uint64_t bytes, uint64_t sent_time, uint64_t now,
		      const struct tern_rtt *rtt)
{
	flight_remove(cc, bytes);
	/* §7.3.2: the recovery period ends when a packet sent during it is
	 * acknowledged. */
	if (cc->in_recovery && !tern_cc_sent_in_recovery(cc, sent_time))
		cc->in_recovery = 0;
	cc->ops->on_acked(cc, bytes, sent_time, now, rtt);
}

void tern_cc_on_lost(struct tern_cc *cc, uint64_t bytes, uint64_t sent_time, uint64_t now)
{
	flight_remove(cc, bytes);
	cc->ops->on_lost(cc, bytes, sent_time, now);
}

void tern_cc_on_persistent_congestion(struct tern_cc *cc, uint64_t now)
{
	cc->ops->on_persistent_congestion(cc, now);
}

void tern_cc_on_ecn_ce(struct tern_cc *cc, uint64_t sent_time, uint64_t now)
{
	cc->ops->on_ecn_ce(cc, sent_time, now);
}

void tern_cc_on_discarded(struct tern_cc *cc, uint64_t bytes)
{
	flight_remove(cc, bytes);
}

void tern_cc_set_app_limited(struct tern_cc *cc, int app_limited)
{
	cc->app_limited = app_limited ? 1 : 0;
}

uint64_t tern_cc_cwnd(const struct tern_cc *cc)
{
	return cc->ops->cwnd(cc);
}

int tern_cc_in_recovery(const struct tern_cc *cc)
{
	return cc->ops->in_recovery(cc);
}

int tern_cc_can_send(const struct tern_cc *cc)
{
	return cc->bytes_in_flight < tern_cc_cwnd(cc);
}
