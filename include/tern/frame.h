/* tern: QUIC frame codecs, RFC 9000 §19 and DATAGRAM (RFC 9221 §4).
 *
 * Decoders are cursor style: they read at *p, never past `end`, and advance
 * *p only on success. Decoded payloads (stream and crypto data, tokens,
 * reason phrases, datagrams, raw ACK ranges) point into the input, so the
 * input must outlive the decoded frame. Nothing here allocates. */
#ifndef TERN_FRAME_H
#define TERN_FRAME_H

#include "tern/common.h"

enum tern_frame_type {
	TERN_FRAME_PADDING = 0x00,
	TERN_FRAME_PING = 0x01,
	TERN_FRAME_ACK = 0x02,
	TERN_FRAME_ACK_ECN = 0x03,
	TERN_FRAME_RESET_STREAM = 0x04,
	TERN_FRAME_STOP_SENDING = 0x05,
	TERN_FRAME_CRYPTO = 0x06,
	TERN_FRAME_NEW_TOKEN = 0x07,
	TERN_FRAME_STREAM = 0x08, /* 0x08..0x0f: | OFF | LEN | FIN */
	TERN_FRAME_MAX_DATA = 0x10,
	TERN_FRAME_MAX_STREAM_DATA = 0x11,
	TERN_FRAME_MAX_STREAMS_BIDI = 0x12,
	TERN_FRAME_MAX_STREAMS_UNI = 0x13,
	TERN_FRAME_DATA_BLOCKED = 0x14,
	TERN_FRAME_STREAM_DATA_BLOCKED = 0x15,
	TERN_FRAME_STREAMS_BLOCKED_BIDI = 0x16,
	TERN_FRAME_STREAMS_BLOCKED_UNI = 0x17,
	TERN_FRAME_NEW_CONNECTION_ID = 0x18,
	TERN_FRAME_RETIRE_CONNECTION_ID = 0x19,
	TERN_FRAME_PATH_CHALLENGE = 0x1a,
	TERN_FRAME_PATH_RESPONSE = 0x1b,
	TERN_FRAME_CONNECTION_CLOSE = 0x1c,     /* transport error */
	TERN_FRAME_CONNECTION_CLOSE_APP = 0x1d, /* application error */
	TERN_FRAME_HANDSHAKE_DONE = 0x1e,
	TERN_FRAME_DATAGRAM = 0x30,     /* data runs to the end of the packet */
	TERN_FRAME_DATAGRAM_LEN = 0x31, /* data carries a Length field */
};

/* STREAM type bits, RFC 9000 §19.8. */
#define TERN_FRAME_STREAM_FIN 0x01
#define TERN_FRAME_STREAM_LEN 0x02
#define TERN_FRAME_STREAM_OFF 0x04

/* A stream count can never exceed 2^60, RFC 9000 §19.11 and §19.14. */
#define TERN_MAX_STREAMS_LIMIT (UINT64_C(1) << 60)

#define TERN_STATELESS_RESET_TOKEN_LEN 16
#define TERN_PATH_DATA_LEN 8

/* Worst-case encoded sizes (every varint 8 bytes) of the fixed-size frames. */
#define TERN_PING_FRAME_SIZE 1
#define TERN_HANDSHAKE_DONE_FRAME_SIZE 1
#define TERN_RESET_STREAM_FRAME_MAX_SIZE (1 + 3 * TERN_VARINT_MAX_SIZE)
#define TERN_STOP_SENDING_FRAME_MAX_SIZE (1 + 2 * TERN_VARINT_MAX_SIZE)
#define TERN_MAX_DATA_FRAME_MAX_SIZE (1 + TERN_VARINT_MAX_SIZE)
#define TERN_MAX_STREAM_DATA_FRAME_MAX_SIZE (1 + 2 * TERN_VARINT_MAX_SIZE)
#define TERN_MAX_STREAMS_FRAME_MAX_SIZE (1 + TERN_VARINT_MAX_SIZE)
#define TERN_DATA_BLOCKED_FRAME_MAX_SIZE (1 + TERN_VARINT_MAX_SIZE)
#define TERN_STREAM_DATA_BLOCKED_FRAME_MAX_SIZE (1 + 2 * TERN_VARINT_MAX_SIZE)
#define TERN_STREAMS_BLOCKED_FRAME_MAX_SIZE (1 + TERN_VARINT_MAX_SIZE)
#define TERN_NEW_CONNECTION_ID_FRAME_MAX_SIZE \
	(1 + 2 * TERN_VARINT_MAX_SIZE + 1 + TERN_MAX_CID_LEN + TERN_STATELESS_RESET_TOKEN_LEN)
#define TERN_RETIRE_CONNECTION_ID_FRAME_MAX_SIZE (1 + TERN_VARINT_MAX_SIZE)
#define TERN_PATH_FRAME_SIZE (1 + TERN_PATH_DATA_LEN)
/* Everything but the payload, for the variable-size frames. */
#define TERN_STREAM_FRAME_HEADER_MAX_SIZE (1 + 3 * TERN_VARINT_MAX_SIZE)
#define TERN_CRYPTO_FRAME_HEADER_MAX_SIZE (1 + 2 * TERN_VARINT_MAX_SIZE)
#define TERN_NEW_TOKEN_FRAME_HEADER_MAX_SIZE (1 + TERN_VARINT_MAX_SIZE)
#define TERN_CONNECTION_CLOSE_FRAME_HEADER_MAX_SIZE (1 + 3 * TERN_VARINT_MAX_SIZE)
#define TERN_DATAGRAM_FRAME_HEADER_MAX_SIZE (1 + TERN_VARINT_MAX_SIZE)

/* An acknowledged packet number range, both ends included. */
struct tern_ack_range {
	uint64_t smallest;
	uint64_t largest;
};

struct tern_ecn_counts {
	uint64_t ect0;
	uint64_t ect1;
	uint64_t ce;
};

/* ACK keeps the Gap/ACK Range Length pairs as raw wire bytes (already
 * validated by the decoder); walk them with tern_ack_iter. */
struct tern_ack_frame {
	uint64_t largest;
	uint64_t ack_delay; /* as on the wire: not yet scaled by the exponent */
	uint64_t first_range;
	uint64_t range_count; /* pairs in `ranges` */
	const uint8_t *ranges;
	size_t ranges_len;
	struct tern_ecn_counts ecn; /* type 0x03 only */
};

struct tern_frame {
	uint64_t type; /* as on the wire, STREAM flag bits included */
	union {
		struct {
			size_t len; /* the whole run of 0x00 bytes */
		} padding;
		struct tern_ack_frame ack;
		struct {
			uint64_t stream_id;
			uint64_t error_code;
			uint64_t final_size;
		} reset_stream;
		struct {
			uint64_t stream_id;
			uint64_t error_code;
		} stop_sending;
		struct {
			uint64_t offset;
			const uint8_t *data;
			uint64_t len;
		} crypto;
		struct {
			const uint8_t *token;
			uint64_t len;
		} new_token;
		/* The type's bits are authoritative: the encoder writes Offset only
		 * with TERN_FRAME_STREAM_OFF and Length only with
		 * TERN_FRAME_STREAM_LEN; FIN is TERN_FRAME_STREAM_FIN. */
		struct {
			uint64_t stream_id;
			uint64_t offset;
			const uint8_t *data;
			uint64_t len;
		} stream;
		struct {
			uint64_t max;
		} max_data;
		struct {
			uint64_t stream_id;
			uint64_t max;
		} max_stream_data;
		struct {
			uint64_t max; /* bidi or uni from the type */
		} max_streams;
		struct {
			uint64_t limit;
		} data_blocked;
		struct {
			uint64_t stream_id;
			uint64_t limit;
		} stream_data_blocked;
		struct {
			uint64_t limit; /* bidi or uni from the type */
		} streams_blocked;
		struct {
			uint64_t seq;
			uint64_t retire_prior_to;
			struct tern_cid cid;
			uint8_t reset_token[TERN_STATELESS_RESET_TOKEN_LEN];
		} new_cid;
		struct {
			uint64_t seq;
		} retire_cid;
		struct {
			uint8_t data[TERN_PATH_DATA_LEN];
		} path; /* PATH_CHALLENGE and PATH_RESPONSE */
		struct {
			uint64_t error_code;
			uint64_t frame_type; /* 0x1c only */
			const uint8_t *reason;
			uint64_t reason_len;
		} close;
		struct {
			const uint8_t *data;
			uint64_t len;
		} datagram;
	};
};

static inline int tern_frame_is_stream(uint64_t type)
{
	return (type & ~(uint64_t)7) == TERN_FRAME_STREAM;
}

static inline int tern_frame_stream_fin(const struct tern_frame *f)
{
	return (f->type & TERN_FRAME_STREAM_FIN) != 0;
}

/* Decodes one frame at *p. Returns 0 and advances *p, or TERN_ERR_QUIC(code)
 * with the RFC 9000 error the peer must hear (*p unchanged). Callers loop
 * while *p < end; *p == end is FRAME_ENCODING_ERROR. */
int tern_frame_decode(const uint8_t **p, const uint8_t *end, struct tern_frame *f);

/* Exact encoded size of f (varints in their shortest form), or 0 when f
 * cannot be encoded (a field out of range, or a frame its decoder would
 * reject). */
size_t tern_frame_encoded_size(const struct tern_frame *f);

/* Writes f at *p and advances it. TERN_ERR_NOBUF (nothing written) when it
 * does not fit before end, TERN_ERR_INVAL when tern_frame_encoded_size()
 * would say 0. A STREAM frame without LEN or a 0x30 DATAGRAM must end the
 * packet. */
int tern_frame_encode(uint8_t **p, uint8_t *end, const struct tern_frame *f);

/* Writes an ACK frame (ACK_ECN when ecn is not NULL) for `n` ranges sorted
 * from the highest down, none overlapping or adjacent. ack_delay is already
 * scaled down by the ack_delay_exponent. Puts in as many ranges, from the
 * top, as fit before end and returns how many (>= 1); TERN_ERR_NOBUF when
 * not even the first fits, TERN_ERR_INVAL for bad ranges or values. */
int tern_ack_encode(uint8_t **p, uint8_t *end, const struct tern_ack_range *ranges, size_t n,
		    uint64_t ack_delay, const struct tern_ecn_counts *ecn);

struct tern_ack_iter {
	const uint8_t *p;
	const uint8_t *end;
	uint64_t left;     /* pairs not yet read */
	uint64_t smallest; /* of the range yielded last */
	uint64_t largest;
	uint64_t first_range;
	int started;
};

/* Walks the acknowledged ranges of a decoded ACK from the top down. next()
 * returns 1 and fills *r, or 0 when no range is left (or the raw ranges are
 * inconsistent, which a decoded frame never is). */
void tern_ack_iter_init(struct tern_ack_iter *it, const struct tern_ack_frame *ack);
int tern_ack_iter_next(struct tern_ack_iter *it, struct tern_ack_range *r);

/* For the packet builder: how many of data_len bytes at (stream_id, offset)
 * fit as one STREAM frame in `space` bytes. The frame carries Offset iff
 * offset != 0. *with_len says whether it carries Length: 0 when the frame
 * fills the rest of the packet, or when only a Length field would not fit
 * (then the frame must be the last in the packet and may end up to 7 bytes
 * before `space`; pad before it if size matters). Returns the byte count
 * (0 only when data_len is 0, e.g. a bare FIN), TERN_ERR_NOBUF when no data
 * byte fits, TERN_ERR_INVAL for out-of-range ids or offsets. */
int tern_stream_frame_fit(uint64_t stream_id, uint64_t offset, uint64_t data_len, size_t space,
			  int *with_len);

/* RFC 9000 §12.4 Table 3 (and RFC 9221 §4 for DATAGRAM): 0 when a frame of
 * this type may appear in a packet of type pt, else
 * TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION); an unknown type is
 * TERN_ERR_QUIC(TERN_QUIC_FRAME_ENCODING_ERROR). */
int tern_frame_allowed(uint64_t type, enum tern_pkt_type pt);

/* RFC 9002 §2 / RFC 9000 §13.2: 1 unless ACK, PADDING or CONNECTION_CLOSE. */
int tern_frame_is_ack_eliciting(uint64_t type);

#endif
