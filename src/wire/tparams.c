/* tern: transport parameters codec, RFC 9000 §18 (+ RFC 9368, 9221, 9287). */
#include "tern/tparams.h"

#include <stddef.h>

#define TP_ERR TERN_ERR_QUIC(TERN_QUIC_TRANSPORT_PARAMETER_ERROR)

/* Fixed part of preferred_address: IPv4 (4) + port (2) + IPv6 (16) + port
 * (2) + CID length (1) + reset token (16); the CID sits before the token. */
#define TP_PA_FIXED_LEN 41
#define TP_PA_MAX_LEN (TP_PA_FIXED_LEN + TERN_MAX_CID_LEN)
#define TP_N_BITS 20 /* every wire parameter; TERN_TP_HAS_GREASE is not one */

/* Integer-valued parameters and the ranges RFC 9000 §18.2 allows, shared by
 * encoder and decoder so we never send what we would refuse. */
struct tp_int {
	uint8_t bit;
	uint64_t min, max;
	size_t off;
};

#define TP_INT(b, lo, hi, field) {b, lo, hi, offsetof(struct tern_tparams, field)}
static const struct tp_int tp_ints[] = {
	TP_INT(1, 0, TERN_VARINT_MAX, max_idle_timeout),
	/* "Values below 1200 are invalid." */
	TP_INT(3, TERN_TP_MIN_MAX_UDP_PAYLOAD_SIZE, TERN_VARINT_MAX, max_udp_payload_size),
	TP_INT(4, 0, TERN_VARINT_MAX, initial_max_data),
	TP_INT(5, 0, TERN_VARINT_MAX, initial_max_stream_data_bidi_local),
	TP_INT(6, 0, TERN_VARINT_MAX, initial_max_stream_data_bidi_remote),
	TP_INT(7, 0, TERN_VARINT_MAX, initial_max_stream_data_uni),
	/* §4.6: a stream count above 2^60 could not be expressed as a stream
	 * ID; received in a transport parameter it is TRANSPORT_PARAMETER_ERROR. */
	TP_INT(8, 0, TERN_TP_MAX_STREAMS, initial_max_streams_bidi),
	TP_INT(9, 0, TERN_TP_MAX_STREAMS, initial_max_streams_uni),
	/* "Values above 20 are invalid." */
	TP_INT(10, 0, TERN_TP_MAX_ACK_DELAY_EXPONENT, ack_delay_exponent),
	/* "Values of 2^14 or greater are invalid." */
	TP_INT(11, 0, TERN_TP_MAX_MAX_ACK_DELAY, max_ack_delay),
	/* "The value ... MUST be at least 2." */
	TP_INT(14, 2, TERN_VARINT_MAX, active_connection_id_limit),
	TP_INT(18, 0, TERN_VARINT_MAX, max_datagram_frame_size),
};

static const struct tp_int *tp_int_find(int bit)
{
	for (size_t i = 0; i < sizeof(tp_ints) / sizeof(tp_ints[0]); i++)
		if (tp_ints[i].bit == bit)
			return &tp_ints[i];
	return NULL;
}

static uint64_t *tp_int_field(struct tern_tparams *tp, const struct tp_int *d)
{
	return (uint64_t *)((uint8_t *)tp + d->off);
}

static uint64_t tp_int_get(const struct tern_tparams *tp, const struct tp_int *d)
{
	return *(const uint64_t *)((const uint8_t *)tp + d->off);
}

static uint64_t tp_bit_id(int bit)
{
	if (bit <= TERN_TP_VERSION_INFORMATION)
		return (uint64_t)bit;
	return bit == 18 ? TERN_TP_MAX_DATAGRAM_FRAME_SIZE : TERN_TP_GREASE_QUIC_BIT;
}

/* -1 for ids we do not know, reserved ones included. */
static int tp_id_bit(uint64_t id)
{
	if (id <= TERN_TP_VERSION_INFORMATION)
		return (int)id;
	if (id == TERN_TP_MAX_DATAGRAM_FRAME_SIZE)
		return 18;
	if (id == TERN_TP_GREASE_QUIC_BIT)
		return 19;
	return -1;
}

static struct tern_cid *tp_cid_field(struct tern_tparams *tp, int bit)
{
	switch (bit) {
	case TERN_TP_ORIGINAL_DCID: return &tp->original_dcid;
	case TERN_TP_INITIAL_SCID: return &tp->initial_scid;
	case TERN_TP_RETRY_SCID: return &tp->retry_scid;
	}
	return NULL;
}

void tern_tparams_init(struct tern_tparams *tp)
{
	memset(tp, 0, sizeof(*tp));
	tp->max_udp_payload_size = TERN_TP_DEFAULT_MAX_UDP_PAYLOAD_SIZE;
	tp->ack_delay_exponent = TERN_TP_DEFAULT_ACK_DELAY_EXPONENT;
	tp->max_ack_delay = TERN_TP_DEFAULT_MAX_ACK_DELAY;
	tp->active_connection_id_limit = TERN_TP_DEFAULT_ACTIVE_CONNECTION_ID_LIMIT;
}

/* ---- version_information, RFC 9368 §3 and §4 -------------------------- */

/* is_client: the sender is a client, whose Available Versions must include
 * its Chosen Version (§4). Every rule here is a parsing failure, which in
 * QUIC v1 closes with TRANSPORT_PARAMETER_ERROR. */
static int tp_vi_check(const struct tern_tparams_version_info *vi, int is_client)
{
	int chosen_listed = 0;

	if (vi->chosen == 0)
		return -1;
	for (size_t i = 0; i < vi->n_available; i++) {
		uint32_t v = tern_get_u32(vi->available + 4 * i);
		if (v == 0)
			return -1;
		chosen_listed |= v == vi->chosen;
	}
	return is_client && !chosen_listed ? -1 : 0;
}

static int tp_vi_decode(const uint8_t *v, size_t len, int sender_is_server,
			struct tern_tparams_version_info *vi)
{
	/* At least the Chosen Version, and whole 32-bit versions only. */
	if (len < 4 || len % 4 != 0)
		return TP_ERR;
	vi->chosen = tern_get_u32(v);
	vi->available = len > 4 ? v + 4 : NULL;
	vi->n_available = len / 4 - 1;
	return tp_vi_check(vi, !sender_is_server) ? TP_ERR : 0;
}

/* ---- preferred_address, RFC 9000 §18.2 -------------------------------- */

static int tp_pa_decode(const uint8_t *v, size_t len, struct tern_tparams_preferred_address *pa)
{
	if (len < TP_PA_FIXED_LEN)
		return TP_ERR;
	size_t cid_len = v[24];
	/* A server that chose a zero-length CID cannot move the connection:
	 * "A client MUST treat a violation of this requirement as a connection
	 * error of type TRANSPORT_PARAMETER_ERROR." */
	if (cid_len == 0 || cid_len > TERN_MAX_CID_LEN || len != TP_PA_FIXED_LEN + cid_len)
		return TP_ERR;
	memcpy(pa->ipv4, v, 4);
	pa->ipv4_port = tern_get_u16(v + 4);
	memcpy(pa->ipv6, v + 6, 16);
	pa->ipv6_port = tern_get_u16(v + 22);
	tern_cid_set(&pa->cid, v + 25, cid_len);
	memcpy(pa->reset_token, v + 25 + cid_len, TERN_STATELESS_RESET_TOKEN_LEN);
	return 0;
}

static size_t tp_pa_write(uint8_t *out, const struct tern_tparams_preferred_address *pa)
{
	uint8_t *p = out;
	memcpy(p, pa->ipv4, 4);
	p = tern_put_u16(p + 4, pa->ipv4_port);
	memcpy(p, pa->ipv6, 16);
	p = tern_put_u16(p + 16, pa->ipv6_port);
	*p++ = pa->cid.len;
	memcpy(p, pa->cid.bytes, pa->cid.len);
	p += pa->cid.len;
	memcpy(p, pa->reset_token, TERN_STATELESS_RESET_TOKEN_LEN);
	return (size_t)(p - out) + TERN_STATELESS_RESET_TOKEN_LEN;
}

/* ---- decoding ---------------------------------------------------------- */

static int tp_int_decode(const uint8_t *v, size_t len, const struct tp_int *d,
			 struct tern_tparams *tp)
{
	const uint8_t *p = v;
	uint64_t x;

	/* The value is exactly one varint: one that ends early or overruns
	 * the declared length is malformed (§18). */
	if (tern_varint_decode(&p, v + len, &x) != 0 || p != v + len)
		return TP_ERR;
	if (x < d->min || x > d->max)
		return TP_ERR;
	*tp_int_field(tp, d) = x;
	return 0;
}

static int tp_param_decode(int bit, const uint8_t *v, size_t len, int sender_is_server,
			   struct tern_tparams *tp)
{
	const struct tp_int *d = tp_int_find(bit);

	if (d)
		return tp_int_decode(v, len, d, tp);
	switch (bit) {
	case TERN_TP_ORIGINAL_DCID:
	case TERN_TP_INITIAL_SCID:
	case TERN_TP_RETRY_SCID:
		/* CIDs are at most 20 bytes in v1 (§17.2); zero is allowed, a
		 * zero-length CID is sent as an empty value (§7.3). */
		return tern_cid_set(tp_cid_field(tp, bit), v, len) ? TP_ERR : 0;
	case TERN_TP_STATELESS_RESET_TOKEN:
		if (len != TERN_STATELESS_RESET_TOKEN_LEN)
			return TP_ERR;
		memcpy(tp->stateless_reset_token, v, len);
		return 0;
	case TERN_TP_DISABLE_ACTIVE_MIGRATION:
	case 19: /* grease_quic_bit, RFC 9287 §3 */
		return len == 0 ? 0 : TP_ERR;
	case TERN_TP_PREFERRED_ADDRESS:
		return tp_pa_decode(v, len, &tp->preferred_address);
	case TERN_TP_VERSION_INFORMATION:
		return tp_vi_decode(v, len, sender_is_server, &tp->version_info);
	}
	return TP_ERR;
}

int tern_tparams_decode(const uint8_t *buf, size_t len, int sender_is_server,
			struct tern_tparams *tp)
{
	tern_tparams_init(tp);
	if (len == 0)
		return 0;
	if (!buf)
		return TERN_ERR_INVAL;

	const uint8_t *p = buf, *end = buf + len;
	while (p < end) {
		uint64_t id, vlen;
		if (tern_varint_decode(&p, end, &id) != 0 ||
		    tern_varint_decode(&p, end, &vlen) != 0 || vlen > (uint64_t)(end - p))
			return TP_ERR;
		int bit = tp_id_bit(id);
		/* §7.4.2: unknown (and reserved, §18.1) ids MUST be ignored. We
		 * do not look for duplicates among them: it would take memory
		 * or time that grows with the input, and a repeated parameter
		 * we ignore cannot change what we understood. */
		if (bit >= 0) {
			uint32_t mask = 1u << bit;
			/* §7.4: a duplicate SHOULD be TRANSPORT_PARAMETER_ERROR;
			 * §18.2: a server MUST reject server-only ones from a client. */
			if ((tp->present & mask) || (!sender_is_server && (mask & TERN_TP_SERVER_ONLY)))
				return TP_ERR;
			int rc = tp_param_decode(bit, p, (size_t)vlen, sender_is_server, tp);
			if (rc)
				return rc;
			tp->present |= mask;
		}
		p += vlen;
	}
	return 0;
}

/* ---- encoding ---------------------------------------------------------- */

/* Refuses what the peer's decoder (ours included) would reject. */
static int tp_check_local(const struct tern_tparams *tp, int is_server)
{
	if (!is_server && (tp->present & TERN_TP_SERVER_ONLY))
		return TERN_ERR_INVAL;
	for (size_t i = 0; i < sizeof(tp_ints) / sizeof(tp_ints[0]); i++) {
		const struct tp_int *d = &tp_ints[i];
		uint64_t x = tp_int_get(tp, d);
		if ((tp->present & (1u << d->bit)) && (x < d->min || x > d->max))
			return TERN_ERR_INVAL;
	}
	for (int bit = 0; bit < TP_N_BITS; bit++) {
		const struct tern_cid *c = tp_cid_field((struct tern_tparams *)tp, bit);
		if (c && (tp->present & (1u << bit)) && c->len > TERN_MAX_CID_LEN)
			return TERN_ERR_INVAL;
	}
	if ((tp->present & TERN_TP_HAS_PREFERRED_ADDRESS) &&
	    (tp->preferred_address.cid.len == 0 || tp->preferred_address.cid.len > TERN_MAX_CID_LEN))
		return TERN_ERR_INVAL;
	if (tp->present & TERN_TP_HAS_VERSION_INFORMATION) {
		const struct tern_tparams_version_info *vi = &tp->version_info;
		if ((vi->n_available && !vi->available) || vi->n_available > (SIZE_MAX - 4) / 4 ||
		    tp_vi_check(vi, !is_server))
			return TERN_ERR_INVAL;
	}
	if (tp->present & TERN_TP_HAS_GREASE) {
		const struct tern_tparams_grease *g = &tp->grease;
		if (g->id > TERN_VARINT_MAX || g->id % 31 != 27 || (g->len && !g->value))
			return TERN_ERR_INVAL;
	}
	return 0;
}

struct tp_writer {
	uint8_t *p, *end;
};

/* Writes the id and length and returns where the len-byte value goes, or
 * NULL when the whole parameter does not fit. */
static uint8_t *tp_put_hdr(struct tp_writer *w, uint64_t id, size_t len)
{
	if ((uint64_t)len > TERN_VARINT_MAX)
		return NULL;
	size_t hdr = tern_varint_size(id) + tern_varint_size(len);
	size_t room = (size_t)(w->end - w->p);
	if (room < hdr || room - hdr < len)
		return NULL;
	uint8_t *v = tern_varint_encode(tern_varint_encode(w->p, id), len);
	w->p = v + len;
	return v;
}

static int tp_put_bytes(struct tp_writer *w, uint64_t id, const void *val, size_t len)
{
	uint8_t *v = tp_put_hdr(w, id, len);
	if (!v)
		return TERN_ERR_NOBUF;
	if (len)
		memcpy(v, val, len);
	return 0;
}

static int tp_param_encode(struct tp_writer *w, int bit, const struct tern_tparams *tp)
{
	const struct tp_int *d = tp_int_find(bit);
	uint64_t id = tp_bit_id(bit);
	uint8_t buf[TP_PA_MAX_LEN];

	if (d) {
		uint64_t x = tp_int_get(tp, d);
		size_t n = tern_varint_size(x);
		uint8_t *v = tp_put_hdr(w, id, n);
		if (!v)
			return TERN_ERR_NOBUF;
		tern_varint_encode(v, x);
		return 0;
	}
	switch (bit) {
	case TERN_TP_ORIGINAL_DCID:
	case TERN_TP_INITIAL_SCID:
	case TERN_TP_RETRY_SCID: {
		const struct tern_cid *c = tp_cid_field((struct tern_tparams *)tp, bit);
		return tp_put_bytes(w, id, c->bytes, c->len);
	}
	case TERN_TP_STATELESS_RESET_TOKEN:
		return tp_put_bytes(w, id, tp->stateless_reset_token, TERN_STATELESS_RESET_TOKEN_LEN);
	case TERN_TP_PREFERRED_ADDRESS:
		return tp_put_bytes(w, id, buf, tp_pa_write(buf, &tp->preferred_address));
	case TERN_TP_VERSION_INFORMATION: {
		const struct tern_tparams_version_info *vi = &tp->version_info;
		uint8_t *v = tp_put_hdr(w, id, 4 + 4 * vi->n_available);
		if (!v)
			return TERN_ERR_NOBUF;
		tern_put_u32(v, vi->chosen);
		if (vi->n_available)
			memcpy(v + 4, vi->available, 4 * vi->n_available);
		return 0;
	}
	}
	/* disable_active_migration and grease_quic_bit: empty values. */
	return tp_put_bytes(w, id, NULL, 0);
}

int tern_tparams_encode(uint8_t *out, size_t cap, const struct tern_tparams *tp, int is_server)
{
	if (!out && cap)
		return TERN_ERR_INVAL;
	int rc = tp_check_local(tp, is_server);
	if (rc)
		return rc;

	struct tp_writer w = {out, out ? out + cap : out};
	for (int bit = 0; bit < TP_N_BITS; bit++) {
		if (!(tp->present & (1u << bit)))
			continue;
		if ((rc = tp_param_encode(&w, bit, tp)) != 0)
			return rc;
	}
	if ((tp->present & TERN_TP_HAS_GREASE) &&
	    (rc = tp_put_bytes(&w, tp->grease.id, tp->grease.value, tp->grease.len)) != 0)
		return rc;
	if (w.p - out > INT32_MAX)
		return TERN_ERR_NOBUF;
	return (int)(w.p - out);
}

/* ---- RFC 9000 §7.3 connection ID authentication ------------------------ */

int tern_tparams_validate_peer(const struct tern_tparams *tp, int peer_is_server,
			       const struct tern_cid *initial_scid,
			       const struct tern_cid *original_dcid,
			       const struct tern_cid *retry_scid)
{
	const int pv = TERN_ERR_QUIC(TERN_QUIC_PROTOCOL_VIOLATION);

	if (!initial_scid || (peer_is_server && !original_dcid))
		return TERN_ERR_INVAL;
	/* Absence of initial_source_connection_id from either endpoint, or of
	 * original_destination_connection_id from the server, MUST be
	 * TRANSPORT_PARAMETER_ERROR. */
	if (!(tp->present & TERN_TP_HAS_INITIAL_SCID))
		return TP_ERR;
	if (peer_is_server && !(tp->present & TERN_TP_HAS_ORIGINAL_DCID))
		return TP_ERR;
	/* The rest may be either code; we say PROTOCOL_VIOLATION so that a
	 * failed CID authentication (a possible injection, §7.3) counts apart
	 * from a peer that merely sent bad parameters. */
	if (!tern_cid_equal(&tp->initial_scid, initial_scid))
		return pv;
	if (!peer_is_server)
		return 0;
	if (!tern_cid_equal(&tp->original_dcid, original_dcid))
		return pv;
	int has_retry = (tp->present & TERN_TP_HAS_RETRY_SCID) != 0;
	if (has_retry != (retry_scid != NULL))
		return pv;
	if (retry_scid && !tern_cid_equal(&tp->retry_scid, retry_scid))
		return pv;
	return 0;
}
