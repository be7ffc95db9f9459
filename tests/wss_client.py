#!/usr/bin/python3
"""A DIG node's session over wss:// for tests that put TLS in front of the relay (a terminator,
or the relay's own): connect with TLS from a chosen local address (the certificate is the
test's own, so it is not verified), optionally presenting a client certificate, register
advertising [::]:9444, fetch peers, and print this peer's dialable addresses as the relay
listed them, then a 16 KiB relay_message to itself round-tripped.

Usage: wss_client.py <wss-url> <local-address> <peer-id> [--cert PEM --key PEM]
                     [--expect-error CODE]
Prints "addresses <json>" and "echo ok", exits 0. With --expect-error the register must be
refused: register_ack{success:false}, then error{code:CODE} with the same message, then the
close; prints "refused CODE <message>". Anything else is a failure (exit 1).
"""
import argparse
import asyncio
import json
import ssl
import sys

import websockets

NET = "DIG_MAINNET"
WAIT = 10.0


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


async def recv_type(ws, kind):
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        if msg.get("type") == kind:
            return msg


async def run(url, local, peer_id, cert, key, expect_error):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    ws = await websockets.connect(url, ssl=ctx, local_addr=(local, 0), open_timeout=WAIT,
                                  compression=None, max_size=None)
    await ws.send(compact({"type": "register", "peer_id": peer_id, "network_id": NET,
                           "protocol_version": 1, "listen_addrs": ["[::]:9444"]}))
    ack = await recv_type(ws, "register_ack")
    if expect_error is not None:
        err = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        if ack["success"] or err != {"type": "error", "code": expect_error,
                                     "message": ack["message"]}:
            raise AssertionError(f"expected a refusal with code {expect_error}: {ack} {err}")
        try:
            extra = await asyncio.wait_for(ws.recv(), WAIT)
            raise AssertionError(f"still open after the refusal: {extra}")
        except websockets.ConnectionClosed:
            pass
        print(f"refused {expect_error} {ack['message']}", flush=True)
        return
    if not ack["success"]:
        raise AssertionError(f"register refused: {ack}")
    await ws.send(compact({"type": "get_peers", "network_id": NET}))
    peers = await recv_type(ws, "peers")
    mine = [p for p in peers["peers"] if p["peer_id"] == peer_id]
    print("addresses " + compact(mine[0]["addresses"] if mine else None), flush=True)
    payload = [i % 256 for i in range(16384)]
    await ws.send(compact({"type": "relay_message", "from": peer_id, "to": peer_id,
                           "payload": payload, "seq": 1}))
    echo = await recv_type(ws, "relay_message")
    if echo["payload"] != payload:
        raise AssertionError("relayed payload changed")
    print("echo ok", flush=True)
    await ws.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("local")
    parser.add_argument("peer_id")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--expect-error", type=int)
    args = parser.parse_args()
    try:
        asyncio.run(run(args.url, args.local, args.peer_id, args.cert, args.key,
                        args.expect_error))
    except Exception as e:  # any failure is reported, not raised
        print(f"failed: {type(e).__name__}: {e}")
        sys.exit(1)
