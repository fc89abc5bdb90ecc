/* tern: one QUIC connection, sans-IO (DESIGN.md §3).
 *
 * The caller owns the clock, the sockets and the randomness: it feeds
 * received datagrams with tern_conn_recv(), pulls datagrams to send with
 * tern_conn_send(), and calls tern_conn_handle_timeout() at
 * tern_conn_next_timeout(). Times are nanoseconds on any monotonic clock.
 * Nothing here talks to the OS. A connection allocates its state when it is
 * created and when a stream opens, never per packet. */
#ifndef TERN_CONN_H
#define TERN_CONN_H

#include "tern/common.h"
#include "tern/packet.h"
#include "tern/tparams.h"

struct tern_conn;
struct tern_tls_ctx;
struct tern_reset_key;

enum tern_conn_state {
	TERN_CONN_HANDSHAKE,
	TERN_CONN_ESTABLISHED,
	TERN_CONN_CLOSING,  /* we sent CONNECTION_CLOSE, RFC 9000 §10.2.1 */
	TERN_CONN_DRAINING, /* the peer closed or reset, RFC 9000 §10.2.2 */
	TERN_CONN_CLOSED,   /* nothing left to do: free it */
};

/* Why a connection ended, for metrics (tern_connections_closed_total). */
enum tern_close_reason {
	TERN_CLOSE_NONE,
	TERN_CLOSE_IDLE_TIMEOUT,
	TERN_CLOSE_LOCAL,
	TERN_CLOSE_PEER,
	TERN_CLOSE_STATELESS_RESET,
	TERN_CLOSE_HANDSHAKE_TIMEOUT,
	TERN_CLOSE_ERROR,
};

struct tern_close_info {
	enum tern_close_reason reason;
	int app;       /* 1: application close (0x1d), 0: transport (0x1c) */
	uint64_t code; /* the QUIC error code */
	uint64_t frame_type;
	char reason_phrase[64];
};

struct tern_conn_callbacks {
	/* The handshake completed (server) or was confirmed (client). */
	void (*on_established)(struct tern_conn *c, void *user);
	/* A peer-initiated stream opened. */
	void (*on_stream_open)(struct tern_conn *c, void *user, uint64_t stream_id);
	/* Stream bytes in order; data lives only during the call. The bytes
	 * count as consumed when the call returns (flow control credit goes
	 * back). A non-zero return closes the connection with that
	 * application error code. */
	int (*on_stream_data)(struct tern_conn *c, void *user, uint64_t stream_id,
			      const uint8_t *data, size_t len, int fin);
	void (*on_stream_reset)(struct tern_conn *c, void *user, uint64_t stream_id,
				uint64_t error_code);
	void (*on_stop_sending)(struct tern_conn *c, void *user, uint64_t stream_id,
				uint64_t error_code);
	/* Send-buffer room freed on a stream the application writes. */
	void (*on_stream_writable)(struct tern_conn *c, void *user, uint64_t stream_id);
	/* The connection entered closing or draining, or ended silently. */
	void (*on_close)(struct tern_conn *c, void *user, const struct tern_close_info *info);
	/* A CID of ours became valid (the endpoint routes it here) or retired. */
	void (*on_cid)(struct tern_conn *c, void *user, const struct tern_cid *cid, int added);
	/* One qlog record (JSON-SEQ: starts with 0x1e, ends with a newline),
	 * only when set. Returns non-zero while nobody takes the records yet
	 * (the trace header is then offered again with the next record). */
	int (*on_qlog)(struct tern_conn *c, void *user, const char *record, size_t len);
	/* The application gave the connection something to send (stream
	 * data, a reset, a close, a token...): whoever schedules sends asks it
	 * again (the endpoint's send list). Never calls back into the
	 * connection. */
	void (*on_wake)(struct tern_conn *c, void *user);
};

struct tern_conn_config {
	int is_server;
	uint32_t version; /* client: the version to start with */
	struct tern_tls_ctx *tls;
	const char *server_name; /* client: SNI */
	/* client: a NEW_TOKEN token from an earlier connection to this server
	 * (tern_conn_new_token), sent in our Initials (RFC 9000 §8.1.3) */
	const uint8_t *token;
	size_t token_len;
	/* Our transport parameters; the engine fills in the CIDs, the reset
	 * token and (server) the original/retry CIDs. */
	struct tern_tparams tparams;
	uint8_t scid_len;                        /* length of the CIDs we issue */
	/* Makes the CIDs we issue (scid_len bytes) when set, e.g. routable
	 * QUIC-LB CIDs naming this worker; else they are random. */
	void (*gen_cid)(void *ctx, struct tern_cid *cid);
	void *gen_cid_ctx;
	const struct tern_reset_key *reset_key;  /* derives our reset tokens */
	struct tern_rand rand;
	/* The largest datagram the path may carry (>= 1200): the engine starts
	 * at 1200 and probes up to this (DPLPMTUD, RFC 9000 §14.3). */
	size_t max_datagram;
	size_t stream_sndbuf;     /* per-stream send buffer bytes */
	uint64_t handshake_timeout_ns; /* 0: 10 s */
	int cc_algo;       /* TERN_CC_NEWRENO or TERN_CC_CUBIC (include/tern/cc.h) */
	int no_pacing;     /* send cwnd bursts unpaced (benchmarks on loopback) */
	int ecn;           /* mark ECT(0) and validate the path, RFC 9000 §13.4 */
	/* Opt-in keepalive: send a PING when nothing ack-eliciting went out
	 * for half the idle timeout, so an idle connection stays open. Off
	 * by default: RFC 9000 §10.1.2 leaves it to applications. */
	int keepalive;
	const struct tern_conn_callbacks *cb;
	void *user;
};

/* Fills cfg with safe defaults for a role (tparams included). */
void tern_conn_config_init(struct tern_conn_config *cfg, int is_server);

int tern_conn_new_client(struct tern_conn **out, const struct tern_conn_config *cfg,
			 const struct tern_path *path, uint64_t now);

/* A server connection for the client Initial `hdr` (already parsed by the
 * endpoint). scid, when not NULL, is the CID the endpoint chose for us (it
 * encodes routing); odcid, when not NULL, is the original DCID a Retry
 * token vouched for (then hdr->dcid is our Retry SCID). */
int tern_conn_new_server(struct tern_conn **out, const struct tern_conn_config *cfg,
			 const struct tern_path *path, const struct tern_pkt_hdr *hdr,
			 const struct tern_cid *scid, const struct tern_cid *odcid, uint64_t now);

void tern_conn_free(struct tern_conn *c);

/* Processes one datagram; decrypts in place. Returns 0 (including for
 * packets dropped as RFC 9000 says), or a negative error when the
 * connection closed because of it. */
int tern_conn_recv(struct tern_conn *c, uint8_t *dgram, size_t len, const struct tern_path *path,
		   uint64_t now);

/* Writes the next datagram (coalesced packets) into buf. Returns its
 * length, or 0 when nothing is to be sent now. */
int tern_conn_send(struct tern_conn *c, uint8_t *buf, size_t cap, uint64_t now);

/* The ECN codepoint (IP header bits) for the datagram tern_conn_send just
 * wrote: 2 (ECT(0)) while ECN is tested or known to work, else 0. */
int tern_conn_send_ecn(const struct tern_conn *c);

/* tern_conn_recv for datapaths that read the IP ECN bits (0..3). */
int tern_conn_recv_ecn(struct tern_conn *c, uint8_t *dgram, size_t len, const struct tern_path *path,
		       uint8_t ecn, uint64_t now);

uint64_t tern_conn_next_timeout(const struct tern_conn *c); /* UINT64_MAX: none */
void tern_conn_handle_timeout(struct tern_conn *c, uint64_t now);

enum tern_conn_state tern_conn_state(const struct tern_conn *c);
const struct tern_close_info *tern_conn_close_info(const struct tern_conn *c);
const struct tern_path *tern_conn_path(const struct tern_conn *c);
/* The client's original destination CID (names qlog traces). */
const struct tern_cid *tern_conn_odcid(const struct tern_conn *c);
int tern_conn_is_server(const struct tern_conn *c);
void *tern_conn_user(const struct tern_conn *c);
void tern_conn_set_user(struct tern_conn *c, void *user);
/* The negotiated ALPN (not NUL-terminated). */
int tern_conn_alpn(const struct tern_conn *c, const uint8_t **alpn, size_t *len);

/* ---- streams ------------------------------------------------------------ */

/* Opens a stream of ours; TERN_ERR_LIMIT when the peer's MAX_STREAMS says
 * wait. */
int tern_conn_stream_open(struct tern_conn *c, int bidi, uint64_t *stream_id);

/* Copies up to len bytes into the stream's send buffer and returns how many
 * it took; fin applies only when all of them were taken. */
int tern_conn_stream_write(struct tern_conn *c, uint64_t stream_id, const uint8_t *data,
			   size_t len, int fin);

/* Free send-buffer room on a stream (0 when full or not writable). */
size_t tern_conn_stream_room(const struct tern_conn *c, uint64_t stream_id);

int tern_conn_stream_reset(struct tern_conn *c, uint64_t stream_id, uint64_t error_code);
int tern_conn_stream_stop(struct tern_conn *c, uint64_t stream_id, uint64_t error_code);

/* ---- close ---------------------------------------------------------------- */

/* Immediate close (RFC 9000 §10.2): app selects 0x1d over 0x1c. */
int tern_conn_close(struct tern_conn *c, int app, uint64_t code, const char *reason, uint64_t now);

/* Server: sends the client a NEW_TOKEN frame with this token (RFC 9000
 * §8.1.3), resent until acknowledged. At most 128 bytes. */
int tern_conn_send_new_token(struct tern_conn *c, const uint8_t *token, size_t len);

/* Client: the last NEW_TOKEN token the server sent (0 with *len 0 when
 * none), to configure the next connection with. */
int tern_conn_new_token(const struct tern_conn *c, const uint8_t **token, size_t *len);

/* Server: the client's address was validated before the connection started
 * (a NEW_TOKEN token), so the 3x amplification limit does not apply. */
void tern_conn_set_address_validated(struct tern_conn *c);

/* Starts a 1-RTT key update (RFC 9001 §6). TERN_ERR_STATE when one may not
 * start yet. */
int tern_conn_key_update(struct tern_conn *c);

struct tern_conn_stats {
	uint64_t pkts_sent, pkts_recv, pkts_lost, pkts_dropped;
	uint64_t bytes_sent, bytes_recv;
	uint64_t stream_bytes_sent, stream_bytes_recv;
	uint64_t srtt_ns, min_rtt_ns, cwnd;
	uint64_t key_updates;
	uint64_t mtu;
	uint64_t new_tokens_received;
	uint64_t streams_open; /* streams still held (finished ones are freed) */
	uint64_t ecn_ce_seen;
	int ecn_state; /* 0 testing, 1 capable, 2 failed */
};
void tern_conn_stats(const struct tern_conn *c, struct tern_conn_stats *st);

#endif
