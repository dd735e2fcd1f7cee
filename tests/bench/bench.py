#!/usr/bin/env python3
"""make bench (issue #7): portcullis next to nginx and HAProxy on loopback.

A benchmark, not a test: it prints figures and exits 0 whether or not the
issue's targets are met (it exits non-zero only when it cannot run at all).

Everything runs side by side on 127.0.0.1, in one temp dir that is removed
on exit (also on Ctrl-C):
  - a throwaway PostgreSQL with the Dify-shaped fixture (harness.PG);
  - the upstream: nginx, one worker, a fixed 1 KiB JSON body;
  - HAProxy and nginx as plain reverse proxies in front of it (one
    thread/worker each, upstream keep-alive, no logging);
  - portcullis, workers = cores, access logs off, in three configurations:
    (a) an open route (action: forward), (b) a protected route authorized
    by the owner policy with decisions cached (ttl 60s), (c) the same with
    ttl 0s (no decision cache), and (m) (c) on MariaDB: the mysql driver
    against a throwaway MariaDB (harness.MariaDB) with Dify's MySQL schema.
wrk measures each target, interleaved round by round: req/s, p99, and
the CPU time the target's processes spent per request. Then: the RSS of
portcullis holding 10,000 idle keep-alive connections, and the extra delay
of the first SSE event through portcullis against a direct connection.

Environment: BENCH_DURATION (seconds per wrk run, 5), BENCH_CONNECTIONS
(50), BENCH_THREADS (wrk threads, 1), BENCH_ROUNDS (3), BENCH_WARMUP
(seconds of unmeasured wrk per target before round 1, 1; 0 disables),
BENCH_IDLE_CONNS (10000), BENCH_SSE_TRIES (50), BENCH_DISTINCT_APPS (10000),
PORTCULLIS_BIN.

portcullis coalesces identical decisions in flight into one query, so (c)
with one token and one app id asks PostgreSQL far less than once per
request. (c) is therefore also run with distinct decisions: the script adds
BENCH_DISTINCT_APPS apps to owner_a's workspace in its throwaway database,
and wrk (distinct-apps.lua) asks for a different one on every request. (m)
runs both ways too, against the same apps added to MariaDB.
"""
import glob
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import harness  # noqa: E402
from harness import PG, MariaDB, free_port, http, mint, wait_port, wait_until  # noqa: E402
from fixture import APPS, USERS  # noqa: E402

ROOT = harness.ROOT
BIN = harness.BIN
FIXTURE_SQL = os.path.join(ROOT, "tests", "fixtures", "dify.sql")
SECRET = "bench-secret-not-for-production"
APP_ID = APPS["a-editor-app"][0]
PATH = "/apps/%s/logs" % APP_ID
BODY_BYTES = 1024


def env_int(name, default):
    v = os.environ.get(name, "")
    try:
        return int(v) if v.strip() else default
    except ValueError:
        sys.exit("bench: %s must be an integer, found %r" % (name, v))


DURATION = env_int("BENCH_DURATION", 5)
CONNECTIONS = env_int("BENCH_CONNECTIONS", 50)
THREADS = env_int("BENCH_THREADS", 1)
ROUNDS = env_int("BENCH_ROUNDS", 3)
WARMUP = env_int("BENCH_WARMUP", 1)
IDLE_CONNS = env_int("BENCH_IDLE_CONNS", 10000)
DISTINCT_APPS = env_int("BENCH_DISTINCT_APPS", 10000)
SSE_TRIES = env_int("BENCH_SSE_TRIES", 50)


def say(*a):
    print(*a, flush=True)


def cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# ---- processes and the temp dir: everything started here is stopped on exit ----

class Bench:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pc-bench-")
        os.chmod(self.dir, 0o755)  # PostgreSQL runs as the postgres user when we are root
        tempfile.tempdir = self.dir  # harness temp dirs (the PG cluster) land in ours
        self.procs = []  # (name, Popen)
        self.pg = None
        self.my = None

    def path(self, name):
        return os.path.join(self.dir, name)

    def render(self, template, out_name, **subst):
        with open(os.path.join(HERE, template)) as f:
            text = f.read()
        for k, v in subst.items():
            text = text.replace("@%s@" % k, str(v))
        left = re.findall(r"@[a-z_]+@", text)
        if left:
            raise RuntimeError("%s: unfilled placeholders %s" % (template, sorted(set(left))))
        out = self.path(out_name)
        with open(out, "w") as f:
            f.write(text)
        return out

    def start(self, name, args):
        """Start a process in its own session: Ctrl-C reaches only this script,
        which then stops every process (and its children) in order."""
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        out = open(self.path(slug + ".stdout"), "ab")
        err = open(self.path(slug + ".stderr"), "ab")
        try:
            p = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            out.close()
            err.close()
        p.bench_name = name
        p.bench_stderr = self.path(slug + ".stderr")
        self.procs.append((name, p))
        return p

    def stop_all(self):
        live = []
        for name, p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)  # its own process group (start_new_session)
                except ProcessLookupError:
                    pass
                live.append(p)
        deadline = time.time() + 5
        for p in live:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
        for p in live:
            try:
                os.killpg(p.pid, signal.SIGKILL)  # stragglers: nginx workers, a stuck drain
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.procs = []

    def stop_pg(self):
        if self.pg is not None:
            try:
                self.pg.close()
            except Exception as e:  # noqa: BLE001
                say("bench: stopping PostgreSQL: %s" % e)
            self.pg = None
        # a cluster whose PG() was interrupted half-way: pg_ctl detaches the
        # postmaster (setsid), so it would outlive us
        for pidfile in glob.glob(os.path.join(self.dir, "pc-pg-*", "data", "postmaster.pid")):
            data = os.path.dirname(pidfile)
            args = [os.path.join(harness.PG_BIN, "pg_ctl"), "-D", data, "-w", "-m", "immediate", "stop"]
            if os.geteuid() == 0:
                args = ["runuser", "-u", "postgres", "--"] + args
            subprocess.run(args, capture_output=True)

    def cleanup(self):
        self.stop_all()
        self.stop_pg()
        if self.my is not None:
            self.my.close()
            self.my = None
        tempfile.tempdir = None
        shutil.rmtree(self.dir, ignore_errors=True)


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


CLK_TCK = os.sysconf("SC_CLK_TCK")


def session_cpu_s(sid):
    """CPU seconds (user + system) of every process in session sid: each
    service is started in a session of its own, so nginx's workers and
    portcullis's threads are all counted."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if int(fields[3]) == sid:  # field 6: session
            total += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    return total / CLK_TCK


def vmrss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def metrics(admin_port):
    """Sum of each portcullis metric over its labels."""
    try:
        samples = harness.scrape(admin_port)
    except (OSError, EOFError):
        return {}
    out = {}
    for name, _, value in samples:
        out[name] = out.get(name, 0.0) + value
    return out


def version_of(args):
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=10)
        text = (r.stdout + r.stderr).strip().splitlines()
        return text[0].strip() if text else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


# ---- wrk ----

UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_time_ms(s):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", s.strip())
    if not m:
        raise ValueError("bad wrk time %r" % s)
    return float(m.group(1)) * UNITS_MS[m.group(2)]


def parse_wrk(text):
    """req/s, p99 (ms), requests, non-2xx/3xx count, socket errors dict."""
    r = {"rps": None, "p99": None, "requests": None, "non2xx": 0, "socket": {}}
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    if m:
        r["p99"] = parse_time_ms(m.group(1))
    m = re.search(r"^\s+(\d+) requests in ", text, re.M)
    if m:
        r["requests"] = int(m.group(1))
    # wrk counts status >= 400 here (its name notwithstanding); each target's
    # probe before the rounds checks for a 200 with the 1 KiB body
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        r["socket"] = {k: int(v) for k, v in zip(("connect", "read", "write", "timeout"), m.groups()) if int(v)}
    return r


def run_wrk(url, duration, headers=(), script=None, script_args=()):
    args = ["wrk", "-t%d" % THREADS, "-c%d" % CONNECTIONS, "-d%ds" % duration, "--latency"]
    for h in headers:
        args += ["-H", h]
    if script:
        args += ["-s", script]
    args.append(url)
    if script_args:
        args += ["--"] + list(script_args)
    p = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60, start_new_session=True)
    r = parse_wrk(p.stdout)
    r["rc"] = p.returncode
    r["raw"] = p.stdout + p.stderr
    problems = []
    if p.returncode != 0:
        problems.append("wrk exit %d: %s" % (p.returncode, p.stderr.strip()[:200]))
    if r["rps"] is None or r["p99"] is None:
        problems.append("unparsable wrk output")
    if r["non2xx"]:
        problems.append("%d non-2xx" % r["non2xx"])
    if r["socket"]:
        problems.append("socket errors " + ", ".join("%s %d" % kv for kv in r["socket"].items()))
    r["problems"] = problems
    return r


# ---- the pieces ----

def json_body(n):
    head, tail_ = '{"status":"ok","source":"bench-upstream","pad":"', '"}'
    pad = n - len(head) - len(tail_)
    body = head + ("abcdefghijklmnopqrstuvwxyz" * (pad // 26 + 1))[:pad] + tail_
    assert len(body) == n
    return body


def start_nginx(b, name, template, port, **subst):
    conf = b.render(template, re.sub(r"\W+", "-", name) + ".conf", dir=b.dir, port=port, **subst)
    p = b.start(name, ["nginx", "-p", b.dir + "/", "-c", conf, "-e", b.path(re.sub(r"\W+", "-", name) + ".early.log"),
                       "-g", "daemon off;"])
    wait_started(p, port)
    return p


def start_portcullis(b, name, template, upstream_port, workers=None, **subst):
    port, admin = free_port(), free_port()
    conf = b.render(template, re.sub(r"\W+", "-", name) + ".yaml", port=port, admin_port=admin,
                    upstream=upstream_port, workers=workers or cores(), **subst)
    p = b.start(name, [BIN, "-c", conf])
    wait_started(p, port)
    wait_started(p, admin)
    p.port, p.admin = port, admin
    return p


def wait_started(p, port, timeout=10.0):
    try:
        wait_port(port, timeout=timeout, proc=p)
    except RuntimeError as e:
        raise RuntimeError("%s: %s; its stderr ends:\n%s" % (p.bench_name, e, tail(p.bench_stderr)))


def check_alive(procs):
    dead = []
    for p in procs:
        if p.poll() is not None:
            dead.append(p)
    return dead


class Target:
    def __init__(self, key, name, port, proc, headers=(), admin=None, script=None, script_args=(), path=PATH):
        self.key, self.name, self.port, self.proc = key, name, port, proc
        self.headers = list(headers)
        self.admin = admin
        self.script, self.script_args, self.path = script, list(script_args), path
        self.runs = []
        self.crashed = None
        self.requests = 0  # from wrk, warm-up included
        self.queries = 0  # portcullis policy queries during this target's wrk runs
        self.hits = 0  # portcullis decision cache hits during them

    @property
    def url(self):
        return "http://127.0.0.1:%d%s" % (self.port, self.path)

    def ok_runs(self):
        return [r for r in self.runs if r["rps"] is not None and r["p99"] is not None]

    def median_rps(self):
        v = [r["rps"] for r in self.ok_runs()]
        return statistics.median(v) if v else None

    def median_p99(self):
        v = [r["p99"] for r in self.ok_runs()]
        return statistics.median(v) if v else None

    def median_cpu_us(self):
        v = [r["cpu_us"] for r in self.ok_runs() if r.get("cpu_us") is not None]
        return statistics.median(v) if v else None


def probe(port, headers=(), path=PATH):
    hs = [tuple(h.split(": ", 1)) for h in headers]
    r = http(port, "GET", path, hs)
    return r.status, len(r.body)


def fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def table(rows, headers, aligns):
    w = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda cells: "  ".join((str(c).rjust(w[i]) if aligns[i] == "r" else str(c).ljust(w[i]))  # noqa: E731
                                    for i, c in enumerate(cells)).rstrip()
    out = [line(headers), line(["-" * x for x in w])]
    out += [line(r) for r in rows]
    return "\n".join(out)


# ---- RSS with idle keep-alive connections ----

def read_response(sock):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise EOFError("closed before the response head")
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    need = int(m.group(1)) if m else 0
    while len(rest) < need:
        d = sock.recv(65536)
        if not d:
            raise EOFError("closed mid-body")
        rest += d
    return status


def idle_rss(b, upstream_port):
    p = start_portcullis(b, "portcullis (a) for idle connections", "portcullis-forward.yaml", upstream_port)
    req = ("GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % PATH).encode()
    # one request first, so that "before" counts a worker that has served
    s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    s.sendall(req)
    read_response(s)
    s.close()
    time.sleep(0.5)
    before = vmrss_kib(p.pid)
    socks, errors, non200 = [], [], 0
    t0 = time.time()
    try:
        for i in range(IDLE_CONNS):
            try:
                s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
                socks.append(s)
                s.sendall(req)
                if read_response(s) != 200:
                    non200 += 1
            except (OSError, EOFError, ValueError) as e:
                errors.append("connection %d: %s" % (i, e))
                if len(errors) >= 20 or p.poll() is not None:
                    break
        opened = time.time() - t0
        time.sleep(2.0)  # hold them idle
        crashed = p.poll()
        after = vmrss_kib(p.pid) if crashed is None else None
        active = metrics(p.admin).get("portcullis_connections_active") if crashed is None else None
        alive = 0
        for s in socks:  # an idle keep-alive connection has nothing to read and is not closed
            s.setblocking(False)
            try:
                s.recv(1)  # b"": closed by portcullis; data: not idle
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
    finally:
        for s in socks:
            s.close()
    time.sleep(1.0)
    closed = vmrss_kib(p.pid) if p.poll() is None else None
    return dict(pid=p.pid, before=before, after=after, closed=closed, held=len(socks), alive=alive, active=active,
                non200=non200, errors=errors, opened_s=opened, crashed=crashed, stderr=p.bench_stderr)


# ---- the first SSE event ----

SSE_TARGET = "/sse?n=2&interval=0.5"  # stays open after the first event: buffering cannot hide


def first_event_ms(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        req = ("GET %s HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n" % SSE_TARGET).encode()
        buf = b""
        t0 = time.perf_counter()
        s.sendall(req)
        while True:
            d = s.recv(65536)
            if not d:
                raise EOFError("closed before the first event")
            buf += d
            h = buf.find(b"\r\n\r\n")
            if h < 0:
                continue
            head, rest = buf[:h], buf[h + 4:]
            if int(head.split(b" ", 2)[1]) != 200:
                raise ValueError("status %s" % head.split(b"\r\n", 1)[0])
            if re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
                nl = rest.find(b"\r\n")  # the chunk-size line, then the event's first byte
                if nl >= 0 and len(rest) > nl + 2:
                    break
            elif rest:
                break
        return (time.perf_counter() - t0) * 1000.0
    finally:
        s.close()


def sse_delay(b):
    up_port = free_port()
    up = b.start("SSE upstream", [sys.executable, harness.UPSTREAM, "--port", str(up_port)])
    wait_started(up, up_port)
    p = start_portcullis(b, "portcullis (a) for SSE", "portcullis-forward.yaml", up_port)
    direct, proxied, errors = [], [], []
    for i in range(5 + SSE_TRIES):  # 5 unrecorded warm-up tries each
        for port, acc in ((up_port, direct), (p.port, proxied)):
            try:
                ms = first_event_ms(port)
                if i >= 5:
                    acc.append(ms)
            except (OSError, EOFError, ValueError) as e:
                errors.append("%s: %s" % ("direct" if acc is direct else "portcullis", e))
            time.sleep(0.005)
    return dict(direct=direct, proxied=proxied, errors=errors, crashed=p.poll(), stderr=p.bench_stderr)


# ---- main ----

def main():
    for tool in ("wrk", "nginx", "haproxy"):
        if shutil.which(tool) is None:
            sys.exit("bench: %s not found (make deps-bench installs it)" % tool)
    if not os.access(BIN, os.X_OK):
        sys.exit("bench: %s not built (make)" % BIN)

    need = IDLE_CONNS + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need, hard), max(hard, need)))
    except (ValueError, OSError):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

    b = Bench()
    old_int = signal.getsignal(signal.SIGINT)

    def on_term(sig, frame):
        raise SystemExit(128 + sig)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    try:
        run(b, nofile)
    except KeyboardInterrupt:
        say("\nbench: interrupted; cleaning up")
        return 130
    except RuntimeError as e:  # could not set up: nothing to measure
        say("bench: %s" % e)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the clean-up
        b.cleanup()
        signal.signal(signal.SIGINT, old_int)
    return 0


def run(b, nofile):
    n = cores()
    say("portcullis bench (issue #7): loopback, figures only, no assertions")
    say("  machine: %d cores, load average %s, RLIMIT_NOFILE %d" % (
        n, " ".join("%.2f" % x for x in os.getloadavg()), nofile))
    say("  %s | %s | %s" % (version_of(["nginx", "-v"]), version_of(["haproxy", "-v"]), version_of(["wrk", "-v"])))
    say("  wrk -t%d -c%d -d%ds --latency, %d round(s), %ds warm-up per target; portcullis workers: %d" % (
        THREADS, CONNECTIONS, DURATION, ROUNDS, WARMUP, n))
    say("  request: GET %s (1 KiB JSON answer); temp dir %s" % (PATH, b.dir))
    say("")

    t = time.time()
    b.pg = PG(FIXTURE_SQL)
    say("setup: PostgreSQL with the Dify fixture on port %d (%.1fs)" % (b.pg.port, time.time() - t))
    # apps for the distinct-decisions run of (c), in owner_a's workspace
    ids = ["a2b2c3d4-0000-4000-8000-%012x" % i for i in range(1, DISTINCT_APPS + 1)]
    tenant, creator = APPS["a-editor-app"][1], USERS["editor_a"]
    b.pg.psql("INSERT INTO apps (id, tenant_id, name, created_by) "
              "SELECT ('a2b2c3d4-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, '%s', 'bench-app-' || g, '%s' "
              "FROM generate_series(1, %d) g; ANALYZE" % (tenant, creator, DISTINCT_APPS))
    ids_file = b.path("distinct-app-ids.txt")
    with open(ids_file, "w") as f:
        f.write("\n".join(ids) + "\n")
    say("setup: %d more apps in owner_a's workspace for (c) with distinct decisions" % DISTINCT_APPS)
    t = time.time()
    b.my = MariaDB(os.path.join(ROOT, "tests", "fixtures", "dify-schema-main.mysql.sql"), password="bench")
    b.my.sql_file(os.path.join(ROOT, "tests", "fixtures", "dify-data-main.mysql.sql"))
    b.my.sql("INSERT INTO apps (id, tenant_id, name, mode, description, enable_site, enable_api, created_by, "
             "maintainer) SELECT CONCAT('a2b2c3d4-0000-4000-8000-', LOWER(LPAD(HEX(seq), 12, '0'))), '%s', "
             "CONCAT('bench-app-', seq), 'chat', '', 1, 1, '%s', '%s' FROM seq_1_to_%d; ANALYZE TABLE apps"
             % (tenant, creator, creator, DISTINCT_APPS))
    say("setup: MariaDB (%s) with Dify's MySQL schema and the same %d apps on port %d (%.1fs)" % (
        b.my.sql("SELECT VERSION()").strip(), DISTINCT_APPS, b.my.port, time.time() - t))

    up_port = free_port()
    up = start_nginx(b, "upstream nginx", "upstream-nginx.conf", up_port, body=json_body(BODY_BYTES))
    hap_port = free_port()
    hap_conf = b.render("haproxy.cfg", "haproxy.cfg", port=hap_port, upstream=up_port)
    hap = b.start("HAProxy", ["haproxy", "-db", "-f", hap_conf])
    wait_started(hap, hap_port)
    ngx_port = free_port()
    ngx = start_nginx(b, "nginx proxy", "proxy-nginx.conf", ngx_port, upstream=up_port)
    pa = start_portcullis(b, "portcullis (a)", "portcullis-forward.yaml", up_port)
    # for context, not one of the issue's configurations: one worker, like
    # the single-threaded HAProxy and nginx it is compared with
    pa1 = start_portcullis(b, "portcullis (a1)", "portcullis-forward.yaml", up_port, workers=1)
    pb = start_portcullis(b, "portcullis (b)", "portcullis-auth.yaml", up_port, secret=SECRET, dburl=b.pg.url,
                          ttl="60s")
    pc = start_portcullis(b, "portcullis (c)", "portcullis-auth.yaml", up_port, secret=SECRET, dburl=b.pg.url,
                          ttl="0s")
    pm = start_portcullis(b, "portcullis (m)", "portcullis-auth-mysql.yaml", up_port, secret=SECRET,
                          dbport=b.my.port, dbuser=b.my.user, dbpassword=b.my.password)
    for p in (pb, pc, pm):
        if not wait_until(lambda: http(p.port, "GET", "/readyz").status == 200, timeout=20):
            raise RuntimeError("%s: not ready (database) after 20s:\n%s" % (p.bench_name, tail(p.bench_stderr)))

    token = mint(SECRET, {"user_id": USERS["owner_a"]}, ttl=24 * 3600)
    auth = ["Authorization: Bearer " + token]
    targets = [
        Target("upstream", "upstream nginx (direct)", up_port, up),
        Target("haproxy", "HAProxy (1 thread)", hap_port, hap),
        Target("nginx", "nginx proxy (1 worker)", ngx_port, ngx),
        Target("a", "portcullis (a) forward", pa.port, pa, admin=pa.admin),
        Target("a1", "portcullis (a1) forward, 1 worker", pa1.port, pa1, admin=pa1.admin),
        Target("b", "portcullis (b) auth, cached", pb.port, pb, auth, admin=pb.admin),
        Target("c", "portcullis (c) auth, uncached", pc.port, pc, auth, admin=pc.admin),
        Target("c*", "portcullis (c*) uncached, distinct", pc.port, pc, auth, admin=pc.admin,
               script=os.path.join(HERE, "distinct-apps.lua"), script_args=[ids_file],
               path="/apps/%s/logs" % ids[0]),
        Target("m", "portcullis (m) uncached, MariaDB", pm.port, pm, auth, admin=pm.admin),
        Target("m*", "portcullis (m*) MariaDB, distinct", pm.port, pm, auth, admin=pm.admin,
               script=os.path.join(HERE, "distinct-apps.lua"), script_args=[ids_file],
               path="/apps/%s/logs" % ids[0]),
    ]
    by = {tg.key: tg for tg in targets}
    services = [up, hap, ngx, pa, pb, pc, pm]

    # every target answers 200 with the 1 KiB body; (b) and (c) really authorize
    for tg in targets:
        st, blen = probe(tg.port, tg.headers, tg.path)
        if st != 200 or blen != BODY_BYTES:
            raise RuntimeError("%s: probe answered %d with %d bytes (expected 200, %d)" % (
                tg.name, st, blen, BODY_BYTES))
    editor = ["Authorization: Bearer " + mint(SECRET, {"user_id": USERS["editor_a"]}, ttl=3600)]
    for p in (pb, pc, pm):
        no_token, _ = probe(p.port)
        not_owner, _ = probe(p.port, editor)
        say("setup: %s: owner_a -> 200, no token -> %d, editor_a (not owner) -> %d" % (
            p.bench_name, no_token, not_owner))
    say("setup: all %d targets answer 200 with %d bytes" % (len(targets), BODY_BYTES))
    say("")

    def measure(tg, duration):
        m0 = metrics(tg.admin) if tg.admin else {}
        cpu0 = session_cpu_s(tg.proc.pid)
        r = run_wrk(tg.url, duration, tg.headers, tg.script, tg.script_args)
        cpu1 = session_cpu_s(tg.proc.pid)
        r["cpu_us"] = (cpu1 - cpu0) * 1e6 / r["requests"] if r["requests"] else None
        if tg.admin and tg.proc.poll() is None:
            m1 = metrics(tg.admin)
            for attr, name in (("queries", "portcullis_policy_queries_total"),
                               ("hits", "portcullis_policy_cache_hits_total")):
                setattr(tg, attr, getattr(tg, attr) + m1.get(name, 0) - m0.get(name, 0))
        tg.requests += r["requests"] or 0
        for p in check_alive(services):
            if not getattr(p, "reported", False):
                p.reported = True
                say("!! %s exited with %s during %s; its stderr ends:\n%s" % (
                    p.bench_name, p.returncode, tg.name, tail(p.bench_stderr)))
                for t2 in targets:
                    if t2.proc is p:
                        t2.crashed = p.returncode
        return r

    if WARMUP > 0:
        say("warm-up: %ds per target (not counted)" % WARMUP)
        for tg in targets:
            if tg.crashed is None:
                r = measure(tg, WARMUP)
                if r["problems"]:
                    say("  %-36s warm-up: %s" % (tg.name, "; ".join(r["problems"])))
        say("")

    for rnd in range(1, ROUNDS + 1):
        say("round %d/%d" % (rnd, ROUNDS))
        for tg in targets:
            if tg.crashed is not None:
                say("  %-36s skipped: exited with %s" % (tg.name, tg.crashed))
                continue
            r = measure(tg, DURATION)
            tg.runs.append(r)
            say("  %-36s %10s req/s  p99 %9s ms  CPU %6s us/req%s" % (
                tg.name, fmt(r["rps"], ",.0f"), fmt(r["p99"], ".2f"), fmt(r["cpu_us"], ".1f"),
                "  !! " + "; ".join(r["problems"]) if r["problems"] else ""))
        say("")

    hap_t = by["haproxy"]
    h_rps, h_p99, h_cpu = hap_t.median_rps(), hap_t.median_p99(), hap_t.median_cpu_us()
    rows = []
    for tg in targets:
        rps = [r["rps"] for r in tg.ok_runs()]
        issues = sorted({pr for r in tg.runs for pr in r["problems"]})
        if tg.crashed is not None:
            issues.insert(0, "exited with %s" % tg.crashed)
        rows.append([tg.name, fmt(tg.median_rps(), ",.0f"),
                     "%s-%s" % (fmt(min(rps), ",.0f"), fmt(max(rps), ",.0f")) if rps else "-",
                     fmt(ratio(tg.median_rps(), h_rps), ".2f"), fmt(tg.median_p99(), ".2f"),
                     fmt(ratio(tg.median_p99(), h_p99), ".2f"), fmt(tg.median_cpu_us(), ".1f"),
                     fmt(ratio(tg.median_cpu_us(), h_cpu), ".2f"), "%d/%d" % (len(tg.ok_runs()), ROUNDS),
                     "; ".join(issues) if issues else "none"])
    say("results: medians over %d round(s); ratios to HAProxy's medians in this run" % ROUNDS)
    say(table(rows, ["target", "req/s", "req/s range", "x HAProxy", "p99 ms", "p99 x HAProxy", "CPU us/req",
                     "CPU x HAProxy", "runs", "non-2xx / socket errors"], "lrrrrrrrrl"))
    say("(CPU us/req: user + system CPU of the target's processes during its wrk runs, per request answered;")
    say(" for the upstream row, of the upstream alone)")
    say("")

    # what portcullis did (its /metrics around each wrk run, warm-up included)
    say("database queries per request (portcullis metrics around the wrk runs, warm-up included):")
    for key in ("b", "c", "c*", "m", "m*"):
        tg = by[key]
        say("  %-36s %9d policy queries, %9d cache hits, %9d requests: %.3f queries per request" % (
            tg.name, tg.queries, tg.hits, tg.requests, tg.queries / tg.requests if tg.requests else 0))
    say("  (identical decisions in flight share one query: (c) repeats one decision, (c*) never does)")
    say("")

    # the wrk targets stay up but idle: they cost memory, not CPU
    say("idle connections: %d keep-alive connections to a fresh portcullis (a), one request each, then idle" %
        IDLE_CONNS)
    rss = idle_rss(b, up_port)
    mib = lambda k: None if k is None else k / 1024.0  # noqa: E731
    say("  held %d connections (opened in %.1fs), %d still open after 2s idle; portcullis counts %s active" % (
        rss["held"], rss["opened_s"], rss["alive"], fmt(rss["active"], ".0f")))
    if rss["non200"] or rss["errors"]:
        say("  !! %d non-200 answers, %d connection errors; first: %s" % (
            rss["non200"], len(rss["errors"]), rss["errors"][:3]))
    if rss["crashed"] is not None:
        say("  !! portcullis exited with %s; its stderr ends:\n%s" % (rss["crashed"], tail(rss["stderr"])))
    per_conn = None
    if rss["after"] is not None and rss["held"]:
        per_conn = (rss["after"] - rss["before"]) / rss["held"]
    say("  VmRSS before %s MiB, with the connections %s MiB (+%s KiB per connection), after closing them %s MiB" % (
        fmt(mib(rss["before"]), ".1f"), fmt(mib(rss["after"]), ".1f"), fmt(per_conn, ".2f"),
        fmt(mib(rss["closed"]), ".1f")))
    say("")

    say("first SSE event: GET %s, time from sending the request to the first event byte," % SSE_TARGET)
    say("  direct to the SSE upstream (tests/lib/upstream.py) vs through portcullis (a); %d tries each, interleaved"
        % SSE_TRIES)
    sse = sse_delay(b)
    d_med = statistics.median(sse["direct"]) if sse["direct"] else None
    p_med = statistics.median(sse["proxied"]) if sse["proxied"] else None
    extra = None if d_med is None or p_med is None else p_med - d_med
    say("  direct      median %s ms (%d tries)" % (fmt(d_med, ".3f"), len(sse["direct"])))
    say("  portcullis  median %s ms (%d tries)" % (fmt(p_med, ".3f"), len(sse["proxied"])))
    say("  extra delay %s ms" % fmt(extra, ".3f"))
    if sse["errors"]:
        say("  !! %d errors; first: %s" % (len(sse["errors"]), sse["errors"][:3]))
    if sse["crashed"] is not None:
        say("  !! portcullis exited with %s; its stderr ends:\n%s" % (sse["crashed"], tail(sse["stderr"])))
    say("")

    # the issue's targets
    a, bb, c, cs, ngx_t, m, ms = by["a"], by["b"], by["c"], by["c*"], by["nginx"], by["m"], by["m*"]

    def verdict(ok):
        return "n/a" if ok is None else ("met" if ok else "NOT met")

    ra, rb = ratio(a.median_rps(), h_rps), ratio(bb.median_rps(), h_rps)
    b_p99, n_p99 = bb.median_p99(), ngx_t.median_p99()
    b_ok = None if rb is None or b_p99 is None or n_p99 is None else (rb >= 0.9 and b_p99 <= n_p99)
    rss_after = mib(rss["after"])
    summary = [
        ["(a) forwarding", ">= 1.0x HAProxy req/s", "%sx HAProxy (%s req/s)" % (fmt(ra, ".2f"),
                                                                          fmt(a.median_rps(), ",.0f")),
         verdict(None if ra is None else ra >= 1.0)],
        ["(b) cached authorization", ">= 0.9x HAProxy req/s, p99 <= nginx's",
         "%sx HAProxy; p99 %s ms vs nginx %s ms" % (fmt(rb, ".2f"), fmt(b_p99, ".2f"), fmt(n_p99, ".2f")),
         verdict(b_ok)],
        ["(c) uncached authorization", ">= 10,000 req/s", "%s req/s (%.2f queries/request)" % (
            fmt(c.median_rps(), ",.0f"), c.queries / c.requests if c.requests else 0),
         verdict(None if c.median_rps() is None else c.median_rps() >= 10000)],
        ["(c*) same, distinct decisions", ">= 10,000 req/s", "%s req/s (%.2f queries/request)" % (
            fmt(cs.median_rps(), ",.0f"), cs.queries / cs.requests if cs.requests else 0),
         verdict(None if cs.median_rps() is None else cs.median_rps() >= 10000)],
        ["(m) uncached, MariaDB", ">= 10,000 req/s", "%s req/s (%.2f queries/request)" % (
            fmt(m.median_rps(), ",.0f"), m.queries / m.requests if m.requests else 0),
         verdict(None if m.median_rps() is None else m.median_rps() >= 10000)],
        ["(m*) same, distinct decisions", ">= 10,000 req/s", "%s req/s (%.2f queries/request)" % (
            fmt(ms.median_rps(), ",.0f"), ms.queries / ms.requests if ms.requests else 0),
         verdict(None if ms.median_rps() is None else ms.median_rps() >= 10000)],
        ["RSS, %d idle connections" % IDLE_CONNS, "<= 32 MiB", "%s MiB" % fmt(rss_after, ".1f"),
         verdict(None if rss_after is None or rss["held"] < IDLE_CONNS else rss_after <= 32)],
        ["SSE first event, extra delay", "<= 5 ms", "%s ms" % fmt(extra, ".3f"),
         verdict(None if extra is None else extra <= 5)],
    ]
    say("summary: the issue's targets (figures from this machine, this run)")
    say(table(summary, ["what", "target", "measured", "verdict"], "llll"))
    flagged = [tg.name for tg in targets if any(r["problems"] for r in tg.runs) or tg.crashed is not None]
    if flagged:
        say("!! runs with non-2xx responses, socket errors or crashes: %s" % ", ".join(flagged))
    say("(a benchmark, not a test: it exits 0 whether or not the targets are met)")


if __name__ == "__main__":
    sys.exit(main())
