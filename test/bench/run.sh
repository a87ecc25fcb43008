#!/usr/bin/env bash
# make bench: starts a throwaway cluster (test/cluster.sh bench) with the
# extension preloaded, creates a database "bench" with the extension, and runs
# every test/bench/NN_name.sh in name order against it.  Each script gets the
# usual PG* variables (PGDATABASE=bench), prints its figures as ratios against
# a baseline measured in the same run, and may create whatever it needs in
# the bench database.  BENCH_ONLY=NN_name runs one script; BENCH_SECONDS sets
# the length of each timed pgbench run (default 4) and BENCH_ROUNDS
# the number of alternated rounds (default 5).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if [ -z "${BENEFITS_BENCH_CLUSTER:-}" ]; then
    export BENEFITS_BENCH_CLUSTER=1
    export CLUSTER_CONF="benefits.database_names = 'bench'
shared_buffers = '256MB'
max_wal_size = '4GB'
checkpoint_timeout = '30min'
synchronous_commit = off"
    exec "$root/test/cluster.sh" bench bash "$here/run.sh" "$@"
fi

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'CREATE DATABASE bench'
export PGDATABASE=bench
psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION benefits'

echo "benefits benchmarks ($(nproc) cores; PostgreSQL $(psql -X -A -t -c 'SHOW server_version'))"
status=0
for script in "$here"/[0-9][0-9]_*.sh; do
    name=$(basename "$script" .sh)
    if [ -n "${BENCH_ONLY:-}" ] && [ "$name" != "$BENCH_ONLY" ]; then
        continue
    fi
    # Each benchmark starts from a settled database: the dead rows and dirty
    # pages the previous one left would otherwise be cleaned up during it.
    psql -X -q -c 'VACUUM ANALYZE' -c 'CHECKPOINT'
    echo
    echo "== $name"
    if ! bash "$script"; then
        echo "$name: failed" >&2
        status=1
    fi
done
exit $status
