"""Issue #2: the streaming HTTP/1.1 proxy core, against real processes."""
import hashlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import unittest

from harness import (Conn, Proxy, Upstream, build_request, free_port, http, metric_sum, raw, run_portcullis,
                     scrape, signal_blocked, status_of, tcp_sockets, wait_until)

CORE = """
listen: 127.0.0.1:{port}
upstream: http://127.0.0.1:{upstream}
workers: 2
admin_listen: 127.0.0.1:{admin_port}
timeouts:
  header: 1s
  connect: 1s
  upstream: 2s
  idle: 5s
  drain: 5s
limits:
  header_bytes: 8KiB
  body_bytes: 30MiB
rules:
  - name: denied
    path: /denied/**
    action: deny
  - name: open
    path: /**
    action: forward
"""


class ProxyCase(unittest.TestCase):
    config = CORE
    upstream_args = {}

    def setUp(self):
        self.up = Upstream(**self.upstream_args)
        self.proxy = Proxy(self.config, upstream=self.up.port)

    def tearDown(self):
        self.proxy.close()
        self.up.close()

    def assertRefused(self, data, status=400):
        out = raw(self.proxy.port, data)
        self.assertEqual(status_of(out), status, out[:300])
        self.assertIn(b"Connection: close", out.split(b"\r\n\r\n")[0])
        body = json.loads(out.split(b"\r\n\r\n", 1)[1])
        self.assertEqual(body["status"], status)
        self.assertIn("code", body)
        self.assertIn("message", body)
        return out


class TestFraming(ProxyCase):
    """Each framing rule: 400 and close, and nothing reaches the upstream."""

    def refuse(self, data, status=400):
        self.assertRefused(data, status)
        self.assertEqual(self.up.settled_requests(), [])

    def test_rejects_content_length_with_transfer_encoding(self):
        self.refuse(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")

    def test_rejects_repeated_content_length_even_when_equal(self):
        self.refuse(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc")

    def test_rejects_non_numeric_content_length(self):
        for v in (b"abc", b"1,1", b"+3", b"3 3", b"-1", b"0x10"):
            self.refuse(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: " + v + b"\r\n\r\nabc")

    def test_rejects_transfer_encoding_other_than_chunked(self):
        for v in (b"gzip, chunked", b"chunked, chunked", b"identity", b"chunked;q=1", b"xchunked"):
            self.refuse(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + v + b"\r\n\r\n0\r\n\r\n")

    def test_rejects_repeated_transfer_encoding(self):
        self.refuse(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")

    def test_rejects_obs_fold(self):
        self.refuse(b"GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n")

    def test_rejects_bare_lf(self):
        self.refuse(b"GET /x HTTP/1.1\nHost: a\n\n")
        self.refuse(b"GET /x HTTP/1.1\r\nHost: a\nX: y\r\n\r\n")

    def test_rejects_whitespace_before_colon(self):
        self.refuse(b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length : 0\r\n\r\n")

    def test_rejects_invalid_header_name_characters(self):
        for name in (b"X(a)", b"X@a", b"X\x01a", b"", b"X a"):
            self.refuse(b"GET /x HTTP/1.1\r\nHost: a\r\n" + name + b": v\r\n\r\n")

    def test_rejects_nul_and_cr_inside_values(self):
        self.refuse(b"GET /x HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n")
        self.refuse(b"GET /x HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n")

    def test_rejects_malformed_request_lines(self):
        for line in (b"GET  /x HTTP/1.1", b"GET /x  HTTP/1.1", b"GET /x HTTP/1.1 ", b"GET /x", b"GET /x HTTP/2.0",
                     b"GET /x http/1.1", b"GET\t/x HTTP/1.1", b"GET /x\x7f HTTP/1.1", b"G(T /x HTTP/1.1",
                     b"GET x HTTP/1.1", b"CONNECT a:443 HTTP/1.1"):
            self.refuse(line + b"\r\nHost: a\r\n\r\n")

    def test_rejects_missing_or_repeated_host_in_http11(self):
        self.refuse(b"GET /x HTTP/1.1\r\n\r\n")
        self.refuse(b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")

    def test_rejects_transfer_encoding_in_http10(self):
        self.refuse(b"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")

    def test_rejects_malformed_chunk_framing(self):
        for body in (b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcX\r\n0\r\n\r\n", b"3\nabc\r\n0\r\n\r\n",
                     b"\r\n", b"ffffffffffffffffff\r\n"):
            out = raw(self.proxy.port, b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
            self.assertEqual(status_of(out), 400, (body, out[:200]))

    def test_headers_over_header_bytes_get_431(self):
        big = b"X-Big: " + b"a" * 9000 + b"\r\n"
        self.refuse(b"GET /x HTTP/1.1\r\nHost: a\r\n" + big + b"\r\n", 431)

    def test_content_length_over_body_bytes_gets_413(self):
        self.refuse(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % (31 * 1024 * 1024), 413)

    def test_chunked_body_over_body_bytes_gets_413_and_close(self):
        c = Conn(self.proxy.port)
        c.send(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % (1 << 20) + b"x" * (1 << 20) + b"\r\n"
        status = None
        try:
            for _ in range(40):
                c.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            r = c.read_response()
            status = r.status
        except (EOFError, ConnectionError):
            pass
        self.assertEqual(status, 413)
        self.assertTrue(c.closed())


class TestHttp10(ProxyCase):
    def test_http10_closes_by_default(self):
        out = raw(self.proxy.port, b"GET /echo HTTP/1.0\r\n\r\n")
        self.assertEqual(status_of(out), 200)
        self.assertIn(b"Connection: close", out)

    def test_http10_keepalive_when_asked(self):
        c = Conn(self.proxy.port)
        for _ in range(3):
            c.send(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("connection"), "keep-alive")
        c.close()

    def test_http10_client_gets_dechunked_body_then_close(self):
        out = raw(self.proxy.port, b"GET /chunked?n=3&size=4 HTTP/1.0\r\n\r\n")
        head, body = out.split(b"\r\n\r\n", 1)
        self.assertNotIn(b"chunked", head.lower())
        self.assertEqual(body, b"000011112222")


class TestRelay(ProxyCase):
    def test_sse_events_arrive_within_50ms_of_being_sent(self):
        c = Conn(self.proxy.port)
        c.send(build_request("GET", "/sse?n=5&interval=0.2"))
        version, status, reason, headers = c.read_head()
        self.assertEqual(status, 200)
        delays = []
        for _ in range(5):
            size = int(c._line(), 16)
            ev = c._exact(size)
            c._exact(2)
            now = time.time()
            data = json.loads(ev.split(b"data: ", 1)[1].split(b"\n")[0])
            delays.append(now - data["sent"])
        c.close()
        self.assertLess(max(delays), 0.050, delays)

    def upload(self, chunked):
        size = 20 * 1024 * 1024
        payload = os.urandom(1 << 20) * 20
        digest = hashlib.sha256(payload).hexdigest()
        c = Conn(self.proxy.port, timeout=30)
        if chunked:
            c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(0, size, 300000):
                part = payload[i:i + 300000]
                c.send(b"%x\r\n" % len(part) + part + b"\r\n")
            c.send(b"0\r\n\r\n")
        else:
            c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)
            c.sock.sendall(payload)
        r = c.read_response()
        c.close()
        self.assertEqual(r.status, 200)
        echo = r.json()
        self.assertEqual(echo["body_len"], size)
        self.assertEqual(echo["sha256"], digest)
        return echo

    def test_20mib_upload_with_content_length_is_byte_exact(self):
        self.upload(chunked=False)

    def test_20mib_upload_chunked_is_byte_exact_and_rechunked(self):
        echo = self.upload(chunked=True)
        self.assertTrue(echo["chunked"])

    def test_1000_requests_on_one_keepalive_connection(self):
        c = Conn(self.proxy.port)
        for i in range(1000):
            r = c.request("GET", "/echo/%d" % i)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json()["target"], "/echo/%d" % i)
        c.close()

    def test_pipelined_requests_are_answered_in_order(self):
        c = Conn(self.proxy.port)
        reqs = b"".join(build_request("GET", "/slow?ms=%d&i=%d" % (150 - 30 * i, i)) for i in range(5))
        reqs += build_request("POST", "/echo/post", body=b"hello")
        reqs += build_request("GET", "/echo/last")
        c.send(reqs)
        targets = [c.read_response().json()["target"] for _ in range(7)]
        c.close()
        self.assertEqual(targets, ["/slow?ms=%d&i=%d" % (150 - 30 * i, i) for i in range(5)] +
                         ["/echo/post", "/echo/last"])

    def test_pipelined_requests_beyond_the_read_cap_are_each_answered_once_in_order(self):
        # More than the proxy reads ahead (header_bytes + 256 KiB): it stops
        # reading while the first request waits on the upstream, then reads
        # again when that response is written. The read event and the timer
        # that starts the next buffered request come in the same loop turn:
        # the next request must start once, not twice (two requests at once
        # on one connection: one dropped, one orphaned with its upstream).
        pad = b"p" * 7000
        reqs = [build_request("GET", "/slow?ms=300&i=0"), build_request("GET", "/echo?i=1")]
        reqs += [build_request("GET", "/echo?i=%d" % i, headers=[("X-Pad", pad.decode())]) for i in range(2, 62)]
        c = Conn(self.proxy.port)
        sender = threading.Thread(target=c.send, args=(b"".join(reqs),), daemon=True)
        sender.start()
        targets = [c.read_response().json()["target"] for _ in range(len(reqs))]
        sender.join()
        c.close()
        self.assertEqual(targets, ["/slow?ms=300&i=0"] + ["/echo?i=%d" % i for i in range(1, 62)])
        self.assertEqual([r["target"] for r in self.up.settled_requests()], targets)

    def test_chunked_response_is_reframed(self):
        c = Conn(self.proxy.port)
        c.send(build_request("GET", "/chunked?n=4&size=3"))
        version, status, reason, headers = c.read_head()
        self.assertEqual(dict((k.lower(), v) for k, v in headers).get("transfer-encoding"), "chunked")
        body = b""
        while True:
            line = c._line()
            self.assertNotIn(b";", line)  # extensions are not passed on
            size = int(line, 16)
            if size == 0:
                self.assertEqual(c._line(), b"")  # no trailers
                break
            body += c._exact(size)
            self.assertEqual(c._exact(2), b"\r\n")
        self.assertEqual(body, b"000111222333")
        # and the connection is still usable
        self.assertEqual(c.request("GET", "/echo").status, 200)
        c.close()

    def test_large_response_streams_byte_exact(self):
        r = http(self.proxy.port, "GET", "/big?bytes=%d" % (5 * 1024 * 1024), timeout=20)
        self.assertEqual(len(r.body), 5 * 1024 * 1024)

    def test_head_response_has_no_body(self):
        c = Conn(self.proxy.port)
        r = c.request("HEAD", "/big?bytes=100")
        self.assertEqual(r.status, 200)
        self.assertEqual(c.request("GET", "/echo").status, 200)  # framing intact
        c.close()

    def test_an_upstream_sending_a_body_on_head_cannot_answer_the_next_request(self):
        # the test upstream sends its body even to HEAD (a faulty server):
        # the connection must not be reused, or those bytes would be read as
        # the next request's response
        cfg = CORE.replace("workers: 2", "workers: 1")
        p = Proxy(cfg, upstream=self.up.port)
        try:
            c = Conn(p.port)
            self.assertEqual(c.request("HEAD", "/late-body").status, 200)
            # the late bytes are on their way before the next request
            self.assertTrue(wait_until(lambda: [e for e in self.up.requests() if e.get("event") == "late-body-sent"]))
            for _ in range(3):
                r = c.request("GET", "/echo/next")
                self.assertEqual(r.status, 200)
                self.assertNotEqual(r.body, b"STOLE")
                self.assertEqual(r.json()["target"], "/echo/next")
            c.close()
        finally:
            p.close()

    def test_upstream_down_gives_502_in_difys_error_shape(self):
        self.up.stop()
        r = http(self.proxy.port, "GET", "/echo")
        self.assertEqual(r.status, 502)
        body = r.json()
        self.assertEqual(body["status"], 502)
        self.assertEqual(body["code"], "bad_gateway")
        self.assertIn("message", body)

    def test_upstream_stalled_gives_504_in_difys_error_shape(self):
        t = time.time()
        r = http(self.proxy.port, "GET", "/stall", timeout=10)
        self.assertEqual(r.status, 504)
        self.assertEqual(r.json()["code"], "gateway_timeout")
        self.assertLess(time.time() - t, 2 + 6)  # timeouts.upstream is 2 s; 6 s of margin

    def test_malformed_upstream_response_gives_502(self):
        r = http(self.proxy.port, "GET", "/bad-response")
        self.assertEqual(r.status, 502)

    def test_upstream_closing_before_responding_gives_502(self):
        r = http(self.proxy.port, "GET", "/close-early")
        self.assertEqual(r.status, 502)

    def test_upstream_closing_mid_response_cuts_the_client_off(self):
        c = Conn(self.proxy.port)
        c.send(build_request("GET", "/close-mid"))
        version, status, reason, headers = c.read_head()
        self.assertEqual(status, 200)
        self.assertTrue(c.closed())
        self.assertLess(len(c.buf), 1000)

    def test_client_disconnect_mid_stream_closes_upstream_connection(self):
        c = Conn(self.proxy.port)
        c.send(build_request("GET", "/sse-forever?interval=0.05"))
        c.read_head()
        c._exact(int(c._line(), 16) + 2)  # an event: the stream is flowing
        closed_at = time.time()
        c.close()
        ev = wait_until(lambda: [e for e in self.up.requests() if e.get("event") == "sse-closed"], timeout=15)
        self.assertTrue(ev, "the upstream never saw the stream close")
        # promptly, not after timeouts.upstream (2 s): 1.5 s of margin
        self.assertLess(ev[0]["t"] - closed_at, 0.5 + 1.5)

    def test_expect_100_continue_is_answered_only_after_the_decision(self):
        c = Conn(self.proxy.port)
        c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        version, status, reason, headers = c.read_head()
        self.assertEqual(status, 100)
        c.send(b"hello")
        r = c.read_response()
        self.assertEqual(r.status, 200)
        echo = r.json()
        self.assertEqual(echo["body_len"], 5)
        self.assertNotIn("expect", [k.lower() for k, v in echo["headers"]])
        c.close()

    def test_expect_100_continue_on_a_denied_route_gets_the_denial_and_no_100(self):
        out = raw(self.proxy.port, b"POST /denied/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        self.assertEqual(status_of(out), 403)
        self.assertNotIn(b"100 Continue", out)

    def test_websocket_echo_through_the_tunnel(self):
        c = Conn(self.proxy.port)
        c.send(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 101)
        self.assertEqual(r.header("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        for msg in (b"\x81\x05hello", b"x" * 100000):
            c.send(msg)
            got = b""
            while len(got) < len(msg):
                got += c._exact(min(len(msg) - len(got), max(1, len(c.buf)))) if c.buf else (c._fill() or b"")
            self.assertEqual(got, msg)
        c.close()

    def test_hop_by_hop_headers_are_removed_xff_appended_host_kept(self):
        r = http(self.proxy.port, "GET", "/echo", headers=[
            ("Host", "app.example"), ("Connection", "keep-alive, X-Secret-Hop"), ("X-Secret-Hop", "1"),
            ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Proxy-Authorization", "Basic x"),
            ("X-Forwarded-For", "10.0.0.1"), ("X-Forwarded-For", "10.0.0.2"), ("Trailer", "X")])
        names = [k.lower() for k, v in r.json()["headers"]]
        hs = dict((k.lower(), v) for k, v in r.json()["headers"])
        for h in ("x-secret-hop", "keep-alive", "te", "proxy-authorization", "trailer"):
            self.assertNotIn(h, names)
        self.assertEqual(hs["host"], "app.example")
        self.assertEqual(hs["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 127.0.0.1")
        self.assertEqual(names.count("x-forwarded-for"), 1)

    def test_a_long_header_name_listed_in_connection_is_removed_both_ways(self):
        name = "X-Hop-" + "h" * 200
        r = http(self.proxy.port, "GET", "/echo", headers=[("Connection", "keep-alive, " + name), (name, "1")])
        self.assertNotIn(name.lower(), [k.lower() for k, v in r.json()["headers"]])
        # the upstream names one of its own headers the same way
        r = http(self.proxy.port, "GET", "/hop-response?name=" + name)
        self.assertEqual(r.status, 200)
        self.assertNotIn(name.lower(), [k.lower() for k, v in r.headers])

    def test_a_header_listed_in_a_second_connection_header_is_removed_both_ways(self):
        # RFC 9110 5.3: a field sent twice is one comma-joined list
        r = http(self.proxy.port, "GET", "/echo", headers=[
            ("Connection", "keep-alive"), ("Connection", "X-Second-Hop"), ("X-Second-Hop", "1")])
        self.assertNotIn("x-second-hop", [k.lower() for k, v in r.json()["headers"]])
        r = http(self.proxy.port, "GET", "/hop-response?name=X-Second-Hop&twice=1")
        self.assertEqual(r.status, 200)
        self.assertNotIn("x-second-hop", [k.lower() for k, v in r.headers])


        # gunicorn 23 maps a SCRIPT_NAME header from loopback peers onto routing
        r = http(self.proxy.port, "GET", "/echo", headers=[("SCRIPT_NAME", "/echo"), ("X_Forwarded_Proto", "https")])
        names = [k.lower() for k, v in r.json()["headers"]]
        self.assertNotIn("script_name", names)
        self.assertNotIn("x_forwarded_proto", names)

    def test_an_absolute_form_authority_replaces_host(self):
        # RFC 9112 3.2.2: a proxy replaces Host with the target's authority
        r = http(self.proxy.port, "GET", "http://other.example:81/echo?q=1", headers=[("Host", "a.example")])
        hosts = [v for k, v in r.json()["headers"] if k.lower() == "host"]
        self.assertEqual(hosts, ["other.example:81"])
        self.assertEqual(r.json()["target"], "/echo?q=1")

    def test_an_upgrade_answered_without_101_never_reuses_the_upstream_connection(self):
        # nghttpx CVE-2026-58055 shape: the upstream may read the body of an
        # Upgrade request as another protocol; do not send it anyone else's
        cfg = CORE.replace("workers: 2", "workers: 1")
        p = Proxy(cfg, upstream=self.up.port)
        try:
            c = Conn(p.port)
            body = build_request("GET", "/echo/hidden")
            r = c.request("POST", "/echo/upgrade", headers=[("Connection", "Upgrade"), ("Upgrade", "websocket")],
                          body=body)
            self.assertEqual(r.status, 200)
            self.assertEqual(c.request("GET", "/echo/after").status, 200)
            self.assertEqual(c.request("GET", "/echo/again").status, 200)
            c.close()
            reqs = dict((q["target"], q["peer"]) for q in self.up.requests() if "target" in q)
            self.assertNotEqual(reqs["/echo/upgrade"], reqs["/echo/after"])
            self.assertEqual(reqs["/echo/after"], reqs["/echo/again"])  # ordinary reuse still works
            self.assertNotIn("/echo/hidden", reqs)
        finally:
            p.close()

    def test_several_cookie_headers_reach_the_upstream_as_one(self):
        r = http(self.proxy.port, "GET", "/echo", headers=[("Cookie", "a=1"), ("Cookie", "b=2; c=3")])
        cookies = [v for k, v in r.json()["headers"] if k.lower() == "cookie"]
        self.assertEqual(cookies, ["a=1; b=2; c=3"])


class _SegmentedHandler(BaseHTTPRequestHandler):
    """Python's http.server as it is: the head flushed on its own, then the
    body in a second small write, on a socket without TCP_NODELAY."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"segmented\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.flush()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class TestSegmentedUpstream(unittest.TestCase):
    def test_an_upstream_writing_head_and_body_apart_costs_no_delayed_ack_on_a_pooled_connection(self):
        # Nagle holds the body back until the head is acknowledged; on a
        # reused connection the proxy's ACK would be delayed (40 ms) unless
        # the socket re-arms quick ACKs after every read
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _SegmentedHandler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        proxy = Proxy(CORE.replace("workers: 2", "workers: 1"), upstream=srv.server_address[1])
        try:
            c = Conn(proxy.port)
            times = []
            for _ in range(25):
                t = time.monotonic()
                r = c.request("GET", "/segmented")
                times.append(time.monotonic() - t)
                self.assertEqual((r.status, r.body), (200, b"segmented\n"))
            c.close()
            times.sort()
            self.assertLess(times[len(times) // 2], 0.020, ["%.1f ms" % (x * 1000) for x in times])
        finally:
            proxy.close()
            srv.shutdown()
            srv.server_close()


class TestStalePool(ProxyCase):
    upstream_args = {"keepalive_timeout": 0.2}

    def test_stale_pooled_connection_is_replaced_without_an_error(self):
        for _ in range(4):
            self.assertEqual(http(self.proxy.port, "GET", "/echo").status, 200)
            # the upstream closes idle connections after 0.2 s: wait until
            # it has closed its side of the pooled one
            self.assertTrue(wait_until(lambda: not tcp_sockets(local_port=self.up.port, state="ESTABLISHED"),
                                       timeout=15))


class TestHealth(ProxyCase):
    def test_health_answers_200_and_is_never_forwarded(self):
        r = http(self.proxy.port, "GET", "/healthz")
        self.assertEqual((r.status, r.json()), (200, {"status": "ok"}))
        self.assertEqual(self.up.requests(), [])

    def test_ready_is_200_while_the_upstream_accepts_connections(self):
        r = http(self.proxy.port, "GET", "/readyz")
        self.assertEqual((r.status, r.json()["status"]), (200, "ready"))
        self.assertEqual(self.up.requests(), [])

    def test_ready_is_503_naming_the_upstream_when_it_is_down(self):
        self.up.stop()
        r = http(self.proxy.port, "GET", "/readyz")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.json()["failing"], "upstream")

    def test_health_and_ready_do_not_depend_on_rules(self):
        cfg = "listen: 127.0.0.1:{port}\nupstream: http://127.0.0.1:{upstream}\ndefault: deny\n" \
              "health_path: /live\nready_path: /ready\n"
        p = Proxy(cfg, upstream=self.up.port)
        try:
            self.assertEqual(http(p.port, "GET", "/live").status, 200)
            self.assertEqual(http(p.port, "GET", "/ready").status, 200)
            self.assertEqual(http(p.port, "GET", "/other").status, 403)
        finally:
            p.close()

    def test_admin_listener_serves_health_ready_and_metrics(self):
        self.assertEqual(http(self.proxy.admin_port, "GET", "/healthz").status, 200)
        self.assertEqual(http(self.proxy.admin_port, "GET", "/readyz").status, 200)
        m = http(self.proxy.admin_port, "GET", "/metrics")
        self.assertEqual(m.status, 200)
        self.assertIn(b"portcullis_build_info", m.body)
        # never on the public listener: there, /metrics is an ordinary path
        http(self.proxy.port, "GET", "/metrics")
        self.assertEqual(self.up.requests()[-1]["target"], "/metrics")

    def test_the_ready_gauge_follows_the_readiness_check(self):
        self.assertEqual(metric_sum(scrape(self.proxy.admin_port), "portcullis_ready"), 1)
        self.up.stop()
        self.assertEqual(http(self.proxy.admin_port, "GET", "/readyz").status, 503)
        self.assertEqual(metric_sum(scrape(self.proxy.admin_port), "portcullis_ready"), 0)
        self.up.start()
        self.assertEqual(metric_sum(scrape(self.proxy.admin_port), "portcullis_ready"), 1)


class TestAdminBlackholedUpstream(unittest.TestCase):
    """An upstream whose accept queue is full: SYNs are dropped, so every
    readiness probe waits its whole connect budget."""

    def setUp(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(0)
        self.fillers = []
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect(self.lsock.getsockname())
            except BlockingIOError:
                pass
            self.fillers.append(f)
        self.upport = self.lsock.getsockname()[1]
        self.proxy = Proxy(CORE, upstream=self.upport)

    def tearDown(self):
        self.proxy.close()
        for f in self.fillers:
            f.close()
        self.lsock.close()

    def test_a_second_head_on_an_admin_connection_during_a_readiness_check_starts_no_second_check(self):
        def probes():
            return len(tcp_sockets(remote_port=self.upport, state="SYN_SENT"))
        before = probes()
        c = Conn(self.proxy.admin_port, timeout=10)
        c.send(build_request("GET", "/metrics"))
        self.assertTrue(wait_until(lambda: probes() > before))  # the probe is in flight
        c.send(b"\r\n\r\n")  # with the first head, a second one
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertIn(b"portcullis_ready 0", r.body)
        self.assertTrue(c.closed())
        # the admin listener still answers, and the process stops cleanly
        self.assertEqual(http(self.proxy.admin_port, "GET", "/healthz", timeout=5).status, 200)
        self.assertEqual(self.proxy.stop(), 0)


class TestSignals(ProxyCase):
    def test_sigterm_drains_a_live_sse_stream_then_exits_0(self):
        c = Conn(self.proxy.port, timeout=10)
        c.send(build_request("GET", "/sse?n=8&interval=0.15"))
        c.read_head()
        c._exact(int(c._line(), 16) + 2)  # the first event
        self.proxy.signal(signal.SIGTERM)

        def refused():
            try:
                socket.create_connection(("127.0.0.1", self.proxy.port), timeout=1).close()
                return False
            except OSError:
                return True
        # new connections are refused while draining
        self.assertTrue(wait_until(refused, timeout=10))
        events = 1
        while True:
            size = int(c._line(), 16)
            if size == 0:
                break
            c._exact(size + 2)
            events += 1
        self.assertEqual(events, 8)
        self.assertEqual(self.proxy.proc.wait(10), 0)

    def test_sighup_with_a_valid_config_applies_to_new_requests_only(self):
        c = Conn(self.proxy.port, timeout=10)
        c.send(build_request("GET", "/slow?ms=700"))
        # in flight: it has reached the upstream
        self.assertTrue(wait_until(lambda: [q for q in self.up.requests() if q.get("target") == "/slow?ms=700"]))
        self.assertIn("reloaded: generation 2", self.proxy.reload(CORE.replace("action: forward", "action: deny")))
        self.assertEqual(c.read_response().status, 200)  # in flight: old generation
        # new requests: the new generation, once each worker has read its mail
        self.assertTrue(wait_until(lambda: all(http(self.proxy.port, "GET", "/echo").status == 403 for _ in range(4))))

    def test_sighup_during_start_up_does_not_kill_the_proxy(self):
        # start-up checks policies against a database that never answers
        # (its accept queue is full), which takes timeouts: a SIGHUP then
        # must wait for the handler instead of killing the process
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(0)
        fillers = []
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect(lsock.getsockname())
            except BlockingIOError:
                pass
            fillers.append(f)
        from harness import VALGRIND
        slow = 60.0 if VALGRIND else 30.0  # valgrind takes a while to reach main()
        cfg = CORE + (
            "identity: {secret: x}\n"
            "database: {url: \"host=127.0.0.1 port=%d dbname=x\", connect_timeout: %ds}\n"
            "policies: {p: \"SELECT 1 WHERE :subject <> ''\"}\n") % (lsock.getsockname()[1], 6 if VALGRIND else 1)
        p = Proxy(cfg, upstream=self.up.port, start=False)
        dbport = lsock.getsockname()[1]
        before = len(tcp_sockets(remote_port=dbport))
        try:
            p.start(wait=False)
            # in start-up: the database check is connecting (signals are held
            # before it starts), and the port does not accept yet. Under
            # valgrind the kernel's view of the signal mask is valgrind's own,
            # so the connect attempt is what shows start-up got there.
            self.assertTrue(wait_until(lambda: len(tcp_sockets(remote_port=dbport)) > before, timeout=slow))
            if not VALGRIND:
                self.assertTrue(signal_blocked(p.proc.pid, signal.SIGHUP))
            self.assertIsNone(p.proc.poll())
            p.signal(signal.SIGHUP)
            from harness import wait_port
            wait_port(p.port, proc=p.proc)
            # the held SIGHUP is handled once the server runs: a reload
            self.assertTrue(wait_until(lambda: p.reload_outcomes(), timeout=30))
            self.assertIsNone(p.proc.poll())
            self.assertEqual(http(p.port, "GET", "/echo").status, 200)
        finally:
            p.close()
            for f in fillers:
                f.close()
            lsock.close()

    def test_sighup_with_a_broken_config_keeps_serving_the_old_one(self):
        self.assertIn("reload failed", self.proxy.reload("listen: [this is not yaml\n"))
        self.assertEqual(http(self.proxy.port, "GET", "/echo").status, 200)
        self.assertIn("action must be forward or deny", self.proxy.reload(CORE.replace("action: forward", "action: frward")))
        self.assertEqual(http(self.proxy.port, "GET", "/echo").status, 200)


class TestUpstreamByName(unittest.TestCase):
    def test_an_upstream_name_is_resolved_while_serving(self):
        up = Upstream()
        p = Proxy(CORE.replace("http://127.0.0.1:{upstream}", "http://localhost:{upstream}"), upstream=up.port)
        try:
            self.assertEqual(http(p.port, "GET", "/echo").status, 200)
            self.assertEqual(http(p.port, "GET", "/readyz").status, 200)
        finally:
            p.close()
            up.close()

    def test_the_proxy_starts_before_its_upstream_name_resolves(self):
        # docker compose: "api" does not resolve until its container runs
        p = Proxy(CORE.replace("http://127.0.0.1:{upstream}", "http://no-such-upstream.invalid:5001"), upstream=1)
        try:
            self.assertIn("cannot resolve", p.stderr())
            r = http(p.port, "GET", "/echo")
            self.assertEqual((r.status, r.json()["message"]), (502, "upstream host does not resolve"))
            r = http(p.port, "GET", "/readyz")
            self.assertEqual((r.status, r.json()["failing"]), (503, "upstream"))
            self.assertEqual(http(p.port, "GET", "/healthz").status, 200)
            r = run_portcullis("-t", "-c", p.config_path)
            self.assertEqual(r.returncode, 0)
            self.assertIn("resolved again while serving", r.stderr)
        finally:
            p.close()


class TestCommandLine(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pc-cli-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, text):
        p = os.path.join(self.dir, "c.yaml")
        with open(p, "w") as f:
            f.write(text)
        return p

    def test_t_accepts_a_valid_config(self):
        p = self.write("listen: 127.0.0.1:1\nupstream: http://127.0.0.1:2\n")
        r = run_portcullis("-t", "-c", p)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)

    def test_t_rejects_with_file_line_col(self):
        p = self.write("listen: 127.0.0.1:1\nupstream: http://127.0.0.1:2\ntimeouts:\n  heder: 1s\n")
        r = run_portcullis("-t", "-c", p)
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s:4:3: unknown key 'heder'" % p, r.stderr)
        self.assertIn("did you mean 'header'", r.stderr)

    def test_config_path_defaults_to_the_environment(self):
        p = self.write("listen: 127.0.0.1:1\nupstream: http://127.0.0.1:2\n")
        r = run_portcullis("-t", env={"PORTCULLIS_CONFIG": p})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(p, r.stdout)
        r = run_portcullis("-t", env={"PORTCULLIS_CONFIG": ""})
        self.assertEqual(r.returncode, 1)
        self.assertIn("/etc/portcullis/portcullis.yaml", r.stderr)

    def test_version_and_help(self):
        self.assertRegex(run_portcullis("-v").stdout, r"^portcullis \d+\.\d+\.\d+")
        self.assertRegex(run_portcullis("--version").stdout, r"^portcullis ")
        self.assertIn("usage:", run_portcullis("-h").stdout)
        self.assertIn("usage:", run_portcullis("--help").stdout)
        self.assertEqual(run_portcullis("--bogus").returncode, 2)


if __name__ == "__main__":
    unittest.main()
