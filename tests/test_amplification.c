/* RFC 9000 §8.1 on the in-memory pair: before the server has validated the
 * client's address it sends at most three times the bytes it received.
 * The test runs its own link (5 ms each way) so it decides the fate of
 * every datagram and counts bytes as the server sees them: the client's
 * bytes when the server receives them, the server's when it sends them.
 * The invariant is checked at every datagram the server sends, until a
 * client Handshake packet reaches the server, which validates the address
 * (RFC 9000 §8.1: "receipt of a packet protected with Handshake keys"). */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "lib/pair.h"
#include "tern/frame.h"

#define MS UINT64_C(1000000)
#define SEC (1000 * MS)
#define DELAY (5 * MS)
#define QMAX 512
#define PUSH_BYTES (64 * 1024)

struct queue {
	struct pair_dgram d[QMAX];
	size_t n;
};

/* What the link does with client datagrams. */
enum cli_policy {
	CLI_FIRST_ONLY, /* the first datagram (the Initial) passes, then silence */
	CLI_ALL,        /* everything passes */
	CLI_HOLD,       /* nothing passes: kept in `held`, for the test to release */
};

struct amp {
	uint64_t cli_bytes;  /* bytes of client datagrams the server received */
	uint64_t srv_bytes;  /* bytes the server sent */
	uint64_t srv_dgrams; /* datagrams the server sent */
	uint64_t srv_bytes_at_validation;
	uint64_t cli_bytes_at_validation;
	int validated;       /* a client Handshake packet reached the server */
	uint64_t cli_sent;   /* datagrams the client handed the link */
	enum cli_policy policy;
	int srv_to_cli;      /* server datagrams reach the client */
	struct queue to_srv, to_cli, held;
	uint64_t last_srv_send; /* fake time of the server's last datagram */
};

static struct pair P;
static struct amp A;
static int cli_established, srv_established;
static uint64_t pushed;

static void push(struct tern_conn *c, uint64_t id)
{
	static uint8_t buf[4096];
	while (pushed < PUSH_BYTES) {
		size_t n = PUSH_BYTES - pushed < sizeof(buf) ? (size_t)(PUSH_BYTES - pushed) : sizeof(buf);
		int w = tern_conn_stream_write(c, id, buf, n, pushed + n == PUSH_BYTES);
		cr_assert_geq(w, 0);
		pushed += (uint64_t)w;
		if ((size_t)w < n)
			return;
	}
}

/* Once established, the server pushes PUSH_BYTES on a stream of its own, so
 * a lifted limit shows as far more than 3x the client's bytes. */
static void srv_on_established(struct tern_conn *c, void *user)
{
	(void)user;
	srv_established = 1;
	uint64_t id;
	cr_assert_eq(tern_conn_stream_open(c, 0, &id), 0);
	push(c, id);
}

static void srv_on_writable(struct tern_conn *c, void *user, uint64_t id)
{
	(void)user;
	push(c, id);
}

static void cli_on_established(struct tern_conn *c, void *user)
{
	(void)c;
	(void)user;
	cli_established = 1;
}

static const struct tern_conn_callbacks srv_cbs = {
	.on_established = srv_on_established,
	.on_stream_writable = srv_on_writable,
};
static const struct tern_conn_callbacks cli_cbs = {.on_established = cli_on_established};

static void setup(void)
{
	memset(&A, 0, sizeof(A));
	cli_established = srv_established = 0;
	pushed = 0;
	pair_setup(&P, "h3", "h3", &cli_cbs, NULL, &srv_cbs, NULL);
	pair_start(&P);
}

static void teardown(void)
{
	pair_free(&P);
}

/* ---- the link ---------------------------------------------------------------- */

static void enqueue(struct queue *q, uint64_t at, const uint8_t *d, size_t len)
{
	cr_assert_lt(q->n, QMAX);
	cr_assert_leq(len, sizeof(q->d[0].data));
	struct pair_dgram *g = &q->d[q->n++];
	g->at = at;
	g->len = (uint16_t)len;
	memcpy(g->data, d, len);
}

static int has_packet(const uint8_t *d, size_t len, enum tern_pkt_type type)
{
	for (size_t off = 0; off < len;) {
		struct tern_pkt_hdr h;
		int n = tern_pkt_parse(d + off, len - off, 8, &h);
		if (n <= 0)
			return 0;
		if (h.type == type)
			return 1;
		off += (size_t)n;
	}
	return 0;
}

/* The server receives one client datagram: it counts, before anything is
 * known about what it carries (RFC 9000 §8.1 counts discarded packets too). */
static void server_receives(struct pair_dgram *g)
{
	struct tern_path path = {0};
	if (!P.srv) {
		struct tern_pkt_hdr h;
		cr_assert_gt(tern_pkt_parse(g->data, g->len, 8, &h), 0);
		cr_assert_eq(h.type, TERN_PKT_INITIAL);
		cr_assert_eq(tern_conn_new_server(&P.srv, &P.srv_cfg, &path, &h, NULL, NULL, P.now), 0);
	}
	A.cli_bytes += g->len;
	if (!A.validated && has_packet(g->data, g->len, TERN_PKT_HANDSHAKE)) {
		A.validated = 1;
		A.srv_bytes_at_validation = A.srv_bytes;
		A.cli_bytes_at_validation = A.cli_bytes;
	}
	tern_conn_recv(P.srv, g->data, g->len, &path, P.now);
}

/* The server's datagrams: the rule is checked at every one. */
static void flush_server(void)
{
	uint8_t buf[1500];
	int n = 0;
	while (P.srv && (n = tern_conn_send(P.srv, buf, sizeof(buf), P.now)) > 0) {
		pair_log(&P, 0, buf, (size_t)n);
		A.srv_bytes += (uint64_t)n;
		A.srv_dgrams++;
		A.last_srv_send = P.now;
		if (!A.validated)
			cr_assert_leq(A.srv_bytes, 3 * A.cli_bytes,
				      "RFC 9000 §8.1: server sent %llu bytes for %llu received, at %llu ms",
				      (unsigned long long)A.srv_bytes, (unsigned long long)A.cli_bytes,
				      (unsigned long long)(P.now / MS));
		if (A.srv_to_cli)
			enqueue(&A.to_cli, P.now + DELAY, buf, (size_t)n);
	}
	cr_assert_geq(n, 0);
}

static void flush_client(void)
{
	uint8_t buf[1500];
	int n;
	while ((n = tern_conn_send(P.cli, buf, sizeof(buf), P.now)) > 0) {
		pair_log(&P, 1, buf, (size_t)n);
		int pass = A.policy == CLI_ALL || (A.policy == CLI_FIRST_ONLY && A.cli_sent == 0);
		A.cli_sent++;
		if (pass)
			enqueue(&A.to_srv, P.now + DELAY, buf, (size_t)n);
		else if (A.policy == CLI_HOLD && A.held.n < QMAX)
			enqueue(&A.held, P.now, buf, (size_t)n);
	}
	cr_assert_geq(n, 0);
}

static uint64_t next_event(void)
{
	uint64_t t = UINT64_MAX;
	for (size_t i = 0; i < A.to_srv.n; i++)
		t = A.to_srv.d[i].at < t ? A.to_srv.d[i].at : t;
	for (size_t i = 0; i < A.to_cli.n; i++)
		t = A.to_cli.d[i].at < t ? A.to_cli.d[i].at : t;
	uint64_t c = tern_conn_next_timeout(P.cli);
	t = c < t ? c : t;
	if (P.srv) {
		c = tern_conn_next_timeout(P.srv);
		t = c < t ? c : t;
	}
	return t;
}

static void deliver_due(struct queue *q, int to_server)
{
	for (size_t i = 0; i < q->n;) {
		if (q->d[i].at > P.now) {
			i++;
			continue;
		}
		struct pair_dgram g = q->d[i];
		memmove(&q->d[i], &q->d[i + 1], (q->n - i - 1) * sizeof(q->d[0]));
		q->n--;
		if (to_server) {
			server_receives(&g);
		} else {
			struct tern_path path = {0};
			tern_conn_recv(P.cli, g.data, g.len, &path, P.now);
		}
	}
}

/* Moves datagrams and time for `ns` of fake time. Fails if the clock
 * stalls: a deadline that stays in the past while nothing moves. */
static void run_for(uint64_t ns)
{
	uint64_t end = P.now + ns;
	unsigned idle = 0;
	while (P.now < end) {
		uint64_t before = A.srv_bytes + A.cli_sent, now = P.now;
		flush_client();
		flush_server();
		uint64_t t = next_event();
		if (t > end) {
			P.now = end;
			break;
		}
		P.now = t > P.now ? t : P.now;
		deliver_due(&A.to_srv, 1);
		deliver_due(&A.to_cli, 0);
		if (tern_conn_next_timeout(P.cli) <= P.now)
			tern_conn_handle_timeout(P.cli, P.now);
		if (P.srv && tern_conn_next_timeout(P.srv) <= P.now)
			tern_conn_handle_timeout(P.srv, P.now);
		idle = P.now == now && A.srv_bytes + A.cli_sent == before ? idle + 1 : 0;
		cr_assert_lt(idle, 1000, "fake clock stuck at %llu ms", (unsigned long long)(P.now / MS));
	}
	flush_client();
	flush_server();
}

/* The datagrams the server sent that carry a CONNECTION_CLOSE, and whether
 * one of them carries it at both the Initial and Handshake levels. */
static int server_closes(int *coalesced)
{
	int n = 0;
	*coalesced = 0;
	for (size_t i = 0; i < P.log_n; i++) {
		const struct pair_sent *e = &P.log[i];
		int levels = 0;
		for (size_t k = 0; !e->from_client && k < e->n_pkts; k++)
			if (e->pkts[k].opened && e->pkts[k].has_close)
				levels |= e->pkts[k].type == TERN_PKT_INITIAL ? 1
					  : e->pkts[k].type == TERN_PKT_HANDSHAKE ? 2 : 4;
		n += levels != 0;
		*coalesced |= (levels & 3) == 3;
	}
	return n;
}

TestSuite(amplification, .init = setup, .fini = teardown, .timeout = 30);

/* The client's Initial arrives, then the client goes silent: the server's
 * flight and every PTO retransmission of it stay within 3x the 1200 bytes,
 * and the limit is what stops it, not a lack of things to send. */
Test(amplification, silent_client_after_initial)
{
	A.policy = CLI_FIRST_ONLY;
	A.srv_to_cli = 1;
	run_for(8 * SEC);
	cr_assert_eq(A.cli_bytes, 1200, "the client's Initial is padded to 1200 bytes (RFC 9000 §14.1)");
	cr_assert(!A.validated);
	cr_assert_leq(A.srv_bytes, 3600);
	cr_assert_gt(A.srv_bytes, 3600 - 1200, "the server stopped well before its limit: %llu bytes",
		     (unsigned long long)A.srv_bytes);
	cr_assert_geq(A.srv_dgrams, 3, "no retransmission reached the limit");
	cr_assert_geq(A.cli_sent, 3, "the client kept trying (and was dropped)");
	cr_assert_eq(srv_established, 0);
}

/* With nothing reaching the client either, the server retransmits into the
 * void: its PTO probes alone must respect the limit. */
Test(amplification, silent_client_server_unheard)
{
	A.policy = CLI_FIRST_ONLY;
	A.srv_to_cli = 0;
	run_for(8 * SEC);
	cr_assert_gt(A.cli_sent, 1, "the client retransmitted its Initial (all dropped)");
	cr_assert_leq(A.srv_bytes, 3 * A.cli_bytes);
	cr_assert_gt(A.srv_bytes, 3 * A.cli_bytes - 1200);
}

/* RFC 9000 §8.1: "servers MUST count all of the payload bytes received in
 * datagrams that are uniquely attributed to a single connection [...] and
 * datagrams that contain packets that are all discarded". A datagram of
 * junk addressed to the server's CID raises the budget, and the server
 * uses it (its next PTO probe goes out), still within 3x. */
Test(amplification, discarded_datagrams_count)
{
	A.policy = CLI_FIRST_ONLY;
	A.srv_to_cli = 0;
	run_for(3 * SEC);
	uint64_t before = A.srv_bytes;
	cr_assert_gt(before, 3 * A.cli_bytes - 1200, "the budget was not used up first");
	struct pair_dgram g = {.len = 1200};
	memset(g.data, 0x5a, sizeof(g.data));
	struct tern_cid dcid = P.keys->srv_cid;
	g.data[0] = 0xc0; /* a long header Initial, v1, to the server's CID */
	tern_put_u32(g.data + 1, TERN_VERSION_1);
	g.data[5] = dcid.len;
	memcpy(g.data + 6, dcid.bytes, dcid.len);
	g.data[6 + dcid.len] = 0; /* no SCID, no token, Length runs to the end */
	g.data[7 + dcid.len] = 0;
	tern_varint_encode_fixed(g.data + 8 + dcid.len, 1200 - 10 - dcid.len, 2);
	server_receives(&g);
	run_for(20 * SEC);
	cr_assert_eq(A.cli_bytes, 2400);
	cr_assert_gt(A.srv_bytes, before, "the new budget was never used");
	cr_assert_leq(A.srv_bytes, 3 * A.cli_bytes);
}

/* The client's handshake flight (and everything after its Initial) is lost
 * for two seconds: every server retransmission in that time stays within
 * the limit. Then the link heals, a client Handshake packet arrives, the
 * handshake completes and the server's push goes far beyond 3x. */
Test(amplification, lost_client_flight_then_validated)
{
	A.policy = CLI_FIRST_ONLY;
	A.srv_to_cli = 1;
	run_for(2 * SEC);
	cr_assert_eq(tern_conn_state(P.cli), TERN_CONN_ESTABLISHED,
		     "the client finished its side of the handshake");
	cr_assert(!cli_established, "the client's handshake is not confirmed yet");
	cr_assert(!srv_established && !A.validated);
	cr_assert_leq(A.srv_bytes, 3 * A.cli_bytes);
	A.policy = CLI_ALL;
	run_for(5 * SEC);
	cr_assert(A.validated && srv_established && cli_established);
	cr_assert_leq(A.srv_bytes_at_validation, 3 * A.cli_bytes_at_validation);
	cr_assert_eq(pushed, PUSH_BYTES);
	cr_assert_gt(A.srv_bytes, 3 * A.cli_bytes, "once validated the limit lifts: %llu vs %llu",
		     (unsigned long long)A.srv_bytes, (unsigned long long)A.cli_bytes);
}

/* One client datagram with a Handshake packet is what lifts the limit,
 * not the bytes it adds: after it the server sends more than 3x all it
 * ever received although the client never says another word. */
Test(amplification, one_handshake_packet_lifts_the_limit)
{
	A.policy = CLI_HOLD;
	A.srv_to_cli = 1;
	/* let the Initial through by hand, keep the rest */
	run_for(20 * MS);
	cr_assert_geq(A.held.n, 1);
	struct pair_dgram first = A.held.d[0];
	A.held.n = 0;
	server_receives(&first);
	run_for(1 * SEC);
	cr_assert(!A.validated && !cli_established);
	cr_assert_eq(tern_conn_state(P.cli), TERN_CONN_ESTABLISHED);
	cr_assert_leq(A.srv_bytes, 3 * A.cli_bytes);
	size_t i;
	for (i = 0; i < A.held.n; i++)
		if (has_packet(A.held.d[i].data, A.held.d[i].len, TERN_PKT_HANDSHAKE))
			break;
	cr_assert_lt(i, A.held.n, "the client never sent a Handshake packet");
	struct pair_dgram hs = A.held.d[i];
	A.held.n = 0;
	server_receives(&hs);
	run_for(2 * SEC);
	cr_assert(A.validated && srv_established);
	cr_assert_gt(A.srv_bytes, 3 * A.cli_bytes, "the limit did not lift: %llu vs %llu",
		     (unsigned long long)A.srv_bytes, (unsigned long long)A.cli_bytes);
}

/* A server that closes during the handshake sends its CONNECTION_CLOSE at
 * the Initial and Handshake levels in one datagram (RFC 9000 §10.2.3), and
 * those bytes count too. The client's retransmitted Initials keep
 * arriving; the server answers them with the close, within the limit. */
Test(amplification, close_during_handshake)
{
	A.policy = CLI_FIRST_ONLY;
	A.srv_to_cli = 0;
	run_for(20 * MS);
	cr_assert_not_null(P.srv);
	uint64_t before = A.srv_bytes;
	cr_assert_lt(before + 200, 3 * A.cli_bytes, "no room left for the close");
	cr_assert_eq(tern_conn_close(P.srv, 0, TERN_QUIC_CONNECTION_REFUSED, "busy", P.now), 0);
	run_for(10 * MS);
	int coalesced, closes = server_closes(&coalesced);
	cr_assert_eq(closes, 1);
	cr_assert(coalesced, "the close went at one level only");
	cr_assert_gt(A.srv_bytes, before);
	/* now the client's PTO retransmissions get through, the close answers */
	A.policy = CLI_ALL;
	run_for(3 * SEC);
	cr_assert_gt(A.cli_bytes, 1200, "no client retransmission reached the server");
	closes = server_closes(&coalesced);
	cr_assert_gt(closes, 1, "the closing server never answered");
	cr_assert(!A.validated);
	cr_assert_leq(A.srv_bytes, 3 * A.cli_bytes);
}

/* The same close once the budget is spent: nothing may go out, not even
 * the close, until more bytes arrive. */
Test(amplification, close_with_budget_spent)
{
	A.policy = CLI_FIRST_ONLY;
	A.srv_to_cli = 0;
	run_for(3 * SEC);
	cr_assert_gt(A.srv_bytes, 3 * A.cli_bytes - 64, "budget left: %llu of %llu",
		     (unsigned long long)A.srv_bytes, (unsigned long long)(3 * A.cli_bytes));
	cr_assert_eq(tern_conn_close(P.srv, 0, TERN_QUIC_CONNECTION_REFUSED, "busy", P.now), 0);
	run_for(2 * SEC);
	cr_assert_leq(A.srv_bytes, 3 * A.cli_bytes);
	cr_assert_eq(tern_conn_state(P.srv) == TERN_CONN_CLOSING ||
			     tern_conn_state(P.srv) == TERN_CONN_CLOSED,
		     1);
}
