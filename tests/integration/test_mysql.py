"""Issue #14: policies on a MySQL-compatible database (database.driver:
mysql), against a real MariaDB server with Dify's real MySQL schema: the
same decision matrix, fault, revocation and reload tests as on PostgreSQL
(test_policies), plus what only MySQL has - one query at a time per
connection, the flavour's statement time limit, TLS from sslmode, and a
TLS handshake that must never stall the event loop."""
import json
import os
import random
import re
import socket
import threading
import time
import unittest

from harness import (ED25519_PLUGIN, ROOT, Conn, MariaDB, Proxy, Upstream, dify_mariadb, free_port, http,
                     metric_sum, mint, run_portcullis, scrape, sql_string, wait_until)
from fixture import APPS, ROLES, USERS, may_read_logs, policies_yaml

SECRET = "mysql-policy-test-secret"
FIXTURES = os.path.join(ROOT, "tests", "fixtures")

POLICIES = "\n" + policies_yaml("owner", "admin", "creator", dialect="mysql") + """  by_name: SELECT 1 FROM apps WHERE name = :name AND created_by = :subject
  by_query: SELECT 1 FROM apps WHERE id = :conv AND :subject <> ''
  slow: SELECT 1 FROM apps WHERE id = :app_id AND SLEEP(0.4) = 0 AND :subject <> ''
  slow_admin: |
    SELECT 1 FROM apps a JOIN tenant_account_joins j ON j.tenant_id = a.tenant_id
     WHERE a.id = :app_id AND j.account_id = :subject AND j.role = 'admin' AND SLEEP(0.5) = 0
  sleepy: SELECT 1 FROM apps WHERE id = :app_id AND SLEEP(5) = 0 AND :subject <> ''
  claim_role: SELECT 1 FROM DUAL WHERE :claims.role = 'auditor' AND :subject <> ''
  owner_or_creator:
    sql:
      postgresql: SELECT 'this driver runs the mysql text'
      mysql: |
        SELECT 1 FROM apps a
         WHERE a.id = :app_id AND (a.created_by = :subject OR EXISTS (
               SELECT 1 FROM tenant_account_joins j
                WHERE j.tenant_id = a.tenant_id AND j.account_id = :subject AND j.role = 'owner'))
           AND :app_id <> ''
"""

CONFIG = """
listen: 127.0.0.1:{port}
upstream: http://127.0.0.1:{upstream}
workers: {workers}
admin_listen: 127.0.0.1:{admin_port}
timeouts:
  policy: {policy_timeout}
identity:
  secret: "%s"
  subject_claim: user_id
  sources: ["header:Authorization"]
database:
  driver: {driver}
  host: {dbhost}
  port: "{dbport}"
  dbname: dify
  user: {dbuser}
  password: {dbpassword}
  sslmode: {sslmode}
  pool: {pool}
  connect_timeout: {connect_timeout}
cache:
  ttl: {ttl}
{cache_extra}
policies:%s
rules:
  - name: logs
    path: /apps/{app_id:uuid}/logs
    allow: [owner, admin, creator]
  - name: byname
    path: /byname/{name}
    allow: [by_name]
  - name: byquery
    path: /byquery
    query: {conversation_id: "{conv}"}
    allow: [by_query]
  - name: slow
    path: /slow/{app_id:uuid}
    allow: [slow]
  - name: slow-admin
    path: /slowadmin/{app_id:uuid}
    allow: [slow_admin]
  - name: sleepy
    path: /sleepy/{app_id:uuid}
    allow: [sleepy]
  - name: claims
    path: /claims
    allow: [claim_role]
  - name: twice
    path: /twice/{app_id:uuid}
    allow: [owner_or_creator]
  - name: open
    path: /**
    action: forward
""" % (SECRET, POLICIES)


def auth(user, **claims):
    c = {"user_id": USERS[user]}
    c.update(claims)
    return [("Authorization", "Bearer " + mint(SECRET, c))]


def metric(proxy, name, **labels):
    return metric_sum(scrape(proxy.admin_port), name, **labels)


def db_connections(proxy):
    return {state: int(metric(proxy, "portcullis_db_connections", state=state))
            for state in ("up", "connecting", "down")}


def settings(my, **over):
    """What CONFIG's {placeholders} become for server my; strings that may
    hold anything are written as YAML double-quoted scalars (JSON's)."""
    s = dict(driver="mysql", dbhost="127.0.0.1", dbport=my.port, dbuser=my.user, dbpassword=my.password,
             sslmode="disable", pool=2, connect_timeout="2s", ttl="0s", workers=2, policy_timeout="1s",
             cache_extra="")
    s.update(over)
    for k in ("dbhost", "dbuser", "dbpassword"):
        s[k] = json.dumps(s[k])
    return s


class MyCase(unittest.TestCase):
    ttl = "0s"
    workers = 2
    policy_timeout = "1s"
    sslmode = "disable"
    cache_extra = ""

    def setUp(self):
        self.my = self.database()
        self.up = Upstream()
        self.proxy = Proxy(CONFIG, upstream=self.up.port, **settings(
            self.my, ttl=self.ttl, workers=self.workers, policy_timeout=self.policy_timeout, sslmode=self.sslmode,
            cache_extra=self.cache_extra))
        wait_until(lambda: http(self.proxy.port, "GET", "/readyz").status == 200, timeout=15)
        self.assertTrue(wait_until(lambda: db_connections(self.proxy) == {"up": 2, "connecting": 0, "down": 0},
                                   timeout=15), self.proxy.stderr()[-2000:])

    def database(self):
        return dify_mariadb("main")

    def tearDown(self):
        self.proxy.close()
        self.up.close()

    def logs(self, app, user):
        return http(self.proxy.port, "GET", "/apps/%s/logs" % APPS[app][0], headers=auth(user))


class TestDecisionMatrix(MyCase):
    ttl = "30s"

    def check_matrix(self, order):
        for user, app in order:
            want = 200 if may_read_logs(user, app) else 403
            self.assertEqual(self.logs(app, user).status, want, "%s on %s" % (user, app))

    def test_full_user_by_app_matrix_cold_then_cached_in_any_order(self):
        pairs = [(u, a) for u in USERS for a in APPS]
        self.check_matrix(pairs)
        hits_before = metric(self.proxy, "portcullis_policy_cache_hits_total")
        rng = random.Random(11)
        for _ in range(2):
            rng.shuffle(pairs)
            self.check_matrix(pairs)
        self.assertGreater(metric(self.proxy, "portcullis_policy_cache_hits_total"), hits_before)
        allowed = sum(1 for u, a in pairs if may_read_logs(u, a))
        self.assertEqual(len(self.up.requests()), 3 * allowed)

    def test_owner_of_another_workspace_is_not_owner_here(self):
        self.assertEqual(self.logs("b-app", "owner_b").status, 200)
        self.assertEqual(self.logs("a-editor-app", "owner_b").status, 403)

    def test_creator_who_left_the_workspace_is_denied(self):
        self.assertEqual(self.logs("a-orphan-app", "left_creator").status, 403)

    def test_app_with_null_creator_is_readable_by_owner_and_admin_only(self):
        for user in USERS:
            want = 200 if user in ("owner_a", "admin_a") else 403
            self.assertEqual(self.logs("a-legacy-app", user).status, want, user)

    def test_banned_admin_is_never_allowed(self):
        for app in APPS:
            self.assertEqual(self.logs(app, "banned_admin_a").status, 403)

    def test_a_name_used_twice_is_bound_to_each_of_its_question_marks(self):
        # owner_or_creator uses :subject twice and :app_id twice: four ?s,
        # two parameters
        for user in USERS:
            for app, (app_id, tenant, creator) in APPS.items():
                want = 200 if creator == user or ROLES.get((tenant, user)) == "owner" else 403
                r = http(self.proxy.port, "GET", "/twice/" + app_id, headers=auth(user))
                self.assertEqual(r.status, want, "%s on %s" % (user, app))

    def test_ids_compare_as_dify_stores_them_case_insensitively(self):
        # the matcher lower-cases {app_id:uuid} as Werkzeug does; the subject
        # is compared as Dify's own account lookup on MySQL compares it
        app = APPS["a-editor-app"][0]
        r = http(self.proxy.port, "GET", "/apps/%s/logs" % app.upper(), headers=auth("owner_a"))
        self.assertEqual(r.status, 200)
        upper = [("Authorization", "Bearer " + mint(SECRET, {"user_id": USERS["owner_a"].upper()}))]
        self.assertEqual(http(self.proxy.port, "GET", "/apps/%s/logs" % app, headers=upper).status, 200)
        nohyphen = [("Authorization", "Bearer " + mint(SECRET, {"user_id": USERS["owner_a"].replace("-", "")}))]
        self.assertEqual(http(self.proxy.port, "GET", "/apps/%s/logs" % app, headers=nohyphen).status, 403)


class TestInjection(MyCase):
    def test_injection_strings_in_captures_are_bound_not_interpolated(self):
        count = self.my.sql("SELECT COUNT(*) FROM apps").strip()
        for evil in ("x'; DROP TABLE apps; -- ", "x\\' OR 1=1 -- ", "x\" OR \"1\"=\"1"):
            enc = "".join(c if c.isalnum() else "%%%02X" % ord(c) for c in evil)
            self.assertEqual(http(self.proxy.port, "GET", "/byname/" + enc, headers=auth("editor_a")).status, 403)
        r = http(self.proxy.port, "GET", "/byquery?conversation_id=%27%20OR%201%3D1%20--%20", headers=auth("owner_a"))
        self.assertEqual(r.status, 403)
        self.assertEqual(self.my.sql("SELECT COUNT(*) FROM apps").strip(), count)
        self.assertEqual(http(self.proxy.port, "GET", "/byname/a-editor-app", headers=auth("editor_a")).status, 200)

    def test_an_absent_query_capture_is_bound_as_null_and_denies(self):
        self.assertEqual(http(self.proxy.port, "GET", "/byquery", headers=auth("owner_a")).status, 403)
        r = http(self.proxy.port, "GET", "/byquery?conversation_id=" + APPS["b-app"][0], headers=auth("owner_a"))
        self.assertEqual(r.status, 200)

    def test_claims_are_parameters_too(self):
        self.assertEqual(http(self.proxy.port, "GET", "/claims", headers=auth("normal_a", role="auditor")).status, 200)
        self.assertEqual(http(self.proxy.port, "GET", "/claims", headers=auth("normal_a", role="viewer")).status, 403)
        self.assertEqual(http(self.proxy.port, "GET", "/claims", headers=auth("normal_a")).status, 403)


class OwnDatabase(MyCase):
    """A server of its own, with Dify's main schema and rows, and triggers
    or stops as the test needs."""

    def database(self):
        my = MariaDB(os.path.join(FIXTURES, "dify-schema-main.mysql.sql"), password="pw")
        my.sql_file(os.path.join(FIXTURES, "dify-data-main.mysql.sql"))
        return my

    def tearDown(self):
        super().tearDown()
        self.my.close()


class TestCoalescing(OwnDatabase):
    workers = 1
    ttl = "60s"
    policy_timeout = "60s"

    def test_concurrent_identical_lookups_produce_one_query(self):
        app = APPS["a-editor-app"][0]
        results = []

        def one():
            results.append(http(self.proxy.port, "GET", "/slow/" + app, headers=auth("owner_a"), timeout=60).status)
        locker = self.my.lock_session("apps")
        misses = metric(self.proxy, "portcullis_policy_cache_misses_total")
        threads = [threading.Thread(target=one) for _ in range(20)]
        try:
            for t in threads:
                t.start()
            self.assertTrue(wait_until(
                lambda: metric(self.proxy, "portcullis_policy_cache_misses_total") - misses == 20, timeout=30))
        finally:
            MariaDB.unlock_session(locker)
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 20)
        self.assertEqual(metric(self.proxy, "portcullis_policy_queries_total", policy="slow"), 1)
        http(self.proxy.port, "GET", "/slow/" + app, headers=auth("admin_a"), timeout=60)
        self.assertEqual(metric(self.proxy, "portcullis_policy_queries_total", policy="slow"), 2)


class TestRevocation(OwnDatabase):
    ttl = "8s"

    def test_demotion_and_promotion_take_effect_after_the_ttl(self):
        ttl = 8.0
        c = Conn(self.proxy.port)
        target = "/apps/%s/logs" % APPS["a-editor-app"][0]
        before = time.monotonic()
        self.assertEqual(c.request("GET", target, auth("admin_a")).status, 200)
        self.assertEqual(c.request("GET", target, auth("normal_a")).status, 403)
        after = time.monotonic()
        self.my.sql("UPDATE tenant_account_joins SET role = 'normal' WHERE account_id = '%s';"
                    "UPDATE tenant_account_joins SET role = 'admin' WHERE account_id = '%s' AND tenant_id = '%s'"
                    % (USERS["admin_a"], USERS["normal_a"], APPS["a-editor-app"][1]))
        self.assertLess(time.monotonic() - before, ttl, "the update took longer than the ttl: nothing to observe")
        self.assertEqual(c.request("GET", target, auth("admin_a")).status, 200)
        self.assertEqual(c.request("GET", target, auth("normal_a")).status, 403)
        time.sleep(max(0.0, after + ttl + 0.2 - time.monotonic()))
        self.assertEqual(c.request("GET", target, auth("admin_a")).status, 403)
        self.assertEqual(c.request("GET", target, auth("normal_a")).status, 200)
        c.close()


POLL = "  invalidate_query: SELECT changes FROM portcullis_changes WHERE id = 1\n  invalidate_poll: 200ms\n"


class TriggerCase(OwnDatabase):
    ttl = "60s"
    cache_extra = POLL

    def database(self):
        my = super().database()
        my.sql_file(os.path.join(ROOT, "policies", "invalidate.mysql.sql"))
        my.sql_file(os.path.join(ROOT, "policies", "invalidate-agents.mysql.sql"))
        return my

    def setUp(self):
        super().setUp()
        # the first answer of each worker's connection 0 empties its cache (a
        # change may have been missed before it was up): wait for those
        self.assertTrue(wait_until(lambda: metric(self.proxy, "portcullis_policy_cache_invalidations_total")
                                   >= self.workers, timeout=10))


class TestPolledRevocation(TriggerCase):
    def test_demotion_ban_and_removal_take_effect_within_the_poll_not_the_ttl(self):
        self.assertEqual(self.logs("a-editor-app", "admin_a").status, 200)
        self.assertEqual(self.logs("a-editor-app", "owner_a").status, 200)
        self.assertEqual(self.logs("a-editor-app", "editor_a").status, 200)
        self.assertEqual(self.logs("a-editor-app", "normal_a").status, 403)
        # a demotion
        self.my.sql("UPDATE tenant_account_joins SET role = 'normal' WHERE account_id = '%s'" % USERS["admin_a"])
        self.assertTrue(wait_until(lambda: self.logs("a-editor-app", "admin_a").status == 403, timeout=10))
        # a ban
        self.my.sql("UPDATE accounts SET status = 'banned' WHERE id = '%s'" % USERS["owner_a"])
        self.assertTrue(wait_until(lambda: self.logs("a-editor-app", "owner_a").status == 403, timeout=10))
        # a removal from the workspace
        self.my.sql("DELETE FROM tenant_account_joins WHERE account_id = '%s'" % USERS["editor_a"])
        self.assertTrue(wait_until(lambda: self.logs("a-editor-app", "editor_a").status == 403, timeout=10))
        # a promotion
        self.my.sql("UPDATE tenant_account_joins SET role = 'admin' WHERE account_id = '%s' AND tenant_id = '%s'"
                    % (USERS["normal_a"], APPS["a-editor-app"][1]))
        self.assertTrue(wait_until(lambda: self.logs("a-editor-app", "normal_a").status == 200, timeout=10))

    def polls(self):
        # the poll is the only text-protocol SELECT anyone sends this server
        # (lookups are prepared statements)
        return int(self.my.sql("SHOW GLOBAL STATUS LIKE 'Com_select'").split()[1])

    def test_a_login_does_not_empty_the_cache_a_ban_or_a_new_email_does(self):
        c = Conn(self.proxy.port)  # one connection: one worker, one decision cache
        target = "/apps/%s/logs" % APPS["a-editor-app"][0]
        self.assertEqual(c.request("GET", target, auth("owner_a")).status, 200)
        self.assertEqual(c.request("GET", target, auth("admin_a")).status, 200)
        invalidations = metric(self.proxy, "portcullis_policy_cache_invalidations_total")
        self.my.sql("UPDATE accounts SET last_active_at = NOW(), last_login_at = NOW()")
        polls = self.polls()
        self.assertTrue(wait_until(lambda: self.polls() >= polls + 6, timeout=10))  # 3 per worker
        self.assertEqual(metric(self.proxy, "portcullis_policy_cache_invalidations_total"), invalidations)
        hits = metric(self.proxy, "portcullis_policy_cache_hits_total")
        self.assertEqual(c.request("GET", target, auth("owner_a")).status, 200)
        self.assertEqual(metric(self.proxy, "portcullis_policy_cache_hits_total"), hits + 1)
        self.my.sql("UPDATE accounts SET status = 'banned' WHERE id = '%s'" % USERS["admin_a"])
        self.assertTrue(wait_until(lambda: metric(self.proxy, "portcullis_policy_cache_invalidations_total")
                                   >= invalidations + 2, timeout=10))  # both workers
        self.assertEqual(c.request("GET", target, auth("admin_a")).status, 403)
        # access lists may name people by email: a new address counts too
        invalidations = metric(self.proxy, "portcullis_policy_cache_invalidations_total")
        self.my.sql("UPDATE accounts SET email = 'renamed@example.com' WHERE id = '%s'" % USERS["normal_a"])
        self.assertTrue(wait_until(lambda: metric(self.proxy, "portcullis_policy_cache_invalidations_total")
                                   >= invalidations + 2, timeout=10))
        c.close()


class TestPolledRevocationDuringAQuery(TriggerCase):
    workers = 1

    def test_an_answer_to_a_query_sent_before_a_revocation_is_not_cached(self):
        target = "/slowadmin/%s" % APPS["a-editor-app"][0]
        first = []
        t = threading.Thread(target=lambda: first.append(
            http(self.proxy.port, "GET", target, headers=auth("admin_a"), timeout=10).status))
        t.start()
        self.my.wait_active("%SLEEP(0.5)%")
        self.my.sql("UPDATE tenant_account_joins SET role = 'normal' WHERE account_id = '%s'" % USERS["admin_a"])
        t.join()
        self.assertEqual(first, [200])
        self.assertTrue(wait_until(lambda: http(self.proxy.port, "GET", target, headers=auth("admin_a"),
                                                timeout=10).status == 403, timeout=10))


class TestDatabaseDown(OwnDatabase):
    ttl = "60s"

    def test_database_stopped_fails_closed_then_recovers(self):
        self.assertEqual(self.logs("a-editor-app", "owner_a").status, 200)
        self.my.stop()
        n = len(self.up.requests())
        for user in ("admin_a", "editor_a", "normal_a"):
            r = self.logs("a-editor-app", user)
            self.assertEqual(r.status, 503, user)
            self.assertEqual(r.json()["code"], "service_unavailable")
        self.assertEqual(len(self.up.settled_requests()), n)
        self.assertEqual(http(self.proxy.port, "GET", "/open/x").status, 200)
        r = wait_until(lambda: (lambda r: r if r.status == 503 else None)(http(self.proxy.port, "GET", "/readyz")),
                       timeout=15)
        self.assertEqual((r.status, r.json()["failing"]), (503, "database"))
        self.my.start()
        self.assertTrue(wait_until(lambda: http(self.proxy.port, "GET", "/readyz").status == 200, timeout=15))
        self.assertEqual(self.logs("a-editor-app", "admin_a").status, 200)
        self.assertEqual(self.logs("a-editor-app", "normal_a").status, 403)

    def test_a_killed_server_fails_lookups_in_flight_and_recovers(self):
        target = "/slow/%s" % APPS["a-editor-app"][0]
        got = []
        t = threading.Thread(target=lambda: got.append(
            http(self.proxy.port, "GET", target, headers=auth("owner_a"), timeout=10).status))
        t.start()
        self.my.wait_active("%SLEEP(0.4)%")
        self.my.kill()
        t.join()
        self.assertEqual(got, [503])
        self.proxy.wait_stderr("down: Lost connection")
        self.my.start()
        self.assertTrue(wait_until(lambda: self.logs("a-editor-app", "owner_a").status == 200, timeout=15))

    def test_the_proxy_starts_while_the_database_is_down(self):
        self.my.stop()
        p = Proxy(CONFIG, upstream=self.up.port, **settings(self.my, workers=1))
        try:
            self.assertIn("database unreachable", p.stderr())
            r = http(p.port, "GET", "/apps/%s/logs" % APPS["b-app"][0], headers=auth("owner_b"))
            self.assertEqual(r.status, 503)
            self.my.start()
            self.assertTrue(wait_until(lambda: http(p.port, "GET", "/apps/%s/logs" % APPS["b-app"][0],
                                                    headers=auth("owner_b")).status == 200, timeout=15))
        finally:
            p.close()


class TestIdleReadiness(OwnDatabase):
    """No traffic at all, and the server stops answering without closing
    anything (mariadbd stopped: the kernel still acknowledges, so TCP
    keepalives never fire). Idle connections are pinged every
    timeouts.policy: readiness turns 503 within 3 x policy + 1 s (the idle
    wait, then the wedge limit of 2 x policy + 1 s), and 200 again once the
    server answers."""

    def test_a_silent_database_turns_readiness_503_with_no_traffic(self):
        policy = 1.0
        self.assertEqual(http(self.proxy.admin_port, "GET", "/readyz").status, 200)
        t0 = time.time()
        self.my.freeze()
        try:
            down = wait_until(lambda: http(self.proxy.admin_port, "GET", "/readyz").status == 503,
                              timeout=3 * policy + 1 + 4, interval=0.1)
            took = time.time() - t0
        finally:
            self.my.thaw()
        self.assertTrue(down, "readiness still 200 %.1f s after the database went silent; stderr:\n%s"
                        % (took, self.proxy.stderr()[-1500:]))
        self.assertLessEqual(took, 3 * policy + 1 + 0.5)
        # the ping was in flight when the connection was given up: either our
        # wedge limit (2 x policy + 1 s) or Connector/C's read timeout (the
        # same 3 s, my_io_timeout_ms) ends it, whichever timer runs first;
        # with no query in flight neither could fire
        self.assertRegex(self.proxy.stderr(), r"presumed wedged|Lost connection to server during query")
        self.assertTrue(wait_until(lambda: http(self.proxy.admin_port, "GET", "/readyz").status == 200, timeout=15))
        self.assertEqual(self.logs("a-editor-app", "owner_a").status, 200)


class TestReadinessCoversEveryWorker(OwnDatabase):
    def setUp(self):
        self.my = self.database()
        self.my.sql("CREATE USER one_conn@'%' IDENTIFIED BY 'pw' WITH MAX_USER_CONNECTIONS 1;"
                    "GRANT SELECT ON dify.* TO one_conn@'%'")
        self.up = Upstream()
        self.proxy = Proxy(CONFIG, upstream=self.up.port, **settings(self.my, dbuser="one_conn"))

    def test_readyz_fails_on_every_worker_while_one_has_no_database_connection(self):
        self.assertTrue(wait_until(lambda: db_connections(self.proxy)["up"] == 1, timeout=10))
        self.assertEqual(db_connections(self.proxy)["up"], 1)
        for _ in range(20):
            r = http(self.proxy.port, "GET", "/readyz")
            self.assertEqual((r.status, r.json()["failing"]), (503, "database"))
        self.my.sql("ALTER USER one_conn@'%' WITH MAX_USER_CONNECTIONS 0")
        self.assertTrue(wait_until(lambda: http(self.proxy.port, "GET", "/readyz").status == 200, timeout=15))
        self.assertEqual(db_connections(self.proxy)["up"], 2)


class TestLimits(OwnDatabase):
    def test_a_locked_table_gives_503_within_the_policy_budget_and_keeps_the_connection(self):
        locker = self.my.lock_session("apps")
        try:
            t = time.time()
            r = self.logs("a-editor-app", "owner_a")
            took = time.time() - t
            self.assertEqual(r.status, 503)
            self.assertLess(took, 1 + 2)  # timeouts.policy is 1 s; 2 s of margin for a busy machine
            self.assertEqual(self.up.settled_requests(), [])
            # the server ended the statement itself (max_statement_time): the
            # connection is not left waiting behind the lock
            self.assertTrue(wait_until(lambda: self.my.active_queries("SELECT 1 FROM apps a%") == 0, timeout=5))
        finally:
            MariaDB.unlock_session(locker)
        self.assertTrue(wait_until(lambda: self.logs("a-editor-app", "owner_a").status == 200, timeout=5))
        self.assertNotIn("down:", self.proxy.stderr())

    def test_a_slow_query_gives_503_and_the_server_stops_it_at_the_budget(self):
        t = time.time()
        r = http(self.proxy.port, "GET", "/sleepy/" + APPS["a-editor-app"][0],
                 headers=auth("owner_a") + [("X-Request-Id", "sleepy-1")])
        took = time.time() - t
        self.assertEqual(r.status, 503)
        self.assertLess(took, 1 + 2)
        # SLEEP(5) was interrupted by the server well before its 5 s
        self.assertTrue(wait_until(lambda: self.my.active_queries("%SLEEP(5)%") == 0, timeout=2.5))
        reason = self.proxy.access_lines(["sleepy-1"])["sleepy-1"]["reason"]
        self.assertRegex(reason, r"policy sleepy: (db timeout|.*max_statement_time.*)")
        # the same connections go on serving
        self.assertEqual(self.logs("a-editor-app", "owner_a").status, 200)
        self.assertNotIn("down:", self.proxy.stderr())

    def test_sessions_are_read_only_whatever_the_user_may_do(self):
        # the user may write; its sessions may not
        self.my.sql("CREATE TABLE probe (v VARCHAR(64));"
                    "GRANT INSERT, EXECUTE ON dify.* TO %s@'%%'" % sql_string(self.my.user))
        path = os.path.join(self.proxy.dir, "writer.sql")
        with open(path, "w") as f:
            f.write("DELIMITER //\nCREATE FUNCTION probe_write(v VARCHAR(64)) RETURNS INT READS SQL DATA\n"
                    "BEGIN INSERT INTO probe VALUES (v); RETURN 1; END//\nDELIMITER ;\n")
        self.my.sql_file(path)
        # a statement that writes does not even prepare: the reload is refused
        writer = CONFIG.replace("  claim_role: SELECT 1 FROM DUAL WHERE :claims.role = 'auditor' AND :subject <> ''",
                                "  claim_role: INSERT INTO probe SELECT :subject FROM DUAL WHERE :claims.role <> ''")
        outcome = self.proxy.reload(writer)
        self.assertIn("reload failed", outcome)
        self.assertIn("policy 'claim_role' does not prepare: Cannot execute statement in a READ ONLY transaction",
                      outcome)
        # nor does a SELECT whose function writes, even one that says it only
        # reads: MariaDB opens the function's tables for writing at prepare
        sneaky = CONFIG.replace("  claim_role: SELECT 1 FROM DUAL WHERE :claims.role = 'auditor' AND :subject <> ''",
                                "  claim_role: SELECT probe_write(:subject) FROM DUAL WHERE :claims.role <> ''")
        outcome = self.proxy.reload(sneaky)
        self.assertIn("reload failed", outcome)
        self.assertIn("READ ONLY transaction (error 1792)", outcome)
        # the user itself may write: the session is what refuses
        self.my.sql("SELECT probe_write('by the user')", as_app=True)
        self.assertEqual(self.my.sql("SELECT v FROM probe").strip(), "by the user")
        self.assertEqual(self.logs("a-editor-app", "owner_a").status, 200)


class TestCheckAndReload(MyCase):
    def write(self, text, **over):
        path = os.path.join(self.proxy.dir, "check.yaml")
        s = settings(self.my, **over)
        s.update(port=1, upstream=2, admin_port=3)
        for k, v in s.items():
            text = text.replace("{%s}" % k, str(v))
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_t_prepares_every_policy_against_the_database(self):
        r = run_portcullis("-t", "-c", self.write(CONFIG))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("all prepared against the database", r.stdout)

    def test_t_catches_bad_sql_with_file_line_col(self):
        bad = CONFIG.replace("WHERE name = :name", "WHERE nme = :name")
        r = run_portcullis("-t", "-c", self.write(bad))
        self.assertEqual(r.returncode, 1)
        line = bad[:bad.index("WHERE nme")].count("\n") + 1
        self.assertRegex(r.stderr, r"check\.yaml:%d:\d+: policy 'by_name' does not prepare: Unknown column 'nme' "
                                   r"in '(where clause|WHERE)' \(error 1054\)" % line)

    def test_t_catches_a_policy_written_for_postgresql_only(self):
        bad = CONFIG.replace("  by_query: SELECT 1 FROM apps WHERE id = :conv AND :subject <> ''",
                             "  by_query: SELECT 1 FROM apps WHERE id::text = :conv AND :subject <> ''")
        r = run_portcullis("-t", "-c", self.write(bad))
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"check\.yaml:\d+:\d+: policy 'by_query' does not prepare: .*error 1064")
        nosql = CONFIG.replace("      mysql: |\n        SELECT 1 FROM apps a\n         WHERE a.id = :app_id AND (",
                               "      mariadb: |\n        SELECT 1 FROM apps a\n         WHERE a.id = :app_id AND (")
        r = run_portcullis("-t", "-c", self.write(nosql))
        self.assertEqual(r.returncode, 1)
        self.assertIn("unknown key 'mariadb' in a policy's sql", r.stderr)

    def test_t_checks_the_invalidate_query(self):
        bad = CONFIG.replace("{cache_extra}", "  invalidate_query: SELECT changes FROM no_such_table")
        r = run_portcullis("-t", "-c", self.write(bad))
        self.assertEqual(r.returncode, 1)
        line = bad[:bad.index("invalidate_query")].count("\n") + 1
        self.assertRegex(r.stderr, r"check\.yaml:%d:\d+: cache.invalidate_query does not run: "
                                   r"Table 'dify.no_such_table' doesn't exist" % line)

    def test_t_says_so_when_the_database_is_unreachable(self):
        r = run_portcullis("-t", "-c", self.write(CONFIG, dbport=free_port()))
        self.assertEqual(r.returncode, 0)
        self.assertIn("database unreachable", r.stderr)
        self.assertIn("NOT checked", r.stdout)

    def test_t_with_a_wrong_password_says_access_denied(self):
        r = run_portcullis("-t", "-c", self.write(CONFIG, dbpassword="wrong"))
        self.assertIn("Access denied for user", r.stderr)

    def test_reload_with_good_sql_applies_and_with_bad_sql_keeps_the_old(self):
        self.assertEqual(self.logs("a-editor-app", "normal_a").status, 403)
        opened = CONFIG.replace("AND j.role = 'owner'", "AND j.role IN ('owner', 'normal')")
        self.assertIn("reloaded: generation", self.proxy.reload(opened))
        self.assertTrue(wait_until(lambda: self.logs("a-editor-app", "normal_a").status == 200, timeout=10))
        broken = opened.replace("AND j.role IN ('owner', 'normal')", "AND j.rolez = 'owner'")
        outcome = self.proxy.reload(broken)
        self.assertIn("reload failed", outcome)
        self.assertIn("does not prepare", outcome)
        self.assertEqual(self.logs("a-editor-app", "normal_a").status, 200)
        self.assertEqual(self.logs("a-editor-app", "owner_a").status, 200)


class TestReloadWhileEveryConnectionIsBusy(MyCase):
    workers = 1

    def test_a_request_on_the_new_generation_waits_for_a_connection_instead_of_failing(self):
        app = APPS["a-editor-app"][0]
        slow = []
        threads = [threading.Thread(target=lambda u=u: slow.append(
            http(self.proxy.port, "GET", "/slow/" + app, headers=auth(u), timeout=10).status))
            for u in ("owner_a", "admin_a")]
        for t in threads:
            t.start()
        self.my.wait_active("%SLEEP(0.4)%", n=2)
        self.proxy.reload(CONFIG.replace("{ttl}", "1s"), wait=False)
        self.assertTrue(wait_until(lambda: metric(self.proxy, "portcullis_config_generation") == 2,
                                   timeout=2, interval=0.01))
        r = self.logs("a-editor-app", "owner_a")
        for t in threads:
            t.join()
        self.assertEqual(slow, [200, 200])
        self.assertEqual(r.status, 200, r.body)


class TestOneQueryPerConnection(MyCase):
    workers = 1
    ttl = "0s"
    policy_timeout = "10s"

    def test_more_lookups_than_connections_queue_and_all_answer(self):
        # two connections, 12 distinct 0.4 s lookups at once: they queue, the
        # server never runs more than two at a time, and each gets its answer
        work = [(u, a) for u in USERS for a in ("a-editor-app", "b-app")][:12]
        results = {}

        def one(u, a):
            results[(u, a)] = http(self.proxy.port, "GET", "/slow/" + APPS[a][0], headers=auth(u), timeout=30).status
        peak = [0]
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                peak[0] = max(peak[0], int(self.my.sql(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s AND COMMAND <> 'Sleep'"
                    % sql_string(self.my.user)).strip()))
        w = threading.Thread(target=watch)
        w.start()
        threads = [threading.Thread(target=one, args=p) for p in work]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        w.join()
        self.assertEqual(sorted(results.values()), [200] * len(work))  # slow passes for any subject
        self.assertEqual(peak[0], 2)
        self.assertEqual(metric(self.proxy, "portcullis_policy_queries_total", policy="slow"), len(work))


def make_tls_files(d):
    """A CA, and a server certificate for DNS:localhost signed by it; a
    second CA that signed nothing here. With openssl(1)."""
    import subprocess

    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True)
    for ca in ("ca", "other-ca"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=portcullis test " + ca,
            "-keyout", os.path.join(d, ca + ".key"), "-out", os.path.join(d, ca + ".pem"))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", os.path.join(d, "server.key"),
        "-out", os.path.join(d, "server.csr"))
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost\n")
    run("x509", "-req", "-in", os.path.join(d, "server.csr"), "-CA", os.path.join(d, "ca.pem"), "-CAkey",
        os.path.join(d, "ca.key"), "-CAcreateserial", "-days", "2", "-extfile", ext, "-out",
        os.path.join(d, "server.pem"))
    os.chmod(os.path.join(d, "server.key"), 0o644)  # read by the server's own user


class TestTLS(unittest.TestCase):
    """sslmode as on PostgreSQL, against a server with TLS and one without."""

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.dir = tempfile.mkdtemp(prefix="pc-tls-")
        os.chmod(cls.dir, 0o755)
        make_tls_files(cls.dir)
        f = lambda n: os.path.join(cls.dir, n)
        cls.tls = MariaDB(os.path.join(FIXTURES, "dify-schema-main.mysql.sql"), password="pw",
                          server_args=["--ssl-ca=" + f("ca.pem"), "--ssl-cert=" + f("server.pem"),
                                       "--ssl-key=" + f("server.key")])
        cls.tls.sql_file(os.path.join(FIXTURES, "dify-data-main.mysql.sql"))
        cls.plain = dify_mariadb("main")
        cls.up = Upstream()

    @classmethod
    def tearDownClass(cls):
        import shutil
        cls.tls.close()
        cls.up.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def config(self, my, sslmode, host="127.0.0.1", ca="ca.pem"):
        text = CONFIG.replace("  sslmode: {sslmode}\n", "  sslmode: {sslmode}\n  sslrootcert: %s\n"
                              % os.path.join(self.dir, ca))
        return Proxy(text, upstream=self.up.port, **settings(my, sslmode=sslmode, dbhost=host, workers=1))

    def serves(self, p):
        return wait_until(lambda: http(p.port, "GET", "/apps/%s/logs" % APPS["b-app"][0],
                                       headers=auth("owner_b")).status == 200, timeout=10)

    def check(self, my, sslmode, want, host="127.0.0.1", ca="ca.pem"):
        """want: the TLS the up line reports, or an error the down line says."""
        p = self.config(my, sslmode, host, ca)
        try:
            if want in ("TLS", "no TLS"):
                self.assertTrue(self.serves(p), p.stderr()[-2000:])
                p.wait_stderr("connection 0 up")
                line = [l for l in p.stderr().splitlines() if "connection 0 up" in l][0]
                self.assertIn(", TLS " if want == "TLS" else ", no TLS", line)
            else:
                p.wait_stderr("down: ")
                self.assertIn(want, p.stderr())
                r = http(p.port, "GET", "/apps/%s/logs" % APPS["b-app"][0], headers=auth("owner_b"))
                self.assertEqual(r.status, 503)
        finally:
            p.close()

    def test_verify_full_checks_the_chain_and_the_host_name(self):
        self.check(self.tls, "verify-full", "TLS", host="localhost")
        self.check(self.tls, "verify-full", "Validation of SSL server certificate failed", host="127.0.0.1")
        self.check(self.tls, "verify-full", "certificate", host="localhost", ca="other-ca.pem")

    def test_verify_ca_checks_the_chain_only(self):
        self.check(self.tls, "verify-ca", "TLS", host="127.0.0.1")
        self.check(self.tls, "verify-ca", "certificate", ca="other-ca.pem")

    def test_require_refuses_a_server_without_tls_before_logging_in(self):
        self.check(self.tls, "require", "TLS")
        self.check(self.plain, "require", "SSL is required, but the server does not support it")

    def test_prefer_uses_tls_when_the_server_has_it_and_connects_without_otherwise(self):
        self.check(self.tls, "prefer", "TLS")
        self.check(self.plain, "prefer", "no TLS")

    def test_disable_never_uses_tls(self):
        self.check(self.tls, "disable", "no TLS")


class StallingRelay:
    """A TCP relay to a server that holds what the client sends for `delay`
    seconds once the TLS handshake starts (the client's SSL request, 32
    bytes): the handshake then waits on the network for that long, as on a
    slow or lossy link."""

    def __init__(self, port, delay):
        self.target, self.delay = port, delay
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stalls = 0
        self.closing = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self.pump, args=(s, c, False), daemon=True).start()
            threading.Thread(target=self.pump, args=(c, s, True), daemon=True).start()

    def pump(self, src, dst, stall):
        held = False
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if stall and not held and len(data) >= 32:
                    held = True
                    self.stalls += 1
                    time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.closing = True
        self.sock.close()


class TestTheLoopNeverStalls(unittest.TestCase):
    """Connector/C's TLS handshake blocks its thread. It runs on a connect
    thread: while a handshake waits 3 s on the network, the worker's one
    event loop keeps answering (a loop blocked by it would leave a probe
    waiting for up to the whole 3 s; 1 s is the margin for a busy machine)."""

    def test_health_answers_promptly_while_a_tls_handshake_is_stalled(self):
        import tempfile
        d = tempfile.mkdtemp(prefix="pc-tls-")
        os.chmod(d, 0o755)
        make_tls_files(d)
        my = MariaDB(os.path.join(FIXTURES, "dify-schema-main.mysql.sql"), password="pw",
                     server_args=["--ssl-ca=" + os.path.join(d, "ca.pem"), "--ssl-cert=" + os.path.join(d, "server.pem"),
                                  "--ssl-key=" + os.path.join(d, "server.key")])
        relay = StallingRelay(my.port, 3.0)
        up = Upstream()
        p = Proxy(CONFIG, upstream=up.port, **settings(my, dbport=relay.port, sslmode="require", workers=1,
                                                       pool=1, connect_timeout="10s"))
        try:
            worst, samples = 0.0, 0
            deadline = time.time() + 10
            # the first stall was the start-up check's own connection (the
            # check blocks, off any loop); the second is the pool's
            while time.time() < deadline and relay.stalls < 2:
                time.sleep(0.01)
            self.assertEqual(relay.stalls, 2, "the pool's handshake never started")
            end = time.time() + 2.5  # inside the 3 s stall
            c = Conn(p.port)
            while time.time() < end:
                t = time.monotonic()
                self.assertEqual(c.request("GET", "/healthz").status, 200)
                worst = max(worst, time.monotonic() - t)
                samples += 1
                time.sleep(0.01)
            c.close()
            self.assertGreater(samples, 20)
            self.assertLess(worst, 1.0, "the loop stalled for %.0f ms during the handshake" % (worst * 1000))
            self.assertEqual(http(p.port, "GET", "/readyz").status, 503)  # the connection is not up yet
            self.assertTrue(wait_until(lambda: http(p.port, "GET", "/readyz").status == 200, timeout=10))
            p.wait_stderr("connection 0 up")
            self.assertIn(", TLS ", [l for l in p.stderr().splitlines() if "connection 0 up" in l][0])
        finally:
            p.close()
            up.close()
            relay.close()
            my.close()
            import shutil
            shutil.rmtree(d, ignore_errors=True)


class TestAuthentication(unittest.TestCase):
    def run_pack_like(self, my):
        up = Upstream()
        p = Proxy(CONFIG, upstream=up.port, **settings(my, workers=1, sslmode="prefer", dbhost="localhost"))
        try:
            ok = wait_until(lambda: http(p.port, "GET", "/apps/%s/logs" % APPS["b-app"][0],
                                         headers=auth("owner_b")).status == 200, timeout=10)
            self.assertTrue(ok, p.stderr()[-2000:])
        finally:
            p.close()
            up.close()

    def test_a_password_of_spaces_quotes_and_backslashes_needs_no_escaping(self):
        with MariaDB(os.path.join(FIXTURES, "dify-schema-1.10.1.mysql.sql"),
                     password='p w\'"x\\y=z #;') as my:
            my.sql_file(os.path.join(FIXTURES, "dify-data-1.10.1.mysql.sql"))
            self.run_pack_like(my)

    @unittest.skipUnless(os.path.exists(ED25519_PLUGIN), "the server's ed25519 plugin comes with mariadb-server")
    def test_an_ed25519_user_logs_in(self):
        with MariaDB(os.path.join(FIXTURES, "dify-schema-1.10.1.mysql.sql"), password="pw", auth="ed25519") as my:
            my.sql_file(os.path.join(FIXTURES, "dify-data-1.10.1.mysql.sql"))
            self.run_pack_like(my)


if __name__ == "__main__":
    unittest.main()
