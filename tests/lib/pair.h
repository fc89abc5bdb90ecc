/* An in-memory client/server pair for tests: two real engines, real TLS,
 * a fake clock, and a link that can drop, reorder and duplicate. */
#ifndef TERN_TEST_PAIR_H
#define TERN_TEST_PAIR_H

#include "tern/conn.h"
#include "tern/tls.h"

#define PAIR_QMAX 8192

struct pair_dgram {
	uint64_t at;
	uint16_t len;
	uint8_t data[1500];
};

struct pair_link {
	unsigned loss_pct, dup_pct, reorder_pct; /* percent */
	uint64_t delay_ns;
	struct pair_dgram *q;
	size_t n;
	uint64_t sent, dropped;
};

struct pair {
	struct tern_tls_ctx *cli_tls, *srv_tls;
	struct tern_conn *cli, *srv;
	struct tern_conn_config cli_cfg, srv_cfg;
	struct pair_link to_srv, to_cli;
	uint64_t now;
	uint64_t rng;
};

/* Creates both TLS contexts (certificates from $TERN_TEST_CERTS) and the
 * client connection; the server connection appears with the first Initial. */
void pair_init(struct pair *p, const char *alpn, const struct tern_conn_callbacks *cli_cb,
	       void *cli_user, const struct tern_conn_callbacks *srv_cb, void *srv_user);
/* Moves packets and time until done(arg) says so or max_ns of fake time
 * passed. Returns 1 when done() became true. */
int pair_run(struct pair *p, int (*done)(struct pair *p, void *arg), void *arg, uint64_t max_ns);
void pair_free(struct pair *p);
void pair_rand(void *ctx, uint8_t *buf, size_t len);
uint32_t pair_rand32(struct pair *p);

#endif
