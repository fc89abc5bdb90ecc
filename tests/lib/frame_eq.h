/* Field-by-field equality of decoded frames, shared by the frame suite and
 * its fuzzer: payloads compare by content, since their pointers differ. */
#ifndef TERN_TEST_FRAME_EQ_H
#define TERN_TEST_FRAME_EQ_H

#include <string.h>

#include "tern/frame.h"

static int same_bytes(const uint8_t *a, uint64_t alen, const uint8_t *b, uint64_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, (size_t)alen) == 0);
}

static int same_ack(const struct tern_ack_frame *a, const struct tern_ack_frame *b, uint64_t type)
{
	struct tern_ack_iter ia, ib;
	struct tern_ack_range ra, rb;
	int na, nb;

	if (a->largest != b->largest || a->ack_delay != b->ack_delay ||
	    a->first_range != b->first_range || a->range_count != b->range_count)
		return 0;
	if (type == TERN_FRAME_ACK_ECN && memcmp(&a->ecn, &b->ecn, sizeof(a->ecn)) != 0)
		return 0;
	tern_ack_iter_init(&ia, a);
	tern_ack_iter_init(&ib, b);
	do {
		na = tern_ack_iter_next(&ia, &ra);
		nb = tern_ack_iter_next(&ib, &rb);
		if (na != nb || (na && (ra.smallest != rb.smallest || ra.largest != rb.largest)))
			return 0;
	} while (na);
	return 1;
}

static int same_frame(const struct tern_frame *a, const struct tern_frame *b)
{
	uint64_t t = a->type;

	if (t != b->type)
		return 0;
	if (tern_frame_is_stream(t))
		return a->stream.stream_id == b->stream.stream_id &&
		       a->stream.offset == b->stream.offset &&
		       same_bytes(a->stream.data, a->stream.len, b->stream.data, b->stream.len);
	switch (t) {
	case TERN_FRAME_PADDING:
		return a->padding.len == b->padding.len;
	case TERN_FRAME_PING:
	case TERN_FRAME_HANDSHAKE_DONE:
		return 1;
	case TERN_FRAME_ACK:
	case TERN_FRAME_ACK_ECN:
		return same_ack(&a->ack, &b->ack, t);
	case TERN_FRAME_RESET_STREAM:
		return a->reset_stream.stream_id == b->reset_stream.stream_id &&
		       a->reset_stream.error_code == b->reset_stream.error_code &&
		       a->reset_stream.final_size == b->reset_stream.final_size;
	case TERN_FRAME_STOP_SENDING:
		return a->stop_sending.stream_id == b->stop_sending.stream_id &&
		       a->stop_sending.error_code == b->stop_sending.error_code;
	case TERN_FRAME_CRYPTO:
		return a->crypto.offset == b->crypto.offset &&
		       same_bytes(a->crypto.data, a->crypto.len, b->crypto.data, b->crypto.len);
	case TERN_FRAME_NEW_TOKEN:
		return same_bytes(a->new_token.token, a->new_token.len, b->new_token.token,
				  b->new_token.len);
	case TERN_FRAME_MAX_DATA:
		return a->max_data.max == b->max_data.max;
	case TERN_FRAME_MAX_STREAM_DATA:
		return a->max_stream_data.stream_id == b->max_stream_data.stream_id &&
		       a->max_stream_data.max == b->max_stream_data.max;
	case TERN_FRAME_MAX_STREAMS_BIDI:
	case TERN_FRAME_MAX_STREAMS_UNI:
		return a->max_streams.max == b->max_streams.max;
	case TERN_FRAME_DATA_BLOCKED:
		return a->data_blocked.limit == b->data_blocked.limit;
	case TERN_FRAME_STREAM_DATA_BLOCKED:
		return a->stream_data_blocked.stream_id == b->stream_data_blocked.stream_id &&
		       a->stream_data_blocked.limit == b->stream_data_blocked.limit;
	case TERN_FRAME_STREAMS_BLOCKED_BIDI:
	case TERN_FRAME_STREAMS_BLOCKED_UNI:
		return a->streams_blocked.limit == b->streams_blocked.limit;
	case TERN_FRAME_NEW_CONNECTION_ID:
		return a->new_cid.seq == b->new_cid.seq &&
		       a->new_cid.retire_prior_to == b->new_cid.retire_prior_to &&
		       tern_cid_equal(&a->new_cid.cid, &b->new_cid.cid) &&
		       memcmp(a->new_cid.reset_token, b->new_cid.reset_token, 16) == 0;
	case TERN_FRAME_RETIRE_CONNECTION_ID:
		return a->retire_cid.seq == b->retire_cid.seq;
	case TERN_FRAME_PATH_CHALLENGE:
	case TERN_FRAME_PATH_RESPONSE:
		return memcmp(a->path.data, b->path.data, 8) == 0;
	case TERN_FRAME_CONNECTION_CLOSE:
	case TERN_FRAME_CONNECTION_CLOSE_APP:
		return a->close.error_code == b->close.error_code &&
		       a->close.frame_type == b->close.frame_type &&
		       same_bytes(a->close.reason, a->close.reason_len, b->close.reason,
				  b->close.reason_len);
	case TERN_FRAME_DATAGRAM:
	case TERN_FRAME_DATAGRAM_LEN:
		return same_bytes(a->datagram.data, a->datagram.len, b->datagram.data,
				  b->datagram.len);
	}
	return 0;
}

#endif
