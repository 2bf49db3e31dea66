# plot-run.gp — the plots of one dupsim run folder, written into DIR/plots/.
#
# Called by `dupsim plot DIR` (sim/results/plot.c), which checks which data files have
# rows and passes everything as -e variables:
#
#   dir='results/x'  fmt='png'|'svg'  name='default (seed 1)'
#   has_ts=1 has_gaps=1 has_curve=1 has_copies=1   (0 or missing: skip that plot)
#   nrules=N, rule1..ruleN (rule text as in faults.csv), rtitle1..rtitleN (legend)
#   (the timeseries plot also reads DIR/periods.csv when there is one: the warm-up,
#   each fault schedule's window and the cool-down, shaded behind the curves)
#   gap_p50, gap_p99          (optional) duplicate-gap percentiles in ms
#   miss_floor                lowest miss probability drawn on the log axis
#   meas_ttl, meas_miss, meas_lo, meas_hi   (optional) the run's own TTL (ms)
#                             and its measured miss probability with 95 % interval
#
# By hand: gnuplot -e "dir='results/latest'; fmt='png'; has_ts=1" tools/plot-run.gp

if (!exists("dir")) dir = '.'
if (!exists("fmt")) fmt = 'png'
if (!exists("name")) name = 'dupsim run'
if (!exists("has_ts")) has_ts = 0
if (!exists("has_gaps")) has_gaps = 0
if (!exists("has_curve")) has_curve = 0
if (!exists("has_copies")) has_copies = 0
if (!exists("nrules")) nrules = 0
if (!exists("miss_floor")) miss_floor = 1e-6

set encoding utf8
if (fmt eq 'svg') {
	set terminal svg size 1000,600 dynamic noenhanced font 'DejaVu Sans,12' background rgb 'white'
} else {
	set terminal pngcairo size 1000,600 noenhanced font 'DejaVu Sans,11' background rgb 'white'
}
# `reset` before each plot keeps the terminal; these are what every plot shares
common = "set datafile separator comma; set grid lc rgb '#dddddd' lt 1; set border lc rgb '#555555'; " . \
	 "set key opaque box lc rgb '#cccccc' samplen 2"

c_pub = '#1f77b4'
c_proc = '#2ca02c'
c_dup = '#d62728'
c_band = '#6baed6'
array rc[6] = ['#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f']

# ---------------------------------------------------------------- timeseries
# timeseries.csv is cumulative, one row a second: a rate is the difference of
# two rows over their time difference, drawn at the middle of the interval.
if (has_ts) {
	reset
	eval(common)
	ts = dir.'/timeseries.csv'
	fl = dir.'/faults.csv'
	stats ts skip 1 using 1 nooutput
	tmax = STATS_max
	set output dir.'/plots/timeseries.'.fmt
	set multiplot
	set lmargin at screen 0.09
	set rmargin at screen 0.90
	set xrange [0:tmax]
	# the timetable, periods.csv (start_s,end_s,label), as light rectangles over both panels;
	# its rows are counted by awk, since gnuplot 5.4's stats stops the script on a missing or empty file
	np = 0
	pf = dir.'/periods.csv'
	if (strstrt(pf, "'") == 0) {
		np = int(system("awk 'NR > 1 && NF' '".pf."' 2>/dev/null | wc -l"))
	}
	if (np > 0) {
		array per_start[np]
		array per_end[np]
		array per_label[np]
		k = 0
		stats pf skip 1 using (k = k + 1, per_start[k] = $1, per_end[k] = $2, per_label[k] = strcol(3), $1) nooutput
		do for [i = 1:np] {
			x0 = per_start[i] < 0 ? 0 : per_start[i]
			x1 = per_end[i] > tmax ? tmax : per_end[i]
			quiet = per_label[i] eq 'warmup' || per_label[i] eq 'cooldown'
			if (x0 < x1) {
				set object (100 + i) rect from x0, graph 0 to x1, graph 1 behind \
				    fc rgb (quiet ? '#e8e8e8' : '#fde2c8') fs solid 1.0 noborder
				set label (100 + i) (quiet ? (per_label[i] eq 'warmup' ? 'warm-up' : 'cool-down') : per_label[i]) \
				    at x0, graph 0.97 offset 0.3, 0 left front font ',8' tc rgb (quiet ? '#666666' : '#a05a00')
			}
		}
	}
	if (nrules > 0) {
		set origin 0, 0.30
		set size 1, 0.70
		set format x ''
		unset xlabel
		set bmargin 0.5
	} else {
		set origin 0, 0
		set size 1, 1
		set xlabel 'time since the run started (s)'
	}
	set title name.': messages per second, and when faults were injected'
	set ylabel 'messages per second'
	set y2label 'duplicate deliveries per second' tc rgb c_dup
	set ytics nomirror
	set y2tics tc rgb c_dup
	set yrange [0:*]
	set y2range [0:*]
	set key inside bottom center horizontal opaque box lc rgb '#cccccc' samplen 2 width 1
	pa = 0; ta = 0; pb = 0; tb = 0; pc = 0; tc = 0
	plot ts skip 1 using (($1 + ta) / 2):(r = ($2 - pa) / ($1 - ta), pa = $2, ta = $1, r) \
	          with linespoints lw 2 pt 7 ps 0.6 lc rgb c_pub title 'published (republished copies included)', \
	     ts skip 1 using (($1 + tb) / 2):(r = ($6 - pb) / ($1 - tb), pb = $6, tb = $1, r) \
	          with linespoints lw 2 pt 7 ps 0.6 lc rgb c_proc title 'processed (side effect run)', \
	     ts skip 1 using (($1 + tc) / 2):(r = ($5 - pc) / ($1 - tc), pc = $5, tc = $1, r) axes x1y2 \
	          with linespoints lw 2 pt 5 ps 0.6 lc rgb c_dup title 'duplicate deliveries (right axis)'
	if (nrules > 0) {
		# one row per fault rule (the first on top, as in the legend), a tick each time the proxy fired it;
		# the periods' rectangles stay, their labels are said once, above
		unset label
		set origin 0, 0
		set size 1, 0.30
		unset title
		set format x '%g'
		set xlabel 'time since the run started (s)'
		set tmargin 0.5
		set bmargin 6.5
		unset y2tics
		unset y2label
		set ylabel 'faults'
		set yrange [0.5:nrules + 0.5]
		set ytics 1 format ''
		unset grid
		set grid xtics lc rgb '#dddddd' lt 1
		set key outside below left vertical Left reverse noopaque nobox samplen 1
		plot for [i = 1:nrules] fl skip 1 \
		          using 1:(strcol(2) eq value('rule'.i) ? nrules - i + 1 - 0.35 : NaN):(0):(0.7) \
		          with vectors nohead lw 1.5 lc rgb rc[(i - 1) % 6 + 1] title value('rtitle'.i)
	}
	unset multiplot
}

# ------------------------------------------------------------------ gaps-cdf
if (has_gaps) {
	reset
	eval(common)
	set output dir.'/plots/gaps-cdf.'.fmt
	set title name.': duplicate gap (time from the first accepted delivery to the duplicate)'
	set xlabel 'duplicate gap (ms, log scale)'
	set ylabel 'fraction of duplicate deliveries with gap ≤ x'
	set logscale x
	set format x '%g'
	set yrange [0:1.02]
	set ytics 0.1
	set key top left
	if (exists("gap_p50")) {
		set arrow 1 from gap_p50, graph 0 to gap_p50, graph 1 nohead dt 2 lc rgb '#777777'
		set label 1 sprintf(' p50 %.3g ms', gap_p50) at gap_p50, graph 0.04 left tc rgb '#555555'
	}
	if (exists("gap_p99")) {
		set arrow 2 from gap_p99, graph 0 to gap_p99, graph 1 nohead dt 2 lc rgb '#777777'
		set label 2 sprintf(' p99 %.3g ms', gap_p99) at gap_p99, graph 0.10 left tc rgb '#555555'
	}
	plot dir.'/gaps.csv' skip 1 using 2:4 with steps lw 2 lc rgb c_dup \
	     title 'measured: cumulative fraction (histogram bin upper edges)'
}

# -------------------------------------------------------------- miss-vs-ttl
if (has_curve) {
	reset
	eval(common)
	set style fill transparent solid 0.35 noborder
	set output dir.'/plots/miss-vs-ttl.'.fmt
	set title name.': predicted dedup miss probability for a cache with a TTL'
	set xlabel 'cache TTL: key kept this long after the first accepted delivery (ms, log scale)'
	set ylabel 'P(miss) = P(duplicate gap > TTL)  (log scale)'
	set logscale xy
	set format x '%g'
	set format y '%g'
	set yrange [miss_floor:1.5]
	set key bottom left
	clamp(v) = v > miss_floor ? v : miss_floor
	cv = dir.'/curve.csv'
	if (exists("meas_ttl")) {
		plot cv skip 1 using 1:(clamp($3)):(clamp($4)) with filledcurves lc rgb c_band title '95 % interval over fault events', \
		     cv skip 1 using 1:($2 > 0 ? $2 : NaN) with lines lw 2 lc rgb c_pub title 'predicted from this run''s duplicate gaps', \
		     '+' using (meas_ttl):(meas_miss > 0 ? meas_miss : NaN):(clamp(meas_lo)):(clamp(meas_hi)) every ::0::0 \
		         with yerrorbars pt 7 ps 1.3 lw 2 lc rgb c_dup \
		         title (meas_miss > 0 ? sprintf('measured at this run''s TTL %g ms: %.3g (95 %% interval)', meas_ttl, meas_miss) : ''), \
		     '+' using (meas_ttl):(meas_miss > 0 ? NaN : meas_hi) every ::0::0 \
		         with points pt 11 ps 1.8 lc rgb c_dup \
		         title (meas_miss > 0 ? '' : sprintf('measured at this run''s TTL %g ms: no miss, 95 %% upper bound %.3g', meas_ttl, meas_hi))
	} else {
		plot cv skip 1 using 1:(clamp($3)):(clamp($4)) with filledcurves lc rgb c_band title '95 % interval over fault events', \
		     cv skip 1 using 1:($2 > 0 ? $2 : NaN) with lines lw 2 lc rgb c_pub title 'predicted from this run''s duplicate gaps (cache without TTL)'
	}
}

# -------------------------------------------------------------------- copies
if (has_copies) {
	reset
	eval(common)
	set output dir.'/plots/copies.'.fmt
	set title name.': how many copies of each message were delivered'
	set xlabel 'distinct copies of a message delivered (1 = no excess copy)'
	set ylabel 'messages (log scale)'
	set logscale y
	set format y '%g'
	stats dir.'/copies.csv' skip 1 using 2 nooutput
	set yrange [0.5:STATS_max * 4]
	set xrange [-0.6:*]
	set boxwidth 0.6
	set style fill solid 0.8 noborder
	unset key
	set grid noxtics
	plot dir.'/copies.csv' skip 1 using 0:2:xticlabels(strcol(1)) with boxes lc rgb c_pub, \
	     dir.'/copies.csv' skip 1 using 0:2:(sprintf('%d', $2)) with labels offset 0, 0.8 tc rgb '#333333'
}
