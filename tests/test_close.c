/* RFC 9000 §10 (connection termination) on the in-memory pair: a tern
 * client against a tern server with real TLS and a fake clock. The pair
 * logs and decrypts every datagram either side sends (tests/lib/pair.c),
 * so each test checks what went on the wire as well as what each side
 * reported. Every test names the rule it checks. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "lib/pair.h"
#include "tern/frame.h"
#include "tern/reset.h"

#define MS UINT64_C(1000000)
#define SEC (1000 * MS)
#define LINK_DELAY (5 * MS)          /* one way, set by the pair */
#define MAX_ACK_DELAY (25 * MS)      /* RFC 9000 §18.2 default, both sides */
#define GRANULARITY MS               /* RFC 9002 §6.1.2 kGranularity */
#define FORGED_PN (UINT64_C(1) << 20) /* above any packet number the pair uses */

struct side {
	int established;
	int closes; /* on_close calls */
	struct tern_close_info info;
	uint64_t closed_at; /* fake time of the (first) on_close */
	enum tern_conn_state state_at_close;
	struct tern_cid cids[8]; /* CIDs this side issued, in on_cid order */
	int n_cids;
};

static struct side cli, srv;
static struct pair P;
static struct tern_reset_key reset_key;

static void on_established(struct tern_conn *c, void *user)
{
	(void)c;
	((struct side *)user)->established = 1;
}

static void on_close(struct tern_conn *c, void *user, const struct tern_close_info *ci)
{
	struct side *s = user;
	if (!s->closes++) {
		s->info = *ci;
		s->closed_at = P.now;
		s->state_at_close = tern_conn_state(c);
	}
}

static void on_cid(struct tern_conn *c, void *user, const struct tern_cid *cid, int added)
{
	(void)c;
	struct side *s = user;
	if (added && s->n_cids < 8)
		s->cids[s->n_cids++] = *cid;
}

static const struct tern_conn_callbacks cbs = {
	.on_established = on_established,
	.on_close = on_close,
	.on_cid = on_cid,
};

static void setup_alpn(const char *cli_alpn, const char *srv_alpn)
{
	memset(&cli, 0, sizeof(cli));
	memset(&srv, 0, sizeof(srv));
	pair_setup(&P, cli_alpn, srv_alpn, &cbs, &cli, &cbs, &srv);
}

static void setup(void)
{
	setup_alpn("h3", "h3");
}

static void teardown(void)
{
	pair_free(&P);
}

/* ---- helpers -------------------------------------------------------------- */

static int both_established(struct pair *p, void *arg)
{
	(void)p;
	(void)arg;
	return cli.established && srv.established;
}

static int both_closed(struct pair *p, void *arg)
{
	(void)arg;
	return p->cli && p->srv && tern_conn_state(p->cli) == TERN_CONN_CLOSED &&
	       tern_conn_state(p->srv) == TERN_CONN_CLOSED;
}

/* arg: struct want_state */
struct want_state {
	int server;
	enum tern_conn_state state;
};

static int state_reached(struct pair *p, void *arg)
{
	const struct want_state *w = arg;
	struct tern_conn *c = w->server ? p->srv : p->cli;
	return c && tern_conn_state(c) >= w->state;
}

static void run_until_state(int server, enum tern_conn_state state, uint64_t max_ns)
{
	struct want_state w = {server, state};
	cr_assert(pair_run_checked(&P, state_reached, &w, max_ns), "%s never reached state %d (is %d)",
		  server ? "server" : "client", state,
		  (server ? P.srv : P.cli) ? (int)tern_conn_state(server ? P.srv : P.cli) : -1);
}

/* Starts the client and runs the handshake to completion, then lets
 * HANDSHAKE_DONE, NEW_CONNECTION_ID and the last ACKs settle. */
static void establish(void)
{
	pair_start(&P);
	cr_assert(pair_run_checked(&P, both_established, NULL, 2 * SEC), "handshake did not complete");
	pair_run_checked(&P, NULL, NULL, 200 * MS);
	cr_assert_eq(tern_conn_state(P.cli), TERN_CONN_ESTABLISHED, "client in state %d (reason %d)",
		     tern_conn_state(P.cli), cli.info.reason);
	cr_assert_eq(tern_conn_state(P.srv), TERN_CONN_ESTABLISHED);
	cr_assert_eq(cli.closes + srv.closes, 0);
}

static void set_idle(struct tern_conn_config *cfg, int present, uint64_t ms)
{
	if (present)
		cfg->tparams.present |= TERN_TP_HAS_MAX_IDLE_TIMEOUT;
	else
		cfg->tparams.present &= ~TERN_TP_HAS_MAX_IDLE_TIMEOUT;
	cfg->tparams.max_idle_timeout = ms;
}

static int sent_eliciting(const struct pair_sent *e)
{
	for (size_t i = 0; i < e->n_pkts; i++)
		if (e->pkts[i].eliciting)
			return 1;
	return 0;
}

static int sent_opened(const struct pair_sent *e)
{
	for (size_t i = 0; i < e->n_pkts; i++)
		if (e->pkts[i].opened)
			return 1;
	return 0;
}

/* Datagrams one side handed the link at fake times in [from, to). */
static int count_sent(int from_client, uint64_t from, uint64_t to)
{
	cr_assert_lt(P.log_n, PAIR_LOG_MAX, "wire log full");
	int n = 0;
	for (size_t i = 0; i < P.log_n; i++)
		if (P.log[i].from_client == from_client && P.log[i].at >= from && P.log[i].at < to)
			n++;
	return n;
}

/* First logged datagram of a side sent at or after t, or NULL. */
static const struct pair_sent *first_sent(int from_client, uint64_t t)
{
	for (size_t i = 0; i < P.log_n; i++)
		if (P.log[i].from_client == from_client && P.log[i].at >= t)
			return &P.log[i];
	return NULL;
}

/* RFC 9000 §10.1: the idle timer restarts when a packet from the peer is
 * processed, and when sending an ack-eliciting packet if none was sent
 * since the last receive. Returns when it last restarted for one side,
 * from the wire log (a datagram arrives LINK_DELAY after it left). */
static uint64_t idle_restart(int client_side, uint64_t until)
{
	uint64_t last_recv = 0, first_send = UINT64_MAX;
	for (size_t i = 0; i < P.log_n; i++) {
		const struct pair_sent *e = &P.log[i];
		if (e->from_client != client_side && e->at + LINK_DELAY <= until && sent_opened(e) &&
		    e->at + LINK_DELAY > last_recv)
			last_recv = e->at + LINK_DELAY;
	}
	for (size_t i = 0; i < P.log_n; i++) {
		const struct pair_sent *e = &P.log[i];
		if (e->from_client == client_side && e->at >= last_recv && e->at <= until &&
		    sent_eliciting(e) && e->at < first_send)
			first_send = e->at;
	}
	return first_send != UINT64_MAX ? first_send : last_recv;
}

/* RFC 9002 §6.2.1: PTO = smoothed_rtt + max(4 * rttvar, kGranularity) +
 * max_ack_delay. The stats give smoothed_rtt only, so bound rttvar: it is
 * at least 0, and here at most max(srtt, the largest ack delay). */
static uint64_t pto_lo(struct tern_conn *c)
{
	struct tern_conn_stats st;
	tern_conn_stats(c, &st);
	cr_assert_gt(st.srtt_ns, 0, "no RTT sample");
	return st.srtt_ns + GRANULARITY + MAX_ACK_DELAY;
}

static uint64_t pto_hi(struct tern_conn *c)
{
	struct tern_conn_stats st;
	tern_conn_stats(c, &st);
	uint64_t var = st.srtt_ns > MAX_ACK_DELAY ? st.srtt_ns : MAX_ACK_DELAY;
	return st.srtt_ns + 4 * var + GRANULARITY + MAX_ACK_DELAY;
}

static void check_one_close(const struct side *s, const char *who, enum tern_close_reason why)
{
	cr_assert_eq(s->closes, 1, "%s: on_close ran %d times, want exactly once", who, s->closes);
	cr_assert_eq(s->info.reason, why, "%s: close reason %d, want %d", who, s->info.reason, why);
}

static void check_info(const struct side *s, const char *who, int app, uint64_t code,
		       uint64_t frame_type, const char *reason)
{
	cr_assert_eq(s->info.app, app, "%s: app %d, want %d", who, s->info.app, app);
	cr_assert_eq(s->info.code, code, "%s: code 0x%llx, want 0x%llx", who,
		     (unsigned long long)s->info.code, (unsigned long long)code);
	if (!app)
		cr_assert_eq(s->info.frame_type, frame_type, "%s: frame type 0x%llx, want 0x%llx", who,
			     (unsigned long long)s->info.frame_type, (unsigned long long)frame_type);
	cr_assert_str_eq(s->info.reason_phrase, reason, "%s: reason \"%s\", want \"%s\"", who,
			 s->info.reason_phrase, reason);
}

/* The packet of a logged datagram that carries CONNECTION_CLOSE. */
static const struct pair_pkt *close_pkt(const struct pair_sent *e)
{
	for (size_t i = 0; i < e->n_pkts; i++)
		if (e->pkts[i].has_close)
			return &e->pkts[i];
	return NULL;
}

static void check_close_frame(const struct pair_pkt *pk, uint64_t type, uint64_t code,
			      uint64_t frame_type, const char *reason)
{
	cr_assert_not_null(pk, "no CONNECTION_CLOSE on the wire");
	cr_assert(pk->opened);
	cr_assert_eq(pk->close_type, type, "frame 0x%llx, want 0x%llx",
		     (unsigned long long)pk->close_type, (unsigned long long)type);
	cr_assert_eq(pk->close_code, code, "error code 0x%llx, want 0x%llx",
		     (unsigned long long)pk->close_code, (unsigned long long)code);
	cr_assert_eq(pk->close_frame_type, frame_type, "frame type field 0x%llx, want 0x%llx",
		     (unsigned long long)pk->close_frame_type, (unsigned long long)frame_type);
	cr_assert_eq(pk->close_reason_len, strlen(reason));
	cr_assert_str_eq(pk->close_reason, reason);
}

static int forge(int from_client, uint64_t pn, const uint8_t *frames, size_t len, uint8_t *out)
{
	int n = pair_forge(&P, from_client, pn, frames, len, out, 1500);
	cr_assert_gt(n, 0, "forging failed: %d", n);
	return n;
}

/* ---- §10.1 idle timeout ---------------------------------------------------- */

/* Both sides end silently, each at its last restart plus want_ns. */
static void check_idle_expiry(uint64_t want_ns)
{
	cr_assert(pair_run_checked(&P, both_closed, NULL, want_ns + 10 * SEC),
		  "idle timeout never fired (cli %d, srv %d)", tern_conn_state(P.cli),
		  tern_conn_state(P.srv));
	struct side *sides[2] = {&srv, &cli};
	for (int client_side = 0; client_side < 2; client_side++) {
		struct side *s = sides[client_side];
		const char *who = client_side ? "client" : "server";
		check_one_close(s, who, TERN_CLOSE_IDLE_TIMEOUT);
		cr_assert_eq(s->state_at_close, TERN_CONN_CLOSED, "%s: idle expiry is silent: no closing",
			     who);
		uint64_t start = idle_restart(client_side, s->closed_at);
		cr_assert_geq(s->closed_at, start + want_ns, "%s: ended %lld ns early", who,
			      (long long)(start + want_ns - s->closed_at));
		cr_assert_leq(s->closed_at, start + want_ns + MS, "%s: ended %lld ns late", who,
			      (long long)(s->closed_at - start - want_ns));
		/* "silently closed": nothing at all leaves after expiry */
		cr_assert_eq(count_sent(client_side, s->closed_at, UINT64_MAX), 0,
			     "%s sent after its idle timeout", who);
	}
	/* both ended on their own: no CONNECTION_CLOSE ever crossed */
	for (size_t i = 0; i < P.log_n; i++)
		cr_assert_null(close_pkt(&P.log[i]), "a CONNECTION_CLOSE was sent");
}

Test(idle, client_smaller_value_wins, .init = setup, .fini = teardown, .timeout = 30)
{
	/* RFC 9000 §10.1: the effective value is the minimum of the two */
	set_idle(&P.cli_cfg, 1, 1000);
	set_idle(&P.srv_cfg, 1, 3000);
	establish();
	check_idle_expiry(1000 * MS);
}

Test(idle, server_smaller_value_wins, .init = setup, .fini = teardown, .timeout = 30)
{
	set_idle(&P.cli_cfg, 1, 3000);
	set_idle(&P.srv_cfg, 1, 1000);
	establish();
	check_idle_expiry(1000 * MS);
}

Test(idle, client_zero_means_no_limit_from_client, .init = setup, .fini = teardown, .timeout = 30)
{
	/* RFC 9000 §10.1: "or the sole advertised value, if only one endpoint
	 * advertises a non-zero value"; §18.2: 0 disables it for that side */
	set_idle(&P.cli_cfg, 1, 0);
	set_idle(&P.srv_cfg, 1, 1500);
	establish();
	check_idle_expiry(1500 * MS);
}

Test(idle, server_absent_means_no_limit_from_server, .init = setup, .fini = teardown, .timeout = 30)
{
	/* RFC 9000 §18.2: an omitted max_idle_timeout is the same as 0 */
	set_idle(&P.cli_cfg, 1, 1500);
	set_idle(&P.srv_cfg, 0, 0);
	establish();
	check_idle_expiry(1500 * MS);
}

Test(idle, both_zero_never_expires, .init = setup, .fini = teardown, .timeout = 30)
{
	/* RFC 9000 §18.2: idle timeout is disabled when both omit it or send 0 */
	set_idle(&P.cli_cfg, 1, 0);
	set_idle(&P.srv_cfg, 0, 0);
	establish();
	uint64_t t0 = P.now;
	pair_run_checked(&P, NULL, NULL, 3600 * SEC);
	if (P.now < t0 + 3600 * SEC)
		P.now = t0 + 3600 * SEC; /* no timer left: let an hour pass anyway */
	tern_conn_handle_timeout(P.cli, P.now);
	tern_conn_handle_timeout(P.srv, P.now);
	cr_assert_eq(tern_conn_state(P.cli), TERN_CONN_ESTABLISHED);
	cr_assert_eq(tern_conn_state(P.srv), TERN_CONN_ESTABLISHED);
	cr_assert_eq(cli.closes + srv.closes, 0);
	cr_assert_eq(count_sent(1, t0, UINT64_MAX) + count_sent(0, t0, UINT64_MAX), 0,
		     "an idle connection sent something");
}

Test(idle, never_below_three_pto, .init = setup, .fini = teardown, .timeout = 30)
{
	/* RFC 9000 §10.1: "endpoints MUST increase the idle timeout period to
	 * be at least three times the current Probe Timeout (PTO)" */
	set_idle(&P.cli_cfg, 1, 0);
	set_idle(&P.srv_cfg, 1, 1);
	/* no settling period here: 3 x PTO on this link is shorter than it */
	pair_start(&P);
	cr_assert(pair_run_checked(&P, both_established, NULL, 2 * SEC), "handshake did not complete");
	cr_assert(pair_run_checked(&P, both_closed, NULL, 10 * SEC), "idle timeout never fired");
	struct side *sides[2] = {&srv, &cli};
	struct tern_conn *conns[2] = {P.srv, P.cli};
	for (int client_side = 0; client_side < 2; client_side++) {
		struct side *s = sides[client_side];
		const char *who = client_side ? "client" : "server";
		check_one_close(s, who, TERN_CLOSE_IDLE_TIMEOUT);
		uint64_t start = idle_restart(client_side, s->closed_at);
		uint64_t lo = 3 * pto_lo(conns[client_side]), hi = 3 * pto_hi(conns[client_side]);
		cr_assert_geq(s->closed_at - start, lo, "%s: idle after %llu ns, below 3 x PTO (>= %llu)",
			      who, (unsigned long long)(s->closed_at - start), (unsigned long long)lo);
		cr_assert_leq(s->closed_at - start, hi + MS, "%s: idle after %llu ns, 3 x PTO <= %llu", who,
			      (unsigned long long)(s->closed_at - start), (unsigned long long)hi);
		cr_assert_eq(count_sent(client_side, s->closed_at, UINT64_MAX), 0);
	}
}

Test(idle, restarted_by_receipt_and_ack_eliciting_send_only, .init = setup, .fini = teardown,
     .timeout = 30)
{
	/* RFC 9000 §10.1: a received packet restarts the timer; a sent one
	 * only when it is ack-eliciting. The client sends one STREAM frame,
	 * the server acknowledges it after its ACK delay with an ACK-only
	 * packet: that send must not restart the server's timer, while its
	 * receipt restarts the client's. */
	set_idle(&P.cli_cfg, 1, 1000);
	set_idle(&P.srv_cfg, 1, 1000);
	establish();
	uint64_t t0 = P.now, id;
	cr_assert_eq(count_sent(1, t0 - 100 * MS, t0) + count_sent(0, t0 - 100 * MS, t0), 0,
		     "the pair did not settle");
	cr_assert_eq(tern_conn_stream_open(P.cli, 1, &id), 0);
	cr_assert_eq(tern_conn_stream_write(P.cli, id, (const uint8_t *)"x", 1, 1), 1);
	cr_assert(pair_run_checked(&P, both_closed, NULL, 10 * SEC), "idle timeout never fired");

	const struct pair_sent *req = first_sent(1, t0);
	cr_assert_not_null(req);
	cr_assert(sent_eliciting(req));
	cr_assert_eq(count_sent(1, t0, UINT64_MAX), 1, "the client sent more than its request");
	cr_assert_eq(count_sent(0, t0, UINT64_MAX), 1, "the server sent more than one ACK");
	const struct pair_sent *ack = first_sent(0, t0);
	cr_assert_not(sent_eliciting(ack), "the server's answer must be ACK-only");
	cr_assert(ack->pkts[0].frames & (1u << TERN_FRAME_ACK));
	uint64_t srv_recv = req->at + LINK_DELAY, cli_recv = ack->at + LINK_DELAY;
	cr_assert_gt(ack->at, srv_recv, "the ACK left at once: the case is not exercised");
	check_one_close(&srv, "server", TERN_CLOSE_IDLE_TIMEOUT);
	check_one_close(&cli, "client", TERN_CLOSE_IDLE_TIMEOUT);
	cr_assert_eq(srv.closed_at, srv_recv + 1000 * MS,
		     "server idle from %llu ns after its receive, want from the receive (the ACK-only "
		     "packet it sent %llu ns later must not restart the timer)",
		     (unsigned long long)(srv.closed_at - 1000 * MS - srv_recv),
		     (unsigned long long)(ack->at - srv_recv));
	cr_assert_eq(cli.closed_at, cli_recv + 1000 * MS,
		     "client: the received ACK must restart the timer (ended at +%lld ns)",
		     (long long)(cli.closed_at - cli_recv - 1000 * MS));
}

/* ---- §10.2 immediate close --------------------------------------------------- */

Test(immediate, application_close_reaches_peer, .init = setup, .fini = teardown, .timeout = 30)
{
	/* RFC 9000 §10.2 and §19.19: tern_conn_close(app) sends 0x1d with the
	 * code and reason; the closer enters closing, the peer draining.
	 * §10.2.3: once the handshake is confirmed the close goes in 1-RTT. */
	establish();
	uint64_t t0 = P.now;
	cr_assert_eq(tern_conn_close(P.cli, 1, 0x1234, "bye bye", P.now), 0);
	cr_assert_eq(tern_conn_state(P.cli), TERN_CONN_CLOSING);
	check_one_close(&cli, "client", TERN_CLOSE_LOCAL);
	cr_assert_eq(cli.state_at_close, TERN_CONN_CLOSING);
	check_info(&cli, "client", 1, 0x1234, 0, "bye bye");
	cr_assert_eq(tern_conn_close(P.cli, 0, 1, "again", P.now), 0, "a second close is a no-op");
	run_until_state(1, TERN_CONN_DRAINING, SEC);

	const struct pair_sent *e = first_sent(1, t0);
	cr_assert_not_null(e);
	cr_assert_eq(e->n_pkts, 1, "after confirmation: one 1-RTT packet, not %zu", e->n_pkts);
	cr_assert_eq(e->pkts[0].type, TERN_PKT_1RTT);
	check_close_frame(close_pkt(e), TERN_FRAME_CONNECTION_CLOSE_APP, 0x1234, 0, "bye bye");
	check_one_close(&srv, "server", TERN_CLOSE_PEER);
	cr_assert_eq(srv.state_at_close, TERN_CONN_DRAINING);
	check_info(&srv, "server", 1, 0x1234, 0, "bye bye");

	cr_assert(pair_run_checked(&P, both_closed, NULL, 5 * SEC), "did not reach CLOSED");
	cr_assert_eq(count_sent(0, srv.closed_at, UINT64_MAX), 0, "the draining server sent");
	check_one_close(&cli, "client", TERN_CLOSE_LOCAL);
	check_one_close(&srv, "server", TERN_CLOSE_PEER);
	check_info(&cli, "client", 1, 0x1234, 0, "bye bye");
}

/* Injects one forged 1-RTT packet with `frames` into a side and checks the
 * transport close that must follow, on both sides and on the wire. */
static void check_transport_error(int to_server, const uint8_t *frames, size_t len, uint64_t code,
				  uint64_t frame_type)
{
	establish();
	uint8_t d[1500];
	int n = forge(to_server, FORGED_PN, frames, len, d); /* from the peer */
	uint64_t t0 = P.now;
	int rv = pair_inject(&P, to_server, d, (size_t)n);
	cr_assert_eq(rv, TERN_ERR_QUIC(code), "recv returned %d, want %d (state %d)", rv,
		     TERN_ERR_QUIC(code), tern_conn_state(to_server ? P.srv : P.cli));
	struct side *closer = to_server ? &srv : &cli, *peer = to_server ? &cli : &srv;
	const char *cw = to_server ? "server" : "client", *pw = to_server ? "client" : "server";
	cr_assert_eq(tern_conn_state(to_server ? P.srv : P.cli), TERN_CONN_CLOSING);
	check_one_close(closer, cw, TERN_CLOSE_ERROR);
	check_info(closer, cw, 0, code, frame_type, "");
	run_until_state(!to_server, TERN_CONN_DRAINING, SEC);

	const struct pair_sent *e = first_sent(!to_server, t0);
	cr_assert_not_null(e);
	check_close_frame(close_pkt(e), TERN_FRAME_CONNECTION_CLOSE, code, frame_type, "");
	check_one_close(peer, pw, TERN_CLOSE_PEER);
	check_info(peer, pw, 0, code, frame_type, "");
	cr_assert(pair_run_checked(&P, both_closed, NULL, 5 * SEC), "did not reach CLOSED");
	check_one_close(closer, cw, TERN_CLOSE_ERROR);
	check_one_close(peer, pw, TERN_CLOSE_PEER);
}

Test(immediate, stream_frame_on_servers_send_only_stream, .init = setup, .fini = teardown,
     .timeout = 30)
{
	/* RFC 9000 §19.8: STREAM for a send-only stream (3: server-initiated
	 * unidirectional) is STREAM_STATE_ERROR; §19.19: the close names the
	 * frame type that caused it (0x0b: STREAM with LEN and FIN) */
	const uint8_t f[] = {0x0b, 0x03, 0x01, 'x'};
	check_transport_error(1, f, sizeof(f), TERN_QUIC_STREAM_STATE_ERROR, 0x0b);
}

Test(immediate, stream_frame_on_clients_send_only_stream, .init = setup, .fini = teardown,
     .timeout = 30)
{
	/* RFC 9000 §19.8, the other way: stream 2 is the client's own
	 * unidirectional stream */
	const uint8_t f[] = {0x0a, 0x02, 0x01, 'x'};
	check_transport_error(0, f, sizeof(f), TERN_QUIC_STREAM_STATE_ERROR, 0x0a);
}

Test(immediate, handshake_done_sent_to_server, .init = setup, .fini = teardown, .timeout = 30)
{
	/* RFC 9000 §19.20: "A server MUST treat receipt of a HANDSHAKE_DONE
	 * frame as a connection error of type PROTOCOL_VIOLATION" */
	const uint8_t f[] = {TERN_FRAME_PING, TERN_FRAME_HANDSHAKE_DONE};
	check_transport_error(1, f, sizeof(f), TERN_QUIC_PROTOCOL_VIOLATION, TERN_FRAME_HANDSHAKE_DONE);
}

Test(immediate, new_token_sent_to_server, .init = setup, .fini = teardown, .timeout = 30)
{
	/* RFC 9000 §19.7: "A server MUST treat receipt of a NEW_TOKEN frame
	 * as a connection error of type PROTOCOL_VIOLATION" */
	const uint8_t f[] = {TERN_FRAME_NEW_TOKEN, 0x02, 0xab, 0xcd};
	check_transport_error(1, f, sizeof(f), TERN_QUIC_PROTOCOL_VIOLATION, TERN_FRAME_NEW_TOKEN);
}

/* ---- §10.2.1 closing, §10.2.2 draining ----------------------------------------- */

Test(closing, flood_gets_rate_limited_replies_then_silence, .init = setup, .fini = teardown,
     .timeout = 60)
{
	/* RFC 9000 §10.2.1: in the closing state an endpoint answers packets
	 * with CONNECTION_CLOSE but "SHOULD limit the rate"; §10.2: closing
	 * lasts three PTOs, then nothing is sent. The client's packets are
	 * 10,000 forged 1-RTT PINGs, 10 us apart (all inside the closing
	 * period), then one a millisecond for a second. */
	establish();
	uint64_t t0 = P.now;
	cr_assert_eq(tern_conn_close(P.srv, 1, 0x77, "shutting down", P.now), 0);
	cr_assert_eq(pair_flush_side(&P, 1), 1, "one CONNECTION_CLOSE when closing starts");
	const struct pair_sent *first = first_sent(0, t0);
	check_close_frame(close_pkt(first), TERN_FRAME_CONNECTION_CLOSE_APP, 0x77, 0, "shutting down");

	int replies = 0, late = 0, after_first = 0;
	uint64_t ended = 0;
	const uint8_t ping[] = {TERN_FRAME_PING};
	for (uint64_t i = 0; i < 11000; i++) {
		P.now += i < 10000 ? 10000 : MS;
		if (tern_conn_next_timeout(P.srv) <= P.now)
			tern_conn_handle_timeout(P.srv, P.now);
		if (!ended && tern_conn_state(P.srv) == TERN_CONN_CLOSED)
			ended = P.now;
		uint8_t d[1500];
		int n = forge(1, FORGED_PN + i, ping, sizeof(ping), d);
		cr_assert_eq(pair_inject(&P, 1, d, (size_t)n), 0);
		size_t before = P.log_n;
		int k = pair_flush_side(&P, 1);
		cr_assert_leq(k, 1);
		if (i == 0)
			after_first = k;
		for (size_t j = before; j < P.log_n; j++)
			check_close_frame(close_pkt(&P.log[j]), TERN_FRAME_CONNECTION_CLOSE_APP, 0x77, 0,
					  "shutting down");
		replies += k;
		late += ended ? k : 0;
		P.to_cli.n = 0; /* the client never hears: it keeps "sending" */
	}
	cr_assert_eq(after_first, 1, "§10.2.1: the first packet in closing gets a CONNECTION_CLOSE");
	cr_assert_leq(replies, 100, "%d replies to 10,000 packets is not rate limited", replies);
	cr_assert_neq(ended, 0, "closing never ended");
	cr_assert_eq(late, 0, "%d CONNECTION_CLOSE sent after the closing period ended", late);
	cr_assert_eq(tern_conn_next_timeout(P.srv), UINT64_MAX, "a closed connection has no timer");
	uint64_t lo = 3 * pto_lo(P.srv), hi = 3 * pto_hi(P.srv);
	cr_assert_geq(ended - t0, lo, "closing lasted %llu ns, under 3 x PTO (>= %llu)",
		      (unsigned long long)(ended - t0), (unsigned long long)lo);
	cr_assert_leq(ended - t0, hi + MS, "closing lasted %llu ns, 3 x PTO is <= %llu",
		      (unsigned long long)(ended - t0), (unsigned long long)hi);
	check_one_close(&srv, "server", TERN_CLOSE_LOCAL);
	check_info(&srv, "server", 1, 0x77, 0, "shutting down");
}

Test(draining, peer_sends_nothing_and_ends_after_three_pto, .init = setup, .fini = teardown,
     .timeout = 30)
{
	/* RFC 9000 §10.2.2: "an endpoint in the draining state MUST NOT send
	 * any packets"; §10.2: the state lasts three PTOs. The draining
	 * server keeps receiving the client's packets meanwhile. */
	establish();
	cr_assert_eq(tern_conn_close(P.cli, 1, 0x10c, "done", P.now), 0);
	run_until_state(1, TERN_CONN_DRAINING, SEC);
	uint64_t t_drain = P.now;
	check_one_close(&srv, "server", TERN_CLOSE_PEER);
	check_info(&srv, "server", 1, 0x10c, 0, "done");
	const uint8_t ping[] = {TERN_FRAME_PING};
	uint64_t ended = 0;
	for (uint64_t i = 0; i < 2000; i++) {
		P.now += MS / 2;
		if (tern_conn_next_timeout(P.srv) <= P.now)
			tern_conn_handle_timeout(P.srv, P.now);
		if (!ended && tern_conn_state(P.srv) == TERN_CONN_CLOSED)
			ended = P.now;
		uint8_t d[1500];
		int n = forge(1, FORGED_PN + i, ping, sizeof(ping), d);
		cr_assert_eq(pair_inject(&P, 1, d, (size_t)n), 0);
		cr_assert_eq(pair_flush_side(&P, 1), 0, "the draining server sent a datagram");
	}
	cr_assert_eq(count_sent(0, t_drain, UINT64_MAX), 0);
	cr_assert_neq(ended, 0, "draining never ended");
	uint64_t lo = 3 * pto_lo(P.srv), hi = 3 * pto_hi(P.srv);
	cr_assert_geq(ended - t_drain, lo, "draining lasted %llu ns, under 3 x PTO (>= %llu)",
		      (unsigned long long)(ended - t_drain), (unsigned long long)lo);
	cr_assert_leq(ended - t_drain, hi + MS, "draining lasted %llu ns, 3 x PTO is <= %llu",
		      (unsigned long long)(ended - t_drain), (unsigned long long)hi);
	check_one_close(&srv, "server", TERN_CLOSE_PEER);
}

/* ---- §10.2.3 close during the handshake ------------------------------------- */

static int server_sent_handshake(struct pair *p, void *arg)
{
	(void)arg;
	for (size_t i = 0; i < p->log_n; i++)
		for (size_t k = 0; k < p->log[i].n_pkts; k++)
			if (!p->log[i].from_client && p->log[i].pkts[k].type == TERN_PKT_HANDSHAKE)
				return 1;
	return 0;
}

Test(handshake, server_close_goes_in_initial_and_handshake, .init = setup, .fini = teardown,
     .timeout = 30)
{
	/* RFC 9000 §10.2.3: a server that does not know whether the client has
	 * Handshake keys "SHOULD send a CONNECTION_CLOSE frame in both
	 * Handshake and Initial packets"; a 0x1d close "MUST be replaced by a
	 * CONNECTION_CLOSE of type 0x1c" there, with APPLICATION_ERROR and
	 * (§10.2.3) no reason phrase. */
	pair_start(&P);
	cr_assert(pair_run_checked(&P, server_sent_handshake, NULL, SEC));
	cr_assert_eq(tern_conn_state(P.srv), TERN_CONN_HANDSHAKE);
	uint64_t t0 = P.now;
	cr_assert_eq(tern_conn_close(P.srv, 1, 0x99, "secret app state", P.now), 0);
	check_one_close(&srv, "server", TERN_CLOSE_LOCAL);
	cr_assert_eq(pair_flush_side(&P, 1), 1, "the close is one datagram");
	const struct pair_sent *e = first_sent(0, t0);
	cr_assert_not_null(e);
	cr_assert_eq(e->n_pkts, 2, "want Initial + Handshake coalesced, got %zu packets", e->n_pkts);
	cr_assert_eq(e->pkts[0].type, TERN_PKT_INITIAL);
	cr_assert_eq(e->pkts[1].type, TERN_PKT_HANDSHAKE);
	for (int k = 0; k < 2; k++) {
		cr_assert(e->pkts[k].has_close, "packet %d has no CONNECTION_CLOSE", k);
		check_close_frame(&e->pkts[k], TERN_FRAME_CONNECTION_CLOSE, TERN_QUIC_APPLICATION_ERROR, 0,
				  "");
	}
	run_until_state(0, TERN_CONN_DRAINING, SEC);
	check_one_close(&cli, "client", TERN_CLOSE_PEER);
	check_info(&cli, "client", 0, TERN_QUIC_APPLICATION_ERROR, 0, "");
	cr_assert(pair_run_checked(&P, both_closed, NULL, 10 * SEC), "did not reach CLOSED");
	check_one_close(&cli, "client", TERN_CLOSE_PEER);
	check_one_close(&srv, "server", TERN_CLOSE_LOCAL);
}

Test(handshake, client_close_in_initial_is_padded, .init = setup, .fini = teardown, .timeout = 30)
{
	/* RFC 9000 §10.2.3: the client holds only Initial keys, so the close
	 * goes in an Initial as 0x1c APPLICATION_ERROR without reason;
	 * §14.1: "A client MUST expand the payload of all UDP datagrams
	 * carrying Initial packets to at least ... 1200 bytes" (a server
	 * MUST discard smaller ones, so an unpadded close is never heard). */
	pair_start(&P);
	cr_assert_eq(pair_flush_side(&P, 0), 1, "the client's first Initial");
	P.now += MS;
	uint64_t t0 = P.now;
	cr_assert_eq(tern_conn_close(P.cli, 1, 0x99, "secret app state", P.now), 0);
	check_one_close(&cli, "client", TERN_CLOSE_LOCAL);
	cr_assert_eq(pair_flush_side(&P, 0), 1, "the close is one datagram");
	const struct pair_sent *e = first_sent(1, t0);
	cr_assert_not_null(e);
	cr_assert_eq(e->n_pkts, 1);
	cr_assert_eq(e->pkts[0].type, TERN_PKT_INITIAL);
	check_close_frame(close_pkt(e), TERN_FRAME_CONNECTION_CLOSE, TERN_QUIC_APPLICATION_ERROR, 0, "");
	cr_assert_geq(e->len, 1200, "client Initial datagram of %zu bytes (§14.1)", e->len);
	run_until_state(1, TERN_CONN_DRAINING, SEC);
	check_one_close(&srv, "server", TERN_CLOSE_PEER);
	check_info(&srv, "server", 0, TERN_QUIC_APPLICATION_ERROR, 0, "");
	cr_assert(pair_run_checked(&P, both_closed, NULL, 10 * SEC), "did not reach CLOSED");
	check_one_close(&cli, "client", TERN_CLOSE_LOCAL);
	check_one_close(&srv, "server", TERN_CLOSE_PEER);
}

static int both_closing(struct pair *p, void *arg)
{
	(void)p;
	(void)arg;
	return cli.closes && srv.closes;
}

Test(handshake, alpn_mismatch_is_crypto_error_0x178, .fini = teardown, .timeout = 30)
{
	/* RFC 9001 §8.1: without a common application protocol the server
	 * sends the no_application_protocol alert (120); §4.8: a TLS alert
	 * closes with CRYPTO_ERROR 0x100 + alert = 0x178, in a 0x1c frame
	 * naming the CRYPTO frame that carried the ClientHello. */
	setup_alpn("hq-interop", "h3");
	pair_start(&P);
	cr_assert(pair_run_checked(&P, both_closing, NULL, 5 * SEC), "no close (cli %d, srv %d)",
		  cli.closes, srv.closes);
	check_one_close(&srv, "server", TERN_CLOSE_ERROR);
	check_info(&srv, "server", 0, 0x178, TERN_FRAME_CRYPTO, "");
	check_one_close(&cli, "client", TERN_CLOSE_PEER);
	cr_assert_eq(cli.state_at_close, TERN_CONN_DRAINING);
	check_info(&cli, "client", 0, 0x178, TERN_FRAME_CRYPTO, "");
	const struct pair_sent *e = NULL;
	for (size_t i = 0; i < P.log_n && !e; i++)
		if (!P.log[i].from_client && close_pkt(&P.log[i]))
			e = &P.log[i];
	cr_assert_not_null(e, "no CONNECTION_CLOSE from the server on the wire");
	check_close_frame(close_pkt(e), TERN_FRAME_CONNECTION_CLOSE, 0x178, TERN_FRAME_CRYPTO, "");
	cr_assert_eq(tern_conn_state(P.cli), TERN_CONN_DRAINING);
	cr_assert(pair_run_checked(&P, both_closed, NULL, 10 * SEC), "did not reach CLOSED");
	check_one_close(&srv, "server", TERN_CLOSE_ERROR);
	check_one_close(&cli, "client", TERN_CLOSE_PEER);
}

/* ---- §10.3 stateless reset ---------------------------------------------------------- */

static void setup_reset(void)
{
	setup();
	uint8_t key[32];
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(0xa0 + i);
	cr_assert_eq(tern_reset_key_init(&reset_key, key, sizeof(key)), 0);
	P.srv_cfg.reset_key = &reset_key;
	establish();
}

static void teardown_reset(void)
{
	teardown();
	tern_reset_key_clear(&reset_key);
}

/* The server loses its state; the client sends one 1-RTT datagram (its
 * trigger) that the test takes off the link. */
static struct pair_dgram lose_server_and_trigger(void)
{
	pair_drop_server(&P);
	uint64_t id;
	cr_assert_eq(tern_conn_stream_open(P.cli, 1, &id), 0);
	uint8_t data[100] = {0};
	cr_assert_eq(tern_conn_stream_write(P.cli, id, data, sizeof(data), 1), (int)sizeof(data));
	cr_assert_geq(pair_flush_side(&P, 0), 1);
	struct pair_dgram d;
	cr_assert(pair_pop(&P.to_srv, &d));
	cr_assert_eq(d.data[0] & 0xc0, 0x40, "the trigger is a short-header packet");
	P.to_srv.n = 0; /* nobody is there to receive */
	P.now += LINK_DELAY;
	return d;
}

/* RFC 9000 §10.3: the responder derives the token from the CID the
 * trigger was sent to and answers with a smaller packet ending in it. */
static int build_reset(const uint8_t *cid, size_t cid_len, size_t trigger_len, uint8_t *out)
{
	uint8_t token[TERN_RESET_TOKEN_LEN];
	cr_assert_eq(tern_reset_token(&reset_key, cid, cid_len, token), 0);
	struct tern_rand rnd = {pair_rand, &P.rng};
	int n = tern_reset_build(out, TERN_RESET_MAX_LEN, trigger_len, token, &rnd);
	cr_assert_geq(n, TERN_RESET_MIN_LEN);
	cr_assert_lt((size_t)n, trigger_len);
	return n;
}

static void check_reset_drains(uint64_t t_reset)
{
	cr_assert_eq(tern_conn_state(P.cli), TERN_CONN_DRAINING);
	check_one_close(&cli, "client", TERN_CLOSE_STATELESS_RESET);
	cr_assert_eq(cli.state_at_close, TERN_CONN_DRAINING);
	/* §10.3.1: "MUST enter the draining period and not send any further
	 * packets", even with stream data still unacknowledged */
	uint64_t ended = 0;
	while (!ended && P.now < t_reset + 10 * SEC) {
		pair_run_checked(&P, NULL, NULL, MS);
		if (tern_conn_state(P.cli) == TERN_CONN_CLOSED)
			ended = P.now;
	}
	cr_assert_neq(ended, 0, "draining never ended");
	cr_assert_eq(count_sent(1, t_reset, UINT64_MAX), 0, "the client sent after a stateless reset");
	uint64_t lo = 3 * pto_lo(P.cli), hi = 3 * pto_hi(P.cli);
	cr_assert_geq(ended - t_reset, lo, "drained for %llu ns, under 3 x PTO (>= %llu)",
		      (unsigned long long)(ended - t_reset), (unsigned long long)lo);
	cr_assert_leq(ended - t_reset, hi + MS, "drained for %llu ns, 3 x PTO is <= %llu",
		      (unsigned long long)(ended - t_reset), (unsigned long long)hi);
	check_one_close(&cli, "client", TERN_CLOSE_STATELESS_RESET);
}

Test(reset, valid_token_drains_client, .init = setup_reset, .fini = teardown_reset, .timeout = 30)
{
	/* RFC 9000 §10.3.1: a datagram whose last 16 bytes equal the token
	 * the server advertised (its transport parameter, RFC 9000 §18.2, for
	 * the CID the client uses) ends the connection: drain, send nothing */
	struct pair_dgram trig = lose_server_and_trigger();
	cr_assert_eq(memcmp(trig.data + 1, P.keys->srv_cid.bytes, P.keys->srv_cid.len), 0,
		     "the client still uses the server's first CID");
	uint8_t r[TERN_RESET_MAX_LEN];
	int n = build_reset(trig.data + 1, P.keys->srv_cid.len, trig.len, r);
	uint64_t t_reset = P.now;
	cr_assert_eq(pair_inject(&P, 0, r, (size_t)n), 0);
	check_reset_drains(t_reset);
}

Test(reset, wrong_token_is_ignored, .init = setup_reset, .fini = teardown_reset, .timeout = 30)
{
	/* RFC 9000 §10.3.1: only a datagram ending in a valid token is a
	 * reset; one that differs in its last byte is an undecryptable packet
	 * to drop. The genuine reset still works afterwards. */
	struct pair_dgram trig = lose_server_and_trigger();
	uint8_t r[TERN_RESET_MAX_LEN];
	int n = build_reset(trig.data + 1, P.keys->srv_cid.len, trig.len, r);
	r[n - 1] ^= 0x01;
	cr_assert_eq(pair_inject(&P, 0, r, (size_t)n), 0);
	cr_assert_eq(tern_conn_state(P.cli), TERN_CONN_ESTABLISHED);
	cr_assert_eq(cli.closes, 0);
	r[n - 1] ^= 0x01;
	uint64_t t_reset = P.now;
	cr_assert_eq(pair_inject(&P, 0, r, (size_t)n), 0);
	check_reset_drains(t_reset);
}

Test(reset, token_of_unused_cid_is_ignored, .init = setup_reset, .fini = teardown_reset,
     .timeout = 30)
{
	/* RFC 9000 §10.3.1: "An endpoint MUST NOT check for any stateless
	 * reset tokens associated with connection IDs it has not used". The
	 * server issued more CIDs in NEW_CONNECTION_ID; the client never sent
	 * to them, so their tokens must not end the connection. */
	cr_assert_geq(srv.n_cids, 2, "the server issued no spare CID");
	cr_assert_eq(memcmp(srv.cids[0].bytes, P.keys->srv_cid.bytes, srv.cids[0].len), 0);
	struct pair_dgram trig = lose_server_and_trigger();
	for (int i = 1; i < srv.n_cids; i++) {
		uint8_t r[TERN_RESET_MAX_LEN];
		int n = build_reset(srv.cids[i].bytes, srv.cids[i].len, trig.len, r);
		cr_assert_eq(pair_inject(&P, 0, r, (size_t)n), 0);
		cr_assert_eq(tern_conn_state(P.cli), TERN_CONN_ESTABLISHED,
			     "a reset with the token of unused CID #%d ended the connection", i);
		cr_assert_eq(cli.closes, 0);
	}
	uint8_t r[TERN_RESET_MAX_LEN];
	int n = build_reset(trig.data + 1, P.keys->srv_cid.len, trig.len, r);
	uint64_t t_reset = P.now;
	cr_assert_eq(pair_inject(&P, 0, r, (size_t)n), 0);
	check_reset_drains(t_reset);
}
