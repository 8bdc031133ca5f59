"""The traffic of bench/distributed.sh: departments and residents using the portal at once, through the load balancer,
for a given time at a given rate. Python's standard library only.

    distributed_driver.py --config CONFIG.json --ledger LEDGER.json [--seconds 180] [--rate 40] [--threads 12]

CONFIG (written by bench/distributed.sh) names the balancer (`api`), the department simulator (`sim`), the ZGW
abonnement (`callbackUrl`, `zgwAuth`) and the departments: `id`, `name`, `key` (API key), `kind` (`push`, `feed` or
`zgw`), `webhook` (true when connected to the simulator's webhook).

What it does, concurrently from --threads threads, paced to --rate actions per second (an action is one to three
requests; it goes as fast as the portal answers when the portal is slower):

- push departments: new cases (PUT, then the first status), batches of new cases (cases:batch), status events with
  unique event ids and some out of order (an older setAt), replays of accepted event ids (expecting 200 and no
  second event), messages to residents about their cases (some sent again with the same id), and fetching residents'
  messages and uploads (those without a webhook);
- the feed department: changes appended to the simulator's live feed (new cases, statuses, some replays), which the
  sync workers pull;
- the ZGW department: new statuses of zaken in the simulator, each announced by the simulator to the portal's
  callback like Open Notificaties;
- residents (development login; sessions are in PostgreSQL, so any replica serves them): the case list, a case with
  its history, the inbox, a case's thread and documents; uploads (a small PDF) to cases that take them; messages
  to the case handler.

It writes LEDGER: every request it made (kind, HTTP status, latency) and everything the portal accepted (2xx) and
what it might have stored without a clear answer ("uncertain": no answer or a 5xx), for bench/distributed_check.py.
The driver keeps its own view of every case (status, final, uploads) and never works on one case from two threads
at once, so a refusal (409) is a finding, not a race of the driver's own making.
"""

import argparse
import datetime
import hashlib
import http.client
import json
import os
import random
import sys
import threading
import time
import uuid
from urllib.parse import urlparse


def bsn(n):
    """The n-th valid BSN from 10000000 upwards (the elfproef), as bench/department_sim.py makes them."""
    candidate = 10000000 + n * 10
    while True:
        digits = [int(d) for d in str(candidate)]
        total = sum(d * w for d, w in zip(digits, range(9, 1, -1)))
        if total % 11 < 10:
            return f"{candidate}{total % 11}"
        candidate += 1


def rfc3339(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# The case type of the push and feed departments: what residents see, and which statuses take uploads.
CASE_TYPE = {
    "name": {"nl": "Aanvraag", "en": "Application"}, "termDays": 56,
    "statusTypes": [
        {"code": "ontvangen", "name": {"nl": "Aanvraag ontvangen", "en": "Application received"}, "informs": False},
        {"code": "in-behandeling", "name": {"nl": "In behandeling", "en": "In progress"}, "uploadsAllowed": True},
        {"code": "aanvullen", "name": {"nl": "Aanvulling nodig", "en": "More information needed"}, "uploadsAllowed": True},
        {"code": "besluit", "name": {"nl": "Besluit", "en": "Decision"}, "final": True},
    ],
}
UPLOADS_ALLOWED = {"in-behandeling", "aanvullen"}
MAX_UPLOADS_PER_CASE = 20  # PORTAL_UPLOAD_MAX_FILES_PER_CASE's default


class Ledger:
    """Everything the driver did and what the portal accepted; one lock for all of it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = {}        # kind -> {status: count}
        self.latencies = {}       # kind -> [seconds]
        self.events = {}          # department id -> {"accepted": {eventId: info}, "uncertain": set, ...}
        self.uploads = []         # {"id", "sha256", "size", "department"}
        self.uploads_uncertain = 0
        self.uploads_refused = {}
        self.resident_messages = {}    # department id -> [message ids]
        self.resident_messages_uncertain = 0
        self.department_messages = {}  # department id -> {external id}
        self.department_messages_uncertain = 0
        self.replays = {"sent": 0, "answered200": 0, "other": {}}
        self.feed_changes = 0
        self.zgw = {"created": [], "accepted": [], "callbacks": {}, "testMessages": None}
        self.errors = []
        self.anomalies = []

    def request(self, kind, status, seconds):
        with self.lock:
            counts = self.requests.setdefault(kind, {})
            counts[status] = counts.get(status, 0) + 1
            self.latencies.setdefault(kind, []).append(seconds)

    def department(self, department):
        return self.events.setdefault(department, {"accepted": {}, "uncertain": set()})

    def accept_event(self, department, event_id, info):
        with self.lock:
            self.department(department)["accepted"][event_id] = info

    def uncertain_event(self, department, event_id):
        with self.lock:
            self.department(department)["uncertain"].add(event_id)

    def error(self, text):
        with self.lock:
            if len(self.errors) < 50:
                self.errors.append(text)

    def anomaly(self, text):
        with self.lock:
            if len(self.anomalies) < 200:
                self.anomalies.append(text)


class Client:
    """One keep-alive connection to the balancer per thread; every request timed and counted."""

    def __init__(self, base, ledger):
        target = urlparse(base)
        self.host, self.port = target.hostname, target.port
        self.ledger = ledger
        self.connection = None

    def call(self, kind, method, path, body=None, headers=None):
        """(status, headers with lower-case names, body bytes); status 0 when there was no answer."""
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        started = time.monotonic()
        for attempt in (1, 2):
            reused = self.connection is not None
            try:
                if self.connection is None:
                    self.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.connection.request(method, path, body, headers)
                response = self.connection.getresponse()
                data = response.read()
                answer = {k.lower(): v for k, v in response.getheaders()}
                if answer.get("connection", "").lower() == "close":
                    self.close()
                self.ledger.request(kind, response.status, time.monotonic() - started)
                return response.status, answer, data
            except (OSError, http.client.HTTPException) as error:
                self.close()
                if reused and attempt == 1 and isinstance(error, (http.client.RemoteDisconnected, BrokenPipeError)):
                    # A kept-alive connection the balancer had closed while idle: the request never got there.
                    continue
                self.ledger.request(kind, 0, time.monotonic() - started)
                self.ledger.error(f"{kind} {method} {path}: {error!r}")
                return 0, {}, b""
        return 0, {}, b""

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def sim_call(sim, method, path, body):
    """A control request to the simulator (not portal traffic: not counted as a request)."""
    target = urlparse(sim)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
    try:
        connection.request(method, path, json.dumps(body).encode(), {"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"simulator {method} {path} answered {response.status}")
        return json.loads(data)
    finally:
        connection.close()


class World:
    """The driver's view of departments, cases and residents."""

    def __init__(self, config, ledger, residents, seed):
        self.config = config
        self.ledger = ledger
        self.lock = threading.Lock()
        self.random = random.Random(seed)
        self.departments = config["departments"]
        self.push = [d for d in self.departments if d["kind"] == "push"]
        self.feed = next(d for d in self.departments if d["kind"] == "feed")
        self.zgw = next(d for d in self.departments if d["kind"] == "zgw")
        self.residents = [bsn(500000 + i) for i in range(residents)]
        self.sessions = {}            # bsn -> {"cookie", "csrf"}
        self.cases = {}               # (department id, reference) -> case state
        self.case_ids = {}            # (bsn, title) -> portal case id, learned from the resident's case list
        self.by_resident = {}         # bsn -> [(department id, reference)]
        self.sent_events = {}         # department id -> [(reference, body)] accepted pushes, for replays
        self.department_message_ids = {}  # department id -> [(external id, body)]
        self.fetch_after = {}         # (department id, "messages"|"documents") -> position
        self.counter = 0
        self.base_time = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(days=20)

    def next_number(self):
        with self.lock:
            self.counter += 1
            return self.counter

    def add_case(self, department, reference, resident, title, kind):
        state = {"department": department, "reference": reference, "bsn": resident, "title": title, "kind": kind,
                 "status": None, "final": False, "set_at": self.base_time, "seq": 0, "uploads": 0, "busy": True}
        with self.lock:
            self.cases[(department, reference)] = state
            self.by_resident.setdefault(resident, []).append((department, reference))
        return state

    def take_case(self, condition, tries=30):
        """A random case meeting `condition` that no other thread works on, marked busy; None if none was found."""
        with self.lock:
            keys = list(self.cases)
            if not keys:
                return None
            for _ in range(tries):
                state = self.cases[self.random.choice(keys)]
                if not state["busy"] and condition(state):
                    state["busy"] = True
                    return state
        return None

    def release(self, state):
        with self.lock:
            state["busy"] = False


class Driver:
    def __init__(self, config, args):
        self.config = config
        self.args = args
        self.ledger = Ledger()
        self.world = World(config, self.ledger, args.residents, args.seed)
        self.local = threading.local()

    @property
    def client(self):
        if not hasattr(self.local, "client"):
            self.local.client = Client(self.config["api"], self.ledger)
        return self.local.client

    @property
    def rng(self):
        if not hasattr(self.local, "rng"):
            self.local.rng = random.Random(f"{self.args.seed}-{threading.get_ident()}")
        return self.local.rng

    # MARK: Departments

    def department_call(self, department, kind, method, path, body=None, headers=None):
        headers = dict(headers or {}, Authorization=f"Bearer {department['key']}")
        return self.client.call(kind, method, path, body, headers)

    def status_body(self, state, code, late=False):
        """The next status event of a case: a unique event id, and a text that names it, so the check can find it
        in what the resident sees."""
        state["seq"] += 1
        event_id = f"{state['reference']}-{state['seq']}"
        if late:
            set_at = state["set_at"] - datetime.timedelta(hours=1 + self.rng.randint(0, 48))
        else:
            # Time only moves on for a case, also between the statuses of one batch item or one feed page.
            set_at = state["set_at"] = state["set_at"] + datetime.timedelta(minutes=1 + self.rng.randint(0, 600))
        body = {"eventId": event_id, "statusType": code, "setAt": rfc3339(set_at),
                "text": {"nl": f"Status {code} [{event_id}]", "en": f"Status {code} [{event_id}]"}}
        return body, set_at

    def next_code(self, state):
        if state["status"] is None:
            return "ontvangen"
        if state["status"] == "ontvangen":
            return "in-behandeling"
        if state["seq"] >= 4 and self.rng.random() < 0.12:
            return "besluit"
        return "aanvullen" if state["status"] == "in-behandeling" else "in-behandeling"

    def applied(self, state, body, set_at, late):
        """The driver's view after the portal accepted a status (a late one does not become current)."""
        if not late:
            state["status"] = body["statusType"]
            state["final"] = body["statusType"] == "besluit"

    def record_event(self, department, state, body):
        self.ledger.accept_event(department["id"], body["eventId"], {
            "bsn": state["bsn"], "title": state["title"], "text": body["text"]["nl"], "kind": state["kind"]})

    def new_case(self):
        department = self.rng.choice(self.world.push)
        number = self.world.next_number()
        reference = f"{department['prefix']}-{number:06d}"
        resident = self.rng.choice(self.world.residents)
        title = f"Aanvraag {reference}"
        state = self.world.add_case(department["id"], reference, resident, title, "push")
        try:
            case = {"subject": {"bsn": resident}, "caseType": "aanvraag", "title": title,
                    "submittedAt": rfc3339(state["set_at"]), "language": "nl",
                    "contactEmail": f"inwoner-{resident}@example.org"}
            status, _, data = self.department_call(department, "department.case.put", "PUT",
                                                   f"/api/v1/department/cases/{reference}", case)
            if status not in (200, 201):
                self.ledger.anomaly(f"PUT case {reference}: {status} {data[:200]!r}")
                return
            self.push_status(department, state, "ontvangen")
        finally:
            self.world.release(state)

    def push_status(self, department, state, code, late=False):
        body, set_at = self.status_body(state, code, late)
        status, _, data = self.department_call(department, "department.status.post", "POST",
                                               f"/api/v1/department/cases/{state['reference']}/statuses", body)
        if status == 201:
            self.record_event(department, state, body)
            self.applied(state, body, set_at, late)
            with self.world.lock:
                self.world.sent_events.setdefault(department["id"], []).append((state["reference"], body))
        elif status == 0 or status >= 500:
            self.ledger.uncertain_event(department["id"], body["eventId"])
        else:
            self.ledger.anomaly(f"status {body['eventId']}: {status} {data[:200]!r}")

    def status_event(self):
        department = self.rng.choice(self.world.push)
        sent = self.world.sent_events.get(department["id"])
        if sent and self.rng.random() < 0.1:
            return self.replay(department, sent)
        state = self.world.take_case(lambda s: s["department"] == department["id"] and not s["final"] and s["status"])
        if state is None:
            return self.new_case()
        try:
            late = state["seq"] >= 2 and self.rng.random() < 0.05
            self.push_status(department, state, "in-behandeling" if late else self.next_code(state), late)
        finally:
            self.world.release(state)

    def replay(self, department, sent):
        """The same event again, byte for byte: the portal must answer 200 and store nothing new."""
        with self.world.lock:
            reference, body = self.rng.choice(sent)
        status, _, data = self.department_call(department, "department.status.replay", "POST",
                                               f"/api/v1/department/cases/{reference}/statuses", body)
        with self.ledger.lock:
            self.ledger.replays["sent"] += 1
            if status == 200:
                self.ledger.replays["answered200"] += 1
            else:
                self.ledger.replays["other"][str(status)] = self.ledger.replays["other"].get(str(status), 0) + 1
        if status != 200:
            self.ledger.anomaly(f"replay {body['eventId']}: {status} {data[:200]!r}")

    def batch(self, size=None):
        """New cases with their first two statuses in one cases:batch request."""
        department = self.rng.choice(self.world.push)
        items, states = [], []
        for _ in range(size or self.rng.randint(3, 8)):
            number = self.world.next_number()
            reference = f"{department['prefix']}-{number:06d}"
            resident = self.rng.choice(self.world.residents)
            state = self.world.add_case(department["id"], reference, resident, f"Aanvraag {reference}", "push")
            submitted = rfc3339(state["set_at"])
            first, first_at = self.status_body(state, "ontvangen")
            second, second_at = self.status_body(state, "in-behandeling")
            state["pending"] = [(first, first_at), (second, second_at)]
            states.append(state)
            items.append({"reference": reference,
                          "case": {"subject": {"bsn": resident}, "caseType": "aanvraag", "title": state["title"],
                                   "submittedAt": submitted, "language": "nl",
                                   "contactEmail": f"inwoner-{resident}@example.org"},
                          "statuses": [first, second]})
        try:
            status, _, data = self.department_call(department, "department.batch", "POST",
                                                   "/api/v1/department/cases:batch", {"items": items})
            if status != 200:
                for state in states:
                    for body, _ in state["pending"]:
                        if status == 0 or status >= 500:
                            self.ledger.uncertain_event(department["id"], body["eventId"])
                self.ledger.anomaly(f"batch: {status} {data[:300]!r}")
                return
            results = json.loads(data)["results"]
            for state, result in zip(states, results):
                added = {s["eventId"] for s in result.get("statuses", []) if s.get("result") == "added"}
                for body, set_at in state["pending"]:
                    if body["eventId"] in added:
                        self.record_event(department, state, body)
                        self.applied(state, body, set_at, False)
                        with self.world.lock:
                            self.world.sent_events.setdefault(department["id"], []).append((state["reference"], body))
                    else:
                        self.ledger.anomaly(f"batch item {state['reference']}: {json.dumps(result)[:300]}")
        finally:
            for state in states:
                state.pop("pending", None)
                self.world.release(state)

    def department_message(self):
        department = self.rng.choice(self.world.push)
        with self.world.lock:
            earlier = self.world.department_message_ids.get(department["id"])
            if earlier and self.rng.random() < 0.1:
                external, body = self.rng.choice(earlier)
                replay = True
            else:
                replay = False
        if not replay:
            state = self.world.take_case(lambda s: s["department"] == department["id"] and s["status"])
            if state is None:
                return self.new_case()
            self.world.release(state)
            external = f"msg-{uuid.uuid4()}"
            body = {"id": external, "caseReference": state["reference"], "title": "Bericht over uw aanvraag",
                    "body": f"Wij hebben een vraag over uw aanvraag ({external})."}
        status, _, data = self.department_call(department, "department.message", "POST", "/api/v1/department/messages", body)
        if status in (200, 201):
            if replay and status != 200:
                self.ledger.anomaly(f"message {external} sent again: {status}")
            with self.world.lock:
                if not replay:
                    self.world.department_message_ids.setdefault(department["id"], []).append((external, body))
            with self.ledger.lock:
                self.ledger.department_messages.setdefault(department["id"], set()).add(external)
        elif status == 0 or status >= 500:
            with self.ledger.lock:
                self.ledger.department_messages_uncertain += 1
        else:
            self.ledger.anomaly(f"department message: {status} {data[:200]!r}")

    def department_fetch(self):
        """A department without a webhook fetches what residents sent (which marks it delivered)."""
        candidates = [d for d in self.world.push if not d.get("webhook")] or self.world.push
        department = self.rng.choice(candidates)
        what = self.rng.choice(["messages", "documents"])
        key = (department["id"], what)
        with self.world.lock:
            after = self.world.fetch_after.get(key, 0)
        status, _, data = self.department_call(department, f"department.fetch.{what}", "GET",
                                               f"/api/v1/department/{what}?after={after}")
        if status == 200:
            page = json.loads(data)
            with self.world.lock:
                self.world.fetch_after[key] = max(self.world.fetch_after.get(key, 0), int(page.get("next") or after))
        else:
            self.ledger.anomaly(f"fetch {what}: {status} {data[:200]!r}")

    # MARK: The feed department

    def feed_changes(self):
        department = self.world.feed
        changes, states = [], []
        for _ in range(self.rng.randint(1, 5)):
            state = None
            if self.rng.random() < 0.6:
                state = self.world.take_case(lambda s: s["kind"] == "feed" and not s["final"])
            if state is None:
                number = self.world.next_number()
                reference = f"{department['prefix']}-{number:06d}"
                resident = self.rng.choice(self.world.residents)
                state = self.world.add_case(department["id"], reference, resident, f"Vergunning {reference}", "feed")
                submitted = rfc3339(state["set_at"])
                body, set_at = self.status_body(state, "ontvangen")
                change = {"reference": reference,
                          "case": {"subject": {"bsn": resident}, "caseType": "aanvraag", "title": state["title"],
                                   "submittedAt": submitted, "language": "nl",
                                   "contactEmail": f"inwoner-{resident}@example.org"},
                          "statuses": [body]}
            else:
                if state["seq"] and self.rng.random() < 0.05:
                    # A change the department sends again (say, after its own restart): changes nothing.
                    change = {"reference": state["reference"], "statuses": [state["last_body"]]}
                    changes.append(change)
                    states.append((state, None, None))
                    continue
                body, set_at = self.status_body(state, self.next_code(state))
                change = {"reference": state["reference"], "statuses": [body]}
            state["last_body"] = body
            changes.append(change)
            states.append((state, body, set_at))
        try:
            sim_call(self.config["sim"], "POST", "/control/feed", {"changes": changes})
            with self.ledger.lock:
                self.ledger.feed_changes += len(changes)
            for state, body, set_at in states:
                if body is not None:
                    self.record_event(department, state, body)
                    self.applied(state, body, set_at, False)
        finally:
            for state, _, _ in states:
                self.world.release(state)

    # MARK: The ZGW department

    def zgw_status(self):
        department = self.world.zgw
        state = None
        if self.rng.random() < 0.6:
            state = self.world.take_case(lambda s: s["kind"] == "zgw" and not s["final"])
        if state is None:
            number = self.world.next_number()
            key = f"Z-{number:06d}"
            resident = self.rng.choice(self.world.residents)
            state = self.world.add_case(department["id"], key, resident, f"Melding {key}", "zgw")
            step = 0
        else:
            step = state["seq"]
        try:
            answer = sim_call(self.config["sim"], "POST", "/control/zgw/statuses",
                              {"zaak": state["reference"], "bsn": state["bsn"], "statustype": step, "title": state["title"]})
            state["seq"] = step + 1
            state["final"] = step == 2
            code = answer["callbackStatus"]
            info = {"bsn": state["bsn"], "title": state["title"], "code": answer["statustype"].rsplit("/", 1)[-1],
                    "setAt": answer["setAt"], "kind": "zgw"}
            with self.ledger.lock:
                self.ledger.zgw["created"].append(answer["status"])
                self.ledger.zgw["callbacks"][str(code)] = self.ledger.zgw["callbacks"].get(str(code), 0) + 1
                if 200 <= code < 300:
                    self.ledger.zgw["accepted"].append(answer["status"])
            if 200 <= code < 300:
                self.ledger.accept_event(department["id"], answer["status"], info)
            else:
                # The status exists in the zaaksysteem: reconciliation may still bring it.
                self.ledger.uncertain_event(department["id"], answer["status"])
                self.ledger.anomaly(f"ZGW callback answered {code}")
        finally:
            self.world.release(state)

    # MARK: Residents

    def session(self, resident, force=False):
        with self.world.lock:
            session = self.world.sessions.get(resident)
        if session and not force:
            return session
        status, headers, data = self.client.call("resident.login", "POST", "/auth/dev-login", {"bsn": resident})
        if status != 200:
            self.ledger.anomaly(f"dev login: {status} {data[:200]!r}")
            return None
        cookie = headers.get("set-cookie", "").split(";", 1)[0]
        session = {"cookie": cookie, "csrf": json.loads(data)["csrfToken"]}
        with self.world.lock:
            self.world.sessions[resident] = session
        return session

    def resident_call(self, resident, kind, method, path, body=None, headers=None):
        for attempt in (1, 2):
            session = self.session(resident, force=attempt == 2)
            if session is None:
                return 0, {}, b""
            all_headers = dict(headers or {}, Cookie=session["cookie"])
            if method != "GET":
                all_headers["X-CSRF-Token"] = session["csrf"]
            status, answer, data = self.client.call(kind, method, path, body, all_headers)
            if status != 401:
                return status, answer, data
        return status, answer, data

    def learn_cases(self, resident):
        """The resident's case list (every page); remembers the portal's id of each case by its title. False when a
        page was not answered 200 (an anomaly recorded already)."""
        cursor = None
        while True:
            path = "/api/v1/cases?limit=100" + (f"&cursor={cursor}" if cursor else "")
            status, _, data = self.resident_call(resident, "resident.cases", "GET", path)
            if status != 200:
                self.ledger.anomaly(f"case list: {status} {data[:200]!r}")
                return False
            page = json.loads(data)
            with self.world.lock:
                for item in page["items"]:
                    self.world.case_ids[(resident, item["title"])] = item["id"]
            cursor = page.get("next")
            if not cursor:
                return True

    def case_id(self, state):
        with self.world.lock:
            return self.world.case_ids.get((state["bsn"], state["title"]))

    def resident_read(self):
        with self.world.lock:
            known = list(self.world.by_resident)
        resident = self.rng.choice(known) if known and self.rng.random() < 0.9 else self.rng.choice(self.world.residents)
        choice = self.rng.random()
        with self.world.lock:
            cases = [self.world.cases[k] for k in self.world.by_resident.get(resident, [])]
        ids = [i for i in (self.case_id(s) for s in cases) if i]
        if choice < 0.35 or not ids:
            return self.learn_cases(resident)
        case_id = self.rng.choice(ids)
        if choice < 0.7:
            kind, path = "resident.case", f"/api/v1/cases/{case_id}"
        elif choice < 0.82:
            kind, path = "resident.inbox", "/api/v1/messages"
        elif choice < 0.92:
            kind, path = "resident.thread", f"/api/v1/cases/{case_id}/messages"
        else:
            kind, path = "resident.documents", f"/api/v1/cases/{case_id}/documents"
        status, _, data = self.resident_call(resident, kind, "GET", path)
        if status != 200:
            self.ledger.anomaly(f"{kind}: {status} {data[:200]!r}")

    def upload(self):
        state = self.world.take_case(lambda s: s["kind"] == "push" and not s["final"] and s["status"] in UPLOADS_ALLOWED
                                     and s["uploads"] < MAX_UPLOADS_PER_CASE)
        if state is None:
            return self.status_event()
        try:
            case_id = self.case_id(state)
            if case_id is None:
                if not self.learn_cases(state["bsn"]):
                    return  # the list was not answered (a fault): nothing learnt, nothing to blame the list for
                case_id = self.case_id(state)
                if case_id is None:
                    self.ledger.anomaly(f"case {state['reference']} not in its resident's list")
                    return
            content = b"%PDF-1.4\n" + os.urandom(self.rng.randint(2048, 65536)) + b"\n%%EOF\n"
            digest = hashlib.sha256(content).hexdigest()
            status, _, data = self.resident_call(
                state["bsn"], "resident.upload", "POST", f"/api/v1/cases/{case_id}/documents", content,
                {"Content-Type": "application/pdf", "Content-Disposition": f'attachment; filename="bijlage-{state["uploads"] + 1}.pdf"'})
            if status == 201:
                answer = json.loads(data)
                state["uploads"] += 1
                if answer.get("sha256") != digest:
                    self.ledger.anomaly(f"upload {answer.get('id')}: the portal's SHA-256 differs from what was sent")
                with self.ledger.lock:
                    self.ledger.uploads.append({"id": answer["id"], "sha256": digest, "size": len(content),
                                                "department": state["department"]})
            elif status == 0 or status >= 500:
                with self.ledger.lock:
                    self.ledger.uploads_uncertain += 1
            else:
                with self.ledger.lock:
                    self.ledger.uploads_refused[str(status)] = self.ledger.uploads_refused.get(str(status), 0) + 1
                self.ledger.anomaly(f"upload to {state['reference']}: {status} {data[:200]!r}")
        finally:
            self.world.release(state)

    def resident_message(self):
        with self.world.lock:
            known = list(self.world.by_resident)
        if not known:
            return self.new_case()
        resident = self.rng.choice(known)
        with self.world.lock:
            cases = [self.world.cases[k] for k in self.world.by_resident.get(resident, [])]
        ids = [(s, i) for s, i in ((s, self.case_id(s)) for s in cases) if i]
        if not ids:
            return self.learn_cases(resident)
        state, case_id = self.rng.choice(ids)
        status, _, data = self.resident_call(resident, "resident.message", "POST", f"/api/v1/cases/{case_id}/messages",
                                             {"body": f"Hierbij mijn antwoord ({uuid.uuid4()})."})
        if status == 201:
            with self.ledger.lock:
                self.ledger.resident_messages.setdefault(state["department"], []).append(json.loads(data)["id"])
        elif status == 0 or status >= 500:
            with self.ledger.lock:
                self.ledger.resident_messages_uncertain += 1
        else:
            self.ledger.anomaly(f"resident message: {status} {data[:200]!r}")

    # MARK: Running

    ACTIONS = [  # (weight, method name)
        (38, "resident_read"), (20, "status_event"), (6, "new_case"), (2, "batch"), (8, "feed_changes"),
        (6, "zgw_status"), (6, "upload"), (5, "resident_message"), (5, "department_message"), (4, "department_fetch"),
    ]

    def setup(self):
        """Case types and contacts for the push and feed departments, the ZGW abonnement (with Open Notificaties'
        test messages), and a first batch of cases per push department so that residents have something to read."""
        for index, department in enumerate(self.world.departments):
            department["prefix"] = {"push": f"P{index}", "feed": "F", "zgw": "Z"}[department["kind"]]
            if department["kind"] == "zgw":
                continue
            status, _, data = self.department_call(department, "department.setup", "PUT", "/api/v1/department/contact",
                                                   {"name": department["name"], "phone": "14 023",
                                                    "email": "info@gemeente.example", "hours": "ma-vr 9-17"})
            if status != 200:
                sys.exit(f"setup: contact of {department['name']}: {status} {data[:300]!r}")
            status, _, data = self.department_call(department, "department.setup", "PUT",
                                                   "/api/v1/department/case-types/aanvraag", CASE_TYPE)
            if status not in (200, 201):
                sys.exit(f"setup: case type of {department['name']}: {status} {data[:300]!r}")
        answer = sim_call(self.config["sim"], "PUT", "/control/abonnement",
                          {"callbackUrl": self.config["callbackUrl"], "auth": self.config["zgwAuth"]})
        self.ledger.zgw["testMessages"] = answer
        for _ in self.world.push:
            for _ in range(4):
                self.batch(size=10)

    def run(self):
        self.setup()
        started = time.monotonic()
        deadline = started + self.args.seconds
        weights = [w for w, _ in self.ACTIONS]
        names = [n for _, n in self.ACTIONS]
        slot = [0]
        slot_lock = threading.Lock()
        interval = 1.0 / self.args.rate

        def worker():
            while True:
                with slot_lock:
                    due = started + slot[0] * interval
                    slot[0] += 1
                now = time.monotonic()
                if due >= deadline or now >= deadline:
                    return
                if due > now:
                    time.sleep(due - now)  # pacing to the rate, not synchronisation
                name = self.rng.choices(names, weights)[0]
                try:
                    getattr(self, name)()
                except Exception as error:  # a driver bug must not end the run silently: it is reported
                    self.ledger.error(f"{name}: {error!r}")

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(self.args.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()) + 120)
        self.elapsed = time.monotonic() - started
        stuck = sum(thread.is_alive() for thread in threads)
        if stuck:
            self.ledger.error(f"{stuck} driver threads still busy two minutes after the end")

    def write(self, path):
        ledger = self.ledger
        with ledger.lock:
            latencies = {kind: sorted(values) for kind, values in ledger.latencies.items()}
            everything = sorted(v for values in ledger.latencies.values() for v in values)

            def summary(values):
                if not values:
                    return {"count": 0}
                pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
                return {"count": len(values), "p50": pick(0.5), "p99": pick(0.99), "max": values[-1]}

            document = {
                "seconds": self.args.seconds, "elapsed": self.elapsed, "rate": self.args.rate, "threads": self.args.threads,
                "requests": ledger.requests,
                "latency": {kind: summary(values) for kind, values in latencies.items()},
                "latencyAll": summary(everything),
                "events": {department: {"accepted": info["accepted"], "uncertain": sorted(info["uncertain"])}
                           for department, info in ledger.events.items()},
                "replays": ledger.replays,
                "uploads": ledger.uploads, "uploadsUncertain": ledger.uploads_uncertain,
                "uploadsRefused": ledger.uploads_refused,
                "residentMessages": ledger.resident_messages,
                "residentMessagesUncertain": ledger.resident_messages_uncertain,
                "departmentMessages": {d: sorted(ids) for d, ids in ledger.department_messages.items()},
                "departmentMessagesUncertain": ledger.department_messages_uncertain,
                "feedChanges": ledger.feed_changes,
                "zgw": ledger.zgw,
                "errors": ledger.errors, "anomalies": ledger.anomalies,
            }
        with open(path, "w") as handle:
            json.dump(document, handle)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--rate", type=float, default=40, help="actions per second the driver aims at")
    parser.add_argument("--threads", type=int, default=12)
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--seed", default="distributed")
    args = parser.parse_args()
    with open(args.config) as handle:
        config = json.load(handle)
    driver = Driver(config, args)
    driver.run()
    driver.write(args.ledger)
    total = sum(sum(c.values()) for c in driver.ledger.requests.values())
    print(f"driver: {total} requests in {driver.elapsed:.0f} s ({total / driver.elapsed:.1f}/s), "
          f"{len(driver.ledger.errors)} errors, {len(driver.ledger.anomalies)} anomalies", file=sys.stderr)


if __name__ == "__main__":
    main()
