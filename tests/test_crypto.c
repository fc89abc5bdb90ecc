/* Tests for include/tern/crypto.h: HKDF (RFC 5869), HKDF-Expand-Label,
 * Initial secrets, AEAD, header protection, key update and the Retry
 * Integrity Tag, byte for byte against RFC 9001 Appendix A (QUIC v1) and
 * RFC 9369 Appendix A (QUIC v2). Every hex string below is copied from the
 * RFC text as printed there (spaces where the RFC breaks its lines). */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tern/crypto.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/kdf.h>

/* ---- helpers -------------------------------------------------------- */

/* Decodes hex, skipping whitespace; fails the test on an odd digit count,
 * a non-hex character or overflow. Then re-encodes the bytes and compares
 * them with the input stripped of whitespace, as a transcription guard. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	static const char digits[] = "0123456789abcdef";
	size_t n = 0;
	int half = -1;
	for (const char *p = hex; *p; p++) {
		if (isspace((unsigned char)*p))
			continue;
		const char *d = strchr(digits, tolower((unsigned char)*p));
		cr_assert(d != NULL && *p != '\0', "bad hex character '%c'", *p);
		if (half < 0) {
			half = (int)(d - digits);
		} else {
			cr_assert(n < cap, "hex longer than %zu bytes", cap);
			out[n++] = (uint8_t)(half << 4 | (int)(d - digits));
			half = -1;
		}
	}
	cr_assert(half < 0, "odd number of hex digits");

	size_t k = 0;
	for (const char *p = hex; *p; p++) {
		if (isspace((unsigned char)*p))
			continue;
		uint8_t b = out[k / 2];
		char want = digits[(k % 2 == 0) ? b >> 4 : b & 0x0f];
		cr_assert(tolower((unsigned char)*p) == want, "re-encoding differs at digit %zu", k);
		k++;
	}
	cr_assert(k == 2 * n);
	return n;
}

static void expect_hex(const uint8_t *got, size_t len, const char *hex, const char *what)
{
	uint8_t want[1500];
	size_t n = unhex(hex, want, sizeof(want));
	cr_assert_eq(len, n, "%s: length %zu, RFC has %zu", what, len, n);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(got[i], want[i], "%s: byte %zu is %02x, RFC has %02x", what, i, got[i],
			     want[i]);
}

/* ---- RFC vectors ---------------------------------------------------- */

/* Both RFCs use the client-chosen DCID 0x8394c8f03e515708. */
static const char rfc_dcid[] = "8394c8f03e515708";

/* The CRYPTO frame of the client Initial: identical in RFC 9001 A.2 and
 * RFC 9369 A.2. */
static const char client_crypto_frame[] =
	"060040f1010000ed0303ebf8fa56f129 39b9584a3896472ec40bb863cfd3e868"
	"04fe3a47f06a2b69484c000004130113 02010000c000000010000e00000b6578"
	"616d706c652e636f6dff01000100000a 00080006001d00170018001000070005"
	"04616c706e0005000501000000000033 00260024001d00209370b2c9caa47fba"
	"baf4559fedba753de171fa71f50f1ce1 5d43e994ec74d748002b000302030400"
	"0d0010000e0403050306030203080408 050806002d00020101001c0002400100"
	"3900320408ffffffffffffffff050480 00ffff07048000ffff08011001048000"
	"75300901100f088394c8f03e51570806 048000ffff";

/* The server Initial's payload: identical in RFC 9001 A.3 and RFC 9369
 * A.3. */
static const char server_payload[] =
	"02000000000600405a020000560303ee fce7f7b37ba1d1632e96677825ddf739"
	"88cfc79825df566dc5430b9a045a1200 130100002e00330024001d00209d3c94"
	"0d89690b84d08a60993c144eca684d10 81287c834d5311bcf32bb9da1a002b00"
	"020304";

/* A.5 of both RFCs: the same application secret. */
static const char chacha_secret[] =
	"9ac312a7f877468ebe69422748ad00a1"
	"5443f18203a07d6060f688f30f21632b";

struct version_vectors {
	uint32_t version;
	const char *salt;
	const char *label_key, *label_iv, *label_hp, *label_ku;
	/* A.1 */
	const char *hkdf_label_key, *hkdf_label_iv, *hkdf_label_hp;
	const char *initial_secret;
	const char *client_secret, *client_key, *client_iv, *client_hp;
	const char *server_secret, *server_key, *server_iv, *server_hp;
	/* A.2 */
	const char *client_header, *client_sample, *client_mask, *client_protected_header;
	const char *client_packet;
	/* A.3 */
	const char *server_header, *server_sample, *server_mask, *server_protected_header;
	const char *server_packet;
	/* A.4 */
	const char *retry;
	const char *retry_secret, *retry_key, *retry_nonce;
	/* A.5 */
	const char *cc_key, *cc_iv, *cc_hp, *cc_ku, *cc_nonce, *cc_ciphertext, *cc_sample, *cc_mask,
		*cc_header, *cc_packet;
};

static const struct version_vectors v1 = {
	.version = TERN_VERSION_1,
	/* RFC 9001 §5.2 */
	.salt = "38762cf7f55934b34d179ae6a4c80cadccbb7f0a",
	.label_key = "quic key",
	.label_iv = "quic iv",
	.label_hp = "quic hp",
	.label_ku = "quic ku",
	.hkdf_label_key = "00100e746c7331332071756963206b657900",
	.hkdf_label_iv = "000c0d746c733133207175696320697600",
	.hkdf_label_hp = "00100d746c733133207175696320687000",
	.initial_secret = "7db5df06e7a69e432496adedb0085192"
			  "3595221596ae2ae9fb8115c1e9ed0a44",
	.client_secret = "c00cf151ca5be075ed0ebfb5c80323c4"
			 "2d6b7db67881289af4008f1f6c357aea",
	.client_key = "1f369613dd76d5467730efcbe3b1a22d",
	.client_iv = "fa044b2f42a3fd3b46fb255c",
	.client_hp = "9f50449e04a0e810283a1e9933adedd2",
	.server_secret = "3c199828fd139efd216c155ad844cc81"
			 "fb82fa8d7446fa7d78be803acdda951b",
	.server_key = "cf3a5331653c364c88f0f379b6067e37",
	.server_iv = "0ac1493ca1905853b0bba03e",
	.server_hp = "c206b8d9b9f0f37644430b490eeaa314",
	.client_header = "c300000001088394c8f03e5157080000449e00000002",
	.client_sample = "d1b1c98dd7689fb8ec11d242b123dc9b",
	.client_mask = "437b9aec36",
	.client_protected_header = "c000000001088394c8f03e5157080000449e7b9aec34",
	.client_packet =
		"c000000001088394c8f03e5157080000 449e7b9aec34d1b1c98dd7689fb8ec11"
		"d242b123dc9bd8bab936b47d92ec356c 0bab7df5976d27cd449f63300099f399"
		"1c260ec4c60d17b31f8429157bb35a12 82a643a8d2262cad67500cadb8e7378c"
		"8eb7539ec4d4905fed1bee1fc8aafba1 7c750e2c7ace01e6005f80fcb7df6212"
		"30c83711b39343fa028cea7f7fb5ff89 eac2308249a02252155e2347b63d58c5"
		"457afd84d05dfffdb20392844ae81215 4682e9cf012f9021a6f0be17ddd0c208"
		"4dce25ff9b06cde535d0f920a2db1bf3 62c23e596d11a4f5a6cf3948838a3aec"
		"4e15daf8500a6ef69ec4e3feb6b1d98e 610ac8b7ec3faf6ad760b7bad1db4ba3"
		"485e8a94dc250ae3fdb41ed15fb6a8e5 eba0fc3dd60bc8e30c5c4287e53805db"
		"059ae0648db2f64264ed5e39be2e20d8 2df566da8dd5998ccabdae053060ae6c"
		"7b4378e846d29f37ed7b4ea9ec5d82e7 961b7f25a9323851f681d582363aa5f8"
		"9937f5a67258bf63ad6f1a0b1d96dbd4 faddfcefc5266ba6611722395c906556"
		"be52afe3f565636ad1b17d508b73d874 3eeb524be22b3dcbc2c7468d54119c74"
		"68449a13d8e3b95811a198f3491de3e7 fe942b330407abf82a4ed7c1b311663a"
		"c69890f4157015853d91e923037c227a 33cdd5ec281ca3f79c44546b9d90ca00"
		"f064c99e3dd97911d39fe9c5d0b23a22 9a234cb36186c4819e8b9c5927726632"
		"291d6a418211cc2962e20fe47feb3edf 330f2c603a9d48c0fcb5699dbfe58964"
		"25c5bac4aee82e57a85aaf4e2513e4f0 5796b07ba2ee47d80506f8d2c25e50fd"
		"14de71e6c418559302f939b0e1abd576 f279c4b2e0feb85c1f28ff18f58891ff"
		"ef132eef2fa09346aee33c28eb130ff2 8f5b766953334113211996d20011a198"
		"e3fc433f9f2541010ae17c1bf202580f 6047472fb36857fe843b19f5984009dd"
		"c324044e847a4f4a0ab34f719595de37 252d6235365e9b84392b061085349d73"
		"203a4a13e96f5432ec0fd4a1ee65accd d5e3904df54c1da510b0ff20dcc0c77f"
		"cb2c0e0eb605cb0504db87632cf3d8b4 dae6e705769d1de354270123cb11450e"
		"fc60ac47683d7b8d0f811365565fd98c 4c8eb936bcab8d069fc33bd801b03ade"
		"a2e1fbc5aa463d08ca19896d2bf59a07 1b851e6c239052172f296bfb5e724047"
		"90a2181014f3b94a4e97d117b4381303 68cc39dbb2d198065ae3986547926cd2"
		"162f40a29f0c3c8745c0f50fba3852e5 66d44575c29d39a03f0cda721984b6f4"
		"40591f355e12d439ff150aab7613499d bd49adabc8676eef023b15b65bfc5ca0"
		"6948109f23f350db82123535eb8a7433 bdabcb909271a6ecbcb58b936a88cd4e"
		"8f2e6ff5800175f113253d8fa9ca8885 c2f552e657dc603f252e1a8e308f76f0"
		"be79e2fb8f5d5fbbe2e30ecadd220723 c8c0aea8078cdfcb3868263ff8f09400"
		"54da48781893a7e49ad5aff4af300cd8 04a6b6279ab3ff3afb64491c85194aab"
		"760d58a606654f9f4400e8b38591356f bf6425aca26dc85244259ff2b19c41b9"
		"f96f3ca9ec1dde434da7d2d392b905dd f3d1f9af93d1af5950bd493f5aa731b4"
		"056df31bd267b6b90a079831aaf579be 0a39013137aac6d404f518cfd4684064"
		"7e78bfe706ca4cf5e9c5453e9f7cfd2b 8b4c8d169a44e55c88d4a9a7f9474241"
		"e221af44860018ab0856972e194cd934",
	.server_header = "c1000000010008f067a5502a4262b50040750001",
	.server_sample = "2cd0991cd25b0aac406a5816b6394100",
	.server_mask = "2ec0d8356a",
	.server_protected_header = "cf000000010008f067a5502a4262b5004075c0d9",
	.server_packet =
		"cf000000010008f067a5502a4262b500 4075c0d95a482cd0991cd25b0aac406a"
		"5816b6394100f37a1c69797554780bb3 8cc5a99f5ede4cf73c3ec2493a1839b3"
		"dbcba3f6ea46c5b7684df3548e7ddeb9 c3bf9c73cc3f3bded74b562bfb19fb84"
		"022f8ef4cdd93795d77d06edbb7aaf2f 58891850abbdca3d20398c276456cbc4"
		"2158407dd074ee",
	.retry = "ff000000010008f067a5502a4262b574 6f6b656e04a265ba2eff4d829058fb3f"
		 "0f2496ba",
	/* RFC 9001 §5.8 */
	.retry_secret = "d9c9943e6101fd200021506bcc02814c73030f25c79d71ce876eca876e6fca8e",
	.retry_key = "be0c690b9f66575a1d766b54e368c84e",
	.retry_nonce = "461599d35d632bf2239825bb",
	.cc_key = "c6d98ff3441c3fe1b2182094f69caa2e"
		  "d4b716b65488960a7a984979fb23e1c8",
	.cc_iv = "e0459b3474bdd0e44a41c144",
	.cc_hp = "25a282b9e82f06f21f488917a4fc8f1b"
		 "73573685608597d0efcb076b0ab7a7a4",
	.cc_ku = "1223504755036d556342ee9361d25342"
		 "1a826c9ecdf3c7148684b36b714881f9",
	.cc_nonce = "e0459b3474bdd0e46d417eb0",
	.cc_ciphertext = "655e5cd55c41f69080575d7999c25a5bfb",
	.cc_sample = "5e5cd55c41f69080575d7999c25a5bfb",
	.cc_mask = "aefefe7d03",
	.cc_header = "4cfe4189",
	.cc_packet = "4cfe4189655e5cd55c41f69080575d7999c25a5bfb",
};

static const struct version_vectors v2 = {
	.version = TERN_VERSION_2,
	/* RFC 9369 §3.3.1 */
	.salt = "0dede3def700a6db819381be6e269dcbf9bd2ed9",
	.label_key = "quicv2 key",
	.label_iv = "quicv2 iv",
	.label_hp = "quicv2 hp",
	.label_ku = "quicv2 ku",
	.hkdf_label_key = "001010746c73313320717569637632206b657900",
	.hkdf_label_iv = "000c0f746c7331332071756963763220697600",
	.hkdf_label_hp = "00100f746c7331332071756963763220687000",
	.initial_secret = "2062e8b3cd8d52092614b8071d0aa1fb"
			  "7c2e3ac193f78b280e72d8f5751f6aba",
	.client_secret = "14ec9d6eb9fd7af83bf5a668bc17a7e2"
			 "83766aade7ecd0891f70f9ff7f4bf47b",
	.client_key = "8b1a0bc121284290a29e0971b5cd045d",
	.client_iv = "91f73e2351d8fa91660e909f",
	.client_hp = "45b95e15235d6f45a6b19cbcb0294ba9",
	.server_secret = "0263db1782731bf4588e7e4d93b74639"
			 "07cb8cd8200b5da55a8bd488eafc37c1",
	.server_key = "82db637861d55e1d011f19ea71d5d2a7",
	.server_iv = "dd13c276499c0249d3310652",
	.server_hp = "edf6d05c83121201b436e16877593c3a",
	.client_header = "d36b3343cf088394c8f03e5157080000449e00000002",
	.client_sample = "ffe67b6abcdb4298b485dd04de806071",
	.client_mask = "94a0c95e80",
	.client_protected_header = "d76b3343cf088394c8f03e5157080000449ea0c95e82",
	.client_packet =
		"d76b3343cf088394c8f03e5157080000 449ea0c95e82ffe67b6abcdb4298b485"
		"dd04de806071bf03dceebfa162e75d6c 96058bdbfb127cdfcbf903388e99ad04"
		"9f9a3dd4425ae4d0992cfff18ecf0fdb 5a842d09747052f17ac2053d21f57c5d"
		"250f2c4f0e0202b70785b7946e992e58 a59ac52dea6774d4f03b55545243cf1a"
		"12834e3f249a78d395e0d18f4d766004 f1a2674802a747eaa901c3f10cda5500"
		"cb9122faa9f1df66c392079a1b40f0de 1c6054196a11cbea40afb6ef5253cd68"
		"18f6625efce3b6def6ba7e4b37a40f77 32e093daa7d52190935b8da58976ff33"
		"12ae50b187c1433c0f028edcc4c2838b 6a9bfc226ca4b4530e7a4ccee1bfa2a3"
		"d396ae5a3fb512384b2fdd851f784a65 e03f2c4fbe11a53c7777c023462239dd"
		"6f7521a3f6c7d5dd3ec9b3f233773d4b 46d23cc375eb198c63301c21801f6520"
		"bcfb7966fc49b393f0061d974a2706df 8c4a9449f11d7f3d2dcbb90c6b877045"
		"636e7c0c0fe4eb0f697545460c806910 d2c355f1d253bc9d2452aaa549e27a1f"
		"ac7cf4ed77f322e8fa894b6a83810a34 b361901751a6f5eb65a0326e07de7c12"
		"16ccce2d0193f958bb3850a833f7ae43 2b65bc5a53975c155aa4bcb4f7b2c4e5"
		"4df16efaf6ddea94e2c50b4cd1dfe060 17e0e9d02900cffe1935e0491d77ffb4"
		"fdf85290fdd893d577b1131a610ef6a5 c32b2ee0293617a37cbb08b847741c3b"
		"8017c25ca9052ca1079d8b78aebd4787 6d330a30f6a8c6d61dd1ab5589329de7"
		"14d19d61370f8149748c72f132f0fc99 f34d766c6938597040d8f9e2bb522ff9"
		"9c63a344d6a2ae8aa8e51b7b90a4a806 105fcbca31506c446151adfeceb51b91"
		"abfe43960977c87471cf9ad4074d30e1 0d6a7f03c63bd5d4317f68ff325ba3bd"
		"80bf4dc8b52a0ba031758022eb025cdd 770b44d6d6cf0670f4e990b22347a7db"
		"848265e3e5eb72dfe8299ad7481a4083 22cac55786e52f633b2fb6b614eaed18"
		"d703dd84045a274ae8bfa73379661388 d6991fe39b0d93debb41700b41f90a15"
		"c4d526250235ddcd6776fc77bc97e7a4 17ebcb31600d01e57f32162a8560cacc"
		"7e27a096d37a1a86952ec71bd89a3e9a 30a2a26162984d7740f81193e8238e61"
		"f6b5b984d4d3dfa033c1bb7e4f0037fe bf406d91c0dccf32acf423cfa1e70710"
		"10d3f270121b493ce85054ef58bada42 310138fe081adb04e2bd901f2f13458b"
		"3d6758158197107c14ebb193230cd115 7380aa79cae1374a7c1e5bbcb80ee23e"
		"06ebfde206bfb0fcbc0edc4ebec30966 1bdd908d532eb0c6adc38b7ca7331dce"
		"8dfce39ab71e7c32d318d136b6100671 a1ae6a6600e3899f31f0eed19e3417d1"
		"34b90c9058f8632c798d4490da498730 7cba922d61c39805d072b589bd52fdf1"
		"e86215c2d54e6670e07383a27bbffb5a ddf47d66aa85a0c6f9f32e59d85a44dd"
		"5d3b22dc2be80919b490437ae4f36a0a e55edf1d0b5cb4e9a3ecabee93dfc6e3"
		"8d209d0fa6536d27a5d6fbb17641cde2 7525d61093f1b28072d111b2b4ae5f89"
		"d5974ee12e5cf7d5da4d6a31123041f3 3e61407e76cffcdcfd7e19ba58cf4b53"
		"6f4c4938ae79324dc402894b44faf8af bab35282ab659d13c93f70412e85cb19"
		"9a37ddec600545473cfb5a05e08d0b20 9973b2172b4d21fb69745a262ccde96b"
		"a18b2faa745b6fe189cf772a9f84cbfc",
	.server_header = "d16b3343cf0008f067a5502a4262b50040750001",
	.server_sample = "6f05d8a4398c47089698baeea26b91eb",
	.server_mask = "4dd92e91ea",
	.server_protected_header = "dc6b3343cf0008f067a5502a4262b5004075d92f",
	.server_packet =
		"dc6b3343cf0008f067a5502a4262b500 4075d92faaf16f05d8a4398c47089698"
		"baeea26b91eb761d9b89237bbf872630 17915358230035f7fd3945d88965cf17"
		"f9af6e16886c61bfc703106fbaf3cb4c fa52382dd16a393e42757507698075b2"
		"c984c707f0a0812d8cd5a6881eaf21ce da98f4bd23f6fe1a3e2c43edd9ce7ca8"
		"4bed8521e2e140",
	.retry = "cf6b3343cf0008f067a5502a4262b574 6f6b656ec8646ce8bfe33952d9555436"
		 "65dcc7b6",
	/* RFC 9369 §3.3.3 */
	.retry_secret = "c4dd2484d681aefa4ff4d69c2c20299984a765a5d3c31982f38fc74162155e9f",
	.retry_key = "8fb4b01b56ac48e260fbcbcead7ccc92",
	.retry_nonce = "d86969bc2d7c6d9990efb04a",
	.cc_key = "3bfcddd72bcf02541d7fa0dd1f5f9eee"
		  "a817e09a6963a0e6c7df0f9a1bab90f2",
	.cc_iv = "a6b5bc6ab7dafce30ffff5dd",
	.cc_hp = "d659760d2ba434a226fd37b35c69e2da"
		 "8211d10c4f12538787d65645d5d1b8e2",
	.cc_ku = "c69374c49e3d2a9466fa689e49d476db"
		 "5d0dfbc87d32ceeaa6343fd0ae4c7d88",
	.cc_nonce = "a6b5bc6ab7dafce328ff4a29",
	.cc_ciphertext = "0ae7b6b932bc27d786f4bc2bb20f2162ba",
	.cc_sample = "e7b6b932bc27d786f4bc2bb20f2162ba",
	.cc_mask = "97580e32bf",
	.cc_header = "5558b1c6",
	.cc_packet = "5558b1c60ae7b6b932bc27d786f4bc2bb20f2162ba",
};

/* ---- HKDF ------------------------------------------------------------ */

/* RFC 5869 Appendix A.1, Test Case 1 (SHA-256). */
Test(hkdf, rfc5869_test_case_1)
{
	uint8_t ikm[22], salt[13], info[10], prk[32], okm[42];
	cr_assert_eq(unhex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", ikm, sizeof(ikm)), 22);
	cr_assert_eq(unhex("000102030405060708090a0b0c", salt, sizeof(salt)), 13);
	cr_assert_eq(unhex("f0f1f2f3f4f5f6f7f8f9", info, sizeof(info)), 10);

	cr_assert_eq(tern_hkdf_extract(TERN_HASH_SHA256, salt, 13, ikm, 22, prk), 0);
	expect_hex(prk, 32, "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5", "PRK");
	cr_assert_eq(tern_hkdf_expand(TERN_HASH_SHA256, prk, 32, info, 10, okm, 42), 0);
	expect_hex(okm, 42,
		   "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
		   "OKM");
}

Test(hkdf, hash_lengths)
{
	cr_assert_eq(tern_hash_len(TERN_HASH_SHA256), 32);
	cr_assert_eq(tern_hash_len(TERN_HASH_SHA384), 48);
	cr_assert_eq(tern_hash_len((enum tern_hash)7), 0);
}

Test(hkdf, bad_arguments)
{
	uint8_t prk[48] = {1}, out[8];
	cr_assert_eq(tern_hkdf_extract((enum tern_hash)7, prk, 1, prk, 1, out), TERN_ERR_INVAL);
	cr_assert_eq(tern_hkdf_extract(TERN_HASH_SHA256, NULL, 1, prk, 1, out), TERN_ERR_INVAL);
	cr_assert_eq(tern_hkdf_extract(TERN_HASH_SHA256, prk, 1, NULL, 1, out), TERN_ERR_INVAL);
	cr_assert_eq(tern_hkdf_extract(TERN_HASH_SHA256, prk, 1, prk, 1, NULL), TERN_ERR_INVAL);
	cr_assert_eq(tern_hkdf_expand(TERN_HASH_SHA256, prk, 32, NULL, 0, out, 0), TERN_ERR_INVAL);
	cr_assert_eq(tern_hkdf_expand(TERN_HASH_SHA256, prk, 0, NULL, 0, out, 8), TERN_ERR_INVAL);
	cr_assert_eq(tern_hkdf_expand(TERN_HASH_SHA256, prk, 32, NULL, 3, out, 8), TERN_ERR_INVAL);
	/* RFC 5869 §2.3: L <= 255 * HashLen; the check comes before output. */
	cr_assert_eq(tern_hkdf_expand(TERN_HASH_SHA256, prk, 32, NULL, 0, out, 255 * 32 + 1),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_hkdf_expand_label(TERN_HASH_SHA256, prk, 32, "x", out, 70000),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_hkdf_expand_label(TERN_HASH_SHA256, prk, 32, NULL, out, 8), TERN_ERR_INVAL);
}

/* An empty IKM is legal (zero-length DCID) and differs from a 1-byte one. */
Test(hkdf, empty_ikm)
{
	uint8_t a[32], b[32], zero = 0;
	cr_assert_eq(tern_hkdf_extract(TERN_HASH_SHA256, &zero, 1, NULL, 0, a), 0);
	cr_assert_eq(tern_hkdf_extract(TERN_HASH_SHA256, &zero, 1, &zero, 1, b), 0);
	cr_assert(memcmp(a, b, 32) != 0);
}

static void check_label(uint16_t len, const char *label, const char *hex)
{
	uint8_t buf[TERN_HKDF_LABEL_MAX_SIZE];
	int n = tern_hkdf_label_encode(buf, sizeof(buf), len, label);
	cr_assert_gt(n, 0, "%s", label);
	expect_hex(buf, (size_t)n, hex, label);
}

/* The HkdfLabel bytes RFC 9001 A.1 and RFC 9369 A.1 print. */
Test(hkdf, label_bytes_rfc9001_a1)
{
	check_label(32, "client in", "00200f746c73313320636c69656e7420696e00");
	check_label(32, "server in", "00200f746c7331332073657276657220696e00");
	check_label(16, v1.label_key, v1.hkdf_label_key);
	check_label(12, v1.label_iv, v1.hkdf_label_iv);
	check_label(16, v1.label_hp, v1.hkdf_label_hp);
}

Test(hkdf, label_bytes_rfc9369_a1)
{
	check_label(16, v2.label_key, v2.hkdf_label_key);
	check_label(12, v2.label_iv, v2.hkdf_label_iv);
	check_label(16, v2.label_hp, v2.hkdf_label_hp);
}

Test(hkdf, label_limits)
{
	char label[251];
	uint8_t buf[TERN_HKDF_LABEL_MAX_SIZE];

	memset(label, 'a', 249);
	label[249] = '\0';
	/* 249 + "tls13 " = 255, the most opaque<7..255> holds. */
	cr_assert_eq(tern_hkdf_label_encode(buf, sizeof(buf), 16, label), TERN_HKDF_LABEL_MAX_SIZE);
	cr_assert_eq(buf[2], 255);
	cr_assert_eq(buf[TERN_HKDF_LABEL_MAX_SIZE - 1], 0);
	cr_assert_eq(tern_hkdf_label_encode(buf, TERN_HKDF_LABEL_MAX_SIZE - 1, 16, label),
		     TERN_ERR_NOBUF);
	label[249] = 'a';
	label[250] = '\0';
	cr_assert_eq(tern_hkdf_label_encode(buf, sizeof(buf), 16, label), TERN_ERR_INVAL);
	cr_assert_eq(tern_hkdf_label_encode(buf, 9, 16, "quic"), TERN_ERR_NOBUF);
	cr_assert_eq(tern_hkdf_label_encode(buf, 14, 16, "quic"), 14);
	cr_assert_eq(tern_hkdf_label_encode(NULL, 14, 16, "quic"), TERN_ERR_INVAL);
}

/* SHA-384 has no QUIC vector: check against wolfSSL's own TLS 1.3
 * HKDF-Expand-Label, an independent encoding of the same label. */
Test(hkdf, expand_label_sha384_matches_wolfssl_tls13)
{
	static const char *labels[] = {"quic key", "quic iv", "quic hp", "quic ku", "quicv2 ku"};
	static const size_t lens[] = {32, 12, 32, 48, 48};
	uint8_t secret[48], ours[48], theirs[48];
	for (size_t i = 0; i < sizeof(secret); i++)
		secret[i] = (uint8_t)(0xa0 + i);

	for (size_t i = 0; i < 5; i++) {
		cr_assert_eq(tern_hkdf_expand_label(TERN_HASH_SHA384, secret, 48, labels[i], ours,
						    lens[i]),
			     0);
		cr_assert_eq(wc_Tls13_HKDF_Expand_Label(theirs, (word32)lens[i], secret, 48,
							(const byte *)"tls13 ", 6,
							(const byte *)labels[i],
							(word32)strlen(labels[i]), NULL, 0, WC_SHA384),
			     0);
		cr_assert_arr_eq(ours, theirs, lens[i], "%s", labels[i]);
	}
}

Test(hkdf, ct_equal_and_wipe)
{
	uint8_t a[16], b[16];
	memset(a, 0x5a, sizeof(a));
	memcpy(b, a, sizeof(b));
	cr_assert_eq(tern_crypto_ct_equal(a, b, 16), 1);
	cr_assert_eq(tern_crypto_ct_equal(a, b, 0), 1);
	for (size_t i = 0; i < 16; i++) {
		for (int bit = 0; bit < 8; bit++) {
			b[i] ^= (uint8_t)(1 << bit);
			cr_assert_eq(tern_crypto_ct_equal(a, b, 16), 0, "byte %zu bit %d", i, bit);
			b[i] ^= (uint8_t)(1 << bit);
		}
	}
	tern_crypto_wipe(a, sizeof(a));
	for (size_t i = 0; i < 16; i++)
		cr_assert_eq(a[i], 0);
	tern_crypto_wipe(NULL, 4); /* must not crash */
}

/* ---- suites ------------------------------------------------------------ */

Test(suite, tls_mapping_and_sizes)
{
	cr_assert_eq(tern_aead_suite_from_tls(0x1301), TERN_AEAD_AES_128_GCM);
	cr_assert_eq(tern_aead_suite_from_tls(0x1302), TERN_AEAD_AES_256_GCM);
	cr_assert_eq(tern_aead_suite_from_tls(0x1303), TERN_AEAD_CHACHA20_POLY1305);
	cr_assert_eq(tern_aead_suite_from_tls(0x1304), TERN_ERR_INVAL); /* AES-128-CCM */
	cr_assert_eq(tern_aead_suite_from_tls(0x0000), TERN_ERR_INVAL);
	cr_assert_eq(tern_aead_key_len(TERN_AEAD_AES_128_GCM), 16);
	cr_assert_eq(tern_aead_key_len(TERN_AEAD_AES_256_GCM), 32);
	cr_assert_eq(tern_aead_key_len(TERN_AEAD_CHACHA20_POLY1305), 32);
	cr_assert_eq(tern_aead_key_len((enum tern_aead_suite)9), 0);
	cr_assert_eq(tern_aead_suite_hash(TERN_AEAD_AES_128_GCM), TERN_HASH_SHA256);
	cr_assert_eq(tern_aead_suite_hash(TERN_AEAD_AES_256_GCM), TERN_HASH_SHA384);
	cr_assert_eq(tern_aead_suite_hash(TERN_AEAD_CHACHA20_POLY1305), TERN_HASH_SHA256);
}

/* ---- Appendix A, both versions ----------------------------------------- */

static size_t dcid_get(uint8_t dcid[8])
{
	return unhex(rfc_dcid, dcid, 8);
}

/* Checks the AEAD and header-protection state prepared in k against
 * wolfCrypt keyed directly with the RFC's key and hp, so every derived
 * value of A.1 is seen to reach the cipher, not only the IV. */
static void check_keys_reach_cipher(struct tern_crypto_keys *k, const char *key_hex,
				    const char *hp_hex)
{
	uint8_t key[32], hp[32], block[48] = {0}, ours[48] = {0}, tag[16], our_tag[16];
	uint8_t mask[TERN_HP_MASK_LEN], sample[16];
	size_t klen = unhex(key_hex, key, sizeof(key));
	size_t hlen = unhex(hp_hex, hp, sizeof(hp));
	Aes aes;

	/* pn 0: the nonce is the IV itself (RFC 9001 §5.3). */
	cr_assert_eq(wc_AesInit(&aes, NULL, INVALID_DEVID), 0);
	cr_assert_eq(wc_AesGcmSetKey(&aes, key, (word32)klen), 0);
	cr_assert_eq(wc_AesGcmEncrypt(&aes, block, block, sizeof(block), k->iv, 12, tag, 16,
				      (const byte *)"aad", 3),
		     0);
	wc_AesFree(&aes);
	cr_assert_eq(tern_aead_seal(k, 0, (const uint8_t *)"aad", 3, ours, sizeof(ours), our_tag), 0);
	cr_assert_arr_eq(ours, block, sizeof(block));
	cr_assert_arr_eq(our_tag, tag, 16);

	for (size_t i = 0; i < 16; i++)
		sample[i] = (uint8_t)(i * 17 + 3);
	cr_assert_eq(wc_AesInit(&aes, NULL, INVALID_DEVID), 0);
	cr_assert_eq(wc_AesSetKey(&aes, hp, (word32)hlen, NULL, AES_ENCRYPTION), 0);
	cr_assert_eq(wc_AesEncryptDirect(&aes, block, sample), 0);
	wc_AesFree(&aes);
	cr_assert_eq(tern_hp_mask(k, sample, mask), 0);
	cr_assert_arr_eq(mask, block, TERN_HP_MASK_LEN);
}

static void check_a1(const struct version_vectors *V)
{
	uint8_t dcid[8], salt[20], secret[32], cs[32], ss[32], out[32];
	struct tern_crypto_keys c, s;
	size_t dl = dcid_get(dcid);

	cr_assert_eq(unhex(V->salt, salt, sizeof(salt)), 20);
	cr_assert_eq(tern_hkdf_extract(TERN_HASH_SHA256, salt, 20, dcid, dl, secret), 0);
	expect_hex(secret, 32, V->initial_secret, "initial_secret");

	cr_assert_eq(tern_initial_secrets(V->version, dcid, dl, cs, ss), 0);
	expect_hex(cs, 32, V->client_secret, "client_initial_secret");
	expect_hex(ss, 32, V->server_secret, "server_initial_secret");

	cr_assert_eq(tern_hkdf_expand_label(TERN_HASH_SHA256, cs, 32, V->label_key, out, 16), 0);
	expect_hex(out, 16, V->client_key, "client key");
	cr_assert_eq(tern_hkdf_expand_label(TERN_HASH_SHA256, cs, 32, V->label_iv, out, 12), 0);
	expect_hex(out, 12, V->client_iv, "client iv");
	cr_assert_eq(tern_hkdf_expand_label(TERN_HASH_SHA256, cs, 32, V->label_hp, out, 16), 0);
	expect_hex(out, 16, V->client_hp, "client hp");
	cr_assert_eq(tern_hkdf_expand_label(TERN_HASH_SHA256, ss, 32, V->label_key, out, 16), 0);
	expect_hex(out, 16, V->server_key, "server key");
	cr_assert_eq(tern_hkdf_expand_label(TERN_HASH_SHA256, ss, 32, V->label_iv, out, 12), 0);
	expect_hex(out, 12, V->server_iv, "server iv");
	cr_assert_eq(tern_hkdf_expand_label(TERN_HASH_SHA256, ss, 32, V->label_hp, out, 16), 0);
	expect_hex(out, 16, V->server_hp, "server hp");

	cr_assert_eq(tern_initial_keys_init(V->version, dcid, dl, &c, &s), 0);
	cr_assert_eq(c.suite, TERN_AEAD_AES_128_GCM);
	cr_assert_eq(c.version, V->version);
	expect_hex(c.iv, 12, V->client_iv, "client keys iv");
	expect_hex(s.iv, 12, V->server_iv, "server keys iv");
	check_keys_reach_cipher(&c, V->client_key, V->client_hp);
	check_keys_reach_cipher(&s, V->server_key, V->server_hp);

	/* The printed sample -> mask steps of A.2 and A.3. */
	uint8_t sample[16], mask[TERN_HP_MASK_LEN];
	cr_assert_eq(unhex(V->client_sample, sample, 16), 16);
	cr_assert_eq(tern_hp_mask(&c, sample, mask), 0);
	expect_hex(mask, 5, V->client_mask, "client mask");
	cr_assert_eq(unhex(V->server_sample, sample, 16), 16);
	cr_assert_eq(tern_hp_mask(&s, sample, mask), 0);
	expect_hex(mask, 5, V->server_mask, "server mask");

	tern_crypto_keys_clear(&c);
	tern_crypto_keys_clear(&s);
}

Test(rfc9001, a1_keys) { check_a1(&v1); }
Test(rfc9369, a1_keys) { check_a1(&v2); }

#define CLIENT_PKT_LEN 1200
#define CLIENT_HDR_LEN 22
#define CLIENT_PAYLOAD_LEN 1162
#define CLIENT_PN_OFFSET 18

/* The unprotected client Initial: header, CRYPTO frame, PADDING to 1162
 * bytes of payload (the tag's 16 bytes are left for the seal). */
static void client_initial_plain(const struct version_vectors *V, uint8_t *pkt)
{
	memset(pkt, 0, CLIENT_PKT_LEN);
	cr_assert_eq(unhex(V->client_header, pkt, CLIENT_HDR_LEN), CLIENT_HDR_LEN);
	/* Length field 0x449e = 1182 = 4-byte PN + 1162 + 16-byte tag. */
	cr_assert_eq(tern_get_u16(pkt + 16) & 0x3fff, 4 + CLIENT_PAYLOAD_LEN + 16);
	cr_assert_eq(unhex(client_crypto_frame, pkt + CLIENT_HDR_LEN, CLIENT_PAYLOAD_LEN), 245);
}

static void check_a2(const struct version_vectors *V)
{
	uint8_t dcid[8], pkt[CLIENT_PKT_LEN], plain[CLIENT_PKT_LEN];
	struct tern_crypto_keys c, s;
	size_t dl = dcid_get(dcid), pn_len = 0;

	cr_assert_eq(tern_initial_keys_init(V->version, dcid, dl, &c, &s), 0);
	client_initial_plain(V, plain);
	memcpy(pkt, plain, sizeof(pkt));

	cr_assert_eq(tern_aead_seal(&c, 2, pkt, CLIENT_HDR_LEN, pkt + CLIENT_HDR_LEN,
				    CLIENT_PAYLOAD_LEN, pkt + CLIENT_HDR_LEN + CLIENT_PAYLOAD_LEN),
		     0);
	expect_hex(pkt + CLIENT_PN_OFFSET + 4, 16, V->client_sample, "client sample");
	cr_assert_eq(tern_hp_protect(&c, pkt, sizeof(pkt), CLIENT_PN_OFFSET, 4), 0);
	expect_hex(pkt, CLIENT_HDR_LEN, V->client_protected_header, "client protected header");
	expect_hex(pkt, sizeof(pkt), V->client_packet, "client Initial");

	/* The server's side: the RFC's bytes, unprotected and opened. */
	cr_assert_eq(unhex(V->client_packet, pkt, sizeof(pkt)), CLIENT_PKT_LEN);
	cr_assert_eq(tern_hp_unprotect(&c, pkt, sizeof(pkt), CLIENT_PN_OFFSET, &pn_len), 0);
	cr_assert_eq(pn_len, 4);
	cr_assert_arr_eq(pkt, plain, CLIENT_HDR_LEN);
	cr_assert_eq(tern_get_u32(pkt + CLIENT_PN_OFFSET), 2);
	cr_assert_eq(tern_aead_open(&c, 2, pkt, CLIENT_HDR_LEN, pkt + CLIENT_HDR_LEN,
				    CLIENT_PAYLOAD_LEN, pkt + CLIENT_HDR_LEN + CLIENT_PAYLOAD_LEN),
		     0);
	cr_assert_arr_eq(pkt, plain, CLIENT_HDR_LEN + CLIENT_PAYLOAD_LEN);

	/* The server's keys do not open the client's packet. */
	cr_assert_eq(unhex(V->client_packet, pkt, sizeof(pkt)), CLIENT_PKT_LEN);
	cr_assert_eq(tern_hp_unprotect(&c, pkt, sizeof(pkt), CLIENT_PN_OFFSET, &pn_len), 0);
	cr_assert_eq(tern_aead_open(&s, 2, pkt, CLIENT_HDR_LEN, pkt + CLIENT_HDR_LEN,
				    CLIENT_PAYLOAD_LEN, pkt + CLIENT_HDR_LEN + CLIENT_PAYLOAD_LEN),
		     TERN_ERR_DECRYPT);
	tern_crypto_keys_clear(&c);
	tern_crypto_keys_clear(&s);
}

Test(rfc9001, a2_client_initial) { check_a2(&v1); }
Test(rfc9369, a2_client_initial) { check_a2(&v2); }

#define SERVER_HDR_LEN 20
#define SERVER_PAYLOAD_LEN 99
#define SERVER_PKT_LEN (SERVER_HDR_LEN + SERVER_PAYLOAD_LEN + 16)
#define SERVER_PN_OFFSET 18

static void check_a3(const struct version_vectors *V)
{
	uint8_t dcid[8], pkt[SERVER_PKT_LEN], plain[SERVER_PKT_LEN];
	struct tern_crypto_keys c, s;
	size_t dl = dcid_get(dcid), pn_len = 0;

	cr_assert_eq(tern_initial_keys_init(V->version, dcid, dl, &c, &s), 0);
	memset(plain, 0, sizeof(plain));
	cr_assert_eq(unhex(V->server_header, plain, SERVER_HDR_LEN), SERVER_HDR_LEN);
	cr_assert_eq(unhex(server_payload, plain + SERVER_HDR_LEN, SERVER_PAYLOAD_LEN),
		     SERVER_PAYLOAD_LEN);
	/* Length field 0x4075 = 117 = 2-byte PN + 99 + 16. */
	cr_assert_eq(tern_get_u16(plain + 16) & 0x3fff, 2 + SERVER_PAYLOAD_LEN + 16);
	memcpy(pkt, plain, sizeof(pkt));

	cr_assert_eq(tern_aead_seal(&s, 1, pkt, SERVER_HDR_LEN, pkt + SERVER_HDR_LEN,
				    SERVER_PAYLOAD_LEN, pkt + SERVER_HDR_LEN + SERVER_PAYLOAD_LEN),
		     0);
	/* RFC 9001 §5.4.2: 2-byte PN, so the sample starts at the third
	 * protected byte. */
	expect_hex(pkt + SERVER_PN_OFFSET + 4, 16, V->server_sample, "server sample");
	cr_assert_eq(tern_hp_protect(&s, pkt, sizeof(pkt), SERVER_PN_OFFSET, 2), 0);
	expect_hex(pkt, SERVER_HDR_LEN, V->server_protected_header, "server protected header");
	expect_hex(pkt, sizeof(pkt), V->server_packet, "server Initial");

	cr_assert_eq(unhex(V->server_packet, pkt, sizeof(pkt)), SERVER_PKT_LEN);
	cr_assert_eq(tern_hp_unprotect(&s, pkt, sizeof(pkt), SERVER_PN_OFFSET, &pn_len), 0);
	cr_assert_eq(pn_len, 2);
	cr_assert_arr_eq(pkt, plain, SERVER_HDR_LEN);
	cr_assert_eq(tern_aead_open(&s, 1, pkt, SERVER_HDR_LEN, pkt + SERVER_HDR_LEN,
				    SERVER_PAYLOAD_LEN, pkt + SERVER_HDR_LEN + SERVER_PAYLOAD_LEN),
		     0);
	cr_assert_arr_eq(pkt, plain, SERVER_HDR_LEN + SERVER_PAYLOAD_LEN);
	tern_crypto_keys_clear(&c);
	tern_crypto_keys_clear(&s);
}

Test(rfc9001, a3_server_initial) { check_a3(&v1); }
Test(rfc9369, a3_server_initial) { check_a3(&v2); }

static void check_a4(const struct version_vectors *V, uint32_t other_version)
{
	uint8_t dcid[8], pkt[64], tag[16], secret[32], out[16];
	size_t dl = dcid_get(dcid);
	size_t len = unhex(V->retry, pkt, sizeof(pkt));

	cr_assert_eq(len, 36);
	cr_assert_eq(tern_retry_tag_compute(V->version, dcid, dl, pkt, len - 16, tag), 0);
	cr_assert_arr_eq(tag, pkt + len - 16, 16);
	cr_assert_eq(tern_retry_tag_verify(V->version, dcid, dl, pkt, len), 0);

	/* The fixed key and nonce are the printed secret's "quic key"/"quic
	 * iv" (or v2's) expansions. */
	cr_assert_eq(unhex(V->retry_secret, secret, sizeof(secret)), 32);
	cr_assert_eq(tern_hkdf_expand_label(TERN_HASH_SHA256, secret, 32, V->label_key, out, 16), 0);
	expect_hex(out, 16, V->retry_key, "retry key");
	cr_assert_eq(tern_hkdf_expand_label(TERN_HASH_SHA256, secret, 32, V->label_iv, out, 12), 0);
	expect_hex(out, 12, V->retry_nonce, "retry nonce");

	/* Any changed byte, of the packet or of the ODCID, fails. */
	for (size_t i = 0; i < len; i++) {
		pkt[i] ^= 0x40;
		cr_assert_eq(tern_retry_tag_verify(V->version, dcid, dl, pkt, len), TERN_ERR_DECRYPT,
			     "byte %zu", i);
		pkt[i] ^= 0x40;
	}
	for (size_t i = 0; i < dl; i++) {
		dcid[i] ^= 1;
		cr_assert_eq(tern_retry_tag_verify(V->version, dcid, dl, pkt, len), TERN_ERR_DECRYPT);
		dcid[i] ^= 1;
	}
	cr_assert_eq(tern_retry_tag_verify(V->version, dcid, dl - 1, pkt, len), TERN_ERR_DECRYPT);
	cr_assert_eq(tern_retry_tag_verify(V->version, dcid, dl, pkt, len - 1), TERN_ERR_DECRYPT);
	/* The other version's key does not authenticate it. */
	cr_assert_eq(tern_retry_tag_verify(other_version, dcid, dl, pkt, len), TERN_ERR_DECRYPT);
	cr_assert_eq(tern_retry_tag_verify(V->version, dcid, dl, pkt, len), 0);
}

Test(rfc9001, a4_retry) { check_a4(&v1, TERN_VERSION_2); }
Test(rfc9369, a4_retry) { check_a4(&v2, TERN_VERSION_1); }

#define CC_PN UINT64_C(654360564)

static void check_a5(const struct version_vectors *V)
{
	uint8_t secret[32], out[32], pkt[21], plain[21], nonce[12], mask[TERN_HP_MASK_LEN];
	struct tern_crypto_keys k;
	size_t pn_len = 0;

	cr_assert_eq(unhex(chacha_secret, secret, sizeof(secret)), 32);
	cr_assert_eq(tern_hkdf_expand_label(TERN_HASH_SHA256, secret, 32, V->label_key, out, 32), 0);
	expect_hex(out, 32, V->cc_key, "chacha key");
	cr_assert_eq(tern_hkdf_expand_label(TERN_HASH_SHA256, secret, 32, V->label_iv, out, 12), 0);
	expect_hex(out, 12, V->cc_iv, "chacha iv");
	cr_assert_eq(tern_hkdf_expand_label(TERN_HASH_SHA256, secret, 32, V->label_hp, out, 32), 0);
	expect_hex(out, 32, V->cc_hp, "chacha hp");

	cr_assert_eq(tern_crypto_keys_init(&k, V->version, TERN_AEAD_CHACHA20_POLY1305, secret, 32), 0);
	expect_hex(k.iv, 12, V->cc_iv, "keys iv");
	/* The nonce the RFC prints is iv XOR the left-padded pn. */
	memcpy(nonce, k.iv, 12);
	for (int i = 0; i < 8; i++)
		nonce[11 - i] ^= (uint8_t)(CC_PN >> (8 * i));
	expect_hex(nonce, 12, V->cc_nonce, "nonce");

	memset(plain, 0, sizeof(plain));
	cr_assert_eq(unhex("4200bff4", plain, 4), 4);
	plain[4] = 0x01; /* PING */
	memcpy(pkt, plain, sizeof(pkt));
	cr_assert_eq(tern_aead_seal(&k, CC_PN, pkt, 4, pkt + 4, 1, pkt + 5), 0);
	expect_hex(pkt + 4, 17, V->cc_ciphertext, "chacha ciphertext");
	/* One byte is skipped to reach the sample: pn_offset 1 + 4. */
	expect_hex(pkt + 5, 16, V->cc_sample, "chacha sample");
	cr_assert_eq(tern_hp_mask(&k, pkt + 5, mask), 0);
	expect_hex(mask, 5, V->cc_mask, "chacha mask");
	cr_assert_eq(tern_hp_protect(&k, pkt, sizeof(pkt), 1, 3), 0);
	expect_hex(pkt, 4, V->cc_header, "chacha header");
	expect_hex(pkt, sizeof(pkt), V->cc_packet, "chacha packet");

	cr_assert_eq(tern_hp_unprotect(&k, pkt, sizeof(pkt), 1, &pn_len), 0);
	cr_assert_eq(pn_len, 3);
	cr_assert_arr_eq(pkt, plain, 4);
	cr_assert_eq(tern_aead_open(&k, CC_PN, pkt, 4, pkt + 4, 1, pkt + 5), 0);
	cr_assert_eq(pkt[4], 0x01);

	/* ku: the key-update secret (RFC 9001 §6.1). */
	cr_assert_eq(tern_crypto_secret_update(V->version, TERN_HASH_SHA256, secret, 32), 0);
	expect_hex(secret, 32, V->cc_ku, "ku");
	tern_crypto_keys_clear(&k);
}

Test(rfc9001, a5_chacha20_short_header) { check_a5(&v1); }
Test(rfc9369, a5_chacha20_short_header) { check_a5(&v2); }

/* ---- tampering ----------------------------------------------------------- */

/* Flips one bit of every byte in turn, AAD (header), ciphertext and tag
 * alike, and expects each to fail authentication. */
static void check_every_byte_tampered(struct tern_crypto_keys *k, uint64_t pn, const uint8_t *pkt,
				      size_t hdr_len, size_t payload_len)
{
	uint8_t buf[CLIENT_PKT_LEN];
	size_t len = hdr_len + payload_len + TERN_AEAD_TAG_LEN;

	cr_assert_leq(len, sizeof(buf));
	for (size_t i = 0; i < len; i++) {
		memcpy(buf, pkt, len);
		buf[i] ^= (uint8_t)(1u << (i % 8));
		cr_assert_eq(tern_aead_open(k, pn, buf, hdr_len, buf + hdr_len, payload_len,
					    buf + hdr_len + payload_len),
			     TERN_ERR_DECRYPT, "byte %zu", i);
	}
	/* And the wrong packet number (a different nonce) fails too. */
	memcpy(buf, pkt, len);
	cr_assert_eq(tern_aead_open(k, pn + 1, buf, hdr_len, buf + hdr_len, payload_len,
				    buf + hdr_len + payload_len),
		     TERN_ERR_DECRYPT);
	memcpy(buf, pkt, len);
	cr_assert_eq(tern_aead_open(k, pn, buf, hdr_len, buf + hdr_len, payload_len,
				    buf + hdr_len + payload_len),
		     0);
}

Test(aead, tamper_aes128gcm_client_initial)
{
	uint8_t dcid[8], pkt[CLIENT_PKT_LEN];
	struct tern_crypto_keys c, s;
	size_t pn_len;

	cr_assert_eq(tern_initial_keys_init(TERN_VERSION_1, dcid, dcid_get(dcid), &c, &s), 0);
	cr_assert_eq(unhex(v1.client_packet, pkt, sizeof(pkt)), CLIENT_PKT_LEN);
	cr_assert_eq(tern_hp_unprotect(&c, pkt, sizeof(pkt), CLIENT_PN_OFFSET, &pn_len), 0);
	check_every_byte_tampered(&c, 2, pkt, CLIENT_HDR_LEN, CLIENT_PAYLOAD_LEN);
	tern_crypto_keys_clear(&c);
	tern_crypto_keys_clear(&s);
}

Test(aead, tamper_chacha20_short_header)
{
	uint8_t secret[32], pkt[21];
	struct tern_crypto_keys k;
	size_t pn_len;

	unhex(chacha_secret, secret, sizeof(secret));
	cr_assert_eq(tern_crypto_keys_init(&k, TERN_VERSION_1, TERN_AEAD_CHACHA20_POLY1305, secret, 32),
		     0);
	cr_assert_eq(unhex(v1.cc_packet, pkt, sizeof(pkt)), 21);
	cr_assert_eq(tern_hp_unprotect(&k, pkt, sizeof(pkt), 1, &pn_len), 0);
	check_every_byte_tampered(&k, CC_PN, pkt, 4, 1);
	tern_crypto_keys_clear(&k);
}

/* The tag is never written by a failed open, so a caller can still
 * compare it with stateless reset tokens (RFC 9000 §10.3.1). */
Test(aead, failed_open_leaves_tag)
{
	uint8_t secret[32] = {7}, pkt[64] = {0}, tag_copy[16];
	struct tern_crypto_keys k;

	cr_assert_eq(tern_crypto_keys_init(&k, TERN_VERSION_1, TERN_AEAD_AES_128_GCM, secret, 32), 0);
	cr_assert_eq(tern_aead_seal(&k, 9, pkt, 8, pkt + 8, 40, pkt + 48), 0);
	pkt[20] ^= 1;
	memcpy(tag_copy, pkt + 48, 16);
	cr_assert_eq(tern_aead_open(&k, 9, pkt, 8, pkt + 8, 40, pkt + 48), TERN_ERR_DECRYPT);
	cr_assert_arr_eq(pkt + 48, tag_copy, 16);
	tern_crypto_keys_clear(&k);
}

/* ---- AEAD round trips and edges ------------------------------------------ */

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 31);
}

static void round_trip(enum tern_aead_suite suite, uint32_t version, size_t secret_len)
{
	uint8_t secret[48], plain[300], pkt[300];
	struct tern_crypto_keys tx, rx;
	uint64_t pns[] = {0, 1, 255, 256, 0x3fffffff, TERN_VARINT_MAX};

	fill(secret, sizeof(secret), 0x11);
	fill(plain, sizeof(plain), 0x42);
	cr_assert_eq(tern_crypto_keys_init(&tx, version, suite, secret, secret_len), 0);
	cr_assert_eq(tern_crypto_keys_init(&rx, version, suite, secret, secret_len), 0);
	for (size_t i = 0; i < sizeof(pns) / sizeof(pns[0]); i++) {
		memcpy(pkt, plain, sizeof(pkt));
		cr_assert_eq(tern_aead_seal(&tx, pns[i], pkt, 20, pkt + 20, 264, pkt + 284), 0);
		cr_assert(memcmp(pkt + 20, plain + 20, 264) != 0, "payload not encrypted");
		cr_assert_arr_eq(pkt, plain, 20); /* the AAD is not touched */
		cr_assert_eq(tern_hp_protect(&tx, pkt, sizeof(pkt), 17, 3), 0);
		size_t pn_len = 0;
		cr_assert_eq(tern_hp_unprotect(&rx, pkt, sizeof(pkt), 17, &pn_len), 0);
		cr_assert_eq(pn_len, (size_t)(plain[0] & 3) + 1);
		cr_assert_arr_eq(pkt, plain, 20);
		cr_assert_eq(tern_aead_open(&rx, pns[i], pkt, 20, pkt + 20, 264, pkt + 284), 0);
		cr_assert_arr_eq(pkt, plain, 284);
	}
	tern_crypto_keys_clear(&tx);
	tern_crypto_keys_clear(&rx);
}

Test(aead, round_trip_every_suite_and_version)
{
	/* plain[0] = 0x42: a short header, pn_len 3. */
	round_trip(TERN_AEAD_AES_128_GCM, TERN_VERSION_1, 32);
	round_trip(TERN_AEAD_AES_256_GCM, TERN_VERSION_1, 48);
	round_trip(TERN_AEAD_CHACHA20_POLY1305, TERN_VERSION_1, 32);
	round_trip(TERN_AEAD_AES_128_GCM, TERN_VERSION_2, 32);
	round_trip(TERN_AEAD_AES_256_GCM, TERN_VERSION_2, 48);
	round_trip(TERN_AEAD_CHACHA20_POLY1305, TERN_VERSION_2, 32);
}

/* AES-256-GCM keys come from a SHA-384 secret: check the 32-byte key and
 * hp reach the cipher as HKDF-Expand-Label(SHA-384) derives them. */
Test(aead, aes256gcm_derivation_reaches_cipher)
{
	uint8_t secret[48], key[32], hp[32];
	char key_hex[65], hp_hex[65];
	struct tern_crypto_keys k;

	fill(secret, sizeof(secret), 0x99);
	cr_assert_eq(tern_crypto_keys_init(&k, TERN_VERSION_1, TERN_AEAD_AES_256_GCM, secret, 48), 0);
	cr_assert_eq(tern_hkdf_expand_label(TERN_HASH_SHA384, secret, 48, "quic key", key, 32), 0);
	cr_assert_eq(tern_hkdf_expand_label(TERN_HASH_SHA384, secret, 48, "quic hp", hp, 32), 0);
	for (int i = 0; i < 32; i++) {
		snprintf(key_hex + 2 * i, 3, "%02x", key[i]);
		snprintf(hp_hex + 2 * i, 3, "%02x", hp[i]);
	}
	check_keys_reach_cipher(&k, key_hex, hp_hex);
	tern_crypto_keys_clear(&k);
}

Test(aead, empty_payload_and_aad)
{
	uint8_t secret[32] = {1}, tag[16], tag2[16];
	struct tern_crypto_keys k;

	for (int s = 0; s < 3; s++) {
		cr_assert_eq(tern_crypto_keys_init(&k, TERN_VERSION_1, (enum tern_aead_suite)s, secret,
						   s == TERN_AEAD_AES_256_GCM ? 48 : 32),
			     0);
		cr_assert_eq(tern_aead_seal(&k, 5, NULL, 0, NULL, 0, tag), 0);
		cr_assert_eq(tern_aead_open(&k, 5, NULL, 0, NULL, 0, tag), 0);
		cr_assert_eq(tern_aead_seal(&k, 6, NULL, 0, NULL, 0, tag2), 0);
		cr_assert(memcmp(tag, tag2, 16) != 0);
		tag[15] ^= 0x80;
		cr_assert_eq(tern_aead_open(&k, 5, NULL, 0, NULL, 0, tag), TERN_ERR_DECRYPT);
		tern_crypto_keys_clear(&k);
	}
}

/* The nonce takes all 62 bits of the packet number: PNs that differ only
 * in high bits give different ciphertexts (RFC 9001 §5.3). */
Test(aead, nonce_uses_high_pn_bits)
{
	uint8_t secret[32] = {3}, a[32] = {0}, b[32] = {0}, tag[16];
	struct tern_crypto_keys k;

	cr_assert_eq(tern_crypto_keys_init(&k, TERN_VERSION_1, TERN_AEAD_AES_128_GCM, secret, 32), 0);
	cr_assert_eq(tern_aead_seal(&k, 1, NULL, 0, a, 16, a + 16), 0);
	cr_assert_eq(tern_aead_seal(&k, 1 | (UINT64_C(1) << 61), NULL, 0, b, 16, b + 16), 0);
	cr_assert(memcmp(a, b, 16) != 0);
	memcpy(tag, b + 16, 16);
	cr_assert_eq(tern_aead_open(&k, 1, NULL, 0, b, 16, tag), TERN_ERR_DECRYPT);
	tern_crypto_keys_clear(&k);
}

Test(aead, bad_arguments_and_state)
{
	uint8_t secret[48] = {0}, buf[64] = {0};
	struct tern_crypto_keys k;

	memset(&k, 0, sizeof(k));
	cr_assert_eq(tern_aead_seal(&k, 0, buf, 8, buf + 8, 8, buf + 16), TERN_ERR_STATE);
	cr_assert_eq(tern_aead_open(&k, 0, buf, 8, buf + 8, 8, buf + 16), TERN_ERR_STATE);
	cr_assert_eq(tern_aead_seal(NULL, 0, buf, 8, buf + 8, 8, buf + 16), TERN_ERR_INVAL);

	cr_assert_eq(tern_crypto_keys_init(&k, 0xff00001d, TERN_AEAD_AES_128_GCM, secret, 32),
		     TERN_ERR_VERSION);
	cr_assert_eq(tern_crypto_keys_init(&k, TERN_VERSION_1, TERN_AEAD_AES_128_GCM, secret, 48),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_crypto_keys_init(&k, TERN_VERSION_1, TERN_AEAD_AES_256_GCM, secret, 32),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_crypto_keys_init(&k, TERN_VERSION_1, (enum tern_aead_suite)3, secret, 32),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_crypto_keys_init(&k, TERN_VERSION_1, TERN_AEAD_AES_128_GCM, NULL, 32),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_crypto_keys_init(NULL, TERN_VERSION_1, TERN_AEAD_AES_128_GCM, secret, 32),
		     TERN_ERR_INVAL);
	/* A failed init leaves nothing usable behind. */
	cr_assert_eq(k.has_aead, 0);
	cr_assert_eq(k.has_hp, 0);

	cr_assert_eq(tern_crypto_keys_init(&k, TERN_VERSION_1, TERN_AEAD_AES_128_GCM, secret, 32), 0);
	cr_assert_eq(tern_aead_seal(&k, 0, NULL, 8, buf + 8, 8, buf + 16), TERN_ERR_INVAL);
	cr_assert_eq(tern_aead_seal(&k, 0, buf, 8, NULL, 8, buf + 16), TERN_ERR_INVAL);
	cr_assert_eq(tern_aead_seal(&k, 0, buf, 8, buf + 8, 8, NULL), TERN_ERR_INVAL);
	cr_assert_eq(tern_aead_open(&k, 0, buf, 8, buf + 8, 8, NULL), TERN_ERR_INVAL);
	tern_crypto_keys_clear(&k);
	cr_assert_eq(tern_aead_seal(&k, 0, buf, 8, buf + 8, 8, buf + 16), TERN_ERR_STATE);
	tern_crypto_keys_clear(&k); /* twice is fine */
	tern_crypto_keys_clear(NULL);
}

Test(aead, clear_wipes_everything)
{
	struct tern_crypto_keys k;
	static const struct tern_crypto_keys zero;

	for (int s = 0; s < 3; s++) {
		uint8_t sec[48] = {9};
		cr_assert_eq(tern_crypto_keys_init(&k, TERN_VERSION_2, (enum tern_aead_suite)s, sec,
						   s == TERN_AEAD_AES_256_GCM ? 48 : 32),
			     0);
		tern_crypto_keys_clear(&k);
		cr_assert_eq(memcmp(&k, &zero, sizeof(k)), 0, "suite %d", s);
	}
}

/* ---- key update (RFC 9001 §6) --------------------------------------------- */

/* Both ends step the same secret and re-key only the AEAD: the new phase
 * opens what the peer's new phase sealed, the old phase does not, and the
 * header-protection key stays (RFC 9001 §6.1, §6.6). */
static void check_key_update(enum tern_aead_suite suite, uint32_t version)
{
	enum tern_hash h = tern_aead_suite_hash(suite);
	size_t sl = tern_hash_len(h);
	uint8_t secret_tx[48], secret_rx[48], first[48], pkt[80], plain[80], sample[16];
	uint8_t mask_before[5], mask_after[5];
	struct tern_crypto_keys tx, rx, rx_old;

	fill(secret_tx, sl, 0x21);
	memcpy(secret_rx, secret_tx, sl);
	memcpy(first, secret_tx, sl);
	fill(plain, sizeof(plain), 0x77);
	fill(sample, sizeof(sample), 0x05);
	cr_assert_eq(tern_crypto_keys_init(&tx, version, suite, secret_tx, sl), 0);
	cr_assert_eq(tern_crypto_keys_init(&rx, version, suite, secret_rx, sl), 0);
	cr_assert_eq(tern_crypto_keys_init_aead(&rx_old, version, suite, secret_rx, sl), 0);
	cr_assert_eq(tern_hp_mask(&tx, sample, mask_before), 0);

	cr_assert_eq(tern_crypto_secret_update(version, h, secret_tx, sl), 0);
	cr_assert_eq(tern_crypto_secret_update(version, h, secret_rx, sl), 0);
	cr_assert_arr_eq(secret_tx, secret_rx, sl);
	cr_assert(memcmp(secret_tx, first, sl) != 0, "secret did not change");
	cr_assert_eq(tern_crypto_keys_update(&tx, secret_tx, sl), 0);
	cr_assert_eq(tern_crypto_keys_update(&rx, secret_rx, sl), 0);

	memcpy(pkt, plain, sizeof(pkt));
	cr_assert_eq(tern_aead_seal(&tx, 77, pkt, 10, pkt + 10, 54, pkt + 64), 0);
	uint8_t copy[80];
	memcpy(copy, pkt, sizeof(copy));
	cr_assert_eq(tern_aead_open(&rx_old, 77, copy, 10, copy + 10, 54, copy + 64), TERN_ERR_DECRYPT);
	cr_assert_eq(tern_aead_open(&rx, 77, pkt, 10, pkt + 10, 54, pkt + 64), 0);
	cr_assert_arr_eq(pkt, plain, 64);

	cr_assert_eq(tern_hp_mask(&tx, sample, mask_after), 0);
	cr_assert_arr_eq(mask_before, mask_after, 5);
	cr_assert_eq(tx.suite, suite);
	cr_assert_eq(tx.version, version);

	/* A second step gives a third, different secret. */
	cr_assert_eq(tern_crypto_secret_update(version, h, secret_tx, sl), 0);
	cr_assert(memcmp(secret_tx, secret_rx, sl) != 0);
	tern_crypto_keys_clear(&tx);
	tern_crypto_keys_clear(&rx);
	tern_crypto_keys_clear(&rx_old);
}

Test(key_update, every_suite_and_version)
{
	for (int s = 0; s < 3; s++) {
		check_key_update((enum tern_aead_suite)s, TERN_VERSION_1);
		check_key_update((enum tern_aead_suite)s, TERN_VERSION_2);
	}
}

/* v1 and v2 step the same secret differently ("quic ku" vs "quicv2 ku"). */
Test(key_update, versions_differ)
{
	uint8_t a[32], b[32];
	unhex(chacha_secret, a, 32);
	memcpy(b, a, 32);
	cr_assert_eq(tern_crypto_secret_update(TERN_VERSION_1, TERN_HASH_SHA256, a, 32), 0);
	cr_assert_eq(tern_crypto_secret_update(TERN_VERSION_2, TERN_HASH_SHA256, b, 32), 0);
	expect_hex(a, 32, v1.cc_ku, "v1 ku");
	expect_hex(b, 32, v2.cc_ku, "v2 ku");
}

Test(key_update, errors)
{
	uint8_t secret[48] = {0};
	struct tern_crypto_keys k;

	cr_assert_eq(tern_crypto_secret_update(0xdeadbeef, TERN_HASH_SHA256, secret, 32),
		     TERN_ERR_VERSION);
	cr_assert_eq(tern_crypto_secret_update(TERN_VERSION_1, TERN_HASH_SHA256, secret, 48),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_crypto_secret_update(TERN_VERSION_1, TERN_HASH_SHA384, secret, 32),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_crypto_secret_update(TERN_VERSION_1, (enum tern_hash)5, secret, 32),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_crypto_secret_update(TERN_VERSION_1, TERN_HASH_SHA256, NULL, 32),
		     TERN_ERR_INVAL);

	memset(&k, 0, sizeof(k));
	cr_assert_eq(tern_crypto_keys_update(&k, secret, 32), TERN_ERR_STATE);
	cr_assert_eq(tern_crypto_keys_update(NULL, secret, 32), TERN_ERR_INVAL);
	cr_assert_eq(tern_crypto_keys_init(&k, TERN_VERSION_1, TERN_AEAD_AES_256_GCM, secret, 48), 0);
	/* The next secret must be as long as the suite's hash. */
	cr_assert_eq(tern_crypto_keys_update(&k, secret, 32), TERN_ERR_INVAL);
	cr_assert_eq(k.has_aead, 1); /* a refused update leaves the keys */
	cr_assert_eq(tern_crypto_keys_update(&k, NULL, 48), TERN_ERR_INVAL);
	cr_assert_eq(tern_crypto_keys_update(&k, secret, 48), 0);
	tern_crypto_keys_clear(&k);
}

/* An AEAD-only context has no header protection. */
Test(key_update, aead_only_context_has_no_hp)
{
	uint8_t secret[32] = {4}, pkt[40] = {0x40}, sample[16] = {0}, mask[5];
	struct tern_crypto_keys k;
	size_t pn_len;

	cr_assert_eq(tern_crypto_keys_init_aead(&k, TERN_VERSION_1, TERN_AEAD_CHACHA20_POLY1305,
						secret, 32),
		     0);
	cr_assert_eq(tern_hp_mask(&k, sample, mask), TERN_ERR_STATE);
	cr_assert_eq(tern_hp_protect(&k, pkt, sizeof(pkt), 1, 1), TERN_ERR_STATE);
	cr_assert_eq(tern_hp_unprotect(&k, pkt, sizeof(pkt), 1, &pn_len), TERN_ERR_STATE);
	cr_assert_eq(pkt[0], 0x40);
	cr_assert_eq(tern_aead_seal(&k, 1, pkt, 4, pkt + 4, 20, pkt + 24), 0);
	cr_assert_eq(tern_aead_open(&k, 1, pkt, 4, pkt + 4, 20, pkt + 24), 0);
	tern_crypto_keys_clear(&k);
}

/* ---- header protection ------------------------------------------------------ */

/* Protect then unprotect for every PN length, long and short headers and
 * every suite: only the protected bits change, and they come back. */
static void check_hp(enum tern_aead_suite suite, uint8_t first, size_t pn_offset)
{
	uint8_t secret[48], pkt[64], orig[64];
	struct tern_crypto_keys k;
	size_t sl = tern_hash_len(tern_aead_suite_hash(suite));
	uint8_t prot_bits = (first & 0x80) ? 0x0f : 0x1f;
	int first_changed = 0;

	fill(secret, sizeof(secret), 0x31);
	cr_assert_eq(tern_crypto_keys_init(&k, TERN_VERSION_1, suite, secret, sl), 0);
	for (size_t pn_len = 1; pn_len <= 4; pn_len++) {
		for (uint8_t seed = 0; seed < 8; seed++) {
			fill(orig, sizeof(orig), (uint8_t)(seed * 29 + pn_len));
			orig[0] = (uint8_t)((first & ~3) | (pn_len - 1));
			memcpy(pkt, orig, sizeof(pkt));
			cr_assert_eq(tern_hp_protect(&k, pkt, sizeof(pkt), pn_offset, pn_len), 0);
			cr_assert_eq(pkt[0] & ~prot_bits, orig[0] & ~prot_bits);
			first_changed |= pkt[0] != orig[0];
			cr_assert_arr_eq(pkt + 1, orig + 1, pn_offset - 1);
			cr_assert_arr_eq(pkt + pn_offset + pn_len, orig + pn_offset + pn_len,
					 sizeof(pkt) - pn_offset - pn_len);
			size_t got = 0;
			cr_assert_eq(tern_hp_unprotect(&k, pkt, sizeof(pkt), pn_offset, &got), 0);
			cr_assert_eq(got, pn_len);
			cr_assert_arr_eq(pkt, orig, sizeof(pkt));
		}
	}
	cr_assert(first_changed, "first byte never masked");
	tern_crypto_keys_clear(&k);
}

Test(hp, round_trip_long_and_short)
{
	for (int s = 0; s < 3; s++) {
		check_hp((enum tern_aead_suite)s, 0xc0, 18); /* long header */
		check_hp((enum tern_aead_suite)s, 0x40, 1);  /* short, empty DCID */
		check_hp((enum tern_aead_suite)s, 0x40, 21); /* short, 20-byte DCID */
	}
}

/* The PN length is read from the unmasked first byte: a short header
 * masks its Key Phase bit and reserved bits too (RFC 9001 §5.4.1). */
Test(hp, short_header_masks_five_bits)
{
	uint8_t secret[32], sample[16], mask[5], pkt[40];
	struct tern_crypto_keys k;
	int seen_bit4 = 0, seen_long_bit4 = 0;

	fill(secret, sizeof(secret), 0x52);
	cr_assert_eq(tern_crypto_keys_init(&k, TERN_VERSION_1, TERN_AEAD_AES_128_GCM, secret, 32), 0);
	for (int i = 0; i < 64; i++) {
		fill(pkt, sizeof(pkt), (uint8_t)i);
		memcpy(sample, pkt + 5, 16);
		cr_assert_eq(tern_hp_mask(&k, sample, mask), 0);
		pkt[0] = 0x40;
		cr_assert_eq(tern_hp_protect(&k, pkt, sizeof(pkt), 1, 1), 0);
		cr_assert_eq(pkt[0], 0x40 ^ (mask[0] & 0x1f));
		seen_bit4 |= pkt[0] & 0x10;
		pkt[0] = 0xc0;
		/* The first byte is outside the sample: re-protect from scratch. */
		cr_assert_eq(tern_hp_protect(&k, pkt, sizeof(pkt), 1, 1), 0);
		cr_assert_eq(pkt[0], 0xc0 ^ (mask[0] & 0x0f));
		seen_long_bit4 |= pkt[0] & 0x10;
	}
	cr_assert(seen_bit4);
	cr_assert(!seen_long_bit4);
	tern_crypto_keys_clear(&k);
}

/* RFC 9001 §5.4.2: the sample is 16 bytes at pn_offset + 4; a packet too
 * short for it is dropped, and nothing is written. */
Test(hp, sample_must_fit)
{
	uint8_t secret[32] = {6}, pkt[64], orig[64];
	struct tern_crypto_keys k;
	size_t pn_len = 99;

	cr_assert_eq(tern_crypto_keys_init(&k, TERN_VERSION_1, TERN_AEAD_AES_128_GCM, secret, 32), 0);
	fill(orig, sizeof(orig), 1);
	orig[0] = 0xc3;
	memcpy(pkt, orig, sizeof(pkt));

	/* Exactly enough: pn_offset + 4 + 16 == pkt_len. */
	cr_assert_eq(tern_hp_protect(&k, pkt, 38, 18, 4), 0);
	cr_assert_eq(tern_hp_unprotect(&k, pkt, 38, 18, &pn_len), 0);
	cr_assert_eq(pn_len, 4);
	cr_assert_arr_eq(pkt, orig, sizeof(pkt));

	cr_assert_eq(tern_hp_protect(&k, pkt, 37, 18, 4), TERN_ERR_MALFORMED);
	cr_assert_eq(tern_hp_unprotect(&k, pkt, 37, 18, &pn_len), TERN_ERR_MALFORMED);
	cr_assert_eq(tern_hp_unprotect(&k, pkt, 0, 0, &pn_len), TERN_ERR_MALFORMED);
	cr_assert_eq(tern_hp_unprotect(&k, pkt, 64, 0, &pn_len), TERN_ERR_MALFORMED);
	cr_assert_eq(tern_hp_unprotect(&k, pkt, 64, 65, &pn_len), TERN_ERR_MALFORMED);
	cr_assert_eq(tern_hp_unprotect(&k, pkt, 64, 64, &pn_len), TERN_ERR_MALFORMED);
	cr_assert_eq(tern_hp_unprotect(&k, pkt, 64, SIZE_MAX, &pn_len), TERN_ERR_MALFORMED);
	cr_assert_eq(tern_hp_unprotect(&k, pkt, SIZE_MAX, SIZE_MAX - 3, &pn_len), TERN_ERR_MALFORMED);
	cr_assert_eq(tern_hp_protect(&k, pkt, 64, SIZE_MAX - 10, 1), TERN_ERR_MALFORMED);
	cr_assert_eq(tern_hp_protect(&k, pkt, 64, 18, 0), TERN_ERR_INVAL);
	cr_assert_eq(tern_hp_protect(&k, pkt, 64, 18, 5), TERN_ERR_INVAL);
	cr_assert_eq(tern_hp_protect(NULL, pkt, 64, 18, 1), TERN_ERR_INVAL);
	cr_assert_eq(tern_hp_protect(&k, NULL, 64, 18, 1), TERN_ERR_INVAL);
	cr_assert_eq(tern_hp_unprotect(&k, pkt, 64, 18, NULL), TERN_ERR_INVAL);
	cr_assert_eq(pn_len, 4);
	cr_assert_arr_eq(pkt, orig, sizeof(pkt));
	tern_crypto_keys_clear(&k);
}

/* The smallest packet RFC 9001 A.5 describes: 21 bytes with an empty DCID,
 * 1 + 4 + 16; one byte less cannot be sampled. */
Test(hp, smallest_short_packet)
{
	uint8_t secret[32], pkt[21];
	struct tern_crypto_keys k;
	size_t pn_len;

	unhex(chacha_secret, secret, 32);
	cr_assert_eq(tern_crypto_keys_init(&k, TERN_VERSION_1, TERN_AEAD_CHACHA20_POLY1305, secret, 32),
		     0);
	unhex(v1.cc_packet, pkt, sizeof(pkt));
	cr_assert_eq(tern_hp_unprotect(&k, pkt, 20, 1, &pn_len), TERN_ERR_MALFORMED);
	cr_assert_eq(tern_hp_unprotect(&k, pkt, 21, 1, &pn_len), 0);
	tern_crypto_keys_clear(&k);
}

/* ---- Initial secrets --------------------------------------------------------- */

Test(initial, errors_and_cid_lengths)
{
	uint8_t dcid[21] = {0}, cs[32], ss[32], cs2[32], ss2[32];
	struct tern_crypto_keys c, s;

	cr_assert_eq(tern_initial_secrets(0xff00001d, dcid, 8, cs, ss), TERN_ERR_VERSION);
	cr_assert_eq(tern_initial_secrets(0, dcid, 8, cs, ss), TERN_ERR_VERSION);
	cr_assert_eq(tern_initial_secrets(TERN_VERSION_1, dcid, 21, cs, ss), TERN_ERR_INVAL);
	cr_assert_eq(tern_initial_secrets(TERN_VERSION_1, NULL, 8, cs, ss), TERN_ERR_INVAL);
	cr_assert_eq(tern_initial_secrets(TERN_VERSION_1, dcid, 8, NULL, ss), TERN_ERR_INVAL);
	cr_assert_eq(tern_initial_secrets(TERN_VERSION_1, dcid, 20, cs, ss), 0);
	/* A zero-length DCID (a server may choose one in its Retry) works
	 * and differs from a one-byte zero DCID. */
	cr_assert_eq(tern_initial_secrets(TERN_VERSION_1, NULL, 0, cs, ss), 0);
	cr_assert_eq(tern_initial_secrets(TERN_VERSION_1, dcid, 1, cs2, ss2), 0);
	cr_assert(memcmp(cs, cs2, 32) != 0);
	cr_assert(memcmp(cs, ss, 32) != 0);
	/* v1 and v2 salts give different secrets for the same DCID. */
	cr_assert_eq(tern_initial_secrets(TERN_VERSION_2, dcid, 1, cs, ss), 0);
	cr_assert(memcmp(cs, cs2, 32) != 0);

	cr_assert_eq(tern_initial_keys_init(TERN_VERSION_1, dcid, 21, &c, &s), TERN_ERR_INVAL);
	cr_assert_eq(c.has_aead | c.has_hp | s.has_aead | s.has_hp, 0);
	cr_assert_eq(tern_initial_keys_init(0x12345678, dcid, 8, &c, &s), TERN_ERR_VERSION);
	cr_assert_eq(tern_initial_keys_init(TERN_VERSION_1, dcid, 8, &c, &c), TERN_ERR_INVAL);
	cr_assert_eq(tern_initial_keys_init(TERN_VERSION_1, dcid, 8, NULL, &s), TERN_ERR_INVAL);
}

/* ---- Retry ----------------------------------------------------------------- */

Test(retry, errors_and_bounds)
{
	static uint8_t big[TERN_RETRY_TAG_INPUT_MAX + 1];
	uint8_t odcid[21] = {1, 2, 3}, tag[16], pkt[64];

	fill(pkt, sizeof(pkt), 3);
	cr_assert_eq(tern_retry_tag_compute(0xabcd, odcid, 8, pkt, 20, tag), TERN_ERR_VERSION);
	cr_assert_eq(tern_retry_tag_verify(0xabcd, odcid, 8, pkt, 36), TERN_ERR_VERSION);
	cr_assert_eq(tern_retry_tag_compute(TERN_VERSION_1, odcid, 21, pkt, 20, tag), TERN_ERR_INVAL);
	cr_assert_eq(tern_retry_tag_verify(TERN_VERSION_1, odcid, 21, pkt, 36), TERN_ERR_INVAL);
	cr_assert_eq(tern_retry_tag_compute(TERN_VERSION_1, NULL, 8, pkt, 20, tag), TERN_ERR_INVAL);
	cr_assert_eq(tern_retry_tag_compute(TERN_VERSION_1, odcid, 8, NULL, 20, tag), TERN_ERR_INVAL);
	cr_assert_eq(tern_retry_tag_compute(TERN_VERSION_1, odcid, 8, pkt, 0, tag), TERN_ERR_INVAL);
	cr_assert_eq(tern_retry_tag_compute(TERN_VERSION_1, odcid, 8, pkt, 20, NULL), TERN_ERR_INVAL);
	cr_assert_eq(tern_retry_tag_verify(TERN_VERSION_1, odcid, 8, NULL, 36), TERN_ERR_INVAL);

	/* No room for a tag and at least one byte before it: drop. */
	cr_assert_eq(tern_retry_tag_verify(TERN_VERSION_1, odcid, 8, pkt, 16), TERN_ERR_MALFORMED);
	cr_assert_eq(tern_retry_tag_verify(TERN_VERSION_1, odcid, 8, pkt, 0), TERN_ERR_MALFORMED);
	cr_assert_eq(tern_retry_tag_verify(TERN_VERSION_1, odcid, 8, pkt, 17), TERN_ERR_DECRYPT);

	/* The largest accepted size round-trips; one byte more is refused. */
	fill(big, sizeof(big), 9);
	size_t body = TERN_RETRY_TAG_INPUT_MAX - TERN_RETRY_TAG_LEN;
	cr_assert_eq(tern_retry_tag_compute(TERN_VERSION_2, odcid, 20, big, body, big + body), 0);
	cr_assert_eq(tern_retry_tag_verify(TERN_VERSION_2, odcid, 20, big, TERN_RETRY_TAG_INPUT_MAX), 0);
	cr_assert_eq(tern_retry_tag_compute(TERN_VERSION_2, odcid, 20, big, body + 1, tag),
		     TERN_ERR_INVAL);
	cr_assert_eq(tern_retry_tag_verify(TERN_VERSION_2, odcid, 20, big, TERN_RETRY_TAG_INPUT_MAX + 1),
		     TERN_ERR_MALFORMED);
}

/* An empty ODCID is still bound: its length byte is part of the
 * pseudo-packet (RFC 9001 Figure 8). */
Test(retry, empty_odcid)
{
	uint8_t pkt[40], zero = 0;

	fill(pkt, sizeof(pkt), 0x61);
	cr_assert_eq(tern_retry_tag_compute(TERN_VERSION_1, NULL, 0, pkt, 24, pkt + 24), 0);
	cr_assert_eq(tern_retry_tag_verify(TERN_VERSION_1, NULL, 0, pkt, 40), 0);
	cr_assert_eq(tern_retry_tag_verify(TERN_VERSION_1, &zero, 1, pkt, 40), TERN_ERR_DECRYPT);
}

/* ---- the per-packet path allocates nothing (DESIGN.md §1) ----------------- */

/* ASan owns malloc: no interposition then, and the test is skipped */
#if defined(__SANITIZE_ADDRESS__)
#define NO_ALLOC_HOOK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NO_ALLOC_HOOK 1
#endif
#endif

static volatile int count_allocs;
static volatile unsigned long allocs;

#ifndef NO_ALLOC_HOOK
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

/* Interposed for this test binary only: counts while count_allocs is set. */
void *malloc(size_t n)
{
	if (count_allocs)
		allocs++;
	return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
	if (count_allocs)
		allocs++;
	return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
	if (count_allocs)
		allocs++;
	return __libc_realloc(p, n);
}
#endif

Test(crypto, seal_open_and_header_protection_never_allocate)
{
#ifdef NO_ALLOC_HOOK
	cr_skip_test("allocation counting needs the plain allocator (not ASan)");
#endif
	static const enum tern_aead_suite suites[] = {TERN_AEAD_AES_128_GCM, TERN_AEAD_AES_256_GCM,
						      TERN_AEAD_CHACHA20_POLY1305};
	uint8_t secret[48];
	for (size_t i = 0; i < sizeof(secret); i++)
		secret[i] = (uint8_t)(i * 7 + 1);
	for (size_t s = 0; s < 3; s++) {
		struct tern_crypto_keys k;
		size_t slen = suites[s] == TERN_AEAD_AES_256_GCM ? 48 : 32;
		cr_assert_eq(tern_crypto_keys_init(&k, TERN_VERSION_1, suites[s], secret, slen), 0);
		static uint8_t pkt[1300];
		allocs = 0;
		count_allocs = 1;
		for (unsigned i = 0; i < 200; i++) {
			/* odd offsets: samples, payloads and tags at every alignment */
			uint8_t *p = pkt + (i % 16);
			size_t hl = 9 + (i % 7), len = 1200 - hl - 16;
			p[0] = 0x41; /* short header, 2-byte packet number */
			if (tern_aead_seal(&k, i, p, hl, p + hl, len, p + hl + len) != 0 ||
			    tern_hp_protect(&k, p, hl + len + 16, hl - 2, 2) != 0) {
				count_allocs = 0;
				cr_assert_fail("seal failed");
			}
			size_t pn_len;
			if (tern_hp_unprotect(&k, p, hl + len + 16, hl - 2, &pn_len) != 0 ||
			    tern_aead_open(&k, i, p, hl, p + hl, len, p + hl + len) != 0) {
				count_allocs = 0;
				cr_assert_fail("open failed");
			}
		}
		count_allocs = 0;
		cr_assert_eq(allocs, 0, "suite %zu: %lu allocations in 200 packets", s, allocs);
		tern_crypto_keys_clear(&k);
	}
}
