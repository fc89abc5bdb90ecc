/* tern: QUIC transport parameters (RFC 9000 §7.4 and §18.2), plus
 * version_information (RFC 9368 §3), max_datagram_frame_size (RFC 9221 §3)
 * and grease_quic_bit (RFC 9287 §3).
 *
 * The block travels inside the TLS quic_transport_parameters extension; this
 * module only turns its bytes into a typed struct and back. Decoding never
 * allocates: version_information's Available Versions stay a pointer into
 * the caller's input, which must outlive the struct. */
#ifndef TERN_TPARAMS_H
#define TERN_TPARAMS_H

#include "tern/common.h"

/* Parameter ids on the wire. */
enum tern_tp_id {
	TERN_TP_ORIGINAL_DCID = 0x00,
	TERN_TP_MAX_IDLE_TIMEOUT = 0x01,
	TERN_TP_STATELESS_RESET_TOKEN = 0x02,
	TERN_TP_MAX_UDP_PAYLOAD_SIZE = 0x03,
	TERN_TP_INITIAL_MAX_DATA = 0x04,
	TERN_TP_INITIAL_MAX_STREAM_DATA_BIDI_LOCAL = 0x05,
	TERN_TP_INITIAL_MAX_STREAM_DATA_BIDI_REMOTE = 0x06,
	TERN_TP_INITIAL_MAX_STREAM_DATA_UNI = 0x07,
	TERN_TP_INITIAL_MAX_STREAMS_BIDI = 0x08,
	TERN_TP_INITIAL_MAX_STREAMS_UNI = 0x09,
	TERN_TP_ACK_DELAY_EXPONENT = 0x0a,
	TERN_TP_MAX_ACK_DELAY = 0x0b,
	TERN_TP_DISABLE_ACTIVE_MIGRATION = 0x0c,
	TERN_TP_PREFERRED_ADDRESS = 0x0d,
	TERN_TP_ACTIVE_CONNECTION_ID_LIMIT = 0x0e,
	TERN_TP_INITIAL_SCID = 0x0f,
	TERN_TP_RETRY_SCID = 0x10,
	TERN_TP_VERSION_INFORMATION = 0x11,
	TERN_TP_MAX_DATAGRAM_FRAME_SIZE = 0x20,
	TERN_TP_GREASE_QUIC_BIT = 0x2ab2,
};

/* Bits of tern_tparams.present. For ids 0x00..0x11 the bit number is the id. */
#define TERN_TP_HAS_ORIGINAL_DCID (1u << 0)
#define TERN_TP_HAS_MAX_IDLE_TIMEOUT (1u << 1)
#define TERN_TP_HAS_STATELESS_RESET_TOKEN (1u << 2)
#define TERN_TP_HAS_MAX_UDP_PAYLOAD_SIZE (1u << 3)
#define TERN_TP_HAS_INITIAL_MAX_DATA (1u << 4)
#define TERN_TP_HAS_INITIAL_MAX_STREAM_DATA_BIDI_LOCAL (1u << 5)
#define TERN_TP_HAS_INITIAL_MAX_STREAM_DATA_BIDI_REMOTE (1u << 6)
#define TERN_TP_HAS_INITIAL_MAX_STREAM_DATA_UNI (1u << 7)
#define TERN_TP_HAS_INITIAL_MAX_STREAMS_BIDI (1u << 8)
#define TERN_TP_HAS_INITIAL_MAX_STREAMS_UNI (1u << 9)
#define TERN_TP_HAS_ACK_DELAY_EXPONENT (1u << 10)
#define TERN_TP_HAS_MAX_ACK_DELAY (1u << 11)
#define TERN_TP_HAS_DISABLE_ACTIVE_MIGRATION (1u << 12)
#define TERN_TP_HAS_PREFERRED_ADDRESS (1u << 13)
#define TERN_TP_HAS_ACTIVE_CONNECTION_ID_LIMIT (1u << 14)
#define TERN_TP_HAS_INITIAL_SCID (1u << 15)
#define TERN_TP_HAS_RETRY_SCID (1u << 16)
#define TERN_TP_HAS_VERSION_INFORMATION (1u << 17)
#define TERN_TP_HAS_MAX_DATAGRAM_FRAME_SIZE (1u << 18)
#define TERN_TP_HAS_GREASE_QUIC_BIT (1u << 19)
/* Encode only: emit tern_tparams.grease. The decoder never sets it, because
 * reserved ids carry no meaning (RFC 9000 §18.1). */
#define TERN_TP_HAS_GREASE (1u << 20)

/* Only a server may send these (RFC 9000 §18.2). */
#define TERN_TP_SERVER_ONLY                                                     \
	(TERN_TP_HAS_ORIGINAL_DCID | TERN_TP_HAS_STATELESS_RESET_TOKEN |        \
	 TERN_TP_HAS_PREFERRED_ADDRESS | TERN_TP_HAS_RETRY_SCID)

/* RFC 9000 §18.2 defaults and limits. */
#define TERN_TP_DEFAULT_MAX_UDP_PAYLOAD_SIZE 65527
#define TERN_TP_DEFAULT_ACK_DELAY_EXPONENT 3
#define TERN_TP_DEFAULT_MAX_ACK_DELAY 25 /* ms */
#define TERN_TP_DEFAULT_ACTIVE_CONNECTION_ID_LIMIT 2
#define TERN_TP_MIN_MAX_UDP_PAYLOAD_SIZE 1200
#define TERN_TP_MAX_ACK_DELAY_EXPONENT 20
#define TERN_TP_MAX_MAX_ACK_DELAY ((1u << 14) - 1)
#define TERN_TP_MAX_STREAMS (UINT64_C(1) << 60)

#define TERN_STATELESS_RESET_TOKEN_LEN 16

/* Reserved ids that exercise the "ignore unknown parameters" rule
 * (RFC 9000 §18.1). */
#define TERN_TP_GREASE_ID(n) (UINT64_C(31) * (uint64_t)(n) + 27)

struct tern_tparams_preferred_address {
	uint8_t ipv4[4];
	uint16_t ipv4_port;
	uint8_t ipv6[16];
	uint16_t ipv6_port;
	struct tern_cid cid; /* 1..20 bytes */
	uint8_t reset_token[TERN_STATELESS_RESET_TOKEN_LEN];
};

struct tern_tparams_version_info {
	uint32_t chosen;
	/* n_available big-endian 32-bit versions; read them with
	 * tern_tparams_available_version(). Points into the decoded input, or
	 * at the caller's bytes when encoding (may be NULL when n is 0). */
	const uint8_t *available;
	size_t n_available;
};

struct tern_tparams_grease {
	uint64_t id;          /* must be TERN_TP_GREASE_ID(n) */
	const uint8_t *value; /* caller's bytes (random, ideally) */
	size_t len;
};

struct tern_tparams {
	uint32_t present; /* TERN_TP_HAS_* */
	struct tern_cid original_dcid;
	uint64_t max_idle_timeout; /* ms, 0 = none */
	uint8_t stateless_reset_token[TERN_STATELESS_RESET_TOKEN_LEN];
	uint64_t max_udp_payload_size;
	uint64_t initial_max_data;
	uint64_t initial_max_stream_data_bidi_local;
	uint64_t initial_max_stream_data_bidi_remote;
	uint64_t initial_max_stream_data_uni;
	uint64_t initial_max_streams_bidi;
	uint64_t initial_max_streams_uni;
	uint64_t ack_delay_exponent;
	uint64_t max_ack_delay; /* ms */
	/* disable_active_migration: the presence bit alone */
	struct tern_tparams_preferred_address preferred_address;
	uint64_t active_connection_id_limit;
	struct tern_cid initial_scid;
	struct tern_cid retry_scid;
	struct tern_tparams_version_info version_info;
	uint64_t max_datagram_frame_size; /* 0 and absent both mean no DATAGRAM */
	/* grease_quic_bit: the presence bit alone */
	struct tern_tparams_grease grease;
};

/* Zeroes tp, marks every parameter absent and sets the RFC 9000 §18.2
 * defaults (max_udp_payload_size 65527, ack_delay_exponent 3,
 * max_ack_delay 25, active_connection_id_limit 2). */
void tern_tparams_init(struct tern_tparams *tp);

/* Writes the present parameters, in id order, then the grease parameter if
 * TERN_TP_HAS_GREASE is set. Returns the length, TERN_ERR_NOBUF, or
 * TERN_ERR_INVAL when tp holds a value the peer would have to reject (a
 * client with a server-only parameter, an out-of-range value, a bad grease
 * id): what we send always passes our own decoder. */
int tern_tparams_encode(uint8_t *out, size_t cap, const struct tern_tparams *tp, int is_server);

/* Parses a peer's block into tp (initialised first, so absent parameters
 * hold their defaults). 0 or TERN_ERR_QUIC(TERN_QUIC_TRANSPORT_PARAMETER_ERROR)
 * for any malformed, out-of-range, duplicated or role-forbidden parameter;
 * tp is then unspecified. Unknown and reserved ids are skipped. */
int tern_tparams_decode(const uint8_t *buf, size_t len, int sender_is_server,
			struct tern_tparams *tp);

/* RFC 9000 §7.3 connection ID authentication, once the peer's parameters are
 * decoded. initial_scid: the Source Connection ID of the peer's Initial
 * packets. For a server peer also original_dcid (the Destination Connection
 * ID of our first Initial) and retry_scid (the Source Connection ID of the
 * Retry we accepted, NULL if none); a client peer passes NULL for both.
 * Returns 0, TERN_ERR_QUIC(TRANSPORT_PARAMETER_ERROR) when a mandatory CID
 * parameter is missing, TERN_ERR_QUIC(PROTOCOL_VIOLATION) on a mismatch or a
 * retry_source_connection_id that contradicts whether a Retry happened. */
int tern_tparams_validate_peer(const struct tern_tparams *tp, int peer_is_server,
			       const struct tern_cid *initial_scid,
			       const struct tern_cid *original_dcid,
			       const struct tern_cid *retry_scid);

static inline uint32_t tern_tparams_available_version(const struct tern_tparams *tp, size_t i)
{
	return tern_get_u32(tp->version_info.available + 4 * i);
}

#endif
