# bench/plots.gp: the suite's plots, from the data files bench/results.sh
# writes. Run as: gnuplot -e "dir='OUT'" bench/plots.gp
if (!exists("dir")) dir = "."
load dir."/refs.gp"

if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
	set terminal pngcairo size 960,600 font "sans,11"
} else {
	set terminal png size 960,600
}
set grid
set key top left box opaque
set datafile missing "NaN"
T = "lc rgb '#9400d3'"   # ternd
G = "lc rgb '#009e73'"   # gtlsserver
R = "lc rgb '#0072b2'"   # references

# ---- goodput against connections ----------------------------------------------------------
set output dir."/goodput_vs_connections.png"
set title "Goodput against connections (GET /<N>, loopback, one server core)"
set xlabel "connections"
set ylabel "goodput (Gbit/s)"
set logscale x 2
set yrange [0:*]
set y2label "Jain's fairness index"
set y2range [0:1.05]
set y2tics
plot dir."/goodput_conns.dat" using 1:2 with linespoints lw 2 pt 7 @T title "ternd", \
     dir."/goodput_conns.dat" using 1:3 with linespoints lw 2 pt 5 @G title "gtlsserver (ngtcp2)", \
     aead_gbit with lines dt 2 lw 2 @R title sprintf("AEAD seal, one core (%.1f Gbit/s)", aead_gbit), \
     dir."/goodput_conns.dat" using 1:4 axes x1y2 with linespoints dt 3 pt 6 @T title "ternd fairness", \
     dir."/goodput_conns.dat" using 1:5 axes x1y2 with linespoints dt 3 pt 4 @G title "gtlsserver fairness"
unset logscale x
unset y2label
unset y2tics
set y2range [*:*]

# ---- handshakes against load ----------------------------------------------------------------
set output dir."/handshakes_vs_load.png"
set title "Handshakes per second against offered load (one server core)"
set xlabel "offered handshakes/s"
set ylabel "completed handshakes/s"
set y2label "p99 latency (ms)"
set y2tics
set yrange [0:*]
set y2range [0:*]
plot dir."/handshake_load.dat" using 1:2 with linespoints lw 2 pt 7 @T title "ternd", \
     dir."/handshake_load.dat" using 1:4 with linespoints lw 2 pt 5 @G title "gtlsserver (ngtcp2)", \
     crypto_hs with lines dt 2 lw 2 @R title sprintf("crypto only (%.0f/s)", crypto_hs), \
     dir."/handshake_load.dat" using 1:1 with lines dt 3 lc rgb "gray" title "offered", \
     dir."/handshake_load.dat" using 1:3 axes x1y2 with linespoints dt 4 pt 6 @T title "ternd p99 latency", \
     dir."/handshake_load.dat" using 1:5 axes x1y2 with linespoints dt 4 pt 4 @G title "gtlsserver p99 latency"
unset y2label
unset y2tics

# ---- latency CDFs --------------------------------------------------------------------------------
set output dir."/latency_cdf.png"
set title "Latency CDFs: handshakes (16 in flight) and small requests (GET /100)"
set xlabel "latency (ms)"
set ylabel "fraction"
set logscale x 10
set yrange [0:1.02]
set key bottom right
plot dir."/cdf_hs_ternd.dat" using 1:2 with lines lw 2 @T title "handshake, ternd", \
     dir."/cdf_hs_gtlsserver.dat" using 1:2 with lines lw 2 @G title "handshake, gtlsserver", \
     dir."/cdf_req_ternd.dat" using 1:2 with lines lw 2 dt 2 @T title "request, ternd", \
     dir."/cdf_req_gtlsserver.dat" using 1:2 with lines lw 2 dt 2 @G title "request, gtlsserver"
unset logscale x

# ---- reset responder against offered rate ----------------------------------------------------
set output dir."/reset_vs_offered.png"
set title "Stateless-reset responder: replies against offered unknown-CID packets"
set xlabel "offered packets/s (achieved by the client)"
set ylabel "replies/s"
set yrange [0:*]
set key top left
plot dir."/reset_echo.dat" using 1:2 with linespoints lw 2 pt 5 @R title "plain forwarding (UDP echo)", \
     dir."/reset_ternd.dat" using 1:2 with linespoints lw 2 pt 7 @T title "ternd, limiter raised", \
     dir."/reset_ternd_limited.dat" using 1:2 with linespoints lw 2 pt 9 lc rgb "#e69f00" title "ternd, limiter on", \
     reset_limit with lines dt 2 lw 2 lc rgb "gray" title sprintf("limiter (%.0f/s)", reset_limit)
