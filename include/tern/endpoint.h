/* tern: one worker's endpoint shard (DESIGN.md §1): the CID table, dispatch
 * of datagrams to connections, admission of new connections, Version
 * Negotiation and the stateless-reset responder with its limiter. Sans-IO
 * like the connection: the caller feeds datagrams and the clock and takes
 * datagrams to send. */
#ifndef TERN_ENDPOINT_H
#define TERN_ENDPOINT_H

#include "tern/cidtable.h"
#include "tern/conn.h"
#include "tern/reset.h"
#include "tern/token.h"

struct tern_endpoint;

/* What the endpoint did with each datagram. Every datagram lands in
 * exactly one outcome counter, so
 *   rx_datagrams == to_conn + resets_received + vn_sent + vn_too_small + vn_rate_limited
 *                 + resets_sent + reset_too_small + reset_rate_limited
 *                 + dropped_unparsable + dropped_short_initial
 *                 + dropped_bad_initial + dropped_full + dropped_failed
 *                 + dropped_other
 * (tern_endpoint_stats_outcomes() adds up the right-hand side). The
 * connection counters are separate. */
struct tern_endpoint_stats {
	uint64_t rx_datagrams;
	uint64_t to_conn;           /* delivered to a connection */
	uint64_t resets_received;   /* a stateless reset that ended one of ours */
	uint64_t vn_sent;
	uint64_t vn_too_small;      /* unknown version, datagram under 1200 bytes */
	uint64_t vn_rate_limited;
	uint64_t resets_sent;
	uint64_t reset_too_small;   /* the trigger could not get a smaller reply */
	uint64_t reset_rate_limited;
	uint64_t dropped_unparsable;
	uint64_t dropped_short_initial; /* an Initial under 1200 bytes */
	uint64_t dropped_bad_initial;   /* DCID under 8 bytes, or it does not open */
	uint64_t dropped_full;      /* connection or handshake limit reached */
	uint64_t dropped_failed;    /* creating the connection failed (memory, CID table) */
	uint64_t retry_sent;        /* an Initial without a token answered with Retry */
	uint64_t dropped_bad_token; /* a forged, foreign or expired Retry token */
	uint64_t tokens_accepted;   /* Initials whose token validated the address */
	uint64_t handshakes_in_progress;
	uint64_t dropped_other;     /* unknown CID without a reset key, 0-RTT, Handshake,
				     * VN/Retry for nobody, a client seeing an unknown version... */
	uint64_t conns_created;
	uint64_t conns_closed;
	uint64_t conns_active;
	uint64_t closed_by_reason[TERN_CLOSE_ERROR + 1];
};

/* The sum of the outcome counters, which equals rx_datagrams. */
uint64_t tern_endpoint_stats_outcomes(const struct tern_endpoint_stats *st);

/* A reply buffer of this size always holds a stateless reply: a VN echoing
 * two 255-byte CIDs (RFC 8999 §6) with two versions, or a stateless reset
 * (TERN_RESET_MAX_LEN). */
#define TERN_ENDPOINT_REPLY_MAX TERN_VN_MAX_SIZE(2)

/* The largest Initial packet the endpoint checks before it admits a
 * connection; a client Initial in a longer packet is dropped (clients pad
 * to 1200 bytes, RFC 9000 §14.1, and paths rarely carry over 1500). */
#define TERN_ENDPOINT_INITIAL_MAX 2048

struct tern_endpoint_callbacks {
	/* A server connection was created: the application attaches itself
	 * (set per-connection user data with tern_endpoint_conn_set_app). */
	void (*on_new_conn)(struct tern_endpoint *ep, struct tern_conn *c, void *user);
	/* The connection is about to be freed. */
	void (*on_conn_free)(struct tern_endpoint *ep, struct tern_conn *c, void *app);
	/* A close was sent or received (for metrics). sent=1: ours. */
	void (*on_close)(struct tern_endpoint *ep, struct tern_conn *c, void *app,
			 const struct tern_close_info *info);
};

struct tern_endpoint_config {
	/* The template for every connection: TLS context, transport
	 * parameters, randomness, limits. Its callbacks are the
	 * application's; they get the per-connection app pointer as user. */
	struct tern_conn_config conn;
	const struct tern_endpoint_callbacks *cb;
	void *user;
	size_t max_conns;
	/* NULL: no stateless resets. When set it also becomes conn.reset_key,
	 * so the tokens connections issue match the resets sent here. */
	const struct tern_reset_key *reset_key;
	uint64_t reset_rate;  /* replies per second */
	uint32_t reset_burst;
	uint64_t vn_rate;
	uint32_t vn_burst;
	uint8_t table_seed[16]; /* all zero: drawn from conn.rand */
	/* Address validation (RFC 9000 §8.1). token_key NULL: no Retry and no
	 * NEW_TOKEN. retry: off, always, or auto once handshakes in progress
	 * reach retry_threshold. */
	struct tern_token_key *token_key;
	enum { TERN_RETRY_OFF, TERN_RETRY_ALWAYS, TERN_RETRY_AUTO } retry;
	uint32_t retry_threshold;
	uint32_t max_handshakes; /* handshakes in progress at most; 0: no limit */
	uint64_t retry_token_lifetime_ns;  /* 0: 10 s */
	uint64_t new_token_lifetime_ns;    /* 0: 24 h; issuing NEW_TOKEN needs token_key */
	/* Makes server CIDs (e.g. tern_lbcid_generate naming this worker); NULL:
	 * random scid_len bytes. Also used for Retry SCIDs. */
	void (*gen_cid)(void *ctx, struct tern_cid *cid);
	void *gen_cid_ctx;
};

void tern_endpoint_config_init(struct tern_endpoint_config *cfg, int is_server);

int tern_endpoint_new(struct tern_endpoint **out, const struct tern_endpoint_config *cfg, uint64_t now);
void tern_endpoint_free(struct tern_endpoint *ep);

/* Takes one received datagram (decrypted in place). When the endpoint
 * answers statelessly (VN, stateless reset), it writes the reply into
 * reply/reply_cap (TERN_ENDPOINT_REPLY_MAX always suffices; NULL: never
 * reply) and returns its length, to go back on the trigger's path;
 * otherwise 0. Never allocates, except to admit a new connection. */
int tern_endpoint_recv(struct tern_endpoint *ep, uint8_t *dgram, size_t len,
		       const struct tern_path *path, uint64_t now, uint8_t *reply, size_t reply_cap);

/* The same for datapaths that read the IP ECN bits (0..3), which go to the
 * connection (RFC 9000 §13.4). */
int tern_endpoint_recv_ecn(struct tern_endpoint *ep, uint8_t *dgram, size_t len,
			   const struct tern_path *path, uint8_t ecn, uint64_t now, uint8_t *reply,
			   size_t reply_cap);

/* Writes the next datagram any connection wants to send and its path.
 * Returns its length, or 0 when nobody has anything to send. */
int tern_endpoint_send(struct tern_endpoint *ep, uint8_t *buf, size_t cap, struct tern_path *path,
		       uint64_t now);
/* The same, with the ECN codepoint to mark the datagram with in *ecn
 * (tern_conn_send_ecn of the connection that wrote it). */
int tern_endpoint_send_ecn(struct tern_endpoint *ep, uint8_t *buf, size_t cap, struct tern_path *path,
			   uint8_t *ecn, uint64_t now);

uint64_t tern_endpoint_next_timeout(const struct tern_endpoint *ep);
/* Runs due timers and frees connections that are done. */
void tern_endpoint_handle_timeout(struct tern_endpoint *ep, uint64_t now);

/* Client side: starts a connection to path.remote. */
int tern_endpoint_connect(struct tern_endpoint *ep, const struct tern_path *path, void *app,
			  struct tern_conn **out, uint64_t now);

/* Closes every connection (application close with code) for shutdown. */
void tern_endpoint_close_all(struct tern_endpoint *ep, uint64_t app_code, const char *reason,
			     uint64_t now);

/* After acting on a connection outside the endpoint's calls and callbacks
 * (writing to a stream from elsewhere, closing it on a timer of one's
 * own): the endpoint asks only connections something happened to for
 * datagrams, and files their timers then. */
void tern_endpoint_conn_wake(struct tern_conn *c);

void tern_endpoint_conn_set_app(struct tern_conn *c, void *app);
void *tern_endpoint_conn_app(const struct tern_conn *c);
size_t tern_endpoint_conn_count(const struct tern_endpoint *ep);
/* The config's user pointer, for the endpoint callbacks. */
void *tern_endpoint_user(const struct tern_endpoint *ep);
void tern_endpoint_stats(const struct tern_endpoint *ep, struct tern_endpoint_stats *st);

#endif
