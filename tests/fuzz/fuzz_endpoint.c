/* libFuzzer target for the server's whole receive path: a server endpoint
 * (src/endpoint) with real TLS, fed the input as datagrams with a fake
 * clock, its output drained after each one. The first byte picks a mode:
 *
 *   0  raw: records [ctl][len:2][datagram]; ctl bits 0-1 pick one of four
 *      client addresses, bits 2-4 a clock step;
 *   1  client Initials: a client that exists only in the input; each record
 *      [ctl][pn][len:2][frames] becomes a packet whose plaintext frames are
 *      the fuzzer's bytes, protected with the Initial keys (RFC 9001 §5.2),
 *      so the fuzzer reaches frame handling and TLS;
 *   2  after a real handshake: a tern client runs the handshake in-process
 *      (bit 2 of the mode byte stops it halfway, once the server's first
 *      flight reached the client), then the records become Initial,
 *      Handshake or 1-RTT packets from that client with its real keys.
 *
 * Bit 3 of the mode byte turns Retry on (every Initial without a valid
 * token gets one, RFC 9000 §8.1.2); the client of mode 1 then repeats its
 * Initials with the token, to the Retry's SCID, with the keys it implies.
 *
 * Structured records (modes 1, 2): ctl bits 0-1 level (Initial, Handshake,
 * 1-RTT, or 3: bytes appended unprotected), bit 2 pad the datagram to 1200
 * bytes, bit 3 coalesce with the next record, bits 4-6 a clock step, bit 7
 * move 1-RTT to the next key generation (RFC 9001 §6). pn: bits 0-5 the
 * packet-number step (0..3 go back, 4 repeats, 5 is the next), bit 6 use
 * the client's original DCID, bit 7 send from another address.
 *
 * Traps on: a datagram the endpoint emits that does not parse as coalesced
 * packets; a connection made for a datagram under 1200 bytes (RFC 9000
 * §14.1); a stateless reply (VN, Retry, reset) not smaller than its
 * trigger (RFC 9000 §10.3, §6.1, §14.1), or a Retry that does not parse;
 * more than 3x the bytes received sent before any address was validated
 * (RFC 9000 §8.1); a datagram sent to an address nothing came from; more
 * connections than max_conns; outcome counters that do not add up; stream
 * data delivered before the handshake completed (RFC 9001 §5.7); a timer
 * that stays due however often it runs. LeakSanitizer checks that
 * everything is freed.
 *
 * TERN_FUZZ_WRITE_SEEDS=dir writes the seed corpus (tests/fuzz/gen-corpus);
 * TERN_FUZZ_DEBUG=1 prints what each input did. */
#include "fuzz_quic.h"

#include "tern/endpoint.h"
#include "tern/reset.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CONNS 3
#define N_ADDRS 4

static struct tern_tls_ctx *srv_tls, *cli_tls;
static struct tern_reset_key reset_key;
static struct tern_token_key token_key;

/* Per server connection, made in on_new_conn. */
struct app {
	int established;
};

struct run {
	struct tern_endpoint *ep;
	uint64_t now, rng, cli_rng;
	uint64_t rx_bytes, tx_bytes;
	int validated;
	int addr_used[N_ADDRS];
	/* the real client (mode 2) */
	struct tern_conn *cli;
	int cli_live, cli_confirmed, stage;
	/* what the fuzzer sends as the client */
	struct fq_sender fs;
	struct tern_cid odcid, cli_scid, srv_scid;
	/* a Retry the fake client (mode 1) obeys: its SCID and token */
	struct tern_cid retry_scid;
	uint8_t token[256];
	size_t token_len;
	int gen;
	/* the datagram being built from records */
	uint8_t dg[FQ_DGRAM_MAX];
	size_t dg_len;
	int dg_addr, dg_validates;
};

/* The CIDs of the client that exists only in the input (mode 1); the
 * seeds' ClientHello names the same SCID in its transport parameters, as
 * the server checks (RFC 9000 §7.3). */
static const uint8_t fake_odcid[8] = {0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08};
static const uint8_t fake_scid[8] = {0xc0, 0xff, 0xee, 0x00, 0x00, 0x00, 0x00, 0x01};

static void addr_of(struct tern_path *path, int idx)
{
	memset(path, 0, sizeof(*path));
	path->local = (struct tern_addr){.family = 4, .port = 443, .ip = {10, 0, 0, 1}};
	path->remote = (struct tern_addr){.family = 4, .port = (uint16_t)(50000 + idx),
					  .ip = {10, 0, 0, 2}};
}

/* ---- the server application: echo on bidi streams ----------------------------- */

static void on_new_conn(struct tern_endpoint *ep, struct tern_conn *c, void *user)
{
	(void)ep;
	(void)user;
	struct app *a = calloc(1, sizeof(*a));
	CHECK(a);
	tern_endpoint_conn_set_app(c, a);
}

static void on_conn_free(struct tern_endpoint *ep, struct tern_conn *c, void *app)
{
	(void)ep;
	(void)c;
	free(app);
}

static void app_established(struct tern_conn *c, void *app)
{
	(void)c;
	((struct app *)app)->established = 1;
}

/* RFC 9001 §5.7: a server must not process 1-RTT packets before the
 * handshake completes, so no stream exists before on_established. */
static void app_stream_open(struct tern_conn *c, void *app, uint64_t id)
{
	(void)c;
	(void)id;
	CHECK(((struct app *)app)->established);
}

static int app_stream_data(struct tern_conn *c, void *app, uint64_t id, const uint8_t *d,
			   size_t len, int fin)
{
	CHECK(((struct app *)app)->established);
	if (!(id & 2))
		tern_conn_stream_write(c, id, d, len, fin);
	return 0;
}

static const struct tern_endpoint_callbacks ep_cb = {
	.on_new_conn = on_new_conn,
	.on_conn_free = on_conn_free,
};

static const struct tern_conn_callbacks app_cb = {
	.on_established = app_established,
	.on_stream_open = app_stream_open,
	.on_stream_data = app_stream_data,
};

static void cli_established(struct tern_conn *c, void *user)
{
	(void)c;
	((struct run *)user)->cli_confirmed = 1;
}

static const struct tern_conn_callbacks cli_cb = {.on_established = cli_established};

/* ---- moving datagrams ------------------------------------------------------------ */

static void check_endpoint(struct run *r)
{
	struct tern_endpoint_stats st;
	tern_endpoint_stats(r->ep, &st);
	CHECK(tern_endpoint_stats_outcomes(&st) == st.rx_datagrams);
	CHECK(tern_endpoint_conn_count(r->ep) <= MAX_CONNS);
	if (st.tokens_accepted)
		r->validated = 1; /* RFC 9000 §8.1.2: a Retry token validates */
	if (!r->validated)
		CHECK(r->tx_bytes <= 3 * r->rx_bytes);
}

/* Sends what the endpoint has; hands it to the real client while it runs. */
static int pump(struct run *r)
{
	uint8_t buf[FQ_DGRAM_MAX];
	struct tern_path path;
	int n, moved = 0;
	for (int i = 0; i < 1024 && (n = tern_endpoint_send(r->ep, buf, sizeof(buf), &path, r->now)) > 0;
	     i++) {
		struct fq_walk w;
		fq_check_datagram(buf, (size_t)n, 0, &w);
		int idx = path.remote.port - 50000;
		CHECK(idx >= 0 && idx < N_ADDRS && r->addr_used[idx]);
		r->tx_bytes += (size_t)n;
		check_endpoint(r);
		moved = 1;
		if (!r->srv_scid.len && w.has_initial)
			r->srv_scid = w.first_scid;
		if (!r->cli_live || idx != 0)
			continue;
		struct tern_path cp;
		addr_of(&cp, 0);
		tern_conn_recv(r->cli, buf, (size_t)n, &cp, r->now);
		/* halfway: the client saw the server's flight and answers no more */
		if (r->stage == 1 && w.has_handshake)
			r->cli_live = 0;
	}
	return moved;
}

/* Runs due timers until none is due; one that stays due is a busy loop. */
static void settle(struct run *r)
{
	for (int i = 0;; i++) {
		pump(r);
		if (tern_endpoint_next_timeout(r->ep) > r->now)
			break;
		CHECK(i < 64);
		tern_endpoint_handle_timeout(r->ep, r->now);
		check_endpoint(r);
	}
}

/* A stateless reply never amplifies: a reset is strictly smaller than its
 * trigger (RFC 9000 §10.3); a VN (§14.1) or a Retry answers only an Initial
 * of 1200 bytes or more. A Retry goes to whichever client obeys it. */
static void stateless_reply(struct run *r, uint8_t *reply, size_t n, size_t len, int idx)
{
	struct tern_pkt_hdr h;
	CHECK(n < len);
	r->tx_bytes += n;
	if (!(reply[0] & TERN_PKT_FORM_LONG)) {
		CHECK(n >= TERN_RESET_MIN_LEN && n <= TERN_RESET_MAX_LEN &&
		      (reply[0] & 0xc0) == TERN_PKT_FIXED_BIT);
		return;
	}
	CHECK(n >= 7 && len >= 1200);
	if (tern_get_u32(reply + 1) == 0)
		return; /* VN: its CIDs may be longer than a v1 parser takes */
	CHECK(tern_pkt_parse(reply, n, 0, &h) == (int)n && h.type == TERN_PKT_RETRY);
	CHECK(h.token_len <= TERN_TOKEN_MAX_LEN);
	if (r->cli_live && idx == 0) {
		struct tern_path cp;
		addr_of(&cp, 0);
		tern_conn_recv(r->cli, reply, n, &cp, r->now);
	} else if (!r->retry_scid.len && !r->cli) {
		r->retry_scid = h.scid;
		memcpy(r->token, h.token, h.token_len);
		r->token_len = h.token_len;
		fq_sender_set_initial(&r->fs, &r->retry_scid); /* RFC 9001 §5.2 */
	}
}

static void deliver(struct run *r, const uint8_t *d, size_t len, int idx)
{
	uint8_t buf[FQ_DGRAM_MAX], reply[TERN_ENDPOINT_REPLY_MAX];
	struct tern_path path;
	if (!len)
		return;
	memcpy(buf, d, len);
	addr_of(&path, idx);
	r->addr_used[idx] = 1;
	r->rx_bytes += len;
	struct tern_endpoint_stats st;
	tern_endpoint_stats(r->ep, &st);
	uint64_t created = st.conns_created;
	int n = tern_endpoint_recv(r->ep, buf, len, &path, r->now, reply, sizeof(reply));
	CHECK(n >= 0);
	tern_endpoint_stats(r->ep, &st);
	/* RFC 9000 §14.1: no state for an Initial in a datagram under 1200 */
	CHECK(st.conns_created == created || len >= 1200);
	if (n > 0)
		stateless_reply(r, reply, (size_t)n, len, idx);
	check_endpoint(r);
	settle(r);
}

/* ---- mode 2: a real handshake ----------------------------------------------------- */

static int client_flush(struct run *r)
{
	uint8_t buf[FQ_DGRAM_MAX];
	int n, moved = 0;
	for (int i = 0;
	     i < 64 && r->cli_live && (n = tern_conn_send(r->cli, buf, sizeof(buf), r->now)) > 0;
	     i++) {
		struct fq_walk w;
		fq_check_datagram(buf, (size_t)n, 8, &w);
		/* RFC 9000 §14.1: a client pads datagrams with an Initial */
		CHECK(!w.has_initial || n >= 1200);
		if (!r->odcid.len && w.has_initial) {
			r->odcid = w.first_dcid;
			r->cli_scid = w.first_scid;
			fq_sender_set_initial(&r->fs, &r->odcid);
		}
		if (w.has_handshake)
			r->validated = 1; /* RFC 9000 §8.1 */
		deliver(r, buf, (size_t)n, 0);
		moved = 1;
	}
	return moved;
}

static void handshake(struct run *r)
{
	struct tern_conn_config cfg;
	struct tern_path path;
	tern_conn_config_init(&cfg, 0);
	cfg.tls = cli_tls;
	cfg.server_name = "localhost";
	cfg.rand = (struct tern_rand){fq_rand, &r->cli_rng};
	cfg.max_datagram = FQ_MAX_DATAGRAM;
	cfg.cb = &cli_cb;
	cfg.user = r;
	addr_of(&path, 0);
	CHECK(tern_conn_new_client(&r->cli, &cfg, &path, r->now) == 0);
	r->cli_live = 1;
	for (int i = 0; i < 400 && r->cli_live; i++) {
		int moved = client_flush(r);
		moved |= pump(r);
		if (moved)
			continue;
		/* confirmed and quiet: the fuzzer takes over at this moment */
		if (r->cli_confirmed)
			break;
		uint64_t t = tern_conn_next_timeout(r->cli), te = tern_endpoint_next_timeout(r->ep);
		t = te < t ? te : t;
		if (t == UINT64_MAX)
			break;
		r->now = t > r->now ? t : r->now;
		tern_conn_handle_timeout(r->cli, r->now);
		tern_endpoint_handle_timeout(r->ep, r->now);
	}
	r->cli_live = 0;
}

/* ---- structured records ---------------------------------------------------------- */

static void dg_flush(struct run *r)
{
	if (r->dg_validates)
		r->validated = 1; /* RFC 9000 §8.1: a Handshake packet validates */
	deliver(r, r->dg, r->dg_len, r->dg_addr);
	r->dg_len = 0;
	r->dg_validates = 0;
}

static void record(struct run *r, struct fq_input *in)
{
	int ctl = fq_byte(in), pnc = fq_byte(in);
	const uint8_t *d;
	size_t len = fq_take(in, &d);
	int level = ctl & 3;
	r->now += fq_step(ctl >> 4);
	settle(r);
	if (ctl & 0x80 && r->gen < FQ_GENS - 1)
		r->gen++;
	if (!r->dg_len)
		r->dg_addr = pnc & 0x80 ? 1 : 0;
	size_t room = sizeof(r->dg) - r->dg_len;
	if (level == FQ_RAW) {
		len = len < room ? len : room;
		memcpy(r->dg + r->dg_len, d, len);
		r->dg_len += len;
	} else {
		const struct tern_cid *first = r->retry_scid.len ? &r->retry_scid : &r->odcid;
		const struct tern_cid *dcid = r->srv_scid.len && !(pnc & 0x40) ? &r->srv_scid : first;
		uint64_t *next = &r->fs.pn[level];
		uint64_t pn = *next + (uint64_t)(pnc & 0x3f);
		pn = pn >= 5 ? pn - 5 : 0;
		if (pn >= *next)
			*next = pn + 1;
		size_t min = ctl & 4 && r->dg_len < 1200 ? 1200 - r->dg_len : 0;
		size_t n = fq_forge(&r->fs, level, r->gen, dcid, &r->cli_scid, r->token, r->token_len,
				    pn, d, len, min, r->dg + r->dg_len, room);
		r->dg_len += n;
		r->dg_validates |= level == FQ_HANDSHAKE && n;
	}
	if (!(ctl & 8) || r->dg_len == sizeof(r->dg))
		dg_flush(r);
}

static void raw_record(struct run *r, struct fq_input *in)
{
	int ctl = fq_byte(in);
	const uint8_t *d;
	size_t len = fq_take(in, &d);
	r->now += fq_step(ctl >> 2);
	settle(r);
	deliver(r, d, len < FQ_DGRAM_MAX ? len : FQ_DGRAM_MAX, ctl & 3);
}

/* ---- one input -------------------------------------------------------------------- */

static void run_init(struct run *r, int mode, int retry)
{
	memset(r, 0, sizeof(*r));
	memset(&fq_sec, 0, sizeof(fq_sec));
	r->now = 1000 * FQ_SEC;
	r->rng = 0x9e3779b97f4a7c15ull;
	r->cli_rng = 0x2545f4914f6cdd1dull;
	fq_sender_init(&r->fs, 1);
	struct tern_endpoint_config cfg;
	tern_endpoint_config_init(&cfg, 1);
	cfg.conn.tls = srv_tls;
	cfg.conn.rand = (struct tern_rand){fq_rand, &r->rng};
	cfg.conn.max_datagram = FQ_MAX_DATAGRAM;
	cfg.conn.cb = &app_cb;
	cfg.cb = &ep_cb;
	cfg.max_conns = MAX_CONNS;
	cfg.reset_key = &reset_key;
	cfg.token_key = &token_key;
	cfg.retry = retry ? TERN_RETRY_ALWAYS : TERN_RETRY_OFF;
	CHECK(tern_endpoint_new(&r->ep, &cfg, r->now) == 0);
	if (mode == 1) {
		tern_cid_set(&r->odcid, fake_odcid, 8);
		tern_cid_set(&r->cli_scid, fake_scid, 8);
		fq_sender_set_initial(&r->fs, &r->odcid);
	}
}

/* Lets every timer run out, so the close and idle paths run too. */
static void run_down(struct run *r)
{
	for (int i = 0; i < 200 && tern_endpoint_conn_count(r->ep); i++) {
		uint64_t t = tern_endpoint_next_timeout(r->ep);
		if (t == UINT64_MAX)
			break;
		r->now = t > r->now ? t : r->now;
		settle(r);
	}
}

static void run_free(struct run *r)
{
	tern_endpoint_free(r->ep);
	tern_conn_free(r->cli);
	fq_sender_clear(&r->fs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run r;
	struct fq_input in = {data, data + size};
	int m = fq_byte(&in);
	int mode = (m & 3) % 3;
	run_init(&r, mode, (m >> 3) & 1);
	if (mode == 2) {
		r.stage = (m >> 2) & 1;
		handshake(&r);
	}
	while (in.p < in.end) {
		if (mode == 0)
			raw_record(&r, &in);
		else
			record(&r, &in);
	}
	if (r.dg_len)
		dg_flush(&r);
	run_down(&r);
	if (fq_debug) {
		struct tern_endpoint_stats st;
		tern_endpoint_stats(r.ep, &st);
		fprintf(stderr,
			"mode %d stage %d: client confirmed %d, validated %d, rx %llu tx %llu bytes, "
			"conns %llu, datagrams %llu (to conn %llu, vn %llu, resets %llu)\n",
			mode, r.stage, r.cli_confirmed, r.validated, (unsigned long long)r.rx_bytes,
			(unsigned long long)r.tx_bytes, (unsigned long long)st.conns_created,
			(unsigned long long)st.rx_datagrams, (unsigned long long)st.to_conn,
			(unsigned long long)st.vn_sent, (unsigned long long)st.resets_sent);
	}
	run_free(&r);
	return 0;
}

/* ---- seeds ------------------------------------------------------------------------ */

/* The client's first two CIDs are its original DCID and its SCID. */
static void fake_cids(void *ctx, struct tern_cid *cid)
{
	int *calls = ctx;
	tern_cid_set(cid, (*calls)++ ? fake_scid : fake_odcid, 8);
}

/* A real client's first Initial datagram (ClientHello, padded to 1200),
 * with the CIDs of mode 1's client. */
static size_t real_initial(uint8_t *out, uint32_t version)
{
	struct tern_conn *c;
	struct tern_conn_config cfg;
	struct tern_path path;
	uint64_t rng = 7;
	int calls = 0;
	tern_conn_config_init(&cfg, 0);
	cfg.tls = cli_tls;
	cfg.server_name = "localhost";
	cfg.rand = (struct tern_rand){fq_rand, &rng};
	cfg.gen_cid = fake_cids;
	cfg.gen_cid_ctx = &calls;
	cfg.version = version;
	addr_of(&path, 0);
	CHECK(tern_conn_new_client(&c, &cfg, &path, FQ_SEC) == 0);
	int n = tern_conn_send(c, out, FQ_DGRAM_MAX, FQ_SEC);
	CHECK(n >= 1200);
	tern_conn_free(c);
	return (size_t)n;
}

/* The ClientHello's CRYPTO frame, out of that Initial. */
static size_t client_hello_frames(const uint8_t *dgram, size_t len, uint8_t *out, size_t cap)
{
	uint8_t buf[FQ_DGRAM_MAX];
	struct tern_pkt_hdr h;
	struct tern_crypto_keys cli, srv;
	memcpy(buf, dgram, len);
	CHECK(tern_pkt_parse(buf, len, 8, &h) > 0 && h.type == TERN_PKT_INITIAL);
	CHECK(tern_initial_keys_init(h.version, h.dcid.bytes, h.dcid.len, &cli, &srv) == 0);
	size_t n = fq_open(&cli, buf, &h, out, cap);
	tern_crypto_keys_clear(&cli);
	tern_crypto_keys_clear(&srv);
	return n;
}

static void seed_rec(struct fq_seed *s, int ctl, int pnc, const struct fq_frames *fr)
{
	fq_seed_byte(s, ctl);
	fq_seed_byte(s, pnc);
	fq_seed_data(s, fr->b, fr->n);
}

static void raw_seeds(const char *dir, const uint8_t *ini, size_t ini_len)
{
	struct fq_seed s = {0};
	uint8_t junk[FQ_DGRAM_MAX];
	fq_seed_byte(&s, 0);
	fq_seed_byte(&s, 0);
	fq_seed_data(&s, ini, ini_len);
	fq_seed_write(dir, "raw-initial", &s);
	fq_seed_byte(&s, 1 | 3 << 2); /* again, 25 ms later, from another address */
	fq_seed_data(&s, ini, ini_len);
	memset(junk, 0x41, sizeof(junk));
	fq_seed_byte(&s, 0);
	fq_seed_data(&s, junk, 60); /* short header, unknown CID: a reset */
	fq_seed_byte(&s, 7 << 2);   /* 40 s later: idle timeout */
	fq_seed_data(&s, junk, 21);
	fq_seed_write(dir, "raw-initial-reset", &s);
	s.n = 0;
	fq_seed_byte(&s, 0);
	fq_seed_byte(&s, 2);
	fq_seed_data(&s, ini, 1000); /* an Initial in a datagram under 1200 */
	memcpy(junk, "\xc3\x1a\x2a\x3a\x4a\x08\x01\x02\x03\x04\x05\x06\x07\x08\x00", 15);
	fq_seed_byte(&s, 0);
	fq_seed_data(&s, junk, 1200); /* unknown version: VN */
	fq_seed_write(dir, "raw-vn-short-initial", &s);
	s.n = 0;
	fq_seed_byte(&s, 0);
	fq_seed_byte(&s, 0);
	fq_seed_data(&s, junk, real_initial(junk, TERN_VERSION_2));
	fq_seed_write(dir, "raw-initial-v2", &s);
}

static void initial_seeds(const char *dir, const uint8_t *ch, size_t ch_len)
{
	struct fq_seed s = {0};
	struct fq_frames fr = {0}, a = {0}, b = {0};
	fq_frame_raw(&fr, ch, ch_len);
	fq_seed_byte(&s, 1);
	seed_rec(&s, 4, 5, &fr);
	fq_seed_write(dir, "init-clienthello", &s);
	fr.n = 0;
	fq_frame_raw(&fr, "\x01", 1); /* PING */
	fq_frame_ack(&fr, 0, 0);
	seed_rec(&s, 4 | 3 << 4, 5, &fr);
	fr.n = 0;
	fq_frame_close(&fr, 0, TERN_QUIC_PROTOCOL_VIOLATION);
	seed_rec(&s, 4 | 2 << 4, 5, &fr);
	fq_seed_write(dir, "init-clienthello-ack-close", &s);
	s.n = 0;
	fq_seed_byte(&s, 1 | 8); /* with Retry: the ClientHello twice, the second with the token */
	fr.n = 0;
	fq_frame_raw(&fr, ch, ch_len);
	seed_rec(&s, 4, 5, &fr);
	seed_rec(&s, 4 | 1 << 4, 5, &fr);
	fq_seed_write(dir, "init-retry-clienthello", &s);
	/* the ClientHello's CRYPTO frame is 06 00 <len:2> <hello>: split it */
	CHECK(ch_len > 100 && ch[0] == TERN_FRAME_CRYPTO && ch[1] == 0 && (ch[2] & 0xc0) == 0x40);
	size_t hl = ch_len - 4, half = hl / 2;
	fq_frame_crypto(&a, 0, ch + 4, half);
	fq_frame_crypto(&b, half, ch + 4 + half, hl - half);
	s.n = 0;
	fq_seed_byte(&s, 1);
	seed_rec(&s, 4, 6, &b); /* the second half first, one pn ahead */
	seed_rec(&s, 4 | 8, 3, &a);
	fr.n = 0;
	fq_frame_raw(&fr, "\x41\x00\x00\x00", 4); /* junk after it, unprotected */
	seed_rec(&s, 3, 0, &fr);
	fq_seed_write(dir, "init-split-reordered", &s);
}

/* flags: bit 0 stops the handshake halfway, bit 1 turns Retry on. */
static void app_seed(const char *dir, const char *name, int flags, const struct fq_frames *fr,
		     int n_recs, int ctl)
{
	struct fq_seed s = {0};
	fq_seed_byte(&s, 2 | flags << 2);
	for (int i = 0; i < n_recs; i++)
		seed_rec(&s, ctl | (i ? 2 << 4 : 0), 5, &fr[i]);
	fq_seed_write(dir, name, &s);
}

static void app_seeds(const char *dir)
{
	struct fq_frames fr[3];
	struct tern_frame f;
	memset(fr, 0, sizeof(fr));
	fq_frame_stream(&fr[0], 0, 0, "GET /index.html\r\n", 1);
	app_seed(dir, "app-stream", 0, fr, 1, FQ_APP);
	app_seed(dir, "app-stream-after-retry", 2, fr, 1, FQ_APP);
	fq_frame_stream(&fr[1], 4, 0, "abc", 0);
	fq_frame_stream(&fr[1], 4, 10, "def", 1);
	fq_frame_ack(&fr[1], 3, 3);
	f = (struct tern_frame){.type = TERN_FRAME_MAX_DATA, .max_data.max = 1 << 22};
	fq_frame(&fr[1], &f);
	f = (struct tern_frame){.type = TERN_FRAME_MAX_STREAMS_BIDI, .max_streams.max = 200};
	fq_frame(&fr[1], &f);
	fq_frame_raw(&fr[2], "\x01", 1);
	fq_frame_ack(&fr[2], 6, 6);
	app_seed(dir, "app-streams-ack", 0, fr, 3, FQ_APP);
	memset(fr, 0, sizeof(fr));
	f = (struct tern_frame){.type = TERN_FRAME_NEW_CONNECTION_ID};
	f.new_cid.seq = 1;
	f.new_cid.retire_prior_to = 1;
	tern_cid_set(&f.new_cid.cid, (const uint8_t *)"\x11\x22\x33\x44\x55\x66\x77\x88", 8);
	memset(f.new_cid.reset_token, 0x99, sizeof(f.new_cid.reset_token));
	fq_frame(&fr[0], &f);
	f = (struct tern_frame){.type = TERN_FRAME_RETIRE_CONNECTION_ID, .retire_cid.seq = 0};
	fq_frame(&fr[0], &f);
	f = (struct tern_frame){.type = TERN_FRAME_PATH_CHALLENGE};
	memcpy(f.path.data, "pathchal", 8);
	fq_frame(&fr[0], &f);
	app_seed(dir, "app-cids", 0, fr, 1, FQ_APP);
	memset(fr, 0, sizeof(fr));
	fq_frame_stream(&fr[0], 0, 0, "partial", 0);
	fq_frame_stream(&fr[0], 2, 0, "uni", 1);
	f = (struct tern_frame){.type = TERN_FRAME_RESET_STREAM};
	f.reset_stream.stream_id = 0;
	f.reset_stream.error_code = 7;
	f.reset_stream.final_size = 7;
	fq_frame(&fr[1], &f);
	f = (struct tern_frame){.type = TERN_FRAME_STOP_SENDING};
	f.stop_sending.stream_id = 0;
	f.stop_sending.error_code = 8;
	fq_frame(&fr[1], &f);
	fq_frame_close(&fr[2], 1, 0x100);
	app_seed(dir, "app-reset-stop-close", 0, fr, 3, FQ_APP);
	memset(fr, 0, sizeof(fr));
	fq_frame_stream(&fr[0], 0, 0, "before", 0);
	fq_frame_stream(&fr[1], 0, 6, "after-update", 1);
	app_seed(dir, "app-key-update", 0, fr, 2, FQ_APP | 0x80);
	memset(fr, 0, sizeof(fr));
	fq_frame_raw(&fr[0], "\x1e", 1); /* HANDSHAKE_DONE from a client */
	app_seed(dir, "app-handshake-done", 0, fr, 1, FQ_APP);
}

static void handshake_seeds(const char *dir)
{
	struct fq_frames fr[2];
	static const uint8_t finished[36] = {0x14, 0x00, 0x00, 0x20, 1, 2, 3};
	memset(fr, 0, sizeof(fr));
	fq_frame_crypto(&fr[0], 0, finished, sizeof(finished));
	app_seed(dir, "hs-bad-finished", 1, fr, 1, FQ_HANDSHAKE);
	memset(fr, 0, sizeof(fr));
	fq_frame_ack(&fr[0], 1, 1);
	fq_frame_raw(&fr[0], "\x01", 1);
	fq_frame_close(&fr[1], 0, TERN_QUIC_INTERNAL_ERROR);
	app_seed(dir, "hs-ack-close", 1, fr, 2, FQ_HANDSHAKE);
	memset(fr, 0, sizeof(fr));
	fq_frame_stream(&fr[0], 0, 0, "too early", 1);
	app_seed(dir, "hs-1rtt-before-finished", 1, fr, 1, FQ_APP);
}

static void write_seeds(const char *dir)
{
	uint8_t ini[FQ_DGRAM_MAX], ch[FQ_DGRAM_MAX];
	size_t ini_len = real_initial(ini, TERN_VERSION_1);
	size_t ch_len = client_hello_frames(ini, ini_len, ch, sizeof(ch));
	raw_seeds(dir, ini, ini_len);
	initial_seeds(dir, ch, ch_len);
	app_seeds(dir);
	handshake_seeds(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	uint8_t k[32];
	memset(k, 0x5a, sizeof(k));
	fq_tls_init(&srv_tls, &cli_tls, "tern-fuzz");
	CHECK(tern_reset_key_init(&reset_key, k, sizeof(k)) == 0);
	CHECK(tern_token_key_init(&token_key, k, sizeof(k)) == 0);
	fq_debug = getenv("TERN_FUZZ_DEBUG") != NULL;
	const char *dir = getenv("TERN_FUZZ_WRITE_SEEDS");
	if (dir) {
		write_seeds(dir);
		exit(0);
	}
	return 0;
}
