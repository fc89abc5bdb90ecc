/* One worker step, see include/tern/worker.h. */
#include "tern/worker.h"

#define REPLY_MAX 1500

void tern_worker_init(struct tern_worker *w, struct tern_datapath *dp, unsigned queue,
		      struct tern_endpoint *ep)
{
	memset(w, 0, sizeof(*w));
	w->dp = dp;
	w->queue = queue;
	w->ep = ep;
	w->tx_budget = 4 * TERN_DP_BURST;
}

/* A stateless reply (VN, stateless reset) goes back where the trigger came
 * from, from the address it was sent to. */
static void send_reply(struct tern_worker *w, const struct tern_dp_pkt *in, const uint8_t *reply,
		       size_t len)
{
	struct tern_dp_pkt out;
	if (w->dp->ops->tx_alloc(w->dp, w->queue, &out, len) < 0) {
		w->st.tx_full++;
		return;
	}
	memcpy(out.data, reply, len);
	out.len = (uint32_t)len;
	out.path.local = in->path.local;
	out.path.remote = in->path.remote;
	out.ecn = 0;
	if (w->dp->ops->tx_enqueue(w->dp, w->queue, &out) == 0)
		w->st.replies++;
}

static int step_rx(struct tern_worker *w, uint64_t now)
{
	struct tern_dp_pkt pkts[TERN_DP_BURST];
	uint8_t reply[REPLY_MAX];
	int n = w->dp->ops->rx_burst(w->dp, w->queue, pkts, TERN_DP_BURST);
	if (n <= 0)
		return 0;
	for (int i = 0; i < n; i++) {
		struct tern_dp_pkt *p = &pkts[i];
		if (w->owner && w->dp->ops->handoff) {
			int o = w->owner(w->owner_ctx, p->data, p->len);
			if (o >= 0 && (unsigned)o != w->queue && (unsigned)o < w->dp->n_queues &&
			    w->dp->ops->handoff(w->dp, w->queue, (unsigned)o, p) == 0) {
				w->st.handed_off++;
				continue;
			}
		}
		int r = tern_endpoint_recv_ecn(w->ep, p->data, p->len, &p->path, p->ecn, now, reply,
					       sizeof(reply));
		if (r > 0)
			send_reply(w, p, reply, (size_t)r);
	}
	w->dp->ops->rx_release(w->dp, w->queue, pkts, (unsigned)n);
	w->st.rx += (uint64_t)n;
	return n;
}

static int step_tx(struct tern_worker *w, uint64_t now)
{
	int sent = 0;
	while ((unsigned)sent < w->tx_budget) {
		struct tern_dp_pkt pkt;
		if (w->dp->ops->tx_alloc(w->dp, w->queue, &pkt, TERN_DP_MAX_PAYLOAD) < 0) {
			w->st.tx_full++;
			break;
		}
		struct tern_path path;
		uint8_t ecn = 0;
		int n = tern_endpoint_send_ecn(w->ep, pkt.data, pkt.cap, &path, &ecn, now);
		if (n <= 0)
			break; /* the unused buffer goes back at the flush */
		pkt.len = (uint32_t)n;
		pkt.path = path;
		pkt.ecn = ecn;
		if (w->dp->ops->tx_enqueue(w->dp, w->queue, &pkt) < 0) {
			w->st.tx_full++;
			break;
		}
		sent++;
	}
	return sent;
}

int tern_worker_step(struct tern_worker *w, uint64_t now)
{
	w->st.iterations++;
	int moved = step_rx(w, now);
	if (tern_endpoint_next_timeout(w->ep) <= now)
		tern_endpoint_handle_timeout(w->ep, now);
	int sent = step_tx(w, now);
	w->dp->ops->tx_flush(w->dp, w->queue);
	w->st.tx += (uint64_t)sent;
	return moved + sent;
}

uint64_t tern_worker_next_timeout(const struct tern_worker *w)
{
	return tern_endpoint_next_timeout(w->ep);
}
