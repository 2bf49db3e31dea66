# plot-sweep.gp — the plots of a dupsim sweep folder, written into DIR/plots/.
#
# sim/results/plot.c reads DIR/sweep.csv, whose varied columns differ from sweep to
# sweep, and writes DIR/plots/sweep.dat for this script: one block per
# combination of the other varied keys (blocks separated by two blank lines),
# rows sorted by x, whitespace-separated columns
#
#   1 x   2 "label"   3 dup_rate  4 dup_low  5 dup_high  6 predicted_dup_rate
#   7 miss  8 miss_low  9 miss_high
#
# (dup_low/high: 95 % band on duplicate deliveries / committed, each fault's burst one Poisson event).
# Variables (-e): dir, fmt='png'|'svg', name (sweep title), xlabel (the first
# varied key, with its unit), xcat=1 when the key is not numeric (x is then a
# position and the label the tic), xlog=1 for a log x axis, ngroups and
# gtitle1..gtitleN (legend of each block), has_miss=0 when no run saw a
# duplicate (no miss plot), miss_floor (bottom of the log axis).
#
# By hand: gnuplot -e "dir='results/sweep-x'; fmt='png'; ngroups=1; gtitle1=''" tools/plot-sweep.gp

if (!exists("dir")) dir = '.'
if (!exists("fmt")) fmt = 'png'
if (!exists("name")) name = 'dupsim sweep'
if (!exists("xlabel")) xlabel = 'varied key'
if (!exists("xcat")) xcat = 0
if (!exists("xlog")) xlog = 0
if (!exists("ngroups")) ngroups = 1
if (!exists("miss_floor")) miss_floor = 1e-6

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

# Each block's x as numbers, or positions labelled with the value.
xsetup = xcat ? "set xrange [-0.5:*]; set xtics rotate by -30" : (xlog ? "set logscale x; set format x '%g'" : "")

# ------------------------------------------------------- duplicate rate
reset
eval(common)
eval(xsetup)
set output dir.'/plots/sweep-duprate.'.fmt
set title name.': duplicate rate, measured and predicted by the model'
set xlabel xlabel
set ylabel 'duplicate deliveries / committed messages'
set yrange [0:*]
if (xcat) {
	plot for [i = 1:ngroups] dat index (i - 1) using 1:3:4:5:xticlabels(2) with yerrorbars pt 7 ps 1.2 lw 1.5 lc rgb col(i) \
	         title gt(i, 'measured, 95 % band (bursts per fault)'), \
	     for [i = 1:ngroups] dat index (i - 1) using 1:6 with points pt 6 ps 1.8 lw 2 lc rgb col(i) \
	         title gt(i, 'model (independent losses)')
} else {
	plot for [i = 1:ngroups] dat index (i - 1) using 1:3:4:5 with yerrorlines pt 7 ps 1.2 lw 1.5 lc rgb col(i) \
	         title gt(i, 'measured, 95 % band (bursts per fault)'), \
	     for [i = 1:ngroups] dat index (i - 1) using 1:6 with linespoints dt 2 lw 2 pt 6 ps 1 lc rgb col(i) \
	         title gt(i, 'model (independent losses)')
}

# ------------------------------------------------------- miss probability
# (has_miss=0: no run saw a duplicate, so there is nothing to draw)
if (exists("has_miss") && !has_miss) exit
reset
eval(common)
eval(xsetup)
set output dir.'/plots/sweep-miss.'.fmt
set title name.': dedup miss probability (duplicates processed / duplicate deliveries)'
set xlabel xlabel
set ylabel 'miss probability (log scale)'
set logscale y
set format y '%g'
set yrange [miss_floor:1.5]
clamp(v) = v > miss_floor ? v : miss_floor
# a run without misses has no point estimate on a log axis: its 95 % upper bound is drawn instead
if (xcat) {
	plot for [i = 1:ngroups] dat index (i - 1) using 1:($7 > 0 ? $7 : NaN):(clamp($8)):9:xticlabels(2) \
	         with yerrorbars pt 7 ps 1.2 lw 1.5 lc rgb col(i) title gt(i, 'measured, 95 % interval'), \
	     for [i = 1:ngroups] dat index (i - 1) using 1:($7 > 0 ? NaN : $9) \
	         with points pt 11 ps 1.6 lc rgb col(i) title gt(i, 'no miss seen: 95 % upper bound')
} else {
	plot for [i = 1:ngroups] dat index (i - 1) using 1:($7 > 0 ? $7 : NaN):(clamp($8)):9 \
	         with yerrorbars pt 7 ps 1.2 lw 1.5 lc rgb col(i) title gt(i, 'measured, 95 % interval'), \
	     for [i = 1:ngroups] dat index (i - 1) using 1:($7 > 0 ? NaN : $9) \
	         with points pt 11 ps 1.6 lc rgb col(i) title gt(i, 'no miss seen: 95 % upper bound')
}
