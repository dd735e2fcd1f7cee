"""A database socket is never watched after its library closed it.

libpq and MariaDB Connector/C close their socket themselves: when a
connect moves on to the next host (libpq opens the next socket, usually
under the same number), and when a connection drops in the middle of a
call. The proxy learns of it only when the call returns. An event deleted
after that hands epoll a closed number, which by then may be another
thread's new descriptor: libevent ignores the kernel's EBADF or ENOENT, but
ThreadSanitizer reported it as a race with the thread that had opened the
number (CI, make check-tsan). Every epoll_ctl the proxy makes must
therefore succeed: the proxy runs under strace, which records the failed
ones, while the libraries close sockets under it."""
import json
import os
import shutil
import signal
import subprocess
import threading
import unittest

import harness
from harness import Proxy, Upstream, dify_mariadb, free_port, http, mint, shared_pg, sql_string, wait_until
from fixture import APPS, USERS, policies_yaml

SECRET = "db-descriptors-secret"

CONFIG = """
listen: 127.0.0.1:{port}
upstream: http://127.0.0.1:{upstream}
workers: 2
admin_listen: 127.0.0.1:{admin_port}
timeouts: {policy: 5s}
identity:
  secret: "%s"
  subject_claim: user_id
  sources: ["header:Authorization"]
database:
{database}
  pool: 1            # no idle connection to hedge a slow query onto
  connect_timeout: 2s
policies:
%s  slow:
    sql:
      postgresql: SELECT 1 FROM apps WHERE id = :app_id AND pg_sleep(2)::text = '' AND :subject <> ''
      mysql: SELECT 1 FROM apps WHERE id = :app_id AND SLEEP(2) = 0 AND :subject <> ''
rules:
  - name: logs
    path: /apps/{app_id:uuid}/logs
    allow: [owner, admin, creator]
  - name: slow
    path: /slow/{app_id:uuid}
    allow: [slow]
"""


def config(database, dialect):
    return (CONFIG % (SECRET, policies_yaml("owner", "admin", "creator", dialect=dialect))).replace(
        "{database}", database)


class TracedProxy(Proxy):
    """The proxy under strace -f, which writes every epoll_ctl call that
    failed (and only those) to trace_path."""

    def start(self, wait=True):
        self.trace_path = os.path.join(self.dir, "epoll.trace")
        self.out = open(self.stdout_path, "ab")
        self.err = open(self.stderr_path, "ab")
        args = ["strace", "-f", "-q", "-Z", "-e", "trace=epoll_ctl", "-o", self.trace_path,
                harness.BIN, "-c", self.config_path]
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=self.err, env=self.env)
        if wait:
            harness.wait_port(self.port, timeout=30, proc=self.proc)

    def traced_pid(self):
        """The proxy's own pid (strace's child): strace dies of a SIGTERM
        sent to it and leaves its tracee running, so signals go here."""
        with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
            return int(f.read().split()[0])

    def signal(self, sig):
        os.kill(self.traced_pid(), sig)

    def stop(self, timeout=10):
        if self.proc and self.proc.poll() is None:
            pid = self.traced_pid()
            os.kill(pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)     # strace ends with its tracee
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.traced_pid(), signal.SIGKILL)
            self.proc.wait()

    def failed_epoll_calls(self):
        try:
            with open(self.trace_path) as f:
                return [l.strip() for l in f if "epoll_ctl" in l]
        except FileNotFoundError:
            return []


def auth(user):
    return [("Authorization", "Bearer " + mint(SECRET, {"user_id": USERS[user]}))]


@unittest.skipIf(harness.VALGRIND, "strace and valgrind do not stack")
@unittest.skipUnless(shutil.which("strace"), "needs strace")
class DescriptorCase(unittest.TestCase):
    dialect = None

    def setUp(self):
        self.up = Upstream()
        self.proxy = None

    def tearDown(self):
        if self.proxy:
            self.proxy.close()
        self.up.close()

    def start(self, database):
        self.proxy = TracedProxy(config(database, self.dialect), upstream=self.up.port)
        self.wait_ready()

    def wait_ready(self):
        ok = wait_until(lambda: http(self.proxy.admin_port, "GET", "/readyz").status == 200, timeout=20)
        self.assertTrue(ok, "never ready; stderr:\n%s" % self.proxy.stderr()[-1500:])

    def downs(self):
        return self.proxy.stderr().count("down: ")

    def slow_request_killed(self, kill):
        """A slow policy query (2 s) in flight whose connection kill()
        ends (it returns how many it ended): the request is refused (503)
        at once, not after the query, and the connection comes back."""
        got = []
        before = self.downs()
        t = threading.Thread(target=lambda: got.append(
            http(self.proxy.port, "GET", "/slow/%s" % APPS["a-editor-app"][0], headers=auth("owner_a"),
                 timeout=20).status))
        t.start()
        self.assertEqual(kill(), 1)
        t.join()
        self.assertEqual(got, [503])
        self.assertTrue(wait_until(lambda: self.downs() > before, timeout=10), self.proxy.stderr()[-1500:])

    def assert_every_epoll_call_succeeded(self):
        self.assertEqual(self.proxy.stop(), 0, "the proxy did not stop cleanly")
        with open(self.proxy.trace_path) as f:
            self.assertIn("+++ exited with 0 +++", f.read())   # the trace is whole
        self.assertEqual(self.proxy.failed_epoll_calls(), [])


class TestPostgreSQLDescriptors(DescriptorCase):
    dialect = "postgresql"

    def setUp(self):
        super().setUp()
        self.pg = shared_pg()

    def terminate(self, where):
        """End the proxy's sessions that match where; how many."""
        return int(self.pg.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = 'dify' AND pid <> pg_backend_pid() "
                                "AND backend_type = 'client backend' AND %s" % where).strip())

    def test_a_connect_that_moves_to_the_next_host_and_dropped_connections_leave_no_stale_watch(self):
        # libpq closes the refused socket and opens the next host's
        self.start('  url: "host=127.0.0.1,127.0.0.1 port=%d,%d dbname=dify user=postgres"'
                   % (free_port(), self.pg.port))   # nothing listens on a free port
        self.assertEqual(http(self.proxy.port, "GET", "/apps/%s/logs" % APPS["a-editor-app"][0],
                              headers=auth("owner_a")).status, 200)
        # idle connections dropped by the server: libpq closes each on reading the end
        before = self.downs()
        self.assertEqual(self.terminate("state = 'idle'"), 2)   # one per worker
        self.assertTrue(wait_until(lambda: self.downs() > before, timeout=10), self.proxy.stderr()[-1500:])
        self.wait_ready()
        # and one dropped while a query runs on it
        self.slow_request_killed(lambda: self.pg.wait_active("%pg_sleep(2)%") or
                                 self.terminate("state = 'active' AND query LIKE '%pg_sleep(2)%'"))
        self.wait_ready()
        self.assert_every_epoll_call_succeeded()


class TestMariaDBDescriptors(DescriptorCase):
    dialect = "mysql"

    def test_connections_dropped_idle_and_during_a_query_leave_no_stale_watch(self):
        my = dify_mariadb("main")
        self.start('  driver: mysql\n  host: 127.0.0.1\n  port: "%d"\n  dbname: dify\n  user: %s\n'
                   '  password: %s\n  sslmode: disable' % (my.port, my.user, json.dumps(my.password)))
        self.assertEqual(http(self.proxy.port, "GET", "/apps/%s/logs" % APPS["a-editor-app"][0],
                              headers=auth("owner_a")).status, 200)

        def kill(where):
            ids = my.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s AND ID <> CONNECTION_ID() "
                         "AND %s" % (sql_string(my.user), where)).split()
            for i in ids:
                my.sql("KILL CONNECTION %s" % i)
            return ids

        before = self.downs()
        self.assertEqual(len(kill("COMMAND = 'Sleep'")), 2)   # one per worker
        self.assertTrue(wait_until(lambda: self.downs() > before, timeout=10), self.proxy.stderr()[-1500:])
        self.wait_ready()
        self.slow_request_killed(lambda: my.wait_active("%SLEEP(2)%") or len(kill("INFO LIKE '%SLEEP(2)%'")))
        self.wait_ready()
        self.assert_every_epoll_call_succeeded()


if __name__ == "__main__":
    unittest.main()
