#!/usr/bin/env bash
# make fuzz: every libFuzzer target (test/fuzz/libfuzzer.sh) for FUZZ_SECONDS
# each (default 60), then the SQL-level fuzzer (test/fuzz/run.sh, the
# extension built with ASan and UBSan) for FUZZ_SECONDS; one line per
# target: inputs executed, coverage (libFuzzer's cov/ft) or distinct
# SQLSTATEs, crashes or findings.  FUZZ_SQL_ARGS passes options to
# sql_fuzz.py (e.g. "--seed 7 --iterations 1000000").  Exit status 1 when
# anything was found.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${FUZZ_SECONDS:-60}
status=0

echo "== libFuzzer targets, $seconds s each"
FUZZ_SECONDS=$seconds bash "$root/test/fuzz/libfuzzer.sh" run || status=1

echo "== SQL-level fuzzer, $seconds s"
log=$root/tmp_fuzz/sql_fuzz.log
mkdir -p "$root/tmp_fuzz"
# shellcheck disable=SC2086
bash "$root/test/fuzz/run.sh" --seconds "$seconds" ${FUZZ_SQL_ARGS:-} >"$log" 2>&1 || status=1
summary=$(grep '^summary:' "$log" | tail -n 1)
calls=$(sed -n 's/^summary: seed [0-9]*, \([0-9]*\) calls.*/\1/p' <<<"$summary")
states=$(sed -n 's/^distinct SQLSTATEs: \([0-9]*\).*/\1/p' "$log" | tail -n 1)
findings=$(grep -c '^FINDING' "$log")
printf '%-13s inputs %10s  distinct SQLSTATEs %3s  findings %d%s\n' sql "${calls:-?}" "${states:-?}" \
    "$findings" "$([ -z "$summary" ] && echo "  (no summary, see $log)")"
grep '^FINDING' "$log" || true
echo "logs: tmp_fuzz/libfuzzer/logs, $log"
exit $status
