/* Internals of one connection, shared by the files of src/conn/. */
#ifndef TERN_CONN_INT_H
#define TERN_CONN_INT_H

#include "tern/cc.h"
#include "tern/conn.h"
#include "tern/crypto.h"
#include "tern/frame.h"
#include "tern/packet.h"
#include "tern/tls.h"
#include "tern/tparams.h"

/* Packet number spaces, RFC 9000 §12.3. */
enum { EP_INITIAL, EP_HANDSHAKE, EP_APP, EP_COUNT };

#define NS_PER_MS UINT64_C(1000000)
#define TIME_NONE UINT64_MAX

/* ---- range sets: sorted, disjoint [start, end) ranges, bounded ---------- */

#define RSET_MAX 32

struct rset {
	uint32_t n;
	struct {
		uint64_t start, end;
	} r[RSET_MAX];
};

/* Adds [start, end). When the set is full the lowest range is forgotten:
 * for ACKs that is the oldest information, for streams the caller sizes
 * things so it never happens. */
void rset_add(struct rset *s, uint64_t start, uint64_t end);
/* Same, but when full widens a neighbour instead of forgetting anything. */
void rset_add_keep(struct rset *s, uint64_t start, uint64_t end);
void rset_remove(struct rset *s, uint64_t start, uint64_t end);
int rset_contains(const struct rset *s, uint64_t v);
/* Removes ranges entirely below v (and trims the one spanning v). */
void rset_trim_below(struct rset *s, uint64_t v);

/* ---- byte streams (CRYPTO at each level, and STREAMs) ------------------- */

/* Send side: bytes [acked, written) live in a ring; [acked, sent) went out
 * at least once; `lost` holds ranges to send again; `acks` holds acked
 * ranges above `acked`. */
struct sendbuf {
	uint8_t *buf;
	size_t cap;       /* ring size, a power of two */
	size_t max_cap;   /* growth stops here */
	uint64_t acked;   /* everything below is acknowledged and freed */
	uint64_t sent;    /* highest offset sent once */
	uint64_t written; /* bytes the application gave us */
	struct rset lost;
	struct rset acks;
	uint8_t fin_written, fin_sent, fin_acked, fin_lost;
};

/* Receive side: `delivered` is what the application consumed; out-of-order
 * bytes wait in a ring over [delivered, delivered + cap). */
struct recvbuf {
	uint8_t *buf;
	size_t cap;
	uint64_t delivered;
	struct rset have; /* ranges buffered above delivered */
	uint64_t final_size;
	uint8_t fin_known, fin_delivered;
};

struct stream {
	uint64_t id;
	struct sendbuf send;
	struct recvbuf recv;
	uint64_t max_send;      /* peer's MAX_STREAM_DATA */
	uint64_t max_recv;      /* ours */
	uint64_t recv_window;
	uint64_t highest_recv;  /* highest offset received, for flow control */
	uint8_t local, bidi;
	uint8_t send_closed, recv_closed; /* finished or reset */
	uint8_t pending_max_stream_data, pending_reset, pending_stop, blocked_sent;
	uint64_t reset_code, stop_code;
	uint8_t queued; /* on the send queue */
	uint8_t can_recv, can_send; /* the directions this stream has at all */
	struct stream *next_send;
};

/* ---- sent packets (RFC 9002 §A.1) ---------------------------------------- */

enum {
	SF_ACK_ELICITING = 1,
	SF_IN_FLIGHT = 2,
	SF_HANDSHAKE_DONE = 4,
	SF_MAX_DATA = 8,
	SF_MAX_STREAMS_BIDI = 16,
	SF_MAX_STREAMS_UNI = 32,
	SF_PING = 64,
	SF_NEW_CID = 128,
	SF_RETIRE_CID = 256,
	SF_CLOSE = 512,
	SF_ECT0 = 1024,
	SF_MTU_PROBE = 2048,
	SF_NEW_TOKEN = 4096,
};

enum { ECN_TESTING, ECN_CAPABLE, ECN_FAILED };
#define ECN_TESTING_PACKETS 10

#define SENT_MAX_CHUNKS 4

/* A STREAM or CRYPTO range carried by a packet, to resend if it is lost. */
struct sent_chunk {
	uint64_t stream_id; /* UINT64_MAX: CRYPTO */
	uint64_t offset;
	uint32_t len;
	uint8_t fin;
	uint8_t kind; /* 0 data, 1 RESET_STREAM, 2 STOP_SENDING, 3 MAX_STREAM_DATA */
};

struct sent_pkt {
	uint64_t pn;
	uint64_t time;
	uint32_t size;
	uint16_t flags;
	uint8_t n_chunks;
	uint8_t acked;
	uint64_t largest_acked_sent; /* the largest pn an ACK in it covered */
	struct sent_chunk chunks[SENT_MAX_CHUNKS];
};

struct sent_ring {
	struct sent_pkt *p;
	size_t cap, head, len; /* oldest at head */
};

struct pn_space {
	uint64_t next_pn;
	uint64_t largest_recv; /* TERN_PN_NONE when none */
	uint64_t largest_recv_time;
	struct rset recv; /* received pns, for ACK */
	uint32_t unacked_eliciting;
	uint8_t ack_pending, ack_now;
	uint64_t ack_deadline;
	uint64_t largest_acked; /* TERN_PN_NONE when none */
	uint64_t loss_time;
	uint64_t last_eliciting_sent;
	uint32_t eliciting_in_flight;
	struct sent_ring sent;
	struct sendbuf crypto_send;
	struct recvbuf crypto_recv;
	struct tern_crypto_keys rx, tx;
	uint8_t rx_ready, tx_ready, discarded;
};

struct peer_cid {
	uint64_t seq;
	struct tern_cid cid;
	uint8_t token[16];
	uint8_t has_token, used, retire_pending;
};

#define PEER_CID_MAX 8
#define LOCAL_CID_MAX 4

struct local_cid {
	uint64_t seq;
	struct tern_cid cid;
	uint8_t token[16];
	uint8_t pending_send, retired;
};

struct tern_conn {
	struct tern_conn_config cfg;
	const struct tern_conn_callbacks *cb;
	void *user;
	enum tern_conn_state state;
	uint8_t is_server;
	uint32_t version;
	struct tern_path path;
	struct tern_tls *tls;
	uint8_t handshake_complete, handshake_confirmed, address_validated;
	uint8_t peer_tp_ready, retry_received, initial_dcid_updated;
	uint8_t pending_handshake_done;
	struct tern_cid odcid;      /* client's first DCID */
	struct tern_cid retry_scid; /* server: set when a Retry preceded us */
	struct tern_cid initial_scid_expected;
	struct tern_tparams peer_tp;
	uint8_t local_tp_buf[512];
	size_t local_tp_len;

	struct pn_space sp[EP_COUNT];
	/* 1-RTT key update, RFC 9001 §6 */
	struct tern_crypto_keys rx_next, tx_next;
	uint8_t rx_secret[TERN_SECRET_MAX_LEN], tx_secret[TERN_SECRET_MAX_LEN];
	size_t secret_len;
	uint8_t key_phase, rx_key_phase, update_pending_ack, rx_next_ready;
	uint8_t path_response_pending;
	uint8_t path_response_data[8];
	uint8_t token[256]; /* the token our Initials carry (from a Retry) */
	size_t token_len;
	uint8_t next_token[256]; /* a NEW_TOKEN token for the next connection */
	size_t next_token_len;
	uint64_t key_phase_start_pn;
	enum tern_aead_suite suite;

	/* CIDs */
	struct local_cid lcid[LOCAL_CID_MAX];
	uint32_t n_lcid;
	uint64_t next_lcid_seq;
	struct peer_cid pcid[PEER_CID_MAX];
	uint32_t n_pcid;
	struct tern_cid dcid; /* the one we send to */

	/* streams */
	struct stream **streams;
	size_t n_streams, cap_streams;
	struct stream *send_head, *send_tail;
	uint64_t next_bidi, next_uni;       /* our next stream ids */
	uint64_t peer_max_bidi, peer_max_uni; /* streams we may open (counts) */
	uint64_t max_bidi_local, max_uni_local; /* streams the peer may open (counts) */
	uint64_t opened_bidi_remote, opened_uni_remote;
	uint8_t pending_max_streams_bidi, pending_max_streams_uni;
	uint64_t closed_bidi_remote, closed_uni_remote; /* finished, for MAX_STREAMS */
	uint64_t sent_max_bidi, sent_max_uni;            /* what MAX_STREAMS said last */

	/* connection flow control */
	uint64_t max_data_send, data_sent;
	uint64_t max_data_recv, data_recv, data_consumed, recv_window;
	uint8_t pending_max_data, data_blocked_sent;

	/* recovery and congestion control (RFC 9002, src/cc/) */
	struct tern_rtt rtt;
	uint64_t first_rtt_sample_time; /* 0: no sample yet */
	uint32_t pto_count;
	uint64_t loss_timer; /* PTO or time-threshold loss */
	struct tern_cc cc;
	struct tern_pacer pacer;
	uint64_t pace_until; /* the pacer held data back until then */
	uint64_t max_ack_delay_ns;
	uint32_t probes_pending[EP_COUNT];

	/* ECN, RFC 9000 §13.4 */
	uint8_t ecn_state;           /* ECN_TESTING, ECN_CAPABLE, ECN_FAILED */
	uint32_t ecn_marked_testing; /* packets marked while testing */
	uint64_t ecn_recv[EP_COUNT][3];      /* ECT(0), ECT(1), CE we received */
	uint64_t ecn_peer[EP_COUNT][3];      /* counts the peer reported */
	uint64_t ecn_sent_ect0[EP_COUNT];    /* ECT(0) packets acknowledged */
	uint8_t ecn_seen[EP_COUNT];
	uint8_t rx_ecn, tx_ecn; /* the datagram being received / just sent */

	/* DPLPMTUD, RFC 9000 §14.3 / RFC 8899 */
	size_t mtu;             /* datagram size we use now */
	size_t mtu_probe;       /* size being probed, 0 when none */
	uint64_t mtu_probe_pn;
	uint8_t mtu_probe_inflight, mtu_probe_fails, mtu_done;

	/* amplification limit before address validation, RFC 9000 §8.1 */
	uint64_t amp_recv, amp_sent;

	/* timers */
	uint64_t idle_timeout_ns, idle_deadline, created, handshake_deadline;
	uint64_t close_deadline;
	uint64_t last_eliciting_send_idle; /* RFC 9000 §10.1 restart rule */
	uint64_t last_eliciting_sent;      /* for keepalive */

	/* close */
	struct tern_close_info close;
	uint8_t close_pending; /* send a CONNECTION_CLOSE */
	uint32_t close_rx_count, close_next_reply;
	int close_err; /* what recv returns after an error close */

	uint8_t qlog_started;
	uint8_t new_token[128];
	uint8_t new_token_len, new_token_pending;
	struct tern_conn_stats stats;
	uint64_t now;
};

/* conn.c */
void conn_enter_closing(struct tern_conn *c, int app, uint64_t code, uint64_t frame_type,
			const char *reason, enum tern_close_reason why, uint64_t now);
void conn_enter_draining(struct tern_conn *c, enum tern_close_reason why, uint64_t now);
uint64_t conn_pto_base(const struct tern_conn *c, int ep);
void conn_discard_space(struct tern_conn *c, int ep);

/* stream.c */
int sendbuf_init(struct sendbuf *b, size_t initial, size_t max);
void sendbuf_free(struct sendbuf *b);
size_t sendbuf_room(const struct sendbuf *b);
size_t sendbuf_write(struct sendbuf *b, const uint8_t *data, size_t len);
/* The next range to send: lost data first, then new data. Returns 1 with
 * off/len (len may be 0 for a bare FIN) and fin. */
int sendbuf_next(const struct sendbuf *b, uint64_t limit, uint64_t *off, size_t *len, int *fin);
void sendbuf_copy(const struct sendbuf *b, uint64_t off, uint8_t *dst, size_t len);
void sendbuf_on_sent(struct sendbuf *b, uint64_t off, size_t len, int fin);
void sendbuf_on_acked(struct sendbuf *b, uint64_t off, size_t len, int fin);
void sendbuf_on_lost(struct sendbuf *b, uint64_t off, size_t len, int fin);
int sendbuf_has_pending(const struct sendbuf *b, uint64_t limit);
int recvbuf_init(struct recvbuf *b, size_t cap);
void recvbuf_free(struct recvbuf *b);
/* Stores [off, off+len) and calls deliver for every byte run now in order.
 * Returns deliver's first non-zero result, or 0. */
typedef int (*recvbuf_deliver_fn)(void *arg, const uint8_t *data, size_t len, int fin);
int recvbuf_put(struct recvbuf *b, uint64_t off, const uint8_t *data, size_t len, int fin,
		recvbuf_deliver_fn fn, void *arg);

struct stream *stream_find(struct tern_conn *c, uint64_t id);
int stream_get_or_open_remote(struct tern_conn *c, uint64_t id, struct stream **out);
struct stream *stream_new(struct tern_conn *c, uint64_t id);
void stream_queue(struct tern_conn *c, struct stream *s);
/* Tells the send scheduler (on_wake) that c has something new to send. */
static inline void conn_wake(struct tern_conn *c)
{
	if (c->cb && c->cb->on_wake)
		c->cb->on_wake(c, c->user);
}
/* Frees a stream once both its directions are finished (and it is not on
 * the send queue); a peer's stream gives its MAX_STREAMS credit back. */
void stream_check_done(struct tern_conn *c, struct stream *s);
void streams_free(struct tern_conn *c);

/* recovery.c */
int sent_ring_push(struct sent_ring *r, struct sent_pkt **out);
void sent_ring_free(struct sent_ring *r);
int recovery_on_ack(struct tern_conn *c, int ep, const struct tern_ack_frame *ack, uint64_t now);
void recovery_on_sent(struct tern_conn *c, int ep, struct sent_pkt *p);
void recovery_set_timer(struct tern_conn *c, uint64_t now);
void recovery_on_timeout(struct tern_conn *c, uint64_t now);
void recovery_discard_space(struct tern_conn *c, int ep);
uint64_t recovery_pto(const struct tern_conn *c);
int recovery_can_send(const struct tern_conn *c, size_t bytes);
void recovery_requeue(struct tern_conn *c, int ep, struct sent_pkt *p);
void recovery_init(struct tern_conn *c);

/* qlog.c */
void qlog_start(struct tern_conn *c);
void qlog_packet(struct tern_conn *c, int sent, int ep, uint64_t pn, size_t len,
		 const uint8_t *ftypes, size_t nf, uint64_t now);
/* Collects the frame types of a plaintext payload and logs the packet. */
void qlog_payload(struct tern_conn *c, int sent, int ep, uint64_t pn, size_t len,
		  const uint8_t *payload, size_t payload_len, uint64_t now);
void qlog_lost(struct tern_conn *c, int ep, uint64_t pn, uint64_t now);
void qlog_metrics(struct tern_conn *c, uint64_t now);
void qlog_key_update(struct tern_conn *c, int local, uint64_t now);
void qlog_closed(struct tern_conn *c, uint64_t now);

void recovery_on_ecn(struct tern_conn *c, int ep, const struct tern_ack_frame *ack,
		     uint64_t newly_ect0, uint64_t largest_sent_time, uint64_t now);

/* send.c */
int conn_send_datagram(struct tern_conn *c, uint8_t *buf, size_t cap, uint64_t now);

#endif
