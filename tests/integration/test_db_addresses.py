"""A database reached through its second address (issue #16).

libpq moves on to the next address when one refuses: with the multi-host
form (host=a,b), and with a name that resolves to several addresses
(`localhost` to ::1, then 127.0.0.1). It closes the refused socket and
opens the next one, which usually gets the same descriptor number; the
server must watch the new socket, or it never becomes ready although -t
(a blocking connect) works with the same settings.

A first host that does not answer at all (a dead node) is left only when
our connect timer gives up; the next attempt must start at the next host,
or the second host is never tried."""
import os
import socket
import subprocess
import sys
import tempfile
import unittest

import harness
from harness import Proxy, Upstream, free_port, http, mint, shared_pg, wait_until
from fixture import APPS, USERS, may_read_logs, policies_yaml

SECRET = "db-addresses-secret"

CONFIG = """
listen: 127.0.0.1:{port}
upstream: http://127.0.0.1:{upstream}
workers: 2
admin_listen: 127.0.0.1:{admin_port}
timeouts: {policy: 1s}
identity:
  secret: "%s"
  subject_claim: user_id
  sources: ["header:Authorization"]
database:
  url: "{dburl}"
  pool: 2
  connect_timeout: 1s
policies:
%srules:
  - name: logs
    path: /apps/{app_id:uuid}/logs
    allow: [owner, admin, creator]
""" % (SECRET, policies_yaml("owner", "admin", "creator"))


def refused_port():
    """A port on which nothing listens (connections are refused)."""
    return free_port()


class SilentListener:
    """A port that neither accepts nor refuses: a listener whose accept
    queue is full, so the kernel drops every further SYN (as a black hole
    does) and a connect waits until its own timeout."""

    def __init__(self, ip="127.0.0.1", port=0):
        self.sock = socket.socket()
        self.sock.bind((ip, port))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fill = []
        for _ in range(3):   # backlog 0 holds one; the rest wait in SYN_SENT
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect((ip, self.port))
            except BlockingIOError:
                pass
            self.fill.append(s)
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect((ip, self.port))
            raise AssertionError("the silent listener accepted a connection")
        except socket.timeout:
            pass
        finally:
            probe.close()

    def close(self):
        for s in self.fill:
            s.close()
        self.sock.close()


def ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


class LoopbackRelay:
    """A TCP relay (tests/faults/relay.py, passing everything) listening on
    another loopback address, in front of the shared PostgreSQL."""

    def __init__(self, ip, to_port):
        s = socket.socket()
        s.bind((ip, 0))
        self.port = s.getsockname()[1]
        s.close()
        self.dir = tempfile.mkdtemp(prefix="pc-relay-")
        ctl = os.path.join(self.dir, "ctl.sock")
        self.proc = subprocess.Popen([sys.executable, os.path.join(harness.ROOT, "tests", "faults", "relay.py"),
                                      "--listen", "%s:%d" % (ip, self.port), "--to", "127.0.0.1:%d" % to_port,
                                      "--control", ctl])
        if not wait_until(lambda: os.path.exists(ctl), timeout=10):
            raise RuntimeError("relay did not start")

    def close(self):
        self.proc.kill()
        self.proc.wait()
        for f in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, f))
        os.rmdir(self.dir)


def resolve_order(hosts_text, name):
    """The addresses getaddrinfo gives for name with this hosts file, in order."""
    with tempfile.NamedTemporaryFile("w", prefix="pc-hosts-", delete=False) as f:
        f.write(hosts_text)
    try:
        out = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                              'mount --bind "$0" /etc/hosts && getent ahosts "$1"', f.name, name],
                             capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    return [line.split()[0] for line in out.splitlines() if "STREAM" in line]


class HostsProxy(Proxy):
    """The proxy in a mount namespace of its own, where /etc/hosts is a
    file of the test's: name resolution as the test says, for the proxy
    only (needs root: unshare --mount)."""

    def __init__(self, config, hosts_text, **subst):
        fd, self.hosts = tempfile.mkstemp(prefix="pc-hosts-")
        with os.fdopen(fd, "w") as f:
            f.write(hosts_text)
        os.chmod(self.hosts, 0o644)
        super().__init__(config, **subst)

    def start(self, wait=True):
        real = harness.BIN
        self.out = open(self.stdout_path, "ab")
        self.err = open(self.stderr_path, "ab")
        args = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /etc/hosts && exec "$@"', self.hosts, real, "-c", self.config_path]
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=self.err, env=self.env)
        if wait:
            harness.wait_port(self.port, timeout=10, proc=self.proc)

    def close(self):
        super().close()
        os.unlink(self.hosts)


class TestSecondDatabaseAddress(unittest.TestCase):
    def setUp(self):
        self.pg = shared_pg()
        self.up = Upstream()
        self.proxy = None

    def tearDown(self):
        if self.proxy:
            self.proxy.close()
        self.up.close()

    def check_serves(self, dburl, hosts=None):
        if hosts is None:
            self.proxy = Proxy(CONFIG, upstream=self.up.port, dburl=dburl)
        else:
            self.proxy = HostsProxy(CONFIG, hosts, upstream=self.up.port, dburl=dburl)
        ready = wait_until(lambda: http(self.proxy.admin_port, "GET", "/readyz").status == 200, timeout=6)
        self.assertTrue(ready, "never ready through the second address; stderr:\n%s" % self.proxy.stderr()[-1500:])
        for user in ("owner_a", "normal_a"):
            tok = mint(SECRET, {"user_id": USERS[user]})
            r = http(self.proxy.port, "GET", "/apps/%s/logs" % APPS["a-editor-app"][0],
                     headers=[("Authorization", "Bearer " + tok)])
            self.assertEqual(r.status, 200 if may_read_logs(user, "a-editor-app") else 403, user)

    def test_multi_host_first_refused_second_serves(self):
        self.check_serves("host=127.0.0.1,127.0.0.1 port=%d,%d dbname=dify user=postgres"
                          % (refused_port(), self.pg.port))

    def test_multi_host_with_target_session_attrs_read_write(self):
        self.check_serves("host=127.0.0.1,127.0.0.1 port=%d,%d dbname=dify user=postgres "
                          "target_session_attrs=read-write" % (refused_port(), self.pg.port))

    def test_multi_host_first_silent_second_serves(self):
        # connect_timeout is 1 s: the first attempt gives up on the silent
        # host, the next one starts at the second (without that: never ready)
        silent = SilentListener()
        try:
            self.check_serves("host=127.0.0.1,127.0.0.1 port=%d,%d dbname=dify user=postgres"
                              % (silent.port, self.pg.port))
        finally:
            silent.close()

    @unittest.skipUnless(os.geteuid() == 0, "a hosts file of the test's own needs a mount namespace (root)")
    @unittest.skipUnless(ipv6_loopback(), "no IPv6 loopback address")
    def test_localhost_resolving_to_ipv6_first_serves_over_ipv4(self):
        # the server listens on 127.0.0.1 only: ::1 (first, by RFC 6724) refuses
        self.check_serves("host=localhost port=%d dbname=dify user=postgres" % self.pg.port,
                          hosts="::1 localhost\n127.0.0.1 localhost\n")

    @unittest.skipUnless(os.geteuid() == 0, "a hosts file of the test's own needs a mount namespace (root)")
    def test_a_name_resolving_to_two_addresses_first_refused_serves_through_the_second(self):
        # 127.0.0.3 and 127.0.0.2 share as many leading bits with the source
        # address, so getaddrinfo keeps the file's order: the refused one first
        hosts = "127.0.0.3 db.test\n127.0.0.2 db.test\n"
        self.assertEqual(resolve_order(hosts, "db.test"), ["127.0.0.3", "127.0.0.2"])
        relay = LoopbackRelay("127.0.0.2", self.pg.port)
        try:
            self.check_serves("host=db.test port=%d dbname=dify user=postgres" % relay.port, hosts=hosts)
        finally:
            relay.close()

    @unittest.skipUnless(os.geteuid() == 0, "a hosts file of the test's own needs a mount namespace (root)")
    def test_a_name_whose_first_address_is_silent_serves_through_the_second(self):
        # the first address drops every SYN (a dead node still in DNS): our
        # connect timer (1 s) gives up on the attempt, and the next one must
        # start at the name's next address; libpq alone restarts at the first
        hosts = "127.0.0.3 db.test\n127.0.0.2 db.test\n"
        self.assertEqual(resolve_order(hosts, "db.test"), ["127.0.0.3", "127.0.0.2"])
        relay = LoopbackRelay("127.0.0.2", self.pg.port)
        silent = SilentListener("127.0.0.3", relay.port)
        try:
            self.check_serves("host=db.test port=%d dbname=dify user=postgres" % relay.port, hosts=hosts)
        finally:
            silent.close()
            relay.close()


if __name__ == "__main__":
    unittest.main()
