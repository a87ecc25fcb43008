# Shared by the benchmarks (sourced, not run): figures as ratios, and the tps
# of one pgbench run of a script written to $work.

# ratio A B: A / B to two decimals.
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }

# pgbench_tps NAME SECONDS [CLIENTS]: tps of $work/NAME.sql, 2 clients (or
# CLIENTS) on 2 threads, prepared; any failed transaction fails the benchmark.
pgbench_tps() {
    pgbench -n -M prepared -c "${3:-2}" -j 2 -T "$2" -f "$work/$1.sql" >"$work/$1.out" 2>&1 ||
        { cat "$work/$1.out" >&2; exit 1; }
    grep -q "number of failed transactions: 0" "$work/$1.out" ||
        { cat "$work/$1.out" >&2; exit 1; }
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$work/$1.out"
}
