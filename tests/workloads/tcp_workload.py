#!/usr/bin/env python3
"""Loopback TCP traffic whose byte counts are known exactly, from two processes.

  tcp_workload.py server            listens on two loopback ports, prints
                                    {"pid", "port", "other_port"} then serves until
                                    stdin closes; then prints its own counts.
  tcp_workload.py client PORT OTHER runs every scenario against PORT and one plain
                                    connection against OTHER; prints its own counts.

Counts are what each process itself sent and consumed, per peer port, measured
by the application (return values of write/send/sendfile/read/recv/splice).
Paths: write, send, sendmsg, sendfile; read, recv, splice; MSG_PEEK (counts 0).
"""
import ctypes
import json
import os
import select
import socket
import sys
import tempfile

PLAIN_UP = 1_234_567
PLAIN_DOWN = 654_321
SENDFILE_UP = 2_000_000
PEEK_UP = 10_000
PEEK_LEN = 5_000
SHORT_CONNS = 20
SHORT_REQ = 100
SHORT_RESP = 50


def set_comm(name):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME


class Counts:
    def __init__(self):
        self.by_port = {}

    def add(self, port, sent=0, recv=0):
        c = self.by_port.setdefault(str(port), {"sent": 0, "recv": 0})
        c["sent"] += sent
        c["recv"] += recv

    def total(self):
        return {
            "sent": sum(c["sent"] for c in self.by_port.values()),
            "recv": sum(c["recv"] for c in self.by_port.values()),
        }


def recv_exact(sock, n, counts, port):
    got = 0
    while got < n:
        data = sock.recv(n - got)
        if not data:
            raise RuntimeError("peer closed early")
        got += len(data)
    counts.add(port, recv=got)


def drain_recv(sock, counts, port):
    while True:
        data = sock.recv(65536)
        if not data:
            return
        counts.add(port, recv=len(data))


def drain_read(fd, counts, port):
    while True:
        data = os.read(fd, 65536)
        if not data:
            return
        counts.add(port, recv=len(data))


def send_all(sock, data, counts, port):
    view = memoryview(data)
    while view:
        n = sock.send(view)
        counts.add(port, sent=n)
        view = view[n:]


def write_all(fd, data, counts, port):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        counts.add(port, sent=n)
        view = view[n:]


def serve_one(conn, port, counts):
    mode = conn.recv(1)
    counts.add(port, recv=len(mode))
    if mode == b"P":  # recv until EOF, then answer
        drain_recv(conn, counts, port)
        send_all(conn, b"d" * PLAIN_DOWN, counts, port)
    elif mode == b"S":  # consume with splice(2) only
        r, w = os.pipe()
        null = os.open(os.devnull, os.O_WRONLY)
        while True:
            n = os.splice(conn.fileno(), w, 1 << 16)
            if n == 0:
                break
            counts.add(port, recv=n)
            left = n
            while left:
                left -= os.splice(r, null, left)
        for fd in (r, w, null):
            os.close(fd)
        send_all(conn, b"ok", counts, port)
    elif mode == b"K":  # peek first: consumes nothing
        peeked = conn.recv(PEEK_LEN, socket.MSG_PEEK | socket.MSG_WAITALL)
        assert len(peeked) == PEEK_LEN, len(peeked)
        drain_recv(conn, counts, port)
    elif mode == b"H":  # one short request/response
        recv_exact(conn, SHORT_REQ, counts, port)
        send_all(conn, b"r" * SHORT_RESP, counts, port)
    conn.close()


def server():
    set_comm("nr-server")
    counts = Counts()
    listeners = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        listeners.append(s)
    ports = [s.getsockname()[1] for s in listeners]
    print(json.dumps({"pid": os.getpid(), "port": ports[0], "other_port": ports[1]}), flush=True)
    while True:
        ready, _, _ = select.select(listeners + [sys.stdin], [], [])
        if sys.stdin in ready and not sys.stdin.readline():
            break
        for s in listeners:
            if s in ready:
                conn, _ = s.accept()
                serve_one(conn, s.getsockname()[1], counts)
    for s in listeners:
        s.close()
    print(json.dumps({"pid": os.getpid(), "by_port": counts.by_port, **counts.total()}), flush=True)


def client(port, other_port):
    set_comm("nr-client")
    counts = Counts()

    def connect(p):
        return socket.create_connection(("127.0.0.1", p))

    for p in (port, other_port):  # write() up, read() down
        c = connect(p)
        write_all(c.fileno(), b"P" + b"u" * PLAIN_UP, counts, p)
        c.shutdown(socket.SHUT_WR)
        drain_read(c.fileno(), counts, p)
        c.close()

    with tempfile.TemporaryFile() as f:  # sendfile() up
        f.write(b"f" * SENDFILE_UP)
        f.flush()
        c = connect(port)
        send_all(c, b"S", counts, port)
        offset = 0
        while offset < SENDFILE_UP:
            n = os.sendfile(c.fileno(), f.fileno(), offset, SENDFILE_UP - offset)
            counts.add(port, sent=n)
            offset += n
        c.shutdown(socket.SHUT_WR)
        drain_recv(c, counts, port)
        c.close()

    c = connect(port)  # sendmsg() up, the server peeks first
    n = c.sendmsg([b"K", b"k" * PEEK_UP])
    counts.add(port, sent=n)
    assert n == PEEK_UP + 1
    c.shutdown(socket.SHUT_WR)
    drain_recv(c, counts, port)
    c.close()

    short_ports = []
    for _ in range(SHORT_CONNS):
        c = connect(port)
        short_ports.append(c.getsockname()[1])
        send_all(c, b"H" + b"q" * SHORT_REQ, counts, port)
        recv_exact(c, SHORT_RESP, counts, port)
        c.close()

    print(json.dumps({"pid": os.getpid(), "by_port": counts.by_port, "short_ports": short_ports, **counts.total()}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["server"]:
        server()
    elif sys.argv[1:2] == ["client"] and len(sys.argv) == 4:
        client(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(__doc__)
