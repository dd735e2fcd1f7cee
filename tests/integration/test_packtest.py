"""portcullis test: decision tests for rule packs (issue 15), against a real
PostgreSQL with Dify's schema and the fixture's rows (the data `make run`
loads), with the Dify pack configured only by Dify's environment.

The oracles are independent of the C code: the pack's rules and policies and
the test file's cases are counted with PyYAML, line and column of a planted
mistake are computed from the text written, the JUnit report is parsed with
xml.etree."""
import os
import re
import secrets
import shutil
import tempfile
import unittest
import xml.etree.ElementTree as ET

import yaml

from harness import ROOT, dify_pg, free_port, run_portcullis

PACK = os.path.join(ROOT, "rules", "dify.yaml")
TESTS = os.path.join(ROOT, "rules", "dify.test.yaml")

APP_A = "a1a1a1a1-0000-4000-8000-000000000001"   # a-editor-app, workspace A, created by editor_a
OWNER_A = "a0000000-0000-4000-8000-00000000000a"
NORMAL_A = "a0000000-0000-4000-8000-00000000000d"


def pack():
    with open(PACK) as f:
        return yaml.safe_load(f)


def position(text, needle):
    """1-based line and column of the first occurrence of needle in text."""
    i = text.index(needle)
    return text.count("\n", 0, i) + 1, i - (text.rfind("\n", 0, i) + 1) + 1


# The README's example of a pack for one's own application, verbatim: its
# schema, its config and its tests.
EXAMPLE_SQL = """
CREATE TABLE documents (id integer PRIMARY KEY, team text NOT NULL, author text NOT NULL);
CREATE TABLE members (team text NOT NULL, person text NOT NULL, role text NOT NULL);
INSERT INTO documents VALUES (1, 'red', 'alice'), (2, 'blue', 'bob');
INSERT INTO members VALUES ('red', 'alice', 'member'), ('red', 'carol', 'lead'), ('blue', 'bob', 'member');
"""

EXAMPLE_CONFIG = """listen: 0.0.0.0:8080
upstream: http://127.0.0.1:3000
identity:
  secret: "${APP_JWT_SECRET}"
  audience: notes
database:
  url: "${APP_DATABASE_URL}"
policies:
  author: SELECT 1 FROM documents WHERE id = CAST(:doc_id AS integer) AND author = :subject
  team_lead: |
    SELECT 1 FROM documents d JOIN members m ON m.team = d.team
     WHERE d.id = CAST(:doc_id AS integer) AND m.person = :subject AND m.role = 'lead'
rules:
  - name: document
    path: /api/documents/{doc_id:int}
    methods: [GET, PUT]
    allow: [author, team_lead]
  - name: public
    path: /public/**
    action: forward
default: deny
"""

EXAMPLE_TESTS = """tests:
  - name: the author reads her document
    request: GET /api/documents/1
    subject: alice
    expect: {status: forwarded, decision: allow, rule: document, reason: "policy author: row"}
  - name: the team's lead edits it
    request: PUT /api/documents/1
    subject: carol
    expect: {status: forwarded, decision: allow, rule: document, reason: "policy team_lead: row"}
  - name: someone of another team is refused
    request: GET /api/documents/1
    subject: bob
    expect: {status: 403, decision: deny, rule: document}
  - name: no token, 401
    request: GET /api/documents/1
    expect: {status: 401, decision: unauthenticated, rule: document, reason: "no credential"}
  - name: a token for another audience is refused
    request: GET /api/documents/1
    subject: alice
    claims: {aud: billing}
    expect: {status: 401, decision: unauthenticated, rule: document, reason: "wrong audience"}
  - name: public pages need no token
    request: GET /public/index.html
    expect: {status: forwarded, decision: forward, rule: public}
  - name: what no rule matches is denied
    request: DELETE /api/documents/1
    subject: alice
    expect: {status: 403, decision: deny, rule: null, reason: "no rule matched"}
"""


class TestPackTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = dify_pg("main")
        # a key made up for this run: a case passes only if its token is minted with the config's key
        cls.secret = "sk-packtest-" + secrets.token_hex(16)
        cls.env = dict(DB_HOST="127.0.0.1", DB_PORT=str(cls.pg.port), DB_USERNAME="postgres", DB_PASSWORD="",
                       DB_DATABASE="dify", SECRET_KEY=cls.secret,
                       PORTCULLIS_LISTEN="127.0.0.1:%d" % free_port(), PORTCULLIS_UPSTREAM="http://127.0.0.1:1",
                       PORTCULLIS_ADMIN_LISTEN="127.0.0.1:%d" % free_port())
        cls.dir = tempfile.mkdtemp(prefix="pc-packtest-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_test(self, *args, env=None):
        e = dict(self.env)
        e.update(env or {})
        return run_portcullis("test", "-c", PACK, *args, env=e, timeout=120)

    def subjects_yaml(self):
        return "subjects:\n  owner_a: %s\n  normal_a: %s\n" % (OWNER_A, NORMAL_A)

    def test_the_dify_packs_tests_pass_and_exercise_every_rule_and_every_policy(self):
        with open(TESTS) as f:
            cases = yaml.safe_load(f)["tests"]
        p = pack()
        r = self.run_test("--require-coverage", TESTS)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-2000:])
        lines = r.stdout.splitlines()
        self.assertEqual([l for l in lines if l.startswith("ok   ")], ["ok   " + c["name"] for c in cases])
        self.assertNotIn("FAIL", r.stdout)
        self.assertNotIn("not covered", r.stdout)
        self.assertIn("coverage: %d/%d rules, %d/%d policies" % (len(p["rules"]), len(p["rules"]),
                                                                 len(p["policies"]), len(p["policies"])), lines)
        self.assertEqual(lines[-1], "%d passed, 0 failed" % len(cases))

    def test_the_test_file_holds_no_secret_and_no_token(self):
        with open(TESTS) as f:
            text = f.read()
        self.assertNotIn("SECRET_KEY:", text)
        self.assertIsNone(re.search(r"eyJ[A-Za-z0-9_-]{8,}\.", text), "a JWT in rules/dify.test.yaml")
        for case in yaml.safe_load(text)["tests"]:
            self.assertNotIn("secret", case, case["name"])

    def test_a_wrong_expectation_fails_with_exit_1_and_a_line_saying_what_was_expected_and_got(self):
        text = self.subjects_yaml() + """tests:
  - name: the owner reads the logs
    request: GET /console/api/apps/%(app)s/chat-conversations
    as: owner_a
    expect: {status: forwarded, decision: allow, rule: chat-conversations}
  - name: a plain member reads the logs (wrong on purpose)
    request: GET /console/api/apps/%(app)s/chat-conversations
    as: normal_a
    expect: {status: forwarded, decision: allow, rule: chat-conversations}
""" % dict(app=APP_A)
        path = self.write("wrong.yaml", text)
        r = self.run_test(path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        line, col = position(text, "name: a plain member")  # the case (a mapping) starts at its first key
        self.assertIn("ok   the owner reads the logs", r.stdout.splitlines())
        fail = [l for l in r.stdout.splitlines() if l.startswith("FAIL ")]
        self.assertEqual(fail, [
            "FAIL a plain member reads the logs (wrong on purpose): expected status forwarded, decision allow, "
            "rule chat-conversations; got status 403, decision deny, rule chat-conversations, reason \"policy owner: "
            "no row; policy admin: no row; policy creator: no row; policy listed: no row\" (%s:%d:%d)"
            % (path, line, col)])
        self.assertEqual(r.stdout.splitlines()[-1], "1 passed, 1 failed")

    def test_a_wrong_reason_alone_fails_the_case(self):
        text = self.subjects_yaml() + """tests:
  - name: the owner passes as the owner, not as the creator
    request: GET /console/api/apps/%s/chat-conversations
    as: owner_a
    expect: {status: forwarded, decision: allow, rule: chat-conversations, reason: "policy creator: row"}
""" % APP_A
        r = self.run_test(self.write("reason.yaml", text))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('reason containing "policy creator: row"; got status forwarded, decision allow, '
                      'rule chat-conversations, reason "policy owner: row"', r.stdout)

    def test_junit_report_parses_with_the_counts_and_the_names_escaped(self):
        odd = "quotes \" ' and <markup> & ampersands"
        text = self.subjects_yaml() + """tests:
  - name: '%(odd)s'
    request: GET /console/api/apps/%(app)s/chat-conversations
    as: owner_a
    expect: {status: forwarded, decision: allow, rule: chat-conversations}
  - name: anonymous is 401
    request: GET /console/api/apps/%(app)s/chat-conversations
    expect: {status: 401, decision: unauthenticated, rule: chat-conversations}
  - name: a plain member is allowed (wrong on purpose)
    request: GET /console/api/apps/%(app)s/chat-conversations
    as: normal_a
    expect: {status: forwarded, decision: allow, rule: chat-conversations}
""" % dict(odd=odd.replace("'", "''"), app=APP_A)
        path = self.write("junit.yaml", text)
        report = os.path.join(self.dir, "report.xml")
        r = self.run_test("--junit", report, "--require-coverage", path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        root = ET.parse(report).getroot()
        self.assertEqual(root.tag, "testsuites")
        suites = root.findall("testsuite")
        self.assertEqual([s.get("name") for s in suites], [path, "coverage"])
        cases = suites[0].findall("testcase")
        self.assertEqual([c.get("name") for c in cases],
                         [odd, "anonymous is 401", "a plain member is allowed (wrong on purpose)"])
        self.assertEqual((suites[0].get("tests"), suites[0].get("failures")), ("3", "1"))
        self.assertEqual([c.find("failure") is not None for c in cases], [False, False, True])
        failure = cases[2].find("failure")
        self.assertIn("expected status forwarded, decision allow", failure.get("message"))
        self.assertIn("policy: creator(", failure.text)
        # the rules this file leaves uncovered fail the coverage case
        cov = suites[1].findall("testcase")
        self.assertEqual(len(cov), 1)
        self.assertIn("rule trace", cov[0].find("failure").text)
        self.assertEqual((root.get("tests"), root.get("failures")), ("4", "2"))

    def test_a_malformed_test_file_reports_file_line_col_and_runs_nothing(self):
        text = self.subjects_yaml() + """tests:
  - name: a typo in a key
    request: GET /console/api/apps/%(app)s/chat-conversations
    as: owner_a
    expct: {status: forwarded, decision: allow, rule: chat-conversations}
  - name: a status that is none
    request: GET /console/api/apps/%(app)s/chat-conversations
    as: ownr_a
    expect: {status: 2000, decision: allow, rule: chat-conversations}
""" % dict(app=APP_A)
        path = self.write("malformed.yaml", text)
        r = self.run_test(path)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertNotIn("passed", r.stdout)
        err = r.stderr.splitlines()
        self.assertIn("%s:%d:%d: unknown key 'expct' in a test (did you mean 'expect'?)"
                      % ((path,) + position(text, "expct")), err)
        self.assertIn("%s:%d:%d: 'ownr_a' is not a name in subjects: (did you mean 'owner_a'?)"
                      % ((path,) + position(text, "ownr_a")), err)
        self.assertIn("%s:%d:%d: expect.status must be an HTTP status (100..599), forwarded or local, found '2000'"
                      % ((path,) + position(text, "2000")), err)
        # YAML itself
        broken = "tests:\n  - name: x\n    request: GET /\n    expect: {status: 403, decision: deny\n"
        path = self.write("broken.yaml", broken)
        r = self.run_test(path)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"^%s:5:1: " % re.escape(path))

    def test_rules_and_policies_no_case_exercised_are_listed_and_can_be_required(self):
        text = self.subjects_yaml() + """tests:
  - name: the owner reads the logs
    request: GET /console/api/apps/%s/chat-conversations
    as: owner_a
    expect: {status: forwarded, decision: allow, rule: chat-conversations}
""" % APP_A
        path = self.write("one.yaml", text)
        p = pack()
        r = self.run_test(path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        listed = re.findall(r"^not covered: rule (\S+) \(%s:\d+:\d+\)$" % re.escape(PACK), r.stdout, re.M)
        self.assertEqual(listed, [x["name"] for x in p["rules"] if x["name"] != "chat-conversations"])
        listed = re.findall(r"^not covered: policy (\S+) ", r.stdout, re.M)
        self.assertEqual(sorted(listed), sorted(set(p["policies"]) - {"owner", "admin", "creator", "listed"}))
        self.assertIn("coverage: 1/%d rules, 4/%d policies" % (len(p["rules"]), len(p["policies"])), r.stdout)
        # the rule the case matched, with --coverage, and the run fails when coverage is required
        r = self.run_test("--coverage", path)
        self.assertRegex(r.stdout, r"(?m)^covered: rule chat-conversations \(.*\), 1 case$")
        r = self.run_test("--require-coverage", path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("coverage required: not covered: rule preflight, ", r.stdout)
        self.assertEqual(r.stdout.splitlines()[-1], "1 passed, 0 failed")

    def test_a_token_goes_where_the_case_says_and_a_forged_one_is_refused(self):
        text = self.subjects_yaml() + """tests:
  - name: in the _token query parameter
    request: GET /console/api/apps/%(app)s/chat-conversations
    as: owner_a
    credential: query:_token
    expect: {status: forwarded, decision: allow, rule: chat-conversations}
  - name: in a cookie the pack does not read
    request: GET /console/api/apps/%(app)s/chat-conversations
    as: owner_a
    credential: cookie:session
    expect: {status: 401, decision: unauthenticated, rule: chat-conversations, reason: "no credential"}
  - name: forged with a random key
    request: GET /console/api/apps/%(app)s/chat-conversations
    as: owner_a
    forge: random-key
    expect: {status: 401, decision: unauthenticated, rule: chat-conversations, reason: "bad signature"}
""" % dict(app=APP_A)
        r = self.run_test(self.write("places.yaml", text))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.splitlines()[-1], "3 passed, 0 failed")

    def example(self):
        """The README example's database (once), config path and environment."""
        if not getattr(TestPackTest, "example_db", None):
            db = "example_" + secrets.token_hex(4)
            self.pg.psql("CREATE DATABASE %s" % db, db="postgres")
            self.pg.psql(EXAMPLE_SQL, db=db)
            TestPackTest.example_db = db
        env = {"APP_JWT_SECRET": "example-" + secrets.token_hex(8),
               "APP_DATABASE_URL": "host=127.0.0.1 port=%d dbname=%s user=postgres" % (self.pg.port,
                                                                                     TestPackTest.example_db)}
        return self.write("app.yaml", EXAMPLE_CONFIG), env

    def test_the_readme_example_for_ones_own_app_passes_with_full_coverage(self):
        config, env = self.example()
        tests = self.write("app.test.yaml", EXAMPLE_TESTS)
        r = run_portcullis("test", "-c", config, "--require-coverage", tests, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("coverage: 2/2 rules, 2/2 policies", r.stdout)
        self.assertEqual(r.stdout.splitlines()[-1], "%d passed, 0 failed" % len(yaml.safe_load(EXAMPLE_TESTS)["tests"]))

    def test_a_case_signs_with_a_named_key_and_typed_claims(self):
        config, env = self.example()
        with open(config) as f:
            text = f.read().replace('  secret: "${APP_JWT_SECRET}"\n',
                                    '  keys:\n    - {id: k1, secret: "${APP_JWT_SECRET}-1"}\n'
                                    '    - {id: k2, secret: "${APP_JWT_SECRET}-2"}\n')
        config = self.write("app-keys.yaml", text)
        tests = """tests:
  - name: signed with k2, its kid names it
    request: GET /api/documents/1
    subject: alice
    key: k2
    expect: {status: forwarded, decision: allow, rule: document}
  - name: an audience list that holds the audience
    request: GET /api/documents/1
    subject: alice
    claims: {aud: [billing, notes]}
    expect: {status: forwarded, decision: allow, rule: document}
  - name: a number where the subject should be a string
    request: GET /api/documents/1
    subject: alice
    claims: {sub: 7}
    expect: {status: 401, decision: unauthenticated, rule: document, reason: "subject claim missing or not a string"}
"""
        r = run_portcullis("test", "-c", config, self.write("keys.yaml", tests), env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        bad = tests.replace("key: k2", "key: k3")
        path = self.write("keys-bad.yaml", bad)
        r = run_portcullis("test", "-c", config, path, env=env, timeout=60)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("%s:%d:%d: %s has no identity.keys entry with id 'k3'" % ((path,) + position(bad, "k3") + (config,)),
                      r.stderr)

    def test_an_unreachable_database_is_an_error_and_no_case_runs(self):
        text = "tests:\n  - name: x\n    request: GET /healthz\n    expect: {status: local, decision: local, rule: null}\n"
        r = self.run_test(self.write("db.yaml", text), env={"DB_PORT": str(free_port())})
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("database unreachable", r.stderr)
        self.assertIn("no decision can be tested", r.stderr)
        self.assertNotIn("passed", r.stdout)


if __name__ == "__main__":
    unittest.main()
