"""Issue #8: a regression corpus of published bypasses of other proxies.

Every test here replays the shape of a real advisory against portcullis. Its
docstring names the advisory (id and a URL where it was read), says what
the original bug was, and says what portcullis must do instead. Each one is
set up the same way: a protected rule (allow: [owner], as in
test_identity.py, on the shared Dify-shaped PostgreSQL), a deny rule, and a
forward catch-all, in front of the scriptable upstream (tests/lib/upstream.py),
which logs every request exactly as it arrived on the wire.

Two things are asserted for every attack:
  1. the client is refused (400, 401 or 403, whichever the attack earns);
  2. nothing the proxy did not authorize reached the upstream. The upstream
     logs every request it parsed; each logged target is routed twice by
     Dify's own routing stack (harness.DifyApi: gunicorn, Werkzeug and
     Dify's route strings): as it arrived, and as a laxer backend would
     see it (dot segments resolved, slashes merged, as the backends in the
     Envoy, Traefik and heimdall advisories did). Neither view may land on
     the protected or the denied route unless the owner asked for it.

For smuggling, the attack is followed by an ordinary request on the same
connection where that makes sense, and the upstream's log must hold exactly
the requests the proxy answered for: no more, none other.

Adding an entry: write the attack bytes, pick which of the helpers below
fits (refused / judged / forwarded), and cite where you read the advisory.
"""
import json
import posixpath
import re
import socket
import time
import unittest
import urllib.parse

from harness import Conn, DifyApi, Proxy, Upstream, build_request, http, mint, shared_pg
from fixture import APPS, USERS, identity_yaml, policies_yaml

SECRET = "test-secret-for-cve-corpus"

CONFIG = """
listen: 127.0.0.1:{port}
upstream: http://127.0.0.1:{upstream}
workers: 2
admin_listen: 127.0.0.1:{admin_port}
timeouts:
  header: 2s
  connect: 1s
  upstream: 3s
  idle: 5s
limits:
  header_bytes: 128KiB
  body_bytes: 1MiB
%sdatabase:
  url: "{dburl}"
  pool: 2
cache:
  ttl: 0s
policies:
%srules:
  - name: app-logs
    path: /console/api/apps/{app_id:uuid}/chat-conversations
    methods: [GET]
    allow: [owner]
  - name: api-keys-denied
    path: /console/api/apps/{app_id:uuid}/api-keys
    action: deny
  - name: open
    path: /**
    action: forward
""" % (identity_yaml(SECRET), policies_yaml("owner"))

APP_A = APPS["a-editor-app"][0]
LOGS_A = "/console/api/apps/%s/chat-conversations" % APP_A   # allow: [owner]
KEYS_A = "/console/api/apps/%s/api-keys" % APP_A              # deny
CHAT = "/console/api/apps/<uuid:app_id>/chat-conversations"
PROTECTED = {CHAT, "/console/api/apps/<uuid:resource_id>/api-keys"}


def tok(user):
    return mint(SECRET, {"user_id": USERS[user], "iss": "SELF_HOSTED", "sub": "Console API Passport"})


OWNER = tok("owner_a")
NORMAL = tok("normal_a")  # a member of the workspace, not its owner: 403 on LOGS_A


def bearer(t):
    return ("Authorization", "Bearer " + t)


_router = None


def router():
    """Dify's routing stack (every release's console routes), to ask where a
    target lands."""
    global _router
    if _router is None:
        _router = DifyApi()
    return _router


def tearDownModule():
    if _router is not None:
        _router.close()


def dify_routes_to(target):
    """(Dify route string, view_args) that gunicorn + Werkzeug serve a GET of
    this target with, or (None, None) when it routes nowhere (404, 405, a
    redirect, or a request gunicorn refuses)."""
    r = http(router().port, "GET", target)
    if r.status != 200:
        return None, None
    return r.header("X-Dify-Rule"), json.loads(r.header("X-Dify-View-Args"))


def backend_routes(target):
    """Where a logged target lands: as Dify's gunicorn + Werkzeug route it,
    and as an RFC 3986 backend that also resolves dot segments and merges
    slashes would (the path decoded once, normalised, sent to Dify again)."""
    strict, _ = dify_routes_to(target)
    decoded = urllib.parse.unquote_to_bytes(target.split("?", 1)[0]).decode("latin-1")
    lax_path = re.sub(r"/+", "/", decoded)
    lax_path = posixpath.normpath(lax_path) if lax_path not in ("", "/") else "/"
    if decoded.endswith("/") and not lax_path.endswith("/"):
        lax_path += "/"
    lax, _ = dify_routes_to(urllib.parse.quote(lax_path, safe="/:@!$&'()*+,;=-._~", encoding="latin-1"))
    return strict, lax


def smuggled(target, headers=()):
    """A complete request to hide inside something else."""
    return build_request("GET", target, list(headers), host="internal")


class CorpusCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = shared_pg()
        cls.up = Upstream()
        cls.proxy = Proxy(CONFIG, upstream=cls.up.port, dburl=cls.pg.url)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        cls.up.close()

    def setUp(self):
        self.up.clear()

    # ---- talking to the proxy ----

    def talk(self, data, n=2, timeout=3.0, check_close=True):
        """Send raw bytes on one connection; read up to n responses. Returns
        (statuses, closed): closed is True when the proxy hung up after the
        last response it sent (looked for only when check_close)."""
        c = Conn(self.proxy.port, timeout=timeout)
        statuses = []
        closed = False
        try:
            try:
                c.send(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused before we finished writing: read what it said
            for _ in range(n):
                try:
                    statuses.append(c.read_response().status)
                except (EOFError, ConnectionError):
                    closed = True
                    break
                except socket.timeout:
                    break
            if not closed and check_close:
                closed = c.closed(0.3)
        finally:
            c.close()
        return statuses, closed

    def get(self, target, headers=()):
        statuses, _ = self.talk(build_request("GET", target, list(headers)), n=1, check_close=False)
        return statuses[0] if statuses else None

    # ---- what reached the upstream ----

    def seen(self):
        return [q for q in self.up.settled_requests() if "target" in q]

    def assertNothingProtectedReached(self):
        for q in self.seen():
            strict, lax = backend_routes(q["target"])
            self.assertNotIn(strict, PROTECTED, "reached the backend: %r" % q["target"])
            self.assertNotIn(lax, PROTECTED, "a normalising backend would route %r to %s" % (q["target"], lax))

    def assertNothingReached(self, why=""):
        got = [(q["method"], q["target"]) for q in self.seen()]
        self.assertEqual(got, [], why)

    def assertRefusedAndClosed(self, data, status=400, why=None):
        statuses, closed = self.talk(data)
        self.assertEqual(statuses, [status], why or data[:200])
        self.assertTrue(closed, "connection left open after %r" % (why or data[:200]))


# ====================================================================
# Path normalisation
# ====================================================================

class TestPathNormalisation(CorpusCase):

    def test_envoy_cve_2019_9901_dot_segments_never_reach_a_rule(self):
        """Envoy CVE-2019-9901, https://github.com/envoyproxy/envoy/issues/6435

        Original bug: Envoy <= 1.9.0 did not normalise the path before route
        matching, RBAC or ext_authz. A policy allowing only the prefix /info/
        let "/info/../private" through; the backend resolved the dot segments
        and served /private.

        portcullis must judge the path the backend routes on. Werkzeug never
        resolves dot segments, but anything between the client and it might,
        so every '.' or '..' segment, in any position and any encoding, is
        refused with 400 before any rule is consulted; nothing reaches the
        upstream."""
        bad = [
            "/console/api/info/../apps/%s/chat-conversations" % APP_A,
            "/console/api/apps/%s/chat-conversations/x/.." % APP_A,
            "/console/api/apps/%s/./chat-conversations" % APP_A,
            "/console/api/apps/%s/chat-conversations/." % APP_A,
            "/./console/api/apps/%s/chat-conversations" % APP_A,
            "/../console/api/apps/%s/chat-conversations" % APP_A,
            "/console/api/apps/x/../%s/api-keys" % APP_A,
            "/console/api/public/../apps/%s/api-keys" % APP_A,
        ]
        for t in bad:
            self.assertEqual(self.get(t, [bearer(NORMAL)]), 400, t)
            self.assertEqual(self.get(t, [bearer(OWNER)]), 400, t)  # not even the owner: ambiguous
        self.assertNothingReached()

    def test_envoy_cve_2021_29492_escaped_slashes_are_read_as_gunicorn_reads_them(self):
        """Envoy CVE-2021-29492 (GHSA-4987-27fx-x6cf), read in Istio's bulletin
        https://istio.io/v1.9/news/security/istio-security-2021-005/

        Original bug: Envoy matched routes and RBAC on the path with %2F /
        %5C still escaped (and with '//' unmerged); backends that decode
        escaped slashes or merge slashes then served a path the policy had
        never seen ("/admin%2Fx", "//admin" past a DENY on /admin).

        portcullis must decode exactly as gunicorn does: %2F (either case) is
        a '/', so "<app>%2Fchat-conversations" IS the protected route and is
        judged as such (403 for a non-owner, 200 for the owner, forwarded as
        the canonical path); an encoded slash that makes '//' is refused;
        the deny rule holds through %2F. %5C is not a separator for gunicorn
        or Werkzeug: it may pass, but only as the same literal backslash,
        re-encoded as %5C, never turned into '/'."""
        judged = [
            "/console/api/apps/%s%%2Fchat-conversations" % APP_A,
            "/console/api/apps/%s%%2fchat-conversations" % APP_A,
            "/console%%2Fapi%%2Fapps%%2F%s%%2Fchat-conversations" % APP_A,
        ]
        for t in judged:
            self.assertEqual(self.get(t, [bearer(NORMAL)]), 403, t)
            self.assertEqual(self.get(t), 401, t)
        for t in ("/console/api/apps/%s%%2Fapi-keys" % APP_A, "/console%%2Fapi/apps/%s/api-keys" % APP_A):
            self.assertEqual(self.get(t, [bearer(OWNER)]), 403, t)  # deny is deny, for everyone
        for t in ("/console/api/apps/%s%%2F%%2Fchat-conversations" % APP_A,
                  "/console/api/apps/%s/%%2Fchat-conversations" % APP_A,
                  "/console/api//apps/%s/chat-conversations" % APP_A,
                  "/console/api/apps/%s//api-keys" % APP_A):
            self.assertEqual(self.get(t, [bearer(NORMAL)]), 400, t)
        self.assertNothingReached()

        # the owner's request arrives as the canonical path the rule matched
        self.assertEqual(self.get(judged[2], [bearer(OWNER)]), 200)
        self.assertEqual([q["target"] for q in self.seen()], [LOGS_A])

        # backslashes: a different path for Werkzeug, and forwarded as one
        self.up.clear()
        for t in ("/console/api/apps/%s%%5Cchat-conversations" % APP_A,
                  "/console/api/apps/%s%%5capi-keys" % APP_A,
                  "/console/api/apps/%s\\api-keys" % APP_A):
            st = self.get(t, [bearer(NORMAL)])
            self.assertIn(st, (400, 200), t)  # 200: forwarded to the echoing upstream (where it routes: below)
        for q in self.seen():
            self.assertNotIn("\\", q["target"])
            self.assertIn("%5C", q["target"])
            self.assertEqual(backend_routes(q["target"])[0], None, q["target"])
        self.assertNothingProtectedReached()

    def test_envoy_cve_2021_32779_fragments_are_refused(self):
        """Envoy CVE-2021-32779 (GHSA-r222-74fw-jqr9), merged with Istio
        CVE-2021-39156, https://github.com/istio/istio.io/pull/10254 and
        https://nvd.nist.gov/vuln/detail/CVE-2021-32779

        Original bug: Envoy treated a "#fragment" in the request-target as
        part of the path. A DENY on /user/profile did not match
        "/user/profile#section1", and the request was routed to the backend
        (as /user/profile%23section1), bypassing the policy.

        A fragment is never sent in a request-target. portcullis must refuse
        any '#', raw or %23-encoded, anywhere in the target (path, query or
        absolute-form) with 400, and forward nothing."""
        for t in (LOGS_A + "#section1",
                  LOGS_A + "%23section1",
                  KEYS_A + "#",
                  "/console/api/public#/../apps/%s/api-keys" % APP_A,
                  "/console/api/apps/%s#/chat-conversations" % APP_A,
                  LOGS_A + "?page=1#x",
                  "http://app.example" + KEYS_A + "#x"):
            self.assertEqual(self.get(t, [bearer(OWNER)]), 400, t)
        self.assertNothingReached()

    def test_traefik_cve_2025_32431_dot_dot_cannot_cross_routers(self):
        """Traefik CVE-2025-32431 (GHSA-6p68-w45g-48j7),
        https://github.com/golang/vulndb/issues/3634 and the fix
        https://github.com/traefik/traefik/pull/11684

        Original bug: with PathPrefix/Path/PathRegexp matchers, a URL
        containing "/../" matched one router (say the public one) and the
        backend then resolved it into the path of another router, skipping
        that router's middleware chain (its authentication).

        portcullis has one rule table, not a middleware chain per router, but
        the failure is the same: the forward catch-all must not be reachable
        by a path that resolves into the protected or the denied rule. Every
        "/../" shape is 400, whoever asks, and nothing is forwarded."""
        for t in ("/console/api/../api/apps/%s/chat-conversations" % APP_A,
                  "/public/../console/api/apps/%s/chat-conversations" % APP_A,
                  "/console/api/apps/%s/chat-conversations/../api-keys" % APP_A,
                  "/console/api/apps/%s/x/../api-keys" % APP_A,
                  "/console/api/apps/../apps/%s/api-keys" % APP_A):
            self.assertEqual(self.get(t, [bearer(OWNER)]), 400, t)
            self.assertEqual(self.get(t), 400, t)
        self.assertNothingReached()

    def test_traefik_cve_2025_47952_encoded_traversal(self):
        """Traefik CVE-2025-47952 (GHSA-vrch-868g-9jx5),
        https://github.com/golang/vulndb/issues/3719; fix commit 08d5dfe
        ("Normalize request path", traefik v2.11.25), whose migration notes
        list "/foo/%2E%2E/bar" matching PathPrefix(`/foo`) before the fix,
        and https://github.com/traefik/traefik/issues/11746 (the same bypass
        with "/myprefix/%2e%2e/..." after the CVE-2025-32431 fix).

        Original bug: Traefik matched routers on the still-encoded path, so
        "%2e%2e" was a literal segment to the router and ".." to the backend.

        portcullis must decode first and look for dot segments after
        decoding: "%2e%2e", "%2E%2E", ".%2e", "%2e.", "%2e", and a decoded
        "%2f" that splits "..%2f" into its own segment are all 400. Encoded
        unreserved characters, which Traefik's fix now decodes, must simply
        match the rule (403 for a non-owner)."""
        for t in ("/console/api/x/%%2e%%2e/apps/%s/chat-conversations" % APP_A,
                  "/console/api/x/%%2E%%2E/apps/%s/api-keys" % APP_A,
                  "/console/api/x/.%%2e/apps/%s/chat-conversations" % APP_A,
                  "/console/api/x/%%2e./apps/%s/chat-conversations" % APP_A,
                  "/console/api/apps/%s/%%2e/chat-conversations" % APP_A,
                  "/console/api/x/%%2e%%2e%%2fapps/%s/api-keys" % APP_A,
                  "/console/api/x%%2f%%2e%%2e%%2fapps/%s/api-keys" % APP_A,
                  "/console/api/apps/%s/chat-conversations%%2f%%2e%%2e%%2fapi-keys" % APP_A,
                  "/console/api%%2F..%%2Fapi/apps/%s/chat-conversations" % APP_A):
            self.assertEqual(self.get(t, [bearer(OWNER)]), 400, t)
        self.assertNothingReached()
        for t in ("/console/api/%%61pps/%s/chat-%%63onversations" % APP_A,
                  "/%%63onsole/api/apps/%s/chat-conversations" % APP_A,
                  "/console/api/apps/%s/chat%%2Dconversations" % APP_A):
            self.assertEqual(self.get(t, [bearer(NORMAL)]), 403, t)
        for t in ("/console/api/apps/%s/api%%2Dkeys" % APP_A, "/console/api/apps/%s/%%61pi-keys" % APP_A):
            self.assertEqual(self.get(t, [bearer(OWNER)]), 403, t)
        self.assertNothingProtectedReached()

    def test_heimdall_cve_2026_42274_raw_path_matching(self):
        """heimdall CVE-2026-42274 (GHSA-3q34-rx83-r6mq),
        https://github.com/golang/vulndb/issues/5097, fix
        https://github.com/dadrus/heimdall/pull/3209 (v0.17.14)

        Original bug: heimdall matched rules on the raw, non-normalised
        request path while the components behind it normalised dot segments
        (RFC 3986 6.2.2.3): "/user/../admin", "/user/%2e%2e/admin", and with
        allow_encoded_slashes, "/user/%2e%2e%2fadmin", were authorised as
        /user/... and served as /admin.

        portcullis must refuse the three published shapes (400), pointed at
        both the protected and the denied rule, and forward nothing."""
        for prefix in ("/console/api/user", "/console/api/apps/%s/chat-conversations" % APP_A):
            for shape in ("%s/../apps/%s/api-keys", "%s/%%2e%%2e/apps/%s/api-keys",
                          "%s/%%2e%%2e%%2fapps/%s/api-keys", "%s/../apps/%s/chat-conversations",
                          "%s/%%2e%%2e%%2fapps%%2f%s%%2fchat-conversations"):
                t = shape % (prefix, APP_A)
                self.assertEqual(self.get(t, [bearer(NORMAL)]), 400, t)
        self.assertNothingReached()

    def test_pomerium_cve_2023_33189_one_view_of_the_request(self):
        """Pomerium CVE-2023-33189 (GHSA-pvrc-wvj2-f59p),
        https://github.com/golang/vulndb/issues/1800; fix commit d315e68
        ("authorize: use route id from envoy for policy evaluation",
        "authorize: normalize URL query params", "config: enable envoy
        normalize_path option"), read with `git show` in pomerium/pomerium.

        Original bug: the authorizer re-derived the route from the URL on
        its own instead of using the route Envoy had chosen, and its
        built-in "pomerium_routes" allowance matched `contains(url,
        "/.pomerium/")`, anywhere in the URL, query included. Crafted URLs
        were authorised under one reading and routed under another.

        portcullis must judge, forward and answer from one canonical path:
        (a) its own endpoints (health_path) are matched exactly on the
        canonical path, never as a substring, never from the query, and never
        through a traversal; (b) query parameters are read as Werkzeug reads
        them, so an encoded '_token' key is the same credential; (c) every
        spelling of the protected path is judged as the protected path and
        forwarded as the path that was judged."""
        # (a) the proxy's own endpoint is not a key that opens other doors
        for t in (LOGS_A + "?/healthz", LOGS_A + "?x=/healthz", LOGS_A + "?x=/.pomerium/",
                  LOGS_A + "?next=/healthz&_x=1"):
            self.assertEqual(self.get(t, [bearer(NORMAL)]), 403, t)
        for t in ("/healthz/../console/api/apps/%s/chat-conversations" % APP_A,
                  "/healthz%%2F..%%2Fconsole/api/apps/%s/chat-conversations" % APP_A,
                  "/healthz/%%2e%%2e/console/api/apps/%s/api-keys" % APP_A):
            self.assertEqual(self.get(t, [bearer(NORMAL)]), 400, t)
        self.assertEqual(self.get("/healthz?x=" + LOGS_A), 200)
        self.assertNothingReached()

        # (b) the query credential, spelled as Werkzeug would still read it
        for q in ("?%5Ftoken=", "?_%74oken=", "?%5f%74%6f%6b%65%6e=", "?x=1&_token="):
            t = LOGS_A + q + NORMAL
            self.assertEqual(self.get(t, [bearer(OWNER)]), 401, t)
        self.assertEqual(self.get(LOGS_A + "?_token=%s&_token=%s" % (OWNER, NORMAL)), 401)
        self.assertNothingReached()

        # (c) one canonical path, judged and forwarded
        spellings = [LOGS_A, LOGS_A.replace(APP_A, APP_A.upper()), "//" + LOGS_A.lstrip("/"),
                     "/console/api/%61pps/" + APP_A + "/chat-conversations",
                     "http://other.example" + LOGS_A, "/console/api/apps/%s%%2Fchat-conversations" % APP_A]
        for t in spellings:
            self.assertEqual(self.get(t, [bearer(NORMAL)]), 403, t)
        self.assertNothingReached()
        for t in spellings:
            self.assertEqual(self.get(t, [bearer(OWNER)]), 200, t)
        for q in self.seen():
            self.assertEqual(dify_routes_to(q["target"]), (CHAT, {"app_id": APP_A}), q["target"])

    def test_opa_envoy_cve_2026_26205_leading_double_slash_is_not_an_authority(self):
        """opa-envoy-plugin CVE-2026-26205, read at
        https://www.sentinelone.com/vulnerability-database/cve-2026-26205/

        Original bug: the plugin parsed the request path as a full URI, so a
        leading "//segment" became an authority and was dropped from
        input.parsed_path: policies saw a different path from the one the
        backend served.

        portcullis must treat leading slashes as Werkzeug does (they collapse
        into one, nothing is dropped): "//console/..." and "/%2Fconsole/..."
        are the protected route, and "//evil.example/console/..." is the path
        /evil.example/console/..., which routes nowhere on the backend."""
        for t in ("//" + LOGS_A.lstrip("/"), "///" + LOGS_A.lstrip("/"), "/%2F" + LOGS_A.lstrip("/"),
                  "/%2f%2f" + LOGS_A.lstrip("/")):
            self.assertEqual(self.get(t, [bearer(NORMAL)]), 403, t)
            self.assertEqual(self.get(t), 401, t)
        self.assertEqual(self.get("//" + KEYS_A.lstrip("/"), [bearer(OWNER)]), 403)
        self.assertNothingReached()
        st = self.get("//evil.example" + LOGS_A, [bearer(NORMAL)])
        self.assertEqual(st, 200)  # a different path: forwarded, and it routes nowhere
        self.assertEqual([q["target"] for q in self.seen()], ["/evil.example" + LOGS_A])
        self.assertNothingProtectedReached()


# ====================================================================
# Request smuggling
# ====================================================================

POST_HEAD = "POST /echo HTTP/1.1\r\nHost: app.example\r\n"


class TestSmuggling(CorpusCase):

    def assertOnlyThese(self, expected):
        """The upstream saw exactly these (method, target) pairs, in order."""
        got = [(q["method"], q["target"]) for q in self.seen()]
        self.assertEqual(got, expected)

    def test_haproxy_cve_2021_40346_header_name_length_overflow(self):
        """HAProxy CVE-2021-40346, https://nvd.nist.gov/vuln/detail/CVE-2021-40346,
        JFrog's write-up https://jfrog.com/blog/critical-vulnerability-in-haproxy-cve-2021-40346-integer-overflow-enables-http-smuggling/
        (cited by every source, not itself readable here; the exploit text was
        read in github.com/daffainfo/AllAboutBugBounty Technologies/HAProxy.md
        and github.com/0xluk3/vulnerable-http-headers).

        Original bug: htx_add_header() stored the name length in 8 bits. A
        header "Content-Length0" + 255 'a' (270 bytes) with an empty value
        overflowed into the value length; HAProxy framed the request with the
        real "Content-Length: 60" but forwarded "content-length: 0", so the
        60-byte body (a hidden "GET /admin/...") became a second request on
        the backend connection, past every http-request ACL.

        portcullis must treat such a name as an ordinary (valid, unknown)
        header of any length: the body stays the body, the upstream receives
        exactly one Content-Length (the real one) and exactly the one POST,
        and the request after it on the connection is judged on its own. The
        shape is tried at the 8-bit and the 16-bit wrap (name length
        2^n + 14, so that a truncated name reads "Content-Length")."""
        body = smuggled(LOGS_A) + smuggled(KEYS_A, [bearer(OWNER)])
        for name_len in (255, 256, 2 ** 8 + 14, 511, 2 ** 16 + 14):
            with self.subTest(name_len=name_len):
                self.up.clear()
                name = "Content-Length0" + "a" * (name_len - len("Content-Length0"))
                data = (POST_HEAD + name + ":\r\nContent-Length: %d\r\n\r\n" % len(body)).encode() + body
                data += build_request("GET", LOGS_A)  # the next request: no credential
                statuses, _ = self.talk(data, n=2)
                self.assertEqual(statuses, [200, 401])
                reqs = self.seen()
                self.assertEqual([(q["method"], q["target"]) for q in reqs], [("POST", "/echo")])
                self.assertEqual(reqs[0]["body_len"], len(body))
                cls = [v for k, v in reqs[0]["headers"] if k.lower() == "content-length"]
                self.assertEqual(cls, [str(len(body))])
                self.assertNothingProtectedReached()

    def test_haproxy_cve_2023_25725_empty_header_names(self):
        """HAProxy CVE-2023-25725, fix "BUG/CRITICAL: http: properly reject
        empty http header field names" (a8598a2e),
        https://git01.mediatek.com/plugins/gitiles/haproxy/+/a8598a2eb11b6c989e81f0dbf10be361782e8d32
        (CVE id confirmed in the commit text quoted in
        https://github.com/openshift/router/pull/474).

        Original bug: the HTTP/1 parser accepted an empty header name, and
        HAProxy's internal header list uses an empty name as its terminator.
        Every header after it was seen during parsing (Content-Length, Host,
        Connection...) but never forwarded, so HAProxy framed the body with a
        Content-Length the backend never received: the body was read as a
        second request.

        portcullis must refuse an empty field name in any spelling (":x",
        ": x", ":" alone, and before Content-Length) with 400, close the
        connection, and forward nothing, neither the request nor its body."""
        body = smuggled(KEYS_A, [bearer(OWNER)])
        for line in (":", ":x", ": x", ":\t", ": " + OWNER):
            data = (POST_HEAD + line + "\r\nContent-Length: %d\r\n\r\n" % len(body)).encode() + body
            self.assertRefusedAndClosed(data, why=line)
            data = (POST_HEAD + "Content-Length: %d\r\n" % len(body) + line + "\r\n\r\n").encode() + body
            self.assertRefusedAndClosed(data, why=line)
        self.assertRefusedAndClosed(b"GET " + LOGS_A.encode() + b" HTTP/1.1\r\nHost: a\r\n:empty header\r\n\r\n")
        self.assertNothingReached()

    def test_haproxy_cve_2023_40225_empty_content_length(self):
        """HAProxy CVE-2023-40225, https://github.com/haproxy/haproxy/issues/2237,
        fix "BUG/MAJOR: http: reject any empty content-length header value".

        Original bug: an empty Content-Length value was treated as absent and
        forwarded as-is next to a populated one; a backend that read the
        empty one as 0 took the body for a second request.

        portcullis must refuse an empty or list-valued Content-Length, alone
        or next to another one, with 400, and forward nothing."""
        body = smuggled(KEYS_A, [bearer(OWNER)])
        for cl in ("Content-Length:\r\nContent-Length: %d" % len(body),
                   "Content-Length: %d\r\nContent-Length:" % len(body),
                   "Content-Length: ", "Content-Length: ,%d" % len(body), "Content-Length: %d," % len(body)):
            self.assertRefusedAndClosed((POST_HEAD + cl + "\r\n\r\n").encode() + body, why=cl)
        self.assertNothingReached()

    def test_cl_te_and_te_cl(self):
        """CL.TE and TE.CL desync (the classic pair; in gunicorn, the backend
        here: CVE-2024-6827, GHSA-hc5x-x2vx-497g, gunicorn < 23 fell back to
        Content-Length when it did not accept the Transfer-Encoding,
        https://github.com/github/advisory-database/pull/6224).

        Original bug class: front and back end pick different framings for a
        message that carries both headers; the bytes one of them counts as
        body are a request to the other.

        portcullis must refuse any message carrying both, in either order and
        any spelling of either header, with 400 and close, forwarding
        nothing."""
        hidden = smuggled(KEYS_A, [bearer(OWNER)])
        chunked = b"0\r\n\r\n" + hidden
        cases = [
            # CL.TE: CL covers everything, TE says the body ends at 0
            "Content-Length: %d\r\nTransfer-Encoding: chunked" % len(chunked),
            # TE.CL: TE first, CL says 4 bytes
            "Transfer-Encoding: chunked\r\nContent-Length: 4",
            "Content-Length: 4\r\ntransfer-encoding: chunked",
            "CONTENT-LENGTH: 4\r\nTRANSFER-ENCODING: CHUNKED",
            "Transfer-Encoding:\tchunked\r\nContent-Length: 4",
            "Content-Length: 0\r\nTransfer-Encoding: chunked",
        ]
        for h in cases:
            self.assertRefusedAndClosed((POST_HEAD + h + "\r\n\r\n").encode() + chunked, why=h)
        self.assertNothingReached()

    def test_te_te_obfuscated_transfer_encoding(self):
        """TE.TE: an obfuscated Transfer-Encoding that one parser honours and
        the other ignores (James Kettle's "HTTP Desync Attacks" list; in the
        backend here, gunicorn CVE-2024-1135, GHSA-w3h3-4rj7-4ph4, treated
        conflicting Transfer-Encoding headers as chunked whatever came last,
        https://github.com/SeldonIO/seldon-core/issues/5523; HAProxy's
        "reject messages where chunked is missing from transfer-encoding",
        https://git01.mediatek.com/plugins/gitiles/haproxy/+/196a7df44d8129d1adc795da020b722614d6a581).

        Each variant is sent next to a Content-Length, so that a parser that
        drops the obfuscated header frames by CL and one that keeps it frames
        by chunks. portcullis must refuse every one with 400 and forward
        nothing: space or tab before the colon, "xchunked", "chunked" in a
        list, twice, quoted, behind a control character, folded onto the
        previous line, or with a NUL."""
        hidden = smuggled(KEYS_A, [bearer(OWNER)])
        chunked = b"0\r\n\r\n" + hidden
        variants = [
            b"Transfer-Encoding : chunked",
            b"Transfer-Encoding\t: chunked",
            b"Transfer-Encoding: xchunked",
            b"Transfer-Encoding: chunkedx",
            b"Transfer-Encoding: chunked, chunked",
            b"Transfer-Encoding: chunked,identity",
            b"Transfer-Encoding: identity, chunked",
            b"Transfer-Encoding: gzip, chunked",
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x",
            b"Transfer-Encoding: x\r\nTransfer-Encoding: chunked",
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            b"Transfer-Encoding: \"chunked\"",
            b"Transfer-Encoding: \x0bchunked",
            b"Transfer-Encoding: chunked\x0c",
            b"Transfer-Encoding: chu\x00nked",
            b"Transfer-Encoding:\r\n chunked",
            b"X: y\r\n Transfer-Encoding: chunked",
            b" Transfer-Encoding: chunked",
            b"Transfer-Encoding\r\n: chunked",
            b"Transfer-Encoding: chunked\nX: y",
        ]
        for v in variants:
            data = POST_HEAD.encode() + b"Content-Length: %d\r\n" % len(chunked) + v + b"\r\n\r\n" + chunked
            self.assertRefusedAndClosed(data, why=v)
            data = POST_HEAD.encode() + v + b"\r\n\r\n" + chunked  # and without CL
            self.assertRefusedAndClosed(data, why=v)
        self.assertNothingReached()

    def test_valid_spellings_of_chunked_end_the_body_where_the_chunks_end(self):
        """The other half of TE.TE: "Transfer-Encoding:<TAB>chunked",
        "chunked<TAB>" and "CHUNKED" are valid (OWS around the value, the
        coding is case-insensitive; RFC 9112 5 and 7). A parser that ignores
        them (the TE.TE desync class above; gunicorn CVE-2024-1135) reads
        "0\\r\\n\\r\\nGET ..." as one body, or the GET as a second request
        that nobody judged.

        portcullis must frame these as chunked, end the body at the zero
        chunk, forward the POST re-chunked, and treat what follows as the
        next request on the connection, judged by itself (401 without a
        credential, 403 on the denied rule), never forwarded."""
        for te in (b"Transfer-Encoding:\tchunked", b"Transfer-Encoding: chunked\t",
                   b"Transfer-Encoding: CHUNKED", b"transfer-encoding:chunked"):
            with self.subTest(te=te):
                self.up.clear()
                data = (POST_HEAD.encode() + te + b"\r\n\r\n" + b"0\r\n\r\n" + smuggled(LOGS_A) +
                        smuggled(KEYS_A, [bearer(OWNER)]))
                statuses, _ = self.talk(data, n=3)
                self.assertEqual(statuses, [200, 401, 403])
                reqs = self.seen()
                self.assertEqual([(q["method"], q["target"]) for q in reqs], [("POST", "/echo")])
                self.assertEqual((reqs[0]["body_len"], reqs[0]["chunked"]), (0, True))

    def test_zero_chunk_followed_by_a_smuggled_request(self):
        """Zero-size chunk followed by a request (the TE.CL payload), and a
        last chunk whose trailer section carries framing or credentials.

        Original bug class: a proxy that forwards the raw chunked bytes, or
        keeps reading after the last chunk as body, hands the backend a
        request it never judged; one that forwards trailers lets a
        "Content-Length" or "Authorization" trailer reach a backend that
        merges trailers into headers.

        portcullis must end the body at the zero chunk, forward only
        "0\\r\\n\\r\\n" (no trailers), and judge the next request by itself;
        the upstream sees exactly the POSTs the proxy answered for."""
        data = (POST_HEAD.encode() + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" +
                smuggled(LOGS_A, [bearer(NORMAL)]) + smuggled(KEYS_A, [bearer(OWNER)]) +
                build_request("GET", "/echo/after"))
        self.assertEqual(self.talk(data, n=4)[0], [200, 403, 403, 200])
        self.assertOnlyThese([("POST", "/echo"), ("GET", "/echo/after")])

        self.up.clear()
        trailers = (b"0\r\nContent-Length: 80\r\nAuthorization: Bearer " + OWNER.encode() +
                    b"\r\nTransfer-Encoding: identity\r\n\r\n")
        data = (POST_HEAD.encode() + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n" + trailers +
                smuggled(LOGS_A))
        self.assertEqual(self.talk(data, n=2)[0], [200, 401])
        reqs = self.seen()
        self.assertEqual([(q["method"], q["target"]) for q in reqs], [("POST", "/echo")])
        self.assertEqual((reqs[0]["body_len"], reqs[0]["chunked"]), (3, True))
        self.assertNotIn("authorization", [k.lower() for k, v in reqs[0]["headers"]])

    def test_chunk_size_and_extension_junk(self):
        """Chunk framing leniency: protocol-http1 CVE-2023-38697
        (GHSA-6jwc-qr2q-7xwj, https://tenable.com/cve/CVE-2023-38697) accepted
        "0x"/"+"-prefixed chunk sizes and a bare LF inside a chunk extension;
        Go net/http accepted a chunk-size line ended by a bare LF
        (CVE-2025-22871, https://nvd.nist.gov/vuln/detail/CVE-2025-22871, as
        shipped in Traefik: GHSA-5423-jcjm-2gpv). Either
        disagreement lets the next parser find a different end of body.

        portcullis must refuse with 400 and close on: whitespace or other
        junk before or after the size, a "0x" or sign prefix, a bare LF
        after the size or inside an extension, a CR not followed by LF, a
        size that overflows 64 bits, and data longer than its size; and
        nothing hidden after them may reach the upstream as a request."""
        hidden = smuggled(KEYS_A, [bearer(OWNER)])
        bodies = [
            b" 5\r\nhello\r\n0\r\n\r\n", b"5 \r\nhello\r\n0\r\n\r\n", b"5\t\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n", b"+5\r\nhello\r\n0\r\n\r\n", b"-5\r\nhello\r\n0\r\n\r\n",
            b"5 ;x=1\r\nhello\r\n0\r\n\r\n", b"5_\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n", b"5;a\nb\r\nhello\r\n0\r\n\r\n", b"5;a=\"x\ny\"\r\nhello\r\n0\r\n\r\n",
            b"5\r\r\nhello\r\n0\r\n\r\n", b"5\rhello\r\n0\r\n\r\n",
            b"10000000000000005\r\nhello\r\n0\r\n\r\n", b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n",
            b"3\r\nhello\r\n0\r\n\r\n", b"5\r\nhello\n0\r\n\r\n", b"5\r\nhello0\r\n\r\n",
            b"0\n\r\n", b"0\r\n\n", b"0\r\nX: y\n\r\n", b"0\r\n X: y\r\n\r\n",
        ]
        for b in bodies:
            data = POST_HEAD.encode() + b"Transfer-Encoding: chunked\r\n\r\n" + b + hidden
            self.assertRefusedAndClosed(data, why=b)
        self.assertNothingReached()

    def test_content_length_is_the_whole_body_and_nothing_else(self):
        """CL.0 and duplicate Content-Length (RFC 9112 6.3; the published
        HAProxy CVE-2021-40346 proofs of concept are often summarised as a
        duplicate Content-Length, e.g.
        https://github.com/0xluk3/vulnerable-http-headers).

        A body that contains a request is still a body; two Content-Length
        headers, even equal, or a value that is not one plain decimal, are
        refused. portcullis must forward the POST with its whole body and
        judge only what follows it."""
        body = smuggled(KEYS_A, [bearer(OWNER)])
        data = (POST_HEAD + "Content-Length: %d\r\n\r\n" % len(body)).encode() + body + smuggled(LOGS_A)
        self.assertEqual(self.talk(data, n=2)[0], [200, 401])
        reqs = self.seen()
        self.assertEqual([(q["method"], q["target"], q["body_len"]) for q in reqs], [("POST", "/echo", len(body))])
        self.up.clear()
        for cl in ("Content-Length: %d\r\nContent-Length: %d" % (len(body), len(body)),
                   "Content-Length: 0\r\nContent-Length: %d" % len(body),
                   "Content-Length: %d, %d" % (len(body), len(body)),
                   "Content-Length: 0x%x" % len(body), "Content-Length: +%d" % len(body),
                   "Content-Length: %d.0" % len(body), "Content-Length: 0 %d" % len(body)):
            self.assertRefusedAndClosed((POST_HEAD + cl + "\r\n\r\n").encode() + body, why=cl)
        self.assertNothingReached()


# ====================================================================
# Header tricks
# ====================================================================

class TestHeaderTricks(CorpusCase):

    def test_envoy_cve_2019_9900_nul_bytes(self):
        """Envoy CVE-2019-9900 (GHSA-x74r-f4mw-c32h),
        https://github.com/envoyproxy/envoy/issues/6434

        Original bug: Envoy <= 1.9.0 (through http-parser) accepted NUL
        inside HTTP/1 header values, so "x-foo: bar\\0_special_cluster" did
        not match a suffix deny rule while the backend read a value ending
        where it liked.

        portcullis must refuse NUL anywhere in the head (name, value,
        credential, request line) and as %00 in the path, with 400, close,
        and forward nothing."""
        heads = [
            b"GET " + LOGS_A.encode() + b" HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + OWNER.encode() +
            b"\x00" + NORMAL.encode() + b"\r\n\r\n",
            b"GET " + LOGS_A.encode() + b" HTTP/1.1\r\nHost: a\r\nCookie: access_token=" + NORMAL.encode() +
            b"\x00;access_token=" + OWNER.encode() + b"\r\n\r\n",
            b"GET " + LOGS_A.encode() + b" HTTP/1.1\r\nHost: a\r\nAuthori\x00zation: Bearer x\r\n\r\n",
            b"GET " + LOGS_A.encode() + b" HTTP/1.1\r\nHost: a\x00.evil\r\n\r\n",
            b"GET " + LOGS_A.encode() + b"\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET " + KEYS_A.encode() + b"%00 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /console/api/apps/" + APP_A.encode() + b"%00/api-keys HTTP/1.1\r\nHost: a\r\n\r\n",
            b"\x00GET " + KEYS_A.encode() + b" HTTP/1.1\r\nHost: a\r\n\r\n",
        ]
        for h in heads:
            self.assertRefusedAndClosed(h, why=h)
        self.assertNothingReached()

    def test_envoy_cve_2021_32777_duplicate_authorization_headers(self):
        """Envoy CVE-2021-32777, https://nvd.nist.gov/vuln/detail/CVE-2021-32777
        (read in https://github.com/NixOS/nixpkgs/issues/138657).

        Original bug: ext_authz had to merge a repeated header into one value
        but sent only the last one, so the authorizer judged one credential
        while the backend read another.

        portcullis must judge every Authorization header, in any order and
        any letter case, and any other configured credential next to them:
        if they do not all verify and name the same user, 401, and nothing
        is forwarded. The owner's token next to a non-owner's is not the
        owner's request."""
        for hs in ([bearer(OWNER), bearer(NORMAL)], [bearer(NORMAL), bearer(OWNER)],
                   [("Authorization", "Bearer " + OWNER), ("authorization", "Bearer " + NORMAL)],
                   [("AUTHORIZATION", "Bearer " + NORMAL), ("Authorization", "Bearer " + OWNER)],
                   [bearer(OWNER), ("Authorization", "Bearer garbage")],
                   [bearer(OWNER), ("Authorization", "")],
                   [bearer(OWNER), ("Cookie", "access_token=" + NORMAL)],
                   [("Cookie", "access_token=" + OWNER), ("Cookie", "__Host-access_token=" + NORMAL)]):
            self.assertEqual(self.get(LOGS_A, hs), 401, hs)
        self.assertNothingReached()

    def test_duplicate_host_headers(self):
        """Duplicate Host (RFC 9112 3.2: more than one Host is a 400), the
        header-matching class of Envoy CVE-2019-18802 (GHSA-356m-vhw2-wcm4,
        "example.com " not matching "example.com",
        https://github.com/golang/vulndb/issues/2248).

        portcullis must refuse two Host headers in any letter case, a Host
        with characters no host may contain, and a Host hidden behind a NUL
        or a space before the colon: 400, closed, nothing forwarded."""
        for hosts in (b"Host: a\r\nHost: a", b"Host: a\r\nhost: b", b"Host: good.example\r\nHOST: evil.example",
                      b"Host: a b", b"Host: a/b", b"Host: a@b\r\nHost: b", b"Host : a\r\nHost: b"):
            data = b"GET " + LOGS_A.encode() + b" HTTP/1.1\r\n" + hosts + b"\r\nAuthorization: Bearer " + \
                OWNER.encode() + b"\r\n\r\n"
            self.assertRefusedAndClosed(data, why=hosts)
        self.assertNothingReached()

    def test_gunicorn_script_name_and_underscore_headers(self):
        """gunicorn's SCRIPT_NAME header, https://github.com/benoitc/gunicorn/issues/2650
        ("Gunicorn's handling of PATH_INFO and SCRIPT_NAME can lead to
        security issues when placed behind a proxy"), and Django
        CVE-2015-0219 (WSGI header spoofing via underscore/dash
        conflation); gunicorn later chose to drop such names
        (commit 72b8970, "silently drop or refuse header names w/
        underscore").

        Original bug: gunicorn takes SCRIPT_NAME from a request header and
        strips it from PATH_INFO, so "GET /x/admin/..." with "script_name:
        /x" passed nginx's deny on /admin/ and was routed as /admin/...; and
        CGI maps "X_Forwarded_For" and "X-Forwarded-For" to the same
        variable, so a client can spoof a header the proxy manages.

        portcullis must drop every header whose name contains '_' before
        forwarding: the request below is forwarded (its path is not
        protected) but the upstream sees no SCRIPT_NAME in any case, no
        Transfer_Encoding or Content_Length, and only the X-Forwarded-For the
        proxy wrote. The forwarded path is the one portcullis judged."""
        target = "/x" + LOGS_A
        status = self.get(target, [("SCRIPT_NAME", "/x"), ("script_name", "/x"), ("Script_Name", "/x"),
                                     ("X_Forwarded_For", "10.9.9.9"), ("X_Forwarded_Proto", "https"),
                                     ("Transfer_Encoding", "chunked"), ("Content_Length", "40"),
                                     ("X_Auth_User", "owner"), bearer(NORMAL)])
        self.assertEqual(status, 200)
        reqs = self.seen()
        self.assertEqual([q["target"] for q in reqs], [target])
        names = [k for k, v in reqs[0]["headers"]]
        self.assertEqual([n for n in names if "_" in n], [])
        xff = [v for k, v in reqs[0]["headers"] if k.lower() == "x-forwarded-for"]
        self.assertEqual(xff, ["127.0.0.1"])
        self.assertEqual(backend_routes(target), (None, None))

    def test_absolute_form_with_another_authority(self):
        """Absolute-form request-targets (RFC 9112 3.2.2): the authority in
        the request line and the Host header disagree, and the path in
        either may be judged differently by different hops
        (gunicorn keeps the Host header and ignores the authority,
        https://github.com/benoitc/gunicorn/pull/3723; HAProxy issue
        https://github.com/haproxy/haproxy/issues/1378).

        portcullis must judge the path of an absolute-form target exactly as
        it judges origin-form (401/403 on the protected rule, 403 on the
        denied one, 400 on traversal, userinfo or an encoded authority) and
        forward origin-form only, with the target's authority as the one and
        only Host (RFC 9112 3.2.2), so no second authority reaches the
        backend."""
        for t in ("http://evil.example" + LOGS_A, "HTTP://evil.example:8443" + LOGS_A,
                  "https://evil.example" + LOGS_A, "http://127.0.0.1:1" + LOGS_A):
            self.assertEqual(self.get(t, [bearer(NORMAL), ("Host", "app.example")]), 403, t)
            self.assertEqual(self.get(t, [("Host", "app.example")]), 401, t)
        self.assertEqual(self.get("http://evil.example" + KEYS_A, [bearer(OWNER)]), 403)
        for t in ("http://evil.example/console/api/x/../apps/%s/api-keys" % APP_A,
                  "http://evil.example/console/api/x/%%2e%%2e/apps/%s/api-keys" % APP_A,
                  "http://user@evil.example" + LOGS_A, "http://app.example@evil.example" + KEYS_A,
                  "http://evil%2eexample" + LOGS_A, "http://evil.example\\@app.example" + KEYS_A,
                  "http:///" + LOGS_A.lstrip("/"), "ftp://evil.example" + LOGS_A):
            self.assertEqual(self.get(t, [bearer(OWNER)]), 400, t)
        self.assertNothingReached()
        self.assertEqual(self.get("http://evil.example" + LOGS_A, [bearer(OWNER), ("Host", "app.example")]), 200)
        reqs = self.seen()
        self.assertEqual([q["target"] for q in reqs], [LOGS_A])
        self.assertEqual([v for k, v in reqs[0]["headers"] if k.lower() == "host"], ["evil.example"])
        self.assertNotIn("app.example", " ".join(v for k, v in reqs[0]["headers"]))


if __name__ == "__main__":
    unittest.main()
