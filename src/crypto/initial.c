/* tern: Initial secrets and keys (RFC 9001 §5.2, RFC 9369 §3.3.1). */
#include "tern/crypto.h"

/* RFC 9001 §5.2. */
static const uint8_t salt_v1[20] = {
	0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
	0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a,
};

/* RFC 9369 §3.3.1: the first 20 bytes of sha256("QUICv2 salt"). */
static const uint8_t salt_v2[20] = {
	0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93,
	0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9,
};

int tern_initial_secrets(uint32_t version, const uint8_t *dcid, size_t dcid_len,
			 uint8_t client_secret[TERN_INITIAL_SECRET_LEN],
			 uint8_t server_secret[TERN_INITIAL_SECRET_LEN])
{
	const uint8_t *salt;
	uint8_t initial[TERN_INITIAL_SECRET_LEN];

	switch (version) {
	case TERN_VERSION_1:
		salt = salt_v1;
		break;
	case TERN_VERSION_2:
		salt = salt_v2;
		break;
	default:
		return TERN_ERR_VERSION;
	}
	/* Both versions cap connection IDs at 20 bytes (RFC 9000 §17.2). */
	if ((!dcid && dcid_len) || dcid_len > TERN_MAX_CID_LEN || !client_secret || !server_secret)
		return TERN_ERR_INVAL;

	int ret = tern_hkdf_extract(TERN_HASH_SHA256, salt, sizeof(salt_v1), dcid, dcid_len, initial);
	if (ret == 0)
		ret = tern_hkdf_expand_label(TERN_HASH_SHA256, initial, sizeof(initial), "client in",
					     client_secret, TERN_INITIAL_SECRET_LEN);
	if (ret == 0)
		ret = tern_hkdf_expand_label(TERN_HASH_SHA256, initial, sizeof(initial), "server in",
					     server_secret, TERN_INITIAL_SECRET_LEN);
	tern_crypto_wipe(initial, sizeof(initial));
	return ret;
}

int tern_initial_keys_init(uint32_t version, const uint8_t *dcid, size_t dcid_len,
			   struct tern_crypto_keys *client, struct tern_crypto_keys *server)
{
	uint8_t cs[TERN_INITIAL_SECRET_LEN], ss[TERN_INITIAL_SECRET_LEN];

	if (!client || !server || client == server)
		return TERN_ERR_INVAL;
	tern_crypto_wipe(client, sizeof(*client));
	tern_crypto_wipe(server, sizeof(*server));

	/* RFC 9001 §5.2: Initial packets always use AES-128-GCM/SHA-256,
	 * whatever TLS later negotiates. */
	int ret = tern_initial_secrets(version, dcid, dcid_len, cs, ss);
	if (ret == 0)
		ret = tern_crypto_keys_init(client, version, TERN_AEAD_AES_128_GCM, cs, sizeof(cs));
	if (ret == 0)
		ret = tern_crypto_keys_init(server, version, TERN_AEAD_AES_128_GCM, ss, sizeof(ss));
	tern_crypto_wipe(cs, sizeof(cs));
	tern_crypto_wipe(ss, sizeof(ss));
	if (ret != 0) {
		tern_crypto_keys_clear(client);
		tern_crypto_keys_clear(server);
	}
	return ret;
}
