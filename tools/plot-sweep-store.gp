# plot-sweep-store.gp — issue 14, the shared store's trade-off: throughput and race misses of a dupsim sweep, into DIR/plots/.
#
# Reads DIR/plots/sweep.dat, the file sim/results/plot.c writes for
# tools/plot-sweep.gp (one block per combination of the other varied keys,
# rows sorted by x), of which it uses
#
#   1 x   2 "label"   7 miss  8 miss_low  9 miss_high
#   10 processed_per_s  11 race_misses  12 store_latency_ms_p50  13 store_ping_ms
#
# Variables (-e): the same as plot-sweep.gp's (dir, fmt, name, xlabel, xcat,
# xlog, ngroups, gtitle1..N), and has_throughput, has_race (0: that plot is
# not drawn).
#
#   sweep-throughput  processed messages/s (left axis) and the store's latency
#                     p50 as the consumers saw it and the link's PING (right axis, ms)
#   sweep-race        misses of cause `race` (left axis) and the run's miss
#                     probability with its 95 % interval (right axis)
#
# By hand: gnuplot -e "dir='results/x-sweep'; fmt='png'; xlog=1" tools/plot-sweep-store.gp

if (!exists("dir")) dir = '.'
if (!exists("fmt")) fmt = 'png'
if (!exists("name")) name = 'dupsim sweep'
if (!exists("xlabel")) xlabel = 'varied key'
if (!exists("xcat")) xcat = 0
if (!exists("xlog")) xlog = 0
if (!exists("ngroups")) ngroups = 1
if (!exists("has_throughput")) has_throughput = 1
if (!exists("has_race")) has_race = 1

set encoding utf8
if (fmt eq 'svg') {
	set terminal svg size 1000,600 dynamic noenhanced font 'DejaVu Sans,12' background rgb 'white'
} else {
	set terminal pngcairo size 1000,600 noenhanced font 'DejaVu Sans,11' background rgb 'white'
}
common = "set grid lc rgb '#dddddd' lt 1; set border lc rgb '#555555'; " . \
	 "set key below horizontal Left reverse nobox samplen 2 maxcols 2 height 1.5; set datafile missing 'nan'; " . \
	 "set offsets graph 0.04, graph 0.04, 0, 0"
array gc[6] = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b']
dat = dir.'/plots/sweep.dat'
gt(i, what) = ngroups > 1 ? value('gtitle'.i).': '.what : what
col(i) = gc[(i - 1) % 6 + 1]
xsetup = xcat ? "set xrange [-0.5:*]; set xtics rotate by -30" : (xlog ? "set logscale x; set format x '%g'" : "")

# ------------------------------------------------------- throughput
if (has_throughput) {
	reset
	eval(common)
	eval(xsetup)
	set output dir.'/plots/sweep-throughput.'.fmt
	set title name.': throughput of the consumers with their dedup store'
	set xlabel xlabel
	set ylabel 'processed messages / s'
	set y2label 'store latency (ms, right)'
	set yrange [0:*]
	set y2range [0:*]
	set ytics nomirror
	set y2tics
	if (xcat) {
		plot for [i = 1:ngroups] dat index (i - 1) using 1:10:xticlabels(2) with linespoints pt 7 ps 1.3 lw 2 \
		         lc rgb col(i) title gt(i, 'processed msg/s'), \
		     for [i = 1:ngroups] dat index (i - 1) using 1:12 axes x1y2 with linespoints dt 2 pt 6 ps 1 lw 1.5 \
		         lc rgb col(i) title gt(i, 'dedup call p50 (ms, right)'), \
		     for [i = 1:ngroups] dat index (i - 1) using 1:13 axes x1y2 with points pt 4 ps 1 \
		         lc rgb col(i) title gt(i, 'PING over the link (ms, right)')
	} else {
		plot for [i = 1:ngroups] dat index (i - 1) using 1:10 with linespoints pt 7 ps 1.3 lw 2 \
		         lc rgb col(i) title gt(i, 'processed msg/s'), \
		     for [i = 1:ngroups] dat index (i - 1) using 1:12 axes x1y2 with linespoints dt 2 pt 6 ps 1 lw 1.5 \
		         lc rgb col(i) title gt(i, 'dedup call p50 (ms, right)'), \
		     for [i = 1:ngroups] dat index (i - 1) using 1:13 axes x1y2 with points pt 4 ps 1 \
		         lc rgb col(i) title gt(i, 'PING over the link (ms, right)')
	}
}

# ------------------------------------------------------- race misses
if (has_race) {
	reset
	eval(common)
	eval(xsetup)
	set output dir.'/plots/sweep-race.'.fmt
	set title name.': race misses (two consumers in flight with one message at once)'
	set xlabel xlabel
	set ylabel 'duplicates processed with cause race'
	set y2label 'miss probability, 95 % interval (right)'
	set yrange [0:*]
	set y2range [0:*]
	set ytics nomirror
	set y2tics
	if (xcat) {
		plot for [i = 1:ngroups] dat index (i - 1) using 1:11:xticlabels(2) with linespoints pt 7 ps 1.3 lw 2 \
		         lc rgb col(i) title gt(i, 'race misses'), \
		     for [i = 1:ngroups] dat index (i - 1) using 1:7:8:9 axes x1y2 with yerrorbars pt 6 ps 1.2 lw 1.2 \
		         lc rgb col(i) title gt(i, 'miss probability (right)')
	} else {
		plot for [i = 1:ngroups] dat index (i - 1) using 1:11 with linespoints pt 7 ps 1.3 lw 2 \
		         lc rgb col(i) title gt(i, 'race misses'), \
		     for [i = 1:ngroups] dat index (i - 1) using 1:7:8:9 axes x1y2 with yerrorlines dt 2 pt 6 ps 1.2 lw 1.2 \
		         lc rgb col(i) title gt(i, 'miss probability (right)')
	}
}
