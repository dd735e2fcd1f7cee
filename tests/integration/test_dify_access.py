"""Issue #17: per-app access lists (PORTCULLIS_DIFY_ACCESS, the `data:`
section) through the proxy, rules/dify.yaml configured by Dify's own
environment, on Dify's real main schema (tests/fixtures/dify-{schema,data}-
main.{pg,mysql}.sql) in a real PostgreSQL and a real MariaDB, each with the
people below added to the fixture's (rows of this test only: each dialect
runs its own server).

The oracle is written from the facts the rows are written from
(make_dify_data.shape_facts, EXTRA below) and from the access file as this
test writes it, never from the database:

  app      active member of the app's workspace, and: owner; admin unless
           the app's entry says admins: false; the person in charge of the
           app (maintainer, else creator); or listed in the app's members
           (an account id, or an email: PostgreSQL as Dify resolves a
           login's email - exactly, else in lower case when no account has
           the exact one -, MySQL without regard to case; never an
           account whose stored address is not ASCII)
  agent    the app rule for the agent's app, in the agent's workspace
  agent logs  owner; or for the agent's app and every chatflow app bound to
           the agent: admin of an app that keeps admins, in charge of it, or
           listed for it
  run      the app rule for the run's app
  dataset  owner or admin of its workspace: lists are per app
"""
import os
import re
import signal
import sys
import tempfile
import time
import unittest
import uuid

from harness import (PG, ROOT, MariaDB, Proxy, Upstream, free_port, http, metric_sum, mint, run_portcullis, scrape,
                     wait_until)
from fixture import ROLES, TENANT_A, TENANT_B, USERS

sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
import make_dify_data as data  # noqa: E402

PACK = os.path.join(ROOT, "rules", "dify.yaml")
SECRET = "sk-dify-access-test-0123456789abcdef"

# people added for this test: name -> (id, email as stored, status, {workspace: role})
EXTRA = {
    "admin2_a": ("a0000000-0000-4000-8000-000000000021", "admin2_a@example.com", "active", {TENANT_A: "admin"}),
    "editor2_a": ("a0000000-0000-4000-8000-000000000022", "editor2_a@example.com", "active", {TENANT_A: "editor"}),
    "editor3_a": ("a0000000-0000-4000-8000-000000000023", "editor3_a@example.com", "active", {TENANT_A: "editor"}),
    "member_b": ("b0000000-0000-4000-8000-000000000022", "member_b@example.com", "active", {TENANT_B: "normal"}),
    "pending_a": ("a0000000-0000-4000-8000-000000000024", "pending_a@example.com", "pending", {TENANT_A: "editor"}),
    "closed_a": ("a0000000-0000-4000-8000-000000000025", "closed_a@example.com", "closed", {TENANT_A: "editor"}),
    # stored in mixed case, as Dify stored addresses before 1.12.0 lower-cased new ones
    "legacy_a": ("a0000000-0000-4000-8000-000000000026", "Legacy_A@Example.com", "active", {TENANT_A: "editor"}),
    # not ASCII: U+0130 (I with a dot), which MySQL's LOWER() folds to "i", so that the address reads
    # editor2_a@example.com there (listed for several apps) though it is another account's
    "dotted_a": ("a0000000-0000-4000-8000-000000000027", "ed\u0130tor2_a@example.com", "active", {TENANT_A: "editor"}),
}
PEOPLE = {n: (i, "%s@example.com" % n, data.STATUS.get(n, "active"),
              {t: r for (t, u), r in ROLES.items() if u == n}) for n, i in USERS.items()}
PEOPLE.update(EXTRA)

F = data.shape_facts("main")
APP = {name: a["id"] for name, a in F["apps"].items()}
NORMAL_APP, EDITOR_APP, AGENT_APP, WORKFLOW_APP, HANDED, B_APP = (
    APP["a-normal-app"], APP["a-editor-app"], APP["a-agent-app"], APP["a-workflow-app"], APP["a-handed-down-app"],
    APP["b-app"])

# The access file of the matrix (and the explain and log checks).
ACCESS = """# written by tests/integration/test_dify_access.py
apps:
  %(normal)s:          # a-normal-app, normal_a's: the sensitive one
    members:
      - EDITOR2_A@Example.com                  # editor2_a, in another case
      - member_b@example.com                   # of workspace B only
      - %(banned)s     # banned_admin_a, banned
      - pending_a@example.com                  # not yet active
      - closed_a@example.com                   # closed
      - left_creator@example.com               # left workspace A
      - legacy_a@example.com                   # stored as Legacy_A@Example.com
    admins: false
  %(editor)s:          # a-editor-app, editor_a's
    members: [%(normal_upper)s, Legacy_A@Example.com]
  %(agent)s:          # a-agent-app: agent ae..01's app
    members: [editor2_a@example.com]
    admins: false
  %(workflow)s:          # a-workflow-app, admin_a's: binds agents ae..01, ae..03, ae..04
    members: [editor2_a@example.com, normal_a@example.com]
  %(b)s:          # b-app, workspace B's
    members: [editor2_a@example.com, owner_a@example.com]
""" % dict(normal=NORMAL_APP, banned=USERS["banned_admin_a"], editor=EDITOR_APP,
           normal_upper=USERS["normal_a"].upper(), agent=AGENT_APP, workflow=WORKFLOW_APP, b=B_APP)
ENTRIES = {
    NORMAL_APP: dict(members=["EDITOR2_A@Example.com", "member_b@example.com", USERS["banned_admin_a"],
                              "pending_a@example.com", "closed_a@example.com", "left_creator@example.com",
                              "legacy_a@example.com"], admins=False),
    EDITOR_APP: dict(members=[USERS["normal_a"].upper(), "Legacy_A@Example.com"]),
    AGENT_APP: dict(members=["editor2_a@example.com"], admins=False),
    WORKFLOW_APP: dict(members=["editor2_a@example.com", "normal_a@example.com"]),
    B_APP: dict(members=["editor2_a@example.com", "owner_a@example.com"]),
}

RUN_ID = "e0000000-0000-4000-8000-0000000000a1"
APP_ROUTES = [  # (method, path, rule): one of each family of app routes
    ("GET", "/console/api/apps/{app}/chat-conversations", "chat-conversations"),
    ("DELETE", "/console/api/apps/{app}/chat-conversations/c0000000-0000-4000-8000-0000000000a1", "chat-conversation"),
    ("GET", "/console/api/apps/{app}/messages/d0000000-0000-4000-8000-0000000000a1", "message"),
    ("GET", "/console/api/apps/{app}/workflow-app-logs", "workflow-app-logs"),
    ("GET", "/console/api/apps/{app}/workflow-runs/%s/node-executions" % RUN_ID, "workflow-run-node-executions"),
    ("GET", "/console/api/apps/{app}/workflows/published/runs/%s/node-outputs/events" % RUN_ID, "node-outputs"),
    ("POST", "/console/api/apps/{app}/workflow-runs/%s/agent-nodes/agent-node-1/sandbox/files/upload" % RUN_ID,
     "run-agent-node-sandbox"),
    ("GET", "/console/api/apps/{app}/annotations/a0a0a0a0-0000-4000-8000-0000000000a1/hit-histories",
     "annotation-hit-histories"),
    ("POST", "/console/api/apps/{app}/api-keys", "api-keys"),
    ("PATCH", "/console/api/apps/{app}/trace-config", "trace-config"),
    ("POST", "/console/api/apps/{app}/trace", "trace"),
    ("GET", "/console/api/apps/{app}/agent/drive/files", "app-agent-drive"),
    ("GET", "/console/api/apps/{app}/a-route-from-a-newer-dify", "unknown-app-route"),
]
AGENT_ROUTES = [
    ("GET", "/console/api/agent/{agent}/api-keys", "agent-api-keys"),
    ("GET", "/console/api/agent/{agent}/messages/d0000000-0000-4000-8000-0000000000a1", "agent-message"),
    ("POST", "/console/api/agent/{agent}/sandbox/files/upload", "agent-sandbox"),
    ("GET", "/console/api/agent/{agent}/drive/files", "agent-drive"),
    ("GET", "/console/api/agent/{agent}/a-route-from-a-newer-dify", "unknown-agent-route"),
]
AGENT_LOG_ROUTES = [
    ("GET", "/console/api/agent/{agent}/logs", "agent-logs-list"),
    ("GET", "/console/api/agent/{agent}/logs/c0000000-0000-4000-8000-0000000000a1/messages", "agent-log-messages"),
]


# ---- the oracle ----

def role_of(tenant, user):
    _, _, status, roles = PEOPLE[user]
    return roles.get(tenant) if status == "active" else None


def in_charge(app_name):
    a = F["apps"][app_name]
    return a["maintainer"] or a["creator"]


def app_name_of(app_id):
    return next(n for n, a in F["apps"].items() if a["id"] == app_id)


def listed(user, app_id, dialect, entries):
    uid, email, _, _ = PEOPLE[user]
    for m in entries.get(app_id, {}).get("members", []):
        if "@" not in m:
            if m.lower() == uid:
                return True
        elif not email.isascii():
            continue  # addresses are ASCII: one only folds onto an account's that is not
        elif dialect == "mysql":
            if m.lower() == email.lower():
                return True
        elif m == email or (m.lower() == email and not any(p[1] == m for p in PEOPLE.values())):
            return True
    return False


def restricted(app_id, entries):
    return entries.get(app_id, {}).get("admins", True) is False


def may_app(user, app_name, dialect, entries):
    a = F["apps"][app_name]
    role = role_of(a["tenant"], user)
    if role is None:
        return False
    return (role == "owner" or (role == "admin" and not restricted(a["id"], entries)) or in_charge(app_name) == user
            or listed(user, a["id"], dialect, entries))


def may_agent(user, agent, dialect, entries, logs=False):
    ag = F["agents"][agent]
    role = role_of(ag["tenant"], user)
    if role is None:
        return False
    if role == "owner":
        return True
    apps = [ag["app"]] + ([bound for aid, bound, _, _ in F["bindings"] if aid == agent] if logs else [])
    return all((role == "admin" and not restricted(APP[a], entries)) or in_charge(a) == user
               or listed(user, APP[a], dialect, entries) for a in apps)


def at(text, needle):
    """line:col where needle starts in text"""
    before = text[:text.index(needle)]
    return "%d:%d" % (before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1)


def token(user):
    return mint(SECRET, {"user_id": PEOPLE[user][0], "iss": "SELF_HOSTED", "sub": "Console API Passport"})


# ---- the servers ----

def sql_text(text, dialect):
    """A string literal; text that is not ASCII as its UTF-8 bytes, whatever the client's character set"""
    if text.isascii():
        return "'%s'" % text
    if dialect == "mysql":
        return "CONVERT(X'%s' USING utf8mb4)" % text.encode().hex()
    return "convert_from('\\x%s'::bytea, 'UTF8')" % text.encode().hex()


def people_sql(dialect):
    q = (lambda c: "`%s`" % c) if dialect == "mysql" else (lambda c: '"%s"' % c)
    accounts = ",\n".join("('%s', '%s', %s, '%s')" % (i, n, sql_text(e, dialect), s)
                           for n, (i, e, s, _) in EXTRA.items())
    joins = ",\n".join("('%s', '%s', '%s', '%s', true)" % (str(uuid.uuid5(uuid.NAMESPACE_URL, n + t)), t, i, r)
                       for n, (i, _, _, roles) in EXTRA.items() for t, r in roles.items())
    return ("INSERT INTO accounts (id, %s, email, %s) VALUES\n%s;\n"
            "INSERT INTO tenant_account_joins (id, tenant_id, account_id, %s, %s) VALUES\n%s;\n"
            % (q("name"), q("status"), accounts, q("role"), q("current"), joins))


def start_db(dialect):
    if dialect == "mysql":
        db = MariaDB(password="portcullis-pw")
        for part in ("schema", "data"):
            db.sql_file(os.path.join(ROOT, "tests", "fixtures", "dify-%s-main.mysql.sql" % part))
        db.sql(people_sql("mysql"))
        return db
    db = PG()
    for part in ("schema", "data"):
        db.psql_file(os.path.join(ROOT, "tests", "fixtures", "dify-%s-main.pg.sql" % part))
    db.psql(people_sql("pg"))
    return db


def pack_env(db, dialect, up_port, port, admin_port, access):
    env = {"PORTCULLIS_LISTEN": "127.0.0.1:%d" % port, "PORTCULLIS_UPSTREAM": "http://127.0.0.1:%d" % up_port,
           "PORTCULLIS_ADMIN_LISTEN": "127.0.0.1:%d" % admin_port, "DB_HOST": "127.0.0.1", "DB_PORT": str(db.port),
           "DB_DATABASE": "dify", "SECRET_KEY": SECRET, "PORTCULLIS_SECRET_FILE": "/nonexistent/.dify_secret_key",
           "PORTCULLIS_DIFY_ACCESS": access}
    if dialect == "mysql":
        env.update(DB_TYPE="mysql", DB_USERNAME=db.user, DB_PASSWORD=db.password)
    else:
        env.update(DB_USERNAME="postgres", DB_PASSWORD="")
    return env


class AccessCase:
    """The matrix and the file's life for one dialect (a mixin)."""
    dialect = None

    @classmethod
    def setUpClass(cls):
        cls.db = start_db(cls.dialect)
        cls.dir = tempfile.mkdtemp(prefix="pc-access-")
        cls.access = os.path.join(cls.dir, "access.yaml")
        with open(cls.access, "w") as f:
            f.write(ACCESS)
        cls.up = Upstream()
        # a day-long cache (the pack says 5 s): the matrix's cached round
        # must find every decision of its cold round, however slow the
        # machine (ThreadSanitizer), and no test of this class changes the
        # database under it
        with open(PACK) as f:
            text = f.read().replace("\n  ttl: 5s\n", "\n  ttl: 1d\n")
        assert "ttl: 1d" in text
        cls.proxy = cls.start_proxy(cls.access, text)

    @classmethod
    def start_proxy(cls, access, pack_text=None):
        port, admin = free_port(), free_port()
        if pack_text is None:
            with open(PACK) as f:
                pack_text = f.read()
        # one worker: one decision cache, so that a second request is answered from it
        pack_text = "workers: 1\n" + pack_text
        proxy = Proxy(pack_text, env=pack_env(cls.db, cls.dialect, cls.up.port, port, admin, access), start=False,
                      port=port)
        proxy.admin_port = admin
        proxy.start()
        if not wait_until(lambda: http(proxy.port, "GET", "/readyz").status == 200, timeout=15):
            raise AssertionError("not ready:\n" + proxy.stderr()[-2000:])
        return proxy

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        cls.up.close()
        cls.db.close()
        for name in os.listdir(cls.dir):
            os.unlink(os.path.join(cls.dir, name))
        os.rmdir(cls.dir)

    def env(self, access):
        return pack_env(self.db, self.dialect, self.up.port, free_port(), free_port(), access)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def request(self, proxy, method, target, user, rid=None):
        headers = [("Cookie", "access_token=" + token(user))] if user else []
        if rid:
            headers.append(("X-Request-Id", rid))
        return http(proxy.port, method, target, headers=headers).status

    # ---- the matrix ----

    def cases(self):
        """(method, target, user, rule, allowed) for every protected route
        family, every person, every resource."""
        out = []
        for app_name in ("a-normal-app", "a-editor-app", "a-agent-app", "a-workflow-app", "a-handed-down-app",
                         "b-app"):
            for method, path, rule in APP_ROUTES:
                for user in PEOPLE:
                    out.append((method, path.format(app=APP[app_name]), user, rule,
                                may_app(user, app_name, self.dialect, ENTRIES)))
        for agent in F["agents"]:
            for routes, logs in ((AGENT_ROUTES, False), (AGENT_LOG_ROUTES, True)):
                for method, path, rule in routes:
                    for user in PEOPLE:
                        out.append((method, path.format(agent=agent), user, rule,
                                    may_agent(user, agent, self.dialect, ENTRIES, logs)))
        for run, app_name in F["runs"].items():
            for user in PEOPLE:
                out.append(("GET", "/console/api/workflow/%s/pause-details" % run, user, "workflow-pause-details",
                            may_app(user, app_name, self.dialect, ENTRIES)))
        for ds in F["datasets"].values():
            for user in PEOPLE:
                out.append(("GET", "/console/api/datasets/%s/queries" % ds["id"], user, "dataset-queries",
                            role_of(ds["tenant"], user) in ("owner", "admin")))
        return out

    def test_every_protected_route_family_follows_the_list_for_every_person_cold_and_cached(self):
        cases = self.cases()
        # the matrix has every kind the issue names, allowed and refused
        kinds = {(c[2], c[4]) for c in cases}
        for user in ("owner_a", "admin_a", "admin2_a", "editor_a", "editor2_a", "normal_a", "legacy_a"):
            self.assertIn((user, True), kinds, user)
        for user in ("member_b", "banned_admin_a", "pending_a", "closed_a", "left_creator", "editor3_a", "dotted_a"):
            self.assertIn((user, False), kinds, user)
        # dotted_a's address is stored as written (its UTF-8 bytes), and MySQL's LOWER() folds it onto a listed one
        uid, email = PEOPLE["dotted_a"][:2]
        if self.dialect == "mysql":
            self.assertEqual(self.db.sql("SELECT HEX(email), LOWER(email) = 'editor2_a@example.com' FROM accounts "
                                         "WHERE id = '%s'" % uid).split(), [email.encode().hex().upper(), "1"])
        else:
            self.assertEqual(self.db.psql("SELECT encode(convert_to(email, 'UTF8'), 'hex') FROM accounts "
                                          "WHERE id = '%s'" % uid).strip(), email.encode().hex())
        before = len(self.up.settled_requests())
        for rnd in ("cold", "cached"):
            wrong = []
            for n, (method, target, user, rule, want) in enumerate(cases):
                got = self.request(self.proxy, method, target, user, rid="m-%s-%d" % (rnd, n))
                if got != (200 if want else 403):
                    wrong.append("%s %s as %s: %d, want %d" % (method, target, user, got, 200 if want else 403))
            self.assertEqual(wrong, [], "%s round, %d wrong of %d" % (rnd, len(wrong), len(cases)))
        # what reached Dify is exactly what was allowed, twice
        self.assertEqual(len(self.up.settled_requests()) - before, 2 * sum(1 for c in cases if c[4]))
        # each case was decided by the rule meant for it; the second round from the cache
        lines = self.proxy.access_lines(["m-cached-%d" % n for n in range(len(cases))], timeout=30)
        for n, (method, target, user, rule, want) in enumerate(cases):
            line = lines["m-cached-%d" % n]
            self.assertEqual(line["rule"], rule, target)
            self.assertEqual(line["cache"], "hit", target)

    def test_the_access_log_says_whether_an_entry_decided(self):
        def line(target, user, rid):
            self.request(self.proxy, "GET", target, user, rid=rid)
            return self.proxy.access_lines([rid])[rid]
        conv = "/console/api/apps/%s/chat-conversations"
        listed = line(conv % NORMAL_APP, "editor2_a", "log-listed")
        self.assertEqual((listed["decision"], listed["rule"], listed["data_decided"]),
                         ("allow", "chat-conversations", True))
        self.assertIn("policy listed: row", listed["reason"])
        off = line(conv % NORMAL_APP, "admin_a", "log-admin-off")
        self.assertEqual((off["decision"], off["data_decided"]), ("deny", True))
        owner = line(conv % NORMAL_APP, "owner_a", "log-owner")
        self.assertEqual((owner["decision"], owner["data_decided"]), ("allow", False))
        unlisted = line(conv % NORMAL_APP, "editor3_a", "log-unlisted")
        self.assertEqual((unlisted["decision"], unlisted["data_decided"]), ("deny", False))
        other = line(conv % B_APP, "editor2_a", "log-other-workspace")
        self.assertEqual((other["decision"], other["data_decided"]), ("deny", False))
        ds = line("/console/api/datasets/%s/queries" % F["datasets"]["a-dataset"]["id"], "admin_a", "log-dataset")
        self.assertEqual((ds["decision"], ds["data_decided"]), ("allow", None))  # binds no data

    def test_the_pack_checks_and_warns_about_an_app_the_database_lacks(self):
        gone = "a1a1a1a1-0000-4000-8000-0000000000ff"
        path = self.write("gone.yaml", ACCESS + "  %s:\n    members: [editor2_a@example.com]\n" % gone)
        line = ACCESS.count("\n") + 1
        r = run_portcullis("-t", "-c", PACK, env=self.env(path))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("all prepared against the database", r.stdout)
        warnings = [l for l in r.stderr.splitlines() if "is not in the database" in l]
        self.assertEqual(warnings, ["%s:%d:3: warning: data set 'access': apps %s is not in the database (deleted?); "
                                    "its entry decides nothing" % (path, line, gone)])


    def test_the_shipped_example_validates_and_names_its_apps_the_database_lacks(self):
        example = os.path.join(ROOT, "deploy", "dify", "portcullis-access.example.yaml")
        with open(example) as f:
            text = f.read()
        apps = re.findall(r"(?m)^  ([0-9a-f-]{36}):$", text)
        self.assertEqual(len(apps), 3)
        r = run_portcullis("-t", "-c", PACK, env=self.env(example))
        self.assertEqual(r.returncode, 0, r.stderr)
        warnings = [l for l in r.stderr.splitlines() if "is not in the database" in l]
        self.assertEqual(warnings, ["%s:%s: warning: data set 'access': apps %s is not in the database (deleted?); "
                                    "its entry decides nothing" % (example, at(text, a + ":"), a)
                                    for a in apps])


class TestAccessListsOnPostgreSQL(AccessCase, unittest.TestCase):
    dialect = "postgresql"

    def test_explain_names_the_entry_that_allowed_or_denied(self):
        line = ACCESS.splitlines().index("  %s:          # a-normal-app, normal_a's: the sensitive one" % NORMAL_APP) + 1
        target = "http://dify.test/console/api/apps/%s/chat-conversations" % NORMAL_APP
        for user, decision, verb, status in (("editor2_a", "allow", "allowed", 0), ("admin_a", "deny", "denied", 1)):
            r = run_portcullis("explain", "-c", PACK, "GET", target, "-H", "Cookie: access_token=" + token(user),
                               env=self.env(self.access))
            self.assertEqual(r.returncode, status, r.stdout + r.stderr)
            self.assertIn("data:        access: %s, 5 entries" % self.access, r.stdout)
            self.assertRegex(r.stdout, r"(?m)^decision:    %s " % decision)
            self.assertRegex(r.stdout, r"(?m)^data:        decided it: without the data, %s " %
                             ("deny" if decision == "allow" else "allow"))
            self.assertIn("data:        %s by %s:%d:3 (apps %s)" % (verb, self.access, line, NORMAL_APP), r.stdout)
            self.assertRegex(r.stdout, r":data\.access\.apps\.members=\(14 rows\)")
        r = run_portcullis("explain", "-c", PACK, "GET", target, "-H", "Cookie: access_token=" + token("owner_a"),
                           env=self.env(self.access))
        self.assertIn("data:        decided nothing: without the data the decision is the same", r.stdout)
        self.assertNotIn(" by %s:" % self.access, r.stdout)

    def test_a_bad_file_fails_check_with_file_line_col(self):
        uuid35 = "a1a1a1a1-0000-4000-8000-00000000004"
        cases = [
            ("not a uuid", "apps:\n  %s:\n    members: [x@example.com]\n" % uuid35, uuid35,
             "'%s' is not a UUID" % uuid35),
            ("not an email", "apps:\n  %s:\n    members: [editor2_a@example.com, someone, x@example]\n" % NORMAL_APP,
             "someone", "'someone' is not a UUID or an email address"),
            ("unknown key", "apps:\n  %s:\n    member: [editor2_a@example.com]\n" % NORMAL_APP, "member:",
             "unknown key 'member' in an entry of apps (did you mean 'members'?)"),
            ("duplicate app", "apps:\n  %s:\n    admins: false\n  %s: {}\n" % (NORMAL_APP, NORMAL_APP.upper()),
             NORMAL_APP.upper(), "duplicate apps entry '%s' (first at line 2)" % NORMAL_APP.upper()),
            ("unknown top-level key", "apps: {}\nagents: {}\n", "agents", "unknown key 'agents' in data set 'access'"),
            ("admins not a boolean", "apps:\n  %s:\n    admins: no\n" % NORMAL_APP, "no\n",
             "'no' is not true or false"),
            ("members not a list", "apps:\n  %s:\n    members: editor2_a@example.com\n" % NORMAL_APP, "editor2_a",
             "apps.members must be a list (of a UUID or an email address)"),
        ]
        for what, text, needle, message in cases:
            path = self.write("bad.yaml", text)
            r = run_portcullis("-t", "-c", PACK, env=self.env(path))
            self.assertEqual(r.returncode, 1, what + ": " + r.stdout + r.stderr)
            self.assertIn("%s:%s: %s" % (path, at(text, needle), message), r.stderr.splitlines(), what)
        # every problem at once: the second address of the not-an-email case too
        text = cases[1][1]
        r = run_portcullis("-t", "-c", PACK, env=self.env(self.write("bad.yaml", text)))
        self.assertIn("%s:%s: 'x@example' is not a UUID or an email address" % (os.path.join(self.dir, "bad.yaml"),
                                                                               at(text, "x@example")),
                      r.stderr.splitlines())
        # a YAML error, with libyaml's position
        r = run_portcullis("-t", "-c", PACK, env=self.env(self.write("bad.yaml", "apps:\n  - [\n")))
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"%s:\d+:\d+: " % re.escape(os.path.join(self.dir, "bad.yaml")))
        # a file named but absent: at the config's line that names it
        r = run_portcullis("-t", "-c", PACK, env=self.env(os.path.join(self.dir, "absent.yaml")))
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"%s:\d+:\d+: data set 'access': cannot read %s: No such file or directory" %
                         (re.escape(PACK), re.escape(os.path.join(self.dir, "absent.yaml"))))
        # empty: no file, today's behaviour; an empty file: no entries
        self.assertEqual(run_portcullis("-t", "-c", PACK, env=self.env("")).returncode, 0)
        self.assertEqual(run_portcullis("-t", "-c", PACK, env=self.env(self.write("empty.yaml", "# none yet\n")))
                         .returncode, 0)

    def test_a_reload_reads_the_file_again_and_a_bad_one_keeps_the_old_lists(self):
        # a day-long cache: what the second request gets can only come from the cache
        with open(PACK) as f:
            text = f.read().replace("\n  ttl: 5s\n", "\n  ttl: 1d\n")
        self.assertIn("ttl: 1d", text)
        access = self.write("reload.yaml", "apps:\n  %s:\n    members: [editor2_a@example.com]\n" % NORMAL_APP)
        proxy = self.start_proxy(access, text)
        try:
            conv = "/console/api/apps/%s/chat-conversations" % NORMAL_APP
            for n in (1, 2):
                self.assertEqual(self.request(proxy, "GET", conv, "editor2_a", rid="r-in-%d" % n), 200)
                self.assertEqual(self.request(proxy, "GET", conv, "editor3_a", rid="r-out-%d" % n), 403)
            lines = proxy.access_lines(["r-in-2", "r-out-2"])
            self.assertEqual((lines["r-in-2"]["cache"], lines["r-out-2"]["cache"]), ("hit", "hit"))
            # editor3_a in, editor2_a out: the next request sees it
            self.write("reload.yaml", "apps:\n  %s:\n    members: [editor3_a@example.com]\n" % NORMAL_APP)
            self.assertIn("reloaded: generation 2", proxy.reload())
            self.assertEqual(self.request(proxy, "GET", conv, "editor3_a"), 200)
            self.assertEqual(self.request(proxy, "GET", conv, "editor2_a"), 403)
            # a file that does not validate: the reload fails, says where, counts, and the lists stay
            before = scrape(proxy.admin_port)
            bad = "apps:\n  %s:\n    members: [editor3_a@example.com, not-an-email]\n" % NORMAL_APP
            self.write("reload.yaml", bad)
            outcome = proxy.reload()
            self.assertIn("reload failed, keeping generation 2", outcome)
            self.assertIn("%s:%s: 'not-an-email' is not a UUID or an email address" % (access, at(bad, "not-an")),
                          outcome)
            after = scrape(proxy.admin_port)
            self.assertEqual(metric_sum(after, "portcullis_config_reloads_total", result="failure"),
                             metric_sum(before, "portcullis_config_reloads_total", result="failure") + 1)
            self.assertEqual(metric_sum(after, "portcullis_config_generation"), 2)
            self.assertEqual(self.request(proxy, "GET", conv, "editor3_a"), 200)
            self.assertEqual(self.request(proxy, "GET", conv, "editor2_a"), 403)
            # the file removed from the config's environment is not possible at reload (env is the
            # process's); an emptied file takes every entry away: today's decisions
            self.write("reload.yaml", "")
            self.assertIn("reloaded: generation 3", proxy.reload())
            self.assertEqual(self.request(proxy, "GET", conv, "editor3_a"), 403)
            self.assertEqual(self.request(proxy, "GET", conv, "admin_a"), 200)
        finally:
            proxy.close()

    def test_a_missing_app_is_a_warning_at_start_up_and_reload(self):
        gone = "a1a1a1a1-0000-4000-8000-0000000000fe"
        access = self.write("gone-start.yaml", "apps:\n  %s:\n    admins: false\n" % gone)
        proxy = self.start_proxy(access)
        try:
            want = "%s:2:3: warning: data set 'access': apps %s is not in the database" % (access, gone)
            proxy.wait_stderr(want)
            self.write("gone-start.yaml", "apps:\n  %s:\n    admins: false\n  %s:\n    admins: false\n"
                       % (NORMAL_APP, gone))
            self.assertIn("reloaded: generation 2", proxy.reload())
            self.assertIn("%s:4:3: warning: data set 'access': apps %s" % (access, gone), proxy.stderr())
            self.assertEqual(self.request(proxy, "GET", "/console/api/apps/%s/chat-conversations" % NORMAL_APP,
                                          "admin_a"), 403)
        finally:
            proxy.close()


class TestAccessListsOnMySQL(AccessCase, unittest.TestCase):
    dialect = "mysql"


if __name__ == "__main__":
    unittest.main()
