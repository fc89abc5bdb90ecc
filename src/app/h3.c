/* tern: the application handle and HTTP/3 over libnghttp3 (RFC 9114).
 *
 * nghttp3 does all HTTP/3 framing and QPACK; this file only moves bytes
 * between it and the abstract stream transport, answers requests (server)
 * and reports responses (client). The perf protocol lives in perf.c and
 * shares the handle, the stream table and the close logic defined here. */
#define TERN_APP_INTERNAL
#include "tern/app.h"

#include <stdio.h>

/* ---- generated bodies --------------------------------------------------- */

/* A 64-byte period makes a misplaced or repeated chunk visible to a checker,
 * and a constant table lets nghttp3 send generated bodies zero-copy. */
#define FILL_P64 "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
#define FILL_P256 FILL_P64 FILL_P64 FILL_P64 FILL_P64
#define FILL_P1K FILL_P256 FILL_P256 FILL_P256 FILL_P256
#define FILL_P4K FILL_P1K FILL_P1K FILL_P1K FILL_P1K
#define FILL_P16K FILL_P4K FILL_P4K FILL_P4K FILL_P4K
static const char fill_table[] = FILL_P16K;
#define FILL_SIZE (sizeof(fill_table) - 1)

const uint8_t *tern_app_fill(uint64_t off, size_t *len)
{
	size_t o = (size_t)(off % 64);
	*len = FILL_SIZE - o;
	return (const uint8_t *)fill_table + o;
}

const char *tern_app_alpn(enum tern_app_kind kind)
{
	return (kind == TERN_APP_PERF_SERVER || kind == TERN_APP_PERF_CLIENT) ? "perf" : "h3";
}

static int app_is_h3(const struct tern_app *app)
{
	return app->kind == TERN_APP_H3_SERVER || app->kind == TERN_APP_H3_CLIENT;
}

/* ---- stream table: chained hash on the stream id ------------------------ */

#define TABLE_MIN 16

static size_t stream_bucket(size_t nbuckets, uint64_t id)
{
	return (size_t)((id * UINT64_C(0x9e3779b97f4a7c15)) >> 32) & (nbuckets - 1);
}

struct tern_app_stream *tern_app_stream_find(struct tern_app *app, uint64_t id)
{
	struct tern_app_stream *s = app->buckets[stream_bucket(app->nbuckets, id)];
	while (s && s->id != id)
		s = s->next;
	return s;
}

static void table_grow(struct tern_app *app)
{
	size_t n = app->nbuckets * 2;
	struct tern_app_stream **b = app->mem->calloc(n, sizeof(*b), app->mem->user_data);
	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < app->nbuckets; i++) {
		struct tern_app_stream *s = app->buckets[i], *next;
		for (; s; s = next) {
			next = s->next;
			size_t k = stream_bucket(n, s->id);
			s->next = b[k];
			b[k] = s;
		}
	}
	app->mem->free(app->buckets, app->mem->user_data);
	app->buckets = b;
	app->nbuckets = n;
}

int tern_app_open_request(struct tern_app *app, uint64_t reset_code, uint64_t *id,
			  struct tern_app_stream **out)
{
	int rv = app->ops->stream_open(app->t, 1, id);
	if (rv < 0)
		return rv;
	*out = tern_app_stream_add(app, *id);
	if (!*out) {
		app->ops->stream_reset(app->t, *id, reset_code);
		return TERN_ERR_NOMEM;
	}
	return 0;
}

struct tern_app_stream *tern_app_stream_add(struct tern_app *app, uint64_t id)
{
	struct tern_app_stream *s = app->mem->calloc(1, sizeof(*s), app->mem->user_data);
	if (!s)
		return NULL;
	s->id = id;
	s->content_length = -1;
	if (app->nstreams >= app->nbuckets)
		table_grow(app);
	size_t k = stream_bucket(app->nbuckets, id);
	s->next = app->buckets[k];
	app->buckets[k] = s;
	app->nstreams++;
	return s;
}

/* Reports an unfinished client request as failed, once. */
static void stream_report_failed(struct tern_app *app, struct tern_app_stream *s)
{
	if (s->reported)
		return;
	s->reported = 1;
	if (app->kind == TERN_APP_H3_CLIENT && app->cb.on_response_done)
		app->cb.on_response_done(app->user, s->id, 0);
	else if (app->kind == TERN_APP_PERF_CLIENT && app->cb.on_perf_done)
		app->cb.on_perf_done(app->user, s->id, s->recvd, s->sent > TERN_PERF_HEADER_SIZE ?
				     s->sent - TERN_PERF_HEADER_SIZE : 0, 0);
}

void tern_app_stream_remove(struct tern_app *app, struct tern_app_stream *s)
{
	struct tern_app_stream **pp = &app->buckets[stream_bucket(app->nbuckets, s->id)];
	while (*pp && *pp != s)
		pp = &(*pp)->next;
	if (*pp)
		*pp = s->next;
	if (s->queued) {
		for (pp = &app->dirty; *pp && *pp != s; pp = &(*pp)->dirty_next)
			;
		if (*pp)
			*pp = s->dirty_next;
	}
	app->nstreams--;
	stream_report_failed(app, s);
	if (s->looked_up && app->cb.release)
		app->cb.release(app->user, s->body, (size_t)s->body_len);
	app->mem->free(s, app->mem->user_data);
}

/* Inside nghttp3 callbacks a stream may not be closed, so state changes
 * queue the stream and app_settle() finishes it afterwards. */
static void stream_mark(struct tern_app *app, struct tern_app_stream *s)
{
	if (s->queued)
		return;
	s->queued = 1;
	s->dirty_next = app->dirty;
	app->dirty = s;
}

/* ---- close ---------------------------------------------------------------- */

void tern_app_close(struct tern_app *app, uint64_t code, const char *reason)
{
	if (app->closed)
		return;
	app->closed = 1;
	app->close_code = code;
	app->ops->close(app->t, code, reason);
}

/* RFC 9114 §5.2: once the requests accepted before GOAWAY are done, the
 * connection may close; H3_NO_ERROR says it was graceful. */
void tern_app_maybe_finish(struct tern_app *app)
{
	if (app->shutting_down && !app->closed && app->nstreams == 0)
		tern_app_close(app, app_is_h3(app) ? TERN_H3_NO_ERROR : TERN_PERF_NO_ERROR,
			       "shutdown");
}

/* A fatal nghttp3 error: the peer hears the H3 code nghttp3 chose (RFC 9114
 * §8: connection errors close with their code). */
static int h3_fail(struct tern_app *app, int liberr)
{
	tern_app_close(app, nghttp3_err_infer_quic_app_error_code(liberr),
		       nghttp3_strerror(liberr));
	if (liberr == NGHTTP3_ERR_NOMEM)
		return TERN_ERR_NOMEM;
	if (liberr == NGHTTP3_ERR_CALLBACK_FAILURE)
		return TERN_ERR_STATE;
	return TERN_ERR_MALFORMED;
}

static int app_settle(struct tern_app *app)
{
	struct tern_app_stream *s;
	int err = 0;
	while ((s = app->dirty) != NULL) {
		app->dirty = s->dirty_next;
		s->queued = 0;
		if (!s->rx_done || !s->tx_done)
			continue;
		if (app->h3 && !app->closed) {
			int rv = nghttp3_conn_close_stream(app->h3, (int64_t)s->id,
							   TERN_H3_NO_ERROR);
			if (rv < 0 && rv != NGHTTP3_ERR_STREAM_NOT_FOUND)
				err = h3_fail(app, rv);
		}
		tern_app_stream_remove(app, s);
	}
	tern_app_maybe_finish(app);
	return err;
}

/* ---- nghttp3 callbacks ------------------------------------------------------ */

static int cb_stream_close(nghttp3_conn *conn, int64_t id, uint64_t code, void *ud, void *sud)
{
	(void)conn, (void)id, (void)code;
	struct tern_app *app = ud;
	struct tern_app_stream *s = sud;
	if (s)
		stream_report_failed(app, s); /* no-op after a complete response */
	return 0;
}

static int cb_recv_data(nghttp3_conn *conn, int64_t id, const uint8_t *data, size_t len,
			void *ud, void *sud)
{
	(void)conn;
	struct tern_app *app = ud;
	/* A server discards request bodies: only GET and HEAD are served. */
	if (sud && app->kind == TERN_APP_H3_CLIENT && app->cb.on_body)
		app->cb.on_body(app->user, (uint64_t)id, data, len);
	return 0;
}

static int cb_begin_headers(nghttp3_conn *conn, int64_t id, void *ud, void *sud)
{
	struct tern_app *app = ud;
	if (app->kind != TERN_APP_H3_SERVER || sud)
		return 0;
	struct tern_app_stream *s = tern_app_stream_add(app, (uint64_t)id);
	if (!s)
		return NGHTTP3_ERR_CALLBACK_FAILURE;
	if (nghttp3_conn_set_stream_user_data(conn, id, s) != 0) {
		tern_app_stream_remove(app, s);
		return NGHTTP3_ERR_CALLBACK_FAILURE;
	}
	return 0;
}

/* A decimal header value, or -1 when it is not one. */
static int64_t parse_decimal(const uint8_t *p, size_t n, int64_t max)
{
	int64_t v = 0;
	if (n == 0 || n > 19)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		int d = p[i] - '0';
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	return v;
}

static void server_header(struct tern_app_stream *s, int32_t token, nghttp3_vec v)
{
	if (token == NGHTTP3_QPACK_TOKEN__METHOD) {
		size_t n = v.len < sizeof(s->method) - 1 ? v.len : sizeof(s->method) - 1;
		/* A longer method is none of ours: the truncation still gets 405. */
		memcpy(s->method, v.base, n);
		s->method[n] = 0;
		if (v.len != n)
			s->method[0] = '?';
	} else if (token == NGHTTP3_QPACK_TOKEN__PATH) {
		if (v.len > TERN_APP_MAX_PATH) {
			s->too_long = 1;
			return;
		}
		memcpy(s->path, v.base, v.len);
		s->path[v.len] = 0;
		s->path_len = v.len;
	}
}

static int cb_recv_header(nghttp3_conn *conn, int64_t id, int32_t token, nghttp3_rcbuf *name,
			  nghttp3_rcbuf *value, uint8_t flags, void *ud, void *sud)
{
	(void)conn, (void)id, (void)name, (void)flags;
	struct tern_app *app = ud;
	struct tern_app_stream *s = sud;
	nghttp3_vec v = nghttp3_rcbuf_get_buf(value);
	if (!s)
		return 0;
	if (app->kind == TERN_APP_H3_SERVER) {
		server_header(s, token, v);
	} else if (token == NGHTTP3_QPACK_TOKEN__STATUS) {
		s->status = (int)parse_decimal(v.base, v.len, 999);
	} else if (token == NGHTTP3_QPACK_TOKEN_CONTENT_LENGTH) {
		s->content_length = parse_decimal(v.base, v.len, INT64_MAX);
	}
	return 0;
}

static int cb_end_headers(nghttp3_conn *conn, int64_t id, int fin, void *ud, void *sud)
{
	(void)conn, (void)fin;
	struct tern_app *app = ud;
	struct tern_app_stream *s = sud;
	if (app->kind != TERN_APP_H3_CLIENT || !s)
		return 0;
	/* RFC 9114 §4.1: 1xx responses precede the final one; only the final
	 * status is reported. */
	if (s->status >= 200 && app->cb.on_response_status)
		app->cb.on_response_status(app->user, (uint64_t)id, s->status, s->content_length);
	else
		s->content_length = -1;
	return 0;
}

static int server_respond(struct tern_app *app, int64_t id, struct tern_app_stream *s);

static int cb_end_stream(nghttp3_conn *conn, int64_t id, void *ud, void *sud)
{
	(void)conn;
	struct tern_app *app = ud;
	struct tern_app_stream *s = sud;
	if (!s)
		return 0;
	s->rx_done = 1;
	stream_mark(app, s);
	/* nghttp3 cannot encode a response before the QPACK streams are
	 * bound: a 0-RTT request waits for on_established. */
	if (app->kind == TERN_APP_H3_SERVER)
		return app->established ? server_respond(app, id, s) : 0;
	if (!s->reported) {
		s->reported = 1;
		if (app->cb.on_response_done)
			app->cb.on_response_done(app->user, s->id, s->status >= 200);
	}
	return 0;
}

static int cb_stop_sending(nghttp3_conn *conn, int64_t id, uint64_t code, void *ud, void *sud)
{
	(void)conn, (void)sud;
	struct tern_app *app = ud;
	app->ops->stream_stop(app->t, (uint64_t)id, code);
	return 0;
}

static int cb_reset_stream(nghttp3_conn *conn, int64_t id, uint64_t code, void *ud, void *sud)
{
	(void)conn;
	struct tern_app *app = ud;
	struct tern_app_stream *s = sud;
	app->ops->stream_reset(app->t, (uint64_t)id, code);
	if (s) {
		s->tx_done = 1;
		stream_mark(app, s);
	}
	return 0;
}

/* GOAWAY from the server (RFC 9114 §5.2): requests on streams >= id were
 * not and will not be processed; the client may retry them elsewhere. */
static int cb_shutdown(nghttp3_conn *conn, int64_t id, void *ud)
{
	(void)conn;
	struct tern_app *app = ud;
	app->goaway_rx = 1;
	if (app->kind != TERN_APP_H3_CLIENT)
		return 0;
	for (size_t i = 0; i < app->nbuckets; i++) {
		for (struct tern_app_stream *s = app->buckets[i]; s; s = s->next) {
			if (s->id < (uint64_t)id || s->rx_done)
				continue;
			stream_report_failed(app, s);
			if (!s->tx_done)
				app->ops->stream_reset(app->t, s->id, TERN_H3_REQUEST_CANCELLED);
			app->ops->stream_stop(app->t, s->id, TERN_H3_REQUEST_CANCELLED);
			s->rx_done = s->tx_done = 1;
			stream_mark(app, s);
		}
	}
	return 0;
}

/* ---- server: answering a request ------------------------------------------ */

/* Generated bodies and looked-up files go out zero-copy: the vectors point
 * at the constant table or at the caller's mapping. At most this much per
 * call keeps DATA frames and nghttp3's queue short. */
#define READ_CHUNK (64 * 1024)

static nghttp3_ssize cb_read_data(nghttp3_conn *conn, int64_t id, nghttp3_vec *vec,
				  size_t veccnt, uint32_t *pflags, void *ud, void *sud)
{
	(void)conn, (void)id, (void)ud;
	struct tern_app_stream *s = sud;
	size_t n = 0, total = 0;
	if (!s)
		return NGHTTP3_ERR_CALLBACK_FAILURE;
	while (n < veccnt && s->body_off < s->body_len && total < READ_CHUNK) {
		uint64_t left = s->body_len - s->body_off;
		size_t len;
		const uint8_t *p;
		if (s->body) {
			p = s->body + s->body_off;
			len = left > READ_CHUNK ? READ_CHUNK : (size_t)left;
		} else {
			p = tern_app_fill(s->body_off, &len);
			if (len > left)
				len = (size_t)left;
		}
		vec[n].base = (uint8_t *)(uintptr_t)p; /* nghttp3 only reads it */
		vec[n].len = len;
		n++;
		total += len;
		s->body_off += len;
	}
	if (s->body_off == s->body_len)
		*pflags |= NGHTTP3_DATA_FLAG_EOF;
	return (nghttp3_ssize)n;
}

static int path_is_unsafe(const char *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (p[i] == '.' && p[i + 1] == '.')
			return 1;
		/* "%2e" is a dot to any lookup that percent-decodes. */
		if (i + 2 < n && p[i] == '%' && p[i + 1] == '2' && (p[i + 2] | 0x20) == 'e')
			return 1;
	}
	return memchr(p, 0, n) != NULL;
}

/* Picks the status and body for a GET/HEAD path (query already cut). */
static int server_route(struct tern_app *app, struct tern_app_stream *s, size_t plen)
{
	if (plen < 1 || s->path[0] != '/' || path_is_unsafe(s->path, plen))
		return 404;
	int64_t n = parse_decimal((const uint8_t *)s->path + 1, plen - 1,
				  (int64_t)TERN_APP_GEN_MAX);
	if (n >= 0) {
		s->body = NULL;
		s->body_len = (uint64_t)n;
		return 200;
	}
	const uint8_t *body = NULL;
	size_t len = 0;
	if (!app->cb.lookup || app->cb.lookup(app->user, s->path, &body, &len) < 0)
		return 404;
	if (!body && len)
		return 500; /* a lookup that found bytes it cannot show */
	s->looked_up = 1;
	s->body = body;
	s->body_len = len;
	return 200;
}

#define NV(n, v, vl) {(uint8_t *)(uintptr_t)(n), (uint8_t *)(uintptr_t)(v), sizeof(n) - 1, (vl), \
		      NGHTTP3_NV_FLAG_NONE}

static int server_respond(struct tern_app *app, int64_t id, struct tern_app_stream *s)
{
	static const nghttp3_data_reader reader = {cb_read_data};
	int status, head = !strcmp(s->method, "HEAD");
	if (strcmp(s->method, "GET") && !head)
		status = 405;
	else if (s->too_long)
		status = 414;
	else {
		size_t plen = s->path_len;
		char *q = memchr(s->path, '?', plen);
		if (q)
			plen = (size_t)(q - s->path);
		s->path[plen] = 0; /* the lookup gets the path without its query */
		status = server_route(app, s, plen);
	}
	if (status != 200)
		s->body_len = 0;
	char st[4];
	snprintf(st, sizeof(st), "%d", status);
	int cl = snprintf(s->cl, sizeof(s->cl), "%llu", (unsigned long long)s->body_len);
	nghttp3_nv nva[] = {
		NV(":status", st, 3),
		NV("server", "tern", 4),
		NV("content-length", s->cl, (size_t)cl),
		NV("allow", "GET, HEAD", 9), /* RFC 9110 §15.5.6: 405 says what is allowed */
	};
	size_t nvlen = status == 405 ? 4 : 3;
	s->responding = 1;
	int rv = nghttp3_conn_submit_response(app->h3, id, nva, nvlen,
					      s->body_len && !head ? &reader : NULL);
	return rv == 0 ? 0 : NGHTTP3_ERR_CALLBACK_FAILURE;
}

/* ---- moving nghttp3's output into the transport ------------------------------ */

static int is_own_critical(const struct tern_app *app, uint64_t id)
{
	return (int64_t)id == app->ctrl_id || (int64_t)id == app->qenc_id ||
	       (int64_t)id == app->qdec_id;
}

/* Writes one batch; returns bytes taken, sets *all when everything (and the
 * FIN, if any) was taken, negative when the stream refused. */
static int write_batch(struct tern_app *app, int64_t sid, const nghttp3_vec *vec, size_t n,
		       int fin, size_t *taken, int *all)
{
	*taken = 0;
	*all = 1;
	if (n == 0) /* a bare FIN: "all" of nothing is always taken */
		return app->ops->stream_write(app->t, (uint64_t)sid, NULL, 0, fin) < 0 ? -1 : 0;
	for (size_t i = 0; i < n; i++) {
		int w = app->ops->stream_write(app->t, (uint64_t)sid, vec[i].base, vec[i].len,
					       fin && i == n - 1);
		if (w < 0)
			return w;
		*taken += (size_t)w;
		if ((size_t)w < vec[i].len) {
			*all = 0;
			break;
		}
	}
	return 0;
}

static void stream_write_refused(struct tern_app *app, int64_t sid)
{
	if (is_own_critical(app, (uint64_t)sid)) {
		tern_app_close(app, TERN_H3_CLOSED_CRITICAL_STREAM, "control stream refused");
		return;
	}
	nghttp3_conn_shutdown_stream_write(app->h3, sid);
	struct tern_app_stream *s = tern_app_stream_find(app, (uint64_t)sid);
	if (s) {
		s->tx_done = 1;
		stream_mark(app, s);
	}
}

/* The transport copies what it takes, so the bytes are acknowledged to
 * nghttp3 at once and it frees them; what is not taken stays in nghttp3
 * and the stream is blocked until on_stream_writable. */
static int h3_flush(struct tern_app *app)
{
	nghttp3_vec vec[16];
	while (!app->closed) {
		int64_t sid = -1;
		int fin = 0, all;
		size_t taken;
		nghttp3_ssize n = nghttp3_conn_writev_stream(app->h3, &sid, &fin, vec, 16);
		if (n < 0)
			return h3_fail(app, (int)n);
		if (sid < 0 || (n == 0 && !fin))
			return 0;
		int wr = write_batch(app, sid, vec, (size_t)n, fin, &taken, &all);
		int rv = nghttp3_conn_add_write_offset(app->h3, sid, taken);
		if (rv == 0)
			rv = nghttp3_conn_add_ack_offset(app->h3, sid, taken);
		if (rv != 0)
			return h3_fail(app, rv);
		if (wr < 0) {
			stream_write_refused(app, sid);
		} else if (!all) {
			nghttp3_conn_block_stream(app->h3, sid);
		} else if (fin) {
			struct tern_app_stream *s = tern_app_stream_find(app, (uint64_t)sid);
			if (s) {
				s->tx_done = 1;
				stream_mark(app, s);
			}
		}
	}
	return 0;
}

/* Every entry point ends here: send what nghttp3 has, then finish streams. */
static int h3_done(struct tern_app *app, int err)
{
	/* Nothing goes out before 1-RTT and the control stream exist; what a
	 * 0-RTT request produced waits in nghttp3 until on_established. */
	if (!app->closed && app->established) {
		int rv = h3_flush(app);
		if (!err)
			err = rv;
	}
	int rv = app_settle(app);
	return err ? err : rv;
}

/* ---- creation ------------------------------------------------------------------ */

static int h3_create(struct tern_app *app)
{
	static const nghttp3_callbacks cbs = {
		.stream_close = cb_stream_close,
		.recv_data = cb_recv_data,
		.begin_headers = cb_begin_headers,
		.recv_header = cb_recv_header,
		.end_headers = cb_end_headers,
		.stop_sending = cb_stop_sending,
		.end_stream = cb_end_stream,
		.reset_stream = cb_reset_stream,
		.shutdown = cb_shutdown,
	};
	nghttp3_settings settings;
	nghttp3_settings_default(&settings);
	/* Bounds what one request may make the decoder hold (RFC 9114 §4.2.2). */
	settings.max_field_section_size = 64 * 1024;
	int rv;
	if (app->kind == TERN_APP_H3_SERVER) {
		rv = nghttp3_conn_server_new(&app->h3, &cbs, &settings, app->mem, app);
		/* The transport enforces MAX_STREAMS (RFC 9000 §4.6); nghttp3 only
		 * uses this to judge PRIORITY_UPDATE ids, so do not let it refuse
		 * ids the transport accepted. */
		if (rv == 0)
			nghttp3_conn_set_max_client_streams_bidi(app->h3, UINT64_C(1) << 60);
	} else {
		rv = nghttp3_conn_client_new(&app->h3, &cbs, &settings, app->mem, app);
	}
	return rv == 0 ? 0 : TERN_ERR_NOMEM;
}

int tern_app_new(struct tern_app **out, const struct tern_app_config *cfg)
{
	if (!out || !cfg || !cfg->ops || cfg->kind > TERN_APP_PERF_CLIENT)
		return TERN_ERR_INVAL;
	const nghttp3_mem *mem = cfg->mem ? cfg->mem : nghttp3_mem_default();
	struct tern_app *app = mem->calloc(1, sizeof(*app), mem->user_data);
	if (!app)
		return TERN_ERR_NOMEM;
	app->kind = cfg->kind;
	app->ops = cfg->ops;
	app->t = cfg->transport;
	if (cfg->cb)
		app->cb = *cfg->cb;
	app->user = cfg->user;
	app->mem = mem;
	app->ctrl_id = app->qenc_id = app->qdec_id = -1;
	app->nbuckets = TABLE_MIN;
	app->buckets = mem->calloc(TABLE_MIN, sizeof(*app->buckets), mem->user_data);
	if (!app->buckets || (app_is_h3(app) && h3_create(app) != 0)) {
		mem->free(app->buckets, mem->user_data);
		mem->free(app, mem->user_data);
		return TERN_ERR_NOMEM;
	}
	*out = app;
	return 0;
}

void tern_app_free(struct tern_app *app)
{
	if (!app)
		return;
	const nghttp3_mem *mem = app->mem;
	for (size_t i = 0; i < app->nbuckets; i++) {
		while (app->buckets[i])
			tern_app_stream_remove(app, app->buckets[i]);
	}
	if (app->h3)
		nghttp3_conn_del(app->h3);
	mem->free(app->buckets, mem->user_data);
	mem->free(app, mem->user_data);
}

/* ---- entry points ---------------------------------------------------------------- */

static int open_uni(struct tern_app *app, int64_t *id)
{
	uint64_t v;
	int rv = app->ops->stream_open(app->t, 0, &v);
	if (rv < 0)
		return rv;
	*id = (int64_t)v;
	return 0;
}

int tern_app_on_established(struct tern_app *app)
{
	if (app->closed || app->established)
		return TERN_ERR_STATE;
	app->established = 1;
	if (!app_is_h3(app))
		return 0;
	/* RFC 9114 §6.2.1 and RFC 9204 §4.2: one control stream and one
	 * QPACK encoder and decoder stream each, opened as soon as possible. */
	if (open_uni(app, &app->ctrl_id) < 0 || open_uni(app, &app->qenc_id) < 0 ||
	    open_uni(app, &app->qdec_id) < 0) {
		tern_app_close(app, TERN_H3_INTERNAL_ERROR, "no unidirectional stream credit");
		return TERN_ERR_STATE;
	}
	int rv = nghttp3_conn_bind_control_stream(app->h3, app->ctrl_id);
	if (rv == 0)
		rv = nghttp3_conn_bind_qpack_streams(app->h3, app->qenc_id, app->qdec_id);
	for (size_t i = 0; rv == 0 && i < app->nbuckets; i++) {
		for (struct tern_app_stream *s = app->buckets[i]; s && rv == 0; s = s->next) {
			if (app->kind == TERN_APP_H3_SERVER && s->rx_done && !s->responding)
				rv = server_respond(app, (int64_t)s->id, s) ? NGHTTP3_ERR_NOMEM : 0;
		}
	}
	if (rv != 0)
		return h3_fail(app, rv);
	return h3_done(app, 0);
}

int tern_app_on_stream_open(struct tern_app *app, uint64_t id)
{
	(void)id;
	/* nghttp3 and the perf code learn of a stream from its first bytes. */
	return app->closed ? TERN_ERR_STATE : 0;
}

int tern_app_on_stream_data(struct tern_app *app, uint64_t id, const uint8_t *data,
			    size_t len, int fin)
{
	if (app->closed)
		return TERN_ERR_STATE;
	if (!data && len)
		return TERN_ERR_INVAL;
	if (!app_is_h3(app))
		return tern_perf_on_stream_data(app, id, data, len, fin);
	int ours = (int)(id & 1) == (app->kind == TERN_APP_H3_SERVER);
	if (ours && ((id & 2) || app->kind == TERN_APP_H3_SERVER)) {
		/* Data on a stream only we may send on (RFC 9000 §2.1; the
		 * transport should have caught it), or on a server-initiated
		 * bidi stream, which HTTP/3 never uses (RFC 9114 §6.1). */
		tern_app_close(app, TERN_H3_STREAM_CREATION_ERROR, "data on a stream of ours");
		return TERN_ERR_MALFORMED;
	}
	nghttp3_ssize rv = nghttp3_conn_read_stream(app->h3, (int64_t)id, data, len, fin);
	if (rv < 0)
		return h3_fail(app, (int)rv);
	struct tern_app_stream *s = fin ? tern_app_stream_find(app, id) : NULL;
	if (s && !s->rx_done) {
		/* nghttp3 stopped reading this stream (a malformed message,
		 * RFC 9114 §4.1.2) and reports no end: the FIN still ends it. */
		s->rx_done = 1;
		stream_report_failed(app, s);
		stream_mark(app, s);
	}
	return h3_done(app, 0);
}

int tern_app_on_stream_writable(struct tern_app *app, uint64_t id)
{
	if (app->closed)
		return TERN_ERR_STATE;
	if (!app_is_h3(app))
		return tern_perf_on_stream_writable(app, id);
	/* Not found or not blocked: nothing to undo, the flush is harmless. */
	(void)nghttp3_conn_unblock_stream(app->h3, (int64_t)id);
	return h3_done(app, 0);
}

static int h3_reset_bidi(struct tern_app *app, uint64_t id)
{
	int rv = nghttp3_conn_shutdown_stream_read(app->h3, (int64_t)id);
	if (rv < 0 && rv != NGHTTP3_ERR_STREAM_NOT_FOUND)
		return h3_fail(app, rv);
	struct tern_app_stream *s = tern_app_stream_find(app, id);
	if (!s && app->kind == TERN_APP_H3_CLIENT)
		return 0; /* a request already finished */
	if (!s || !s->tx_done) {
		/* RFC 9114 §4.1.2: an aborted request gets no (more) response,
		 * and a client whose response was aborted stops its request. */
		app->ops->stream_reset(app->t, id, TERN_H3_REQUEST_CANCELLED);
		nghttp3_conn_shutdown_stream_write(app->h3, (int64_t)id);
	}
	if (!s) {
		rv = nghttp3_conn_close_stream(app->h3, (int64_t)id, TERN_H3_REQUEST_CANCELLED);
		return rv < 0 && rv != NGHTTP3_ERR_STREAM_NOT_FOUND ? h3_fail(app, rv) : 0;
	}
	stream_report_failed(app, s);
	s->rx_done = s->tx_done = 1;
	stream_mark(app, s);
	return 0;
}

int tern_app_on_stream_reset(struct tern_app *app, uint64_t id, uint64_t code)
{
	if (app->closed)
		return TERN_ERR_STATE;
	if (!app_is_h3(app))
		return tern_perf_on_stream_reset(app, id, code);
	int rv;
	if (id & 2) {
		/* A peer unidirectional stream; closing a critical one is a
		 * connection error nghttp3 reports (RFC 9114 §6.2.1). */
		rv = nghttp3_conn_close_stream(app->h3, (int64_t)id, code);
		if (rv < 0 && rv != NGHTTP3_ERR_STREAM_NOT_FOUND)
			return h3_fail(app, rv);
		return h3_done(app, 0);
	}
	rv = h3_reset_bidi(app, id);
	return h3_done(app, rv);
}

int tern_app_on_stop_sending(struct tern_app *app, uint64_t id, uint64_t code)
{
	if (app->closed)
		return TERN_ERR_STATE;
	if (!app_is_h3(app))
		return tern_perf_on_stop_sending(app, id, code);
	/* RFC 9114 §6.2.1: the peer may not stop a control or QPACK stream. */
	if (is_own_critical(app, id)) {
		tern_app_close(app, TERN_H3_CLOSED_CRITICAL_STREAM, "STOP_SENDING on critical stream");
		return TERN_ERR_MALFORMED;
	}
	/* RFC 9000 §3.5: answer STOP_SENDING with RESET_STREAM, same code. */
	app->ops->stream_reset(app->t, id, code);
	nghttp3_conn_shutdown_stream_write(app->h3, (int64_t)id);
	struct tern_app_stream *s = tern_app_stream_find(app, id);
	if (s) {
		s->tx_done = 1;
		stream_mark(app, s);
	}
	return h3_done(app, 0);
}

int tern_app_h3_request_method(struct tern_app *app, const char *method,
			       const char *authority, const char *path, uint64_t *stream_id)
{
	if (!method || !authority || !path || app->kind != TERN_APP_H3_CLIENT)
		return TERN_ERR_INVAL;
	if (app->closed || !app->established || app->shutting_down || app->goaway_rx)
		return TERN_ERR_STATE;
	uint64_t id;
	struct tern_app_stream *s;
	int rv = tern_app_open_request(app, TERN_H3_REQUEST_CANCELLED, &id, &s);
	if (rv < 0)
		return rv;
	s->reported = 1; /* nothing to report until submitted */
	nghttp3_nv nva[] = {
		{(uint8_t *)":method", (uint8_t *)(uintptr_t)method, 7, strlen(method), 0},
		{(uint8_t *)":scheme", (uint8_t *)"https", 7, 5, 0},
		{(uint8_t *)":authority", (uint8_t *)(uintptr_t)authority, 10, strlen(authority), 0},
		{(uint8_t *)":path", (uint8_t *)(uintptr_t)path, 5, strlen(path), 0},
		{(uint8_t *)"user-agent", (uint8_t *)"tern", 10, 4, 0},
	};
	rv = nghttp3_conn_submit_request(app->h3, (int64_t)id, nva, 5, NULL, s);
	if (rv != 0) {
		app->ops->stream_reset(app->t, id, TERN_H3_REQUEST_CANCELLED);
		tern_app_stream_remove(app, s);
		return rv == NGHTTP3_ERR_NOMEM ? TERN_ERR_NOMEM : TERN_ERR_STATE;
	}
	s->reported = 0;
	if (stream_id)
		*stream_id = id;
	return h3_done(app, 0);
}

int tern_app_h3_request(struct tern_app *app, const char *authority, const char *path,
			uint64_t *stream_id)
{
	return tern_app_h3_request_method(app, "GET", authority, path, stream_id);
}

int tern_app_shutdown(struct tern_app *app)
{
	if (app->closed)
		return TERN_ERR_STATE;
	if (app->shutting_down)
		return 0;
	app->shutting_down = 1;
	if (app_is_h3(app) && app->established) {
		/* One GOAWAY with the real limit (RFC 9114 §5.2): requests the
		 * server has not seen yet are rejected and may be retried. */
		int rv = nghttp3_conn_shutdown(app->h3);
		if (rv != 0)
			return h3_fail(app, rv);
		return h3_done(app, 0);
	}
	tern_app_maybe_finish(app);
	return 0;
}

size_t tern_app_in_flight(const struct tern_app *app)
{
	return app->nstreams;
}

int tern_app_closed(const struct tern_app *app, uint64_t *code)
{
	if (app->closed && code)
		*code = app->close_code;
	return app->closed;
}
