/* Routable server CIDs, see include/tern/lbcid.h. */
#include "tern/lbcid.h"

void tern_lbcid_config_init(struct tern_lbcid_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->nonce_len = 1 + 6;
	cfg->self_encode_length = 1;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int tern_lbcid_set_server_id_hex(struct tern_lbcid_config *cfg, const char *hex)
{
	size_t n = strlen(hex);
	if (n == 0 || n % 2 || n / 2 > TERN_LBCID_MAX_SERVER_ID)
		return TERN_ERR_INVAL;
	uint8_t id[TERN_LBCID_MAX_SERVER_ID];
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return TERN_ERR_INVAL;
		id[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(cfg->server_id, id, n / 2);
	cfg->server_id_len = (uint8_t)(n / 2);
	return 0;
}

size_t tern_lbcid_len(const struct tern_lbcid_config *cfg)
{
	return 1 + (size_t)cfg->server_id_len + cfg->nonce_len;
}

int tern_lbcid_config_check(const struct tern_lbcid_config *cfg)
{
	if (cfg->config_rotation >= TERN_LBCID_UNROUTABLE_CR ||
	    cfg->server_id_len > TERN_LBCID_MAX_SERVER_ID ||
	    cfg->nonce_len < 1 + TERN_LBCID_MIN_RANDOM || tern_lbcid_len(cfg) > TERN_MAX_CID_LEN)
		return TERN_ERR_INVAL;
	return 0;
}

int tern_lbcid_generate(const struct tern_lbcid_config *cfg, unsigned worker,
			const struct tern_rand *rnd, struct tern_cid *out)
{
	if (tern_lbcid_config_check(cfg) < 0 || worker > 255)
		return TERN_ERR_INVAL;
	size_t len = tern_lbcid_len(cfg);
	uint8_t *p = out->bytes;
	tern_rand_fill(rnd, p, len);
	uint8_t low = cfg->self_encode_length ? (uint8_t)(len - 1) : (p[0] & 0x1f);
	p[0] = (uint8_t)(cfg->config_rotation << 5 | low);
	memcpy(p + 1, cfg->server_id, cfg->server_id_len);
	p[1 + cfg->server_id_len] = (uint8_t)worker;
	out->len = (uint8_t)len;
	return 0;
}

static int matches(const struct tern_lbcid_config *cfg, const uint8_t *cid, size_t len)
{
	if (len != tern_lbcid_len(cfg) || (cid[0] >> 5) != cfg->config_rotation)
		return 0;
	return !cfg->self_encode_length || (size_t)(cid[0] & 0x1f) == len - 1;
}

int tern_lbcid_worker(const struct tern_lbcid_config *cfg, const uint8_t *cid, size_t len)
{
	if (!matches(cfg, cid, len))
		return -1;
	return cid[1 + cfg->server_id_len];
}

int tern_lbcid_server_id(const struct tern_lbcid_config *cfg, const uint8_t *cid, size_t len,
			 uint8_t *server_id)
{
	if (!matches(cfg, cid, len))
		return 0;
	memcpy(server_id, cid + 1, cfg->server_id_len);
	return 1;
}
