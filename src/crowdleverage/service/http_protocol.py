"""The HTTP protocol of the API workers: uvicorn's own (httptools when installed, else h11)
with TCP_NODELAY on every connection.

With more than one worker uvicorn binds the listening socket itself (`socket.socket(family)`,
protocol number 0), and asyncio sets TCP_NODELAY only on sockets whose protocol number is TCP,
so the accepted connections kept Nagle's algorithm. A response goes out in two writes (the
head, then the body): the body waited for the client's ACK of the head, which a client in
request-response rhythm delays by ~40 ms. Every keep-alive request cost ~44 ms whatever the
server's CPU (bench/api.py: 355 req/s with 16 connections, the server mostly idle).
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.auto import AutoHTTPProtocol


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """TCP_NODELAY on a TCP transport's socket (a Unix socket is left as it is)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayHTTP(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        set_nodelay(transport)
        super().connection_made(transport)
