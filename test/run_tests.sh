#!/usr/bin/env bash
# Runs every suite: pg_regress and isolation specs against a throwaway cluster
# (make installcheck), then the TAP tests, which start clusters of their own.
# As root the servers and the TAP tests run as the postgres user.
#
# SANITIZE=1 runs them all against the extension built with AddressSanitizer
# and UBSan in tmp_sanitize/build, every server started with the ASan runtime
# preloaded (test/tools/sanitizer.sh); a sanitizer report in any server's log
# (the regression cluster's, every TAP node's) fails the suite and is printed.
# A server that did not start through the sanitizer pg_ctl cannot load that
# build at all ("ASan runtime does not come first"), so none runs unchecked.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
pgxs=$(dirname "$(dirname "$(dirname "$(pg_config --pgxs)")")")
bindir=$(pg_config --bindir)
passed=0; failed=0; failures=()

record() {  # record NAME STATUS
    if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$1"); fi
}

# The regression database is served by the worker so counters flush there too.
# It sends no outbox jobs there (the TAP tests cover delivery), so regression
# tests see the outbox and grants exactly as the transactions left them.
export CLUSTER_CONF="benefits.database_names = 'contrib_regression,isolation_regression'
benefits.allow_private_network = on
benefits.worker_delivery = off"

suites=${SUITES:-layers fuzz installcheck tap}   # SUITES=tap runs the TAP tests alone

# With SANITIZE=1 the servers load the sanitizer build through its pg_ctl.
sanitize=${SANITIZE:-0}
sanitizer=$root/tmp_sanitize
if [ "$sanitize" = 1 ]; then
    echo "== sanitizer build (ASan + UBSan) in ${sanitizer#$root/}/build"
    bash test/tools/sanitizer.sh build "$sanitizer" || { echo "suites: sanitizer build failed"; exit 1; }
    # Without a working runtime and log scan every suite below would look clean.
    bash test/tools/sanitizer.sh selftest "$sanitizer" || { echo "suites: sanitizer selftest failed"; exit 1; }
    export CLUSTER_DESTDIR=$sanitizer/build/tmp_install CLUSTER_PG_CTL=$sanitizer/bin/pg_ctl
fi

# Fails (and prints them) when the logs hold a sanitizer report; nothing to do without SANITIZE=1.
sanitizer_scan() {
    [ "$sanitize" = 1 ] || return 0
    bash test/tools/sanitizer.sh scan "$@"
}

if [[ " $suites " == *" layers "* ]]; then
    echo "== layers: no C file uses a symbol of a file that uses one of its own"
    python3 test/tools/layers.py $(ls src/*.c | sed 's/\.c$/.o/')
    record layers $?
fi

if [[ " $suites " == *" fuzz "* ]]; then
    echo "== fuzz: the committed corpora replayed through every libFuzzer target"
    bash test/fuzz/libfuzzer.sh replay
    record fuzz $?
fi

if [[ " $suites " == *" installcheck "* ]]; then
    echo "== pg_regress and isolation specs"
    rm -f regression.diffs output_iso/regression.diffs
    test/cluster.sh installcheck make --no-print-directory installcheck ${REGRESS:+REGRESS="$REGRESS"} ${ISOLATION+ISOLATION="$ISOLATION"}
    status=$?
    [ -f regression.diffs ] && head -n 200 regression.diffs
    [ -f output_iso/regression.diffs ] && head -n 200 output_iso/regression.diffs
    sanitizer_scan tmp_cluster/installcheck/server.log || status=1
    record installcheck $status
fi

if [[ " $suites " == *" tap "* ]]; then
echo "== TAP tests"
tapdir=$(mktemp -d /tmp/benefits-tap.XXXXXX)
destdir=${CLUSTER_DESTDIR:-$root/tmp_install}
[ "$sanitize" = 1 ] || make --no-print-directory -s install DESTDIR="$destdir" >/dev/null
tap_path=$bindir:$PATH
[ "$sanitize" = 1 ] && tap_path=$sanitizer/bin:$tap_path   # its pg_ctl first
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$tapdir"
    bash "$root/test/tools/share_tree.sh" "$root"
    run=(runuser -u postgres --)
else
    run=()
fi
"${run[@]}" env PATH="$tap_path" TESTDIR="$tapdir" PG_REGRESS="$pgxs/src/test/regress/pg_regress" \
    BENEFITS_DESTDIR="$destdir" BENEFITS_ROOT="$root" \
    prove -I "$pgxs/src/test/perl" -I "$root/test/t" ${PROVE_FLAGS:-} ${PROVE_TESTS:-$root/test/t/*.pl}
status=$?
# Each node's log is tmp_check/log/TEST_NODE.log (regress_log_TEST is the test's own output).
sanitizer_scan $(ls "$tapdir"/tmp_check/log/*.log 2>/dev/null | grep -v '/regress_log_') || status=1
record tap $status
if [ $status -ne 0 ]; then
    echo "TAP logs kept in $tapdir"
else
    rm -rf "$tapdir"
fi
fi

echo
[ $failed -ne 0 ] && echo "failed suites: ${failures[*]}"
echo "suites: $passed passed, $failed failed"
[ $failed -eq 0 ]
