"""Issue #4: policies against a real PostgreSQL, a decision cache that
cannot leak, and fail-closed behaviour."""
import os
import random
import re
import subprocess
import threading
import time
import unittest

from harness import (PG, ROOT, Conn, Proxy, Upstream, build_request, http, metric_sum, mint, run_portcullis, scrape,
                     shared_pg, wait_until)
from fixture import APPS, USERS, may_read_logs, policies_yaml

SECRET = "policy-test-secret"

POLICIES = "\n" + policies_yaml("owner", "admin", "creator") + """  by_name: SELECT 1 FROM apps WHERE name = :name AND created_by::text = :subject
  by_query: SELECT 1 FROM apps WHERE id::text = :conv AND :subject <> ''
  slow: SELECT 1 FROM pg_sleep(0.4), apps WHERE id = :app_id AND :subject <> ''
  slow_admin: |
    SELECT 1 FROM pg_sleep(0.5), apps a JOIN tenant_account_joins j ON j.tenant_id = a.tenant_id
     WHERE a.id = :app_id AND j.account_id::text = :subject AND j.role = 'admin'
  claim_role: SELECT 1 WHERE :claims.role = 'auditor' AND :subject <> ''
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
  url: "{dburl}"
  pool: 2
  connect_timeout: 1s
cache:
  ttl: {ttl}
  invalidate_channel: portcullis
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
  - name: claims
    path: /claims
    allow: [claim_role]
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


class PolicyCase(unittest.TestCase):
    config = CONFIG
    ttl = "0s"
    workers = 2
    policy_timeout = "1s"

    def setUp(self):
        self.pg = self.database()
        self.up = Upstream()
        self.proxy = Proxy(self.config, upstream=self.up.port, dburl=self.pg.url, ttl=self.ttl, workers=self.workers,
                           policy_timeout=self.policy_timeout)
        # Wait for every database connection, not only for readiness (one
        # per worker): connection 0 LISTENs, and when it comes up it drops
        # the cache and refuses to cache answers to queries already sent.
        wait_until(lambda: http(self.proxy.port, "GET", "/readyz").status == 200, timeout=10)
        wait_until(lambda: db_connections(self.proxy) == {"up": 2, "connecting": 0, "down": 0}, timeout=10)

    def database(self):
        return shared_pg()

    def tearDown(self):
        self.proxy.close()
        self.up.close()

    def logs(self, app, user):
        return http(self.proxy.port, "GET", "/apps/%s/logs" % APPS[app][0], headers=auth(user))


class TestDecisionMatrix(PolicyCase):
    ttl = "30s"

    def check_matrix(self, order):
        for user, app in order:
            want = 200 if may_read_logs(user, app) else 403
            r = self.logs(app, user)
            self.assertEqual(r.status, want, "%s on %s" % (user, app))

    def test_full_user_by_app_matrix_cold_then_cached_in_any_order(self):
        pairs = [(u, a) for u in USERS for a in APPS]
        self.check_matrix(pairs)                 # cold
        hits_before = metric(self.proxy, "portcullis_policy_cache_hits_total")
        rng = random.Random(7)
        for _ in range(2):                       # cached, shuffled: no entry answers for another pair
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

    def test_access_log_marks_cold_and_cached_decisions(self):
        # one connection: one worker, whose cache answers the second time
        c = Conn(self.proxy.port)
        for i in range(2):
            c.request("GET", "/apps/%s/logs" % APPS["a-editor-app"][0],
                      auth("owner_a") + [("X-Request-Id", "cold-warm-%d" % i)])
        c.close()
        lines = self.proxy.access_lines(["cold-warm-0", "cold-warm-1"])
        self.assertEqual([lines["cold-warm-%d" % i]["cache"] for i in range(2)], ["miss", "hit"])
        self.assertEqual(lines["cold-warm-1"]["decision"], "allow")


class TestInjection(PolicyCase):
    def test_injection_strings_in_captures_are_bound_not_interpolated(self):
        evil = "x'; DROP TABLE apps; --"
        r = http(self.proxy.port, "GET", "/byname/" + evil.replace(" ", "%20").replace("'", "%27"),
                 headers=auth("editor_a"))
        self.assertEqual(r.status, 403)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM apps").strip(), str(len(APPS)))
        r = http(self.proxy.port, "GET", "/byquery?conversation_id=%27%20OR%201%3D1%20--", headers=auth("owner_a"))
        self.assertEqual(r.status, 403)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM apps").strip(), str(len(APPS)))
        r = http(self.proxy.port, "GET", "/byname/a-editor-app", headers=auth("editor_a"))
        self.assertEqual(r.status, 200)

    def test_a_repeated_query_capture_gets_400(self):
        r = http(self.proxy.port, "GET", "/byquery?conversation_id=a&conversation_id=b", headers=auth("owner_a"))
        self.assertEqual(r.status, 400)

    def test_an_absent_query_capture_is_bound_as_null_and_denies(self):
        self.assertEqual(http(self.proxy.port, "GET", "/byquery", headers=auth("owner_a")).status, 403)

    def test_claims_are_parameters_too(self):
        self.assertEqual(http(self.proxy.port, "GET", "/claims", headers=auth("normal_a", role="auditor")).status, 200)
        self.assertEqual(http(self.proxy.port, "GET", "/claims", headers=auth("normal_a", role="viewer")).status, 403)
        self.assertEqual(http(self.proxy.port, "GET", "/claims", headers=auth("normal_a")).status, 403)


class TestCoalescing(PolicyCase):
    workers = 1
    ttl = "60s"              # misses are counted: each request's lookup shows
    policy_timeout = "60s"   # the one query waits on a lock we hold

    def test_concurrent_identical_lookups_produce_one_query(self):
        app = APPS["a-editor-app"][0]
        results = []

        def one():
            results.append(http(self.proxy.port, "GET", "/slow/" + app, headers=auth("owner_a"), timeout=60).status)
        # The first query blocks on the lock until all 20 requests have
        # looked the decision up (20 cache misses), however slowly they come.
        locker = self.pg.lock_session("apps")
        misses = metric(self.proxy, "portcullis_policy_cache_misses_total")
        threads = [threading.Thread(target=one) for _ in range(20)]
        try:
            for t in threads:
                t.start()
            self.assertTrue(wait_until(lambda: metric(self.proxy, "portcullis_policy_cache_misses_total") - misses == 20,
                                       timeout=30))
        finally:
            self.pg.unlock_session(locker)
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 20)
        self.assertEqual(metric(self.proxy, "portcullis_policy_queries_total", policy="slow"), 1)
        # a different subject is a different lookup
        http(self.proxy.port, "GET", "/slow/" + app, headers=auth("admin_a"), timeout=60)
        self.assertEqual(metric(self.proxy, "portcullis_policy_queries_total", policy="slow"), 2)


class RevocationCase(PolicyCase):
    """Restores the roles the revocation tests change and drops the triggers."""

    def tearDown(self):
        self.pg.psql("UPDATE tenant_account_joins SET role = 'admin' WHERE account_id = '%s'" % USERS["admin_a"])
        self.pg.psql("UPDATE tenant_account_joins SET role = 'normal' WHERE account_id = '%s' AND tenant_id = '%s'"
                     % (USERS["normal_a"], APPS["a-editor-app"][1]))
        self.pg.psql("DROP TRIGGER IF EXISTS portcullis_invalidate ON tenant_account_joins;"
                     "DROP TRIGGER IF EXISTS portcullis_invalidate ON apps;"
                     "DROP TRIGGER IF EXISTS portcullis_invalidate ON accounts")
        super().tearDown()


class TestRevocation(RevocationCase):
    ttl = "8s"   # long enough that a busy machine still sees the cached answers

    def test_demotion_and_promotion_take_effect_after_the_ttl(self):
        ttl = 8.0
        # one connection: one worker, one decision cache
        c = Conn(self.proxy.port)
        target = "/apps/%s/logs" % APPS["a-editor-app"][0]
        before = time.monotonic()   # no answer is cached earlier than this...
        self.assertEqual(c.request("GET", target, auth("admin_a")).status, 200)
        self.assertEqual(c.request("GET", target, auth("normal_a")).status, 403)
        after = time.monotonic()    # ...nor later than this
        self.pg.psql("UPDATE tenant_account_joins SET role = 'normal' WHERE account_id = '%s';"
                     "UPDATE tenant_account_joins SET role = 'admin' WHERE account_id = '%s' AND tenant_id = '%s'"
                     % (USERS["admin_a"], USERS["normal_a"], APPS["a-editor-app"][1]))
        # still cached for up to the ttl...
        self.assertLess(time.monotonic() - before, ttl, "the update took longer than the ttl: nothing to observe")
        self.assertEqual(c.request("GET", target, auth("admin_a")).status, 200)
        self.assertEqual(c.request("GET", target, auth("normal_a")).status, 403)
        time.sleep(max(0.0, after + ttl + 0.2 - time.monotonic()))
        # ...and not a moment longer
        self.assertEqual(c.request("GET", target, auth("admin_a")).status, 403)
        self.assertEqual(c.request("GET", target, auth("normal_a")).status, 200)
        c.close()


class TestNotifyRevocation(RevocationCase):
    ttl = "60s"

    def test_demotion_and_promotion_take_effect_at_once_with_notify(self):
        self.pg.psql_file(os.path.join(ROOT, "policies", "invalidate.sql"))
        self.assertEqual(self.logs("a-editor-app", "admin_a").status, 200)
        self.assertEqual(self.logs("a-editor-app", "normal_a").status, 403)
        self.pg.psql("UPDATE tenant_account_joins SET role = 'normal' WHERE account_id = '%s'" % USERS["admin_a"])
        # at once: within seconds (margin for a busy machine), not after the 60 s ttl
        self.assertTrue(wait_until(lambda: self.logs("a-editor-app", "admin_a").status == 403, timeout=10))
        self.pg.psql("UPDATE tenant_account_joins SET role = 'admin' WHERE account_id = '%s' AND tenant_id = '%s'"
                     % (USERS["normal_a"], APPS["a-editor-app"][1]))
        self.assertTrue(wait_until(lambda: self.logs("a-editor-app", "normal_a").status == 200, timeout=10))


class TestNotifyDuringAQuery(RevocationCase):
    ttl = "60s"
    workers = 1

    def test_an_answer_to_a_query_sent_before_a_revocation_is_not_cached(self):
        # independent review: a query in flight when NOTIFY arrived had its
        # (pre-revocation) answer cached for the whole ttl
        import threading
        self.pg.psql_file(os.path.join(ROOT, "policies", "invalidate.sql"))
        # one query first: the next goes to the other connection, not to the
        # listening one (which only hears NOTIFY after its own query)
        self.assertEqual(self.logs("a-editor-app", "owner_a").status, 200)
        target = "/slowadmin/%s" % APPS["a-editor-app"][0]
        first = []
        t = threading.Thread(target=lambda: first.append(
            http(self.proxy.port, "GET", target, headers=auth("admin_a"), timeout=10).status))
        t.start()
        self.pg.wait_active("%pg_sleep%")  # the query is sleeping in PostgreSQL
        self.pg.psql("UPDATE tenant_account_joins SET role = 'normal' WHERE account_id = '%s'" % USERS["admin_a"])
        t.join()
        self.assertEqual(first, [200])  # decided on what it saw when it started
        self.assertEqual(http(self.proxy.port, "GET", target, headers=auth("admin_a"), timeout=10).status, 403)


class TestPolledRevocation(RevocationCase):
    """cache.invalidate_query works on PostgreSQL too: a change counter the
    application (here, the test) bumps, polled by connection 0."""
    ttl = "60s"
    config = CONFIG.replace("  invalidate_channel: portcullis\n",
                            "  invalidate_query: SELECT n FROM pc_changes\n  invalidate_poll: 200ms\n")

    def setUp(self):
        shared_pg().psql("CREATE TABLE IF NOT EXISTS pc_changes (n bigint NOT NULL); DELETE FROM pc_changes;"
                         "INSERT INTO pc_changes VALUES (0)")
        super().setUp()
        # the first answer of each connection 0 empties its cache (a change
        # may have been missed before): wait for both before caching anything
        self.assertTrue(wait_until(lambda: metric(self.proxy, "portcullis_policy_cache_invalidations_total") >= 2,
                                   timeout=10))

    def tearDown(self):
        super().tearDown()
        self.pg.psql("DROP TABLE IF EXISTS pc_changes")

    def test_a_changed_counter_empties_the_cache_within_the_poll(self):
        c = Conn(self.proxy.port)  # one connection: one worker, one decision cache
        target = "/apps/%s/logs" % APPS["a-editor-app"][0]
        self.assertEqual(c.request("GET", target, auth("admin_a")).status, 200)
        self.pg.psql("UPDATE tenant_account_joins SET role = 'normal' WHERE account_id = '%s'" % USERS["admin_a"])
        self.assertEqual(c.request("GET", target, auth("admin_a")).status, 200)  # cached: the counter did not move
        invalidations = metric(self.proxy, "portcullis_policy_cache_invalidations_total")
        self.pg.psql("UPDATE pc_changes SET n = n + 1")
        self.assertTrue(wait_until(lambda: metric(self.proxy, "portcullis_policy_cache_invalidations_total")
                                   >= invalidations + 2, timeout=10))  # each worker's connection 0
        self.assertEqual(c.request("GET", target, auth("admin_a")).status, 403)
        c.close()

    def test_t_checks_the_invalidate_query(self):
        path = os.path.join(self.proxy.dir, "check.yaml")
        with open(self.proxy.config_path) as f:
            text = f.read().replace("SELECT n FROM pc_changes", "SELECT n FROM pc_no_such_table")
        with open(path, "w") as f:
            f.write(text)
        r = run_portcullis("-t", "-c", path)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"check\.yaml:\d+:\d+: cache.invalidate_query does not run: "
                                   r".*relation \"pc_no_such_table\" does not exist")


class TestDatabaseDown(PolicyCase):
    ttl = "60s"

    def database(self):
        return PG(os.path.join(ROOT, "tests", "fixtures", "dify.sql"))

    def tearDown(self):
        super().tearDown()
        self.pg.close()

    def test_database_stopped_fails_closed_then_recovers(self):
        self.assertEqual(self.logs("a-editor-app", "owner_a").status, 200)   # now cached
        self.pg.stop()
        n = len(self.up.requests())
        for user in ("admin_a", "editor_a", "normal_a"):
            r = self.logs("a-editor-app", user)
            self.assertEqual(r.status, 503, user)
            self.assertEqual(r.json()["code"], "service_unavailable")
        self.assertEqual(len(self.up.settled_requests()), n)                 # never forwarded unchecked
        self.assertEqual(http(self.proxy.port, "GET", "/open/x").status, 200)  # open routes still forwarded
        r = wait_until(lambda: (lambda r: r if r.status == 503 else None)(http(self.proxy.port, "GET", "/readyz")),
                       timeout=15)
        self.assertEqual((r.status, r.json()["failing"]), (503, "database"))
        self.pg.start()
        self.assertTrue(wait_until(lambda: http(self.proxy.port, "GET", "/readyz").status == 200, timeout=15))
        # errors were not cached: the first request after recovery is decided afresh
        self.assertEqual(self.logs("a-editor-app", "admin_a").status, 200)
        self.assertEqual(self.logs("a-editor-app", "normal_a").status, 403)

    def test_the_proxy_starts_while_the_database_is_down(self):
        self.pg.stop()
        p = Proxy(CONFIG, upstream=self.up.port, dburl=self.pg.url, ttl="0s", workers=1, policy_timeout="1s")
        try:
            self.assertIn("database unreachable", p.stderr())
            self.assertEqual(http(p.port, "GET", "/apps/%s/logs" % APPS["b-app"][0], headers=auth("owner_b")).status, 503)
            self.pg.start()
            self.assertTrue(wait_until(
                lambda: http(p.port, "GET", "/apps/%s/logs" % APPS["b-app"][0], headers=auth("owner_b")).status == 200,
                timeout=15))
        finally:
            p.close()


class TestIdleReadiness(PolicyCase):
    """No traffic at all, and the database stops answering without closing
    anything (every PostgreSQL process stopped: the kernel still
    acknowledges, so TCP keepalives never fire). Idle connections are
    pinged every timeouts.policy: readiness turns 503 within 3 x policy +
    1 s (the idle wait, then the wedge limit of 2 x policy + 1 s), and 200
    again once the database answers."""

    def database(self):
        return PG(os.path.join(ROOT, "tests", "fixtures", "dify.sql"))

    def tearDown(self):
        super().tearDown()
        self.pg.close()

    def test_a_silent_database_turns_readiness_503_with_no_traffic(self):
        policy = 1.0
        self.assertEqual(http(self.proxy.admin_port, "GET", "/readyz").status, 200)
        t0 = time.time()
        self.pg.freeze()
        try:
            down = wait_until(lambda: http(self.proxy.admin_port, "GET", "/readyz").status == 503,
                              timeout=3 * policy + 1 + 4, interval=0.1)
            took = time.time() - t0
        finally:
            self.pg.thaw()
        self.assertTrue(down, "readiness still 200 %.1f s after the database went silent; stderr:\n%s"
                        % (took, self.proxy.stderr()[-1500:]))
        self.assertLessEqual(took, 3 * policy + 1 + 0.5)
        self.assertIn("presumed wedged", self.proxy.stderr())
        self.assertTrue(wait_until(lambda: http(self.proxy.admin_port, "GET", "/readyz").status == 200, timeout=15))
        self.assertEqual(self.logs("a-editor-app", "owner_a").status, 200)


class TestReadinessCoversEveryWorker(unittest.TestCase):
    """A role allowed one connection: one of two workers gets it, the other
    cannot decide. Whichever worker answers the probe, the proxy is not ready."""

    def setUp(self):
        self.pg = shared_pg()
        self.pg.psql("DROP ROLE IF EXISTS pc_one_conn; CREATE ROLE pc_one_conn LOGIN CONNECTION LIMIT 1")
        self.up = Upstream()
        self.proxy = Proxy(CONFIG, upstream=self.up.port, dburl=self.pg.url.replace("user=postgres", "user=pc_one_conn"),
                           ttl="0s", workers=2, policy_timeout="1s")

    def tearDown(self):
        self.proxy.close()
        self.up.close()
        self.pg.psql("DROP ROLE IF EXISTS pc_one_conn")

    def test_readyz_fails_on_every_worker_while_one_has_no_database_connection(self):
        self.assertTrue(wait_until(lambda: db_connections(self.proxy)["up"] == 1, timeout=10))
        self.assertEqual(db_connections(self.proxy)["up"], 1)
        # fresh connections land on either worker (SO_REUSEPORT)
        for _ in range(20):
            r = http(self.proxy.port, "GET", "/readyz")
            self.assertEqual((r.status, r.json()["failing"]), (503, "database"))
        r = http(self.proxy.admin_port, "GET", "/readyz")
        self.assertEqual((r.status, r.json()["failing"]), (503, "database"))
        self.pg.psql("ALTER ROLE pc_one_conn CONNECTION LIMIT -1")
        self.assertTrue(wait_until(lambda: http(self.proxy.port, "GET", "/readyz").status == 200, timeout=15))
        self.assertEqual(db_connections(self.proxy)["up"], 2)


class TestLockedTable(PolicyCase):
    def test_a_locked_table_gives_503_within_the_policy_budget(self):
        locker = subprocess.Popen(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(self.pg.port), "-U", "postgres",
                                   "-d", "dify", "-c", "BEGIN; LOCK TABLE apps IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4);"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.pg.wait_lock("apps")
            t = time.time()
            r = self.logs("a-editor-app", "owner_a")
            took = time.time() - t
            self.assertEqual(r.status, 503)
            self.assertLess(took, 1 + 2)  # timeouts.policy is 1 s; 2 s of margin for a busy machine
            self.assertEqual(self.up.settled_requests(), [])
        finally:
            locker.kill()
            locker.wait()
        self.assertTrue(wait_until(lambda: self.logs("a-editor-app", "owner_a").status == 200, timeout=5))


class TestCheckAndReload(PolicyCase):
    def write(self, text):
        path = os.path.join(self.proxy.dir, "check.yaml")
        for k, v in dict(port=1, upstream=2, admin_port=3, dburl=self.pg.url, ttl="0s", workers=1,
                         policy_timeout="1s").items():
            text = text.replace("{%s}" % k, str(v))
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_t_prepares_every_policy_against_the_database(self):
        r = run_portcullis("-t", "-c", self.write(CONFIG))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("all prepared against the database", r.stdout)

    def test_t_catches_bad_sql(self):
        bad = CONFIG.replace("WHERE name = :name", "WHERE nme = :name")
        r = run_portcullis("-t", "-c", self.write(bad))
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"check\.yaml:\d+:\d+: policy 'by_name' does not prepare: .*column \"nme\" does not exist")

    def test_t_catches_parameters_the_rule_does_not_bind(self):
        bad = CONFIG.replace("allow: [by_name]", "allow: [by_name, by_query]")
        r = run_portcullis("-t", "-c", self.write(bad))
        self.assertEqual(r.returncode, 1)
        self.assertIn("rule 'byname': policy 'by_query' uses parameter :conv, which this rule does not bind", r.stderr)

    def test_t_says_so_when_the_database_is_unreachable(self):
        r = run_portcullis("-t", "-c", self.write(CONFIG.replace("{dburl}", "host=127.0.0.1 port=1 dbname=x")))
        self.assertEqual(r.returncode, 0)
        self.assertIn("database unreachable", r.stderr)
        self.assertIn("NOT checked", r.stdout)

    def test_reload_with_good_sql_applies_and_with_bad_sql_keeps_the_old(self):
        self.assertEqual(self.logs("a-editor-app", "normal_a").status, 403)
        opened = CONFIG.replace("AND j.role = 'owner'", "AND j.role IN ('owner', 'normal')")
        self.assertIn("reloaded: generation", self.proxy.reload(opened))
        # each worker applies the new generation when it reads its mailbox
        self.assertTrue(wait_until(lambda: self.logs("a-editor-app", "normal_a").status == 200, timeout=10))
        broken = opened.replace("AND j.role IN ('owner', 'normal')", "AND j.rolez = 'owner'")
        outcome = self.proxy.reload(broken)
        self.assertIn("reload failed", outcome)
        self.assertIn("does not prepare", outcome)
        self.assertEqual(self.logs("a-editor-app", "normal_a").status, 200)
        self.assertEqual(self.logs("a-editor-app", "owner_a").status, 200)



class TestReloadWhileEveryConnectionIsBusy(PolicyCase):
    workers = 1  # both database connections in one worker
    ttl = "0s"

    def test_a_request_on_the_new_generation_waits_for_a_connection_instead_of_failing(self):
        app = APPS["a-editor-app"][0]
        slow = []
        threads = [threading.Thread(target=lambda u=u: slow.append(
            http(self.proxy.port, "GET", "/slow/" + app, headers=auth(u), timeout=10).status))
            for u in ("owner_a", "admin_a")]   # two subjects: two queries, one per connection
        for t in threads:
            t.start()
        self.pg.wait_active("%pg_sleep%", n=2)  # both are sleeping in PostgreSQL
        self.proxy.reload(CONFIG.replace("{ttl}", "1s"), wait=False)
        self.assertTrue(wait_until(lambda: metric(self.proxy, "portcullis_config_generation") == 2,
                                   timeout=2, interval=0.01))
        r = self.logs("a-editor-app", "owner_a")
        for t in threads:
            t.join()
        self.assertEqual(slow, [200, 200])
        self.assertEqual(r.status, 200, r.body)

if __name__ == "__main__":
    unittest.main()
