/* badpeer: a QUIC client that misbehaves on purpose, for the interop suite.
 *
 * A well-behaved client (gtlsclient, tern-client) can never put a STREAM
 * frame in a Handshake packet or repeat a transport parameter, so the bad
 * inputs of RFC 9000 that need keys are built here from tern's own pieces:
 * the packet codecs, packet protection, the frame codec and the TLS glue. It
 * drives one connection to ternd by hand and says whether the server reacted
 * as RFC 9000 requires:
 *
 *   badpeer HOST PORT SCENARIO [KEYLOG]
 *     handshake          control: full handshake; the server must send
 *                        HANDSHAKE_DONE and no CONNECTION_CLOSE
 *     short-initial      ClientHello in a 1199-byte datagram: no answer
 *                        (§14.1), then the same in 1200 bytes: ServerHello
 *     truncated-initial  a 1300-byte Initial cut to 1250 bytes: no answer
 *                        (§12.2, the Length field overruns the datagram),
 *                        then the whole packet: ServerHello
 *     stream-in-initial  STREAM next to the ClientHello in an Initial:
 *                        PROTOCOL_VIOLATION (§12.4) or a silent drop, but
 *                        no handshake
 *     stream-in-handshake  STREAM in a Handshake packet: CONNECTION_CLOSE
 *                        PROTOCOL_VIOLATION naming frame type 0x0a (§12.4)
 *     handshake-done-from-client  HANDSHAKE_DONE sent by the client in
 *                        1-RTT: PROTOCOL_VIOLATION naming 0x1e (§19.20)
 *     dup-tparam         initial_max_data twice in the ClientHello:
 *                        TRANSPORT_PARAMETER_ERROR (§7.4) or a silent drop,
 *                        but no handshake
 *
 *   Connection close (RFC 9000 §10), each printing what it saw in lines the
 *   interop scripts read ("key=value" after "ok:"):
 *     bad-alpn           a ClientHello offering only "hq-interop": CRYPTO_ERROR
 *                        0x178 (no_application_protocol, RFC 9001 §8.1) in
 *                        an Initial; prints the packets of the datagram
 *                        that carried the close
 *     bad-tparam         max_idle_timeout whose length (2) disagrees with its
 *                        1-byte varint: TRANSPORT_PARAMETER_ERROR (§7.4) in
 *                        an Initial; prints the close datagram's packets
 *                        (KEYLOG, ternd's key log, lets it open a Handshake
 *                        packet although no ServerHello ever reached us)
 *     hold-request       full handshake, then an unfinished HTTP/3 request
 *                        (a HEADERS frame cut short, no FIN); prints
 *                        "holding" and waits up to 20 s for the server to
 *                        close with an application CONNECTION_CLOSE
 *                        H3_NO_ERROR (0x100)
 *     closing-flood      puts the server in the closing state (HANDSHAKE_DONE
 *                        from the client), floods it with 10,000 valid 1-RTT
 *                        packets, counts the CONNECTION_CLOSE replies (§10.2.1:
 *                        rate-limited), then probes until the connection is
 *                        freed (a stateless reset carrying the token of its
 *                        transport parameters): no close after 3xPTO, and
 *                        no reset before it
 *
 * Exit 0 when the server behaved, 1 with one line on stderr when not, 2 on a
 * local failure (bad arguments, socket, TLS setup). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tern/common.h"
#include "tern/crypto.h"
#include "tern/frame.h"
#include "tern/packet.h"
#include "tern/app.h"
#include "tern/tls.h"
#include "tern/tparams.h"

#define CID_LEN 8
#define PN_LEN 2
#define CRYPTO_BUF 65536
#define OUT_BUF 16384
#define DGRAM_MAX 65536

/* Packet number spaces, RFC 9000 §12.3. */
enum space { SP_INITIAL, SP_HANDSHAKE, SP_APP, SP_N };

struct crypto_in {
	uint8_t buf[CRYPTO_BUF];
	uint8_t have[CRYPTO_BUF]; /* 1 per byte received: CRYPTO may arrive out of order */
	size_t fed;               /* bytes already given to TLS */
};

struct peer {
	int fd;
	struct sockaddr_in to;
	struct tern_cid odcid, scid, dcid;
	int have_server_cid;
	struct tern_crypto_keys rx[TERN_TLS_NUM_LEVELS], tx[TERN_TLS_NUM_LEVELS];
	uint64_t next_pn[SP_N], largest_rx[SP_N];
	struct tern_tls_ctx *ctx;
	struct tern_tls *tls;
	int tls_err;
	struct crypto_in cin[TERN_TLS_NUM_LEVELS];
	uint8_t cout[TERN_TLS_NUM_LEVELS][OUT_BUF];
	size_t cout_len[TERN_TLS_NUM_LEVELS], cout_sent[TERN_TLS_NUM_LEVELS];
	/* What the server did. */
	unsigned datagrams, packets[SP_N], undecryptable;
	int got_server_crypto, got_handshake_done, got_close;
	uint64_t close_code, close_ftype;
	int close_app;
	enum space close_space;
	unsigned close_dgrams, close_spaces; /* datagrams with a close; bit per space */
	uint64_t close_codes[SP_N];          /* the last close code seen per space */
	int close_apps[SP_N];
	uint64_t first_close_at, last_close_at; /* ms, now_ms() */
	char close_dgram[160];                  /* the packets of the first close datagram */
	/* The server's stateless reset token (its transport parameters). */
	int have_token;
	uint8_t token[TERN_STATELESS_RESET_TOKEN_LEN];
	unsigned resets;
	uint64_t first_reset_at;
};

static struct peer P; /* key contexts hold aligned AES state: static typed storage */

static const char *scenario;

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "badpeer %s: FAIL: ", scenario);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "badpeer %s: error: ", scenario);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *space_name(enum space s)
{
	return s == SP_INITIAL ? "Initial" : s == SP_HANDSHAKE ? "Handshake" : "1-RTT";
}

/* ---- TLS callbacks --------------------------------------------------------- */

static int on_secret(void *user, enum tern_tls_level level, enum tern_tls_dir dir, uint16_t suite,
		     const uint8_t *secret, size_t len)
{
	(void)user;
	int s = tern_aead_suite_from_tls(suite);
	if (s < 0)
		return s;
	struct tern_crypto_keys *k = dir == TERN_TLS_READ ? &P.rx[level] : &P.tx[level];
	return tern_crypto_keys_init(k, TERN_VERSION_1, (enum tern_aead_suite)s, secret, len);
}

static int on_crypto_data(void *user, enum tern_tls_level level, const uint8_t *data, size_t len)
{
	(void)user;
	if (P.cout_len[level] + len > OUT_BUF)
		return TERN_ERR_NOBUF;
	memcpy(P.cout[level] + P.cout_len[level], data, len);
	P.cout_len[level] += len;
	return 0;
}

static void on_alert(void *user, enum tern_tls_level level, uint8_t alert)
{
	(void)user;
	fprintf(stderr, "badpeer %s: our TLS raised alert %u at level %d\n", scenario, alert, level);
}

static const struct tern_tls_callbacks tls_cb = {
	.on_secret = on_secret, .on_crypto_data = on_crypto_data, .on_alert = on_alert};

/* ---- setup ------------------------------------------------------------------ */

static uint8_t *tp_put(uint8_t *p, uint64_t id, uint64_t v)
{
	p = tern_varint_encode(p, id);
	p = tern_varint_encode(p, tern_varint_size(v));
	return tern_varint_encode(p, v);
}

enum tp_mode { TP_GOOD, TP_DUPLICATE, TP_MALFORMED };

/* Our transport parameters, encoded by hand so that one can be repeated or
 * malformed, which tern_tparams_encode (rightly) cannot do. */
static size_t client_tparams(uint8_t *out, enum tp_mode mode)
{
	uint8_t *p = out;
	if (mode == TP_MALFORMED) {
		/* RFC 9000 §18.2: an integer parameter's value is one varint; here
		 * the 1-byte varint 5 does not fill the length of 2 */
		*p++ = TERN_TP_MAX_IDLE_TIMEOUT;
		*p++ = 2;
		*p++ = 0x05;
		*p++ = 0x00;
	} else {
		p = tp_put(p, TERN_TP_MAX_IDLE_TIMEOUT, 10000);
	}
	p = tp_put(p, TERN_TP_INITIAL_MAX_DATA, 1 << 20);
	p = tp_put(p, TERN_TP_INITIAL_MAX_STREAM_DATA_BIDI_LOCAL, 1 << 20);
	p = tp_put(p, TERN_TP_INITIAL_MAX_STREAM_DATA_BIDI_REMOTE, 1 << 20);
	p = tp_put(p, TERN_TP_INITIAL_MAX_STREAM_DATA_UNI, 1 << 20);
	p = tp_put(p, TERN_TP_INITIAL_MAX_STREAMS_BIDI, 100);
	p = tp_put(p, TERN_TP_INITIAL_MAX_STREAMS_UNI, 100);
	if (mode == TP_DUPLICATE) /* RFC 9000 §7.4: MUST NOT be sent more than once */
		p = tp_put(p, TERN_TP_INITIAL_MAX_DATA, 2 << 20);
	p = tern_varint_encode(p, TERN_TP_INITIAL_SCID);
	p = tern_varint_encode(p, P.scid.len);
	memcpy(p, P.scid.bytes, P.scid.len);
	return (size_t)(p + P.scid.len - out);
}

static void setup(const char *host, const char *port, enum tp_mode tp_mode, const char *alpn_id)
{
	uint8_t rnd[2 * CID_LEN];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		die("getrandom: %s", strerror(errno));
	tern_cid_set(&P.odcid, rnd, CID_LEN);
	tern_cid_set(&P.scid, rnd + CID_LEN, CID_LEN);
	P.dcid = P.odcid;
	for (int s = 0; s < SP_N; s++)
		P.largest_rx[s] = TERN_PN_NONE;
	if (tern_initial_keys_init(TERN_VERSION_1, P.odcid.bytes, P.odcid.len, &P.tx[0], &P.rx[0]) < 0)
		die("Initial keys");

	char err[256];
	const char *alpn[] = {alpn_id};
	if (tern_tls_ctx_new_client(&P.ctx, alpn, 1, false, NULL, 0, err, sizeof(err)) < 0)
		die("TLS context: %s", err);
	uint8_t tp[256];
	size_t tplen = client_tparams(tp, tp_mode);
	if (tern_tls_new(&P.tls, P.ctx, false, "localhost", tp, tplen, &tls_cb, NULL) < 0 ||
	    tern_tls_start(P.tls) < 0)
		die("TLS start");

	P.to.sin_family = AF_INET;
	P.to.sin_port = htons((uint16_t)atoi(port));
	if (inet_pton(AF_INET, host, &P.to.sin_addr) != 1)
		die("bad IPv4 address '%s'", host);
	P.fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (P.fd < 0 || connect(P.fd, (struct sockaddr *)&P.to, sizeof(P.to)) < 0)
		die("socket: %s", strerror(errno));
}

/* ---- sending ---------------------------------------------------------------- */

static enum space space_of(enum tern_pkt_type t)
{
	return t == TERN_PKT_INITIAL ? SP_INITIAL : t == TERN_PKT_HANDSHAKE ? SP_HANDSHAKE : SP_APP;
}

static enum tern_tls_level level_of(enum tern_pkt_type t)
{
	return t == TERN_PKT_INITIAL     ? TERN_TLS_LEVEL_INITIAL
	       : t == TERN_PKT_HANDSHAKE ? TERN_TLS_LEVEL_HANDSHAKE
				       : TERN_TLS_LEVEL_APPLICATION;
}

/* Seals one packet of `type` carrying frames[0..flen) into out, padded with
 * PADDING so the packet is at least min_size bytes (and the header-protection
 * sample fits, RFC 9001 §5.4.2). Returns its length. */
static size_t seal(enum tern_pkt_type type, const uint8_t *frames, size_t flen, size_t min_size,
		   uint8_t *out, size_t cap)
{
	enum space sp = space_of(type);
	struct tern_crypto_keys *k = &P.tx[level_of(type)];
	uint64_t pn = P.next_pn[sp]++;
	int off = type == TERN_PKT_1RTT
			  ? tern_pkt_short_write(out, cap, &P.dcid, pn, PN_LEN, 0, 0)
			  : tern_pkt_long_write(out, cap, TERN_VERSION_1, type, &P.dcid, &P.scid, NULL, 0,
						pn, PN_LEN);
	if (off < 0)
		die("header write: %d", off);
	size_t hdr = (size_t)off + PN_LEN, plen = flen < 4 ? 4 : flen;
	if (hdr + plen + TERN_AEAD_TAG_LEN < min_size)
		plen = min_size - hdr - TERN_AEAD_TAG_LEN;
	if (hdr + plen + TERN_AEAD_TAG_LEN > cap)
		die("packet does not fit");
	memcpy(out + hdr, frames, flen);
	memset(out + hdr + flen, 0, plen - flen);
	size_t len = hdr + plen + TERN_AEAD_TAG_LEN;
	if (type != TERN_PKT_1RTT && tern_pkt_patch_length(out, (size_t)off, len) < 0)
		die("length patch");
	if (tern_aead_seal(k, pn, out, hdr, out + hdr, plen, out + hdr + plen) < 0 ||
	    tern_hp_protect(k, out, len, (size_t)off, PN_LEN) < 0)
		die("sealing a %s packet", space_name(sp));
	return len;
}

static void send_raw(const uint8_t *d, size_t n)
{
	if (send(P.fd, d, n, 0) != (ssize_t)n)
		die("send: %s", strerror(errno));
}

/* Appends a CRYPTO frame with the handshake bytes of `level` not sent yet. */
static size_t put_crypto(uint8_t *p, uint8_t *end, enum tern_tls_level level)
{
	struct tern_frame f = {.type = TERN_FRAME_CRYPTO};
	f.crypto.offset = P.cout_sent[level];
	f.crypto.data = P.cout[level] + P.cout_sent[level];
	f.crypto.len = P.cout_len[level] - P.cout_sent[level];
	uint8_t *start = p;
	if (f.crypto.len == 0)
		return 0;
	if (tern_frame_encode(&p, end, &f) < 0)
		die("CRYPTO frame does not fit");
	P.cout_sent[level] = P.cout_len[level];
	return (size_t)(p - start);
}

/* A STREAM frame (type 0x0a: Length, no Offset, no FIN) on stream 0. */
#define BAD_STREAM_TYPE (TERN_FRAME_STREAM | TERN_FRAME_STREAM_LEN)
static size_t put_stream(uint8_t *p, uint8_t *end)
{
	static const char req[] = "GET /";
	struct tern_frame f = {.type = BAD_STREAM_TYPE};
	f.stream.data = (const uint8_t *)req;
	f.stream.len = sizeof(req) - 1;
	uint8_t *start = p;
	if (tern_frame_encode(&p, end, &f) < 0)
		die("STREAM frame");
	return (size_t)(p - start);
}

/* The client's first Initial: [STREAM] CRYPTO(ClientHello), padded to size. */
static size_t client_initial(uint8_t *out, size_t size, int with_stream)
{
	uint8_t fr[4096], *p = fr, *end = fr + sizeof(fr);
	if (with_stream)
		p += put_stream(p, end);
	p += put_crypto(p, end, TERN_TLS_LEVEL_INITIAL);
	return seal(TERN_PKT_INITIAL, fr, (size_t)(p - fr), size, out, DGRAM_MAX);
}

/* ---- receiving -------------------------------------------------------------- */

static void crypto_store(enum tern_tls_level level, const struct tern_frame *f)
{
	struct crypto_in *c = &P.cin[level];
	if (f->crypto.offset + f->crypto.len > CRYPTO_BUF)
		fail("server sent CRYPTO beyond %d bytes at level %d", CRYPTO_BUF, level);
	memcpy(c->buf + f->crypto.offset, f->crypto.data, f->crypto.len);
	memset(c->have + f->crypto.offset, 1, f->crypto.len);
}

/* Hands TLS the in-order CRYPTO bytes of every level it has keys for. */
static void tls_pump(void)
{
	for (int l = 0; l < TERN_TLS_NUM_LEVELS && !P.tls_err; l++) {
		struct crypto_in *c = &P.cin[l];
		size_t n = 0;
		while (c->fed + n < CRYPTO_BUF && c->have[c->fed + n])
			n++;
		if (n == 0)
			continue;
		int rc = tern_tls_provide(P.tls, (enum tern_tls_level)l, c->buf + c->fed, n);
		c->fed += n;
		if (rc < 0) {
			P.tls_err = rc;
			fprintf(stderr, "badpeer %s: our TLS failed on the server's data: %d\n", scenario,
				rc);
		}
	}
}

static void frames(enum space sp, enum tern_tls_level level, const uint8_t *p, const uint8_t *end)
{
	struct tern_frame f;
	while (p < end) {
		int rc = tern_frame_decode(&p, end, &f);
		if (rc < 0)
			fail("server sent an undecodable frame in a %s packet (%d)", space_name(sp), rc);
		if (f.type == TERN_FRAME_CRYPTO) {
			crypto_store(level, &f);
			P.got_server_crypto = 1;
		} else if (f.type == TERN_FRAME_HANDSHAKE_DONE) {
			P.got_handshake_done = 1;
		} else if (f.type == TERN_FRAME_CONNECTION_CLOSE ||
			   f.type == TERN_FRAME_CONNECTION_CLOSE_APP) {
			P.close_spaces |= 1u << sp;
			P.close_codes[sp] = f.close.error_code;
			P.close_apps[sp] = f.type == TERN_FRAME_CONNECTION_CLOSE_APP;
			if (!P.got_close) {
				P.got_close = 1;
				P.close_code = f.close.error_code;
				P.close_ftype = f.close.frame_type;
				P.close_app = f.type == TERN_FRAME_CONNECTION_CLOSE_APP;
				P.close_space = sp;
			}
		}
	}
}

/* Opens one packet in place; 0, or -1 when it cannot be read (no keys yet,
 * or it does not authenticate). */
static int open_packet(uint8_t *d, const struct tern_pkt_hdr *h, enum space sp,
		       enum tern_tls_level level, size_t *hdr_len, size_t *plen)
{
	struct tern_crypto_keys *k = &P.rx[level];
	size_t pn_len;
	if (!k->has_aead || tern_hp_unprotect(k, d, h->pkt_len, h->pn_offset, &pn_len) < 0)
		return -1;
	uint64_t pn = tern_pn_decode(P.largest_rx[sp], tern_pn_read(d + h->pn_offset, pn_len),
				     (unsigned)(8 * pn_len));
	*hdr_len = h->pn_offset + pn_len;
	if (h->pkt_len < *hdr_len + TERN_AEAD_TAG_LEN)
		return -1;
	*plen = h->pkt_len - *hdr_len - TERN_AEAD_TAG_LEN;
	if (tern_aead_open(k, pn, d, *hdr_len, d + *hdr_len, *plen, d + *hdr_len + *plen) < 0)
		return -1;
	if (P.largest_rx[sp] == TERN_PN_NONE || pn > P.largest_rx[sp])
		P.largest_rx[sp] = pn;
	return 0;
}

/* RFC 9000 §10.3.1: a datagram whose last 16 bytes are the token, not
 * necessarily one we can parse or open. */
static int is_reset(const uint8_t *d, size_t n)
{
	return P.have_token && n >= 21 && (d[0] & 0xc0) == 0x40 &&
	       memcmp(d + n - TERN_STATELESS_RESET_TOKEN_LEN, P.token,
		      TERN_STATELESS_RESET_TOKEN_LEN) == 0;
}

/* Appends "Type[what]" to the description of the datagram being read. */
static void describe_pkt(char *desc, size_t cap, enum space sp, const char *what)
{
	size_t l = strlen(desc);
	snprintf(desc + l, cap - l, "%s%s[%s]", l ? " + " : "", space_name(sp), what);
}

static const char *keylog_path;

/* The newest SERVER_HANDSHAKE_TRAFFIC_SECRET of ternd's key log (NSS
 * format; the scripts run one connection at a time, so it is ours when
 * ternd derived one for us). Its length; 0 when there is none. */
static size_t keylog_server_hs_secret(uint8_t *secret, size_t cap)
{
	static const char label[] = "SERVER_HANDSHAKE_TRAFFIC_SECRET ";
	char line[512];
	size_t len = 0;
	FILE *f = fopen(keylog_path, "r");
	if (!f)
		die("cannot read the key log %s: %s", keylog_path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *hex = strchr(line + sizeof(label) - 1, ' ');
		if (strncmp(line, label, sizeof(label) - 1) != 0 || !hex)
			continue;
		hex++;
		len = 0;
		unsigned byte;
		while (len < cap && sscanf(hex + 2 * len, "%2x", &byte) == 1)
			secret[len++] = (uint8_t)byte;
	}
	fclose(f);
	return len;
}

/* Opens a Handshake packet with keys from ternd's key log, trying each
 * suite whose hash fits the secret (the cipher suite is in the ServerHello
 * we never got). A failed try leaves the packet as it was and no keys. */
static int open_with_keylog(uint8_t *d, const struct tern_pkt_hdr *h, size_t *hdr_len, size_t *plen)
{
	static const enum tern_aead_suite suites[] = {TERN_AEAD_AES_128_GCM, TERN_AEAD_CHACHA20_POLY1305,
						       TERN_AEAD_AES_256_GCM};
	static uint8_t copy[DGRAM_MAX];
	uint8_t secret[64];
	size_t len = keylog_server_hs_secret(secret, sizeof(secret));
	struct tern_crypto_keys *k = &P.rx[TERN_TLS_LEVEL_HANDSHAKE];
	memcpy(copy, d, h->pkt_len);
	for (size_t i = 0; len && i < sizeof(suites) / sizeof(suites[0]); i++) {
		if (tern_crypto_keys_init(k, TERN_VERSION_1, suites[i], secret, len) < 0)
			continue;
		if (open_packet(d, h, SP_HANDSHAKE, TERN_TLS_LEVEL_HANDSHAKE, hdr_len, plen) == 0)
			return 0;
		tern_crypto_keys_clear(k);
		memcpy(d, copy, h->pkt_len);
	}
	memset(k, 0, sizeof(*k));
	return -1;
}

static void on_datagram(uint8_t *d, size_t n)
{
	char desc[sizeof(P.close_dgram)] = "";
	unsigned closes = P.close_spaces;
	uint64_t t = now_ms();
	P.datagrams++;
	if (is_reset(d, n)) {
		if (!P.resets++)
			P.first_reset_at = t;
		return;
	}
	P.close_spaces = 0;
	while (n > 0) {
		struct tern_pkt_hdr h;
		int rc = tern_pkt_parse(d, n, P.scid.len, &h);
		if (rc < 0)
			fail("server sent an unparseable packet (%d), first byte 0x%02x", rc, d[0]);
		if (h.type == TERN_PKT_VN || h.type == TERN_PKT_RETRY || h.type == TERN_PKT_0RTT)
			fail("server sent an unexpected packet type %d", (int)h.type);
		enum space sp = space_of(h.type);
		enum tern_tls_level level = level_of(h.type);
		size_t hdr_len, plen;
		int opened = open_packet(d, &h, sp, level, &hdr_len, &plen) == 0;
		if (!opened && sp == SP_HANDSHAKE && keylog_path && !P.rx[level].has_aead)
			opened = open_with_keylog(d, &h, &hdr_len, &plen) == 0;
		if (!opened) {
			P.undecryptable++;
			describe_pkt(desc, sizeof(desc), sp,
				     P.rx[level].has_aead ? "undecryptable" : "no keys");
		} else {
			unsigned before = P.close_spaces;
			P.packets[sp]++;
			if (h.type == TERN_PKT_INITIAL && !P.have_server_cid) {
				P.dcid = h.scid; /* RFC 9000 §7.2: use the server's SCID from now */
				P.have_server_cid = 1;
			}
			frames(sp, level, d + hdr_len, d + hdr_len + plen);
			describe_pkt(desc, sizeof(desc), sp,
				     P.close_spaces != before ? "close" : "no close");
			tls_pump(); /* installs the keys the next coalesced packet needs */
		}
		d += h.pkt_len;
		n -= h.pkt_len;
	}
	if (P.close_spaces) {
		if (!P.close_dgrams++) {
			P.first_close_at = t;
			snprintf(P.close_dgram, sizeof(P.close_dgram), "%s", desc);
		}
		P.last_close_at = t;
	}
	P.close_spaces |= closes;
}

/* Reads datagrams for up to ms milliseconds, or until done() says stop. */
static void wait_for(unsigned ms, int (*done)(void))
{
	static uint8_t buf[DGRAM_MAX];
	uint64_t deadline = now_ms() + ms;
	while (!(done && done())) {
		uint64_t t = now_ms();
		if (t >= deadline)
			return;
		struct pollfd pfd = {.fd = P.fd, .events = POLLIN};
		int r = poll(&pfd, 1, (int)(deadline - t));
		if (r < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		if (r <= 0)
			continue;
		ssize_t got = recv(P.fd, buf, sizeof(buf), 0);
		if (got < 0) {
			if (errno == ECONNREFUSED)
				fail("ICMP port unreachable: ternd is not listening any more");
			die("recv: %s", strerror(errno));
		}
		on_datagram(buf, (size_t)got);
	}
}

/* Reads whatever has arrived, without waiting. */
static void drain(void)
{
	static uint8_t buf[DGRAM_MAX];
	for (;;) {
		ssize_t got = recv(P.fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (got < 0 && errno == ECONNREFUSED)
			fail("ICMP port unreachable: ternd is not listening any more");
		if (got < 0)
			die("recv: %s", strerror(errno));
		on_datagram(buf, (size_t)got);
	}
}

static int done_close(void)
{
	return P.got_close;
}

static int done_tls(void)
{
	return P.got_close || P.tls_err || tern_tls_is_complete(P.tls);
}

static int done_handshake_done(void)
{
	return P.got_close || P.got_handshake_done;
}

/* ---- scenarios -------------------------------------------------------------- */

static void describe_close(char *buf, size_t cap)
{
	snprintf(buf, cap, "CONNECTION_CLOSE 0x%s code 0x%llx frame type 0x%llx in %s", P.close_app ? "1d" : "1c",
		 (unsigned long long)P.close_code, (unsigned long long)P.close_ftype,
		 space_name(P.close_space));
}

static void expect_close(uint64_t code, uint64_t ftype, uint64_t ftype_alt)
{
	char what[160];
	if (!P.got_close)
		fail("no CONNECTION_CLOSE (%u datagrams, handshake_done=%d): the bad frame was ignored",
		     P.datagrams, P.got_handshake_done);
	describe_close(what, sizeof(what));
	if (P.close_app || P.close_code != code)
		fail("%s, expected transport error 0x%llx", what, (unsigned long long)code);
	/* A frame type of 0 means "unknown" (RFC 9000 §19.19): accepted only
	 * where the error does not come from one frame (ftype_alt). */
	if (P.close_ftype != ftype && P.close_ftype != ftype_alt)
		fail("%s, expected frame type 0x%llx", what, (unsigned long long)ftype);
	printf("badpeer %s: ok: %s\n", scenario, what);
}

static void expect_silence(unsigned ms, const char *what)
{
	wait_for(ms, NULL);
	if (P.datagrams)
		fail("%s was answered (%u datagrams, %u Initial packets)", what, P.datagrams,
		     P.packets[SP_INITIAL]);
}

static void expect_server_hello(const char *what)
{
	wait_for(3000, done_tls);
	if (!P.got_server_crypto || P.got_close)
		fail("%s got no ServerHello (%u datagrams, close=%d)", what, P.datagrams, P.got_close);
	printf("badpeer %s: ok: %s answered with a ServerHello\n", scenario, what);
}

/* Finishes the handshake the server started: our Finished in a Handshake
 * packet, coalesced with a 1-RTT packet carrying app_frames (RFC 9000 §12.2). */
static void send_finished(const uint8_t *app_frames, size_t app_len)
{
	uint8_t d[4096], fr[1024];
	size_t n = 0, flen = put_crypto(fr, fr + sizeof(fr), TERN_TLS_LEVEL_HANDSHAKE);
	n += seal(TERN_PKT_HANDSHAKE, fr, flen, 0, d, sizeof(d));
	n += seal(TERN_PKT_1RTT, app_frames, app_len, 0, d + n, sizeof(d) - n);
	send_raw(d, n);
}

static void full_handshake(void)
{
	uint8_t d[DGRAM_MAX];
	send_raw(d, client_initial(d, 1200, 0));
	wait_for(3000, done_tls);
	if (P.got_close || !tern_tls_is_complete(P.tls))
		fail("the handshake did not complete (%u datagrams, close=%d, tls_err=%d)", P.datagrams,
		     P.got_close, P.tls_err);
}

static void run_handshake(void)
{
	static const uint8_t ping[] = {TERN_FRAME_PING};
	char what[160];
	full_handshake();
	send_finished(ping, sizeof(ping));
	wait_for(3000, done_handshake_done);
	if (P.got_close) {
		describe_close(what, sizeof(what));
		fail("server closed a correct connection: %s", what);
	}
	if (!P.got_handshake_done)
		fail("no HANDSHAKE_DONE after our Finished (%u datagrams)", P.datagrams);
	/* Leave cleanly so the server frees the connection now (RFC 9000 §10.2). */
	uint8_t fr[8] = {TERN_FRAME_CONNECTION_CLOSE_APP, 0x41, 0x00, 0x00}, d[256];
	send_raw(d, seal(TERN_PKT_1RTT, fr, 4, 0, d, sizeof(d)));
	printf("badpeer %s: ok: handshake complete, HANDSHAKE_DONE received\n", scenario);
}

/* RFC 9000 §14.1: a server MUST discard an Initial in a datagram under 1200
 * bytes. The same ClientHello in 1200 bytes proves the size was the reason. */
static void run_short_initial(void)
{
	uint8_t d[DGRAM_MAX];
	size_t n = client_initial(d, 1199, 0);
	if (n != 1199)
		die("built %zu bytes, not 1199", n);
	send_raw(d, n);
	expect_silence(1000, "a ClientHello Initial in 1199 bytes");
	P.cout_sent[TERN_TLS_LEVEL_INITIAL] = 0;
	P.next_pn[SP_INITIAL] = 0;
	send_raw(d, client_initial(d, 1200, 0));
	expect_server_hello("the same ClientHello in 1200 bytes");
}

static void run_truncated_initial(void)
{
	uint8_t d[DGRAM_MAX];
	size_t n = client_initial(d, 1300, 0);
	send_raw(d, n - 50);
	expect_silence(1000, "an Initial cut 50 bytes short of its Length");
	send_raw(d, n);
	expect_server_hello("the whole Initial");
}

/* RFC 9000 §12.4: STREAM is not allowed in Initial packets. Closing is
 * required, but a server may also refuse to answer an Initial-space error
 * an attacker could forge (§10.2.3): either way there must be no handshake. */
static void run_stream_in_initial(void)
{
	uint8_t d[DGRAM_MAX];
	send_raw(d, client_initial(d, 1200, 1));
	wait_for(1500, done_close);
	if (P.got_close)
		expect_close(TERN_QUIC_PROTOCOL_VIOLATION, BAD_STREAM_TYPE, BAD_STREAM_TYPE);
	else if (P.got_server_crypto || P.packets[SP_HANDSHAKE])
		fail("server went on with the handshake (%u Initial, %u Handshake packets)",
		     P.packets[SP_INITIAL], P.packets[SP_HANDSHAKE]);
	else
		printf("badpeer %s: ok: dropped silently (%u datagrams)\n", scenario, P.datagrams);
}

static void run_stream_in_handshake(void)
{
	uint8_t d[4096], fr[64];
	full_handshake();
	size_t flen = put_stream(fr, fr + sizeof(fr));
	send_raw(d, seal(TERN_PKT_HANDSHAKE, fr, flen, 0, d, sizeof(d)));
	wait_for(3000, done_close);
	expect_close(TERN_QUIC_PROTOCOL_VIOLATION, BAD_STREAM_TYPE, BAD_STREAM_TYPE);
}

/* RFC 9000 §19.20: a server MUST treat HANDSHAKE_DONE from a client as a
 * connection error of type PROTOCOL_VIOLATION. */
static void run_handshake_done_from_client(void)
{
	static const uint8_t hd[] = {TERN_FRAME_HANDSHAKE_DONE};
	full_handshake();
	send_finished(hd, sizeof(hd));
	wait_for(3000, done_close);
	expect_close(TERN_QUIC_PROTOCOL_VIOLATION, TERN_FRAME_HANDSHAKE_DONE, TERN_FRAME_HANDSHAKE_DONE);
}

static void run_dup_tparam(void)
{
	uint8_t d[DGRAM_MAX];
	send_raw(d, client_initial(d, 1200, 0));
	wait_for(1500, done_close);
	if (P.got_close)
		expect_close(TERN_QUIC_TRANSPORT_PARAMETER_ERROR, TERN_FRAME_CRYPTO, TERN_FRAME_PADDING);
	else if (P.got_server_crypto || P.packets[SP_HANDSHAKE])
		fail("server accepted a repeated transport parameter and went on with the handshake");
	else
		printf("badpeer %s: ok: dropped silently (%u datagrams)\n", scenario, P.datagrams);
}

/* The token of the server's transport parameters (RFC 9000 §18.2), which
 * covers the CID we have used since its first Initial. */
static void load_server_token(void)
{
	const uint8_t *p;
	size_t len;
	static struct tern_tparams tp;
	if (tern_tls_peer_tparams(P.tls, &p, &len) < 0 || tern_tparams_decode(p, len, 1, &tp) < 0)
		fail("cannot decode the server's transport parameters");
	if (!(tp.present & TERN_TP_HAS_STATELESS_RESET_TOKEN))
		fail("the server sent no stateless_reset_token: nothing to recognise its resets by");
	memcpy(P.token, tp.stateless_reset_token, sizeof(P.token));
	P.have_token = 1;
}

/* Waits a little for more datagrams, then prints where the close went and
 * with which code in each space. */
static void report_close_datagram(void)
{
	wait_for(300, NULL);
	printf("badpeer %s: ok: close_dgram=", scenario);
	for (const char *c = P.close_dgram; *c; c++)
		if (*c != ' ')
			putchar(*c);
	printf(" codes=");
	for (int sp = 0, first = 1; sp < SP_N; sp++) {
		if (!(P.close_spaces & (1u << sp)))
			continue;
		printf("%s%s:%s/0x%llx", first ? "" : ",", space_name((enum space)sp),
		       P.close_apps[sp] ? "1d" : "1c", (unsigned long long)P.close_codes[sp]);
		first = 0;
	}
	printf(" datagrams=%u server_hello=%d\n", P.datagrams, P.got_server_crypto);
}

/* RFC 9001 §8.1: a server that supports none of the client's application
 * protocols MUST close with no_application_protocol (alert 120), which
 * RFC 9001 §4.8 turns into CRYPTO_ERROR 0x178. */
static void run_bad_alpn(void)
{
	uint8_t d[DGRAM_MAX];
	send_raw(d, client_initial(d, 1200, 0));
	wait_for(3000, done_close);
	expect_close(TERN_QUIC_CRYPTO_ERROR(120), TERN_FRAME_CRYPTO, TERN_FRAME_PADDING);
	if (P.close_space != SP_INITIAL)
		fail("the close came in a %s packet: without a ServerHello we can read only Initials",
		     space_name(P.close_space));
	report_close_datagram();
}

static void run_bad_tparam(void)
{
	uint8_t d[DGRAM_MAX];
	send_raw(d, client_initial(d, 1200, 0));
	wait_for(3000, done_close);
	expect_close(TERN_QUIC_TRANSPORT_PARAMETER_ERROR, TERN_FRAME_CRYPTO, TERN_FRAME_PADDING);
	if (P.close_space != SP_INITIAL)
		fail("the close came in a %s packet: without a ServerHello we can read only Initials",
		     space_name(P.close_space));
	report_close_datagram();
}

/* An HTTP/3 request the server can never finish: a HEADERS frame (type
 * 0x01) announcing 32 bytes of which 4 come, and no FIN (RFC 9114 §4.1).
 * A graceful shutdown must wait for it, then close with H3_NO_ERROR. */
static void run_hold_request(void)
{
	static const uint8_t req[] = {0x01, 0x20, 0x00, 0x00, 0xd1, 0xd7};
	struct tern_frame f = {.type = TERN_FRAME_STREAM | TERN_FRAME_STREAM_LEN};
	uint8_t fr[64], *p = fr;
	char what[160];
	f.stream.data = req;
	f.stream.len = sizeof(req);
	if (tern_frame_encode(&p, fr + sizeof(fr), &f) < 0)
		die("STREAM frame");
	full_handshake();
	send_finished(fr, (size_t)(p - fr));
	wait_for(3000, done_handshake_done);
	if (P.got_close) {
		describe_close(what, sizeof(what));
		fail("server closed a connection holding a request: %s", what);
	}
	if (!P.got_handshake_done)
		fail("no HANDSHAKE_DONE after our Finished (%u datagrams)", P.datagrams);
	printf("badpeer %s: holding an unfinished request on stream 0\n", scenario);
	fflush(stdout);
	uint64_t t0 = now_ms();
	wait_for(20000, done_close);
	if (!P.got_close)
		fail("no CONNECTION_CLOSE within 20 s");
	describe_close(what, sizeof(what));
	if (!P.close_app || P.close_code != TERN_H3_NO_ERROR || P.close_space != SP_APP)
		fail("%s, expected an application close H3_NO_ERROR (0x100) in 1-RTT", what);
	printf("badpeer %s: ok: %s after_ms=%llu\n", scenario, what,
	       (unsigned long long)(now_ms() - t0));
}

#define FLOOD_PACKETS 10000
#define FLOOD_BURST 50
#define FLOOD_SIZE 100 /* large enough to be answered by a stateless reset */
/* RFC 9002 §6.2.2 and §6.2.1: we never acknowledge, so the server has no RTT
 * sample and its PTO is kInitialRtt + 4 * kInitialRtt / 2 + max_ack_delay
 * (our default 25 ms): 1024 ms. Closing lasts three of them (§10.2). */
#define SERVER_PTO_MS (333 + 4 * 333 / 2 + 25)
#define SLACK_MS 300

static void send_ping(void)
{
	static const uint8_t ping[] = {TERN_FRAME_PING};
	uint8_t d[256];
	send_raw(d, seal(TERN_PKT_1RTT, ping, sizeof(ping), FLOOD_SIZE, d, sizeof(d)));
}

/* RFC 9000 §10.2.1: in the closing state an endpoint answers incoming
 * packets with its CONNECTION_CLOSE, but SHOULD limit the rate; §10.2: it
 * lasts at least three PTOs, after which the CID is unknown and a packet
 * gets a stateless reset (§10.3). */
static void run_closing_flood(void)
{
	static const uint8_t hd[] = {TERN_FRAME_HANDSHAKE_DONE};
	full_handshake();
	load_server_token();
	send_finished(hd, sizeof(hd));
	wait_for(3000, done_close);
	expect_close(TERN_QUIC_PROTOCOL_VIOLATION, TERN_FRAME_HANDSHAKE_DONE, TERN_FRAME_HANDSHAKE_DONE);
	uint64_t closed = P.first_close_at, t0 = now_ms();
	unsigned before = P.close_dgrams;
	for (int i = 0; i < FLOOD_PACKETS; i++) {
		send_ping();
		/* paced, so the server reads what we send: a packet its socket
		 * dropped is not one the closing state answered */
		if (i % FLOOD_BURST == FLOOD_BURST - 1)
			wait_for(1, NULL);
	}
	uint64_t flood_ms = now_ms() - t0;
	wait_for(100, NULL);
	drain();
	unsigned replies = P.close_dgrams - before;
	printf("badpeer %s: flood_packets=%d flood_ms=%llu close_replies=%u\n", scenario, FLOOD_PACKETS,
	       (unsigned long long)flood_ms, replies);
	if (P.resets)
		fail("a stateless reset %llu ms after the close, during the flood: the connection was "
		     "freed before 3xPTO (%d ms)",
		     (unsigned long long)(P.first_reset_at - closed), 3 * SERVER_PTO_MS);
	if (replies == 0)
		fail("no CONNECTION_CLOSE answered %d packets to a closing connection", FLOOD_PACKETS);
	if (replies > FLOOD_PACKETS / 100)
		fail("%u CONNECTION_CLOSE replies to %d packets: not rate-limited", replies,
		     FLOOD_PACKETS);
	/* one probe every 50 ms until the connection is gone, and 500 ms more */
	uint64_t end = closed + 3 * SERVER_PTO_MS + 1500;
	while (now_ms() < end && (!P.resets || now_ms() < P.first_reset_at + 500)) {
		send_ping();
		wait_for(50, NULL);
	}
	uint64_t last = P.last_close_at - closed;
	if (last > 3 * SERVER_PTO_MS + SLACK_MS)
		fail("a CONNECTION_CLOSE %llu ms after the first: past 3xPTO (%d ms)",
		     (unsigned long long)last, 3 * SERVER_PTO_MS);
	if (!P.resets)
		fail("no stateless reset within %d ms of the close: the connection was not freed after "
		     "3xPTO (%d ms), or unknown CIDs get no reset",
		     (int)(end - closed), 3 * SERVER_PTO_MS);
	uint64_t freed = P.first_reset_at - closed;
	if (freed + SLACK_MS < 3 * SERVER_PTO_MS)
		fail("the connection was freed %llu ms after the close, before 3xPTO (%d ms)",
		     (unsigned long long)freed, 3 * SERVER_PTO_MS);
	printf("badpeer %s: ok: close_replies=%u last_close_ms=%llu first_reset_ms=%llu resets=%u "
	       "three_pto_ms=%d\n",
	       scenario, replies, (unsigned long long)last, (unsigned long long)freed, P.resets,
	       3 * SERVER_PTO_MS);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*run)(void);
	} scenarios[] = {
		{"handshake", run_handshake},
		{"short-initial", run_short_initial},
		{"truncated-initial", run_truncated_initial},
		{"stream-in-initial", run_stream_in_initial},
		{"stream-in-handshake", run_stream_in_handshake},
		{"handshake-done-from-client", run_handshake_done_from_client},
		{"dup-tparam", run_dup_tparam},
		{"bad-alpn", run_bad_alpn},
		{"bad-tparam", run_bad_tparam},
		{"hold-request", run_hold_request},
		{"closing-flood", run_closing_flood},
	};
	scenario = argc == 4 || argc == 5 ? argv[3] : "?";
	keylog_path = argc == 5 ? argv[4] : NULL;
	size_t n_scenarios = sizeof(scenarios) / sizeof(scenarios[0]);
	for (size_t i = 0; (argc == 4 || argc == 5) && i < n_scenarios; i++) {
		if (strcmp(argv[3], scenarios[i].name) == 0) {
			enum tp_mode tp = strcmp(argv[3], "dup-tparam") == 0   ? TP_DUPLICATE
					  : strcmp(argv[3], "bad-tparam") == 0 ? TP_MALFORMED
									     : TP_GOOD;
			/* "hq-interop": a real protocol, just not one ternd serves */
			const char *alpn = strcmp(argv[3], "bad-alpn") == 0 ? "hq-interop" : "h3";
			setup(argv[1], argv[2], tp, alpn);
			scenarios[i].run();
			tern_tls_free(P.tls);
			tern_tls_ctx_free(P.ctx);
			return 0;
		}
	}
	fprintf(stderr, "usage: badpeer IPV4 PORT SCENARIO [KEYLOG]\nscenarios:");
	for (size_t i = 0; i < n_scenarios; i++)
		fprintf(stderr, " %s", scenarios[i].name);
	fputc('\n', stderr);
	return 2;
}
