/* Address-validation tokens (RFC 9000 §8.1): round trips, binding to the
 * address, expiry, forgery, and cluster-wide validation with a shared key. */
#include <criterion/criterion.h>

#include "tern/token.h"

static void counter_rand(void *ctx, uint8_t *buf, size_t len)
{
	uint8_t *c = ctx;
	for (size_t i = 0; i < len; i++)
		buf[i] = (*c)++;
}

static uint8_t rng_state;
static const struct tern_rand rnd = {counter_rand, &rng_state};
static const uint8_t static_key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				       17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const struct tern_addr client = {.family = 4, .port = 40000, .ip = {198, 18, 0, 2}};
static const struct tern_cid odcid = {.len = 8, .bytes = {0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08}};
#define SEC UINT64_C(1000000000)

static struct tern_token_key key;

static void setup(void)
{
	cr_assert_eq(tern_token_key_init(&key, static_key, sizeof(static_key)), 0);
}

static void teardown(void)
{
	tern_token_key_clear(&key);
}

TestSuite(token, .init = setup, .fini = teardown);

Test(token, retry_round_trip_gives_back_the_original_dcid)
{
	uint8_t tok[TERN_TOKEN_MAX_LEN];
	int n = tern_token_seal(&key, TERN_TOKEN_RETRY, &client, &odcid, 100 * SEC, &rnd, tok, sizeof(tok));
	cr_assert_eq(n, 1 + 12 + 8 + 1 + 8 + 16);
	enum tern_token_type t;
	struct tern_cid out;
	cr_assert_eq(tern_token_open(&key, tok, (size_t)n, &client, 101 * SEC, 10 * SEC, &t, &out), 0);
	cr_assert_eq(t, TERN_TOKEN_RETRY);
	cr_assert(tern_cid_equal(&out, &odcid));
}

Test(token, another_host_with_the_same_static_key_validates_it)
{
	uint8_t tok[TERN_TOKEN_MAX_LEN];
	int n = tern_token_seal(&key, TERN_TOKEN_RETRY, &client, &odcid, 5 * SEC, &rnd, tok, sizeof(tok));
	struct tern_token_key other, foreign;
	uint8_t k2[32];
	memcpy(k2, static_key, 32);
	k2[31] ^= 1;
	tern_token_key_init(&other, static_key, sizeof(static_key));
	tern_token_key_init(&foreign, k2, sizeof(k2));
	enum tern_token_type t;
	struct tern_cid out;
	cr_assert_eq(tern_token_open(&other, tok, (size_t)n, &client, 5 * SEC, SEC, &t, &out), 0);
	cr_assert_eq(tern_token_open(&foreign, tok, (size_t)n, &client, 5 * SEC, SEC, &t, &out),
		     TERN_ERR_DECRYPT);
	tern_token_key_clear(&other);
	tern_token_key_clear(&foreign);
}

Test(token, retry_token_is_bound_to_address_and_port)
{
	uint8_t tok[TERN_TOKEN_MAX_LEN];
	int n = tern_token_seal(&key, TERN_TOKEN_RETRY, &client, &odcid, SEC, &rnd, tok, sizeof(tok));
	struct tern_addr other_port = client, other_ip = client;
	other_port.port++;
	other_ip.ip[3]++;
	enum tern_token_type t;
	struct tern_cid out;
	cr_assert_eq(tern_token_open(&key, tok, (size_t)n, &other_port, SEC, SEC, &t, &out), TERN_ERR_DECRYPT);
	cr_assert_eq(tern_token_open(&key, tok, (size_t)n, &other_ip, SEC, SEC, &t, &out), TERN_ERR_DECRYPT);
}

Test(token, new_token_survives_a_port_change_but_not_an_ip_change)
{
	uint8_t tok[TERN_TOKEN_MAX_LEN];
	int n = tern_token_seal(&key, TERN_TOKEN_NEW_TOKEN, &client, NULL, SEC, &rnd, tok, sizeof(tok));
	cr_assert_eq(n, 1 + 12 + 8 + 1 + 16);
	struct tern_addr later = client, elsewhere = client;
	later.port = 50000;
	elsewhere.ip[0] = 10;
	enum tern_token_type t;
	struct tern_cid out;
	cr_assert_eq(tern_token_open(&key, tok, (size_t)n, &later, 2 * SEC, 3600 * SEC, &t, &out), 0);
	cr_assert_eq(t, TERN_TOKEN_NEW_TOKEN);
	cr_assert_eq(out.len, 0);
	cr_assert_eq(tern_token_open(&key, tok, (size_t)n, &elsewhere, 2 * SEC, 3600 * SEC, &t, &out),
		     TERN_ERR_DECRYPT);
}

Test(token, expiry_and_future_issue_times_are_refused)
{
	uint8_t tok[TERN_TOKEN_MAX_LEN];
	int n = tern_token_seal(&key, TERN_TOKEN_RETRY, &client, &odcid, 100 * SEC, &rnd, tok, sizeof(tok));
	enum tern_token_type t;
	struct tern_cid out;
	cr_assert_eq(tern_token_open(&key, tok, (size_t)n, &client, 110 * SEC, 10 * SEC, &t, &out), 0);
	cr_assert_eq(tern_token_open(&key, tok, (size_t)n, &client, 110 * SEC + 1, 10 * SEC, &t, &out),
		     TERN_ERR_LIMIT);
	/* issued "in the future" beyond the allowed clock skew */
	cr_assert_eq(tern_token_open(&key, tok, (size_t)n, &client, 80 * SEC, 10 * SEC, &t, &out),
		     TERN_ERR_LIMIT);
}

Test(token, any_flipped_bit_is_a_forgery)
{
	uint8_t tok[TERN_TOKEN_MAX_LEN];
	int n = tern_token_seal(&key, TERN_TOKEN_RETRY, &client, &odcid, SEC, &rnd, tok, sizeof(tok));
	for (int i = 1; i < n; i++) {
		uint8_t bad[TERN_TOKEN_MAX_LEN];
		memcpy(bad, tok, (size_t)n);
		bad[i] ^= 0x01;
		enum tern_token_type t;
		struct tern_cid out;
		cr_assert_eq(tern_token_open(&key, bad, (size_t)n, &client, SEC, SEC, &t, &out), TERN_ERR_DECRYPT,
			     "flip at byte %d accepted", i);
	}
}

Test(token, malformed_tokens_and_bad_arguments)
{
	uint8_t tok[TERN_TOKEN_MAX_LEN] = {0};
	enum tern_token_type t;
	struct tern_cid out;
	tok[0] = TERN_TOKEN_RETRY;
	cr_assert_eq(tern_token_open(&key, tok, 36, &client, SEC, SEC, &t, &out), TERN_ERR_MALFORMED);
	cr_assert_eq(tern_token_open(&key, tok, TERN_TOKEN_MAX_LEN + 1, &client, SEC, SEC, &t, &out),
		     TERN_ERR_MALFORMED);
	tok[0] = 9;
	cr_assert_eq(tern_token_open(&key, tok, 40, &client, SEC, SEC, &t, &out), TERN_ERR_MALFORMED);
	cr_assert_eq(tern_token_seal(&key, TERN_TOKEN_RETRY, &client, &odcid, SEC, &rnd, tok, 44),
		     TERN_ERR_NOBUF);
	cr_assert_eq(tern_token_seal(&key, (enum tern_token_type)3, &client, &odcid, SEC, &rnd, tok, sizeof(tok)),
		     TERN_ERR_INVAL);
	struct tern_token_key k;
	cr_assert_eq(tern_token_key_init(&k, static_key, 15), TERN_ERR_INVAL);
}
