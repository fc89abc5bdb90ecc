/* bench_fastpath: endpoint fast-path decisions per second on one core, each
 * next to a loop that only reads the same packets, every byte of them (a
 * datapath that hands packets over has at least that cost), measured in
 * the same run:
 *
 *   unknown CID -> stateless reset (limiter wide open)
 *   unknown CID -> suppressed by the rate limiter
 *   known CID   -> header parse + CID table lookup, before any decryption
 *
 *   bench_fastpath [--seconds S] [--json FILE]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tern/cidtable.h"
#include "tern/endpoint.h"
#include "tern/packet.h"

#define NPKT 4096
#define CID_LEN 8
#define TABLE_ENTRIES 100000

static double min_seconds = 0.5;
static volatile uint64_t sink;

static uint8_t *pkts[NPKT];
static size_t lens[NPKT];

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void bench_rand(void *ctx, uint8_t *buf, size_t len)
{
	(void)ctx;
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)next_rand();
}

static const struct tern_rand rnd = {bench_rand, NULL};

/* Short-header packets of random sizes with random 8-byte CIDs. */
static void make_packets(void)
{
	for (int i = 0; i < NPKT; i++) {
		lens[i] = 40 + next_rand() % 1400;
		pkts[i] = malloc(1500);
		bench_rand(NULL, pkts[i], lens[i]);
		pkts[i][0] = (uint8_t)(0x40 | (pkts[i][0] & 0x3f)); /* short header, fixed bit */
	}
}

typedef void (*run_fn)(void *ctx, unsigned n);

static double rate(run_fn fn, void *ctx)
{
	unsigned n = NPKT;
	for (;;) {
		uint64_t t0 = now_ns();
		fn(ctx, n);
		uint64_t dt = now_ns() - t0;
		if (dt >= (uint64_t)(min_seconds * 1e9))
			return (double)n / ((double)dt / 1e9);
		n = dt < 1000000 ? n * 8 : (unsigned)((double)n * min_seconds * 1.2e9 / (double)dt) + NPKT;
	}
}

/* The limit: read every byte of every packet, 8 at a time. */
static void run_read(void *ctx, unsigned n)
{
	(void)ctx;
	uint64_t acc = 0;
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *p = pkts[i % NPKT];
		size_t len = lens[i % NPKT];
		for (size_t k = 0; k + 8 <= len; k += 8) {
			uint64_t w;
			memcpy(&w, p + k, sizeof(w));
			acc += w;
		}
	}
	sink += acc;
}

struct ep_ctx {
	struct tern_endpoint *ep;
	uint64_t now;
	uint64_t replies;
};

static void run_endpoint(void *ctx, unsigned n)
{
	struct ep_ctx *e = ctx;
	uint8_t reply[TERN_ENDPOINT_REPLY_MAX];
	struct tern_path path = {.local = {.family = 4, .port = 443, .ip = {198, 18, 0, 1}},
				 .remote = {.family = 4, .port = 40000, .ip = {198, 18, 0, 2}}};
	for (unsigned i = 0; i < n; i++) {
		/* the endpoint decrypts nothing here, but keep inputs pristine */
		int r = tern_endpoint_recv(e->ep, pkts[i % NPKT], lens[i % NPKT], &path, e->now, reply,
					   sizeof(reply));
		e->replies += r > 0;
		e->now += 10;
	}
}

struct lookup_ctx {
	struct tern_cidtable t;
	uint64_t found;
};

static void run_lookup(void *ctx, unsigned n)
{
	struct lookup_ctx *l = ctx;
	struct tern_pkt_hdr h;
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *p = pkts[i % NPKT];
		if (tern_pkt_parse(p, lens[i % NPKT], CID_LEN, &h) > 0)
			l->found += tern_cidtable_lookup(&l->t, &h.dcid) != NULL;
	}
}

static struct tern_endpoint *make_endpoint(struct tern_reset_key *key, uint64_t rate_per_s,
					   uint32_t burst)
{
	struct tern_endpoint_config cfg;
	tern_endpoint_config_init(&cfg, 1);
	cfg.conn.rand = rnd;
	cfg.conn.scid_len = CID_LEN;
	cfg.reset_key = key;
	cfg.reset_rate = rate_per_s;
	cfg.reset_burst = burst;
	cfg.max_conns = 16;
	struct tern_endpoint *ep;
	if (tern_endpoint_new(&ep, &cfg, 1) != 0) {
		fprintf(stderr, "bench_fastpath: cannot create an endpoint\n");
		exit(1);
	}
	return ep;
}

int main(int argc, char **argv)
{
	const char *json = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json") && i + 1 < argc)
			json = argv[++i];
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc && atof(argv[i + 1]) > 0)
			min_seconds = atof(argv[++i]);
		else {
			fprintf(stderr, "usage: bench_fastpath [--seconds S] [--json FILE]\n");
			return 2;
		}
	}
	make_packets();
	uint8_t static_key[32];
	bench_rand(NULL, static_key, sizeof(static_key));
	struct tern_reset_key key;
	tern_reset_key_init(&key, static_key, sizeof(static_key));

	double limit = rate(run_read, NULL);
	struct ep_ctx open = {make_endpoint(&key, UINT32_MAX, UINT32_MAX), 1, 0};
	double resets = rate(run_endpoint, &open);
	struct ep_ctx shut = {make_endpoint(&key, 0, 0), 1, 0};
	double limited = rate(run_endpoint, &shut);

	/* a table of 100k connections' CIDs holding every test packet's CID */
	struct lookup_ctx lk = {0};
	size_t mem = tern_cidtable_mem_size(TABLE_ENTRIES);
	void *tm = calloc(1, mem);
	uint8_t seed[16];
	bench_rand(NULL, seed, sizeof(seed));
	tern_cidtable_init(&lk.t, tm, mem, TABLE_ENTRIES, seed);
	static int dummy;
	for (int i = 0; i < NPKT; i++) {
		struct tern_cid c;
		tern_cid_set(&c, pkts[i] + 1, CID_LEN);
		tern_cidtable_insert(&lk.t, &c, &dummy);
	}
	for (int i = NPKT; i < TABLE_ENTRIES * 3 / 4; i++) {
		struct tern_cid c = {.len = CID_LEN};
		bench_rand(NULL, c.bytes, CID_LEN);
		tern_cidtable_insert(&lk.t, &c, &dummy);
	}
	double lookups = rate(run_lookup, &lk);

	struct {
		const char *name;
		double mpps;
	} r[] = {
		{"unknown CID -> stateless reset", resets / 1e6},
		{"unknown CID -> rate-limited", limited / 1e6},
		{"known CID lookup (75k-entry table)", lookups / 1e6},
	};
	printf("%-36s %10s  %s\n", "decision (one core)", "Mpps", "vs reading the same packets");
	for (size_t i = 0; i < 3; i++)
		printf("%-36s %10.2f  %.2f of %.1f Mpps\n", r[i].name, r[i].mpps, r[i].mpps / (limit / 1e6),
		       limit / 1e6);
	printf("replies: %llu resets while open, %llu while limited\n",
	       (unsigned long long)open.replies, (unsigned long long)shut.replies);
	if (json) {
		FILE *f = fopen(json, "w");
		if (!f) {
			fprintf(stderr, "bench_fastpath: cannot write %s\n", json);
			return 1;
		}
		fprintf(f, "{\"read_only_mpps\": %.3f, \"results\": [", limit / 1e6);
		for (size_t i = 0; i < 3; i++)
			fprintf(f, "%s{\"name\": \"%s\", \"mpps\": %.3f, \"ratio\": %.3f}", i ? ", " : "", r[i].name,
				r[i].mpps, r[i].mpps / (limit / 1e6));
		fprintf(f, "]}\n");
		fclose(f);
	}
	tern_endpoint_free(open.ep);
	tern_endpoint_free(shut.ep);
	tern_reset_key_clear(&key);
	free(tm);
	return (lk.found >= NPKT && shut.replies == 0) ? 0 : 1;
}
