#!/usr/bin/env python3
"""deploy/observability/ checked with Prometheus's own tool and against the
live binary (issue #15, section 3).

    python3 tests/observability/test_observability.py [-v] [-k PATTERN] [--json FILE]

Exits non-zero on any failure; --json FILE writes the counts as
tests/run_integration.py does, for tests/run_tests.py. Needs promtool (Debian's prometheus package,
installed by tests/deps.sh), build/portcullis and PostgreSQL 15.

- the rules pass `promtool check rules`, and `promtool test rules` passes
  on deploy/observability/tests/*.yml, which must make every alert fire and
  also hold it silent;
- every alert carries a summary, a description and a runbook_url whose
  anchor exists in README.md;
- the dashboard is a Grafana dashboard with datasource, job and instance
  variables, and every one of its queries parses (promtool, again);
- build/portcullis is started against a throwaway PostgreSQL, sent allowed,
  denied, unauthenticated and forwarded requests, and its /metrics:
  passes `promtool check metrics`; exports every metric the rules and the
  dashboard query (the names missing are printed); has every label the
  queries match on; and shows up on the dashboard metric by metric.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

from harness import PG, Conn, Proxy, Upstream, http, mint, wait_until  # noqa: E402

try:
    import yaml
except ImportError:  # an interpreter of its own: use Debian's python3-yaml
    sys.path.append("/usr/lib/python3/dist-packages")
    import yaml

OBS = os.path.join(ROOT, "deploy", "observability")
RULES = os.path.join(OBS, "portcullis.rules.yml")
RULE_TESTS = os.path.join(OBS, "tests")
DASHBOARD = os.path.join(OBS, "portcullis-dashboard.json")
README = os.path.join(ROOT, "README.md")


def promtool(*args, stdin=None):
    exe = shutil.which("promtool")
    if exe is None:
        raise AssertionError("promtool not found: install Debian's prometheus package (sh tests/deps.sh as root)")
    return subprocess.run([exe] + list(args), input=stdin, capture_output=True, text=True, timeout=120)


# ---- PromQL: the metric names and label matchers an expression uses ----

_TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<dur>(?:\d+(?:ms|[smhdwy]))+)(?![\w])
  | (?P<num>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){}\[\],@:])
""", re.X)

# followed by a parenthesised list of label names, not by an expression
_LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# words that are never metric names where they stand
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
             "sum", "avg", "count", "min", "max", "group", "stddev", "stdvar", "topk", "bottomk",
             "quantile", "count_values", "limitk", "limit_ratio"}


def promql_tokens(expr):
    pos, out = 0, []
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise ValueError("cannot read PromQL at %r" % expr[pos:pos + 30])
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def _unquote(s):
    """A PromQL string literal's value (Go's escapes, as JSON's here)."""
    if s[0] == "`":
        return s[1:-1]
    if s[0] == "'":
        s = '"%s"' % re.sub(r'\\\'|"', lambda m: "'" if m.group() != '"' else '\\"', s[1:-1])
    return json.loads(s)


def promql_selectors(expr):
    """[(metric name or None, [(label, op, value)])] for every vector
    selector of expr; functions, aggregations, keywords, label lists,
    strings, numbers and durations are not selectors."""
    toks = promql_tokens(expr)
    out = []
    i = 0

    def matchers(j):
        """Parse {...} starting at toks[j] == '{'; return (list, index after '}')."""
        ms = []
        j += 1
        while toks[j][1] != "}":
            if toks[j][1] == ",":
                j += 1
                continue
            label, op, val = toks[j][1], toks[j + 1][1], toks[j + 2]
            if val[0] != "str":
                raise ValueError("label matcher %s%s without a string in %r" % (label, op, expr))
            ms.append((label, op, _unquote(val[1])))
            j += 3
        return ms, j + 1

    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "ident":
            low = text.lower()
            if low in _LABEL_LIST_KEYWORDS:
                i += 1
                if nxt == "(":
                    while toks[i][1] != ")":
                        i += 1
                    i += 1
                continue
            if nxt == "(" or low in _KEYWORDS:
                i += 1
                continue
            if nxt == "{":
                ms, i = matchers(i + 1)
            else:
                ms, i = [], i + 1
            out.append((text, ms))
            continue
        if text == "[":  # a range or subquery: durations only
            while toks[i][1] != "]":
                i += 1
            i += 1
            continue
        if text == "{":
            ms, i = matchers(i)
            names = [v for label, op, v in ms if label == "__name__" and op == "="]
            out.append((names[0] if names else None, [m for m in ms if m[0] != "__name__"]))
            continue
        i += 1
    return out


def promql_metric_names(expr):
    return {name for name, _ in promql_selectors(expr)}


# Grafana's variables, in an expression, become something promtool can read:
# intervals a duration, other variables (in label values) a regex.
def grafana_intervals(expr):
    return re.sub(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}", "5m", expr)


def grafana_to_promql(expr):
    return re.sub(r"\$\{?\w+(?::\w+)?\}?", ".*", grafana_intervals(expr))


# ---- the files under test ----

def load_rules():
    with open(RULES) as f:
        return yaml.safe_load(f)


def rule_list():
    return [r for g in load_rules()["groups"] for r in g["rules"]]


def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def dashboard_panels(d):
    for p in d.get("panels", []):
        yield p
        for q in p.get("panels", []):  # collapsed rows hold their panels
            yield q


def dashboard_queries(d):
    """[(where, PromQL)] of every panel target and every query variable."""
    out = []
    for p in dashboard_panels(d):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append(("panel %r (%s)" % (p.get("title"), t.get("refId")), t["expr"]))
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", q or "", re.S)
        if m:
            q = m.group(1)
        else:
            m = re.fullmatch(r"\s*(?:query_result|label_values|metrics)\((.*)\)\s*", q or "", re.S)
            q = m.group(1) if m else q
        out.append(("variable $%s" % v["name"], q))
    return out


def rules_queries():
    out = []
    for r in rule_list():
        out.append(("%s %s" % ("alert" if "alert" in r else "record", r.get("alert") or r.get("record")), r["expr"]))
    return out


def recorded_names():
    return {r["record"] for r in rule_list() if "record" in r}


# ---- the exposition format ----

def parse_exposition(text):
    """({family: type}, {family or sample name: set of label names})."""
    types, labels = {}, {}
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            types[m.group(1)] = m.group(2)
            labels.setdefault(m.group(1), set())
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s", line)
        if m:
            labels.setdefault(m.group(1), set()).update(re.findall(r'(\w+)="', m.group(2) or ""))
    return types, labels


HIST_SUFFIXES = ("_bucket", "_sum", "_count")


def family_of(name, types):
    """The family a referenced name belongs to: histogram (and summary)
    series names lose their _bucket/_sum/_count suffix."""
    for suf in HIST_SUFFIXES:
        base = name[:-len(suf)]
        if name.endswith(suf) and types.get(base) in ("histogram", "summary"):
            return base
    return name


# ---- a live portcullis ----

SECRET = "observability-test-secret"
APP = "a1a1a1a1-0000-4000-8000-000000000001"
OWNER = "a0000000-0000-4000-8000-00000000000a"
MEMBER = "a0000000-0000-4000-8000-00000000000d"

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
    query: "SELECT '1.0'"
    known: ["1.0"]
cache:
  ttl: 60s
policies:
  owner: |
    SELECT 1 FROM apps a
      JOIN tenant_account_joins j ON j.tenant_id = a.tenant_id
     WHERE a.id = :app_id AND j.account_id::text = :subject AND j.role = 'owner'
rules:
  - name: logs
    path: /apps/{app_id:uuid}/logs
    allow: [owner]
  - name: blocked
    path: /blocked/**
    action: deny
  - name: open
    path: /**
    action: forward
""" % SECRET

LIVE = {}


def bearer(subject):
    return [("Authorization", "Bearer " + mint(SECRET, {"user_id": subject}))]


def samples(text):
    out = []
    for line in text.splitlines():
        m = re.match(r"(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m:
            out.append((m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")), float(m.group(3))))
    return out


def has_sample(text, name, **labels):
    return any(n == name and all(l.get(k) == v for k, v in labels.items()) and v > 0
               for n, l, v in samples(text))


def setUpModule():
    # cleanups run even when setUpModule fails (tearDownModule would not)
    LIVE["pg"] = pg = PG(os.path.join(ROOT, "tests", "fixtures", "dify.sql"))
    unittest.addModuleCleanup(pg.close)
    LIVE["up"] = up = Upstream(log=False)
    unittest.addModuleCleanup(up.close)
    LIVE["proxy"] = proxy = Proxy(CONFIG, upstream=up.port, dburl=pg.url)
    unittest.addModuleCleanup(proxy.close)
    if not wait_until(lambda: http(proxy.port, "GET", "/readyz").status == 200, timeout=15):
        raise RuntimeError("portcullis never became ready: %s" % proxy.stderr())
    sent = [
        ("GET", "/apps/%s/logs" % APP, bearer(OWNER), 200),    # allow, policy pass
        ("GET", "/apps/%s/logs" % APP, bearer(OWNER), 200),    # allow from the decision cache
        ("GET", "/apps/%s/logs" % APP, bearer(MEMBER), 403),   # deny, policy fail
        ("GET", "/apps/%s/logs" % APP, [], 401),               # unauthenticated
        ("GET", "/blocked/x", [], 403),                        # deny by action
        ("GET", "/open", [], 200),                             # forward
    ]
    # one keep-alive connection: one worker, whose decision cache answers
    # the second request
    c = Conn(proxy.port)
    try:
        for method, path, headers, want in sent:
            got = c.request(method, path, headers=headers).status
            if got != want:
                raise RuntimeError("%s %s: %d, expected %d" % (method, path, got, want))
    finally:
        c.close()

    def scraped():
        # a request is counted when it ends, which may be just after its
        # client has read the response: wait until every kind is counted
        text = http(proxy.admin_port, "GET", "/metrics").body.decode()
        want = [("portcullis_requests_total", {"decision": d}) for d in ("allow", "deny", "unauthenticated", "forward")]
        want += [("portcullis_policy_queries_total", {"result": r}) for r in ("pass", "fail")]
        want += [("portcullis_policy_cache_hits_total", {}), ("portcullis_policy_duration_seconds_count", {})]
        return text if all(has_sample(text, n, **l) for n, l in want) else None
    LIVE["scrape"] = wait_until(scraped, timeout=5)
    if not LIVE["scrape"]:
        raise RuntimeError("the scrape never counted every kind of request:\n%s" %
                           http(proxy.admin_port, "GET", "/metrics").body.decode())


# ---- the tests ----

class TestPromqlReader(unittest.TestCase):
    """The reader that the exported-metrics check relies on."""

    def test_finds_metric_names_and_skips_functions_keywords_and_label_lists(self):
        cases = {
            'sum by (job, instance) (rate(foo_total{a="b"}[5m])) / on (job) group_left bar': {"foo_total", "bar"},
            'histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m:1m])))': {"x_bucket"},
            'a offset 1h30m unless ignoring (kind) b @ start()': {"a", "b"},
            'label_replace(up, "dst", "$1", "src", "(.*)")': {"up"},
            '{__name__="q", job="j"} > bool 0 and without_rule:rec:rate5m * inf': {"q", "without_rule:rec:rate5m"},
            'count_values("v", m) or topk(5, sum without (x) (n)) - nan': {"m", "n"},
            '# a comment\n  max_over_time(sum by (instance) (c)[1h:]) # trailing': {"c"},
        }
        for expr, want in cases.items():
            with self.subTest(expr=expr):
                self.assertEqual(promql_metric_names(expr), want)

    def test_reads_label_matchers(self):
        self.assertEqual(promql_selectors('rate(m{a="x", b=~"y|z", c!="\\"q\\""}[5m])'),
                         [("m", [("a", "=", "x"), ("b", "=~", "y|z"), ("c", "!=", '"q"')])])

    def test_grafana_variables_become_promql(self):
        self.assertEqual(grafana_to_promql('rate(m{instance=~"$instance",job=~"${job}"}[$__rate_interval])'),
                         'rate(m{instance=~".*",job=~".*"}[5m])')


class TestRules(unittest.TestCase):
    def test_promtool_check_rules_accepts_the_rules(self):
        r = promtool("check", "rules", RULES)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_promtool_unit_tests_of_the_rules_pass(self):
        files = sorted(os.path.join(RULE_TESTS, f) for f in os.listdir(RULE_TESTS) if f.endswith(".yml"))
        self.assertTrue(files, "no unit tests in %s" % RULE_TESTS)
        r = promtool("test", "rules", *files)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_every_alert_has_unit_tests_that_fire_it_and_that_hold_it_silent(self):
        fires, silent = set(), set()
        for f in os.listdir(RULE_TESTS):
            if not f.endswith(".yml"):
                continue
            with open(os.path.join(RULE_TESTS, f)) as fh:
                doc = yaml.safe_load(fh)
            for t in doc.get("tests", []):
                for a in t.get("alert_rule_test", []):
                    (fires if a.get("exp_alerts") else silent).add(a["alertname"])
        alerts = {r["alert"] for r in rule_list() if "alert" in r}
        self.assertEqual(sorted(alerts - fires), [], "alerts no unit test makes fire")
        self.assertEqual(sorted(alerts - silent), [], "alerts no unit test expects silent")
        self.assertEqual(sorted((fires | silent) - alerts), [], "unit tests of alerts that do not exist")

    def test_every_alert_has_severity_summary_description_and_its_runbook_anchor(self):
        for r in rule_list():
            if "alert" not in r:
                continue
            with self.subTest(alert=r["alert"]):
                self.assertIn(r.get("labels", {}).get("severity"), ("critical", "warning"))
                ann = r.get("annotations", {})
                for k in ("summary", "description", "runbook_url"):
                    self.assertTrue(ann.get(k, "").strip(), "%s has no %s" % (r["alert"], k))
                self.assertTrue(ann["runbook_url"].endswith("README.md#runbook-" + r["alert"].lower()),
                                ann["runbook_url"])

    def test_runbook_anchors_exist_in_the_readme(self):
        with open(README) as f:
            text = f.read()
        anchors = set(re.findall(r'<a\s+(?:id|name)="([^"]+)"', text))
        for line in text.splitlines():
            m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:  # GitHub's heading slug: lower case, punctuation dropped, spaces to hyphens
                slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
                anchors.add(slug)
        missing = []
        for r in rule_list():
            if "alert" in r:
                anchor = r["annotations"]["runbook_url"].rpartition("#")[2]
                if anchor not in anchors:
                    missing.append(anchor)
        if missing:
            self.fail("%d runbook anchors README.md does not have: %s" % (len(missing), " ".join(missing)))


class TestDashboard(unittest.TestCase):
    def setUp(self):
        self.d = load_dashboard()

    def test_is_a_grafana_dashboard_of_schema_36_or_later_with_datasource_and_instance_variables(self):
        self.assertGreaterEqual(self.d["schemaVersion"], 36)
        self.assertTrue(self.d.get("title") and self.d.get("uid"))
        variables = {v["name"]: v for v in self.d["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        for name in ("job", "instance"):
            self.assertEqual(variables[name]["type"], "query")
            self.assertEqual(variables[name]["datasource"]["uid"], "${datasource}")

    def test_every_panel_queries_the_chosen_datasource_and_ids_are_unique(self):
        ids = []
        for p in dashboard_panels(self.d):
            ids.append(p["id"])
            if p["type"] == "row":
                continue
            with self.subTest(panel=p["title"]):
                self.assertEqual(p["datasource"]["uid"], "${datasource}")
                self.assertTrue(p["targets"])
                for t in p["targets"]:
                    self.assertEqual(t["datasource"]["uid"], "${datasource}")
                    self.assertTrue(t.get("expr"))
        self.assertEqual(len(ids), len(set(ids)), "duplicate panel ids")

    def test_every_panel_query_selects_by_job_and_instance(self):
        for where, expr in dashboard_queries(self.d):
            if where.startswith("variable"):
                continue
            for name, ms in promql_selectors(grafana_intervals(expr)):
                with self.subTest(query=where, metric=name):
                    self.assertIn(("instance", "=~", "$instance"), ms)
                    self.assertIn(("job", "=~", "$job"), ms)

    def test_every_dashboard_query_parses(self):
        # promtool parses a rules file: one recording rule per query
        rules = [{"record": "dashboard:query_%d" % i, "expr": grafana_to_promql(expr)}
                 for i, (_, expr) in enumerate(dashboard_queries(self.d))]
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
        try:
            r = promtool("check", "rules", f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class TestLiveMetrics(unittest.TestCase):
    """Against /metrics of build/portcullis, started by setUpModule."""

    def setUp(self):
        self.text = LIVE["scrape"]
        self.types, self.labels = parse_exposition(self.text)

    def test_promtool_check_metrics_accepts_the_live_scrape(self):
        r = promtool("check", "metrics", stdin=self.text)
        self.assertEqual(r.returncode, 0, "promtool check metrics:\n" + r.stdout + r.stderr)

    def used_names(self):
        """{family: [where]} of every metric the rules and the dashboard
        query, recorded series excepted (their expressions are read)."""
        recorded = recorded_names()
        used = {}
        for src, queries in (("rules", rules_queries()), ("dashboard", dashboard_queries(load_dashboard()))):
            for where, expr in queries:
                for name in promql_metric_names(grafana_to_promql(expr)):
                    if name is None or name in recorded:
                        continue
                    used.setdefault(family_of(name, self.types), []).append("%s: %s" % (src, where))
        return used

    def test_every_metric_the_rules_and_dashboard_query_is_exported(self):
        used = self.used_names()
        self.assertTrue(used, "no metric name read from the rules and the dashboard")
        missing = sorted(n for n in used if n not in self.types and n not in self.labels)
        if missing:
            binary = os.path.relpath(LIVE["proxy"].proc.args[0], ROOT)
            self.fail("%d metrics queried but not exported by %s: %s\n%s" % (
                len(missing), binary, " ".join(missing),
                "\n".join("  %s: queried by %s" % (n, "; ".join(sorted(set(used[n])))) for n in missing)))

    def test_every_label_the_queries_match_on_is_on_the_exported_metric(self):
        recorded = recorded_names()
        queries = rules_queries() + dashboard_queries(load_dashboard())
        for where, expr in queries:
            for name, ms in promql_selectors(grafana_to_promql(expr)):
                if name is None or name in recorded or not self.labels.get(name):
                    continue  # recorded, or not exported (the check above says so)
                for label, _, _ in ms:
                    if label in ("job", "instance"):  # added by Prometheus when it scrapes
                        continue
                    with self.subTest(query=where, metric=name, label=label):
                        self.assertIn(label, self.labels[name])

    def test_dashboard_shows_every_exported_metric(self):
        shown = set()
        for _, expr in dashboard_queries(load_dashboard()):
            shown |= {family_of(n, self.types) for n in promql_metric_names(grafana_to_promql(expr))}
        self.assertEqual(sorted(set(self.types) - shown), [], "exported metrics no panel shows")


def main():
    """unittest's command line, plus --json FILE: {"passed": N, "failed":
    [test ids], "skipped": N}, as tests/run_integration.py writes it for
    tests/run_tests.py."""
    args = sys.argv[1:]
    json_out = None
    if "--json" in args:
        i = args.index("--json")
        json_out = args[i + 1]
        del args[i:i + 2]
    prog = unittest.main(module="__main__", argv=[sys.argv[0]] + args, exit=False)
    result = prog.result
    if json_out:
        bad = result.failures + result.errors
        # an error outside a test (setUpModule) is one failure too
        in_tests = [t for t, _ in bad if isinstance(t, unittest.TestCase)]
        with open(json_out, "w") as f:
            json.dump({"passed": result.testsRun - len(in_tests) - len(result.skipped),
                       "failed": sorted(t.id() for t, _ in bad), "skipped": len(result.skipped)}, f)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
