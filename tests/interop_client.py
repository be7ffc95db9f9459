#!/usr/bin/python3
"""Interop check: drive a running dig-relay with a real third-party WebSocket client
(Debian's python3-websockets), through the sequence a DIG node goes through.

Usage: interop_client.py <ws-url> <observed-host>
  ws-url         e.g. ws://127.0.0.1:9450 or ws://[::1]:9450
  observed-host  how the relay should write this client's address, "127.0.0.1" or "[::1]"

Prints "interop ok" and exits 0 when every step matched; otherwise prints the failing step and
exits 1. The client offers permessage-deflate (websockets' default), which the relay must decline.
"""
import asyncio
import json
import sys

import websockets

NET = "DIG_MAINNET"
WAIT = 5.0


def compact(obj):
    """JSON as serde writes it (the live client's encoding)."""
    return json.dumps(obj, separators=(",", ":"))


def check(cond, what):
    if not cond:
        raise AssertionError(what)


async def recv_text(ws):
    return await asyncio.wait_for(ws.recv(), WAIT)


async def recv_type(ws, kind):
    """Next message whose type is `kind`, skipping others (e.g. peer notices)."""
    while True:
        raw = await recv_text(ws)
        msg = json.loads(raw)
        if msg.get("type") == kind:
            return raw, msg


async def expect_exact(ws, want, what):
    raw = await recv_text(ws)
    text = raw.decode() if isinstance(raw, bytes) else raw
    check(text == want, f"{what}: expected {want}, got {text}")


def register(peer_id, listen_addrs=None):
    msg = {"type": "register", "peer_id": peer_id, "network_id": NET, "protocol_version": 1}
    if listen_addrs:
        msg["listen_addrs"] = listen_addrs
    return compact(msg)


async def run(url, observed):
    a = await websockets.connect(url, open_timeout=WAIT)
    check(a.response_headers.get("Sec-WebSocket-Extensions") is None, "relay accepted an extension")
    check(a.subprotocol is None, "relay chose a subprotocol")

    # register + get_peers back to back, as the live client does
    await a.send(register("py-a"))
    await a.send(compact({"type": "get_peers", "network_id": NET}))
    await expect_exact(a, '{"type":"register_ack","success":true,"message":"registered","connected_peers":1}',
                       "register ack")
    _, peers = await recv_type(a, "peers")
    check([p["peer_id"] for p in peers["peers"]] == ["py-a"], f"peers lists the requester: {peers}")

    b = await websockets.connect(url, open_timeout=WAIT)
    await b.send(register("py-b", ["[::]:9445"]))
    await expect_exact(b, '{"type":"register_ack","success":true,"message":"registered","connected_peers":2}',
                       "second register ack")
    _, pc = await recv_type(a, "peer_connected")
    check(pc["peer"]["peer_id"] == "py-b", f"peer_connected names py-b: {pc}")
    check(pc["peer"]["addresses"] == [f"{observed}:9445"], f"dialable address from the observed IP: {pc}")

    # relay_message: text frame with a spoofed from, then the same as a binary frame
    payload = list(range(256)) * 64
    forwarded = compact({"type": "relay_message", "from": "py-a", "to": "py-b", "payload": payload, "seq": 1})
    await a.send(compact({"type": "relay_message", "from": "spoof", "to": "py-b", "payload": payload, "seq": 1}))
    await expect_exact(b, forwarded, "16 KiB relay_message")
    await a.send(forwarded.encode())
    await expect_exact(b, forwarded, "relay_message sent as a binary frame")

    # a message split into fragments by the client library
    await a.send(iter(['{"type":"ping",', '"timestamp":', '9}']))
    await expect_exact(a, '{"type":"pong","timestamp":9}', "fragmented ping")

    # JSON keepalive and WebSocket-level ping
    await a.send(compact({"type": "ping", "timestamp": 1700000000}))
    await expect_exact(a, '{"type":"pong","timestamp":1700000000}', "pong")
    pong_waiter = await a.ping(b"interop")
    await asyncio.wait_for(pong_waiter, WAIT)

    # broadcast and hole punching
    await b.send(compact({"type": "broadcast", "from": "py-b", "payload": [7], "exclude": []}))
    await expect_exact(a, '{"type":"broadcast","from":"py-b","payload":[7],"exclude":[]}', "broadcast")
    await a.send(compact({"type": "hole_punch_request", "peer_id": "py-a", "target_peer_id": "py-b",
                          "external_addr": "203.0.113.9:9444"}))
    await expect_exact(b, '{"type":"hole_punch_coordinate","peer_id":"py-a","external_addr":"203.0.113.9:9444"}',
                       "hole_punch_coordinate")
    await b.send(compact({"type": "hole_punch_result", "peer_id": "py-a", "success": True}))
    await expect_exact(a, '{"type":"hole_punch_result","peer_id":"py-a","success":true}', "hole_punch_result")

    # errors keep the connection open
    await a.send("{not json")
    _, err = await recv_type(a, "error")
    check(err["code"] == 2, f"bad JSON is error 2: {err}")
    await a.send(compact({"type": "relay_message", "from": "py-a", "to": "ghost", "payload": [1], "seq": 2}))
    _, err = await recv_type(a, "error")
    check(err["code"] == 3, f"unknown target is error 3: {err}")

    # unregister: the other side hears of it, the leaver is closed
    await b.send(compact({"type": "unregister", "peer_id": "py-b"}))
    await expect_exact(a, '{"type":"peer_disconnected","peer_id":"py-b"}', "peer_disconnected")
    await asyncio.wait_for(b.wait_closed(), WAIT)

    # a clean close handshake
    await a.close(code=1000)
    check(a.close_code == 1000, f"close echoed with 1000, got {a.close_code}")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    try:
        asyncio.run(asyncio.wait_for(run(sys.argv[1], sys.argv[2]), 60))
    except Exception as e:  # report any failure as one line for the C test to show
        print(f"interop FAILED: {type(e).__name__}: {e}")
        return 1
    print("interop ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
