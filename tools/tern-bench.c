/* tern-bench: the load generator, built on tern's client engine.
 *
 *   tern-bench MODE --target ADDR:PORT [--datapath socket|dpdk|xdp] [--duration DUR] [--count N]
 *              [--json FILE] [mode options]
 *
 * Modes (see usage() for their options):
 *   handshake    opens connections as fast as --concurrency allows or at --rate, optionally
 *                abandoning each after the handshake or after its first Initial;
 *                handshakes/s and latency percentiles
 *   reset-probe  short-header packets with random unknown CIDs at --rate with a size mix;
 *                replies/s, each reply's size against its trigger, every rule broken
 *   bulk         C connections x S streams downloading `GET /<N>` (HTTP/3) or perf;
 *                goodput and Jain's fairness index over connections
 *   requests     small HTTP/3 requests over a pool of connections; requests/s and latency
 *
 * Every run is bounded (--duration, default 5 s; --count alone stops after
 * at most 60 s) and only loads loopback or the benchmark range
 * 198.18.0.0/15 (RFC 2544): a load generator must never be pointed at
 * someone else's server by mistake. Progress goes to stderr when it is a
 * terminal. Exit status: 0 done, 1 the run failed (nothing completed, or a
 * rule was broken), 2 a bad command line (one line on stderr). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lg.h"
#include "tern/sock.h"
#include "util.h"

#define DEFAULT_DURATION_S 5.0
#define COUNT_ONLY_LIMIT_S 60.0
#define MAX_DURATION_S 3600.0

static void usage(void)
{
	printf("usage: tern-bench MODE --target ADDR:PORT [options]\n"
	       "modes and their options:\n"
	       "  handshake    [--rate R] [--concurrency N] [--abandon none|handshake|initial]\n"
	       "               [--handshake-timeout DUR]\n"
	       "  reset-probe  [--rate R] [--sizes LEN[:WEIGHT],...] [--reset-limit RATE[:BURST]]\n"
	       "               [--echo]\n"
	       "  bulk         [--conns C] [--streams S] [--size BYTES] [--proto h3|perf]\n"
	       "  requests     [--conns C] [--depth D] [--size BYTES] [--rate R]\n"
	       "common options:\n"
	       "  --datapath socket|dpdk|xdp   (default socket)\n"
	       "  --local ADDR:PORT  send from here (dpdk and xdp: required; the reset probe\n"
	       "                   owns PORT and the next ports, one per size)\n"
	       "  --interface IF   the interface AF_XDP sockets bind (xdp)\n"
	       "  --dpdk-eal \"ARGS\" EAL arguments (dpdk), --dpdk-port NAME (default: the first)\n"
	       "  --peer-mac MAC   the target's next hop (dpdk, xdp; default: ARP before the run)\n"
	       "  --duration DUR   time bound (default 5s; with --count alone, 60s)\n"
	       "  --count N        stop after N handshakes, triggers or responses\n"
	       "  --json FILE      write the results as JSON\n"
	       "  --label TEXT     stored in the JSON\n"
	       "  --ca FILE        verify the server against this CA (default: no verification)\n"
	       "  --sni NAME       server name (default localhost)\n"
	       "  --quiet          no progress line\n"
	       "targets: 127.0.0.0/8, ::1 or 198.18.0.0/15 only\n");
	exit(0);
}

/* ---- values ------------------------------------------------------------------------- */

static uint64_t parse_u64(const char *flag, const char *v, uint64_t min, uint64_t max)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	uint64_t mul = 1;
	if (end != v && *end && !end[1])
		mul = *end == 'k' ? 1000 : *end == 'M' ? 1000000 : *end == 'G' ? 1000000000 : 0;
	else if (*end)
		mul = 0;
	if (errno || end == v || v[0] == '-' || !mul || n > max / mul || n * mul < min)
		die_usage("bad %s '%s': expected a whole number from %llu to %llu (k, M, G allowed)",
			  flag, v, (unsigned long long)min, (unsigned long long)max);
	return n * mul;
}

static double parse_rate(const char *flag, const char *v)
{
	char *end;
	errno = 0;
	double r = strtod(v, &end);
	double mul = 1;
	if (end != v && *end && !end[1])
		mul = *end == 'k' ? 1e3 : *end == 'M' ? 1e6 : 0;
	else if (*end)
		mul = 0;
	if (errno || end == v || !mul || !(r >= 0) || r * mul > 1e9)
		die_usage("bad %s '%s': expected a rate per second from 0 to 1e9 (k, M allowed; 0: "
			  "as fast as allowed)", flag, v);
	return r * mul;
}

static double parse_secs(const char *flag, const char *v)
{
	uint64_t ms;
	if (parse_duration_ms(v, &ms) < 0 || ms == 0 || ms > MAX_DURATION_S * 1000)
		die_usage("bad %s '%s': expected a duration such as 10s, 500ms or 2m (at most 1h)", flag, v);
	return (double)ms / 1000;
}

static void parse_sizes(struct lg_opts *o, const char *v)
{
	const char *p = v;
	o->n_sizes = 0;
	while (*p) {
		char *end;
		unsigned long len = strtoul(p, &end, 10), w = 1;
		if (end == p || len < 1 || len > 1472)
			goto bad;
		if (*end == ':') {
			p = end + 1;
			w = strtoul(p, &end, 10);
			if (end == p || w < 1 || w > 1000)
				goto bad;
		}
		if (o->n_sizes == LG_MAX_SIZES || (*end && *end != ','))
			goto bad;
		for (unsigned i = 0; i < o->n_sizes; i++)
			if (o->sizes[i] == len)
				goto bad;
		o->sizes[o->n_sizes] = (uint32_t)len;
		o->weights[o->n_sizes++] = (uint32_t)w;
		p = *end ? end + 1 : end;
		if (*end && !*p)
			goto bad;
	}
	if (o->n_sizes)
		return;
bad:
	die_usage("bad --sizes '%s': expected up to %d distinct LEN[:WEIGHT] items, LEN 1..1472, "
		  "WEIGHT 1..1000, such as 43,100:2,1200", v, LG_MAX_SIZES);
}

static void parse_limit(struct lg_opts *o, const char *v)
{
	char *end;
	errno = 0;
	double r = strtod(v, &end), b = 0;
	if (*end == ':') {
		const char *q = end + 1;
		b = strtod(q, &end);
		if (end == q)
			r = -1;
	}
	if (errno || end == v || *end || !(r > 0) || r > 1e9 || !(b >= 0) || b > 1e9)
		die_usage("bad --reset-limit '%s': expected RATE[:BURST], the server's reset limiter "
			  "(such as 10000:100)", v);
	o->limit_rate = r;
	o->limit_burst = b;
}

/* RFC 2544 reserves 198.18.0.0/15 for benchmarking; loopback never leaves
 * the host. v4-mapped IPv6 forms are judged by their IPv4 address. */
static int target_allowed(const struct tern_addr *a)
{
	static const uint8_t lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	const uint8_t *v4 = a->ip;
	if (a->family == 6) {
		if (memcmp(a->ip, lo6, 16) == 0)
			return 1;
		if (memcmp(a->ip, mapped, 12) != 0)
			return 0;
		v4 = a->ip + 12;
	}
	return v4[0] == 127 || (v4[0] == 198 && (v4[1] & 0xfe) == 18);
}

/* ---- the command line --------------------------------------------------------------- */

#define M_HS (1u << LG_HANDSHAKE)
#define M_RP (1u << LG_RESET_PROBE)
#define M_BU (1u << LG_BULK)
#define M_RQ (1u << LG_REQUESTS)
#define M_ALL (M_HS | M_RP | M_BU | M_RQ)

struct flag {
	const char *name;
	unsigned modes;
	const char *v;
};

static struct flag flags[] = {
	{"--target", M_ALL, 0}, {"--datapath", M_ALL, 0}, {"--duration", M_ALL, 0},
	{"--count", M_ALL, 0}, {"--json", M_ALL, 0}, {"--label", M_ALL, 0},
	{"--ca", M_HS | M_BU | M_RQ, 0}, {"--sni", M_HS | M_BU | M_RQ, 0},
	{"--rate", M_HS | M_RP | M_RQ, 0}, {"--concurrency", M_HS, 0}, {"--abandon", M_HS, 0},
	{"--handshake-timeout", M_HS | M_BU | M_RQ, 0}, {"--sizes", M_RP, 0},
	{"--reset-limit", M_RP, 0}, {"--conns", M_BU | M_RQ, 0},
	{"--streams", M_BU, 0}, {"--depth", M_RQ, 0}, {"--size", M_BU | M_RQ, 0},
	{"--proto", M_BU, 0}, {"--local", M_ALL, 0}, {"--interface", M_ALL, 0},
	{"--dpdk-eal", M_ALL, 0}, {"--dpdk-port", M_ALL, 0}, {"--peer-mac", M_ALL, 0},
};

#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

static const char *F(const char *name)
{
	for (size_t i = 0; i < NFLAGS; i++)
		if (!strcmp(flags[i].name, name))
			return flags[i].v;
	return NULL;
}

static void parse_mode(struct lg_opts *o, const char *m)
{
	static const char *const names[] = {"handshake", "reset-probe", "bulk", "requests"};
	for (int i = 0; i < 4; i++) {
		if (!strcmp(m, names[i])) {
			o->mode = (enum lg_mode)i;
			o->mode_name = names[i];
			return;
		}
	}
	die_usage("unknown mode '%s': expected handshake, reset-probe, bulk or requests", m);
}

/* Reads `--flag value`, `--flag=value` and the switches into flags[]. */
static void collect(struct lg_opts *o, int argc, char **argv, int *echo, int *quiet)
{
	for (int i = 2; i < argc; i++) {
		char *a = argv[i], *eq = strchr(a, '=');
		if (!strcmp(a, "--help") || !strcmp(a, "-h"))
			usage();
		if (!strcmp(a, "--echo") || !strcmp(a, "--quiet")) {
			if (!strcmp(a, "--echo") && o->mode != LG_RESET_PROBE)
				die_usage("--echo applies to reset-probe only");
			*(a[2] == 'e' ? echo : quiet) = 1;
			continue;
		}
		size_t nl = eq ? (size_t)(eq - a) : strlen(a);
		struct flag *f = NULL;
		for (size_t k = 0; k < NFLAGS; k++)
			if (strlen(flags[k].name) == nl && !strncmp(flags[k].name, a, nl))
				f = &flags[k];
		if (!f)
			die_usage("unknown option '%s' (try --help)", a);
		if (!(f->modes & (1u << o->mode)))
			die_usage("%s does not apply to %s mode (try --help)", f->name, o->mode_name);
		const char *v = eq ? eq + 1 : flag_value(argc, argv, &i);
		if (f->v)
			die_usage("%s given twice", f->name);
		if (!*v)
			die_usage("%s needs a value", f->name);
		f->v = v;
	}
}

static void parse_target(struct lg_opts *o)
{
	char err[256];
	o->target_text = F("--target");
	if (!o->target_text)
		die_usage("missing --target ADDR:PORT (loopback or 198.18.0.0/15)");
	if (tern_sock_addr_parse(o->target_text, &o->target, err, sizeof(err)) < 0)
		die_usage("bad --target '%s': %s", o->target_text, err);
	if (o->target.port == 0)
		die_usage("bad --target '%s': port 0", o->target_text);
	if (!target_allowed(&o->target))
		die_usage("refusing --target %s: only loopback (127.0.0.0/8, ::1) or the benchmark "
			  "range 198.18.0.0/15 may be loaded", o->target_text);
}

static void parse_mac(struct lg_opts *o, const char *v)
{
	unsigned m[6];
	char tail;
	if (sscanf(v, "%2x:%2x:%2x:%2x:%2x:%2x%c", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5], &tail) != 6)
		die_usage("bad --peer-mac '%s': expected six hex bytes such as 02:00:00:00:00:01", v);
	for (int i = 0; i < 6; i++)
		o->peer_mac[i] = (uint8_t)m[i];
	o->has_peer_mac = 1;
}

/* Which flags each datapath needs, with one line for what is missing. */
static void parse_datapath(struct lg_opts *o)
{
	char err[256];
	const char *why;
	o->datapath = F("--datapath") ? F("--datapath") : "socket";
	if (!lg_dp_known(o->datapath, &why))
		die_usage("bad --datapath '%s': expected socket, dpdk or xdp", o->datapath);
	if (why)
		die_usage("%s", why);
	int sock = !strcmp(o->datapath, "socket"), xdp = !strcmp(o->datapath, "xdp");
	o->local_text = F("--local");
	o->ifname = F("--interface");
	o->dpdk_eal = F("--dpdk-eal");
	o->dpdk_port = F("--dpdk-port");
	if (o->local_text && tern_sock_addr_parse(o->local_text, &o->local, err, sizeof(err)) < 0)
		die_usage("bad --local '%s': %s", o->local_text, err);
	if (F("--peer-mac"))
		parse_mac(o, F("--peer-mac"));
	if (!sock && (!o->local_text || !o->local.port))
		die_usage("--datapath %s needs --local ADDR:PORT (the address and first UDP port to send from)",
			  o->datapath);
	if (!sock && o->local.family != o->target.family)
		die_usage("--local %s and --target %s are of different families", o->local_text,
			  o->target_text);
	if (xdp && !o->ifname)
		die_usage("--datapath xdp needs --interface IF (the interface holding --local)");
	if (!strcmp(o->datapath, "dpdk") && !o->dpdk_eal)
		die_usage("--datapath dpdk needs --dpdk-eal \"EAL ARGS\"");
	const char *extra = o->ifname && !xdp ? "--interface" : (o->dpdk_eal || o->dpdk_port) &&
			    strcmp(o->datapath, "dpdk") ? "--dpdk-eal/--dpdk-port" : o->has_peer_mac && sock
			    ? "--peer-mac" : NULL;
	if (extra)
		die_usage("%s does not apply to --datapath %s", extra, o->datapath);
}

static void parse_common(struct lg_opts *o)
{
	parse_target(o);
	parse_datapath(o);
	o->json = F("--json");
	o->label = F("--label");
	o->ca = F("--ca");
	o->sni = F("--sni");
	if (F("--count"))
		o->count = parse_u64("--count", F("--count"), 1, UINT64_C(1) << 40);
	o->duration_given = F("--duration") != NULL;
	o->duration_s = o->duration_given ? parse_secs("--duration", F("--duration"))
			: o->count ? COUNT_ONLY_LIMIT_S : DEFAULT_DURATION_S;
	o->hs_timeout_ms = 5000;
	if (F("--handshake-timeout"))
		o->hs_timeout_ms = (uint64_t)(parse_secs("--handshake-timeout", F("--handshake-timeout")) * 1000);
	o->rate = F("--rate") ? parse_rate("--rate", F("--rate")) : o->mode == LG_RESET_PROBE ? 10000 : 0;
}

static void parse_mode_opts(struct lg_opts *o)
{
	o->concurrency = F("--concurrency") ? (unsigned)parse_u64("--concurrency", F("--concurrency"), 1, 4096) : 16;
	const char *ab = F("--abandon");
	if (ab && strcmp(ab, "none") && strcmp(ab, "handshake") && strcmp(ab, "initial"))
		die_usage("bad --abandon '%s': expected none, handshake or initial", ab);
	o->abandon = !ab || !strcmp(ab, "none") ? LG_ABANDON_NONE
		     : !strcmp(ab, "handshake") ? LG_ABANDON_HANDSHAKE : LG_ABANDON_INITIAL;
	o->sizes_text = F("--sizes") ? F("--sizes") : "21,22,43,100,1200";
	parse_sizes(o, o->sizes_text);
	if (F("--reset-limit"))
		parse_limit(o, F("--reset-limit"));
	o->conns = F("--conns") ? (unsigned)parse_u64("--conns", F("--conns"), 1, 1024)
		   : o->mode == LG_REQUESTS ? 4 : 1;
	o->streams = F("--streams") ? (unsigned)parse_u64("--streams", F("--streams"), 1, 256) : 1;
	o->depth = F("--depth") ? (unsigned)parse_u64("--depth", F("--depth"), 1, LG_MAX_DEPTH) : 1;
	o->size = F("--size") ? parse_u64("--size", F("--size"), 0, UINT64_C(1) << 40)
		  : o->mode == LG_BULK ? 10000000 : 100;
	const char *proto = F("--proto");
	if (proto && strcmp(proto, "h3") && strcmp(proto, "perf"))
		die_usage("bad --proto '%s': expected h3 or perf", proto);
	o->perf = proto && !strcmp(proto, "perf");
}

static void parse_args(int argc, char **argv, struct lg_opts *o)
{
	int echo = 0, quiet = 0;
	memset(o, 0, sizeof(*o));
	if (argc < 2)
		die_usage("no mode given: handshake, reset-probe, bulk or requests (try --help)");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		usage();
	parse_mode(o, argv[1]);
	collect(o, argc, argv, &echo, &quiet);
	parse_common(o);
	parse_mode_opts(o);
	o->echo = echo;
	o->progress = !quiet && isatty(2);
	if (o->echo && o->limit_rate > 0)
		die_usage("--echo and --reset-limit exclude each other");
}

static void on_signal(int sig)
{
	(void)sig;
	lg_stop = 1;
}

int main(int argc, char **argv)
{
	struct lg_opts o;
	tool_name = "tern-bench";
	parse_args(argc, argv, &o);
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	switch (o.mode) {
	case LG_HANDSHAKE:
		return lg_run_handshake(&o);
	case LG_RESET_PROBE:
		return lg_run_reset_probe(&o);
	case LG_BULK:
		return lg_run_bulk(&o);
	case LG_REQUESTS:
		return lg_run_requests(&o);
	}
	return 1;
}
