#!/usr/bin/env python3
"""A scriptable HTTP/1.1 upstream for portcullis' integration tests.

Written on raw asyncio streams (not http.server) so that tests control
framing exactly. Every request is appended as one JSON line to --log, so a
test can prove what did, and what did not, reach the upstream.

Routes (anything else echoes):
  /echo...                 JSON: method, target, headers, body length, sha256
  /sse?n=N&interval=S      text/event-stream, chunked; each event carries its send time
  /sse-forever?interval=S  events until the client goes away (logs "sse-closed")
  /slow?ms=N               answers after N ms
  /stall                   reads the request, never answers
  /chunked?n=N&size=S      chunked response of N chunks of S bytes
  /close-early             closes without answering
  /close-mid               sends a head with Content-Length 1000, 10 bytes, closes
  /half-close              answers nothing, shuts down its sending side, keeps reading
  /half-close-mid          a head with Content-Length 1000, 10 bytes, then shuts down its sending side
  /status/NNN              answers with that status
  /big?bytes=N             Content-Length body of N bytes
  /ws                      websocket handshake (101), then echoes bytes
  /bad-response            a malformed status line
  /late-body               a head, then 100 ms later a body that looks like a response
Dify's console routing is not imitated here: tests/lib/dify_app.py serves
Dify's own route strings under gunicorn (harness.DifyApi).
"""
import argparse
import asyncio
import base64
import hashlib
import json
import os
import sys
import time
import urllib.parse

ARGS = None
LOG = None


def log(entry):
    if LOG is not None:
        LOG.write(json.dumps(entry) + "\n")
        LOG.flush()


async def read_head(reader):
    data = await reader.readuntil(b"\r\n\r\n")
    lines = data[:-4].split(b"\r\n")
    method, target, version = lines[0].decode("latin-1").split(" ", 2)
    headers = []
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name, value.strip()))
    return method, target, version, headers


def hget(headers, name):
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


async def read_body(reader, headers):
    te = hget(headers, "transfer-encoding")
    if te is not None and te.lower() == "chunked":
        body = bytearray()
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return bytes(body), True
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    cl = hget(headers, "content-length")
    if cl:
        return await reader.readexactly(int(cl)), False
    return b"", False


def response(status, body=b"", headers=(), reason="OK"):
    out = ["HTTP/1.1 %d %s" % (status, reason)]
    out += ["%s: %s" % h for h in headers]
    if not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        out.append("Content-Length: %d" % len(body))
    return ("\r\n".join(out) + "\r\n\r\n").encode() + body


async def handle(reader, writer):
    peer = writer.get_extra_info("peername")
    try:
        while True:
            try:
                head = await asyncio.wait_for(read_head(reader), ARGS.keepalive_timeout)
            except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, asyncio.LimitOverrunError):
                return
            method, target, version, headers = head
            body, chunked = await read_body(reader, headers)
            entry = {
                "method": method, "target": target, "version": version, "headers": headers,
                "body_len": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                "chunked": chunked, "t": time.time(), "peer": str(peer),
            }
            log(entry)
            path = target.split("?", 1)[0]
            q = dict(urllib.parse.parse_qsl(target.split("?", 1)[1] if "?" in target else ""))
            if path == "/stall":
                await asyncio.sleep(3600)
                return
            if path == "/close-early":
                return
            if path == "/bad-response":
                writer.write(b"HTTP/1.1 2OO OK\r\n\r\n")
                await writer.drain()
                return
            if path == "/late-body":
                # a faulty server: answers HEAD with a body, and late
                fake = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTOLE"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(fake))
                await writer.drain()
                await asyncio.sleep(0.1)
                writer.write(fake)
                await writer.drain()
                log({"event": "late-body-sent", "t": time.time(), "target": target})
                continue
            if path == "/close-mid":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
                await writer.drain()
                return
            if path in ("/half-close", "/half-close-mid"):
                if path == "/half-close-mid":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
                    await writer.drain()
                writer.write_eof()
                await reader.read()   # until the proxy closes its side
                return
            if path == "/slow":
                await asyncio.sleep(int(q.get("ms", "1000")) / 1000.0)
            if path == "/hop-response":
                # names a header of its own in Connection: a proxy must drop both
                name = q["name"]
                conn = [("Connection", "keep-alive"), ("Connection", name)] if q.get("twice") else \
                    [("Connection", "keep-alive, " + name)]
                writer.write(response(200, b"hop\n", conn + [(name, "1")]))
                await writer.drain()
                continue
            if path.startswith("/status/"):
                st = int(path.split("/")[2])
                writer.write(response(st, b"status\n"))
                await writer.drain()
                continue
            if path == "/big":
                n = int(q.get("bytes", "1000"))
                writer.write(response(200, b"x" * n))
                await writer.drain()
                continue
            if path == "/chunked":
                n, size = int(q.get("n", "5")), int(q.get("size", "10"))
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for i in range(n):
                    chunk = (b"%d" % (i % 10)) * size
                    writer.write(b"%x;ext=1\r\n" % len(chunk) + chunk + b"\r\n")
                writer.write(b"0\r\nX-Trailer: yes\r\n\r\n")
                await writer.drain()
                continue
            if path in ("/sse", "/sse-forever"):
                n = int(q.get("n", "5")) if path == "/sse" else 10 ** 9
                interval = float(q.get("interval", "0.1"))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
                await writer.drain()
                try:
                    for i in range(n):
                        ev = ("id: %d\ndata: {\"i\": %d, \"sent\": %.6f}\n\n" % (i, i, time.time())).encode()
                        writer.write(b"%x\r\n" % len(ev) + ev + b"\r\n")
                        await writer.drain()
                        await asyncio.sleep(interval)
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
                except (ConnectionError, OSError):
                    log({"event": "sse-closed", "t": time.time(), "target": target})
                    return
                continue
            if path == "/ws":
                key = hget(headers, "sec-websocket-key") or ""
                accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
                writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: %s\r\n\r\n" % accept).encode())
                await writer.drain()
                while True:
                    data = await reader.read(65536)
                    if not data:
                        return
                    writer.write(data)
                    await writer.drain()
            # echo
            body_out = json.dumps({
                "method": method, "target": target, "headers": headers, "body_len": len(body),
                "sha256": hashlib.sha256(body).hexdigest(), "chunked": chunked,
            }).encode()
            writer.write(response(200, body_out, [("Content-Type", "application/json")]))
            await writer.drain()
            if (hget(headers, "connection") or "").lower() == "close":
                return
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        return
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    server = await asyncio.start_server(handle, ARGS.host, ARGS.port, limit=1 << 20, reuse_address=True)
    if ARGS.ready_file:
        with open(ARGS.ready_file, "w") as f:
            f.write("ready\n")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log")
    ap.add_argument("--ready-file")
    ap.add_argument("--keepalive-timeout", type=float, default=60.0)
    ARGS = ap.parse_args()
    if ARGS.log:
        LOG = open(ARGS.log, "a", buffering=1)
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
