#!/usr/bin/env bash
# The fault run of the hardening issue: bench/distributed.sh with its faults on (DIST_FAULTS=1; that script's header
# says which, and when). Replicas killed with SIGKILL every few seconds, PostgreSQL restarted, the SMTP server down and
# the departments' systems failing for a minute each, and a flood of 100,000 jobs, all under steady traffic; then the
# end state checked and the figures printed (docs/RELIABILITY.md has the last run's).
#
# Usage: bench/faults.sh [seconds=300]    (the same settings as bench/distributed.sh, e.g. PORTAL_BIN=.build/release)
set -euo pipefail
DIST_FAULTS=1 exec "$(dirname "$0")/distributed.sh" "${1:-300}"
