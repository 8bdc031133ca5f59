#!/usr/bin/env bash
# Re-runs every benchmark with the arguments its recorded figures name, one after the other (never two at once: they
# would measure each other), and lets each rewrite its own section: docs/BENCHMARKS.md for the benchmarks and the
# distributed run, docs/RELIABILITY.md for the fault run. Release binaries, built first.
#
# Usage: bench/all.sh [names...]    (default: all of queue cases mail sync documents capacity distributed faults)
#
# Time on 2 cores: about 20 minutes after the release build (17 to 20 minutes on 2026-12-07; the fault run takes a
# third of it). Each script installs what it needs, runs on loopback against its own throwaway PostgreSQL, and stops
# everything it started; a script that fails stops the whole run with its name, and the sections written before it
# stay.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$PORTAL_ROOT"

all=(queue cases mail sync documents capacity distributed faults)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${all[@]}")
for name in "${names[@]}"; do
    [[ " ${all[*]} " == *" $name "* ]] || die "unknown benchmark $name (known: ${all[*]})"
done

ensure_swift
log "building the release binaries"
swift build -c release >/dev/null
export PORTAL_BIN
PORTAL_BIN=$(swift build -c release --show-bin-path)

started=$(date +%s)
for name in "${names[@]}"; do
    log "benchmark: $name"
    case $name in
        queue) bench/queue.sh 100000 "10 50" 15 ;;
        cases) bench/cases.sh 100000 1000000 15 16 ;;
        mail) bench/mail.sh 5000 20 20 4 ;;
        sync) bench/sync.sh 20000 300 20 ;;
        documents) bench/documents.sh 320 ;;
        capacity) bench/capacity.sh 300000 ;;
        distributed) DIST_WRITE=docs/BENCHMARKS.md bench/distributed.sh 120 ;;
        faults) DIST_WRITE=docs/RELIABILITY.md bench/faults.sh 300 ;;
    esac >/dev/null || die "bench/$name failed (its output is above; the sections written before it stay)"
done
log "all done in $(( ($(date +%s) - started) / 60 )) minutes; see git diff docs/"
