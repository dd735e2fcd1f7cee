#!/usr/bin/env python3
"""Host-side fixtures for tests/image/image_test.sh.

  fixtures.py serve
      Start a throwaway PostgreSQL with Dify's schema (main) and the fixture rows, and
      Dify's console routing stack (tests/lib/dify_app.py under gunicorn), then print shell assignments (PG_PORT,
      UPSTREAM_PORT, PROXY_PORT, ADMIN_PORT, SECRET_KEY, APP_ID,
      OWNER_TOKEN, MEMBER_TOKEN) and a final READY line. Runs until SIGTERM,
      SIGINT or SIGHUP, or until its parent (the test script) is gone, then
      stops both.

  fixtures.py get PORT PATH [TOKEN]
      GET PATH from 127.0.0.1:PORT (with "Authorization: Bearer TOKEN" when
      given) and print the status code; "000" when nothing answered.
"""
import os
import secrets
import signal
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from harness import PG, ROOT, DifyApi, free_port, http, mint  # noqa: E402
from fixture import APPS, USERS  # noqa: E402


def token(secret, user):
    # as Dify's PassportService mints console tokens
    return mint(secret, {"user_id": USERS[user], "iss": "SELF_HOSTED", "sub": "Console API Passport"})


def serve():
    parent = os.getppid()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    pg = up = None
    try:
        pg = PG()
        for part in ("schema", "data"):
            pg.psql_file(os.path.join(ROOT, "tests", "fixtures", "dify-%s-main.pg.sql" % part))
        up = DifyApi(version="1.16.0-rc1")  # the routes of the Dify whose schema this is
        secret = "sk-image-test-" + secrets.token_hex(16)
        out = {
            "PG_PORT": pg.port,
            "UPSTREAM_PORT": up.port,
            "PROXY_PORT": free_port(),
            "ADMIN_PORT": free_port(),
            "SECRET_KEY": secret,
            "APP_ID": APPS["a-editor-app"][0],
            "OWNER_TOKEN": token(secret, "owner_a"),    # workspace owner: allowed
            "MEMBER_TOKEN": token(secret, "normal_a"),  # plain member, not the creator: denied
        }
        for k, v in out.items():
            print("%s=%s" % (k, v))
        print("READY", flush=True)

        while not stop.wait(0.5):
            if os.getppid() != parent:
                print("fixtures: parent gone, stopping", file=sys.stderr)
                return 1
            if up.proc.poll() is not None:
                print("fixtures: the test upstream exited (%s)" % up.proc.returncode, file=sys.stderr)
                return 1
        return 0
    finally:
        if up is not None:
            up.close()
        if pg is not None:
            pg.close()


def get(port, path, tok=None):
    headers = [("Authorization", "Bearer " + tok)] if tok else []
    try:
        r = http(int(port), "GET", path, headers, timeout=5.0)
        print(r.status)
    except (OSError, EOFError, ValueError):
        print("000")
    return 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "serve":
        return serve()
    if len(argv) in (4, 5) and argv[1] == "get":
        return get(*argv[2:])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
