#!/usr/bin/env python3
"""`make run`: portcullis with the Dify rule pack, on a throwaway PostgreSQL
with Dify's real schema (two workspaces of members), in front of Dify's own
console routing (Flask, Werkzeug and gunicorn with Dify's route strings:
tests/lib/dify_app.py; each route answers which Dify route and ids it
served). Prints curl commands with tokens minted for the demo users, then
serves until Ctrl-C."""
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

from harness import BIN, PG, DifyApi, wait_port  # noqa: E402
from fixture import APPS, USERS  # noqa: E402

PORT = int(os.environ.get("PORT", "8080"))
ADMIN = int(os.environ.get("ADMIN_PORT", "9901"))
SECRET = "demo-secret-key-not-for-production"


def token(user):
    out = subprocess.run([BIN, "token", "--secret", SECRET, "--claim", "user_id=" + USERS[user],
                          "--claim", "iss=SELF_HOSTED", "--claim", "sub=Console API Passport", "--ttl", "12h"],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def main():
    print("starting a throwaway PostgreSQL with the Dify-shaped demo schema...", flush=True)
    pg = PG()
    for part in ("schema", "data"):  # Dify's real schema (main) and the demo people
        pg.psql_file(os.path.join(ROOT, "tests", "fixtures", "dify-%s-main.pg.sql" % part))
    pg.psql_file(os.path.join(ROOT, "policies", "invalidate.sql"))
    print("starting Dify's console routes under gunicorn...", flush=True)
    up = DifyApi(version="1.16.0-rc1", workers=2)
    env = dict(os.environ,
               PORTCULLIS_LISTEN="127.0.0.1:%d" % PORT,
               PORTCULLIS_UPSTREAM="http://127.0.0.1:%d" % up.port,
               PORTCULLIS_ADMIN_LISTEN="127.0.0.1:%d" % ADMIN,
               DB_HOST="127.0.0.1", DB_PORT=str(pg.port), DB_USERNAME="postgres", DB_PASSWORD="",
               DB_DATABASE="dify", SECRET_KEY=SECRET)
    config = os.path.join(ROOT, "rules", "dify.yaml")
    proxy = subprocess.Popen([BIN, "-c", config], env=env)
    try:
        wait_port(PORT, proc=proxy)
        app_a, app_b = APPS["a-editor-app"][0], APPS["b-app"][0]
        url_a = "http://127.0.0.1:%d/console/api/apps/%s/chat-conversations" % (PORT, app_a)
        url_b = "http://127.0.0.1:%d/console/api/apps/%s/chat-conversations" % (PORT, app_b)
        t_owner, t_member, t_other = token("owner_a"), token("normal_a"), token("owner_b")
        print("""
portcullis is listening on 127.0.0.1:%(port)d (rules/dify.yaml), metrics on 127.0.0.1:%(admin)d.
Workspace A: owner_a (owner), normal_a (plain member). Workspace B: owner_b (owner;
only a plain member of A). Try:

# 200: the owner of workspace A reads an app's conversation logs
curl -i -b 'access_token=%(owner)s' %(url_a)s

# 403: a plain member of the same workspace
curl -i -b 'access_token=%(member)s' %(url_a)s

# 403: the owner of *another* workspace ("owner somewhere" is not "owner here")
curl -i -b 'access_token=%(other)s' %(url_a)s

# 200: ...who may of course read their own workspace's logs
curl -i -H 'Authorization: Bearer %(other)s' %(url_b)s

# 401: no credential, or two credentials naming different users
curl -i %(url_a)s
curl -i -b 'access_token=%(owner)s' -H 'Authorization: Bearer %(member)s' %(url_a)s

# why was the member denied? one command:
DB_HOST=127.0.0.1 DB_PORT=%(pgport)d SECRET_KEY=%(secret)s \\
  %(bin)s explain -c %(config)s GET %(url_a)s -H 'Cookie: access_token=%(member)s'

# the pack's decision tests, every rule covered, against this database:
DB_HOST=127.0.0.1 DB_PORT=%(pgport)d SECRET_KEY=%(secret)s \\
  %(bin)s test -c %(config)s --require-coverage %(tests)s

# revocation is instant (policies/invalidate.sql is installed): demote the owner
psql -h 127.0.0.1 -p %(pgport)d -U postgres dify -c "UPDATE tenant_account_joins SET role='normal' WHERE account_id='%(owner_id)s'"

curl -s http://127.0.0.1:%(admin)d/metrics | grep portcullis_requests_total

Ctrl-C stops everything and removes the database.
""" % dict(port=PORT, admin=ADMIN, owner=t_owner, member=t_member, other=t_other, url_a=url_a, url_b=url_b,
           bin=BIN, config=config, tests=os.path.join(ROOT, "rules", "dify.test.yaml"), pgport=pg.port, secret=SECRET, owner_id=USERS["owner_a"]), flush=True)
        signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        proxy.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proxy.poll() is None:
            proxy.send_signal(signal.SIGTERM)
            try:
                proxy.wait(10)
            except subprocess.TimeoutExpired:
                proxy.kill()
        up.close()
        pg.close()
        print("stopped; the demo database is gone.")


if __name__ == "__main__":
    main()
