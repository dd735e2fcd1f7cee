"""Policies that declare what they need from the schema, and the schema
version check (database.schema_version): a rule pack that serves several
versions of its application starts on each, leaves out what the database
cannot run, says so, and never falls open."""
import json
import os
import unittest

from harness import PG, ROOT, Proxy, Upstream, http, metric_sum, mint, run_portcullis, scrape, wait_until
from fixture import APPS, USERS, policies_yaml

SECRET = "schema-test-secret"
AGENT = "ab000000-0000-4000-8000-000000000001"

CONFIG = """
listen: 127.0.0.1:{port}
upstream: http://127.0.0.1:{upstream}
workers: 2
admin_listen: 127.0.0.1:{admin_port}
identity:
  secret: "%s"
  subject_claim: user_id
  sources: ["header:Authorization"]
database:
  url: "{dburl}"
  pool: 2
  schema_version:
    query: SELECT version_num FROM alembic_version
    known: [known-rev-1, known-rev-2]
cache:
  ttl: 0s
policies:
%s  agent_owner:
    requires: [agents, agents.app_id]
    sql: |
      SELECT 1 FROM agents g
        JOIN tenant_account_joins j ON j.tenant_id = g.tenant_id
       WHERE g.id = CAST(:agent_id AS uuid) AND j.account_id::text = :subject AND j.role = 'owner'
  creator:
    variants:
      - requires: [apps.maintainer]
        sql: SELECT 1 FROM apps WHERE id = :app_id AND maintainer::text = :subject
      - sql: SELECT 1 FROM apps WHERE id = :app_id AND created_by::text = :subject
rules:
  - name: agent-logs
    path: /agent/{agent_id:uuid}/logs
    allow: [agent_owner]
  - name: app-logs
    path: /apps/{app_id:uuid}/logs
    allow: [agent_owner_app, owner, creator]
  - name: open
    path: /**
    action: forward
""" % (SECRET, policies_yaml("owner"))

# a policy that is left out beside ones that are not, on one rule
CONFIG = CONFIG.replace("  agent_owner:\n", """  agent_owner_app:
    requires: [agents]
    sql: SELECT 1 FROM agents WHERE app_id = :app_id AND :subject = 'nobody'
  agent_owner:
""", 1)


def auth(user):
    return [("Authorization", "Bearer " + mint(SECRET, {"user_id": USERS[user]}))]


def available(proxy):
    return {l["policy"]: int(v) for n, l, v in scrape(proxy.admin_port) if n == "portcullis_policy_available"}


class SchemaCase(unittest.TestCase):
    """A private database shaped like tests/fixtures/dify.sql: apps without
    maintainer, no agents table, an alembic_version at 'unknown-rev'."""

    def setUp(self):
        self.pg = PG(os.path.join(ROOT, "tests", "fixtures", "dify.sql"))
        self.pg.psql("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);"
                     "INSERT INTO alembic_version VALUES ('unknown-rev')")
        self.up = Upstream()
        self.proxy = Proxy(CONFIG, upstream=self.up.port, dburl=self.pg.url)
        wait_until(lambda: http(self.proxy.port, "GET", "/readyz").status == 200, timeout=15)

    def tearDown(self):
        self.proxy.close()
        self.up.close()
        self.pg.close()


class TestLeftOutPolicies(SchemaCase):
    def test_a_rule_whose_only_policy_the_schema_lacks_denies_and_never_forwards(self):
        for user in ("owner_a", "admin_a", "owner_b"):
            r = http(self.proxy.port, "GET", "/agent/%s/logs" % AGENT, headers=auth(user) + [("X-Request-Id", "lo-" + user)])
            self.assertEqual(r.status, 403, user)
        self.assertEqual(self.up.settled_requests(), [])
        line = self.proxy.access_lines(["lo-owner_a"])["lo-owner_a"]
        self.assertEqual(line["decision"], "deny")
        self.assertEqual(line["reason"], "policy agent_owner: left out (the database lacks agents)")

    def test_other_policies_of_a_rule_still_decide(self):
        app = APPS["a-editor-app"][0]
        self.assertEqual(http(self.proxy.port, "GET", "/apps/%s/logs" % app, headers=auth("owner_a")).status, 200)
        self.assertEqual(http(self.proxy.port, "GET", "/apps/%s/logs" % app, headers=auth("normal_a")).status, 403)
        # the creator policy runs the variant this schema has: created_by
        self.assertEqual(http(self.proxy.port, "GET", "/apps/%s/logs" % app, headers=auth("editor_a")).status, 200)

    def test_left_out_policies_are_reported_at_start_by_t_in_metrics_and_on_status(self):
        self.proxy.wait_stderr("policy 'agent_owner' is left out: the database lacks agents")
        self.assertIn("policy 'agent_owner_app' is left out: the database lacks agents", self.proxy.stderr())
        r = run_portcullis("-t", "-c", self.proxy.config_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stderr, r"portcullis\.yaml:\d+:\d+: warning: policy 'agent_owner' is left out: "
                                   r"the database lacks agents")
        self.assertEqual(available(self.proxy), {"owner": 1, "agent_owner_app": 0, "agent_owner": 0, "creator": 1})
        status = http(self.proxy.admin_port, "GET", "/status").json()
        by_name = {p["name"]: p for p in status["policies"]}
        self.assertEqual(by_name["agent_owner"], {"name": "agent_owner", "available": False, "missing": "agents"})
        self.assertEqual(by_name["creator"], {"name": "creator", "available": True, "variant": 2})

    def test_a_schema_that_gains_what_a_policy_needs_is_used_after_a_reload(self):
        self.pg.psql("ALTER TABLE apps ADD COLUMN maintainer uuid;"
                     "UPDATE apps SET maintainer = created_by;"
                     "UPDATE apps SET maintainer = '%s' WHERE id = '%s';"
                     "CREATE TABLE agents (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, app_id uuid);"
                     "INSERT INTO agents VALUES ('%s', '%s', '%s')"
                     % (USERS["normal_a"], APPS["a-editor-app"][0], AGENT, APPS["a-editor-app"][1],
                        APPS["a-editor-app"][0]))
        self.assertIn("reloaded", self.proxy.reload())
        self.assertTrue(wait_until(lambda: available(self.proxy).get("agent_owner") == 1, timeout=15))
        self.assertTrue(wait_until(lambda: http(self.proxy.port, "GET", "/agent/%s/logs" % AGENT,
                                                headers=auth("owner_a")).status == 200, timeout=15))
        self.assertEqual(http(self.proxy.port, "GET", "/agent/%s/logs" % AGENT, headers=auth("owner_b")).status, 403)
        # the creator policy now runs its maintainer variant: the maintainer
        # reads, the creator who is no longer maintainer does not
        app = APPS["a-editor-app"][0]
        self.assertEqual(http(self.proxy.port, "GET", "/apps/%s/logs" % app, headers=auth("normal_a")).status, 200)
        self.assertEqual(http(self.proxy.port, "GET", "/apps/%s/logs" % app, headers=auth("editor_a")).status, 403)
        self.assertEqual(http(self.proxy.admin_port, "GET", "/status").json()["policies"][-1],
                         {"name": "creator", "available": True, "variant": 1})


class TestSchemaVersion(SchemaCase):
    def test_an_unknown_version_is_said_loudly_without_taking_anything_down(self):
        self.proxy.wait_stderr("warning: the database's schema version is 'unknown-rev', which this config was not "
                               "checked against")
        r = run_portcullis("-t", "-c", self.proxy.config_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stderr, r"portcullis\.yaml:\d+:\d+: warning: the database's schema version is "
                                   r"'unknown-rev', which this config was not checked against")
        samples = scrape(self.proxy.admin_port)
        self.assertEqual(metric_sum(samples, "portcullis_schema_version_known"), 0)
        self.assertEqual(metric_sum(samples, "portcullis_schema_version_info", version="unknown-rev"), 1)
        schema = http(self.proxy.admin_port, "GET", "/status").json()["schema"]
        self.assertEqual(schema, {"version": "unknown-rev", "known": False, "error": None})
        # nothing is taken down: ready, and the console keeps working
        self.assertEqual(http(self.proxy.port, "GET", "/readyz").status, 200)  # (setUp waited for it)
        self.assertEqual(http(self.proxy.admin_port, "GET", "/readyz").status, 200)
        app = APPS["a-editor-app"][0]
        self.assertEqual(http(self.proxy.port, "GET", "/apps/%s/logs" % app, headers=auth("owner_a")).status, 200)

    def test_a_known_version_is_reported_as_known(self):
        self.pg.psql("UPDATE alembic_version SET version_num = 'known-rev-2'")
        self.assertIn("reloaded", self.proxy.reload())
        self.assertTrue(wait_until(lambda: metric_sum(scrape(self.proxy.admin_port),
                                                      "portcullis_schema_version_known") == 1, timeout=15))
        r = run_portcullis("-t", "-c", self.proxy.config_path)
        self.assertNotIn("schema version", r.stderr)
        self.assertEqual(http(self.proxy.admin_port, "GET", "/status").json()["schema"],
                         {"version": "known-rev-2", "known": True, "error": None})

    def test_a_version_query_that_fails_is_reported_not_fatal(self):
        self.pg.psql("DROP TABLE alembic_version")
        r = run_portcullis("-t", "-c", self.proxy.config_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("warning: the schema version query failed", r.stderr)
        self.assertIn("reloaded", self.proxy.reload())
        self.assertTrue(wait_until(lambda: http(self.proxy.admin_port, "GET", "/status").json()["schema"]["version"]
                                   is None, timeout=15))
        # ready once the reload's new connections are up
        self.assertTrue(wait_until(lambda: http(self.proxy.port, "GET", "/readyz").status == 200, timeout=15))


if __name__ == "__main__":
    unittest.main()
