#!/usr/bin/env python3
"""Scans everything the test suite logged for personal data and secrets; exits 1 when it finds any.

    scripts/scan-logs.py DIR        scan every file in DIR (scripts/test passes PORTAL_TEST_LOG_DIR)
    scripts/scan-logs.py --self-test

It looks for:
  - a nine-digit number that passes the elfproef (a BSN), standing on its own (not part of a longer number,
    a decimal or a hexadecimal id);
  - anything shaped like a JWT (two base64url JSON segments starting with "eyJ" and a signature);
  - a department API key (portal_dk_...);
  - a session cookie value.
A finding is printed with its file and line number, the secret itself masked.
The scan also fails when the folder holds too little to prove anything (the capture broke), or when no security
event was logged (the log of the refusal paths is what we most need to see).
"""
import os
import re
import sys

NINE_DIGITS = re.compile(r"(?<![0-9A-Za-z.\-_])([0-9]{9})(?![0-9A-Za-z_]|\.[0-9])")
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
DEPARTMENT_KEY = re.compile(r"portal_dk_[A-Za-z0-9_-]{16,}")
SESSION_COOKIE = re.compile(r"__Host-portal-session=[A-Za-z0-9_-]{16,}")


def passes_elfproef(digits: str) -> bool:
    if digits == "000000000":
        return False
    total = sum(int(d) * w for d, w in zip(digits, [9, 8, 7, 6, 5, 4, 3, 2, -1]))
    return total % 11 == 0


def findings(line: str):
    for match in NINE_DIGITS.finditer(line):
        if passes_elfproef(match.group(1)):
            yield "a BSN-like number", match.group(1)
    for pattern, what in ((JWT, "a JWT"), (DEPARTMENT_KEY, "a department API key"), (SESSION_COOKIE, "a session cookie")):
        for match in pattern.finditer(line):
            yield what, match.group(0)


def mask(secret: str) -> str:
    return secret[:3] + "..." + secret[-2:] if len(secret) > 8 else "***"


def scan(folder: str) -> int:
    problems, lines, security_events = 0, 0, 0
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                lines += 1
                if "portal.security.event" in line:
                    security_events += 1
                for what, secret in findings(line):
                    problems += 1
                    print(f"{name}:{number}: {what} in a log line ({mask(secret)})")
    print(f"scanned {lines} log lines in {folder}: {problems} findings, {security_events} security events")
    if lines < 100:
        print("too few log lines to prove anything: is the test log capture broken?")
        return 1
    if security_events == 0:
        print("no security event was logged: the refusal paths were not exercised or not captured")
        return 1
    return 1 if problems else 0


def self_test() -> int:
    must_find = [
        "login bsn=999993653 ok",
        'token="eyJhbGciOiJFUzI1NiJ9.eyJic24iOiI5OTk5OTM2NTMifQ.c2lnbmF0dXJl"',
        "key portal_dk_AbCdEfGhIjKlMnOpQrStUv",
        "cookie: __Host-portal-session=AbCdEfGhIjKlMnOpQrStUv",
        "subject 111222333,",
    ]
    must_pass = [
        "job 999993654 failed",  # fails the elfproef
        "took 0.999993653 s",  # a decimal
        "trace 4bf92f3577b34da6999993653ce929d0",  # inside a hexadecimal id
        "count 1999993653",  # ten digits
        "masked ******653",
    ]
    failures = [line for line in must_find if not list(findings(line))]
    failures += [line for line in must_pass if list(findings(line))]
    for line in failures:
        print(f"self-test failed on: {line}")
    print("self-test " + ("failed" if failures else "passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(scan(sys.argv[1]))
