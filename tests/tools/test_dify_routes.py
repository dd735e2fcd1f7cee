"""tools/dify-routes.py: route extraction, converter translation, the generated
editor block and the release review.

Three kinds of tests:
  - a small Flask app written here in every registration style Dify used, read by
    the tool statically and then served by real Flask/Werkzeug: both must agree
    (skipped when Flask is not installed);
  - Dify's own history (the niro-demos/dify mirror, DIFY_GIT): the tool's routes of
    1.16.0-rc1 against the shared reference list, release discovery, and the review
    (skipped when the mirror is absent);
  - the pack: the generated block of rules/dify.yaml is what the tool generates.
"""

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "dify-routes.py")
PACK = os.path.join(ROOT, "rules", "dify.yaml")
DIFY_GIT = os.environ.get("DIFY_GIT", "/work/.mirror/niro-demos+dify/repo")
ROUTES_REF = os.environ.get("DIFY_ROUTES_REF", "/work/shared/dify/console-routes-1.16.0-rc1.txt")
# the upstream commit the reference list was read at (its header says so)
REF_COMMIT = "abb9972e19"

spec = importlib.util.spec_from_file_location("dify_routes", TOOL)
dr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dr)


def run_tool(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, timeout=600)


def have_mirror():
    return os.path.isdir(DIFY_GIT) and subprocess.run(
        ["git", "-C", DIFY_GIT, "cat-file", "-e", REF_COMMIT + "^{commit}"], capture_output=True).returncode == 0


def parse_route_lines(text):
    """{(path, frozenset(methods)): line} from `list` output or the reference file."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        path, methods, cls, where = line.split()
        out.setdefault((path, methods), []).append((cls, where))
    return out


# --------------------------------------------------------------------------- a Flask app in Dify's styles

SHIM_EXTERNAL_API = '''
class ExternalApi:
    """Just enough of flask_restx.Api: add_resource and add_namespace."""
    def __init__(self, bp, prefix=""):
        self.bp, self.prefix = bp, prefix
    def add_resource(self, cls, *urls, endpoint=None, methods=None):
        for n, url in enumerate(urls):
            ep = (endpoint or cls.__name__) + ("" if n == 0 else "_%d" % n)
            kw = {"methods": methods} if methods else {}
            self.bp.add_url_rule(self.prefix + url, view_func=cls.as_view(ep), **kw)
    def add_namespace(self, ns, path=None):
        base = (path if path is not None else ns.path).rstrip("/")
        for cls, urls, kwargs in ns.resources:
            self.add_resource(cls, *[base + u for u in urls], **kwargs)
'''

SHIM_NAMESPACE = '''
class Namespace:
    """Just enough of flask_restx.Namespace: route collects, add_namespace registers."""
    def __init__(self, name, description="", path=None):
        self.path = path if path is not None else "/" + name
        self.resources = []
    def route(self, *urls, **kwargs):
        def wrap(cls):
            self.resources.append((cls, urls, kwargs))
            return cls
        return wrap
    def add_resource(self, cls, *urls, **kwargs):
        self.resources.append((cls, urls, kwargs))
'''

CONSOLE_INIT = '''
from importlib import import_module
from flask import Blueprint
from libs.external_api import ExternalApi
from libs.namespace import Namespace

bp = Blueprint("console", __name__, url_prefix="/console/api")
api = ExternalApi(bp)
console_ns = Namespace("console", description="Console", path="/")

for module_name in ("controllers.console.app.imported_by_name",):
    import_module(module_name)

from . import legacy
from .app import apps, agent

api.add_namespace(console_ns)
'''

BASE = '''
from flask.views import MethodView as Resource


class BaseKeys(Resource):
    def get(self, app_id):
        return "keys"

    def post(self, app_id):
        return "new key"


class Fixed(Resource):
    methods = ["GET"]

    def get(self, app_id):
        return "fixed"

    def delete(self, app_id):
        return "not routed for Fixed itself, routed for its subclasses"
'''

APPS = '''
from flask.views import MethodView as Resource

from controllers.console import console_ns
from controllers.console.app import base
from .base import BaseKeys

PREFIX = "/apps/<uuid:app_id>"


@console_ns.route("/apps/<uuid:app_id>/logs")
class Logs(Resource):
    def get(self, app_id):
        return "logs"


@console_ns.route(PREFIX + "/a", f"{PREFIX}/b", endpoint="ab")
class TwoPaths(Resource):
    def post(self, app_id):
        return "ab"

    def get(self, app_id):
        return "ab"


@console_ns.route("/apps/<uuid:app_id>/keys")
class Keys(BaseKeys):
    def get(self, app_id):
        return "only mine"


@console_ns.route("/apps/<uuid:app_id>/fixed")
class FixedRoute(base.Fixed):
    pass


@console_ns.route("/apps/<uuid:app_id>/files/<path:rest>")
class Files(Resource):
    def get(self, app_id, rest):
        return rest


@console_ns.route("/apps/<uuid:app_id>/skills/<path:skill>/inspect")
class Inspect(Resource):
    def get(self, app_id, skill):
        return skill


@console_ns.route("/apps/<uuid:app_id>/pages/<int:page>", methods=["GET"])
class Pages(Resource):
    def get(self, app_id, page):
        return str(page)

    def put(self, app_id, page):
        return "not routed: methods= given"


@console_ns.route("/apps/<uuid:app_id>")
class AppApi(Resource):
    def get(self, app_id):
        return "app"

    def put(self, app_id):
        return "app"

    def delete(self, app_id):
        return "app"


@console_ns.route("/apps/imports/<string:app_id>/check")
class Check(Resource):
    def get(self, app_id):
        return "check"


class Later(Resource):
    def patch(self, agent_id):
        return "later"


console_ns.add_resource(Later, "/agent/<uuid:agent_id>/later")
'''

AGENT = '''
from flask.views import MethodView as Resource

from controllers.console import console_ns


@console_ns.route("/agent/<uuid:agent_id>/logs")
class AgentLogs(Resource):
    def get(self, agent_id):
        return "agent logs"


@console_ns.route("/agent/<uuid:agent_id>/edit")
class AgentEdit(Resource):
    def put(self, agent_id):
        return "edit"


# a homonym of apps.AppApi with other methods (Dify has two AppApi classes)
class AppApi(Resource):
    def get(self, agent_id):
        return "trial"


console_ns.add_resource(AppApi, "/trial/<uuid:agent_id>", endpoint="trial_app")
'''

IMPORTED_BY_NAME = '''
from flask.views import MethodView as Resource

from controllers.console import console_ns


@console_ns.route("/apps/<uuid:app_id>/by-name")
class ByName(Resource):
    def get(self, app_id):
        return "by name"
'''

LEGACY = '''
from flask.views import MethodView as Resource

from controllers.console import api


class Legacy(Resource):
    def get(self, app_id):
        return "legacy"

    def delete(self, app_id):
        return "legacy"


api.add_resource(Legacy, "/apps/<uuid:app_id>/legacy", endpoint="legacy")
'''

DEAD = '''
from flask.views import MethodView as Resource

from controllers.console import console_ns


@console_ns.route("/apps/<uuid:app_id>/dead")
class Dead(Resource):
    def get(self, app_id):
        return "never imported"
'''

FLASK_DUMP = '''
import json, sys
from flask import Flask
from controllers.console import bp
app = Flask(__name__)
app.register_blueprint(bp)
out = []
for rule in app.url_map.iter_rules():
    if rule.endpoint == "static":
        continue
    out.append([rule.rule, sorted(rule.methods - {"HEAD", "OPTIONS"})])
json.dump(out, sys.stdout)
'''


def write_tree(base):
    files = {
        "api/libs/__init__.py": "",
        "api/libs/external_api.py": SHIM_EXTERNAL_API,
        "api/libs/namespace.py": SHIM_NAMESPACE,
        "api/controllers/__init__.py": "",
        "api/controllers/console/__init__.py": CONSOLE_INIT,
        "api/controllers/console/legacy.py": LEGACY,
        "api/controllers/console/dead.py": DEAD,
        "api/controllers/console/app/__init__.py": "",
        "api/controllers/console/app/base.py": BASE,
        "api/controllers/console/app/apps.py": APPS,
        "api/controllers/console/app/agent.py": AGENT,
        "api/controllers/console/app/imported_by_name.py": IMPORTED_BY_NAME,
    }
    for rel, text in files.items():
        path = os.path.join(base, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))


class SyntheticDify(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="dify-routes-")
        write_tree(cls.dir)
        cls.api = os.path.join(cls.dir, "api")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def tool_routes(self):
        r = run_tool("list", "--api", self.api)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_static_routes_are_the_routes_flask_serves(self):
        try:
            import flask  # noqa: F401
        except ImportError:
            self.skipTest("Flask is not installed (Debian: python3-flask): no Werkzeug to compare with")
        r = subprocess.run([sys.executable, "-c", FLASK_DUMP], cwd=self.api, capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=self.api), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        served = sorted((p, tuple(m)) for p, m in json.loads(r.stdout))
        static = sorted((p, tuple(sorted(m.strip("[]").split(","))))
                        for p, m in parse_route_lines(self.tool_routes()))
        self.assertEqual(static, served)

    def test_classes_resolve_in_their_own_module_and_lines_are_the_registrations(self):
        routes = parse_route_lines(self.tool_routes())
        self.assertEqual(routes[("/console/api/apps/<uuid:app_id>", "[GET,PUT,DELETE]")][0][0], "AppApi")
        self.assertIn(("/console/api/trial/<uuid:agent_id>", "[GET]"), routes)
        # the line of the decorator / add_resource call, as in the reference list
        cls, where = routes[("/console/api/apps/<uuid:app_id>/legacy", "[GET,DELETE]")][0]
        path, line = where.split(":")
        with open(os.path.join(self.api, "controllers/console", path)) as f:
            self.assertIn("api.add_resource(Legacy", f.read().splitlines()[int(line) - 1])

    def test_a_module_nobody_imports_registers_nothing(self):
        self.assertNotIn("/dead", self.tool_routes())

    def test_editor_block_forwards_unprotected_routes_and_reports_what_it_cannot_express(self):
        pack = textwrap.dedent("""\
            listen: "127.0.0.1:18080"
            upstream: "http://127.0.0.1:18081"
            identity:
              secret: "test-secret-0123456789abcdef"
              algorithms: [HS256]
            database:
              host: 127.0.0.1
              port: 1
              dbname: none
              user: none
            policies:
              owner: SELECT 1 WHERE CAST(:app_id AS text) = :subject
              agent_owner: SELECT 1 WHERE CAST(:agent_id AS text) = :subject
            rules:
              - name: app-logs
                path: /console/api/apps/{app_id:uuid}/logs
                methods: [GET]
                allow: [owner]
              - name: agent-logs
                path: /console/api/agent/{agent_id:uuid}/logs
                allow: [agent_owner]
              # BEGIN known editor routes (generated by tools/dify-routes.py)
              - name: stale
                path: /console/api/apps/{app_id:uuid}/stale
                action: forward
              # END known editor routes
              - name: everything-else
                path: /**
                action: forward
            default: deny
            """)
        path = os.path.join(self.dir, "pack.yaml")
        with open(path, "w") as f:
            f.write(pack)
        r = run_tool("editor-routes", "--api", self.api, "--rules", path, "--write", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(path) as f:
            text = f.read()
        rules, _ = dr.read_pack(text)
        block = {x.path: x.methods for x in rules if x.in_block}
        # the protected routes stay out, the stale entry is gone, the rest is listed
        self.assertNotIn("/console/api/apps/{app_id:uuid}/logs", block)
        self.assertNotIn("/console/api/agent/{agent_id:uuid}/logs", block)
        self.assertNotIn("/console/api/apps/{app_id:uuid}/stale", block)
        self.assertEqual(block["/console/api/apps/{app_id:uuid}/keys"], ["GET", "POST"])
        # Flask: a subclass without its own `methods` gets every HTTP function it
        # inherits, even one its base left out of the base's `methods`
        self.assertEqual(block["/console/api/apps/{app_id:uuid}/fixed"], ["GET", "DELETE"])
        self.assertEqual(block["/console/api/apps/{app_id:uuid}/pages/{page:int}"], ["GET"])
        self.assertEqual(block["/console/api/apps/{app_id:uuid}/files/**"], ["GET"])
        self.assertEqual(block["/console/api/apps/{app_id:uuid}"], ["GET", "PUT", "DELETE"])
        self.assertEqual(block["/console/api/agent/{agent_id:uuid}/later"], ["PATCH"])
        # outside the fallback prefixes: not the tool's business
        self.assertFalse([p for p in block if "/imports/" in p or "/trial/" in p])
        # <path:...> in the middle: reported, not emitted
        self.assertFalse([p for p in block if "/skills/" in p])
        self.assertIn("not expressible", r.stderr)
        self.assertIn("/skills/<path:skill>/inspect", r.stderr)
        # what lies outside the markers is untouched
        self.assertEqual(text.split("# BEGIN")[0], pack.split("# BEGIN")[0])
        self.assertEqual(text.split("# END known editor routes")[1], pack.split("# END known editor routes")[1])
        # the review of that same tree names only the route no template can express
        r = run_tool("review", "--api", self.api, "--since", self.api, "--rules", path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        section = r.stdout.split("## routes under the fallback prefixes")[1].split("\n##")[0]
        reported = [line for line in section.splitlines()[1:] if line.strip()]
        self.assertEqual(len(reported), 1, r.stdout)
        self.assertIn("GET /console/api/apps/<uuid:app_id>/skills/<path:skill>/inspect", reported[0])
        # portcullis, when built, loads the result: no bad template, no unreachable rule
        binary = os.path.join(ROOT, "build", "portcullis")
        if not os.path.exists(binary):
            self.skipTest("build/portcullis is not built: the generated rules were not loaded")
        t = subprocess.run([binary, "-t", "-c", path], capture_output=True, text=True, timeout=30)
        self.assertEqual(t.returncode, 0, t.stdout + t.stderr)


class Templates(unittest.TestCase):
    def test_converters_translate_to_portcullis_templates(self):
        cases = {
            "/a/<uuid:x>/b": "/a/{x:uuid}/b",
            "/a/<string:x>": "/a/{x}",
            "/a/<x>": "/a/{x}",
            "/a/<int:n>": "/a/{n:int}",
            "/a/<path:rest>": "/a/**",
        }
        for werkzeug, template in cases.items():
            self.assertEqual(dr.segments_to_template(dr.werkzeug_to_segments(werkzeug)), template)
        for bad in ("/a/<path:p>/b", "/a/<int(signed=True):n>", "/a/x<y>", "/a/<any(a,b):k>"):
            with self.assertRaises(dr.ToolError, msg=bad):
                dr.werkzeug_to_segments(bad)

    def test_coverage_follows_the_segment_types(self):
        t = dr.template_to_segments
        w = dr.werkzeug_to_segments
        self.assertTrue(dr.covers(t("/a/{x:uuid}/**"), w("/a/<uuid:y>/b/<string:c>")))
        self.assertTrue(dr.covers(t("/a/*/b"), w("/a/<uuid:y>/b")))
        self.assertFalse(dr.covers(t("/a/{x:uuid}/b"), w("/a/<string:y>/b")))
        self.assertTrue(dr.overlaps(t("/a/{x:uuid}/b"), w("/a/<string:y>/b")))
        self.assertFalse(dr.overlaps(t("/a/{x:int}"), w("/a/<uuid:y>")))
        self.assertTrue(dr.overlaps(t("/a/mention-users"), w("/a/<string:c>")))
        self.assertFalse(dr.covers(t("/a/{x}"), w("/a/<path:rest>")))

    def test_python_312_generics_parse_with_exact_lines(self):
        src = "def deco[**P, R](f: C[P, R]) -> C[P, R]:\n    return f\n\n\nclass K[T]:\n    x = 1\ntype A[T] = list[T]\n"
        tree = dr.parse_python(src, "x.py")
        self.assertEqual([n.lineno for n in tree.body], [1, 5, 7])


class Table(unittest.TestCase):
    ROUTES = """# versions: 1.0.0 1.1.0 1.2.0 2.0.0-rc1
/console/api/apps/<uuid:app_id>/logs  [GET]  1.0.0..2.0.0-rc1
/console/api/apps/<uuid:resource_id>/keys  [GET]  1.0.0..2.0.0-rc1
/console/api/apps/<uuid:resource_id>/keys  [POST]  1.2.0..2.0.0-rc1
/console/api/apps/<uuid:app_id>/runs/<uuid:run_id>/box/files  [GET]  1.1.0,2.0.0-rc1
/console/api/apps/<uuid:app_id>/runs/<uuid:run_id>/box/<path:p>/inspect  [GET]  2.0.0-rc1
/console/api/apps/<uuid:app_id>/edit  [POST]  1.0.0..2.0.0-rc1
"""
    PACK = """rules:
  - name: logs
    path: /console/api/apps/{app_id:uuid}/logs
    methods: [GET]
    allow: [owner, admin]
  - name: keys
    path: /console/api/apps/{app_id:uuid}/keys
    methods: [GET, POST]
    allow: [owner]
  - name: box
    path: /console/api/apps/{app_id:uuid}/runs/{run_id:uuid}/box/**
    allow: [owner, creator]
  - name: shadowed
    path: /console/api/apps/{app_id:uuid}/runs/{run_id:uuid}/box/files
    methods: [GET]
    allow: [owner]
  - name: gone
    path: /console/api/apps/{app_id:uuid}/old-logs
    methods: [GET]
    allow: [owner]
  - name: edit
    path: /console/api/apps/{app_id:uuid}/edit
    action: forward
  - name: unknown-app-route
    path: /console/api/apps/{app_id:uuid}/**
    allow: [owner]
"""

    def test_one_row_per_protected_rule_with_the_releases_of_its_routes(self):
        d = tempfile.mkdtemp()
        try:
            routes, pack = os.path.join(d, "routes.txt"), os.path.join(d, "pack.yaml")
            with open(routes, "w") as f:
                f.write(self.ROUTES)
            with open(pack, "w") as f:
                f.write(self.PACK)
            r = run_tool("table", "--routes", routes, "--rules", pack)
            self.assertEqual(r.returncode, 0, r.stderr)
            rows = {}
            for line in r.stdout.splitlines():
                cells = [c.strip() for c in line.split("|")[1:-1]]
                if len(cells) == 5 and cells[3].startswith("`"):
                    rows[cells[3].split("`")[1]] = cells
            self.assertEqual(set(rows), {"logs", "keys", "box", "shadowed", "gone", "unknown-app-route"})
            self.assertEqual(rows["logs"][1:3], ["GET", "1.0.0 – 2.0.0-rc1"])
            # methods that came in different releases are dated one by one
            self.assertEqual(rows["keys"][2], "GET: 1.0.0 – 2.0.0-rc1; POST: 1.2.0 – 2.0.0-rc1")
            # every method, Dify's own named; a gap in the releases is a list
            self.assertEqual(rows["box"][1:3], ["every (GET)", "1.1.0, 2.0.0-rc1"])
            self.assertEqual(rows["box"][4], "owner, creator")
            # first match wins, as in the proxy: the later rule gets nothing
            self.assertEqual(rows["shadowed"][2], "not in Dify")
            self.assertEqual(rows["gone"][2], "not in Dify")
            self.assertIn("(fallback)", rows["unknown-app-route"][3])
            self.assertIn("- `box`:", r.stdout)
            self.assertIn("`/console/api/apps/<uuid:app_id>/runs/<uuid:run_id>/box/<path:p>/inspect` GET (2.0.0-rc1)",
                          r.stdout)
            self.assertIn("`/console/api/apps/<uuid:resource_id>/keys` GET,POST", r.stdout)
        finally:
            shutil.rmtree(d)


class Pack(unittest.TestCase):
    def test_every_generated_rule_is_a_forward_with_exact_methods_between_the_markers(self):
        with open(PACK) as f:
            text = f.read()
        rules, (begin, end) = dr.read_pack(text, PACK)
        self.assertIsNotNone(begin, "rules/dify.yaml has no generated block")
        generated = [r for r in rules if r.in_block]
        self.assertTrue(generated)
        for r in generated:
            self.assertEqual(r.action, "forward", r.name)
            self.assertTrue(r.methods, r.name)
            self.assertTrue(dr.under_prefix_or_prefix(r.segs), r.path)
        names = [r.name for r in rules]
        self.assertEqual(len(names), len(set(names)))

    def test_the_pack_tests_editor_block_is_what_the_tool_writes_from_the_pack(self):
        # a stale block (the pack regenerated, its tests not) is caught here, and by
        # portcullis test --require-coverage in tests/integration/test_packtest.py
        tests = os.path.join(ROOT, "rules", "dify.test.yaml")
        d = tempfile.mkdtemp()
        try:
            copy = os.path.join(d, "dify.test.yaml")
            shutil.copy(tests, copy)
            r = run_tool("editor-tests", "--rules", PACK, "--write", copy)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(tests) as a, open(copy) as b:
                self.assertEqual(a.read(), b.read(), "rules/dify.test.yaml: regenerate with "
                                 "tools/dify-routes.py editor-tests --write rules/dify.test.yaml")
        finally:
            shutil.rmtree(d)
        with open(PACK) as f:
            rules, _ = dr.read_pack(f.read(), PACK)
        block = dr.editor_test_block(rules, 2)
        generated = [r.name for r in rules if r.in_block]
        self.assertEqual(len(block), 4 * len(generated))
        for name in generated:
            self.assertIn("rule: %s}" % name, "\n".join(block))


@unittest.skipUnless(have_mirror(), "the Dify mirror (%s, commit %s) is absent: set DIFY_GIT" % (DIFY_GIT, REF_COMMIT))
class DifyHistory(unittest.TestCase):
    def test_routes_of_main_are_the_reference_list(self):
        if not os.path.exists(ROUTES_REF):
            self.skipTest("reference list %s is absent: set DIFY_ROUTES_REF" % ROUTES_REF)
        r = run_tool("list", "--git", DIFY_GIT, "--rev", REF_COMMIT)
        self.assertEqual(r.returncode, 0, r.stderr)
        mine = parse_route_lines(r.stdout)
        with open(ROUTES_REF) as f:
            ref = parse_route_lines(f.read())
        self.assertEqual(sorted({p for p, _ in mine}), sorted({p for p, _ in ref}))
        only_mine = set(mine) - set(ref)
        only_ref = set(ref) - set(mine)
        # The reference list gives two routes the methods of a homonymous class of
        # explore/trial.py (AppApi, DatasetListApi). Check each such difference
        # against the source itself: the class registered at that line defines the
        # methods this tool reports, and trial.py's class of that name the others.
        for path, methods in only_ref:
            (cls, where), = ref[(path, methods)]
            theirs = methods.strip("[]").split(",")
            (mine_methods,) = [m for p, m in mine if p == path]
            src = subprocess.run(["git", "-C", DIFY_GIT, "show", "%s:api/controllers/console/%s"
                                  % (REF_COMMIT, where.split(":")[0])], capture_output=True, text=True).stdout
            self.assertEqual(sorted(http_methods_of(src, cls, int(where.split(":")[1]))),
                             sorted(mine_methods.strip("[]").split(",")), path)
            trial = subprocess.run(["git", "-C", DIFY_GIT, "show", "%s:api/controllers/console/explore/trial.py"
                                    % REF_COMMIT], capture_output=True, text=True).stdout
            self.assertEqual(sorted(http_methods_of(trial, cls)), sorted(theirs), path)
        self.assertEqual(len(only_mine), len(only_ref))
        self.assertLessEqual(len(only_ref), 2, only_ref)

    def test_releases_are_forward_version_bumps(self):
        git = dr.Git(DIFY_GIT)
        rel = dr.release_commits(git, REF_COMMIT)
        labels = [v for v, _ in rel]
        self.assertEqual(labels[0], "0.13.0")
        self.assertIn("1.14.1", labels)
        for v, c in rel[:-1]:
            here = json.loads(git.run("show", c + ":web/package.json"))["version"]
            before = json.loads(git.run("show", c + "^:web/package.json"))["version"]
            self.assertEqual(here, v)
            self.assertNotEqual(before, v, "%s: %s is no bump" % (v, c))
            # a revert back to an older number is no release of it
            if re.fullmatch(r"\d+\.\d+\.\d+", before):
                self.assertGreater(dr._vkey(v), dr._vkey(before), "%s at %s comes from %s" % (v, c, before))
        git.close()

    def test_the_committed_route_file_is_what_dify_registers_at_each_release_it_names(self):
        """tests/fixtures/dify-console-routes.txt (list --union) holds, for two
        releases read afresh, exactly the routes and methods its selection picks."""
        sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
        import dify_app
        with open(dify_app.ROUTES_FILE) as f:
            header = f.read().split("\n", 5)[3]
        under = re.findall(r"--under (\S+)", header)
        exact = set(re.findall(r"--path '([^']+)'", header))
        self.assertTrue(under and exact, header)
        order, _ = dify_app.read_routes()
        git = dr.Git(DIFY_GIT)
        rel = dr.release_commits(git, "HEAD")
        git.close()
        self.assertEqual(order, [v for v, _ in rel])
        for label in ("0.13.0", "1.15.0"):
            commit = dict(rel)[label]
            r = run_tool("list", "--git", DIFY_GIT, "--rev", commit)
            self.assertEqual(r.returncode, 0, r.stderr)
            fresh = set()
            for line in r.stdout.splitlines():
                path, methods = line.split()[:2]
                if dr.route_selected(path, under, exact):
                    fresh |= {(path, m) for m in methods.strip("[]").split(",")}
            committed = {(p, m) for p, ms in dify_app.routes_of(label).items() for m in ms}
            self.assertEqual(committed, fresh, label)

    def test_review_reports_a_route_the_pack_forgot(self):
        with open(PACK) as f:
            text = f.read()
        rules, _ = dr.read_pack(text, PACK)
        victim = next(r for r in rules if r.in_block and r.path == "/console/api/apps/{app_id:uuid}/copy")
        lines = text.split("\n")
        start = victim.line - 1
        stop = start + 1
        while not lines[stop].lstrip().startswith("- ") and "# END known" not in lines[stop]:
            stop += 1
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write("\n".join(lines[:start] + lines[stop:]))
            forgot = f.name
        try:
            r = run_tool("review", "--git", DIFY_GIT, "--rev", REF_COMMIT, "--rules", forgot)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("POST /console/api/apps/<uuid:app_id>/copy ", r.stdout)
            r = run_tool("review", "--git", DIFY_GIT, "--rev", REF_COMMIT, "--rules", PACK)
            self.assertNotIn("/console/api/apps/<uuid:app_id>/copy ", r.stdout)
        finally:
            os.unlink(forgot)


def http_methods_of(source, cls_name, registration_line=None):
    """HTTP methods a class defines in its own body (the one registered at or right after
    registration_line when given), read with ast independently of the tool."""
    tree = ast.parse(dr.strip_pep695(source))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls_name:
            lines = [node.lineno] + [d.lineno for d in node.decorator_list]
            if registration_line is None or registration_line in lines:
                return [f.name.upper() for f in node.body
                        if isinstance(f, ast.FunctionDef) and f.name in ("get", "post", "put", "patch", "delete")]
    raise AssertionError("no class %s" % cls_name)


if __name__ == "__main__":
    unittest.main()
