/* libFuzzer target for the AF_XDP datapath's frame parser
 * (tern_xdp_frame_parse, bpf/frame.c): every accepted frame must describe
 * a payload inside the input, and rebuilding it with tern_xdp_frame_build
 * must parse back to the same fields (so builder and parser agree on every
 * layout the parser accepts). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tern/xdp.h"

#define CHECK(c)                         \
	do {                             \
		if (!(c))                \
			__builtin_trap(); \
	} while (0)

static uint8_t out[TERN_XDP_HDR_MAX + 65536];

static uint8_t in[70000];

/* A random IPv4 header almost never has a right checksum; for half the
 * inputs (the destination MAC's group bit clear) fix it, so the fuzzer
 * reaches what comes after. */
static void fix_ipv4_checksum(uint8_t *f, size_t size)
{
	size_t off = 14;
	if (size < off || (f[0] & 1))
		return;
	uint16_t et = tern_get_u16(f + 12);
	if ((et == 0x8100 || et == 0x88a8) && size >= 18) {
		et = tern_get_u16(f + 16);
		off = 18;
	}
	if (et != 0x0800 || size < off + 20)
		return;
	size_t ihl = (size_t)(f[off] & 0x0f) * 4;
	if (ihl < 20 || size < off + ihl)
		return;
	tern_put_u16(f + off + 10, 0);
	tern_put_u16(f + off + 10,
		     (uint16_t)~tern_xdp_csum_fold(tern_xdp_csum_add(0, f + off, ihl)));
}

int LLVMFuzzerTestOneInput(const uint8_t *orig, size_t size)
{
	struct tern_xdp_frame fr, fr2;
	if (size > sizeof(in))
		return 0;
	memcpy(in, orig, size);
	fix_ipv4_checksum(in, size);
	const uint8_t *data = in;
	int rc = tern_xdp_frame_parse(data, size, &fr);
	CHECK(rc == 0 || rc == TERN_ERR_TRUNCATED || rc == TERN_ERR_MALFORMED);
	if (rc)
		return 0;
	CHECK((size_t)fr.payload_off + fr.payload_len <= size);
	CHECK(fr.ecn < 4);
	CHECK(fr.path.local.family == fr.path.remote.family);
	CHECK(fr.path.local.family == 4 || fr.path.local.family == 6);

	/* Rebuild the same datagram as its sender would have. */
	struct tern_path back = {.local = fr.path.remote, .remote = fr.path.local};
	uint8_t *payload = out + TERN_XDP_HDR_MAX;
	memcpy(payload, data + fr.payload_off, fr.payload_len);
	int hl = tern_xdp_frame_build(payload, fr.payload_len, TERN_XDP_HDR_MAX, &fr.l2, &back,
				      fr.ecn, 1);
	CHECK(hl > 0);
	CHECK(tern_xdp_frame_parse(payload - hl, (size_t)hl + fr.payload_len, &fr2) == 0);
	CHECK(memcmp(&fr.l2, &fr2.l2, sizeof(fr.l2)) == 0);
	CHECK(tern_addr_equal(&fr.path.local, &fr2.path.local));
	CHECK(tern_addr_equal(&fr.path.remote, &fr2.path.remote));
	CHECK(fr.ecn == fr2.ecn && fr.payload_len == fr2.payload_len);
	CHECK(memcmp(payload, data + fr.payload_off, fr.payload_len) == 0);
	return 0;
}
