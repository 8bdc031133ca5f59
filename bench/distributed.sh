#!/usr/bin/env bash
# The whole portal as a distributed deployment on this one machine, loopback only, with traffic and a check of the
# end state: the acceptance run of the operations issue.
#
# Usage: bench/distributed.sh [seconds=180]
#
#   One PostgreSQL; 3 `PortalAPI serve` replicas behind nginx (round-robin); 2 SyncWorker and 2 Notifier processes;
#   aiosmtpd catching mail into a Maildir; clamd when it is installed; bench/department_sim.py as the departments'
#   systems (a live change feed, a ZGW zaaksysteem that posts Open Notificaties-style callbacks, a webhook receiver).
#   bench/distributed_driver.py sends traffic through the balancer for [seconds]; bench/distributed_check.py then
#   waits (bounded) for the queues to drain and checks the end state against the driver's ledger, PostgreSQL, the
#   API as residents see it, the Maildir, the simulator and every process's /metrics. It prints a Markdown section
#   (pasteable into docs/BENCHMARKS.md; not written there) and exits 1 when a check fails. Last, every portal process
#   is sent SIGTERM at once and must stop by itself with status 0 (shutdown_check): a hung request or job would hold
#   a replica's shutdown up.
#
#   Settings (environment): DIST_RATE (actions per second the driver aims at, default 40; one action is one to three
#   requests), DIST_THREADS (12), DIST_RESIDENTS (200), DIST_SAMPLE (events looked up through the API, 400),
#   DIST_CLAMD (auto: scan uploads when clamd is installed; 1: install it; 0: no scan), PORTAL_BIN (a folder with the
#   three executables; default .build/release when it has all three, else .build/debug; else `swift build -c
#   release`). The binaries are copied into the work folder first, so a rebuild during the run changes nothing.
#
#   DIST_KEEP_LOGS=1 keeps the logs, the driver's ledger and the report also after a run that passed. DIST_WRITE=page
#   (e.g. docs/BENCHMARKS.md) writes the report into that page as its section, when every check passed.
#
#   DIST_FAULTS=1 (what bench/faults.sh sets) adds the faults of the hardening issue beside the traffic: a random API
#   replica, sync worker or notifier killed with SIGKILL and started again every 6 to 10 s; at a fifteenth of the run
#   the SMTP server stopped for DIST_OUTAGE seconds (default 60, at most a fifth of the run); at a third DIST_FLOOD
#   (100000) notifier jobs that have nothing to send put into the notifications queue at once; at half PostgreSQL
#   restarted (fast shutdown); at three quarters the departments' systems answering 503 for DIST_OUTAGE seconds. The
#   check then also reports what each fault did (docs/RELIABILITY.md).
#   DIST_SEED picks the victims (default: the date).
#
#   Time: from the first process started to the end of the check at most [seconds] + 5 minutes (a watchdog ends the
#   run after that); installing missing tools and building come before. Everything runs in a temporary folder that
#   is removed at exit; when a check fails the processes' logs are kept and their folder printed.
#
#   For fault injection (the hardening issue) every process is in a table by name (postgres, smtp, clamd, sim, lb,
#   api-1..3, sync-1..2, notifier-1..2) with start_proc, stop_proc, kill_proc (SIGKILL), restart_proc and wait_ready;
#   the traffic (start_driver, wait_driver) and the end-state check (run_check) are separate steps, so that the faults
#   (run_faults) run beside the driver.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$PORTAL_ROOT"

seconds=${1:-180}
rate=${DIST_RATE:-40}
threads=${DIST_THREADS:-12}
residents=${DIST_RESIDENTS:-200}
sample=${DIST_SAMPLE:-400}
clamd_mode=${DIST_CLAMD:-auto}
command="bench/distributed.sh $seconds"   # as the report shows it, with the settings that differ from the defaults
faults=${DIST_FAULTS:-}
flood=${DIST_FLOOD:-100000}
seed=${DIST_SEED:-$(date -u +%Y%m%d)}
outage=${DIST_OUTAGE:-60}
for setting in DIST_RATE DIST_THREADS DIST_RESIDENTS DIST_SAMPLE DIST_CLAMD DIST_FLOOD DIST_OUTAGE DIST_SEED; do
    [ -z "${!setting:-}" ] || command="$setting=${!setting} $command"
done
[ -z "$faults" ] || command=${command/bench\/distributed.sh/bench\/faults.sh}
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -ge 10 ] || die "usage: bench/distributed.sh [seconds, at least 10]"
[ "$outage" -le $(( seconds / 5 )) ] || outage=$(( seconds / 5 ))

# MARK: Tools and binaries (before the clock starts)

have_bins() { [ -x "$1/PortalAPI" ] && [ -x "$1/SyncWorker" ] && [ -x "$1/Notifier" ]; }
if [ -n "${PORTAL_BIN:-}" ]; then
    bin_source=$PORTAL_BIN
    have_bins "$bin_source" || die "PORTAL_BIN=$bin_source does not hold PortalAPI, SyncWorker and Notifier"
elif have_bins .build/release; then
    bin_source=.build/release
elif have_bins .build/debug; then
    bin_source=.build/debug
else
    ensure_swift
    log "building (release)"
    swift build -c release >/dev/null
    bin_source=$(swift build -c release --show-bin-path)
fi
for executable in PortalAPI SyncWorker Notifier; do
    # An executable is built from its own module and Shared; other modules' changes do not concern it.
    if [ -n "$(find "Sources/$executable" Sources/Shared Package.swift -newer "$bin_source/$executable" -print -quit 2>/dev/null)" ]; then
        log "warning: $bin_source/$executable is older than the sources (PORTAL_BIN=... or rebuild to run the current code)"
    fi
done
ensure_postgres
ensure_mail_tools
command -v curl >/dev/null || apt_install curl
command -v nginx >/dev/null || apt_install nginx
case "$clamd_mode" in
    1) ensure_clamav; use_clamd=1 ;;
    0) use_clamd= ;;
    *) if { command -v clamd >/dev/null || [ -x /usr/sbin/clamd ]; } && command -v sigtool >/dev/null; then use_clamd=1; else use_clamd=; fi ;;
esac

# MARK: The work folder, PostgreSQL and the clock

pg_settings=(max_connections=400 shared_buffers=256MB)
bench_postgres "${pg_settings[@]}"   # sets $work, $port, PORTAL_DATABASE_URL, psql_; its own trap is replaced below
pg_port=$port
mkdir -p "$work/logs" "$work/mail/new" "$work/mail/cur" "$work/mail/tmp" "$work/bin" "$work/lb/tmp"
clock_started=$(date +%s)
deadline=$(( clock_started + seconds + 300 ))
failed=
helpers=()     # other processes of ours (the watchdog, the driver, the check): stopped at exit too

declare -A PROC_KIND PROC_PORT PROC_PID PROC_LOG
PROC_ORDER=()

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    for pid in "${helpers[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    # Everything but PostgreSQL at once, in reverse order of starting, then PostgreSQL.
    local name pending=()
    for (( i=${#PROC_ORDER[@]}-1; i>=0; i-- )); do
        name=${PROC_ORDER[$i]}
        [ "${PROC_KIND[$name]}" = postgres ] && continue
        if [ -n "${PROC_PID[$name]:-}" ] && kill -TERM "${PROC_PID[$name]}" 2>/dev/null; then pending+=("$name"); fi
    done
    local until=$(( $(date +%s) + 75 ))   # a replica's own shutdown bound is 20 s + 30 s + 10 s
    for name in "${pending[@]}"; do
        while kill -0 "${PROC_PID[$name]}" 2>/dev/null && [ "$(date +%s)" -lt "$until" ]; do sleep 0.1; done
        kill -KILL "${PROC_PID[$name]}" 2>/dev/null
        wait "${PROC_PID[$name]}" 2>/dev/null
    done
    for pid in "${helpers[@]}"; do kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    if [ "$status" -ne 0 ] || [ -n "$failed" ] || [ -n "${DIST_KEEP_LOGS:-}" ]; then
        local kept
        kept=$(mktemp -d /tmp/portal-distributed-logs.XXXXXX)
        cp -r "$work/logs/." "$kept/" 2>/dev/null
        cp "$work/ledger.json" "$work/report.md" "$kept/" 2>/dev/null
        log "logs kept in $kept"
    fi
    bench_cleanup   # stops PostgreSQL, removes $work
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'log "stopped (SIGTERM or the time limit)"; exit 124' TERM

# The watchdog: the whole run ends at the deadline whatever hangs.
bash -c 'sleep "$1" & s=$!; trap "kill $s 2>/dev/null; exit 0" TERM; wait $s; echo "==> time limit reached" >&2; kill -TERM "$2"' \
    _ $(( deadline - clock_started )) $$ &
helpers+=($!)

# A snapshot of the binaries: copied, and copied again while the source changes under us (a build in progress).
snapshot_bins() {
    local until=$(( $(date +%s) + 300 )) before after
    while :; do
        before=$(stat -c '%s %Y' "$bin_source"/{PortalAPI,SyncWorker,Notifier})
        cp "$bin_source"/{PortalAPI,SyncWorker,Notifier} "$work/bin/"
        after=$(stat -c '%s %Y' "$bin_source"/{PortalAPI,SyncWorker,Notifier})
        if [ "$before" = "$after" ] && cmp -s "$bin_source/PortalAPI" "$work/bin/PortalAPI" \
            && "$work/bin/PortalAPI" --help >/dev/null 2>&1; then
            return 0
        fi
        [ "$(date +%s)" -lt "$until" ] || die "the binaries in $bin_source keep changing (a build in progress?)"
        log "the binaries in $bin_source changed while being copied; again"
        sleep 2
    done
}
log "copying the binaries of $bin_source"
snapshot_bins
bin=$work/bin

# MARK: The process table

define_proc() {  # name kind [port]
    PROC_KIND[$1]=$2
    PROC_PORT[$1]=${3:-$(free_port)}
    PROC_LOG[$1]=$work/logs/$1.log
    PROC_PID[$1]=
    PROC_ORDER+=("$1")
}

launch() {  # name: starts it in the background, its output appended to its log (restarts keep the history)
    local name=$1 port=${PROC_PORT[$1]} log=${PROC_LOG[$1]}
    case ${PROC_KIND[$name]} in
        postgres)
            start_postgres "$work/pg" "$port" "${pg_settings[@]}"
            PROC_PID[$name]=$(head -n 1 "$work/pg/data/postmaster.pid")
            return ;;
        api) PORTAL_HTTP_PORT=$port "$bin/PortalAPI" serve >>"$log" 2>&1 & ;;
        sync) PORTAL_HTTP_PORT=$port "$bin/SyncWorker" >>"$log" 2>&1 & ;;
        notifier) PORTAL_HTTP_PORT=$port "$bin/Notifier" >>"$log" 2>&1 & ;;
        smtp) python3 -m aiosmtpd -n -l "127.0.0.1:$port" -c aiosmtpd.handlers.Mailbox "$work/mail" >>"$log" 2>&1 & ;;
        clamd) "$(command -v clamd || echo /usr/sbin/clamd)" -c "$work/clamd/clamd.conf" >>"$log" 2>&1 & ;;
        sim) SIM_FEED_TOKEN=$DIST_FEED_TOKEN SIM_WEBHOOK_SECRET=$DIST_WEBHOOK_SECRET \
                python3 bench/department_sim.py --port "$port" --changes 5 >>"$log" 2>&1 & ;;
        lb) nginx -e "$log" -p "$work/lb" -c "$work/lb/nginx.conf" -g 'daemon off;' >>"$log" 2>&1 & ;;
        *) die "unknown process kind ${PROC_KIND[$name]}" ;;
    esac
    PROC_PID[$name]=$!
}

probe() {  # name: 0 when it answers as it should when ready
    local port=${PROC_PORT[$1]}
    case ${PROC_KIND[$1]} in
        postgres) pg_isready -q -h 127.0.0.1 -p "$port" ;;
        api|sync|notifier|lb) curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$port/health/ready" ;;
        sim) curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$port/control/stats" ;;
        smtp) python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1', $port), 2); s.settimeout(2); sys.exit(0 if s.recv(64).startswith(b'220') else 1)" 2>/dev/null ;;
        clamd) python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1', $port), 2); s.settimeout(2); s.sendall(b'zPING\0'); sys.exit(0 if s.recv(10).startswith(b'PONG') else 1)" 2>/dev/null ;;
    esac
}

is_running() { [ -n "${PROC_PID[$1]:-}" ] && kill -0 "${PROC_PID[$1]}" 2>/dev/null; }

wait_ready() {  # name [seconds=90]: polls until ready; fails when it exits or the time is up
    local name=$1 until=$(( $(date +%s) + ${2:-90} ))
    until probe "$name"; do
        is_running "$name" || return 1
        [ "$(date +%s)" -lt "$until" ] || return 1
        sleep 0.2
    done
}

start_proc() {  # name: started, not waited for
    is_running "$1" && return 0
    launch "$1"
}

stop_proc() {  # name [signal=TERM] [grace seconds=75]: asks it to stop, SIGKILL after the grace period
    local name=$1 signal=${2:-TERM} grace=${3:-75} pid=${PROC_PID[$1]:-}
    [ -n "$pid" ] || return 0
    if [ "${PROC_KIND[$name]}" = postgres ] && [ "$signal" = TERM ]; then
        stop_postgres "$work/pg"
        PROC_PID[$name]=
        return 0
    fi
    kill -"$signal" "$pid" 2>/dev/null || true
    local until=$(( $(date +%s) + grace ))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$(date +%s)" -ge "$until" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
        sleep 0.1
    done
    { wait "$pid"; } 2>/dev/null || true   # (braces: also without bash's "Killed" notice)
    PROC_PID[$name]=
}

kill_proc() { stop_proc "$1" KILL 5; }   # the crash of the hardening issue

restart_proc() {  # name: stopped (gracefully), started and ready again
    stop_proc "$1"
    start_ready "$1"
}

start_ready() {  # name: started and ready; once more after a failed start (say, a binary being replaced)
    start_proc "$1"
    wait_ready "$1" && return 0
    log "$1 did not become ready; its log ends with:"
    tail -n 5 "${PROC_LOG[$1]}" >&2 || true
    stop_proc "$1" TERM 10
    log "starting $1 once more"
    start_proc "$1"
    wait_ready "$1" || { tail -n 20 "${PROC_LOG[$1]}" >&2 || true; die "$1 did not become ready (log: ${PROC_LOG[$1]})"; }
}

start_all_ready() {  # names...: started together, then each waited for
    local name
    for name in "$@"; do start_proc "$name"; done
    for name in "$@"; do
        wait_ready "$name" || { log "$name is not ready yet"; stop_proc "$name" TERM 10; start_ready "$name"; }
    done
}

api_replicas=(api-1 api-2 api-3)
sync_workers=(sync-1 sync-2)
notifiers=(notifier-1 notifier-2)

# PostgreSQL is already running (bench_postgres); it joins the table so that it can be stopped and started by name.
define_proc postgres postgres "$pg_port"
PROC_PID[postgres]=$(head -n 1 "$work/pg/data/postmaster.pid")
define_proc smtp smtp
[ -z "$use_clamd" ] || define_proc clamd clamd
define_proc sim sim
for name in "${api_replicas[@]}"; do define_proc "$name" api; done
define_proc lb lb
for name in "${sync_workers[@]}"; do define_proc "$name" sync; done
for name in "${notifiers[@]}"; do define_proc "$name" notifier; done

lb_url=http://127.0.0.1:${PROC_PORT[lb]}
sim_url=http://127.0.0.1:${PROC_PORT[sim]}

# MARK: Configuration

secret() { head -c 32 /dev/urandom | base64 | tr -d '/+=' ; }
export PORTAL_AUDIT_KEY=$(secret)$(secret)
export PORTAL_DEV_LOGIN=true
export PORTAL_LOG_FORMAT=json
export PORTAL_LOG_LEVEL=${PORTAL_LOG_LEVEL:-info}
export PORTAL_PUBLIC_URL=$lb_url
export PORTAL_SMTP_URL=smtp://127.0.0.1:${PROC_PORT[smtp]}
export PORTAL_MAIL_FROM=noreply@gemeente.example
export PORTAL_MAIL_FROM_NAME="Gemeente (distributed run)"
export PORTAL_MAIL_MERGE_WINDOW_SECONDS=1
export PORTAL_DATABASE_MAX_CONNECTIONS=${PORTAL_DATABASE_MAX_CONNECTIONS:-20}
# nginx passes the client's address on; the driver's residents all come from 127.0.0.1, one client as far as the
# login limit can tell, so that limit is off here (AbuseTests hold it). The department limit stays on.
export PORTAL_HTTP_TRUSTED_PROXIES=127.0.0.1
export PORTAL_RATE_LIMIT_LOGIN=off
# Under faults a handler can wait on a database call that never answers (seen after a PostgreSQL restart): it is
# given up after the job timeout, and retried. A minute here, so that it happens within the run (default ten).
[ -z "$faults" ] || export PORTAL_JOB_TIMEOUT_SECONDS=60
unset PORTAL_CLAMD_ADDRESS PORTAL_OIDC_ISSUER PORTAL_DOCUMENT_STORAGE PORTAL_DOCUMENT_DIRECTORY
DIST_FEED_TOKEN=$(secret)
DIST_WEBHOOK_SECRET=$(secret)$(secret)
DIST_ZGW_SECRET=$(secret)$(secret)
export DIST_FEED_TOKEN DIST_WEBHOOK_SECRET DIST_ZGW_SECRET   # read by `department connect-*` through --*-env

if [ -n "$use_clamd" ]; then
    # clamd with a signature database made here (no download), as bench/documents.sh does: the EICAR file's MD5.
    mkdir -p "$work/clamd"
    printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' >"$work/clamd/eicar.com"
    sigtool --md5 "$work/clamd/eicar.com" >"$work/clamd/bench.hdb"
    rm "$work/clamd/eicar.com"
    cat >"$work/clamd/clamd.conf" <<EOF
Foreground yes
DatabaseDirectory $work/clamd
TCPSocket ${PROC_PORT[clamd]}
TCPAddr 127.0.0.1
StreamMaxLength 30M
MaxThreads 12
EOF
    export PORTAL_CLAMD_ADDRESS=127.0.0.1:${PROC_PORT[clamd]}
fi

# nginx: round-robin over the replicas with kept-alive upstream connections; request bodies streamed through.
chmod 777 "$work/lb/tmp"
{
    echo "worker_processes 1;"
    echo "pid $work/lb/nginx.pid;"
    echo "error_log ${PROC_LOG[lb]} warn;"
    echo "events { worker_connections 1024; }"
    echo "http {"
    echo "    log_format upstream '\$time_iso8601 \$request_method \$uri \$status \$upstream_addr \$request_time';"
    echo "    access_log $work/logs/lb-access.log upstream;"
    for temp in client_body proxy fastcgi uwsgi scgi; do echo "    ${temp}_temp_path $work/lb/tmp/$temp;"; done
    echo "    client_max_body_size 30m;"
    echo "    upstream portal {"
    for name in "${api_replicas[@]}"; do echo "        server 127.0.0.1:${PROC_PORT[$name]};"; done
    echo "        keepalive 32;"
    echo "    }"
    echo "    server {"
    echo "        listen 127.0.0.1:${PROC_PORT[lb]};"
    echo "        location / {"
    echo "            proxy_pass http://portal;"
    echo "            proxy_http_version 1.1;"
    echo "            proxy_set_header Connection \"\";"
    echo "            proxy_set_header Host \$http_host;"
    echo "            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;"
    echo "            proxy_request_buffering off;"
    echo "            proxy_buffering off;"
    echo "            proxy_connect_timeout 2s;"
    echo "            proxy_read_timeout 120s;"
    echo "        }"
    echo "    }"
    echo "}"
} >"$work/lb/nginx.conf"

# MARK: Steps

start_system() {
    log "migrating"
    "$bin/PortalAPI" migrate >>"$work/logs/migrate.log" 2>&1 || { tail -n 20 "$work/logs/migrate.log" >&2; die "migration failed"; }
    log "starting the SMTP catcher, ${use_clamd:+clamd, }the department simulator, 3 API replicas"
    start_all_ready smtp ${use_clamd:+clamd} sim "${api_replicas[@]}"
    log "starting nginx, 2 sync workers, 2 notifiers"
    start_all_ready lb "${sync_workers[@]}" "${notifiers[@]}"
}

department_add() {  # name -> JSON {id, name, apiKey}
    (umask 077 && "$bin/PortalAPI" department add --name "$1" --json 2>>"$work/logs/cli.log")
}

setup_departments() {
    log "departments: 3 pushing (one with a webhook), 1 change feed, 1 ZGW"
    local push1 push2 push3 feed zgw credential
    push1=$(department_add "Burgerzaken")
    push2=$(department_add "Belastingen")
    push3=$(department_add "Wijkzaken")
    feed=$(department_add "Vergunningen")
    zgw=$(department_add "Omgevingsdienst")
    dept_id() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$1"; }
    "$bin/PortalAPI" department connect-webhook --id "$(dept_id "$push1")" --url "$sim_url/webhook" \
        --secret-env DIST_WEBHOOK_SECRET >>"$work/logs/cli.log" 2>&1
    "$bin/PortalAPI" department connect-feed --id "$(dept_id "$feed")" --url "$sim_url/live-feed" --token-env DIST_FEED_TOKEN \
        --interval-seconds 1 --max-concurrent 2 --max-per-second 50 >>"$work/logs/cli.log" 2>&1
    credential=$("$bin/PortalAPI" department connect-zgw --id "$(dept_id "$zgw")" --zaken "$sim_url/zaken/api/v1/" \
        --catalogi "$sim_url/catalogi/api/v1/" --client-id portal --secret-env DIST_ZGW_SECRET \
        --interval-seconds 30 --max-per-second 200 2>>"$work/logs/cli.log" | tail -n 1)
    [[ "$credential" == "Bearer portal_zgw_"* ]] || die "connect-zgw printed no abonnement credential"
    (umask 077 && python3 - "$push1" "$push2" "$push3" "$feed" "$zgw" "$credential" "$lb_url" "$sim_url" >"$work/config.json" <<'PY'
import json, sys
push1, push2, push3, feed, zgw, credential, api, sim = sys.argv[1:]
def department(text, kind, webhook=False):
    d = json.loads(text)
    return {"id": d["id"], "name": d["name"], "key": d["apiKey"], "kind": kind, "webhook": webhook}
print(json.dumps({
    "api": api, "sim": sim, "callbackUrl": f"{api}/api/v1/zgw/notifications", "zgwAuth": credential,
    "departments": [department(push1, "push", True), department(push2, "push"), department(push3, "push"),
                    department(feed, "feed"), department(zgw, "zgw")]}))
PY
    )
}

start_driver() {  # the traffic, in the background so that faults can run beside it
    log "traffic: ${seconds} s at $rate actions/s from $threads threads through nginx ($lb_url)"
    python3 bench/distributed_driver.py --config "$work/config.json" --ledger "$work/ledger.json" --seconds "$seconds" \
        --rate "$rate" --threads "$threads" --residents "$residents" &
    driver=$!
    helpers+=("$driver")
    traffic_started=$(date +%s.%N)
}

wait_driver() { wait "$driver" || die "the driver failed"; }

# MARK: Faults (DIST_FAULTS=1)

fault_log() {  # what, [JSON fields]: one line of the fault timeline, at its time since the traffic started
    local now
    now=$(date +%s.%N)
    printf '{"t": %s, "what": "%s"%s}\n' "$(since "$traffic_started")" "$1" "${2:+, $2}" >>"$work/faults.jsonl"
}

ready_all() {  # seconds until every portal process answers ready again (polled), at most 120
    local started name
    started=$(date +%s.%N)
    for name in "${api_replicas[@]}" "${sync_workers[@]}" "${notifiers[@]}"; do
        wait_ready "$name" 120 || { log "$name did not become ready again"; return 1; }
    done
    since "$started"
}

since() { awk -v now="$(date +%s.%N)" -v then="$1" 'BEGIN { printf "%.1f", now - then }'; }

run_faults() {  # the fault schedule, beside the driver, in this shell (so that the process table stays true)
    local end=$(( ${traffic_started%.*} + seconds - 15 ))
    # The SMTP outage comes first: the flood keeps the notifier busy for minutes, and an outage behind it would find no
    # mail to defer.
    local smtp_at=$(( seconds / 15 )) flood_at=$(( seconds / 3 )) restart_at=$(( seconds / 2 )) sim_at=$(( 3 * seconds / 4 ))
    local victims=("${api_replicas[@]}" "${sync_workers[@]}" "${notifiers[@]}")
    local next_kill=$(( ${traffic_started%.*} + 8 )) now elapsed victim took smtp_back=0
    RANDOM=$seed
    log "faults: kills every 6-10 s (seed $seed), SMTP down at ${smtp_at}s for ${outage}s, flood of $flood jobs at" \
        "${flood_at}s, PostgreSQL restart at ${restart_at}s, the departments failing at ${sim_at}s for ${outage}s"
    : >"$work/faults.jsonl"
    while now=$(date +%s); [ "$now" -lt "$end" ]; do
        elapsed=$(( now - ${traffic_started%.*} ))
        if [ -n "$flood_at" ] && [ "$elapsed" -ge "$flood_at" ]; then
            fault_log flood-start "\"jobs\": $flood"
            # Jobs for notifications that do not exist: each is a real claim, a real transaction in the notifier that
            # finds nothing to send, and a completion; the notifications queue is the one the residents' mail is in.
            psql_ -d bench -c "INSERT INTO jobs (queue, kind, payload, max_attempts)
                SELECT 'notifications', 'mail.notification', jsonb_build_object('notification', -g), 25
                FROM generate_series(1, $flood) g" >/dev/null
            fault_log flood-inserted
            flood_at=
        fi
        if [ -n "$restart_at" ] && [ "$elapsed" -ge "$restart_at" ]; then
            fault_log postgres-stop
            stop_proc postgres
            start_ready postgres
            fault_log postgres-started
            took=$(ready_all) || die "a process did not recover from the PostgreSQL restart"
            fault_log postgres-recovered "\"seconds\": $took"
            restart_at=
        fi
        if [ -n "$smtp_at" ] && [ "$elapsed" -ge "$smtp_at" ]; then
            fault_log smtp-stop
            stop_proc smtp
            smtp_back=$(( now + outage ))
            smtp_at=
        fi
        if [ "$smtp_back" -gt 0 ] && [ "$now" -ge "$smtp_back" ]; then
            start_ready smtp
            fault_log smtp-started
            smtp_back=0
        fi
        if [ -n "$sim_at" ] && [ "$elapsed" -ge "$sim_at" ]; then
            curl -fs -o /dev/null -X POST "$sim_url/control/fail" --data "{\"seconds\": $outage}" || die "the simulator took no fail order"
            fault_log departments-failing "\"seconds\": $outage"
            sim_at=
        fi
        if [ "$now" -ge "$next_kill" ]; then
            victim=${victims[$(( RANDOM % ${#victims[@]} ))]}
            kill_proc "$victim"
            fault_log kill "\"process\": \"$victim\""
            start_ready "$victim"
            fault_log restarted "\"process\": \"$victim\""
            next_kill=$(( $(date +%s) + 6 + RANDOM % 5 ))
        fi
        sleep 0.5
    done
    [ "$smtp_back" -eq 0 ] || { start_ready smtp; fault_log smtp-started; }
    fault_log faults-end
}

run_check() {  # the end state: drain (bounded by what is left of the time), then every check
    local now drain
    now=$(date +%s)
    drain=$(( deadline - now - 90 ))   # what is left, less time for the checks themselves
    [ "$drain" -le 180 ] || drain=180
    [ "$drain" -ge 10 ] || drain=10
    python3 - "$work/state.json" <<PY
import json, sys
state = {
    "configPath": "$work/config.json", "ledger": "$work/ledger.json", "report": "$work/report.md",
    "pg": {"port": $pg_port, "database": "bench"}, "maildir": "$work/mail", "logs": "$work/logs",
    "sim": "$sim_url", "drainSeconds": $drain, "sample": $sample,
    "faults": "$work/faults.jsonl" if "$faults" else None, "trafficStarted": float("${traffic_started:-0}"),
    "api": [{"name": n, "url": f"http://127.0.0.1:{p}"} for n, p in [$(for n in "${api_replicas[@]}"; do printf '("%s", %s),' "$n" "${PROC_PORT[$n]}"; done)]],
    "sync": [{"name": n, "url": f"http://127.0.0.1:{p}"} for n, p in [$(for n in "${sync_workers[@]}"; do printf '("%s", %s),' "$n" "${PROC_PORT[$n]}"; done)]],
    "notifier": [{"name": n, "url": f"http://127.0.0.1:{p}"} for n, p in [$(for n in "${notifiers[@]}"; do printf '("%s", %s),' "$n" "${PROC_PORT[$n]}"; done)]],
    "run": {"date": "$(date -u +%Y-%m-%d)", "seconds": $seconds, "bin": "$bin_source", "clamd": bool("$use_clamd"),
            "command": "$command",
            "cpus": $(nproc), "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')",
            "postgres": "$(psql_ -d bench -Atc 'SHOW server_version' | cut -d' ' -f1)"},
}
json.dump(state, open(sys.argv[1], "w"))
PY
    python3 bench/distributed_check.py --state "$work/state.json" &
    local check=$!
    helpers+=("$check")
    wait "$check" || failed=1
}

shutdown_check() {  # SIGTERM to every portal process at once: each must stop by itself, with status 0
    local name pid status started until unclean=() stopped=0
    started=$(date +%s)
    until=$(( started + 75 ))   # a replica's own shutdown bound is 20 s + 30 s + 10 s
    for name in "${PROC_ORDER[@]}"; do
        case "${PROC_KIND[$name]}" in api | sync | notifier) ;; *) continue ;; esac
        [ -n "${PROC_PID[$name]:-}" ] && kill -TERM "${PROC_PID[$name]}" 2>/dev/null
    done
    for name in "${PROC_ORDER[@]}"; do
        case "${PROC_KIND[$name]}" in api | sync | notifier) ;; *) continue ;; esac
        pid=${PROC_PID[$name]:-}
        [ -n "$pid" ] || continue
        while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$until" ]; do sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null
            unclean+=("$name did not stop")
        else
            status=0
            { wait "$pid"; } 2>/dev/null || status=$?
            if [ "$status" -eq 0 ]; then stopped=$(( stopped + 1 )); else unclean+=("$name ended with status $status"); fi
        fi
        PROC_PID[$name]=
    done
    local line
    if [ ${#unclean[@]} -eq 0 ]; then
        line="After the check, SIGTERM to every portal process at once: all $stopped stopped by themselves with status 0 within $(( $(date +%s) - started )) s."
        echo "  ok   every portal process stopped by itself when asked: $stopped with status 0"
    else
        line="After the check, SIGTERM to every portal process at once: **FAIL**: $(IFS=';'; echo "${unclean[*]}")."
        echo "  FAIL every portal process stopped by itself when asked: ${unclean[*]}"
        failed=1
    fi
    [ -f "$work/report.md" ] && printf '\n%s\n' "$line" >> "$work/report.md"
    # DIST_WRITE=page (bench/all.sh): the report becomes that page's section of its title, when every check passed.
    if [ -n "${DIST_WRITE:-}" ] && [ -z "$failed" ]; then
        python3 bench/benchmarks_md.py "$work/report.md" "$DIST_WRITE" >/dev/null
        log "wrote the report into $DIST_WRITE"
    fi
}

# MARK: The run

start_system
setup_departments
start_driver
[ -z "$faults" ] || run_faults
wait_driver
run_check
shutdown_check
log "took $(( $(date +%s) - clock_started )) s from the first process started (limit $(( seconds + 300 )) s)"
[ -z "$failed" ] || { log "the end-state check failed"; exit 1; }
