"""Issue #5: rules/dify.yaml end to end, configured only by Dify's
environment variables, in front of an upstream that routes like gunicorn +
Werkzeug. Every covered route, for every role, in both workspaces."""
import os
import tempfile
import time
import unittest

from harness import PG, ROOT, Proxy, Upstream, dify_pg, free_port, http, mint, run_portcullis, wait_until
from fixture import APPS, CONVERSATION, MESSAGE, RUN, USERS, may_read_logs

PACK = os.path.join(ROOT, "rules", "dify.yaml")
SECRET = "sk-dify-pack-test-0123456789"

# (path suffix under /console/api/apps/<app>, protected methods)
ROUTES = [
    ("/chat-conversations", ["GET"]),
    ("/chat-conversations/{conversation}", ["GET", "DELETE"]),
    ("/completion-conversations", ["GET"]),
    ("/completion-conversations/{conversation}", ["GET", "DELETE"]),
    ("/chat-messages", ["GET"]),
    ("/messages/{message}", ["GET"]),
    ("/feedbacks/export", ["GET"]),
    ("/agent/logs", ["GET"]),
    ("/workflow-app-logs", ["GET"]),
    ("/workflow-archived-logs", ["GET"]),
    ("/workflow-runs", ["GET"]),
    ("/workflow-runs/count", ["GET"]),
    ("/workflow-runs/{run}", ["GET"]),
    ("/workflow-runs/{run}/node-executions", ["GET"]),
    ("/workflow-runs/{run}/export", ["GET"]),
    ("/advanced-chat/workflow-runs", ["GET"]),
    ("/advanced-chat/workflow-runs/count", ["GET"]),
    ("/conversation-variables", ["GET"]),
    ("/annotations/export", ["GET"]),
    ("/api-keys", ["GET", "POST"]),
    ("/trace-config", ["GET", "POST", "PATCH", "DELETE"]),
]
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def dify_token(user, **extra):
    claims = {"user_id": USERS[user], "iss": "SELF_HOSTED", "sub": "Console API Passport"}
    claims.update(extra)
    return mint(SECRET, claims)


def dify_env(pg, up, port, admin_port, secret=SECRET):
    return {
        "PORTCULLIS_LISTEN": "127.0.0.1:%d" % port,
        "PORTCULLIS_UPSTREAM": "http://127.0.0.1:%d" % up.port,
        "PORTCULLIS_ADMIN_LISTEN": "127.0.0.1:%d" % admin_port,
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(pg.port),
        "DB_USERNAME": "postgres",
        "DB_PASSWORD": "",
        "DB_DATABASE": "dify",
        "SECRET_KEY": secret,
    }


class DifyPackCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = dify_pg()
        cls.up = Upstream(dify=True)
        port, admin = free_port(), free_port()
        with open(PACK) as f:
            text = f.read()
        cls.proxy = Proxy(text, env=dify_env(cls.pg, cls.up, port, admin), start=False, port=port)
        cls.proxy.admin_port = admin
        cls.proxy.start()
        wait_until(lambda: http(cls.proxy.port, "GET", "/readyz").status == 200, timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        cls.up.close()

    def call(self, method, target, user=None, via="cookie"):
        headers = []
        if user is not None:
            if via == "cookie":
                headers.append(("Cookie", "access_token=" + dify_token(user)))
            else:
                headers.append(("Authorization", "Bearer " + dify_token(user)))
        return http(self.proxy.port, method, target, headers=headers)


def fill(suffix, app):
    return suffix.format(conversation=CONVERSATION.get(app, CONVERSATION["a-editor-app"]),
                         message=MESSAGE.get(app, MESSAGE["a-editor-app"]),
                         run=RUN.get(app, RUN["a-editor-app"]))


class TestEveryRouteEveryRole(DifyPackCase):
    def test_every_covered_route_for_every_role_in_both_workspaces(self):
        checked = 0
        for suffix, methods in ROUTES:
            for app in ("a-editor-app", "b-app", "a-orphan-app", "a-legacy-app"):
                target = "/console/api/apps/%s%s" % (APPS[app][0], fill(suffix, app))
                for user in USERS:
                    for method in methods + (["HEAD"] if "GET" in methods else []):
                        want = 200 if may_read_logs(user, app) else 403
                        r = self.call(method, target, user)
                        self.assertEqual(r.status, want, "%s %s as %s" % (method, target, user))
                        checked += 1
                    # no credential: 401, never forwarded
                    self.assertEqual(self.call(methods[0], target).status, 401)
        self.assertGreater(checked, 1000)

    def test_the_upstream_routes_exactly_the_app_that_was_authorized(self):
        self.up.clear()
        app = APPS["a-editor-app"][0]
        for target in ("/console/api/apps/%s/chat-conversations" % app.upper(),
                       "/console/api/%%61pps/%s/chat-conversations" % app,
                       "//console/api/apps/%s/chat-conversations" % app):
            r = self.call("GET", target, "owner_a")
            self.assertEqual(r.status, 200, target)
            routed = r.json()
            self.assertEqual(routed["route"], "chat-conversations")
            self.assertEqual(routed["params"]["app_id"], app)
            self.assertEqual(self.call("GET", target, "owner_b").status, 403, target)

    def test_unprotected_methods_and_routes_are_forwarded(self):
        app = APPS["b-app"][0]
        # POST chat-messages is the debugger: open to editors
        r = self.call("POST", "/console/api/apps/%s/chat-messages" % app, "normal_a")
        self.assertEqual((r.status, r.json()["route"]), (200, "chat-messages"))
        # routes outside the table go through untouched, credentials and all
        r = self.call("GET", "/console/api/apps/%s" % app, "normal_a")
        self.assertEqual((r.status, r.json()["route"]), (200, "app"))
        self.assertEqual(self.call("GET", "/console/api/setup").status, 404)  # forwarded; the upstream 404s

    def test_pause_details_are_authorized_through_the_workflow_runs_app(self):
        for app in ("a-editor-app", "b-app"):
            run = RUN[app]
            for spelling in (run, run.upper(), run.replace("-", ""), "{%s}" % run):
                target = "/console/api/workflow/%s/pause-details" % spelling
                for user in USERS:
                    want = 200 if may_read_logs(user, app) else 403
                    self.assertEqual(self.call("GET", target, user).status, want, (target, user))

    def test_pause_details_with_a_run_id_that_is_no_uuid_is_refused(self):
        self.up.clear()
        r = self.call("GET", "/console/api/workflow/not-a-uuid/pause-details", "owner_a")
        self.assertEqual(r.status, 503)
        self.assertEqual(self.up.requests(), [])

    def test_authorization_header_works_like_the_cookie(self):
        app = APPS["a-editor-app"][0]
        target = "/console/api/apps/%s/chat-conversations" % app
        self.assertEqual(self.call("GET", target, "admin_a", via="header").status, 200)
        self.assertEqual(self.call("GET", target, "normal_a", via="header").status, 403)

    def test_t_validates_the_pack_against_the_database(self):
        env = dify_env(self.pg, self.up, free_port(), free_port())
        r = run_portcullis("-t", "-c", PACK, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("all prepared against the database", r.stdout)


class TestDatabasePassword(unittest.TestCase):
    def test_a_password_with_spaces_and_quotes_needs_no_escaping(self):
        password = "p w'\"x\\y=z"
        pg = PG(password=password)
        for part in ("schema", "data"):
            pg.psql_file(os.path.join(ROOT, "tests", "fixtures", "dify-%s-main.pg.sql" % part))
        up = Upstream(dify=True)
        port, admin = free_port(), free_port()
        env = dify_env(pg, up, port, admin)
        env["DB_PASSWORD"] = password
        with open(PACK) as f:
            p = Proxy(f.read(), env=env, start=False, port=port)
        p.start()
        try:
            self.assertTrue(wait_until(lambda: http(port, "GET", "/readyz").status == 200, timeout=10), p.stderr())
            app = APPS["a-editor-app"][0]
            r = http(port, "GET", "/console/api/apps/%s/chat-conversations" % app,
                     headers=[("Cookie", "access_token=" + dify_token("owner_a"))])
            self.assertEqual(r.status, 200)
            env["DB_PASSWORD"] = "wrong"
            r = run_portcullis("-t", "-c", PACK, env=env)
            self.assertIn("password authentication failed", r.stderr)
        finally:
            p.close()
            up.close()
            pg.close()


class TestSecretFile(unittest.TestCase):
    def test_an_empty_secret_key_falls_back_to_difys_generated_key_file(self):
        pg = dify_pg()
        up = Upstream(dify=True)
        d = tempfile.mkdtemp()
        key = os.path.join(d, ".dify_secret_key")
        with open(key, "w") as f:
            f.write("generated-" + "k" * 54 + "\n")  # Dify writes token_urlsafe(48) and a newline
        port, admin = free_port(), free_port()
        env = dify_env(pg, up, port, admin, secret="")
        env["PORTCULLIS_SECRET_FILE"] = key
        with open(PACK) as f:
            p = Proxy(f.read(), env=env, start=False, port=port)
        p.start()
        try:
            app = APPS["a-editor-app"][0]
            tok = mint("generated-" + "k" * 54, {"user_id": USERS["owner_a"], "iss": "SELF_HOSTED"})
            self.assertTrue(wait_until(lambda: http(port, "GET", "/readyz").status == 200, timeout=10))
            r = http(port, "GET", "/console/api/apps/%s/chat-conversations" % app, headers=[("Cookie", "access_token=" + tok)])
            self.assertEqual(r.status, 200)
            bad = dify_token("owner_a")  # signed with a key Dify is not using
            r = http(port, "GET", "/console/api/apps/%s/chat-conversations" % app, headers=[("Cookie", "access_token=" + bad)])
            self.assertEqual(r.status, 401)
        finally:
            p.close()
            up.close()

    def test_no_secret_at_all_is_a_config_error(self):
        env = {"SECRET_KEY": "", "PORTCULLIS_SECRET_FILE": "/nonexistent/.dify_secret_key", "DB_HOST": "127.0.0.1",
               "DB_PORT": "1"}
        r = run_portcullis("-t", "-c", PACK, env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("secret_file /nonexistent/.dify_secret_key", r.stderr)


if __name__ == "__main__":
    unittest.main()
