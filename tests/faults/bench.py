#!/usr/bin/env python3
"""`make faults` / `make faults-short`: portcullis against real network
faults (see tests/faults/README.md and netns.py for the topology).

    python3 tests/faults/bench.py [--short] [--only NAME[,NAME]] [--list]

Each scenario runs a fresh portcullis, puts a fault on the database or
upstream path (nft drop/reject in a router namespace, or the fault relay), heals
it, and checks with an oracle (the fixture's people and apps, the
recording upstream):

  - no protected response to anyone not entitled, no 403 to anyone
    entitled (wrong decisions), and the upstream served none;
  - every protected request answered within timeouts.policy + SLACK;
  - open (action: forward) requests all answered 200 during database faults;
  - readiness turns 503 while the database is unreachable and 200 again;
  - recovery within RECOVERY after the fault heals;
  - descriptors and RSS back to baseline after 200 fault cycles.

Prints a table (fault x worst answer, readiness, recovery, lost, wrong)
and exits 1 when any check failed.
"""
import argparse
import hashlib
import json
import os
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import env as E  # noqa: E402
from env import (ADMIN_PORT, DB_IP, POLICY_MS, PROXY_IP, UP_IP, UPSTREAM_MS,  # noqa: E402,F401
                 APPS, Load, ReadyWatch, auth, judge, upstream_wrong, wait_for)

POLICY = POLICY_MS / 1000.0
SLACK = 0.3                 # answer bound: timeouts.policy + SLACK
RECOVERY = 6.0              # after the fault heals: backoff cap (5 s) + a connect and setup
READY_DOWN = 2 * POLICY + 1.0 + 0.5   # with traffic: a query far past the budget (2 x policy + 1 s) + a probe
READY_IDLE = 3 * POLICY + 1.0 + 0.5   # no traffic: ping interval (policy) + the same limit + a probe
UP_SLACK = 0.5              # upstream outcomes: timeouts.upstream + UP_SLACK

FAILURES = []
ROWS = []


def fail(scn, msg):
    FAILURES.append("%s: %s" % (scn, msg))
    print("  FAIL %s" % msg, flush=True)


def fmt(x, unit="s"):
    return "-" if x is None else ("%.2f %s" % (x, unit)).strip()


# ---------------------------------------------------------------- database

def db_faults(env):
    """env.topo is read when a fault is put on (--list has no env)."""
    return {
        # name: (proxy's database path, fault on, unreachable?, expect no loss?)
        "db-blackhole-to-proxy": ("direct", lambda: env.topo.drop(DB_IP, PROXY_IP), True, False),
        "db-blackhole-to-db": ("direct", lambda: env.topo.drop(PROXY_IP, DB_IP), True, False),
        "db-reset": ("direct", lambda: env.topo.reset(PROXY_IP, DB_IP), True, False),
        "db-latency-200ms": ("relay", lambda: env.relay("db", mode="delay", ms=100, jitter=0), False, True),
        "db-jitter-0-300ms": ("relay", lambda: env.relay("db", mode="delay", ms=0, jitter=150), False, True),
        # the database answers, after 1.4 s: not unreachable, so readiness is not required to turn 503
        "db-latency-over-budget": ("relay", lambda: env.relay("db", mode="delay", ms=700, jitter=0), False, False),
        "db-stall": ("relay", lambda: env.relay("db", mode="stall"), True, False),
        "db-trickle": ("relay", lambda: env.relay("db", mode="trickle", bps=300), True, False),
    }


def settle(proxy, pool=4, timeout=15):
    wait_for(lambda: proxy.ready() == 200 and proxy.db_up() == pool, timeout, "proxy ready with %d connections" % pool)


def analyse(name, recs, watch, t_fault, t_heal, unreachable, no_loss):
    prot = [r for r in recs if r[2] == "protected"]
    opens = [r for r in recs if r[2] == "open"]
    in_fault = [r for r in prot if t_fault <= r[0] < t_heal]
    worst = max((r[1] - r[0] for r in in_fault), default=None)
    worst_all = max((r[1] - r[0] for r in prot), default=0.0)
    lost = [r for r in prot if r[5] == 503]
    errs = [r for r in prot if r[5] is None]
    wrong = judge(recs)
    after = [r for r in prot if r[0] >= t_heal]
    last_bad = max((r[1] for r in after if r[5] != 200 and r[5] != 403), default=None)
    recovery = 0.0 if last_bad is None else last_bad - t_heal
    rd = watch.first(503, t_fault)
    ready_down = None if rd is None or rd > t_heal else rd - t_fault
    ru = watch.first(200, t_heal)
    ready_up = None if ru is None else ru - t_heal
    if wrong:
        fail(name, "%d wrong decisions, e.g. %s" % (len(wrong), wrong[:3]))
    if errs:
        fail(name, "%d protected requests got no answer (%s)" % (len(errs), errs[0][6]))
    if worst_all > POLICY + SLACK:
        fail(name, "a protected request took %.2f s (> policy %.1f s + %.1f s)" % (worst_all, POLICY, SLACK))
    bad_open = [r for r in opens if r[5] != 200]
    if bad_open:
        fail(name, "%d open requests not 200 during a database fault: %s" % (len(bad_open), bad_open[:2]))
    slow_open = max((r[1] - r[0] for r in opens), default=0.0)
    if slow_open > 0.5:
        fail(name, "an open request took %.2f s during a database fault" % slow_open)
    if unreachable:
        if ready_down is None:
            fail(name, "readiness never turned 503 during the fault")
        elif ready_down > READY_DOWN:
            fail(name, "readiness turned 503 after %.2f s (> %.1f s)" % (ready_down, READY_DOWN))
    if no_loss and lost:
        fail(name, "%d protected requests got 503 though the database answers within the budget" % len(lost))
    if ready_up is None or ready_up > RECOVERY:
        fail(name, "readiness 200 again after %s (> %.0f s)" % (fmt(ready_up), RECOVERY))
    if recovery > RECOVERY:
        fail(name, "protected requests recovered after %.2f s (> %.0f s)" % (recovery, RECOVERY))
    n_fault = len(in_fault)
    return dict(fault=name, worst=worst, ready_down=ready_down, recovery=max(recovery, ready_up or 0),
                lost="%d/%d" % (len(lost), len(prot)), lost_fault="%d/%d" % (
                    len([r for r in in_fault if r[5] == 503]), n_fault), wrong=len(wrong))


def run_db_scenario(env, name, path, on, unreachable, no_loss, duration):
    print("== %s" % name, flush=True)
    proxy = env.start_proxy(db=path)
    settle(proxy)
    since = time.time()
    watch = ReadyWatch(proxy)
    load = Load(proxy).start()
    time.sleep(1.0)
    t_fault = time.time()
    on()
    time.sleep(duration)
    t_heal = time.time()
    env.heal()
    # until readiness is back and the last 1.5 s of protected requests all succeeded
    deadline = t_heal + RECOVERY + 3

    def recovered():
        now = time.time()
        if now - t_heal < 1.5 or watch.first(200, t_heal) is None:
            return False
        with load.lock:
            tail = [r for r in load.records if r[2] == "protected" and r[0] >= now - 1.5]
        return tail and all(r[5] in (200, 403) for r in tail)
    while time.time() < deadline and not recovered():
        time.sleep(0.1)
    recs = load.stop()
    watch.stop()
    row = analyse(name, recs, watch, t_fault, t_heal, unreachable, no_loss)
    served = upstream_wrong(env, since)
    if served:
        fail(name, "the upstream served %d protected requests to people not entitled" % len(served))
        row["wrong"] += len(served)
    ROWS.append(row)
    print("   %s" % row, flush=True)


def scenario_ready_idle(env, short):
    """No traffic at all: a black-holed database must turn readiness 503
    within READY_IDLE, and back to 200 after it heals."""
    name = "db-blackhole-idle (readiness)"
    print("== %s" % name, flush=True)
    proxy = env.start_proxy()
    settle(proxy)
    watch = ReadyWatch(proxy, interval=0.1)
    time.sleep(0.5)
    t_fault = time.time()
    env.topo.blackhole(DB_IP)
    wait = READY_IDLE + 3
    while time.time() - t_fault < wait and watch.first(503, t_fault) is None:
        time.sleep(0.1)
    t_heal = time.time()
    env.heal()
    while time.time() - t_heal < RECOVERY + 2 and watch.first(200, t_heal) is None:
        time.sleep(0.1)
    watch.stop()
    rd = watch.first(503, t_fault)
    ru = watch.first(200, t_heal)
    ready_down = None if rd is None else rd - t_fault
    ready_up = None if ru is None else ru - t_heal
    if ready_down is None or ready_down > READY_IDLE:
        fail(name, "an idle proxy's readiness stayed 200 for %s with the database black-holed (bound %.1f s)"
             % ("over %.1f s" % wait if ready_down is None else "%.2f s" % ready_down, READY_IDLE))
    if ready_up is None or ready_up > RECOVERY:
        fail(name, "readiness 200 again after %s (> %.0f s)" % (fmt(ready_up), RECOVERY))
    ROWS.append(dict(fault=name, worst=None, ready_down=ready_down, recovery=ready_up, lost="-", lost_fault="-",
                     wrong=0))


def kernel_has_rto_min():
    """TCP_RTO_MIN_US (Linux 6.15), which portcullis sets on its database sockets."""
    s = socket.socket()
    try:
        s.setsockopt(socket.IPPROTO_TCP, 45, 50000)
        return True
    except OSError:
        return False
    finally:
        s.close()


FLAP_PERIOD, FLAP_DOWN = 0.6, 0.3
FLAP_MAX_LOSS = 0.25   # share of protected requests lost while flapping 0.3 s of every 0.6 s


def scenario_flap(env, short):
    """The database path black-holed (both directions) 0.3 s of every
    0.6 s. With timeouts.policy (1 s) longer than a down period, a request
    can wait the outage out: at most FLAP_MAX_LOSS of them may get 503.
    (With TCP's 200 ms retransmission floor, doubling, a segment lost early
    in a down window is retried only in later down windows: portcullis
    lowers the floor on its database sockets where the kernel allows.)"""
    name = "db-flap-0.3s/0.6s"
    print("== %s" % name, flush=True)
    proxy = env.start_proxy()
    settle(proxy)
    since = time.time()
    watch = ReadyWatch(proxy)
    load = Load(proxy).start()
    time.sleep(1.0)
    t_fault = time.time()
    t = env.topo
    cycles = 25 if short else 50
    for k in range(cycles):   # on an absolute schedule: exactly 0.3 s down, 0.3 s up
        t.blackhole(DB_IP)
        time.sleep(max(0.0, t_fault + k * FLAP_PERIOD + FLAP_DOWN - time.time()))
        t.flush()
        time.sleep(max(0.0, t_fault + (k + 1) * FLAP_PERIOD - time.time()))
    t_heal = time.time()
    env.heal()
    deadline = t_heal + RECOVERY + 2
    while time.time() < deadline:
        with load.lock:
            tail = [r for r in load.records if r[2] == "protected" and r[0] >= time.time() - 1.5]
        if time.time() - t_heal > 1.5 and tail and all(r[5] in (200, 403) for r in tail):
            break
        time.sleep(0.1)
    recs = load.stop()
    watch.stop()
    row = analyse(name, recs, watch, t_fault, t_heal, False, False)
    in_fault = [r for r in recs if r[2] == "protected" and t_fault <= r[0] < t_heal]
    share = len([r for r in in_fault if r[5] == 503]) / max(1, len(in_fault))
    if share > FLAP_MAX_LOSS:
        fail(name, "%.0f%% of protected requests got 503 while flapping (> %.0f%%)%s" % (
            100 * share, 100 * FLAP_MAX_LOSS, "" if kernel_has_rto_min() else
            " (this kernel has no TCP_RTO_MIN_US, Linux 6.15: the database sockets keep TCP's 200 ms floor)"))
    if upstream_wrong(env, since):
        fail(name, "the upstream served a protected request to someone not entitled")
    ROWS.append(row)
    print("   %s, 503 share while flapping %.0f%%" % (row, 100 * share), flush=True)


def scenario_cycles(env, short):
    """200 fault cycles under light load (black hole and reset, 100 ms on,
    150 ms off): descriptors back to their baseline, RSS within 2 MiB."""
    name = "200 cycles (drop/reset)"
    print("== %s" % name, flush=True)
    proxy = env.start_proxy()
    settle(proxy)
    load = Load(proxy, rate=40).start()
    time.sleep(1.0)
    load.stop()
    settle(proxy)
    time.sleep(0.3)
    fd0, rss0 = proxy.fds(), proxy.rss_kib()
    since = time.time()
    load = Load(proxy, rate=40, seed=5).start()
    t = env.topo
    for i in range(200):
        if i % 2 == 0:
            t.blackhole(DB_IP)
        else:
            t.reset(PROXY_IP, DB_IP)
        time.sleep(0.1)
        t.flush()
        time.sleep(0.15)
    recs = load.stop()
    settle(proxy, timeout=RECOVERY + 10)
    # client connections close lingering (up to 5 s), pooled upstream ones after timeouts.keepalive
    deadline = time.time() + 8
    while proxy.fds() != fd0 and time.time() < deadline:
        time.sleep(0.1)
    fd1, rss1 = proxy.fds(), proxy.rss_kib()
    wrong = judge(recs)
    if wrong:
        fail(name, "%d wrong decisions" % len(wrong))
    if upstream_wrong(env, since):
        fail(name, "the upstream served a protected request to someone not entitled")
    worst = max((r[1] - r[0] for r in recs if r[2] == "protected"), default=0)
    if worst > POLICY + SLACK:
        fail(name, "a protected request took %.2f s" % worst)
    if fd1 != fd0:
        fail(name, "descriptors %d -> %d after 200 cycles" % (fd0, fd1))
    if rss1 - rss0 > 2048:
        fail(name, "RSS %d -> %d KiB after 200 cycles" % (rss0, rss1))
    lost = len([r for r in recs if r[2] == "protected" and r[5] == 503])
    ROWS.append(dict(fault=name, worst=worst, ready_down=None, recovery=None,
                     lost="%d/%d" % (lost, len([r for r in recs if r[2] == "protected"])), lost_fault="-",
                     wrong=len(wrong), extra="fds %d->%d, RSS %d->%d KiB" % (fd0, fd1, rss0, rss1)))
    print("   fds %d -> %d, RSS %d -> %d KiB" % (fd0, fd1, rss0, rss1), flush=True)


# ------------------------------------------------- partitions mid-stream

class Stream:
    """A raw client request whose response is read incrementally."""

    def __init__(self, proxy, head, timeout=10.0):
        self.s = socket.create_connection((proxy.host, proxy.port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s.sendall(head)
        self.buf = b""
        self.eof = False
        self.reset = False

    def read_until(self, pred, timeout):
        deadline = time.time() + timeout
        while not pred(self.buf) and not self.eof and time.time() < deadline:
            self.s.settimeout(max(0.01, deadline - time.time()))
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                break
            except ConnectionError:
                self.eof = self.reset = True
                break
            if not d:
                self.eof = True
            self.buf += d
        return pred(self.buf)

    def close(self):
        self.s.close()


def sse_request(app_user, app, n, interval, extra=""):
    q = "n=%d&interval=%s%s" % (n, interval, extra)
    hs = ""
    if app is not None:
        q += "&app=%s" % APPS[app][0]
        hs = "Authorization: %s\r\n" % auth(app_user)[0][1]
    return ("GET /sse?%s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (q, hs)).encode()


def policy_answers(proxy):
    """Policy queries the database has answered (pass or fail) so far."""
    m = proxy.metrics()
    return sum(v for n, labels, v in m if n == "portcullis_policy_queries_total" and labels.get("result") != "error")


def scenario_db_partition_mid_stream(env, short):
    """An authorized SSE stream and an authorized upload in flight when the
    database path is cut: both finish intact (the decision was made)."""
    name = "db partition mid-SSE/upload"
    print("== %s" % name, flush=True)
    proxy = env.start_proxy()
    settle(proxy)
    st = Stream(proxy, sse_request("owner_a", "a-editor-app", 30, 0.1))
    ok = st.read_until(lambda b: b.count(b"data:") >= 3, 5)
    size = 4 << 20
    body = os.urandom(size)
    decided = policy_answers(proxy)
    up = socket.create_connection((proxy.host, proxy.port), timeout=10)
    up.sendall(("POST /echo?app=%s HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n" % (
        APPS["a-editor-app"][0], auth("owner_a")[0][1], size)).encode())
    up.sendall(body[:size // 4])
    # the cut comes after the upload's decision (cache.ttl 0s: a query answered)
    wait_for(lambda: policy_answers(proxy) > decided, 10, "the upload's decision")
    t0 = time.time()
    env.topo.blackhole(DB_IP)
    for i in range(1, 4):   # the rest of the upload, slowly, during the partition
        up.sendall(body[i * size // 4:(i + 1) * size // 4])
        time.sleep(0.3)
    done = st.read_until(lambda b: b.endswith(b"0\r\n\r\n"), 8)
    resp = b""
    up.settimeout(10)
    while b"}" not in resp:
        d = up.recv(65536)
        if not d:
            break
        resp += d
    env.heal()
    up.close()
    st.close()
    if not ok or not done or st.buf.count(b"data:") != 30:
        fail(name, "the SSE stream did not finish intact across a database partition (%d events)"
             % st.buf.count(b"data:"))
    digest = hashlib.sha256(body).hexdigest()
    if b" 200 " not in resp.split(b"\r\n", 1)[0] or digest.encode() not in resp:
        fail(name, "the upload did not arrive intact across a database partition: %r" % resp[:200])
    ROWS.append(dict(fault=name, worst=time.time() - t0, ready_down=None, recovery=None, lost="0/2" if (
        done and digest.encode() in resp) else "?/2", lost_fault="-", wrong=0))


# ---------------------------------------------------------------- upstream

def dify_error(body, status):
    try:
        j = json.loads(body.split(b"\r\n\r\n", 1)[1])
    except (ValueError, IndexError):
        return False
    return set(j) == {"code", "message", "status"} and j["status"] == status


def complete(buf):
    """A whole response is in buf (Content-Length or chunked)."""
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v)
    return body.endswith(b"0\r\n\r\n")


def status_of(buf):
    if not buf.startswith(b"HTTP/1.1 "):
        return None
    return int(buf[9:12])


def peers_of(env, marker):
    return [e["peer"] for e in env.upstream_requests() if marker in e.get("target", "")]


def after_fault_not_reused(env, name, proxy, marker):
    """A plain request after the fault: 200, on a new upstream connection."""
    faulted = set(peers_of(env, marker))
    ok = False
    for _ in range(3):
        m2 = "after-%s-%f" % (marker, time.time())
        try:
            r = E.get(proxy.host, proxy.port, "/open/ping?m=" + m2, timeout=UPSTREAM_MS / 1000.0 + 3)
        except (OSError, EOFError):
            continue
        if r.status == 200:
            ok = True
            reused = faulted & set(peers_of(env, m2))
            if reused:
                fail(name, "the faulted upstream connection %s was reused" % reused)
            break
    if not ok:
        fail(name, "no 200 from the upstream after the fault healed")


def run_up_scenario(env, name, target, path, arm, expect, bound, relay_mode=None):
    """arm(): put the fault on once the upstream has the request (or has
    sent the head). expect: 'error-before-head' (504/502 JSON) or 'cut'."""
    print("== %s" % name, flush=True)
    proxy = env.start_proxy(up=path)
    wait_for(lambda: proxy.ready() == 200, 10, "ready")
    marker = "m%f" % time.time()
    sep = "&" if "?" in target else "?"
    hs = ""
    if target.startswith("/sse") or target.startswith("/echo"):   # the protected rules: authorized
        marker += "&app=" + APPS["a-editor-app"][0]
        hs = "Authorization: %s\r\n" % auth("owner_a")[0][1]
    head = ("GET %s%sm=%s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (target, sep, marker, hs)).encode()
    if relay_mode is not None:
        env.relay("up", **relay_mode)
    st = Stream(proxy, head, timeout=bound + 5)
    t_fault = arm(st, marker)
    st.read_until(complete, bound + 3)
    t_end = time.time()
    env.heal()
    took = t_end - t_fault
    st.close()
    sc = status_of(st.buf)
    if expect == "error-before-head":
        if sc not in (502, 504) or not dify_error(st.buf, sc):
            fail(name, "want 502/504 {code,message,status} before the head, got %r" % st.buf[:200])
    elif expect == "cut":
        if sc != 200 or st.buf.endswith(b"0\r\n\r\n") or not st.eof:
            fail(name, "want a cut connection after a 200 head, got eof=%s %r" % (st.eof, st.buf[-80:]))
    elif expect == "complete":
        if sc != 200 or not st.buf.endswith(b"0\r\n\r\n") and b"Content-Length" not in st.buf:
            fail(name, "want the whole response, got %r" % st.buf[:120])
    if took > bound:
        fail(name, "outcome after %.2f s (> %.2f s)" % (took, bound))
    if expect != "complete":   # a response that completed may be pooled; a faulted one never
        after_fault_not_reused(env, name, proxy, marker)
    ROWS.append(dict(fault=name, worst=took, ready_down=None, recovery=None, lost="-", lost_fault="-", wrong=0,
                     extra="%s %s" % (sc, "cut" if st.eof and sc == 200 else "")))
    print("   status %s after %.2f s, eof %s" % (sc, took, st.eof), flush=True)


def upstream_scenarios(env):
    """env.topo is read when a fault is put on (--list has no env)."""
    UP = UPSTREAM_MS / 1000.0

    def when_logged(st, marker):
        wait_for(lambda: peers_of(env, marker), 5, "upstream has the request")
        return time.time()

    def drop_in_after_log(st, marker):
        when_logged(st, marker)
        env.topo.drop(UP_IP, PROXY_IP)
        return time.time()

    def drop_in_after_events(st, marker):
        st.read_until(lambda b: b.count(b"data:") >= 2, 5)
        env.topo.blackhole(UP_IP)
        return time.time()

    def reset_after_head(st, marker):
        st.read_until(lambda b: b.count(b"data:") >= 2, 5)
        env.topo.reset(PROXY_IP, UP_IP)
        return time.time()

    def at_once(st, marker):
        return time.time()

    return [
        ("up-blackhole-before-head", "/slow?ms=600", "direct", drop_in_after_log, "error-before-head", UP + UP_SLACK,
         None),
        ("up-blackhole-mid-body", "/sse?n=100&interval=0.1", "direct", drop_in_after_events, "cut", UP + UP_SLACK,
         None),
        ("up-reset-after-head", "/sse?n=100&interval=0.1", "direct", reset_after_head, "cut", 0.5 + UP_SLACK, None),
        ("up-stall-before-head", "/open/ping", "relay", at_once, "error-before-head", UP + UP_SLACK,
         {"mode": "stall"}),
        ("up-trickle-within-timeout", "/big?bytes=3000", "relay", at_once, "complete", 3000 / 1500 + 1.5,
         {"mode": "trickle", "bps": 1500}),
        ("up-half-close-before-head", "/half-close", "direct", at_once, "error-before-head", 1.0, None),
        ("up-half-close-mid-body", "/half-close-mid", "direct", at_once, "cut", 1.0, None),
    ]


def scenario_upstream_partition_upload(env, short):
    """The upstream path cut in the middle of an upload: the client gets a
    504 (nothing came back yet) or a cut within timeouts.upstream."""
    name = "up-partition-mid-upload"
    print("== %s" % name, flush=True)
    proxy = env.start_proxy()
    wait_for(lambda: proxy.ready() == 200, 10, "ready")
    size = 8 << 20
    marker = "m%f" % time.time()
    decided = policy_answers(proxy)
    s = socket.create_connection((proxy.host, proxy.port), timeout=10)
    s.sendall(("POST /echo?m=%s&app=%s HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n"
               % (marker, APPS["a-editor-app"][0], auth("owner_a")[0][1], size)).encode())
    s.sendall(b"x" * (1 << 20))
    # the cut comes once the upload is authorized and on its way upstream
    wait_for(lambda: policy_answers(proxy) > decided, 10, "the upload's decision")
    env.topo.drop(PROXY_IP, UP_IP)
    t0 = time.time()
    resp = b""
    s.setblocking(False)
    sent = 1 << 20
    bound = UPSTREAM_MS / 1000.0 + UP_SLACK + 1.0
    while time.time() - t0 < bound + 2:
        try:
            d = s.recv(65536)
            if not d:
                break
            resp += d
            if b"}" in resp:
                break
        except BlockingIOError:
            pass
        except ConnectionError:
            break
        if sent < size:
            try:
                sent += s.send(b"x" * 65536)
            except (BlockingIOError, ConnectionError):
                pass
        time.sleep(0.01)
    took = time.time() - t0
    env.heal()
    s.close()
    sc = status_of(resp)
    if sc is not None and (sc != 504 or not dify_error(resp, 504)):
        fail(name, "want a 504 {code,message,status} or a cut, got %r" % resp[:200])
    if took > bound:
        fail(name, "outcome after %.2f s (> %.2f s)" % (took, bound))
    after_fault_not_reused(env, name, proxy, marker)
    ROWS.append(dict(fault=name, worst=took, ready_down=None, recovery=None, lost="-", lost_fault="-", wrong=0,
                     extra=str(sc or "cut")))
    print("   %s after %.2f s" % (sc or "cut", took), flush=True)


# ---------------------------------------------------------------- main

def print_table():
    print()
    print("| fault | worst-case answer | readiness 503 after | recovery | requests lost (503): all / in fault | "
          "wrong decisions | notes |")
    print("|---|---|---|---|---|---|---|")
    for r in ROWS:
        print("| %s | %s | %s | %s | %s / %s | %d | %s |" % (
            r["fault"], fmt(r["worst"]), fmt(r["ready_down"]), fmt(r["recovery"]), r["lost"], r["lost_fault"],
            r["wrong"], r.get("extra", "")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--short", action="store_true", help="the CI version: shorter faults")
    ap.add_argument("--only", help="comma-separated scenario names (prefix match)")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()

    def on_term(sig, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)

    duration = 4.5 if args.short else 8.0   # > READY_DOWN: readiness must turn 503 within the fault
    env = None
    t_start = time.time()

    class Late:
        """The environment, made after the plan (--list makes none)."""
        def __getattr__(self, name):
            return getattr(env, name)
    late = Late()
    plan = []
    for name, (path, on, unreachable, no_loss) in db_faults(late).items():
        plan.append((name, lambda env, short, a=(name, path, on, unreachable, no_loss):
                     run_db_scenario(env, *a, duration)))
    plan.append(("db-blackhole-idle", scenario_ready_idle))
    plan.append(("db-flap", scenario_flap))
    plan.append(("db-partition-mid-stream", scenario_db_partition_mid_stream))
    for spec in upstream_scenarios(late):
        plan.append((spec[0], lambda env, short, s=spec: run_up_scenario(env, *s)))
    plan.append(("up-partition-mid-upload", scenario_upstream_partition_upload))
    plan.append(("cycles", scenario_cycles))
    if args.list:
        print("\n".join(n for n, _ in plan))
        return 0
    only = args.only.split(",") if args.only else None
    if os.geteuid() != 0:
        print("faults: needs root (network namespaces, nft)", file=sys.stderr)
        return 2
    try:
        env = E.Env()
        for name, fn in plan:
            if only and not any(name.startswith(o) for o in only):
                continue
            try:
                fn(env, args.short)
            except Exception as e:  # a scenario that breaks is a failure, the others still run
                import traceback
                traceback.print_exc()
                fail(name, "scenario raised %s: %s" % (type(e).__name__, e))
            finally:
                env.heal()
                env.stop_proxy()
    except KeyboardInterrupt:
        print("faults: interrupted, cleaning up", file=sys.stderr)
        FAILURES.append("interrupted")
    finally:
        if env is not None:
            env.close()
    import netns
    left = netns.leftovers() + E.leftover_dirs()
    if left:
        FAILURES.append("left behind: %s" % left)
    print_table()
    print("\nfaults: %d scenarios, %.0f s, %d failures" % (len(ROWS), time.time() - t_start, len(FAILURES)))
    for f in FAILURES:
        print("  " + f)
    print("%d passed, %d failed" % (len(ROWS) - len(set(f.split(":")[0] for f in FAILURES)),
                                     len(set(f.split(":")[0] for f in FAILURES))))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
