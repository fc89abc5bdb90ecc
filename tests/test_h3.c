/* tern: the application layer (HTTP/3 via nghttp3, perf) back to back.
 *
 * A client app and a server app talk through an in-memory transport: each
 * side keeps one send queue per stream id, ids are allocated as QUIC does
 * (RFC 9000 §2.1), stream_write takes at most `take` bytes per call and at
 * most `room` undelivered bytes per stream (so the pending path runs), and
 * pump() moves `chunk` bytes at a time until nothing moves. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <stdio.h>

#include "tern/app.h"

#include <nghttp3/nghttp3.h>

/* H3 codes that only nghttp3 produces, from RFC 9114 §8.1. */
#define H3_FRAME_UNEXPECTED 0x105
#define H3_FRAME_ERROR 0x106
#define H3_MISSING_SETTINGS 0x10a
#define H3_MESSAGE_ERROR 0x10e
#define QPACK_DECOMPRESSION_FAILED 0x200

/* ---- the in-memory transport ------------------------------------------- */

#define MAX_HALVES 1024

struct half { /* one direction of one stream, written by its side */
	uint64_t id;
	uint8_t *buf;
	size_t cap, len, off;
	int fin, fin_sent, reset, reset_sent, stop, stop_sent, blocked;
	uint64_t reset_code, stop_code;
	uint64_t total; /* bytes ever written */
};

struct side {
	struct tern_app *app;
	struct side *peer;
	int client;
	uint64_t next_bidi, next_uni, bidi_limit, uni_limit, bidi_opened, uni_opened;
	struct half h[MAX_HALVES];
	size_t nh;
	uint64_t seen[MAX_HALVES];
	size_t nseen;
	size_t room, take, chunk;
	int check_fill;  /* bidi writes must be the fill pattern */
	int fill_errors;
	int close_calls;
	uint64_t close_code;
	size_t close_unfinished; /* bidi halves of ours without FIN at close */
	int bad_rc;              /* entry points that returned an error */
};

static struct side C, S;

static struct half *half_find(struct side *s, uint64_t id)
{
	for (size_t i = 0; i < s->nh; i++)
		if (s->h[i].id == id)
			return &s->h[i];
	return NULL;
}

static struct half *half_get(struct side *s, uint64_t id)
{
	struct half *h = half_find(s, id);
	if (h)
		return h;
	cr_assert(s->nh < MAX_HALVES);
	h = &s->h[s->nh++];
	memset(h, 0, sizeof(*h));
	h->id = id;
	return h;
}

static void half_append(struct half *h, const uint8_t *p, size_t n)
{
	if (n == 0)
		return;
	if (h->off == h->len)
		h->off = h->len = 0;
	if (h->len + n > h->cap && h->off) {
		memmove(h->buf, h->buf + h->off, h->len - h->off);
		h->len -= h->off;
		h->off = 0;
	}
	if (h->len + n > h->cap) {
		h->cap = (h->len + n) * 2;
		h->buf = realloc(h->buf, h->cap);
		cr_assert(h->buf);
	}
	memcpy(h->buf + h->len, p, n);
	h->len += n;
}

static int t_open(void *t, int bidi, uint64_t *id)
{
	struct side *s = t;
	if (bidi && s->bidi_limit && s->bidi_opened >= s->bidi_limit)
		return TERN_ERR_LIMIT;
	if (!bidi && s->uni_limit && s->uni_opened >= s->uni_limit)
		return TERN_ERR_LIMIT;
	uint64_t base = (s->client ? 0 : 1) | (bidi ? 0 : 2);
	uint64_t *next = bidi ? &s->next_bidi : &s->next_uni;
	*id = base + 4 * (*next)++;
	bidi ? s->bidi_opened++ : s->uni_opened++;
	half_get(s, *id);
	return 0;
}

static int t_write(void *t, uint64_t id, const uint8_t *data, size_t len, int fin)
{
	struct side *s = t;
	struct half *h = half_get(s, id);
	if (h->reset || h->fin)
		return TERN_ERR_STATE;
	size_t pending = h->len - h->off;
	size_t room = s->room > pending ? s->room - pending : 0;
	size_t n = len < room ? len : room;
	if (n > s->take)
		n = s->take;
	if (n)
		half_append(h, data, n);
	for (size_t i = 0; s->check_fill && (id & 2) == 0 && i < n; i++) {
		size_t k;
		if (tern_app_fill(h->total + i, &k)[0] != data[i])
			s->fill_errors++;
	}
	h->total += n;
	if (n == len && fin)
		h->fin = 1;
	if (n < len)
		h->blocked = 1;
	return (int)n;
}

static size_t t_room(void *t, uint64_t id)
{
	struct side *s = t;
	struct half *h = half_get(s, id);
	if (h->reset || h->fin)
		return 0;
	size_t pending = h->len - h->off;
	size_t room = s->room > pending ? s->room - pending : 0;
	if (!room)
		h->blocked = 1;
	return room;
}

static int t_reset(void *t, uint64_t id, uint64_t code)
{
	struct half *h = half_get(t, id);
	if (h->reset || (h->fin && h->fin_sent))
		return 0;
	h->reset = 1;
	h->reset_code = code;
	return 0;
}

static int t_stop(void *t, uint64_t id, uint64_t code)
{
	/* Recorded on our own entry for the id; pump tells the peer. */
	struct half *h = half_get(t, id);
	if (!h->stop) {
		h->stop = 1;
		h->stop_code = code;
	}
	return 0;
}

static void t_close(void *t, uint64_t code, const char *reason)
{
	struct side *s = t;
	(void)reason;
	s->close_calls++;
	s->close_code = code;
	s->close_unfinished = 0;
	for (size_t i = 0; i < s->nh; i++) {
		struct half *h = &s->h[i];
		/* request streams: client-initiated bidi, either half */
		if ((h->id & 3) == 0 && !h->fin && !h->reset)
			s->close_unfinished++;
	}
}

static const struct tern_app_transport_ops ops = {
	t_open, t_write, t_room, t_reset, t_stop, t_close,
};

static void note_rc(struct side *s, int rc)
{
	if (rc < 0)
		s->bad_rc++;
}

/* Announces a stream the peer opened, once. */
static void announce(struct side *to, uint64_t id)
{
	int peer_initiated = (int)(id & 1) == (to->client ? 1 : 0);
	if (!peer_initiated)
		return;
	for (size_t i = 0; i < to->nseen; i++)
		if (to->seen[i] == id)
			return;
	cr_assert(to->nseen < MAX_HALVES);
	to->seen[to->nseen++] = id;
	note_rc(to, tern_app_on_stream_open(to->app, id));
}

static int deliver(struct side *from, struct half *h)
{
	struct side *to = from->peer;
	uint64_t id = h->id;
	if (h->reset && !h->reset_sent) {
		h->reset_sent = 1;
		h->off = h->len; /* RESET_STREAM discards what was not delivered */
		announce(to, id);
		note_rc(to, tern_app_on_stream_reset(to->app, id, h->reset_code));
		return 1;
	}
	if (h->reset || (h->off == h->len && (!h->fin || h->fin_sent)))
		return 0;
	size_t n = h->len - h->off;
	if (n > from->chunk)
		n = from->chunk;
	int fin = h->fin && h->off + n == h->len;
	const uint8_t *p = h->buf ? h->buf + h->off : NULL;
	h->off += n;
	if (fin)
		h->fin_sent = 1;
	announce(to, id);
	note_rc(to, tern_app_on_stream_data(to->app, id, n ? p : NULL, n, fin));
	if (h->blocked) {
		h->blocked = 0;
		note_rc(from, tern_app_on_stream_writable(from->app, id));
	}
	return 1;
}

static int pump_side(struct side *from)
{
	int moved = 0;
	for (size_t i = 0; i < from->nh; i++) {
		struct half *h = &from->h[i];
		moved |= deliver(from, h);
		if (h->stop && !h->stop_sent) {
			h->stop_sent = 1;
			note_rc(from->peer, tern_app_on_stop_sending(from->peer->app, h->id,
								     h->stop_code));
			moved = 1;
		}
	}
	return moved;
}

/* Moves bytes until quiet; returns the rounds it took. */
static int pump_rounds(int max)
{
	for (int i = 0; i < max; i++) {
		int a = pump_side(&C);
		int b = pump_side(&S);
		if (!a && !b)
			return i;
	}
	return max;
}

static void pump(void)
{
	cr_assert_lt(pump_rounds(50000000), 50000000, "transport never went quiet");
}

/* ---- what the client saw --------------------------------------------------- */

struct rec {
	int status, status_calls, done_calls, ok, bad_byte;
	int64_t cl;
	uint64_t body;
	uint8_t *cap; /* captured body when set */
	size_t caplen, capmax;
};
static struct rec R[MAX_HALVES];

struct prec {
	uint64_t down, up;
	int ok, calls;
};
static struct prec P[MAX_HALVES];

static const uint8_t *docroot_body;
static size_t docroot_len;
static int lookup_calls, release_calls;
static char last_lookup[TERN_APP_MAX_PATH + 1];
static const uint8_t *last_release;

static int cb_lookup(void *user, const char *path, const uint8_t **body, size_t *len)
{
	(void)user;
	lookup_calls++;
	snprintf(last_lookup, sizeof(last_lookup), "%s", path);
	if (!strcmp(path, "/broken")) {
		*body = NULL; /* claims bytes it does not point at */
		*len = 5;
		return 0;
	}
	if (strcmp(path, "/docroot-file") != 0)
		return -1;
	*body = docroot_body;
	*len = docroot_len;
	return 0;
}

static void cb_release(void *user, const uint8_t *body, size_t len)
{
	(void)user;
	cr_assert_eq(len, docroot_len);
	last_release = body;
	release_calls++;
}

static void cb_status(void *user, uint64_t id, int status, int64_t cl)
{
	(void)user;
	R[id / 4].status = status;
	R[id / 4].cl = cl;
	R[id / 4].status_calls++;
}

static void cb_body(void *user, uint64_t id, const uint8_t *data, size_t len)
{
	(void)user;
	struct rec *r = &R[id / 4];
	for (size_t i = 0; i < len && !r->cap; i++) {
		size_t n;
		if (tern_app_fill(r->body + i, &n)[0] != data[i])
			r->bad_byte++;
	}
	if (r->cap && r->caplen + len <= r->capmax)
		memcpy(r->cap + r->caplen, data, len);
	r->caplen += len;
	r->body += len;
}

static void cb_done(void *user, uint64_t id, int ok)
{
	(void)user;
	R[id / 4].done_calls++;
	R[id / 4].ok = ok;
}

static void cb_perf_done(void *user, uint64_t id, uint64_t down, uint64_t up, int ok)
{
	(void)user;
	P[id / 4].down = down;
	P[id / 4].up = up;
	P[id / 4].ok = ok;
	P[id / 4].calls++;
}

static const struct tern_app_callbacks cbs = {
	.lookup = cb_lookup,
	.release = cb_release,
	.on_response_status = cb_status,
	.on_body = cb_body,
	.on_response_done = cb_done,
	.on_perf_done = cb_perf_done,
};

static void side_init(struct side *s, struct side *peer, int client, enum tern_app_kind kind)
{
	for (size_t i = 0; i < s->nh; i++)
		free(s->h[i].buf);
	memset(s, 0, sizeof(*s));
	s->peer = peer;
	s->client = client;
	s->room = 64 * 1024;
	s->take = 16 * 1024;
	s->chunk = 1350;
	struct tern_app_config cfg = {
		.kind = kind, .ops = &ops, .transport = s, .cb = &cbs, .user = s,
	};
	cr_assert_eq(tern_app_new(&s->app, &cfg), 0);
}

static void setup_kinds(enum tern_app_kind ck, enum tern_app_kind sk, int establish)
{
	memset(R, 0, sizeof(R));
	memset(P, 0, sizeof(P));
	lookup_calls = release_calls = 0;
	last_lookup[0] = 0;
	last_release = NULL;
	side_init(&C, &S, 1, ck);
	side_init(&S, &C, 0, sk);
	if (establish) {
		cr_assert_eq(tern_app_on_established(S.app), 0);
		cr_assert_eq(tern_app_on_established(C.app), 0);
		pump();
	}
}

static void setup_h3(void)
{
	setup_kinds(TERN_APP_H3_CLIENT, TERN_APP_H3_SERVER, 1);
}

static void setup_perf(void)
{
	setup_kinds(TERN_APP_PERF_CLIENT, TERN_APP_PERF_SERVER, 1);
}

static void teardown_all(void)
{
	tern_app_free(C.app);
	tern_app_free(S.app);
	C.app = S.app = NULL;
	for (size_t i = 0; i < C.nh; i++)
		free(C.h[i].buf);
	for (size_t i = 0; i < S.nh; i++)
		free(S.h[i].buf);
	C.nh = S.nh = 0;
}

static uint64_t get(const char *path)
{
	uint64_t id = UINT64_MAX;
	cr_assert_eq(tern_app_h3_request(C.app, "example.com", path, &id), 0, "%s", path);
	return id;
}

static void expect_response(uint64_t id, int status, int64_t cl, uint64_t body)
{
	struct rec *r = &R[id / 4];
	cr_assert_eq(r->status_calls, 1, "stream %llu", (unsigned long long)id);
	cr_assert_eq(r->status, status, "stream %llu: %d", (unsigned long long)id, r->status);
	cr_assert_eq(r->cl, cl, "stream %llu: cl %lld", (unsigned long long)id, (long long)r->cl);
	cr_assert_eq(r->body, body);
	cr_assert_eq(r->bad_byte, 0);
	cr_assert_eq(r->done_calls, 1);
	cr_assert_eq(r->ok, 1);
}

static void expect_quiet_and_clean(void)
{
	cr_assert_eq(tern_app_in_flight(C.app), 0);
	cr_assert_eq(tern_app_in_flight(S.app), 0);
	cr_assert_eq(C.close_calls, 0);
	cr_assert_eq(S.close_calls, 0);
	cr_assert_eq(C.bad_rc, 0);
	cr_assert_eq(S.bad_rc, 0);
}

/* ---- basics ------------------------------------------------------------------- */

Test(app, fill_has_period_64)
{
	size_t n0, n;
	const uint8_t *p0 = tern_app_fill(0, &n0);
	cr_assert_geq(n0, 64);
	for (uint64_t off = 0; off < 5000; off += 7) {
		const uint8_t *p = tern_app_fill(off, &n);
		cr_assert_geq(n, 1);
		cr_assert_eq(p[0], p0[off % 64]);
		/* The run is the same sequence continued. */
		cr_assert_eq(p[n - 1], p0[(off + n - 1) % 64]);
	}
	cr_assert_eq(p0[0], 'a');
	cr_assert_eq(p0[63], '_');
	cr_assert_eq(tern_app_fill(UINT64_C(1) << 40, &n)[0], 'a');
}

Test(app, alpn)
{
	cr_assert_str_eq(tern_app_alpn(TERN_APP_H3_SERVER), "h3");
	cr_assert_str_eq(tern_app_alpn(TERN_APP_H3_CLIENT), "h3");
	cr_assert_str_eq(tern_app_alpn(TERN_APP_PERF_SERVER), "perf");
	cr_assert_str_eq(tern_app_alpn(TERN_APP_PERF_CLIENT), "perf");
}

Test(app, new_rejects_bad_config)
{
	struct tern_app *app = NULL;
	struct tern_app_config cfg = {.kind = TERN_APP_H3_SERVER, .ops = NULL};
	cr_assert_eq(tern_app_new(&app, &cfg), TERN_ERR_INVAL);
	cfg.ops = &ops;
	cfg.kind = (enum tern_app_kind)7;
	cr_assert_eq(tern_app_new(&app, &cfg), TERN_ERR_INVAL);
	cr_assert_eq(tern_app_new(&app, NULL), TERN_ERR_INVAL);
	cr_assert_eq(tern_app_new(NULL, &cfg), TERN_ERR_INVAL);
	cr_assert_null(app);
	tern_app_free(NULL);
}

Test(app, established_opens_three_uni_streams, .fini = teardown_all)
{
	setup_kinds(TERN_APP_H3_CLIENT, TERN_APP_H3_SERVER, 0);
	cr_assert_eq(tern_app_on_established(C.app), 0);
	cr_assert_eq(tern_app_on_established(C.app), TERN_ERR_STATE);
	/* control 2, QPACK encoder 6, decoder 10; the control stream starts
	 * with type 0x00 and a SETTINGS frame (RFC 9114 §6.2.1, §7.2.4). */
	cr_assert_eq(C.nh, 3);
	cr_assert_eq(C.h[0].id, 2);
	cr_assert_eq(C.h[1].id, 6);
	cr_assert_eq(C.h[2].id, 10);
	cr_assert_geq(C.h[0].len, 2);
	cr_assert_eq(C.h[0].buf[0], 0x00);
	cr_assert_eq(C.h[0].buf[1], 0x04);
	cr_assert_eq(C.h[1].buf[0], 0x02);
	cr_assert_eq(C.h[2].buf[0], 0x03);
	cr_assert_eq(tern_app_on_established(S.app), 0);
	cr_assert_eq(S.h[0].id, 3);
	cr_assert_eq(S.h[1].id, 7);
	cr_assert_eq(S.h[2].id, 11);
	pump();
	expect_quiet_and_clean();
}

Test(app, server_answers_only_after_established, .fini = teardown_all)
{
	/* A request that reaches the server before its handshake completes
	 * (0-RTT) is answered once on_established has opened the control
	 * stream, and not before. */
	setup_kinds(TERN_APP_H3_CLIENT, TERN_APP_H3_SERVER, 0);
	cr_assert_eq(tern_app_on_established(C.app), 0);
	uint64_t id = get("/77");
	pump();
	cr_assert_eq(S.nh, 0);
	cr_assert_eq(tern_app_in_flight(S.app), 1);
	cr_assert_eq(tern_app_on_established(S.app), 0);
	cr_assert_eq(S.h[0].id, 3); /* the control stream comes first */
	pump();
	expect_response(id, 200, 77, 77);
	expect_quiet_and_clean();
}

Test(app, request_needs_client_and_established, .fini = teardown_all)
{
	setup_kinds(TERN_APP_H3_CLIENT, TERN_APP_H3_SERVER, 0);
	cr_assert_eq(tern_app_h3_request(C.app, "x", "/1", NULL), TERN_ERR_STATE);
	cr_assert_eq(tern_app_h3_request(S.app, "x", "/1", NULL), TERN_ERR_INVAL);
	cr_assert_eq(tern_app_h3_request(C.app, NULL, "/1", NULL), TERN_ERR_INVAL);
	cr_assert_eq(tern_app_perf_request(C.app, 1, 1, NULL), TERN_ERR_INVAL);
	cr_assert_eq(C.nh, 0);
}

Test(app, uni_stream_limit_closes_with_internal_error, .fini = teardown_all)
{
	setup_kinds(TERN_APP_H3_CLIENT, TERN_APP_H3_SERVER, 0);
	S.uni_limit = 2;
	cr_assert_eq(tern_app_on_established(S.app), TERN_ERR_STATE);
	cr_assert_eq(S.close_calls, 1);
	cr_assert_eq(S.close_code, TERN_H3_INTERNAL_ERROR);
	uint64_t code = 0;
	cr_assert_eq(tern_app_closed(S.app, &code), 1);
	cr_assert_eq(code, TERN_H3_INTERNAL_ERROR);
	cr_assert_eq(tern_app_on_stream_data(S.app, 0, (const uint8_t *)"x", 1, 0), TERN_ERR_STATE);
}

Test(app, bidi_limit_is_reported, .init = setup_h3, .fini = teardown_all)
{
	C.bidi_limit = 1;
	get("/1");
	cr_assert_eq(tern_app_h3_request(C.app, "x", "/2", NULL), TERN_ERR_LIMIT);
	pump();
	expect_response(0, 200, 1, 1);
}

/* Every allocation goes through the configured nghttp3_mem, and all of it
 * comes back. */
static long live_allocs, total_allocs;

static void *m_malloc(size_t n, void *u)
{
	(void)u;
	void *p = malloc(n);
	live_allocs += p != NULL;
	total_allocs++;
	return p;
}

static void m_free(void *p, void *u)
{
	(void)u;
	live_allocs -= p != NULL;
	free(p);
}

static void *m_calloc(size_t k, size_t n, void *u)
{
	(void)u;
	void *p = calloc(k, n);
	live_allocs += p != NULL;
	total_allocs++;
	return p;
}

static void *m_realloc(void *p, size_t n, void *u)
{
	(void)u;
	void *q = realloc(p, n);
	if (!p && q)
		live_allocs++;
	total_allocs++;
	return q;
}

static const struct nghttp3_mem counting_mem = {NULL, m_malloc, m_free, m_calloc, m_realloc};

Test(app, memory_goes_through_given_allocator)
{
	memset(R, 0, sizeof(R));
	side_init(&C, &S, 1, TERN_APP_H3_CLIENT);
	side_init(&S, &C, 0, TERN_APP_H3_SERVER);
	tern_app_free(C.app);
	tern_app_free(S.app);
	struct tern_app_config cfg = {
		.kind = TERN_APP_H3_CLIENT, .ops = &ops, .transport = &C, .cb = &cbs,
		.mem = &counting_mem,
	};
	cr_assert_eq(tern_app_new(&C.app, &cfg), 0);
	cfg.kind = TERN_APP_H3_SERVER;
	cfg.transport = &S;
	cr_assert_eq(tern_app_new(&S.app, &cfg), 0);
	cr_assert_eq(tern_app_on_established(S.app), 0);
	cr_assert_eq(tern_app_on_established(C.app), 0);
	for (int i = 0; i < 40; i++)
		get("/3000");
	get("/9"); /* left in flight */
	pump_rounds(1);
	cr_assert_gt(live_allocs, 0);
	tern_app_free(C.app);
	tern_app_free(S.app);
	C.app = S.app = NULL;
	cr_assert_eq(live_allocs, 0);
	cr_assert_gt(total_allocs, 40);
	teardown_all();
}

/* ---- HTTP/3 responses ------------------------------------------------------------ */

Test(h3, get_generated_sizes, .init = setup_h3, .fini = teardown_all)
{
	static const uint64_t sizes[] = {0, 1, 1000, 10000000};
	uint64_t ids[4];
	char path[32];
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "/%llu", (unsigned long long)sizes[i]);
		ids[i] = get(path);
		cr_assert_eq(ids[i], (uint64_t)(4 * i));
	}
	cr_assert_eq(tern_app_in_flight(C.app), 4);
	pump();
	for (int i = 0; i < 4; i++)
		expect_response(ids[i], 200, (int64_t)sizes[i], sizes[i]);
	cr_assert_eq(lookup_calls, 0);
	expect_quiet_and_clean();
}

Test(h3, get_byte_by_byte_with_tiny_windows, .init = setup_h3, .fini = teardown_all)
{
	/* Every header and frame split at every byte; the sender's window
	 * holds 5 bytes, so the pending path runs all the time. */
	C.chunk = S.chunk = 1;
	C.room = S.room = 5;
	C.take = S.take = 3;
	uint64_t id = get("/3000");
	pump();
	expect_response(id, 200, 3000, 3000);
	expect_quiet_and_clean();
}

Test(h3, head_sends_length_without_body, .init = setup_h3, .fini = teardown_all)
{
	uint64_t id = UINT64_MAX;
	cr_assert_eq(tern_app_h3_request_method(C.app, "HEAD", "x", "/1000", &id), 0);
	uint64_t big = UINT64_MAX;
	cr_assert_eq(tern_app_h3_request_method(C.app, "HEAD", "x", "/1099511627776", &big), 0);
	pump();
	expect_response(id, 200, 1000, 0);
	expect_response(big, 200, (int64_t)TERN_APP_GEN_MAX, 0);
	expect_quiet_and_clean();
}

Test(h3, other_methods_get_405, .init = setup_h3, .fini = teardown_all)
{
	uint64_t a = 0, b = 0, c = 0;
	cr_assert_eq(tern_app_h3_request_method(C.app, "POST", "x", "/1", &a), 0);
	cr_assert_eq(tern_app_h3_request_method(C.app, "DELETE", "x", "/docroot-file", &b), 0);
	cr_assert_eq(tern_app_h3_request_method(C.app, "VERYLONGMETHOD", "x", "/1", &c), 0);
	pump();
	expect_response(a, 405, 0, 0);
	expect_response(b, 405, 0, 0);
	expect_response(c, 405, 0, 0);
	cr_assert_eq(lookup_calls, 0);
	expect_quiet_and_clean();
}

static uint8_t file_bytes[70000];

static void fill_file(void)
{
	uint32_t x = 0x12345678;
	for (size_t i = 0; i < sizeof(file_bytes); i++) {
		x = x * 1103515245u + 12345u;
		file_bytes[i] = (uint8_t)(x >> 16);
	}
	docroot_body = file_bytes;
	docroot_len = sizeof(file_bytes);
}

Test(h3, docroot_file_is_byte_identical, .init = setup_h3, .fini = teardown_all)
{
	fill_file();
	uint64_t id = get("/docroot-file");
	R[id / 4].cap = malloc(sizeof(file_bytes));
	R[id / 4].capmax = sizeof(file_bytes);
	uint64_t q = get("/docroot-file?v=1&x=..");
	R[q / 4].cap = malloc(sizeof(file_bytes));
	R[q / 4].capmax = sizeof(file_bytes);
	pump();
	for (int k = 0; k < 2; k++) {
		struct rec *r = &R[(k ? q : id) / 4];
		cr_assert_eq(r->status, 200);
		cr_assert_eq(r->cl, (int64_t)sizeof(file_bytes));
		cr_assert_eq(r->caplen, sizeof(file_bytes));
		cr_assert_eq(memcmp(r->cap, file_bytes, sizeof(file_bytes)), 0);
		cr_assert_eq(r->ok, 1);
		free(r->cap);
	}
	/* The lookup sees the path without its query, and every body it gave
	 * is released once the stream is done. */
	cr_assert_eq(lookup_calls, 2);
	cr_assert_str_eq(last_lookup, "/docroot-file");
	cr_assert_eq(release_calls, 2);
	cr_assert_eq(last_release, file_bytes);
	expect_quiet_and_clean();
}

Test(h3, docroot_zero_length_file, .init = setup_h3, .fini = teardown_all)
{
	docroot_body = file_bytes;
	docroot_len = 0;
	uint64_t id = get("/docroot-file");
	pump();
	expect_response(id, 200, 0, 0);
	cr_assert_eq(release_calls, 1);
	expect_quiet_and_clean();
}

Test(h3, missing_is_404, .init = setup_h3, .fini = teardown_all)
{
	uint64_t id = get("/missing");
	pump();
	expect_response(id, 404, 0, 0);
	cr_assert_eq(lookup_calls, 1);
	cr_assert_str_eq(last_lookup, "/missing");
	cr_assert_eq(release_calls, 0);
	expect_quiet_and_clean();
}

Test(h3, lookup_without_bytes_is_500, .init = setup_h3, .fini = teardown_all)
{
	uint64_t id = get("/broken");
	pump();
	expect_response(id, 500, 0, 0);
	cr_assert_eq(release_calls, 0);
	expect_quiet_and_clean();
}

Test(h3, dotdot_is_404_without_lookup, .init = setup_h3, .fini = teardown_all)
{
	static const char *paths[] = {"/../etc/passwd", "/a/../docroot-file", "/..",
				      "/docroot-file/..", "/%2e%2e/x", "/%2E./x"};
	uint64_t ids[6];
	for (int i = 0; i < 6; i++)
		ids[i] = get(paths[i]);
	pump();
	for (int i = 0; i < 6; i++)
		expect_response(ids[i], 404, 0, 0);
	cr_assert_eq(lookup_calls, 0);
	expect_quiet_and_clean();
}

Test(h3, number_edges_go_to_lookup, .init = setup_h3, .fini = teardown_all)
{
	/* Over 2^40, signed, empty, or not all digits: not a generated body. */
	static const char *paths[] = {"/1099511627777", "/-1", "/", "/12a", "/99999999999999999999"};
	uint64_t ids[5];
	for (int i = 0; i < 5; i++)
		ids[i] = get(paths[i]);
	pump();
	for (int i = 0; i < 5; i++)
		expect_response(ids[i], 404, 0, 0);
	cr_assert_eq(lookup_calls, 5);
	expect_quiet_and_clean();
}

Test(h3, long_path_is_414, .init = setup_h3, .fini = teardown_all)
{
	char path[TERN_APP_MAX_PATH + 2];
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = 0; /* one byte over the limit */
	uint64_t id = get(path);
	path[TERN_APP_MAX_PATH] = 0; /* exactly the limit: looked up */
	uint64_t ok = get(path);
	pump();
	expect_response(id, 414, 0, 0);
	expect_response(ok, 404, 0, 0);
	cr_assert_eq(lookup_calls, 1);
	cr_assert_eq(strlen(last_lookup), TERN_APP_MAX_PATH);
	expect_quiet_and_clean();
}

Test(h3, hundred_concurrent_requests, .init = setup_h3, .fini = teardown_all)
{
	C.room = S.room = 4096; /* many streams blocked at once */
	uint64_t ids[100];
	char path[32];
	for (int i = 0; i < 100; i++) {
		snprintf(path, sizeof(path), "/%d", i * 997);
		ids[i] = get(path);
	}
	cr_assert_eq(tern_app_in_flight(C.app), 100);
	pump();
	for (int i = 0; i < 100; i++)
		expect_response(ids[i], 200, i * 997, (uint64_t)i * 997);
	expect_quiet_and_clean();
	/* The stream table grew past its first size and still finds all. */
	uint64_t again = get("/5");
	pump();
	expect_response(again, 200, 5, 5);
}

/* ---- stream aborts ------------------------------------------------------------------ */

Test(h3, server_reset_fails_the_request, .init = setup_h3, .fini = teardown_all)
{
	uint64_t id = get("/100000");
	pump_rounds(3);
	cr_assert_eq(R[id / 4].done_calls, 0);
	cr_assert_eq(tern_app_on_stream_reset(C.app, id, TERN_H3_REQUEST_CANCELLED), 0);
	cr_assert_eq(R[id / 4].done_calls, 1);
	cr_assert_eq(R[id / 4].ok, 0);
	cr_assert_eq(tern_app_in_flight(C.app), 0);
	/* A second reset of a finished stream is harmless. */
	cr_assert_eq(tern_app_on_stream_reset(C.app, id, 1), 0);
	cr_assert_eq(R[id / 4].done_calls, 1);
}

Test(h3, client_reset_stops_the_response, .init = setup_h3, .fini = teardown_all)
{
	C.room = S.room = 2000;
	uint64_t id = get("/1000000");
	pump_rounds(4);
	cr_assert_eq(tern_app_in_flight(S.app), 1);
	/* The client aborts its request stream: the server resets its half
	 * with H3_REQUEST_CANCELLED (RFC 9114 §4.1.2) and forgets it. */
	cr_assert_eq(tern_app_on_stream_reset(S.app, id, TERN_H3_REQUEST_CANCELLED), 0);
	cr_assert_eq(tern_app_in_flight(S.app), 0);
	struct half *h = half_find(&S, id);
	cr_assert_not_null(h);
	cr_assert_eq(h->reset, 1);
	cr_assert_eq(h->reset_code, TERN_H3_REQUEST_CANCELLED);
	cr_assert_eq(S.close_calls, 0);
}

Test(h3, stop_sending_is_answered_with_reset, .init = setup_h3, .fini = teardown_all)
{
	C.room = S.room = 2000;
	uint64_t id = get("/1000000");
	pump_rounds(4);
	cr_assert_eq(tern_app_on_stop_sending(S.app, id, 0x10c), 0);
	struct half *h = half_find(&S, id);
	cr_assert_eq(h->reset, 1);
	cr_assert_eq(h->reset_code, 0x10c);
	pump();
	/* The reset reaches the client, which fails the request. */
	cr_assert_eq(R[id / 4].done_calls, 1);
	cr_assert_eq(R[id / 4].ok, 0);
	cr_assert_eq(tern_app_in_flight(S.app), 0);
	cr_assert_eq(tern_app_in_flight(C.app), 0);
}

Test(h3, free_fails_requests_in_flight, .init = setup_h3)
{
	uint64_t a = get("/10"), b = get("/20");
	tern_app_free(C.app);
	C.app = NULL;
	cr_assert_eq(R[a / 4].done_calls, 1);
	cr_assert_eq(R[a / 4].ok, 0);
	cr_assert_eq(R[b / 4].done_calls, 1);
	cr_assert_eq(R[b / 4].ok, 0);
	tern_app_free(S.app);
}

/* ---- graceful shutdown -------------------------------------------------------------- */

Test(h3, server_shutdown_waits_for_requests, .init = setup_h3, .fini = teardown_all)
{
	C.room = S.room = 8192;
	uint64_t ids[3];
	for (int i = 0; i < 3; i++)
		ids[i] = get("/200000");
	pump_rounds(3); /* the server has seen all three requests */
	cr_assert_eq(tern_app_in_flight(S.app), 3);
	cr_assert_eq(tern_app_shutdown(S.app), 0);
	cr_assert_eq(S.close_calls, 0);
	cr_assert_eq(tern_app_shutdown(S.app), 0); /* idempotent */
	pump();
	/* H3_NO_ERROR, and only once every response was handed over whole. */
	cr_assert_eq(S.close_calls, 1);
	cr_assert_eq(S.close_code, TERN_H3_NO_ERROR);
	cr_assert_eq(S.close_unfinished, 0);
	for (int i = 0; i < 3; i++)
		expect_response(ids[i], 200, 200000, 200000);
	/* The client got the GOAWAY and sends nothing new. */
	cr_assert_eq(tern_app_h3_request(C.app, "x", "/1", NULL), TERN_ERR_STATE);
	cr_assert_eq(tern_app_shutdown(S.app), TERN_ERR_STATE);
}

Test(h3, request_after_goaway_is_rejected, .init = setup_h3, .fini = teardown_all)
{
	uint64_t a = get("/100000");
	pump_rounds(2);
	uint64_t b = get("/5"); /* sent before the client hears the GOAWAY */
	cr_assert_eq(tern_app_shutdown(S.app), 0);
	pump();
	/* RFC 9114 §5.2: a request at or past the GOAWAY id is rejected with
	 * H3_REQUEST_REJECTED, and the client learns it was not processed. */
	struct half *h = half_find(&S, b);
	cr_assert_not_null(h);
	cr_assert_eq(h->reset, 1);
	cr_assert_eq(h->reset_code, TERN_H3_REQUEST_REJECTED);
	cr_assert_eq(R[b / 4].done_calls, 1);
	cr_assert_eq(R[b / 4].ok, 0);
	expect_response(a, 200, 100000, 100000);
	cr_assert_eq(S.close_calls, 1);
	cr_assert_eq(S.close_code, TERN_H3_NO_ERROR);
	cr_assert_eq(tern_app_in_flight(C.app), 0);
}

Test(h3, server_shutdown_idle_closes_at_once, .init = setup_h3, .fini = teardown_all)
{
	cr_assert_eq(tern_app_shutdown(S.app), 0);
	cr_assert_eq(S.close_calls, 1);
	cr_assert_eq(S.close_code, TERN_H3_NO_ERROR);
}

Test(h3, server_shutdown_sends_goaway, .init = setup_h3, .fini = teardown_all)
{
	struct half *ctrl = half_find(&S, 3);
	get("/10");
	pump_rounds(1);
	cr_assert_eq(ctrl->len - ctrl->off, 0);
	cr_assert_eq(tern_app_shutdown(S.app), 0);
	/* GOAWAY (type 0x07, RFC 9114 §7.2.6) carrying the next stream id the
	 * server would take, 4: request 0 is still served. */
	cr_assert_eq(ctrl->len - ctrl->off, 3);
	cr_assert_eq(memcmp(ctrl->buf + ctrl->off, "\x07\x01\x04", 3), 0);
	pump();
	expect_response(0, 200, 10, 10);
	cr_assert_eq(S.close_code, TERN_H3_NO_ERROR);
}

Test(h3, client_shutdown_closes_after_its_requests, .init = setup_h3, .fini = teardown_all)
{
	uint64_t id = get("/50000");
	cr_assert_eq(tern_app_shutdown(C.app), 0);
	cr_assert_eq(C.close_calls, 0);
	cr_assert_eq(tern_app_h3_request(C.app, "x", "/1", NULL), TERN_ERR_STATE);
	pump();
	expect_response(id, 200, 50000, 50000);
	cr_assert_eq(C.close_calls, 1);
	cr_assert_eq(C.close_code, TERN_H3_NO_ERROR);
}

/* ---- bad peers ---------------------------------------------------------------------- */

static void inject(struct side *from, uint64_t id, const char *bytes, size_t n, int fin)
{
	struct half *h = half_get(from, id);
	half_append(h, (const uint8_t *)bytes, n);
	if (fin)
		h->fin = 1;
}

Test(h3_errors, data_frame_on_control_stream, .init = setup_h3, .fini = teardown_all)
{
	/* RFC 9114 §7.2.1: DATA on the control stream is
	 * H3_FRAME_UNEXPECTED. */
	inject(&C, 2, "\x00\x03" "abc", 5, 0);
	pump();
	cr_assert_eq(S.close_calls, 1);
	cr_assert_eq(S.close_code, H3_FRAME_UNEXPECTED);
	cr_assert_eq(S.bad_rc, 1);
	cr_assert_eq(tern_app_on_stream_data(S.app, 2, (const uint8_t *)"x", 1, 0),
		     TERN_ERR_STATE);
}

Test(h3_errors, second_settings_frame, .init = setup_h3, .fini = teardown_all)
{
	/* RFC 9114 §7.2.4: a second SETTINGS is H3_FRAME_UNEXPECTED. */
	inject(&C, 2, "\x04\x00", 2, 0);
	pump();
	cr_assert_eq(S.close_code, H3_FRAME_UNEXPECTED);
}

Test(h3_errors, control_stream_fin, .init = setup_h3, .fini = teardown_all)
{
	/* RFC 9114 §6.2.1: closing the control stream is
	 * H3_CLOSED_CRITICAL_STREAM. */
	inject(&C, 2, "", 0, 1);
	pump();
	cr_assert_eq(S.close_calls, 1);
	cr_assert_eq(S.close_code, TERN_H3_CLOSED_CRITICAL_STREAM);
}

Test(h3_errors, control_stream_reset, .init = setup_h3, .fini = teardown_all)
{
	cr_assert_eq(tern_app_on_stream_reset(S.app, 2, 0), TERN_ERR_MALFORMED);
	cr_assert_eq(S.close_code, TERN_H3_CLOSED_CRITICAL_STREAM);
}

Test(h3_errors, stop_sending_on_our_control_stream, .init = setup_h3, .fini = teardown_all)
{
	cr_assert_eq(tern_app_on_stop_sending(S.app, 3, 0), TERN_ERR_MALFORMED);
	cr_assert_eq(S.close_code, TERN_H3_CLOSED_CRITICAL_STREAM);
	cr_assert_eq(S.close_calls, 1);
}

Test(h3_errors, second_control_stream, .init = setup_h3, .fini = teardown_all)
{
	/* RFC 9114 §6.2.1: only one control stream per peer. */
	inject(&C, 14, "\x00\x04\x00", 3, 0);
	pump();
	cr_assert_eq(S.close_code, TERN_H3_STREAM_CREATION_ERROR);
}

static void fake_peer_control(const char *bytes, size_t n, int fin, uint64_t code)
{
	setup_kinds(TERN_APP_H3_CLIENT, TERN_APP_H3_SERVER, 0);
	cr_assert_eq(tern_app_on_established(S.app), 0);
	cr_assert_eq(tern_app_on_stream_open(S.app, 2), 0);
	cr_assert_eq(tern_app_on_stream_data(S.app, 2, (const uint8_t *)bytes, n, fin),
		     TERN_ERR_MALFORMED);
	cr_assert_eq(S.close_calls, 1);
	cr_assert_eq(S.close_code, code, "got 0x%llx", (unsigned long long)S.close_code);
}

Test(h3_errors, first_frame_not_settings, .fini = teardown_all)
{
	/* RFC 9114 §6.2.1: the first control frame must be SETTINGS. */
	fake_peer_control("\x00\x07\x01\x00", 4, 0, H3_MISSING_SETTINGS);
}

Test(h3_errors, settings_with_bad_length, .fini = teardown_all)
{
	/* A SETTINGS payload that ends inside a setting (RFC 9114 §7.1:
	 * H3_FRAME_ERROR). */
	fake_peer_control("\x00\x04\x01\x40", 4, 0, H3_FRAME_ERROR);
}

/* What a server does with one bad stream from an otherwise good client:
 * the exact connection error (0: none), or the stream error it answers. */
struct bad_stream {
	const char *name;
	uint64_t id;
	const char *bytes;
	size_t n;
	int fin;
	uint64_t close_code, stream_code;
};

static const struct bad_stream bad_streams[] = {
	/* RFC 9114 §4.1: a request must start with HEADERS; nghttp3 reports
	 * an empty or DATA-first request stream as H3_FRAME_UNEXPECTED. */
	{"empty request", 0, "", 0, 1, H3_FRAME_UNEXPECTED, 0},
	{"data before headers", 0, "\x00\x01" "a", 3, 1, H3_FRAME_UNEXPECTED, 0},
	/* §7.2.4, §7.2.6: SETTINGS and GOAWAY belong on the control stream. */
	{"settings on request", 0, "\x04\x00", 2, 1, H3_FRAME_UNEXPECTED, 0},
	{"goaway on request", 0, "\x07\x01\x00", 3, 0, H3_FRAME_UNEXPECTED, 0},
	/* RFC 9204 §2.2.3: a field section that cannot be decoded. */
	{"truncated field section", 0, "\x01\x05" "ab", 4, 1, QPACK_DECOMPRESSION_FAILED, 0},
	{"bad qpack prefix", 0, "\x01\x03\x00\x00\xff", 5, 1, QPACK_DECOMPRESSION_FAILED, 0},
	/* RFC 9114 §4.3.1: no pseudo-header fields is a malformed request,
	 * a stream error H3_MESSAGE_ERROR. */
	{"request without fields", 0, "\x01\x02\x00\x00", 4, 1, 0, H3_MESSAGE_ERROR},
	/* §6.2: an unknown stream type is stopped with
	 * TERN_H3_STREAM_CREATION_ERROR; §6.2.2: a client may not push. */
	{"unknown uni type", 14, "\x21\x01\x02", 3, 1, 0, TERN_H3_STREAM_CREATION_ERROR},
	{"push stream from client", 14, "\x01\x00", 2, 0, TERN_H3_STREAM_CREATION_ERROR, 0},
	/* §6.2.1 via RFC 9204 §4.2: QPACK streams are critical. */
	{"qpack encoder fin", 6, "", 0, 1, TERN_H3_CLOSED_CRITICAL_STREAM, 0},
};

Test(h3_errors, bad_streams_get_exact_codes, .fini = teardown_all)
{
	for (size_t i = 0; i < sizeof(bad_streams) / sizeof(bad_streams[0]); i++) {
		const struct bad_stream *b = &bad_streams[i];
		setup_h3();
		inject(&C, b->id, b->bytes, b->n, b->fin);
		pump();
		if (b->close_code) {
			cr_assert_eq(S.close_calls, 1, "%s", b->name);
			cr_assert_eq(S.close_code, b->close_code, "%s: 0x%llx", b->name,
				     (unsigned long long)S.close_code);
			cr_assert_eq(S.bad_rc, 1, "%s", b->name);
		} else {
			cr_assert_eq(S.close_calls, 0, "%s", b->name);
			cr_assert_eq(S.bad_rc, 0, "%s", b->name);
			struct half *h = half_find(&S, b->id);
			cr_assert_not_null(h, "%s", b->name);
			cr_assert_eq(h->stop, 1, "%s", b->name);
			cr_assert_eq(h->stop_code, b->stream_code, "%s", b->name);
			/* A bidi stream is also reset, and forgotten. */
			cr_assert_eq(h->reset, (b->id & 2) == 0, "%s", b->name);
			if (h->reset)
				cr_assert_eq(h->reset_code, b->stream_code, "%s", b->name);
			cr_assert_eq(tern_app_in_flight(S.app), 0, "%s", b->name);
		}
		teardown_all();
	}
}

Test(h3_errors, data_on_streams_the_peer_cannot_send_on, .fini = teardown_all)
{
	/* Server: any server-initiated id (own uni streams, and bidi ones
	 * HTTP/3 never opens, RFC 9114 §6.1). Client: its own uni streams, a
	 * request it never made, a server-initiated bidi stream. */
	static const struct { int client; uint64_t id; } cases[] = {
		{0, 1}, {0, 3}, {0, 5}, {0, 401}, {0, 403},
		{1, 2}, {1, 6}, {1, 400}, {1, 1}, {1, 5},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		setup_h3();
		struct side *x = cases[i].client ? &C : &S;
		cr_assert_eq(tern_app_on_stream_data(x->app, cases[i].id,
						     (const uint8_t *)"\x01\x02\x00\x00", 4, 0),
			     TERN_ERR_MALFORMED, "case %zu", i);
		cr_assert_eq(x->close_calls, 1);
		cr_assert_eq(x->close_code, TERN_H3_STREAM_CREATION_ERROR, "case %zu: 0x%llx", i,
			     (unsigned long long)x->close_code);
		teardown_all();
	}
}

Test(h3_errors, random_garbage_never_crashes, .fini = teardown_all)
{
	uint32_t x = 99;
	int closed = 0;
	for (int round = 0; round < 300; round++) {
		setup_kinds(TERN_APP_H3_CLIENT, TERN_APP_H3_SERVER, 1);
		uint8_t junk[96];
		size_t n = 1 + round % sizeof(junk);
		for (size_t i = 0; i < n; i++) {
			x = x * 1664525u + 1013904223u;
			junk[i] = (uint8_t)(x >> 24);
		}
		/* Garbage after a valid start on the control stream, on a fresh
		 * unidirectional stream, and as a request. */
		uint64_t id = (uint64_t[]){2, 14, 0, 4}[round % 4];
		inject(&C, id, (const char *)junk, n, round & 1);
		pump();
		if (S.close_calls) {
			closed++;
			cr_assert_eq(S.close_calls, 1);
			cr_assert((S.close_code >= 0x100 && S.close_code <= 0x110) ||
				  (S.close_code >= 0x200 && S.close_code <= 0x202),
				  "code 0x%llx", (unsigned long long)S.close_code);
		}
		teardown_all();
	}
	/* Unknown frame and stream types are ignored (RFC 9114 §9), so only
	 * part of the rounds end the connection. */
	cr_assert_gt(closed, 50);
}

static uint32_t chaos_x = 7;

static uint32_t chaos(uint32_t n)
{
	chaos_x = chaos_x * 1664525u + 1013904223u;
	return (chaos_x >> 8) % n;
}

static int h3_code(uint64_t c)
{
	return (c >= 0x100 && c <= 0x110) || (c >= 0x200 && c <= 0x202);
}

/* Random resets, STOP_SENDING, spurious writable calls, junk and shutdowns
 * in the middle of a busy exchange: nothing may crash (nghttp3 asserts on
 * misuse), no request may be reported twice, every close carries an H3
 * code. */
Test(h3_errors, chaos_of_stream_events, .fini = teardown_all)
{
	for (int round = 0; round < 150; round++) {
		setup_h3();
		C.room = S.room = 1 + chaos(6000);
		C.chunk = S.chunk = 1 + chaos(3000);
		char path[32];
		for (int i = 0; i < 6; i++) {
			snprintf(path, sizeof(path), "/%u", chaos(200000));
			get(path);
		}
		for (int step = 0; step < 40; step++) {
			struct side *x = chaos(2) ? &C : &S;
			uint64_t id = chaos(32);
			switch (chaos(7)) {
			case 0:
				tern_app_on_stream_reset(x->app, id, 0x100 + chaos(16));
				break;
			case 1:
				tern_app_on_stop_sending(x->app, id, 0x100 + chaos(16));
				break;
			case 2:
				tern_app_on_stream_writable(x->app, id);
				break;
			case 3: {
				char junk[8];
				for (int k = 0; k < 8; k++)
					junk[k] = (char)chaos(256);
				inject(x->peer, id, junk, 1 + chaos(8), chaos(2));
				break;
			}
			case 4:
				if (!chaos(4))
					tern_app_shutdown(x->app);
				break;
			default:
				pump_rounds(1);
			}
		}
		pump();
		for (int i = 0; i < 6; i++)
			cr_assert_leq(R[i].done_calls, 1, "round %d", round);
		cr_assert_leq(C.close_calls, 1);
		cr_assert_leq(S.close_calls, 1);
		cr_assert(!C.close_calls || h3_code(C.close_code));
		cr_assert(!S.close_calls || h3_code(S.close_code));
		teardown_all();
	}
}

/* ---- perf --------------------------------------------------------------------------- */

Test(perf, one_megabyte_down_64k_up, .init = setup_perf, .fini = teardown_all)
{
	S.check_fill = 1;
	uint64_t id = UINT64_MAX;
	cr_assert_eq(tern_app_perf_request(C.app, 1048576, 65536, &id), 0);
	cr_assert_eq(id, 0);
	/* The request starts with the 8-byte big-endian size. */
	struct half *h = half_find(&C, 0);
	cr_assert_geq(h->len, 8);
	cr_assert_eq(memcmp(h->buf, "\x00\x00\x00\x00\x00\x10\x00\x00", 8), 0);
	pump();
	cr_assert_eq(P[0].calls, 1);
	cr_assert_eq(P[0].down, 1048576);
	cr_assert_eq(P[0].up, 65536);
	cr_assert_eq(P[0].ok, 1);
	cr_assert_eq(half_find(&S, 0)->total, 1048576);
	cr_assert_eq(S.fill_errors, 0);
	cr_assert_eq(half_find(&C, 0)->total, 65536 + 8);
	expect_quiet_and_clean();
}

Test(perf, empty_exchange, .init = setup_perf, .fini = teardown_all)
{
	cr_assert_eq(tern_app_perf_request(C.app, 0, 0, NULL), 0);
	pump();
	cr_assert_eq(P[0].calls, 1);
	cr_assert_eq(P[0].down, 0);
	cr_assert_eq(P[0].up, 0);
	cr_assert_eq(P[0].ok, 1);
	/* The server sent nothing but its FIN. */
	struct half *h = half_find(&S, 0);
	cr_assert_eq(h->len, 0);
	cr_assert_eq(h->fin, 1);
	expect_quiet_and_clean();
}

Test(perf, many_small_windows, .init = setup_perf, .fini = teardown_all)
{
	C.room = S.room = 3;
	C.take = S.take = 2;
	C.chunk = S.chunk = 1;
	S.check_fill = 1;
	for (int i = 0; i < 10; i++)
		cr_assert_eq(tern_app_perf_request(C.app, (uint64_t)i * 101, (uint64_t)i * 7, NULL), 0);
	pump();
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(P[i].calls, 1);
		cr_assert_eq(P[i].down, (uint64_t)i * 101);
		cr_assert_eq(P[i].up, (uint64_t)i * 7);
		cr_assert_eq(P[i].ok, 1);
	}
	/* The server's bytes are the fill pattern. */
	cr_assert_eq(half_find(&S, 36)->total, 909);
	cr_assert_eq(S.fill_errors, 0);
	expect_quiet_and_clean();
}

Test(perf, short_request_is_reset, .init = setup_perf, .fini = teardown_all)
{
	/* FIN after 3 of the 8 size bytes: the server resets its half. */
	inject(&C, 0, "\x00\x00\x01", 3, 1);
	pump();
	struct half *h = half_find(&S, 0);
	cr_assert_not_null(h);
	cr_assert_eq(h->reset, 1);
	cr_assert_eq(h->reset_code, TERN_PERF_REQUEST_ERROR);
	cr_assert_eq(tern_app_in_flight(S.app), 0);
	cr_assert_eq(S.close_calls, 0);
}

Test(perf, uni_upload_is_discarded, .init = setup_perf, .fini = teardown_all)
{
	inject(&C, 2, "0123456789", 10, 1);
	pump();
	cr_assert_eq(tern_app_in_flight(S.app), 0);
	cr_assert_eq(S.nh, 0); /* no reply of any kind */
}

Test(perf, server_reset_fails_request, .init = setup_perf, .fini = teardown_all)
{
	cr_assert_eq(tern_app_perf_request(C.app, 1000000, 0, NULL), 0);
	pump_rounds(4);
	cr_assert_eq(tern_app_on_stream_reset(C.app, 0, 5), 0);
	cr_assert_eq(P[0].calls, 1);
	cr_assert_eq(P[0].ok, 0);
	cr_assert_lt(P[0].down, 1000000);
	cr_assert_eq(tern_app_in_flight(C.app), 0);
}

Test(perf, stop_sending_resets_the_download, .init = setup_perf, .fini = teardown_all)
{
	S.room = 1000;
	cr_assert_eq(tern_app_perf_request(C.app, 1000000, 0, NULL), 0);
	pump_rounds(3);
	cr_assert_eq(tern_app_in_flight(S.app), 1);
	cr_assert_eq(tern_app_on_stop_sending(S.app, 0, 9), 0);
	struct half *h = half_find(&S, 0);
	cr_assert_eq(h->reset, 1);
	cr_assert_eq(h->reset_code, 9); /* RFC 9000 §3.5: the same code */
	cr_assert_eq(tern_app_in_flight(S.app), 0);
	pump();
	cr_assert_eq(P[0].calls, 1);
	cr_assert_eq(P[0].ok, 0);
	cr_assert_eq(tern_app_in_flight(C.app), 0);
}

Test(perf, shutdown_closes_with_zero, .init = setup_perf, .fini = teardown_all)
{
	cr_assert_eq(tern_app_perf_request(C.app, 300000, 10, NULL), 0);
	pump_rounds(2);
	cr_assert_eq(tern_app_shutdown(S.app), 0);
	cr_assert_eq(S.close_calls, 0);
	/* A request that arrives after the shutdown is refused. */
	inject(&C, 4, "\x00\x00\x00\x00\x00\x00\x00\x01", 8, 1);
	pump();
	cr_assert_eq(half_find(&S, 4)->reset, 1);
	cr_assert_eq(P[0].ok, 1);
	cr_assert_eq(S.close_calls, 1);
	cr_assert_eq(S.close_code, TERN_PERF_NO_ERROR);
	cr_assert_eq(tern_app_perf_request(C.app, 1, 1, NULL), 0);
	cr_assert_eq(tern_app_shutdown(C.app), 0);
	cr_assert_eq(C.close_calls, 0);
	cr_assert_eq(tern_app_perf_request(C.app, 1, 1, NULL), TERN_ERR_STATE);
}

Test(perf, perf_client_free_fails_requests, .init = setup_perf)
{
	cr_assert_eq(tern_app_perf_request(C.app, 10, 10, NULL), 0);
	tern_app_free(C.app);
	C.app = NULL;
	cr_assert_eq(P[0].calls, 1);
	cr_assert_eq(P[0].ok, 0);
	cr_assert_eq(P[0].up, 10);
	tern_app_free(S.app);
}
