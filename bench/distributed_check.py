"""The end-state check of bench/distributed.sh: after the traffic stopped, waits (bounded) until the queues are
drained, then holds what the driver was told (its ledger) against PostgreSQL, the API as residents see it, the
Maildir, the simulator and every process's /metrics. Prints a Markdown report (pasteable into docs) and exits 1 if
any check fails. Python's standard library only; PostgreSQL through psql.

    distributed_check.py --state STATE.json

STATE (written by bench/distributed.sh) holds: config (the driver's), ledger (path), pg (port, database), maildir,
api/sync/notifier (lists of {name, url}), sim, logs (folder), drainSeconds, sample, report (path), and `run` (what
the header says: seconds, rate, bin, clamd, date).

The checks do not assume a clean run: events, uploads and messages the portal gave no clear answer for (no answer,
a 5xx) count as "uncertain", which may or may not be stored, but never twice; everything with a 2xx must be there
exactly once. So faults can be layered on the same run (bench/distributed.sh's process table) without changing the
checks; what a fault changes is noted where it matters (metrics counters restart with their process).
"""

import argparse
import datetime
import email.parser
import http.client
import importlib.util
import json
import os
import random
import re
import subprocess
import sys
import time
from urllib.parse import urlparse

sys.dont_write_bytecode = True  # scripts/scan-logs.py is loaded as a module: no __pycache__ in scripts/

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEDULES = ("sync.feed.pull", "sync.zgw.reconcile")  # jobs that snooze forever: one per connector


# A driver note about a request that got no answer (0: the connection broke) or a 5xx: under faults nothing is owed
# for it, since it was not accepted.
UNANSWERED = re.compile(r"(: |answered )(0|5\d\d)\b")


def short_answer(note):
    """The note up to its status, without the body that follows (nginx's HTML for a 502)."""
    found = UNANSWERED.search(note)
    return note[:found.start()].rstrip() + ": " + found.group(2)


class Check:
    def __init__(self):
        self.results = []  # (name, ok, detail)

    def __call__(self, name, ok, detail=""):
        self.results.append((name, bool(ok), detail))
        print(f"  {'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", file=sys.stderr)
        return ok

    @property
    def failed(self):
        return [r for r in self.results if not r[1]]


class Database:
    def __init__(self, port, database):
        self.base = ["psql", "-X", "-q", "-At", "-F", "\t", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", database]

    def rows(self, sql):
        out = subprocess.run(self.base + ["-c", sql], check=True, capture_output=True, text=True, timeout=120).stdout
        return [line.split("\t") for line in out.splitlines() if line != ""]

    def value(self, sql):
        rows = self.rows(sql)
        return rows[0][0] if rows else None

    def number(self, sql):
        return int(self.value(sql) or 0)


class API:
    """Requests through the balancer, counted (they show in the replicas' hb_requests too)."""

    def __init__(self, base):
        target = urlparse(base)
        self.host, self.port = target.hostname, target.port
        self.count = 0
        self.connection = None

    def call(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if body is not None:
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                if self.connection is None:
                    self.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
                self.count += 1
                self.connection.request(method, path, body, headers)
                response = self.connection.getresponse()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            except (OSError, http.client.HTTPException):
                self.connection = None
                if attempt == 2:
                    raise


def get(url, timeout=10):
    target = urlparse(url)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout)
    try:
        connection.request("GET", target.path + (f"?{target.query}" if target.query else ""))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


METRIC = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metrics(url):
    """The samples of a /metrics page: [(name, {label: value}, float)]."""
    status, body = get(url.rstrip("/") + "/metrics")
    if status != 200:
        raise RuntimeError(f"{url}/metrics answered {status}")
    samples = []
    for line in body.decode().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = METRIC.match(line)
        if m:
            samples.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return samples


def total(samples, name, **labels):
    """The sum of `name`'s samples with these labels. Label values are compared without case: the processes label
    departments with upper-case UUIDs (Swift's UUID description) where PostgreSQL and the CLI show lower case."""
    return sum(v for n, l, v in samples
               if n == name and all(l.get(k, "").lower() == w.lower() for k, w in labels.items()))


def maildir(folder):
    """(files, {Message-ID: count}) over new/ and cur/."""
    ids, files = {}, 0
    parser = email.parser.BytesHeaderParser()
    for sub in ("new", "cur"):
        path = os.path.join(folder, sub)
        for name in os.listdir(path) if os.path.isdir(path) else []:
            with open(os.path.join(path, name), "rb") as handle:
                message_id = (parser.parse(handle).get("Message-ID") or "").strip().strip("<>")
            files += 1
            ids[message_id] = ids.get(message_id, 0) + 1
    return files, ids


def fmt(n):
    return f"{n:,}" if isinstance(n, int) else n


class Checker:
    def __init__(self, state):
        self.state = state
        self.config = state["config"]
        with open(state["ledger"]) as handle:
            self.ledger = json.load(handle)
        self.db = Database(state["pg"]["port"], state["pg"]["database"])
        self.api = API(self.config["api"])
        self.check = Check()
        self.rows = []      # the report's figures: (what, accepted, stored, ok)
        self.notes = []
        self.departments = {d["id"]: d for d in self.config["departments"]}
        self.by_kind = {}
        for department in self.config["departments"]:
            self.by_kind.setdefault(department["kind"], []).append(department)
        self.feed = self.by_kind["feed"][0]
        self.zgw = self.by_kind["zgw"][0]
        # The fault timeline (bench/faults.sh), or None for a run without faults.
        self.faults = None
        if state.get("faults"):
            with open(state["faults"]) as handle:
                self.faults = [json.loads(line) for line in handle if line.strip()]
        self.fault_lines = []

    def sim_stats(self):
        status, body = get(self.config["sim"] + "/control/stats")
        return json.loads(body)

    # MARK: Draining

    def drained(self):
        busy = self.db.number(f"""SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')
                                  AND kind NOT IN ({", ".join(f"'{k}'" for k in SCHEDULES)})""")
        cursor = self.db.value(f"SELECT coalesce(cursor, '0') FROM department_sync WHERE department_id = '{self.feed['id']}'")
        feed_total = self.sim_stats()["feedChanges"]
        open_notifications = self.db.number("SELECT count(*) FROM notifications WHERE delivery_id IS NULL AND skipped IS NULL")
        sending = self.db.number("SELECT count(*) FROM mail_deliveries WHERE state = 'sending'")
        waiting = {"jobs": busy, "feed behind": feed_total - int(cursor or 0), "notifications": open_notifications,
                   "mails sending": sending}
        return all(v == 0 for v in waiting.values()), waiting

    def wait_drained(self):
        started = time.monotonic()
        deadline = started + self.state["drainSeconds"]
        last_print = 0
        while True:
            done, waiting = self.drained()
            if done:
                self.drain_seconds = time.monotonic() - started
                print(f"==> drained in {self.drain_seconds:.1f} s", file=sys.stderr)
                return True
            now = time.monotonic()
            if now >= deadline:
                self.drain_seconds = now - started
                self.check("queues drained within the deadline", False,
                           f"after {self.state['drainSeconds']} s still waiting: {waiting}")
                return False
            if now - last_print >= 10:
                print(f"==> draining: {waiting}", file=sys.stderr)
                last_print = now
            time.sleep(0.5)  # polling with a deadline

    # MARK: The checks

    def events(self):
        stored = {}
        for department, event_id in self.db.rows("SELECT department_id, event_id FROM status_events"):
            stored.setdefault(department, []).append(event_id)
        zgw_created = set(self.ledger["zgw"]["created"])
        for kind, label in (("push", "status events pushed"), ("feed", "status events from the feed"),
                            ("zgw", "ZGW statuses (Open Notificaties callbacks)")):
            accepted_total = stored_total = 0
            problems = []
            for department in self.by_kind[kind]:
                ledger = self.ledger["events"].get(department["id"], {"accepted": {}, "uncertain": []})
                accepted = set(ledger["accepted"])
                uncertain = set(ledger["uncertain"])
                rows = stored.get(department["id"], [])
                here = set(rows)
                missing = accepted - here
                allowed = zgw_created if kind == "zgw" else accepted | uncertain
                unknown = here - allowed
                twice = len(rows) - len(here)
                accepted_total += len(accepted)
                stored_total += len(rows)
                if missing:
                    problems.append(f"{department['name']}: {len(missing)} accepted but not stored (e.g. {sorted(missing)[:3]})")
                if unknown:
                    problems.append(f"{department['name']}: {len(unknown)} stored that were never accepted (e.g. {sorted(unknown)[:3]})")
                if twice:
                    problems.append(f"{department['name']}: {twice} stored twice")
                if uncertain:
                    self.notes.append(f"{department['name']}: {len(uncertain)} events without a clear answer, "
                                      f"{len(uncertain & here)} of them stored")
            ok = self.check(f"{label}: every accepted event stored exactly once", not problems, "; ".join(problems))
            self.rows.append((f"{label} ({len(self.by_kind[kind])} department{'s' if len(self.by_kind[kind]) > 1 else ''})",
                              accepted_total, stored_total, ok))
        replays = self.ledger["replays"]
        # Nothing new stored is the exactly-once check above. Under faults a replay, like any request, may get no
        # answer or a 5xx; every other answer must be 200.
        excused = {code: n for code, n in replays["other"].items()
                   if self.faults is not None and (code == "0" or code.startswith("5"))}
        ok = self.check("replayed event ids answered 200 and stored nothing new",
                        replays["sent"] == replays["answered200"] + sum(excused.values()),
                        f"{replays['sent']} sent, {replays['answered200']} answered 200, others {replays['other']}"
                        + (f" (no answer or a 5xx during faults: {sum(excused.values())})" if excused else ""))
        self.rows.append(("replays of accepted event ids (answered 200, nothing stored)", replays["sent"],
                          f"{replays['answered200']} × 200", ok))
        zgw = self.ledger["zgw"]
        tests = zgw.get("testMessages") or {}
        self.check("Open Notificaties test messages: 2xx with the abonnement's auth, 401/403 without",
                   200 <= tests.get("withAuth", 0) < 300 and tests.get("withoutAuth") in (401, 403), json.dumps(tests))

    def feed_sync(self):
        applied, refused, cursor = self.db.rows(
            f"SELECT changes_applied, changes_refused, coalesce(cursor, '0') FROM department_sync WHERE department_id = '{self.feed['id']}'")[0]
        changes = self.ledger["feedChanges"]
        ok = self.check("feed: every change the department offered applied, none refused",
                        int(applied) == changes and int(refused) == 0 and int(cursor) == changes,
                        f"offered {changes}, applied {applied}, refused {refused}, cursor {cursor}")
        self.rows.append(("feed changes offered → applied (incl. resent ones)", changes, int(applied), ok))
        refusals = self.db.rows("SELECT reason, count(*) FROM sync_refusals GROUP BY 1")
        self.check("no sync refusals", not refusals, "; ".join(f"{n} × {r}" for r, n in refusals))
        self.feed_applied = int(applied)

    def jobs(self):
        dead = self.db.rows("SELECT kind, count(*), max(last_error) FROM jobs WHERE state = 'dead' GROUP BY 1")
        ok = self.check("no dead jobs", not dead, "; ".join(f"{n} × {k} ({e[:120]})" for k, n, e in dead))
        self.rows.append(("dead jobs", "", sum(int(n) for _, n, _ in dead), ok))
        self.job_counts = self.db.rows("SELECT kind, state, count(*) FROM jobs GROUP BY 1, 2 ORDER BY 1, 2")

    def documents(self):
        stored = {row[0]: row for row in self.db.rows(
            "SELECT id, encode(sha256, 'hex'), size, department_id, delivery FROM documents WHERE origin = 'resident' AND state = 'stored'")}
        uploads = self.ledger["uploads"]
        problems = []
        for upload in uploads:
            row = stored.get(upload["id"])
            if row is None:
                problems.append(f"{upload['id']} missing")
            elif row[1] != upload["sha256"] or int(row[2]) != upload["size"]:
                problems.append(f"{upload['id']}: stored hash or size differs from what was sent")
        extra = len(stored) - len({u["id"] for u in uploads})
        if extra > self.ledger["uploadsUncertain"]:
            problems.append(f"{extra} stored uploads the driver got no 201 for")
        receiving = self.db.number("SELECT count(*) FROM documents WHERE state = 'receiving'")
        ok = self.check("uploads: every accepted upload stored once with the SHA-256 of what was sent",
                        not problems, "; ".join(problems[:5]))
        self.rows.append(("uploads (SHA-256 and size compared)", len(uploads), len(stored), ok))
        if self.ledger["uploadsRefused"]:
            self.notes.append(f"uploads refused: {self.ledger['uploadsRefused']}")
        if self.faults is not None and receiving:
            # A replica killed in the middle of an upload leaves its row in state receiving (no content is ever
            # shown); every replica's UploadJanitor removes such rows once they are an hour old.
            self.notes.append(f"{receiving} uploads left half-received by replicas killed while receiving them "
                              f"(removed by the upload janitor after an hour; never shown)")
        else:
            self.check("no upload left half-received", receiving == 0, f"{receiving} rows in state receiving")
        self.stored_documents = stored

    def messages(self):
        from_resident = self.db.rows("SELECT id, department_id, delivery FROM messages WHERE direction = 'from-resident'")
        accepted = {m for ids in self.ledger["residentMessages"].values() for m in ids}
        here = {row[0] for row in from_resident}
        problems = []
        if accepted - here:
            problems.append(f"{len(accepted - here)} accepted but not stored")
        if len(here - accepted) > self.ledger["residentMessagesUncertain"]:
            problems.append(f"{len(here - accepted)} stored without a 201")
        ok = self.check("resident messages: every accepted message stored once", not problems, "; ".join(problems))
        self.rows.append(("messages from residents", len(accepted), len(here), ok))

        to_resident = self.db.rows("SELECT department_id, external_id FROM messages WHERE direction = 'to-resident'")
        accepted = {(d, e) for d, ids in self.ledger["departmentMessages"].items() for e in ids}
        here = {(d, e) for d, e in to_resident}
        problems = []
        if accepted - here:
            problems.append(f"{len(accepted - here)} accepted but not stored")
        if len(to_resident) != len(here):
            problems.append("a department message id stored twice")
        if len(here - accepted) > self.ledger["departmentMessagesUncertain"]:
            problems.append(f"{len(here - accepted)} stored without a 2xx")
        ok = self.check("department messages: every accepted message id stored once (resent ids too)", not problems,
                        "; ".join(problems))
        self.rows.append(("messages from departments (distinct ids)", len(accepted), len(to_resident), ok))
        self.from_resident = from_resident

    def webhook(self):
        hooked = [d for d in self.config["departments"] if d.get("webhook")]
        if not hooked:
            return
        department = hooked[0]
        expected = {f"message:{m}" for m, d, _ in self.from_resident if d == department["id"]}
        expected |= {f"document:{i}" for i, row in self.stored_documents.items() if row[3] == department["id"]}
        undelivered = self.db.number(f"""
            SELECT (SELECT count(*) FROM messages WHERE department_id = '{department['id']}' AND delivery = 'pending')
                 + (SELECT count(*) FROM documents WHERE department_id = '{department['id']}' AND delivery = 'pending' AND state = 'stored')""")
        stats = self.sim_stats()
        received = set(stats["webhookDeliveryIds"])
        ok = self.check(f"webhook ({department['name']}): every message and upload posted, signed, and marked delivered",
                        received == expected and undelivered == 0 and stats["webhookBadSignatures"] == 0,
                        f"expected {len(expected)}, received {len(received)} distinct ({stats['webhookPosts']} posts), "
                        f"{undelivered} still pending, {stats['webhookBadSignatures']} bad signatures, "
                        f"{stats.get('webhookIncomplete', 0)} cut off by their sender, "
                        f"{len(expected - received)} missing, {len(received - expected)} unknown")
        self.rows.append((f"webhook deliveries to {department['name']} (signature checked)", len(expected), len(received), ok))

    def mail(self):
        notifications = dict((k, int(n)) for k, n in self.db.rows("""
            SELECT CASE WHEN n.delivery_id IS NOT NULL THEN 'delivery-' || d.state
                        WHEN n.skipped IS NOT NULL THEN 'skipped-' || n.skipped || CASE WHEN c.department_id = '""" + self.zgw["id"] + """' THEN '-zgw' ELSE '' END
                        ELSE 'open' END, count(*)
            FROM notifications n LEFT JOIN mail_deliveries d ON d.id = n.delivery_id LEFT JOIN cases c ON c.id = n.case_id
            GROUP BY 1"""))
        created = sum(notifications.values())
        in_sent = notifications.get("delivery-sent", 0)
        skipped_zgw = notifications.get("skipped-no-address-zgw", 0)
        others = {k: v for k, v in notifications.items() if k not in ("delivery-sent", "skipped-no-address-zgw")}
        ok = self.check("every notification is in a mail that was sent (ZGW cases excepted: no address)", not others,
                        f"{created} notifications: {notifications}")
        self.rows.append(("notifications → in a sent mail", created, in_sent, ok))
        if skipped_zgw:
            self.notes.append(f"{skipped_zgw} notifications about ZGW cases were skipped for want of an address: a zaak "
                              f"carries no e-mail address and these residents verified none (expected)")
        deliveries = dict((s, int(n)) for s, n in self.db.rows("SELECT state, count(*) FROM mail_deliveries GROUP BY 1"))
        sent_ids = {row[0].strip("<>") for row in self.db.rows("SELECT message_id FROM mail_deliveries WHERE state = 'sent'")}
        files, ids = maildir(self.state["maildir"])
        duplicates = files - len(ids)
        unknown = set(ids) - sent_ids
        missing = sent_ids - set(ids)
        ok = self.check("Maildir: one mail per sent delivery, duplicates carrying their original's Message-ID",
                        not unknown and not missing and deliveries.get("failed", 0) == 0,
                        f"{files} files, {len(ids)} distinct Message-IDs, {len(sent_ids)} sent deliveries, "
                        f"{duplicates} duplicates, {len(missing)} sent but not received, {len(unknown)} received unknown, "
                        f"deliveries {deliveries}")
        self.rows.append(("mails: deliveries sent → in the Maildir (duplicates)", len(sent_ids), f"{files} ({duplicates})", ok))
        self.mail_files = files
        self.deliveries = deliveries

    def visibility(self):
        """A sample of accepted events, looked up as their resident sees them through the balancer."""
        events = []
        for department, ledger in self.ledger["events"].items():
            for event_id, info in ledger["accepted"].items():
                events.append(dict(info, eventId=event_id, department=department))
        rng = random.Random(7)
        wanted = self.state["sample"]
        sample = []
        for kind in ("push", "feed", "zgw"):  # every kind in the sample, in proportion, at least 50 each
            of_kind = [e for e in events if e["kind"] == kind]
            share = max(50, round(wanted * len(of_kind) / max(1, len(events))))
            sample += rng.sample(of_kind, min(len(of_kind), share))
        by_resident = {}
        for event in sample:
            by_resident.setdefault(event["bsn"], []).append(event)
        found, missing = 0, []
        for resident, wanted_events in by_resident.items():
            status, headers, body = self.api.call("POST", "/auth/dev-login", {"bsn": resident})
            if status != 200:
                missing += [f"login {status}"] * len(wanted_events)
                continue
            cookie = {"Cookie": headers.get("set-cookie", "").split(";", 1)[0]}
            ids, cursor = {}, None
            while True:
                status, _, body = self.api.call("GET", "/api/v1/cases?limit=100" + (f"&cursor={cursor}" if cursor else ""),
                                                headers=cookie)
                if status != 200:
                    break
                page = json.loads(body)
                ids.update({item["title"]: item["id"] for item in page["items"]})
                cursor = page.get("next")
                if not cursor:
                    break
            details = {}
            for event in wanted_events:
                case_id = ids.get(event["title"])
                if case_id is None:
                    missing.append(f"{event['eventId']}: case not in the list")
                    continue
                if case_id not in details:
                    status, _, body = self.api.call("GET", f"/api/v1/cases/{case_id}", headers=cookie)
                    details[case_id] = json.loads(body)["history"] if status == 200 else []
                history = details[case_id]
                if event["kind"] == "zgw":
                    hit = any(h["code"] == event["code"] and h["setAt"] == event["setAt"] for h in history)
                else:
                    hit = any(h["text"] == event["text"] for h in history)
                if hit:
                    found += 1
                else:
                    missing.append(f"{event['eventId']}: not in the case's history")
        ok = self.check(f"a sample of {len(sample)} accepted events is visible to its resident through the balancer",
                        not missing and len(sample) > 0, "; ".join(missing[:5]))
        self.rows.append((f"events visible to their resident via the API (sample, {len(by_resident)} residents)",
                          len(sample), found, ok))

    def driver_answers(self):
        """The driver never provokes a refusal (it keeps its own view of every case): any 4xx it did not expect, a
        409 for an upload to a case it believes open, say, is a finding."""
        anomalies = self.ledger["anomalies"]
        errors = self.ledger["errors"]
        if self.faults is not None:
            # Under faults a request may get no answer (a replica killed under it, the balancer's 502) or a 5xx (while
            # PostgreSQL restarts): not accepted, so nothing is owed. Anything else is still a finding.
            anomalies = [a for a in anomalies if not UNANSWERED.search(a)]
            errors = []
        self.check("the driver got no answer it did not expect", not anomalies and not errors,
                   f"{len(anomalies)} unexpected answers, {len(errors)} errors; e.g. "
                   + "; ".join(a[:200] for a in (anomalies + errors)[:3]))

    def metrics_checks(self):
        if self.faults is not None:
            self.notes.append("metrics not compared with the end state: the counters of a killed process start again")
            return
        # Notifiers: attempts with outcome sent = mails received (each duplicate was an attempt too). Counters live as
        # long as their process: with restarts, compare per process lifetime instead.
        deadline = time.monotonic() + 15
        while True:
            sent = sum(total(metrics(n["url"]), "portal_mail_attempts_total", outcome="sent") for n in self.state["notifier"])
            files, _ = maildir(self.state["maildir"])
            if sent == files or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        ok = self.check("metrics: notifiers' portal_mail_attempts_total{outcome=\"sent\"} = mails received",
                        sent == files, f"{sent:.0f} vs {files}")
        self.rows.append(("metric: mail attempts sent (2 notifiers) = mails received", files, int(sent), ok))

        # Sync workers: changes applied, per department.
        sync = [metrics(s["url"]) for s in self.state["sync"]]
        feed_metric = sum(total(m, "portal_sync_changes_total", department=self.feed["id"], outcome="applied") for m in sync)
        zgw_metric = sum(total(m, "portal_sync_changes_total", department=self.zgw["id"], outcome="applied") for m in sync)
        per_worker = [total(m, "portal_sync_changes_total", department=self.feed["id"], outcome="applied") for m in sync]
        ok = self.check("metrics: sync workers' portal_sync_changes_total{outcome=\"applied\"} for the feed = changes applied",
                        feed_metric == self.feed_applied,
                        f"{feed_metric:.0f} vs {self.feed_applied} (per worker {[int(x) for x in per_worker]})")
        self.rows.append(("metric: feed changes applied (2 sync workers, per worker "
                          + " / ".join(str(int(x)) for x in per_worker) + ")", self.feed_applied, int(feed_metric), ok))
        zgw_stored = self.db.number(f"SELECT count(*) FROM status_events WHERE department_id = '{self.zgw['id']}'")
        ok = self.check("metrics: ZGW statuses applied ≥ stored (a replayed status counts as applied)", zgw_metric >= zgw_stored,
                        f"{zgw_metric:.0f} vs {zgw_stored}")
        self.rows.append(("metric: ZGW statuses applied (2 sync workers) ≥ stored", zgw_stored, int(zgw_metric), ok))

        # API replicas: hb_requests (Hummingbird's counter; the name has no _total suffix) over the three.
        per_replica = []
        for replica in self.state["api"]:
            samples = metrics(replica["url"])
            every = total(samples, "hb_requests")
            served = sum(v for n, l, v in samples if n == "hb_requests" and not l.get("http_route", "").startswith(("/health", "/metrics")))
            per_replica.append((replica["name"], every, served))
        driver = sum(sum(c.values()) for c in self.ledger["requests"].values())
        stats = self.sim_stats()
        ours = driver + self.api.count + stats["zgwNotifications"] + 2  # + Open Notificaties' two test messages
        counted = sum(e for _, e, _ in per_replica)
        ok = self.check("metrics: the replicas' hb_requests add up to at least the requests made through the balancer",
                        counted >= ours, f"{counted:.0f} counted, {ours} made (driver {driver}, check {self.api.count}, "
                        f"simulator {stats['zgwNotifications'] + 2})")
        self.rows.append(("metric: hb_requests over 3 replicas ≥ requests made", ours, int(counted), ok))
        served = [s for _, _, s in per_replica]
        share = " / ".join(f"{100 * s / max(1, sum(served)):.0f}%" for s in served)
        ok = self.check("the balancer spreads: every replica served API requests", all(s > 0 for s in served),
                        ", ".join(f"{n}: {s:.0f}" for n, _, s in per_replica))
        self.rows.append((f"requests served per replica ({share})", "", " / ".join(str(int(s)) for s in served), ok))

    def logs(self):
        """Portal logs: no personal data or secrets (scripts/scan-logs.py's patterns), and no error lines."""
        spec = importlib.util.spec_from_file_location("scan_logs", os.path.join(os.path.dirname(__file__), "..", "scripts", "scan-logs.py"))
        scan = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(scan)
        findings, errors, warnings = [], {}, {}
        for name in sorted(os.listdir(self.state["logs"])):
            if not re.match(r"(api|sync|notifier)-\d+\.log$", name):
                continue
            with open(os.path.join(self.state["logs"], name), encoding="utf-8", errors="replace") as handle:
                for number, line in enumerate(handle, 1):
                    for what, secret in scan.findings(line):
                        findings.append(f"{name}:{number}: {what} ({scan.mask(secret)})")
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    key = f"{record.get('label')}: {record.get('message')}"
                    if record.get("level") in ("error", "critical") and "PORTAL_DEV_LOGIN" not in record.get("message", ""):
                        errors[key] = errors.get(key, 0) + 1
                    elif record.get("level") == "warning":
                        warnings[key] = warnings.get(key, 0) + 1
        self.check("portal logs hold no BSN, JWT, department key or session cookie", not findings, "; ".join(findings[:5]))
        if warnings:
            self.notes.append(f"{sum(warnings.values())} warnings in the portal logs: " + "; ".join(
                f"{n} × {k[:140]}" for k, n in sorted(warnings.items(), key=lambda kv: -kv[1])[:4]))
        if self.faults is not None and errors:
            # Losing the database or the relay is logged as an error, as it should be; they are listed, not failed.
            self.notes.append(f"{sum(errors.values())} error lines in the portal logs (faults): " + "; ".join(
                f"{n} × {k[:120]}" for k, n in sorted(errors.items(), key=lambda kv: -kv[1])[:5]))
            return
        self.check("portal logs hold no error lines", not errors,
                   "; ".join(f"{n} × {k[:160]}" for k, n in sorted(errors.items(), key=lambda kv: -kv[1])[:5]))

    def fault_figures(self):
        """What each fault did, from the timeline the script wrote and the jobs table."""
        if self.faults is None:
            return
        timeline = self.faults
        at = lambda what: next((e for e in timeline if e["what"] == what), None)
        kills = {}
        for event in timeline:
            if event["what"] == "kill":
                kind = event["process"].split("-")[0]
                kills[kind] = kills.get(kind, 0) + 1
        restarted = sum(1 for e in timeline if e["what"] == "restarted")
        ok = self.check("every killed process started again and became ready",
                        restarted == sum(kills.values()) and sum(kills.values()) > 0, f"{kills}, {restarted} restarted")
        lines = ["| fault | when (s after the traffic started) | figure |", "| --- | ---: | --- |"]
        lines.append(f"| SIGKILL of a random replica, then started again (every 6 to 10 s) | {timeline[0]['t'] if timeline else 0:.0f} "
                     f"to {max((e['t'] for e in timeline if e['what'] == 'kill'), default=0):.0f} | "
                     + ", ".join(f"{n} × {k}" for k, n in sorted(kills.items())) + f", {restarted} restarted and ready |")
        stop, recovered = at("postgres-stop"), at("postgres-recovered")
        if stop and recovered:
            lines.append(f"| PostgreSQL restarted (fast shutdown), every process ready again without help | {stop['t']:.0f} | "
                         f"down to all 7 processes ready: {recovered['t'] - stop['t']:.1f} s (after its start: "
                         f"{recovered['seconds']:.1f} s) |")
        self.check("every process recovered from the PostgreSQL restart without help", bool(stop and recovered),
                   "no recovery recorded")
        smtp_down, smtp_up = at("smtp-stop"), at("smtp-started")
        if smtp_down and smtp_up:
            deferred = self.db.number(
                "SELECT count(*) FROM (SELECT delivery_id FROM mail_attempts GROUP BY 1 HAVING count(*) > 1) x")
            transient = self.db.number("SELECT count(*) FROM mail_attempts WHERE outcome = 'transient'")
            lines.append(f"| SMTP server stopped | {smtp_down['t']:.0f} to {smtp_up['t']:.0f} | "
                         f"{transient} attempts deferred, {deferred} deliveries took more than one attempt, "
                         f"{self.deliveries.get('failed', 0)} failed |")
        failing = at("departments-failing")
        if failing:
            refused = self.sim_stats().get("failedRequests", 0)
            lines.append(f"| departments' systems answering 503 | {failing['t']:.0f} to {failing['t'] + failing['seconds']:.0f} | "
                         f"{refused} requests refused by them; retried until they came back |")
        flood = at("flood-start")
        if flood:
            started = self.state["trafficStarted"]
            rows = self.db.rows("""
                SELECT count(*), count(*) FILTER (WHERE state = 'completed'), count(*) FILTER (WHERE state = 'dead'),
                       extract(epoch FROM min(created_at)), extract(epoch FROM max(finished_at))
                FROM jobs WHERE kind = 'mail.notification' AND (payload->>'notification')::bigint < 0""")[0]
            total, done, dead, first, last = int(rows[0]), int(rows[1]), int(rows[2]), float(rows[3]), float(rows[4] or rows[3])
            window = max(1.0, last - first)

            def claim_delays(start, end):
                return self.db.rows(f"""
                    SELECT count(*), coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY d), 0),
                           coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY d), 0)
                    FROM (SELECT extract(epoch FROM attempted_at - run_at) AS d FROM jobs
                          WHERE queue = 'sync' AND kind NOT IN ({", ".join(f"'{k}'" for k in SCHEDULES)})
                            AND attempted_at >= to_timestamp({start}) AND attempted_at < to_timestamp({end})) x""")[0]
            before = claim_delays(first - window, first)
            during = claim_delays(first, last)
            lines.append(f"| {total:,} jobs into the notifications queue at once | {flood['t']:.0f} | drained in {window:.0f} s "
                         f"({total / window:,.0f} jobs/s), {done:,} completed, {dead} dead; the sync queue meanwhile: "
                         f"{int(during[0])} jobs started ({int(during[0]) / window:.1f}/s), wait p50 / p99 "
                         f"{float(during[1]):.2f} / {float(during[2]):.2f} s; in as long before it: {int(before[0])} jobs, "
                         f"{float(before[1]):.2f} / {float(before[2]):.2f} s |")
            self.check("the flood drained, every job of it completed", done == total and dead == 0, f"{done} of {total}, {dead} dead")
            self.check("the sync queue kept flowing during the flood", int(during[0]) > 0,
                       f"{int(during[0])} sync jobs started in the {window:.0f} s of the flood")
        refused = {}
        for kind, counts in self.ledger["requests"].items():
            for status, n in counts.items():
                if int(status) == 0 or int(status) >= 500:
                    refused[kind] = refused.get(kind, 0) + n
        lines.append("| requests without an answer or with a 5xx (not accepted, so not owed) | | "
                     + (", ".join(f"{k}: {n}" for k, n in sorted(refused.items())) or "none") + " |")
        self.fault_lines = lines

    # MARK: Report

    def report(self):
        run = self.state["run"]
        ledger = self.ledger
        requests = ledger["requests"]
        driver = sum(sum(c.values()) for c in requests.values())
        ok2xx = sum(n for c in requests.values() for s, n in c.items() if 200 <= int(s) < 300)
        failed = {}
        for kind, counts in requests.items():
            for status, n in counts.items():
                if not 200 <= int(status) < 300:
                    failed[f"{kind} {status}"] = n
        latency = ledger["latencyAll"]
        ms = lambda s: f"{1000 * s:.1f}"
        binaries = os.path.relpath(run['bin'], ROOT) if run['bin'].startswith(ROOT + os.sep) else run['bin']
        lines = [
            "## Fault run" if self.faults is not None else "## Distributed run", "",
            f"Recorded {run['date']} on {run['cpus']} × {run['cpu']}, everything on this one machine (loopback): "
            f"`{run['command']}` with the binaries of `{binaries}`, one PostgreSQL "
            f"({run['postgres']}), nginx round-robin over 3 `PortalAPI serve` replicas, 2 `SyncWorker`, 2 `Notifier`, "
            f"aiosmtpd into a Maildir, and `bench/department_sim.py` as the departments' systems. Uploads "
            f"{'scanned by clamd' if run['clamd'] else 'not scanned (no clamd)'}. The driver "
            f"(`bench/distributed_driver.py`, {ledger['threads']} threads) aimed at {ledger['rate']:g} actions per second "
            f"for {ledger['seconds']:g} s.", "",
            "| traffic | figure |", "| --- | ---: |",
            f"| requests through the balancer (driver) | {fmt(driver)} in {ledger['elapsed']:.0f} s |",
            f"| requests per second achieved | {driver / ledger['elapsed']:.1f} |",
            f"| answered 2xx / other | {fmt(ok2xx)} / {fmt(driver - ok2xx)} |",
            f"| latency p50 / p99 / max, all requests (ms) | {ms(latency['p50'])} / {ms(latency['p99'])} / {ms(latency['max'])} |",
        ]
        for kind, figures in sorted(ledger["latency"].items()):
            lines.append(f"| {kind}: {fmt(figures['count'])} requests, p50 / p99 (ms) | {ms(figures['p50'])} / {ms(figures['p99'])} |")
        lines += [
            f"| feed changes offered by the department | {fmt(ledger['feedChanges'])} |",
            f"| ZGW statuses notified (callback answers) | {fmt(len(ledger['zgw']['created']))} ({ledger['zgw']['callbacks']}) |",
            f"| drained after the traffic stopped (s) | {self.drain_seconds:.1f} |",
            "",
            "| end state | accepted (2xx) | stored / seen | check |", "| --- | ---: | ---: | --- |",
        ]
        for what, accepted, stored, ok in self.rows:
            lines.append(f"| {what} | {fmt(accepted)} | {fmt(stored)} | {'ok' if ok else '**FAIL**'} |")
        lines.append("")
        if self.fault_lines:
            lines += self.fault_lines + [""]
        if failed:
            lines.append("Requests not answered 2xx: " + ", ".join(f"{k}: {n}" for k, n in sorted(failed.items())) + ".")
        for note in self.notes:
            lines.append(f"- {note}")
        excused = [a for a in ledger["anomalies"] if self.faults is not None and UNANSWERED.search(a)]
        unexpected = [a for a in ledger["anomalies"] if a not in excused]
        if excused:
            lines.append(f"- the driver got {len(excused)} answers of 0 or 5xx where it expected another (excused under "
                         "faults), e.g. " + "; ".join(short_answer(a) for a in excused[:3]))
        if unexpected:
            lines.append(f"- the driver noted {len(unexpected)} unexpected answers, e.g. "
                         + "; ".join(a[:160] for a in unexpected[:3]))
        if ledger["errors"]:
            lines.append(f"- the driver hit {len(ledger['errors'])} errors, e.g. " + "; ".join(e[:160] for e in ledger["errors"][:3]))
        lines.append("")
        failed_checks = self.check.failed
        lines.append(f"Checks: {len(self.check.results) - len(failed_checks)} of {len(self.check.results)} passed"
                     + ("." if not failed_checks else "; failed: " + "; ".join(f"{n} ({d[:200]})" for n, _, d in failed_checks) + "."))
        text = "\n".join(lines) + "\n"
        with open(self.state["report"], "w") as handle:
            handle.write(text)
        print(text)

    def run(self):
        print("==> waiting for the queues to drain", file=sys.stderr)
        self.drain_seconds = 0
        self.wait_drained()
        print("==> checking the end state", file=sys.stderr)
        for step in (self.events, self.feed_sync, self.jobs, self.documents, self.messages, self.webhook, self.mail,
                     self.visibility, self.metrics_checks, self.driver_answers, self.logs, self.fault_figures):
            try:
                step()
            except Exception as error:  # a check that cannot run is a failed check, and the others still run
                self.check(f"{step.__name__} could be checked", False, repr(error))
        self.report()
        return 1 if self.check.failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", required=True)
    args = parser.parse_args()
    with open(args.state) as handle:
        state = json.load(handle)
    with open(state["configPath"]) as handle:
        state["config"] = json.load(handle)
    sys.exit(Checker(state).run())


if __name__ == "__main__":
    main()
