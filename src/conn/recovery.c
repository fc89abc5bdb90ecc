/* Loss detection and congestion control, RFC 9002: RTT estimation, ACK
 * processing, packet- and time-threshold loss, PTO with backoff, and a
 * NewReno window. The full treatment (CUBIC, pacing, ECN, persistent
 * congestion) is the loss-recovery issue's; this is enough to be reliable
 * and to not flood a path. */
#include <stdlib.h>

#include "conn/conn_int.h"

#define K_PACKET_THRESHOLD 3
#define K_GRANULARITY_NS TERN_RTT_GRANULARITY_NS
#define SENT_RING_MAX 65536
#define PC_MAX 256 /* packets examined for persistent congestion per round */
#define MTU_PROBE_TRIES 3
#define MTU_BLACK_HOLE_PTOS 3

/* ---- the sent-packet ring -------------------------------------------------- */

static struct sent_pkt *ring_at(const struct sent_ring *r, size_t i)
{
	return &r->p[(r->head + i) & (r->cap - 1)];
}

int sent_ring_push(struct sent_ring *r, struct sent_pkt **out)
{
	if (r->len == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		if (cap > SENT_RING_MAX)
			return TERN_ERR_NOMEM;
		struct sent_pkt *np = malloc(cap * sizeof(*np));
		if (!np)
			return TERN_ERR_NOMEM;
		for (size_t i = 0; i < r->len; i++)
			np[i] = *ring_at(r, i);
		free(r->p);
		r->p = np;
		r->cap = cap;
		r->head = 0;
	}
	struct sent_pkt *p = &r->p[(r->head + r->len) & (r->cap - 1)];
	r->len++;
	memset(p, 0, sizeof(*p));
	*out = p;
	return 0;
}

void sent_ring_free(struct sent_ring *r)
{
	free(r->p);
	memset(r, 0, sizeof(*r));
}

/* Drops acknowledged or requeued records from the front. */
static void ring_compact(struct sent_ring *r)
{
	while (r->len && r->p[r->head].acked) {
		r->head = (r->head + 1) & (r->cap - 1);
		r->len--;
	}
}

/* ---- RTT and congestion control (src/cc/) -------------------------------- */

uint64_t recovery_pto(const struct tern_conn *c)
{
	return tern_rtt_pto(&c->rtt, c->max_ack_delay_ns);
}

int recovery_can_send(const struct tern_conn *c, size_t bytes)
{
	(void)bytes;
	return tern_cc_can_send(&c->cc);
}

static void cc_on_acked(struct tern_conn *c, const struct sent_pkt *p, uint64_t now)
{
	if (p->flags & SF_MTU_PROBE) {
		/* RFC 8899 §4.1: probes do not count against the window */
		tern_cc_on_discarded(&c->cc, p->size);
		return;
	}
	if (p->flags & SF_IN_FLIGHT)
		tern_cc_on_acked(&c->cc, p->size, p->time, now, &c->rtt);
}

static void cc_on_lost(struct tern_conn *c, const struct sent_pkt *p, uint64_t now)
{
	if (!(p->flags & SF_IN_FLIGHT))
		return;
	if (p->flags & SF_MTU_PROBE) {
		/* a lost probe says the path is smaller, not congested */
		tern_cc_on_discarded(&c->cc, p->size);
		return;
	}
	tern_cc_on_lost(&c->cc, p->size, p->time, now);
}

/* ---- what a packet carried ------------------------------------------------- */

static struct sendbuf *chunk_sendbuf(struct tern_conn *c, int ep, const struct sent_chunk *ch,
				     struct stream **sp)
{
	*sp = NULL;
	if (ch->stream_id == UINT64_MAX)
		return &c->sp[ep].crypto_send;
	struct stream *s = stream_find(c, ch->stream_id);
	*sp = s;
	return s ? &s->send : NULL;
}

static void on_packet_acked(struct tern_conn *c, int ep, struct sent_pkt *p)
{
	if (p->flags & SF_MTU_PROBE) {
		c->mtu = p->size;
		c->mtu_probe_inflight = 0;
		c->mtu_probe_fails = 0;
		c->mtu_probe = 0; /* next: the ceiling again, if this was below */
		c->mtu_done = c->mtu >= c->cfg.max_datagram ||
			      c->mtu >= c->peer_tp.max_udp_payload_size;
	}
	for (unsigned i = 0; i < p->n_chunks; i++) {
		const struct sent_chunk *ch = &p->chunks[i];
		struct stream *s;
		if (ch->kind != 0)
			continue;
		struct sendbuf *b = chunk_sendbuf(c, ep, ch, &s);
		if (!b)
			continue;
		uint64_t before = b->acked, id = s ? s->id : 0;
		sendbuf_on_acked(b, ch->offset, ch->len, ch->fin);
		if (s && b->acked != before && c->cb && c->cb->on_stream_writable)
			c->cb->on_stream_writable(c, c->user, id);
		/* the callback may have closed or freed nothing, but look again */
		if (s && (s = stream_find(c, id)))
			stream_check_done(c, s);
	}
}

/* Puts everything a lost packet carried back in line to be sent again. */
void recovery_requeue(struct tern_conn *c, int ep, struct sent_pkt *p)
{
	if (p->flags & SF_MTU_PROBE) {
		/* a probe is never resent as such: after a few losses of one
		 * size, try halfway between what works and what did not */
		c->mtu_probe_inflight = 0;
		if (++c->mtu_probe_fails >= MTU_PROBE_TRIES) {
			c->mtu_probe_fails = 0;
			c->mtu_probe = (c->mtu + c->mtu_probe) / 2;
			if (c->mtu_probe < c->mtu + 32)
				c->mtu_done = 1;
		}
	}
	for (unsigned i = 0; i < p->n_chunks; i++) {
		const struct sent_chunk *ch = &p->chunks[i];
		struct stream *s;
		if (ch->stream_id != UINT64_MAX) {
			s = stream_find(c, ch->stream_id);
			if (!s)
				continue;
			if (ch->kind == 1)
				s->pending_reset = 1;
			else if (ch->kind == 2)
				s->pending_stop = 1;
			else if (ch->kind == 3)
				s->pending_max_stream_data = 1;
			else if (!s->pending_reset)
				sendbuf_on_lost(&s->send, ch->offset, ch->len, ch->fin);
			stream_queue(c, s);
			continue;
		}
		struct sendbuf *b = chunk_sendbuf(c, ep, ch, &s);
		sendbuf_on_lost(b, ch->offset, ch->len, ch->fin);
	}
	if (p->flags & SF_HANDSHAKE_DONE)
		c->pending_handshake_done = 1;
	if (p->flags & SF_MAX_DATA)
		c->pending_max_data = 1;
	if (p->flags & SF_NEW_TOKEN)
		c->new_token_pending = 1;
	if (p->flags & SF_MAX_STREAMS_BIDI)
		c->pending_max_streams_bidi = 1;
	if (p->flags & SF_MAX_STREAMS_UNI)
		c->pending_max_streams_uni = 1;
	if (p->flags & SF_NEW_CID)
		for (uint32_t i = 0; i < c->n_lcid; i++)
			if (!c->lcid[i].retired && c->lcid[i].seq > 0)
				c->lcid[i].pending_send = 1;
}

/* ---- ACK processing, RFC 9002 §6 ------------------------------------------- */

static void detect_lost(struct tern_conn *c, int ep, uint64_t now)
{
	struct pn_space *sp = &c->sp[ep];
	uint64_t rtt = c->rtt.latest_rtt > c->rtt.smoothed_rtt ? c->rtt.latest_rtt : c->rtt.smoothed_rtt;
	uint64_t delay = rtt * 9 / 8;
	if (delay < K_GRANULARITY_NS)
		delay = K_GRANULARITY_NS;
	struct tern_cc_pkt pc[PC_MAX];
	size_t npc = 0;
	int any_lost = 0;
	sp->loss_time = TIME_NONE;
	for (size_t i = 0; i < sp->sent.len; i++) {
		struct sent_pkt *p = ring_at(&sp->sent, i);
		if (p->pn > sp->largest_acked)
			break;
		int eliciting = (p->flags & SF_ACK_ELICITING) != 0;
		if (p->acked) {
			if (npc < PC_MAX && eliciting)
				pc[npc++] = (struct tern_cc_pkt){p->time, 1, 0};
			continue;
		}
		int lost = p->pn + K_PACKET_THRESHOLD <= sp->largest_acked || p->time + delay <= now;
		if (!lost) {
			uint64_t t = p->time + delay;
			if (t < sp->loss_time)
				sp->loss_time = t;
			continue;
		}
		if (npc < PC_MAX && eliciting)
			pc[npc++] = (struct tern_cc_pkt){p->time, 1, 1};
		any_lost = 1;
		p->acked = 1; /* no longer tracked */
		if (eliciting && sp->eliciting_in_flight)
			sp->eliciting_in_flight--;
		c->stats.pkts_lost++;
		qlog_lost(c, ep, p->pn, now);
		cc_on_lost(c, p, now);
		recovery_requeue(c, ep, p);
	}
	/* RFC 9002 §7.6: losses spanning a long period with no ack between
	 * them collapse the window */
	if (any_lost && c->first_rtt_sample_time && npc < PC_MAX &&
	    tern_cc_persistent_congestion(&c->rtt, c->max_ack_delay_ns, c->first_rtt_sample_time, pc,
					  npc) == 1)
		tern_cc_on_persistent_congestion(&c->cc, now);
	ring_compact(&sp->sent);
}

static struct sent_pkt *ring_find(struct sent_ring *r, uint64_t pn)
{
	/* pns in the ring ascend; binary search */
	size_t lo = 0, hi = r->len;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		struct sent_pkt *p = ring_at(r, mid);
		if (p->pn == pn)
			return p;
		if (p->pn < pn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int recovery_on_ack(struct tern_conn *c, int ep, const struct tern_ack_frame *ack, uint64_t now)
{
	struct pn_space *sp = &c->sp[ep];
	if (ack->largest >= sp->next_pn)
		return TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION); /* RFC 9000 §13.1 */
	struct tern_ack_iter it;
	struct tern_ack_range r;
	int newly_eliciting = 0, ecn_acked_any = 0;
	uint64_t newly_ect0 = 0;
	struct sent_pkt *largest = NULL;
	tern_ack_iter_init(&it, ack);
	while (tern_ack_iter_next(&it, &r)) {
		if (!sp->sent.len)
			break;
		uint64_t lo = r.smallest, hi = r.largest;
		uint64_t first = ring_at(&sp->sent, 0)->pn;
		if (hi < first)
			break;
		if (lo < first)
			lo = first;
		for (uint64_t pn = hi + 1; pn-- > lo;) {
			struct sent_pkt *p = ring_find(&sp->sent, pn);
			if (!p || p->acked)
				continue;
			p->acked = 1;
			if (pn == ack->largest)
				largest = p;
			if (p->flags & SF_ACK_ELICITING) {
				newly_eliciting = 1;
				if (sp->eliciting_in_flight)
					sp->eliciting_in_flight--;
			}
			if (p->flags & SF_ECT0) {
				newly_ect0++;
				ecn_acked_any = 1;
			}
			cc_on_acked(c, p, now);
			on_packet_acked(c, ep, p);
			if (c->update_pending_ack && ep == EP_APP && pn >= c->key_phase_start_pn)
				c->update_pending_ack = 0;
		}
	}
	if (sp->largest_acked == TERN_PN_NONE || ack->largest > sp->largest_acked)
		sp->largest_acked = ack->largest;
	if (largest && newly_eliciting) {
		uint64_t delay = ep == EP_APP ? (ack->ack_delay << c->peer_tp.ack_delay_exponent) * 1000 : 0;
		tern_rtt_update(&c->rtt, now - largest->time, delay, c->handshake_confirmed,
				c->max_ack_delay_ns);
		if (!c->first_rtt_sample_time)
			c->first_rtt_sample_time = now;
		tern_pacer_set_rate(&c->pacer, tern_cc_cwnd(&c->cc), c->rtt.smoothed_rtt, now);
		qlog_metrics(c, now);
	}
	if (ecn_acked_any)
		recovery_on_ecn(c, ep, ack, newly_ect0, largest ? largest->time : now, now);
	if (newly_eliciting)
		c->pto_count = 0;
	detect_lost(c, ep, now);
	ring_compact(&sp->sent);
	recovery_set_timer(c, now);
	return 0;
}

void recovery_on_sent(struct tern_conn *c, int ep, struct sent_pkt *p)
{
	struct pn_space *sp = &c->sp[ep];
	if (p->flags & SF_IN_FLIGHT) {
		tern_cc_on_sent(&c->cc, p->size, p->time);
		if (!c->cfg.no_pacing)
			tern_pacer_on_sent(&c->pacer, p->size, p->time);
	}
	if (p->flags & SF_ACK_ELICITING) {
		sp->last_eliciting_sent = p->time;
		sp->eliciting_in_flight++;
	}
	recovery_set_timer(c, p->time);
}

/* ---- timers, RFC 9002 §6.2 ------------------------------------------------- */

/* RFC 9002 §6.2.2.1: a server that may send nothing more before the client
 * speaks (3x limit spent) arms no PTO: a probe could not go out anyway. */
static int amplification_blocked(const struct tern_conn *c)
{
	return c->is_server && !c->address_validated && 3 * c->amp_recv < c->amp_sent + 64;
}

/* The earliest PTO deadline and its packet number space (RFC 9002 §A.8
 * GetPtoTimeAndSpace); TIME_NONE when no PTO is armed. */
static uint64_t pto_time_and_space(const struct tern_conn *c, int *space)
{
	uint64_t t = TIME_NONE;
	uint64_t pto = recovery_pto(c) << (c->pto_count < 16 ? c->pto_count : 16);
	*space = -1;
	if (amplification_blocked(c))
		return TIME_NONE;
	for (int ep = 0; ep < EP_COUNT; ep++) {
		const struct pn_space *sp = &c->sp[ep];
		if (sp->discarded || !sp->eliciting_in_flight)
			continue;
		if (ep == EP_APP && !c->handshake_complete)
			continue; /* RFC 9002 §6.2.1: no app PTO before that */
		uint64_t d = ep == EP_APP ? pto : pto - c->max_ack_delay_ns;
		if (sp->last_eliciting_sent + d < t) {
			t = sp->last_eliciting_sent + d;
			*space = ep;
		}
	}
	/* A client with nothing in flight before the handshake is confirmed
	 * must still probe, or a lost server flight deadlocks (§6.2.2.1) */
	if (t == TIME_NONE && !c->is_server && !c->handshake_confirmed &&
	    c->state == TERN_CONN_HANDSHAKE) {
		uint64_t last = c->sp[EP_INITIAL].last_eliciting_sent > c->sp[EP_HANDSHAKE].last_eliciting_sent
					? c->sp[EP_INITIAL].last_eliciting_sent
					: c->sp[EP_HANDSHAKE].last_eliciting_sent;
		t = (last ? last : c->now) + pto;
		*space = c->sp[EP_HANDSHAKE].tx_ready && !c->sp[EP_HANDSHAKE].discarded ? EP_HANDSHAKE
											 : EP_INITIAL;
	}
	return t;
}

void recovery_set_timer(struct tern_conn *c, uint64_t now)
{
	(void)now;
	uint64_t t = TIME_NONE;
	for (int ep = 0; ep < EP_COUNT; ep++)
		if (!c->sp[ep].discarded && c->sp[ep].loss_time < t)
			t = c->sp[ep].loss_time;
	if (t != TIME_NONE) {
		c->loss_timer = t;
		return;
	}
	int space;
	c->loss_timer = pto_time_and_space(c, &space);
}

void recovery_on_timeout(struct tern_conn *c, uint64_t now)
{
	for (int ep = 0; ep < EP_COUNT; ep++) {
		struct pn_space *sp = &c->sp[ep];
		if (!sp->discarded && sp->loss_time <= now) {
			detect_lost(c, ep, now);
			recovery_set_timer(c, now);
			return;
		}
	}
	int ep;
	if (pto_time_and_space(c, &ep) > now || ep < 0) {
		recovery_set_timer(c, now);
		return;
	}
	c->pto_count++;
	if (c->pto_count >= MTU_BLACK_HOLE_PTOS && c->mtu > 1200) {
		/* RFC 8899 §4.3: full-size packets stopped arriving: fall back
		 * to the base size and search again later */
		c->mtu = 1200;
		c->mtu_probe = 0;
		c->mtu_probe_inflight = 0;
		c->mtu_done = 0;
		c->mtu_probe_fails = 0;
	}
	/* RFC 9002 §6.2.4: probes in the space whose PTO fired, carrying its
	 * oldest outstanding data; resending everything in flight would only
	 * flood the path */
	struct pn_space *sp = &c->sp[ep];
	int n = 0;
	for (size_t i = 0; i < sp->sent.len && n < 2; i++) {
		struct sent_pkt *p = ring_at(&sp->sent, i);
		if (!p->acked && (p->flags & SF_ACK_ELICITING)) {
			recovery_requeue(c, ep, p);
			n++;
		}
	}
	c->probes_pending[ep] = n ? 2 : 1;
	recovery_set_timer(c, now);
}

void recovery_discard_space(struct tern_conn *c, int ep)
{
	struct pn_space *sp = &c->sp[ep];
	for (size_t i = 0; i < sp->sent.len; i++) {
		struct sent_pkt *p = ring_at(&sp->sent, i);
		if (!p->acked && (p->flags & SF_IN_FLIGHT))
			tern_cc_on_discarded(&c->cc, p->size);
	}
	sent_ring_free(&sp->sent);
	sp->eliciting_in_flight = 0;
	sp->loss_time = TIME_NONE;
	c->pto_count = 0;
	c->probes_pending[ep] = 0;
}

void recovery_init(struct tern_conn *c)
{
	tern_rtt_init(&c->rtt);
	int algo = c->cfg.cc_algo ? c->cfg.cc_algo : TERN_CC_CUBIC;
	tern_cc_init(&c->cc, (enum tern_cc_algo)algo, 1200);
	tern_pacer_init(&c->pacer, 1200);
	c->loss_timer = TIME_NONE;
	c->mtu = 1200;
	c->ecn_state = c->cfg.ecn ? ECN_TESTING : ECN_FAILED;
}

/* ---- ECN validation, RFC 9000 §13.4.2 ------------------------------------- */

void recovery_on_ecn(struct tern_conn *c, int ep, const struct tern_ack_frame *ack,
		     uint64_t newly_ect0, uint64_t largest_sent_time, uint64_t now)
{
	if (c->ecn_state == ECN_FAILED)
		return;
	uint64_t *prev = c->ecn_peer[ep];
	if (ack->ecn.ect0 == 0 && ack->ecn.ect1 == 0 && ack->ecn.ce == 0) {
		/* marked packets acknowledged without ECN counts: the path or
		 * the peer clears the marks */
		c->ecn_state = ECN_FAILED;
		return;
	}
	uint64_t d_ect0 = ack->ecn.ect0 >= prev[0] ? ack->ecn.ect0 - prev[0] : UINT64_MAX;
	uint64_t d_ce = ack->ecn.ce >= prev[2] ? ack->ecn.ce - prev[2] : UINT64_MAX;
	if (d_ect0 == UINT64_MAX || d_ce == UINT64_MAX || ack->ecn.ect1 < prev[1] ||
	    d_ect0 + d_ce < newly_ect0) {
		c->ecn_state = ECN_FAILED; /* counts went down or do not cover */
		return;
	}
	prev[0] = ack->ecn.ect0;
	prev[1] = ack->ecn.ect1;
	prev[2] = ack->ecn.ce;
	c->ecn_state = ECN_CAPABLE;
	if (d_ce) {
		c->stats.ecn_ce_seen += d_ce;
		tern_cc_on_ecn_ce(&c->cc, largest_sent_time, now);
	}
}
