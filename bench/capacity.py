"""The capacity model behind docs/SCALING.md: how many replicas of each process, how much PostgreSQL, for a city of
160,000 and for all 342 municipalities (about 18 million residents). Throughput per replica comes from the measured
tables in docs/BENCHMARKS.md; bytes per row from a database loaded by bench/capacity.sh. Writes the "Capacity model"
section of docs/BENCHMARKS.md and prints it.

Usage: python3 bench/capacity.py BYTES_PER_CASE BYTES_PER_AUDIT_RECORD BYTES_PER_RESIDENT "COMMAND" "MACHINE"
"""

import math
import re
import sys

from benchmarks_md import write_section

bytes_per_case, bytes_per_audit, bytes_per_resident = (float(x) for x in sys.argv[1:4])
command, machine = sys.argv[4], sys.argv[5]
text = open("docs/BENCHMARKS.md").read()


def measured(pattern):
    """The first number after the table row that matches `pattern` (thousands separators allowed)."""
    match = re.search(pattern + r"[^|]*\|\s*\**([\d,\.]+)", text)
    if not match:
        sys.exit(f"docs/BENCHMARKS.md has no figure for {pattern!r}: run its benchmark first")
    return float(match.group(1).replace(",", ""))


per_replica = {
    "API reads (requests/s)": measured(r"\| GET /api/v1/cases, 16 connections \(requests/s\)"),
    "API single pushes (events/s)": measured(r"\| status pushes, one per request, 16 connections \(events/s\)"),
    "API batch pushes (events/s)": measured(r"\| status pushes in batches of 1,000 for existing cases"),
    "notifier (mails/s)": measured(r"\| mails per second, queue → smtp-sink, 4 sessions"),
    "sync worker (feed changes/s)": measured(r"\| changes applied per second from a feed"),
    "API uploads with scan (MB/s)": measured(r"\| 320 × 1 MB \| [\d\.]+"),
}

# What one resident causes in a year. Assumptions, stated in docs/SCALING.md; change them here.
CASES_PER_RESIDENT = 1.0        # aanvragen and meldingen per resident per year
EVENTS_PER_CASE = 5             # status events, 3 of them announced by mail
MAILS_PER_CASE = 3
VISITS_PER_CASE = 6             # a visit: session check, case list, case page, messages = 4 requests, 4 audit records
REQUESTS_PER_VISIT = 4
UPLOAD_MB_PER_CASE = 0.75       # half the cases get one 1.5 MB upload
PEAK_HOUR_SHARE = 0.12          # of a working day's traffic in its busiest hour
WORKING_DAYS = 250
SURGE = 5                       # a mail wave or a news item: five times the peak hour, for minutes
HEADROOM = 0.6                  # replicas run at 60 % of what they were measured to do
CLOSED_MONTHS, AUDIT_YEARS = 12, 7
PUSH_SINGLE_SHARE = 0.3         # of status events pushed one per request (the rest in batches or by feed)


def plan(residents):
    cases = residents * CASES_PER_RESIDENT
    peak = lambda per_year: per_year / WORKING_DAYS * PEAK_HOUR_SHARE / 3600 * SURGE  # per second, at a surge
    load = {
        "API reads (requests/s)": peak(cases * VISITS_PER_CASE * REQUESTS_PER_VISIT),
        "API single pushes (events/s)": peak(cases * EVENTS_PER_CASE * PUSH_SINGLE_SHARE),
        "API batch pushes (events/s)": peak(cases * EVENTS_PER_CASE * (1 - PUSH_SINGLE_SHARE)),
        "notifier (mails/s)": peak(cases * MAILS_PER_CASE),
        "sync worker (feed changes/s)": peak(cases * EVENTS_PER_CASE * (1 - PUSH_SINGLE_SHARE)),
        "API uploads with scan (MB/s)": peak(cases * UPLOAD_MB_PER_CASE),
    }
    api_share = sum(load[k] / per_replica[k] for k in load if k.startswith("API"))
    replicas = {
        "API": max(2, math.ceil(api_share / HEADROOM)),
        "sync worker": max(2, math.ceil(load["sync worker (feed changes/s)"] / per_replica["sync worker (feed changes/s)"] / HEADROOM)),
        "notifier": max(2, math.ceil(load["notifier (mails/s)"] / per_replica["notifier (mails/s)"] / HEADROOM)),
    }
    open_and_recent_cases = cases * (0.25 + CLOSED_MONTHS / 12)  # a quarter of a year's cases open at any time
    audit_records = cases * (VISITS_PER_CASE * REQUESTS_PER_VISIT + EVENTS_PER_CASE) * AUDIT_YEARS
    storage = {
        "cases with history (GB)": open_and_recent_cases * bytes_per_case / 1e9,
        "audit log (GB)": audit_records * bytes_per_audit / 1e9,
        "residents (GB)": residents * bytes_per_resident / 1e9,
        "documents, 30 days past delivery (GB)": cases * UPLOAD_MB_PER_CASE / 1000 * (2 / 12),
    }
    return load, replicas, storage


def number(x):
    return f"{x:,.0f}" if x >= 10 else f"{x:,.1f}"


city_load, city_replicas, city_storage = plan(160_000)
nation_load, nation_replicas, nation_storage = plan(18_000_000)
lines = [
    "## Capacity model",
    "",
    f"Written by `{command}` on {machine}. Per-replica figures are the measured ones above (one replica, 2 cores);",
    "load at a surge of five times the busiest hour; replicas at 60 % of what they were measured to do, at least 2;",
    "bytes per row measured on the loaded database. Assumptions: `bench/capacity.py`, discussed in docs/SCALING.md.",
    "",
    "| per second at a surge | one replica does | city of 160,000 | 18 million residents |",
    "| --- | ---: | ---: | ---: |",
]
for key in per_replica:
    lines.append(f"| {key} | {number(per_replica[key])} | {number(city_load[key])} | {number(nation_load[key])} |")
lines += ["", "| replicas | city of 160,000 | 18 million residents |", "| --- | ---: | ---: |"]
for key in city_replicas:
    lines.append(f"| {key} | {city_replicas[key]} | {nation_replicas[key]} |")
lines += [
    "",
    f"| PostgreSQL storage (bytes per case with 5 events: {bytes_per_case:,.0f}; per audit record: {bytes_per_audit:,.0f}) | city of 160,000 | 18 million residents |",
    "| --- | ---: | ---: |",
]
for key in city_storage:
    lines.append(f"| {key} | {number(city_storage[key])} | {number(nation_storage[key])} |")
write_section("\n".join(lines) + "\n")
