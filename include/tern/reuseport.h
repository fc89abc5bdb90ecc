/* tern: SO_REUSEPORT steering by connection ID (DESIGN.md §4), for the
 * kernel-socket datapath with one socket per worker on one port.
 *
 * An SK_REUSEPORT program (bpf/tern_reuseport.bpf.c) reads the first byte
 * of each datagram and, for a short header, the owning worker's byte of the
 * DCID (include/tern/lbcid.h: offset 1 + server_id_len in the CID), and
 * delivers the datagram to that worker's socket, so packets of an
 * established connection never need a hand-off. Long headers (new
 * connections: the client chose the DCID), datagrams too short to hold a
 * CID, and worker bytes with no socket are left to the kernel's 4-tuple
 * hash. Migration-safe: a short header whose CID is not ours simply lands
 * where the hash puts it, and the endpoint there answers it. */
#ifndef TERN_REUSEPORT_H
#define TERN_REUSEPORT_H

#include "tern/common.h"

#define TERN_REUSEPORT_MAX_WORKERS 256

/* fds[w] is worker w's UDP socket; all n are bound to one address and port
 * with SO_REUSEPORT (one reuseport group). cid_len is the fixed length of
 * our server CIDs (1..20) and worker_offset the worker byte's offset in
 * them (< cid_len). Loads the program, fills its socket array and attaches
 * it to the group with SO_ATTACH_REUSEPORT_EBPF; the kernel keeps it until
 * the last socket of the group closes, so nothing needs freeing (its
 * per-CPU decision counters stay readable with `bpftool map dump name
 * rp_counters`). A socket sits in one steering map at most, so a group is
 * attached once (TERN_ERR_STATE the second time; new sockets make a new
 * group). 0, or TERN_ERR_INVAL (bad arguments, a socket that is not a
 * bound SO_REUSEPORT UDP socket) or TERN_ERR_IO, with one line in err. */
int tern_reuseport_attach(const int *fds, unsigned n, unsigned cid_len, unsigned worker_offset,
			  char *err, size_t errlen);

#endif
