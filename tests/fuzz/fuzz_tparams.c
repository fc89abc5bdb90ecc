/* libFuzzer target: transport parameters. Decodes the input as sent by a
 * client and by a server; whatever decodes must encode, and decode again to
 * the same struct. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tern/tparams.h"

static int cid_eq(const struct tern_cid *a, const struct tern_cid *b)
{
	return tern_cid_equal(a, b);
}

static int same(const struct tern_tparams *a, const struct tern_tparams *b)
{
	const struct tern_tparams_preferred_address *pa = &a->preferred_address,
						    *pb = &b->preferred_address;
	const struct tern_tparams_version_info *va = &a->version_info, *vb = &b->version_info;

	if (a->present != b->present || !cid_eq(&a->original_dcid, &b->original_dcid) ||
	    !cid_eq(&a->initial_scid, &b->initial_scid) || !cid_eq(&a->retry_scid, &b->retry_scid) ||
	    memcmp(a->stateless_reset_token, b->stateless_reset_token, 16) != 0)
		return 0;
	if (a->max_idle_timeout != b->max_idle_timeout ||
	    a->max_udp_payload_size != b->max_udp_payload_size ||
	    a->initial_max_data != b->initial_max_data ||
	    a->initial_max_stream_data_bidi_local != b->initial_max_stream_data_bidi_local ||
	    a->initial_max_stream_data_bidi_remote != b->initial_max_stream_data_bidi_remote ||
	    a->initial_max_stream_data_uni != b->initial_max_stream_data_uni ||
	    a->initial_max_streams_bidi != b->initial_max_streams_bidi ||
	    a->initial_max_streams_uni != b->initial_max_streams_uni ||
	    a->ack_delay_exponent != b->ack_delay_exponent || a->max_ack_delay != b->max_ack_delay ||
	    a->active_connection_id_limit != b->active_connection_id_limit ||
	    a->max_datagram_frame_size != b->max_datagram_frame_size)
		return 0;
	if (memcmp(pa->ipv4, pb->ipv4, 4) != 0 || pa->ipv4_port != pb->ipv4_port ||
	    memcmp(pa->ipv6, pb->ipv6, 16) != 0 || pa->ipv6_port != pb->ipv6_port ||
	    !cid_eq(&pa->cid, &pb->cid) || memcmp(pa->reset_token, pb->reset_token, 16) != 0)
		return 0;
	if (va->chosen != vb->chosen || va->n_available != vb->n_available)
		return 0;
	return va->n_available == 0 || memcmp(va->available, vb->available, 4 * va->n_available) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[65536 + 64];

	/* Inputs above a TLS extension's 64 KiB only slow the fuzzer down. */
	if (size > 65535)
		return 0;
	for (int server = 0; server <= 1; server++) {
		struct tern_tparams a, b;
		int rc = tern_tparams_decode(data, size, server, &a);
		if (rc != 0) {
			if (rc != TERN_ERR_QUIC(TERN_QUIC_TRANSPORT_PARAMETER_ERROR))
				__builtin_trap();
			continue;
		}
		/* What decoded is valid, so it must encode, into no more than
		 * the input: re-encoding only drops unknown ids and shortens
		 * varints. */
		int n = tern_tparams_encode(out, sizeof(out), &a, server);
		if (n < 0 || (size_t)n > size)
			__builtin_trap();
		if (tern_tparams_decode(out, (size_t)n, server, &b) != 0 || !same(&a, &b))
			__builtin_trap();
	}
	return 0;
}
