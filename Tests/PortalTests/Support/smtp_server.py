"""A real SMTP server for the tests (aiosmtpd), with the relay features the portal must handle: STARTTLS or implicit
TLS, AUTH, and replies that refuse chosen recipients. Each accepted message is written to --out as <n>.eml with its
envelope in <n>.json; each QUIT adds the client's address to quits.log. Prints "READY" on standard output once it listens; stops when standard input closes."""

import argparse
import json
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--mode", choices=["plain", "starttls", "implicit"], required=True)
parser.add_argument("--cert")
parser.add_argument("--key")
parser.add_argument("--user")
parser.add_argument("--password")
parser.add_argument("--out", required=True)
parser.add_argument("--refuse", action="append", default=[],
                    help="address:code[:times], e.g. gone@example.org:550, or busy@example.org:451:2 (then accept)")
args = parser.parse_args()
refusals = {}
for item in args.refuse:
    address, code, *times = item.split(":")
    refusals[address] = [code, int(times[0]) if times else None]


class Handler:
    def __init__(self):
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = refusals.get(address)
        if refusal and refusal[1] != 0:
            code = refusal[0]
            if refusal[1] is not None:
                refusal[1] -= 1
            # Like real relays, the reply repeats the address (the portal must keep it out of its logs).
            return f"{code} <{address}>: {'Try again later' if code.startswith('4') else 'No such user'}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_QUIT(self, server, session, envelope):
        with open(os.path.join(args.out, "quits.log"), "a") as f:
            f.write(f"{session.peer[0]}:{session.peer[1]}\n")
        return "221 Bye"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(args.out, str(self.count))
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".json", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos, "tls": session.ssl is not None,
                       "authenticated": session.authenticated, "peer": f"{session.peer[0]}:{session.peer[1]}"}, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        return f"250 Message accepted as {self.count}"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and args.user is not None
          and auth_data.login == args.user.encode() and auth_data.password == args.password.encode())
    return AuthResult(success=ok, handled=False)


context = None
if args.mode != "plain":
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)

options = dict(hostname="127.0.0.1", port=args.port, ready_timeout=10)
if args.user:
    options.update(authenticator=authenticator, auth_require_tls=args.mode == "starttls")
if args.mode == "starttls":
    options.update(tls_context=context, require_starttls=True)
elif args.mode == "implicit":
    options.update(ssl_context=context)
controller = Controller(Handler(), **options)
controller.start()
print("READY", flush=True)
sys.stdin.read()
controller.stop()
