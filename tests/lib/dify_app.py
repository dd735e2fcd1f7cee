#!/usr/bin/env python3
"""Dify's console routing stack, for the Dify pack's tests: Flask and Werkzeug
behind gunicorn, with Dify's own route strings.

The routes are data: tests/fixtures/dify-console-routes.txt, generated from
Dify's source by tools/dify-routes.py (list --union), one line per route and
set of methods, with the Dify releases that have them. They are registered
as Dify registers its console resources: on a Blueprint named "console"
with url_prefix "/console/api" (Dify's ExternalApi is a flask-restful /
flask-restx Api on that Blueprint, which adds each resource with
add_url_rule, the Werkzeug converters of the route string, the methods its
MethodView class derives, and Flask's defaults: strict_slashes, HEAD with
GET, automatic OPTIONS). A route Dify does not have is 404, a method it
does not have 405, as in Dify.

Every view answers 200 with JSON
    {"rule": the route string, "endpoint", "view_args": what Werkzeug's
     converters made of the path (a uuid as its lower-case str), "method",
     "path"}
and the same facts in X-Dify-Rule / X-Dify-View-Args (for HEAD).

    dify_app.py --port N [--log FILE] [--version LABEL] [--extra 'ROUTE METHOD,...']... [--workers N]

serves the app under real gunicorn (sync workers). --version keeps only the
routes (and methods) that Dify release has; --extra adds a route (a Dify
release newer than the routes file). Every request the app serves, routed
or not, is appended as one JSON line to --log. tests/lib/harness.py
(DifyApi) runs it.

The interpreter: one where `import flask` works. gunicorn is imported from
it when it can, else from Debian's python3-gunicorn (/usr/lib/python3/
dist-packages, appended to sys.path so that the interpreter's own Flask and
Werkzeug still come first). On this project's machines that is either
Flask/Werkzeug 3.1 (as Dify pins them) with Debian's gunicorn, or Debian's
python3-flask, python3-werkzeug and gunicorn (tests/deps.sh).
"""
import argparse
import json
import os
import re
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROUTES_FILE = os.path.join(HERE, "..", "fixtures", "dify-console-routes.txt")
PREFIX = "/console/api"
DEBIAN_DIST = "/usr/lib/python3/dist-packages"


# ---- the routes file (no Flask needed: tests read it too) ----

class RouteLine:
    __slots__ = ("rule", "methods", "versions")

    def __init__(self, rule, methods, versions):
        self.rule, self.methods, self.versions = rule, methods, versions

    def __repr__(self):
        return "<%s %s %s>" % (self.rule, ",".join(self.methods), sorted(self.versions))


def expand_runs(text, order):
    """'0.13.0..1.14.2,1.16.0-rc1' -> that set of labels of `order`."""
    out = set()
    for run in text.split(","):
        a, sep, b = run.partition("..")
        if a not in order or (sep and b not in order):
            raise ValueError("unknown Dify version in %r" % text)
        i, j = order.index(a), order.index(b if sep else a)
        if j < i:
            raise ValueError("backwards run %r" % run)
        out.update(order[i:j + 1])
    return out


def read_routes(path=ROUTES_FILE):
    """(versions in release order, [RouteLine])."""
    order, lines = None, []
    with open(path, encoding="utf-8") as f:
        for no, raw in enumerate(f, 1):
            raw = raw.rstrip("\n")
            if raw.startswith("# versions:"):
                order = raw[len("# versions:"):].split()
                continue
            if not raw.strip() or raw.startswith("#"):
                continue
            m = re.fullmatch(r"(/\S+)  \[([A-Z,]+)\]  (\S+)", raw)
            if m is None or order is None:
                raise ValueError("%s:%d: not a route line: %r" % (path, no, raw))
            lines.append(RouteLine(m.group(1), m.group(2).split(","), expand_runs(m.group(3), order)))
    return order, lines


def routes_of(version=None, path=ROUTES_FILE):
    """{route string: [methods]} of one Dify release (every release: None)."""
    order, lines = read_routes(path)
    if version is not None and version not in order:
        raise ValueError("no Dify release %r in %s (known: %s)" % (version, path, " ".join(order)))
    out = {}
    for ln in lines:
        if version is None or version in ln.versions:
            ms = out.setdefault(ln.rule, [])
            ms += [m for m in ln.methods if m not in ms]
    return out


# ---- the Flask app ----

def _plain(v):
    if isinstance(v, uuid.UUID):
        return str(v)
    return v


def create_app(version=None, extra=(), log_path=None, routes_file=ROUTES_FILE):
    from flask import Blueprint, Flask, jsonify, request
    from flask.views import MethodView

    routes = routes_of(version, routes_file)
    for rule, methods in extra:
        routes.setdefault(rule, [])
        routes[rule] += [m for m in methods if m not in routes[rule]]

    def answer(self, **view_args):
        va = {k: _plain(v) for k, v in view_args.items()}
        rule = request.url_rule.rule
        request.environ["dify_app.rule"] = rule
        request.environ["dify_app.view_args"] = va
        resp = jsonify(rule=rule, endpoint=request.endpoint, view_args=va, method=request.method,
                       path=request.path)
        resp.headers["X-Dify-Rule"] = rule
        resp.headers["X-Dify-View-Args"] = json.dumps(va, sort_keys=True)
        return resp

    bp = Blueprint("console", __name__, url_prefix=PREFIX)
    for n, (rule, methods) in enumerate(sorted(routes.items())):
        if not rule.startswith(PREFIX + "/"):
            raise ValueError("%s is not a console route" % rule)
        # a resource class as Dify writes them: one function per HTTP
        # method; MethodView derives `methods` from them (HEAD goes to get)
        cls = type("Resource%d" % n, (MethodView,), {m.lower(): answer for m in methods})
        bp.add_url_rule(rule[len(PREFIX):], view_func=cls.as_view("r%d" % n))

    app = Flask("dify_app")
    app.register_blueprint(bp)
    if log_path:
        app.wsgi_app = Recorder(app.wsgi_app, log_path)
    return app


class Recorder:
    """WSGI middleware: one JSON line per request served, whatever the app
    made of it (routed, 404, 405, redirect), appended with O_APPEND by
    whichever worker served it."""

    def __init__(self, app, path):
        self.app, self.path, self.fd, self.pid = app, path, None, None

    def write(self, entry):
        if self.fd is None or self.pid != os.getpid():
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self.pid = os.getpid()
        os.write(self.fd, (json.dumps(entry) + "\n").encode())

    def __call__(self, environ, start_response):
        seen = {}

        def sr(status, headers, exc_info=None):
            seen["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        body = self.app(environ, sr)
        self.write({
            "method": environ.get("REQUEST_METHOD"),
            "target": environ.get("RAW_URI") or environ.get("PATH_INFO"),
            "path": environ.get("PATH_INFO"),
            "query": environ.get("QUERY_STRING", ""),
            "request_id": environ.get("HTTP_X_REQUEST_ID"),
            "status": seen.get("status"),
            "rule": environ.get("dify_app.rule"),
            "view_args": environ.get("dify_app.view_args"),
            "pid": os.getpid(),
        })
        return body


# ---- gunicorn ----

def stack_versions():
    from importlib import metadata
    out = {"python": sys.version.split()[0], "executable": sys.executable}
    for dist in ("flask", "werkzeug", "gunicorn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            mod = sys.modules.get(dist)
            out[dist] = getattr(mod, "__version__", "?") if mod else "?"
    import gunicorn
    out["gunicorn_path"] = os.path.dirname(gunicorn.__file__)
    import flask
    out["flask_path"] = os.path.dirname(flask.__file__)
    return out


def import_gunicorn():
    import importlib
    try:
        importlib.import_module("gunicorn")
    except ImportError:
        if os.path.isdir(os.path.join(DEBIAN_DIST, "gunicorn")):
            sys.path.append(DEBIAN_DIST)  # after the interpreter's own packages
    from gunicorn.app.base import BaseApplication
    return BaseApplication


def serve(argv=None):
    ap = argparse.ArgumentParser(description="Dify's console routes under gunicorn")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log")
    ap.add_argument("--version", help="only the routes of this Dify release (a label of the routes file)")
    ap.add_argument("--extra", action="append", default=[], metavar="'ROUTE METHOD,...'")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--info", help="write the stack's versions (JSON) here once serving")
    args = ap.parse_args(argv)
    extra = []
    for e in args.extra:
        rule, _, methods = e.partition(" ")
        extra.append((rule, methods.split(",")))
    app = create_app(args.version, extra, args.log)
    BaseApplication = import_gunicorn()

    class Gunicorn(BaseApplication):
        def load_config(self):
            for k, v in dict(bind="%s:%d" % (args.host, args.port), workers=args.workers, worker_class="sync",
                             accesslog=None, errorlog="-", loglevel="warning", timeout=60,
                             graceful_timeout=5).items():
                self.cfg.set(k, v)

        def load(self):
            return app

    if args.info:
        with open(args.info + ".tmp", "w") as f:
            json.dump(stack_versions(), f)
        os.replace(args.info + ".tmp", args.info)
    Gunicorn().run()


if __name__ == "__main__":
    serve()
