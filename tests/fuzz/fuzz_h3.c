/* libFuzzer target for the application layer (include/tern/app.h): an
 * HTTP/3 or perf server or client over a fake transport that behaves as
 * the engine does (it delivers only on streams the peer may send on, in
 * order, nothing after a FIN or a reset), fed the input as stream events.
 *
 * Input: [kind][setup] then records [op][sel][len:2][data].
 *   kind bits 0-1: H3 server, H3 client, perf server, perf client.
 *   setup: bits 0-2 the per-stream send room (16 << n bytes), bit 3 wait
 *     for op 7 before on_established, bits 4-5 requests a client makes at
 *     once, bit 6 the transport has no unidirectional stream credit.
 *   op: 0 data, 1 data with FIN, 2 reset (code from the first data byte),
 *     3 STOP_SENDING, 4 writable, 5 shutdown, 6 a new request (client; the
 *     data is the path or the perf sizes), 7 on_established.
 *   sel: bits 0-1 the stream's kind (peer bidi, peer uni, our bidi, our
 *     uni), bits 2-5 its index.
 *
 * Traps on: a close made twice (the app calls ops->close at most once);
 * TERN_ERR_MALFORMED without a close before it; an entry point that acts
 * after a close instead of returning TERN_ERR_STATE; a write on a stream
 * the app may not write (the peer's uni stream, one never opened) or data
 * written after its FIN; a response reported done twice, or body after
 * done. LeakSanitizer checks that tern_app_free releases everything.
 *
 * TERN_FUZZ_WRITE_SEEDS=dir writes the seed corpus (tests/fuzz/gen-corpus);
 * TERN_FUZZ_DEBUG=1 prints what each input did. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tern/app.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                          \
	do {                              \
		if (!(c))                 \
			__builtin_trap(); \
	} while (0)

#define MAX_STREAMS 128

enum { OP_DATA, OP_FIN, OP_RESET, OP_STOP, OP_WRITABLE, OP_SHUTDOWN, OP_REQUEST, OP_ESTABLISHED };

struct tstream {
	uint64_t id;
	int ours, announced, requested;
	int rx_fin, rx_reset, stop_sent;     /* what the peer did */
	int tx_fin, tx_reset, stop_received; /* what the app did */
	uint64_t written;
	/* client callbacks */
	int status_calls, done_calls, perf_calls;
};

struct fake {
	struct tern_app *app;
	enum tern_app_kind kind;
	int client, no_uni;
	struct tstream s[MAX_STREAMS];
	size_t n;
	uint64_t next_bidi, next_uni;
	size_t room;
	int close_calls;
	uint64_t close_code;
};

static struct tstream *find(struct fake *f, uint64_t id)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->s[i].id == id)
			return &f->s[i];
	return NULL;
}

static struct tstream *add(struct fake *f, uint64_t id, int ours)
{
	struct tstream *s = find(f, id);
	if (s || f->n == MAX_STREAMS)
		return s;
	s = &f->s[f->n++];
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->ours = ours;
	return s;
}

static int initiated_by_us(const struct fake *f, uint64_t id)
{
	return (int)(id & 1) == !f->client;
}

/* ---- the transport ---------------------------------------------------------------- */

static int t_open(void *t, int bidi, uint64_t *id)
{
	struct fake *f = t;
	if ((!bidi && f->no_uni) || f->n == MAX_STREAMS)
		return TERN_ERR_LIMIT;
	uint64_t *next = bidi ? &f->next_bidi : &f->next_uni;
	*id = (uint64_t)(f->client ? 0 : 1) + (bidi ? 0 : 2) + 4 * (*next)++;
	CHECK(add(f, *id, 1));
	return 0;
}

/* The app writes only on streams it opened or on the peer's bidi streams
 * (RFC 9000 §2.1), and nothing after its own FIN. */
static struct tstream *writable(struct fake *f, uint64_t id)
{
	struct tstream *s = find(f, id);
	CHECK(s);
	CHECK(s->ours || (s->announced && !(id & 2)));
	return s;
}

static int t_write(void *t, uint64_t id, const uint8_t *data, size_t len, int fin)
{
	struct fake *f = t;
	struct tstream *s = writable(f, id);
	CHECK(!s->tx_fin || (len == 0 && !fin));
	CHECK(data || !len);
	if (s->tx_reset || s->tx_fin || s->stop_received)
		return TERN_ERR_STATE;
	size_t n = len < f->room ? len : f->room;
	s->written += n;
	if (n == len && fin)
		s->tx_fin = 1;
	return (int)n;
}

static size_t t_room(void *t, uint64_t id)
{
	struct fake *f = t;
	struct tstream *s = writable(f, id);
	return s->tx_reset || s->tx_fin || s->stop_received ? 0 : f->room;
}

static int t_reset(void *t, uint64_t id, uint64_t code)
{
	(void)code;
	struct tstream *s = writable(t, id);
	s->tx_reset = 1;
	return 0;
}

static int t_stop(void *t, uint64_t id, uint64_t code)
{
	(void)code;
	struct fake *f = t;
	struct tstream *s = find(f, id);
	/* only a stream the peer sends on can be asked to stop */
	CHECK(s && (s->announced || (s->ours && !(id & 2))));
	return 0;
}

static void t_close(void *t, uint64_t code, const char *reason)
{
	struct fake *f = t;
	CHECK(reason);
	CHECK(f->close_calls == 0);
	f->close_calls++;
	f->close_code = code;
}

static const struct tern_app_transport_ops ops = {
	t_open, t_write, t_room, t_reset, t_stop, t_close,
};

/* ---- the application's callbacks -------------------------------------------------- */

static const uint8_t file_body[300] = "tern fuzz body";

static int cb_lookup(void *user, const char *path, const uint8_t **body, size_t *len)
{
	(void)user;
	CHECK(!strstr(path, "..") && !strchr(path, '?'));
	if (strcmp(path, "/file") != 0)
		return -1;
	*body = file_body;
	*len = sizeof(file_body);
	return 0;
}

static void cb_release(void *user, const uint8_t *body, size_t len)
{
	(void)user;
	CHECK(body == file_body && len == sizeof(file_body));
}

static struct tstream *client_stream(struct fake *f, uint64_t id)
{
	struct tstream *s = find(f, id);
	CHECK(s && s->ours && !(id & 2)); /* a request stream of ours */
	return s;
}

static void cb_status(void *user, uint64_t id, int status, int64_t cl)
{
	struct tstream *s = client_stream(user, id);
	CHECK(status >= 200 && status <= 999 && cl >= -1);
	CHECK(!s->done_calls && !s->status_calls++);
}

static void cb_body(void *user, uint64_t id, const uint8_t *data, size_t len)
{
	struct tstream *s = client_stream(user, id);
	CHECK(data && len);
	CHECK(s->status_calls && !s->done_calls);
}

static void cb_done(void *user, uint64_t id, int ok)
{
	struct tstream *s = client_stream(user, id);
	CHECK(!s->done_calls++);
	CHECK(!ok || s->status_calls);
}

static void cb_perf_done(void *user, uint64_t id, uint64_t down, uint64_t up, int ok)
{
	(void)down;
	(void)up;
	(void)ok;
	struct tstream *s = client_stream(user, id);
	CHECK(!s->perf_calls++);
}

static const struct tern_app_callbacks cbs = {
	.lookup = cb_lookup,
	.release = cb_release,
	.on_response_status = cb_status,
	.on_body = cb_body,
	.on_response_done = cb_done,
	.on_perf_done = cb_perf_done,
};

/* ---- driving it ------------------------------------------------------------------- */

/* Every entry point: nothing after a close but TERN_ERR_STATE; a peer's
 * fault (TERN_ERR_MALFORMED) comes with a close. */
static void check_rc(struct fake *f, int closed_before, int rc)
{
	CHECK(rc == 0 || rc == TERN_ERR_MALFORMED || rc == TERN_ERR_NOMEM || rc == TERN_ERR_STATE ||
	      rc == TERN_ERR_LIMIT || rc == TERN_ERR_INVAL);
	if (closed_before)
		CHECK(rc == TERN_ERR_STATE && f->close_calls == 1);
	if (rc == TERN_ERR_MALFORMED)
		CHECK(f->close_calls == 1);
	uint64_t code = 0;
	CHECK(tern_app_closed(f->app, &code) == (f->close_calls > 0));
	CHECK(!f->close_calls || code == f->close_code);
}

static uint64_t stream_id(const struct fake *f, int sel)
{
	int type = sel & 3;
	uint64_t peer = f->client ? 1 : 0, us = peer ^ 1;
	uint64_t base = type == 0 ? peer : type == 1 ? peer | 2 : type == 2 ? us : us | 2;
	return base + 4 * (uint64_t)((sel >> 2) & 15);
}

static void request(struct fake *f, const uint8_t *d, size_t len)
{
	char path[64] = "/";
	uint64_t id;
	int closed = f->close_calls > 0, rc;
	if (f->kind == TERN_APP_PERF_CLIENT) {
		uint64_t down = len > 0 ? (uint64_t)d[0] << (len > 1 ? d[1] & 15 : 0) : 100;
		uint64_t up = len > 2 ? d[2] : 0;
		rc = tern_app_perf_request(f->app, down, up, &id);
	} else if (f->kind == TERN_APP_H3_CLIENT) {
		size_t n = len < sizeof(path) - 2 ? len : sizeof(path) - 2;
		memcpy(path + 1, d, n);
		path[1 + n] = 0;
		rc = tern_app_h3_request(f->app, "localhost", path, &id);
	} else {
		return;
	}
	check_rc(f, closed, rc);
	if (rc == 0)
		CHECK((find(f, id)->requested = 1));
}

/* Data or FIN from the peer, as the engine delivers it; 1 when the
 * engine would deliver nothing. */
static int peer_data(struct fake *f, struct tstream *s, const uint8_t *d, size_t len, int fin)
{
	if (!s->ours && !s->announced) {
		s->announced = 1;
		int closed = f->close_calls > 0;
		check_rc(f, closed, tern_app_on_stream_open(f->app, s->id));
	}
	if (s->rx_fin || s->rx_reset)
		return 1; /* the engine delivers nothing after either */
	s->rx_fin = fin;
	return tern_app_on_stream_data(f->app, s->id, len ? d : NULL, len, fin);
}

static void event(struct fake *f, int op, int sel, const uint8_t *d, size_t len)
{
	uint64_t id = stream_id(f, sel);
	int closed = f->close_calls > 0, rc = 0;
	/* the peer never sends on our uni streams, nor on one we did not open */
	struct tstream *s = initiated_by_us(f, id) ? find(f, id) : add(f, id, 0);
	int peer_sends = s && (!s->ours || !(id & 2));
	switch (op) {
	case OP_DATA:
	case OP_FIN:
		if (!peer_sends)
			return;
		rc = peer_data(f, s, d, len, op == OP_FIN);
		if (rc == 1)
			return;
		break;
	case OP_RESET:
		if (!peer_sends || s->rx_fin || s->rx_reset || (!s->ours && !s->announced))
			return;
		s->rx_reset = 1;
		rc = tern_app_on_stream_reset(f->app, id, len ? d[0] : 0x10c);
		break;
	case OP_STOP:
		/* the peer reads our streams and its own bidi streams */
		if (!s || (!s->ours && ((id & 2) || !s->announced)) || s->stop_sent)
			return;
		s->stop_sent = s->stop_received = 1;
		rc = tern_app_on_stop_sending(f->app, id, len ? d[0] : 0x10c);
		break;
	case OP_WRITABLE:
		if (!s || (!s->ours && ((id & 2) || !s->announced)))
			return;
		rc = tern_app_on_stream_writable(f->app, id);
		break;
	case OP_SHUTDOWN:
		rc = tern_app_shutdown(f->app);
		break;
	case OP_REQUEST:
		request(f, d, len);
		return;
	default:
		rc = tern_app_on_established(f->app);
		if (rc == TERN_ERR_STATE && !closed)
			return; /* already established: said so, nothing else */
		break;
	}
	check_rc(f, closed, rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fake f;
	const uint8_t *p = data, *end = data + size;
	if (size < 2)
		return 0;
	memset(&f, 0, sizeof(f));
	f.kind = (enum tern_app_kind)(p[0] & 3);
	f.client = f.kind == TERN_APP_H3_CLIENT || f.kind == TERN_APP_PERF_CLIENT;
	f.room = (size_t)16 << (p[1] & 7);
	f.no_uni = (p[1] >> 6) & 1;
	struct tern_app_config cfg = {
		.kind = f.kind, .ops = &ops, .transport = &f, .cb = &cbs, .user = &f,
	};
	CHECK(tern_app_new(&f.app, &cfg) == 0);
	if (!(p[1] & 8)) {
		int rc = tern_app_on_established(f.app);
		check_rc(&f, 0, rc);
	}
	for (int i = 0; i < ((p[1] >> 4) & 3); i++)
		request(&f, (const uint8_t *)"file", 4);
	p += 2;
	while (end - p >= 4) {
		int op = p[0] & 7, sel = p[1];
		size_t len = (size_t)p[2] << 8 | p[3];
		p += 4;
		if (len > (size_t)(end - p))
			len = (size_t)(end - p);
		event(&f, op, sel, p, len);
		p += len;
	}
	if (getenv("TERN_FUZZ_DEBUG")) {
		fprintf(stderr, "kind %d: closes %d code 0x%llx\n", f.kind, f.close_calls,
			(unsigned long long)f.close_code);
		for (size_t i = 0; i < f.n; i++)
			fprintf(stderr, "  stream %llu: written %llu fin %d reset %d status %d done %d\n",
				(unsigned long long)f.s[i].id, (unsigned long long)f.s[i].written,
				f.s[i].tx_fin, f.s[i].tx_reset, f.s[i].status_calls,
				f.s[i].done_calls + f.s[i].perf_calls);
	}
	tern_app_free(f.app);
	/* every request is reported done once, by tern_app_free at the latest */
	for (size_t i = 0; i < f.n; i++)
		if (f.s[i].requested)
			CHECK((f.kind == TERN_APP_H3_CLIENT ? f.s[i].done_calls : f.s[i].perf_calls) == 1);
	return 0;
}

/* ---- seeds -------------------------------------------------------------------------- */

struct seed {
	uint8_t b[2048];
	size_t n;
};

static void put(struct seed *s, const void *d, size_t len)
{
	CHECK(s->n + len <= sizeof(s->b));
	if (len)
		memcpy(s->b + s->n, d, len);
	s->n += len;
}

static void rec(struct seed *s, int op, int sel, const void *d, size_t len)
{
	uint8_t h[4] = {(uint8_t)op, (uint8_t)sel, (uint8_t)(len >> 8), (uint8_t)len};
	put(s, h, 4);
	put(s, d, len);
}

static void write_seed(const char *dir, const char *name, const struct seed *s)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *fp = fopen(path, "wb");
	if (!fp || fwrite(s->b, 1, s->n, fp) != s->n) {
		fprintf(stderr, "fuzz_h3: cannot write %s\n", path);
		exit(1);
	}
	fclose(fp);
}

/* Stream selectors: peer bidi 0, peer uni i = 1 + 4i, our bidi 2. */
#define SEL_BIDI(i) ((i) << 2)
#define SEL_UNI(i) (1 | (i) << 2)
#define SEL_OURS(i) (2 | (i) << 2)

/* RFC 9114 §6.2.1: a control stream (type 0x00) starting with SETTINGS
 * (0x04, empty); §7.2.2: a HEADERS frame (0x01) with a QPACK field section
 * (RFC 9204 §4.5) of static-table references: :method GET (17), :scheme
 * https (23), :path / (1), then :authority as a literal with a name
 * reference (0), "localhost". */
static const uint8_t control[] = {0x00, 0x04, 0x00};
static const uint8_t qpack_enc[] = {0x02};
static const uint8_t qpack_dec[] = {0x03};
static const uint8_t request_get[] = {0x01, 0x10, 0x00, 0x00, 0xd1, 0xd7, 0xc1, 0x50, 0x09, 'l',
				      'o', 'c', 'a', 'l', 'h', 'o', 's', 't'};
static const uint8_t response_200[] = {0x01, 0x03, 0x00, 0x00, 0xd9}; /* :status 200 (25) */
static const uint8_t data_frame[] = {0x00, 0x05, 'h', 'e', 'l', 'l', 'o'};
static const uint8_t goaway[] = {0x07, 0x01, 0x04};

static void write_seeds(const char *dir)
{
	struct seed s = {{0, 3}, 2};
	rec(&s, OP_DATA, SEL_UNI(0), control, sizeof(control));
	rec(&s, OP_DATA, SEL_UNI(1), qpack_enc, sizeof(qpack_enc));
	rec(&s, OP_DATA, SEL_UNI(2), qpack_dec, sizeof(qpack_dec));
	rec(&s, OP_FIN, SEL_BIDI(0), request_get, sizeof(request_get));
	rec(&s, OP_WRITABLE, SEL_BIDI(0), NULL, 0);
	write_seed(dir, "server-get", &s);
	rec(&s, OP_STOP, SEL_BIDI(0), "\x0c", 1);
	rec(&s, OP_DATA, SEL_BIDI(1), request_get, 6);
	rec(&s, OP_RESET, SEL_BIDI(1), "\x0c", 1);
	rec(&s, OP_DATA, SEL_UNI(0), goaway, sizeof(goaway)); /* GOAWAY from a client */
	rec(&s, OP_SHUTDOWN, 0, NULL, 0);
	write_seed(dir, "server-stop-reset-goaway", &s);

	s = (struct seed){{1, 3 | 1 << 4}, 2};
	rec(&s, OP_DATA, SEL_UNI(0), control, sizeof(control));
	rec(&s, OP_DATA, SEL_OURS(0), response_200, sizeof(response_200));
	rec(&s, OP_FIN, SEL_OURS(0), data_frame, sizeof(data_frame));
	rec(&s, OP_REQUEST, 0, "index.html", 10);
	rec(&s, OP_DATA, SEL_UNI(0), goaway, sizeof(goaway));
	rec(&s, OP_REQUEST, 0, "late", 4);
	write_seed(dir, "client-response-goaway", &s);

	s = (struct seed){{2, 2}, 2};
	rec(&s, OP_FIN, SEL_BIDI(0), "\x00\x00\x00\x00\x00\x00\x10\x00up", 10);
	rec(&s, OP_WRITABLE, SEL_BIDI(0), NULL, 0);
	rec(&s, OP_DATA, SEL_BIDI(1), "\x00\x00", 2);
	rec(&s, OP_RESET, SEL_BIDI(1), "\x01", 1);
	write_seed(dir, "perf-server", &s);

	s = (struct seed){{3, 2}, 2};
	rec(&s, OP_REQUEST, 0, "\x10\x04\x20", 3);
	rec(&s, OP_WRITABLE, SEL_OURS(0), NULL, 0);
	rec(&s, OP_FIN, SEL_OURS(0), file_body, 256);
	rec(&s, OP_SHUTDOWN, 0, NULL, 0);
	write_seed(dir, "perf-client", &s);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *dir = getenv("TERN_FUZZ_WRITE_SEEDS");
	if (dir) {
		write_seeds(dir);
		exit(0);
	}
	return 0;
}
