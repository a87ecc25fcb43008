#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL cluster inside the build tree.
#
#   test/cluster.sh NAME COMMAND [ARGS...]
#
# The extension is installed into tmp_install/ (DESTDIR) and the cluster loads
# it from there through Debian's extension_destdir setting, so nothing is
# written outside the build tree.  As root the server runs as `postgres`.
# Extra postgresql.conf lines may be passed in $CLUSTER_CONF; $CLUSTER_DESTDIR
# (an installed build to load instead, e.g. the sanitizer build) and
# $CLUSTER_PG_CTL (the pg_ctl that starts the server) are for
# `make test SANITIZE=1` (test/tools/sanitizer.sh).  The command sees
# PGHOST, PGPORT, PGUSER, PGDATABASE and BENEFITS_DESTDIR.
set -euo pipefail

name=$1; shift
root=$(cd "$(dirname "$0")/.." && pwd)
bindir=$(pg_config --bindir)
destdir=${CLUSTER_DESTDIR:-$root/tmp_install}
pg_ctl=${CLUSTER_PG_CTL:-$bindir/pg_ctl}
base="$root/tmp_cluster/$name"

[ -n "${CLUSTER_DESTDIR:-}" ] || make -C "$root" --no-print-directory -s install DESTDIR="$destdir" >/dev/null

as_server() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A free TCP port on loopback.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port=$(free_port)
sockdir=$(mktemp -d /tmp/benefits-sock.XXXXXX)
rm -rf "$base"; mkdir -p "$base"
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$base" "$sockdir"
    bash "$root/test/tools/share_tree.sh" "$root"
fi

as_server "$bindir/initdb" -D "$base/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >"$base/initdb.log"
cat >>"$base/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sockdir'
extension_destdir = '$destdir'
shared_preload_libraries = '\$libdir/benefits'
fsync = off
max_connections = 60
max_worker_processes = 16
log_line_prefix = '%m [%p] %q%a '
${CLUSTER_CONF:-}
CONF

stop() {
    [ ! -d "$base/standby" ] || as_server "$pg_ctl" -D "$base/standby" -m fast -w stop >/dev/null 2>&1 || true
    as_server "$pg_ctl" -D "$base/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$sockdir"
}
trap stop EXIT

if ! as_server "$pg_ctl" -D "$base/data" -l "$base/server.log" -w start >/dev/null; then
    tail -n 40 "$base/server.log" >&2
    exit 1
fi

# CLUSTER_STANDBY=1: a hot standby streaming from it as well, on its own port
# ($BENEFITS_STANDBY_PORT, same socket directory; log in standby.log).
if [ "${CLUSTER_STANDBY:-0}" = 1 ]; then
    standby_port=$(free_port)
    as_server "$bindir/pg_basebackup" -h "$sockdir" -p "$port" -U postgres -D "$base/standby" -R -X stream --no-sync
    echo "port = $standby_port" | as_server tee -a "$base/standby/postgresql.conf" >/dev/null
    if ! as_server "$pg_ctl" -D "$base/standby" -l "$base/standby.log" -w start >/dev/null; then
        tail -n 40 "$base/standby.log" >&2
        exit 1
    fi
    export BENEFITS_STANDBY_PORT=$standby_port
fi

export PGHOST=$sockdir PGPORT=$port PGUSER=postgres PGDATABASE=postgres BENEFITS_DESTDIR=$destdir
export BENEFITS_SERVER_LOG="$base/server.log"
"$@"
