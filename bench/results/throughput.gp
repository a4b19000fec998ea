# gnuplot throughput.gp (run in bench/results) → throughput.svg
set terminal svg size 960,600 dynamic font 'sans,12'
set output 'throughput.svg'
set title "ockam-edge throughput vs message size — 2026-11-26 13:31 UTC, 2 CPUs AMD EPYC, full run" font 'sans,11'
set logscale x 2
set logscale y 10
set xlabel 'message size (bytes)'
set ylabel 'throughput (MB/s, payload bytes)'
set key right bottom
set xrange [45:92000]
set grid
set xtics ("64" 64, "256" 256, "1K" 1024, "4K" 4096, "16K" 16384, "64K" 65536)
plot 'throughput.dat' using 1:2 with linespoints pt 7 ps 0.6 lw 1.5 title 'ockam-edge secure channel', \
     'throughput.dat' using 1:3 with linespoints pt 7 ps 0.6 lw 1.5 title 'ockam-edge routing, no channel', \
     'throughput.dat' using 1:4 with linespoints pt 7 ps 0.6 lw 1.5 title 'stunnel TLS 1.3 (AES-256-GCM)', \
     'throughput.dat' using 1:5 with linespoints pt 7 ps 0.6 lw 1.5 title 'raw TCP', \
     'throughput.dat' using 1:6 with linespoints pt 7 ps 0.6 lw 1.5 title 'limit: libsodium AES-256-GCM seal+open, 1 core'
