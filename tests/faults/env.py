"""The fault bench's world: a topology (netns.py), PostgreSQL with the Dify
fixture in the db namespace, the recording upstream in the upstream
namespace, a fault relay in front of each, and portcullis in the proxy
namespace. Everything is torn down by close(), also on Ctrl-C."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from harness import BIN, PG_BIN, UPSTREAM, mint  # noqa: E402
from fixture import APPS, USERS, may_read_logs, policies_yaml  # noqa: E402
import netns  # noqa: E402
from netns import CLIENT_IP, DB_IP, DB_IP_B, PROXY_IP, PROXY_IP_C, UP_IP  # noqa: E402,F401
import relay  # noqa: E402

SECRET = "fault-bench-secret"
PG_PORT, PG_RELAY_PORT = 5432, 6432
UP_PORT, UP_RELAY_PORT = 8080, 8081
PROXY_PORT, ADMIN_PORT = 8080, 9901

POLICY_MS = 1000          # timeouts.policy in the bench's config
UPSTREAM_MS = 2000        # timeouts.upstream

CONFIG = """
listen: 0.0.0.0:%(proxy_port)d
upstream: http://%(up)s
workers: 2
admin_listen: 0.0.0.0:%(admin_port)d
log: {format: json, level: info, access: false}
timeouts: {policy: %(policy_ms)dms, connect: 1s, upstream: %(upstream_ms)dms, keepalive: 1s}
identity:
  secret: "%(secret)s"
  subject_claim: user_id
  sources: ["header:Authorization"]
database:
%(dbkeys)s  pool: %(pool)d
  connect_timeout: 1s
cache:
  ttl: %(ttl)s
%(listen)spolicies:
%(policies)srules:
  - name: logs
    path: /console/api/apps/{app_id:uuid}/chat-conversations
    allow: [owner, admin, creator]
  - name: protected-stream
    path: /sse
    query: {app: "{app_id:uuid}"}
    allow: [owner, admin, creator]
  - name: protected-upload
    path: /echo
    query: {app: "{app_id:uuid}"}
    allow: [owner, admin, creator]
  - name: open
    path: /**
    action: forward
"""

TOKENS = {u: mint(SECRET, {"user_id": uid}, ttl=86400) for u, uid in USERS.items()}
USER_OF_TOKEN = {t: u for u, t in TOKENS.items()}


def auth(user):
    return [("Authorization", "Bearer " + TOKENS[user])]


class NsPG(harness.PG):
    """harness.PG, run inside the db namespace, listening on its addresses."""

    def __init__(self, topo, fixture_sql=None, data=None, port=PG_PORT, addresses=(DB_IP, DB_IP_B)):
        self.topo = topo
        self.listen = ",".join(list(addresses) + ["127.0.0.1"])
        self.fixed_port = port
        if data is None:
            super().__init__(fixture_sql)
            return
        # a standby made elsewhere (pg_basebackup): adopt its data directory
        self.port, self.password, self.as_postgres = port, None, True
        self.base = os.path.dirname(data)
        self.data = data
        self.sock = os.path.join(self.base, "sock")
        os.makedirs(self.sock, exist_ok=True)
        subprocess.run(["chown", "-R", "postgres:postgres", self.base], check=True)
        self.start()

    def _run(self, args, check=True, **kw):
        args = ["runuser", "-u", "postgres", "--"] + list(args)
        return subprocess.run(self.topo.exec_args(self.topo.db, args), check=check, capture_output=True,
                              text=True, **kw)

    def start(self):
        self.port = self.fixed_port
        hba = os.path.join(self.data, "pg_hba.conf")
        line = "host all,replication all 10.231.0.0/16 trust\n"
        with open(hba) as f:
            have = line in f.read()
        if not have:
            with open(hba, "a") as f:
                f.write(line)
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-w", "-t", "30", "-l",
                   os.path.join(self.base, "pg.log"), "-o",
                   "-p %d -k %s -c listen_addresses=%s -c fsync=off -c max_connections=200"
                   " -c synchronous_commit=off -c wal_level=replica -c max_wal_senders=4"
                   % (self.port, self.sock, self.listen), "start"])

    def _psql_args(self, db):
        return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.sock, "-p", str(self.port), "-U",
                "postgres", "-d", db]

    def psql(self, sql, db="dify"):
        r = subprocess.run(self._psql_args(db) + ["-At", "-c", sql], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("psql failed: %s" % r.stderr)
        return r.stdout

    def psql_file(self, path, db="dify"):
        r = subprocess.run(self._psql_args(db) + ["-f", path], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("psql failed: %s" % r.stderr)


CREATED = []   # temp dirs of every Env of this process: gone once it is closed


def leftover_dirs():
    """Temp dirs an Env of this process made and did not remove."""
    return [d for d in CREATED if os.path.exists(d)]


class Env:
    def __init__(self, pg_addresses=(DB_IP, DB_IP_B)):
        self.procs = []
        self.dir = tempfile.mkdtemp(prefix="pc-faults-")
        CREATED.append(self.dir)
        os.chmod(self.dir, 0o755)
        self.topo = None
        self.pg = None
        self.proxy = None
        try:
            self.topo = netns.Topology()
            self.pg = NsPG(self.topo, os.path.join(ROOT, "tests", "fixtures", "dify.sql"), addresses=pg_addresses)
            CREATED.append(self.pg.base)
            self.pg.psql_file(os.path.join(ROOT, "policies", "invalidate.sql"))
            self.up_log = os.path.join(self.dir, "upstream.jsonl")
            self.spawn(self.topo.up, [sys.executable, UPSTREAM, "--host", "0.0.0.0", "--port", str(UP_PORT),
                                      "--log", self.up_log])
            self.db_ctl = os.path.join(self.dir, "db-relay.sock")
            self.up_ctl = os.path.join(self.dir, "up-relay.sock")
            self.spawn(self.topo.db, [sys.executable, os.path.join(HERE, "relay.py"), "--listen",
                                      "0.0.0.0:%d" % PG_RELAY_PORT, "--to", "127.0.0.1:%d" % PG_PORT,
                                      "--control", self.db_ctl])
            self.spawn(self.topo.up, [sys.executable, os.path.join(HERE, "relay.py"), "--listen",
                                      "0.0.0.0:%d" % UP_RELAY_PORT, "--to", "127.0.0.1:%d" % UP_PORT,
                                      "--control", self.up_ctl])
            for path in (self.db_ctl, self.up_ctl):
                wait_for(lambda: os.path.exists(path), 10, "relay control socket %s" % path)
            wait_for(lambda: self.ns_port_open(self.topo.up, UP_PORT), 10, "upstream")
        except BaseException:
            self.close()
            raise

    def spawn(self, ns, args, **kw):
        p = subprocess.Popen(self.topo.exec_args(ns, args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             **kw)
        self.procs.append(p)
        return p

    def ns_port_open(self, ns, port):
        r = subprocess.run(self.topo.exec_args(ns, ["python3", "-c",
                           "import socket; socket.create_connection(('127.0.0.1', %d), 1).close()" % port]),
                           capture_output=True)
        return r.returncode == 0

    # ---- the proxy ----
    def start_proxy(self, db="direct", up="direct", ttl="0s", pool=4, dburl=None, policy_ms=POLICY_MS, env=None,
                    prefix=None, dbkeys=None, listen=True):
        """A fresh portcullis in the proxy namespace. The database is
        dburl (database.url), or dbkeys (database.host, .port ... as a
        dict), or the db namespace's first address, directly or through the
        relay (db). listen: cache.invalidate_channel portcullis. prefix: a
        command it runs under (e.g. unshare for a mount namespace)."""
        self.stop_proxy()
        if dbkeys is not None:
            keys = "".join('  %s: "%s"\n' % kv for kv in dbkeys.items())
        else:
            if dburl is None:
                host, port = (DB_IP, PG_PORT) if db == "direct" else (DB_IP, PG_RELAY_PORT)
                dburl = "host=%s port=%d dbname=dify user=postgres" % (host, port)
            keys = '  url: "%s"\n' % dburl
        upaddr = "%s:%d" % (UP_IP, UP_PORT if up == "direct" else UP_RELAY_PORT)
        text = CONFIG % dict(proxy_port=PROXY_PORT, admin_port=ADMIN_PORT, up=upaddr, policy_ms=policy_ms,
                             upstream_ms=UPSTREAM_MS, secret=SECRET, dbkeys=keys, pool=pool, ttl=ttl,
                             listen="  invalidate_channel: portcullis\n" if listen else "",
                             policies=policies_yaml("owner", "admin", "creator"))
        self.proxy = NsProxy(self, text, env_vars=env, prefix=prefix)
        return self.proxy

    def stop_proxy(self):
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None

    # ---- faults ----
    def relay(self, which, **mode):
        return relay.command(self.db_ctl if which == "db" else self.up_ctl, **mode)

    def heal(self):
        self.topo.flush()
        self.relay("db", mode="pass")
        self.relay("up", mode="pass")

    def upstream_requests(self):
        try:
            with open(self.up_log) as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def close(self):
        try:
            if self.proxy is not None:
                self.proxy.close()
        finally:
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            if self.pg is not None:
                self.pg.close()   # stopped, and its cluster's temp dir removed
            if self.topo is not None:
                self.topo.close()
            shutil.rmtree(self.dir, ignore_errors=True)


class NsProxy:
    def __init__(self, env, config_text, env_vars=None, prefix=None):
        self.env = env
        self.dir = tempfile.mkdtemp(prefix="proxy-", dir=env.dir)
        self.config_path = os.path.join(self.dir, "portcullis.yaml")
        with open(self.config_path, "w") as f:
            f.write(config_text)
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.err = open(self.stderr_path, "ab")
        args = list(prefix or []) + [BIN, "-c", self.config_path]
        e = dict(os.environ)
        e.update(env_vars or {})
        self.proc = subprocess.Popen(env.topo.exec_args(env.topo.px, args), stdout=subprocess.DEVNULL,
                                     stderr=self.err, env=e)
        self.host, self.port, self.admin = PROXY_IP_C, PROXY_PORT, ADMIN_PORT
        wait_for(self.listening, 10, "portcullis listening")

    @property
    def pid(self):
        """portcullis itself (ip netns exec execs it; a prefix such as
        unshare may leave a parent in between)."""
        pid = self.proc.pid
        for _ in range(4):
            try:
                exe = os.readlink("/proc/%d/exe" % pid)
            except OSError:
                return pid
            if os.path.basename(exe) == "portcullis":
                return pid
            try:
                kids = open("/proc/%d/task/%d/children" % (pid, pid)).read().split()
            except OSError:
                return pid
            if not kids:
                return pid
            pid = int(kids[0])
        return pid

    def listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError("portcullis exited: %s" % self.stderr()[-2000:])
        try:
            socket.create_connection((self.host, self.port), 0.3).close()
            return True
        except OSError:
            return False

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def ready(self, timeout=1.0):
        try:
            return get(self.host, self.admin, "/readyz", timeout=timeout).status
        except (OSError, EOFError, ValueError):
            return None

    def metrics(self):
        samples = []
        import re
        body = get(self.host, self.admin, "/metrics").body.decode()
        for line in body.splitlines():
            m = re.match(r"(\w+)(?:\{(.*)\})? (\S+)$", line)
            if m:
                samples.append((m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")),
                                float(m.group(3))))
        return samples

    def db_up(self):
        try:
            return int(harness.metric_sum(self.metrics(), "portcullis_db_connections", state="up"))
        except (OSError, EOFError, ValueError):
            return -1

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.err.close()
        keep = os.environ.get("PC_FAULTS_KEEP")   # a directory: keep each proxy's stderr there
        if keep:
            os.makedirs(keep, exist_ok=True)
            shutil.copy(self.stderr_path, os.path.join(keep, "portcullis-%d.stderr" % self.proc.pid))


def get(host, port, target, headers=None, timeout=5.0):
    c = harness.Conn(port, timeout, host=host)
    try:
        return c.request("GET", target, headers)
    finally:
        c.close()


def wait_for(pred, timeout, what, interval=0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(interval)
    if not pred():
        raise RuntimeError("timed out waiting for %s" % what)


# ---- load and oracle ----

def protected_target(app):
    return "/console/api/apps/%s/chat-conversations" % APPS[app][0]


class Load:
    """Open-loop load from the root namespace: a request every `interval`
    seconds whatever the previous ones are doing (a stalled request does
    not slow the arrivals down, as with real users), each on its own
    connection, protected (random user x app) or open. Records
    (t0, t1, kind, user, app, status, error)."""

    def __init__(self, proxy, rate=60.0, open_share=0.2, timeout=10.0, seed=1, max_inflight=96, exclude=()):
        import random
        from concurrent.futures import ThreadPoolExecutor
        self.proxy = proxy
        self.records = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.interval = 1.0 / rate
        self.open_share = open_share
        self.timeout = timeout
        self.rng = random.Random(seed)
        self.pairs = [(u, a) for u in USERS for a in APPS if u not in exclude]
        self.pool = ThreadPoolExecutor(max_workers=max_inflight)
        self.sched = threading.Thread(target=self.schedule, daemon=True)

    def start(self):
        self.sched.start()
        return self

    def schedule(self):
        nxt = time.time()
        while not self.stop_ev.is_set():
            if self.rng.random() < self.open_share:
                job = ("open", None, None, "/open/ping", [])
            else:
                user, app = self.rng.choice(self.pairs)
                job = ("protected", user, app, protected_target(app), auth(user))
            self.pool.submit(self.one, job)
            nxt += self.interval
            delay = nxt - time.time()
            if delay > 0:
                self.stop_ev.wait(delay)

    def one(self, job):
        kind, user, app, target, hs = job
        t0 = time.time()
        status, err = None, None
        try:
            c = harness.Conn(self.proxy.port, self.timeout, host=self.proxy.host)
            try:
                status = c.request("GET", target, hs).status
            finally:
                c.close()
        except (OSError, EOFError, ValueError) as e:
            err = type(e).__name__
        t1 = time.time()
        with self.lock:
            self.records.append((t0, t1, kind, user, app, status, err))

    def stop(self):
        self.stop_ev.set()
        self.sched.join(2)
        self.pool.shutdown(wait=True)
        return self.records


def judge(records):
    """Wrong decisions by the oracle (fixture.may_read_logs): a 200 to
    someone not entitled, a 403 to someone entitled, any other status than
    200/403/503 for a protected request, anything but 200 for an open one."""
    wrong = []
    for rec in records:
        t0, t1, kind, user, app, status, err = rec
        if kind == "protected":
            ok = may_read_logs(user, app)
            if status == 200 and not ok or status == 403 and ok or status not in (200, 403, 503):
                wrong.append(rec)
    return wrong


def upstream_wrong(env, since=0.0):
    """Protected requests the recording upstream served to someone not entitled."""
    bad = []
    ids = {v[0]: k for k, v in APPS.items()}
    for e in env.upstream_requests():
        if e.get("t", 0) < since or "target" not in e:
            continue
        t = e["target"]
        app_id = None
        if t.startswith("/console/api/apps/"):
            app_id = t.split("/")[4]
        elif "app=" in t:
            app_id = t.split("app=")[1].split("&")[0]
        if app_id is None:
            continue
        tok = None
        for k, v in e["headers"]:
            if k.lower() == "authorization":
                tok = v.split(" ", 1)[1]
        user = USER_OF_TOKEN.get(tok)
        if user is None or app_id not in ids or not may_read_logs(user, ids[app_id]):
            bad.append(e)
    return bad


class ReadyWatch:
    """Polls /readyz every 50 ms in a thread; transitions as (t, status)."""

    def __init__(self, proxy, interval=0.05):
        self.proxy = proxy
        self.samples = []
        self.stop_ev = threading.Event()
        self.interval = interval
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop_ev.is_set():
            t = time.time()
            self.samples.append((t, self.proxy.ready(timeout=0.5)))
            self.stop_ev.wait(self.interval)

    def first(self, status, after):
        for t, s in self.samples:
            if t >= after and s == status:
                return t
        return None

    def stop(self):
        self.stop_ev.set()
        self.t.join(2)
        return self.samples
