/* tern: QUIC frame codecs, RFC 9000 §19 and RFC 9221 §4. */
#include "tern/frame.h"

#include <limits.h>

#define FEE TERN_ERR_QUIC(TERN_QUIC_FRAME_ENCODING_ERROR)
#define PV TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION)

/* ---- decoding helpers ---------------------------------------------------- */

/* A field that ends early is a badly formed frame, RFC 9000 §12.4. */
static inline int get_v(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	return tern_varint_decode(p, end, v) == 0 ? 0 : FEE;
}

static inline int get_bytes(const uint8_t **p, const uint8_t *end, uint64_t len,
			    const uint8_t **out)
{
	if (len > (uint64_t)(end - *p))
		return FEE;
	*out = *p;
	*p += len;
	return 0;
}

static int get_len_bytes(const uint8_t **p, const uint8_t *end, const uint8_t **out,
			 uint64_t *len)
{
	int r = get_v(p, end, len);
	return r ? r : get_bytes(p, end, *len, out);
}

/* ---- ACK ----------------------------------------------------------------- */

/* One Gap/ACK Range Length pair below `*smallest`, RFC 9000 §19.3.1. A range
 * that would reach below packet number 0 is FRAME_ENCODING_ERROR (§19.3.1:
 * "...MUST treat as a connection error of type FRAME_ENCODING_ERROR"). */
static int ack_next_pair(const uint8_t **p, const uint8_t *end, uint64_t *smallest,
			 struct tern_ack_range *r)
{
	uint64_t gap, len;
	int e;

	if ((e = get_v(p, end, &gap)) || (e = get_v(p, end, &len)))
		return e;
	if (*smallest < 2 || gap > *smallest - 2)
		return FEE;
	r->largest = *smallest - gap - 2;
	if (len > r->largest)
		return FEE;
	r->smallest = r->largest - len;
	*smallest = r->smallest;
	return 0;
}

static int decode_ack(const uint8_t **p, const uint8_t *end, uint64_t type,
		      struct tern_ack_frame *a)
{
	struct tern_ack_range r;
	uint64_t smallest;
	int e;

	if ((e = get_v(p, end, &a->largest)) || (e = get_v(p, end, &a->ack_delay)) ||
	    (e = get_v(p, end, &a->range_count)) || (e = get_v(p, end, &a->first_range)))
		return e;
	if (a->first_range > a->largest)
		return FEE;
	smallest = a->largest - a->first_range;
	a->ranges = *p;
	/* Each pair takes at least two bytes, so a huge range_count ends at the
	 * input's end rather than looping. */
	for (uint64_t i = 0; i < a->range_count; i++)
		if ((e = ack_next_pair(p, end, &smallest, &r)))
			return e;
	a->ranges_len = (size_t)(*p - a->ranges);
	if (type == TERN_FRAME_ACK_ECN) {
		if ((e = get_v(p, end, &a->ecn.ect0)) || (e = get_v(p, end, &a->ecn.ect1)) ||
		    (e = get_v(p, end, &a->ecn.ce)))
			return e;
	} else {
		memset(&a->ecn, 0, sizeof(a->ecn));
	}
	return 0;
}

void tern_ack_iter_init(struct tern_ack_iter *it, const struct tern_ack_frame *ack)
{
	it->p = ack->ranges;
	it->end = ack->ranges ? ack->ranges + ack->ranges_len : NULL;
	it->left = ack->range_count;
	it->smallest = 0;
	it->largest = ack->largest;
	it->first_range = ack->first_range;
	it->started = 0;
}

int tern_ack_iter_next(struct tern_ack_iter *it, struct tern_ack_range *r)
{
	if (!it->started) {
		if (it->first_range > it->largest)
			return 0;
		it->started = 1;
		r->largest = it->largest;
		r->smallest = it->smallest = it->largest - it->first_range;
		return 1;
	}
	if (it->left == 0 || !it->p)
		return 0;
	if (ack_next_pair(&it->p, it->end, &it->smallest, r)) {
		it->left = 0;
		return 0;
	}
	it->left--;
	return 1;
}

/* ---- STREAM and the other frames with payloads --------------------------- */

/* RFC 9000 §19.8: offset + length may not exceed 2^62-1. The RFC allows
 * FRAME_ENCODING_ERROR or FLOW_CONTROL_ERROR; we say FRAME_ENCODING_ERROR
 * since the frame itself is impossible, whatever the flow-control state. */
static int decode_stream(const uint8_t **p, const uint8_t *end, uint64_t type,
			 struct tern_frame *f)
{
	int e;

	if ((e = get_v(p, end, &f->stream.stream_id)))
		return e;
	f->stream.offset = 0;
	if ((type & TERN_FRAME_STREAM_OFF) && (e = get_v(p, end, &f->stream.offset)))
		return e;
	if (type & TERN_FRAME_STREAM_LEN) {
		if ((e = get_len_bytes(p, end, &f->stream.data, &f->stream.len)))
			return e;
	} else {
		f->stream.data = *p;
		f->stream.len = (uint64_t)(end - *p);
		*p = end;
	}
	if (f->stream.len > TERN_VARINT_MAX - f->stream.offset)
		return FEE;
	return 0;
}

static int decode_crypto(const uint8_t **p, const uint8_t *end, struct tern_frame *f)
{
	int e;

	if ((e = get_v(p, end, &f->crypto.offset)) ||
	    (e = get_len_bytes(p, end, &f->crypto.data, &f->crypto.len)))
		return e;
	/* RFC 9000 §19.6: the stream of crypto data has the same 2^62-1 bound. */
	if (f->crypto.len > TERN_VARINT_MAX - f->crypto.offset)
		return FEE;
	return 0;
}

static int decode_new_cid(const uint8_t **p, const uint8_t *end, struct tern_frame *f)
{
	const uint8_t *b;
	int e;

	if ((e = get_v(p, end, &f->new_cid.seq)) ||
	    (e = get_v(p, end, &f->new_cid.retire_prior_to)))
		return e;
	/* RFC 9000 §19.15: both rules below are FRAME_ENCODING_ERROR. */
	if (f->new_cid.retire_prior_to > f->new_cid.seq || *p >= end)
		return FEE;
	uint8_t len = *(*p)++;
	if (len < 1 || len > TERN_MAX_CID_LEN)
		return FEE;
	if ((e = get_bytes(p, end, len, &b)))
		return e;
	tern_cid_set(&f->new_cid.cid, b, len);
	if ((e = get_bytes(p, end, TERN_STATELESS_RESET_TOKEN_LEN, &b)))
		return e;
	memcpy(f->new_cid.reset_token, b, TERN_STATELESS_RESET_TOKEN_LEN);
	return 0;
}

static int decode_close(const uint8_t **p, const uint8_t *end, uint64_t type,
			struct tern_frame *f)
{
	int e;

	if ((e = get_v(p, end, &f->close.error_code)))
		return e;
	f->close.frame_type = 0;
	if (type == TERN_FRAME_CONNECTION_CLOSE && (e = get_v(p, end, &f->close.frame_type)))
		return e;
	return get_len_bytes(p, end, &f->close.reason, &f->close.reason_len);
}

static int decode_datagram(const uint8_t **p, const uint8_t *end, uint64_t type,
			   struct tern_frame *f)
{
	if (type == TERN_FRAME_DATAGRAM_LEN)
		return get_len_bytes(p, end, &f->datagram.data, &f->datagram.len);
	f->datagram.data = *p;
	f->datagram.len = (uint64_t)(end - *p);
	*p = end;
	return 0;
}

/* ---- the frames made only of varints ------------------------------------- */

/* Where each varint-only frame keeps its fields, in wire order. */
static int varint_fields(struct tern_frame *f, uint64_t *v[3])
{
	switch (f->type) {
	case TERN_FRAME_RESET_STREAM:
		v[0] = &f->reset_stream.stream_id;
		v[1] = &f->reset_stream.error_code;
		v[2] = &f->reset_stream.final_size;
		return 3;
	case TERN_FRAME_STOP_SENDING:
		v[0] = &f->stop_sending.stream_id;
		v[1] = &f->stop_sending.error_code;
		return 2;
	case TERN_FRAME_MAX_DATA:
		v[0] = &f->max_data.max;
		return 1;
	case TERN_FRAME_MAX_STREAM_DATA:
		v[0] = &f->max_stream_data.stream_id;
		v[1] = &f->max_stream_data.max;
		return 2;
	case TERN_FRAME_MAX_STREAMS_BIDI:
	case TERN_FRAME_MAX_STREAMS_UNI:
		v[0] = &f->max_streams.max;
		return 1;
	case TERN_FRAME_DATA_BLOCKED:
		v[0] = &f->data_blocked.limit;
		return 1;
	case TERN_FRAME_STREAM_DATA_BLOCKED:
		v[0] = &f->stream_data_blocked.stream_id;
		v[1] = &f->stream_data_blocked.limit;
		return 2;
	case TERN_FRAME_STREAMS_BLOCKED_BIDI:
	case TERN_FRAME_STREAMS_BLOCKED_UNI:
		v[0] = &f->streams_blocked.limit;
		return 1;
	case TERN_FRAME_RETIRE_CONNECTION_ID:
		v[0] = &f->retire_cid.seq;
		return 1;
	}
	return 0;
}

/* RFC 9000 §19.11 and §19.14: a count above 2^60 is FRAME_ENCODING_ERROR. */
static int stream_count_bad(const struct tern_frame *f)
{
	return (f->type >= TERN_FRAME_MAX_STREAMS_BIDI && f->type <= TERN_FRAME_MAX_STREAMS_UNI &&
		f->max_streams.max > TERN_MAX_STREAMS_LIMIT) ||
	       (f->type >= TERN_FRAME_STREAMS_BLOCKED_BIDI &&
		f->type <= TERN_FRAME_STREAMS_BLOCKED_UNI &&
		f->streams_blocked.limit > TERN_MAX_STREAMS_LIMIT);
}

static int decode_varints(const uint8_t **p, const uint8_t *end, struct tern_frame *f)
{
	uint64_t *v[3];
	int n = varint_fields(f, v), e;

	for (int i = 0; i < n; i++)
		if ((e = get_v(p, end, v[i])))
			return e;
	return stream_count_bad(f) ? FEE : 0;
}

/* ---- tern_frame_decode --------------------------------------------------- */

static int decode_body(const uint8_t **p, const uint8_t *end, struct tern_frame *f)
{
	const uint8_t *b;
	uint64_t t = f->type;

	switch (t) {
	case TERN_FRAME_PADDING:
		/* Fast path for padded Initials: the whole run at once. */
		b = *p;
		while (b < end && *b == 0)
			b++;
		f->padding.len = (size_t)(b - *p) + 1;
		*p = b;
		return 0;
	case TERN_FRAME_PING:
	case TERN_FRAME_HANDSHAKE_DONE:
		return 0;
	case TERN_FRAME_ACK:
	case TERN_FRAME_ACK_ECN:
		return decode_ack(p, end, t, &f->ack);
	case TERN_FRAME_CRYPTO:
		return decode_crypto(p, end, f);
	case TERN_FRAME_NEW_TOKEN: {
		int e = get_len_bytes(p, end, &f->new_token.token, &f->new_token.len);
		/* RFC 9000 §19.7: an empty token is FRAME_ENCODING_ERROR. */
		return e ? e : f->new_token.len == 0 ? FEE : 0;
	}
	case TERN_FRAME_NEW_CONNECTION_ID:
		return decode_new_cid(p, end, f);
	case TERN_FRAME_PATH_CHALLENGE:
	case TERN_FRAME_PATH_RESPONSE:
		if (get_bytes(p, end, TERN_PATH_DATA_LEN, &b))
			return FEE;
		memcpy(f->path.data, b, TERN_PATH_DATA_LEN);
		return 0;
	case TERN_FRAME_CONNECTION_CLOSE:
	case TERN_FRAME_CONNECTION_CLOSE_APP:
		return decode_close(p, end, t, f);
	case TERN_FRAME_DATAGRAM:
	case TERN_FRAME_DATAGRAM_LEN:
		return decode_datagram(p, end, t, f);
	}
	if (tern_frame_is_stream(t))
		return decode_stream(p, end, t, f);
	if (t <= TERN_FRAME_HANDSHAKE_DONE)
		return decode_varints(p, end, f);
	/* RFC 9000 §12.4: an unknown frame type is FRAME_ENCODING_ERROR. */
	return FEE;
}

int tern_frame_decode(const uint8_t **p, const uint8_t *end, struct tern_frame *f)
{
	const uint8_t *s = *p;
	int e;

	if (get_v(&s, end, &f->type))
		return FEE;
	/* RFC 9000 §12.4: frame types MUST use the shortest encoding, and an
	 * endpoint MAY treat a longer one as PROTOCOL_VIOLATION; we do, before
	 * looking at whether the type is known. */
	if ((size_t)(s - *p) != tern_varint_size(f->type))
		return PV;
	if ((e = decode_body(&s, end, f)))
		return e;
	*p = s;
	return 0;
}

/* ---- encoding ------------------------------------------------------------ */

/* Every frame but PADDING and ACK is: type, up to four varints, up to 37
 * fixed bytes, then an optional payload with or without a Length varint. */
struct layout {
	uint64_t v[4];
	int nv;
	uint8_t fixed[1 + TERN_MAX_CID_LEN + TERN_STATELESS_RESET_TOKEN_LEN];
	size_t nfixed;
	const uint8_t *data;
	uint64_t data_len;
	int has_data;
	int len_prefix;
};

static void layout_data(struct layout *l, const uint8_t *data, uint64_t len, int prefix)
{
	l->has_data = 1;
	l->data = data;
	l->data_len = len;
	l->len_prefix = prefix;
}

static int layout_stream(const struct tern_frame *f, struct layout *l)
{
	uint64_t t = f->type;

	if (!(t & TERN_FRAME_STREAM_OFF) && f->stream.offset != 0)
		return TERN_ERR_INVAL;
	if (f->stream.offset > TERN_VARINT_MAX ||
	    f->stream.len > TERN_VARINT_MAX - f->stream.offset)
		return TERN_ERR_INVAL;
	l->v[l->nv++] = f->stream.stream_id;
	if (t & TERN_FRAME_STREAM_OFF)
		l->v[l->nv++] = f->stream.offset;
	layout_data(l, f->stream.data, f->stream.len, (t & TERN_FRAME_STREAM_LEN) != 0);
	return 0;
}

static int layout_new_cid(const struct tern_frame *f, struct layout *l)
{
	const struct tern_cid *c = &f->new_cid.cid;

	if (f->new_cid.retire_prior_to > f->new_cid.seq || c->len < 1 || c->len > TERN_MAX_CID_LEN)
		return TERN_ERR_INVAL;
	l->v[l->nv++] = f->new_cid.seq;
	l->v[l->nv++] = f->new_cid.retire_prior_to;
	l->fixed[0] = c->len;
	memcpy(l->fixed + 1, c->bytes, c->len);
	memcpy(l->fixed + 1 + c->len, f->new_cid.reset_token, TERN_STATELESS_RESET_TOKEN_LEN);
	l->nfixed = 1 + c->len + TERN_STATELESS_RESET_TOKEN_LEN;
	return 0;
}

static int layout_payload(const struct tern_frame *f, struct layout *l)
{
	switch (f->type) {
	case TERN_FRAME_CRYPTO:
		if (f->crypto.offset > TERN_VARINT_MAX ||
		    f->crypto.len > TERN_VARINT_MAX - f->crypto.offset)
			return TERN_ERR_INVAL;
		l->v[l->nv++] = f->crypto.offset;
		layout_data(l, f->crypto.data, f->crypto.len, 1);
		return 0;
	case TERN_FRAME_NEW_TOKEN:
		if (f->new_token.len == 0)
			return TERN_ERR_INVAL;
		layout_data(l, f->new_token.token, f->new_token.len, 1);
		return 0;
	case TERN_FRAME_CONNECTION_CLOSE:
	case TERN_FRAME_CONNECTION_CLOSE_APP:
		l->v[l->nv++] = f->close.error_code;
		if (f->type == TERN_FRAME_CONNECTION_CLOSE)
			l->v[l->nv++] = f->close.frame_type;
		layout_data(l, f->close.reason, f->close.reason_len, 1);
		return 0;
	case TERN_FRAME_DATAGRAM:
	case TERN_FRAME_DATAGRAM_LEN:
		layout_data(l, f->datagram.data, f->datagram.len,
			    f->type == TERN_FRAME_DATAGRAM_LEN);
		return 0;
	}
	return tern_frame_is_stream(f->type) ? layout_stream(f, l) : TERN_ERR_INVAL;
}

static int layout_build(const struct tern_frame *f, struct layout *l)
{
	uint64_t *v[3];
	int e = 0;

	memset(l, 0, offsetof(struct layout, fixed));
	l->nfixed = 0;
	l->has_data = 0;
	switch (f->type) {
	case TERN_FRAME_PING:
	case TERN_FRAME_HANDSHAKE_DONE:
		break;
	case TERN_FRAME_NEW_CONNECTION_ID:
		e = layout_new_cid(f, l);
		break;
	case TERN_FRAME_PATH_CHALLENGE:
	case TERN_FRAME_PATH_RESPONSE:
		memcpy(l->fixed, f->path.data, TERN_PATH_DATA_LEN);
		l->nfixed = TERN_PATH_DATA_LEN;
		break;
	default:
		/* varint_fields() only takes addresses; it writes nothing. */
		l->nv = varint_fields((struct tern_frame *)f, v);
		for (int i = 0; i < l->nv; i++)
			l->v[i] = *v[i];
		if (l->nv == 0)
			e = layout_payload(f, l);
		else if (stream_count_bad(f))
			e = TERN_ERR_INVAL;
	}
	if (e)
		return e;
	for (int i = 0; i < l->nv; i++)
		if (l->v[i] > TERN_VARINT_MAX)
			return TERN_ERR_INVAL;
	if (l->has_data && ((l->data_len && !l->data) || l->data_len > TERN_VARINT_MAX))
		return TERN_ERR_INVAL;
	return 0;
}

static uint64_t layout_size(uint64_t type, const struct layout *l)
{
	uint64_t n = tern_varint_size(type) + l->nfixed;

	for (int i = 0; i < l->nv; i++)
		n += tern_varint_size(l->v[i]);
	if (l->has_data)
		n += (l->len_prefix ? tern_varint_size(l->data_len) : 0) + l->data_len;
	return n;
}

static uint8_t *layout_write(uint8_t *p, uint64_t type, const struct layout *l)
{
	p = tern_varint_encode(p, type);
	for (int i = 0; i < l->nv; i++)
		p = tern_varint_encode(p, l->v[i]);
	memcpy(p, l->fixed, l->nfixed);
	p += l->nfixed;
	if (l->has_data) {
		if (l->len_prefix)
			p = tern_varint_encode(p, l->data_len);
		if (l->data_len)
			memcpy(p, l->data, (size_t)l->data_len);
		p += l->data_len;
	}
	return p;
}

/* Size of a decoded ACK re-encoded with shortest varints; 0 if invalid. */
static uint64_t ack_frame_size(uint64_t type, const struct tern_ack_frame *a)
{
	struct tern_ack_iter it;
	struct tern_ack_range r, prev;
	uint64_t n, i = 0;

	if (a->largest > TERN_VARINT_MAX || a->ack_delay > TERN_VARINT_MAX ||
	    a->range_count > TERN_VARINT_MAX || (a->range_count && !a->ranges))
		return 0;
	n = 1 + tern_varint_size(a->largest) + tern_varint_size(a->ack_delay) +
	    tern_varint_size(a->range_count);
	tern_ack_iter_init(&it, a);
	for (; tern_ack_iter_next(&it, &r); i++, prev = r)
		n += i == 0 ? tern_varint_size(r.largest - r.smallest)
			    : tern_varint_size(prev.smallest - r.largest - 2) +
				      tern_varint_size(r.largest - r.smallest);
	/* The raw bytes must hold exactly range_count valid pairs. */
	if (i != a->range_count + 1 || it.p != it.end)
		return 0;
	if (type == TERN_FRAME_ACK_ECN) {
		if (a->ecn.ect0 > TERN_VARINT_MAX || a->ecn.ect1 > TERN_VARINT_MAX ||
		    a->ecn.ce > TERN_VARINT_MAX)
			return 0;
		n += tern_varint_size(a->ecn.ect0) + tern_varint_size(a->ecn.ect1) +
		     tern_varint_size(a->ecn.ce);
	}
	return n;
}

static uint8_t *ack_frame_write(uint8_t *p, uint64_t type, const struct tern_ack_frame *a)
{
	struct tern_ack_iter it;
	struct tern_ack_range r, prev;

	p = tern_varint_encode(p, type);
	p = tern_varint_encode(p, a->largest);
	p = tern_varint_encode(p, a->ack_delay);
	p = tern_varint_encode(p, a->range_count);
	tern_ack_iter_init(&it, a);
	for (int first = 1; tern_ack_iter_next(&it, &r); first = 0, prev = r) {
		if (!first)
			p = tern_varint_encode(p, prev.smallest - r.largest - 2);
		p = tern_varint_encode(p, r.largest - r.smallest);
	}
	if (type == TERN_FRAME_ACK_ECN) {
		p = tern_varint_encode(p, a->ecn.ect0);
		p = tern_varint_encode(p, a->ecn.ect1);
		p = tern_varint_encode(p, a->ecn.ce);
	}
	return p;
}

size_t tern_frame_encoded_size(const struct tern_frame *f)
{
	struct layout l;
	uint64_t n;

	switch (f->type) {
	case TERN_FRAME_PADDING:
		return f->padding.len;
	case TERN_FRAME_ACK:
	case TERN_FRAME_ACK_ECN:
		return (size_t)ack_frame_size(f->type, &f->ack);
	}
	if (layout_build(f, &l))
		return 0;
	n = layout_size(f->type, &l);
	return n > SIZE_MAX ? 0 : (size_t)n;
}

int tern_frame_encode(uint8_t **p, uint8_t *end, const struct tern_frame *f)
{
	struct layout l;
	uint64_t n;

	if (f->type == TERN_FRAME_PADDING || f->type == TERN_FRAME_ACK ||
	    f->type == TERN_FRAME_ACK_ECN) {
		n = tern_frame_encoded_size(f);
		if (n == 0)
			return TERN_ERR_INVAL;
		if (n > (uint64_t)(end - *p))
			return TERN_ERR_NOBUF;
		if (f->type == TERN_FRAME_PADDING) {
			memset(*p, 0, (size_t)n);
			*p += n;
		} else {
			*p = ack_frame_write(*p, f->type, &f->ack);
		}
		return 0;
	}
	if (layout_build(f, &l))
		return TERN_ERR_INVAL;
	n = layout_size(f->type, &l);
	if (n > (uint64_t)(end - *p))
		return TERN_ERR_NOBUF;
	*p = layout_write(*p, f->type, &l);
	return 0;
}

/* ---- ACK from a list of ranges ------------------------------------------- */

static int ack_ranges_valid(const struct tern_ack_range *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (r[i].smallest > r[i].largest || r[i].largest > TERN_VARINT_MAX)
			return 0;
		/* At least one missing packet between ranges: a gap of 0 encodes
		 * exactly one (RFC 9000 §19.3.1). */
		if (i > 0 && (r[i - 1].smallest < 2 || r[i].largest > r[i - 1].smallest - 2))
			return 0;
	}
	return 1;
}

static size_t pair_size(const struct tern_ack_range *r, size_t i)
{
	return tern_varint_size(r[i - 1].smallest - r[i].largest - 2) +
	       tern_varint_size(r[i].largest - r[i].smallest);
}

int tern_ack_encode(uint8_t **p, uint8_t *end, const struct tern_ack_range *ranges, size_t n,
		    uint64_t ack_delay, const struct tern_ecn_counts *ecn)
{
	size_t avail = (size_t)(end - *p), fixed, acc = 0, k = 1;
	uint8_t *w;

	if (n == 0 || !ranges || ack_delay > TERN_VARINT_MAX || !ack_ranges_valid(ranges, n))
		return TERN_ERR_INVAL;
	if (ecn && (ecn->ect0 > TERN_VARINT_MAX || ecn->ect1 > TERN_VARINT_MAX ||
		    ecn->ce > TERN_VARINT_MAX))
		return TERN_ERR_INVAL;
	fixed = 1 + tern_varint_size(ranges[0].largest) + tern_varint_size(ack_delay) +
		tern_varint_size(ranges[0].largest - ranges[0].smallest);
	if (ecn)
		fixed += tern_varint_size(ecn->ect0) + tern_varint_size(ecn->ect1) +
			 tern_varint_size(ecn->ce);
	if (fixed + 1 > avail)
		return TERN_ERR_NOBUF;
	/* The total grows with k (the Range Count varint included), so the
	 * first range that does not fit ends the list; the int return bounds
	 * the count too. */
	for (; k < n && k < INT_MAX; k++) {
		size_t s = pair_size(ranges, k);
		if (fixed + acc + s + tern_varint_size(k) > avail)
			break;
		acc += s;
	}
	w = *p;
	w = tern_varint_encode(w, ecn ? TERN_FRAME_ACK_ECN : TERN_FRAME_ACK);
	w = tern_varint_encode(w, ranges[0].largest);
	w = tern_varint_encode(w, ack_delay);
	w = tern_varint_encode(w, k - 1);
	w = tern_varint_encode(w, ranges[0].largest - ranges[0].smallest);
	for (size_t i = 1; i < k; i++) {
		w = tern_varint_encode(w, ranges[i - 1].smallest - ranges[i].largest - 2);
		w = tern_varint_encode(w, ranges[i].largest - ranges[i].smallest);
	}
	if (ecn) {
		w = tern_varint_encode(w, ecn->ect0);
		w = tern_varint_encode(w, ecn->ect1);
		w = tern_varint_encode(w, ecn->ce);
	}
	*p = w;
	return (int)k;
}

/* ---- packet builder helpers ---------------------------------------------- */

int tern_stream_frame_fit(uint64_t stream_id, uint64_t offset, uint64_t data_len, size_t space,
			  int *with_len)
{
	size_t hdr, avail;

	if (stream_id > TERN_VARINT_MAX || offset > TERN_VARINT_MAX ||
	    data_len > TERN_VARINT_MAX - offset)
		return TERN_ERR_INVAL;
	if (space > INT_MAX)
		space = INT_MAX;
	hdr = 1 + tern_varint_size(stream_id) + (offset ? tern_varint_size(offset) : 0);
	if (space < hdr || (space == hdr && data_len > 0))
		return TERN_ERR_NOBUF;
	avail = space - hdr;
	if (data_len >= avail) {
		/* Fill the packet: no Length needed as nothing follows. */
		*with_len = 0;
		return (int)avail;
	}
	/* Everything fits; with a Length more frames may follow. Without room
	 * for the Length, the frame ends the packet a few bytes early. */
	*with_len = tern_varint_size(data_len) + data_len <= avail;
	return (int)data_len;
}

/* ---- RFC 9000 §12.4 Table 3 ---------------------------------------------- */

#define IN_I (1u << TERN_PKT_INITIAL)
#define IN_0 (1u << TERN_PKT_0RTT)
#define IN_H (1u << TERN_PKT_HANDSHAKE)
#define IN_1 (1u << TERN_PKT_1RTT)

static unsigned frame_packets(uint64_t type)
{
	switch (type) {
	case TERN_FRAME_PADDING:
	case TERN_FRAME_PING:
	case TERN_FRAME_CONNECTION_CLOSE: /* "ih01": only 0x1c in I and H */
		return IN_I | IN_H | IN_0 | IN_1;
	case TERN_FRAME_ACK:
	case TERN_FRAME_ACK_ECN:
	case TERN_FRAME_CRYPTO:
		return IN_I | IN_H | IN_1;
	case TERN_FRAME_NEW_TOKEN:
	case TERN_FRAME_PATH_RESPONSE:
	case TERN_FRAME_HANDSHAKE_DONE:
		return IN_1;
	case TERN_FRAME_DATAGRAM: /* RFC 9221 §4: 0-RTT and 1-RTT only */
	case TERN_FRAME_DATAGRAM_LEN:
		return IN_0 | IN_1;
	}
	/* The other RFC 9000 frames are "__01". RETIRE_CONNECTION_ID stays
	 * allowed in 0-RTT as in Table 3, though §17.2.3 lets a server reject it. */
	if (type <= TERN_FRAME_HANDSHAKE_DONE)
		return IN_0 | IN_1;
	return 0;
}

int tern_frame_allowed(uint64_t type, enum tern_pkt_type pt)
{
	unsigned mask = frame_packets(type);

	if (mask == 0)
		return FEE;
	if (pt != TERN_PKT_INITIAL && pt != TERN_PKT_0RTT && pt != TERN_PKT_HANDSHAKE &&
	    pt != TERN_PKT_1RTT)
		return PV;
	return (mask & (1u << pt)) ? 0 : PV;
}

int tern_frame_is_ack_eliciting(uint64_t type)
{
	switch (type) {
	case TERN_FRAME_PADDING:
	case TERN_FRAME_ACK:
	case TERN_FRAME_ACK_ECN:
	case TERN_FRAME_CONNECTION_CLOSE:
	case TERN_FRAME_CONNECTION_CLOSE_APP:
		return 0;
	}
	return 1;
}
