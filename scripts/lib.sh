# Shared helpers for scripts/run, scripts/test and bench/*.sh. Source it; it defines functions only.
#
# PostgreSQL refuses to run as root, and the scripts run as root on a fresh machine, so the throwaway servers run
# as the unprivileged system user "portal-pg" (created when missing), with their data inside the project's .local/
# folder, listening on loopback only.

PORTAL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_USER=portal-pg

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

apt_updated=
apt_install() {
    command -v apt-get >/dev/null || die "apt-get is missing: install $* by hand"
    if [ -z "$apt_updated" ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed"
        apt_updated=1
    fi
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || die "apt-get install $* failed"
}

pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

ensure_postgres() {
    [ -n "$(pg_bindir)" ] && [ -x "$(pg_bindir)/initdb" ] || apt_install postgresql postgresql-contrib
    command -v psql >/dev/null || apt_install postgresql-client
    command -v pgbench >/dev/null || apt_install postgresql-contrib
    id -u "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
}

# The SMTP server the tests and scripts/run use (aiosmtpd, from PyPI), and openssl for the tests' certificates.
# clamd and sigtool for the virus-scanning tests, which make their own signature database (no download here).
ensure_clamav() {
    command -v clamd >/dev/null || [ -x /usr/sbin/clamd ] || apt_install clamav-daemon
    command -v sigtool >/dev/null || apt_install clamav
}

ensure_mail_tools() {
    command -v openssl >/dev/null || apt_install openssl
    python3 -c 'import aiosmtpd' 2>/dev/null && return 0
    log "installing aiosmtpd"
    python3 -m pip install -q aiosmtpd 2>/dev/null || python3 -m pip install -q --break-system-packages aiosmtpd \
        || die "could not install aiosmtpd with pip"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_postgres DIR PORT [extra postgres -c settings...]: a fresh cluster in DIR (created when missing), trust
# authentication on loopback, durable settings (fsync and synchronous_commit stay on).
start_postgres() {
    local dir=$1 port=$2; shift 2
    local bin; bin=$(pg_bindir)
    mkdir -p "$dir"
    chown "$PG_USER" "$dir"
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        runuser -u "$PG_USER" -- "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 \
            --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    local options="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=200"
    for setting in "$@"; do options="$options -c $setting"; done
    runuser -u "$PG_USER" -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -o "$options" -w -t 60 start \
        >/dev/null || { tail -n 20 "$dir/postgres.log" >&2; die "PostgreSQL did not start"; }
}

stop_postgres() {
    local dir=$1
    [ -f "$dir/data/postmaster.pid" ] || return 0
    runuser -u "$PG_USER" -- "$(pg_bindir)/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

# For the benchmarks: a work folder $work and a throwaway PostgreSQL in it (started with the settings given) with a
# database "bench"; sets $port, PORTAL_DATABASE_URL and psql_ (psql on that server). At exit, the processes whose ids
# the script added to the array pids are stopped, then PostgreSQL, and the work folder is removed.
bench_postgres() {
    work=$(mktemp -d /tmp/portal-bench.XXXXXX)
    chmod 755 "$work"
    pids=()
    trap bench_cleanup EXIT
    port=$(free_port)
    start_postgres "$work/pg" "$port" "$@"
    psql_() { psql -X -q -h 127.0.0.1 -p "$port" -U postgres "$@"; }
    psql_ -d postgres -c "CREATE DATABASE bench"
    export PORTAL_DATABASE_URL="postgres://postgres@127.0.0.1:$port/bench?sslmode=disable"
}

bench_cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
    stop_postgres "$work/pg"
    rm -rf "$work"
}

ensure_swift() {
    command -v swift >/dev/null || [ -x /opt/swift/usr/bin/swift ] || die "no Swift toolchain found"
    command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH
}
