# make soak's picture: tmp_soak/samples.tsv (one row per 10 s sample, columns
# as its header says) drawn as four panels over the run's minutes, the chaos
# events of tmp_soak/events_lines.gp as dashed vertical lines (red: a crash,
# the worker SIGKILLed "K" or the server restarted; blue: the vanishing
# receiver down and back, "R"; purple: the endpoint answering 410; grey: end
# of the load).  Called by test/soak/soak.py with work and title set.
set terminal pngcairo size 1000,1100 font "sans,9" noenhanced
set output work . "/soak.png"
set datafile missing "NaN"
set datafile separator "\t"
set key top left horizontal font ",8" samplen 2
set grid lc rgb "#dddddd"
set xlabel ""
data = work . "/samples.tsv"
set xrange [0:xmax]
set multiplot layout 4,1 title title font ",11" margins 0.08, 0.92, 0.05, 0.93 spacing 0, 0.06

load work . "/events_lines.gp"
load work . "/events_labels.gp"
set ylabel "per second"
set yrange [0:*]
plot data using 1:2 with lines lw 1.5 lc rgb "#1e8449" title "webhooks delivered (2xx)", \
     data using 1:3 with lines lw 1 lc rgb "#e67e22" title "failed attempts", \
     data using 1:4 with lines lw 1.5 lc rgb "#2e86c1" title "license validations"
unset label

set ylabel "ms (log)"
set logscale y
set yrange [*:*]
plot data using 1:5 with lines lw 1.5 lc rgb "#2e86c1" title "commit-to-request latency, always-up endpoint: p50", \
     data using 1:6 with lines lw 1 lc rgb "#c0392b" title "p99"

set ylabel "outbox jobs (log)"
plot data using 1:($7 > 0 ? $7 : NaN) with lines lw 1.5 lc rgb "#2e86c1" title "pending, due", \
     data using 1:($8 > 0 ? $8 : NaN) with lines lw 1 lc rgb "#e67e22" title "pending, waiting to retry", \
     data using 1:($9 > 0 ? $9 : NaN) with lines lw 1 lc rgb "#1e8449" title "running (leased)", \
     data using 1:($10 > 0 ? $10 : NaN) with lines lw 1.5 lc rgb "#7d3c98" title "dead (after the 410)"
unset logscale y

set ylabel "private memory, MB"
set xlabel "minutes"
set yrange [0:*]
set y2label "WAL, MB/s"
set y2tics
set y2range [0:*]
plot data using 1:($11 / 1024) with lines lw 1.5 lc rgb "#c0392b" title "worker RssAnon", \
     data using 1:($13 / 1024) with lines lw 1 lc rgb "#2e86c1" title "largest backend RssAnon", \
     data using 1:($12 / 1024) with lines lw 1 lc rgb "#85c1e9" title "median backend", \
     data using 1:14 axes x1y2 with lines lw 1 lc rgb "#aaaaaa" title "WAL generated (right)"
unset multiplot
