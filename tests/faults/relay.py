#!/usr/bin/env python3
"""A fault-injecting TCP relay (tc netem is not available here).

    relay.py --listen HOST:PORT --to HOST:PORT --control /path/to/socket

Forwards every accepted connection to --to, both directions, and applies
the current fault to every byte it forwards, old connections included:

    {"mode": "pass"}                              forward as is
    {"mode": "delay", "ms": 50, "jitter": 30}    each read is held ms + U(0, jitter) ms (order kept)
    {"mode": "stall"}                             hold everything (TCP stays up) until the mode changes
    {"mode": "trickle", "bps": 200}               at most bps bytes per second (all connections together)

Any mode may name the connections it applies to, by the order in which
they were accepted (0 is the first): {"mode": "stall", "conns": [0]}
stalls the first connection only; the others pass.

Control: connect to the UNIX socket, send one JSON object per line, read
"ok <n_connections>" back. {"stats": true} answers the counters as JSON
(open_ids: the connections open now, by their numbers).
"""
import argparse
import asyncio
import json
import os
import random
import socket
import time

MODE = {"mode": "pass"}
PASS = {"mode": "pass"}
CHANGED = None  # asyncio.Event, set (and replaced) on every mode change
STATS = {"conns": 0, "open": 0, "bytes": 0, "open_ids": []}


def mode_changed():
    global CHANGED
    old = CHANGED
    CHANGED = asyncio.Event()
    old.set()


def mode_for(idx):
    """The current fault, if it applies to connection idx."""
    m = MODE
    return m if "conns" not in m or idx in m["conns"] else PASS


async def pump(reader, writer, idx):
    """Read as fast as the source sends; deliver under the current fault."""
    queue = asyncio.Queue()
    last_due = 0.0

    async def rd():
        nonlocal last_due
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                m = mode_for(idx)
                due = time.monotonic()
                if m["mode"] == "delay":
                    due += (m.get("ms", 0) + random.uniform(0, m.get("jitter", 0))) / 1000.0
                due = max(due, last_due)
                last_due = due
                await queue.put((due, data))
        except (ConnectionError, OSError):
            pass
        await queue.put((0, None))

    async def wr():
        try:
            while True:
                due, data = await queue.get()
                if data is None:
                    break
                while True:
                    m = mode_for(idx)
                    if m["mode"] == "stall":
                        await CHANGED.wait()
                        continue
                    delay = due - time.monotonic()
                    if m["mode"] == "delay" and delay > 0:
                        try:
                            await asyncio.wait_for(CHANGED.wait(), delay)
                        except asyncio.TimeoutError:
                            pass
                        continue
                    break
                while data:
                    m = mode_for(idx)
                    if m["mode"] == "stall":
                        await CHANGED.wait()
                        continue
                    if m["mode"] == "trickle":
                        # paced by the clock: at most bps bytes per elapsed second
                        if m.get("_t0") is None:
                            m["_t0"], m["_sent"] = time.monotonic(), 0
                        allowed = int(m.get("bps", 100) * (time.monotonic() - m["_t0"])) - m["_sent"]
                        if allowed <= 0:
                            await asyncio.sleep(0.01)
                            continue
                        piece, data = data[:allowed], data[allowed:]
                        writer.write(piece)
                        await writer.drain()
                        m["_sent"] += len(piece)
                        STATS["bytes"] += len(piece)
                        continue
                    writer.write(data)
                    await writer.drain()
                    STATS["bytes"] += len(data)
                    data = b""
            if writer.can_write_eof():
                writer.write_eof()   # pass a half-close on
        except (ConnectionError, OSError):
            pass

    await asyncio.gather(rd(), wr())


async def handle(creader, cwriter):
    idx = STATS["conns"]
    STATS["conns"] += 1
    STATS["open"] += 1
    STATS["open_ids"].append(idx)
    try:
        host, port = ARGS.to.rsplit(":", 1)
        try:
            ureader, uwriter = await asyncio.open_connection(host, int(port))
        except OSError:
            cwriter.close()
            return
        for w in (cwriter, uwriter):
            s = w.get_extra_info("socket")
            if s is not None:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(pump(creader, uwriter, idx), pump(ureader, cwriter, idx))
        for w in (cwriter, uwriter):
            w.close()
    finally:
        STATS["open"] -= 1
        STATS["open_ids"].remove(idx)


async def control(reader, writer):
    global MODE
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = json.loads(line)
            if cmd.get("stats"):
                writer.write((json.dumps(STATS) + "\n").encode())
            else:
                MODE = cmd
                mode_changed()
                writer.write(b"ok %d\n" % STATS["open"])
            await writer.drain()
    finally:
        writer.close()


async def main():
    global CHANGED
    CHANGED = asyncio.Event()
    host, port = ARGS.listen.rsplit(":", 1)
    srv = await asyncio.start_server(handle, host, int(port), reuse_address=True)
    if os.path.exists(ARGS.control):
        os.unlink(ARGS.control)
    ctl = await asyncio.start_unix_server(control, ARGS.control)
    async with srv, ctl:
        await asyncio.gather(srv.serve_forever(), ctl.serve_forever())


def command(path, **cmd):
    """From the bench: set the relay's mode (or read its stats)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(path)
    try:
        s.sendall((json.dumps(cmd) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            d = s.recv(4096)
            if not d:
                break
            buf += d
        return buf.decode().strip()
    finally:
        s.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--to", required=True)
    ap.add_argument("--control", required=True)
    ARGS = ap.parse_args()
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
