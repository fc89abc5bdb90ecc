/* tern: shared definitions for every layer: the error scheme, QUIC error
 * codes, connection IDs and variable-length integers (RFC 9000 §16). */
#ifndef TERN_COMMON_H
#define TERN_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* One error scheme: functions return 0 (or a length) on success and a
 * negative TERN_ERR_* on failure. A QUIC transport error that the peer must
 * hear about travels as TERN_ERR_QUIC(code), so the close path can recover
 * the exact RFC 9000 §20.1 code with tern_err_quic_code(). */
enum tern_err {
	TERN_OK = 0,
	TERN_ERR_TRUNCATED = -1, /* input ended before the structure did */
	TERN_ERR_NOBUF = -2,     /* the output buffer is too small */
	TERN_ERR_INVAL = -3,     /* the caller passed a bad argument */
	TERN_ERR_CRYPTO = -4,    /* a wolfCrypt/wolfSSL call failed */
	TERN_ERR_DECRYPT = -5,   /* AEAD authentication failed: drop the packet */
	TERN_ERR_VERSION = -6,   /* a QUIC version we do not speak */
	TERN_ERR_NOMEM = -7,     /* a bounded pool or table is full */
	TERN_ERR_LIMIT = -8,     /* a rule or limiter says no reply may go */
	TERN_ERR_MALFORMED = -9, /* a packet we drop without telling anyone */
	TERN_ERR_STATE = -10,    /* the object is not in a state that allows this */
	TERN_ERR_IO = -11,       /* an OS call failed (datapaths, programs only) */
};

#define TERN_ERR_QUIC_BASE 0x100000
#define TERN_ERR_QUIC(code) (-(int)(TERN_ERR_QUIC_BASE + (int)(code)))

static inline int tern_err_is_quic(int err)
{
	return err <= -TERN_ERR_QUIC_BASE;
}

static inline uint64_t tern_err_quic_code(int err)
{
	return (uint64_t)(-(int64_t)err - TERN_ERR_QUIC_BASE);
}

/* A short, static, human-readable name for any error value. */
const char *tern_strerror(int err);

/* Formats the one-line message setup functions hand back in their
 * caller's err/errlen buffer (nothing when err is NULL or errlen is 0);
 * line breaks a library put in it become spaces. */
void tern_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Transport error codes, RFC 9000 §20.1. */
enum tern_quic_error {
	TERN_QUIC_NO_ERROR = 0x00,
	TERN_QUIC_INTERNAL_ERROR = 0x01,
	TERN_QUIC_CONNECTION_REFUSED = 0x02,
	TERN_QUIC_FLOW_CONTROL_ERROR = 0x03,
	TERN_QUIC_STREAM_LIMIT_ERROR = 0x04,
	TERN_QUIC_STREAM_STATE_ERROR = 0x05,
	TERN_QUIC_FINAL_SIZE_ERROR = 0x06,
	TERN_QUIC_FRAME_ENCODING_ERROR = 0x07,
	TERN_QUIC_TRANSPORT_PARAMETER_ERROR = 0x08,
	TERN_QUIC_CONNECTION_ID_LIMIT_ERROR = 0x09,
	TERN_QUIC_PROTOCOL_VIOLATION = 0x0a,
	TERN_QUIC_INVALID_TOKEN = 0x0b,
	TERN_QUIC_APPLICATION_ERROR = 0x0c,
	TERN_QUIC_CRYPTO_BUFFER_EXCEEDED = 0x0d,
	TERN_QUIC_KEY_UPDATE_ERROR = 0x0e,
	TERN_QUIC_AEAD_LIMIT_REACHED = 0x0f,
	TERN_QUIC_NO_VIABLE_PATH = 0x10,
	TERN_QUIC_CRYPTO_ERROR_BASE = 0x0100, /* + TLS alert, RFC 9001 §4.8 */
};

#define TERN_QUIC_CRYPTO_ERROR(alert) (TERN_QUIC_CRYPTO_ERROR_BASE + (uint64_t)(uint8_t)(alert))

/* QUIC versions tern speaks. */
#define TERN_VERSION_1 0x00000001u
#define TERN_VERSION_2 0x6b3343cfu

/* Packet types, normalised across versions (v2 renumbers the long-header
 * type bits, RFC 9369 §3.2). */
enum tern_pkt_type {
	TERN_PKT_INITIAL,
	TERN_PKT_0RTT,
	TERN_PKT_HANDSHAKE,
	TERN_PKT_RETRY,
	TERN_PKT_1RTT,   /* short header */
	TERN_PKT_VN,     /* Version Negotiation (version 0) */
};

/* Randomness comes from the caller (sans-IO), so tests are deterministic.
 * Fills buf with len unpredictable bytes. */
typedef void (*tern_rand_fn)(void *ctx, uint8_t *buf, size_t len);

struct tern_rand {
	tern_rand_fn fn;
	void *ctx;
};

static inline void tern_rand_fill(const struct tern_rand *r, uint8_t *buf, size_t len)
{
	r->fn(r->ctx, buf, len);
}

/* Connection IDs are at most 20 bytes in QUIC v1 and v2 (RFC 9000 §17.2). */
#define TERN_MAX_CID_LEN 20

struct tern_cid {
	uint8_t len;
	uint8_t bytes[TERN_MAX_CID_LEN];
};

static inline int tern_cid_set(struct tern_cid *cid, const uint8_t *bytes, size_t len)
{
	if (len > TERN_MAX_CID_LEN)
		return TERN_ERR_INVAL;
	cid->len = (uint8_t)len;
	if (len)
		memcpy(cid->bytes, bytes, len);
	return 0;
}

static inline int tern_cid_equal(const struct tern_cid *a, const struct tern_cid *b)
{
	return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

/* A network address as bytes the core compares but never interprets. */
struct tern_addr {
	uint8_t family; /* 4 or 6; 0 when unknown */
	uint16_t port;  /* host order */
	uint8_t ip[16]; /* IPv4 in the first 4 bytes */
};

struct tern_path {
	struct tern_addr local;
	struct tern_addr remote;
};

static inline int tern_addr_equal(const struct tern_addr *a, const struct tern_addr *b)
{
	return a->family == b->family && a->port == b->port &&
	       memcmp(a->ip, b->ip, a->family == 4 ? 4 : 16) == 0;
}

/* ---- variable-length integers, RFC 9000 §16 -------------------------- */

#define TERN_VARINT_MAX ((UINT64_C(1) << 62) - 1)
#define TERN_VARINT_MAX_SIZE 8

/* Bytes needed to encode v (v must be <= TERN_VARINT_MAX). */
static inline size_t tern_varint_size(uint64_t v)
{
	if (v < 0x40)
		return 1;
	if (v < 0x4000)
		return 2;
	if (v < 0x40000000)
		return 4;
	return 8;
}

/* Size of a varint from its first byte. */
static inline size_t tern_varint_size_from_byte(uint8_t b)
{
	return (size_t)1 << (b >> 6);
}

/* Writes v in its shortest form at p; returns the byte after it. The caller
 * guarantees room (TERN_VARINT_MAX_SIZE covers every value). */
static inline uint8_t *tern_varint_encode(uint8_t *p, uint64_t v)
{
	switch (tern_varint_size(v)) {
	case 1:
		*p++ = (uint8_t)v;
		break;
	case 2:
		*p++ = (uint8_t)(0x40 | (v >> 8));
		*p++ = (uint8_t)v;
		break;
	case 4:
		*p++ = (uint8_t)(0x80 | (v >> 24));
		*p++ = (uint8_t)(v >> 16);
		*p++ = (uint8_t)(v >> 8);
		*p++ = (uint8_t)v;
		break;
	default:
		*p++ = (uint8_t)(0xc0 | (v >> 56));
		for (int s = 48; s >= 0; s -= 8)
			*p++ = (uint8_t)(v >> s);
		break;
	}
	return p;
}

/* Writes v in exactly `size` bytes (1, 2, 4 or 8), for length fields that
 * are reserved before their value is known. */
static inline uint8_t *tern_varint_encode_fixed(uint8_t *p, uint64_t v, size_t size)
{
	static const uint8_t prefix[9] = {0, 0x00, 0x40, 0, 0x80, 0, 0, 0, 0xc0};
	for (size_t i = size; i-- > 0; v >>= 8)
		p[i] = (uint8_t)v;
	p[0] |= prefix[size];
	return p + size;
}

/* Reads a varint at *p, advancing it. 0 or TERN_ERR_TRUNCATED. */
static inline int tern_varint_decode(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	const uint8_t *s = *p;
	if (s >= end)
		return TERN_ERR_TRUNCATED;
	size_t n = tern_varint_size_from_byte(*s);
	if ((size_t)(end - s) < n)
		return TERN_ERR_TRUNCATED;
	uint64_t x = *s & 0x3f;
	for (size_t i = 1; i < n; i++)
		x = (x << 8) | s[i];
	*v = x;
	*p = s + n;
	return 0;
}

/* ---- fixed-width big-endian helpers ---------------------------------- */

static inline uint8_t *tern_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static inline uint8_t *tern_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

static inline uint32_t tern_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint16_t tern_get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

#endif
