"""A departmental system for bench/sync.sh, on loopback: a change feed (docs/FEED.md) of --changes changes, and the
few ZGW Zaken and Catalogi resources the sync worker reads for a status (one zaaktype with two statustypen; zaak,
status and initiator n for every n). Bodies are shaped like the VNG examples; JWTs are required but not verified
(the tests verify them). Answers are made from templates, so the simulator is not what the benchmark measures."""

import argparse
import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--changes", type=int, default=10000)
parser.add_argument("--steps", type=int, default=5)
args = parser.parse_args()
BASE = f"http://127.0.0.1:{args.port}"


def bsn(n):
    """The n-th valid BSN from 10000000 upwards (the elfproef), as bench/subjects.sql makes them."""
    candidate = 10000000 + n * 10
    while True:
        digits = [int(d) for d in str(candidate)]
        total = sum(d * w for d, w in zip(digits, range(9, 1, -1)))
        if total % 11 < 10:
            return f"{candidate}{total % 11}"
        candidate += 1


# The feed: cases of `steps` changes each, the first creating the case.
cases = max(1, args.changes // args.steps)
STATUSES = ["ontvangen"] + ["in-behandeling"] * (args.steps - 2) + ["besluit"]
changes = []
for step in range(args.steps):
    for n in range(cases):
        change = {"reference": f"F-{n}", "statuses": [{"eventId": f"F-{n}-{step}", "statusType": STATUSES[step],
                  "setAt": f"2026-11-{step + 1:02d}T10:00:00Z", "text": {"nl": STATUSES[step]}}]}
        if step == 0:
            change["case"] = {"subject": {"bsn": bsn(n)}, "caseType": "vergunning", "title": "Omgevingsvergunning",
                              "submittedAt": "2026-11-01T09:00:00Z"}
        changes.append(json.dumps(change))

ZAAKTYPE = f"{BASE}/catalogi/api/v1/zaaktypen/10000000-0000-4000-8000-000000000000"
STATUSTYPEN = [
    {"url": f"{BASE}/catalogi/api/v1/statustypen/10000000-0000-4000-8000-00000000000{i}", "omschrijving": name,
     "omschrijvingGeneriek": "", "statustekst": text, "zaaktype": ZAAKTYPE, "volgnummer": i, "isEindstatus": i == 2,
     "informeren": True}
    for i, name, text in [(1, "Ontvangen", "Wij hebben uw aanvraag ontvangen."), (2, "Besluit genomen", "Er is een besluit.")]
]
ZAAKTYPE_BODY = {"url": ZAAKTYPE, "identificatie": "BENCH", "omschrijving": "Omgevingsvergunning",
                 "vertrouwelijkheidaanduiding": "openbaar", "indicatieInternOfExtern": "extern", "doorlooptijd": "P56D",
                 "statustypen": [s["url"] for s in STATUSTYPEN]}


def page(results, count=None):
    return {"count": len(results) if count is None else count, "next": None, "previous": None, "results": results}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def send(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        if path == "/feed/changes":
            after = int(query.get("after", "0"))
            limit = int(query.get("limit", "100"))
            chunk = changes[after:after + limit]
            return self.send(200, '{"changes": [' + ",".join(chunk) + f'], "next": "{after + len(chunk)}"}}')
        if not (self.headers.get("Authorization") or "").startswith("Bearer "):
            return self.send(403, '{"detail": "no token"}')
        if path.startswith("/zaken/api/v1/zaken") and self.headers.get("Accept-Crs") != "EPSG:4326":
            return self.send(412, '{"detail": "Accept-Crs"}')
        if m := re.fullmatch(r"/zaken/api/v1/statussen/(\d+)", path):
            n = m.group(1)
            return self.send(200, json.dumps({
                "url": f"{BASE}{path}", "zaak": f"{BASE}/zaken/api/v1/zaken/{n}", "statustype": STATUSTYPEN[0]["url"],
                "datumStatusGezet": "2026-11-23T10:00:00Z", "statustoelichting": "", "indicatieLaatstGezetteStatus": True}))
        if m := re.fullmatch(r"/zaken/api/v1/zaken/(\d+)", path):
            n = m.group(1)
            return self.send(200, json.dumps({
                "url": f"{BASE}{path}", "identificatie": f"ZB-{n}", "bronorganisatie": "002220647",
                "omschrijving": "Aanvraag omgevingsvergunning", "zaaktype": ZAAKTYPE, "registratiedatum": "2026-11-23",
                "startdatum": "2026-11-23", "einddatum": None, "einddatumGepland": None,
                "uiterlijkeEinddatumAfdoening": "2027-01-18", "vertrouwelijkheidaanduiding": "openbaar",
                "status": f"{BASE}/zaken/api/v1/statussen/{n}"}))
        if path == "/zaken/api/v1/zaken":
            return self.send(200, json.dumps(page([])))
        if path == "/zaken/api/v1/rollen":
            n = int(query.get("zaak", "0").rsplit("/", 1)[-1])
            return self.send(200, json.dumps(page([{
                "url": f"{BASE}/zaken/api/v1/rollen/{n}", "zaak": query.get("zaak"), "betrokkeneType": "natuurlijk_persoon",
                "omschrijvingGeneriek": "initiator", "betrokkeneIdentificatie": {"inpBsn": bsn(100000 + n)}}])))
        if path == ZAAKTYPE.removeprefix(BASE):
            return self.send(200, json.dumps(ZAAKTYPE_BODY))
        if path == "/catalogi/api/v1/statustypen":
            return self.send(200, json.dumps(page(STATUSTYPEN)))
        return self.send(404, '{"detail": "not found"}')


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
