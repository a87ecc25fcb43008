#!/usr/bin/env bash
# make demo: the main job on a throwaway cluster, narrated.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export CLUSTER_CONF="benefits.database_names = 'postgres'
${DEMO_CONF:-}"
exec "$root/test/cluster.sh" demo \
    psql -X -q -v ON_ERROR_STOP=1 -P pager=off -d postgres -f "$root/test/demo.sql"
