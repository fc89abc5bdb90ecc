// SPDX-License-Identifier: MIT
/* tern: SO_REUSEPORT steering by connection ID (DESIGN.md §4,
 * include/tern/reuseport.h).
 *
 * Every worker has one UDP socket in the port's reuseport group; slot w of
 * the `workers` array is worker w's socket. A short header carries our CID
 * right after its first byte, and the CID names its owning worker
 * (include/tern/lbcid.h), so the datagram goes straight to that worker's
 * socket and no hand-off is needed. Long headers (new connections, whose
 * DCID the client chose) and anything we cannot read are left to the
 * kernel's 4-tuple hash by returning SK_PASS without selecting. */
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

#include "tern_bpf_shared.h"

/* sk_reuseport_md's data starts at the UDP header for UDP sockets: the IP
 * layer has pulled its header, udp_rcv has not pulled its own. */
#define UDP_HDR_LEN 8

const volatile __u32 cfg_cid_len = 8;
const volatile __u32 cfg_worker_off = 1; /* the worker byte's offset in the CID */
const volatile __u32 cfg_n_workers = 1;

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, TERN_RP_MAX_WORKERS); /* the loader sets n_workers */
	__type(key, __u32);
	__type(value, __u64);
} workers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TERN_RP_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} rp_counters SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&rp_counters, &idx);
	if (v)
		*v += 1;
}

SEC("sk_reuseport")
int tern_reuseport_select(struct sk_reuseport_md *md)
{
	__u8 first, owner;
	/* bpf_skb_load_bytes, not direct access: it also reads a datagram
	 * whose payload is not in the skb's linear part. */
	if (bpf_skb_load_bytes(md, UDP_HDR_LEN, &first, 1)) {
		count(TERN_RP_CNT_UNROUTED);
		return SK_PASS;
	}
	if (first & 0x80) {
		count(TERN_RP_CNT_LONG);
		return SK_PASS;
	}
	/* A short header holds the whole DCID (RFC 9000 §17.3.1): anything
	 * shorter is not ours, and the endpoint drops it wherever it lands. */
	if (md->len < UDP_HDR_LEN + 1 + cfg_cid_len ||
	    bpf_skb_load_bytes(md, UDP_HDR_LEN + 1 + cfg_worker_off, &owner, 1)) {
		count(TERN_RP_CNT_UNROUTED);
		return SK_PASS;
	}
	__u32 key = owner;
	if (key >= cfg_n_workers) {
		count(TERN_RP_CNT_UNROUTED);
		return SK_PASS;
	}
	if (bpf_sk_select_reuseport(md, &workers, &key, 0) == 0)
		count(TERN_RP_CNT_SELECTED);
	else
		count(TERN_RP_CNT_FAILED);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
