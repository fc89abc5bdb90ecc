/* tern: loads and attaches the SO_REUSEPORT steering program
 * (include/tern/reuseport.h). */
#include "tern/reuseport.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "tern_bpf_shared.h"
#include "tern_reuseport.skel.h"


static int check_args(const int *fds, unsigned n, unsigned cid_len, unsigned worker_offset,
		      char *err, size_t errlen)
{
	if (!fds || n == 0 || n > TERN_REUSEPORT_MAX_WORKERS) {
		tern_errf(err, errlen, "%u sockets: give 1 to %u", n, TERN_REUSEPORT_MAX_WORKERS);
		return TERN_ERR_INVAL;
	}
	if (cid_len == 0 || cid_len > TERN_MAX_CID_LEN || worker_offset >= cid_len) {
		tern_errf(err, errlen, "CID length %u with the worker at offset %u: need 1..%u and an offset inside",
			cid_len, worker_offset, TERN_MAX_CID_LEN);
		return TERN_ERR_INVAL;
	}
	for (unsigned i = 0; i < n; i++) {
		int type = 0, reuse = 0;
		socklen_t l1 = sizeof(type), l2 = sizeof(reuse);
		if (getsockopt(fds[i], SOL_SOCKET, SO_TYPE, &type, &l1) ||
		    getsockopt(fds[i], SOL_SOCKET, SO_REUSEPORT, &reuse, &l2) || type != SOCK_DGRAM ||
		    !reuse) {
			tern_errf(err, errlen, "socket %u (fd %d) is not a UDP socket with SO_REUSEPORT", i,
				fds[i]);
			return TERN_ERR_INVAL;
		}
	}
	return 0;
}

static int fill_and_attach(struct tern_reuseport *skel, const int *fds, unsigned n, char *err,
			   size_t errlen)
{
	int map = bpf_map__fd(skel->maps.workers);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t fd = (uint64_t)fds[i];
		/* The kernel takes a socket only once it is bound in a
		 * reuseport group, and only one group per array. */
		if (bpf_map_update_elem(map, &i, &fd, BPF_ANY)) {
			int e = errno;
			tern_errf(err, errlen, "socket %u (fd %d) cannot join the steering map: %s%s", i,
				fds[i], strerror(e),
				e == EINVAL  ? " (not bound, or in another reuseport group)"
				: e == EBUSY ? " (already steered: attach once per group)"
					     : "");
			return e == EBUSY ? TERN_ERR_STATE : e == EINVAL ? TERN_ERR_INVAL : TERN_ERR_IO;
		}
	}
	int prog = bpf_program__fd(skel->progs.tern_reuseport_select);
	if (setsockopt(fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog, sizeof(prog))) {
		tern_errf(err, errlen, "SO_ATTACH_REUSEPORT_EBPF: %s", strerror(errno));
		return TERN_ERR_IO;
	}
	return 0;
}

int tern_reuseport_attach(const int *fds, unsigned n, unsigned cid_len, unsigned worker_offset,
			  char *err, size_t errlen)
{
	int rc = check_args(fds, n, cid_len, worker_offset, err, errlen);
	if (rc < 0)
		return rc;
	struct tern_reuseport *skel = tern_reuseport__open();
	if (!skel) {
		tern_errf(err, errlen, "cannot open the reuseport program: %s", strerror(errno));
		return TERN_ERR_IO;
	}
	skel->rodata->cfg_cid_len = cid_len;
	skel->rodata->cfg_worker_off = worker_offset;
	skel->rodata->cfg_n_workers = n;
	rc = bpf_map__set_max_entries(skel->maps.workers, n);
	if (rc == 0)
		rc = tern_reuseport__load(skel);
	if (rc) {
		tern_errf(err, errlen, "cannot load the reuseport program: %s", strerror(-rc));
		tern_reuseport__destroy(skel);
		return TERN_ERR_IO;
	}
	rc = fill_and_attach(skel, fds, n, err, errlen);
	/* Attached, the program holds its map and the group holds the
	 * program: our descriptors can go. */
	tern_reuseport__destroy(skel);
	return rc;
}
