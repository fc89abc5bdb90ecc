/* Small helpers both programs share: fatal usage errors, the clock,
 * randomness, durations and whole-file reads. */
#ifndef TERN_TOOLS_UTIL_H
#define TERN_TOOLS_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define EXIT_USAGE 2

/* The program's name, the prefix of every line it prints. */
extern const char *tool_name;

/* "NAME: message" on stderr, then exit status 2. */
void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

uint64_t mono_ns(void);

/* getrandom(), as a tern_rand_fn; aborts rather than run on predictable keys. */
void os_random(void *ctx, uint8_t *buf, size_t len);

/* "30s", "500ms", "2m", "1h", or plain seconds, into milliseconds that fit
 * a varint (max_idle_timeout, RFC 9000 §18.2). 0 or -1. */
int parse_duration_ms(const char *s, uint64_t *ms);

/* argv[*i + 1], advancing *i; dies when the flag has no value. */
const char *flag_value(int argc, char **argv, int *i);
/* Stores v in *slot; dies when the flag was given before. */
void set_once(const char **slot, const char *flag, const char *v);

/* Reads a whole regular file of at most max bytes (NUL-terminated); any
 * failure dies with a line naming the flag it came from. */
uint8_t *read_small_file(const char *flag, const char *path, size_t max, size_t *len);

#endif
