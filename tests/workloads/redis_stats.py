#!/usr/bin/env python3
"""Reads redis-server's own traffic counters with one raw INFO stats request.

Prints {"connections", "input_bytes", "output_bytes", "request_bytes", "reply_bytes"}:
the server's counters at the moment it ran this INFO (this request already read,
its reply not yet written), and this probe's own request and reply sizes, so a
caller can subtract the probes from a before/after difference exactly.
"""
import json
import socket
import sys

REQUEST = b"*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n"

with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as s:
    s.sendall(REQUEST)
    buf = b""
    while b"\r\n" not in buf:
        buf += s.recv(65536)
    header, rest = buf.split(b"\r\n", 1)
    size = int(header[1:])
    while len(rest) < size + 2:
        rest += s.recv(65536)
    reply = header + b"\r\n" + rest
stats = dict(
    line.split(":", 1) for line in rest[:size].decode().splitlines() if ":" in line
)
print(json.dumps({
    "connections": int(stats["total_connections_received"]),
    "input_bytes": int(stats["total_net_input_bytes"]),
    "output_bytes": int(stats["total_net_output_bytes"]),
    "request_bytes": len(REQUEST),
    "reply_bytes": len(reply),
}))
