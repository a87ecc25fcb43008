#!/usr/bin/env bash
# make soak: hours-scale mixed load with chaos on one throwaway cluster
# (test/cluster.sh soak), checked and plotted by test/soak/soak.py.
#
#   SOAK_MINUTES=30 make soak      # the default; SOAK_MINUTES=3 for a quick run
#
# Other knobs (environment): SOAK_RATE (webhook deliveries/s, 2000),
# SOAK_VALIDATION_RATE (300), SOAK_CLIENTS (4), SOAK_CHURN_RATE (20),
# SOAK_PORTAL_RATE (5), SOAK_CUSTOMERS (2000), SOAK_KILL_EVERY (240 s),
# SOAK_DRAIN_SECONDS (300).  Everything it writes is in tmp_soak/: samples.tsv,
# events.tsv, soak.png and the receivers' logs.  Exit status 1 on any FAIL.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)

# The worker serves the soak database only (soak.py names it once the
# extension is there), retries quickly (the run is
# minutes, not days) and never disables an endpoint for a run of failures:
# the vanishing receiver comes back and must get everything (the 410 endpoint
# is disabled at once whatever this says).
export CLUSTER_CONF="benefits.allow_private_network = on
benefits.github_token = 'soak-github-token'
benefits.discord_bot_token = 'soak-discord-token'
benefits.email_from = 'shop@soak.test'
benefits.retry_initial_delay = '1s'
benefits.retry_max_delay = '15s'
benefits.webhook_disable_after = 1000000
benefits.maintenance_interval = '10s'
shared_buffers = '256MB'
max_wal_size = '4GB'
checkpoint_timeout = '10min'
log_timezone = 'UTC'
max_connections = 100"
exec "$root/test/cluster.sh" soak /usr/bin/python3 "$root/test/soak/soak.py"
