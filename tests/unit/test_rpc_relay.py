"""The RPC relay of `claracore worker --mem`: ggml-rpc's messages go through byte for byte, except
GET_DEVICE_MEMORY's answer, which reports at most the cap; either side closing closes both.

Runs against tests/rpc_stub.py's stand-in for llama.cpp's RPC server, which records every frame.
"""

from __future__ import annotations

import logging
import random
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from claracore.runtime.rpc_relay import MemoryCap, RpcRelay
from claracore.units import GIB, MIB
from tests.rpc_stub import RpcStub, frame, read_answer, recv_exact, tensor_bytes
from tests.waiting import wait_for

HELLO = frame(14, bytes(24))
#: The commands rpc_serve_client answers (ggml-rpc.cpp, protocol 7.0), written out independently.
ANSWERED_HERE = {14, 15, 1, 2, 0, 3, 13, 7, 9, 8, 11}
REAL = [(20 * GIB, 24 * GIB), (GIB // 4, 8 * GIB)]  # device 1 has less free than its cap share


@contextmanager
def relayed(stub: RpcStub, cap_gib: float = 4.0) -> Iterator[tuple[RpcRelay, socket.socket]]:
    """A relay in front of `stub` capping its devices at `cap_gib` in all, and a client of it."""
    relay = RpcRelay("127.0.0.1", 0, stub.address, MemoryCap(int(cap_gib * GIB), len(stub.memory)))
    relay.start()
    client = socket.create_connection(relay.address)
    try:
        yield relay, client
    finally:
        client.close()
        relay.close()
        stub.close()


@pytest.fixture
def stub() -> RpcStub:
    return RpcStub(REAL)


def memory(client: socket.socket, device: int) -> tuple[int, int]:
    client.sendall(frame(11, struct.pack("<I", device)))
    free, total = struct.unpack("<QQ", read_answer(client))
    return free, total


def test_every_message_but_device_memory_passes_unchanged(stub: RpcStub) -> None:
    rng = random.Random(19)
    weights = rng.randbytes(24 * MIB + 7)  # a model's SET_TENSOR: streamed, odd-sized
    graph = rng.randbytes(300_000)
    sent = [
        HELLO,
        frame(15),  # DEVICE_COUNT
        frame(1, struct.pack("<I", 0)),  # GET_ALIGNMENT
        frame(2, struct.pack("<I", 1)),  # GET_MAX_SIZE
        frame(0, struct.pack("<IQ", 0, 64 * MIB)),  # ALLOC_BUFFER
        frame(3, struct.pack("<Q", 0x20000)),  # BUFFER_GET_BASE
        frame(13, rng.randbytes(4 + 1200)),  # GET_ALLOC_SIZE
        frame(12, rng.randbytes(300)),  # INIT_TENSOR
        frame(6, weights),  # SET_TENSOR
        frame(7, rng.randbytes(320)),  # SET_TENSOR_HASH
        frame(17, rng.randbytes(321)),  # MEMSET_TENSOR
        frame(5, struct.pack("<QB", 0x20000, 0)),  # BUFFER_CLEAR
        frame(9, rng.randbytes(600)),  # COPY_TENSOR
        frame(10, graph),  # GRAPH_COMPUTE
        frame(16, struct.pack("<I", 0)),  # GRAPH_RECOMPUTE
        frame(8, struct.pack("<QQ", 5, 9 * MIB + 3)),  # GET_TENSOR: a large answer, streamed
        frame(4, struct.pack("<Q", 0x20000)),  # FREE_BUFFER
        frame(11, struct.pack("<I", 0)),  # GET_DEVICE_MEMORY
        frame(11, struct.pack("<I", 1)),
    ]
    with relayed(stub, cap_gib=4.0) as (_, client):
        client.sendall(b"".join(sent))  # pipelined, as ggml-rpc's send_async does
        answers = [read_answer(client) for f in sent if f[0] in ANSWERED_HERE]
        client.close()
        wait_for(lambda: bool(stub.connections) and stub.connections[0].ended.is_set(), what="the end")
    seen = stub.connections[0]
    assert seen.requests == sent  # every request arrived byte for byte, the 24 MiB one too
    assert answers[:-2] == [a[8:] for a in seen.answers[:-2]]  # and every answer came back
    assert tensor_bytes(5, 9 * MIB + 3) in answers
    # Only the memory differs: 2 GiB per device, and device 1 has less free than that.
    assert struct.unpack("<QQ", answers[-2]) == (2 * GIB, 2 * GIB)
    assert struct.unpack("<QQ", answers[-1]) == (GIB // 4, 2 * GIB)
    assert struct.unpack("<QQ", seen.answers[-2][8:]) == REAL[0]


def test_free_memory_counts_what_clients_hold_until_freed_or_gone(stub: RpcStub) -> None:
    with relayed(stub, cap_gib=4.0) as (relay, client):
        client.sendall(HELLO)
        assert read_answer(client)[:2] == bytes([7, 0])
        client.sendall(frame(0, struct.pack("<IQ", 0, 512 * MIB)))
        ptr, size = struct.unpack("<QQ", read_answer(client))
        assert memory(client, 0) == (2 * GIB - 512 * MIB, 2 * GIB)
        assert memory(client, 1) == (GIB // 4, 2 * GIB)  # the other device is untouched
        client.sendall(frame(4, struct.pack("<Q", ptr)))  # FREE_BUFFER
        assert memory(client, 0) == (2 * GIB, 2 * GIB)

        client.sendall(frame(0, struct.pack("<IQ", 0, 3 * GIB)))  # more than the share
        read_answer(client)
        assert memory(client, 0) == (0, 2 * GIB)
        client.close()  # the server frees a connection's buffers when it ends
        wait_for(lambda: relay.cap.held(0) == 0, what="the closed connection's buffers released")
        again = socket.create_connection(relay.address)
        with again:
            again.sendall(HELLO)
            read_answer(again)
            assert memory(again, 0) == (2 * GIB, 2 * GIB)


def test_hello_caps_are_zeroed_both_ways() -> None:
    """RDMA negotiated over HELLO cannot run through a relay: neither side may switch to it."""
    stub = RpcStub(REAL, caps=bytes(range(1, 25)))
    with relayed(stub) as (_, client):
        client.sendall(frame(14, bytes(range(2, 26))))
        answer = read_answer(client)
        wait_for(lambda: bool(stub.connections and stub.connections[0].requests), what="the HELLO")
    assert answer == bytes([7, 0, 0, 0]) + bytes(24)
    assert stub.connections[0].requests[0] == HELLO


def test_a_client_that_closes_closes_the_server_side(stub: RpcStub) -> None:
    with relayed(stub) as (_, client):
        client.sendall(HELLO)
        read_answer(client)
        client.close()
        wait_for(lambda: stub.connections[0].ended.is_set(), what="the server side closed")


def test_a_server_that_closes_closes_the_client_side() -> None:
    stub = RpcStub(REAL, close_after=2)
    with relayed(stub) as (_, client):
        client.sendall(HELLO + frame(15))
        read_answer(client)
        read_answer(client)
        client.settimeout(10)
        assert client.recv(1) == b""  # closed, without the client sending anything more


def test_a_client_gone_before_its_answer_leaves_no_connection_behind() -> None:
    """A worker busy with another server answers HELLO late; a client that gave up meanwhile
    must not keep a connection queued at the server."""
    stub = RpcStub(REAL, answer_hello=False)
    with relayed(stub) as (_, client):
        client.sendall(HELLO)
        wait_for(lambda: bool(stub.connections and stub.connections[0].requests), what="the HELLO")
        client.close()
        wait_for(lambda: stub.connections[0].ended.is_set(), what="the server side closed")


@pytest.mark.parametrize("cmd", [18, 200])
def test_an_unknown_command_closes_the_connection_naming_it(
    stub: RpcStub, cmd: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="claracore.runtime.rpc_relay"):
        with relayed(stub) as (_, client):
            client.sendall(HELLO)
            read_answer(client)
            client.sendall(frame(cmd, b"??"))
            client.settimeout(10)
            assert recv_exact(client, 1) == b""
            wait_for(lambda: stub.connections[0].ended.is_set(), what="the server side closed")
    assert stub.connections[0].requests == [HELLO]  # the unknown command never reached it
    assert any(f"unknown command {cmd}" in r.getMessage() for r in caplog.records)


def test_another_protocol_major_closes_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    stub = RpcStub(REAL, version=(8, 0, 0))
    with caplog.at_level(logging.ERROR, logger="claracore.runtime.rpc_relay"):
        with relayed(stub) as (_, client):
            client.sendall(HELLO)
            client.settimeout(10)
            assert recv_exact(client, 1) == b""
    assert any("protocol 8.0" in r.getMessage() for r in caplog.records)


def test_the_cap_is_split_evenly_and_never_above_the_device() -> None:
    cap = MemoryCap(6 * GIB, 2)
    assert cap.per_device == 3 * GIB
    assert cap.report(0, 10 * GIB, 24 * GIB) == (3 * GIB, 3 * GIB)
    assert cap.report(1, GIB, 2 * GIB) == (GIB, 2 * GIB)
    with pytest.raises(ValueError):
        MemoryCap(0, 1)


def test_a_taken_port_fails_when_the_relay_is_made() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        with pytest.raises(OSError):
            RpcRelay("127.0.0.1", taken.getsockname()[1], ("127.0.0.1", 9), MemoryCap(GIB, 1))
