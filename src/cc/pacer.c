/* Pacing, RFC 9002 §7.7: a token bucket in bytes, filled at
 * 5/4 * cwnd / smoothed_rtt and capped at one initial window.
 *
 * The fill is exact: credit below one byte is kept as a numerator over
 * 4 * smoothed_rtt, so a sender that always sends at the time the pacer
 * names keeps the long-run rate instead of losing a rounding per packet. */
#include "tern/cc.h"

typedef unsigned __int128 u128;

/* Bounds on the rate inputs so every product below fits in 128 bits. */
#define RATE_INPUT_MAX (UINT64_C(1) << 56)
#define TOKENS_MIN (INT64_MIN / 2)

static int paced(const struct tern_pacer *p)
{
	return p->cwnd && p->srtt;
}

void tern_pacer_init(struct tern_pacer *p, uint64_t max_datagram_size)
{
	memset(p, 0, sizeof(*p));
	if (max_datagram_size > TERN_CC_MAX_DATAGRAM_SIZE)
		max_datagram_size = TERN_CC_MAX_DATAGRAM_SIZE;
	p->mds = max_datagram_size;
	/* §7.7: bursts no larger than the initial congestion window. */
	p->burst = tern_cc_initial_window(max_datagram_size);
	p->tokens = (int64_t)p->burst;
}

/* The bucket as it stands at `at` (>= p->last), without changing p. */
static void pacer_fill(const struct tern_pacer *p, uint64_t at, int64_t *tokens, uint64_t *frac)
{
	*tokens = p->tokens;
	*frac = p->frac;
	if (at <= p->last || *tokens >= (int64_t)p->burst)
		return;
	if (!paced(p)) {
		*tokens = (int64_t)p->burst;
		*frac = 0;
		return;
	}
	uint64_t room = p->burst - (uint64_t)*tokens; /* tokens >= TOKENS_MIN */
	u128 den = (u128)TERN_PACER_GAIN_DEN * p->srtt;
	u128 num = (u128)(at - p->last) * TERN_PACER_GAIN_NUM * p->cwnd + *frac;
	if (num >= (u128)room * den) {
		*tokens = (int64_t)p->burst;
		*frac = 0;
		return;
	}
	*tokens += (int64_t)(num / den);
	*frac = (uint64_t)(num % den);
}

static void pacer_advance(struct tern_pacer *p, uint64_t now)
{
	if (now <= p->last)
		return;
	pacer_fill(p, now, &p->tokens, &p->frac);
	p->last = now;
}

void tern_pacer_set_rate(struct tern_pacer *p, uint64_t cwnd, uint64_t smoothed_rtt_ns,
			 uint64_t now)
{
	pacer_advance(p, now); /* time so far earns tokens at the old rate */
	p->cwnd = cwnd < RATE_INPUT_MAX ? cwnd : RATE_INPUT_MAX;
	p->srtt = smoothed_rtt_ns < RATE_INPUT_MAX ? smoothed_rtt_ns : RATE_INPUT_MAX;
	p->frac = 0; /* its unit was the old srtt */
}

uint64_t tern_pacer_next_send_time(const struct tern_pacer *p, uint64_t now)
{
	if (!paced(p))
		return now;
	uint64_t base = now > p->last ? now : p->last;
	int64_t tokens;
	uint64_t frac;
	pacer_fill(p, base, &tokens, &frac);
	if (tokens >= (int64_t)p->mds)
		return now;
	/* The least d with tokens + (d * NUM * cwnd + frac) / (DEN * srtt)
	 * >= mds. */
	uint64_t need = p->mds - (uint64_t)tokens;
	u128 want = (u128)need * TERN_PACER_GAIN_DEN * p->srtt - frac;
	u128 rate = (u128)TERN_PACER_GAIN_NUM * p->cwnd;
	u128 d = (want + rate - 1) / rate;
	if (d >= UINT64_MAX - base)
		return UINT64_MAX;
	return base + (uint64_t)d;
}

void tern_pacer_on_sent(struct tern_pacer *p, uint64_t bytes, uint64_t now)
{
	pacer_advance(p, now);
	/* A send the bucket did not cover (ACK-only, a probe) is a debt the
	 * following packets wait out; bounded so it cannot wrap. */
	if (bytes > (uint64_t)(p->tokens - TOKENS_MIN))
		p->tokens = TOKENS_MIN;
	else
		p->tokens -= (int64_t)bytes;
}
