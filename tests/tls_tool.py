#!/usr/bin/python3
"""TLS client chores for the C tests, with Python's ssl (OpenSSL): server certificates are the
tests' own and are not verified.

  tls_tool.py hello OUT                      write a real ClientHello (the first flight) to OUT
  tls_tool.py handshakes PORT CERT KEY N     N full handshakes in a row to 127.0.0.1:PORT, each
                                             presenting CERT/KEY and asking GET /health; prints
                                             "handshakes <number answered 200>"
  tls_tool.py proxied-health PORT CERT KEY   a PROXY v1 header (source 192.0.2.7:4444) sent in one
                                             segment with the ClientHello, then GET /health;
                                             prints the status line
  tls_tool.py close-notify PORT CERT KEY     GET /health, then read to the end of the stream;
                                             prints "close_notify" when the session ended with
                                             one, "cut" when the stream ended without it
"""
import socket
import ssl
import sys

HEALTH = b"GET /health HTTP/1.1\r\nHost: relay\r\n\r\n"


def context(cert=None, key=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def first_flight(tls, out):
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def hello(path):
    incoming, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    with open(path, "wb") as f:
        f.write(first_flight(context().wrap_bio(incoming, out), out))


def handshakes(port, cert, key, n):
    ctx, ok = context(cert, key), 0
    for _ in range(n):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
        s.sendall(HEALTH)
        data = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
        ok += data.startswith(b"HTTP/1.1 200")
        s.close()
    print("handshakes", ok)


def proxied_health(port, cert, key):
    incoming, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context(cert, key).wrap_bio(incoming, out)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"PROXY TCP4 192.0.2.7 198.51.100.1 4444 9450\r\n" + first_flight(tls, out))

    def pump():
        pending = out.read()
        if pending:
            s.sendall(pending)
        got = s.recv(65536)
        if not got:
            raise SystemExit("closed by the relay")
        incoming.write(got)

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pump()
    tls.write(HEALTH)
    s.sendall(out.read())
    data = b""
    while b"}" not in data:
        try:
            data += tls.read(4096)
        except ssl.SSLWantReadError:
            pump()
    print(data.decode().split("\r\n")[0])


def close_notify(port, cert, key):
    ctx = context(cert, key)
    # Some Python builds ignore an end of stream without close_notify by default.
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), suppress_ragged_eofs=False)
    s.sendall(HEALTH)
    try:
        while s.recv(4096):
            pass
        print("close_notify")
    except ssl.SSLError as e:
        # SSLEOFError, or a plain SSLError naming the unexpected EOF (the library's wording)
        if not isinstance(e, ssl.SSLEOFError) and "UNEXPECTED_EOF" not in str(e):
            raise
        print("cut")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "hello":
        hello(args[0])
    elif cmd == "handshakes":
        handshakes(int(args[0]), args[1], args[2], int(args[3]))
    elif cmd == "proxied-health":
        proxied_health(int(args[0]), args[1], args[2])
    elif cmd == "close-notify":
        close_notify(int(args[0]), args[1], args[2])
    else:
        sys.exit(f"unknown command {cmd}")
