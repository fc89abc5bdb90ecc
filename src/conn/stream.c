/* Byte streams: range sets, send rings with retransmission bookkeeping,
 * receive reassembly, and the per-connection stream table. */
#include <stdlib.h>

#include "conn/conn_int.h"

/* ---- range sets ----------------------------------------------------------- */

static void rset_insert(struct rset *s, uint64_t start, uint64_t end, int keep);

void rset_add(struct rset *s, uint64_t start, uint64_t end)
{
	rset_insert(s, start, end, 0);
}

void rset_add_keep(struct rset *s, uint64_t start, uint64_t end)
{
	rset_insert(s, start, end, 1);
}

static void rset_insert(struct rset *s, uint64_t start, uint64_t end, int keep)
{
	if (start >= end)
		return;
	uint32_t i = 0;
	while (i < s->n && s->r[i].end < start)
		i++;
	/* merge every range touching [start, end) into slot i */
	uint32_t j = i;
	while (j < s->n && s->r[j].start <= end) {
		if (s->r[j].start < start)
			start = s->r[j].start;
		if (s->r[j].end > end)
			end = s->r[j].end;
		j++;
	}
	if (j > i) {
		s->r[i].start = start;
		s->r[i].end = end;
		memmove(&s->r[i + 1], &s->r[j], (s->n - j) * sizeof(s->r[0]));
		s->n -= j - i - 1;
		return;
	}
	if (s->n == RSET_MAX && keep) {
		/* never forget a byte range: widen a neighbour to cover it,
		 * which at worst sends some bytes twice */
		if (i == s->n)
			s->r[i - 1].end = end;
		else
			s->r[i].start = start;
		return;
	}
	if (s->n == RSET_MAX) {
		if (i == 0)
			return; /* below everything we keep: the oldest, forget it */
		/* forget the lowest range: the ones below the new range move
		 * down one slot, which frees the slot just below i */
		memmove(&s->r[0], &s->r[1], (size_t)(i - 1) * sizeof(s->r[0]));
		s->r[i - 1].start = start;
		s->r[i - 1].end = end;
		return;
	}
	memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof(s->r[0]));
	s->r[i].start = start;
	s->r[i].end = end;
	s->n++;
}

void rset_remove(struct rset *s, uint64_t start, uint64_t end)
{
	for (uint32_t i = 0; i < s->n && start < end; i++) {
		uint64_t a = s->r[i].start, b = s->r[i].end;
		if (b <= start || a >= end)
			continue;
		if (a < start && b > end) {
			/* split; if full, keep the upper part only */
			if (s->n < RSET_MAX) {
				memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof(s->r[0]));
				s->n++;
				s->r[i].end = start;
				s->r[i + 1].start = end;
			} else {
				s->r[i].start = end;
			}
			return;
		}
		if (a < start) {
			s->r[i].end = start;
		} else if (b > end) {
			s->r[i].start = end;
		} else {
			memmove(&s->r[i], &s->r[i + 1], (s->n - i - 1) * sizeof(s->r[0]));
			s->n--;
			i--;
		}
	}
}

int rset_contains(const struct rset *s, uint64_t v)
{
	for (uint32_t i = 0; i < s->n; i++)
		if (v >= s->r[i].start && v < s->r[i].end)
			return 1;
	return 0;
}

static int rset_touches(const struct rset *s, uint64_t start, uint64_t end)
{
	for (uint32_t i = 0; i < s->n; i++)
		if (s->r[i].start <= end && s->r[i].end >= start)
			return 1;
	return 0;
}

void rset_trim_below(struct rset *s, uint64_t v)
{
	uint32_t i = 0;
	while (i < s->n && s->r[i].end <= v)
		i++;
	if (i) {
		memmove(&s->r[0], &s->r[i], (s->n - i) * sizeof(s->r[0]));
		s->n -= i;
	}
	if (s->n && s->r[0].start < v)
		s->r[0].start = v;
}

/* ---- send buffers --------------------------------------------------------- */

int sendbuf_init(struct sendbuf *b, size_t initial, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max_cap = max;
	b->cap = initial;
	b->buf = malloc(initial);
	return b->buf ? 0 : TERN_ERR_NOMEM;
}

void sendbuf_free(struct sendbuf *b)
{
	free(b->buf);
	b->buf = NULL;
}

size_t sendbuf_room(const struct sendbuf *b)
{
	if (b->fin_written)
		return 0;
	return b->max_cap - (size_t)(b->written - b->acked);
}

static int sendbuf_grow(struct sendbuf *b, size_t need)
{
	size_t cap = b->cap;
	while (cap < need)
		cap *= 2;
	uint8_t *nb = malloc(cap);
	if (!nb)
		return TERN_ERR_NOMEM;
	size_t used = (size_t)(b->written - b->acked);
	for (size_t i = 0; i < used; i++)
		nb[(b->acked + i) & (cap - 1)] = b->buf[(b->acked + i) & (b->cap - 1)];
	free(b->buf);
	b->buf = nb;
	b->cap = cap;
	return 0;
}

size_t sendbuf_write(struct sendbuf *b, const uint8_t *data, size_t len)
{
	size_t room = sendbuf_room(b);
	if (len > room)
		len = room;
	size_t used = (size_t)(b->written - b->acked);
	if (used + len > b->cap && sendbuf_grow(b, used + len) < 0)
		len = b->cap - used;
	size_t pos = (size_t)(b->written & (b->cap - 1));
	size_t first = b->cap - pos < len ? b->cap - pos : len;
	memcpy(b->buf + pos, data, first);
	memcpy(b->buf, data + first, len - first);
	b->written += len;
	return len;
}

void sendbuf_copy(const struct sendbuf *b, uint64_t off, uint8_t *dst, size_t len)
{
	size_t pos = (size_t)(off & (b->cap - 1));
	size_t first = b->cap - pos < len ? b->cap - pos : len;
	memcpy(dst, b->buf + pos, first);
	memcpy(dst + first, b->buf, len - first);
}

int sendbuf_has_pending(const struct sendbuf *b, uint64_t limit)
{
	if (b->lost.n || b->fin_lost)
		return 1;
	if (b->sent < b->written && b->sent < limit)
		return 1;
	return b->fin_written && !b->fin_sent && b->sent == b->written;
}

int sendbuf_next(const struct sendbuf *b, uint64_t limit, uint64_t *off, size_t *len, int *fin)
{
	if (b->lost.n) {
		*off = b->lost.r[0].start;
		*len = (size_t)(b->lost.r[0].end - b->lost.r[0].start);
		*fin = b->fin_written && b->lost.r[0].end == b->written && (b->fin_lost || !b->fin_sent);
		return 1;
	}
	if (b->fin_lost && b->sent == b->written) {
		*off = b->written;
		*len = 0;
		*fin = 1;
		return 1;
	}
	uint64_t end = b->written < limit ? b->written : limit;
	if (b->sent < end || (b->fin_written && !b->fin_sent && b->sent == b->written)) {
		*off = b->sent;
		*len = (size_t)(end > b->sent ? end - b->sent : 0);
		*fin = b->fin_written && end == b->written;
		return 1;
	}
	return 0;
}

void sendbuf_on_sent(struct sendbuf *b, uint64_t off, size_t len, int fin)
{
	rset_remove(&b->lost, off, off + len);
	if (off + len > b->sent)
		b->sent = off + len;
	if (fin) {
		b->fin_sent = 1;
		b->fin_lost = 0;
	}
}

void sendbuf_on_acked(struct sendbuf *b, uint64_t off, size_t len, int fin)
{
	if (fin)
		b->fin_acked = 1;
	if (off + len <= b->acked)
		return;
	rset_add(&b->acks, off < b->acked ? b->acked : off, off + len);
	if (b->acks.n && b->acks.r[0].start <= b->acked) {
		b->acked = b->acks.r[0].end;
		rset_trim_below(&b->acks, b->acked);
	}
	rset_remove(&b->lost, 0, b->acked);
}

void sendbuf_on_lost(struct sendbuf *b, uint64_t off, size_t len, int fin)
{
	uint64_t end = off + len;
	if (off < b->acked)
		off = b->acked;
	/* only what was not acknowledged since needs to go again */
	uint64_t s = off;
	for (uint32_t i = 0; i < b->acks.n && s < end; i++) {
		if (b->acks.r[i].end <= s)
			continue;
		if (b->acks.r[i].start >= end)
			break;
		if (b->acks.r[i].start > s)
			rset_add_keep(&b->lost, s, b->acks.r[i].start);
		s = b->acks.r[i].end;
	}
	if (s < end)
		rset_add_keep(&b->lost, s, end);
	if (fin && !b->fin_acked)
		b->fin_lost = 1;
}

/* ---- receive buffers ------------------------------------------------------- */

int recvbuf_init(struct recvbuf *b, size_t cap)
{
	memset(b, 0, sizeof(*b));
	b->cap = cap;
	return 0;
}

void recvbuf_free(struct recvbuf *b)
{
	free(b->buf);
	b->buf = NULL;
}

static int recvbuf_flush(struct recvbuf *b, recvbuf_deliver_fn fn, void *arg)
{
	while (b->have.n && b->have.r[0].start == b->delivered) {
		uint64_t end = b->have.r[0].end;
		while (b->delivered < end) {
			size_t pos = (size_t)(b->delivered % b->cap);
			size_t n = (size_t)(end - b->delivered);
			if (n > b->cap - pos)
				n = b->cap - pos;
			int fin = b->fin_known && b->delivered + n == b->final_size;
			b->delivered += n;
			if (fin)
				b->fin_delivered = 1;
			int rv = fn(arg, b->buf + pos, n, fin);
			if (rv)
				return rv;
		}
		rset_trim_below(&b->have, b->delivered);
	}
	return 0;
}

int recvbuf_put(struct recvbuf *b, uint64_t off, const uint8_t *data, size_t len, int fin,
		recvbuf_deliver_fn fn, void *arg)
{
	if (fin) {
		b->fin_known = 1;
		b->final_size = off + len;
	}
	uint64_t end = off + len;
	if (end <= b->delivered) {
		if (b->fin_known && !b->fin_delivered && b->delivered == b->final_size && !b->have.n) {
			b->fin_delivered = 1;
			return fn(arg, NULL, 0, 1);
		}
		return 0;
	}
	if (off < b->delivered) {
		data += b->delivered - off;
		off = b->delivered;
		len = (size_t)(end - off);
	}
	/* Fast path: in order with nothing buffered, hand the packet's bytes
	 * straight to the application without a copy. */
	if (off == b->delivered && !b->have.n) {
		int last = b->fin_known && end == b->final_size;
		b->delivered = end;
		if (last)
			b->fin_delivered = 1;
		return fn(arg, data, len, last);
	}
	if (end - b->delivered > b->cap)
		return TERN_ERR_QUIC(TERN_QUIC_FLOW_CONTROL_ERROR);
	/* too fragmented: refuse, so the packet goes unacknowledged and the
	 * peer sends these bytes again */
	if (b->have.n == RSET_MAX && !rset_touches(&b->have, off, end))
		return TERN_ERR_NOMEM;
	if (!b->buf) {
		b->buf = malloc(b->cap);
		if (!b->buf)
			return TERN_ERR_NOMEM;
	}
	for (size_t i = 0; i < len;) {
		size_t pos = (size_t)((off + i) % b->cap);
		size_t n = len - i < b->cap - pos ? len - i : b->cap - pos;
		memcpy(b->buf + pos, data + i, n);
		i += n;
	}
	rset_add(&b->have, off, end);
	return recvbuf_flush(b, fn, arg);
}

/* ---- the stream table ------------------------------------------------------ */

struct stream *stream_find(struct tern_conn *c, uint64_t id)
{
	/* Streams are few per connection for now; issue-level work (a hash
	 * keyed by id) comes with the endpoint's tables. */
	for (size_t i = 0; i < c->n_streams; i++)
		if (c->streams[i]->id == id)
			return c->streams[i];
	return NULL;
}

static uint64_t initial_max_send(const struct tern_conn *c, uint64_t id, int local)
{
	const struct tern_tparams *tp = &c->peer_tp;
	if ((id & 2) == 0) /* bidi: the peer's limit for streams it sees as local/remote */
		return local ? tp->initial_max_stream_data_bidi_remote
			     : tp->initial_max_stream_data_bidi_local;
	return tp->initial_max_stream_data_uni;
}

static uint64_t initial_max_recv(const struct tern_conn *c, uint64_t id, int local)
{
	const struct tern_tparams *tp = &c->cfg.tparams;
	if ((id & 2) == 0)
		return local ? tp->initial_max_stream_data_bidi_local
			     : tp->initial_max_stream_data_bidi_remote;
	return tp->initial_max_stream_data_uni;
}

struct stream *stream_new(struct tern_conn *c, uint64_t id)
{
	if (c->n_streams == c->cap_streams) {
		size_t cap = c->cap_streams ? c->cap_streams * 2 : 16;
		struct stream **ns = realloc(c->streams, cap * sizeof(*ns));
		if (!ns)
			return NULL;
		c->streams = ns;
		c->cap_streams = cap;
	}
	struct stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->id = id;
	s->local = (uint8_t)((id & 1) == (uint64_t)c->is_server);
	s->bidi = (id & 2) == 0;
	int can_send = s->bidi || s->local;
	int can_recv = s->bidi || !s->local;
	if (can_send && sendbuf_init(&s->send, 4096, c->cfg.stream_sndbuf) < 0) {
		free(s);
		return NULL;
	}
	s->send_closed = !can_send;
	s->recv_closed = !can_recv;
	s->can_send = (uint8_t)can_send;
	s->can_recv = (uint8_t)can_recv;
	s->max_send = initial_max_send(c, id, s->local);
	s->max_recv = initial_max_recv(c, id, s->local);
	s->recv_window = s->max_recv;
	recvbuf_init(&s->recv, s->recv_window ? (size_t)s->recv_window : 1);
	c->streams[c->n_streams++] = s;
	return s;
}

static void stream_destroy(struct stream *s)
{
	sendbuf_free(&s->send);
	recvbuf_free(&s->recv);
	free(s);
}

void streams_free(struct tern_conn *c)
{
	for (size_t i = 0; i < c->n_streams; i++)
		stream_destroy(c->streams[i]);
	free(c->streams);
	c->streams = NULL;
	c->n_streams = c->cap_streams = 0;
}

static int stream_finished(const struct stream *s)
{
	int recv_done = !s->can_recv || s->recv.fin_delivered || s->recv_closed;
	/* the FIN's packet may be acknowledged before earlier data is */
	int send_done = !s->can_send || (s->send.fin_acked && s->send.acked == s->send.written) ||
			(s->send_closed && !s->pending_reset);
	return recv_done && send_done && !s->pending_stop && !s->pending_max_stream_data;
}

/* RFC 9000 §4.6: credit for new streams comes back as the peer's streams
 * finish, sent in batches of a quarter of the initial limit. */
static void give_stream_credit(struct tern_conn *c, int bidi)
{
	uint64_t initial = bidi ? c->cfg.tparams.initial_max_streams_bidi : c->cfg.tparams.initial_max_streams_uni;
	uint64_t closed = bidi ? c->closed_bidi_remote : c->closed_uni_remote;
	uint64_t *max = bidi ? &c->max_bidi_local : &c->max_uni_local;
	uint64_t *sent = bidi ? &c->sent_max_bidi : &c->sent_max_uni;
	uint64_t want = initial + closed;
	if (want > TERN_MAX_STREAMS_LIMIT)
		want = TERN_MAX_STREAMS_LIMIT;
	*max = want;
	uint64_t step = initial / 4 ? initial / 4 : 1;
	if (*max >= *sent + step) {
		*sent = *max;
		if (bidi)
			c->pending_max_streams_bidi = 1;
		else
			c->pending_max_streams_uni = 1;
	}
}

void stream_check_done(struct tern_conn *c, struct stream *s)
{
	if (s->queued || !stream_finished(s))
		return;
	for (size_t i = 0; i < c->n_streams; i++) {
		if (c->streams[i] != s)
			continue;
		c->streams[i] = c->streams[--c->n_streams];
		break;
	}
	if (!s->local) {
		if (s->bidi)
			c->closed_bidi_remote++;
		else
			c->closed_uni_remote++;
		give_stream_credit(c, s->bidi);
	}
	stream_destroy(s);
}

void stream_queue(struct tern_conn *c, struct stream *s)
{
	conn_wake(c);
	if (s->queued)
		return;
	s->queued = 1;
	s->next_send = NULL;
	if (c->send_tail)
		c->send_tail->next_send = s;
	else
		c->send_head = s;
	c->send_tail = s;
}

/* A peer-initiated stream: opens it and every lower-numbered stream of its
 * type (RFC 9000 §3.2), within MAX_STREAMS (§4.6). */
int stream_get_or_open_remote(struct tern_conn *c, uint64_t id, struct stream **out)
{
	struct stream *s = stream_find(c, id);
	if (s) {
		*out = s;
		return 0;
	}
	int local = (id & 1) == (uint64_t)c->is_server;
	if (local) {
		/* a stream of ours we never opened, or one already closed */
		uint64_t next = (id & 2) ? c->next_uni : c->next_bidi;
		*out = NULL;
		return id >= next ? TERN_ERR_QUIC(TERN_QUIC_STREAM_STATE_ERROR) : 0;
	}
	int bidi = (id & 2) == 0;
	uint64_t count = (id >> 2) + 1;
	uint64_t *opened = bidi ? &c->opened_bidi_remote : &c->opened_uni_remote;
	uint64_t limit = bidi ? c->max_bidi_local : c->max_uni_local;
	if (count > limit)
		return TERN_ERR_QUIC(TERN_QUIC_STREAM_LIMIT_ERROR);
	if (count <= *opened) {
		*out = NULL; /* opened before and since closed */
		return 0;
	}
	for (uint64_t n = *opened; n < count; n++) {
		uint64_t sid = (n << 2) | (id & 3);
		s = stream_new(c, sid);
		if (!s)
			return TERN_ERR_NOMEM;
		*opened = n + 1;
		if (c->cb && c->cb->on_stream_open)
			c->cb->on_stream_open(c, c->user, sid);
	}
	*out = s;
	return 0;
}
