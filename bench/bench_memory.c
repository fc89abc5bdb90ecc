/* bench_memory: heap bytes per connection, measured with mallinfo2() around
 * N real handshakes run in memory (a server endpoint and N tern clients,
 * real TLS with a P-256 certificate made at start-up, a fake clock):
 *
 *   server, handshake in progress: the server has read the ClientHello and
 *     sent its flight (TLS object alive, flight kept for retransmission);
 *   server, established and idle: handshake done, the WOLFSSL object
 *     released (tern_tls_release), nothing in flight;
 *   client, established: handshake confirmed, TLS released.
 *
 * Next to them, measured in the same run: sizeof(struct tern_conn) (the
 * fixed part of every connection, of which the eight key contexts: rx and
 * tx per space, plus the next 1-RTT phase each way) and the endpoint's
 * tables per connection slot (allocated once, at tern_endpoint_new).
 *
 *   bench_memory [--conns N] [--json FILE]
 *
 * Sources: the core library (core_dep) and wolfSSL; no test helper. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include "conn/conn_int.h"
#include "tern/endpoint.h"
#include "tern/tls.h"

#define MS UINT64_C(1000000)
#define DGRAM_MAX 1500

static struct tern_tls_ctx *srv_tls, *cli_tls;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t now = 1000 * 1000 * MS;

static void die(const char *what)
{
	fprintf(stderr, "bench_memory: %s\n", what);
	exit(1);
}

static void xrand(void *ctx, uint8_t *buf, size_t len)
{
	uint64_t *s = ctx;
	for (size_t i = 0; i < len; i++) {
		*s ^= *s << 13;
		*s ^= *s >> 7;
		*s ^= *s << 17;
		buf[i] = (uint8_t)(*s >> 24);
	}
}

/* Heap bytes in use: the arenas plus blocks glibc mapped on their own. */
static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

/* ---- TLS: a throw-away self-signed P-256 certificate ----------------------------- */

static void make_cert(uint8_t *cert, size_t *cert_len, uint8_t *key, size_t *key_len)
{
	static uint8_t der[2048], kder[256];
	WC_RNG rng;
	ecc_key k;
	Cert c;
	if (wc_InitRng(&rng) != 0 || wc_ecc_init(&k) != 0 ||
	    wc_ecc_make_key_ex(&rng, 32, &k, ECC_SECP256R1) != 0 || wc_InitCert(&c) != 0)
		die("cannot make a key");
	strncpy(c.subject.commonName, "localhost", CTC_NAME_SIZE - 1);
	c.sigType = CTC_SHA256wECDSA;
	c.daysValid = 3650;
	int n = wc_MakeCert_ex(&c, der, sizeof(der), ECC_TYPE, &k, &rng) < 0 ? -1
		: wc_SignCert_ex(c.bodySz, c.sigType, der, sizeof(der), ECC_TYPE, &k, &rng);
	int kn = n > 0 ? wc_EccKeyToDer(&k, kder, sizeof(kder)) : -1;
	int p = kn > 0 ? wc_DerToPem(der, (word32)n, cert, (word32)*cert_len, CERT_TYPE) : -1;
	int kp = p > 0 ? wc_DerToPem(kder, (word32)kn, key, (word32)*key_len, ECC_PRIVATEKEY_TYPE) : -1;
	if (kp <= 0)
		die("cannot make a certificate");
	*cert_len = (size_t)p;
	*key_len = (size_t)kp;
	wc_ecc_free(&k);
	wc_FreeRng(&rng);
}

static void tls_init(void)
{
	static uint8_t cert[4096], key[1024];
	size_t cl = sizeof(cert), kl = sizeof(key);
	char err[256] = "";
	const char *alpn[] = {"h3"};
	make_cert(cert, &cl, key, &kl);
	if (tern_tls_ctx_new_server(&srv_tls, cert, cl, key, kl, alpn, 1, err, sizeof(err)) != 0 ||
	    tern_tls_ctx_new_client(&cli_tls, alpn, 1, false, NULL, 0, err, sizeof(err)) != 0)
		die(err);
}

/* ---- N clients against one server endpoint ---------------------------------------- */

struct bench {
	struct tern_endpoint *ep;
	struct tern_conn **cli;
	size_t n;
	size_t confirmed;
};

static struct tern_path path_of(size_t i, int server_view)
{
	struct tern_addr srv = {.family = 4, .port = 443, .ip = {10, 0, 0, 1}};
	struct tern_addr cli = {.family = 4, .port = (uint16_t)(1024 + i % 60000),
				.ip = {10, 1, (uint8_t)(i / 60000), 2}};
	struct tern_path p = {.local = server_view ? srv : cli, .remote = server_view ? cli : srv};
	return p;
}

static size_t client_index(const struct tern_path *p)
{
	return (size_t)p->remote.ip[2] * 60000 + (p->remote.port - 1024);
}

static void on_confirmed(struct tern_conn *c, void *user)
{
	(void)c;
	((struct bench *)user)->confirmed++;
}

static const struct tern_conn_callbacks cli_cb = {.on_established = on_confirmed};

static void bench_init(struct bench *b, size_t n)
{
	struct tern_endpoint_config cfg;
	memset(b, 0, sizeof(*b));
	b->n = n;
	tern_endpoint_config_init(&cfg, 1);
	cfg.conn.tls = srv_tls;
	cfg.conn.rand = (struct tern_rand){xrand, &rng_state};
	cfg.max_conns = n;
	if (tern_endpoint_new(&b->ep, &cfg, now) != 0)
		die("tern_endpoint_new failed");
	b->cli = calloc(n, sizeof(*b->cli));
	if (!b->cli)
		die("out of memory");
}

static void new_client(struct bench *b, size_t i)
{
	struct tern_conn_config cfg;
	tern_conn_config_init(&cfg, 0);
	cfg.tls = cli_tls;
	cfg.server_name = "localhost";
	cfg.rand = (struct tern_rand){xrand, &rng_state};
	cfg.cb = &cli_cb;
	cfg.user = b;
	struct tern_path p = path_of(i, 0);
	if (tern_conn_new_client(&b->cli[i], &cfg, &p, now) != 0)
		die("tern_conn_new_client failed");
}

/* Moves every datagram either way once; returns how many moved. */
static size_t exchange(struct bench *b)
{
	static uint8_t buf[DGRAM_MAX], reply[TERN_ENDPOINT_REPLY_MAX];
	size_t moved = 0;
	int n;
	for (size_t i = 0; i < b->n; i++) {
		struct tern_path p = path_of(i, 1);
		while (b->cli[i] && (n = tern_conn_send(b->cli[i], buf, sizeof(buf), now)) > 0) {
			tern_endpoint_recv(b->ep, buf, (size_t)n, &p, now, reply, sizeof(reply));
			moved++;
		}
	}
	struct tern_path p;
	while ((n = tern_endpoint_send(b->ep, buf, sizeof(buf), &p, now)) > 0) {
		size_t i = client_index(&p);
		struct tern_path cp = path_of(i, 0);
		if (i < b->n && b->cli[i])
			tern_conn_recv(b->cli[i], buf, (size_t)n, &cp, now);
		moved++;
	}
	return moved;
}

/* Runs the clock in 1 ms steps until nothing has moved for `quiet` ms
 * (ACK delays have fired) or `limit` ms passed. */
static void run(struct bench *b, unsigned quiet, unsigned limit)
{
	unsigned still = 0;
	for (unsigned t = 0; t < limit && still < quiet; t++) {
		still = exchange(b) ? 0 : still + 1;
		now += MS;
		for (size_t i = 0; i < b->n; i++)
			if (b->cli[i] && tern_conn_next_timeout(b->cli[i]) <= now)
				tern_conn_handle_timeout(b->cli[i], now);
		if (tern_endpoint_next_timeout(b->ep) <= now)
			tern_endpoint_handle_timeout(b->ep, now);
	}
}

static void bench_free(struct bench *b)
{
	for (size_t i = 0; i < b->n; i++)
		tern_conn_free(b->cli[i]);
	free(b->cli);
	tern_endpoint_free(b->ep);
}

/* ---- the two measurements ------------------------------------------------------------ */

struct figures {
	double srv_handshake, srv_idle, cli_established;
	size_t n;
};

/* Server connections with the handshake in progress: each got a client's
 * Initial and sent its flight; the clients are gone before the baseline. */
static void measure_handshake(struct figures *f, size_t n)
{
	static uint8_t buf[DGRAM_MAX], reply[TERN_ENDPOINT_REPLY_MAX];
	struct bench b;
	bench_init(&b, n);
	uint8_t *initials = malloc(n * DGRAM_MAX);
	size_t *lens = calloc(n, sizeof(*lens));
	if (!initials || !lens)
		die("out of memory");
	for (size_t i = 0; i < n; i++) {
		new_client(&b, i);
		int len = tern_conn_send(b.cli[i], initials + i * DGRAM_MAX, DGRAM_MAX, now);
		if (len < 1200)
			die("no client Initial");
		lens[i] = (size_t)len;
		tern_conn_free(b.cli[i]);
		b.cli[i] = NULL;
	}
	size_t before = heap_in_use();
	for (size_t i = 0; i < n; i++) {
		struct tern_path p = path_of(i, 1);
		tern_endpoint_recv(b.ep, initials + i * DGRAM_MAX, lens[i], &p, now, reply, sizeof(reply));
	}
	struct tern_path p;
	while (tern_endpoint_send(b.ep, buf, sizeof(buf), &p, now) > 0)
		;
	size_t after = heap_in_use();
	if (tern_endpoint_conn_count(b.ep) != n)
		die("not every Initial made a connection");
	f->srv_handshake = (double)(after - before) / (double)n;
	free(initials);
	free(lens);
	bench_free(&b);
}

/* N complete handshakes; then the clients are freed, which splits the
 * heap between the two sides. */
static void measure_established(struct figures *f, size_t n)
{
	struct bench b;
	bench_init(&b, n);
	size_t before = heap_in_use();
	for (size_t i = 0; i < n; i++)
		new_client(&b, i);
	run(&b, 100, 5000);
	if (b.confirmed != n || tern_endpoint_conn_count(b.ep) != n)
		die("not every handshake completed");
	size_t both = heap_in_use();
	for (size_t i = 0; i < n; i++) {
		tern_conn_free(b.cli[i]);
		b.cli[i] = NULL;
	}
	size_t servers = heap_in_use();
	f->srv_idle = (double)(servers - before) / (double)n;
	f->cli_established = (double)(both - servers) / (double)n;
	bench_free(&b);
}

static void print(const struct figures *f, const char *json)
{
	size_t slot = (tern_cidtable_mem_size(6 * f->n) + tern_cidtable_mem_size(f->n)) / f->n;
	printf("%-44s %10s\n", "heap per connection", "bytes");
	printf("%-44s %10.0f\n", "server, handshake in progress", f->srv_handshake);
	printf("%-44s %10.0f\n", "server, established idle (TLS released)", f->srv_idle);
	printf("%-44s %10.0f\n", "client, established (TLS released)", f->cli_established);
	printf("%-44s %10.0f\n", "  of which TLS and flight (handshake - idle)",
	       f->srv_handshake - f->srv_idle);
	printf("%-44s %10zu\n", "sizeof(struct tern_conn)", sizeof(struct tern_conn));
	printf("%-44s %10zu\n", "  of which packet protection keys (8 sets)",
	       8 * sizeof(struct tern_crypto_keys));
	printf("%-44s %10zu\n", "endpoint tables per slot (at creation)", slot);
	printf("(%zu connections of each kind)\n", f->n);
	if (!json)
		return;
	FILE *fp = fopen(json, "w");
	if (!fp)
		die("cannot write the JSON file");
	fprintf(fp,
		"{\"conns\": %zu, \"server_handshake_bytes\": %.0f, \"server_idle_bytes\": %.0f, "
		"\"client_established_bytes\": %.0f, \"sizeof_conn\": %zu, "
		"\"keys_bytes\": %zu, \"endpoint_slot_bytes\": %zu}\n",
		f->n, f->srv_handshake, f->srv_idle, f->cli_established, sizeof(struct tern_conn),
		8 * sizeof(struct tern_crypto_keys), slot);
	fclose(fp);
}

int main(int argc, char **argv)
{
	const char *json = NULL;
	size_t n = 1000;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json") && i + 1 < argc) {
			json = argv[++i];
		} else if (!strcmp(argv[i], "--conns") && i + 1 < argc) {
			n = strtoul(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "usage: bench_memory [--conns N] [--json FILE]\n");
			return 2;
		}
	}
	if (n == 0 || n > 1000000)
		die("--conns must be 1..1000000");
	tls_init();
	struct figures f = {.n = n};
	measure_handshake(&f, n);
	measure_established(&f, n);
	print(&f, json);
	tern_tls_ctx_free(srv_tls);
	tern_tls_ctx_free(cli_tls);
	return 0;
}
