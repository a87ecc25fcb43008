#!/usr/bin/env bash
# Installs the Debian packages `benefits` needs to build, run and test.
# As root it runs apt-get; as anyone else it prints the exact command and stops.
set -euo pipefail

packages=(postgresql-15 postgresql-server-dev-15 libsodium-dev libcurl4-openssl-dev
          libipc-run-perl make gcc perl python3 python3-botocore python3-psycopg python3-aiosmtpd nginx-light wrk gnuplot-nox pngquant
          nodejs npm chromium clang lld libclang-rt-14-dev)

missing=()
for p in "${packages[@]}"; do
    # node may come from elsewhere (a distribution's nodejs, nvm): accept a working binary.
    case "$p" in
        nodejs) command -v node >/dev/null 2>&1 && continue ;;
        npm) command -v npm >/dev/null 2>&1 && continue ;;
    esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -ne 0 ]; then
    cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "benefits: missing packages: ${missing[*]}" >&2
        echo "Run as root:  $cmd" >&2
        exit 1
    fi
    echo "benefits: installing ${missing[*]}"
    bash -c "$cmd" >/tmp/benefits-apt.log 2>&1 || { tail -n 30 /tmp/benefits-apt.log >&2; exit 1; }
fi

# The tests' npm packages (s3rver; @polar-sh/sdk and typescript for the
# webhook type check), pinned by test/mock/package-lock.json.  npm ci runs when
# any package the lock file names at the top level is missing or is not the
# locked version, so a machine that installed an older lock file's packages
# (s3rver alone) gets the new ones.
mock="$(cd "$(dirname "$0")" && pwd)/mock"
npm_current() {
    node -e '
        const fs = require("fs"), dir = process.argv[1];
        const lock = JSON.parse(fs.readFileSync(dir + "/package-lock.json", "utf8"));
        for (const name of Object.keys(lock.packages[""].dependencies || {})) {
            const want = lock.packages["node_modules/" + name].version;
            let have;
            try { have = JSON.parse(fs.readFileSync(dir + "/node_modules/" + name + "/package.json", "utf8")).version; }
            catch (e) { process.exit(1); }
            if (have !== want) process.exit(1);
        }' "$mock" 2>/dev/null
}
if [ ! -f "$mock/node_modules/s3rver/bin/s3rver.js" ] || [ ! -f "$mock/node_modules/typescript/bin/tsc" ] ||
   ! npm_current; then
    echo "benefits: installing test/mock npm packages"
    (cd "$mock" && npm ci --no-audit --no-fund --loglevel=error) >/tmp/benefits-npm.log 2>&1 ||
        { tail -n 30 /tmp/benefits-npm.log >&2; exit 1; }
fi
