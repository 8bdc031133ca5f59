#!/usr/bin/env bash
# Loads demo data into a running local portal through the real department API: a department "Demo Burgerzaken"
# (its key is kept in .local/demo-department.json), two case types and a handful of cases with statuses for the test
# BSN 999993653 and the KvK number 12345678. Safe to run again: every write is idempotent.
# Usage: scripts/demo-data.sh [API base URL, default http://127.0.0.1:8080]   (scripts/run calls it)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PORTAL_ROOT"

api=${1:-http://127.0.0.1:8080}
bin=$(swift build --show-bin-path)
key_file=.local/demo-department.json

if [ ! -s "$key_file" ]; then
    (umask 077 && "$bin/PortalAPI" department add --name "Demo Burgerzaken" --json >"$key_file") \
        || die "could not add the demo department (remove it with PortalAPI department revoke, or delete .local/ to start over)"
fi
key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["apiKey"])' "$key_file")

call() {  # method path body
    local status
    status=$(curl -s -o /tmp/portal-demo.$$ -w '%{http_code}' -X "$1" "$api$2" \
        -H "Authorization: Bearer $key" -H 'Content-Type: application/json' --data-binary "$3")
    case "$status" in 2*) ;; *) cat /tmp/portal-demo.$$ >&2; rm -f /tmp/portal-demo.$$; die "$1 $2 answered $status" ;; esac
    rm -f /tmp/portal-demo.$$
}

day() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ; }

call PUT /api/v1/department/contact '{"name": "Klantcontactcentrum", "phone": "14 023", "email": "info@example.org", "hours": "ma-vr 8-20"}'
call PUT /api/v1/department/case-types/paspoort '{
  "name": {"nl": "Paspoort aanvragen", "en": "Passport application"}, "termDays": 56,
  "statusTypes": [
    {"code": "ontvangen", "name": {"nl": "Aanvraag ontvangen", "en": "Application received"}, "informs": false},
    {"code": "in-behandeling", "name": {"nl": "In behandeling", "en": "In progress"}, "uploadsAllowed": true},
    {"code": "afgewezen", "name": {"nl": "Afgewezen", "en": "Rejected"}, "final": true},
    {"code": "gereed", "name": {"nl": "Klaar om op te halen", "en": "Ready for collection"}, "final": true}]}'
call PUT /api/v1/department/case-types/melding-openbare-ruimte '{
  "name": {"nl": "Melding openbare ruimte", "en": "Report about public space"}, "termDays": 14,
  "statusTypes": [
    {"code": "gemeld", "name": {"nl": "Melding ontvangen", "en": "Report received"}, "informs": false},
    {"code": "ingepland", "name": {"nl": "Ingepland", "en": "Scheduled"}},
    {"code": "opgelost", "name": {"nl": "Opgelost", "en": "Resolved"}, "final": true}]}'

handler='{"name": "Team Burgerzaken", "phone": "14 023", "email": "burgerzaken@example.org", "hours": "ma-vr 9-17"}'
# The address on the form: the notifier mails it (into .local/mail/new/ with scripts/run) until the resident verifies one.
case_json() {  # subject caseType title submittedAt
    printf '{"subject": %s, "caseType": "%s", "title": "%s", "submittedAt": "%s", "contactEmail": "inwoner@example.org", "handler": %s}' \
        "$1" "$2" "$3" "$4" "$handler"
}
status_json() {  # eventId statusType setAt text [explanation]
    local explanation=${5:+, \"explanation\": {\"nl\": \"$5\"\}}
    printf '{"eventId": "%s", "statusType": "%s", "setAt": "%s", "text": {"nl": "%s"}%s}' "$1" "$2" "$3" "$4" "$explanation"
}
bsn='{"bsn": "999993653"}'
kvk='{"kvk": "12345678"}'

call POST '/api/v1/department/cases:batch' "{\"items\": [
 {\"reference\": \"DEMO-1\", \"case\": $(case_json "$bsn" paspoort "Paspoort aanvragen" "$(day '-10 days')"),
  \"statuses\": [$(status_json demo-1-a ontvangen "$(day '-10 days')" "Wij hebben uw aanvraag ontvangen."),
                 $(status_json demo-1-b in-behandeling "$(day '-6 days')" "Wij beoordelen uw aanvraag.")]},
 {\"reference\": \"DEMO-2\", \"case\": $(case_json "$bsn" paspoort "Identiteitskaart aanvragen" "$(day '-40 days')"),
  \"statuses\": [$(status_json demo-2-a ontvangen "$(day '-40 days')" "Wij hebben uw aanvraag ontvangen."),
                 $(status_json demo-2-b afgewezen "$(day '-20 days')" "Uw aanvraag is afgewezen." "Uw pasfoto voldoet niet aan de eisen. U kunt een nieuwe aanvraag doen met een nieuwe foto.")]},
 {\"reference\": \"DEMO-3\", \"case\": $(case_json "$bsn" melding-openbare-ruimte "Lantaarnpaal kapot, Grote Markt" "$(day '-30 days')"),
  \"statuses\": [$(status_json demo-3-a gemeld "$(day '-30 days')" "Wij hebben uw melding ontvangen."),
                 $(status_json demo-3-b ingepland "$(day '-25 days')" "De reparatie is ingepland.")]},
 {\"reference\": \"DEMO-4\", \"case\": $(case_json "$bsn" melding-openbare-ruimte "Losse stoeptegel, Zijlstraat" "$(day '-3 days')"),
  \"statuses\": [$(status_json demo-4-a gemeld "$(day '-3 days')" "Wij hebben uw melding ontvangen."),
                 $(status_json demo-4-b opgelost "$(day '-1 days')" "De stoeptegel ligt weer vast.")]},
 {\"reference\": \"DEMO-5\", \"case\": $(case_json "$kvk" melding-openbare-ruimte "Zwerfafval bij ingang" "$(day '-2 days')"),
  \"statuses\": [$(status_json demo-5-a gemeld "$(day '-2 days')" "Wij hebben uw melding ontvangen.")]}
]}"
log "demo data loaded: log in as BSN 999993653 (four cases) or KvK 12345678 (one)"
