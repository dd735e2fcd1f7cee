"""Issue #3: the canonical path end to end, and JWT identity with no
confused deputy. Every refused request must never reach the upstream."""
import json
import os
import tempfile
import time
import unittest

from harness import Conn, Proxy, Upstream, build_request, http, mint, raw, run_portcullis, shared_pg, status_of
from fixture import APPS, USERS, identity_yaml, policies_yaml

SECRET = "test-secret-for-identity"
OTHER_SECRET = "some-other-secret"

CONFIG = """
listen: 127.0.0.1:{port}
upstream: http://127.0.0.1:{upstream}
workers: 2
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
  - name: open
    path: /**
    action: forward
""" % (identity_yaml(SECRET), policies_yaml("owner"))

APP_A = APPS["a-editor-app"][0]
LOGS_A = "/console/api/apps/%s/chat-conversations" % APP_A


def tok(user, secret=SECRET, **kw):
    claims = {"user_id": USERS[user], "iss": "SELF_HOSTED", "sub": "Console API Passport"}
    claims.update(kw.pop("claims", {}))
    return mint(secret, claims, **kw)


class IdentityCase(unittest.TestCase):
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

    def get(self, target=LOGS_A, headers=()):
        return http(self.proxy.port, "GET", target, headers=list(headers))

    def assertNotForwarded(self):
        self.assertEqual(self.up.settled_requests(), [])


class TestForgedTokens(IdentityCase):
    def assert401(self, token):
        r = self.get(headers=[("Authorization", "Bearer " + token)])
        self.assertEqual(r.status, 401, (token, r.body))
        body = r.json()
        self.assertEqual((body["code"], body["status"]), ("unauthorized", 401))
        self.assertNotForwarded()

    def test_a_valid_owner_token_is_allowed(self):
        r = self.get(headers=[("Authorization", "Bearer " + tok("owner_a"))])
        self.assertEqual(r.status, 200)

    def test_alg_none_is_rejected(self):
        self.assert401(tok("owner_a", alg="none"))
        t = tok("owner_a", alg="none")
        self.assert401(t + "c2ln")

    def test_hs512_is_rejected_when_only_hs256_is_allowed(self):
        self.assert401(tok("owner_a", alg="HS512"))

    def test_wrong_key_is_rejected(self):
        self.assert401(tok("owner_a", secret=OTHER_SECRET))

    def test_expired_token_is_rejected(self):
        self.assert401(tok("owner_a", ttl=-60))

    def test_garbage_and_empty_tokens_are_rejected(self):
        for t in ("garbage", "a.b.c", "...", "eyJhbGciOiJIUzI1NiJ9..", tok("owner_a")[:-3]):
            self.assert401(t)
        r = self.get(headers=[("Authorization", "Bearer ")])
        self.assertEqual(r.status, 401)
        self.assertNotForwarded()

    def test_duplicate_json_keys_are_rejected(self):
        dup = ('{"user_id":"%s","user_id":"%s","exp":%d,"iss":"SELF_HOSTED"}' %
               (USERS["normal_a"], USERS["owner_a"], int(time.time()) + 600)).encode()
        self.assert401(mint(SECRET, raw_payload=dup))
        self.assert401(mint(SECRET, raw_header=b'{"alg":"HS256","alg":"none"}'))

    def test_crit_header_is_rejected(self):
        self.assert401(tok("owner_a", header={"crit": ["exp"]}))

    def test_wrong_issuer_is_rejected(self):
        self.assert401(tok("owner_a", claims={"iss": "SOMEONE_ELSE"}))

    def test_missing_subject_claim_is_rejected(self):
        self.assert401(mint(SECRET, {"iss": "SELF_HOSTED", "sub": "Console API Passport"}))

    def test_no_credential_gets_401_in_difys_shape(self):
        r = self.get()
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json(), {"code": "unauthorized", "message": "no credential", "status": 401})
        self.assertNotForwarded()

    def test_non_bearer_authorization_is_a_credential_that_fails(self):
        r = self.get(headers=[("Authorization", "Basic b3duZXI6cHc="), ("Cookie", "access_token=" + tok("owner_a"))])
        self.assertEqual(r.status, 401)
        self.assertNotForwarded()

    def test_bearer_scheme_is_case_insensitive(self):
        self.assertEqual(self.get(headers=[("Authorization", "bEaReR " + tok("owner_a"))]).status, 200)

    def test_token_minted_by_portcullis_token_with_libjwt_verifies(self):
        out = run_portcullis("token", "--secret", SECRET, "--claim", "user_id=" + USERS["owner_a"],
                             "--claim", "iss=SELF_HOSTED", "--ttl", "10m")
        self.assertEqual(out.returncode, 0, out.stderr)
        r = self.get(headers=[("Authorization", "Bearer " + out.stdout.strip())])
        self.assertEqual(r.status, 200)


    def test_token_minted_from_a_secret_file_ignores_its_trailing_newline(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "key")
            with open(path, "w") as f:
                f.write(SECRET + "\n")
            out = run_portcullis("token", "--secret-file", path, "--claim", "user_id=" + USERS["owner_a"],
                                 "--claim", "iss=SELF_HOSTED")
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(self.get(headers=[("Authorization", "Bearer " + out.stdout.strip())]).status, 200)
            with open(path, "w") as f:
                f.write("\n")
            out = run_portcullis("token", "--secret-file", path, "--claim", "user_id=x")
            self.assertEqual(out.returncode, 1)
            self.assertIn("is empty", out.stderr)


class TestCredentialPlacement(IdentityCase):
    def test_cookie_and_header_naming_different_users_get_401(self):
        r = self.get(headers=[("Cookie", "access_token=" + tok("owner_a")),
                              ("Authorization", "Bearer " + tok("normal_a"))])
        self.assertEqual(r.status, 401)
        self.assertNotForwarded()
        # and the other way round: a harmless header cannot launder a cookie
        r = self.get(headers=[("Cookie", "access_token=" + tok("normal_a")),
                              ("Authorization", "Bearer " + tok("owner_a"))])
        self.assertEqual(r.status, 401)
        self.assertNotForwarded()

    def test_the_same_user_in_cookie_and_header_is_allowed(self):
        r = self.get(headers=[("Cookie", "access_token=" + tok("owner_a")),
                              ("Authorization", "Bearer " + tok("owner_a", ttl=1800))])
        self.assertEqual(r.status, 200)

    def test_a_cookie_name_repeated_in_one_header_with_two_users_gets_401(self):
        r = self.get(headers=[("Cookie", "access_token=%s; x=1; access_token=%s" % (tok("normal_a"), tok("owner_a")))])
        self.assertEqual(r.status, 401)
        self.assertNotForwarded()

    def test_cookies_in_several_cookie_headers_are_all_checked(self):
        r = self.get(headers=[("Cookie", "access_token=" + tok("normal_a")), ("Cookie", "access_token=" + tok("owner_a"))])
        self.assertEqual(r.status, 401)
        self.assertNotForwarded()

    def test_host_prefixed_and_plain_cookies_must_agree(self):
        r = self.get(headers=[("Cookie", "__Host-access_token=%s; access_token=%s" % (tok("owner_a"), tok("normal_a")))])
        self.assertEqual(r.status, 401)
        r = self.get(headers=[("Cookie", "__Host-access_token=%s" % tok("owner_a"))])
        self.assertEqual(r.status, 200)

    def test_a_quote_left_open_across_cookie_headers_cannot_hide_a_second_user(self):
        # independent review: parsed one by one, the second header's
        # access_token sat inside quotes; joined (as forwarded, and as
        # Werkzeug reads it) it is a cookie naming normal_a
        r = self.get(headers=[("Authorization", "Bearer " + tok("owner_a")), ("Cookie", 'x="p'),
                              ("Cookie", 'c="; access_token=%s; d="' % tok("normal_a"))])
        self.assertEqual(r.status, 401)
        self.assertNotForwarded()

    def test_two_authorization_headers_with_two_users_get_401(self):
        r = self.get(headers=[("Authorization", "Bearer " + tok("owner_a")), ("Authorization", "Bearer " + tok("normal_a"))])
        self.assertEqual(r.status, 401)
        self.assertNotForwarded()

    def test_a_valid_token_next_to_a_forged_one_gets_401(self):
        r = self.get(headers=[("Authorization", "Bearer " + tok("owner_a")),
                              ("Cookie", "access_token=" + tok("owner_a", secret=OTHER_SECRET))])
        self.assertEqual(r.status, 401)
        self.assertNotForwarded()

    def test_query_token_is_a_credential_too(self):
        # Dify < 1.9.2 reads ?_token= when there is no Authorization header
        r = self.get(LOGS_A + "?_token=" + tok("owner_a"))
        self.assertEqual(r.status, 200)
        r = self.get(LOGS_A + "?_token=" + tok("normal_a"), headers=[("Cookie", "access_token=" + tok("owner_a"))])
        self.assertEqual(r.status, 401)

    def test_a_quoted_cookie_value_is_read_as_werkzeug_reads_it(self):
        r = self.get(headers=[("Cookie", 'access_token="%s"' % tok("owner_a"))])
        self.assertEqual(r.status, 200)

    def test_forward_rules_pass_credentials_through_untouched(self):
        r = http(self.proxy.port, "GET", "/console/api/other", headers=[
            ("Authorization", "Bearer not-even-a-jwt"), ("Cookie", "access_token=junk; other=1")])
        self.assertEqual(r.status, 200)
        hs = r.json()["headers"]
        self.assertIn(["Authorization", "Bearer not-even-a-jwt"], hs)
        self.assertIn(["Cookie", "access_token=junk; other=1"], hs)


class TestPerRequestJudgement(IdentityCase):
    def test_a_pipelined_request_with_a_second_users_token_is_judged_on_its_own(self):
        c = Conn(self.proxy.port)
        c.send(build_request("GET", LOGS_A, [("Authorization", "Bearer " + tok("owner_a"))]) +
               build_request("GET", LOGS_A, [("Authorization", "Bearer " + tok("normal_a"))]) +
               build_request("GET", LOGS_A) +
               build_request("GET", LOGS_A, [("Authorization", "Bearer " + tok("owner_a"))]))
        self.assertEqual([c.read_response().status for _ in range(4)], [200, 403, 401, 200])
        c.close()
        reqs = self.up.requests()
        self.assertEqual(len(reqs), 2)
        for q in reqs:
            self.assertIn(["Authorization", "Bearer " + tok("owner_a")][0], [k for k, v in q["headers"]])

    def test_the_denied_user_first_then_the_allowed_one_on_one_connection(self):
        c = Conn(self.proxy.port)
        self.assertEqual(c.request("GET", LOGS_A, [("Authorization", "Bearer " + tok("normal_a"))]).status, 403)
        self.assertEqual(c.request("GET", LOGS_A, [("Authorization", "Bearer " + tok("owner_a"))]).status, 200)
        self.assertEqual(c.request("GET", LOGS_A, [("Authorization", "Bearer " + tok("normal_a"))]).status, 403)
        c.close()

    def test_denial_is_403_in_difys_shape(self):
        r = self.get(headers=[("Authorization", "Bearer " + tok("normal_a"))])
        self.assertEqual(r.status, 403)
        body = r.json()
        self.assertEqual((body["code"], body["status"]), ("forbidden", 403))
        self.assertNotForwarded()


class TestCanonicalPathEndToEnd(IdentityCase):
    def test_an_upper_case_uuid_matches_the_protected_rule(self):
        target = "/console/api/apps/%s/chat-conversations" % APP_A.upper()
        self.assertEqual(self.get(target, [("Authorization", "Bearer " + tok("normal_a"))]).status, 403)
        self.assertEqual(self.get(target, [("Authorization", "Bearer " + tok("owner_a"))]).status, 200)
        self.assertEqual(self.up.requests()[-1]["target"], target)

    def test_percent_encoded_letters_cannot_dodge_the_rule(self):
        target = "/console/api/%61pps/" + APP_A + "/chat-%63onversations"
        r = self.get(target, [("Authorization", "Bearer " + tok("normal_a"))])
        self.assertEqual(r.status, 403)
        self.assertNotForwarded()
        r = self.get(target, [("Authorization", "Bearer " + tok("owner_a"))])
        self.assertEqual(r.status, 200)
        # the upstream receives the canonical path, minimally re-encoded
        self.assertEqual(self.up.requests()[-1]["target"], LOGS_A)

    def test_leading_slashes_collapse_to_the_protected_rule(self):
        r = self.get("///console/api/apps/%s/chat-conversations" % APP_A, [("Authorization", "Bearer " + tok("normal_a"))])
        self.assertEqual(r.status, 403)
        self.assertNotForwarded()

    def test_an_encoded_slash_is_decoded_as_gunicorn_does_and_protected(self):
        target = "/console/api/apps/" + APP_A + "%2Fchat-conversations"
        self.assertEqual(self.get(target, [("Authorization", "Bearer " + tok("normal_a"))]).status, 403)
        self.assertNotForwarded()
        self.assertEqual(self.get(target, [("Authorization", "Bearer " + tok("owner_a"))]).status, 200)
        self.assertEqual(self.up.requests()[-1]["target"], LOGS_A)

    def test_ambiguous_paths_are_refused_before_any_rule(self):
        for target in ("/console/api/apps/%s%%2F%%2Fchat-conversations" % APP_A,
                       "/console/api//apps/%s/chat-conversations" % APP_A,
                       "/console/api/x/../apps/%s/chat-conversations" % APP_A,
                       "/console/api/x/%%2e%%2e/apps/%s/chat-conversations" % APP_A,
                       "/console/api/apps/%s/chat-conversations%%00" % APP_A,
                       "/console/api/apps/%s/chat-conversations#x" % APP_A,
                       "/console/api/apps/%s/chat-conversations%%3Fx" % APP_A,
                       "/console/api/apps/%zz"):
            out = raw(self.proxy.port, build_request("GET", target, [("Authorization", "Bearer " + tok("owner_a"))]))
            self.assertEqual(status_of(out), 400, target)
        self.assertNotForwarded()

    def test_absolute_form_is_reduced_to_its_path(self):
        target = "http://evil.example%s" % LOGS_A
        self.assertEqual(self.get(target, [("Authorization", "Bearer " + tok("normal_a"))]).status, 403)
        self.assertEqual(self.get(target, [("Authorization", "Bearer " + tok("owner_a"))]).status, 200)
        self.assertEqual(self.up.requests()[-1]["target"], LOGS_A)

    def test_semicolon_parameters_are_kept_literally_and_do_not_match(self):
        r = self.get(LOGS_A + ";x=1", [("Authorization", "Bearer " + tok("normal_a"))])
        self.assertEqual(r.status, 200)  # a different path: forwarded, Werkzeug 404s it
        self.assertEqual(self.up.requests()[-1]["target"], LOGS_A + ";x=1")

    def test_a_double_encoded_slash_stays_a_literal_percent(self):
        r = self.get("/console/api/apps/x%252Fy")
        self.assertEqual(r.status, 200)
        self.assertEqual(self.up.requests()[-1]["target"], "/console/api/apps/x%252Fy")


if __name__ == "__main__":
    unittest.main()
