/* Test networks for the XDP suite: a network namespace and a veth pair
 * whose host end stays in the test's namespace, IPv4 in 198.18.0.0/15
 * (RFC 2544 benchmarking space) and IPv6 in 2001:2::/48 (RFC 5180). Names
 * and addresses carry the test's pid, so parallel runs and other suites'
 * networks do not collide, and tnet_sweep() removes what a crashed run
 * left. Root only. */
#ifndef TERN_TEST_NETNS_H
#define TERN_TEST_NETNS_H

#include <stddef.h>
#include <stdint.h>

struct tnet {
	char ns[32];
	char host_if[16], ns_if[16];
	char host4[16], host4b[16], ns4[16]; /* host4b: a second host address */
	char host6[48], ns6[48];
	uint8_t host_mac[6], ns_mac[6];
	int up;
};

/* Creates the namespace and the pair with n_queues queues per end. 0, or
 * -1 after undoing what it did. */
int tnet_up(struct tnet *t, unsigned n_queues);
void tnet_down(struct tnet *t);
/* A socket that lives in the namespace (created there, used from here). */
int tnet_socket(const struct tnet *t, int domain, int type);
/* Runs a shell command with a 10 s limit, output discarded; its status. */
int tnet_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs a command and returns its stdout in out (NUL-terminated). */
int tnet_capture(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Removes namespaces left by test processes that no longer exist. */
void tnet_sweep(void);

#endif
