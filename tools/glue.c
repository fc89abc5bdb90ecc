/* The engine <-> application glue (see glue.h). */
#include "glue.h"

static struct tern_conn *G(void *t)
{
	return ((struct glue *)t)->conn;
}

static int t_stream_open(void *t, int bidi, uint64_t *id)
{
	return tern_conn_stream_open(G(t), bidi, id);
}

static int t_stream_write(void *t, uint64_t id, const uint8_t *data, size_t len, int fin)
{
	return tern_conn_stream_write(G(t), id, data, len, fin);
}

static size_t t_stream_room(void *t, uint64_t id)
{
	return tern_conn_stream_room(G(t), id);
}

static int t_stream_reset(void *t, uint64_t id, uint64_t code)
{
	return tern_conn_stream_reset(G(t), id, code);
}

static int t_stream_stop(void *t, uint64_t id, uint64_t code)
{
	return tern_conn_stream_stop(G(t), id, code);
}

static void t_close(void *t, uint64_t code, const char *reason)
{
	struct glue *g = t;
	tern_conn_close(g->conn, 1, code, reason, *g->now);
}

static const struct tern_app_transport_ops transport_ops = {
	.stream_open = t_stream_open,
	.stream_write = t_stream_write,
	.stream_room = t_stream_room,
	.stream_reset = t_stream_reset,
	.stream_stop = t_stream_stop,
	.close = t_close,
};

/* The app is NULL only while it is being set up; the engine reports
 * nothing it needs then. */
#define APP(u) (((struct glue *)(u))->app)

static void cb_established(struct tern_conn *c, void *user)
{
	struct glue *g = user;
	if (!g->app && g->make_app && g->make_app(g) < 0) {
		tern_conn_close(c, 0, TERN_QUIC_INTERNAL_ERROR, "out of memory", *g->now);
		return;
	}
	if (g->app)
		tern_app_on_established(g->app);
	if (g->on_established)
		g->on_established(g);
}

static void cb_stream_open(struct tern_conn *c, void *user, uint64_t id)
{
	(void)c;
	if (APP(user))
		tern_app_on_stream_open(APP(user), id);
}

/* The app closes the connection itself when it must (app.h), so the
 * engine never needs a code from here. */
static int cb_stream_data(struct tern_conn *c, void *user, uint64_t id, const uint8_t *data,
			  size_t len, int fin)
{
	(void)c;
	if (APP(user))
		tern_app_on_stream_data(APP(user), id, data, len, fin);
	return 0;
}

static void cb_stream_reset(struct tern_conn *c, void *user, uint64_t id, uint64_t code)
{
	(void)c;
	if (APP(user))
		tern_app_on_stream_reset(APP(user), id, code);
}

static void cb_stop_sending(struct tern_conn *c, void *user, uint64_t id, uint64_t code)
{
	(void)c;
	if (APP(user))
		tern_app_on_stop_sending(APP(user), id, code);
}

static void cb_writable(struct tern_conn *c, void *user, uint64_t id)
{
	(void)c;
	if (APP(user))
		tern_app_on_stream_writable(APP(user), id);
}

/* The callbacks both tables share; the qlog one adds on_qlog, which makes
 * the engine format records, so it is only installed when asked for. */
#define GLUE_CALLBACKS                                                                 \
	.on_established = cb_established, .on_stream_open = cb_stream_open,              \
	.on_stream_data = cb_stream_data, .on_stream_reset = cb_stream_reset,            \
	.on_stop_sending = cb_stop_sending, .on_stream_writable = cb_writable

const struct tern_conn_callbacks glue_conn_callbacks = {GLUE_CALLBACKS};

static int cb_qlog(struct tern_conn *c, void *user, const char *rec, size_t len)
{
	struct glue *g = user;
	(void)c;
	if (!g || !g->qlog)
		return -1;
	fwrite(rec, 1, len, g->qlog);
	return 0;
}

const struct tern_conn_callbacks glue_conn_callbacks_qlog = {GLUE_CALLBACKS, .on_qlog = cb_qlog};

FILE *glue_qlog_open(const char *dir, const struct tern_conn *c)
{
	const struct tern_cid *id = tern_conn_odcid(c);
	char name[4096], hex[2 * TERN_MAX_CID_LEN + 1];
	for (size_t i = 0; i < id->len; i++)
		snprintf(hex + 2 * i, 3, "%02x", id->bytes[i]);
	hex[2 * id->len] = 0;
	snprintf(name, sizeof(name), "%s/%s-%s.sqlog", dir, hex, tern_conn_is_server(c) ? "server" : "client");
	FILE *f = fopen(name, "w");
	if (!f)
		fprintf(stderr, "cannot write qlog %s\n", name);
	return f;
}

int glue_app_new(struct glue *g, enum tern_app_kind kind, const struct tern_app_callbacks *cb,
		 void *user)
{
	struct tern_app_config ac = {
		.kind = kind, .ops = &transport_ops, .transport = g, .cb = cb, .user = user,
	};
	return tern_app_new(&g->app, &ac);
}

void glue_list_add(struct glue **head, struct glue *g)
{
	g->prev = NULL;
	g->next = *head;
	if (*head)
		(*head)->prev = g;
	*head = g;
}

void glue_list_del(struct glue **head, struct glue *g)
{
	if (g->prev)
		g->prev->next = g->next;
	else if (*head == g)
		*head = g->next;
	if (g->next)
		g->next->prev = g->prev;
	g->prev = g->next = NULL;
}
