/* Test networks for the XDP suite (netns.h). */
#include "netns.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define NS_PREFIX "tern-xdp-"

int tnet_run(const char *fmt, ...)
{
	char cmd[512], full[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "timeout 10 %s >/dev/null 2>&1", cmd);
	int st = system(full);
	return st == -1 ? -1 : WEXITSTATUS(st);
}

int tnet_capture(char *out, size_t len, const char *fmt, ...)
{
	char cmd[512], full[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "timeout 10 %s 2>&1", cmd);
	out[0] = 0;
	FILE *p = popen(full, "r");
	if (!p)
		return -1;
	size_t n = fread(out, 1, len - 1, p);
	out[n] = 0;
	int st = pclose(p);
	return st == -1 ? -1 : WEXITSTATUS(st);
}

void tnet_sweep(void)
{
	DIR *d = opendir("/var/run/netns");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		int pid, k;
		if (sscanf(e->d_name, NS_PREFIX "%d-%d", &pid, &k) != 2)
			continue;
		if (kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		/* deleting the namespace deletes the veth pair with it */
		tnet_run("ip netns del %s", e->d_name);
	}
	closedir(d);
}

static void fill(struct tnet *t, unsigned k)
{
	unsigned pid = (unsigned)getpid();
	unsigned a = pid & 0xff, b = (k & 31) * 8;
	memset(t, 0, sizeof(*t));
	snprintf(t->ns, sizeof(t->ns), NS_PREFIX "%u-%u", pid, k);
	snprintf(t->host_if, sizeof(t->host_if), "txd%uh%u", pid % 10000000, k % 100);
	snprintf(t->ns_if, sizeof(t->ns_if), "txd%un%u", pid % 10000000, k % 100);
	snprintf(t->host4, sizeof(t->host4), "198.19.%u.%u", a, b + 1);
	snprintf(t->ns4, sizeof(t->ns4), "198.19.%u.%u", a, b + 2);
	snprintf(t->host4b, sizeof(t->host4b), "198.19.%u.%u", a, b + 3);
	snprintf(t->host6, sizeof(t->host6), "2001:2:0:%x:%x::1", pid & 0xffff, k & 0xffff);
	snprintf(t->ns6, sizeof(t->ns6), "2001:2:0:%x:%x::2", pid & 0xffff, k & 0xffff);
	const uint8_t h[6] = {0x02, 0x7e, (uint8_t)(pid >> 8), (uint8_t)pid, (uint8_t)k, 0x01};
	memcpy(t->host_mac, h, 6);
	memcpy(t->ns_mac, h, 6);
	t->ns_mac[5] = 0x02;
}

static const char *mac_str(const uint8_t *m, char *buf)
{
	sprintf(buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
	return buf;
}

int tnet_up(struct tnet *t, unsigned n_queues)
{
	static unsigned counter;
	char hm[18], nm[18];
	tnet_sweep();
	fill(t, counter++);
	mac_str(t->host_mac, hm);
	mac_str(t->ns_mac, nm);
	if (tnet_run("ip netns add %s", t->ns))
		return -1;
	t->up = 1;
	unsigned q = n_queues ? n_queues : 1;
	const char *n = t->ns;
	if (tnet_run("ip link add %s address %s numtxqueues %u numrxqueues %u type veth peer name %s "
		     "address %s netns %s numtxqueues %u numrxqueues %u",
		     t->host_if, hm, q, q, t->ns_if, nm, n, q, q) ||
	    tnet_run("ip addr add %s/29 dev %s", t->host4, t->host_if) ||
	    tnet_run("ip addr add %s/29 dev %s", t->host4b, t->host_if) ||
	    tnet_run("ip -6 addr add %s/64 dev %s nodad", t->host6, t->host_if) ||
	    tnet_run("ip link set %s up", t->host_if) ||
	    tnet_run("ip -n %s addr add %s/29 dev %s", n, t->ns4, t->ns_if) ||
	    tnet_run("ip -n %s -6 addr add %s/64 dev %s nodad", n, t->ns6, t->ns_if) ||
	    tnet_run("ip -n %s link set %s up", n, t->ns_if) ||
	    tnet_run("ip -n %s link set lo up", n)) {
		fprintf(stderr, "tnet_up: setting up %s failed\n", t->ns);
		tnet_down(t);
		return -1;
	}
	return 0;
}

void tnet_down(struct tnet *t)
{
	if (!t->up)
		return;
	tnet_run("ip link del %s", t->host_if);
	tnet_run("ip netns del %s", t->ns);
	t->up = 0;
}

int tnet_socket(const struct tnet *t, int domain, int type)
{
	char path[64];
	snprintf(path, sizeof(path), "/var/run/netns/%s", t->ns);
	int nsfd = open(path, O_RDONLY | O_CLOEXEC);
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int s = -1;
	if (nsfd >= 0 && self >= 0 && setns(nsfd, CLONE_NEWNET) == 0) {
		s = socket(domain, type | SOCK_CLOEXEC, 0);
		if (setns(self, CLONE_NEWNET) != 0) {
			/* cannot come back: this process is useless to the test */
			perror("setns back");
			abort();
		}
	}
	if (nsfd >= 0)
		close(nsfd);
	if (self >= 0)
		close(self);
	return s;
}
