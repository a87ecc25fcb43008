#!/usr/bin/env bash
# The random-input campaign (test/fuzz/sql_fuzz.py) against a throwaway
# cluster, by default with the extension built with AddressSanitizer and UBSan.
#
#   test/fuzz/run.sh [sql_fuzz.py options]       e.g. --seed 7 --seconds 300 --minimize
#   FUZZ_ASAN=0 test/fuzz/run.sh [options]       the normal build (test/cluster.sh)
#
# With ASan, test/tools/sanitizer.sh builds the tracked sources, as they are in
# the work tree, in tmp_fuzz/build with -fsanitize=address,undefined (plus
# $FUZZ_CFLAGS), so the normal build of the tree is left alone, and the
# postmaster runs with libasan preloaded (see there), with abort_on_error=1 so
# that an ASan report ends the backend like a crash.  The
# reports go to the server's stderr, its log, which the driver watches
# (--server-log; with both runtimes loaded, ASan's and UBSan's log_path
# options do not apply as documented).  As root the server runs as postgres.
# Exit status: the driver's (1: findings).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out=$root/tmp_fuzz
py=/usr/bin/python3
conf="benefits.database_names = 'benefits_fuzz'
benefits.worker_delivery = off
benefits.allow_private_network = on"

if [ "${FUZZ_ASAN:-1}" = 0 ]; then
    CLUSTER_CONF=$conf exec "$root/test/cluster.sh" fuzz "$py" "$root/test/fuzz/sql_fuzz.py" "$@"
fi

as_server() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

bindir=$(pg_config --bindir)
build=$out/build
"$root/test/tools/sanitizer.sh" build "$out" "${FUZZ_CFLAGS:-}"

base=$out/cluster
port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sockdir=$(mktemp -d /tmp/benefits-fuzz.XXXXXX)
rm -rf "$base"; mkdir -p "$base"
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$base" "$sockdir"
    chmod -R a+rX "$root"
fi
as_server "$bindir/initdb" -D "$base/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >"$base/initdb.log"
cat >>"$base/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sockdir'
extension_destdir = '$build/tmp_install'
shared_preload_libraries = '\$libdir/benefits'
fsync = off
max_connections = 30
log_line_prefix = '%m [%p] %q%a '
$conf
CONF

stop() {
    as_server "$bindir/pg_ctl" -D "$base/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$sockdir"
}
trap stop EXIT

as_server "$out/bin/pg_ctl" -D "$base/data" -l "$base/server.log" -w start >/dev/null ||
    { tail -n 40 "$base/server.log" >&2; exit 1; }
postmaster=$(head -n 1 "$base/data/postmaster.pid")
if grep -q libasan "/proc/$postmaster/maps" && grep -q "$build/tmp_install/.*/benefits.so" "/proc/$postmaster/maps"; then
    echo "postmaster $postmaster runs with libasan and the ASan build of benefits.so"
else
    echo "ASan is not active in postmaster $postmaster" >&2; exit 2
fi

export PGHOST=$sockdir PGPORT=$port PGUSER=postgres PGDATABASE=postgres
status=0
"$py" "$root/test/fuzz/sql_fuzz.py" --server-log "$base/server.log" "$@" || status=$?
log=$base/server.log
echo "server log: $log: $(grep -c 'terminated by signal' "$log" || true) backends killed by a signal," \
    "$(grep -c 'ERROR: AddressSanitizer' "$log" || true) AddressSanitizer reports," \
    "$(grep -c 'runtime error: ' "$log" || true) UBSan reports"
exit $status
