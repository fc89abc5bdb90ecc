/* tern-bench: clock, statistics, progress line, JSON output and the
 * datapath wrapper. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lg.h"

volatile sig_atomic_t lg_stop;

uint64_t lg_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void lg_why_failed(const char *what, const struct tern_close_info *ci)
{
	static const char *const reasons[] = {
		[TERN_CLOSE_NONE] = "no answer from the server",
		[TERN_CLOSE_IDLE_TIMEOUT] = "idle timeout",
		[TERN_CLOSE_LOCAL] = "closed by tern-bench",
		[TERN_CLOSE_PEER] = "closed by the server",
		[TERN_CLOSE_STATELESS_RESET] = "stateless reset",
		[TERN_CLOSE_HANDSHAKE_TIMEOUT] = "handshake timeout",
		[TERN_CLOSE_ERROR] = "protocol error",
	};
	if (ci->reason == TERN_CLOSE_NONE || ci->reason > TERN_CLOSE_ERROR) {
		fprintf(stderr, "tern-bench: %s: %s\n", what, reasons[TERN_CLOSE_NONE]);
		return;
	}
	fprintf(stderr, "tern-bench: %s: %s (%s code 0x%llx%s%s)\n", what, reasons[ci->reason],
		ci->app ? "application" : "transport", (unsigned long long)ci->code,
		ci->reason_phrase[0] ? ", " : "", ci->reason_phrase);
}

/* ---- statistics ----------------------------------------------------------- */

/* Latency samples past this many are dropped: a bound on memory for long
 * runs (80 MB), far above what one core completes in the longest run. */
#define LG_MAX_SAMPLES (10u << 20)

void lg_samples_add(struct lg_samples *s, uint64_t ns)
{
	if (s->n == s->cap) {
		if (s->cap >= LG_MAX_SAMPLES)
			return;
		size_t cap = s->cap ? s->cap * 2 : 4096;
		uint64_t *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

void lg_samples_sort(struct lg_samples *s)
{
	if (s->n)
		qsort(s->v, s->n, sizeof(*s->v), cmp_u64);
}

/* Nearest-rank quantile of sorted samples, in milliseconds. */
double lg_quantile_ms(const struct lg_samples *s, double q)
{
	if (!s->n)
		return 0;
	size_t rank = (size_t)ceil(q * (double)s->n);
	if (rank < 1)
		rank = 1;
	if (rank > s->n)
		rank = s->n;
	return (double)s->v[rank - 1] / 1e6;
}

double lg_jain(const double *x, size_t n)
{
	double sum = 0, sq = 0;
	for (size_t i = 0; i < n; i++) {
		sum += x[i];
		sq += x[i] * x[i];
	}
	return n && sq > 0 ? sum * sum / ((double)n * sq) : 0;
}

/* ---- progress --------------------------------------------------------------- */

void lg_progress_update(struct lg_progress *pg, const struct lg_opts *o, uint64_t now, uint64_t done,
			uint64_t elapsed_base)
{
	if (!pg->on || now - pg->last < 250000000)
		return;
	pg->last = now;
	double el = (double)(now - elapsed_base) / 1e9;
	double rate = el > 0 ? (double)done / el : 0;
	double eta = o->duration_s - el;
	if (o->count && rate > 0 && (double)(o->count - (done < o->count ? done : o->count)) / rate < eta)
		eta = (double)(o->count - (done < o->count ? done : o->count)) / rate;
	if (eta < 0)
		eta = 0;
	fprintf(stderr, "\r%s: %llu %s, %.1f/s, %.1f s elapsed, ETA %.1f s   ", o->mode_name,
		(unsigned long long)done, pg->what, rate, el, eta);
}

void lg_progress_end(struct lg_progress *pg)
{
	if (pg->on && pg->last)
		fputc('\n', stderr);
}

/* ---- JSON ----------------------------------------------------------------------- */

static void key(struct lg_json *j, const char *k)
{
	fprintf(j->f, "%s\n%*s\"%s\": ", j->first[j->depth] ? "" : ",", 2 * j->depth + 2, "", k);
	j->first[j->depth] = 0;
}

void lg_json_obj(struct lg_json *j, const char *k)
{
	if (!j->f)
		return;
	key(j, k);
	fputc('{', j->f);
	j->first[++j->depth] = 1;
}

void lg_json_end(struct lg_json *j)
{
	if (!j->f)
		return;
	j->depth--;
	fprintf(j->f, "\n%*s}", 2 * j->depth + 2, "");
}

void lg_json_num(struct lg_json *j, const char *k, double v)
{
	if (!j->f)
		return;
	key(j, k);
	/* JSON has no NaN or infinity: a figure that could not be measured
	 * is null, so a reader never mistakes it for a number */
	if (isfinite(v))
		fprintf(j->f, "%.6g", v);
	else
		fputs("null", j->f);
}

void lg_json_int(struct lg_json *j, const char *k, uint64_t v)
{
	if (!j->f)
		return;
	key(j, k);
	fprintf(j->f, "%llu", (unsigned long long)v);
}

void lg_json_str(struct lg_json *j, const char *k, const char *v)
{
	if (!j->f)
		return;
	key(j, k);
	fputc('"', j->f);
	for (const char *c = v; *c; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(j->f, "\\%c", *c);
		else if ((unsigned char)*c < 0x20)
			fprintf(j->f, "\\u%04x", *c);
		else
			fputc(*c, j->f);
	}
	fputc('"', j->f);
}

void lg_json_nums(struct lg_json *j, const char *k, const double *v, size_t n)
{
	if (!j->f)
		return;
	key(j, k);
	fputc('[', j->f);
	for (size_t i = 0; i < n; i++) {
		if (isfinite(v[i]))
			fprintf(j->f, "%s%.6g", i ? ", " : "", v[i]);
		else
			fprintf(j->f, "%snull", i ? ", " : "");
	}
	fputc(']', j->f);
}

void lg_json_latency(struct lg_json *j, struct lg_samples *s)
{
	lg_samples_sort(s);
	double sum = 0;
	for (size_t i = 0; i < s->n; i++)
		sum += (double)s->v[i];
	lg_json_obj(j, "latency_ms");
	lg_json_int(j, "samples", s->n);
	lg_json_num(j, "p50", s->n ? lg_quantile_ms(s, 0.5) : NAN);
	lg_json_num(j, "p90", s->n ? lg_quantile_ms(s, 0.9) : NAN);
	lg_json_num(j, "p99", s->n ? lg_quantile_ms(s, 0.99) : NAN);
	lg_json_num(j, "p999", s->n ? lg_quantile_ms(s, 0.999) : NAN);
	lg_json_num(j, "mean", s->n ? sum / (double)s->n / 1e6 : NAN);
	lg_json_num(j, "max", s->n ? (double)s->v[s->n - 1] / 1e6 : NAN);
	lg_json_end(j);
	if (!j->f)
		return;
	/* 200 points of the CDF, denser in the tail where p99.9 lives */
	key(j, "latency_cdf");
	fputc('[', j->f);
	for (int i = 0; s->n && i <= 200; i++) {
		double q = i < 150 ? i / 150.0 * 0.99 : 0.99 + (i - 150) / 50.0 * 0.01;
		fprintf(j->f, "%s[%.6g, %.6g]", i ? ", " : "", lg_quantile_ms(s, q), q);
	}
	fputc(']', j->f);
}

int lg_json_open(struct lg_json *j, const struct lg_opts *o)
{
	memset(j, 0, sizeof(*j));
	if (!o->json)
		return 0;
	j->f = fopen(o->json, "w");
	if (!j->f) {
		fprintf(stderr, "tern-bench: cannot write --json %s: %s\n", o->json, strerror(errno));
		return -1;
	}
	static const char *const ab[] = {"none", "handshake", "initial"};
	fputc('{', j->f);
	j->first[0] = 1;
	lg_json_str(j, "tool", "tern-bench");
	lg_json_str(j, "mode", o->mode_name);
	lg_json_str(j, "target", o->target_text);
	lg_json_str(j, "datapath", o->datapath);
	lg_json_str(j, "label", o->label ? o->label : "");
	lg_json_obj(j, "config");
	lg_json_num(j, "duration_s", o->duration_s);
	lg_json_int(j, "count", o->count);
	lg_json_num(j, "rate", o->rate);
	if (o->mode == LG_HANDSHAKE) {
		lg_json_int(j, "concurrency", o->concurrency);
		lg_json_str(j, "abandon", ab[o->abandon]);
	} else if (o->mode == LG_BULK || o->mode == LG_REQUESTS) {
		lg_json_int(j, "conns", o->conns);
		lg_json_int(j, o->mode == LG_BULK ? "streams" : "depth",
			    o->mode == LG_BULK ? o->streams : o->depth);
		lg_json_int(j, "size", o->size);
		lg_json_str(j, "proto", o->perf ? "perf" : "h3");
	} else {
		lg_json_str(j, "sizes", o->sizes_text);
		lg_json_num(j, "limit_rate", o->limit_rate);
		lg_json_num(j, "limit_burst", o->limit_burst);
		lg_json_str(j, "expect", o->echo ? "echo" : "reset");
	}
	lg_json_end(j);
	return 0;
}

int lg_json_close(struct lg_json *j, double elapsed_s, const char *stopped_by)
{
	if (!j->f)
		return 0;
	lg_json_num(j, "elapsed_s", elapsed_s);
	lg_json_str(j, "stopped_by", stopped_by);
	fputs("\n}\n", j->f);
	int bad = ferror(j->f);
	if (fclose(j->f) != 0 || bad) {
		fprintf(stderr, "tern-bench: cannot write the JSON result file\n");
		return -1;
	}
	j->f = NULL;
	return 0;
}
