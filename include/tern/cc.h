/* tern: RTT estimation, congestion control and pacing, RFC 9002 §5-§7 and
 * CUBIC (RFC 9438).
 *
 * Everything here is plain state plus arithmetic: no allocation, no clock,
 * no connection. Times are nanoseconds on the caller's monotonic clock and
 * windows are bytes. The connection engine feeds events in; the module never
 * reaches back out. */
#ifndef TERN_CC_H
#define TERN_CC_H

#include "tern/common.h"

#define TERN_NS_PER_MS UINT64_C(1000000)

/* RFC 9002 §6.2.2: the RTT used before any sample exists. */
#define TERN_RTT_INITIAL_NS (333 * TERN_NS_PER_MS)
/* RFC 9002 §6.1.2: the timer granularity, kGranularity. */
#define TERN_RTT_GRANULARITY_NS (1 * TERN_NS_PER_MS)
/* RFC 9002 §7.6.1: kPersistentCongestionThreshold. */
#define TERN_PERSISTENT_CONGESTION_THRESHOLD 3

/* QUIC requires every path to carry 1200-byte datagrams (RFC 9000 §14), and
 * a UDP payload cannot exceed 65527 bytes. */
#define TERN_CC_MIN_DATAGRAM_SIZE 1200
#define TERN_CC_MAX_DATAGRAM_SIZE 65527

/* ---- RTT estimation, RFC 9002 §5 ----------------------------------------- */

struct tern_rtt {
	uint64_t latest_rtt;
	uint64_t min_rtt;      /* 0 until the first sample */
	uint64_t smoothed_rtt; /* TERN_RTT_INITIAL_NS until the first sample */
	uint64_t rttvar;       /* TERN_RTT_INITIAL_NS / 2 until the first sample */
	uint8_t has_sample;
};

void tern_rtt_init(struct tern_rtt *rtt);

/* Takes one RTT sample (RFC 9002 §5.1: ack time minus the send time of the
 * largest newly acknowledged ack-eliciting packet). ack_delay_ns is the
 * peer's decoded ACK Delay; max_ack_delay_ns is the peer's max_ack_delay
 * transport parameter, applied only once the handshake is confirmed. */
void tern_rtt_update(struct tern_rtt *rtt, uint64_t latest_ns, uint64_t ack_delay_ns,
		     int handshake_confirmed, uint64_t max_ack_delay_ns);

/* One probe timeout period without backoff, RFC 9002 §6.2.1. Pass 0 as
 * max_ack_delay_ns for the Initial and Handshake spaces. */
uint64_t tern_rtt_pto(const struct tern_rtt *rtt, uint64_t max_ack_delay_ns);

/* ---- persistent congestion, RFC 9002 §7.6 -------------------------------- */

/* (smoothed_rtt + max(4*rttvar, kGranularity) + max_ack_delay) * 3 */
uint64_t tern_cc_persistent_congestion_duration(const struct tern_rtt *rtt,
						uint64_t max_ack_delay_ns);

/* One sent packet, as the predicate below sees it. */
struct tern_cc_pkt {
	uint64_t sent_time; /* ns */
	uint8_t ack_eliciting;
	uint8_t lost; /* declared lost; 0 = acknowledged or not lost */
};

/* Whether pkts establish persistent congestion: pkts are every packet, of
 * all packet number spaces, sent over the period examined, in send order.
 * Returns 1 when two ack-eliciting lost packets, both sent after the first
 * RTT sample was taken (at first_rtt_sample_time), are further apart than
 * the duration and every packet sent between them was lost too; 0 when not
 * (always 0 before any RTT sample); TERN_ERR_INVAL when pkts are not in send
 * order. */
int tern_cc_persistent_congestion(const struct tern_rtt *rtt, uint64_t max_ack_delay_ns,
				  uint64_t first_rtt_sample_time, const struct tern_cc_pkt *pkts,
				  size_t n);

/* ---- congestion controllers ---------------------------------------------- */

enum tern_cc_algo {
	TERN_CC_NEWRENO = 1, /* RFC 9002 §7, Appendix B */
	TERN_CC_CUBIC = 2,   /* RFC 9438 */
};

struct tern_cc;

/* The hooks a controller implements. Call them through the tern_cc_*
 * functions below, which also keep bytes_in_flight and the recovery flag. */
struct tern_cc_ops {
	const char *name;
	void (*on_sent)(struct tern_cc *cc, uint64_t bytes, uint64_t now);
	/* rtt may be NULL: CUBIC then looks ahead by no RTT. */
	void (*on_acked)(struct tern_cc *cc, uint64_t bytes, uint64_t sent_time, uint64_t now,
			 const struct tern_rtt *rtt);
	void (*on_lost)(struct tern_cc *cc, uint64_t bytes, uint64_t sent_time, uint64_t now);
	void (*on_persistent_congestion)(struct tern_cc *cc, uint64_t now);
	void (*on_ecn_ce)(struct tern_cc *cc, uint64_t sent_time, uint64_t now);
	uint64_t (*cwnd)(const struct tern_cc *cc);
	int (*in_recovery)(const struct tern_cc *cc);
};

extern const struct tern_cc_ops tern_cc_newreno_ops;
extern const struct tern_cc_ops tern_cc_cubic_ops;

struct tern_newreno {
	uint64_t ca_acked; /* bytes acknowledged toward the next +1 datagram */
};

/* Fixed-point fraction bits for CUBIC's sub-byte growth. */
#define TERN_CUBIC_FRAC_BITS 10

struct tern_cubic {
	uint64_t w_max;       /* bytes, RFC 9438 §4.1.2 */
	uint64_t cwnd_prior;  /* cwnd before the last reduction */
	uint64_t cwnd_epoch;  /* cwnd when the current avoidance stage began */
	uint64_t k_ns;        /* K, RFC 9438 §4.2 Figure 2 */
	uint64_t epoch_start; /* t_epoch */
	uint64_t w_est;       /* W_est << TERN_CUBIC_FRAC_BITS, §4.3 */
	uint64_t cwnd_frac;   /* growth below one byte, << TERN_CUBIC_FRAC_BITS */
	uint8_t epoch_valid;
	uint8_t after_timeout; /* persistent congestion: next epoch K = 0, §4.8 */
};

struct tern_cc {
	const struct tern_cc_ops *ops;
	uint64_t max_datagram_size;
	uint64_t min_window; /* kMinimumWindow, RFC 9002 §7.2 */
	uint64_t cwnd;
	uint64_t ssthresh; /* UINT64_MAX until the first congestion event */
	uint64_t bytes_in_flight;
	uint64_t recovery_start; /* congestion_recovery_start_time */
	uint8_t has_recovery_start;
	uint8_t in_recovery; /* no packet sent after recovery_start acked yet */
	uint8_t app_limited;
	union {
		struct tern_newreno newreno;
		struct tern_cubic cubic;
	} u;
};

/* RFC 9002 §7.2: min(10 * mds, max(14720, 2 * mds)). */
static inline uint64_t tern_cc_initial_window(uint64_t mds)
{
	uint64_t w = 2 * mds > 14720 ? 2 * mds : 14720;
	return 10 * mds < w ? 10 * mds : w;
}

/* 0, or TERN_ERR_INVAL for an unknown algorithm or a max_datagram_size
 * outside [TERN_CC_MIN_DATAGRAM_SIZE, TERN_CC_MAX_DATAGRAM_SIZE]. */
int tern_cc_init(struct tern_cc *cc, enum tern_cc_algo algo, uint64_t max_datagram_size);

/* Events for in-flight packets (RFC 9002 §2: ack-eliciting or padding). */
void tern_cc_on_sent(struct tern_cc *cc, uint64_t bytes, uint64_t now);
void tern_cc_on_acked(struct tern_cc *cc, uint64_t bytes, uint64_t sent_time, uint64_t now,
		      const struct tern_rtt *rtt);
void tern_cc_on_lost(struct tern_cc *cc, uint64_t bytes, uint64_t sent_time, uint64_t now);
/* Call after the on_lost calls of the loss that established it. */
void tern_cc_on_persistent_congestion(struct tern_cc *cc, uint64_t now);
/* An increased ECN-CE count; sent_time is that of the largest packet the
 * ACK newly acknowledged (RFC 9002 §7.3.2, B.7). */
void tern_cc_on_ecn_ce(struct tern_cc *cc, uint64_t sent_time, uint64_t now);
/* Bytes leaving flight without an ack or a loss (keys discarded, §6.4). */
void tern_cc_on_discarded(struct tern_cc *cc, uint64_t bytes);
/* RFC 9002 §7.8: the sender is not using its window; no growth meanwhile. */
void tern_cc_set_app_limited(struct tern_cc *cc, int app_limited);

uint64_t tern_cc_cwnd(const struct tern_cc *cc);
int tern_cc_in_recovery(const struct tern_cc *cc);
/* Whether an in-flight packet may go now: bytes_in_flight < cwnd. */
int tern_cc_can_send(const struct tern_cc *cc);

/* RFC 9002 B.4 InCongestionRecovery: sent before (or at) the start of the
 * current recovery period. For controller implementations. */
static inline int tern_cc_sent_in_recovery(const struct tern_cc *cc, uint64_t sent_time)
{
	return cc->has_recovery_start && sent_time <= cc->recovery_start;
}

/* CUBIC's curve, exposed for tests and diagnostics. K in ns for a W_max and
 * cwnd_epoch in bytes (0 when W_max <= cwnd_epoch); W_cubic(t) in bytes for
 * t in ns since the epoch (0 when the curve is below 0). */
uint64_t tern_cubic_k(uint64_t w_max, uint64_t cwnd_epoch, uint64_t mds);
uint64_t tern_cubic_window(uint64_t w_max, uint64_t k_ns, uint64_t t_ns, uint64_t mds);

/* ---- pacing, RFC 9002 §7.7 ----------------------------------------------- */

/* rate = 5/4 * cwnd / smoothed_rtt (RFC 9002 §7.7 suggests N = 1.25). */
#define TERN_PACER_GAIN_NUM 5
#define TERN_PACER_GAIN_DEN 4

/* A token bucket in bytes that fills at the pacing rate and holds at most
 * one initial window, so an idle sender may burst that much (§7.7). */
struct tern_pacer {
	uint64_t mds;
	uint64_t burst;
	uint64_t cwnd; /* rate inputs; 0 = not paced */
	uint64_t srtt;
	int64_t tokens; /* bytes; below 0 after a send the bucket did not cover */
	uint64_t frac;  /* credit below one byte, in 1/(DEN * srtt) bytes */
	uint64_t last;  /* when tokens were last brought up to date */
};

void tern_pacer_init(struct tern_pacer *p, uint64_t max_datagram_size);
/* Sets the rate from cwnd and smoothed_rtt; time before now earns tokens at
 * the old rate. cwnd or srtt 0 turns pacing off. */
void tern_pacer_set_rate(struct tern_pacer *p, uint64_t cwnd, uint64_t smoothed_rtt_ns,
			 uint64_t now);
/* The earliest time (>= now) a max_datagram_size packet may be sent. */
uint64_t tern_pacer_next_send_time(const struct tern_pacer *p, uint64_t now);
void tern_pacer_on_sent(struct tern_pacer *p, uint64_t bytes, uint64_t now);

#endif
