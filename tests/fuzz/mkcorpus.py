#!/usr/bin/env python3
"""Write the seed corpora in tests/fuzz/corpus/<target>/.

    python3 tests/fuzz/mkcorpus.py

Seeds are small, meaningful inputs: real requests (smuggling attempts
included), paths for the fuzz rule set, valid and forged tokens minted with
the fuzz_token.c key set, and configs. Re-running rewrites the generated
seeds; files not written here (minimised crash inputs kept as regression
seeds, named regress-*) are left alone.
"""
import base64
import hashlib
import hmac
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")

# the key set of fuzz_token.c
SECRET = b"fuzz-default-secret"
K1 = b"fuzz-key-one"
K2 = (b"fuzz-key-two-is-longer-than-the-sha384-block-so-hmac-hashes-it-first-"
      b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef-end")
NOW = 1700000000

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
UUID2 = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- http_request: raw bytes a client sends ----

def http():
    C = "\r\n"
    seeds = {
        "get": "GET /console/api/apps HTTP/1.1\r\nHost: dify.example\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n",
        "post-content-length": "POST /v1/chat-messages HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                               "Content-Length: 13\r\n\r\n{\"query\":\"x\"}",
        "chunked": "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n6;name=val\r\n world\r\n0\r\n\r\n",
        "chunked-trailers": "PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\nTrailer: X-Sum\r\n\r\n"
                            "A\r\n0123456789\r\n0\r\nX-Sum: 45\r\nX-Other:\t v \r\n\r\n",
        "chunked-quoted-ext": "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "3;a=\"q\\\"uo;ted\";b\r\nabc\r\n000\r\n\r\n",
        "chunked-pipelined": "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "1\r\nx\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
        "chunked-size-overflow": "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "10000000000000001\r\nx\r\n0\r\n\r\n",
        "chunked-bare-lf": "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
        "smuggle-cl-te": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "0\r\n\r\nG",
        "smuggle-te-cl": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
                         "8\r\nSMUGGLED\r\n0\r\n\r\n",
        "smuggle-te-te": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-encoding: x\r\n\r\n",
        "smuggle-te-list": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "smuggle-te-space-colon": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
        "smuggle-te-vtab": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\n\r\n",
        "smuggle-te-obs-fold": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
        "smuggle-cl-dup": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "smuggle-cl-list": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
        "smuggle-cl-plus": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
        "smuggle-bare-lf": "GET / HTTP/1.1\nHost: a\n\n",
        "smuggle-cr-only": "GET / HTTP/1.1\rHost: a\r\r\n\r\n",
        "smuggle-nul-value": "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n",
        "http10-chunked": "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "http10-no-host": "GET /healthz HTTP/1.0\r\n\r\n",
        "missing-host": "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
        "host-dup": "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "host-bad": "GET / HTTP/1.1\r\nHost: a b@c\r\n\r\n",
        "leading-crlf": "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "absolute-form": "GET http://dify.example/console/api/apps?page=1 HTTP/1.1\r\nHost: dify.example\r\n\r\n",
        "options-asterisk": "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        "connect": "CONNECT dify.example:443 HTTP/1.1\r\nHost: dify.example:443\r\n\r\n",
        "expect-continue": "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
        "expect-other": "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n",
        "upgrade-websocket": "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
                             "Sec-WebSocket-Version: 13\r\n\r\n",
        "connection-close": "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "connection-bad": "GET / HTTP/1.1\r\nHost: a\r\nConnection: close;x\r\n\r\n",
        "auth-cookie": "GET /console/api/apps/%s/chat-conversations HTTP/1.1\r\nHost: a\r\n"
                       "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x\r\n"
                       "Cookie: access_token=\"a\\\"b\"; __Host-access_token=t\r\n\r\n" % UUID,
        "bad-version": "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        "bad-method": "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
        "response": "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "2\r\nok\r\n0\r\n\r\n",
        "response-no-reason": "HTTP/1.1 204\r\nConnection: keep-alive\r\n\r\n",
    }
    for name, data in seeds.items():
        write("http_request", name, data.encode("latin-1"))


# ---- canonical_path: method byte (enum h1_method) + request-target ----

OTHER, GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE, CONNECT = range(10)


def paths():
    seeds = {
        "dify-conversations": (GET, "/console/api/apps/%s/chat-conversations" % UUID),
        "dify-conversation-upper": (DELETE, "/console/api/apps/%s/chat-conversations/%s" % (UUID.upper(), UUID2)),
        "dify-trace-config": (PATCH, "/console/api/apps/%s/trace-config" % UUID),
        "dify-pause-details": (GET, "/console/api/workflow/%s/pause-details" % UUID2.replace("-", "")),
        "encoded-slash": (GET, "/console/api/apps/%s%%2Fchat-conversations" % UUID),
        "encoded-letters": (GET, "/console/%%61pi/apps/%s/chat-conversation%%73" % UUID),
        "leading-slashes": (GET, "//console/api/apps/%s/chat-conversations" % UUID),
        "encoded-leading-slash": (GET, "/%%2Fconsole/api/apps/%s/trace-config" % UUID),
        "dot-segment": (GET, "/console/api/apps/../apps/%s/chat-conversations" % UUID),
        "encoded-dot-segment": (GET, "/static/%2e%2E/console/api/apps"),
        "empty-segment": (GET, "/console//api/apps"),
        "encoded-nul": (GET, "/items/1%00"),
        "encoded-query": (GET, "/search%3Fq=1"),
        "bad-escape": (GET, "/items/%4"),
        "fragment": (GET, "/items/1#frag"),
        "item-int": (GET, "/items/00042"),
        "item-arabic-digit": (GET, "/items/%D9%A3%D9%A0"),
        "item-unknown-nonascii": (GET, "/items/%C3%A9"),
        "item-parts": (PUT, "/items/7/parts/anything"),
        "item-any": (POST, "/items/abc"),
        "files-meta": (GET, "/files/x/meta"),
        "static-glob": (GET, "/static/css/app.css"),
        "static-bare": (HEAD, "/static"),
        "search": (GET, "/search?app=%s&page=002&q=hello+world" % UUID.upper()),
        "search-repeat": (GET, "/search?app=%s&app=%s" % (UUID, UUID2)),
        "search-bad-uuid": (GET, "/search?app=x&q="),
        "find-spaced": (GET, "/find?a+b=1&k%25=%EF%BC%91%EF%BC%92&x"),
        "root": (OTHER, "/"),
        "root-query": (GET, "/?"),
        "trailing": (DELETE, "/dir/"),
        "api-writes": (POST, "/api/v1/things/1"),
        "mixed": (TRACE, "/u/%s/n/%%EF%%BC%%91/s/x%%20y" % UUID),
        "colon-at": (GET, "/a:b/@c/x+y/~z"),
        "absolute-form": (GET, "http://dify.example/console/api/apps/%s/chat-conversations?x=1" % UUID),
        "absolute-https-query": (GET, "HTTPS://h:443?q=1"),
        "absolute-userinfo": (GET, "http://user@h/x"),
        "options-asterisk": (OPTIONS, "*"),
        "asterisk-get": (GET, "*"),
        "many-segments": (GET, "/" + "/".join(["a"] * 130)),
        "unicode-path": (GET, "/static/%E2%80%AE/%F0%9F%98%80"),
        "health": (GET, "/healthz"),
    }
    for name, (m, target) in seeds.items():
        write("canonical_path", name, bytes([m]) + target.encode())


# ---- token ----

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def mint(header, payload, key=SECRET, digest=hashlib.sha256, raw_header=None, raw_payload=None):
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    p = raw_payload if raw_payload is not None else json.dumps(payload, separators=(",", ":")).encode()
    signing = b64(h) + b"." + b64(p)
    return signing + b"." + b64(hmac.new(key, signing, digest).digest())


def tokens():
    exp = NOW + 3600
    strict = {"user_id": "6d1a0f4e-2b1c-4c1e-9d6a-1f2e3d4c5b6a", "iss": "portcullis-fuzz", "aud": "api",
              "exp": exp, "sub": "Web API Passport"}
    raw = {
        "hs256-default": mint({"alg": "HS256", "typ": "JWT"}, {"sub": "alice", "exp": exp}),
        "hs384-k1": mint({"alg": "HS384", "kid": "k1"}, {"sub": "bob"}, K1, hashlib.sha384),
        "hs256-k2": mint({"kid": "k2", "alg": "HS256"}, {"sub": "carol", "nbf": NOW - 10}, K2),
        "dify-strict": mint({"alg": "HS256", "typ": "JWT"}, strict),
        "strict-aud-list": mint({"alg": "HS384"}, dict(strict, aud=["x", "api"]), SECRET, hashlib.sha384),
        "expired": mint({"alg": "HS256"}, {"sub": "alice", "exp": NOW - 3600}),
        "within-leeway": mint({"alg": "HS256"}, {"sub": "alice", "exp": NOW - 10}),
        "not-yet-valid": mint({"alg": "HS256"}, {"sub": "alice", "nbf": NOW + 3600}),
        "hs512-not-allowed": mint({"alg": "HS512"}, {"sub": "alice"}, SECRET, hashlib.sha512),
        "alg-none": b64(b'{"alg":"none"}') + b"." + b64(b'{"sub":"admin"}') + b".",
        "alg-none-no-sig": b64(b'{"alg":"none"}') + b"." + b64(b'{"sub":"admin"}'),
        "kid-unknown": mint({"alg": "HS256", "kid": "k3"}, {"sub": "alice"}),
        "kid-not-string": mint({"alg": "HS256", "kid": 1}, {"sub": "alice"}),
        "kid-wrong-key": mint({"alg": "HS256", "kid": "k1"}, {"sub": "alice"}, SECRET),
        "crit": mint({"alg": "HS256", "crit": ["exp"]}, {"sub": "alice"}),
        "dup-alg": mint(None, None, raw_header=b'{"alg":"HS512","alg":"HS256"}', raw_payload=b'{"sub":"a"}'),
        "dup-sub": mint(None, None, raw_header=b'{"alg":"HS256"}', raw_payload=b'{"sub":"a","sub":"b"}'),
        "sub-nul": mint(None, None, raw_header=b'{"alg":"HS256"}', raw_payload=b'{"sub":"a\\u0000b"}'),
        "sub-surrogates": mint(None, None, raw_header=b'{"alg":"HS256"}',
                               raw_payload=b'{"sub":"\\ud83d\\ude00 \\u00e9","exp":1.7e9}'),
        "sub-lone-surrogate": mint(None, None, raw_header=b'{"alg":"HS256"}', raw_payload=b'{"sub":"\\udc00"}'),
        "deep-payload": mint(None, None, raw_header=b'{"alg":"HS256"}',
                             raw_payload=b'{"sub":"a","x":' + b"[" * 20 + b"]" * 20 + b"}"),
        "exp-string": mint({"alg": "HS256"}, {"sub": "alice", "exp": "9999999999"}),
        "exp-huge": mint(None, None, raw_header=b'{"alg":"HS256"}', raw_payload=b'{"sub":"a","exp":1e999}'),
        "payload-array": mint({"alg": "HS256"}, ["sub", "alice"]),
    }
    good = raw["hs256-default"]
    h, p, s = good.split(b".")
    raw["bad-signature"] = h + b"." + p + b"." + s[:-2] + (b"AA" if s[-2:] != b"AA" else b"AB")
    raw["padded"] = h + b"==." + p + b"." + s
    raw["four-parts"] = good + b".x"
    raw["non-canonical-sig"] = h + b"." + p + b"." + s[:-1] + (b"B" if s[-1:] == b"A" else b"A")
    raw["forged-payload"] = h + b"." + b64(b'{"sub":"admin"}') + b"." + s
    raw["base64-std"] = h + b"." + p + b"." + base64.b64encode(base64.urlsafe_b64decode(s + b"=" * (-len(s) % 4)))
    for name, tok in raw.items():
        write("token", name, b"\x00" + tok)
    # signed mode: the target signs header\0payload itself (mode bit 0)
    signed = {
        "signed-payload-only": (1, None, b'{"sub":"alice","exp":1700003600}'),
        "signed-k2-hs384": (1, b'{"alg":"HS384","kid":"k2"}', b'{"sub":"u","nbf":1699999999}'),
        "signed-strict": (1, b'{"alg":"HS256","typ":"JWT"}',
                          b'{"user_id":"x","iss":"portcullis-fuzz","aud":["a","api"],"exp":1700000000}'),
        "signed-flipped-mac": (3, b'{"alg":"HS256"}', b'{"sub":"alice"}'),
        "signed-wrong-key": (5, b'{"alg":"HS384","kid":"k1"}', b'{"sub":"alice"}'),
        "signed-noncanonical": (9, b'{"alg":"HS256"}', b'{"sub":"alice"}'),
        "signed-hs512": (1, b'{"alg":"HS512"}', b'{"sub":"alice"}'),
        "signed-escapes": (1, b'{"alg":"HS\\u0032\\u00356"}', b'{"sub":"\\"\\\\\\/\\b\\f\\n\\r\\t","exp":0.5e+10}'),
        "signed-whitespace": (1, b' \t\r\n{ "alg" : "HS256" } ', b'{"sub":"a","nested":{"a":[true,false,null,1]}}'),
        "signed-crit": (1, b'{"alg":"HS256","crit":[]}', b'{"sub":"a"}'),
    }
    for name, (mode, hj, pj) in signed.items():
        write("token", name, bytes([mode]) + (hj + b"\x00" if hj is not None else b"") + pj)


# ---- config ----

BASE = "listen: 127.0.0.1:8080\nupstream: http://127.0.0.1:5001\n"


def configs():
    with open(os.path.join(ROOT, "rules", "dify.yaml")) as f:
        dify = f.read()
    seeds = {
        "dify": dify,
        # the pack with the secret from the environment and no secret_file
        "dify-secret-env": dify.replace('secret: "${SECRET_KEY:-}"', 'secret: "${SECRET_KEY}"'),
        "minimal": BASE,
        "minimal-flow": "{listen: '0.0.0.0:80', upstream: 'http://[::1]:5001/', default: forward}\n",
        "env": "listen: ${LISTEN}\nupstream: \"${UPSTREAM:-http://x:1}\"\nhealth_path: /h${EMPTY:-z}\n"
               "ready_path: \"$${LITERAL}\"\n",
        "env-unset": BASE + "identity: {secret: \"${UNSET_VARIABLE}\"}\n",
        "env-newline": BASE + "default: \"${NEWLINE}\"\n",
        "env-bad": BASE + "identity: {secret: \"${1BAD}\"}\n",
        "identity-keys": BASE + "identity:\n  keys:\n    - {id: k1, secret: one}\n    - id: k2\n"
                                "      secret_file: /fuzz/secret\n  algorithms: [HS256, HS384, HS512]\n"
                                "  sources: [\"cookie:session\", \"header:X-Token\", \"query:token\"]\n"
                                "  subject_claim: uid\n  issuer: me\n  audience: ~\n  require_exp: false\n"
                                "  leeway: 1500ms\n",
        "identity-secret-file": BASE + "identity:\n  secret: \"\"\n  secret_file: /fuzz/secret\n",
        "identity-blank-file": BASE + "identity:\n  secret_file: /fuzz/blank\n",
        "identity-missing-file": BASE + "identity:\n  secret_file: /nonexistent/key\n",
        "identity-bad": BASE + "identity:\n  algorithms: [none]\n  sources: [\"header:X_Token\", \"body:x\"]\n"
                               "  keys: [{id: k1}, {secret: s}, {id: k1, secret: a}, {id: k1, secret: b}]\n",
        "rules": BASE + "identity: {secret: s}\ndatabase: {url: \"host=/nonexistent\"}\npolicies:\n"
                        "  p: \"SELECT 1 WHERE :app_id::text <> '' AND :subject <> '' AND :claims.role = 'x'\"\n"
                        "  q: \"SELECT $$ :not_a_param $$, ':nor_this' -- :nor_this\\n WHERE :n::int > 0\"\n"
                        "rules:\n"
                        "  - name: app\n    path: /apps/{app_id:uuid}/x\n    methods: [GET, DELETE]\n    allow: [p]\n"
                        "  - name: num\n    path: /n/{n:int}\n    allow: [q]\n"
                        "  - name: query\n    path: /search\n    query: {app: \"{app_id:uuid}\"}\n    allow: [p]\n"
                        "  - name: star\n    path: /files/*/meta\n    action: deny\n    shadow: true\n"
                        "  - name: glob\n    path: /static/**\n    action: forward\n",
        "rules-errors": BASE + "rules:\n  - name: a\n    path: /x/{id}\n    action: forward\n"
                               "  - name: a\n    path: /x/{other}\n    action: deny\n"
                               "  - name: b\n    path: /**/x\n    action: forward\n"
                               "  - name: c\n    path: /a/{x:float}\n    action: forward\n"
                               "  - name: d\n    path: /a/%2F\n    methods: [get]\n    action: maybe\n"
                               "  - name: e\n    path: /a/{subject}\n    allow: [nope]\n",
        "sections": BASE + "admin_listen: \"[::1]:9901\"\nworkers: 2\nhealth_path: /healthz\nready_path: /readyz\n"
                           "timeouts: {header: 10s, connect: 5s, upstream: 1h, idle: 75s, drain: 0ms, body: 1m,"
                           " keepalive: 1s, policy: 2s}\n"
                           "limits: {header_bytes: 32KiB, body_bytes: 100MiB, connections: 1000}\n"
                           "log: {format: text, level: debug, access: false}\n"
                           "database: {host: db, port: \"5432\", dbname: dify, user: postgres, password: \"\","
                           " sslmode: disable, pool: 4, connect_timeout: 5s}\n"
                           "cache: {ttl: 0s, max_entries: 10, invalidate_channel: portcullis, token_ttl: 1m}\n",
        "sections-bad": BASE + "workers: 0\ntimeouts: {header: 10 s, idel: 1s}\nlimits: {header_bytes: 1GB}\n"
                               "log: {format: xml}\ncache: {invalidate_channel: Bad-Name}\n"
                               "health_path: /same\nready_path: /same\nlisten2: x\n",
        "upstream-name": "listen: 127.0.0.1:8080\nupstream: http://api:5001\n",
        "upstream-path": "listen: 127.0.0.1:8080\nupstream: http://api:5001/v1\n",
        "listen-bad": "listen: localhost:8080\nupstream: ftp://x\n",
        "yaml-anchor": BASE + "identity: &id {secret: s}\nother: *id\n",
        "yaml-tag": BASE + "workers: !!int 4\n",
        "yaml-dup-key": BASE + "listen: 127.0.0.1:9\n",
        "yaml-dup-key-newline": BASE + "\"a\\nb\": 1\n\"a\\nb\": 2\n",
        "yaml-two-docs": BASE + "---\nlisten: x\n",
        "yaml-not-map": "- listen\n- upstream\n",
        "yaml-syntax": "listen: [127.0.0.1:8080\n",
        "yaml-nul": "listen: \"a\\0b\"\n",
        "yaml-bad-utf8": b"listen: \xff\xfe\n",
        "yaml-empty": "",
        "yaml-complex-key": BASE + "? [a, b]\n: c\n",
        "yaml-crlf": BASE.replace("\n", "\r\n") + "workers: 3\r\n",
    }
    for name, text in seeds.items():
        write("config", name, text)


if __name__ == "__main__":
    # start from a clean slate, keeping regression seeds
    for t in ("http_request", "canonical_path", "token", "config"):
        d = os.path.join(CORPUS, t)
        if os.path.isdir(d):
            for f in os.listdir(d):
                if not f.startswith("regress-"):
                    os.unlink(os.path.join(d, f))
    http()
    paths()
    tokens()
    configs()
