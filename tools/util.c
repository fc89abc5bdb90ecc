/* Helpers both programs share (see util.h). */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tern/common.h"

const char *tool_name = "tern";

void die_usage(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", tool_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_USAGE);
}

uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The kernel's CSPRNG, drawn 4 KiB at a time per thread: a stateless reset
 * or a new CID takes tens of bytes, and a getrandom() call per packet would
 * cost more than the packet. */
static void fill_from_kernel(uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t r = getrandom(buf, len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "%s: getrandom failed: %s\n", tool_name, strerror(errno));
			abort(); /* running on predictable keys is worse */
		}
		buf += r;
		len -= (size_t)r;
	}
}

void os_random(void *ctx, uint8_t *buf, size_t len)
{
	static __thread uint8_t pool[4096];
	static __thread size_t left;
	(void)ctx;
	if (len > sizeof(pool) / 2) {
		fill_from_kernel(buf, len);
		return;
	}
	while (len > 0) {
		if (left == 0) {
			fill_from_kernel(pool, sizeof(pool));
			left = sizeof(pool);
		}
		size_t n = len < left ? len : left;
		uint8_t *src = pool + sizeof(pool) - left;
		memcpy(buf, src, n);
		memset(src, 0, n); /* each byte is handed out once */
		left -= n;
		buf += n;
		len -= n;
	}
}

int parse_duration_ms(const char *s, uint64_t *ms)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -1;
	uint64_t mul;
	if (*end == 0 || strcmp(end, "s") == 0)
		mul = 1000;
	else if (strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "m") == 0)
		mul = 60000;
	else if (strcmp(end, "h") == 0)
		mul = 3600000;
	else
		return -1;
	/* max_idle_timeout is a varint of milliseconds (RFC 9000 §18.2). */
	if (v > TERN_VARINT_MAX / mul)
		return -1;
	*ms = v * mul;
	return 0;
}

const char *flag_value(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		die_usage("%s needs a value", argv[*i]);
	return argv[++*i];
}

void set_once(const char **slot, const char *flag, const char *v)
{
	if (*slot)
		die_usage("%s given twice", flag);
	*slot = v;
}

uint8_t *read_small_file(const char *flag, const char *path, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		die_usage("cannot read %s %s: %s", flag, path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		die_usage("cannot read %s %s: not a regular file", flag, path);
	if ((uint64_t)st.st_size > max)
		die_usage("cannot read %s %s: larger than %zu bytes", flag, path, max);
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	size_t off = 0;
	if (!buf)
		die_usage("out of memory reading %s %s", flag, path);
	while (off < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + off, (size_t)st.st_size - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die_usage("cannot read %s %s: %s", flag, path, r < 0 ? strerror(errno) : "short read");
		off += (size_t)r;
	}
	close(fd);
	buf[off] = 0;
	*len = off;
	return buf;
}
