/* One QUIC connection: creation, the receive path (packet protection,
 * frames), the TLS glue, timers and the public API. Sending is in send.c,
 * loss recovery in recovery.c, stream buffers in stream.c. */
#include <stdio.h>
#include <stdlib.h>

#include "conn/conn_int.h"
#include "tern/reset.h"

#define CRYPTO_RECV_BUF 65536
#define CRYPTO_SEND_MAX (256 * 1024)
#define DEFAULT_HANDSHAKE_TIMEOUT (10 * UINT64_C(1000000000))

static const int ep_level[EP_COUNT] = {TERN_TLS_LEVEL_INITIAL, TERN_TLS_LEVEL_HANDSHAKE,
				       TERN_TLS_LEVEL_APPLICATION};

static int level_ep(enum tern_tls_level l)
{
	switch (l) {
	case TERN_TLS_LEVEL_INITIAL: return EP_INITIAL;
	case TERN_TLS_LEVEL_HANDSHAKE: return EP_HANDSHAKE;
	case TERN_TLS_LEVEL_APPLICATION: return EP_APP;
	default: return -1;
	}
}

void tern_conn_config_init(struct tern_conn_config *cfg, int is_server)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->is_server = is_server;
	cfg->version = TERN_VERSION_1;
	cfg->scid_len = 8;
	cfg->max_datagram = 1200;
	cfg->stream_sndbuf = 1 << 20;
	struct tern_tparams *tp = &cfg->tparams;
	tern_tparams_init(tp);
	tp->present |= TERN_TP_HAS_MAX_IDLE_TIMEOUT | TERN_TP_HAS_INITIAL_MAX_DATA |
		       TERN_TP_HAS_INITIAL_MAX_STREAM_DATA_BIDI_LOCAL |
		       TERN_TP_HAS_INITIAL_MAX_STREAM_DATA_BIDI_REMOTE |
		       TERN_TP_HAS_INITIAL_MAX_STREAM_DATA_UNI | TERN_TP_HAS_INITIAL_MAX_STREAMS_BIDI |
		       TERN_TP_HAS_INITIAL_MAX_STREAMS_UNI | TERN_TP_HAS_ACTIVE_CONNECTION_ID_LIMIT |
		       TERN_TP_HAS_MAX_UDP_PAYLOAD_SIZE;
	tp->max_idle_timeout = 30000;
	tp->initial_max_data = 16 << 20;
	tp->initial_max_stream_data_bidi_local = 1 << 20;
	tp->initial_max_stream_data_bidi_remote = 1 << 20;
	tp->initial_max_stream_data_uni = 1 << 20;
	tp->initial_max_streams_bidi = 128;
	tp->initial_max_streams_uni = 16;
	tp->active_connection_id_limit = 4;
	tp->max_udp_payload_size = 1472;
}

/* ---- keys -------------------------------------------------------------------- */

void conn_discard_space(struct tern_conn *c, int ep)
{
	struct pn_space *sp = &c->sp[ep];
	if (sp->discarded)
		return;
	recovery_discard_space(c, ep);
	tern_crypto_keys_clear(&sp->rx);
	tern_crypto_keys_clear(&sp->tx);
	sendbuf_free(&sp->crypto_send);
	recvbuf_free(&sp->crypto_recv);
	sp->rx_ready = sp->tx_ready = 0;
	sp->discarded = 1;
	sp->ack_pending = 0;
}

static int install_initial_keys(struct tern_conn *c, const struct tern_cid *dcid)
{
	struct pn_space *sp = &c->sp[EP_INITIAL];
	struct tern_crypto_keys *client = c->is_server ? &sp->rx : &sp->tx;
	struct tern_crypto_keys *server = c->is_server ? &sp->tx : &sp->rx;
	int rv = tern_initial_keys_init(c->version, dcid->bytes, dcid->len, client, server);
	if (rv < 0)
		return rv;
	sp->rx_ready = sp->tx_ready = 1;
	return 0;
}

static int prepare_rx_next(struct tern_conn *c)
{
	uint8_t next[TERN_SECRET_MAX_LEN];
	memcpy(next, c->rx_secret, c->secret_len);
	int rv = tern_crypto_secret_update(c->version, tern_aead_suite_hash(c->suite), next, c->secret_len);
	if (rv == 0) {
		c->rx_next = c->sp[EP_APP].rx;
		rv = tern_crypto_keys_update(&c->rx_next, next, c->secret_len);
	}
	tern_crypto_wipe(next, sizeof(next));
	c->rx_next_ready = rv == 0;
	return rv;
}

static int tls_on_secret(void *user, enum tern_tls_level level, enum tern_tls_dir dir,
			 uint16_t suite, const uint8_t *secret, size_t len)
{
	struct tern_conn *c = user;
	int ep = level_ep(level);
	int s = tern_aead_suite_from_tls(suite);
	if (ep < 0 || s < 0 || len > TERN_SECRET_MAX_LEN)
		return ep < 0 ? 0 : TERN_ERR_CRYPTO; /* 0-RTT keys: not used */
	struct pn_space *sp = &c->sp[ep];
	struct tern_crypto_keys *k = dir == TERN_TLS_READ ? &sp->rx : &sp->tx;
	int rv = tern_crypto_keys_init(k, c->version, (enum tern_aead_suite)s, secret, len);
	if (rv < 0)
		return rv;
	if (dir == TERN_TLS_READ)
		sp->rx_ready = 1;
	else
		sp->tx_ready = 1;
	if (ep == EP_APP) {
		c->suite = (enum tern_aead_suite)s;
		c->secret_len = len;
		memcpy(dir == TERN_TLS_READ ? c->rx_secret : c->tx_secret, secret, len);
		if (dir == TERN_TLS_READ)
			prepare_rx_next(c);
	}
	return 0;
}

static int tls_on_crypto_data(void *user, enum tern_tls_level level, const uint8_t *data, size_t len)
{
	struct tern_conn *c = user;
	int ep = level_ep(level);
	if (ep < 0 || c->sp[ep].discarded)
		return 0;
	return sendbuf_write(&c->sp[ep].crypto_send, data, len) == len ? 0 : TERN_ERR_NOMEM;
}

static void tls_on_alert(void *user, enum tern_tls_level level, uint8_t alert)
{
	struct tern_conn *c = user;
	(void)level;
	if (c->state == TERN_CONN_HANDSHAKE || c->state == TERN_CONN_ESTABLISHED)
		conn_enter_closing(c, 0, TERN_QUIC_CRYPTO_ERROR(alert), TERN_FRAME_CRYPTO, "",
				   TERN_CLOSE_ERROR, c->now);
}

static const struct tern_tls_callbacks tls_cb = {
	.on_secret = tls_on_secret,
	.on_crypto_data = tls_on_crypto_data,
	.on_alert = tls_on_alert,
};

/* ---- creation ------------------------------------------------------------------ */

static void make_cid(struct tern_conn *c, struct tern_cid *cid, size_t len)
{
	if (c->cfg.gen_cid && len == c->cfg.scid_len) {
		c->cfg.gen_cid(c->cfg.gen_cid_ctx, cid);
		return;
	}
	cid->len = (uint8_t)len;
	tern_rand_fill(&c->cfg.rand, cid->bytes, len);
}

static void lcid_token(struct tern_conn *c, struct local_cid *l)
{
	if (c->cfg.reset_key)
		tern_reset_token(c->cfg.reset_key, l->cid.bytes, l->cid.len, l->token);
	else
		tern_rand_fill(&c->cfg.rand, l->token, 16);
}

static struct local_cid *lcid_add(struct tern_conn *c, const struct tern_cid *cid)
{
	if (c->n_lcid == LOCAL_CID_MAX)
		return NULL;
	struct local_cid *l = &c->lcid[c->n_lcid++];
	memset(l, 0, sizeof(*l));
	l->seq = c->next_lcid_seq++;
	if (cid)
		l->cid = *cid;
	else
		make_cid(c, &l->cid, c->cfg.scid_len);
	lcid_token(c, l);
	if (c->cb && c->cb->on_cid)
		c->cb->on_cid(c, c->user, &l->cid, 1);
	return l;
}

static struct tern_conn *conn_alloc(const struct tern_conn_config *cfg, const struct tern_path *path,
				    uint64_t now)
{
	if (!cfg->tls || !cfg->rand.fn || cfg->max_datagram < 1200 || cfg->scid_len > 20)
		return NULL;
	struct tern_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->cfg = *cfg;
	c->cb = cfg->cb;
	c->user = cfg->user;
	c->is_server = (uint8_t)cfg->is_server;
	c->version = cfg->version ? cfg->version : TERN_VERSION_1;
	c->path = *path;
	c->state = TERN_CONN_HANDSHAKE;
	c->now = now;
	c->created = now;
	for (int ep = 0; ep < EP_COUNT; ep++) {
		struct pn_space *sp = &c->sp[ep];
		sp->largest_recv = TERN_PN_NONE;
		sp->largest_acked = TERN_PN_NONE;
		sp->loss_time = TIME_NONE;
		sp->ack_deadline = TIME_NONE;
		if (sendbuf_init(&sp->crypto_send, 4096, CRYPTO_SEND_MAX) < 0) {
			free(c);
			return NULL;
		}
		recvbuf_init(&sp->crypto_recv, CRYPTO_RECV_BUF);
	}
	recovery_init(c);
	tern_tparams_init(&c->peer_tp);
	c->max_ack_delay_ns = (uint64_t)c->cfg.tparams.max_ack_delay * NS_PER_MS;
	const struct tern_tparams *tp = &c->cfg.tparams;
	c->max_data_recv = c->recv_window = tp->initial_max_data;
	c->max_bidi_local = c->sent_max_bidi = tp->initial_max_streams_bidi;
	c->max_uni_local = c->sent_max_uni = tp->initial_max_streams_uni;
	c->next_bidi = c->is_server ? 1 : 0;
	c->next_uni = c->is_server ? 3 : 2;
	c->idle_timeout_ns = tp->max_idle_timeout ? tp->max_idle_timeout * NS_PER_MS : UINT64_MAX / 2;
	c->idle_deadline = now + c->idle_timeout_ns;
	c->last_eliciting_send_idle = TIME_NONE;
	c->handshake_deadline = now + (cfg->handshake_timeout_ns ? cfg->handshake_timeout_ns
								 : DEFAULT_HANDSHAKE_TIMEOUT);
	c->close_deadline = TIME_NONE;
	return c;
}

static int start_tls(struct tern_conn *c)
{
	struct tern_tparams tp = c->cfg.tparams;
	tp.present |= TERN_TP_HAS_INITIAL_SCID;
	tp.initial_scid = c->lcid[0].cid;
	if (c->is_server) {
		tp.present |= TERN_TP_HAS_ORIGINAL_DCID | TERN_TP_HAS_STATELESS_RESET_TOKEN;
		tp.original_dcid = c->odcid;
		memcpy(tp.stateless_reset_token, c->lcid[0].token, 16);
		if (c->retry_scid.len) {
			tp.present |= TERN_TP_HAS_RETRY_SCID;
			tp.retry_scid = c->retry_scid;
		}
	}
	int n = tern_tparams_encode(c->local_tp_buf, sizeof(c->local_tp_buf), &tp, c->is_server);
	if (n < 0)
		return n;
	c->local_tp_len = (size_t)n;
	return tern_tls_new(&c->tls, c->cfg.tls, c->is_server, c->cfg.server_name, c->local_tp_buf,
			    c->local_tp_len, &tls_cb, c);
}

int tern_conn_new_client(struct tern_conn **out, const struct tern_conn_config *cfg,
			 const struct tern_path *path, uint64_t now)
{
	struct tern_conn *c = conn_alloc(cfg, path, now);
	if (!c)
		return TERN_ERR_INVAL;
	make_cid(c, &c->odcid, 8);
	c->dcid = c->odcid;
	c->address_validated = 1;
	if (cfg->token && cfg->token_len && cfg->token_len <= sizeof(c->token)) {
		memcpy(c->token, cfg->token, cfg->token_len);
		c->token_len = cfg->token_len;
	}
	int rv = lcid_add(c, NULL) ? 0 : TERN_ERR_NOMEM;
	if (rv == 0)
		rv = install_initial_keys(c, &c->odcid);
	if (rv == 0)
		rv = start_tls(c);
	if (rv == 0)
		rv = tern_tls_start(c->tls);
	if (rv < 0) {
		tern_conn_free(c);
		return rv;
	}
	recovery_set_timer(c, now);
	qlog_start(c);
	*out = c;
	return 0;
}

int tern_conn_new_server(struct tern_conn **out, const struct tern_conn_config *cfg,
			 const struct tern_path *path, const struct tern_pkt_hdr *hdr,
			 const struct tern_cid *scid, const struct tern_cid *odcid, uint64_t now)
{
	if (hdr->type != TERN_PKT_INITIAL || !tern_version_is_supported(hdr->version))
		return TERN_ERR_INVAL;
	struct tern_conn_config local = *cfg;
	local.version = hdr->version;
	struct tern_conn *c = conn_alloc(&local, path, now);
	if (!c)
		return TERN_ERR_INVAL;
	c->dcid = hdr->scid;
	if (odcid) {
		c->odcid = *odcid;
		c->retry_scid = hdr->dcid;
		c->address_validated = 1;
	} else {
		c->odcid = hdr->dcid;
	}
	c->initial_scid_expected = hdr->scid;
	int rv = lcid_add(c, scid) ? 0 : TERN_ERR_NOMEM;
	if (rv == 0)
		rv = install_initial_keys(c, &hdr->dcid);
	if (rv == 0)
		rv = start_tls(c);
	if (rv < 0) {
		tern_conn_free(c);
		return rv;
	}
	qlog_start(c);
	*out = c;
	return 0;
}

void tern_conn_free(struct tern_conn *c)
{
	if (!c)
		return;
	for (uint32_t i = 0; i < c->n_lcid; i++)
		if (!c->lcid[i].retired && c->cb && c->cb->on_cid)
			c->cb->on_cid(c, c->user, &c->lcid[i].cid, 0);
	for (int ep = 0; ep < EP_COUNT; ep++) {
		conn_discard_space(c, ep);
		sent_ring_free(&c->sp[ep].sent);
	}
	tern_crypto_keys_clear(&c->rx_next);
	tern_crypto_wipe(c->rx_secret, sizeof(c->rx_secret));
	tern_crypto_wipe(c->tx_secret, sizeof(c->tx_secret));
	streams_free(c);
	if (c->tls)
		tern_tls_free(c->tls);
	free(c);
}

/* ---- close states ------------------------------------------------------------------ */

static void notify_close(struct tern_conn *c)
{
	qlog_closed(c, c->now);
	if (c->cb && c->cb->on_close)
		c->cb->on_close(c, c->user, &c->close);
}

void conn_enter_closing(struct tern_conn *c, int app, uint64_t code, uint64_t frame_type,
			const char *reason, enum tern_close_reason why, uint64_t now)
{
	if (c->state >= TERN_CONN_CLOSING)
		return;
	c->state = TERN_CONN_CLOSING;
	c->close.reason = why;
	c->close.app = app;
	c->close.code = code;
	c->close.frame_type = frame_type;
	snprintf(c->close.reason_phrase, sizeof(c->close.reason_phrase), "%s", reason ? reason : "");
	c->close_pending = 1;
	c->close_rx_count = 0;
	c->close_next_reply = 1;
	/* RFC 9000 §10.2: closing lasts at least three times the PTO */
	c->close_deadline = now + 3 * recovery_pto(c);
	notify_close(c);
}

void conn_enter_draining(struct tern_conn *c, enum tern_close_reason why, uint64_t now)
{
	if (c->state == TERN_CONN_DRAINING || c->state == TERN_CONN_CLOSED)
		return;
	int was_closing = c->state == TERN_CONN_CLOSING;
	c->state = TERN_CONN_DRAINING;
	c->close_pending = 0;
	if (!was_closing) {
		c->close.reason = why;
		c->close_deadline = now + 3 * recovery_pto(c);
		notify_close(c);
	}
}

static void conn_end_silently(struct tern_conn *c, enum tern_close_reason why)
{
	if (c->state == TERN_CONN_CLOSED)
		return;
	int notify = c->state < TERN_CONN_CLOSING;
	c->state = TERN_CONN_CLOSED;
	if (notify) {
		c->close.reason = why;
		notify_close(c);
	}
}

/* ---- frames -------------------------------------------------------------------------- */

struct stream_deliver {
	struct tern_conn *c;
	struct stream *s;
	int app_err;
};

static int deliver_stream(void *arg, const uint8_t *data, size_t len, int fin)
{
	struct stream_deliver *d = arg;
	struct tern_conn *c = d->c;
	c->data_consumed += len;
	c->stats.stream_bytes_recv += len;
	if (c->cb && c->cb->on_stream_data) {
		int rv = c->cb->on_stream_data(c, c->user, d->s->id, data, len, fin);
		if (rv) {
			d->app_err = rv;
			return 1;
		}
	}
	return 0;
}

static void update_credit(struct tern_conn *c, struct stream *s)
{
	/* Give credit back once half a window was consumed (RFC 9000 §4.2). */
	if (s && !s->recv.fin_known && s->max_recv - s->recv.delivered < s->recv_window / 2) {
		s->max_recv = s->recv.delivered + s->recv_window;
		s->pending_max_stream_data = 1;
		stream_queue(c, s);
	}
	if (c->max_data_recv - c->data_consumed < c->recv_window / 2) {
		c->max_data_recv = c->data_consumed + c->recv_window;
		c->pending_max_data = 1;
	}
}

static int check_final_size(struct stream *s, uint64_t end, int fin)
{
	/* RFC 9000 §4.5 */
	if (s->recv.fin_known && (end > s->recv.final_size || (fin && end != s->recv.final_size)))
		return TERN_ERR_QUIC(TERN_QUIC_FINAL_SIZE_ERROR);
	if (fin && end < s->highest_recv)
		return TERN_ERR_QUIC(TERN_QUIC_FINAL_SIZE_ERROR);
	return 0;
}

static int recv_flow_account(struct tern_conn *c, struct stream *s, uint64_t end)
{
	if (end > s->max_recv)
		return TERN_ERR_QUIC(TERN_QUIC_FLOW_CONTROL_ERROR);
	if (end > s->highest_recv) {
		c->data_recv += end - s->highest_recv;
		s->highest_recv = end;
		if (c->data_recv > c->max_data_recv)
			return TERN_ERR_QUIC(TERN_QUIC_FLOW_CONTROL_ERROR);
	}
	return 0;
}

static int on_stream_frame(struct tern_conn *c, const struct tern_frame *f)
{
	uint64_t id = f->stream.stream_id;
	int local = (id & 1) == (uint64_t)c->is_server;
	if ((id & 2) && local)
		return TERN_ERR_QUIC(TERN_QUIC_STREAM_STATE_ERROR); /* our send-only stream */
	struct stream *s;
	int rv = stream_get_or_open_remote(c, id, &s);
	if (rv < 0 || !s)
		return rv;
	uint64_t end = f->stream.offset + f->stream.len;
	int fin = tern_frame_stream_fin(f);
	if ((rv = check_final_size(s, end, fin)) < 0 || (rv = recv_flow_account(c, s, end)) < 0)
		return rv;
	if (s->recv_closed && !s->bidi)
		return 0;
	struct stream_deliver d = {c, s, 0};
	rv = recvbuf_put(&s->recv, f->stream.offset, f->stream.data, (size_t)f->stream.len, fin,
			 deliver_stream, &d);
	if (d.app_err) {
		conn_enter_closing(c, 1, (uint64_t)d.app_err, 0, "", TERN_CLOSE_LOCAL, c->now);
		return 0;
	}
	if (rv < 0)
		return rv;
	update_credit(c, s);
	if ((s = stream_find(c, f->stream.stream_id)))
		stream_check_done(c, s);
	return 0;
}

static int deliver_crypto(void *arg, const uint8_t *data, size_t len, int fin)
{
	struct tern_conn *c = ((struct stream_deliver *)arg)->c;
	int ep = ((struct stream_deliver *)arg)->app_err;
	(void)fin;
	if (!c->tls)
		return 0; /* post-handshake messages after release: nothing to do */
	int rv = tern_tls_provide(c->tls, ep_level[ep], data, len);
	return rv < 0 ? rv : 0;
}

static void apply_peer_tparams(struct tern_conn *c)
{
	const struct tern_tparams *tp = &c->peer_tp;
	c->max_data_send = tp->initial_max_data;
	c->peer_max_bidi = tp->initial_max_streams_bidi;
	c->peer_max_uni = tp->initial_max_streams_uni;
	c->max_ack_delay_ns = tp->max_ack_delay * NS_PER_MS;
	/* RFC 9000 §10.1: the smaller non-zero advertised value wins */
	uint64_t peer = tp->max_idle_timeout * NS_PER_MS;
	if (peer && (c->cfg.tparams.max_idle_timeout == 0 || peer < c->idle_timeout_ns))
		c->idle_timeout_ns = peer;
	if (tp->present & TERN_TP_HAS_STATELESS_RESET_TOKEN) {
		c->pcid[0].has_token = 1;
		memcpy(c->pcid[0].token, tp->stateless_reset_token, 16);
	}
	for (size_t i = 0; i < c->n_streams; i++) {
		struct stream *s = c->streams[i];
		s->max_send = s->local ? ((s->id & 2) ? tp->initial_max_stream_data_uni
						      : tp->initial_max_stream_data_bidi_remote)
				       : tp->initial_max_stream_data_bidi_local;
	}
}

static int read_peer_tparams(struct tern_conn *c)
{
	const uint8_t *p;
	size_t len;
	if (c->peer_tp_ready || !c->tls || tern_tls_peer_tparams(c->tls, &p, &len) < 0 || !len)
		return 0;
	int rv = tern_tparams_decode(p, len, !c->is_server, &c->peer_tp);
	if (rv < 0)
		return rv;
	const struct tern_cid *retry = c->retry_received ? &c->retry_scid : NULL;
	rv = tern_tparams_validate_peer(&c->peer_tp, !c->is_server, &c->initial_scid_expected,
					c->is_server ? NULL : &c->odcid, c->is_server ? NULL : retry);
	if (rv < 0)
		return rv;
	c->peer_tp_ready = 1;
	apply_peer_tparams(c);
	return 0;
}

static void issue_cids(struct tern_conn *c)
{
	uint64_t limit = c->peer_tp.active_connection_id_limit;
	while (c->n_lcid < LOCAL_CID_MAX && c->n_lcid < limit) {
		struct local_cid *l = lcid_add(c, NULL);
		if (!l)
			break;
		l->pending_send = 1;
	}
}

static void on_handshake_complete(struct tern_conn *c)
{
	c->handshake_complete = 1;
	c->state = TERN_CONN_ESTABLISHED;
	if (c->is_server) {
		/* RFC 9001 §4.1.2: the server's handshake is confirmed now */
		c->handshake_confirmed = 1;
		c->pending_handshake_done = 1;
		conn_discard_space(c, EP_HANDSHAKE);
		tern_tls_release(c->tls);
	}
	issue_cids(c);
	if (c->cb && c->cb->on_established && c->is_server)
		c->cb->on_established(c, c->user);
}

static int on_crypto_frame(struct tern_conn *c, int ep, const struct tern_frame *f)
{
	struct pn_space *sp = &c->sp[ep];
	if (f->crypto.offset + f->crypto.len > sp->crypto_recv.delivered + CRYPTO_RECV_BUF)
		return TERN_ERR_QUIC(TERN_QUIC_CRYPTO_BUFFER_EXCEEDED);
	struct stream_deliver d = {c, NULL, ep};
	int rv = recvbuf_put(&sp->crypto_recv, f->crypto.offset, f->crypto.data, (size_t)f->crypto.len,
			     0, deliver_crypto, &d);
	if (rv < 0)
		return tern_err_is_quic(rv) ? rv : TERN_ERR_QUIC(TERN_QUIC_INTERNAL_ERROR);
	if ((rv = read_peer_tparams(c)) < 0)
		return rv;
	if (!c->handshake_complete && c->tls && tern_tls_is_complete(c->tls))
		on_handshake_complete(c);
	return 0;
}

static int on_new_cid(struct tern_conn *c, const struct tern_frame *f)
{
	if (c->dcid.len == 0)
		return TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION); /* §19.15 */
	for (uint32_t i = 0; i < c->n_pcid; i++)
		if (c->pcid[i].seq == f->new_cid.seq)
			return 0; /* duplicate */
	uint32_t active = 0;
	for (uint32_t i = 0; i < c->n_pcid; i++) {
		struct peer_cid *pc = &c->pcid[i];
		if (pc->seq < f->new_cid.retire_prior_to && !pc->used)
			pc->retire_pending = 1;
		if (!pc->retire_pending)
			active++;
	}
	if (active >= c->cfg.tparams.active_connection_id_limit || c->n_pcid == PEER_CID_MAX) {
		if (active >= c->cfg.tparams.active_connection_id_limit)
			return TERN_ERR_QUIC(TERN_QUIC_CONNECTION_ID_LIMIT_ERROR);
		return 0;
	}
	struct peer_cid *pc = &c->pcid[c->n_pcid++];
	memset(pc, 0, sizeof(*pc));
	pc->seq = f->new_cid.seq;
	pc->cid = f->new_cid.cid;
	memcpy(pc->token, f->new_cid.reset_token, 16);
	pc->has_token = 1;
	return 0;
}

static int on_retire_cid(struct tern_conn *c, const struct tern_frame *f)
{
	if (f->retire_cid.seq >= c->next_lcid_seq)
		return TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION); /* §19.16 */
	for (uint32_t i = 0; i < c->n_lcid; i++) {
		struct local_cid *l = &c->lcid[i];
		if (l->seq != f->retire_cid.seq || l->retired)
			continue;
		l->retired = 1;
		if (c->cb && c->cb->on_cid)
			c->cb->on_cid(c, c->user, &l->cid, 0);
	}
	return 0;
}

static int on_stream_ctl(struct tern_conn *c, const struct tern_frame *f)
{
	uint64_t id = f->type == TERN_FRAME_RESET_STREAM ? f->reset_stream.stream_id
			: f->type == TERN_FRAME_STOP_SENDING ? f->stop_sending.stream_id
							       : f->max_stream_data.stream_id;
	int local = (id & 1) == (uint64_t)c->is_server;
	int uni = (id & 2) != 0;
	/* RFC 9000 §19.4, §19.5, §19.10: the frame must suit the direction */
	if (uni && ((f->type == TERN_FRAME_RESET_STREAM && local) ||
		    (f->type != TERN_FRAME_RESET_STREAM && !local)))
		return TERN_ERR_QUIC(TERN_QUIC_STREAM_STATE_ERROR);
	struct stream *s;
	int rv = stream_get_or_open_remote(c, id, &s);
	if (rv < 0 || !s)
		return rv;
	if (f->type == TERN_FRAME_RESET_STREAM) {
		if ((rv = check_final_size(s, f->reset_stream.final_size, 1)) < 0 ||
		    (rv = recv_flow_account(c, s, f->reset_stream.final_size)) < 0)
			return rv;
		if (!s->recv_closed) {
			s->recv_closed = 1;
			s->recv.fin_known = 1;
			s->recv.final_size = f->reset_stream.final_size;
			if (c->cb && c->cb->on_stream_reset)
				c->cb->on_stream_reset(c, c->user, id, f->reset_stream.error_code);
			if ((s = stream_find(c, id)))
				stream_check_done(c, s);
		}
	} else if (f->type == TERN_FRAME_STOP_SENDING) {
		if (!s->send_closed) {
			s->send_closed = 1;
			s->pending_reset = 1;
			s->reset_code = f->stop_sending.error_code;
			stream_queue(c, s);
			if (c->cb && c->cb->on_stop_sending)
				c->cb->on_stop_sending(c, c->user, id, f->stop_sending.error_code);
		}
	} else if (f->max_stream_data.max > s->max_send) {
		s->max_send = f->max_stream_data.max;
		stream_queue(c, s);
	}
	return 0;
}

static int on_close_frame(struct tern_conn *c, const struct tern_frame *f)
{
	if (c->state >= TERN_CONN_CLOSING) {
		conn_enter_draining(c, TERN_CLOSE_PEER, c->now);
		return 0;
	}
	c->close.app = f->type == TERN_FRAME_CONNECTION_CLOSE_APP;
	c->close.code = f->close.error_code;
	c->close.frame_type = f->close.frame_type;
	size_t n = f->close.reason_len < sizeof(c->close.reason_phrase) - 1
			   ? (size_t)f->close.reason_len
			   : sizeof(c->close.reason_phrase) - 1;
	memcpy(c->close.reason_phrase, f->close.reason, n);
	c->close.reason_phrase[n] = 0;
	conn_enter_draining(c, TERN_CLOSE_PEER, c->now);
	return 0;
}

static int on_frame(struct tern_conn *c, int ep, const struct tern_frame *f)
{
	switch (f->type) {
	case TERN_FRAME_PADDING:
	case TERN_FRAME_PING:
		return 0;
	case TERN_FRAME_ACK:
	case TERN_FRAME_ACK_ECN:
		return recovery_on_ack(c, ep, &f->ack, c->now);
	case TERN_FRAME_CRYPTO:
		return on_crypto_frame(c, ep, f);
	case TERN_FRAME_NEW_TOKEN:
		if (c->is_server)
			return TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION);
		/* kept for the next connection to this server (RFC 9000 §8.1.3):
		 * the program reads it with tern_conn_new_token() */
		if (f->new_token.len <= sizeof(c->next_token)) {
			memcpy(c->next_token, f->new_token.token, (size_t)f->new_token.len);
			c->next_token_len = (size_t)f->new_token.len;
			c->stats.new_tokens_received++;
		}
		return 0;
	case TERN_FRAME_RESET_STREAM:
	case TERN_FRAME_STOP_SENDING:
	case TERN_FRAME_MAX_STREAM_DATA:
		return on_stream_ctl(c, f);
	case TERN_FRAME_MAX_DATA:
		if (f->max_data.max > c->max_data_send)
			c->max_data_send = f->max_data.max;
		return 0;
	case TERN_FRAME_MAX_STREAMS_BIDI:
		if (f->max_streams.max > c->peer_max_bidi)
			c->peer_max_bidi = f->max_streams.max;
		return 0;
	case TERN_FRAME_MAX_STREAMS_UNI:
		if (f->max_streams.max > c->peer_max_uni)
			c->peer_max_uni = f->max_streams.max;
		return 0;
	case TERN_FRAME_DATA_BLOCKED:
	case TERN_FRAME_STREAM_DATA_BLOCKED:
	case TERN_FRAME_STREAMS_BLOCKED_BIDI:
	case TERN_FRAME_STREAMS_BLOCKED_UNI:
	case TERN_FRAME_PATH_RESPONSE:
		return 0;
	case TERN_FRAME_NEW_CONNECTION_ID:
		return on_new_cid(c, f);
	case TERN_FRAME_RETIRE_CONNECTION_ID:
		return on_retire_cid(c, f);
	case TERN_FRAME_PATH_CHALLENGE:
		memcpy(c->path_response_data, f->path.data, 8);
		c->path_response_pending = 1;
		return 0;
	case TERN_FRAME_CONNECTION_CLOSE:
	case TERN_FRAME_CONNECTION_CLOSE_APP:
		return on_close_frame(c, f);
	case TERN_FRAME_HANDSHAKE_DONE:
		if (c->is_server)
			return TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION); /* §19.20 */
		if (!c->handshake_confirmed) {
			c->handshake_confirmed = 1;
			conn_discard_space(c, EP_HANDSHAKE);
			tern_tls_release(c->tls);
			if (c->cb && c->cb->on_established)
				c->cb->on_established(c, c->user);
		}
		return 0;
	case TERN_FRAME_DATAGRAM:
	case TERN_FRAME_DATAGRAM_LEN:
		/* we never advertise max_datagram_frame_size: RFC 9221 §3 */
		return TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION);
	default:
		if (tern_frame_is_stream(f->type))
			return on_stream_frame(c, f);
		return TERN_ERR_QUIC(TERN_QUIC_FRAME_ENCODING_ERROR);
	}
}

/* Returns 1 when the packet carried an ack-eliciting frame. */
static int process_frames(struct tern_conn *c, int ep, enum tern_pkt_type pt, const uint8_t *p,
			  const uint8_t *end, uint64_t *bad_type)
{
	int eliciting = 0;
	while (p < end) {
		struct tern_frame f;
		const uint8_t *start = p;
		int rv = tern_frame_decode(&p, end, &f);
		if (rv == 0)
			rv = tern_frame_allowed(f.type, pt);
		if (rv == 0 && c->state < TERN_CONN_CLOSING)
			rv = on_frame(c, ep, &f);
		if (rv < 0) {
			*bad_type = start < end ? *start : 0;
			return rv;
		}
		eliciting |= tern_frame_is_ack_eliciting(f.type);
	}
	return eliciting;
}

/* ---- receive path ----------------------------------------------------------------------- */

static int type_ep(enum tern_pkt_type t)
{
	return t == TERN_PKT_INITIAL ? EP_INITIAL : t == TERN_PKT_HANDSHAKE ? EP_HANDSHAKE
		: t == TERN_PKT_1RTT ? EP_APP : -1;
}

static void schedule_ack(struct tern_conn *c, int ep, int eliciting, uint64_t now)
{
	struct pn_space *sp = &c->sp[ep];
	sp->ack_pending = 1;
	if (!eliciting)
		return;
	sp->unacked_eliciting++;
	/* RFC 9000 §13.2.1: Initial and Handshake at once; 1-RTT every second
	 * ack-eliciting packet, else within max_ack_delay */
	if (ep != EP_APP || sp->unacked_eliciting >= 2)
		sp->ack_now = 1;
	if (sp->ack_deadline == TIME_NONE)
		sp->ack_deadline = ep == EP_APP ? now + (uint64_t)c->cfg.tparams.max_ack_delay * NS_PER_MS : now;
	if (sp->ack_now)
		sp->ack_deadline = now;
}

/* 1-RTT keys for a received key phase; rotates on a new phase, RFC 9001 §6. */
static struct tern_crypto_keys *app_rx_keys(struct tern_conn *c, int phase, int *is_next)
{
	*is_next = phase != c->rx_key_phase;
	if (!*is_next)
		return &c->sp[EP_APP].rx;
	return c->rx_next_ready ? &c->rx_next : NULL;
}

static void rotate_keys(struct tern_conn *c, uint64_t pn)
{
	enum tern_hash h = tern_aead_suite_hash(c->suite);
	c->sp[EP_APP].rx = c->rx_next;
	tern_crypto_secret_update(c->version, h, c->rx_secret, c->secret_len);
	c->rx_key_phase ^= 1;
	if (c->key_phase != c->rx_key_phase) {
		/* the peer started it: answer with our own new keys */
		tern_crypto_secret_update(c->version, h, c->tx_secret, c->secret_len);
		tern_crypto_keys_update(&c->sp[EP_APP].tx, c->tx_secret, c->secret_len);
		c->key_phase = c->rx_key_phase;
		c->key_phase_start_pn = c->sp[EP_APP].next_pn;
		c->stats.key_updates++;
		qlog_key_update(c, 0, c->now);
	}
	(void)pn;
	prepare_rx_next(c);
}

static int unprotect(struct tern_conn *c, int ep, uint8_t *pkt, const struct tern_pkt_hdr *h,
		     uint64_t *pn_out, size_t *hdr_len)
{
	struct pn_space *sp = &c->sp[ep];
	size_t pn_len;
	/* header protection uses the same key in every key phase */
	int rv = tern_hp_unprotect(&sp->rx, pkt, h->pkt_len, h->pn_offset, &pn_len);
	if (rv < 0)
		return rv;
	uint64_t pn = tern_pn_decode(sp->largest_recv, tern_pn_read(pkt + h->pn_offset, pn_len),
				     (unsigned)pn_len * 8);
	size_t hl = h->pn_offset + pn_len;
	if (h->pkt_len < hl + TERN_AEAD_TAG_LEN)
		return TERN_ERR_MALFORMED;
	struct tern_crypto_keys *k = &sp->rx;
	int is_next = 0;
	if (ep == EP_APP && !(k = app_rx_keys(c, tern_pkt_key_phase(pkt[0]), &is_next)))
		return TERN_ERR_DECRYPT;
	size_t plen = h->pkt_len - hl - TERN_AEAD_TAG_LEN;
	rv = tern_aead_open(k, pn, pkt, hl, pkt + hl, plen, pkt + hl + plen);
	if (rv < 0)
		return rv;
	if (is_next)
		rotate_keys(c, pn);
	*pn_out = pn;
	*hdr_len = hl;
	return 0;
}

static void on_first_server_packet(struct tern_conn *c, const struct tern_pkt_hdr *h)
{
	/* RFC 9000 §7.2: the client switches to the server's chosen CID */
	if (!c->is_server && !c->initial_dcid_updated && h->type == TERN_PKT_INITIAL) {
		c->dcid = h->scid;
		c->initial_scid_expected = h->scid;
		c->pcid[0].cid = h->scid;
		c->pcid[0].seq = 0;
		c->pcid[0].used = 1;
		c->n_pcid = 1;
		c->initial_dcid_updated = 1;
	}
}

static int handle_retry(struct tern_conn *c, const uint8_t *pkt, const struct tern_pkt_hdr *h)
{
	/* RFC 9000 §17.2.5.2: one Retry, before any other server packet */
	if (c->is_server || c->retry_received || c->initial_dcid_updated ||
	    h->token_len > sizeof(c->token))
		return 0;
	if (tern_retry_tag_verify(c->version, c->odcid.bytes, c->odcid.len, pkt, h->pkt_len) != 0)
		return 0;
	c->retry_received = 1;
	c->retry_scid = h->scid;
	c->dcid = h->scid;
	memcpy(c->token, h->token, h->token_len);
	c->token_len = h->token_len;
	install_initial_keys(c, &h->scid);
	/* everything sent in Initials goes again with the new keys */
	struct pn_space *sp = &c->sp[EP_INITIAL];
	for (size_t i = 0; i < sp->sent.len; i++)
		recovery_requeue(c, EP_INITIAL, &sp->sent.p[(sp->sent.head + i) & (sp->sent.cap - 1)]);
	recovery_discard_space(c, EP_INITIAL);
	return 0;
}

static int process_packet(struct tern_conn *c, uint8_t *pkt, const struct tern_pkt_hdr *h, uint64_t now)
{
	int ep = type_ep(h->type);
	if (ep < 0 || !c->sp[ep].rx_ready || c->sp[ep].discarded)
		return TERN_ERR_MALFORMED;
	/* RFC 9001 §5.7: a server reads no 1-RTT packet before its handshake
	 * is complete (the client is not authenticated yet); the client sends
	 * them again */
	if (ep == EP_APP && c->is_server && !c->handshake_complete)
		return TERN_ERR_MALFORMED;
	if (h->type != TERN_PKT_1RTT && h->version != c->version)
		return TERN_ERR_MALFORMED;
	uint64_t pn;
	size_t hl;
	int rv = unprotect(c, ep, pkt, h, &pn, &hl);
	if (rv < 0)
		return rv;
	struct pn_space *sp = &c->sp[ep];
	if (rset_contains(&sp->recv, pn))
		return 0; /* duplicate */
	if ((rv = tern_pkt_check_reserved(pkt[0])) < 0)
		return rv;
	on_first_server_packet(c, h);
	if (c->state >= TERN_CONN_CLOSING) {
		/* closing: answer with the close again, fewer replies as more
		 * packets arrive (RFC 9000 §10.2.1) */
		if (c->state == TERN_CONN_CLOSING && ++c->close_rx_count >= c->close_next_reply) {
			c->close_pending = 1;
			c->close_next_reply *= 2;
		}
		uint64_t ft = 0;
		const uint8_t *p = pkt + hl, *end = pkt + h->pkt_len - TERN_AEAD_TAG_LEN;
		while (p < end) { /* a CONNECTION_CLOSE from the peer ends closing */
			struct tern_frame f;
			if (tern_frame_decode(&p, end, &f) < 0)
				break;
			if (f.type == TERN_FRAME_CONNECTION_CLOSE || f.type == TERN_FRAME_CONNECTION_CLOSE_APP)
				conn_enter_draining(c, TERN_CLOSE_PEER, now);
		}
		(void)ft;
		return 0;
	}
	uint64_t bad_type = 0;
	int eliciting = process_frames(c, ep, h->type, pkt + hl, pkt + h->pkt_len - TERN_AEAD_TAG_LEN,
				       &bad_type);
	if (eliciting < 0) {
		if (!tern_err_is_quic(eliciting))
			return 0; /* dropped without acknowledging: resent later */
		conn_enter_closing(c, 0, tern_err_quic_code(eliciting), bad_type, "", TERN_CLOSE_ERROR, now);
		c->close_err = eliciting;
		return eliciting;
	}
	qlog_payload(c, 0, ep, pn, h->pkt_len, pkt + hl, h->pkt_len - hl - TERN_AEAD_TAG_LEN, now);
	rset_add(&sp->recv, pn, pn + 1);
	if (sp->largest_recv == TERN_PN_NONE || pn > sp->largest_recv) {
		sp->largest_recv = pn;
		sp->largest_recv_time = now;
	}
	schedule_ack(c, ep, eliciting, now);
	if (c->rx_ecn) {
		/* RFC 9000 §13.4.1: count the marks per packet number space;
		 * codepoints 2 = ECT(0), 1 = ECT(1), 3 = CE */
		static const int idx[4] = {0, 1, 0, 2};
		c->ecn_recv[ep][idx[c->rx_ecn]]++;
		c->ecn_seen[ep] = 1;
		if (c->rx_ecn == 3)
			sp->ack_now = 1; /* §13.2.1: CE is acknowledged at once */
	}
	c->stats.pkts_recv++;
	c->idle_deadline = now + c->idle_timeout_ns;
	c->last_eliciting_send_idle = TIME_NONE;
	if (c->is_server && ep == EP_HANDSHAKE) {
		/* RFC 9000 §8.1: a Handshake packet validates the address;
		 * RFC 9001 §4.9.1: the server drops Initial keys now */
		c->address_validated = 1;
		conn_discard_space(c, EP_INITIAL);
	}
	return 0;
}

static int check_stateless_reset(struct tern_conn *c, const uint8_t *dgram, size_t len, uint64_t now)
{
	uint8_t tokens[PEER_CID_MAX][16];
	size_t n = 0;
	/* RFC 9000 §10.3.1: only tokens of CIDs we have sent to count */
	for (uint32_t i = 0; i < c->n_pcid; i++)
		if (c->pcid[i].has_token && c->pcid[i].used)
			memcpy(tokens[n++], c->pcid[i].token, 16);
	if (!n || tern_reset_detect(dgram, len, (const uint8_t(*)[16])tokens, n) < 0)
		return 0;
	/* RFC 9000 §10.3.1: a valid reset ends the connection: drain */
	conn_enter_draining(c, TERN_CLOSE_STATELESS_RESET, now);
	return 1;
}

int tern_conn_recv(struct tern_conn *c, uint8_t *dgram, size_t len, const struct tern_path *path,
		   uint64_t now)
{
	return tern_conn_recv_ecn(c, dgram, len, path, 0, now);
}

int tern_conn_recv_ecn(struct tern_conn *c, uint8_t *dgram, size_t len, const struct tern_path *path,
		       uint8_t ecn, uint64_t now)
{
	(void)path;
	c->rx_ecn = ecn & 3;
	c->now = now;
	if (c->state == TERN_CONN_DRAINING || c->state == TERN_CONN_CLOSED)
		return 0;
	c->stats.bytes_recv += len;
	if (c->is_server && !c->address_validated)
		c->amp_recv += len;
	size_t off = 0;
	int any_ok = 0, failed_short = 0;
	while (off < len) {
		struct tern_pkt_hdr h;
		int n = tern_pkt_parse(dgram + off, len - off, c->lcid[0].cid.len, &h);
		if (n <= 0)
			break;
		int rv;
		if (h.type == TERN_PKT_RETRY)
			rv = handle_retry(c, dgram + off, &h);
		else if (h.type == TERN_PKT_VN)
			rv = 0; /* we offer only what we support: ignore (RFC 9000 §6.2) */
		else
			rv = process_packet(c, dgram + off, &h, now);
		if (rv == 0)
			any_ok = 1;
		else if (c->close_err)
			return c->close_err;
		else {
			c->stats.pkts_dropped++;
			failed_short |= h.type == TERN_PKT_1RTT;
		}
		off += (size_t)n;
	}
	if (!any_ok && len >= 21)
		check_stateless_reset(c, dgram, len, now);
	/* more budget under the 3x limit may re-arm a PTO the limit held */
	if (c->is_server && !c->address_validated)
		recovery_set_timer(c, now);
	(void)failed_short;
	return 0;
}

/* ---- timers and sending --------------------------------------------------------------- */

int tern_conn_send(struct tern_conn *c, uint8_t *buf, size_t cap, uint64_t now)
{
	return conn_send_datagram(c, buf, cap, now);
}

/* RFC 9000 §10.1: the idle timeout is never shorter than three PTOs, so a
 * small advertised value cannot end a connection before loss recovery had
 * its chance. */
static uint64_t idle_expiry(const struct tern_conn *c)
{
	uint64_t min_idle = 3 * recovery_pto(c);
	if (c->idle_timeout_ns < min_idle)
		return c->idle_deadline + (min_idle - c->idle_timeout_ns);
	return c->idle_deadline;
}

static uint64_t keepalive_at(const struct tern_conn *c)
{
	if (!c->cfg.keepalive || c->state != TERN_CONN_ESTABLISHED || c->idle_timeout_ns >= UINT64_MAX / 4)
		return TIME_NONE;
	uint64_t last = c->last_eliciting_sent > c->sp[EP_APP].largest_recv_time ? c->last_eliciting_sent
										 : c->sp[EP_APP].largest_recv_time;
	return last + c->idle_timeout_ns / 2;
}

int tern_conn_send_ecn(const struct tern_conn *c)
{
	return c->tx_ecn;
}

uint64_t tern_conn_next_timeout(const struct tern_conn *c)
{
	if (c->state == TERN_CONN_CLOSED)
		return TIME_NONE;
	if (c->state >= TERN_CONN_CLOSING)
		return c->close_deadline;
	uint64_t t = idle_expiry(c);
	if (c->loss_timer < t)
		t = c->loss_timer;
	if (!c->handshake_complete && c->handshake_deadline < t)
		t = c->handshake_deadline;
	const struct pn_space *sp = &c->sp[EP_APP];
	if (sp->ack_pending && sp->ack_deadline < t)
		t = sp->ack_deadline;
	if (c->pace_until > c->now && c->pace_until < t)
		t = c->pace_until;
	uint64_t ka = keepalive_at(c);
	if (ka < t && !c->probes_pending[EP_APP])
		t = ka;
	return t;
}

void tern_conn_handle_timeout(struct tern_conn *c, uint64_t now)
{
	c->now = now;
	if (c->state >= TERN_CONN_CLOSING) {
		if (now >= c->close_deadline)
			conn_end_silently(c, c->close.reason);
		return;
	}
	/* RFC 9000 §10.1: the idle timeout discards the connection silently */
	if (now >= idle_expiry(c)) {
		conn_end_silently(c, TERN_CLOSE_IDLE_TIMEOUT);
		return;
	}
	if (!c->handshake_complete && now >= c->handshake_deadline) {
		conn_end_silently(c, TERN_CLOSE_HANDSHAKE_TIMEOUT);
		return;
	}
	struct pn_space *sp = &c->sp[EP_APP];
	if (sp->ack_pending && sp->ack_deadline <= now)
		sp->ack_now = 1;
	if (c->loss_timer <= now)
		recovery_on_timeout(c, now);
	if (keepalive_at(c) <= now && !c->probes_pending[EP_APP])
		c->probes_pending[EP_APP] = 1; /* a PING */
}

/* ---- the public API ------------------------------------------------------------------ */

enum tern_conn_state tern_conn_state(const struct tern_conn *c)
{
	return c->state;
}

const struct tern_close_info *tern_conn_close_info(const struct tern_conn *c)
{
	return &c->close;
}

const struct tern_path *tern_conn_path(const struct tern_conn *c)
{
	return &c->path;
}

const struct tern_cid *tern_conn_odcid(const struct tern_conn *c)
{
	return &c->odcid;
}

int tern_conn_is_server(const struct tern_conn *c)
{
	return c->is_server;
}

void *tern_conn_user(const struct tern_conn *c)
{
	return c->user;
}

void tern_conn_set_user(struct tern_conn *c, void *user)
{
	c->user = user;
}

int tern_conn_alpn(const struct tern_conn *c, const uint8_t **alpn, size_t *len)
{
	if (!c->tls)
		return TERN_ERR_STATE;
	return tern_tls_alpn(c->tls, alpn, len);
}

int tern_conn_stream_open(struct tern_conn *c, int bidi, uint64_t *stream_id)
{
	if (c->state != TERN_CONN_ESTABLISHED)
		return TERN_ERR_STATE;
	uint64_t *next = bidi ? &c->next_bidi : &c->next_uni;
	uint64_t max = bidi ? c->peer_max_bidi : c->peer_max_uni;
	if ((*next >> 2) >= max)
		return TERN_ERR_LIMIT;
	struct stream *s = stream_new(c, *next);
	if (!s)
		return TERN_ERR_NOMEM;
	*stream_id = *next;
	*next += 4;
	return 0;
}

int tern_conn_stream_write(struct tern_conn *c, uint64_t stream_id, const uint8_t *data, size_t len,
			   int fin)
{
	struct stream *s = stream_find(c, stream_id);
	if (!s || s->send_closed || !s->send.buf || s->send.fin_written)
		return TERN_ERR_STATE;
	if (c->state >= TERN_CONN_CLOSING)
		return TERN_ERR_STATE;
	size_t n = len ? sendbuf_write(&s->send, data, len) : 0;
	if (n == len && fin)
		s->send.fin_written = 1;
	if (n || (fin && n == len))
		stream_queue(c, s);
	return (int)n;
}

size_t tern_conn_stream_room(const struct tern_conn *c, uint64_t stream_id)
{
	struct stream *s = stream_find((struct tern_conn *)c, stream_id);
	if (!s || s->send_closed || !s->send.buf)
		return 0;
	return sendbuf_room(&s->send);
}

int tern_conn_stream_reset(struct tern_conn *c, uint64_t stream_id, uint64_t error_code)
{
	struct stream *s = stream_find(c, stream_id);
	if (!s || !s->send.buf)
		return TERN_ERR_STATE;
	if (s->send.fin_acked)
		return 0;
	s->send_closed = 1;
	s->pending_reset = 1;
	s->reset_code = error_code;
	stream_queue(c, s);
	return 0;
}

int tern_conn_stream_stop(struct tern_conn *c, uint64_t stream_id, uint64_t error_code)
{
	struct stream *s = stream_find(c, stream_id);
	if (!s || (!s->bidi && s->local))
		return TERN_ERR_STATE;
	s->recv_closed = 1;
	s->pending_stop = 1;
	s->stop_code = error_code;
	stream_queue(c, s);
	return 0;
}

int tern_conn_close(struct tern_conn *c, int app, uint64_t code, const char *reason, uint64_t now)
{
	c->now = now;
	if (c->state >= TERN_CONN_CLOSING)
		return 0;
	conn_enter_closing(c, app, code, 0, reason, TERN_CLOSE_LOCAL, now);
	conn_wake(c);
	return 0;
}

int tern_conn_send_new_token(struct tern_conn *c, const uint8_t *token, size_t len)
{
	if (!c->is_server || !len || len > sizeof(c->new_token))
		return TERN_ERR_INVAL;
	memcpy(c->new_token, token, len);
	c->new_token_len = (uint8_t)len;
	c->new_token_pending = 1;
	conn_wake(c);
	return 0;
}

int tern_conn_new_token(const struct tern_conn *c, const uint8_t **token, size_t *len)
{
	*token = c->next_token;
	*len = c->next_token_len;
	return 0;
}

void tern_conn_set_address_validated(struct tern_conn *c)
{
	c->address_validated = 1;
	conn_wake(c); /* the amplification limit no longer holds it back */
}

int tern_conn_key_update(struct tern_conn *c)
{
	/* RFC 9001 §6.1: only once confirmed, and not again before a packet
	 * of the current phase is acknowledged */
	if (!c->handshake_confirmed || c->update_pending_ack || !c->secret_len ||
	    c->key_phase != c->rx_key_phase)
		return TERN_ERR_STATE;
	tern_crypto_secret_update(c->version, tern_aead_suite_hash(c->suite), c->tx_secret, c->secret_len);
	int rv = tern_crypto_keys_update(&c->sp[EP_APP].tx, c->tx_secret, c->secret_len);
	if (rv < 0)
		return rv;
	c->key_phase ^= 1;
	c->key_phase_start_pn = c->sp[EP_APP].next_pn;
	c->update_pending_ack = 1;
	c->stats.key_updates++;
	conn_wake(c);
	qlog_key_update(c, 1, c->now);
	return 0;
}

void tern_conn_stats(const struct tern_conn *c, struct tern_conn_stats *st)
{
	*st = c->stats;
	st->srtt_ns = c->rtt.smoothed_rtt;
	st->min_rtt_ns = c->rtt.min_rtt;
	st->cwnd = tern_cc_cwnd(&c->cc);
	st->mtu = c->mtu;
	st->streams_open = c->n_streams;
	st->ecn_state = c->ecn_state;
}
