#!/usr/bin/env bash
# Let the postgres user read the tree (run as root: the servers run as
# postgres and load the built extension, the tests and the mocks from it),
# without loosening the throwaway clusters' data directories under
# tmp_cluster/: a server refuses to start from a data directory that others
# can read, so a make soak or make demo cluster would not survive its
# restart while make test runs beside it.
set -euo pipefail
root=$1
find "$root" \( -path "$root/tmp_cluster" -o -path "$root/.git" \) -prune -o -exec chmod a+rX {} +
