#!/usr/bin/env bash
# The libFuzzer targets of test/fuzz/libfuzzer: the extension's parsers and
# builders of outside input, linked without a server (backend_shim.c).
#
#   test/fuzz/libfuzzer.sh build                  builds every target into tmp_fuzz/libfuzzer
#   test/fuzz/libfuzzer.sh run [TARGET...]        fuzzes each FUZZ_SECONDS (default 60), prints
#                                                 per target: inputs, coverage (cov/ft), crashes
#   test/fuzz/libfuzzer.sh replay                 runs the committed corpora once through each
#                                                 target (make test); exit 1 on any failure
#
# Seeds and kept regression inputs: test/fuzz/corpus/TARGET (read, never
# written); what a run discovers goes to tmp_fuzz/libfuzzer/corpus/TARGET and
# a crashing input to tmp_fuzz/libfuzzer/crashes/TARGET-*.  A crash found
# becomes a regression input: copy it into test/fuzz/corpus/TARGET, fix the
# code, and replay keeps checking it.  Built with clang, lld and
# libclang-rt-14-dev (Debian's, installed by test/deps.sh), ASan and UBSan;
# FUZZ_OUT moves tmp_fuzz/libfuzzer elsewhere.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/test/fuzz/libfuzzer
out=${FUZZ_OUT:-$root/tmp_fuzz/libfuzzer}
cc=${FUZZ_CC:-clang}

# Each target and the source files it links (besides backend_shim.c).
declare -A sources=(
    [license_key]="src/license_key.c"
    [license_file]="src/license_file.c"
    [s3]="src/s3.c src/uri.c"
    [urlguard]="src/urlguard.c src/worker_guc.c"
    [escape]="src/html.c src/email_text.c"
    [requests]="src/providers.c src/provider_names.c src/job_payload.c src/http.c src/webhooks.c src/worker_guc.c src/urlguard.c src/oauth_jobs.c src/oauth_providers.c src/uri.c src/http_headers.c"
    [http_headers]="src/http_headers.c"
)
targets=(license_key license_file s3 urlguard escape requests http_headers)

flags=(-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
       -ffunction-sections -fdata-sections
       -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-ignored-attributes
       -I"$(pg_config --includedir-server)" -I"$root/src" -I"$here")
# Frontend builds of StringInfo, psprintf, snprintf, UTF-8 and qsort (postgresql-server-dev-15).
libs=("$(pg_config --pkglibdir)/libpgcommon.a" "$(pg_config --pkglibdir)/libpgport.a")

# An object, compiled when its source or a header is newer.
object() {  # object SOURCE -> prints the object's path
    local src=$1 obj=$out/obj/$(basename "${1%.c}").o
    if [ ! -f "$obj" ] || [ -n "$(find "$root/$src" "$root/src" "$here" -name '*.[ch]' -newer "$obj" -print -quit)" ]; then
        "$cc" "${flags[@]}" -fsanitize=fuzzer-no-link -c "$root/$src" -o "$obj"
    fi
    echo "$obj"
}

build() {
    command -v "$cc" >/dev/null || { echo "clang not found: run 'bash test/deps.sh' as root" >&2; exit 2; }
    mkdir -p "$out/obj" "$out/bin"
    local shim list=("$@")
    [ ${#list[@]} -gt 0 ] || list=("${targets[@]}")
    shim=$(object test/fuzz/libfuzzer/backend_shim.c) || exit 1
    for t in "${list[@]}"; do
        local objs=("$shim") o
        for s in "test/fuzz/libfuzzer/fuzz_$t.c" ${sources[$t]}; do
            o=$(object "$s") || exit 1
            objs+=("$o")
        done
        "$cc" "${flags[@]}" -fsanitize=fuzzer -fuse-ld=lld -Wl,--gc-sections "${objs[@]}" "${libs[@]}" -lsodium -lcurl \
            -o "$out/bin/$t"
    done
}

# libFuzzer options of a target: its dictionary when it has one.
options() {  # options TARGET
    local dict=$here/$1.dict
    echo "-timeout=10 -rss_limit_mb=2048 -max_len=${FUZZ_MAX_LEN:-4096} -print_final_stats=1"
    [ -f "$dict" ] && echo "-dict=$dict"
    return 0
}

# The summary line of one run's log.
summary() {  # summary TARGET LOG STATUS
    local inputs cov ft crashes rejected
    inputs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$2" | tail -n 1)
    rejected=$(sed -n 's/^==benefits-fuzz== inputs run: .*clean rejections (ereport ERROR): //p' "$2" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$2" | tail -n 1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$2" | tail -n 1 | cut -d' ' -f2)
    crashes=$(find "$out/crashes" -name "$1-*" | wc -l)
    printf '%-13s inputs %10s  cov %5s  ft %6s  clean rejections %10s  crashes %d%s\n' "$1" "${inputs:-?}" \
        "${cov:-?}" "${ft:-?}" "${rejected:-?}" "$crashes" "$([ "$3" -ne 0 ] && echo "  (exit $3, see $2)")"
}

run() {
    local seconds=${FUZZ_SECONDS:-60} status=0 list=("$@")
    [ ${#list[@]} -gt 0 ] || list=("${targets[@]}")
    mkdir -p "$out/logs" "$out/crashes"
    for t in "${list[@]}"; do
        mkdir -p "$out/corpus/$t"
        local log=$out/logs/$t.log st=0
        # shellcheck disable=SC2046
        "$out/bin/$t" $(options "$t") -max_total_time="$seconds" -artifact_prefix="$out/crashes/$t-" \
            "$out/corpus/$t" "$root/test/fuzz/corpus/$t" >"$log" 2>&1 || st=$?
        summary "$t" "$log" "$st"
        [ "$st" -eq 0 ] || status=1
    done
    return $status
}

replay() {
    local status=0
    mkdir -p "$out/logs"
    for t in "${targets[@]}"; do
        local log=$out/logs/$t-replay.log st=0
        # shellcheck disable=SC2046
        "$out/bin/$t" $(options "$t") -runs=0 "$root/test/fuzz/corpus/$t" >"$log" 2>&1 || st=$?
        if [ "$st" -eq 0 ]; then
            printf 'replay %-13s %4d inputs ok\n' "$t" "$(ls "$root/test/fuzz/corpus/$t" | wc -l)"
        else
            printf 'replay %-13s FAILED (exit %d):\n' "$t" "$st"; tail -n 30 "$log"; status=1
        fi
    done
    return $status
}

case "${1:-}" in
    build) shift; build "$@" ;;
    run) shift; build "$@"; run "$@" ;;
    replay) build; replay ;;
    *) echo "usage: $0 build | run [TARGET...] | replay" >&2; exit 2 ;;
esac
