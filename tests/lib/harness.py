"""Shared helpers for portcullis' integration tests: real processes, raw
sockets, a throwaway PostgreSQL, and an independent JWT minter."""
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("PORTCULLIS_BIN", os.path.join(ROOT, "build", "portcullis"))
UPSTREAM = os.path.join(ROOT, "tests", "lib", "upstream.py")
VALGRIND = os.environ.get("PC_VALGRIND")  # run the proxy under valgrind when set
VALGRIND_FINDINGS = []  # (log file, summary) of every run that was not clean


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("port %d not listening" % port)


BARRIER = "/__barrier__"
_barrier_seq = 0


class Upstream:
    def __init__(self, port=None, keepalive_timeout=None, log=True):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="pc-up-")
        self.log_path = os.path.join(self.dir, "requests.jsonl")
        args = [sys.executable, UPSTREAM, "--port", str(self.port)]
        if log:
            args += ["--log", self.log_path]
        if keepalive_timeout is not None:
            args += ["--keepalive-timeout", str(keepalive_timeout)]
        self.args = args
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        self.stop()
        self.start()

    def requests(self):
        """What reached this upstream, in the order it read it (barrier
        requests left out)."""
        try:
            with open(self.log_path) as f:
                out = [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []
        return [q for q in out if not str(q.get("target", "")).startswith(BARRIER)]

    def settled_requests(self):
        """requests(), once everything sent to this upstream before the call
        has been read: two barrier requests, one after the other, straight
        to the upstream, must both be logged first. Use it to show that
        something did NOT reach the upstream without sleeping."""
        global _barrier_seq
        for _ in range(2):
            _barrier_seq += 1
            target = "%s/%d" % (BARRIER, _barrier_seq)
            c = Conn(self.port)
            try:
                c.request("GET", target)
            finally:
                c.close()
            with open(self.log_path) as f:
                if not any(json.loads(l).get("target") == target for l in f if l.strip()):
                    raise AssertionError("the upstream answered %s without logging it" % target)
        return self.requests()

    def clear(self):
        open(self.log_path, "w").close()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


DIFY_APP = os.path.join(ROOT, "tests", "lib", "dify_app.py")


def dify_python():
    """An interpreter with Flask: this one when it has Flask (gunicorn may
    come from Debian's package, see tests/lib/dify_app.py), else Debian's
    python3 with python3-flask (tests/deps.sh)."""
    import importlib.util
    if importlib.util.find_spec("flask") is not None:
        return sys.executable
    return "/usr/bin/python3"


class DifyApi:
    """Dify's console routing stack as an upstream: tests/lib/dify_app.py
    (Flask + Werkzeug, Dify's route strings from tests/fixtures/
    dify-console-routes.txt) under real gunicorn with sync workers, on a
    free port. version keeps the routes of one Dify release (a label of the
    routes file, e.g. "1.14.1"; None: every release); extra adds routes
    [(route string, [methods])] that the file does not have. Records every
    request it serves, as Upstream does."""

    def __init__(self, version=None, extra=(), port=None, workers=1):
        self.version = version
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="pc-dify-")
        self.log_path = os.path.join(self.dir, "requests.jsonl")
        self.info_path = os.path.join(self.dir, "stack.json")
        args = [dify_python(), DIFY_APP, "--port", str(self.port), "--log", self.log_path, "--info", self.info_path,
                "--workers", str(workers)]
        if version is not None:
            args += ["--version", version]
        for rule, methods in extra:
            args += ["--extra", "%s %s" % (rule, ",".join(methods))]
        self.args = args
        self.proc = None
        self.stack = None
        self.start()

    def start(self):
        self.err = open(os.path.join(self.dir, "stderr.log"), "ab")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=self.err)
        wait_port(self.port, timeout=30, proc=self.proc)
        # the arbiter binds before its worker has imported the app: serving
        # is a request answered and recorded
        self.settled_requests()
        with open(self.info_path) as f:
            self.stack = json.load(f)

    def stderr(self):
        with open(os.path.join(self.dir, "stderr.log"), errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self):
        self.stop()
        self.start()

    def requests(self):
        """What the app served, in order (barrier requests left out)."""
        try:
            with open(self.log_path) as f:
                out = [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []
        return [q for q in out if not str(q.get("target", "")).startswith(BARRIER)]

    def settled_requests(self):
        """requests(), once everything sent to the app before the call has
        been served: with one sync worker connections are served in the
        order the kernel queued them, so a barrier request answered (and
        recorded) after them proves they were recorded first."""
        global _barrier_seq
        for _ in range(2):
            _barrier_seq += 1
            target = "%s/%d" % (BARRIER, _barrier_seq)
            c = Conn(self.port, timeout=30)
            try:
                c.request("GET", target)
            finally:
                c.close()
            with open(self.log_path) as f:
                if not any(json.loads(l).get("target") == target for l in f if l.strip()):
                    raise AssertionError("the Dify app answered %s without recording it" % target)
        return self.requests()

    def clear(self):
        open(self.log_path, "w").close()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Proxy:
    """Run build/portcullis with a config. {port}, {upstream}, {admin_port}
    and any extra keyword are substituted into the YAML text."""

    def __init__(self, config, env=None, start=True, **subst):
        self.port = subst.pop("port", None) or free_port()
        self.admin_port = free_port()
        self.dir = tempfile.mkdtemp(prefix="pc-proxy-")
        self.config_path = os.path.join(self.dir, "portcullis.yaml")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.subst = dict(port=self.port, admin_port=self.admin_port, **subst)
        self.write_config(config)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        if start:
            self.start()

    def write_config(self, config):
        text = config
        for k, v in self.subst.items():
            text = text.replace("{%s}" % k, str(v))
        with open(self.config_path, "w") as f:
            f.write(text)

    def start(self, wait=True):
        args = [BIN, "-c", self.config_path]
        if VALGRIND:
            # --max-stackframe: MariaDB Connector/C runs its non-blocking
            # calls on coroutine stacks of its own, not registered with
            # valgrind; a jump between one and the worker's stack that is
            # smaller than this is taken for a frame and the memory between
            # is marked dead (false invalid writes and "lost" blocks). No
            # frame of ours is larger than 16 KiB.
            args = ["valgrind", "--max-stackframe=65536", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                    "--suppressions=" + os.path.join(ROOT, "tests", "valgrind.supp"),
                    "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99",
                    "--log-file=%s/valgrind.%%p.log" % self.dir] + args
        self.out = open(self.stdout_path, "ab")
        self.err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=self.err, env=self.env)
        if wait:
            wait_port(self.port, timeout=30 if VALGRIND else 10, proc=self.proc)

    def signal(self, sig):
        self.proc.send_signal(sig)

    RELOAD_OUTCOMES = ("reloaded: generation ", "reload failed, keeping generation ")

    def reload_outcomes(self):
        return [l for l in self.stderr().splitlines() if any(o in l for o in self.RELOAD_OUTCOMES)]

    def reload(self, config=None, wait=True):
        """SIGHUP; with wait, return the outcome line the proxy logs for
        it ("reloaded: generation N" or "reload failed ...")."""
        if config is not None:
            self.write_config(config)
        before = len(self.reload_outcomes())
        self.signal(signal.SIGHUP)
        if not wait:
            return None
        got = wait_until(lambda: len(self.reload_outcomes()) > before, timeout=60 if VALGRIND else 30)
        if not got:
            raise AssertionError("no reload outcome logged:\n" + self.stderr()[-2000:])
        return self.reload_outcomes()[before]

    def wait_stderr(self, text, timeout=30.0):
        """Wait until stderr contains text; return stderr."""
        if not wait_until(lambda: text in self.stderr(), timeout=timeout):
            raise AssertionError("%r not logged within %.0f s:\n%s" % (text, timeout, self.stderr()[-2000:]))
        return self.stderr()

    def stop(self, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def access_log(self):
        """The access lines written so far (workers flush every 200 ms: wait
        for the ones you need with access_lines)."""
        with open(self.stdout_path) as f:
            return [json.loads(l) for l in f if l.strip().startswith("{")]

    def access_lines(self, request_ids, timeout=10.0):
        """The access lines of these request ids, by id, once every one has
        been written (workers flush their lines every 200 ms)."""
        want = set(request_ids)

        def found():
            with open(self.stdout_path) as f:
                got = {}
                for l in f:
                    if l.strip().startswith("{"):
                        line = json.loads(l)
                        if line.get("request_id") in want:
                            got[line["request_id"]] = line
            return got if want <= set(got) else None
        got = wait_until(found, timeout=timeout)
        if got is None:
            raise AssertionError("access lines not written within %.0f s: %s" % (timeout, sorted(want)))
        return got

    def stdout(self):
        with open(self.stdout_path) as f:
            return f.read()

    def stderr(self):
        with open(self.stderr_path) as f:
            return f.read()

    def valgrind_check(self):
        """After a graceful stop: memcheck errors or definite/indirect leaks."""
        import glob
        for path in glob.glob(os.path.join(self.dir, "valgrind.*.log")):
            text = open(path).read()
            m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
            if m is None:
                continue  # a process that never exited cleanly (killed)
            lost = re.findall(r"(definitely|indirectly) lost: ([\d,]+) bytes", text)
            bad = int(m.group(1)) > 0 or any(n != "0" for _, n in lost)
            if bad:
                keep = "/tmp/" + os.path.basename(self.dir) + "-" + os.path.basename(path)
                shutil.copy(path, keep)
                VALGRIND_FINDINGS.append((keep, text[-3000:]))

    def close(self):
        if VALGRIND:
            self.stop(timeout=60)
            self.valgrind_check()
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_portcullis(*args, env=None, timeout=30):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, env=e, timeout=timeout)


# ---- HTTP over raw sockets ----

class Response:
    def __init__(self, status, reason, headers, body, version):
        self.status, self.reason, self.headers, self.body, self.version = status, reason, headers, body, version

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:200])


class Conn:
    """One client connection; sends raw bytes and parses responses."""

    def __init__(self, port, timeout=5.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.timeout = timeout

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_head(self):
        status_line = self._line().decode("latin-1")
        version, rest = status_line.split(" ", 1)
        code, _, reason = rest.partition(" ")
        headers = []
        while True:
            line = self._line()
            if not line:
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers.append((k, v.strip()))
        return version, int(code), reason, headers

    def read_response(self, method="GET", skip_interim=True):
        while True:
            version, status, reason, headers = self.read_head()
            if status < 200 and status != 101 and skip_interim:
                continue
            break
        r = Response(status, reason, headers, b"", version)
        if method == "HEAD" or status in (101, 204, 304) or status < 200:
            return r
        te = r.header("transfer-encoding")
        cl = r.header("content-length")
        if te and te.lower() == "chunked":
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body += self._exact(size)
                self._exact(2)
            r.body = body
        elif cl is not None:
            r.body = self._exact(int(cl))
        else:
            try:
                while True:
                    self._fill()
            except (EOFError, ConnectionError):
                pass
            r.body, self.buf = self.buf, b""
        return r

    def request(self, method, target, headers=None, body=b"", host="test"):
        self.send(build_request(method, target, headers, body, host))
        return self.read_response(method)

    def closed(self, timeout=2.0):
        """True when the peer has closed (EOF or reset) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except socket.timeout:
            return False
        except ConnectionError:
            return True
        finally:
            self.sock.settimeout(self.timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def build_request(method, target, headers=None, body=b"", host="test"):
    lines = ["%s %s HTTP/1.1" % (method, target)]
    hs = list(headers or [])
    if host is not None and not any(k.lower() == "host" for k, _ in hs):
        lines.append("Host: %s" % host)
    lines += ["%s: %s" % (k, v) for k, v in hs]
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in hs):
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def http(port, method, target, headers=None, body=b"", timeout=5.0):
    c = Conn(port, timeout)
    try:
        return c.request(method, target, headers, body)
    finally:
        c.close()


def raw(port, data, timeout=2.0):
    """Send raw bytes, return everything received until close or timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionError:
                break
            if not d:
                break
            out += d
        return out
    finally:
        s.close()


def status_of(raw_bytes):
    if not raw_bytes.startswith(b"HTTP/1.1 "):
        return None
    return int(raw_bytes[9:12])


# ---- tokens, minted independently of the C code ----

def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mint(secret, claims=None, alg="HS256", header=None, ttl=3600, raw_header=None, raw_payload=None):
    h = {"alg": alg, "typ": "JWT"}
    h.update(header or {})
    c = {"exp": int(time.time()) + ttl}
    c.update(claims or {})
    hb = raw_header if raw_header is not None else json.dumps(h, separators=(",", ":")).encode()
    pb = raw_payload if raw_payload is not None else json.dumps(c, separators=(",", ":")).encode()
    signing = (b64url(hb) + "." + b64url(pb)).encode()
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(alg)
    sig = b64url(hmac.new(secret.encode(), signing, digest).digest()) if digest else ""
    return signing.decode() + "." + sig


# ---- PostgreSQL ----

PG_BIN = "/usr/lib/postgresql/15/bin"


class PG:
    """A throwaway PostgreSQL cluster (initdb refuses root: run as postgres)."""

    def __init__(self, fixture_sql=None, password=None):
        self.port = free_port()
        self.password = password
        base = tempfile.mkdtemp(prefix="pc-pg-")
        os.chmod(base, 0o755)
        self.base = base
        self.data = os.path.join(base, "data")
        self.sock = os.path.join(base, "sock")
        os.makedirs(self.sock)
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            subprocess.run(["chown", "-R", "postgres:postgres", base], check=True)
        args = [os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "postgres", "--no-sync", "-E", "UTF8",
                "--locale=C"]
        if password is None:
            args += ["-A", "trust"]
        else:
            pwfile = os.path.join(base, "pw")
            with open(pwfile, "w") as f:
                f.write(password + "\n")
            if self.as_postgres:
                subprocess.run(["chown", "postgres:postgres", pwfile], check=True)
            args += ["-A", "scram-sha-256", "--pwfile", pwfile]
        self._run(args)
        self.start()
        self.psql("CREATE DATABASE dify", db="postgres")
        if fixture_sql:
            self.psql_file(fixture_sql)

    def _run(self, args, check=True, **kw):
        if self.as_postgres:
            args = ["runuser", "-u", "postgres", "--"] + args
        return subprocess.run(args, check=check, capture_output=True, text=True, **kw)

    @property
    def url(self):
        return "host=127.0.0.1 port=%d dbname=dify user=postgres" % self.port

    def start(self):
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-w", "-t", "30", "-l",
                   os.path.join(self.base, "pg.log"), "-o",
                   "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
                   " -c synchronous_commit=off" % (self.port, self.sock), "start"])

    def stop(self, mode="fast"):
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-w", "-m", mode, "stop"], check=False)

    def restart(self):
        self.stop()
        self.start()

    def _env(self):
        env = dict(os.environ)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def psql(self, sql, db="dify"):
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", "postgres", "-d", db, "-At", "-c", sql],
                           capture_output=True, text=True, env=self._env())
        if r.returncode != 0:
            raise RuntimeError("psql failed: %s" % r.stderr)
        return r.stdout

    def psql_file(self, path, db="dify"):
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", "postgres", "-d", db, "-f", path], capture_output=True, text=True, env=self._env())
        if r.returncode != 0:
            raise RuntimeError("psql failed: %s" % r.stderr)

    def _pids(self):
        """The postmaster and every process it started."""
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            pm = int(f.readline())
        pids, todo = [], [pm]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                    todo += [int(k) for k in f.read().split()]
            except FileNotFoundError:
                pass
        return pids

    def freeze(self):
        """SIGSTOP the postmaster, then every backend: connections stay
        open and the kernel still acknowledges, but nothing answers."""
        pids = self._pids()
        os.kill(pids[0], signal.SIGSTOP)   # first: it starts no backend after this
        for pid in self._pids()[1:]:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self):
        for pid in self._pids():
            os.kill(pid, signal.SIGCONT)

    def lock_session(self, table):
        """A psql session holding ACCESS EXCLUSIVE on table until the
        returned process's stdin is closed (then it commits and exits)."""
        p = subprocess.Popen(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "dify"],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                             env=self._env())
        p.stdin.write("BEGIN;\nLOCK TABLE %s IN ACCESS EXCLUSIVE MODE;\n" % table)
        p.stdin.flush()
        self.wait_lock(table)
        return p

    @staticmethod
    def unlock_session(p):
        p.stdin.write("COMMIT;\n")
        p.stdin.close()
        p.wait(timeout=30)

    def active_queries(self, like):
        """Queries running now whose text matches the LIKE pattern."""
        return int(self.psql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%s' "
                             "AND pid <> pg_backend_pid()" % like.replace("'", "''")).strip())

    def wait_active(self, like, n=1, timeout=15.0):
        """Wait until at least n queries matching like are running."""
        if not wait_until(lambda: self.active_queries(like) >= n, timeout=timeout):
            raise AssertionError("fewer than %d queries like %r running after %.0f s" % (n, like, timeout))

    def wait_lock(self, table, mode="AccessExclusiveLock", timeout=15.0):
        """Wait until some session holds mode on table."""
        sql = ("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
               "WHERE c.relname = '%s' AND l.mode = '%s' AND l.granted" % (table, mode))
        if not wait_until(lambda: int(self.psql(sql).strip()) > 0, timeout=timeout):
            raise AssertionError("no %s on %s after %.0f s" % (mode, table, timeout))

    def close(self):
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


_shared_pg = None


def shared_pg():
    """One cluster with the Dify-shaped fixture, shared by the test run.
    Tests that stop or lock the database start their own PG()."""
    global _shared_pg
    if _shared_pg is None:
        _shared_pg = PG(os.path.join(ROOT, "tests", "fixtures", "dify.sql"))
        import atexit
        atexit.register(_shared_pg.close)
    return _shared_pg


_dify_pgs = {}


def dify_pg(shape="main"):
    """A cluster with Dify's real schema of one shape (tests/fixtures/
    dify-schema-<shape>.pg.sql: 0.13.0, 1.14.1, 1.15.0, main) and the
    fixture's people and apps as rows (dify-data-<shape>.pg.sql), shared by
    the test run. Tests that change rows or stop it start their own."""
    if shape not in _dify_pgs:
        pg = PG()
        pg.psql_file(os.path.join(ROOT, "tests", "fixtures", "dify-schema-%s.pg.sql" % shape))
        pg.psql_file(os.path.join(ROOT, "tests", "fixtures", "dify-data-%s.pg.sql" % shape))
        _dify_pgs[shape] = pg
        import atexit
        atexit.register(pg.close)
    return _dify_pgs[shape]


MARIADBD = "/usr/sbin/mariadbd"
# the server side of ed25519 comes with Debian's mariadb-server, which the
# tests do not need otherwise (tests/deps.sh installs mariadb-server-core)
ED25519_PLUGIN = "/usr/lib/mysql/plugin/auth_ed25519.so"


def mariadb_run_user():
    """The user a throwaway mariadbd runs as when the tests run as root:
    mysql where a mariadb-server package made one, else nobody."""
    import pwd
    try:
        pwd.getpwnam("mysql")
        return "mysql"
    except KeyError:
        return "nobody"


def sql_string(value):
    """value as a MariaDB/MySQL string literal (default sql_mode: backslash escapes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\0", "\\0") + "'"


class MariaDB:
    """A throwaway MariaDB server from Debian's mariadb-server, in a temp dir:
    TCP on 127.0.0.1:port and a Unix socket, nothing read from /etc/mysql
    (--no-defaults). As root the server runs as the mysql user, or nobody
    where there is none (--user).

    An application user (user, password; auth "mysql_native_password" or
    "ed25519") gets `grant` on the database. sql() runs as that user over TCP
    with as_app=True, otherwise as root over the socket; the password travels
    in a 0600 option file, never on a command line. server_args are added to
    mariadbd's command line (TLS files, for example). close() kills the server
    and removes the directory: nothing is left behind."""

    def __init__(self, fixture_sql=None, password=None, user="portcullis", database="dify",
                 auth="mysql_native_password", grant="SELECT", collation="utf8mb4_unicode_ci", server_args=()):
        if auth not in ("mysql_native_password", "ed25519"):
            raise ValueError("auth: mysql_native_password or ed25519")
        self.port = free_port()
        self.user = user
        self.password = password if password is not None else ""
        self.database = database
        self.collation = collation
        self.extra_args = list(server_args)
        self.proc = None
        self._db_ready = False
        self.base = tempfile.mkdtemp(prefix="pc-my-")
        os.chmod(self.base, 0o755)
        self.data = os.path.join(self.base, "data")
        self.tmp = os.path.join(self.base, "tmp")
        self.sock = os.path.join(self.base, "mysqld.sock")
        self.log = os.path.join(self.base, "error.log")
        os.makedirs(self.tmp)
        self.auth = auth
        self.run_as = mariadb_run_user() if os.geteuid() == 0 else None
        try:
            if self.run_as:
                subprocess.run(["chown", "-R", "%s:" % self.run_as, self.base], check=True)
            r = subprocess.run(["mariadb-install-db", "--no-defaults", "--datadir=" + self.data,
                                "--auth-root-authentication-method=normal", "--skip-test-db",
                                "--skip-name-resolve"] + self._file_args() + self._user_args(),
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError("mariadb-install-db failed: %s%s" % (r.stdout, r.stderr))
            self._write_client_files()
            self.start()
            self.sql("CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE %s" % (database, collation))
            self._db_ready = True
            if auth == "ed25519":
                ident = "IDENTIFIED VIA ed25519 USING PASSWORD(%s)" % sql_string(self.password)
            else:
                ident = "IDENTIFIED VIA mysql_native_password USING PASSWORD(%s)" % sql_string(self.password)
            self.sql("CREATE USER %s@'%%' %s" % (sql_string(user), ident))
            self.sql("GRANT %s ON `%s`.* TO %s@'%%'" % (grant, database, sql_string(user)))
            if fixture_sql:
                self.sql_file(fixture_sql)
        except BaseException:
            self.close()
            raise

    def _user_args(self):
        return ["--user=" + self.run_as] if self.run_as else []

    def _file_args(self):
        # options that shape the files on disk: the same at install and start
        return ["--innodb-log-file-size=16M", "--innodb-buffer-pool-size=32M"]

    def _server_args(self):
        return [MARIADBD, "--no-defaults", "--datadir=" + self.data, "--socket=" + self.sock,
                "--port=%d" % self.port, "--bind-address=127.0.0.1", "--skip-networking=0",
                "--pid-file=" + os.path.join(self.base, "mysqld.pid"), "--log-error=" + self.log,
                "--tmpdir=" + self.tmp, "--skip-name-resolve", "--performance-schema=OFF",
                "--innodb-flush-log-at-trx-commit=2", "--innodb-doublewrite=0", "--max-connections=200",
                "--character-set-server=utf8mb4", "--collation-server=" + self.collation] + \
            (["--plugin-load-add=auth_ed25519"] if self.auth == "ed25519" else []) + \
            self._file_args() + self._user_args() + self.extra_args

    def _write_client_files(self):
        def write(name, lines):
            path = os.path.join(self.base, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write("\n".join(lines) + "\n")
            return path
        esc = self.password.replace("\\", "\\\\").replace('"', '\\"')
        self.root_cnf = write("root.cnf", ["[client]", "user=root", "socket=" + self.sock])
        self.app_cnf = write("app.cnf", ["[client]", "user=" + self.user, 'password="%s"' % esc,
                                         "host=127.0.0.1", "port=%d" % self.port, "protocol=TCP"])

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=60.0):
        if self.running():
            raise RuntimeError("mariadb already running")
        logf = open(os.path.join(self.base, "stdout.log"), "ab")
        self.proc = subprocess.Popen(self._server_args(), stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        logf.close()
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("mariadbd exited with %s: %s" % (self.proc.returncode, self.log_tail()))
            r = subprocess.run(["mariadb", "--defaults-file=" + self.root_cnf, "-N", "-B", "-e", "SELECT 1"],
                               capture_output=True, text=True)
            if r.returncode == 0:
                break
            if time.time() > deadline:
                raise RuntimeError("mariadb not answering after %.0f s: %s" % (timeout, self.log_tail()))
            time.sleep(0.05)
        wait_port(self.port, timeout=max(1.0, deadline - time.time()), proc=self.proc)

    def log_tail(self, n=20):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout=60.0):
        """A clean shutdown (SIGTERM), waited for."""
        if self.running():
            self.proc.terminate()
            self.proc.wait(timeout=timeout)

    def kill(self):
        """SIGKILL: the server dies without closing its connections cleanly."""
        if self.running():
            self.proc.kill()
            self.proc.wait(timeout=30)

    def restart(self):
        self.stop()
        self.start()

    def freeze(self):
        """SIGSTOP: connections stay open but nothing answers."""
        if self.running():
            self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        if self.running():
            self.proc.send_signal(signal.SIGCONT)

    def _client(self, as_app, db):
        cnf = self.app_cnf if as_app else self.root_cnf
        args = ["mariadb", "--defaults-file=" + cnf, "-N", "-B"]
        if db:
            args.append(db)
        return args

    def sql(self, sql, db=None, as_app=False):
        """Run sql; the result rows as tab-separated text. The app user's
        database is the default once it exists."""
        if db is None and self._db_ready:
            db = self.database
        r = subprocess.run(self._client(as_app, db) + ["-e", sql], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("mariadb failed: %s" % r.stderr.strip())
        return r.stdout

    def sql_file(self, path, db=None, as_app=False):
        with open(path, "rb") as f:
            r = subprocess.run(self._client(as_app, db or self.database), stdin=f, capture_output=True)
        if r.returncode != 0:
            raise RuntimeError("mariadb failed: %s" % r.stderr.decode(errors="replace").strip())

    def lock_session(self, table, timeout=15.0):
        """A root session holding LOCK TABLES table WRITE until
        unlock_session(); returns once the lock is held (the session says so)."""
        p = subprocess.Popen(self._client(False, self.database) + ["--unbuffered"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        p.stdin.write("LOCK TABLES `%s` WRITE;\nSELECT 'locked';\n" % table)
        p.stdin.flush()
        import select
        ready, _, _ = select.select([p.stdout], [], [], timeout)
        line = p.stdout.readline() if ready else ""
        if line.strip() != "locked":
            p.kill()
            p.wait()
            raise AssertionError("no WRITE lock on %s after %.0f s" % (table, timeout))
        return p

    @staticmethod
    def unlock_session(p):
        p.stdin.write("UNLOCK TABLES;\n")
        p.stdin.close()
        p.wait(timeout=30)
        p.stdout.close()

    def active_queries(self, like):
        """Statements running now (text queries or prepared executions)
        whose text matches the LIKE pattern, other than this one."""
        return int(self.sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND IN ('Query', "
                            "'Execute') AND INFO LIKE %s AND ID <> CONNECTION_ID()" % sql_string(like)).strip())

    def wait_active(self, like, n=1, timeout=15.0):
        if not wait_until(lambda: self.active_queries(like) >= n, timeout=timeout):
            raise AssertionError("fewer than %d queries like %r running after %.0f s" % (n, like, timeout))

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=30)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_dify_mariadbs = {}


def dify_mariadb(shape="main"):
    """A MariaDB server with Dify's real MySQL schema of one shape
    (tests/fixtures/dify-schema-<shape>.mysql.sql: 1.10.1, main) and the
    fixture's people and apps as rows (dify-data-<shape>.mysql.sql), shared
    by the test run; its app user (portcullis) may only SELECT. Tests that
    change rows and put them back may use it; tests that stop or lock it
    start their own."""
    if shape not in _dify_mariadbs:
        my = MariaDB(password="portcullis-pw")
        my.sql_file(os.path.join(ROOT, "tests", "fixtures", "dify-schema-%s.mysql.sql" % shape))
        my.sql_file(os.path.join(ROOT, "tests", "fixtures", "dify-data-%s.mysql.sql" % shape))
        _dify_mariadbs[shape] = my
        import atexit
        atexit.register(my.close)
    return _dify_mariadbs[shape]


def scrape(admin_port):
    """The admin listener's /metrics as [(name, {label: value}, value)]."""
    samples = []
    for line in http(admin_port, "GET", "/metrics").body.decode().splitlines():
        m = re.match(r"(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m:
            samples.append((m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")), float(m.group(3))))
    return samples


def scrape_settled(admin_port, timeout=3.0):
    """scrape(), once two readings 50 ms apart agree: a request is counted
    when it ends, which may be just after its client read the response."""
    prev = scrape(admin_port)
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.05)
        cur = scrape(admin_port)
        if cur == prev:
            return cur
        prev = cur
    return prev


def signal_blocked(pid, sig):
    """Does process pid's main thread hold sig blocked (/proc/PID/status SigBlk)?"""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigBlk:"):
                    return bool(int(line.split()[1], 16) & (1 << (int(sig) - 1)))
    except FileNotFoundError:
        pass
    return False


def tcp_sockets(local_port=None, remote_port=None, state=None):
    """This machine's TCP sockets from /proc/net/tcp{,6}, as dicts with
    local_port, remote_port, state ("ESTABLISHED", "LISTEN", ...), tx_queue
    and rx_queue (for a listener: the accept queue's length)."""
    names = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
             "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
             "0B": "CLOSING"}
    out = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                rows = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            parts = row.split()
            lport = int(parts[1].rsplit(":", 1)[1], 16)
            rport = int(parts[2].rsplit(":", 1)[1], 16)
            st = names.get(parts[3], parts[3])
            tx, rx = (int(x, 16) for x in parts[4].split(":"))
            if local_port is not None and lport != local_port:
                continue
            if remote_port is not None and rport != remote_port:
                continue
            if state is not None and st != state:
                continue
            out.append(dict(local_port=lport, remote_port=rport, state=st, tx_queue=tx, rx_queue=rx))
    return out


def metric_sum(samples, name, **labels):
    """The sum of name's samples whose labels include every one given."""
    return sum(v for n, have, v in samples if n == name and all(have.get(k) == w for k, w in labels.items()))


def wait_until(pred, timeout=5.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()
