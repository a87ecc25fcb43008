# Shared by the benchmarks (sourced, not run): figures as ratios, and the tps
# of one pgbench run of a script written to $work.

# median X...: the median of the numbers given (per-round ratios of alternated runs).
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

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

# CPU (user + system, clock ticks) used so far by the server's exited
# children: the backends of finished pgbench runs (cutime + cstime of the
# postmaster), which outside load on a shared machine does not change.
cpu_ticks() {
    python3 - "$(head -n 1 "$(psql -X -A -t -c 'SHOW data_directory')/postmaster.pid")" <<'PY'
import sys
with open('/proc/%s/stat' % sys.argv[1]) as f:
    fields = f.read().rsplit(')', 1)[1].split()
print(int(fields[13]) + int(fields[14]))
PY
}

# pgbench_cpu NAME SECONDS [PROTOCOL]: one run of $work/NAME.sql (2 clients,
# PROTOCOL prepared unless given, -D org=$ORG); prints its tps and the server
# CPU per transaction in microseconds, and appends its transaction count to
# $work/NAME.count.
pgbench_cpu() {
    local before after tx tps
    before=$(cpu_ticks)
    pgbench -n -M "${3:-prepared}" -c 2 -j 2 -T "$2" -D org="${ORG:-}" -f "$work/$1.sql" >"$work/$1.out" 2>&1 ||
        { cat "$work/$1.out" >&2; exit 1; }
    # The backends' times reach the postmaster when it has reaped them.
    while [ "$(psql -X -A -t -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbench'")" != 0 ]; do
        sleep 0.05
    done
    sleep 0.2
    after=$(cpu_ticks)
    grep -q "number of failed transactions: 0" "$work/$1.out" ||
        { cat "$work/$1.out" >&2; exit 1; }
    tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/$1.out")
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$work/$1.out")
    echo "$tx" >>"$work/$1.count"
    python3 -c "import os, sys; tck = os.sysconf('SC_CLK_TCK'); print(sys.argv[1], '%.1f' % ((int(sys.argv[3]) - int(sys.argv[2])) / tck * 1e6 / int(sys.argv[4])))" \
        "$tps" "$before" "$after" "$tx"
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

