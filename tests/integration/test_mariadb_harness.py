"""The throwaway MariaDB server of the test harness (harness.MariaDB) does
what the MySQL-backend tests (issue 14) will rely on: an application user
that logs in with an awkward password, a server that can be stopped, killed,
restarted and frozen without losing committed rows, a table lock another
session has to wait for, and a close() that leaves nothing behind."""
import os
import subprocess
import unittest

from harness import ED25519_PLUGIN, MariaDB, wait_until

PASSWORD = 'pw with spaces "double" \'single\' \\backslash #hash'


def app_login(my, password=None):
    """The app user's login over TCP, as a client outside the harness would
    do it (MYSQL_PWD in its environment): (returncode, stdout, stderr)."""
    env = dict(os.environ, MYSQL_PWD=my.password if password is None else password)
    r = subprocess.run(["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(my.port), "-u", my.user, "-N", "-B",
                        my.database, "-e", "SELECT CURRENT_USER()"], capture_output=True, text=True, env=env)
    return r.returncode, r.stdout.strip(), r.stderr.strip()


class SharedServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.my = MariaDB(password=PASSWORD)
        cls.my.sql("CREATE TABLE joins (tenant_id CHAR(36) NOT NULL, account_id CHAR(36) NOT NULL)")
        cls.my.sql("INSERT INTO joins VALUES ('t1', 'a1')")

    @classmethod
    def tearDownClass(cls):
        cls.my.close()

    def test_app_user_logs_in_with_a_password_of_spaces_quotes_and_backslashes(self):
        rc, out, err = app_login(self.my)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "%s@%%" % self.my.user)
        rc, _, err = app_login(self.my, password=PASSWORD + "x")
        self.assertNotEqual(rc, 0)
        self.assertIn("Access denied", err)

    def test_app_user_reads_but_cannot_write(self):
        self.assertEqual(self.my.sql("SELECT account_id FROM joins WHERE tenant_id = 't1'", as_app=True).strip(), "a1")
        with self.assertRaisesRegex(RuntimeError, "INSERT command denied"):
            self.my.sql("INSERT INTO joins VALUES ('t2', 'a2')", as_app=True)

    def test_lock_session_makes_readers_wait_until_unlocked(self):
        p = self.my.lock_session("joins")
        try:
            with self.assertRaisesRegex(RuntimeError, "1205|Lock wait timeout"):
                self.my.sql("SET SESSION lock_wait_timeout = 1; SELECT COUNT(*) FROM joins", as_app=True)
        finally:
            MariaDB.unlock_session(p)
        self.assertEqual(self.my.sql("SET SESSION lock_wait_timeout = 1; SELECT COUNT(*) FROM joins",
                                     as_app=True).strip(), "1")


class OwnServer(unittest.TestCase):
    """Each test stops or kills its own server."""

    def setUp(self):
        self.my = MariaDB(password=PASSWORD)
        self.addCleanup(self.my.close)
        self.my.sql("CREATE TABLE kv (k VARCHAR(16) PRIMARY KEY, v VARCHAR(16))")
        self.my.sql("INSERT INTO kv VALUES ('before', 'stop')")

    def test_stopped_server_refuses_logins_and_restart_serves_the_same_rows(self):
        self.my.stop()
        self.assertFalse(self.my.running())
        rc, _, err = app_login(self.my)
        self.assertNotEqual(rc, 0)
        self.assertIn("Can't connect", err)
        self.my.start()
        self.assertEqual(self.my.sql("SELECT v FROM kv WHERE k = 'before'", as_app=True).strip(), "stop")
        self.my.restart()
        rc, out, err = app_login(self.my)
        self.assertEqual(rc, 0, err)

    def test_killed_server_comes_back_with_every_committed_row(self):
        self.my.sql("INSERT INTO kv VALUES ('committed', 'yes')")
        self.my.kill()
        self.assertFalse(self.my.running())
        self.my.start()
        self.assertEqual(self.my.sql("SELECT v FROM kv WHERE k = 'committed'").strip(), "yes")

    def test_frozen_server_answers_again_once_thawed(self):
        self.my.freeze()
        try:
            r = subprocess.run(["mariadb", "--defaults-file=" + self.my.root_cnf, "--connect-timeout=1", "-N", "-B",
                                "-e", "SELECT 1"], capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0)
        finally:
            self.my.thaw()
        self.assertEqual(self.my.sql("SELECT v FROM kv WHERE k = 'before'").strip(), "stop")

    def test_close_ends_the_server_and_removes_its_directory(self):
        pid, base = self.my.proc.pid, self.my.base
        self.my.close()
        self.assertFalse(os.path.exists(base))
        self.assertTrue(wait_until(lambda: not os.path.exists("/proc/%d" % pid), timeout=10))


@unittest.skipUnless(os.path.exists(ED25519_PLUGIN), "the server's ed25519 plugin comes with mariadb-server, "
                     "which tests/deps.sh does not install")
class Ed25519User(unittest.TestCase):
    def test_ed25519_app_user_logs_in(self):
        with MariaDB(password=PASSWORD, auth="ed25519") as my:
            plugin = my.sql("SELECT JSON_VALUE(priv, '$.plugin') FROM mysql.global_priv WHERE User = '%s'" % my.user)
            self.assertEqual(plugin.strip(), "ed25519")
            rc, out, err = app_login(my)
            self.assertEqual(rc, 0, err)
            self.assertEqual(out, "%s@%%" % my.user)


if __name__ == "__main__":
    unittest.main()
