#!/usr/bin/env bash
# The random-input campaign (test/fuzz/sql_fuzz.py) against a throwaway
# cluster, by default with the extension built with AddressSanitizer and UBSan.
#
#   test/fuzz/run.sh [sql_fuzz.py options]       e.g. --seed 7 --seconds 300 --minimize
#   FUZZ_ASAN=0 test/fuzz/run.sh [options]       the normal build (test/cluster.sh)
#
# With ASan the tracked sources, as they are in the work tree, are copied to
# tmp_fuzz/build and built there with -fsanitize=address,undefined (plus
# $FUZZ_CFLAGS), so the normal build of the tree is left alone.  The postmaster runs with libasan
# preloaded (and test/fuzz/asan_preload.c after it, see there), with
# abort_on_error=1 so that an ASan report ends the backend like a crash.  The
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
libasan=$(gcc -print-file-name=libasan.so)
[ -e "$libasan" ] || { echo "libasan not found (gcc -print-file-name=libasan.so)" >&2; exit 2; }

# The sources as they are in the work tree; -p keeps their times, so make
# rebuilds only what changed since the last campaign.
mkdir -p "$build"
(cd "$root" && git ls-files -z -- Makefile benefits.control src sql | xargs -0 cp -p --parents -t "$build")
# -fno-wrapv (after the server's -fwrapv) lets UBSan report a signed overflow
# in the extension's own arithmetic instead of letting it wrap silently.
sanitize="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-wrapv ${FUZZ_CFLAGS:-}"
if [ "$(cat "$build/.sanitize" 2>/dev/null)" != "$sanitize" ]; then
    make -C "$build" -s clean >/dev/null
    echo "$sanitize" >"$build/.sanitize"
fi
make -C "$build" -s PG_CFLAGS="$sanitize" SHLIB_LINK="-lsodium -lcurl $sanitize" >/dev/null
make -C "$build" -s install DESTDIR="$build/tmp_install" PG_CFLAGS="$sanitize" \
    SHLIB_LINK="-lsodium -lcurl $sanitize" >/dev/null
[[ $(ldd "$build/benefits.so") == *libasan* ]] || { echo "benefits.so is not linked with libasan" >&2; exit 2; }
gcc -shared -fPIC -O2 -o "$out/asan_preload.so" "$root/test/fuzz/asan_preload.c" -ldl

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

as_server env LD_PRELOAD="$libasan:$out/asan_preload.so" \
    ASAN_OPTIONS="detect_leaks=0:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1" \
    "$bindir/pg_ctl" -D "$base/data" -l "$base/server.log" -w start >/dev/null ||
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
