#!/usr/bin/env python3
"""`make soak`: one million mixed requests through portcullis from several
concurrent clients, restarting PostgreSQL and the upstream in the middle.

Mixed: allowed, denied, unauthenticated and forwarded requests (pipelined
in batches), SSE streams and uploads. Every answer is checked against the
fixture's ground truth: an allowed request may get 503/502 while a
dependency restarts, but never 401/403; a denied or unauthenticated
request never 200. Passes when nothing crashed, no decision was wrong, the
RSS after warm-up stays within +-2 MiB, and the proxy's descriptors are back
to their baseline at the end. Prints the figures.

    SOAK_REQUESTS=1000000 SOAK_CLIENTS=4 python3 tests/soak/soak.py
"""
import hashlib
import multiprocessing as mp
import os
import re
import signal
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

from harness import PG, Proxy, Upstream, http, mint, wait_until  # noqa: E402
from fixture import APPS, USERS, may_read_logs, policies_yaml  # noqa: E402

TOTAL = int(os.environ.get("SOAK_REQUESTS", "1000000"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "4"))
BATCH = 32
SECRET = "soak-secret"

CONFIG = """
listen: 127.0.0.1:{port}
upstream: http://127.0.0.1:{upstream}
workers: 2
admin_listen: 127.0.0.1:{admin_port}
log: {access: false, level: warn}
timeouts: {policy: 1s, keepalive: 1s, connect: 1s}
identity:
  secret: "%s"
  subject_claim: user_id
  sources: ["cookie:access_token", "header:Authorization"]
database:
  url: "{dburl}"
  pool: 4
  connect_timeout: 1s
cache:
  ttl: 1s
policies:
%srules:
  - name: logs
    path: /apps/{app_id:uuid}/logs
    allow: [owner, admin, creator]
  - name: open
    path: /**
    action: forward
""" % (SECRET, policies_yaml("owner", "admin", "creator"))

# request kinds: (bytes, expectation) where expectation is "allow", "deny",
# "unauth" or "forward"


def build(method, target, headers=(), body=b""):
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: soak"] + ["%s: %s" % h for h in headers]
    if body:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def request_mix():
    tokens = dict((u, mint(SECRET, {"user_id": uid}, ttl=86400)) for u, uid in USERS.items())
    mix = []
    for user in USERS:
        for app, (app_id, _, _) in APPS.items():
            kind = "allow" if may_read_logs(user, app) else "deny"
            mix.append((build("GET", "/apps/%s/logs" % app_id, [("Authorization", "Bearer " + tokens[user])]), kind))
            if kind == "allow":  # the cookie path too
                mix.append((build("GET", "/apps/%s/logs" % app_id, [("Cookie", "access_token=" + tokens[user])]), kind))
    for app, (app_id, _, _) in APPS.items():
        mix.append((build("GET", "/apps/%s/logs" % app_id), "unauth"))
        mix.append((build("GET", "/apps/%s/logs" % app_id, [("Authorization", "Bearer " + tokens["owner_a"][:-4] + "AAAA")]),
                    "unauth"))
    for i in range(10):
        mix.append((build("GET", "/open/%d?x=%d" % (i, i)), "forward"))
        mix.append((build("POST", "/open/post/%d" % i, body=b"x" * (100 * i + 1)), "forward"))
    return mix


def ok(kind, status):
    """None when the answer is acceptable, else why it is wrong."""
    if kind == "allow":
        return None if status in (200, 502, 503, 504) else "allowed request got %d" % status
    if kind == "deny":
        return None if status in (403, 503) else "denied request got %d" % status
    if kind == "unauth":
        return None if status == 401 else "unauthenticated request got %d" % status
    return None if status in (200, 502, 503, 504) else "forwarded request got %d" % status


class Reader:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def fill(self):
        d = self.sock.recv(262144)
        if not d:
            raise EOFError
        self.buf += d

    def response(self):
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            self.fill()
        head = self.buf[:i]
        status = int(head[9:12])
        m = re.search(rb"\r\n[Cc]ontent-[Ll]ength: *(\d+)", head)
        n = int(m.group(1)) if m else 0
        chunked = m is None and b"chunked" in head.lower()
        self.buf = self.buf[i + 4:]
        if chunked:
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self.fill()
                line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    self.fill()
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
                if size == 0:
                    break
            return status, head, body
        while len(self.buf) < n:
            self.fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, head, body


def client(idx, port, quota, counter, wrong, statuses, stop):
    mix = request_mix()
    done = 0
    sock = None
    seq = idx
    local = {}
    errors = []
    while done < quota and not stop.is_set():
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                rd = Reader(sock)
            seq += 1
            if seq % 997 == 0:
                # an upload, checked byte for byte
                payload = os.urandom(256 * 1024)
                sock.sendall(build("POST", "/echo/upload", body=payload))
                st, head, body = rd.response()
                if st == 200 and hashlib.sha256(payload).hexdigest().encode() not in body:
                    errors.append("upload corrupted")
                local[st] = local.get(st, 0) + 1
                done += 1
                if b"close" in head.lower():
                    sock.close()
                    sock = None
                continue
            if seq % 1009 == 0:
                # an SSE stream: three events
                sock.sendall(build("GET", "/sse?n=3&interval=0.001"))
                st, head, body = rd.response()
                if st == 200 and body.count(b"data: ") != 3:
                    errors.append("SSE stream lost events: %r" % body[:100])
                local[st] = local.get(st, 0) + 1
                done += 1
                if b"close" in head.lower():
                    sock.close()
                    sock = None
                continue
            batch = [mix[(seq * 7 + k) % len(mix)] for k in range(BATCH)]
            sock.sendall(b"".join(b for b, _ in batch))
            for req, kind in batch:
                st, head, body = rd.response()
                why = ok(kind, st)
                if why:
                    errors.append(why)
                local[st] = local.get(st, 0) + 1
                done += 1
                if b"onnection: close" in head:
                    raise EOFError  # the rest of the batch is not coming
        except (EOFError, OSError):
            if sock is not None:
                sock.close()
            sock = None
            time.sleep(0.01)
        if len(local) and done % 2000 < BATCH:
            with counter.get_lock():
                counter.value += sum(local.values())
            for k, v in local.items():
                statuses.put((k, v))
            local = {}
            for e in errors[:20]:
                wrong.put(e)
            errors = []
    with counter.get_lock():
        counter.value += sum(local.values())
    for k, v in local.items():
        statuses.put((k, v))
    for e in errors[:20]:
        wrong.put(e)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def main():
    print("soak: %d requests from %d clients" % (TOTAL, CLIENTS), flush=True)
    pg = PG(os.path.join(ROOT, "tests", "fixtures", "dify.sql"))
    up = Upstream(log=False)
    proxy = Proxy(CONFIG, upstream=up.port, dburl=pg.url)
    failures = []
    try:
        wait_until(lambda: http(proxy.port, "GET", "/readyz").status == 200, timeout=15)
        pid = proxy.proc.pid
        time.sleep(0.5)
        fd_base = nfds(pid)
        counter = mp.Value("q", 0)
        wrong, statuses, stop = mp.Queue(), mp.Queue(), mp.Event()
        procs = [mp.Process(target=client, args=(i, proxy.port, TOTAL // CLIENTS, counter, wrong, statuses, stop))
                 for i in range(CLIENTS)]
        t0 = time.time()
        for p in procs:
            p.start()
        restarted_pg = restarted_up = False
        samples = []
        last_print = 0
        while any(p.is_alive() for p in procs):
            time.sleep(0.5)
            if proxy.proc.poll() is not None:
                failures.append("the proxy exited with %s" % proxy.proc.returncode)
                stop.set()
                break
            n = counter.value
            if n >= TOTAL * 0.2:
                samples.append((n, rss_kib(pid)))
            if not restarted_pg and n >= TOTAL * 0.4:
                print("  %d: restarting PostgreSQL" % n, flush=True)
                pg.restart()
                restarted_pg = True
            if not restarted_up and n >= TOTAL * 0.6:
                print("  %d: restarting the upstream" % n, flush=True)
                up.restart()
                restarted_up = True
            if time.time() - last_print > 10:
                last_print = time.time()
                print("  %d requests, %.0f req/s, RSS %.1f MiB" % (n, n / (time.time() - t0), rss_kib(pid) / 1024),
                      flush=True)
        for p in procs:
            p.join()
        elapsed = time.time() - t0
        wrong_list = []
        while not wrong.empty():
            wrong_list.append(wrong.get())
        counts = {}
        while not statuses.empty():
            k, v = statuses.get()
            counts[k] = counts.get(k, 0) + v
        # connections to the upstream expire after timeouts.keepalive; the
        # database connections are back after the restart
        time.sleep(2.5)
        fd_end = nfds(pid)
        rss = [r for _, r in samples]
        # the first fifth is warm-up; judge the rest
        steady = rss[len(rss) // 4:] if len(rss) > 8 else rss
        spread = (max(steady) - min(steady)) / 1024 if steady else 0
        total = sum(counts.values())
        print()
        print("requests        %d in %.1f s (%.0f req/s)" % (total, elapsed, total / elapsed))
        print("statuses        %s" % ", ".join("%d: %d" % kv for kv in sorted(counts.items())))
        print("wrong decisions %d%s" % (len(wrong_list), (": " + "; ".join(wrong_list[:5])) if wrong_list else ""))
        if rss:
            print("RSS             first %.1f MiB, steady min %.1f, max %.1f (spread %.2f MiB), last %.1f MiB" % (
                rss[0] / 1024, min(steady) / 1024, max(steady) / 1024, spread, rss[-1] / 1024))
        print("descriptors     baseline %d, end %d" % (fd_base, fd_end))
        print("restarts        PostgreSQL %s, upstream %s" % (restarted_pg, restarted_up))
        if wrong_list:
            failures.append("%d wrong decisions" % len(wrong_list))
        if total < TOTAL * 0.99:
            failures.append("only %d of %d requests answered" % (total, TOTAL))
        if spread > 2.0:
            failures.append("RSS not flat after warm-up: spread %.2f MiB" % spread)
        if fd_end != fd_base:
            failures.append("descriptors %d at the end, %d at the start" % (fd_end, fd_base))
        if proxy.proc.poll() is not None:
            failures.append("the proxy died")
    finally:
        proxy.close()
        up.close()
        pg.close()
    if failures:
        print("SOAK FAILED: " + "; ".join(failures))
        sys.exit(1)
    print("SOAK PASSED")


if __name__ == "__main__":
    main()
