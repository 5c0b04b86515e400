#!/usr/bin/env python3
"""Python `websockets` server for our WebSocket client (run by WebSocketInteropTests).

Prints "PORT <n>" once listening. The path picks the behaviour:
  /echo       echo every message
  /fragments  send one fragmented text message, then echo
  /ping       ping the client, report whether the pong came back, then echo
  /close      close with 1000 "bye"
  /masked     send a masked frame (servers must not)     -> client fails with 1002
  /badutf8    send a text frame that is not UTF-8         -> client fails with 1007
  /oversize   send a message above the client's limit     -> client fails with 1009
  /quit       print "RESULT <path> <code>" for every connection and exit
"""
import asyncio
import sys

try:
    import websockets
    from websockets.asyncio.server import serve
except ImportError:
    print("FAIL: python3 cannot import 'websockets'; install it with: python3 -m pip install websockets", flush=True)
    sys.exit(3)

results = []
done = asyncio.Event()


async def handler(ws):
    path = ws.request.path.split("?")[0]
    if path == "/quit":
        done.set()
        return
    try:
        if path == "/fragments":
            await ws.send(["one ", "two ", "three"])
        elif path == "/ping":
            pong = await ws.ping(b"py-ping")
            await asyncio.wait_for(pong, 5)
            await ws.send("pong-received")
        elif path == "/close":
            await ws.close(1000, "bye")
        elif path in ("/masked", "/badutf8"):
            raw = (bytes([0x81, 0x82, 1, 2, 3, 4, 0x69 ^ 1, 0x69 ^ 2]) if path == "/masked"
                   else bytes([0x81, 0x02, 0xC3, 0x28]))
            ws.transport.write(raw)
        elif path == "/oversize":
            await ws.send(b"z" * (2 << 20))
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass
    await ws.wait_closed()
    code = ws.close_code
    results.append((path, code))


async def main():
    async with serve(handler, "127.0.0.1", 0, max_size=None, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await done.wait()
        await asyncio.sleep(0.2)
    for path, code in results:
        print(f"RESULT {path} {code}", flush=True)


asyncio.run(main())
