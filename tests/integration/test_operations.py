"""Issue #6: metrics, JSON logs, request ids, explain, shadow mode."""
import json
import os
import re
import time
import unittest

from harness import (Conn, Proxy, Upstream, http, metric_sum, mint, run_portcullis, scrape, scrape_settled,
                     shared_pg, wait_until)
from fixture import APPS, USERS, policies_yaml

SECRET = "ops-secret-do-not-log-me"

CONFIG = """
listen: 127.0.0.1:{port}
upstream: http://127.0.0.1:{upstream}
workers: 2
admin_listen: 127.0.0.1:{admin_port}
identity:
  secret: "%s"
  subject_claim: user_id
  sources: ["cookie:access_token", "header:Authorization"]
database:
  url: "{dburl}"
  pool: 2
cache:
  ttl: 5s
policies:
%srules:
  - name: logs
    path: /apps/{app_id:uuid}/logs
    allow: [owner, admin]
  - name: trial
    path: /apps/{app_id:uuid}/trial
    allow: [owner]
    shadow: true
  - name: blocked
    path: /blocked/**
    action: deny
  - name: open
    path: /**
    action: forward
""" % (SECRET, policies_yaml("owner", "admin"))

APP = APPS["a-editor-app"][0]


def bearer(user):
    return [("Authorization", "Bearer " + mint(SECRET, {"user_id": USERS[user]}))]


class OpsCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = shared_pg()
        cls.up = Upstream()
        cls.proxy = Proxy(CONFIG, upstream=cls.up.port, dburl=cls.pg.url)
        wait_until(lambda: http(cls.proxy.port, "GET", "/readyz").status == 200, timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        cls.up.close()


class TestMetrics(OpsCase):
    def test_counters_move_with_every_kind_of_decision(self):
        before = scrape_settled(self.proxy.admin_port)
        http(self.proxy.port, "GET", "/apps/%s/logs" % APP, headers=bearer("owner_a"))      # allow
        http(self.proxy.port, "GET", "/apps/%s/logs" % APP, headers=bearer("normal_a"))     # deny
        http(self.proxy.port, "GET", "/apps/%s/logs" % APP)                                 # unauthenticated
        http(self.proxy.port, "GET", "/open")                                                # forward
        http(self.proxy.port, "GET", "/blocked/x")                                           # deny by action
        http(self.proxy.port, "GET", "/a/%2e%2e/b")                                          # reject
        http(self.proxy.port, "GET", "/apps/%s/trial" % APP, headers=bearer("normal_a"))    # shadow_deny
        after = scrape_settled(self.proxy.admin_port)

        def delta(**labels):
            return metric_sum(after, "portcullis_requests_total", **labels) - \
                metric_sum(before, "portcullis_requests_total", **labels)
        self.assertEqual(delta(rule="logs", decision="allow"), 1)
        self.assertEqual(delta(rule="logs", decision="deny"), 1)
        self.assertEqual(delta(rule="logs", decision="unauthenticated"), 1)
        self.assertEqual(delta(rule="open", decision="forward"), 1)
        self.assertEqual(delta(rule="blocked", decision="deny"), 1)
        self.assertEqual(delta(decision="reject"), 1)
        self.assertEqual(delta(rule="trial", decision="shadow_deny"), 1)
        self.assertGreaterEqual(metric_sum(after, "portcullis_request_duration_seconds_count") -
                                metric_sum(before, "portcullis_request_duration_seconds_count"), 7)
        self.assertGreater(metric_sum(after, "portcullis_policy_queries_total", policy="owner"),
                           metric_sum(before, "portcullis_policy_queries_total", policy="owner"))
        self.assertGreater(metric_sum(after, "portcullis_policy_duration_seconds_count"), 0)

    def test_process_gauges_are_exported(self):
        m = scrape(self.proxy.admin_port)
        self.assertEqual(metric_sum(m, "portcullis_build_info"), 1)
        self.assertGreaterEqual(metric_sum(m, "portcullis_config_generation"), 1)
        self.assertEqual(metric_sum(m, "portcullis_db_connections", state="up"), 2)
        names = {name for name, _, _ in m}
        self.assertIn('portcullis_connections_active', names)
        self.assertIn('portcullis_policy_cache_entries', names)
        self.assertIn(("portcullis_upstream_errors_total", {"kind": "refused"}), [(n, l) for n, l, _ in m])

    def test_label_values_never_contain_paths_or_subjects(self):
        http(self.proxy.port, "GET", "/some/unique/path-%d" % time.time())
        text = http(self.proxy.admin_port, "GET", "/metrics").body.decode()
        for user_id in USERS.values():
            self.assertNotIn(user_id, text)
        self.assertNotIn("/some/unique", text)
        for labels in re.findall(r"\{([^}]*)\}", text):
            for k, v in re.findall(r'(\w+)="([^"]*)"', labels):
                self.assertIn(k, ("rule", "decision", "policy", "result", "kind", "state", "version", "le"))

    def test_cache_counters_move(self):
        c = Conn(self.proxy.port)
        before = scrape(self.proxy.admin_port)
        for _ in range(3):
            c.request("GET", "/apps/%s/logs" % APP, bearer("admin_a"))
        c.close()
        after = scrape(self.proxy.admin_port)
        self.assertGreaterEqual(metric_sum(after, "portcullis_policy_cache_hits_total") -
                                metric_sum(before, "portcullis_policy_cache_hits_total"), 2)

    def test_metrics_are_not_served_on_the_public_listener(self):
        self.up.clear()
        r = http(self.proxy.port, "GET", "/metrics")
        self.assertNotIn(b"portcullis_requests_total", r.body)
        self.assertEqual(self.up.requests()[-1]["target"], "/metrics")

    def test_reload_outcomes_are_counted(self):
        before = scrape(self.proxy.admin_port)
        self.assertIn("reloaded: generation", self.proxy.reload(
            CONFIG.replace("{upstream}", str(self.up.port)).replace("{dburl}", self.pg.url)
            .replace("{port}", str(self.proxy.port)).replace("{admin_port}", str(self.proxy.admin_port))))
        self.assertIn("reload failed", self.proxy.reload("not: [valid"))
        after = scrape(self.proxy.admin_port)
        self.assertEqual(metric_sum(after, "portcullis_config_reloads_total", result="success") -
                         metric_sum(before, "portcullis_config_reloads_total", result="success"), 1)
        self.assertEqual(metric_sum(after, "portcullis_config_reloads_total", result="failure") -
                         metric_sum(before, "portcullis_config_reloads_total", result="failure"), 1)
        self.assertEqual(metric_sum(after, "portcullis_config_generation"), metric_sum(before, "portcullis_config_generation") + 1)
        # put the original back
        self.proxy.reload(CONFIG.replace("{upstream}", str(self.up.port)).replace("{dburl}", self.pg.url)
                          .replace("{port}", str(self.proxy.port)).replace("{admin_port}", str(self.proxy.admin_port)))
        wait_until(lambda: http(self.proxy.port, "GET", "/readyz").status == 200, timeout=10)


class TestLogs(OpsCase):
    FIELDS = {"ts", "request_id", "client", "method", "path", "status", "rule", "decision", "reason", "subject",
              "bytes_in", "bytes_out", "duration_ms", "policy_ms", "upstream_ms", "cache", "data_decided"}

    def test_access_lines_are_json_with_every_field_and_no_secret(self):
        tok = mint(SECRET, {"user_id": USERS["owner_a"]})
        http(self.proxy.port, "GET", "/apps/%s/logs?conversation_id=secret-query-value" % APP,
             headers=[("Authorization", "Bearer " + tok), ("Cookie", "access_token=" + tok + "; other=cookie-secret"),
                      ("X-Request-Id", "fields-1")])
        http(self.proxy.port, "GET", "/apps/%s/logs" % APP, headers=[("Cookie", "access_token=" + tok[:-2] + "xx"),
                                                                     ("X-Request-Id", "fields-2")])
        self.proxy.access_lines(["fields-1", "fields-2"])
        lines = self.proxy.access_log()
        self.assertTrue(lines)
        raw = open(self.proxy.stdout_path).read() + open(self.proxy.stderr_path).read()
        for needle in (tok, tok.split(".")[2], SECRET, "secret-query-value", "cookie-secret", "Bearer"):
            self.assertNotIn(needle, raw)
        for line in lines:
            self.assertEqual(set(line) - self.FIELDS, set())
            self.assertEqual(self.FIELDS - set(line), set())
        by_id = dict((l["request_id"], l) for l in lines)
        allowed = by_id["fields-1"]
        self.assertEqual(allowed["path"], "/apps/%s/logs" % APP)
        self.assertEqual(allowed["subject"], USERS["owner_a"])
        self.assertEqual(allowed["status"], 200)
        self.assertEqual(allowed["rule"], "logs")
        self.assertIn(allowed["cache"], ("hit", "miss"))
        self.assertIsNone(allowed["data_decided"])  # its rule binds no operator data
        self.assertIsInstance(allowed["policy_ms"], float)
        self.assertIsInstance(allowed["upstream_ms"], float)
        self.assertGreater(allowed["bytes_out"], 0)
        bad = by_id["fields-2"]
        self.assertEqual(bad["decision"], "unauthenticated")
        self.assertIn("invalid credential", bad["reason"])

    def test_denials_say_why(self):
        # workers flush their own lines: find each by its request id
        http(self.proxy.port, "GET", "/apps/%s/logs" % APP, headers=bearer("normal_a") + [("X-Request-Id", "why-1")])
        http(self.proxy.port, "GET", "/apps/%s/logs" % APP, headers=[("X-Request-Id", "why-2")])
        tok_a, tok_b = mint(SECRET, {"user_id": USERS["owner_a"]}), mint(SECRET, {"user_id": USERS["normal_a"]})
        http(self.proxy.port, "GET", "/apps/%s/logs" % APP, headers=[("Cookie", "access_token=" + tok_a),
                                                                     ("Authorization", "Bearer " + tok_b),
                                                                     ("X-Request-Id", "why-3")])
        lines = self.proxy.access_lines(["why-1", "why-2", "why-3"])
        self.assertEqual(lines["why-1"]["reason"], "policy owner: no row; policy admin: no row")
        self.assertEqual(lines["why-2"]["reason"], "no credential")
        self.assertEqual(lines["why-3"]["reason"], "credentials disagree")

    def test_text_format_is_available(self):
        cfg = CONFIG.replace("workers: 2", "workers: 1\nlog: {format: text, level: warn}")
        p = Proxy(cfg, upstream=self.up.port, dburl=self.pg.url)
        try:
            http(p.port, "GET", "/open/text")
            wait_until(lambda: "/open/text" in p.stdout())
            out = p.stdout()
            self.assertIn('"GET /open/text" 200 rule=open decision=forward', out)
            self.assertNotIn("listening on", p.stderr())  # info lines are below level warn
        finally:
            p.close()


class TestRequestId(OpsCase):
    def test_a_well_formed_incoming_id_is_kept_sent_upstream_and_logged(self):
        r = http(self.proxy.port, "GET", "/open/rid", headers=[("X-Request-Id", "abc-123.XYZ_9")])
        self.assertEqual(r.header("x-request-id"), None)  # forwarded responses carry the upstream's headers
        hs = dict((k.lower(), v) for k, v in r.json()["headers"])
        self.assertEqual(hs["x-request-id"], "abc-123.XYZ_9")
        self.proxy.access_lines(["abc-123.XYZ_9"])

    def test_a_malformed_or_missing_id_is_replaced_by_a_generated_one(self):
        seen = []
        for headers in ([("X-Request-Id", "bad id with spaces")], [("X-Request-Id", "x" * 200)], [],
                        [("X-Request-Id", "a"), ("X-Request-Id", "b")]):
            r = http(self.proxy.port, "GET", "/open/rid", headers=headers)
            ids = [v for k, v in r.json()["headers"] if k.lower() == "x-request-id"]
            self.assertEqual(len(ids), 1)
            self.assertRegex(ids[0], r"^[0-9a-f]{8}-\d+-\d+$")
            seen.append(ids[0])
        self.assertEqual(len(set(seen)), 4)

    def test_denials_carry_the_request_id_to_the_client(self):
        r = http(self.proxy.port, "GET", "/blocked/x", headers=[("X-Request-Id", "trace-me-1")])
        self.assertEqual(r.status, 403)
        self.assertEqual(r.header("x-request-id"), "trace-me-1")


class TestShadow(OpsCase):
    def test_shadow_rules_forward_a_denial_but_log_and_count_it(self):
        self.up.clear()
        r = http(self.proxy.port, "GET", "/apps/%s/trial" % APP, headers=bearer("normal_a") + [("X-Request-Id", "sh-1")])
        self.assertEqual(r.status, 200)
        self.assertEqual(len(self.up.requests()), 1)
        line = self.proxy.access_lines(["sh-1"])["sh-1"]
        self.assertEqual((line["rule"], line["decision"]), ("trial", "shadow_deny"))
        self.assertIn("no row", line["reason"])

    def test_shadow_rules_still_allow_normally(self):
        r = http(self.proxy.port, "GET", "/apps/%s/trial" % APP, headers=bearer("owner_a") + [("X-Request-Id", "sh-2")])
        self.assertEqual(r.status, 200)
        self.assertEqual(self.proxy.access_lines(["sh-2"])["sh-2"]["decision"], "allow")


class TestExplain(OpsCase):
    def explain(self, *args):
        return run_portcullis("explain", "-c", self.proxy.config_path, *args)

    def test_explain_allow(self):
        tok = mint(SECRET, {"user_id": USERS["admin_a"]})
        r = self.explain("GET", "http://h/apps/%s/logs" % APP.upper(), "-H", "Authorization: Bearer " + tok)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("canonical:   /apps/%s/logs" % APP.upper(), r.stdout)
        self.assertRegex(r.stdout, r"rule:        logs \(.*portcullis\.yaml:\d+:\d+\)")
        self.assertIn("capture:     app_id = %s" % APP, r.stdout)
        self.assertIn("credential:  header:Authorization: verified, subject %s" % USERS["admin_a"], r.stdout)
        self.assertIn("policy:      owner(:app_id='%s', :subject='%s') -> fail (no row)" % (APP, USERS["admin_a"]),
                      r.stdout)
        self.assertIn("policy:      admin(:app_id='%s', :subject='%s') -> pass (a row)" % (APP, USERS["admin_a"]),
                      r.stdout)
        self.assertIn("decision:    allow", r.stdout)
        self.assertNotIn(tok, r.stdout)

    def test_explain_deny(self):
        tok = mint(SECRET, {"user_id": USERS["normal_a"]})
        r = self.explain("GET", "/apps/%s/logs" % APP, "-H", "Cookie: access_token=" + tok)
        self.assertEqual(r.returncode, 1)
        self.assertIn("decision:    deny (policy owner: no row; policy admin: no row)", r.stdout)
        self.assertIn("status:      403", r.stdout)

    def test_explain_a_forged_credential(self):
        tok = mint("wrong-secret", {"user_id": USERS["owner_a"]})
        r = self.explain("GET", "/apps/%s/logs" % APP, "-H", "Authorization: Bearer " + tok)
        self.assertEqual(r.returncode, 1)
        self.assertIn("credential:  header:Authorization: INVALID (bad signature)", r.stdout)
        self.assertIn("status:      401", r.stdout)

    def test_explain_a_rejected_path(self):
        r = self.explain("GET", "/apps/x/%2e%2e/logs")
        self.assertEqual(r.returncode, 1)
        self.assertIn("path:        rejected: dot segment in path", r.stdout)
        self.assertIn("status:      400", r.stdout)

    def test_explain_a_forwarded_route(self):
        r = self.explain("POST", "/anything/else")
        self.assertEqual(r.returncode, 0)
        self.assertIn("rule:        open", r.stdout)
        self.assertIn("status:      forwarded to", r.stdout)

    def test_explain_with_the_database_down_is_an_error(self):
        cfg = os.path.join(self.proxy.dir, "down.yaml")
        with open(self.proxy.config_path) as f:
            text = f.read().replace(self.pg.url, "host=127.0.0.1 port=1 dbname=x connect_timeout=1")
        with open(cfg, "w") as f:
            f.write(text)
        tok = mint(SECRET, {"user_id": USERS["owner_a"]})
        r = run_portcullis("explain", "-c", cfg, "GET", "/apps/%s/logs" % APP, "-H", "Authorization: Bearer " + tok)
        self.assertEqual(r.returncode, 1)
        self.assertIn("ERROR", r.stdout)
        self.assertIn("status:      503", r.stdout)


if __name__ == "__main__":
    unittest.main()


# Policies that answer late or early on purpose: each query of a "slow" one
# waits 300 ms in the database, a "fast" one answers at once. With one worker
# and four connections, the two queries of one decision run on different
# connections, so the fast one is answered first.
ORDER_CONFIG = """
listen: 127.0.0.1:{port}
upstream: http://127.0.0.1:{upstream}
workers: 1
identity:
  secret: "%s"
  subject_claim: user_id
  sources: ["header:Authorization"]
database:
  url: "{dburl}"
  pool: 4
cache:
  ttl: 0s
policies:
  slow_no: |
    SELECT 1 FROM (SELECT pg_sleep(0.3)::text AS z OFFSET 0) s WHERE z = 'never' AND :subject::text IS NOT NULL
  slow_yes: |
    SELECT 1 FROM (SELECT pg_sleep(0.3)::text AS z OFFSET 0) s WHERE z = '' AND :subject::text IS NOT NULL
  fast_no: |
    SELECT 1 WHERE :subject::text IS NULL
  fast_yes: |
    SELECT 1 WHERE :subject::text IS NOT NULL
rules:
  - name: slow-first
    path: /slow-first
    allow: [slow_no, fast_no]
  - name: fast-first
    path: /fast-first
    allow: [fast_no, slow_no]
  - name: both-pass
    path: /both-pass
    allow: [slow_yes, fast_yes]
  - name: open
    path: /**
    action: forward
""" % SECRET


class TestReasonOrder(unittest.TestCase):
    """A decision's reason lists policies in the order the rule lists them,
    whatever order the database answers in."""

    @classmethod
    def setUpClass(cls):
        cls.pg = shared_pg()
        cls.up = Upstream()
        cls.proxy = Proxy(ORDER_CONFIG, upstream=cls.up.port, dburl=cls.pg.url)
        wait_until(lambda: http(cls.proxy.port, "GET", "/readyz").status == 200, timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        cls.up.close()

    def reasons(self, path, n=4):
        ids = []
        for i in range(n):
            rid = "order-%s-%d" % (path.strip("/"), i)
            http(self.proxy.port, "GET", path, headers=bearer("normal_a") + [("X-Request-Id", rid)])
            ids.append(rid)
        lines = self.proxy.access_lines(ids)
        return [lines[i]["reason"] for i in ids]

    def test_a_denial_lists_a_late_answer_first_when_the_rule_lists_it_first(self):
        self.assertEqual(set(self.reasons("/slow-first")), {"policy slow_no: no row; policy fast_no: no row"})

    def test_a_denial_lists_an_early_answer_first_when_the_rule_lists_it_first(self):
        self.assertEqual(set(self.reasons("/fast-first")), {"policy fast_no: no row; policy slow_no: no row"})

    def test_an_allow_names_the_first_passing_policy_in_rule_order(self):
        self.assertEqual(set(self.reasons("/both-pass")), {"policy slow_yes: row"})


FALLBACK_CONFIG = """
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
policies:
%srules:
  - name: known-editor-route
    path: /apps/{app_id:uuid}/model-config
    action: forward
  - name: unknown-app-route
    path: /apps/{app_id:uuid}/**
    allow: [owner, admin]
    fallback: true
  - name: unknown-trial-route
    path: /trial/{app_id:uuid}/**
    allow: [owner, admin]
    fallback: true
    shadow: true
  - name: open
    path: /**
    action: forward
""" % (SECRET, policies_yaml("owner", "admin"))


class TestFallback(unittest.TestCase):
    """A catch-all for routes a rule pack does not know: authorized like a
    protected route, and every request that reaches it is logged with its
    route and counted."""

    @classmethod
    def setUpClass(cls):
        cls.pg = shared_pg()
        cls.up = Upstream()
        cls.proxy = Proxy(FALLBACK_CONFIG, upstream=cls.up.port, dburl=cls.pg.url)
        wait_until(lambda: http(cls.proxy.port, "GET", "/readyz").status == 200, timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        cls.up.close()

    def fallback_count(self, rule):
        return metric_sum(scrape_settled(self.proxy.admin_port), "portcullis_fallback_requests_total", rule=rule)

    def test_an_unknown_route_is_authorized_like_a_protected_one_logged_and_counted(self):
        before = self.fallback_count("unknown-app-route")
        path = "/apps/%s/new-log-export" % APP
        self.assertEqual(http(self.proxy.port, "GET", path, headers=bearer("normal_a")).status, 403)
        self.assertEqual(http(self.proxy.port, "GET", path, headers=bearer("admin_a")).status, 200)
        self.assertEqual(http(self.proxy.port, "GET", path).status, 401)
        self.assertEqual(self.fallback_count("unknown-app-route") - before, 3)
        self.proxy.wait_stderr("rule unknown-app-route: GET %s is a route the rule pack does not know; it was "
                               "authorized like a protected route" % path)
        # a known route is neither
        self.assertEqual(http(self.proxy.port, "GET", "/apps/%s/model-config" % APP, headers=bearer("normal_a")).status,
                         200)
        self.assertEqual(self.fallback_count("unknown-app-route") - before, 3)

    def test_a_shadow_fallback_forwards_but_still_logs_and_counts(self):
        before = self.fallback_count("unknown-trial-route")
        path = "/trial/%s/whatever" % APP
        self.assertEqual(http(self.proxy.port, "GET", path, headers=bearer("normal_a") + [("X-Request-Id", "fbs-1")])
                         .status, 200)
        self.assertEqual(self.fallback_count("unknown-trial-route") - before, 1)
        self.assertEqual(self.proxy.access_lines(["fbs-1"])["fbs-1"]["decision"], "shadow_deny")
        self.proxy.wait_stderr("rule unknown-trial-route: GET %s is a route the rule pack does not know; it was "
                               "forwarded (shadow)" % path)

    def test_explain_says_a_route_is_unknown(self):
        r = run_portcullis("explain", "-c", self.proxy.config_path, "GET", "/apps/%s/other" % APP)
        self.assertIn("[fallback: a route the rule pack does not know]", r.stdout)


STORM_CONFIG = """
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
  pool: {pool}
  connect_timeout: {connect_timeout}
policies:
%srules:
  - name: logs
    path: /apps/{app_id:uuid}/logs
    allow: [owner, admin]
  - name: open
    path: /**
    action: forward
""" % (SECRET, policies_yaml("owner", "admin"))


class TestReloadStorm(unittest.TestCase):
    """Reloads replace each worker's database pool while the admin thread
    renders /metrics and requests are decided: the admin thread never
    touches a worker's pool (make check-tsan runs this under
    ThreadSanitizer), and a reload never holds up the admin listener."""

    def setUp(self):
        self.pg = shared_pg()
        self.up = Upstream()
        self.cfg = lambda pool, dburl=None, ct="5s": STORM_CONFIG.replace("{pool}", str(pool)).replace(
            "{connect_timeout}", ct).replace("{dburl}", dburl or self.pg.url)
        self.proxy = Proxy(self.cfg(2), upstream=self.up.port)
        wait_until(lambda: http(self.proxy.port, "GET", "/readyz").status == 200, timeout=15)

    def tearDown(self):
        self.proxy.close()
        self.up.close()

    def test_metrics_and_decisions_stay_right_through_forty_reloads_that_replace_the_pools(self):
        import threading
        stop = threading.Event()
        scrapes, bad = [0], []

        def scrape_loop():
            while not stop.is_set():
                r = http(self.proxy.admin_port, "GET", "/metrics", timeout=10)
                if r.status != 200 or b"portcullis_db_connections" not in r.body:
                    bad.append(r.status)
                scrapes[0] += 1

        def traffic_loop():
            while not stop.is_set():
                for user, want in (("owner_a", (200, 503)), ("normal_a", (403, 503))):
                    r = http(self.proxy.port, "GET", "/apps/%s/logs" % APP, headers=bearer(user), timeout=10)
                    if r.status not in want:   # 503 only while a pool is being replaced
                        bad.append((user, r.status))
        threads = [threading.Thread(target=scrape_loop) for _ in range(3)] + [threading.Thread(target=traffic_loop)]
        for t in threads:
            t.start()
        try:
            for i in range(40):
                self.assertIn("reloaded", self.proxy.reload(self.cfg(4 if i % 2 == 0 else 2)))
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(bad, [])
        self.assertGreater(scrapes[0], 40)
        self.assertEqual(metric_sum(scrape(self.proxy.admin_port), "portcullis_config_generation"), 41)
        self.assertIsNone(self.proxy.proc.poll())

    def test_a_reload_waiting_on_an_unreachable_database_does_not_hold_up_the_admin_listener(self):
        import socket as sk
        # a database whose accept queue is full: the reload's check waits
        # for its connect timeout (5 s)
        lsock = sk.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(0)
        fillers = []
        for _ in range(4):
            f = sk.socket()
            f.setblocking(False)
            try:
                f.connect(lsock.getsockname())
            except BlockingIOError:
                pass
            fillers.append(f)
        try:
            before = len(self.proxy.reload_outcomes())
            self.proxy.reload(self.cfg(2, dburl="host=127.0.0.1 port=%d dbname=x" % lsock.getsockname()[1]),
                              wait=False)
            self.proxy.wait_stderr("SIGHUP: reloading")
            slowest = 0.0
            while len(self.proxy.reload_outcomes()) == before:
                t = time.time()
                self.assertEqual(http(self.proxy.admin_port, "GET", "/metrics", timeout=10).status, 200)
                slowest = max(slowest, time.time() - t)
            # the check took its connect timeout; the admin listener never
            # waited for it (2 s of margin for a busy machine, well under 5 s)
            self.assertLess(slowest, 2.0)
        finally:
            for f in fillers:
                f.close()
            lsock.close()


class TestLabelSlots(unittest.TestCase):
    """Rule names get metric label slots; a slot nobody's config uses any
    more is given back and serves a new name, whose counters start at 0."""

    RULES = 300

    def config(self, gen):
        rules = "".join("  - name: g%d_r%d\n    path: /g%d/r%d\n    action: forward\n" % (gen, i, gen, i)
                        for i in range(self.RULES))
        return ("listen: 127.0.0.1:{port}\nupstream: http://127.0.0.1:{upstream}\nworkers: 2\n"
                "admin_listen: 127.0.0.1:{admin_port}\nrules:\n" + rules)

    def test_renamed_rules_over_many_reloads_keep_their_own_labels_and_counts(self):
        up = Upstream(log=False)
        proxy = Proxy(self.config(0), upstream=up.port)
        try:
            # 5 generations of 300 names: more than the slots there are, so
            # later generations need the slots of earlier ones
            for gen in range(5):
                if gen > 0:
                    self.assertIn("reloaded", proxy.reload(self.config(gen)))
                c = Conn(proxy.port)
                for i in range(self.RULES):
                    self.assertEqual(c.request("GET", "/g%d/r%d" % (gen, i)).status, 200)
                c.close()

                def settled(g=gen):
                    samples = scrape(proxy.admin_port)
                    rules = {l.get("rule") for n, l, v in samples if n == "portcullis_requests_total"}
                    mine = [metric_sum(samples, "portcullis_requests_total", rule="g%d_r%d" % (g, i),
                                       decision="forward") for i in range(self.RULES)]
                    old = {r for r in rules if r and not r.startswith("g%d_" % g)}
                    return mine == [1] * self.RULES and not old
                self.assertTrue(wait_until(settled, timeout=15),
                                "generation %d: %s" % (gen, [(n, l, v) for n, l, v in scrape(proxy.admin_port)
                                                             if n == "portcullis_requests_total"][:20]))
        finally:
            proxy.close()
            up.close()
