/* tern: the perf protocol (draft-banks-quic-performance-00, ALPN "perf").
 *
 * A client opens a bidirectional stream, sends the number of bytes it wants
 * back as an 8-byte big-endian integer, then any upload data, then FIN. The
 * server discards the upload and, once the request is complete (FIN), sends
 * the requested number of bytes and FIN. Client unidirectional streams are
 * upload-only and discarded. Nothing is buffered: both directions are
 * generated from tern_app_fill() and counted. */
#define TERN_APP_INTERNAL
#include "tern/app.h"

static uint64_t get_u64(const uint8_t *p)
{
	return (uint64_t)tern_get_u32(p) << 32 | tern_get_u32(p + 4);
}

static void put_u64(uint8_t *p, uint64_t v)
{
	tern_put_u32(p, (uint32_t)(v >> 32));
	tern_put_u32(p + 4, (uint32_t)v);
}

/* Bytes this side sends on the stream in all: the client its request
 * header plus the upload, the server the requested download. */
static uint64_t perf_tx_total(const struct tern_app *app, const struct tern_app_stream *s)
{
	return app->kind == TERN_APP_PERF_CLIENT ? TERN_PERF_HEADER_SIZE + s->upload : s->want;
}

static const uint8_t *perf_tx_bytes(const struct tern_app *app, const struct tern_app_stream *s,
				    size_t *n)
{
	uint64_t off = s->sent;
	if (app->kind == TERN_APP_PERF_CLIENT) {
		if (off < TERN_PERF_HEADER_SIZE) {
			*n = (size_t)(TERN_PERF_HEADER_SIZE - off);
			return s->hdr + off;
		}
		off -= TERN_PERF_HEADER_SIZE;
	}
	return tern_app_fill(off, n);
}

/* ok needs every requested byte and the whole upload taken by the
 * transport; `aborted` forces 0 when the exchange was reset. */
static void perf_client_report(struct tern_app *app, struct tern_app_stream *s, int aborted)
{
	if (s->reported)
		return;
	s->reported = 1;
	int ok = !aborted && s->recvd == s->want && s->sent == perf_tx_total(app, s);
	uint64_t up = s->sent > TERN_PERF_HEADER_SIZE ? s->sent - TERN_PERF_HEADER_SIZE : 0;
	if (app->cb.on_perf_done)
		app->cb.on_perf_done(app->user, s->id, s->recvd, up, ok);
}

/* Drops a stream whose two directions are over; 1 when it was dropped. */
static int perf_settle(struct tern_app *app, struct tern_app_stream *s)
{
	if (!s->rx_done || !s->tx_done)
		return 0;
	if (app->kind == TERN_APP_PERF_CLIENT)
		perf_client_report(app, s, 0);
	tern_app_stream_remove(app, s);
	tern_app_maybe_finish(app);
	return 1;
}

/* Sends as much as the transport takes; the rest waits for writable. */
static void perf_pump(struct tern_app *app, struct tern_app_stream *s)
{
	uint64_t total = perf_tx_total(app, s);
	while (!s->tx_done) {
		uint64_t left = total - s->sent;
		size_t n = 0;
		const uint8_t *p = NULL;
		if (left) {
			if (app->ops->stream_room(app->t, s->id) == 0)
				return;
			p = perf_tx_bytes(app, s, &n);
			if (n > left)
				n = (size_t)left;
		}
		int fin = s->sent + n == total;
		int w = app->ops->stream_write(app->t, s->id, p, n, fin);
		if (w < 0) {
			s->tx_done = 1; /* the stream can no longer be written */
			break;
		}
		s->sent += (size_t)w;
		if ((size_t)w < n)
			return;
		if (fin)
			s->tx_done = 1;
	}
	perf_settle(app, s);
}

static int perf_server_data(struct tern_app *app, uint64_t id, const uint8_t *data, size_t len,
			    int fin)
{
	struct tern_app_stream *s = tern_app_stream_find(app, id);
	if (!s) {
		if (app->shutting_down) {
			/* No new request once shutting down (as H3's GOAWAY). */
			app->ops->stream_stop(app->t, id, TERN_PERF_NO_ERROR);
			app->ops->stream_reset(app->t, id, TERN_PERF_NO_ERROR);
			return 0;
		}
		s = tern_app_stream_add(app, id);
		if (!s) {
			tern_app_close(app, TERN_PERF_REQUEST_ERROR, "out of memory");
			return TERN_ERR_NOMEM;
		}
	}
	if (s->rx_done)
		return 0; /* the transport guarantees nothing follows a FIN */
	if (s->recvd < TERN_PERF_HEADER_SIZE) {
		size_t h = (size_t)(TERN_PERF_HEADER_SIZE - s->recvd);
		if (h > len)
			h = len;
		if (h) /* a bare FIN carries no data pointer */
			memcpy(s->hdr + s->recvd, data, h);
	}
	s->recvd += len; /* the rest is upload, counted and dropped */
	if (!fin)
		return 0;
	s->rx_done = 1;
	if (s->recvd < TERN_PERF_HEADER_SIZE) {
		/* The request ended before saying what it wants. */
		app->ops->stream_reset(app->t, id, TERN_PERF_REQUEST_ERROR);
		s->tx_done = 1;
		perf_settle(app, s);
		return 0;
	}
	s->want = get_u64(s->hdr);
	perf_pump(app, s);
	return 0;
}

int tern_perf_on_stream_data(struct tern_app *app, uint64_t id, const uint8_t *data, size_t len,
			     int fin)
{
	if (app->kind == TERN_APP_PERF_SERVER) {
		/* Only client bidi streams carry requests; a client uni stream
		 * is upload-only (draft §2.3) and is discarded. */
		if ((id & 3) != 0)
			return 0;
		return perf_server_data(app, id, data, len, fin);
	}
	struct tern_app_stream *s = tern_app_stream_find(app, id);
	if (!s || s->rx_done)
		return 0;
	s->recvd += len;
	if (fin) {
		s->rx_done = 1;
		perf_settle(app, s);
	}
	return 0;
}

int tern_perf_on_stream_writable(struct tern_app *app, uint64_t id)
{
	struct tern_app_stream *s = tern_app_stream_find(app, id);
	/* A server sends only once the request is complete. */
	if (s && (app->kind == TERN_APP_PERF_CLIENT || s->rx_done))
		perf_pump(app, s);
	return 0;
}

int tern_perf_on_stream_reset(struct tern_app *app, uint64_t id, uint64_t code)
{
	struct tern_app_stream *s = tern_app_stream_find(app, id);
	if (!s)
		return 0;
	if (!s->tx_done) {
		/* Either side aborting its half ends the exchange. */
		app->ops->stream_reset(app->t, id, code);
		s->tx_done = 1;
	}
	s->rx_done = 1;
	if (app->kind == TERN_APP_PERF_CLIENT)
		perf_client_report(app, s, 1);
	perf_settle(app, s);
	return 0;
}

int tern_perf_on_stop_sending(struct tern_app *app, uint64_t id, uint64_t code)
{
	/* RFC 9000 §3.5: answer STOP_SENDING with RESET_STREAM, same code. */
	app->ops->stream_reset(app->t, id, code);
	struct tern_app_stream *s = tern_app_stream_find(app, id);
	if (s) {
		s->tx_done = 1;
		perf_settle(app, s);
	}
	return 0;
}

int tern_app_perf_request(struct tern_app *app, uint64_t download_bytes, uint64_t upload_bytes,
			  uint64_t *stream_id)
{
	if (app->kind != TERN_APP_PERF_CLIENT || upload_bytes > UINT64_MAX - TERN_PERF_HEADER_SIZE)
		return TERN_ERR_INVAL;
	if (app->closed || !app->established || app->shutting_down)
		return TERN_ERR_STATE;
	uint64_t id;
	struct tern_app_stream *s;
	int rv = tern_app_open_request(app, TERN_PERF_REQUEST_ERROR, &id, &s);
	if (rv < 0)
		return rv;
	s->want = download_bytes;
	s->upload = upload_bytes;
	put_u64(s->hdr, download_bytes);
	if (stream_id)
		*stream_id = id;
	perf_pump(app, s);
	return 0;
}
