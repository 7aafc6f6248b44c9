"""A relay in front of llama.cpp's RPC server that caps the memory its devices report.

`claracore worker --mem GB` needs the worker to report less memory than its devices have: the
planner, the pool and llama.cpp's own layer split read the free memory each worker reports.
Upstream's rpc-server dropped its `-m` option, and this llama.cpp's server answers
RPC_CMD_GET_DEVICE_MEMORY with the real device's figures. So the native server listens on a
private loopback port and this relay on the user's address, one thread per client connection.

It speaks ggml-rpc's framing (ggml-rpc.cpp, protocol 7.0) only as far as it must. A request is
`cmd: u8, size: u64 LE, payload`; the commands in `ANSWERED` get `size: u64 LE, payload` back
(rpc_serve_client's switch), the others nothing. The server handles one request at a time, in
order, so a thread that forwards a request and then, for an answered command, its answer keeps
the order the client relies on when it pipelines (ggml-rpc's `send_async`). Every byte goes
through unchanged except:

- GET_DEVICE_MEMORY's answer `free_mem, total_mem`: each at most the device's share of the cap,
  and `free` also less what this relay's clients hold in buffers there (ALLOC_BUFFER answers
  minus FREE_BUFFER, and everything a connection held when it closes, as the server frees it),
  so a second model sees the room the first one left. The cap is split evenly over the devices.
- HELLO's connection capabilities are zeroed both ways: they negotiate RDMA between the two
  ends of one TCP connection, which a relay in between cannot carry.

Payloads stream through in chunks (model weights in SET_TENSOR, results in GET_TENSOR) and are
never held whole. An unknown command closes the connection, with an error naming it: the relay
cannot know where its payload or answer ends. The cap is what the worker reports, not a limit
the server enforces: a client that allocates more than it was told still gets it.
"""

from __future__ import annotations

import enum
import logging
import select
import socket
import struct
import threading
from typing import Final, TypeGuard

log = logging.getLogger(__name__)

#: RPC_PROTO_MAJOR_VERSION this relay's framing is written for (ggml-rpc.h).
PROTOCOL_MAJOR: Final = 7
_CAPS: Final = 24  # RPC_CONN_CAPS_SIZE
_REQUEST = struct.Struct("<BQ")  # cmd, payload size
_ANSWER = struct.Struct("<Q")  # payload size
_MEMORY = struct.Struct("<QQ")  # rpc_msg_get_device_memory_rsp: free_mem, total_mem
_DEVICE = struct.Struct("<I")  # the leading `uint32_t device` of several requests
_ALLOC = struct.Struct("<IQ")  # rpc_msg_alloc_buffer_req: device, size
_ALLOCATED = struct.Struct("<QQ")  # rpc_msg_alloc_buffer_rsp: remote_ptr, remote_size
_BUFFER = struct.Struct("<Q")  # rpc_msg_free_buffer_req: remote_ptr
_SMALL: Final = 64 * 1024  # messages up to this size go out in one send, header and payload together
_CHUNK: Final = 4 * 1024 * 1024  # the streaming buffer of each connection


class Cmd(enum.IntEnum):
    """ggml-rpc.cpp's `enum rpc_cmd` at protocol 7.0 (RPC_CMD_NONE never goes on the wire)."""

    ALLOC_BUFFER = 0
    GET_ALIGNMENT = 1
    GET_MAX_SIZE = 2
    BUFFER_GET_BASE = 3
    FREE_BUFFER = 4
    BUFFER_CLEAR = 5
    SET_TENSOR = 6
    SET_TENSOR_HASH = 7
    GET_TENSOR = 8
    COPY_TENSOR = 9
    GRAPH_COMPUTE = 10
    GET_DEVICE_MEMORY = 11
    INIT_TENSOR = 12
    GET_ALLOC_SIZE = 13
    HELLO = 14
    DEVICE_COUNT = 15
    GRAPH_RECOMPUTE = 16
    MEMSET_TENSOR = 17


#: The commands rpc_serve_client answers; the rest are only forwarded.
ANSWERED: Final = frozenset(
    {
        Cmd.HELLO,
        Cmd.DEVICE_COUNT,
        Cmd.ALLOC_BUFFER,
        Cmd.GET_ALLOC_SIZE,
        Cmd.GET_ALIGNMENT,
        Cmd.GET_MAX_SIZE,
        Cmd.BUFFER_GET_BASE,
        Cmd.SET_TENSOR_HASH,
        Cmd.GET_TENSOR,
        Cmd.COPY_TENSOR,
        Cmd.GET_DEVICE_MEMORY,
    }
)
_KNOWN: Final = frozenset(int(c) for c in Cmd)


class MemoryCap:
    """How much memory each device may report: `total` bytes split evenly over `devices`, less
    what this relay's clients hold there now. Shared by every connection of a relay."""

    def __init__(self, total: int, devices: int) -> None:
        if total <= 0 or devices <= 0:
            raise ValueError(f"a memory cap needs bytes and devices above 0, got {total} and {devices}")
        self.total = total
        self.per_device = total // devices
        self._held: dict[int, int] = {}
        self._lock = threading.Lock()

    def hold(self, device: int, size: int) -> None:
        with self._lock:
            self._held[device] = self._held.get(device, 0) + size

    def release(self, device: int, size: int) -> None:
        with self._lock:
            self._held[device] = max(0, self._held.get(device, 0) - size)

    def held(self, device: int) -> int:
        with self._lock:
            return self._held.get(device, 0)

    def report(self, device: int, free: int, total: int) -> tuple[int, int]:
        """(free, total) for `device` as the worker reports it, from the device's real figures."""
        room = max(0, self.per_device - self.held(device))
        return min(free, room), min(total, self.per_device)


def free_loopback_port() -> int:
    """A port free on 127.0.0.1 now, for the native server behind a relay (which cannot take 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, IPv4 or IPv6 as `host` is (OSError when taken)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    return socket.create_server((host.strip("[]"), port), family=family, backlog=16)


def _recv_exact(sock: socket.socket, size: int) -> bytearray | None:
    """`size` bytes; None at a clean end before the first; ConnectionError at an end midway."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if not n:
            if got == 0:
                return None
            raise ConnectionError(f"closed after {got} of {size} bytes")
        got += n
    return buf


def _stream(src: socket.socket, dst: socket.socket, size: int, buf: memoryview) -> None:
    """Copy `size` bytes from `src` to `dst` through `buf`, one chunk at a time."""
    left = size
    while left:
        n = src.recv_into(buf[: min(left, len(buf))])
        if not n:
            raise ConnectionError(f"closed with {left} of {size} bytes still to come")
        dst.sendall(buf[:n])
        left -= n


def _sized(payload: bytearray | None, shape: struct.Struct) -> TypeGuard[bytearray]:
    """Whether a payload read whole has the size of the struct the relay reads from it."""
    return payload is not None and len(payload) == shape.size


class _Connection:
    """One client and its own connection to the native server, relayed by one thread."""

    def __init__(self, client: socket.socket, upstream: socket.socket, cap: MemoryCap, peer: str) -> None:
        self.client, self.upstream, self.cap, self.peer = client, upstream, cap, peer
        self._buffers: dict[int, tuple[int, int]] = {}  # remote_ptr -> (device, size) held here
        self._chunk: memoryview | None = None

    def run(self) -> None:
        try:
            while self._wait_request() and self._relay_one():
                pass
        except OSError as exc:  # either side went away, or broke the framing
            log.debug("RPC relay: the connection of %s ended: %s", self.peer, exc)
        finally:
            for device, size in self._buffers.values():  # the server frees them with the connection
                self.cap.release(device, size)
            self._buffers.clear()
            self.shutdown()
            self.client.close()
            self.upstream.close()

    def shutdown(self) -> None:
        """End both sides; from another thread too, as it wakes a blocked recv, send or poll
        (the sockets themselves are closed by the connection's own thread, never under it)."""
        for sock in (self.client, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _wait_request(self) -> bool:
        """Whether a request comes next; False when the server ends the connection meanwhile."""
        poller = select.poll()
        poller.register(self.client, select.POLLIN)
        poller.register(self.upstream, select.POLLIN)
        ready = {fd for fd, _ in poller.poll()}
        if self.upstream.fileno() in ready:  # nothing is owed now: this is its end
            log.debug("RPC relay: the server closed the connection of %s", self.peer)
            return False
        return True

    def _wait_answer(self) -> bool:
        """Wait for the server's answer; False when the client leaves first.

        A server busy with another client answers a HELLO only when that one is done; a client
        that gave up meanwhile (rpc.handshake's timeout) must not leave a ghost in its queue.
        """
        poller = select.poll()
        poller.register(self.upstream, select.POLLIN)
        poller.register(self.client, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self.upstream.fileno() in ready:
                return True
            if not self.client.recv(1, socket.MSG_PEEK):
                log.debug("RPC relay: %s left before its answer came", self.peer)
                return False
            poller.unregister(self.client)  # its next request is already here: read it later

    def _relay_one(self) -> bool:
        """Forward one request and, when it has one, its answer; False to end the connection."""
        header = _recv_exact(self.client, _REQUEST.size)
        if header is None:
            return False
        cmd, size = _REQUEST.unpack(header)
        if cmd not in _KNOWN:
            log.error("RPC relay: unknown command %d from %s; closing its connection", cmd, self.peer)
            return False
        payload = self._forward(self.client, self.upstream, header, size)
        if payload is not None:
            payload = self._on_request(Cmd(cmd), payload)
            self.upstream.sendall(header + payload)
        if cmd not in ANSWERED:
            return True
        if not self._wait_answer():
            return False
        answer_header = _recv_exact(self.upstream, _ANSWER.size)
        if answer_header is None:
            return False
        (answer_size,) = _ANSWER.unpack(answer_header)
        answer = self._forward(self.upstream, self.client, answer_header, answer_size)
        if answer is not None:
            rewritten = self._on_answer(Cmd(cmd), payload, answer)
            if rewritten is None:
                return False
            self.client.sendall(answer_header + rewritten)
        return True

    def _forward(
        self, src: socket.socket, dst: socket.socket, header: bytearray, size: int
    ) -> bytearray | None:
        """A small payload read whole (the caller sends it); a large one streamed (None)."""
        if size <= _SMALL:
            data = _recv_exact(src, size) if size else bytearray()
            if data is None:
                raise ConnectionError("closed before the payload")
            return data
        if self._chunk is None:
            self._chunk = memoryview(bytearray(_CHUNK))
        dst.sendall(header)
        _stream(src, dst, size, self._chunk)
        return None

    def _on_request(self, cmd: Cmd, payload: bytearray) -> bytearray:
        if cmd == Cmd.HELLO and len(payload) == _CAPS:
            return bytearray(_CAPS)  # no RDMA through a relay (see the module's docstring)
        if cmd == Cmd.FREE_BUFFER and len(payload) == _BUFFER.size:
            held = self._buffers.pop(_BUFFER.unpack(payload)[0], None)
            if held is not None:
                self.cap.release(*held)
        return payload

    def _on_answer(self, cmd: Cmd, request: bytearray | None, answer: bytearray) -> bytearray | None:
        """The answer to send on (None to close): only GET_DEVICE_MEMORY's figures change."""
        if cmd == Cmd.HELLO and len(answer) == 4 + _CAPS:
            if answer[0] != PROTOCOL_MAJOR:
                log.error(
                    "RPC relay: the server speaks RPC protocol %d.%d, the relay %d.x; closing",
                    answer[0],
                    answer[1],
                    PROTOCOL_MAJOR,
                )
                return None
            return answer[:4] + bytearray(_CAPS)
        if cmd == Cmd.ALLOC_BUFFER and _sized(request, _ALLOC) and len(answer) == _ALLOCATED.size:
            device, _ = _ALLOC.unpack(request)
            ptr, size = _ALLOCATED.unpack(answer)
            if ptr:
                self._buffers[ptr] = (device, size)
                self.cap.hold(device, size)
        if cmd == Cmd.GET_DEVICE_MEMORY and _sized(request, _DEVICE) and len(answer) == _MEMORY.size:
            (device,) = _DEVICE.unpack(request)
            free, total = self.cap.report(device, *_MEMORY.unpack(answer))
            return bytearray(_MEMORY.pack(free, total))
        return answer


class RpcRelay:
    """Listens on host:port (bound at once, so a taken port fails here) and relays each client
    to the native server at `upstream`, capping the memory it reports by `cap`."""

    def __init__(self, host: str, port: int, upstream: tuple[str, int], cap: MemoryCap) -> None:
        self.upstream = upstream
        self.cap = cap
        self._listener = _listen(host, port)
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def alive(self) -> bool:
        """Whether it still accepts clients (started and not closed)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Accept clients in a daemon thread until `close`."""
        self._thread = threading.Thread(target=self._accept, name="rpc-relay", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop accepting and end every relayed connection (both sides)."""
        with self._lock:
            self._closed = True
            connections = list(self._connections)
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        except OSError:
            pass
        self._listener.close()
        for conn in connections:
            conn.shutdown()
        if self._thread is not None:
            self._thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                client, addr = self._listener.accept()
            except OSError:
                if not self._closed:
                    log.exception("RPC relay: accepting clients failed")
                return
            peer = f"{addr[0]}:{addr[1]}"
            threading.Thread(
                target=self._serve, args=(client, peer), name=f"rpc-relay {peer}", daemon=True
            ).start()

    def _serve(self, client: socket.socket, peer: str) -> None:
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError as exc:
            log.error("RPC relay: the RPC server at %s:%d is not there: %s", *self.upstream, exc)
            client.close()
            return
        for sock in (client, upstream):  # ggml-rpc's own sockets: many small messages, in turn
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Connection(client, upstream, self.cap, peer)
        with self._lock:
            if self._closed:
                client.close()
                upstream.close()
                return
            self._connections.add(conn)
        try:
            conn.run()
        finally:
            with self._lock:
                self._connections.discard(conn)
