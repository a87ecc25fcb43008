# Shared by the benchmarks (sourced, not run): figures as ratios, and the tps
# of one pgbench run of a script written to $work.

# ratio A B: A / B to two decimals.
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }

# pgbench_tps NAME SECONDS: tps of $work/NAME.sql, 2 clients, prepared; any
# failed transaction fails the benchmark.
pgbench_tps() {
    pgbench -n -M prepared -c 2 -j 2 -T "$2" -f "$work/$1.sql" >"$work/$1.out" 2>&1 ||
        { cat "$work/$1.out" >&2; exit 1; }
    grep -q "number of failed transactions: 0" "$work/$1.out" ||
        { cat "$work/$1.out" >&2; exit 1; }
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$work/$1.out"
}

# cpu_ticks_sql SCHEMA: the SQL creating SCHEMA.cpu_ticks(), this backend's
# CPU time so far in clock ticks (utime + stime of /proc/PID/stat).
cpu_ticks_sql() {
    cat <<SQL
CREATE FUNCTION $1.cpu_ticks() RETURNS bigint LANGUAGE sql AS \$\$
    SELECT split_part(s, ' ', 14)::bigint + split_part(s, ' ', 15)::bigint
      FROM pg_read_file('/proc/' || pg_backend_pid() || '/stat') AS s
\$\$;
SQL
}

# timed_rolled_back SCHEMA PRELUDE STATEMENT [MORE]: "wall_ms cpu_ms[ more]"
# of STATEMENT run after PRELUDE in a transaction that is rolled back; MORE
# is an SQL expression appended to the figures.  CPU time is the backend's
# own (SCHEMA.cpu_ticks()), which a machine shared with other work disturbs
# far less than wall time.
timed_rolled_back() {
    psql -X -q -v ON_ERROR_STOP=1 -A -t <<SQL | tail -n 1
BEGIN;
$2;
SELECT set_config('$1.t0', clock_timestamp()::text, true),
       set_config('$1.cpu0', $1.cpu_ticks()::text, true);
$3;
SELECT round(extract(epoch FROM clock_timestamp() - current_setting('$1.t0')::timestamptz) * 1000)
       || ' ' || ($1.cpu_ticks() - current_setting('$1.cpu0')::bigint) * 1000 / $(getconf CLK_TCK)
       ${4:+|| ' ' || ($4)};
ROLLBACK;
SQL
}

# median N...: the median of the numbers given.
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
