/* tern: TLS 1.3 for QUIC (RFC 9001) through wolfSSL's QUIC API.
 *
 * wolfSSL does the handshake; this file adapts its WOLFSSL_QUIC_METHOD
 * callbacks to tern's connection callbacks and adds the QUIC rules wolfSSL
 * leaves to its caller: server-preference ALPN that must succeed (RFC 9001
 * §8.1), mandatory transport parameters (§8.2), no KeyUpdate (§6), no
 * post-handshake authentication (§4.4), no 0-RTT CRYPTO data (§8.3), levels
 * only moving forward (§4.1.3), and a bound on what a peer can make us
 * buffer (RFC 9000 §7.5). Allocation happens at context and connection
 * setup, and inside wolfSSL; nothing here touches files or sockets. */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/quic.h>

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tern/tls.h"

/* Handshake message types, RFC 8446 §4. */
#define HS_CLIENT_HELLO 1
#define HS_NEW_SESSION_TICKET 4
#define HS_END_OF_EARLY_DATA 5
#define HS_CERTIFICATE_REQUEST 13
#define HS_KEY_UPDATE 24

#define HS_HEADER_LEN 4
#define TLS_EXT_ALPN 16
#define TLS_EXT_QUIC_TP 0x39 /* RFC 9001 §8.2 */
#define CLIENT_RANDOM_LEN 32
#define ALPN_ID_MAX 255

static const char default_suites[] =
	"TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256";

struct tern_tls_ctx {
	WOLFSSL_CTX *wctx;
	bool is_server;
	bool verify_peer;
	uint8_t n_alpn;
	uint8_t alpn_len[TERN_TLS_MAX_ALPN];
	uint8_t alpn[TERN_TLS_MAX_ALPN][ALPN_ID_MAX];
	/* wolfSSL_UseALPN() takes the list comma-separated. */
	char alpn_csv[TERN_TLS_MAX_ALPN * (ALPN_ID_MAX + 1)];
	tern_tls_keylog_fn keylog;
	void *keylog_arg;
};

struct tern_tls {
	WOLFSSL *ssl; /* NULL once released */
	struct tern_tls_ctx *ctx;
	struct tern_tls_callbacks cb;
	void *user;
	tern_tls_keylog_fn keylog;
	void *keylog_arg;
	bool is_server;
	bool started;
	bool complete;
	bool have_peer_tp;
	bool have_random;
	int err;      /* final error, 0 while healthy */
	int cb_err;   /* what a callback returned while wolfSSL ran */
	int alert;    /* the alert reported through on_alert, -1 before */
	uint8_t installed; /* bit (level * 2 + dir) per secret handed over */
	uint16_t suite;
	/* Framing of the incoming handshake messages, across levels. */
	int8_t rx_level;
	uint8_t rx_hdr_len;
	uint8_t rx_hdr[HS_HEADER_LEN];
	uint32_t rx_left;
	uint32_t tickets;
	/* Server: the first ClientHello, held until whole when it comes in
	 * pieces, so ALPN can be chosen before wolfSSL reads it. */
	bool hello_seen;
	uint8_t *hold;
	size_t hold_len;
	const uint8_t *alpn; /* points into ctx->alpn */
	uint8_t alpn_len;
	uint16_t peer_tp_len;
	uint8_t client_random[CLIENT_RANDOM_LEN];
	uint8_t peer_tp[TERN_TLS_MAX_PEER_TPARAMS];
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const char *wolf_reason(int code)
{
	const char *s = wolfSSL_ERR_reason_error_string((unsigned long)code);
	return s ? s : "unknown wolfSSL error";
}

/* ---- failure bookkeeping --------------------------------------------- */

static enum tern_tls_level tls_write_level(const struct tern_tls *tls)
{
	return tls->ssl ? (enum tern_tls_level)wolfSSL_quic_write_level(tls->ssl)
			: TERN_TLS_LEVEL_APPLICATION;
}

/* Errors are final: a TLS stack that failed mid-message cannot resume. */
static int tls_fail(struct tern_tls *tls, int err)
{
	if (!tls->err)
		tls->err = err;
	return tls->err;
}

static void tls_report_alert(struct tern_tls *tls, enum tern_tls_level level, uint8_t alert)
{
	if (tls->alert >= 0)
		return;
	tls->alert = alert;
	tls->cb.on_alert(tls->user, level, alert);
}

/* A failure the peer hears about as CRYPTO_ERROR 0x100 + alert (RFC 9001
 * §4.8). The first alert wins: it is the one already reported. */
static int tls_fail_alert(struct tern_tls *tls, uint8_t alert)
{
	tls_report_alert(tls, tls_write_level(tls), alert);
	return tls_fail(tls, TERN_ERR_QUIC(TERN_QUIC_CRYPTO_ERROR(tls->alert)));
}

/* Turns a wolfSSL return into 0 (it only wants more input) or the error. */
static int tls_wolf_result(struct tern_tls *tls, int rc)
{
	int e = wolfSSL_get_error(tls->ssl, rc);

	if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
		return 0;
	/* Our own callback said no (no room, key install failed): that is a
	 * local failure, not the peer's. */
	if (tls->cb_err)
		return tls_fail(tls, tls->cb_err);
	/* wolfSSL alerts on every peer error seen in the tests; one that
	 * fails without an alert failed inside (memory, state). */
	return tls_fail_alert(tls, tls->alert >= 0 ? (uint8_t)tls->alert
						   : TERN_TLS_ALERT_INTERNAL_ERROR);
}

/* ---- wolfSSL QUIC method callbacks ----------------------------------- */

static void keylog_line(struct tern_tls *tls, enum tern_tls_level level, enum tern_tls_dir dir,
			const uint8_t *secret, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char line[TERN_TLS_KEYLOG_LINE_MAX];
	bool client_secret = (dir == TERN_TLS_WRITE) != tls->is_server;
	const char *label;
	size_t n;

	if (level == TERN_TLS_LEVEL_HANDSHAKE)
		label = client_secret ? "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
				      : "SERVER_HANDSHAKE_TRAFFIC_SECRET";
	else if (level == TERN_TLS_LEVEL_APPLICATION)
		label = client_secret ? "CLIENT_TRAFFIC_SECRET_0" : "SERVER_TRAFFIC_SECRET_0";
	else if (level == TERN_TLS_LEVEL_EARLY)
		label = "CLIENT_EARLY_TRAFFIC_SECRET";
	else
		return;
	if (!tls->have_random || len > TERN_TLS_MAX_SECRET_LEN)
		return;
	n = (size_t)snprintf(line, sizeof(line), "%s ", label);
	for (size_t i = 0; i < CLIENT_RANDOM_LEN; i++) {
		line[n++] = hex[tls->client_random[i] >> 4];
		line[n++] = hex[tls->client_random[i] & 15];
	}
	line[n++] = ' ';
	for (size_t i = 0; i < len; i++) {
		line[n++] = hex[secret[i] >> 4];
		line[n++] = hex[secret[i] & 15];
	}
	line[n] = '\0';
	tls->keylog(tls->keylog_arg, line);
}

static int deliver_secret(struct tern_tls *tls, enum tern_tls_level level, enum tern_tls_dir dir,
			  const uint8_t *secret, size_t len)
{
	int rc;

	if (tls->keylog)
		keylog_line(tls, level, dir, secret, len);
	rc = tls->cb.on_secret(tls->user, level, dir, tls->suite, secret, len);
	if (rc < 0) {
		tls->cb_err = rc;
		return rc;
	}
	tls->installed |= (uint8_t)(1u << (level * 2 + dir));
	return 0;
}

static int quic_set_secrets(WOLFSSL *ssl, WOLFSSL_ENCRYPTION_LEVEL wlevel, const uint8_t *rx,
			    const uint8_t *tx, size_t len)
{
	struct tern_tls *tls = wolfSSL_get_app_data(ssl);
	enum tern_tls_level level = (enum tern_tls_level)wlevel;

	tls->suite = (uint16_t)wolfSSL_get_current_cipher_suite(ssl);
	/* wolfSSL may drop its handshake arrays (client random included)
	 * before the last secret, so keep the random for key logging. */
	if (!tls->have_random &&
	    wolfSSL_get_client_random(ssl, tls->client_random, CLIENT_RANDOM_LEN) ==
		    CLIENT_RANDOM_LEN)
		tls->have_random = true;
	if (rx && deliver_secret(tls, level, TERN_TLS_READ, rx, len) < 0)
		return 0;
	if (tx && deliver_secret(tls, level, TERN_TLS_WRITE, tx, len) < 0)
		return 0;
	return 1;
}

static int quic_add_handshake_data(WOLFSSL *ssl, WOLFSSL_ENCRYPTION_LEVEL wlevel,
				   const uint8_t *data, size_t len)
{
	struct tern_tls *tls = wolfSSL_get_app_data(ssl);
	int rc = tls->cb.on_crypto_data(tls->user, (enum tern_tls_level)wlevel, data, len);

	if (rc < 0) {
		tls->cb_err = rc;
		return 0;
	}
	return 1;
}

/* The connection sends what on_crypto_data gave it when it next writes
 * packets; there is nothing to push here. */
static int quic_flush_flight(WOLFSSL *ssl)
{
	(void)ssl;
	return 1;
}

static int quic_send_alert(WOLFSSL *ssl, WOLFSSL_ENCRYPTION_LEVEL wlevel, uint8_t alert)
{
	struct tern_tls *tls = wolfSSL_get_app_data(ssl);

	tls_report_alert(tls, (enum tern_tls_level)wlevel, alert);
	return 1;
}

static const WOLFSSL_QUIC_METHOD tern_quic_method = {
	.set_encryption_secrets = quic_set_secrets,
	.add_handshake_data = quic_add_handshake_data,
	.flush_flight = quic_flush_flight,
	.send_alert = quic_send_alert,
};

/* ---- ALPN -------------------------------------------------------------- */

static int ctx_find_alpn(const struct tern_tls_ctx *ctx, const char *id, size_t len)
{
	for (int i = 0; i < ctx->n_alpn; i++)
		if (ctx->alpn_len[i] == len && memcmp(ctx->alpn[i], id, len) == 0)
			return i;
	return -1;
}

/* Steps over a vector with a `width`-byte length prefix (RFC 8446 §3.4). */
static bool skip_vec(const uint8_t **p, const uint8_t *end, size_t width)
{
	size_t n;

	if ((size_t)(end - *p) < width)
		return false;
	n = width == 1 ? **p : tern_get_u16(*p);
	if ((size_t)(end - *p) - width < n)
		return false;
	*p += width + n;
	return true;
}

/* Finds extension `type` in a complete ClientHello (RFC 8446 §4.1.2).
 * 1: found, its body in *body; 0: absent; -1: the message does not parse,
 * and wolfSSL will reject it with the right alert. */
static int client_hello_ext(const uint8_t *m, uint16_t type, const uint8_t **body, size_t *len)
{
	const uint8_t *end = m + HS_HEADER_LEN + ((size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3]);
	const uint8_t *p = m + HS_HEADER_LEN, *ext_end;

	if (m[0] != HS_CLIENT_HELLO || end - p < 2 + 32)
		return -1;
	p += 2 + 32; /* legacy_version, random */
	if (!skip_vec(&p, end, 1) || !skip_vec(&p, end, 2) || !skip_vec(&p, end, 1) ||
	    end - p < 2)
		return -1;
	ext_end = p + 2 + tern_get_u16(p);
	if (ext_end > end)
		return -1;
	for (p += 2; p < ext_end;) {
		const uint8_t *ext = p;

		if (ext_end - p < 2)
			return -1;
		p += 2;
		if (!skip_vec(&p, ext_end, 2))
			return -1;
		if (tern_get_u16(ext) == type) {
			*body = ext + 4;
			*len = (size_t)(p - *body);
			return 1;
		}
	}
	return 0;
}

/* 1 when the client's protocol name list offers id, 0 when not, -1 when the
 * list is malformed. */
static int alpn_list_has(const uint8_t *list, size_t len, const uint8_t *id, size_t id_len)
{
	const uint8_t *p = list, *end = list + len;
	int found = 0;

	while (p < end) {
		size_t n = *p++;
		if (n == 0 || (size_t)(end - p) < n)
			return -1;
		if (n == id_len && memcmp(p, id, n) == 0)
			found = 1;
		p += n;
	}
	return found;
}

/* wolfSSL's server takes the first protocol of the client's list it knows,
 * and lets a ClientHello without ALPN through. tern's server takes the first
 * of its own list that the client offers, and insists on one (RFC 9001 §8.1,
 * RFC 7301 §3.2). So the choice is made here and given to wolfSSL as the
 * server's only protocol. ext is the ALPN extension body. */
static int server_pick_alpn(struct tern_tls *tls, const uint8_t *ext, size_t ext_len)
{
	const struct tern_tls_ctx *ctx = tls->ctx;
	const uint8_t *list = ext + 2;
	size_t list_len = ext_len - 2;
	char id[ALPN_ID_MAX + 1];

	if (ext_len < 2 || tern_get_u16(ext) != ext_len - 2)
		return 0; /* malformed: wolfSSL rejects it with decode_error */
	for (int i = 0; i < ctx->n_alpn; i++) {
		int has = alpn_list_has(list, list_len, ctx->alpn[i], ctx->alpn_len[i]);
		if (has < 0)
			return 0;
		if (!has)
			continue;
		memcpy(id, ctx->alpn[i], ctx->alpn_len[i]);
		id[ctx->alpn_len[i]] = '\0';
		if (wolfSSL_UseALPN(tls->ssl, id, ctx->alpn_len[i],
				    WOLFSSL_ALPN_FAILED_ON_MISMATCH) != WOLFSSL_SUCCESS)
			return tls_fail(tls, TERN_ERR_NOMEM);
		tls->alpn = ctx->alpn[i];
		tls->alpn_len = ctx->alpn_len[i];
		return 0;
	}
	return tls_fail_alert(tls, TERN_TLS_ALERT_NO_APPLICATION_PROTOCOL);
}

/* The server's checks of the first ClientHello, before wolfSSL answers it,
 * so that a refused client gets an alert and no server flight. */
static int server_check_hello(struct tern_tls *tls, const uint8_t *hello)
{
	const uint8_t *body;
	size_t len;
	int rc = client_hello_ext(hello, TLS_EXT_QUIC_TP, &body, &len);

	if (rc < 0)
		return 0;
	if (rc == 0) /* RFC 9001 §8.2 */
		return tls_fail_alert(tls, TERN_TLS_ALERT_MISSING_EXTENSION);
	if (len > TERN_TLS_MAX_PEER_TPARAMS)
		return tls_fail(tls, TERN_ERR_QUIC(TERN_QUIC_TRANSPORT_PARAMETER_ERROR));
	rc = client_hello_ext(hello, TLS_EXT_ALPN, &body, &len);
	if (rc < 0)
		return 0;
	if (rc == 0) /* RFC 9001 §8.1 */
		return tls_fail_alert(tls, TERN_TLS_ALERT_NO_APPLICATION_PROTOCOL);
	return server_pick_alpn(tls, body, len);
}

static int ctx_set_alpn(struct tern_tls_ctx *ctx, const char *const *list, size_t n, char *err,
			size_t errlen)
{
	size_t csv = 0;

	if (!list || n == 0 || n > TERN_TLS_MAX_ALPN) {
		set_err(err, errlen, "ALPN list needs 1 to %d protocol ids", TERN_TLS_MAX_ALPN);
		return TERN_ERR_INVAL;
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = list[i] ? strlen(list[i]) : 0;
		/* wolfSSL takes ALPN lists comma-separated, so a comma cannot be
		 * part of an id here. */
		if (len == 0 || len > ALPN_ID_MAX || memchr(list[i], ',', len)) {
			set_err(err, errlen, "ALPN id %zu must be 1 to 255 bytes without ','", i);
			return TERN_ERR_INVAL;
		}
		memcpy(ctx->alpn[i], list[i], len);
		ctx->alpn_len[i] = (uint8_t)len;
		if (i)
			ctx->alpn_csv[csv++] = ',';
		memcpy(ctx->alpn_csv + csv, list[i], len);
		csv += len;
	}
	ctx->alpn_csv[csv] = '\0';
	ctx->n_alpn = (uint8_t)n;
	return 0;
}

/* ---- contexts ---------------------------------------------------------- */

static int ctx_configure(struct tern_tls_ctx *c, char *err, size_t errlen)
{
	int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1};

	if (wolfSSL_CTX_set_quic_method(c->wctx, &tern_quic_method) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_set_cipher_list(c->wctx, default_suites) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_set_groups(c->wctx, groups, 2) != WOLFSSL_SUCCESS) {
		set_err(err, errlen, "cannot configure wolfSSL for QUIC");
		return TERN_ERR_CRYPTO;
	}
	/* Tickets are stateless; a process-wide session cache would be shared
	 * mutable state between workers for no gain. */
	wolfSSL_CTX_set_session_cache_mode(c->wctx, WOLFSSL_SESS_CACHE_OFF);
	/* No 0-RTT yet (it needs anti-replay): wolfSSL's default would put an
	 * early_data extension in every NewSessionTicket (RFC 9001 §4.6.1). */
	if (c->is_server && wolfSSL_CTX_set_max_early_data(c->wctx, 0) != WOLFSSL_SUCCESS) {
		set_err(err, errlen, "cannot turn off early data");
		return TERN_ERR_CRYPTO;
	}
	return 0;
}

static int ctx_create(struct tern_tls_ctx **out, bool is_server, const char *const *alpn,
		      size_t n_alpn, char *err, size_t errlen)
{
	struct tern_tls_ctx *c;
	int rc;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c) {
		set_err(err, errlen, "out of memory");
		return TERN_ERR_NOMEM;
	}
	c->is_server = is_server;
	rc = ctx_set_alpn(c, alpn, n_alpn, err, errlen);
	if (rc < 0) {
		free(c);
		return rc;
	}
	/* wolfSSL counts its init references; tern_tls_ctx_free() drops ours. */
	if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
		free(c);
		set_err(err, errlen, "wolfSSL_Init failed");
		return TERN_ERR_CRYPTO;
	}
	c->wctx = wolfSSL_CTX_new(is_server ? wolfTLSv1_3_server_method()
					    : wolfTLSv1_3_client_method());
	if (!c->wctx) {
		tern_tls_ctx_free(c);
		set_err(err, errlen, "wolfSSL_CTX_new failed");
		return TERN_ERR_CRYPTO;
	}
	rc = ctx_configure(c, err, errlen);
	if (rc < 0) {
		tern_tls_ctx_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

static int ctx_load_identity(struct tern_tls_ctx *c, const uint8_t *cert, size_t cert_len,
			     const uint8_t *key, size_t key_len, char *err, size_t errlen)
{
	int rc;

	rc = wolfSSL_CTX_use_certificate_chain_buffer_format(c->wctx, cert, (long)cert_len,
							     WOLFSSL_FILETYPE_PEM);
	if (rc != WOLFSSL_SUCCESS) {
		set_err(err, errlen, "cannot parse certificate PEM: %s", wolf_reason(rc));
		return TERN_ERR_INVAL;
	}
	rc = wolfSSL_CTX_use_PrivateKey_buffer(c->wctx, key, (long)key_len, WOLFSSL_FILETYPE_PEM);
	if (rc != WOLFSSL_SUCCESS) {
		set_err(err, errlen, "cannot parse private key PEM: %s", wolf_reason(rc));
		return TERN_ERR_INVAL;
	}
	if (wolfSSL_CTX_check_private_key(c->wctx) != WOLFSSL_SUCCESS) {
		set_err(err, errlen, "certificate and private key do not match");
		return TERN_ERR_INVAL;
	}
	return 0;
}

int tern_tls_ctx_new_server(struct tern_tls_ctx **ctx, const uint8_t *cert_pem, size_t cert_len,
			    const uint8_t *key_pem, size_t key_len, const char *const *alpn_list,
			    size_t n_alpn, char *err, size_t errlen)
{
	struct tern_tls_ctx *c;
	int rc;

	if (!ctx)
		return TERN_ERR_INVAL;
	*ctx = NULL;
	if (!cert_pem || !cert_len || !key_pem || !key_len || cert_len > LONG_MAX ||
	    key_len > LONG_MAX) {
		set_err(err, errlen, "a server needs a certificate and a private key");
		return TERN_ERR_INVAL;
	}
	rc = ctx_create(&c, true, alpn_list, n_alpn, err, errlen);
	if (rc < 0)
		return rc;
	rc = ctx_load_identity(c, cert_pem, cert_len, key_pem, key_len, err, errlen);
	if (rc < 0) {
		tern_tls_ctx_free(c);
		return rc;
	}
	wolfSSL_CTX_set_verify(c->wctx, WOLFSSL_VERIFY_NONE, NULL);
	*ctx = c;
	return 0;
}

int tern_tls_ctx_new_client(struct tern_tls_ctx **ctx, const char *const *alpn_list,
			    size_t n_alpn, bool verify_peer, const uint8_t *ca_pem, size_t ca_len,
			    char *err, size_t errlen)
{
	struct tern_tls_ctx *c;
	int rc;

	if (!ctx)
		return TERN_ERR_INVAL;
	*ctx = NULL;
	if (verify_peer && (!ca_pem || !ca_len || ca_len > LONG_MAX)) {
		set_err(err, errlen, "verifying the server needs a CA certificate PEM");
		return TERN_ERR_INVAL;
	}
	rc = ctx_create(&c, false, alpn_list, n_alpn, err, errlen);
	if (rc < 0)
		return rc;
	c->verify_peer = verify_peer;
	if (verify_peer) {
		rc = wolfSSL_CTX_load_verify_buffer(c->wctx, ca_pem, (long)ca_len,
						    WOLFSSL_FILETYPE_PEM);
		if (rc != WOLFSSL_SUCCESS) {
			set_err(err, errlen, "cannot parse CA certificate PEM: %s",
				wolf_reason(rc));
			tern_tls_ctx_free(c);
			return TERN_ERR_INVAL;
		}
	}
	wolfSSL_CTX_set_verify(c->wctx, verify_peer ? WOLFSSL_VERIFY_PEER : WOLFSSL_VERIFY_NONE,
			       NULL);
	*ctx = c;
	return 0;
}

int tern_tls_ctx_set_suites(struct tern_tls_ctx *ctx, const uint16_t *suites, size_t n)
{
	char list[3 * sizeof("TLS13-CHACHA20-POLY1305-SHA256")];
	size_t len = 0;

	if (!ctx || !suites || n == 0 || n > 3)
		return TERN_ERR_INVAL;
	for (size_t i = 0; i < n; i++) {
		const char *name;
		switch (suites[i]) {
		case TERN_TLS_AES_128_GCM_SHA256: name = "TLS13-AES128-GCM-SHA256"; break;
		case TERN_TLS_AES_256_GCM_SHA384: name = "TLS13-AES256-GCM-SHA384"; break;
		case TERN_TLS_CHACHA20_POLY1305_SHA256: name = "TLS13-CHACHA20-POLY1305-SHA256"; break;
		default: return TERN_ERR_INVAL;
		}
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ":" : "", name);
		if (len >= sizeof(list))
			return TERN_ERR_INVAL;
	}
	if (wolfSSL_CTX_set_cipher_list(ctx->wctx, list) != WOLFSSL_SUCCESS)
		return TERN_ERR_CRYPTO;
	return 0;
}

void tern_tls_ctx_set_keylog(struct tern_tls_ctx *ctx, tern_tls_keylog_fn fn, void *arg)
{
	if (!ctx)
		return;
	ctx->keylog = fn;
	ctx->keylog_arg = arg;
}

void tern_tls_ctx_free(struct tern_tls_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->wctx)
		wolfSSL_CTX_free(ctx->wctx);
	wolfSSL_Cleanup();
	free(ctx);
}

/* ---- connections ------------------------------------------------------- */

/* SNI carries host names only (RFC 6066 §3): no IPv4 or IPv6 literals. */
static bool is_ip_literal(const char *name)
{
	if (strchr(name, ':'))
		return true;
	for (const char *p = name; *p; p++)
		if ((*p < '0' || *p > '9') && *p != '.')
			return false;
	return true;
}

static int tls_setup_client(struct tern_tls *t, const char *server_name)
{
	struct tern_tls_ctx *ctx = t->ctx;
	size_t csv_len = strlen(ctx->alpn_csv);

	if (wolfSSL_UseALPN(t->ssl, ctx->alpn_csv, (unsigned)csv_len,
			    WOLFSSL_ALPN_FAILED_ON_MISMATCH) != WOLFSSL_SUCCESS)
		return TERN_ERR_CRYPTO;
	if (server_name && *server_name && !is_ip_literal(server_name) &&
	    wolfSSL_UseSNI(t->ssl, WOLFSSL_SNI_HOST_NAME, server_name,
			   (unsigned short)strlen(server_name)) != WOLFSSL_SUCCESS)
		return TERN_ERR_INVAL;
	if (ctx->verify_peer &&
	    wolfSSL_check_domain_name(t->ssl, server_name) != WOLFSSL_SUCCESS)
		return TERN_ERR_CRYPTO;
	return 0;
}

static bool callbacks_ok(const struct tern_tls_callbacks *cb)
{
	return cb && cb->on_secret && cb->on_crypto_data && cb->on_alert;
}

int tern_tls_new(struct tern_tls **tls, struct tern_tls_ctx *ctx, bool is_server,
		 const char *server_name, const uint8_t *local_tparams, size_t tparams_len,
		 const struct tern_tls_callbacks *cb, void *user)
{
	struct tern_tls *t;
	int rc = TERN_ERR_CRYPTO;

	if (!tls)
		return TERN_ERR_INVAL;
	*tls = NULL;
	/* wolfSSL copies at most 65353 bytes of transport parameters. */
	if (!ctx || ctx->is_server != is_server || !callbacks_ok(cb) || !local_tparams ||
	    tparams_len == 0 || tparams_len > 65353 || (server_name && strlen(server_name) > 255) ||
	    (!is_server && ctx->verify_peer && (!server_name || !*server_name)))
		return TERN_ERR_INVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return TERN_ERR_NOMEM;
	t->ctx = ctx;
	t->cb = *cb;
	t->user = user;
	t->keylog = ctx->keylog;
	t->keylog_arg = ctx->keylog_arg;
	t->is_server = is_server;
	t->alert = -1;
	t->rx_level = -1;
	t->ssl = wolfSSL_new(ctx->wctx);
	if (!t->ssl) {
		free(t);
		return TERN_ERR_NOMEM;
	}
	wolfSSL_set_app_data(t->ssl, t);
	/* Only the RFC 9001 codepoint 0x39, not the draft one as well. */
	wolfSSL_set_quic_use_legacy_codepoint(t->ssl, 0);
	if (wolfSSL_set_quic_transport_params(t->ssl, local_tparams, tparams_len) ==
		    WOLFSSL_SUCCESS &&
	    (is_server || (rc = tls_setup_client(t, server_name)) == 0)) {
		*tls = t;
		return 0;
	}
	tern_tls_free(t);
	return rc;
}

/* Copies what the peer has shown so far, and fails the handshake once it
 * should have shown it and has not. */
static int tls_check_peer(struct tern_tls *tls)
{
	const uint8_t *tp = NULL;
	size_t n = 0;
	bool due;

	if (!tls->have_peer_tp) {
		wolfSSL_get_peer_quic_transport_params(tls->ssl, &tp, &n);
		if (tp) {
			if (n > TERN_TLS_MAX_PEER_TPARAMS)
				return tls_fail(tls, TERN_ERR_QUIC(TERN_QUIC_TRANSPORT_PARAMETER_ERROR));
			memcpy(tls->peer_tp, tp, n);
			tls->peer_tp_len = (uint16_t)n;
			tls->have_peer_tp = true;
		}
	}
	if (!tls->alpn) {
		char *name = NULL;
		unsigned short len = 0;
		if (wolfSSL_ALPN_GetProtocol(tls->ssl, &name, &len) == WOLFSSL_SUCCESS && name) {
			int i = ctx_find_alpn(tls->ctx, name, len);
			if (i >= 0) {
				tls->alpn = tls->ctx->alpn[i];
				tls->alpn_len = tls->ctx->alpn_len[i];
			}
		}
	}
	/* A server has the whole ClientHello once it has handshake keys; a
	 * client has the EncryptedExtensions once the handshake is complete. */
	due = tls->complete ||
	      (tls->is_server && (tls->installed & (1u << (TERN_TLS_LEVEL_HANDSHAKE * 2))));
	if (!due)
		return 0;
	if (!tls->have_peer_tp) /* RFC 9001 §8.2 */
		return tls_fail_alert(tls, TERN_TLS_ALERT_MISSING_EXTENSION);
	if (!tls->alpn) /* RFC 9001 §8.1 */
		return tls_fail_alert(tls, TERN_TLS_ALERT_NO_APPLICATION_PROTOCOL);
	return 0;
}

static int tls_drive(struct tern_tls *tls)
{
	int rc;

	if (!tls->complete) {
		rc = wolfSSL_quic_do_handshake(tls->ssl);
		if (rc != WOLFSSL_SUCCESS) {
			rc = tls_wolf_result(tls, rc);
			if (!rc && tls->alert >= 0)
				rc = tls_fail_alert(tls, (uint8_t)tls->alert);
			return rc ? rc : tls_check_peer(tls);
		}
		tls->complete = true;
	}
	rc = tls_check_peer(tls);
	if (rc)
		return rc;
	rc = wolfSSL_process_quic_post_handshake(tls->ssl);
	if (rc != WOLFSSL_SUCCESS)
		return tls_wolf_result(tls, rc);
	/* Every alert is fatal in QUIC (RFC 9001 §4.8), even one wolfSSL
	 * raised without failing the call. */
	return tls->alert >= 0 ? tls_fail_alert(tls, (uint8_t)tls->alert) : 0;
}

int tern_tls_start(struct tern_tls *tls)
{
	if (!tls)
		return TERN_ERR_INVAL;
	if (tls->err)
		return tls->err;
	if (tls->is_server || tls->started)
		return TERN_ERR_STATE;
	tls->started = true;
	return tls_drive(tls);
}

/* Checks one complete handshake message header before wolfSSL sees it. */
static int track_message(struct tern_tls *tls, enum tern_tls_level level, uint8_t type,
			 uint32_t len)
{
	/* RFC 9001 §6: QUIC updates keys itself; §8.3: no EndOfEarlyData. */
	if (type == HS_KEY_UPDATE || type == HS_END_OF_EARLY_DATA)
		return tls_fail_alert(tls, TERN_TLS_ALERT_UNEXPECTED_MESSAGE);
	if (len > TERN_TLS_MAX_MESSAGE)
		return tls_fail(tls, TERN_ERR_QUIC(TERN_QUIC_CRYPTO_BUFFER_EXCEEDED));
	if (level != TERN_TLS_LEVEL_APPLICATION)
		return 0;
	/* After the handshake only a server speaks, and only tickets: no
	 * post-handshake authentication (RFC 9001 §4.4), no KeyUpdate. */
	if (!tls->is_server && type == HS_CERTIFICATE_REQUEST)
		return tls_fail(tls, TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION));
	if (tls->is_server || type != HS_NEW_SESSION_TICKET)
		return tls_fail_alert(tls, TERN_TLS_ALERT_UNEXPECTED_MESSAGE);
	tls->tickets++;
	return 0;
}

/* Follows handshake message boundaries in the incoming byte stream. */
static int track_input(struct tern_tls *tls, enum tern_tls_level level, const uint8_t *data,
		       size_t len)
{
	/* RFC 9001 §4.1.3: an older level only ever repeats what it carried. */
	if ((int)level < tls->rx_level)
		return tls_fail(tls, TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION));
	if ((int)level > tls->rx_level) {
		/* RFC 8446 §5.1: messages must not span a key change. */
		if (tls->rx_hdr_len || tls->rx_left)
			return tls_fail_alert(tls, TERN_TLS_ALERT_UNEXPECTED_MESSAGE);
		tls->rx_level = (int8_t)level;
	}
	while (len) {
		if (tls->rx_left) {
			size_t n = len < tls->rx_left ? len : tls->rx_left;
			tls->rx_left -= (uint32_t)n;
			data += n;
			len -= n;
			continue;
		}
		tls->rx_hdr[tls->rx_hdr_len++] = *data++;
		len--;
		if (tls->rx_hdr_len == HS_HEADER_LEN) {
			uint32_t mlen = (uint32_t)tls->rx_hdr[1] << 16 |
					(uint32_t)tls->rx_hdr[2] << 8 | tls->rx_hdr[3];
			int rc = track_message(tls, level, tls->rx_hdr[0], mlen);
			if (rc)
				return rc;
			tls->rx_hdr_len = 0;
			tls->rx_left = mlen;
		}
	}
	return 0;
}

static int wolf_provide(struct tern_tls *tls, enum tern_tls_level level, const uint8_t *data,
			size_t len)
{
	if (!len || wolfSSL_provide_quic_data(tls->ssl, (WOLFSSL_ENCRYPTION_LEVEL)level, data,
					      len) == WOLFSSL_SUCCESS)
		return 0;
	if ((int)level < (int)wolfSSL_quic_read_level(tls->ssl))
		return tls_fail(tls, TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION));
	return tls_fail(tls, TERN_ERR_NOMEM);
}

/* Hands this call's bytes to wolfSSL and lets it run. wolfSSL 5.5.4 loses
 * a handshake header that reaches it in two pieces when the second piece
 * ends with the header (quic_record_append() then reports failure), so a
 * partial header at the end of a call stays in rx_hdr, where track_input()
 * left it, and goes over whole with the next call: `saved` holds the
 * held_before bytes kept back last time. */
static int tls_feed(struct tern_tls *tls, enum tern_tls_level level, const uint8_t *saved,
		    size_t held_before, const uint8_t *data, size_t len)
{
	size_t held_after = tls->rx_hdr_len;
	int rc;

	if (held_before) {
		size_t need = HS_HEADER_LEN - held_before;
		uint8_t hdr[HS_HEADER_LEN];

		if (len < need)
			return 0; /* the header is still partial */
		memcpy(hdr, saved, held_before);
		memcpy(hdr + held_before, data, need);
		rc = wolf_provide(tls, level, hdr, HS_HEADER_LEN);
		if (rc)
			return rc;
		data += need;
		len -= need;
	}
	rc = wolf_provide(tls, level, data, len - held_after);
	return rc ? rc : tls_drive(tls);
}

static bool message_complete(const uint8_t *m, size_t n)
{
	return n >= HS_HEADER_LEN &&
	       n - HS_HEADER_LEN >= ((size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3]);
}

/* A ClientHello whole in one call, the usual case, is not copied. The
 * tracker has already bounded its length to TERN_TLS_MAX_MESSAGE. */
static int server_first_hello(struct tern_tls *tls, const uint8_t *data, size_t len)
{
	const uint8_t *m = data;
	size_t n = len;
	int rc;

	if (!len)
		return 0;
	if (tls->hold_len || !message_complete(data, len)) {
		uint8_t *h = realloc(tls->hold, tls->hold_len + len);
		if (!h)
			return tls_fail(tls, TERN_ERR_NOMEM);
		memcpy(h + tls->hold_len, data, len);
		tls->hold = h;
		tls->hold_len += len;
		if (!message_complete(h, tls->hold_len))
			return 0;
		m = h;
		n = tls->hold_len;
	}
	tls->hello_seen = true;
	rc = server_check_hello(tls, m);
	/* The hold starts at a message boundary: nothing was kept back. */
	if (!rc)
		rc = tls_feed(tls, TERN_TLS_LEVEL_INITIAL, NULL, 0, m, n);
	free(tls->hold);
	tls->hold = NULL;
	tls->hold_len = 0;
	return rc;
}

int tern_tls_provide(struct tern_tls *tls, enum tern_tls_level level, const uint8_t *data,
		     size_t len)
{
	uint8_t saved[HS_HEADER_LEN];
	size_t held;
	int rc;

	if (!tls || (unsigned)level >= TERN_TLS_NUM_LEVELS || (len && !data))
		return TERN_ERR_INVAL;
	if (tls->err)
		return tls->err;
	if (!tls->is_server && !tls->started)
		return TERN_ERR_STATE;
	/* RFC 9001 §8.3: 0-RTT packets carry no CRYPTO frames; and once the
	 * handshake is over only 1-RTT ones do (§4.1.3). */
	if (level == TERN_TLS_LEVEL_EARLY ||
	    (tls->complete && level != TERN_TLS_LEVEL_APPLICATION))
		return tls_fail(tls, TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION));
	held = tls->rx_hdr_len;
	memcpy(saved, tls->rx_hdr, held);
	rc = track_input(tls, level, data, len);
	if (rc)
		return rc;
	if (!tls->ssl)
		return 0; /* released: the tickets it may still get are dropped */
	if (tls->is_server && !tls->hello_seen && level == TERN_TLS_LEVEL_INITIAL)
		return server_first_hello(tls, data, len);
	return tls_feed(tls, level, saved, held, data, len);
}

bool tern_tls_is_complete(const struct tern_tls *tls)
{
	return tls && tls->complete && !tls->err;
}

uint16_t tern_tls_cipher_suite(const struct tern_tls *tls)
{
	return tls ? tls->suite : 0;
}

int tern_tls_peer_tparams(const struct tern_tls *tls, const uint8_t **params, size_t *len)
{
	if (!tls || !params || !len)
		return TERN_ERR_INVAL;
	if (!tls->have_peer_tp)
		return TERN_ERR_STATE;
	*params = tls->peer_tp;
	*len = tls->peer_tp_len;
	return 0;
}

int tern_tls_alpn(const struct tern_tls *tls, const uint8_t **alpn, size_t *len)
{
	if (!tls || !alpn || !len)
		return TERN_ERR_INVAL;
	if (!tls->alpn)
		return TERN_ERR_STATE;
	*alpn = tls->alpn;
	*len = tls->alpn_len;
	return 0;
}

uint32_t tern_tls_tickets_received(const struct tern_tls *tls)
{
	return tls ? tls->tickets : 0;
}

int tern_tls_release(struct tern_tls *tls)
{
	if (!tls)
		return TERN_ERR_INVAL;
	if (!tls->ssl)
		return 0;
	if (!tls->complete)
		return TERN_ERR_STATE;
	wolfSSL_free(tls->ssl);
	tls->ssl = NULL;
	return 0;
}

void tern_tls_free(struct tern_tls *tls)
{
	if (!tls)
		return;
	if (tls->ssl)
		wolfSSL_free(tls->ssl);
	free(tls->hold);
	free(tls);
}
