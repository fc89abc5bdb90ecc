/* libFuzzer target for the frame codecs: decode every frame of the input,
 * re-encode each one, decode that again and insist on the same frame. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tern/frame.h"
#include "../lib/frame_eq.h"

#define CHECK(c) \
	do { \
		if (!(c)) \
			__builtin_trap(); \
	} while (0)

static const uint8_t *in_lo, *in_hi;

static void check_in_input(const uint8_t *ptr, uint64_t len)
{
	if (len == 0)
		return;
	CHECK(ptr >= in_lo && ptr <= in_hi && len <= (uint64_t)(in_hi - ptr));
}


static void check_pointers(const struct tern_frame *f)
{
	uint64_t t = f->type;

	if (tern_frame_is_stream(t))
		check_in_input(f->stream.data, f->stream.len);
	else if (t == TERN_FRAME_CRYPTO)
		check_in_input(f->crypto.data, f->crypto.len);
	else if (t == TERN_FRAME_NEW_TOKEN)
		check_in_input(f->new_token.token, f->new_token.len);
	else if (t == TERN_FRAME_CONNECTION_CLOSE || t == TERN_FRAME_CONNECTION_CLOSE_APP)
		check_in_input(f->close.reason, f->close.reason_len);
	else if (t == TERN_FRAME_DATAGRAM || t == TERN_FRAME_DATAGRAM_LEN)
		check_in_input(f->datagram.data, f->datagram.len);
	else if (t == TERN_FRAME_ACK || t == TERN_FRAME_ACK_ECN)
		check_in_input(f->ack.ranges, f->ack.ranges_len);
}

static uint8_t out[1 << 17];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	struct tern_frame f, g;

	in_lo = data;
	in_hi = end;
	while (p < end) {
		const uint8_t *before = p;
		if (tern_frame_decode(&p, end, &f) != 0) {
			CHECK(p == before);
			break;
		}
		CHECK(p > before && p <= end);
		check_pointers(&f);
		(void)tern_frame_is_ack_eliciting(f.type);
		/* Every frame type may appear in 1-RTT (RFC 9000 Table 3). */
		CHECK(tern_frame_allowed(f.type, TERN_PKT_1RTT) == 0);

		size_t n = tern_frame_encoded_size(&f);
		CHECK(n > 0 && n <= (size_t)(p - before));
		uint8_t *w = out;
		if (n > sizeof(out)) {
			CHECK(tern_frame_encode(&w, out + sizeof(out), &f) == TERN_ERR_NOBUF);
			CHECK(w == out);
			continue;
		}
		CHECK(tern_frame_encode(&w, out + n - 1, &f) == TERN_ERR_NOBUF && w == out);
		CHECK(tern_frame_encode(&w, out + sizeof(out), &f) == 0);
		CHECK((size_t)(w - out) == n);

		const uint8_t *q = out;
		CHECK(tern_frame_decode(&q, w, &g) == 0);
		CHECK(q == w);
		CHECK(same_frame(&f, &g));
	}
	return 0;
}
