"""The gunicorn worker `workbench serve` uses: gthread with read deadlines, so slow clients cannot stall it.

    gunicorn --worker-class workbench.gworker.DeadlineWorker "workbench.app:wsgi()"

gunicorn's gthread worker hands a connection to a thread once its first bytes arrive, then reads the
rest of the request with a blocking socket and no timeout: eight clients that never finish their
headers held every thread and /api/v1/health timed out. Here every read of a request waits at most
READ_IDLE_S for the next bytes and the whole request (headers and body) must arrive within
REQUEST_READ_S; a client that misses either is disconnected and its thread freed.
"""

from __future__ import annotations

import socket
import time

from gunicorn.workers.gthread import TConn, ThreadWorker

READ_IDLE_S = 5.0       # s without a byte in the middle of a request: the client is gone or stalling
REQUEST_READ_S = 60.0   # s for a whole request to arrive: a 64 MiB upload at ~1 MB/s


class DeadlineSocket(socket.socket):
    """A socket whose reads honour an idle timeout and an absolute deadline (None: no deadline)."""

    deadline: float | None = None

    def recv(self, size, *flags):
        self._arm()
        return super().recv(size, *flags)

    def recv_into(self, buffer, *args):
        self._arm()
        return super().recv_into(buffer, *args)

    def _arm(self) -> None:
        if self.deadline is None:
            return
        if time.monotonic() > self.deadline:
            raise TimeoutError("the request did not arrive within its read deadline")
        self.settimeout(READ_IDLE_S)  # also bounds each send of the answer to a client that stopped reading


class DeadlineWorker(ThreadWorker):
    """ThreadWorker whose connections read through DeadlineSocket, the deadline set per request."""

    def accept(self, listener):
        try:
            client, address = listener.accept()
        except BlockingIOError:
            return
        self.nr_conns += 1
        wrapped = DeadlineSocket(client.family, client.type, client.proto, fileno=client.detach())
        wrapped.setblocking(True)
        self.enqueue_req(TConn(self.cfg, wrapped, address, listener.getsockname()))

    def handle(self, conn):
        if isinstance(conn.sock, DeadlineSocket):
            conn.sock.deadline = time.monotonic() + REQUEST_READ_S
        try:
            return super().handle(conn)
        finally:
            if isinstance(conn.sock, DeadlineSocket):
                conn.sock.deadline = None  # idle keep-alive connections are the poller's business
