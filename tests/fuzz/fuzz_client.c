/* libFuzzer target for the client's receive path: a tern client connection
 * with real TLS whose incoming datagrams come from the input, with a fake
 * clock, its output drained and checked after each one. The first byte
 * picks a mode:
 *
 *   0  raw: the client sends its Initial, then records [ctl][len:2][datagram]
 *      arrive; ctl bits 2-4 a clock step;
 *   1  server Initials: a server that exists only in the input; each record
 *      [ctl][pn][len:2][frames] becomes a server Initial carrying those
 *      frames, protected with the Initial keys of the client's original
 *      DCID (RFC 9001 §5.2), so the fuzzer reaches ServerHello handling;
 *   2  after a real handshake against an in-process tern server (bit 2 of
 *      the mode byte stops it once the client read the ServerHello, so the
 *      fuzzer supplies the server's Handshake flight), the records become
 *      Initial, Handshake or 1-RTT packets from that server with its keys.
 *
 * Structured records: ctl bits 0-1 level (Initial, Handshake, 1-RTT, or 3:
 * bytes appended unprotected; with bit 2 set, 3 also appends the server
 * CID's stateless reset token, RFC 9000 §10.3; with bit 7 set, 3 is a
 * Retry with a valid tag and the bytes as token), bit 2 pad to 1200 bytes,
 * bit 3 coalesce with the next record, bits 4-6 a clock step, bit 7 move
 * 1-RTT to the next key generation. pn: bits 0-5 the packet-number step
 * (0..3 go back, 4 repeats, 5 is the next), bit 6 a different server SCID.
 *
 * Traps on: a datagram the client emits that does not parse as coalesced
 * packets, or that carries an Initial in under 1200 bytes (RFC 9000
 * §14.1); anything sent once draining or closed (RFC 9000 §10.2.2); a
 * callback made twice that may run once; a timer that stays due however
 * often it runs. LeakSanitizer checks that everything is freed.
 *
 * TERN_FUZZ_WRITE_SEEDS=dir writes the seed corpus (tests/fuzz/gen-corpus);
 * TERN_FUZZ_DEBUG=1 prints what each input did. */
#include "fuzz_quic.h"

#include "tern/conn.h"
#include "tern/reset.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tern_tls_ctx *srv_tls, *cli_tls;
static struct tern_reset_key reset_key;

/* The server CIDs of the server that exists only in the input (mode 1). */
static const uint8_t fake_scid[2][8] = {{0x5e, 0x4f, 0xe4, 0x00, 0x00, 0x00, 0x00, 0x01},
					{0x5e, 0x4f, 0xe4, 0x00, 0x00, 0x00, 0x00, 0x02}};

struct run {
	struct tern_conn *cli, *srv;
	uint64_t now, cli_rng, srv_rng;
	int established, streams_opened;
	/* the handshake with the real server (mode 2) */
	int live, stage;
	/* seeds: the server's first datagrams, as sent */
	uint8_t (*capture)[FQ_DGRAM_MAX];
	size_t capture_len[4], n_capture;
	/* what the fuzzer sends as the server */
	struct fq_sender fs;
	struct tern_cid odcid, cli_scid, srv_scid[2];
	int gen;
	uint8_t dg[FQ_DGRAM_MAX];
	size_t dg_len;
};

static void path_of(struct tern_path *path)
{
	memset(path, 0, sizeof(*path));
	path->local = (struct tern_addr){.family = 4, .port = 50000, .ip = {10, 0, 0, 2}};
	path->remote = (struct tern_addr){.family = 4, .port = 443, .ip = {10, 0, 0, 1}};
}

/* ---- the client application: echo on bidi streams ----------------------------- */

static void cli_established(struct tern_conn *c, void *user)
{
	(void)c;
	struct run *r = user;
	CHECK(!r->established); /* the handshake is confirmed once */
	r->established = 1;
}

static void cli_stream_open(struct tern_conn *c, void *user, uint64_t id)
{
	(void)c;
	struct run *r = user;
	CHECK(id & 1); /* RFC 9000 §2.1: only the server's streams open remotely */
	r->streams_opened++;
}

static int cli_stream_data(struct tern_conn *c, void *user, uint64_t id, const uint8_t *d,
			   size_t len, int fin)
{
	(void)user;
	if (!(id & 2) && (id & 1))
		tern_conn_stream_write(c, id, d, len, fin);
	return 0;
}

static const struct tern_conn_callbacks cli_cb = {
	.on_established = cli_established,
	.on_stream_open = cli_stream_open,
	.on_stream_data = cli_stream_data,
};

/* ---- moving datagrams ------------------------------------------------------------ */

static void new_server(struct run *r, const uint8_t *d, size_t len)
{
	struct tern_pkt_hdr h;
	struct tern_conn_config cfg;
	struct tern_path path;
	if (tern_pkt_parse(d, len, 8, &h) <= 0 || h.type != TERN_PKT_INITIAL)
		return;
	tern_conn_config_init(&cfg, 1);
	cfg.tls = srv_tls;
	cfg.rand = (struct tern_rand){fq_rand, &r->srv_rng};
	cfg.max_datagram = FQ_MAX_DATAGRAM;
	cfg.reset_key = &reset_key;
	path_of(&path);
	CHECK(tern_conn_new_server(&r->srv, &cfg, &path, &h, NULL, NULL, r->now) == 0);
}

/* Sends what the client has, checking each datagram; hands it to the real
 * server while the handshake runs. */
static int client_flush(struct run *r)
{
	uint8_t buf[FQ_DGRAM_MAX];
	struct tern_path path;
	int n, moved = 0;
	path_of(&path);
	for (int i = 0; i < 1024 && (n = tern_conn_send(r->cli, buf, sizeof(buf), r->now)) > 0; i++) {
		enum tern_conn_state st = tern_conn_state(r->cli);
		CHECK(st != TERN_CONN_DRAINING && st != TERN_CONN_CLOSED);
		struct fq_walk w;
		fq_check_datagram(buf, (size_t)n, 0, &w);
		CHECK(!w.has_initial || n >= 1200);
		moved = 1;
		if (!r->odcid.len && w.has_initial) {
			r->odcid = w.first_dcid;
			r->cli_scid = w.first_scid;
			fq_sender_set_initial(&r->fs, &r->odcid);
		}
		if (!r->live)
			continue;
		if (!r->srv)
			new_server(r, buf, (size_t)n);
		if (r->srv)
			tern_conn_recv(r->srv, buf, (size_t)n, &path, r->now);
	}
	return moved;
}

/* Runs the client's due timers until none is due; one that stays due
 * whatever handle_timeout does is a busy loop. */
static void settle(struct run *r)
{
	for (int i = 0;; i++) {
		client_flush(r);
		if (tern_conn_next_timeout(r->cli) > r->now)
			break;
		CHECK(i < 64);
		tern_conn_handle_timeout(r->cli, r->now);
	}
}

static void deliver(struct run *r, const uint8_t *d, size_t len)
{
	uint8_t buf[FQ_DGRAM_MAX];
	struct tern_path path;
	if (!len)
		return;
	memcpy(buf, d, len);
	path_of(&path);
	tern_conn_recv(r->cli, buf, len, &path, r->now);
	settle(r);
}

/* ---- mode 2: a real handshake ----------------------------------------------------- */

/* The Initial packets of a datagram, without what follows them: halfway,
 * the client gets the ServerHello but not the server's Handshake flight. */
static size_t initials_only(const uint8_t *d, size_t len)
{
	size_t off = 0;
	while (off < len) {
		struct tern_pkt_hdr h;
		int n = tern_pkt_parse(d + off, len - off, 0, &h);
		if (n <= 0 || h.type != TERN_PKT_INITIAL)
			break;
		off += (size_t)n;
	}
	return off;
}

static int server_flush(struct run *r)
{
	uint8_t buf[FQ_DGRAM_MAX];
	int n, moved = 0;
	for (int i = 0; i < 64 && r->live && r->srv &&
			(n = tern_conn_send(r->srv, buf, sizeof(buf), r->now)) > 0;
	     i++) {
		struct fq_walk w;
		fq_check_datagram(buf, (size_t)n, 0, &w);
		moved = 1;
		if (!r->srv_scid[0].len && w.has_initial)
			r->srv_scid[0] = w.first_scid;
		if (r->capture && r->n_capture < 4) {
			memcpy(r->capture[r->n_capture], buf, (size_t)n);
			r->capture_len[r->n_capture++] = (size_t)n;
		}
		size_t len = (size_t)n;
		if (r->stage == 1 && !(len = initials_only(buf, len)))
			continue;
		deliver(r, buf, len);
		if (r->stage == 1)
			r->live = 0;
	}
	return moved;
}

static void handshake(struct run *r)
{
	r->live = 1;
	for (int i = 0; i < 400 && r->live; i++) {
		int moved = client_flush(r);
		moved |= server_flush(r);
		if (moved)
			continue;
		if (r->established)
			break; /* confirmed and quiet: the fuzzer takes over */
		uint64_t t = tern_conn_next_timeout(r->cli);
		uint64_t ts = r->srv ? tern_conn_next_timeout(r->srv) : UINT64_MAX;
		t = ts < t ? ts : t;
		if (t == UINT64_MAX)
			break;
		r->now = t > r->now ? t : r->now;
		tern_conn_handle_timeout(r->cli, r->now);
		if (r->srv)
			tern_conn_handle_timeout(r->srv, r->now);
	}
	r->live = 0;
	r->srv_scid[1] = r->srv_scid[0];
	r->srv_scid[1].bytes[0] ^= 0xff;
}

/* ---- structured records ---------------------------------------------------------- */

/* Level 3 with the pad bit: the bytes, then the server CID's reset token,
 * so a short datagram can be a valid stateless reset (RFC 9000 §10.3). */
static void append_raw(struct run *r, const uint8_t *d, size_t len, int token)
{
	size_t room = sizeof(r->dg) - r->dg_len;
	len = len < room ? len : room;
	memcpy(r->dg + r->dg_len, d, len);
	r->dg_len += len;
	room -= len;
	if (token && room >= TERN_RESET_TOKEN_LEN) {
		const struct tern_cid *cid = &r->srv_scid[0];
		CHECK(tern_reset_token(&reset_key, cid->bytes, cid->len, r->dg + r->dg_len) == 0);
		r->dg_len += TERN_RESET_TOKEN_LEN;
	}
}

/* Level 3 with bit 7: a Retry carrying the bytes as its token, with a
 * valid integrity tag (RFC 9001 §5.8); the client's next Initials use keys
 * from the Retry's SCID (RFC 9001 §5.2), and so do the fuzzer's. */
static void append_retry(struct run *r, const uint8_t *token, size_t len,
			 const struct tern_cid *scid)
{
	size_t room = sizeof(r->dg) - r->dg_len;
	uint8_t *out = r->dg + r->dg_len;
	int n = tern_retry_write(out, room, TERN_VERSION_1, &r->cli_scid, scid, token, len);
	if (n <= 0 || room < (size_t)n + TERN_RETRY_TAG_LEN ||
	    tern_retry_tag_compute(TERN_VERSION_1, r->odcid.bytes, r->odcid.len, out, (size_t)n,
				   out + n) != 0)
		return;
	r->dg_len += (size_t)n + TERN_RETRY_TAG_LEN;
	fq_sender_set_initial(&r->fs, scid);
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
	if (level == FQ_RAW && (ctl & 0x80)) {
		append_retry(r, d, len, &r->srv_scid[(pnc >> 6) & 1]);
	} else if (level == FQ_RAW) {
		append_raw(r, d, len, ctl & 4);
	} else {
		uint64_t *next = &r->fs.pn[level];
		uint64_t pn = *next + (uint64_t)(pnc & 0x3f);
		pn = pn >= 5 ? pn - 5 : 0;
		if (pn >= *next)
			*next = pn + 1;
		size_t min = ctl & 4 && r->dg_len < 1200 ? 1200 - r->dg_len : 0;
		r->dg_len += fq_forge(&r->fs, level, r->gen, &r->cli_scid, &r->srv_scid[(pnc >> 6) & 1],
				      NULL, 0, pn, d, len, min, r->dg + r->dg_len,
				      sizeof(r->dg) - r->dg_len);
	}
	if (!(ctl & 8) || r->dg_len == sizeof(r->dg)) {
		deliver(r, r->dg, r->dg_len);
		r->dg_len = 0;
	}
}

static void raw_record(struct run *r, struct fq_input *in)
{
	int ctl = fq_byte(in);
	const uint8_t *d;
	size_t len = fq_take(in, &d);
	r->now += fq_step(ctl >> 2);
	settle(r);
	deliver(r, d, len < FQ_DGRAM_MAX ? len : FQ_DGRAM_MAX);
}

/* ---- one input -------------------------------------------------------------------- */

static void run_init(struct run *r, int mode)
{
	struct tern_conn_config cfg;
	struct tern_path path;
	memset(r, 0, sizeof(*r));
	memset(&fq_sec, 0, sizeof(fq_sec));
	r->now = 1000 * FQ_SEC;
	r->cli_rng = 0x2545f4914f6cdd1dull;
	r->srv_rng = 0x9e3779b97f4a7c15ull;
	fq_sender_init(&r->fs, 0);
	tern_conn_config_init(&cfg, 0);
	cfg.tls = cli_tls;
	cfg.server_name = "localhost";
	cfg.rand = (struct tern_rand){fq_rand, &r->cli_rng};
	cfg.max_datagram = FQ_MAX_DATAGRAM;
	cfg.cb = &cli_cb;
	cfg.user = r;
	path_of(&path);
	CHECK(tern_conn_new_client(&r->cli, &cfg, &path, r->now) == 0);
	if (mode != 2)
		settle(r); /* the first Initial goes out, to nobody */
	if (mode == 1) {
		tern_cid_set(&r->srv_scid[0], fake_scid[0], 8);
		tern_cid_set(&r->srv_scid[1], fake_scid[1], 8);
	}
}

/* Lets every timer run out, so the close and idle paths run too. */
static void run_down(struct run *r)
{
	for (int i = 0; i < 200 && tern_conn_state(r->cli) != TERN_CONN_CLOSED; i++) {
		uint64_t t = tern_conn_next_timeout(r->cli);
		if (t == UINT64_MAX)
			break;
		r->now = t > r->now ? t : r->now;
		settle(r);
	}
}

static void run_free(struct run *r)
{
	tern_conn_free(r->cli);
	tern_conn_free(r->srv);
	fq_sender_clear(&r->fs);
}

static void run_input(struct run *r, const uint8_t *data, size_t size)
{
	struct fq_input in = {data, data + size};
	int m = fq_byte(&in);
	int mode = (m & 3) % 3;
	run_init(r, mode);
	if (mode == 2) {
		r->stage = (m >> 2) & 1;
		handshake(r);
	}
	while (in.p < in.end) {
		if (mode == 0)
			raw_record(r, &in);
		else
			record(r, &in);
	}
	if (r->dg_len)
		deliver(r, r->dg, r->dg_len);
	run_down(r);
	if (fq_debug) {
		struct tern_conn_stats st;
		tern_conn_stats(r->cli, &st);
		fprintf(stderr,
			"mode %d stage %d: established %d, state %d, close reason %d code 0x%llx, "
			"packets recv %llu dropped %llu, streams %d\n",
			mode, r->stage, r->established, tern_conn_state(r->cli),
			tern_conn_close_info(r->cli)->reason,
			(unsigned long long)tern_conn_close_info(r->cli)->code,
			(unsigned long long)st.pkts_recv, (unsigned long long)st.pkts_dropped,
			r->streams_opened);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run r;
	run_input(&r, data, size);
	run_free(&r);
	return 0;
}

/* ---- seeds ------------------------------------------------------------------------ */

static void seed_rec(struct fq_seed *s, int ctl, int pnc, const struct fq_frames *fr)
{
	fq_seed_byte(s, ctl);
	fq_seed_byte(s, pnc);
	fq_seed_data(s, fr->b, fr->n);
}

static void seed_recs(const char *dir, const char *name, int mode, const struct fq_frames *fr,
		      int n, int ctl)
{
	struct fq_seed s = {0};
	fq_seed_byte(&s, mode);
	for (int i = 0; i < n; i++)
		seed_rec(&s, ctl | (i ? 2 << 4 : 0), 5, &fr[i]);
	fq_seed_write(dir, name, &s);
}

/* The frames of every packet of `type` in a captured server datagram. */
static void server_frames(struct run *r, size_t i, enum tern_pkt_type type,
			  struct tern_crypto_keys *k, struct fq_frames *out)
{
	uint8_t buf[FQ_DGRAM_MAX];
	size_t len = r->capture_len[i];
	memcpy(buf, r->capture[i], len);
	for (size_t off = 0; off < len;) {
		struct tern_pkt_hdr h;
		int n = tern_pkt_parse(buf + off, len - off, 8, &h);
		CHECK(n > 0);
		if (h.type == type)
			out->n += fq_open(k, buf + off, &h, out->b + out->n, sizeof(out->b) - out->n);
		off += (size_t)n;
	}
}

/* A real exchange: the server's first datagram as raw input, its Initial
 * frames (ServerHello) for mode 1, its Handshake frames for mode 2 halfway. */
static void exchange_seeds(const char *dir)
{
	static uint8_t cap[4][FQ_DGRAM_MAX];
	static struct run r;
	struct fq_seed s = {0};
	struct fq_frames ini = {0}, hs[2];
	run_init(&r, 2);
	r.capture = cap;
	handshake(&r);
	CHECK(r.established && r.n_capture >= 2);
	fq_seed_byte(&s, 0);
	fq_seed_byte(&s, 0);
	fq_seed_data(&s, cap[0], r.capture_len[0]);
	fq_seed_write(dir, "raw-server-flight", &s);
	struct tern_crypto_keys kc, ks, khs;
	CHECK(tern_initial_keys_init(TERN_VERSION_1, r.odcid.bytes, r.odcid.len, &kc, &ks) == 0);
	CHECK(tern_crypto_keys_init(&khs, TERN_VERSION_1, TERN_AEAD_AES_128_GCM, fq_sec.s[0][0], 32) == 0);
	server_frames(&r, 0, TERN_PKT_INITIAL, &ks, &ini);
	memset(hs, 0, sizeof(hs));
	server_frames(&r, 0, TERN_PKT_HANDSHAKE, &khs, &hs[0]);
	server_frames(&r, 1, TERN_PKT_HANDSHAKE, &khs, &hs[1]);
	seed_recs(dir, "init-serverhello", 1, &ini, 1, FQ_INITIAL);
	s.n = 0;
	fq_seed_byte(&s, 1);
	fq_seed_byte(&s, FQ_RAW | 0x80);
	fq_seed_byte(&s, 0);
	fq_seed_data(&s, "retry-token", 11);
	seed_rec(&s, FQ_INITIAL | 2 << 4, 5, &ini);
	fq_seed_write(dir, "init-retry-serverhello", &s);
	seed_recs(dir, "hs-server-flight", 2 | 4, hs, 2, FQ_HANDSHAKE);
	tern_crypto_keys_clear(&kc);
	tern_crypto_keys_clear(&ks);
	tern_crypto_keys_clear(&khs);
	run_free(&r);
}

static void initial_seeds(const char *dir)
{
	struct fq_frames fr[3];
	memset(fr, 0, sizeof(fr));
	fq_frame_ack(&fr[0], 0, 0);
	fq_frame_raw(&fr[0], "\x01", 1);
	fq_frame_raw(&fr[1], "\x07\x04tokn", 6); /* NEW_TOKEN in an Initial */
	fq_frame_close(&fr[2], 0, TERN_QUIC_CONNECTION_REFUSED);
	seed_recs(dir, "init-ack-token-close", 1, fr, 3, FQ_INITIAL);
}

static void app_seeds(const char *dir)
{
	struct fq_frames fr[3];
	struct tern_frame f;
	memset(fr, 0, sizeof(fr));
	fq_frame_stream(&fr[0], 1, 0, "push", 1);
	fq_frame_stream(&fr[0], 3, 0, "uni", 0);
	fq_frame_ack(&fr[1], 4, 4);
	f = (struct tern_frame){.type = TERN_FRAME_NEW_CONNECTION_ID};
	f.new_cid.seq = 1;
	tern_cid_set(&f.new_cid.cid, (const uint8_t *)"\x11\x22\x33\x44\x55\x66\x77\x88", 8);
	memset(f.new_cid.reset_token, 0x99, sizeof(f.new_cid.reset_token));
	fq_frame(&fr[1], &f);
	fq_frame_raw(&fr[2], "\x07\x04tokn\x1e", 7); /* NEW_TOKEN, HANDSHAKE_DONE again */
	f = (struct tern_frame){.type = TERN_FRAME_MAX_STREAMS_UNI, .max_streams.max = 100};
	fq_frame(&fr[2], &f);
	seed_recs(dir, "app-streams-cid-token", 2, fr, 3, FQ_APP);
	memset(fr, 0, sizeof(fr));
	fq_frame_stream(&fr[0], 1, 0, "before", 0);
	fq_frame_stream(&fr[1], 1, 6, "after", 1);
	seed_recs(dir, "app-key-update", 2, fr, 2, FQ_APP | 0x80);
	memset(fr, 0, sizeof(fr));
	f = (struct tern_frame){.type = TERN_FRAME_PATH_CHALLENGE};
	memcpy(f.path.data, "pathchal", 8);
	fq_frame(&fr[0], &f);
	fq_frame_raw(&fr[1], "\x30\x01\x02", 3); /* DATAGRAM, never negotiated */
	seed_recs(dir, "app-path-datagram", 2, fr, 2, FQ_APP);
	memset(fr, 0, sizeof(fr));
	fq_frame_close(&fr[0], 1, 0x10c);
	seed_recs(dir, "app-close", 2, fr, 1, FQ_APP);
	memset(fr, 0, sizeof(fr));
	fq_frame_raw(&fr[0], "\x41\x00\x01\x02\x03\x04\x05\x06\x07\x08", 10);
	seed_recs(dir, "app-stateless-reset", 2, fr, 1, FQ_RAW | 4);
}

static void write_seeds(const char *dir)
{
	exchange_seeds(dir);
	initial_seeds(dir);
	app_seeds(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	uint8_t k[32];
	memset(k, 0x3c, sizeof(k));
	fq_tls_init(&srv_tls, &cli_tls, "tern-fuzz");
	CHECK(tern_reset_key_init(&reset_key, k, sizeof(k)) == 0);
	fq_debug = getenv("TERN_FUZZ_DEBUG") != NULL;
	const char *dir = getenv("TERN_FUZZ_WRITE_SEEDS");
	if (dir) {
		write_seeds(dir);
		exit(0);
	}
	return 0;
}
