"""One TCP stream to the database stuck (issue #16).

Hedged policy queries: a query unanswered after timeouts.policy / 4 is
sent again on another connection of the worker that has nothing
outstanding, and the first answer wins. The database is reached through
the fault relay (tests/faults/relay.py), which can stall one TCP
connection while the others pass: one stream stuck (a lost flow, a stream
in retransmission backoff) with the database fine.

And the database sockets' retransmission floor: 50 ms, not TCP's 200 ms
(Linux 6.15 and later)."""
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from harness import ROOT, Proxy, Upstream, free_port, http, metric_sum, mint, scrape, shared_pg, wait_until
from fixture import APPS, USERS, may_read_logs, policies_yaml

sys.path.insert(0, os.path.join(ROOT, "tests", "faults"))
import relay  # noqa: E402

SECRET = "hedging-secret"
POLICY_S = 1.0

CONFIG = """
listen: 127.0.0.1:{port}
upstream: http://127.0.0.1:{upstream}
workers: 1
admin_listen: 127.0.0.1:{admin_port}
timeouts: {policy: 1s}
identity:
  secret: "%s"
  subject_claim: user_id
  sources: ["header:Authorization"]
database:
  url: "host=127.0.0.1 port={relay} dbname=dify user=postgres"
  pool: 2
  connect_timeout: 2s
cache:
  ttl: {ttl}
policies:
%srules:
  - name: logs
    path: /apps/{app_id:uuid}/logs
    allow: [owner, admin, creator]
""" % (SECRET, policies_yaml("owner", "admin", "creator"))

PAIRS = [(u, a) for u in USERS for a in APPS]


class Relay:
    def __init__(self, to_port):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="pc-relay-")
        self.ctl = os.path.join(self.dir, "ctl.sock")
        self.proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "faults", "relay.py"), "--listen",
                                      "127.0.0.1:%d" % self.port, "--to", "127.0.0.1:%d" % to_port, "--control",
                                      self.ctl])
        if not wait_until(lambda: os.path.exists(self.ctl), timeout=10):
            raise RuntimeError("relay did not start")

    def set(self, **mode):
        return relay.command(self.ctl, **mode)

    def open_ids(self):
        import json
        return json.loads(relay.command(self.ctl, stats=True))["open_ids"]

    def close(self):
        self.proc.kill()
        self.proc.wait()
        for f in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, f))
        os.rmdir(self.dir)


def burst(proxy, pairs):
    """Every request at once; [(user, app, status, seconds)]."""
    out = []
    lock = threading.Lock()

    def one(user, app):
        tok = mint(SECRET, {"user_id": USERS[user]})
        t0 = time.time()
        st = http(proxy.port, "GET", "/apps/%s/logs" % APPS[app][0], headers=[("Authorization", "Bearer " + tok)],
                  timeout=10).status
        with lock:
            out.append((user, app, st, time.time() - t0))
    ts = [threading.Thread(target=one, args=p) for p in pairs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


class HedgeCase(unittest.TestCase):
    ttl = "0s"

    def setUp(self):
        self.pg = shared_pg()
        self.relay = Relay(self.pg.port)
        self.up = Upstream()
        self.proxy = Proxy(CONFIG, upstream=self.up.port, relay=self.relay.port, ttl=self.ttl)
        ok = wait_until(lambda: metric_sum(scrape(self.proxy.admin_port), "portcullis_db_connections",
                                           state="up") == 2, timeout=10)
        self.assertTrue(ok, self.proxy.stderr()[-1500:])

    def tearDown(self):
        self.proxy.close()
        self.up.close()
        self.relay.close()

    def burst(self, pairs):
        return burst(self.proxy, pairs)

    def assert_decided(self, got, bound):
        for user, app, st, took in got:
            self.assertEqual(st, 200 if may_read_logs(user, app) else 403, "%s on %s after %.2f s" % (user, app, took))
            self.assertLess(took, bound, "%s on %s" % (user, app))


class TestOneStalledConnection(HedgeCase):
    def test_queries_on_a_stalled_stream_are_answered_through_the_idle_one(self):
        # stall one of the pool's two connections (TCP stays up, nothing
        # moves): about half of a burst lands on it
        ids = self.relay.open_ids()
        self.assertEqual(len(ids), 2, ids)
        self.relay.set(mode="stall", conns=ids[:1])
        got = self.burst(PAIRS)
        # answered by the copy on the other connection after policy/4, not
        # 503 at the budget nor later
        self.assert_decided(got, POLICY_S)
        # the stream moves again: the originals' late answers are read and
        # dropped; they decide nothing (every decision below is checked)
        self.relay.set(mode="pass")
        for _ in range(3):
            self.assert_decided(self.burst(PAIRS), POLICY_S)
        self.assertNotIn("presumed wedged", self.proxy.stderr())


class TestEveryStreamStalled(HedgeCase):
    def test_no_idle_connection_the_budget_still_ends_the_decision(self):
        self.relay.set(mode="stall")
        got = self.burst(PAIRS[:6])
        for user, app, st, took in got:
            self.assertEqual(st, 503, "%s on %s" % (user, app))
            self.assertLess(took, POLICY_S + 0.3)
            self.assertGreater(took, POLICY_S - 0.05)
        self.relay.set(mode="pass")
        # answers that arrive after the decision are not cached as errors,
        # nor attributed elsewhere: fresh decisions are right
        self.assertTrue(wait_until(lambda: http(self.proxy.admin_port, "GET", "/readyz").status == 200, timeout=10))
        self.assert_decided(self.burst(PAIRS), POLICY_S)


def kernel_has_rto_min():
    s = socket.socket()
    try:
        s.setsockopt(socket.IPPROTO_TCP, 45, 50000)   # TCP_RTO_MIN_US
        return True
    except OSError:
        return False
    finally:
        s.close()


@unittest.skipUnless(kernel_has_rto_min(), "this kernel has no TCP_RTO_MIN_US (Linux 6.15)")
class TestRetransmissionFloor(unittest.TestCase):
    def setUp(self):
        self.pg = shared_pg()
        self.up = Upstream()
        self.proxy = Proxy(CONFIG.replace("port={relay}", "port=%d" % self.pg.port), upstream=self.up.port,
                           ttl="0s")

    def tearDown(self):
        self.proxy.close()
        self.up.close()

    def rtos(self):
        out = subprocess.run(["ss", "-tinpH", "dst", "127.0.0.1:%d" % self.pg.port], capture_output=True,
                             text=True).stdout
        rtos, pid = [], "pid=%d," % self.proxy.proc.pid
        for block in re.split(r"\n(?=\S)", out):
            if pid in block:
                rtos += [float(m) for m in re.findall(r"\brto:([\d.]+)", block)]
        return rtos

    def test_database_sockets_retransmit_sooner_than_tcps_200_ms_floor(self):
        self.assertTrue(wait_until(lambda: len(self.rtos()) == 2, timeout=10), self.rtos())
        # the estimate starts at 1 s and settles with round trips: some traffic
        for _ in range(5):
            burst(self.proxy, PAIRS[:8])
        rtos = self.rtos()
        self.assertEqual(len(rtos), 2, rtos)
        # without the floor lowered, rto is 200 ms plus the round trip at least
        self.assertTrue(all(r < 200 for r in rtos), rtos)


class TestCachedAfterHedging(TestOneStalledConnection):
    """The same with the decision cache on: what the copies answered is
    cached (correctly), errors never are."""
    ttl = "30s"


if __name__ == "__main__":
    unittest.main()
