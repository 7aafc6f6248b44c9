"""A loopback stand-in for llama.cpp's RPC server: ggml-rpc's framing with canned answers.

It speaks what claracore/runtime/rpc_relay.py relies on, read from ggml-rpc.cpp at protocol
7.0: a request is `cmd: u8, size: u64 LE, payload`, and the commands rpc_serve_client answers
get `size: u64 LE, payload` back. It serves one connection at a time, as the real one does, and
records every request frame and every answer frame byte for byte, so a test can hold what went
through a relay against what was sent. Answers are made up but deterministic: GET_TENSOR's
request is `offset: u64, size: u64` here and gets `size` bytes of a seeded stream.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
from dataclasses import dataclass, field

from claracore.runtime.rpc_relay import ANSWERED, Cmd

REQUEST = struct.Struct("<BQ")
SIZE = struct.Struct("<Q")


def frame(cmd: int, payload: bytes = b"") -> bytes:
    """A request as ggml-rpc sends it."""
    return REQUEST.pack(cmd, len(payload)) + payload


def recv_exact(sock: socket.socket, size: int) -> bytes:
    """`size` bytes, or fewer when the peer closes first."""
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(min(size - got, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_answer(sock: socket.socket) -> bytes:
    """One answer frame's payload (b"" when the connection closed)."""
    head = recv_exact(sock, SIZE.size)
    if len(head) < SIZE.size:
        return b""
    return recv_exact(sock, SIZE.unpack(head)[0])


def tensor_bytes(offset: int, size: int) -> bytes:
    """The stand-in's GET_TENSOR answer: `size` bytes of a stream seeded by `offset`."""
    return random.Random(offset).randbytes(size)


@dataclass
class Connection:
    """What one connection carried: request frames in, answer frames out, whether it ended."""

    requests: list[bytes] = field(default_factory=list)
    answers: list[bytes] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)


class RpcStub:
    """The stand-in server on a free loopback port (`endpoint`); `close()` when done.

    `memory` is each device's real (free, total); `caps` is what HELLO's answer advertises;
    `answer_hello=False` leaves a HELLO unanswered, as a server busy with another client does.
    `close_after` ends a connection itself after that many requests.
    """

    def __init__(
        self,
        memory: list[tuple[int, int]],
        *,
        caps: bytes = bytes(24),
        version: tuple[int, int, int] = (7, 0, 0),
        answer_hello: bool = True,
        close_after: int | None = None,
    ) -> None:
        self.memory, self.caps, self.version = memory, caps, version
        self.answer_hello, self.close_after = answer_hello, close_after
        self.connections: list[Connection] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._next_ptr = 0x10000
        self._thread = threading.Thread(target=self._serve, name="rpc-stub", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", int(self._listener.getsockname()[1])

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._thread.join(10)

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            conn = Connection()
            self.connections.append(conn)
            with sock:
                try:
                    self._serve_one(sock, conn)
                except OSError:
                    pass
            conn.ended.set()

    def _serve_one(self, sock: socket.socket, conn: Connection) -> None:
        while self.close_after is None or len(conn.requests) < self.close_after:
            head = recv_exact(sock, REQUEST.size)
            if len(head) < REQUEST.size:
                return
            cmd, size = REQUEST.unpack(head)
            payload = recv_exact(sock, size)
            conn.requests.append(head + payload)
            if cmd not in ANSWERED or (cmd == Cmd.HELLO and not self.answer_hello):
                continue
            body = self._answer(Cmd(cmd), payload)
            answer = SIZE.pack(len(body)) + body
            conn.answers.append(answer)
            sock.sendall(answer)

    def _answer(self, cmd: Cmd, payload: bytes) -> bytes:
        if cmd == Cmd.HELLO:
            return bytes([*self.version, 0]) + self.caps
        if cmd == Cmd.DEVICE_COUNT:
            return struct.pack("<I", len(self.memory))
        if cmd == Cmd.ALLOC_BUFFER:
            _, size = struct.unpack("<IQ", payload)
            self._next_ptr += 0x10000
            return struct.pack("<QQ", self._next_ptr, size)
        if cmd == Cmd.GET_DEVICE_MEMORY:
            (device,) = struct.unpack("<I", payload)
            return struct.pack("<QQ", *self.memory[device])
        if cmd == Cmd.GET_TENSOR:
            offset, size = struct.unpack("<QQ", payload)
            return tensor_bytes(offset, size)
        if cmd in (Cmd.SET_TENSOR_HASH, Cmd.COPY_TENSOR):
            return b"\x01"
        # GET_ALIGNMENT, GET_MAX_SIZE, BUFFER_GET_BASE, GET_ALLOC_SIZE: a u64 of the request
        return struct.pack("<Q", (sum(payload) * 31 + int(cmd)) & 0xFFFFFFFFFFFF)
