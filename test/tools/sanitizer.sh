#!/usr/bin/env bash
# The extension built with AddressSanitizer and UndefinedBehaviorSanitizer,
# apart from the normal build, and a pg_ctl whose servers load it with the
# sanitizer runtime preloaded.  Used by `make test SANITIZE=1`
# (test/run_tests.sh) and the random-input campaign (test/fuzz/run.sh).
#
#   test/tools/sanitizer.sh build OUT [CFLAGS]   build into OUT (see below)
#   test/tools/sanitizer.sh selftest OUT         prove, on a throwaway server
#                                                started by OUT/bin/pg_ctl, that
#                                                the runtime is active and that
#                                                scan catches both kinds of report
#   test/tools/sanitizer.sh scan LOG...          print every sanitizer report
#                                                of the logs; exit 1 if any
#
# build copies the tracked sources, as they are in the work tree, to
# OUT/build and builds them there with -fsanitize=address,undefined (plus
# CFLAGS), so the normal build's objects are left alone; -p keeps the files'
# times, so make rebuilds only what changed since the last sanitizer build.
# It installs into OUT/build/tmp_install (for extension_destdir) and writes
# OUT/bin/pg_ctl, the server's pg_ctl with this environment:
#
#   LD_PRELOAD     the compiler's libasan (the server is not built with ASan,
#                  so the runtime must be loaded before anything else), then
#                  OUT/asan_preload.so (test/tools/asan_preload.c: a Debian 12
#                  deadlock at start-up otherwise, and UBSan's options would
#                  be lost)
#   ASAN_OPTIONS   detect_leaks=0: the server frees memory contexts wholesale
#                  and keeps caches for its lifetime, which a leak check at
#                  exit would report by the thousand; abort_on_error=1: a
#                  report ends the process by SIGABRT, which the postmaster
#                  treats as a crash (an exit status of 1, ASan's default, is
#                  a normal FATAL exit to it)
#   UBSAN_OPTIONS  print_stacktrace=1; a UBSan report does not stop the
#                  process (the scan of the log finds it).  The selftest
#                  checks that the stack is printed
#
# Every server started by that pg_ctl (and only those: clients, mocks and
# browsers the tests start do not inherit it) runs with the runtime, and its
# reports go to the server's stderr, that is its log file.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)

# Builds the sanitizer copy of the extension, the preload shim and OUT/bin/pg_ctl.
build() {
    local out=$1 extra=${2:-}
    local build=$out/build
    local libasan
    libasan=$(gcc -print-file-name=libasan.so)
    [ -e "$libasan" ] || { echo "libasan not found (gcc -print-file-name=libasan.so)" >&2; exit 2; }

    # Sources deleted or renamed in the work tree must not stay in the copy
    # (the Makefile builds every src/*.c it finds).
    mkdir -p "$build"
    rm -rf "$build/src"/*.[ch] "$build/sql"
    (cd "$root" && git ls-files -z -- Makefile benefits.control src sql | xargs -0 cp -p --parents -t "$build")
    # -fno-wrapv (after the server's -fwrapv) lets UBSan report a signed
    # overflow in the extension's own arithmetic instead of letting it wrap;
    # float-cast-overflow (a double out of an integer type's range, undefined
    # in C) is not part of GCC's -fsanitize=undefined.
    local sanitize="-fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer -fno-wrapv $extra"
    # a new flag or a new Makefile (say, another library to link) rebuilds everything
    local stamp="$sanitize $(md5sum <"$root/Makefile")"
    if [ "$(cat "$build/.sanitize" 2>/dev/null)" != "$stamp" ]; then
        make -C "$build" -s clean >/dev/null
        echo "$stamp" >"$build/.sanitize"
    fi
    local flags=(PG_CFLAGS="$sanitize" SANITIZE_LDFLAGS="$sanitize")
    make -C "$build" -s -j"$(nproc)" "${flags[@]}" >/dev/null
    make -C "$build" -s install DESTDIR="$build/tmp_install" "${flags[@]}" >/dev/null
    [[ $(ldd "$build/benefits.so") == *libasan* ]] || { echo "benefits.so is not linked with libasan" >&2; exit 2; }
    gcc -shared -fPIC -O2 -o "$out/asan_preload.so" "$root/test/tools/asan_preload.c" -ldl

    mkdir -p "$out/bin"
    cat >"$out/bin/pg_ctl.new" <<SH
#!/bin/sh
# Written by test/tools/sanitizer.sh: pg_ctl whose servers run with the ASan runtime.
LD_PRELOAD='$libasan:$out/asan_preload.so' \\
ASAN_OPTIONS='detect_leaks=0:abort_on_error=1' \\
UBSAN_OPTIONS='print_stacktrace=1' \\
exec '$(pg_config --bindir)/pg_ctl' "\$@"
SH
    chmod 755 "$out/bin/pg_ctl.new"
    mv "$out/bin/pg_ctl.new" "$out/bin/pg_ctl"
}

as_server() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Starts a server with OUT/bin/pg_ctl and the sanitizer build of benefits
# preloaded, checks both are mapped into the postmaster, then calls the two
# deliberate bugs of test/tools/sanitizer_selftest.c and checks that scan
# prints and fails on a UBSan and an ASan report.  Without this, a run whose
# runtime was not active, or whose reports went elsewhere, would look clean.
selftest() {
    local out=$1
    local dir=$out/selftest bindir includedir port sockdir
    bindir=$(pg_config --bindir)
    includedir=$(pg_config --includedir-server)
    rm -rf "$dir"; mkdir -p "$dir"
    # -fno-wrapv after the server's flags, as for the extension, so that the
    # signed overflow is undefined rather than wrapping.
    # shellcheck disable=SC2046
    gcc -shared -fPIC -g -O1 -I"$includedir" $(pg_config --cflags_sl) -fno-wrapv \
        -fsanitize=address,undefined -fno-omit-frame-pointer \
        -o "$dir/sanitizer_selftest.so" "$root/test/tools/sanitizer_selftest.c"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    sockdir=$(mktemp -d /tmp/benefits-sanitizer.XXXXXX)
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir" "$sockdir"
        chmod -R a+rX "$out"
    fi
    as_server "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >"$dir/initdb.log"
    cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
port = $port
unix_socket_directories = '$sockdir'
extension_destdir = '$out/build/tmp_install'
shared_preload_libraries = '\$libdir/benefits'
benefits.database_names = ''
fsync = off
CONF
    local status=0 postmaster report
    as_server "$out/bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null ||
        { tail -n 40 "$dir/server.log" >&2; rm -rf "$sockdir"; return 1; }
    postmaster=$(head -n 1 "$dir/data/postmaster.pid")
    grep -q '/libasan\.so' "/proc/$postmaster/maps" ||
        { echo "sanitizer selftest: libasan is not loaded in the postmaster" >&2; status=1; }
    grep -q "$out/build/tmp_install/.*/benefits\.so" "/proc/$postmaster/maps" ||
        { echo "sanitizer selftest: the postmaster did not load the sanitizer build of benefits.so" >&2; status=1; }
    local psql=("$bindir/psql" -X -q -h "$sockdir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)
    as_server "${psql[@]}" >/dev/null 2>&1 <<SQL || true
CREATE FUNCTION signed_overflow(int) RETURNS int AS '$dir/sanitizer_selftest.so', 'sanitizer_selftest_signed_overflow' LANGUAGE C STRICT;
CREATE FUNCTION heap_overflow(int) RETURNS int AS '$dir/sanitizer_selftest.so', 'sanitizer_selftest_heap_overflow' LANGUAGE C STRICT;
SELECT signed_overflow(2147483647);
SELECT heap_overflow(24);
SQL
    as_server "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$sockdir"
    if report=$(scan "$dir/server.log"); then
        echo "sanitizer selftest: scan found no report of the deliberate bugs" >&2; status=1
    fi
    [[ $report == *"runtime error: signed integer overflow"*"#0 "*"in sanitizer_selftest_signed_overflow"* ]] ||
        { echo "sanitizer selftest: no UBSan report with a stack of the signed overflow" >&2; status=1; }
    [[ $report == *"ERROR: AddressSanitizer: heap-buffer-overflow"*"sanitizer_selftest_heap_overflow"* ]] ||
        { echo "sanitizer selftest: no ASan report of the heap overflow" >&2; status=1; }
    [ $status -eq 0 ] || { echo "$report" | head -n 60 >&2; return 1; }
    echo "sanitizer selftest: the runtime is active in the server and both deliberate reports were caught"
}

# Prints each ASan report (its first line to its SUMMARY) and each UBSan
# report (its line and the stack under it) found in the logs, under the log's
# name; fails if there is one.
scan() {
    local found=0 log
    for log in "$@"; do
        [ -f "$log" ] || continue
        grep -q -e 'ERROR: AddressSanitizer' -e 'runtime error: ' "$log" || continue
        found=1
        echo "== sanitizer reports in $log"
        awk '
            /ERROR: AddressSanitizer/ { asan = 1 }
            asan { print; if (/^SUMMARY: AddressSanitizer/) { asan = 0; print "" } next }
            / runtime error: / { ubsan = 1; print; next }
            ubsan && /^ +#[0-9]+ / { print; next }
            ubsan { ubsan = 0; print "" }
        ' "$log" | head -n 400
    done
    return $((found))
}

case "${1:-}" in
    build) shift; build "$@" ;;
    selftest) shift; selftest "$@" ;;
    scan) shift; scan "$@" ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
