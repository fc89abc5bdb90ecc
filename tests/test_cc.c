/* RTT, NewReno, CUBIC, persistent congestion and pacing, with the numbers
 * worked from the RFC 9002 and RFC 9438 formulas in the comments. */
#include <criterion/criterion.h>
#include <math.h>

#include "tern/cc.h"

#define US(x) ((uint64_t)(x) * 1000u)
#define MS(x) ((uint64_t)(x) * 1000000u)
#define SEC(x) ((uint64_t)(x) * 1000000000u)
#define MDS 1200

static struct tern_rtt rtt_sampled(uint64_t first)
{
	struct tern_rtt r;
	tern_rtt_init(&r);
	tern_rtt_update(&r, first, 0, 0, 0);
	return r;
}

/* ==== RTT, RFC 9002 §5 ==================================================== */

Test(rtt, initial_values_and_pto)
{
	struct tern_rtt r;
	tern_rtt_init(&r);
	cr_assert_eq(r.has_sample, 0);
	cr_assert_eq(r.min_rtt, 0);
	cr_assert_eq(r.smoothed_rtt, MS(333));
	cr_assert_eq(r.rttvar, US(166500)); /* 333 ms / 2 */
	/* §6.2.2: 333 + max(4 * 166.5, 1) = 999 ms, plus max_ack_delay. */
	cr_assert_eq(tern_rtt_pto(&r, 0), MS(999));
	cr_assert_eq(tern_rtt_pto(&r, MS(25)), MS(1024));
}

Test(rtt, first_sample_ignores_ack_delay)
{
	struct tern_rtt r;
	tern_rtt_init(&r);
	/* §5.3: min = srtt = 100 ms, rttvar = 50 ms; the 10 ms delay is not
	 * applied to a first sample. */
	tern_rtt_update(&r, MS(100), MS(10), 1, MS(25));
	cr_assert_eq(r.has_sample, 1);
	cr_assert_eq(r.latest_rtt, MS(100));
	cr_assert_eq(r.min_rtt, MS(100));
	cr_assert_eq(r.smoothed_rtt, MS(100));
	cr_assert_eq(r.rttvar, MS(50));
}

Test(rtt, sample_sequence_with_ack_delay)
{
	struct tern_rtt r = rtt_sampled(MS(100));
	/* latest 120, delay 10: 120 >= 100 + 10, adjusted 110.
	 * rttvar = 3/4 * 50 + 1/4 * |100 - 110| = 40 ms;
	 * srtt = 7/8 * 100 + 1/8 * 110 = 101.25 ms. */
	tern_rtt_update(&r, MS(120), MS(10), 0, MS(25));
	cr_assert_eq(r.min_rtt, MS(100));
	cr_assert_eq(r.rttvar, MS(40));
	cr_assert_eq(r.smoothed_rtt, US(101250));
	/* latest 105, delay 10: 105 < 100 + 10, so the delay is not taken.
	 * rttvar = 3/4 * 40 + 1/4 * |101.25 - 105| = 30.9375 ms;
	 * srtt = 7/8 * 101.25 + 1/8 * 105 = 101.71875 ms. */
	tern_rtt_update(&r, MS(105), MS(10), 0, MS(25));
	cr_assert_eq(r.latest_rtt, MS(105));
	cr_assert_eq(r.rttvar, 30937500);
	cr_assert_eq(r.smoothed_rtt, 101718750);
	/* PTO = 101.71875 + 4 * 30.9375 + 25 = 250.46875 ms. */
	cr_assert_eq(tern_rtt_pto(&r, MS(25)), 250468750);
	cr_assert_eq(tern_rtt_pto(&r, 0), 225468750);
}

Test(rtt, ack_delay_exactly_to_min_rtt_is_subtracted)
{
	struct tern_rtt r = rtt_sampled(MS(100));
	/* latest 110 = min 100 + delay 10: adjusted 100 (the >= boundary).
	 * rttvar = 3/4 * 50 + 0 = 37.5; srtt = 100. */
	tern_rtt_update(&r, MS(110), MS(10), 0, 0);
	cr_assert_eq(r.smoothed_rtt, MS(100));
	cr_assert_eq(r.rttvar, US(37500));
	/* latest 110, delay 10 ms + 1 ns: not subtracted, adjusted 110.
	 * rttvar = 3/4 * 37.5 + 1/4 * 10 = 30.625; srtt = 101.25. */
	tern_rtt_update(&r, MS(110), MS(10) + 1, 0, 0);
	cr_assert_eq(r.smoothed_rtt, US(101250));
	cr_assert_eq(r.rttvar, US(30625));
}

Test(rtt, ack_delay_capped_by_max_ack_delay_after_confirmation)
{
	/* latest 200, delay 50, max_ack_delay 25. */
	struct tern_rtt r = rtt_sampled(MS(100));
	/* Not confirmed: the full 50 is taken, adjusted 150.
	 * rttvar = 37.5 + 12.5 = 50; srtt = 87.5 + 18.75 = 106.25. */
	tern_rtt_update(&r, MS(200), MS(50), 0, MS(25));
	cr_assert_eq(r.rttvar, MS(50));
	cr_assert_eq(r.smoothed_rtt, US(106250));

	r = rtt_sampled(MS(100));
	/* Confirmed: delay capped to 25, adjusted 175.
	 * rttvar = 37.5 + 75/4 = 56.25; srtt = 87.5 + 175/8 = 109.375. */
	tern_rtt_update(&r, MS(200), MS(50), 1, MS(25));
	cr_assert_eq(r.rttvar, US(56250));
	cr_assert_eq(r.smoothed_rtt, US(109375));
	/* PTO = 109.375 + 225 + 25 = 359.375 ms. */
	cr_assert_eq(tern_rtt_pto(&r, MS(25)), US(359375));
}

Test(rtt, min_rtt_tracks_raw_samples)
{
	struct tern_rtt r = rtt_sampled(MS(100));
	/* A lower sample lowers min_rtt first, and the delay test uses the
	 * new minimum: 80 < 80 + 5, so nothing is subtracted.
	 * rttvar = 37.5 + 20/4 = 42.5; srtt = 87.5 + 10 = 97.5. */
	tern_rtt_update(&r, MS(80), MS(5), 0, 0);
	cr_assert_eq(r.min_rtt, MS(80));
	cr_assert_eq(r.rttvar, US(42500));
	cr_assert_eq(r.smoothed_rtt, US(97500));
	/* A higher sample leaves min_rtt alone, even with its delay taken:
	 * min_rtt never sees adjusted values. */
	tern_rtt_update(&r, MS(150), MS(60), 0, 0);
	cr_assert_eq(r.min_rtt, MS(80));
}

Test(rtt, hostile_ack_delay_does_not_wrap)
{
	struct tern_rtt r = rtt_sampled(MS(100));
	/* A peer-chosen ACK Delay near 2^62 must not overflow min_rtt + delay
	 * into "subtract it". adjusted stays 100: srtt 100, rttvar 37.5. */
	tern_rtt_update(&r, MS(100), UINT64_MAX - MS(50), 0, 0);
	cr_assert_eq(r.smoothed_rtt, MS(100));
	cr_assert_eq(r.rttvar, US(37500));
	/* A huge sample saturates the PTO instead of wrapping. */
	tern_rtt_update(&r, UINT64_MAX, 0, 0, 0);
	cr_assert_eq(tern_rtt_pto(&r, UINT64_MAX), UINT64_MAX);
	cr_assert_geq(r.smoothed_rtt, UINT64_MAX / 8);
}

Test(rtt, pto_granularity_floor)
{
	/* First sample 100 us: rttvar 50 us, 4 * rttvar = 200 us < 1 ms, so
	 * kGranularity is used: PTO = 0.1 + 1 + max_ack_delay. */
	struct tern_rtt r = rtt_sampled(US(100));
	cr_assert_eq(tern_rtt_pto(&r, 0), US(1100));
	cr_assert_eq(tern_rtt_pto(&r, MS(25)), US(26100));
	/* 250 us: 4 * 125 = 500 us, still floored. 300 us: 4 * 150 = 600.
	 * At 500 us: 4 * 250 = 1000 us = kGranularity exactly. */
	r = rtt_sampled(US(500));
	cr_assert_eq(tern_rtt_pto(&r, 0), US(1500));
	r = rtt_sampled(US(600));
	cr_assert_eq(tern_rtt_pto(&r, 0), US(1800)); /* 0.6 + 4 * 0.3 */
}

/* ==== persistent congestion, RFC 9002 §7.6 =============================== */

#define L(t) {MS(t), 1, 1} /* ack-eliciting, lost */
#define N(t) {MS(t), 0, 1} /* not ack-eliciting, lost */
#define A(t) {MS(t), 1, 0} /* ack-eliciting, acknowledged */

/* srtt 100, rttvar 50, max_ack_delay 25:
 * (100 + max(200, 1) + 25) * 3 = 975 ms. */
static struct tern_rtt pc_rtt(void)
{
	return rtt_sampled(MS(100));
}

Test(persistent, duration)
{
	struct tern_rtt r = pc_rtt();
	cr_assert_eq(tern_cc_persistent_congestion_duration(&r, MS(25)), MS(975));
	/* Initial/Handshake: max_ack_delay 0, (100 + 200) * 3. */
	cr_assert_eq(tern_cc_persistent_congestion_duration(&r, 0), MS(900));
	/* Granularity: (0.1 + 1) * 3 = 3.3 ms. */
	r = rtt_sampled(US(100));
	cr_assert_eq(tern_cc_persistent_congestion_duration(&r, 0), US(3300));
	/* Before a sample: (333 + 666 + 25) * 3 = 3072 ms. */
	tern_rtt_init(&r);
	cr_assert_eq(tern_cc_persistent_congestion_duration(&r, MS(25)), MS(3072));
}

Test(persistent, needs_an_rtt_sample)
{
	struct tern_rtt r;
	tern_rtt_init(&r);
	struct tern_cc_pkt p[] = {L(1000), L(10000)};
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), 0, p, 2), 0);
}

Test(persistent, span_boundary)
{
	struct tern_rtt r = pc_rtt();
	struct tern_cc_pkt eq[] = {L(1000), L(1975)}; /* exactly 975: no */
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), MS(500), eq, 2), 0);
	struct tern_cc_pkt over[] = {L(1000), {MS(1975) + 1, 1, 1}}; /* 975 ms + 1 ns */
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), MS(500), over, 2), 1);
	/* Same span without max_ack_delay (900 ms) is established sooner. */
	struct tern_cc_pkt short_span[] = {L(1000), L(1901)};
	cr_assert_eq(tern_cc_persistent_congestion(&r, 0, MS(500), short_span, 2), 1);
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), MS(500), short_span, 2), 0);
}

Test(persistent, an_ack_in_between_breaks_it)
{
	struct tern_rtt r = pc_rtt();
	struct tern_cc_pkt p[] = {L(1000), A(1500), L(2000)};
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), MS(500), p, 3), 0);
	/* A non-ack-eliciting packet that was not lost breaks it as well. */
	struct tern_cc_pkt q[] = {L(1000), {MS(1500), 0, 0}, L(2000)};
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), MS(500), q, 3), 0);
}

Test(persistent, non_ack_eliciting_inside_but_not_at_the_ends)
{
	struct tern_rtt r = pc_rtt();
	struct tern_cc_pkt inside[] = {L(1000), N(1500), L(2000)};
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), MS(500), inside, 3), 1);
	/* The ack-eliciting ones span 1100..2000 = 900 only. */
	struct tern_cc_pkt ends[] = {N(1000), L(1100), L(2000), N(2100)};
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), MS(500), ends, 4), 0);
}

Test(persistent, packets_before_first_sample_do_not_count)
{
	struct tern_rtt r = pc_rtt();
	/* First sample taken at 1000 ms: a packet sent at 1000 was not sent
	 * after it (B.8: time_sent > first_rtt_sample). */
	struct tern_cc_pkt p[] = {L(1000), L(1976)};
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), MS(1000), p, 2), 0);
	struct tern_cc_pkt q[] = {L(1000), L(1001), L(1977)}; /* 976 > 975 */
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), MS(1000), q, 3), 1);
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), MS(1001), q, 3), 0);
}

Test(persistent, second_run_found)
{
	struct tern_rtt r = pc_rtt();
	/* Run 1 spans 500, run 2 (after the ack at 1600) spans 1000. */
	struct tern_cc_pkt p[] = {L(1000), L(1500), A(1600), L(1700), L(2700)};
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), MS(500), p, 5), 1);
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), MS(500), p, 4), 0);
	/* Two runs each under 975 whose union would exceed it: no. */
	struct tern_cc_pkt q[] = {L(1000), L(1900), A(1950), L(2000), L(2900)};
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), MS(500), q, 5), 0);
}

Test(persistent, degenerate_inputs)
{
	struct tern_rtt r = pc_rtt();
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), MS(500), NULL, 0), 0);
	struct tern_cc_pkt one[] = {L(1000)};
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), MS(500), one, 1), 0);
	struct tern_cc_pkt unsorted[] = {L(2000), L(1000), L(5000)};
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), MS(500), unsorted, 3),
		     TERN_ERR_INVAL);
	struct tern_cc_pkt same[] = {L(1000), L(1000)};
	cr_assert_eq(tern_cc_persistent_congestion(&r, MS(25), MS(500), same, 2), 0);
}

/* ==== controller setup ==================================================== */

Test(cc, init_windows)
{
	struct tern_cc cc;
	/* §7.2: min(10 * 1200, max(14720, 2400)) = 12000; minimum 2400. */
	cr_assert_eq(tern_cc_init(&cc, TERN_CC_NEWRENO, 1200), 0);
	cr_assert_eq(tern_cc_cwnd(&cc), 12000);
	cr_assert_eq(cc.min_window, 2400);
	cr_assert_eq(cc.ssthresh, UINT64_MAX);
	cr_assert_eq(cc.bytes_in_flight, 0);
	cr_assert_eq(tern_cc_in_recovery(&cc), 0);
	cr_assert_eq(cc.ops, &tern_cc_newreno_ops);
	cr_assert_str_eq(cc.ops->name, "newreno");
	/* min(14720, max(14720, 2944)) = 14720; minimum 2944. */
	cr_assert_eq(tern_cc_init(&cc, TERN_CC_NEWRENO, 1472), 0);
	cr_assert_eq(tern_cc_cwnd(&cc), 14720);
	cr_assert_eq(cc.min_window, 2944);
	/* 1500: min(15000, 14720) = 14720. 9000: min(90000, 18000). */
	cr_assert_eq(tern_cc_initial_window(1500), 14720);
	cr_assert_eq(tern_cc_initial_window(1472), 14720);
	cr_assert_eq(tern_cc_initial_window(9000), 18000);
	cr_assert_eq(tern_cc_init(&cc, TERN_CC_CUBIC, 1200), 0);
	cr_assert_eq(tern_cc_cwnd(&cc), 12000);
	cr_assert_eq(cc.ops, &tern_cc_cubic_ops);
	cr_assert_str_eq(cc.ops->name, "cubic");
	cr_assert_eq(cc.u.cubic.w_max, 0);
}

Test(cc, init_rejects_bad_arguments)
{
	struct tern_cc cc;
	cr_assert_eq(tern_cc_init(&cc, TERN_CC_NEWRENO, 1199), TERN_ERR_INVAL);
	cr_assert_eq(tern_cc_init(&cc, TERN_CC_CUBIC, 0), TERN_ERR_INVAL);
	cr_assert_eq(tern_cc_init(&cc, TERN_CC_CUBIC, 65528), TERN_ERR_INVAL);
	cr_assert_eq(tern_cc_init(&cc, TERN_CC_CUBIC, 65527), 0);
	cr_assert_eq(tern_cc_init(&cc, (enum tern_cc_algo)0, 1200), TERN_ERR_INVAL);
	cr_assert_eq(tern_cc_init(&cc, (enum tern_cc_algo)3, 1200), TERN_ERR_INVAL);
}

/* ==== NewReno, RFC 9002 §7 ================================================ */

static struct tern_cc newreno(void)
{
	struct tern_cc cc;
	cr_assert_eq(tern_cc_init(&cc, TERN_CC_NEWRENO, MDS), 0);
	return cc;
}

Test(newreno, slow_start_grows_by_bytes_acked)
{
	struct tern_cc cc = newreno();
	for (int i = 0; i < 10; i++)
		tern_cc_on_sent(&cc, MDS, MS(1 + i));
	cr_assert_eq(cc.bytes_in_flight, 12000);
	for (int i = 0; i < 10; i++) {
		tern_cc_on_acked(&cc, MDS, MS(1 + i), MS(100 + i), NULL);
		cr_assert_eq(tern_cc_cwnd(&cc), 12000 + (uint64_t)(i + 1) * MDS);
	}
	cr_assert_eq(tern_cc_cwnd(&cc), 24000);
	cr_assert_eq(cc.bytes_in_flight, 0);
	/* A 700-byte packet grows slow start by 700. */
	tern_cc_on_acked(&cc, 700, MS(20), MS(120), NULL);
	cr_assert_eq(tern_cc_cwnd(&cc), 24700);
}

Test(newreno, halving_and_one_reduction_per_recovery_period)
{
	struct tern_cc cc = newreno();
	/* 12000 * 0.5: ssthresh = cwnd = 6000. */
	tern_cc_on_lost(&cc, MDS, MS(10), MS(100));
	cr_assert_eq(cc.ssthresh, 6000);
	cr_assert_eq(tern_cc_cwnd(&cc), 6000);
	cr_assert_eq(tern_cc_in_recovery(&cc), 1);
	/* Sent before, or exactly at, the recovery start: same event. */
	tern_cc_on_lost(&cc, MDS, MS(50), MS(110));
	tern_cc_on_lost(&cc, MDS, MS(100), MS(120));
	tern_cc_on_ecn_ce(&cc, MS(90), MS(130));
	cr_assert_eq(tern_cc_cwnd(&cc), 6000);
	cr_assert_eq(cc.ssthresh, 6000);
	/* Sent 1 ns after the recovery start: a new event, 3000. */
	tern_cc_on_lost(&cc, MDS, MS(100) + 1, MS(200));
	cr_assert_eq(cc.ssthresh, 3000);
	cr_assert_eq(tern_cc_cwnd(&cc), 3000);
	/* Next: ssthresh 1500 (B.6 does not floor it), cwnd floored at 2400. */
	tern_cc_on_lost(&cc, MDS, MS(201), MS(300));
	cr_assert_eq(cc.ssthresh, 1500);
	cr_assert_eq(tern_cc_cwnd(&cc), 2400);
	tern_cc_on_lost(&cc, MDS, MS(301), MS(400));
	cr_assert_eq(cc.ssthresh, 1200);
	cr_assert_eq(tern_cc_cwnd(&cc), 2400);
}

Test(newreno, recovery_ends_on_ack_of_packet_sent_after_it)
{
	struct tern_cc cc = newreno();
	tern_cc_on_lost(&cc, MDS, MS(10), MS(100));
	/* An ACK for a packet from before the reduction: no growth, still in
	 * recovery (B.5). */
	tern_cc_on_acked(&cc, MDS, MS(50), MS(150), NULL);
	cr_assert_eq(tern_cc_cwnd(&cc), 6000);
	cr_assert_eq(tern_cc_in_recovery(&cc), 1);
	tern_cc_on_acked(&cc, MDS, MS(100), MS(160), NULL);
	cr_assert_eq(tern_cc_in_recovery(&cc), 1);
	/* Sent after the start: recovery over, congestion avoidance. */
	tern_cc_on_acked(&cc, MDS, MS(101), MS(200), NULL);
	cr_assert_eq(tern_cc_in_recovery(&cc), 0);
	/* A later loss of an old packet still reduces nothing: the period is
	 * defined by send times, not by the flag. */
	tern_cc_on_lost(&cc, MDS, MS(60), MS(210));
	cr_assert_eq(tern_cc_cwnd(&cc), 6000);
}

Test(newreno, congestion_avoidance_one_datagram_per_window)
{
	struct tern_cc cc = newreno();
	tern_cc_on_lost(&cc, MDS, MS(10), MS(100)); /* cwnd = ssthresh = 6000 */
	/* §7.3.3: cwnd 6000 = 5 datagrams; the 5th ACK adds one datagram. */
	for (int i = 0; i < 4; i++) {
		tern_cc_on_acked(&cc, MDS, MS(110 + i), MS(200 + i), NULL);
		cr_assert_eq(tern_cc_cwnd(&cc), 6000);
	}
	tern_cc_on_acked(&cc, MDS, MS(115), MS(205), NULL);
	cr_assert_eq(tern_cc_cwnd(&cc), 7200);
	/* Now 7200 = 6 datagrams. */
	for (int i = 0; i < 5; i++)
		tern_cc_on_acked(&cc, MDS, MS(120 + i), MS(300 + i), NULL);
	cr_assert_eq(tern_cc_cwnd(&cc), 7200);
	tern_cc_on_acked(&cc, MDS, MS(130), MS(310), NULL);
	cr_assert_eq(tern_cc_cwnd(&cc), 8400);
	/* 8400 = 7 datagrams: the 7th ACK takes it to 9600. Partial bytes
	 * carry over: 600 + 8400 < 9600, and the next 600 complete it. */
	for (int i = 0; i < 7; i++)
		tern_cc_on_acked(&cc, MDS, MS(140 + i), MS(400 + i), NULL);
	tern_cc_on_acked(&cc, 600, MS(150), MS(410), NULL);
	cr_assert_eq(tern_cc_cwnd(&cc), 9600);
	tern_cc_on_acked(&cc, 8400, MS(151), MS(411), NULL); /* 600 + 8400 < 9600 */
	cr_assert_eq(tern_cc_cwnd(&cc), 9600);
	tern_cc_on_acked(&cc, 600, MS(152), MS(412), NULL);
	cr_assert_eq(tern_cc_cwnd(&cc), 10800);
}

Test(newreno, persistent_congestion_to_minimum_window)
{
	struct tern_cc cc = newreno();
	tern_cc_on_lost(&cc, MDS, MS(10), MS(100));
	tern_cc_on_persistent_congestion(&cc, MS(100));
	cr_assert_eq(tern_cc_cwnd(&cc), 2400);
	cr_assert_eq(cc.ssthresh, 6000);
	cr_assert_eq(tern_cc_in_recovery(&cc), 0);
	/* B.8 clears the recovery start: even an old packet's ACK now grows
	 * the window, in slow start up to ssthresh. */
	tern_cc_on_acked(&cc, MDS, MS(50), MS(150), NULL);
	cr_assert_eq(tern_cc_cwnd(&cc), 3600);
	/* And an old packet's loss is a new congestion event: 3600 / 2. */
	tern_cc_on_lost(&cc, MDS, MS(20), MS(160));
	cr_assert_eq(cc.ssthresh, 1800);
	cr_assert_eq(tern_cc_cwnd(&cc), 2400);
}

Test(newreno, ecn_ce_is_a_congestion_event)
{
	struct tern_cc cc = newreno();
	tern_cc_on_ecn_ce(&cc, MS(10), MS(100));
	cr_assert_eq(tern_cc_cwnd(&cc), 6000);
	cr_assert_eq(cc.ssthresh, 6000);
	cr_assert_eq(tern_cc_in_recovery(&cc), 1);
	tern_cc_on_ecn_ce(&cc, MS(20), MS(150));
	cr_assert_eq(tern_cc_cwnd(&cc), 6000);
	tern_cc_on_ecn_ce(&cc, MS(120), MS(200));
	cr_assert_eq(tern_cc_cwnd(&cc), 3000);
	/* CE touches no bytes in flight. */
	cr_assert_eq(cc.bytes_in_flight, 0);
}

Test(newreno, bytes_in_flight_and_can_send)
{
	struct tern_cc cc = newreno();
	cr_assert_eq(tern_cc_can_send(&cc), 1);
	for (int i = 0; i < 10; i++)
		tern_cc_on_sent(&cc, MDS, MS(1 + i));
	cr_assert_eq(cc.bytes_in_flight, 12000);
	cr_assert_eq(tern_cc_can_send(&cc), 0); /* 12000 is not < 12000 */
	tern_cc_on_acked(&cc, MDS, MS(1), MS(100), NULL);
	cr_assert_eq(cc.bytes_in_flight, 10800);
	cr_assert_eq(tern_cc_cwnd(&cc), 13200);
	cr_assert_eq(tern_cc_can_send(&cc), 1);
	tern_cc_on_lost(&cc, MDS, MS(2), MS(110)); /* 13200 / 2 */
	cr_assert_eq(cc.bytes_in_flight, 9600);
	cr_assert_eq(tern_cc_cwnd(&cc), 6600);
	cr_assert_eq(tern_cc_can_send(&cc), 0);
	tern_cc_on_discarded(&cc, 9600);
	cr_assert_eq(cc.bytes_in_flight, 0);
	cr_assert_eq(tern_cc_can_send(&cc), 1);
	/* Removing more than is in flight saturates at 0. */
	tern_cc_on_discarded(&cc, 5000);
	cr_assert_eq(cc.bytes_in_flight, 0);
	tern_cc_on_sent(&cc, 100, MS(200));
	tern_cc_on_acked(&cc, MDS, MS(200), MS(300), NULL);
	cr_assert_eq(cc.bytes_in_flight, 0);
	tern_cc_on_sent(&cc, 100, MS(300));
	tern_cc_on_lost(&cc, MDS, MS(300), MS(400));
	cr_assert_eq(cc.bytes_in_flight, 0);
}

Test(newreno, app_limited_does_not_grow)
{
	struct tern_cc cc = newreno();
	tern_cc_set_app_limited(&cc, 5);
	cr_assert_eq(cc.app_limited, 1);
	tern_cc_on_acked(&cc, MDS, MS(1), MS(100), NULL);
	cr_assert_eq(tern_cc_cwnd(&cc), 12000);
	tern_cc_set_app_limited(&cc, 0);
	tern_cc_on_acked(&cc, MDS, MS(2), MS(101), NULL);
	cr_assert_eq(tern_cc_cwnd(&cc), 13200);
	/* A loss still reduces while app-limited. */
	tern_cc_set_app_limited(&cc, 1);
	tern_cc_on_lost(&cc, MDS, MS(3), MS(110));
	cr_assert_eq(tern_cc_cwnd(&cc), 6600);
}

/* ==== CUBIC, RFC 9438 ===================================================== */

/* The reference curve in doubles: Figure 1 and Figure 2, windows in bytes. */
static double ref_k_s(double w_max, double epoch, double mds)
{
	return cbrt((w_max - epoch) / mds / 0.4);
}

static double ref_w(double w_max, double k_s, double t_s, double mds)
{
	return 0.4 * pow(t_s - k_s, 3) * mds + w_max;
}

Test(cubic, k_exact_values)
{
	/* W_max 36 segments (43200), cwnd_epoch 0.7 * 43200 = 30240:
	 * K = cbrt(10.8 / 0.4) = cbrt(27) = 3 s. */
	cr_assert_eq(tern_cubic_k(43200, 30240, MDS), SEC(3));
	/* 0.4 segments (480 bytes) -> K = 1 s; 400 segments -> K = 10 s. */
	cr_assert_eq(tern_cubic_k(1000, 520, MDS), SEC(1));
	cr_assert_eq(tern_cubic_k(1000000, 520000, MDS), SEC(10));
	/* No concave part when W_max <= cwnd_epoch. */
	cr_assert_eq(tern_cubic_k(30240, 30240, MDS), 0);
	cr_assert_eq(tern_cubic_k(1000, 43200, MDS), 0);
	/* 1472-byte datagrams: 0.4 * 125 segments = 50 * 1472 -> K = 5 s. */
	cr_assert_eq(tern_cubic_k(50 * 1472 + 1000, 1000, 1472), SEC(5));
}

Test(cubic, k_matches_formula)
{
	static const double cases[][3] = {
		{120000, 84000, 1200},        /* cbrt(75) = 4.2172 s */
		{1200000, 840000, 1200},      /* cbrt(750) */
		{14720, 10304, 1472},         /* small window */
		{1e9, 7e8, 1200},             /* ~800 MB window */
		{64000, 63999, 1200},         /* one byte below */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double want = ref_k_s(cases[i][0], cases[i][1], cases[i][2]) * 1e9;
		uint64_t k = tern_cubic_k((uint64_t)cases[i][0], (uint64_t)cases[i][1],
					  (uint64_t)cases[i][2]);
		/* Microsecond resolution, rounded down. */
		cr_assert(fabs((double)k - want) <= 1000.0, "case %zu: %llu vs %.0f", i,
			  (unsigned long long)k, want);
		cr_assert_leq((double)k, want + 1.0);
	}
}

Test(cubic, window_exact_values)
{
	/* K = 3 s, W_max 43200, C * mds = 480 bytes/s^3:
	 * W(t) = 480 * (t - 3)^3 + 43200. */
	static const struct {
		uint64_t t;
		uint64_t w;
	} v[] = {
		{0, 30240},             /* 43200 - 480 * 27 = cwnd_epoch */
		{SEC(1), 39360},        /* - 480 * 8 */
		{SEC(2), 42720},        /* - 480 */
		{MS(2500), 43140},      /* - 480 / 8 */
		{SEC(3), 43200},        /* plateau */
		{MS(3500), 43260},      /* + 60 */
		{SEC(4), 43680},        /* + 480: convex from here */
		{SEC(5), 47040},        /* + 3840 */
		{SEC(7), 73920},        /* + 480 * 64 */
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		cr_assert_eq(tern_cubic_window(43200, SEC(3), v[i].t, MDS), v[i].w, "t=%llu",
			     (unsigned long long)v[i].t);
}

Test(cubic, window_matches_formula)
{
	uint64_t k = tern_cubic_k(120000, 84000, MDS);
	double ks = (double)k / 1e9;
	for (uint64_t t = 0; t <= SEC(12); t += MS(370)) {
		double want = ref_w(120000, ks, (double)t / 1e9, MDS);
		double got = (double)tern_cubic_window(120000, k, t, MDS);
		cr_assert(fabs(got - want) <= 2.0, "t=%llu: %.1f vs %.1f", (unsigned long long)t,
			  got, want);
	}
}

Test(cubic, window_extremes)
{
	/* Far below: clamps at 0 instead of wrapping. */
	cr_assert_eq(tern_cubic_window(1000, SEC(100), 0, MDS), 0);
	/* Far beyond: saturates, stays monotonic. */
	uint64_t a = tern_cubic_window(43200, SEC(3), SEC(3600), MDS);
	uint64_t b = tern_cubic_window(43200, SEC(3), UINT64_MAX, MDS);
	cr_assert_gt(a, 43200);
	cr_assert_geq(b, a);
	cr_assert_eq(tern_cubic_window(UINT64_MAX, 0, SEC(1), MDS), UINT64_C(1) << 62);
	cr_assert_eq(tern_cubic_window(UINT64_C(1) << 62, SEC(3), SEC(5), MDS), UINT64_C(1) << 62);
}

static struct tern_cc cubic(void)
{
	struct tern_cc cc;
	cr_assert_eq(tern_cc_init(&cc, TERN_CC_CUBIC, MDS), 0);
	return cc;
}

/* Slow start from 12000 to 43200 (26 ACKs), then a loss at 100 ms. */
static struct tern_cc cubic_after_loss(void)
{
	struct tern_cc cc = cubic();
	for (int i = 0; i < 26; i++)
		tern_cc_on_acked(&cc, MDS, MS(1), MS(50), NULL);
	cr_assert_eq(tern_cc_cwnd(&cc), 43200);
	tern_cc_on_lost(&cc, MDS, MS(2), MS(100));
	return cc;
}

Test(cubic, loss_reduces_by_beta)
{
	struct tern_cc cc = cubic_after_loss();
	/* §4.6: ssthresh = cwnd = 0.7 * 43200 = 30240. First loss: W_max is
	 * the window before the reduction. */
	cr_assert_eq(cc.ssthresh, 30240);
	cr_assert_eq(tern_cc_cwnd(&cc), 30240);
	cr_assert_eq(cc.u.cubic.w_max, 43200);
	cr_assert_eq(cc.u.cubic.cwnd_prior, 43200);
	cr_assert_eq(tern_cc_in_recovery(&cc), 1);
	/* Same recovery period: no second reduction, for loss and CE. */
	tern_cc_on_lost(&cc, MDS, MS(50), MS(120));
	tern_cc_on_lost(&cc, MDS, MS(100), MS(130));
	tern_cc_on_ecn_ce(&cc, MS(99), MS(140));
	cr_assert_eq(tern_cc_cwnd(&cc), 30240);
	cr_assert_eq(cc.u.cubic.w_max, 43200);
	/* ACKs of packets from before the reduction neither grow the window
	 * nor end recovery. */
	tern_cc_on_acked(&cc, MDS, MS(60), MS(150), NULL);
	cr_assert_eq(tern_cc_cwnd(&cc), 30240);
	cr_assert_eq(tern_cc_in_recovery(&cc), 1);
}

Test(cubic, fast_convergence_lowers_w_max)
{
	struct tern_cc cc = cubic_after_loss();
	/* A new loss with cwnd 30240 < W_max 43200 (§4.7):
	 * W_max = 30240 * (1 + 0.7) / 2 = 25704; ssthresh = 30240 * 0.7
	 * = 21168. */
	tern_cc_on_lost(&cc, MDS, MS(150), MS(200));
	cr_assert_eq(cc.u.cubic.w_max, 25704);
	cr_assert_eq(cc.u.cubic.cwnd_prior, 30240);
	cr_assert_eq(cc.ssthresh, 21168);
	cr_assert_eq(tern_cc_cwnd(&cc), 21168);
	/* Again below W_max: 21168 * 0.85 = 17992.8 -> 17992;
	 * 21168 * 0.7 = 14817.6 -> 14817. */
	tern_cc_on_ecn_ce(&cc, MS(250), MS(300));
	cr_assert_eq(cc.u.cubic.w_max, 17992);
	cr_assert_eq(tern_cc_cwnd(&cc), 14817);
}

Test(cubic, no_fast_convergence_above_w_max)
{
	struct tern_cc cc = cubic();
	/* W_max 0 < 12000: W_max = 12000, cwnd 8400. */
	tern_cc_on_lost(&cc, MDS, MS(1), MS(100));
	cr_assert_eq(cc.u.cubic.w_max, 12000);
	cr_assert_eq(tern_cc_cwnd(&cc), 8400);
	/* Put the window past W_max, then lose again: cwnd >= W_max keeps
	 * W_max = cwnd, and 13000 * 0.7 = 9100. */
	cc.cwnd = 13000;
	tern_cc_on_lost(&cc, MDS, MS(200), MS(300));
	cr_assert_eq(cc.u.cubic.w_max, 13000);
	cr_assert_eq(tern_cc_cwnd(&cc), 9100);
}

Test(cubic, epoch_begins_on_first_ack_after_recovery)
{
	struct tern_cc cc = cubic_after_loss();
	struct tern_rtt r = rtt_sampled(MS(100));
	tern_cc_on_acked(&cc, MDS, MS(150), SEC(1), &r);
	cr_assert_eq(tern_cc_in_recovery(&cc), 0);
	cr_assert_eq(cc.u.cubic.epoch_valid, 1);
	cr_assert_eq(cc.u.cubic.epoch_start, SEC(1));
	cr_assert_eq(cc.u.cubic.cwnd_epoch, 30240);
	cr_assert_eq(cc.u.cubic.k_ns, SEC(3));
	/* §4.3: W_est = 30240 + 9/17 * 1200 * 1200 / 30240 = 30265.2; at
	 * t = 0 W_cubic = 30240 < W_est: Reno-friendly, cwnd = 30265. */
	cr_assert_eq(cc.u.cubic.w_est >> TERN_CUBIC_FRAC_BITS, 30265);
	cr_assert_eq(tern_cc_cwnd(&cc), 30265);
}

Test(cubic, reno_friendly_region_takes_over)
{
	struct tern_cc cc = cubic_after_loss();
	struct tern_rtt r = rtt_sampled(MS(1));
	/* Ten ACKs in the same instant: W_cubic(0) stays 30240 while W_est
	 * climbs by 9/17 * 1200^2 / cwnd each time, so cwnd follows W_est. */
	double w = 30240;
	for (int i = 0; i < 10; i++) {
		tern_cc_on_acked(&cc, MDS, MS(150), SEC(1), &r);
		w += 9.0 / 17.0 * 1200.0 * 1200.0 / floor(w);
		cr_assert_eq(tern_cc_cwnd(&cc), cc.u.cubic.w_est >> TERN_CUBIC_FRAC_BITS);
		cr_assert(fabs((double)tern_cc_cwnd(&cc) - w) <= 1.0, "ack %d: %llu vs %.2f", i,
			  (unsigned long long)tern_cc_cwnd(&cc), w);
	}
	cr_assert_gt(tern_cc_cwnd(&cc), 30240 + 240);
	cr_assert_gt(tern_cc_cwnd(&cc), tern_cubic_window(43200, SEC(3), 0, MDS));
}

Test(cubic, reno_friendly_alpha_one_at_cwnd_prior)
{
	struct tern_cc cc = cubic();
	tern_cc_on_lost(&cc, MDS, MS(1), MS(100));    /* W_max 12000, cwnd 8400 */
	tern_cc_on_persistent_congestion(&cc, MS(100)); /* cwnd 2400 */
	cr_assert_eq(tern_cc_cwnd(&cc), 2400);
	/* A loss at the minimum window: ss = max(1680, 2400), prior 2400. */
	tern_cc_on_lost(&cc, MDS, MS(150), MS(200));
	cr_assert_eq(tern_cc_cwnd(&cc), 2400);
	cr_assert_eq(cc.ssthresh, 2400);
	cr_assert_eq(cc.u.cubic.cwnd_prior, 2400);
	/* First ACK after recovery: §4.8 after a timeout W_max = cwnd, K = 0,
	 * W_est = 2400 >= cwnd_prior, so alpha = 1:
	 * W_est = 2400 + 1200 * 1200 / 2400 = 3000 > W_cubic(0) = 2400. */
	tern_cc_on_acked(&cc, MDS, MS(250), MS(300), NULL);
	cr_assert_eq(cc.u.cubic.k_ns, 0);
	cr_assert_eq(cc.u.cubic.w_max, 2400);
	cr_assert_eq(tern_cc_cwnd(&cc), 3000);
	/* Then 3000 + 1200 * 1200 / 3000 = 3480, exactly Reno's rate. */
	tern_cc_on_acked(&cc, MDS, MS(251), MS(300), NULL);
	cr_assert_eq(tern_cc_cwnd(&cc), 3480);
}

Test(cubic, concave_step_toward_target)
{
	struct tern_cc cc = cubic_after_loss();
	struct tern_rtt r = rtt_sampled(SEC(1));
	tern_cc_on_acked(&cc, MDS, MS(150), SEC(1), &r); /* epoch, cwnd 30265 */
	uint64_t w_est = cc.u.cubic.w_est;
	/* t = 1 s: W_cubic(1) = 39360 > W_est (~30290): cubic region.
	 * target = W_cubic(1 + 1) = 42720 (< 1.5 * 30265 = 45397).
	 * step = (42720 - 30265) * 1200 / 30265 = 493.84 -> 493. */
	tern_cc_on_acked(&cc, MDS, MS(160), SEC(2), &r);
	cr_assert_gt(cc.u.cubic.w_est, w_est);
	cr_assert_eq(tern_cc_cwnd(&cc), 30265 + 493);
	/* The fraction is kept: 0.84 * 1024 = 860 of 1024. */
	cr_assert_eq(cc.u.cubic.cwnd_frac, (12455ull * 1200 * 1024 / 30265) & 1023);
}

Test(cubic, target_capped_at_one_and_a_half_cwnd)
{
	struct tern_cc cc = cubic_after_loss();
	struct tern_rtt r = rtt_sampled(MS(100));
	tern_cc_on_acked(&cc, MDS, MS(150), SEC(1), &r); /* epoch, cwnd 30265 */
	/* t = 20 s: W_cubic = 43200 + 480 * 17^3 = 2401440, far above; the
	 * target is 1.5 * 30265 = 45397, so the step is
	 * (45397 - 30265) * 1200 / 30265 = 599.98 -> 599, not ~94000. */
	tern_cc_on_acked(&cc, MDS, MS(160), SEC(21), &r);
	cr_assert_eq(tern_cc_cwnd(&cc), 30265 + 599);
	/* A 12000-byte ACK: (1.5c - c) * 12000 / c ~ 6000 at most. */
	uint64_t c = tern_cc_cwnd(&cc);
	tern_cc_on_acked(&cc, 12000, MS(170), SEC(22), &r);
	cr_assert_leq(tern_cc_cwnd(&cc) - c, 6000);
	cr_assert_geq(tern_cc_cwnd(&cc) - c, 5999);
}

Test(cubic, trajectory_follows_curve)
{
	/* RTT 500 ms keeps W_est (about 1270 bytes/s) below the curve, so
	 * cwnd must follow W_cubic: acked a window per RTT, it should sit
	 * between W_cubic(t - RTT) and W_cubic(t + RTT). */
	struct tern_cc cc = cubic_after_loss();
	struct tern_rtt r = rtt_sampled(MS(500));
	uint64_t t0 = SEC(1), now = t0;
	tern_cc_on_acked(&cc, MDS, MS(150), now, &r); /* epoch at t0 */
	static const uint64_t checks[] = {SEC(1), SEC(2), SEC(3), SEC(4), SEC(5), SEC(6)};
	size_t next = 0;
	while (next < sizeof(checks) / sizeof(checks[0])) {
		uint64_t n = tern_cc_cwnd(&cc) / MDS;
		for (uint64_t i = 0; i < n; i++) {
			now += MS(500) / n;
			tern_cc_on_acked(&cc, MDS, now - MS(500), now, &r);
		}
		uint64_t t = now - t0;
		if (t < checks[next])
			continue;
		uint64_t lo = tern_cubic_window(43200, SEC(3), t - MS(500), MDS);
		uint64_t hi = tern_cubic_window(43200, SEC(3), t + MS(500), MDS);
		uint64_t w = tern_cc_cwnd(&cc);
		cr_assert(w >= lo - MDS && w <= hi, "t=%llu ms: cwnd %llu not in [%llu, %llu]",
			  (unsigned long long)(t / 1000000), (unsigned long long)w,
			  (unsigned long long)lo, (unsigned long long)hi);
		cr_assert_lt(cc.u.cubic.w_est >> TERN_CUBIC_FRAC_BITS, w);
		next++;
	}
	/* Past K the window probes beyond W_max (convex region). */
	cr_assert_gt(tern_cc_cwnd(&cc), 43200 + 2 * MDS);
}

Test(cubic, persistent_congestion_restarts_curve)
{
	struct tern_cc cc = cubic_after_loss(); /* ssthresh 30240 */
	tern_cc_on_persistent_congestion(&cc, MS(100));
	cr_assert_eq(tern_cc_cwnd(&cc), 2400);
	cr_assert_eq(tern_cc_in_recovery(&cc), 0);
	cr_assert_eq(cc.ssthresh, 30240);
	/* Slow start: 2400 + 23 * 1200 = 30000 < 30240, the 24th ACK takes
	 * it to 31200. */
	for (int i = 0; i < 24; i++)
		tern_cc_on_acked(&cc, MDS, MS(50), MS(200), NULL);
	cr_assert_eq(tern_cc_cwnd(&cc), 31200);
	cr_assert_eq(cc.u.cubic.epoch_valid, 0);
	/* First avoidance ACK after the timeout: W_max = 31200, K = 0. */
	tern_cc_on_acked(&cc, MDS, MS(60), MS(300), NULL);
	cr_assert_eq(cc.u.cubic.epoch_valid, 1);
	cr_assert_eq(cc.u.cubic.k_ns, 0);
	cr_assert_eq(cc.u.cubic.w_max, 31200);
	cr_assert_eq(cc.u.cubic.cwnd_epoch, 31200);
	cr_assert_eq(cc.u.cubic.after_timeout, 0);
}

Test(cubic, ecn_ce_reduces_like_loss)
{
	struct tern_cc cc = cubic();
	tern_cc_on_ecn_ce(&cc, MS(10), MS(100));
	cr_assert_eq(tern_cc_cwnd(&cc), 8400);
	cr_assert_eq(cc.ssthresh, 8400);
	cr_assert_eq(cc.u.cubic.w_max, 12000);
	cr_assert_eq(tern_cc_in_recovery(&cc), 1);
	/* Floors at the minimum window: 2400 * 0.7 = 1680 -> 2400. */
	cc.cwnd = 2400;
	tern_cc_on_ecn_ce(&cc, MS(110), MS(200));
	cr_assert_eq(tern_cc_cwnd(&cc), 2400);
	cr_assert_eq(cc.ssthresh, 2400);
}

Test(cubic, app_limited_and_null_rtt)
{
	struct tern_cc cc = cubic_after_loss();
	tern_cc_set_app_limited(&cc, 1);
	tern_cc_on_acked(&cc, MDS, MS(150), SEC(1), NULL);
	cr_assert_eq(tern_cc_cwnd(&cc), 30240);
	cr_assert_eq(cc.u.cubic.epoch_valid, 0);
	tern_cc_set_app_limited(&cc, 0);
	/* Without an RTT the target is W_cubic(t) itself. Epoch at 1 s, then
	 * t = 2 s: target 42720, step (42720 - 30265) * 1200 / 30265. */
	tern_cc_on_acked(&cc, MDS, MS(150), SEC(1), NULL);
	cr_assert_eq(tern_cc_cwnd(&cc), 30265);
	tern_cc_on_acked(&cc, MDS, MS(160), SEC(3), NULL);
	cr_assert_eq(tern_cc_cwnd(&cc), 30265 + 493);
}

/* ==== pacer, RFC 9002 §7.7 ================================================ */

/* cwnd 12000, srtt 100 ms: rate = 1.25 * 12000 / 0.1 s = 150000 B/s, so
 * one 1200-byte packet every 8 ms; the bucket holds one initial window,
 * 12000 bytes = 10 packets. */
static struct tern_pacer pacer(uint64_t srtt)
{
	struct tern_pacer p;
	tern_pacer_init(&p, MDS);
	tern_pacer_set_rate(&p, 12000, srtt, 0);
	return p;
}

static void drain(struct tern_pacer *p, uint64_t now)
{
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(tern_pacer_next_send_time(p, now), now, "packet %d", i);
		tern_pacer_on_sent(p, MDS, now);
	}
}

Test(pacer, burst_then_spacing)
{
	struct tern_pacer p = pacer(MS(100));
	cr_assert_eq(p.burst, 12000);
	uint64_t t0 = SEC(1);
	drain(&p, t0);
	cr_assert_eq(tern_pacer_next_send_time(&p, t0), t0 + MS(8));
	/* Asking early does not change the answer. */
	cr_assert_eq(tern_pacer_next_send_time(&p, t0 + MS(3)), t0 + MS(8));
	cr_assert_eq(tern_pacer_next_send_time(&p, t0 + MS(8) - 1), t0 + MS(8));
	for (int i = 1; i <= 5; i++) {
		uint64_t at = tern_pacer_next_send_time(&p, t0 + MS(8) * (uint64_t)(i - 1));
		cr_assert_eq(at, t0 + MS(8) * (uint64_t)i);
		tern_pacer_on_sent(&p, MDS, at);
	}
	/* Late asker is told "now". */
	cr_assert_eq(tern_pacer_next_send_time(&p, t0 + MS(100)), t0 + MS(100));
}

Test(pacer, idle_refills_to_one_burst_only)
{
	struct tern_pacer p = pacer(MS(100));
	drain(&p, SEC(1));
	/* 10 s idle earns 1.5 MB at this rate, but the bucket holds 10
	 * packets: the 11th waits 8 ms. */
	uint64_t t1 = SEC(11);
	drain(&p, t1);
	cr_assert_eq(tern_pacer_next_send_time(&p, t1), t1 + MS(8));
	/* Half an interval idle earns half a packet. */
	tern_pacer_on_sent(&p, MDS, t1 + MS(8));
	cr_assert_eq(tern_pacer_next_send_time(&p, t1 + MS(12)), t1 + MS(16));
}

Test(pacer, partial_packets_and_debt)
{
	struct tern_pacer p = pacer(MS(100));
	uint64_t t0 = SEC(1);
	drain(&p, t0);
	/* 600 bytes at t0 + 8 ms leave 600 tokens: 600 more take 4 ms. */
	tern_pacer_on_sent(&p, 600, t0 + MS(8));
	cr_assert_eq(tern_pacer_next_send_time(&p, t0 + MS(8)), t0 + MS(12));
	/* A packet sent without tokens (an ACK) is a debt: -600 tokens, so
	 * a full packet needs 1800 bytes = 12 ms. */
	tern_pacer_on_sent(&p, MDS, t0 + MS(8));
	cr_assert_eq(p.tokens, -600);
	cr_assert_eq(tern_pacer_next_send_time(&p, t0 + MS(8)), t0 + MS(20));
}

Test(pacer, exact_long_run_rate)
{
	/* srtt 33 ms + 1 ns: one packet per 1200 * 4 * 33000001 / 60000
	 * = 2640000.08 ns. Sending each packet at the time the pacer names,
	 * the k-th goes at ceil(k * 2640000.08): the 25th at 66000002 ns,
	 * where rounding each interval up would give 25 * 2640001. */
	struct tern_pacer p = pacer(MS(33) + 1);
	uint64_t t0 = SEC(1), t = t0;
	drain(&p, t0);
	for (int k = 1; k <= 25; k++) {
		t = tern_pacer_next_send_time(&p, t);
		cr_assert_eq(t - t0, (uint64_t)ceil(k * 2640000.08 - 1e-6), "k=%d", k);
		tern_pacer_on_sent(&p, MDS, t);
	}
	cr_assert_eq(t - t0, 66000002);
}

Test(pacer, rate_change_credits_old_rate_first)
{
	struct tern_pacer p = pacer(MS(100));
	uint64_t t0 = SEC(1);
	drain(&p, t0);
	/* 4 ms at the old rate earn 600 bytes; at twice the rate (cwnd
	 * 24000) the other 600 take 2 ms. */
	tern_pacer_set_rate(&p, 24000, MS(100), t0 + MS(4));
	cr_assert_eq(p.tokens, 600);
	cr_assert_eq(tern_pacer_next_send_time(&p, t0 + MS(4)), t0 + MS(6));
	/* A smaller srtt speeds it the same way: 12000 / 50 ms = 4 ms per
	 * packet. */
	drain(&p, SEC(5));
	tern_pacer_set_rate(&p, 12000, MS(50), SEC(5));
	cr_assert_eq(tern_pacer_next_send_time(&p, SEC(5)), SEC(5) + MS(4));
}

Test(pacer, unpaced_without_rate)
{
	struct tern_pacer p;
	tern_pacer_init(&p, MDS);
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(tern_pacer_next_send_time(&p, MS(1)), MS(1));
		tern_pacer_on_sent(&p, MDS, MS(1));
	}
	/* Turning the rate off again (srtt 0) stops pacing. */
	p = pacer(MS(100));
	drain(&p, SEC(1));
	cr_assert_eq(tern_pacer_next_send_time(&p, SEC(1)), SEC(1) + MS(8));
	tern_pacer_set_rate(&p, 12000, 0, SEC(1));
	cr_assert_eq(tern_pacer_next_send_time(&p, SEC(1)), SEC(1));
}

Test(pacer, clock_going_backwards)
{
	struct tern_pacer p = pacer(MS(100));
	uint64_t t0 = SEC(1);
	drain(&p, t0);
	/* An earlier "now" earns nothing and cannot move the answer earlier. */
	cr_assert_eq(tern_pacer_next_send_time(&p, t0 - MS(5)), t0 + MS(8));
	tern_pacer_on_sent(&p, 600, t0 - MS(5));
	cr_assert_eq(p.tokens, -600);
	cr_assert_eq(p.last, t0);
	cr_assert_eq(tern_pacer_next_send_time(&p, t0), t0 + MS(12));
}

Test(pacer, burst_follows_initial_window)
{
	struct tern_pacer p;
	tern_pacer_init(&p, 1500);
	cr_assert_eq(p.burst, 14720);
	tern_pacer_init(&p, 1472);
	cr_assert_eq(p.burst, 14720);
	cr_assert_eq(p.tokens, 14720);
	/* A huge datagram size is clamped, not overflowed. */
	tern_pacer_init(&p, UINT64_MAX);
	cr_assert_eq(p.mds, TERN_CC_MAX_DATAGRAM_SIZE);
	/* Extreme rate inputs and times do not wrap. */
	p = pacer(MS(100));
	tern_pacer_set_rate(&p, UINT64_MAX, UINT64_MAX, SEC(1));
	drain(&p, SEC(2));
	cr_assert_geq(tern_pacer_next_send_time(&p, SEC(2)), SEC(2));
	tern_pacer_set_rate(&p, 1, 1, SEC(2));
	cr_assert_gt(tern_pacer_next_send_time(&p, SEC(2)), SEC(2));
	tern_pacer_on_sent(&p, UINT64_MAX, SEC(2));
	tern_pacer_on_sent(&p, UINT64_MAX, SEC(2));
	cr_assert_lt(p.tokens, 0);
	tern_pacer_set_rate(&p, 12000, MS(100), SEC(2));
	cr_assert_eq(tern_pacer_next_send_time(&p, UINT64_MAX - 5), UINT64_MAX);
}
