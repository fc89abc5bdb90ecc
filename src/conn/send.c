/* Building datagrams: coalesced Initial, Handshake and 1-RTT packets, each
 * filled with ACK, control, CRYPTO and STREAM frames, then sealed and
 * header-protected in place. */
#include "conn/conn_int.h"

#define MIN_INITIAL_DATAGRAM 1200
#define PACING_SLACK_NS 1000000 /* 1 ms */

/* A packet under construction. */
struct pkt_build {
	int ep;
	uint8_t *start, *p, *end; /* end leaves room for the AEAD tag */
	size_t pn_offset, pn_len;
	uint64_t pn;
	struct sent_pkt *rec;
	int eliciting;
};

static enum tern_pkt_type ep_type(int ep)
{
	return ep == EP_INITIAL ? TERN_PKT_INITIAL : ep == EP_HANDSHAKE ? TERN_PKT_HANDSHAKE : TERN_PKT_1RTT;
}

static const struct tern_cid *local_scid(const struct tern_conn *c)
{
	return &c->lcid[0].cid;
}

static int pkt_begin(struct tern_conn *c, struct pkt_build *b, int ep, uint8_t *buf, size_t cap)
{
	struct pn_space *sp = &c->sp[ep];
	b->ep = ep;
	b->pn = sp->next_pn;
	b->pn_len = tern_pn_encode_len(b->pn, sp->largest_acked, sp->largest_acked != TERN_PN_NONE);
	int off;
	if (ep == EP_APP) {
		off = tern_pkt_short_write(buf, cap, &c->dcid, b->pn, b->pn_len, c->key_phase, 0);
	} else {
		const uint8_t *tok = (ep == EP_INITIAL && !c->is_server) ? c->token : NULL;
		size_t tok_len = tok ? c->token_len : 0;
		off = tern_pkt_long_write(buf, cap, c->version, ep_type(ep), &c->dcid, local_scid(c),
					  tok, tok_len, b->pn, b->pn_len);
	}
	if (off < 0)
		return off;
	b->start = buf;
	b->pn_offset = (size_t)off;
	b->p = buf + off + b->pn_len;
	if (cap < (size_t)(b->p - buf) + TERN_AEAD_TAG_LEN + 8)
		return TERN_ERR_NOBUF;
	b->end = buf + cap - TERN_AEAD_TAG_LEN;
	b->rec = NULL;
	b->eliciting = 0;
	return 0;
}

static size_t pkt_room(const struct pkt_build *b)
{
	return (size_t)(b->end - b->p);
}

/* Seals the packet: pads to `min_len` in total (and to the header-protection
 * sample size), encrypts, protects the header. Returns its length. */
static int pkt_finish(struct tern_conn *c, struct pkt_build *b, size_t min_len, uint64_t now)
{
	struct pn_space *sp = &c->sp[b->ep];
	size_t hdr_len = b->pn_offset + b->pn_len;
	/* RFC 9001 §5.4.2: 4 bytes after the pn start plus a 16-byte sample */
	size_t min_payload = b->pn_len < 4 ? 4 - b->pn_len : 0;
	size_t payload = (size_t)(b->p - (b->start + hdr_len));
	if (payload < min_payload) {
		memset(b->p, 0, min_payload - payload);
		b->p += min_payload - payload;
	}
	size_t total = (size_t)(b->p - b->start) + TERN_AEAD_TAG_LEN;
	if (total < min_len) {
		size_t pad = min_len - total;
		if (pad > pkt_room(b))
			pad = pkt_room(b);
		memset(b->p, 0, pad);
		b->p += pad;
		total += pad;
	}
	if (b->ep != EP_APP && tern_pkt_patch_length(b->start, b->pn_offset, total) < 0)
		return TERN_ERR_INVAL;
	uint8_t *pl = b->start + hdr_len;
	qlog_payload(c, 1, b->ep, b->pn, total, pl, (size_t)(b->p - pl), now);
	int rv = tern_aead_seal(&sp->tx, b->pn, b->start, hdr_len, pl, (size_t)(b->p - pl), b->p);
	if (rv < 0)
		return rv;
	rv = tern_hp_protect(&sp->tx, b->start, total, b->pn_offset, b->pn_len);
	if (rv < 0)
		return rv;
	sp->next_pn++;
	if (b->rec) {
		b->rec->pn = b->pn;
		b->rec->time = now;
		b->rec->size = (uint32_t)total;
		if (b->eliciting)
			b->rec->flags |= SF_ACK_ELICITING | SF_IN_FLIGHT;
		if (c->tx_ecn == 2)
			b->rec->flags |= SF_ECT0;
		recovery_on_sent(c, b->ep, b->rec);
	}
	if (b->eliciting)
		c->last_eliciting_sent = now;
	if (b->eliciting && c->last_eliciting_send_idle == TIME_NONE) {
		/* RFC 9000 §10.1: the first ack-eliciting packet sent since the
		 * last receive restarts the idle timer */
		c->last_eliciting_send_idle = now;
		c->idle_deadline = now + c->idle_timeout_ns;
	}
	c->stats.pkts_sent++;
	return (int)total;
}

static struct sent_pkt *pkt_record(struct tern_conn *c, struct pkt_build *b)
{
	if (!b->rec && sent_ring_push(&c->sp[b->ep].sent, &b->rec) < 0)
		return NULL;
	return b->rec;
}

static int pkt_add_chunk(struct tern_conn *c, struct pkt_build *b, uint64_t sid, uint64_t off,
			 size_t len, int fin, int kind)
{
	struct sent_pkt *r = pkt_record(c, b);
	if (!r || r->n_chunks == SENT_MAX_CHUNKS)
		return TERN_ERR_NOMEM;
	struct sent_chunk *ch = &r->chunks[r->n_chunks++];
	ch->stream_id = sid;
	ch->offset = off;
	ch->len = (uint32_t)len;
	ch->fin = (uint8_t)fin;
	ch->kind = (uint8_t)kind;
	return 0;
}

static int chunks_full(const struct pkt_build *b)
{
	return b->rec && b->rec->n_chunks == SENT_MAX_CHUNKS;
}

/* ---- frames ----------------------------------------------------------------- */

static void write_ack(struct tern_conn *c, struct pkt_build *b, uint64_t now)
{
	struct pn_space *sp = &c->sp[b->ep];
	if (!sp->ack_pending || !sp->recv.n)
		return;
	struct tern_ack_range r[RSET_MAX];
	size_t n = 0;
	for (uint32_t i = sp->recv.n; i-- > 0;) {
		r[n].smallest = sp->recv.r[i].start;
		r[n].largest = sp->recv.r[i].end - 1;
		n++;
	}
	uint64_t delay = 0;
	if (b->ep == EP_APP && now > sp->largest_recv_time)
		delay = ((now - sp->largest_recv_time) / 1000) >> c->cfg.tparams.ack_delay_exponent;
	struct tern_ecn_counts ecn = {c->ecn_recv[b->ep][0], c->ecn_recv[b->ep][1], c->ecn_recv[b->ep][2]};
	if (tern_ack_encode(&b->p, b->end, r, n, delay, c->ecn_seen[b->ep] ? &ecn : NULL) < 0)
		return;
	sp->ack_pending = 0;
	sp->ack_now = 0;
	sp->unacked_eliciting = 0;
	sp->ack_deadline = TIME_NONE;
}

static int write_frame(struct pkt_build *b, const struct tern_frame *f)
{
	return tern_frame_encode(&b->p, b->end, f);
}

static void write_crypto(struct tern_conn *c, struct pkt_build *b)
{
	struct sendbuf *sb = &c->sp[b->ep].crypto_send;
	uint64_t off;
	size_t len;
	int fin;
	while (!chunks_full(b) && sendbuf_next(sb, UINT64_MAX, &off, &len, &fin) && len) {
		size_t hdr = 1 + tern_varint_size(off) + 2;
		if (pkt_room(b) <= hdr)
			return;
		size_t n = pkt_room(b) - hdr;
		if (n > len)
			n = len;
		uint8_t *p = b->p;
		*p++ = TERN_FRAME_CRYPTO;
		p = tern_varint_encode(p, off);
		p = tern_varint_encode_fixed(p, n, 2);
		sendbuf_copy(sb, off, p, n);
		if (pkt_add_chunk(c, b, UINT64_MAX, off, n, 0, 0) < 0)
			return;
		b->p = p + n;
		b->eliciting = 1;
		sendbuf_on_sent(sb, off, n, 0);
	}
}

static void write_control(struct tern_conn *c, struct pkt_build *b)
{
	struct tern_frame f;
	if (c->pending_handshake_done && pkt_room(b) >= 1 && pkt_record(c, b)) {
		f.type = TERN_FRAME_HANDSHAKE_DONE;
		if (write_frame(b, &f) == 0) {
			c->pending_handshake_done = 0;
			b->rec->flags |= SF_HANDSHAKE_DONE;
			b->eliciting = 1;
		}
	}
	if (c->new_token_pending && pkt_record(c, b)) {
		f.type = TERN_FRAME_NEW_TOKEN;
		f.new_token.token = c->new_token;
		f.new_token.len = c->new_token_len;
		if (write_frame(b, &f) == 0) {
			c->new_token_pending = 0;
			b->rec->flags |= SF_NEW_TOKEN;
			b->eliciting = 1;
		}
	}
	if (c->path_response_pending) {
		f.type = TERN_FRAME_PATH_RESPONSE;
		memcpy(f.path.data, c->path_response_data, 8);
		if (write_frame(b, &f) == 0) {
			c->path_response_pending = 0;
			b->eliciting = 1;
		}
	}
	if (c->pending_max_data && pkt_record(c, b)) {
		f.type = TERN_FRAME_MAX_DATA;
		f.max_data.max = c->max_data_recv;
		if (write_frame(b, &f) == 0) {
			c->pending_max_data = 0;
			b->rec->flags |= SF_MAX_DATA;
			b->eliciting = 1;
		}
	}
	for (int uni = 0; uni < 2; uni++) {
		uint8_t *pend = uni ? &c->pending_max_streams_uni : &c->pending_max_streams_bidi;
		if (!*pend || !pkt_record(c, b))
			continue;
		f.type = uni ? TERN_FRAME_MAX_STREAMS_UNI : TERN_FRAME_MAX_STREAMS_BIDI;
		f.max_streams.max = uni ? c->max_uni_local : c->max_bidi_local;
		if (write_frame(b, &f) == 0) {
			*pend = 0;
			b->rec->flags |= uni ? SF_MAX_STREAMS_UNI : SF_MAX_STREAMS_BIDI;
			b->eliciting = 1;
		}
	}
	for (uint32_t i = 0; i < c->n_lcid; i++) {
		struct local_cid *l = &c->lcid[i];
		if (!l->pending_send || l->retired || !pkt_record(c, b))
			continue;
		f.type = TERN_FRAME_NEW_CONNECTION_ID;
		f.new_cid.seq = l->seq;
		f.new_cid.retire_prior_to = 0;
		f.new_cid.cid = l->cid;
		memcpy(f.new_cid.reset_token, l->token, 16);
		if (write_frame(b, &f) == 0) {
			l->pending_send = 0;
			b->rec->flags |= SF_NEW_CID;
			b->eliciting = 1;
		}
	}
	for (uint32_t i = 0; i < c->n_pcid; i++) {
		struct peer_cid *pc = &c->pcid[i];
		if (!pc->retire_pending)
			continue;
		f.type = TERN_FRAME_RETIRE_CONNECTION_ID;
		f.retire_cid.seq = pc->seq;
		if (write_frame(b, &f) == 0) {
			pc->retire_pending = 0;
			b->eliciting = 1;
		}
	}
}

/* Per-stream control frames: MAX_STREAM_DATA, RESET_STREAM, STOP_SENDING. */
static void write_stream_control(struct tern_conn *c, struct pkt_build *b, struct stream *s)
{
	struct tern_frame f;
	if (s->pending_max_stream_data && !chunks_full(b)) {
		f.type = TERN_FRAME_MAX_STREAM_DATA;
		f.max_stream_data.stream_id = s->id;
		f.max_stream_data.max = s->max_recv;
		if (write_frame(b, &f) == 0 && pkt_add_chunk(c, b, s->id, 0, 0, 0, 3) == 0) {
			s->pending_max_stream_data = 0;
			b->eliciting = 1;
		}
	}
	if (s->pending_reset && !chunks_full(b)) {
		f.type = TERN_FRAME_RESET_STREAM;
		f.reset_stream.stream_id = s->id;
		f.reset_stream.error_code = s->reset_code;
		f.reset_stream.final_size = s->send.sent;
		if (write_frame(b, &f) == 0 && pkt_add_chunk(c, b, s->id, 0, 0, 0, 1) == 0) {
			s->pending_reset = 0;
			b->eliciting = 1;
		}
	}
	if (s->pending_stop && !chunks_full(b)) {
		f.type = TERN_FRAME_STOP_SENDING;
		f.stop_sending.stream_id = s->id;
		f.stop_sending.error_code = s->stop_code;
		if (write_frame(b, &f) == 0 && pkt_add_chunk(c, b, s->id, 0, 0, 0, 2) == 0) {
			s->pending_stop = 0;
			b->eliciting = 1;
		}
	}
}

/* One STREAM frame from s; returns 1 when the stream has nothing more that
 * may go now, 0 when the packet is full. */
static int write_stream_data(struct tern_conn *c, struct pkt_build *b, struct stream *s)
{
	if (s->send_closed || !s->send.buf || s->pending_reset)
		return 1;
	uint64_t credit = c->max_data_send - c->data_sent;
	uint64_t limit = s->send.sent + credit;
	if (limit > s->max_send)
		limit = s->max_send;
	uint64_t off;
	size_t len;
	int fin;
	if (!sendbuf_next(&s->send, limit, &off, &len, &fin))
		return 1;
	if (chunks_full(b))
		return 0;
	/* Always carry Length: padding (for the HP sample or a 1200-byte
	 * Initial datagram) may follow, and would otherwise read as data. */
	int with_len;
	int n = pkt_room(b) > TERN_VARINT_MAX_SIZE
			? tern_stream_frame_fit(s->id, off, len, pkt_room(b) - TERN_VARINT_MAX_SIZE, &with_len)
			: TERN_ERR_NOBUF;
	if (n < 0 || (n == 0 && len))
		return 0;
	if ((size_t)n < len)
		fin = 0;
	with_len = 1;
	uint8_t *p = b->p;
	*p++ = (uint8_t)(TERN_FRAME_STREAM | (off ? TERN_FRAME_STREAM_OFF : 0) |
			 (with_len ? TERN_FRAME_STREAM_LEN : 0) | (fin ? TERN_FRAME_STREAM_FIN : 0));
	p = tern_varint_encode(p, s->id);
	if (off)
		p = tern_varint_encode(p, off);
	if (with_len)
		p = tern_varint_encode(p, (uint64_t)n);
	if ((size_t)(b->end - p) < (size_t)n)
		return 0;
	if (pkt_add_chunk(c, b, s->id, off, (size_t)n, fin, 0) < 0)
		return 0;
	sendbuf_copy(&s->send, off, p, (size_t)n);
	b->p = p + n;
	b->eliciting = 1;
	if (off + (uint64_t)n > s->send.sent)
		c->data_sent += off + (uint64_t)n - s->send.sent;
	sendbuf_on_sent(&s->send, off, (size_t)n, fin);
	c->stats.stream_bytes_sent += (uint64_t)n;
	return pkt_room(b) < 16 ? 0 : 1;
}

static int stream_wants_send(const struct tern_conn *c, const struct stream *s)
{
	if (s->pending_max_stream_data || s->pending_reset || s->pending_stop)
		return 1;
	if (s->send_closed || !s->send.buf)
		return 0;
	uint64_t limit = s->send.sent + (c->max_data_send - c->data_sent);
	if (limit > s->max_send)
		limit = s->max_send;
	return sendbuf_has_pending(&s->send, limit);
}

static void write_streams(struct tern_conn *c, struct pkt_build *b)
{
	while (c->send_head && pkt_room(b) > 16 && !chunks_full(b)) {
		struct stream *s = c->send_head;
		write_stream_control(c, b, s);
		int done = write_stream_data(c, b, s);
		/* round robin: a stream that still has data goes to the back */
		c->send_head = s->next_send;
		if (!c->send_head)
			c->send_tail = NULL;
		s->queued = 0;
		if (stream_wants_send(c, s))
			stream_queue(c, s);
		else
			stream_check_done(c, s);
		if (!done)
			break;
	}
}

/* ---- datagrams --------------------------------------------------------------- */

static int space_wants_send(struct tern_conn *c, int ep, uint64_t now)
{
	struct pn_space *sp = &c->sp[ep];
	if (!sp->tx_ready || sp->discarded)
		return 0;
	if (sp->ack_pending && (ep != EP_APP || sp->ack_now || sp->ack_deadline <= now))
		return 1;
	if (c->probes_pending[ep])
		return 1;
	int cc_ok = recovery_can_send(c, 0);
	if (cc_ok && sendbuf_has_pending(&sp->crypto_send, UINT64_MAX))
		return 1;
	if (ep != EP_APP || !c->handshake_complete)
		return 0;
	if (c->pending_handshake_done || c->new_token_pending || c->pending_max_data || c->pending_max_streams_bidi ||
	    c->pending_max_streams_uni || c->path_response_pending)
		return 1;
	for (uint32_t i = 0; i < c->n_lcid; i++)
		if (c->lcid[i].pending_send && !c->lcid[i].retired)
			return 1;
	for (uint32_t i = 0; i < c->n_pcid; i++)
		if (c->pcid[i].retire_pending)
			return 1;
	if (!cc_ok)
		return 0;
	for (struct stream *s = c->send_head; s; s = s->next_send)
		if (stream_wants_send(c, s))
			return 1;
	return 0;
}

/* The window and the pacer both say yes (RFC 9002 §7.7); when only the
 * pacer says no, remember when it will say yes. */
static int pacing_allows(struct tern_conn *c, uint64_t now)
{
	if (!recovery_can_send(c, 0))
		return 0;
	if (c->cfg.no_pacing)
		return 1;
	/* A wait shorter than a timer tick costs a sleep and a wake-up per
	 * packet: send now, the pacer carries the debt (as fq's quantum). */
	uint64_t t = tern_pacer_next_send_time(&c->pacer, now);
	if (t <= now + PACING_SLACK_NS)
		return 1;
	c->pace_until = t;
	return 0;
}

static int build_packet(struct tern_conn *c, int ep, uint8_t *buf, size_t cap, size_t min_len,
			uint64_t now)
{
	struct pkt_build b;
	int rv = pkt_begin(c, &b, ep, buf, cap);
	if (rv < 0)
		return 0;
	write_ack(c, &b, now);
	if (pacing_allows(c, now) || c->probes_pending[ep]) {
		write_crypto(c, &b);
		if (ep == EP_APP && c->handshake_complete) {
			write_control(c, &b);
			write_streams(c, &b);
		}
	}
	if (c->probes_pending[ep] && !b.eliciting && pkt_room(&b) >= 1 && pkt_record(c, &b)) {
		*b.p++ = TERN_FRAME_PING;
		b.rec->flags |= SF_PING;
		b.eliciting = 1;
	}
	if (c->probes_pending[ep] && b.eliciting)
		c->probes_pending[ep]--;
	size_t hdr = b.pn_offset + b.pn_len;
	if ((size_t)(b.p - buf) == hdr) {
		if (b.rec) /* nothing went in after all */
			c->sp[ep].sent.len--;
		return 0;
	}
	return pkt_finish(c, &b, min_len, now);
}

/* DPLPMTUD (RFC 9000 §14.3, RFC 8899): once the handshake is confirmed,
 * one probe at a time: a PING padded to the size under test. An ACK raises
 * the datagram size; losses (recovery.c) halve the step. */
static int send_mtu_probe(struct tern_conn *c, uint8_t *buf, size_t cap, uint64_t now)
{
	/* never ahead of loss recovery: a PTO's probes and retransmissions
	 * go first */
	if (c->mtu_done || c->mtu_probe_inflight || !c->handshake_confirmed || !recovery_can_send(c, 0) ||
	    c->pto_count || c->probes_pending[EP_APP])
		return 0;
	size_t target = c->mtu_probe;
	if (!target) {
		target = c->cfg.max_datagram;
		if (c->peer_tp.max_udp_payload_size < target)
			target = (size_t)c->peer_tp.max_udp_payload_size;
		c->mtu_probe = target;
	}
	if (target <= c->mtu || target > cap) {
		c->mtu_done = 1;
		return 0;
	}
	struct pkt_build b;
	if (pkt_begin(c, &b, EP_APP, buf, target) < 0 || !pkt_record(c, &b))
		return 0;
	*b.p++ = TERN_FRAME_PING;
	b.eliciting = 1;
	b.rec->flags |= SF_MTU_PROBE;
	int n = pkt_finish(c, &b, target, now);
	if (n > 0) {
		c->mtu_probe_inflight = 1;
		c->stats.bytes_sent += (uint64_t)n;
	}
	return n;
}

static void maybe_discard_initial_client(struct tern_conn *c, int ep)
{
	/* RFC 9001 §4.9.1: a client discards Initial keys when it first sends
	 * a Handshake packet. */
	if (!c->is_server && ep == EP_HANDSHAKE && !c->sp[EP_INITIAL].discarded)
		conn_discard_space(c, EP_INITIAL);
}

static int send_close(struct tern_conn *c, uint8_t *buf, size_t cap, uint64_t now);

int conn_send_datagram(struct tern_conn *c, uint8_t *buf, size_t cap, uint64_t now)
{
	c->now = now;
	if (c->state == TERN_CONN_CLOSING)
		return c->close_pending ? send_close(c, buf, cap, now) : 0;
	if (c->state != TERN_CONN_HANDSHAKE && c->state != TERN_CONN_ESTABLISHED)
		return 0;
	c->tx_ecn = c->ecn_state == ECN_FAILED ? 0 : 2;
	int probe = send_mtu_probe(c, buf, cap, now);
	if (probe)
		return probe;
	if (cap > c->mtu)
		cap = c->mtu;
	if (c->is_server && !c->address_validated) {
		uint64_t allowed = 3 * c->amp_recv > c->amp_sent ? 3 * c->amp_recv - c->amp_sent : 0;
		if (allowed < cap)
			cap = (size_t)allowed;
		if (cap < 64)
			return 0;
	}
	size_t used = 0;
	int has_initial = 0;
	for (int ep = 0; ep < EP_COUNT; ep++) {
		if (!space_wants_send(c, ep, now))
			continue;
		int later = 0;
		for (int e2 = ep + 1; e2 < EP_COUNT; e2++)
			later |= space_wants_send(c, e2, now);
		size_t min_len = 0;
		/* RFC 9000 §14.1: datagrams with a client Initial (and server
		 * Initials that elicit acks) carry at least 1200 bytes. */
		if ((has_initial || ep == EP_INITIAL) && !later && cap >= MIN_INITIAL_DATAGRAM)
			min_len = MIN_INITIAL_DATAGRAM - used;
		int n = build_packet(c, ep, buf + used, cap - used, min_len, now);
		if (n <= 0)
			continue;
		has_initial |= ep == EP_INITIAL;
		used += (size_t)n;
		maybe_discard_initial_client(c, ep);
		if (cap - used < 64)
			break;
	}
	if (used && has_initial && used < MIN_INITIAL_DATAGRAM && cap >= MIN_INITIAL_DATAGRAM) {
		/* nothing after the Initial ended up padding it: add a PING with
		 * padding in the highest space we can write */
		for (int ep = EP_APP; ep >= 0; ep--) {
			if (!c->sp[ep].tx_ready || c->sp[ep].discarded ||
			    (ep == EP_APP && !c->handshake_complete))
				continue;
			c->probes_pending[ep]++;
			int n = build_packet(c, ep, buf + used, cap - used, MIN_INITIAL_DATAGRAM - used, now);
			if (n > 0)
				used += (size_t)n;
			break;
		}
	}
	c->amp_sent += used;
	c->stats.bytes_sent += used;
	return (int)used;
}

/* ---- CONNECTION_CLOSE, RFC 9000 §10.2.3 ---------------------------------------- */

static int close_packet(struct tern_conn *c, int ep, uint8_t *buf, size_t cap, size_t min_len,
			uint64_t now)
{
	struct pkt_build b;
	if (pkt_begin(c, &b, ep, buf, cap) < 0)
		return 0;
	struct tern_frame f;
	const struct tern_close_info *ci = &c->close;
	if (ci->app && ep != EP_APP) {
		/* an application close in Initial/Handshake packets becomes a
		 * transport APPLICATION_ERROR with no reason: the code and phrase
		 * are for the peer's application, which may not be validated */
		f.type = TERN_FRAME_CONNECTION_CLOSE;
		f.close.error_code = TERN_QUIC_APPLICATION_ERROR;
		f.close.frame_type = 0;
		f.close.reason = NULL;
		f.close.reason_len = 0;
	} else {
		f.type = ci->app ? TERN_FRAME_CONNECTION_CLOSE_APP : TERN_FRAME_CONNECTION_CLOSE;
		f.close.error_code = ci->code;
		f.close.frame_type = ci->frame_type;
		f.close.reason = (const uint8_t *)ci->reason_phrase;
		f.close.reason_len = strlen(ci->reason_phrase);
	}
	if (write_frame(&b, &f) < 0)
		return 0;
	return pkt_finish(c, &b, min_len, now);
}

static int send_close(struct tern_conn *c, uint8_t *buf, size_t cap, uint64_t now)
{
	if (cap > c->cfg.max_datagram)
		cap = c->cfg.max_datagram;
	if (c->is_server && !c->address_validated) {
		uint64_t allowed = 3 * c->amp_recv > c->amp_sent ? 3 * c->amp_recv - c->amp_sent : 0;
		if (allowed < cap)
			cap = (size_t)allowed;
	}
	size_t used = 0;
	/* before the handshake is confirmed the peer may lack 1-RTT keys, and
	 * after Initial keys go it cannot read Initials: send at every level
	 * we still hold, coalesced into one datagram */
	int levels[EP_COUNT], n_levels = 0;
	for (int ep = 0; ep < EP_COUNT; ep++) {
		struct pn_space *sp = &c->sp[ep];
		if (!sp->tx_ready || sp->discarded)
			continue;
		if (ep == EP_APP && !c->handshake_complete)
			continue;
		if (ep == EP_INITIAL && c->sp[EP_HANDSHAKE].tx_ready && c->handshake_confirmed)
			continue;
		levels[n_levels++] = ep;
	}
	/* RFC 9000 §14.1: a client datagram carrying an Initial is padded to
	 * 1200 bytes, or the server must drop it unheard */
	int pad = !c->is_server && n_levels && levels[0] == EP_INITIAL && cap >= MIN_INITIAL_DATAGRAM;
	for (int i = 0; i < n_levels; i++) {
		size_t min_len = pad && i == n_levels - 1 ? MIN_INITIAL_DATAGRAM - used : 0;
		int n = close_packet(c, levels[i], buf + used, cap - used, min_len, now);
		if (n > 0)
			used += (size_t)n;
	}
	c->close_pending = 0;
	c->amp_sent += used;
	c->stats.bytes_sent += used;
	return (int)used;
}
