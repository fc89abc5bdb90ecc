/* Test helper for the XDP suite: opens the AF_XDP datapath on an
 * interface, prints "ready", then waits. A line "exit" (or end of input)
 * makes it exit(0) without closing the datapath, so the test sees what a
 * process leaves behind when it ends without cleaning up; SIGKILL shows
 * the same for a killed one. An alarm bounds its life.
 *
 * usage: xdp_holder IFNAME IPV4 PORT */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tern/xdp.h"

static void quiet(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s IFNAME IPV4 PORT\n", argv[0]);
		return 2;
	}
	alarm(30);
	struct tern_xdp_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.ifname = argv[1];
	cfg.n_listen = 1;
	cfg.listen[0].family = 4;
	cfg.listen[0].port = (uint16_t)atoi(argv[3]);
	cfg.ring_size = 64;
	cfg.log = quiet;
	if (inet_pton(AF_INET, argv[2], cfg.listen[0].ip) != 1) {
		fprintf(stderr, "bad address %s\n", argv[2]);
		return 2;
	}
	struct tern_datapath *dp;
	char err[256];
	if (tern_xdp_open(&dp, &cfg, err, sizeof(err)) < 0) {
		printf("error: %s\n", err);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	char line[64];
	while (fgets(line, sizeof(line), stdin))
		if (strncmp(line, "exit", 4) == 0)
			break;
	/* no close: the kernel must clean up after us */
	exit(0);
}
