/* An in-memory client/server pair for tests: two real engines, real TLS,
 * a fake clock, and a link that can drop, reorder and duplicate. */
#ifndef TERN_TEST_PAIR_H
#define TERN_TEST_PAIR_H

#include "tern/conn.h"
#include "tern/crypto.h"
#include "tern/tls.h"

#define PAIR_QMAX 8192

struct pair_dgram {
	uint64_t at;
	uint16_t len;
	uint8_t ecn; /* the IP ECN bits the datagram carries */
	uint8_t data[1500];
};

struct pair_link {
	unsigned loss_pct, dup_pct, reorder_pct; /* percent */
	uint64_t delay_ns;
	size_t mtu;          /* larger datagrams are dropped; 0: no limit */
	int ecn_bleach;      /* clear the ECN bits, as some middleboxes do */
	unsigned ce_pct;     /* mark this share of ECT datagrams CE */
	unsigned truncate_pct; /* cut this share of datagrams short at a random length */
	unsigned flip_pct;     /* flip one random bit in this share of datagrams */
	uint64_t ect_seen, ce_marked, too_big;
	struct pair_dgram *q;
	size_t n;
	uint64_t sent, dropped;
};

/* What the wire log knows about one packet of a datagram. */
struct pair_pkt {
	enum tern_pkt_type type;
	uint64_t pn;
	int opened;      /* 1: decrypted with the keys the pair learned */
	int eliciting;   /* an ack-eliciting frame inside (RFC 9002 §2) */
	uint64_t frames; /* bit t for each frame type t < 64 (every STREAM type sets bit 8) */
	int has_close;   /* a CONNECTION_CLOSE frame inside; its fields: */
	uint64_t close_type, close_code, close_frame_type;
	size_t close_reason_len;
	char close_reason[64];
};

#define PAIR_PKTS_MAX 4

/* One datagram a connection handed the link (logged before loss). */
struct pair_sent {
	uint64_t at; /* fake time it left the sender */
	int from_client;
	size_t len;
	size_t n_pkts;
	struct pair_pkt pkts[PAIR_PKTS_MAX];
};

#define PAIR_LOG_MAX 4096

/* Keys the pair learns from the TLS key log and the client's first
 * Initial, so tests can read and forge packets. [0] protects what the
 * server sends, [1] what the client sends. */
struct pair_keys {
	struct tern_crypto_keys initial[2], handshake[2], app[2];
	int has_initial, has_handshake[2], has_app[2];
	struct tern_cid cli_cid, srv_cid; /* SCIDs of each side's first Initial */
	uint64_t largest[2][3];           /* per sender and space, for PN decoding */
};

struct pair {
	struct tern_tls_ctx *cli_tls, *srv_tls;
	struct tern_conn *cli, *srv;
	struct tern_conn_config cli_cfg, srv_cfg;
	struct pair_link to_srv, to_cli;
	uint64_t now;
	uint64_t rng;
	/* Set up by pair_setup() only; pair_init() leaves them empty. */
	struct pair_sent *log; /* NULL: no wire log */
	size_t log_n;          /* entries logged (stops growing at PAIR_LOG_MAX) */
	struct pair_keys *keys;
};

/* Creates both TLS contexts (certificates from $TERN_TEST_CERTS) and the
 * client connection; the server connection appears with the first Initial. */
void pair_init(struct pair *p, const char *alpn, const struct tern_conn_callbacks *cli_cb,
	       void *cli_user, const struct tern_conn_callbacks *srv_cb, void *srv_user);
/* Moves packets and time until done(arg) says so or max_ns of fake time
 * passed. Returns 1 when done() became true. */
int pair_run(struct pair *p, int (*done)(struct pair *p, void *arg), void *arg, uint64_t max_ns);
void pair_free(struct pair *p);

/* ---- looking at and acting on the wire (tests/test_close.c) ------------ */

/* Like pair_init() but stops before the client connection exists, so the
 * test can edit cli_cfg / srv_cfg (transport parameters, reset key) and
 * then call pair_start(). Client and server may list different ALPNs.
 * Both sides use TLS_AES_128_GCM_SHA256, the pair learns every secret
 * from the key log, and every datagram handed to a link is logged and
 * decrypted into p->log. */
void pair_setup(struct pair *p, const char *cli_alpn, const char *srv_alpn,
		const struct tern_conn_callbacks *cli_cb, void *cli_user,
		const struct tern_conn_callbacks *srv_cb, void *srv_user);
/* Creates the client connection from cli_cfg. */
void pair_start(struct pair *p);
/* pair_run(), but the clock never passes now + max_ns (it stops there when
 * the next event is later), and the test fails instead of spinning when
 * the clock stalls: a connection keeps reporting a deadline that has
 * passed while nothing else happens (on a real clock it would never fire). */
int pair_run_checked(struct pair *p, int (*done)(struct pair *p, void *arg), void *arg,
		     uint64_t max_ns);
/* Hands one side's pending datagrams to its link at p->now (no time
 * passes). Returns how many it sent. */
int pair_flush_side(struct pair *p, int server);
/* Removes the oldest datagram queued on l into *out; 0 when l is empty. */
int pair_pop(struct pair_link *l, struct pair_dgram *out);
/* Feeds a copy of d to one side now, bypassing the link; returns what
 * tern_conn_recv() returned (0 when that side has no connection). */
int pair_inject(struct pair *p, int to_server, const uint8_t *d, size_t len);
/* Builds a 1-RTT packet as `from_client` would send it (its DCID, its
 * 1-RTT write keys, key phase 0, a 4-byte packet number) carrying the
 * given frames. Returns the datagram length, or a negative TERN_ERR_*. */
int pair_forge(struct pair *p, int from_client, uint64_t pn, const uint8_t *frames, size_t len,
	       uint8_t *out, size_t cap);
/* Decodes a datagram `from_client` sent (does not touch d). */
void pair_decode(struct pair *p, int from_client, const uint8_t *d, size_t len,
		 struct pair_sent *out);
/* Frees the server connection, as a server that lost its state. */
void pair_drop_server(struct pair *p);
/* Logs and learns keys from a datagram the test moved itself, bypassing
 * the links (tests/test_amplification.c runs its own link): from_client
 * names the sender. No-op without pair_setup(). */
void pair_log(struct pair *p, int from_client, const uint8_t *d, size_t len);
void pair_rand(void *ctx, uint8_t *buf, size_t len);
uint32_t pair_rand32(struct pair *p);

#endif
