#!/usr/bin/env bash
# Job queue benchmark: our enqueue, claim+complete and start latency (bench/QueueBench), and in the same run
# pgbench executing the equivalent raw claim-and-complete SQL (bench/claim_complete.sql) against the same
# database, on a throwaway PostgreSQL with durable settings (fsync and synchronous_commit on).
# Writes the figures to docs/BENCHMARKS.md (the "Job queue" section) and prints them.
# Usage: bench/queue.sh [jobs=100000] [workers=10] [pgbench seconds=15]
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$PORTAL_ROOT"
jobs=${1:-100000}
workers=${2:-10}
seconds=${3:-15}

ensure_swift
ensure_postgres
work=$(mktemp -d /tmp/portal-bench.XXXXXX)
chmod 755 "$work"
trap 'stop_postgres "$work/pg"; rm -rf "$work"' EXIT
port=$(free_port)
start_postgres "$work/pg" "$port" shared_buffers=256MB
psql_() { psql -X -q -h 127.0.0.1 -p "$port" -U postgres "$@"; }
psql_ -d postgres -c "CREATE DATABASE bench"
export PORTAL_DATABASE_URL="postgres://postgres@127.0.0.1:$port/bench?sslmode=disable"

log "building (release)"
swift build -c release --product PortalAPI >/dev/null
swift build -c release --product QueueBench >/dev/null
bin=$(swift build -c release --show-bin-path)
"$bin/PortalAPI" migrate >/dev/null

log "our queue: $jobs jobs, $workers workers"
ours=$("$bin/QueueBench" "$jobs" "$workers")
echo "$ours"

log "pgbench: the same claim+complete SQL, $workers clients, ${seconds}s"
prefill=$(( 20000 * seconds ))
psql_ -d bench -c "INSERT INTO jobs (queue, kind, payload, max_attempts)
                   SELECT 'pgbench', 'bench.noop', '{}', 3 FROM generate_series(1, $prefill)"
psql_ -d bench -c "VACUUM ANALYZE jobs"
pgbench_out=$(pgbench -n -h 127.0.0.1 -p "$port" -U postgres -c "$workers" -j 2 -T "$seconds" \
    -f bench/claim_complete.sql bench 2>&1)
tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$pgbench_out" | head -n 1)
completed=$(psql_ -d bench -At -c "SELECT count(*) FROM jobs WHERE queue = 'pgbench' AND state = 'completed'")
[ -n "$tps" ] || { echo "$pgbench_out" >&2; die "pgbench printed no tps"; }
pg_jobs=$(python3 -c "print(round($completed / $seconds))")
echo "pgbench: $tps tps, $completed jobs completed in ${seconds}s = $pg_jobs jobs/s"

settings=$(psql_ -d bench -At -F ' = ' -c "SELECT name, setting FROM pg_settings
    WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'wal_level', 'max_connections') ORDER BY name")
pg_version=$(psql_ -d bench -At -c "SHOW server_version")

python3 - "$ours" "$pg_jobs" "$tps" "$settings" "$pg_version" "$jobs" "$workers" "$seconds" <<'PY'
import json, os, platform, re, subprocess, sys, datetime
ours = json.loads(sys.argv[1]); pg_jobs = float(sys.argv[2]); tps = float(sys.argv[3])
settings, version, jobs, workers, seconds = sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8]
cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
mem = round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)
ratio = ours['claim_complete_jobs_per_s'] / pg_jobs if pg_jobs else 0
section = f"""## Job queue

Measured {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} with `bench/queue.sh {jobs} {workers} {seconds}`
on {os.cpu_count()} cores ({cpu}), {mem} GiB, PostgreSQL {version} on loopback with durable settings:
{', '.join(s.replace(' = ', '=') for s in settings.splitlines())}. Release build.

| figure | ours | pgbench, same SQL, same database | target |
| --- | ---: | ---: | --- |
| claim + complete, {workers} workers (jobs/s) | {ours['claim_complete_jobs_per_s']:,.0f} | {pg_jobs:,.0f} ({tps:,.0f} tps of 10 jobs) | at least half of pgbench: **{ratio:.2f}×** |
| enqueue, one job per transaction, 8 connections (jobs/s) | {ours['enqueue_single_jobs_per_s']:,.0f} | | |
| enqueue, batches of 1,000 (jobs/s) | {ours['enqueue_batch_jobs_per_s']:,.0f} | | |
| enqueue → start, p50 at ~400 jobs/s (ms) | {ours['start_latency_p50_ms']:.1f} | | |
| enqueue → start, p99 at ~400 jobs/s (ms) | {ours['start_latency_p99_ms']:.1f} | | under 50 ms |

"Ours" runs the real `JobQueue` and `JobProcessor` (bench/QueueBench): one process, {workers} handler slots, a
no-op handler, wake-ups by NOTIFY. pgbench runs bench/claim_complete.sql with {workers} clients: a claim of 10 and
the completion of those 10 as two statements, with no handler, heartbeat or fencing per job.
"""
path = 'docs/BENCHMARKS.md'
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\nEvery figure here was written by the command named with it.\n\n"
if '## Job queue' in text:
    text = re.sub(r'## Job queue\n.*?(?=\n## |\Z)', section.rstrip() + '\n', text, flags=re.S)
else:
    text = text.rstrip() + '\n\n' + section
open(path, 'w').write(text)
print(section)
PY
