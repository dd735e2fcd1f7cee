"""rules/dify.yaml end to end, configured only by Dify's environment variables,
in front of Dify's own routing stack: Flask and Werkzeug behind gunicorn with
Dify's route strings (tests/lib/dify_app.py, harness.DifyApi; the routes of
tests/fixtures/dify-console-routes.txt, read from Dify's source at every
release 0.13.0 .. 1.16.0-rc1), on Dify's real schema of four shapes
(tests/fixtures/dify-{schema,data}-<shape>.pg.sql).

For each shape the upstream serves exactly the routes of that Dify release,
and:
  - every protected route of that release x every method Dify has for it
    (HEAD with GET; a method Dify lacks where the pack protects every method)
    x every fixture user and no credential x every resource of both
    workspaces is decided as the oracle below says, by the rule the pack
    meant for it; when the upstream answered, Werkzeug routed exactly the
    route and the resource that was authorized; nothing else reached it;
  - every other route of that release (the known editor routes and the
    ordinary ones) reaches Dify for a member who is not the resource's
    creator, and CORS preflights reach it everywhere.

The oracle is written once per policy family, from the facts the fixture's
rows are written from (tests/fixtures/make_dify_data.py shape_facts), never
from the database:
  app      owner or admin of the app's workspace, or the person in charge of
           the app (apps.maintainer, else created_by; created_by where the
           schema has no maintainer) while an active member of it
  agent    owner or admin of agents.tenant_id, or the person in charge of the
           agent's app (agents.app_id)
  agent logs  as agent, and for that person every app bound to the agent
           (workflow_agent_node_bindings) must be theirs too
  dataset  owner or admin of the dataset's workspace
  run      the app rule, for the app of workflow_runs.app_id
A banned account never passes.

Which Dify routes must be protected (PROTECTED) is the review of Dify's
console controllers behind the README's route table."""
import importlib.util
import json
import os
import re
import sys
import tempfile
import unittest

from harness import (PG, ROOT, Conn, DifyApi, Proxy, dify_pg, free_port, http, metric_sum, mint, run_portcullis,
                     scrape, scrape_settled, wait_until)
from fixture import CONVERSATION, MESSAGE, ROLES, USERS
import dify_app

sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
import make_dify_data  # noqa: E402

_spec = importlib.util.spec_from_file_location("dify_routes", os.path.join(ROOT, "tools", "dify-routes.py"))
dify_routes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dify_routes)

PACK = os.path.join(ROOT, "rules", "dify.yaml")
SECRET = "sk-dify-pack-test-0123456789"
PUBLIC_SECRET = "sk-9f73s3ljTXVcMT3Blb3ljTqtsKiGHXVcMT3BlbkFJLK7U"  # Dify's docker/.env.example, 0.13.0 .. 1.14.0

# fixture shape -> the Dify release (a label of the routes file) whose schema it is
RELEASE = {"0.13.0": "0.13.0", "1.14.1": "1.14.1", "1.15.0": "1.15.0", "main": "1.16.0-rc1"}

ALL = "every method"
# Dify route -> (the pack rule meant for it, policy family, methods protected)
PROTECTED = {
    "/console/api/apps/<uuid:app_id>/chat-conversations": ("chat-conversations", "app", {"GET"}),
    "/console/api/apps/<uuid:app_id>/chat-conversations/<uuid:conversation_id>":
        ("chat-conversation", "app", {"GET", "DELETE"}),
    "/console/api/apps/<uuid:app_id>/completion-conversations": ("completion-conversations", "app", {"GET"}),
    "/console/api/apps/<uuid:app_id>/completion-conversations/<uuid:conversation_id>":
        ("completion-conversation", "app", {"GET", "DELETE"}),
    "/console/api/apps/<uuid:app_id>/chat-messages": ("chat-messages", "app", {"GET"}),  # POST: the debugger
    "/console/api/apps/<uuid:app_id>/messages/<uuid:message_id>": ("message", "app", {"GET"}),
    "/console/api/apps/<uuid:app_id>/feedbacks/export": ("feedbacks-export", "app", {"GET"}),
    "/console/api/apps/<uuid:app_id>/agent/logs": ("agent-logs", "app", {"GET"}),
    "/console/api/apps/<uuid:app_id>/workflow-app-logs": ("workflow-app-logs", "app", {"GET"}),
    "/console/api/apps/<uuid:app_id>/workflow-archived-logs": ("workflow-archived-logs", "app", {"GET"}),
    "/console/api/apps/<uuid:app_id>/workflow-runs": ("workflow-runs", "app", {"GET"}),
    "/console/api/apps/<uuid:app_id>/workflow-runs/count": ("workflow-runs-count", "app", {"GET"}),
    "/console/api/apps/<uuid:app_id>/workflow-runs/<uuid:run_id>": ("workflow-run", "app", {"GET"}),
    "/console/api/apps/<uuid:app_id>/workflow-runs/<uuid:run_id>/node-executions":
        ("workflow-run-node-executions", "app", {"GET"}),
    "/console/api/apps/<uuid:app_id>/workflow-runs/<uuid:run_id>/export": ("workflow-run-export", "app", {"GET"}),
    "/console/api/apps/<uuid:app_id>/workflow-runs/<uuid:workflow_run_id>/agent-nodes/<string:node_id>/sandbox/files":
        ("run-agent-node-sandbox", "app", ALL),
    "/console/api/apps/<uuid:app_id>/workflow-runs/<uuid:workflow_run_id>/agent-nodes/<string:node_id>/sandbox/files"
    "/read": ("run-agent-node-sandbox", "app", ALL),
    "/console/api/apps/<uuid:app_id>/workflow-runs/<uuid:workflow_run_id>/agent-nodes/<string:node_id>/sandbox/files"
    "/upload": ("run-agent-node-sandbox", "app", ALL),
    "/console/api/apps/<uuid:app_id>/advanced-chat/workflow-runs": ("advanced-chat-workflow-runs", "app", {"GET"}),
    "/console/api/apps/<uuid:app_id>/advanced-chat/workflow-runs/count":
        ("advanced-chat-workflow-runs-count", "app", {"GET"}),
    "/console/api/apps/<uuid:app_id>/conversation-variables": ("conversation-variables", "app", {"GET"}),
    "/console/api/apps/<uuid:app_id>/annotations": ("annotations", "app", {"GET"}),  # POST, DELETE: editing
    "/console/api/apps/<uuid:app_id>/annotations/export": ("annotations-export", "app", {"GET"}),
    "/console/api/apps/<uuid:app_id>/annotations/<uuid:annotation_id>/hit-histories":
        ("annotation-hit-histories", "app", {"GET"}),
    "/console/api/apps/<uuid:resource_id>/api-keys": ("api-keys", "app", {"GET", "POST"}),
    "/console/api/apps/<uuid:app_id>/trace-config": ("trace-config", "app", ALL),
    "/console/api/apps/<uuid:app_id>/trace": ("trace", "app", {"POST"}),  # GET: whether tracing is on
    "/console/api/agent/<uuid:agent_id>/api-keys": ("agent-api-keys", "agent", {"GET", "POST"}),
    "/console/api/agent/<uuid:agent_id>/logs": ("agent-logs-list", "agent_logs", {"GET"}),
    "/console/api/agent/<uuid:agent_id>/logs/<uuid:conversation_id>/messages":
        ("agent-log-messages", "agent_logs", {"GET"}),
    "/console/api/agent/<uuid:agent_id>/messages/<uuid:message_id>": ("agent-message", "agent", {"GET"}),
    "/console/api/agent/<uuid:agent_id>/sandbox": ("agent-sandbox", "agent", ALL),
    "/console/api/agent/<uuid:agent_id>/sandbox/files": ("agent-sandbox", "agent", ALL),
    "/console/api/agent/<uuid:agent_id>/sandbox/files/read": ("agent-sandbox", "agent", ALL),
    "/console/api/agent/<uuid:agent_id>/sandbox/files/upload": ("agent-sandbox", "agent", ALL),
    "/console/api/datasets/<uuid:dataset_id>/queries": ("dataset-queries", "dataset", {"GET"}),
    "/console/api/workflow/<string:workflow_run_id>/pause-details": ("workflow-pause-details", "run", {"GET"}),
}
for _node in ("workflows/draft", "workflows/published"):
    for _tail in ("", "/events", "/<string:node_id>", "/<string:node_id>/<string:output_name>/preview"):
        PROTECTED["/console/api/apps/<uuid:app_id>/%s/runs/<uuid:run_id>/node-outputs%s" % (_node, _tail)] = \
            ("node-outputs", "app", {"GET"})
for _tail in ("files", "files/download", "files/preview", "skills", "skills/<path:skill_path>/inspect"):
    PROTECTED["/console/api/apps/<uuid:app_id>/agent/drive/" + _tail] = ("app-agent-drive", "app", {"GET"})
    PROTECTED["/console/api/agent/<uuid:agent_id>/drive/" + _tail] = ("agent-drive", "agent", {"GET"})

# routes of a Dify newer than the pack (served by the main shape's upstream)
INVENTED = [("/console/api/apps/<uuid:app_id>/conversation-insights", ["GET"]),
            ("/console/api/agent/<uuid:agent_id>/transcripts", ["GET"])]
EXTRA_METHOD = "PUT"  # no protected route of any release has it: Dify answers 405


# ---- the oracle ----

def active(user):
    return make_dify_data.STATUS.get(user, "active") == "active"


def in_charge(F, app):
    """Who the creator policy names: apps.maintainer, else created_by; only
    created_by on a schema without maintainer."""
    a = F["apps"][app]
    return (a["maintainer"] or a["creator"]) if F["has_maintainer"] else a["creator"]


def member_role(tenant, user):
    return ROLES.get((tenant, user)) if active(user) else None


def may_app(F, user, app):
    role = member_role(F["apps"][app]["tenant"], user)
    return role in ("owner", "admin") or (role is not None and in_charge(F, app) == user)


def may_agent(F, user, agent, logs=False):
    ag = F["agents"].get(agent)
    if ag is None:
        return False
    role = member_role(ag["tenant"], user)
    if role in ("owner", "admin"):
        return True
    app = F["apps"][ag["app"]]
    if role is None or app["tenant"] != ag["tenant"] or in_charge(F, ag["app"]) != user:
        return False
    # every binding row is in the agent's workspace (make_dify_data writes them in A)
    return not logs or all(in_charge(F, bound) == user for aid, bound, _, _ in F["bindings"] if aid == agent)


def may_dataset(F, user, name):
    return member_role(F["datasets"][name]["tenant"], user) in ("owner", "admin")


def may_run(F, user, run):
    return may_app(F, user, F["runs"][run])


def may(F, family, user, res):
    if user is None:
        return False
    return {"app": lambda: may_app(F, user, res),
            "agent": lambda: may_agent(F, user, res),
            "agent_logs": lambda: may_agent(F, user, res, logs=True),
            "dataset": lambda: may_dataset(F, user, res),
            "run": lambda: may_run(F, user, res)}[family]()


MAIN = make_dify_data.shape_facts("main")


def resources(F, family):
    """Every resource of the family the shape has, in both workspaces; agent
    ids of main where the schema has no agents (they exist nowhere there)."""
    if family == "app":
        return list(F["apps"])
    if family in ("agent", "agent_logs"):
        return list(F["agents"] or MAIN["agents"])
    if family == "dataset":
        return list(F["datasets"])
    return list(F["runs"])


# ---- requests ----

def token(user, secret=SECRET, **extra):
    claims = {"user_id": USERS[user], "iss": "SELF_HOSTED", "sub": "Console API Passport"}
    claims.update(extra)
    return mint(secret, {k: v for k, v in claims.items() if v is not None})


TOKENS = {}


def cookie(user):
    if user not in TOKENS:
        TOKENS[user] = token(user)
    return [("Cookie", "access_token=" + TOKENS[user])]


CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")
OTHER_UUID = "0f0f0f0f-0000-4000-8000-0000000000%02x"
STRING_VALUE = {"node_id": "agent-node-1", "workflow_id": make_dify_data.WORKFLOW_ID, "output_name": "text",
                "action": "enable", "block_type": "llm", "task_id": "task-1"}


def fill(route, F, family=None, res=None):
    """A request path for a Dify route, with the resource under test in its
    id position, and the view_args Werkzeug should make of it."""
    app = res if family == "app" else "a-editor-app"
    ids = {"app_id": F["apps"].get(app, MAIN["apps"].get(app, {})).get("id"),
           "resource_id": None, "server_id": None,
           "agent_id": res if family in ("agent", "agent_logs") else next(iter(F["agents"] or MAIN["agents"])),
           "dataset_id": F["datasets"][res]["id"] if family == "dataset" else F["datasets"]["a-dataset"]["id"],
           "conversation_id": CONVERSATION.get(app, CONVERSATION["a-editor-app"]),
           "message_id": MESSAGE.get(app, MESSAGE["a-editor-app"]),
           "run_id": res if family == "run" else next(r for r, a in F["runs"].items() if a == "a-editor-app"),
           "annotation_id": "a0a0a0a0-0000-4000-8000-0000000000a1"}
    ids["resource_id"] = ids["server_id"] = ids["app_id"]
    ids["workflow_run_id"] = ids["run_id"]
    view = {}
    n = [0]

    def sub(m):
        conv, name = m.group(1) or "default", m.group(2)
        if conv == "uuid":
            n[0] += 1
            v = ids.get(name) or OTHER_UUID % n[0]
            view[name] = v.lower()
        elif conv == "path":
            v = view[name] = "skills/notes.md"
        else:
            v = ids.get(name) if name == "workflow_run_id" else STRING_VALUE.get(name, "x-" + name)
            view[name] = v
        return v
    return CONVERTER.sub(sub, route), view


def pack_rules():
    with open(PACK) as f:
        rules, _ = dify_routes.read_pack(f.read(), PACK)
    return rules


class Client:
    """Requests to the proxy on one keep-alive connection (a new one when
    the proxy closes it)."""

    def __init__(self, port):
        self.port, self.conn = port, None

    def request(self, method, target, headers):
        if self.conn is None:
            self.conn = Conn(self.port, timeout=10)
        try:
            r = self.conn.request(method, target, headers)
        except (EOFError, ConnectionError):
            self.close()
            raise
        if (r.header("connection") or "").lower() == "close":
            self.close()
        return r

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---- a pack per shape, configured by env only ----

def dify_env(pg, up_port, port, admin_port, secret=SECRET, **more):
    env = {
        "PORTCULLIS_LISTEN": "127.0.0.1:%d" % port,
        "PORTCULLIS_UPSTREAM": "http://127.0.0.1:%d" % up_port,
        "PORTCULLIS_ADMIN_LISTEN": "127.0.0.1:%d" % admin_port,
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(pg.port),
        "DB_USERNAME": "postgres",
        "DB_PASSWORD": "",
        "DB_DATABASE": "dify",
        "SECRET_KEY": secret,
        "PORTCULLIS_SECRET_FILE": "/nonexistent/.dify_secret_key",
    }
    env.update(more)
    return env


def start_pack(pg, up, wait_ready=True, **env_more):
    with open(PACK) as f:
        p = Proxy(f.read(), start=False)
    p.env.update(dify_env(pg, up.port, p.port, p.admin_port, **env_more))
    p.start()
    if wait_ready and not wait_until(lambda: http(p.port, "GET", "/readyz").status == 200, timeout=15):
        raise AssertionError("the pack never became ready:\n" + p.stderr()[-3000:])
    return p


_stacks = {}


def stack(shape):
    """(facts, PostgreSQL, DifyApi, proxy) of one shape, shared by the module."""
    if shape not in _stacks:
        F = make_dify_data.shape_facts(shape)
        pg = dify_pg(shape)
        up = DifyApi(version=RELEASE[shape], extra=INVENTED if shape == "main" else ())
        if not _stacks:
            print("\n  Dify's routing stack: Flask %(flask)s, Werkzeug %(werkzeug)s, gunicorn %(gunicorn)s, Python "
                  "%(python)s" % up.stack, file=sys.stderr)
        _stacks[shape] = (F, pg, up, start_pack(pg, up))
    return _stacks[shape]


def tearDownModule():
    for F, pg, up, proxy in _stacks.values():
        proxy.close()
        up.close()
    _stacks.clear()


def read_access(proxy, ids):
    return proxy.access_lines(ids, timeout=30) if ids else {}


# ---- one shape ----

class PackOnShape:
    SHAPE = None

    @classmethod
    def setUpClass(cls):
        cls.F, cls.pg, cls.up, cls.proxy = stack(cls.SHAPE)
        cls.release = RELEASE[cls.SHAPE]
        cls.routes = dify_app.routes_of(cls.release)

    def test_every_protected_route_method_user_and_resource_is_decided_as_the_fixture_says(self):
        bad = []
        rules = {r.name for r in pack_rules() if r.allow and not dify_routes.is_catch_all(r.segs)}
        meant = {rule for rule, _, _ in PROTECTED.values()}
        bad += ["the pack's protected rule %s is not exercised here" % r for r in sorted(rules - meant)]
        bad += ["the pack has no protected rule %s" % r for r in sorted(meant - rules)]
        order, lines = dify_app.read_routes()
        never = sorted(set(PROTECTED) - {ln.rule for ln in lines})
        bad += ["PROTECTED names a route Dify never had: %s" % r for r in never]
        client = Client(self.proxy.port)
        expect = {}
        n = 0
        for route, (rule, family, protected) in sorted(PROTECTED.items()):
            if route not in self.routes:
                continue  # not in this Dify release
            methods = [m for m in self.routes[route] if protected == ALL or m in protected]
            if "GET" in methods:
                methods.append("HEAD")
            if protected == ALL:
                methods.append(EXTRA_METHOD)
            for res in resources(self.F, family):
                path, view = fill(route, self.F, family, res)
                for method in methods:
                    for user in list(USERS) + [None]:
                        n += 1
                        rid = "m-%s-%d" % (self.SHAPE, n)
                        allowed = may(self.F, family, user, res)
                        want = 401 if user is None else 200 if allowed else 403
                        if allowed and method not in self.routes[route] and method != "HEAD":
                            want = 405  # authorized, forwarded, and Dify has no such method
                        r = client.request(method, path, (cookie(user) if user else []) + [("X-Request-Id", rid)])
                        expect[rid] = (route, rule, want, view, method, user, res)
                        if r.status != want:
                            bad.append("%s %s as %s (%s): %d, want %d" % (method, path, user, res, r.status, want))
                        elif want == 200 and (r.header("X-Dify-Rule") != route
                                              or json.loads(r.header("X-Dify-View-Args")) != view):
                            bad.append("%s %s as %s: Dify routed %s %s, want %s %s" % (
                                method, path, user, r.header("X-Dify-Rule"), r.header("X-Dify-View-Args"), route, view))
        client.close()
        # nothing reached Dify but what was allowed, each routed as authorized
        served = {q["request_id"]: q for q in self.up.settled_requests() if q["request_id"] in expect}
        allowed = {rid for rid, e in expect.items() if e[2] in (200, 405)}
        for rid in sorted(set(served) - allowed):
            route, rule, want, view, method, user, res = expect[rid]
            bad.append("reached Dify although refused: %s %s as %s (%s)" % (method, route, user, res))
        for rid in sorted(allowed - set(served)):
            bad.append("allowed but never reached Dify: %s %s as %s" % (expect[rid][4], expect[rid][0], expect[rid][5]))
        for rid, q in served.items():
            route, rule, want, view, method, user, res = expect[rid]
            if q["status"] != want or (want == 200 and (q["rule"] != route or q["view_args"] != view)):
                bad.append("Dify served %s %s as %s with %s %s %s" % (method, route, user, q["status"], q["rule"],
                                                                       q["view_args"]))
        # ...and each decided by the rule meant for it
        for rid, line in read_access(self.proxy, list(expect)).items():
            if line["rule"] != expect[rid][1]:
                bad.append("%s %s decided by rule %s, want %s" % (line["method"], line["path"], line["rule"],
                                                                   expect[rid][1]))
        print("\n  [%s] %d requests, %d allowed" % (self.SHAPE, n, len(allowed)), file=sys.stderr)
        if bad:
            self.fail("%d findings over %d requests:\n  %s" % (len(bad), n, "\n  ".join(bad[:80])))

    def test_every_other_route_of_this_release_reaches_dify_for_members_who_did_not_create_the_resource(self):
        """The known editor routes (and the ordinary ones) stay open: a plain
        member and an editor act on apps and agents they did not create, and
        CORS preflights reach Dify without a credential."""
        F = self.F
        agent_of_other = [a for a, ag in F["agents"].items() if ag["tenant"] == make_dify_data.TENANT_A
                          and in_charge(F, ag["app"]) not in ("editor_a", "normal_a")]
        actors = [("normal_a", "a-editor-app", next(iter(F["agents"]), None)),
                  ("editor_a", "a-normal-app", agent_of_other[0] if agent_of_other else None)]
        client = Client(self.proxy.port)
        bad, n, sent = [], 0, {}
        for route, methods in sorted(self.routes.items()):
            for user, app, agent in actors:
                family = "agent" if "<uuid:agent_id>" in route else "app"
                path, view = fill(route, F, family, agent if family == "agent" else app)
                for method in methods + (["HEAD"] if "GET" in methods else []) + ["OPTIONS"]:
                    if route in PROTECTED and method != "OPTIONS":
                        rule, _, protected = PROTECTED[route]
                        if protected == ALL or method in protected or (method == "HEAD" and "GET" in protected):
                            continue
                    n += 1
                    rid = "e-%s-%d" % (self.SHAPE, n)
                    headers = [("X-Request-Id", rid)] + ([] if method == "OPTIONS" else cookie(user))
                    r = client.request(method, path, headers)
                    sent[rid] = (method, route)
                    if method == "OPTIONS":  # Flask answers it for every route, without a view
                        ok = r.status == 200 and set(methods) <= set(re.split(r",\s*", r.header("Allow") or ""))
                    else:
                        ok = (r.status == 200 and r.header("X-Dify-Rule") == route
                              and json.loads(r.header("X-Dify-View-Args")) == view)
                    if not ok:
                        bad.append("%s %s as %s: %d %s" % (method, path, user, r.status, r.body[:120]))
        client.close()
        served = {q["request_id"] for q in self.up.settled_requests()}
        bad += ["never reached Dify: %s %s" % sent[rid] for rid in sorted(set(sent) - served)]
        print("\n  [%s] %d editor and ordinary requests" % (self.SHAPE, n), file=sys.stderr)
        if bad:
            self.fail("%d of %d wrongly refused:\n  %s" % (len(bad), n, "\n  ".join(bad[:80])))

    def test_t_passes_and_names_the_policies_this_schema_leaves_out(self):
        r = run_portcullis("-t", "-c", PACK, env=self.proxy.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        left_out = set(re.findall(r"warning: policy '(\w+)' is left out: the database lacks (\S+?);", r.stderr))
        agent_policies = ("agent_owner", "agent_admin", "agent_creator", "agent_listed", "agent_logs_admin",
                          "agent_logs_creator", "agent_logs_listed")
        want = set() if self.F["has_agents"] else {(p, "agents") for p in agent_policies}
        self.assertEqual({p for p, _ in left_out}, {p for p, _ in want}, r.stderr)
        self.assertTrue(all(what.startswith("agents") for _, what in left_out), left_out)
        status = http(self.proxy.admin_port, "GET", "/status").json()
        self.assertEqual({p["name"] for p in status["policies"] if not p["available"]}, {p for p, _ in want})
        self.assertEqual(status["schema"]["known"], True, status["schema"])

    def test_the_creator_policies_read_maintainer_where_the_schema_has_it_and_created_by_elsewhere(self):
        by_name = {p["name"]: p for p in http(self.proxy.admin_port, "GET", "/status").json()["policies"]}
        # variant 1 needs apps.maintainer, variant 2 is created_by
        want = 1 if self.F["has_maintainer"] else 2
        self.assertEqual((by_name["creator"]["variant"], by_name["run_creator"]["variant"]), (want, want))
        # and it decides so: the app whose creator left is readable by the
        # owner it was handed to, never by the one who left
        orphan = "/console/api/apps/%s/chat-conversations" % self.F["apps"]["a-orphan-app"]["id"]
        self.assertEqual(http(self.proxy.port, "GET", orphan, headers=cookie("left_creator")).status, 403)
        self.assertEqual(http(self.proxy.port, "GET", orphan, headers=cookie("owner_a")).status, 200)

    def test_agent_routes_are_denied_and_never_forwarded_where_the_schema_has_no_agents(self):
        if self.F["has_agents"]:
            self.skipTest("this schema has agents (the matrix covers their routes)")
        rid0 = "na-%s-" % self.SHAPE
        sent = []
        agent_routes = sorted(r for r in PROTECTED if r.startswith("/console/api/agent/")) + [INVENTED[1][0]]
        for i, route in enumerate(agent_routes):
            path, _ = fill(route, MAIN, "agent", next(iter(MAIN["agents"])))
            for user in ("owner_a", "admin_a", "editor_a"):
                rid = "%s%d-%s" % (rid0, i, user)
                r = http(self.proxy.port, "GET", path, headers=cookie(user) + [("X-Request-Id", rid)])
                self.assertEqual(r.status, 403, (path, user))
                sent.append(rid)
        self.assertEqual([q for q in self.up.settled_requests() if q["request_id"] in sent], [])
        reasons = {l["reason"] for l in read_access(self.proxy, sent).values()}
        self.assertTrue(all("left out (the database lacks agents" in x for x in reasons), reasons)


class TestPackOnDify_0_13_0(PackOnShape, unittest.TestCase):
    SHAPE = "0.13.0"


class TestPackOnDify_1_14_1(PackOnShape, unittest.TestCase):
    SHAPE = "1.14.1"


class TestPackOnDify_1_15_0(PackOnShape, unittest.TestCase):
    SHAPE = "1.15.0"


class TestPackOnDify_main(PackOnShape, unittest.TestCase):
    SHAPE = "main"


# ---- behaviours shown on the main shape ----

class MainCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.F, cls.pg, cls.up, cls.proxy = stack("main")

    def app(self, name="a-editor-app"):
        return self.F["apps"][name]["id"]

    def get(self, target, user=None, method="GET", headers=(), proxy=None):
        h = list(headers) + (cookie(user) if user else [])
        return http((proxy or self.proxy).port, method, target, headers=h)


class TestEditorActions(MainCase):
    def test_known_editor_actions_on_another_editors_app_reach_dify(self):
        a, n = self.app("a-editor-app"), self.app("a-normal-app")
        agent = "ae000000-0000-4000-8000-000000000003"  # admin_a's workflow app's agent
        msg = MESSAGE["a-editor-app"]
        for user, method, route in [
                ("normal_a", "POST", "/console/api/apps/<uuid:app_id>/chat-messages"),  # the debugger
                ("normal_a", "GET", "/console/api/apps/<uuid:app_id>"),
                ("normal_a", "POST", "/console/api/apps/<uuid:app_id>/model-config"),
                ("editor_a", "POST", "/console/api/apps/<uuid:app_id>/workflows/draft/run"),
                ("editor_a", "GET",
                 "/console/api/apps/<uuid:app_id>/chat-messages/<uuid:message_id>/suggested-questions"),
                ("editor_a", "PUT", "/console/api/agent/<uuid:agent_id>"),
                ("editor_a", "GET", "/console/api/agent/<uuid:agent_id>/chat-messages")]:
            app = a if user == "normal_a" else n
            target = route.replace("<uuid:app_id>", app).replace("<uuid:agent_id>", agent) \
                .replace("<uuid:message_id>", msg)
            r = self.get(target, user, method)
            self.assertEqual((r.status, r.header("X-Dify-Rule")), (200, route), (method, target, user))
        # the same member may not read that app's logs
        self.assertEqual(self.get("/console/api/apps/%s/chat-conversations" % a, "normal_a").status, 403)


class TestUnknownRoutes(MainCase):
    """A Dify newer than the pack: its upstream serves two routes no Dify
    release has (INVENTED)."""

    def paths(self):
        return ["/console/api/apps/%s/conversation-insights" % self.app(),
                "/console/api/agent/ae000000-0000-4000-8000-000000000001/transcripts"]

    def fallback_count(self, proxy, rule):
        return metric_sum(scrape_settled(proxy.admin_port), "portcullis_fallback_requests_total", rule=rule)

    def test_an_unknown_route_under_an_app_or_agent_is_authorized_like_a_log_route_logged_and_counted(self):
        for path, rule, invented in zip(self.paths(), ("unknown-app-route", "unknown-agent-route"), INVENTED):
            before = self.fallback_count(self.proxy, rule)
            self.up.clear()
            r = self.get(path, "owner_a", headers=[("X-Request-Id", "fb-owner")])
            self.assertEqual((r.status, r.header("X-Dify-Rule")), (200, invented[0]), path)
            self.assertEqual(self.get(path, "normal_a", headers=[("X-Request-Id", "fb-normal")]).status, 403, path)
            self.assertEqual(self.get(path, headers=[("X-Request-Id", "fb-none")]).status, 401, path)
            self.assertEqual([q["request_id"] for q in self.up.settled_requests()], ["fb-owner"])
            self.assertEqual(self.fallback_count(self.proxy, rule) - before, 3, rule)
            self.proxy.wait_stderr("rule %s: GET %s is a route the rule pack does not know; it was authorized like "
                                   "a protected route" % (rule, path))

    def test_the_shadow_switch_forwards_unknown_routes_but_still_logs_and_counts_them(self):
        shadow = start_pack(self.pg, self.up, PORTCULLIS_DIFY_FALLBACK_SHADOW="true")
        try:
            for path, rule, invented in zip(self.paths(), ("unknown-app-route", "unknown-agent-route"), INVENTED):
                before = self.fallback_count(shadow, rule)
                rid = "sh-" + rule
                r = self.get(path, "normal_a", headers=[("X-Request-Id", rid)], proxy=shadow)
                self.assertEqual((r.status, r.header("X-Dify-Rule")), (200, invented[0]), path)
                self.assertEqual(shadow.access_lines([rid])[rid]["decision"], "shadow_deny")
                self.assertEqual(self.fallback_count(shadow, rule) - before, 1)
                shadow.wait_stderr("rule %s: GET %s is a route the rule pack does not know; it was forwarded (shadow)"
                                   % (rule, path))
                # a known log route is not shadowed by the switch
                self.assertEqual(self.get("/console/api/apps/%s/chat-conversations" % self.app(), "normal_a",
                                          proxy=shadow).status, 403)
        finally:
            shadow.close()


class TestIdentity(MainCase):
    def test_tokens_with_iss_cloud_work_and_a_token_without_iss_is_refused(self):
        target = "/console/api/apps/%s/chat-conversations" % self.app()
        cloud = token("owner_a", iss="CLOUD")
        r = http(self.proxy.port, "GET", target, headers=[("Cookie", "access_token=" + cloud)])
        self.assertEqual((r.status, r.header("X-Dify-Rule")),
                         (200, "/console/api/apps/<uuid:app_id>/chat-conversations"))
        for claims in ({"iss": None}, {"iss": "SOMETHING_ELSE"}):
            t = token("owner_a", **claims)
            self.assertEqual(http(self.proxy.port, "GET", target, headers=[("Cookie", "access_token=" + t)]).status,
                             401, claims)

    def test_the_authorization_header_works_like_the_cookie(self):
        target = "/console/api/apps/%s/chat-conversations" % self.app()
        self.assertEqual(http(self.proxy.port, "GET", target, headers=[("Authorization", "Bearer " + token("admin_a"))])
                         .status, 200)
        self.assertEqual(http(self.proxy.port, "GET", target,
                              headers=[("Authorization", "Bearer " + token("normal_a"))]).status, 403)


class TestCanonicalPaths(MainCase):
    def test_dify_routes_exactly_the_app_that_was_authorized_in_every_spelling_of_the_path(self):
        app = self.app()
        for target in ("/console/api/apps/%s/chat-conversations" % app.upper(),
                       "/console/api/%%61pps/%s/chat-conversations" % app,
                       "//console/api/apps/%s/chat-conversations" % app):
            r = self.get(target, "owner_a")
            self.assertEqual(r.status, 200, target)
            self.assertEqual(r.json()["rule"], "/console/api/apps/<uuid:app_id>/chat-conversations")
            self.assertEqual(r.json()["view_args"], {"app_id": app})
            self.assertEqual(self.get(target, "owner_b").status, 403, target)

    def test_pause_details_are_authorized_through_the_runs_app_in_every_spelling_dify_accepts(self):
        for run, app in self.F["runs"].items():
            for spelling in (run, run.upper(), run.replace("-", ""), "{%s}" % run):
                target = "/console/api/workflow/%s/pause-details" % spelling
                for user in USERS:
                    r = self.get(target, user)
                    want = 200 if may_run(self.F, user, run) else 403
                    self.assertEqual(r.status, want, (target, user))
                    if want == 200:
                        # Dify receives the very string the policy cast
                        self.assertEqual(r.json()["view_args"], {"workflow_run_id": spelling})

    def test_pause_details_with_a_run_id_that_is_no_uuid_is_an_error_never_forwarded(self):
        r = self.get("/console/api/workflow/not-a-uuid/pause-details", "owner_a", headers=[("X-Request-Id", "pd-x")])
        self.assertEqual(r.status, 503)
        self.assertNotIn("pd-x", [q["request_id"] for q in self.up.settled_requests()])


class TestMaintainer(unittest.TestCase):
    def test_an_app_handed_to_another_maintainer_is_read_by_them_and_no_longer_by_its_creator(self):
        pg = PG()
        up = proxy = None
        try:
            for part in ("schema", "data"):
                pg.psql_file(os.path.join(ROOT, "tests", "fixtures", "dify-%s-main.pg.sql" % part))
            app = MAIN["apps"]["a-editor-app"]["id"]  # created by editor_a, still a member
            pg.psql("UPDATE apps SET maintainer = '%s' WHERE id = '%s'" % (USERS["normal_a"], app))
            up = DifyApi(version="1.16.0-rc1")
            proxy = start_pack(pg, up)
            for route in ("/console/api/apps/%s/chat-conversations" % app,
                          "/console/api/workflow/%s/pause-details" % make_dify_data.RUN["a-editor-app"]):
                self.assertEqual(http(proxy.port, "GET", route, headers=cookie("normal_a")).status, 200, route)
                self.assertEqual(http(proxy.port, "GET", route, headers=cookie("editor_a")).status, 403, route)
        finally:
            if proxy:
                proxy.close()
            if up:
                up.close()
            pg.close()


class TestSchemaVersion(unittest.TestCase):
    def test_an_unknown_schema_version_is_said_loudly_and_the_console_keeps_working(self):
        pg = PG()
        up = proxy = None
        try:
            for part in ("schema", "data"):
                pg.psql_file(os.path.join(ROOT, "tests", "fixtures", "dify-%s-main.pg.sql" % part))
            pg.psql("UPDATE alembic_version SET version_num = 'f00dfeedbeef'")
            up = DifyApi(version="1.16.0-rc1")
            proxy = start_pack(pg, up)
            warning = ("warning: the database's schema version is 'f00dfeedbeef', which this config was not "
                       "checked against")
            proxy.wait_stderr(warning)
            r = run_portcullis("-t", "-c", PACK, env=proxy.env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(warning, r.stderr)
            samples = scrape(proxy.admin_port)
            self.assertEqual(metric_sum(samples, "portcullis_schema_version_known"), 0)
            self.assertEqual(metric_sum(samples, "portcullis_schema_version_info", version="f00dfeedbeef"), 1)
            self.assertEqual(http(proxy.admin_port, "GET", "/status").json()["schema"],
                             {"version": "f00dfeedbeef", "known": False, "error": None})
            self.assertEqual(http(proxy.port, "GET", "/readyz").status, 200)
            self.assertEqual(http(proxy.admin_port, "GET", "/readyz").status, 200)
            logs = "/console/api/apps/%s/chat-conversations" % MAIN["apps"]["a-editor-app"]["id"]
            self.assertEqual(http(proxy.port, "GET", logs, headers=cookie("owner_a")).status, 200)
            self.assertEqual(http(proxy.port, "GET", logs, headers=cookie("normal_a")).status, 403)
        finally:
            if proxy:
                proxy.close()
            if up:
                up.close()
            pg.close()


class TestSecrets(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = dify_pg("main")
        cls.up = DifyApi(version="1.16.0-rc1")

    @classmethod
    def tearDownClass(cls):
        cls.up.close()

    def test_difys_published_default_secret_refuses_to_start_and_says_how_to_make_a_key(self):
        for how in ({"SECRET_KEY": PUBLIC_SECRET}, "file"):
            with open(PACK) as f:
                p = Proxy(f.read(), start=False)
            try:
                env = dify_env(self.pg, self.up.port, p.port, p.admin_port)
                if how == "file":  # Dify >= 1.14.1 reads an empty SECRET_KEY from its storage
                    key = os.path.join(p.dir, ".dify_secret_key")
                    with open(key, "w") as f:
                        f.write(PUBLIC_SECRET + "\n")
                    env.update(SECRET_KEY="", PORTCULLIS_SECRET_FILE=key)
                else:
                    env.update(how)
                p.env.update(env)
                p.start(wait=False)
                self.assertEqual(p.proc.wait(15), 1, how)
                err = p.stderr() + p.stdout()
                self.assertIn("is public", err)
                self.assertIn("Generate a new secret (for example: openssl rand -base64 42)", err)
                self.assertNotIn(PUBLIC_SECRET, err)
                self.assertNotIn(PUBLIC_SECRET[4:20], err)
                r = run_portcullis("-t", "-c", PACK, env=p.env)
                self.assertEqual(r.returncode, 1)
                self.assertNotIn(PUBLIC_SECRET, r.stdout + r.stderr)
            finally:
                p.close()

    def test_allow_public_secret_starts_with_a_warning(self):
        p = start_pack(self.pg, self.up, secret=PUBLIC_SECRET, PORTCULLIS_ALLOW_PUBLIC_SECRET="true")
        try:
            p.wait_stderr("is public (listed in identity.public_secrets); allow_public_secret is true")
            self.assertNotIn(PUBLIC_SECRET, p.stderr())
            logs = "/console/api/apps/%s/chat-conversations" % MAIN["apps"]["a-editor-app"]["id"]
            owner = token("owner_a", secret=PUBLIC_SECRET)
            self.assertEqual(http(p.port, "GET", logs, headers=[("Cookie", "access_token=" + owner)]).status, 200)
        finally:
            p.close()

    def test_an_empty_secret_key_falls_back_to_difys_generated_key_file(self):
        d = tempfile.mkdtemp()
        key = os.path.join(d, ".dify_secret_key")
        generated = "generated-" + "k" * 54
        with open(key, "w") as f:
            f.write(generated + "\n")  # Dify writes token_urlsafe(48) and a newline
        p = start_pack(self.pg, self.up, secret="", PORTCULLIS_SECRET_FILE=key)
        try:
            logs = "/console/api/apps/%s/chat-conversations" % MAIN["apps"]["a-editor-app"]["id"]
            good = token("owner_a", secret=generated)
            self.assertEqual(http(p.port, "GET", logs, headers=[("Cookie", "access_token=" + good)]).status, 200)
            bad = token("owner_a")  # signed with a key Dify is not using
            self.assertEqual(http(p.port, "GET", logs, headers=[("Cookie", "access_token=" + bad)]).status, 401)
        finally:
            p.close()
            os.unlink(key)
            os.rmdir(d)

    def test_no_secret_at_all_is_a_config_error(self):
        env = dify_env(self.pg, self.up.port, free_port(), free_port(), secret="")
        r = run_portcullis("-t", "-c", PACK, env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("secret_file /nonexistent/.dify_secret_key", r.stderr)


class TestDatabasePassword(unittest.TestCase):
    def test_a_password_with_spaces_and_quotes_needs_no_escaping(self):
        password = "p w'\"x\\y=z"
        pg = PG(password=password)
        up = p = None
        try:
            for part in ("schema", "data"):
                pg.psql_file(os.path.join(ROOT, "tests", "fixtures", "dify-%s-main.pg.sql" % part))
            up = DifyApi(version="1.16.0-rc1")
            p = start_pack(pg, up, DB_PASSWORD=password)
            logs = "/console/api/apps/%s/chat-conversations" % MAIN["apps"]["a-editor-app"]["id"]
            self.assertEqual(http(p.port, "GET", logs, headers=cookie("owner_a")).status, 200)
            env = dict(p.env, DB_PASSWORD="wrong")
            r = run_portcullis("-t", "-c", PACK, env=env)
            self.assertIn("password authentication failed", r.stderr)
        finally:
            if p:
                p.close()
            if up:
                up.close()
            pg.close()


if __name__ == "__main__":
    unittest.main()
