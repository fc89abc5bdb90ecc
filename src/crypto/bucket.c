/* tern: token bucket capping the stateless-reset rate (RFC 9000 §10.3.3
 * lets an endpoint limit how many resets it sends; DESIGN §5 caps it per
 * worker so a flood of unknown-CID packets cannot turn into a flood of
 * replies). */
#include "tern/reset.h"

/* One token is 10^9 nano-tokens: rate tokens/s * dt ns is then exactly
 * rate * dt nano-tokens, an integer, so nothing is rounded away between
 * polls, however frequent. */
#define NANO_PER_TOKEN UINT64_C(1000000000)

void tern_bucket_init(struct tern_bucket *b, uint64_t rate_per_sec, uint32_t burst, uint64_t now_ns)
{
	b->rate = rate_per_sec;
	b->cap_nt = (uint64_t)burst * NANO_PER_TOKEN; /* < 2^32 * 10^9 < 2^64 */
	b->level = b->cap_nt;
	b->last_ns = now_ns;
}

static void bucket_refill(struct tern_bucket *b, uint64_t now_ns)
{
	uint64_t dt, room;

	/* A clock that steps back refills nothing, and last_ns keeps the
	 * later time so the same interval is never credited twice. */
	if (now_ns <= b->last_ns)
		return;
	dt = now_ns - b->last_ns;
	b->last_ns = now_ns;
	room = b->cap_nt - b->level;
	if (room == 0 || b->rate == 0)
		return;
	/* dt * rate >= room  <=>  dt > (room - 1) / rate; testing it this way
	 * avoids the product overflowing on huge gaps or rates. */
	if (dt > (room - 1) / b->rate)
		b->level = b->cap_nt;
	else
		b->level += dt * b->rate; /* < room, so no overflow */
}

int tern_bucket_take(struct tern_bucket *b, uint64_t now_ns)
{
	bucket_refill(b, now_ns);
	if (b->level < NANO_PER_TOKEN)
		return 0;
	b->level -= NANO_PER_TOKEN;
	return 1;
}
