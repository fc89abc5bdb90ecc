/* tern: TLS 1.3 for QUIC (RFC 9001) on top of wolfSSL's QUIC API.
 *
 * This layer knows handshake bytes, secrets and alerts; it knows nothing
 * about packets or frames. The connection feeds it the in-order bytes of the
 * CRYPTO frames of each encryption level and gets back, through callbacks,
 * the bytes to send in CRYPTO frames, the traffic secrets to install and the
 * alert to close with.
 *
 * Sans-IO: certificates and keys come in as PEM buffers and nothing here
 * opens a file or a socket. The one exception to "randomness comes from the
 * caller" is wolfSSL's own RNG (seeded by wolfSSL from the OS), which TLS
 * needs for its randoms, key shares and ticket keys.
 *
 * Threads: contexts are created and freed during program setup, from one
 * thread (they take wolfSSL's global init reference). One context may then
 * serve connections on many workers; each struct tern_tls belongs to one. */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/common.h"

/* Encryption levels, numbered as RFC 9001 §4 and wolfSSL number them. */
enum tern_tls_level {
	TERN_TLS_LEVEL_INITIAL = 0,
	TERN_TLS_LEVEL_EARLY = 1,       /* 0-RTT */
	TERN_TLS_LEVEL_HANDSHAKE = 2,
	TERN_TLS_LEVEL_APPLICATION = 3, /* 1-RTT */
};

#define TERN_TLS_NUM_LEVELS 4

enum tern_tls_dir {
	TERN_TLS_READ = 0,  /* secret that protects what the peer sends */
	TERN_TLS_WRITE = 1, /* secret that protects what we send */
};

/* The TLS 1.3 cipher suites QUIC v1 runs with, as their IANA ids. */
#define TERN_TLS_AES_128_GCM_SHA256 0x1301
#define TERN_TLS_AES_256_GCM_SHA384 0x1302
#define TERN_TLS_CHACHA20_POLY1305_SHA256 0x1303

/* TLS alerts (RFC 8446 §6) this layer raises itself or tests look for; the
 * connection closes with TERN_QUIC_CRYPTO_ERROR(alert) (RFC 9001 §4.8). */
#define TERN_TLS_ALERT_UNEXPECTED_MESSAGE 10
#define TERN_TLS_ALERT_HANDSHAKE_FAILURE 40
#define TERN_TLS_ALERT_BAD_CERTIFICATE 42
#define TERN_TLS_ALERT_UNKNOWN_CA 48
#define TERN_TLS_ALERT_DECODE_ERROR 50
#define TERN_TLS_ALERT_DECRYPT_ERROR 51
#define TERN_TLS_ALERT_PROTOCOL_VERSION 70
#define TERN_TLS_ALERT_INTERNAL_ERROR 80
#define TERN_TLS_ALERT_MISSING_EXTENSION 109
#define TERN_TLS_ALERT_NO_APPLICATION_PROTOCOL 120

/* Largest traffic secret (SHA-384 suites). */
#define TERN_TLS_MAX_SECRET_LEN 48
/* The peer's transport parameters are kept in a buffer of this size inside
 * struct tern_tls, so they outlive tern_tls_release(); a peer that sends more
 * fails the handshake with TRANSPORT_PARAMETER_ERROR. */
#define TERN_TLS_MAX_PEER_TPARAMS 1024
/* Largest handshake message we agree to buffer. wolfSSL's QUIC layer would
 * otherwise allocate whatever 24-bit length a peer announces (16 MiB). */
#define TERN_TLS_MAX_MESSAGE 65536
/* Longest NSS key-log line, NUL included (label, 64 hex digits of client
 * random, 96 hex digits of a SHA-384 secret, two spaces). */
#define TERN_TLS_KEYLOG_LINE_MAX 200
/* ALPN: at most this many protocol ids per context, each 1..255 bytes. */
#define TERN_TLS_MAX_ALPN 8

/* Callbacks to the connection that owns a struct tern_tls. They run inside
 * tern_tls_start() and tern_tls_provide(). on_secret and on_crypto_data
 * return 0, or a negative TERN_ERR_* that aborts the handshake and is
 * returned from the call that ran them. */
struct tern_tls_callbacks {
	/* A traffic secret for one direction of one level. suite is the
	 * negotiated cipher suite's IANA id (TERN_TLS_AES_...); len is 32 or
	 * 48. The secret is only valid during the call. */
	int (*on_secret)(void *user, enum tern_tls_level level, enum tern_tls_dir dir,
			 uint16_t suite, const uint8_t *secret, size_t len);
	/* Handshake bytes to send in CRYPTO frames of level, in order. */
	int (*on_crypto_data)(void *user, enum tern_tls_level level, const uint8_t *data,
			      size_t len);
	/* A fatal alert TLS raised, with the level TLS was writing at: the
	 * connection closes with CRYPTO_ERROR 0x100 + alert, at every level
	 * the peer may read. Reported once per connection. */
	void (*on_alert)(void *user, enum tern_tls_level level, uint8_t alert);
};

/* Called with one NSS SSLKEYLOGFILE line (no newline, NUL-terminated) per
 * secret: CLIENT_HANDSHAKE_TRAFFIC_SECRET, SERVER_HANDSHAKE_TRAFFIC_SECRET,
 * CLIENT_TRAFFIC_SECRET_0, SERVER_TRAFFIC_SECRET_0. Runs on whatever worker
 * runs the connection: the callee serialises its writes. */
typedef void (*tern_tls_keylog_fn)(void *arg, const char *line);

struct tern_tls_ctx;
struct tern_tls;

/* A server context: TLS 1.3 only, suites AES-128-GCM, AES-256-GCM,
 * ChaCha20-Poly1305, groups X25519 and P-256, the certificate chain and key
 * from PEM (ECDSA P-256 or RSA). The server picks the first protocol of
 * alpn_list the client offers. On failure returns TERN_ERR_INVAL (bad PEM,
 * key not matching the certificate, bad ALPN list) or TERN_ERR_CRYPTO, and
 * writes one human line into err (when err is not NULL). */
int tern_tls_ctx_new_server(struct tern_tls_ctx **ctx, const uint8_t *cert_pem, size_t cert_len,
			    const uint8_t *key_pem, size_t key_len, const char *const *alpn_list,
			    size_t n_alpn, char *err, size_t errlen);

/* A client context offering alpn_list in that order. With verify_peer the
 * server's chain must lead to a certificate in ca_pem (required then: no
 * system store, that would be file I/O) and name server_name. */
int tern_tls_ctx_new_client(struct tern_tls_ctx **ctx, const char *const *alpn_list,
			    size_t n_alpn, bool verify_peer, const uint8_t *ca_pem, size_t ca_len,
			    char *err, size_t errlen);

/* Restricts the cipher suites (IANA ids, in preference order) of connections
 * made from ctx afterwards. TERN_ERR_INVAL for an id not in the three above. */
int tern_tls_ctx_set_suites(struct tern_tls_ctx *ctx, const uint16_t *suites, size_t n);

/* Key logging for connections made from ctx afterwards; fn NULL turns it off. */
void tern_tls_ctx_set_keylog(struct tern_tls_ctx *ctx, tern_tls_keylog_fn fn, void *arg);

/* Frees ctx; every struct tern_tls made from it must be freed first. */
void tern_tls_ctx_free(struct tern_tls_ctx *ctx);

/* One connection's TLS. is_server must match ctx. server_name (client only,
 * may be NULL) goes into SNI unless it is an IP literal, and is the name the
 * certificate must carry when the context verifies the peer. local_tparams
 * (encoded transport parameters, RFC 9000 §18, not empty) are copied. cb is
 * copied; on_secret, on_crypto_data and on_alert are required. */
int tern_tls_new(struct tern_tls **tls, struct tern_tls_ctx *ctx, bool is_server,
		 const char *server_name, const uint8_t *local_tparams, size_t tparams_len,
		 const struct tern_tls_callbacks *cb, void *user);

/* Client only, once: produces the ClientHello through on_crypto_data. */
int tern_tls_start(struct tern_tls *tls);

/* Feeds the next in-order bytes of level's CRYPTO stream, then drives the
 * handshake or, once complete, post-handshake messages (NewSessionTicket).
 * Any split is fine. Feed a level only once this side has its read keys
 * (RFC 9001 §4.1.3: data of a later level waits for them). A server holds
 * the first ClientHello until it is whole, to choose ALPN and check the
 * transport parameters before answering. On an error, drop whatever
 * on_crypto_data gave during the call: the close replaces it. Returns 0, or:
 *  TERN_ERR_QUIC(TERN_QUIC_CRYPTO_ERROR(alert)) when TLS failed (on_alert
 *    has run; this includes a KeyUpdate message, RFC 9001 §6, and missing
 *    transport parameters, RFC 9001 §8.2);
 *  TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION) for data at an older level
 *    (RFC 9001 §4.1.3), at the 0-RTT level (RFC 9001 §8.3) or a post-handshake
 *    CertificateRequest (RFC 9001 §4.4);
 *  TERN_ERR_QUIC(TERN_QUIC_CRYPTO_BUFFER_EXCEEDED) for a handshake message
 *    longer than TERN_TLS_MAX_MESSAGE (RFC 9000 §7.5);
 *  TERN_ERR_QUIC(TERN_QUIC_TRANSPORT_PARAMETER_ERROR) for peer transport
 *    parameters longer than TERN_TLS_MAX_PEER_TPARAMS;
 *  a callback's own error, TERN_ERR_NOMEM or TERN_ERR_INVAL.
 * An error is final: later calls return it again. */
int tern_tls_provide(struct tern_tls *tls, enum tern_tls_level level, const uint8_t *data,
		     size_t len);

/* True once the handshake is complete (RFC 9001 §4.1.1) and has not failed. */
bool tern_tls_is_complete(const struct tern_tls *tls);

/* The negotiated cipher suite's IANA id, 0 before the ServerHello. */
uint16_t tern_tls_cipher_suite(const struct tern_tls *tls);

/* The peer's encoded transport parameters: 0, or TERN_ERR_STATE before they
 * arrived. The bytes live as long as tls. */
int tern_tls_peer_tparams(const struct tern_tls *tls, const uint8_t **params, size_t *len);

/* The agreed ALPN protocol id: 0, or TERN_ERR_STATE before it is known. The
 * bytes live as long as the context. */
int tern_tls_alpn(const struct tern_tls *tls, const uint8_t **alpn, size_t *len);

/* NewSessionTicket messages received so far (client). */
uint32_t tern_tls_tickets_received(const struct tern_tls *tls);

/* Frees the wolfSSL object once the handshake is complete (call it when the
 * handshake is confirmed, RFC 9001 §4.1.2); ALPN, suite and peer transport
 * parameters stay readable. Later NewSessionTickets are checked for framing
 * and dropped. TERN_ERR_STATE before completion; releasing twice is 0. */
int tern_tls_release(struct tern_tls *tls);

void tern_tls_free(struct tern_tls *tls);

#endif
