/* The engine <-> application glue both programs share: a tern_app drives
 * one tern_conn through the transport ops, and the connection's callbacks
 * feed the app one to one (include/tern/app.h). With the endpoint, a
 * connection's app pointer (tern_endpoint_conn_app) is its struct glue. */
#ifndef TERN_TOOLS_GLUE_H
#define TERN_TOOLS_GLUE_H

#include <stdio.h>

#include "tern/app.h"
#include "tern/conn.h"

struct glue {
	struct tern_conn *conn;
	struct tern_app *app;
	const uint64_t *now; /* the program's clock, for closes the app asks for */
	/* Optional: called after the app heard that the handshake is done. */
	void (*on_established)(struct glue *g);
	/* Optional: makes g->app once the handshake is done, when the app
	 * depends on the negotiated ALPN (a server serving h3 and perf). */
	int (*make_app)(struct glue *g);
	void *user;
	void *user_worker; /* the program's per-worker state, if it has one */
	FILE *qlog; /* this connection's qlog trace, when asked for */
	struct glue *prev, *next; /* the program's list of live connections */
};

/* The callbacks to set as the endpoint's conn.cb; the _qlog variant also
 * writes each connection's qlog records to its glue's qlog file. */
extern const struct tern_conn_callbacks glue_conn_callbacks;
extern const struct tern_conn_callbacks glue_conn_callbacks_qlog;

/* Opens DIR/<odcid>-<server|client>.sqlog for a connection (NULL on error,
 * after one line on stderr). */
FILE *glue_qlog_open(const char *dir, const struct tern_conn *c);

/* Creates g's application of `kind` over g's connection; cb/user are the
 * app's own callbacks (app.h). 0 or a negative TERN_ERR_*. */
int glue_app_new(struct glue *g, enum tern_app_kind kind, const struct tern_app_callbacks *cb,
		 void *user);

/* A program's list of connections, for shutdown and metrics. */
void glue_list_add(struct glue **head, struct glue *g);
void glue_list_del(struct glue **head, struct glue *g);

#endif
