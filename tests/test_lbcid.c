/* Routable CIDs in the QUIC-LB plaintext layout. */
#include <criterion/criterion.h>

#include "tern/lbcid.h"

static void fixed_rand(void *ctx, uint8_t *buf, size_t len)
{
	(void)ctx;
	memset(buf, 0xaa, len);
}

static const struct tern_rand rnd = {fixed_rand, NULL};

Test(lbcid, layout_is_first_octet_server_id_worker_then_random)
{
	struct tern_lbcid_config cfg;
	tern_lbcid_config_init(&cfg);
	cfg.config_rotation = 2;
	cr_assert_eq(tern_lbcid_set_server_id_hex(&cfg, "0a0B0c"), 0);
	cfg.nonce_len = 6;
	struct tern_cid cid;
	cr_assert_eq(tern_lbcid_generate(&cfg, 5, &rnd, &cid), 0);
	const uint8_t want[] = {2 << 5 | 9, 0x0a, 0x0b, 0x0c, 5, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa};
	cr_assert_eq(cid.len, sizeof(want));
	cr_assert_arr_eq(cid.bytes, want, sizeof(want));
	cr_assert_eq(tern_lbcid_worker(&cfg, cid.bytes, cid.len), 5);
	uint8_t sid[15];
	cr_assert_eq(tern_lbcid_server_id(&cfg, cid.bytes, cid.len, sid), 1);
	cr_assert_arr_eq(sid, ((uint8_t[]){0x0a, 0x0b, 0x0c}), 3);
}

Test(lbcid, every_worker_round_trips)
{
	struct tern_lbcid_config cfg;
	tern_lbcid_config_init(&cfg);
	for (unsigned w = 0; w < 256; w++) {
		struct tern_cid cid;
		cr_assert_eq(tern_lbcid_generate(&cfg, w, &rnd, &cid), 0);
		cr_assert_eq(cid.len, 8);
		cr_assert_eq(tern_lbcid_worker(&cfg, cid.bytes, cid.len), (int)w);
	}
	struct tern_cid cid;
	cr_assert_eq(tern_lbcid_generate(&cfg, 256, &rnd, &cid), TERN_ERR_INVAL);
}

Test(lbcid, foreign_cids_name_no_worker)
{
	struct tern_lbcid_config cfg;
	tern_lbcid_config_init(&cfg);
	struct tern_cid cid;
	tern_lbcid_generate(&cfg, 3, &rnd, &cid);
	uint8_t other[8];
	memcpy(other, cid.bytes, 8);
	other[0] = (uint8_t)(1 << 5 | 7); /* another config rotation */
	cr_assert_eq(tern_lbcid_worker(&cfg, other, 8), -1);
	other[0] = 6; /* right rotation, wrong self-encoded length */
	cr_assert_eq(tern_lbcid_worker(&cfg, other, 8), -1);
	cr_assert_eq(tern_lbcid_worker(&cfg, cid.bytes, 7), -1);
}

Test(lbcid, impossible_layouts_and_bad_server_ids_are_refused)
{
	struct tern_lbcid_config cfg;
	tern_lbcid_config_init(&cfg);
	cr_assert_eq(tern_lbcid_set_server_id_hex(&cfg, ""), TERN_ERR_INVAL);
	cr_assert_eq(tern_lbcid_set_server_id_hex(&cfg, "abc"), TERN_ERR_INVAL);
	cr_assert_eq(tern_lbcid_set_server_id_hex(&cfg, "zz"), TERN_ERR_INVAL);
	cr_assert_eq(tern_lbcid_set_server_id_hex(&cfg, "00112233445566778899aabbccddeeff"), TERN_ERR_INVAL);
	cr_assert_eq(tern_lbcid_set_server_id_hex(&cfg, "00112233445566778899aabbccddee"), 0);
	cr_assert_eq(tern_lbcid_config_check(&cfg), TERN_ERR_INVAL, "1 + 15 + 7 > 20");
	cfg.nonce_len = 4;
	cr_assert_eq(tern_lbcid_config_check(&cfg), TERN_ERR_INVAL, "a 3-byte random part is too short");
	cfg.nonce_len = 5;
	cfg.server_id_len = 14;
	cr_assert_eq(tern_lbcid_config_check(&cfg), 0);
	cfg.config_rotation = 7;
	cr_assert_eq(tern_lbcid_config_check(&cfg), TERN_ERR_INVAL, "CR 7 is the unroutable codepoint");
}
