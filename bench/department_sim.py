"""A departmental system for bench/sync.sh, on loopback: a change feed (docs/FEED.md) of --changes changes, and the
few ZGW Zaken and Catalogi resources the sync worker reads for a status (one zaaktype with two statustypen; zaak,
status and initiator n for every n). Bodies are shaped like the VNG examples; JWTs are required but not verified
(the tests verify them). Answers are made from templates, so the simulator is not what the benchmark measures.

For bench/distributed.sh it also plays departments that change while the portal runs (none of this changes what
bench/sync.sh sees):

- a live change feed at /live-feed/changes, filled by the driver through POST /control/feed {"changes": [...]}
  (Bearer token required when SIM_FEED_TOKEN is set);
- live ZGW zaken (zaaktype LIVE-ZAAK with three statustypen) whose statuses the driver creates through
  POST /control/zgw/statuses {"zaak", "bsn", "statustype"}; each new status is announced, as Open Notificaties does,
  by a POST to the abonnement set with PUT /control/abonnement {"callbackUrl", "auth"} (which first sends Open
  Notificaties' two test messages, with and without the auth value), and the callback's status is returned;
- a webhook receiver at POST /webhook that checks Portal-Signature with SIM_WEBHOOK_SECRET and counts deliveries;
- GET /control/stats: what it served and received, for the end-state check;
- POST /control/fail {"seconds": N}: for N seconds every departmental endpoint (feed, ZGW, webhook) answers 503, as a
  department's system that is down (bench/faults.sh); the simulator keeps its state."""

import argparse
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import threading
import time
import uuid
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


# The live departments (bench/distributed.sh). One lock guards all of it; the handlers hold it only briefly.
LIVE = threading.Lock()
FAILING_UNTIL = [0.0]  # time.time() until which the departmental endpoints answer 503
FEED_TOKEN = os.environ.get("SIM_FEED_TOKEN")
WEBHOOK_SECRET = os.environ.get("SIM_WEBHOOK_SECRET", "").encode()
live_feed = []           # JSON texts of changes, in order; the cursor is the index
live_zaken = {}          # zaak uuid -> {"n", "bsn", "title", "status" (url), "registered", "last_set"}
live_statussen = {}      # status uuid -> body
abonnement = {}          # "callbackUrl", "auth"
stats = {"failedRequests": 0, "feedRequests": 0, "zgwNotifications": 0, "zgwCallbacks": {}, "webhookPosts": 0, "webhookBadSignatures": 0,
         "webhookIncomplete": 0, "webhookDeliveries": {}}
LIVE_ZAAKTYPE = f"{BASE}/catalogi/api/v1/zaaktypen/20000000-0000-4000-8000-000000000000"
LIVE_STATUSTYPEN = [
    {"url": f"{BASE}/catalogi/api/v1/statustypen/20000000-0000-4000-8000-00000000000{i}", "omschrijving": name,
     "omschrijvingGeneriek": "", "statustekst": text, "zaaktype": LIVE_ZAAKTYPE, "volgnummer": i, "isEindstatus": i == 3,
     "informeren": informs}
    for i, name, text, informs in [(1, "Ontvangen", "Wij hebben uw aanvraag ontvangen.", False),
                                   (2, "In behandeling", "Wij behandelen uw aanvraag.", True),
                                   (3, "Besluit genomen", "Er is een besluit over uw aanvraag.", True)]
]
LIVE_ZAAKTYPE_BODY = {"url": LIVE_ZAAKTYPE, "identificatie": "LIVE-ZAAK", "omschrijving": "Melding leefomgeving",
                      "vertrouwelijkheidaanduiding": "openbaar", "indicatieInternOfExtern": "extern", "doorlooptijd": "P28D",
                      "statustypen": [s["url"] for s in LIVE_STATUSTYPEN]}


def rfc3339(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def live_zaak_body(key, zaak):
    return {"url": f"{BASE}/zaken/api/v1/zaken/{key}", "identificatie": f"ZL-{zaak['n']}", "bronorganisatie": "002220647",
            "omschrijving": zaak["title"], "zaaktype": LIVE_ZAAKTYPE, "registratiedatum": zaak["registered"],
            "startdatum": zaak["registered"], "einddatum": None, "einddatumGepland": None,
            "uiterlijkeEinddatumAfdoening": None, "vertrouwelijkheidaanduiding": "openbaar", "status": zaak["status"]}


def post_json(url, body, auth):
    """POSTs JSON to `url` (http only, as on loopback); returns the status, or 0 when there was no answer."""
    target = urlparse(url)
    connection = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    try:
        connection.request("POST", target.path or "/", json.dumps(body).encode(), headers)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        connection.close()


def notification(kanaal, main, resource, resource_url, kenmerken):
    return {"kanaal": kanaal, "hoofdObject": main, "resource": resource, "resourceUrl": resource_url, "actie": "create",
            "aanmaakdatum": datetime.datetime.now(datetime.timezone.utc).isoformat(), "kenmerken": kenmerken}


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

    def failing(self):
        """True (and 503 sent) while the department's system is down."""
        if time.time() >= FAILING_UNTIL[0]:
            return False
        with LIVE:
            stats["failedRequests"] += 1
        self.body()
        self.send(503, '{"detail": "down for maintenance"}')
        return True

    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        if not path.startswith("/control/") and self.failing():
            return
        if path == "/live-feed/changes":
            if FEED_TOKEN and self.headers.get("Authorization") != f"Bearer {FEED_TOKEN}":
                return self.send(401, '{"detail": "token"}')
            after = int(query.get("after", "0"))
            limit = int(query.get("limit", "100"))
            with LIVE:
                stats["feedRequests"] += 1
                chunk = live_feed[after:after + limit]
            return self.send(200, '{"changes": [' + ",".join(chunk) + f'], "next": "{after + len(chunk)}"}}')
        if path == "/control/stats":
            with LIVE:
                body = dict(stats, feedChanges=len(live_feed), zgwStatuses=len(live_statussen), zgwZaken=len(live_zaken),
                            webhookDeliveries=len(stats["webhookDeliveries"]),
                            webhookDeliveryIds=sorted(stats["webhookDeliveries"]))
            return self.send(200, json.dumps(body))
        if path == "/feed/changes":
            after = int(query.get("after", "0"))
            limit = int(query.get("limit", "100"))
            chunk = changes[after:after + limit]
            return self.send(200, '{"changes": [' + ",".join(chunk) + f'], "next": "{after + len(chunk)}"}}')
        if not (self.headers.get("Authorization") or "").startswith("Bearer "):
            return self.send(403, '{"detail": "no token"}')
        if path.startswith("/zaken/api/v1/zaken") and self.headers.get("Accept-Crs") != "EPSG:4326":
            return self.send(412, '{"detail": "Accept-Crs"}')
        if live := self.live_zgw(path, query):
            return self.send(*live)
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

    def live_zgw(self, path, query):
        """The live ZGW resources, or None for anything else (the templates above answer that)."""
        with LIVE:
            if m := re.fullmatch(r"/zaken/api/v1/statussen/([0-9a-f-]{36})", path):
                body = live_statussen.get(m.group(1))
                return (200, json.dumps(body)) if body else (404, '{"detail": "not found"}')
            if m := re.fullmatch(r"/zaken/api/v1/zaken/([0-9a-f-]{36})", path):
                zaak = live_zaken.get(m.group(1))
                return (200, json.dumps(live_zaak_body(m.group(1), zaak))) if zaak else (404, '{"detail": "not found"}')
            if path == "/zaken/api/v1/zaken" and live_zaken:
                wanted = query.get("identificatie")
                results = [live_zaak_body(key, zaak) for key, zaak in live_zaken.items()
                           if wanted is None or f"ZL-{zaak['n']}" == wanted]
                return 200, json.dumps(page(results))
            if path == "/zaken/api/v1/rollen" and (m := re.search(r"/zaken/([0-9a-f-]{36})$", query.get("zaak", ""))):
                zaak = live_zaken.get(m.group(1))
                if not zaak:
                    return 200, json.dumps(page([]))
                return 200, json.dumps(page([{
                    "url": f"{BASE}/zaken/api/v1/rollen/{m.group(1)}", "zaak": query.get("zaak"),
                    "betrokkeneType": "natuurlijk_persoon", "omschrijvingGeneriek": "initiator",
                    "betrokkeneIdentificatie": {"inpBsn": zaak["bsn"]}}]))
        if path == LIVE_ZAAKTYPE.removeprefix(BASE):
            return 200, json.dumps(LIVE_ZAAKTYPE_BODY)
        if path == "/catalogi/api/v1/statustypen" and query.get("zaaktype") == LIVE_ZAAKTYPE:
            return 200, json.dumps(page(LIVE_STATUSTYPEN))
        return None

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_PUT(self):
        if urlparse(self.path).path != "/control/abonnement":
            return self.send(404, '{"detail": "not found"}')
        request = json.loads(self.body())
        with LIVE:
            abonnement.update(callbackUrl=request["callbackUrl"], auth=request["auth"])
        # Open Notificaties checks a new abonnement: a test message with the auth value (2xx expected), one without
        # (401 or 403 expected).
        test = notification("test", "https://example.org/test", "test", "https://example.org/test", {})
        with_auth = post_json(request["callbackUrl"], test, request["auth"])
        without_auth = post_json(request["callbackUrl"], test, None)
        return self.send(200, json.dumps({"withAuth": with_auth, "withoutAuth": without_auth}))

    def do_POST(self):
        path = urlparse(self.path).path
        if path == "/control/feed":
            changes = [json.dumps(change) for change in json.loads(self.body())["changes"]]
            with LIVE:
                live_feed.extend(changes)
                size = len(live_feed)
            return self.send(200, json.dumps({"next": str(size)}))
        if path == "/control/zgw/statuses":
            return self.new_status(json.loads(self.body()))
        if path == "/control/fail":
            FAILING_UNTIL[0] = time.time() + float(json.loads(self.body())["seconds"])
            return self.send(200, "{}")
        if path == "/webhook":
            return self.failing() or self.webhook()
        return self.send(404, '{"detail": "not found"}')

    def new_status(self, request):
        """A new status for live zaak `zaak` (the driver's key; the zaak is made on its first status), announced to
        the abonnement. Answers the status URL and the callback's HTTP status (0: no answer)."""
        with LIVE:
            key = str(uuid.uuid5(uuid.NAMESPACE_URL, f"zaak:{request['zaak']}"))
            zaak = live_zaken.get(key)
            now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
            if zaak is None:
                zaak = live_zaken[key] = {"n": len(live_zaken) + 1, "bsn": request["bsn"], "status": None,
                                          "title": request.get("title") or f"Melding {request['zaak']}",
                                          "registered": now.strftime("%Y-%m-%d"), "last_set": None}
            # Every status of a zaak a second later than the one before, so history has one order.
            set_at = now if zaak["last_set"] is None or now > zaak["last_set"] else zaak["last_set"] + datetime.timedelta(seconds=1)
            zaak["last_set"] = set_at
            status_id = str(uuid.uuid4())
            status_url = f"{BASE}/zaken/api/v1/statussen/{status_id}"
            zaak_url = f"{BASE}/zaken/api/v1/zaken/{key}"
            live_statussen[status_id] = {
                "url": status_url, "zaak": zaak_url, "statustype": LIVE_STATUSTYPEN[int(request["statustype"])]["url"],
                "datumStatusGezet": rfc3339(set_at), "statustoelichting": "", "indicatieLaatstGezetteStatus": True}
            zaak["status"] = status_url
            target = dict(abonnement)
            identificatie = f"ZL-{zaak['n']}"
        code = 0
        if target:
            code = post_json(target["callbackUrl"], notification(
                "zaken", zaak_url, "status", status_url,
                {"bronorganisatie": "002220647", "zaaktype": LIVE_ZAAKTYPE, "vertrouwelijkheidaanduiding": "openbaar"}),
                target["auth"])
        with LIVE:
            stats["zgwNotifications"] += 1
            stats["zgwCallbacks"][str(code)] = stats["zgwCallbacks"].get(str(code), 0) + 1
        return self.send(200, json.dumps({"status": status_url, "zaak": zaak_url, "identificatie": identificatie,
                                          "statustype": LIVE_STATUSTYPEN[int(request["statustype"])]["url"],
                                          "setAt": rfc3339(set_at), "callbackStatus": code}))

    def webhook(self):
        body = self.body()
        if len(body) < int(self.headers.get("Content-Length") or 0):
            # The sender went away mid-body (a sync worker killed): no request arrived, so there is nothing to sign
            # or answer.
            with LIVE:
                stats["webhookIncomplete"] += 1
            self.close_connection = True
            return
        timestamp = self.headers.get("Portal-Timestamp", "")
        expected = "v1=" + hmac.new(WEBHOOK_SECRET, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= 300
        good = bool(WEBHOOK_SECRET) and fresh and hmac.compare_digest(expected, self.headers.get("Portal-Signature", ""))
        with LIVE:
            stats["webhookPosts"] += 1
            if not good:
                stats["webhookBadSignatures"] += 1
            else:
                delivery = self.headers.get("Portal-Delivery", "")
                stats["webhookDeliveries"][delivery] = stats["webhookDeliveries"].get(delivery, 0) + 1
        if not good:
            return self.send(401, '{"detail": "signature"}')
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
