#!/usr/bin/env bash
# Runs every suite: pg_regress and isolation specs against a throwaway cluster
# (make installcheck), then the TAP tests, which start clusters of their own.
# As root the servers and the TAP tests run as the postgres user.
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
    record installcheck $status
fi

if [[ " $suites " == *" tap "* ]]; then
echo "== TAP tests"
tapdir=$(mktemp -d /tmp/benefits-tap.XXXXXX)
make --no-print-directory -s install DESTDIR="$root/tmp_install" >/dev/null
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$tapdir"
    chmod -R a+rX "$root"
    run=(runuser -u postgres --)
else
    run=()
fi
"${run[@]}" env PATH="$bindir:$PATH" TESTDIR="$tapdir" PG_REGRESS="$pgxs/src/test/regress/pg_regress" \
    BENEFITS_DESTDIR="$root/tmp_install" BENEFITS_ROOT="$root" \
    prove -I "$pgxs/src/test/perl" -I "$root/test/t" ${PROVE_FLAGS:-} ${PROVE_TESTS:-$root/test/t/*.pl}
status=$?
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
