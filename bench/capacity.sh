#!/usr/bin/env bash
# The capacity model of docs/SCALING.md: loads a database with realistic cases (bench/cases_data.sql) and audit
# records like those the API writes, measures the bytes per row PostgreSQL needs for them (tables and indexes), and
# runs bench/capacity.py with those sizes and the per-replica figures in docs/BENCHMARKS.md. Writes the "Capacity
# model" section of docs/BENCHMARKS.md and prints it.
# Usage: bench/capacity.sh [cases=500000]
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$PORTAL_ROOT"
cases=${1:-500000}
residents=$(( cases / 10 ))
audit=$(( cases * 2 ))

ensure_swift
ensure_postgres
bench_postgres shared_buffers=512MB

log "building"
swift build --product PortalAPI >/dev/null
PORTAL_LOG_LEVEL=warning "$(swift build --show-bin-path)/PortalAPI" migrate >/dev/null

log "generating $residents residents, $cases cases, $(( cases * 5 )) status events, $audit audit records"
psql_ -d bench -v residents="$residents" -v cases="$cases" -f bench/cases_data.sql
psql_ -d bench -v n="$audit" <<'SQL'
INSERT INTO audit_log (activity, actor_kind, actor_id, subject_hash, object_type, object_id, result, trace_id)
SELECT 'case.read', 'resident', gen_random_uuid()::text, encode(sha256(i::text::bytea), 'hex'), 'case',
       gen_random_uuid()::text, 'success', md5(i::text)
FROM generate_series(1, :n) i;
VACUUM ANALYZE;
SQL
sizes=$(psql_ -d bench -tA -F ' ' -c "
    SELECT (pg_total_relation_size('cases') + pg_total_relation_size('status_events'))::float8 / (SELECT count(*) FROM cases),
           pg_total_relation_size('audit_log')::float8 / (SELECT count(*) FROM audit_log),
           (pg_total_relation_size('residents') + pg_total_relation_size('sessions'))::float8 / (SELECT count(*) FROM residents)")
machine="$(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -n 1)), $(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1048576 )) GiB, $(date -u '+%Y-%m-%d %H:%M UTC'); sizes from $cases cases, $(( cases * 5 )) status events, $audit audit records"
# shellcheck disable=SC2086
python3 bench/capacity.py $sizes "bench/capacity.sh $cases" "$machine"
