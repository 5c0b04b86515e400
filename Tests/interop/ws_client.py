#!/usr/bin/env python3
"""Python `websockets` client against our WebSocket server (run by WebSocketInteropTests).

usage: ws_client.py PORT LIMITED_PORT
  PORT          our server, echoing every message; "close-me" makes it close with 1000
  LIMITED_PORT  our server with a small message size limit (oversize -> 1009)
Exits 0 when every check passed; prints one line per check.
"""
import asyncio
import base64
import os
import socket
import struct
import sys

try:
    import websockets
    from websockets.asyncio.client import connect
except ImportError:
    print("FAIL: python3 cannot import 'websockets'; install it with: python3 -m pip install websockets")
    sys.exit(3)

failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else " " + str(detail)), flush=True)
    if not ok:
        failures.append(name)


async def echo_checks(port):
    url = f"ws://127.0.0.1:{port}/echo?from_seq=7"
    async with connect(url, max_size=None, compression=None) as ws:
        for size in [0, 125, 126, 65535, 65536, 1 << 20]:
            text = "x" * size
            await ws.send(text)
            got = await ws.recv()
            check(f"text echo {size}", got == text, len(got))
            data = os.urandom(size)
            await ws.send(data)
            got = await ws.recv()
            check(f"binary echo {size}", got == data, len(got))
        # Fragmented messages: an iterable is sent as one message in several frames.
        await ws.send(["Hello, ", "frag", "mented ✓"])
        got = await ws.recv()
        check("fragmented text", got == "Hello, fragmented ✓", got)
        await ws.send([b"\x00" * 70000, b"\x01" * 10])
        got = await ws.recv()
        check("fragmented binary", got == b"\x00" * 70000 + b"\x01" * 10, len(got))
        pong = await ws.ping(b"ping-data")
        latency = await asyncio.wait_for(pong, 5)
        check("ping answered with pong", latency >= 0)
        await ws.close(1000, "done")
        check("client close 1000 echoed", ws.close_code == 1000, ws.close_code)

    async with connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
        await ws.send("close-me")
        try:
            await asyncio.wait_for(ws.recv(), 5)
            check("server close 1000", False, "got a message instead of a close")
        except websockets.ConnectionClosedOK as closed:
            check("server close 1000", closed.rcvd is not None and closed.rcvd.code == 1000, closed)


async def oversize_check(port):
    async with connect(f"ws://127.0.0.1:{port}/", max_size=None, compression=None) as ws:
        await ws.send(b"y" * 5000)
        try:
            await asyncio.wait_for(ws.recv(), 5)
            check("oversize -> 1009", False, "message echoed")
        except websockets.ConnectionClosed as closed:
            check("oversize -> 1009", closed.rcvd is not None and closed.rcvd.code == 1009, closed)


def raw_connect(port):
    """A hand-made handshake, so we can then send frames `websockets` refuses to produce."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed during handshake")
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, head.split(b"\r\n\r\n", 1)[1]


def read_close_code(s, buffered):
    data = buffered
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    # Expect exactly one frame: an unmasked close.
    if len(data) < 4 or data[0] != 0x88:
        return None, data
    length = data[1] & 0x7F
    code = struct.unpack("!H", data[2:4])[0] if length >= 2 else None
    return code, data


def masked(opcode, payload, fin=True):
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + key + body


def violation_checks(port):
    cases = [
        ("unmasked frame -> 1002", bytes([0x81, 0x02]) + b"hi", 1002),
        ("reserved bit -> 1002", bytes([0xC1]) + masked(1, b"hi")[1:], 1002),
        ("unknown opcode -> 1002", masked(3, b""), 1002),
        ("fragmented ping -> 1002", masked(9, b"", fin=False), 1002),
        ("continuation without start -> 1002", masked(0, b"x"), 1002),
        ("invalid UTF-8 -> 1007", masked(1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"), 1007),
        ("bad close code -> 1002", masked(8, struct.pack("!H", 1005)), 1002),
        ("client close 1000 (raw) echoed", masked(8, struct.pack("!H", 1000)), 1000),
    ]
    for name, frame, expected in cases:
        s, rest = raw_connect(port)
        s.sendall(frame)
        code, data = read_close_code(s, rest)
        check(name, code == expected, (code, data[:16]))
        s.close()


async def main():
    port, limited_port = int(sys.argv[1]), int(sys.argv[2])
    await echo_checks(port)
    await oversize_check(limited_port)
    violation_checks(port)
    print(f"{len(failures)} failed", flush=True)
    sys.exit(1 if failures else 0)


asyncio.run(main())
