"""Issue #14: rules/dify.yaml in front of a MySQL-backed Dify (DB_TYPE=mysql),
configured only by Dify's own environment, on Dify's real MySQL schema
(tests/fixtures/dify-{schema,data}-<shape>.mysql.sql, 1.10.1 and main) in a
real MariaDB: the same role matrix as on PostgreSQL - an owner of another
workspace, a creator who left, an app without creator, a banned admin,
maintainers, agents and the chatflows that bind them, knowledge bases, and
pause-details looked up by the raw run id as Dify's MySQL lookup does.

The oracle is written from the facts the fixture's rows are written from
(tests/fixtures/make_dify_data.py), never from the database:
  app      owner or admin of the app's workspace, or the person in charge of
           the app (apps.maintainer, else created_by; created_by where the
           schema has no maintainer) while an active member of it
  agent    owner or admin of agents.tenant_id, or the person in charge of the
           agent's app (agents.app_id); nobody where there are no agents
  agent logs  as agent, and every app bound to the agent must be theirs too
  dataset  owner or admin of the dataset's workspace
  run      the app rule, for the run's app
A banned account never passes."""
import os
import re
import sys
import unittest

from harness import ROOT, Proxy, Upstream, dify_mariadb, free_port, http, mint, run_portcullis, wait_until
from fixture import APPS, ROLES, RUN, TENANT_A, TENANT_B, USERS

sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
import make_dify_data as data  # noqa: E402

PACK = os.path.join(ROOT, "rules", "dify.yaml")
SECRET = "sk-dify-mysql-pack-test-0123456789"
DATASETS = {"da000000-0000-4000-8000-0000000000a1": TENANT_A, "da000000-0000-4000-8000-0000000000b1": TENANT_B}
WORKFLOW_RUN = "e0000000-0000-4000-8000-0000000000a8"  # a-workflow-app's run (shapes with agents)
# workflow_agent_node_bindings of the shapes with agents: (agent, bound app)
BINDINGS = [("ae000000-0000-4000-8000-000000000003", "a-workflow-app"),
            ("ae000000-0000-4000-8000-000000000004", "a-workflow-app"),
            ("ae000000-0000-4000-8000-000000000001", "a-workflow-app")]


def facts(shape):
    """What the rows of shape say, from make_dify_data's own tables."""
    f = data.SHAPES[(shape, "mysql")]
    apps = {name: dict(id=i, tenant=t, creator=c, maintainer=data.MAINTAINER.get(name, c))
            for name, (i, t, c) in APPS.items()}
    if f["maintainer"]:
        for name, (i, t, c, m) in data.EXTRA_MAINTAINED.items():
            apps[name] = dict(id=i, tenant=t, creator=c, maintainer=m)
    agents = {}
    if f["agents"]:
        for name, (i, t, c, _) in data.EXTRA_APPS.items():
            if name != "a-hidden-backing-app" or f["backing"]:
                apps[name] = dict(id=i, tenant=t, creator=c, maintainer=c)
        for (aid, tenant, _, _, _, app, _, _, _, _, _) in data.AGENTS:
            agents[aid] = dict(tenant=tenant, app=app)
    runs = {RUN[a]: a for a in RUN}
    if f["agents"]:
        runs[WORKFLOW_RUN] = "a-workflow-app"
    return dict(has_maintainer=f["maintainer"], apps=apps, agents=agents, runs=runs,
                bindings=BINDINGS if f["agents"] else [])


def role_of(tenant, user):
    return ROLES.get((tenant, user)) if data.STATUS.get(user, "active") == "active" else None


def in_charge(F, app):
    a = F["apps"][app]
    return (a["maintainer"] or a["creator"]) if F["has_maintainer"] else a["creator"]


def may_app(F, user, app):
    role = role_of(F["apps"][app]["tenant"], user)
    return role in ("owner", "admin") or (role is not None and in_charge(F, app) == user)


def may_agent(F, user, agent, logs=False):
    ag = F["agents"].get(agent)
    if ag is None:
        return False
    role = role_of(ag["tenant"], user)
    if role in ("owner", "admin"):
        return True
    if role is None or F["apps"][ag["app"]]["tenant"] != ag["tenant"] or in_charge(F, ag["app"]) != user:
        return False
    return not logs or all(in_charge(F, bound) == user for aid, bound in F["bindings"] if aid == agent)


def token(user):
    return mint(SECRET, {"user_id": USERS[user], "iss": "SELF_HOSTED", "sub": "Console API Passport"})


def dify_env(my, up, port, admin_port, db_type="mysql"):
    """Dify's own .env for a MySQL-backed Dify (DB_TYPE and the DB_*), and
    where portcullis listens."""
    return {
        "PORTCULLIS_LISTEN": "127.0.0.1:%d" % port,
        "PORTCULLIS_UPSTREAM": "http://127.0.0.1:%d" % up.port,
        "PORTCULLIS_ADMIN_LISTEN": "127.0.0.1:%d" % admin_port,
        "DB_TYPE": db_type,
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(my.port),
        "DB_USERNAME": my.user,
        "DB_PASSWORD": my.password,
        "DB_DATABASE": "dify",
        "SECRET_KEY": SECRET,
    }


class PackCase:
    """The matrix for one shape (a mixin: each shape is a TestCase below)."""
    shape = None
    db_type = "mysql"

    @classmethod
    def setUpClass(cls):
        cls.F = facts(cls.shape)
        cls.my = dify_mariadb(cls.shape)
        cls.up = Upstream()
        port, admin = free_port(), free_port()
        with open(PACK) as f:
            text = f.read()
        cls.proxy = Proxy(text, env=dify_env(cls.my, cls.up, port, admin, cls.db_type), start=False, port=port)
        cls.proxy.admin_port = admin
        cls.proxy.start()
        wait_until(lambda: http(cls.proxy.port, "GET", "/readyz").status == 200, timeout=15)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        cls.up.close()

    def get(self, target, user, method="GET"):
        headers = [("Cookie", "access_token=" + token(user))] if user else []
        return http(self.proxy.port, method, target, headers=headers)

    def check(self, target, want, user, method="GET"):
        self.assertEqual(self.get(target, user, method).status, 200 if want else 403, "%s %s as %s" % (method, target, user))

    def test_app_routes_for_every_role_and_app(self):
        for app, a in self.F["apps"].items():
            for user in USERS:
                want = may_app(self.F, user, app)
                self.check("/console/api/apps/%s/chat-conversations" % a["id"], want, user)
                self.check("/console/api/apps/%s/api-keys" % a["id"], want, user, "POST")
            self.assertEqual(self.get("/console/api/apps/%s/chat-conversations" % a["id"], None).status, 401)

    def test_agent_routes_for_every_role_and_agent(self):
        agents = [aid for (aid, *_rest) in data.AGENTS]  # ids that exist nowhere on a shape without agents
        for agent in agents:
            for user in USERS:
                self.check("/console/api/agent/%s/api-keys" % agent, may_agent(self.F, user, agent), user)
                self.check("/console/api/agent/%s/logs" % agent, may_agent(self.F, user, agent, logs=True), user)

    def test_dataset_queries_for_the_owner_and_admins_of_its_workspace_only(self):
        for ds, tenant in DATASETS.items():
            for user in USERS:
                self.check("/console/api/datasets/%s/queries" % ds, role_of(tenant, user) in ("owner", "admin"), user)

    def test_pause_details_compare_the_raw_run_id_as_dify_on_mysql_does(self):
        # Dify: db.session.get(WorkflowRun, <the raw string>), a string
        # comparison with CHAR(36) in a case-insensitive collation
        before = len(self.up.requests())
        for run, app in self.F["runs"].items():
            for user in USERS:
                want = may_app(self.F, user, app)
                for spelling in (run, run.upper()):
                    self.check("/console/api/workflow/%s/pause-details" % spelling, want, user)
                # spellings PostgreSQL's uuid parser takes and MySQL's lookup
                # does not: no run, nothing forwarded
                for spelling in (run.replace("-", ""), "{%s}" % run):
                    self.check("/console/api/workflow/%s/pause-details" % spelling, False, user)
        allowed = sum(2 for run, app in self.F["runs"].items() for u in USERS if may_app(self.F, u, app))
        self.assertEqual(len(self.up.settled_requests()) - before, allowed)
        self.check("/console/api/workflow/not-a-uuid/pause-details", False, "owner_a")

    def test_the_pack_checks_against_this_schema(self):
        env = dify_env(self.my, self.up, free_port(), free_port(), self.db_type)
        r = run_portcullis("-t", "-c", PACK, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("all prepared against the database", r.stdout)
        self.assertNotIn("schema version", r.stderr)  # a release the pack knows
        left_out = "policy 'agent_owner' is left out: the database lacks agents"
        if self.F["agents"]:
            self.assertNotIn(left_out, r.stderr)
        else:
            self.assertIn(left_out, r.stderr)


    def test_connections_read_the_schema_and_its_version_as_on_postgresql(self):
        # the report the admin listener serves: what the start-up check and
        # every connection read (information_schema, alembic_version)
        status = http(self.proxy.admin_port, "GET", "/status").json()
        with open(os.path.join(ROOT, "tests", "fixtures", "dify-schema-%s.mysql.sql" % self.shape)) as f:
            head = re.search(r"INSERT INTO `?alembic_version`? .*?VALUES \('([0-9a-f]+)'\)", f.read()).group(1)
        self.assertEqual(status["schema"], {"version": head, "known": True, "error": None})
        by_name = {p["name"]: p for p in status["policies"]}
        for name in ("agent_owner", "agent_admin", "agent_creator", "agent_listed", "agent_logs_admin",
                     "agent_logs_creator", "agent_logs_listed"):
            self.assertEqual(by_name[name]["available"], bool(self.F["agents"]), name)
        # the creator policies run their maintainer variant where there is one
        self.assertEqual(by_name["creator"]["variant"], 1 if self.F["has_maintainer"] else 2)
        self.assertEqual(by_name["run_creator"]["variant"], 1 if self.F["has_maintainer"] else 2)


class TestPackOnMySQL1_10_1(PackCase, unittest.TestCase):
    """The first Dify with DB_TYPE=mysql: no apps.maintainer, no agents."""
    shape = "1.10.1"


class TestPackOnMySQLMain(PackCase, unittest.TestCase):
    """Dify main (1.16.0-rc1): maintainers, agents, workflow agent bindings."""
    shape = "main"


class TestPackOnOceanBaseDbType(PackCase, unittest.TestCase):
    """DB_TYPE=oceanbase (and seekdb) choose the same driver; the server
    here is MariaDB with Dify's main schema."""
    shape = "main"
    db_type = "oceanbase"

    def test_seekdb_is_the_mysql_driver_too(self):
        env = dify_env(self.my, self.up, free_port(), free_port(), "seekdb")
        r = run_portcullis("-t", "-c", PACK, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("all prepared against the database", r.stdout)


class TestPackPolicyTextsPerDialect(unittest.TestCase):
    def test_every_pack_policy_has_sql_for_both_dialects(self):
        env = {"SECRET_KEY": SECRET, "DB_HOST": "127.0.0.1", "DB_PORT": "1"}
        for db_type in ("postgresql", "mysql"):
            env["DB_TYPE"] = db_type
            r = run_portcullis("-t", "-c", PACK, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)  # loads; the database is unreachable: a warning
            self.assertIn("NOT checked", r.stdout)
        env["DB_TYPE"] = "sqlite"
        r = run_portcullis("-t", "-c", PACK, env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("database.driver must be one of", r.stderr)


if __name__ == "__main__":
    unittest.main()
