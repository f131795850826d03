"""Streamed answers stream under ASGI too (the portal runs on uvicorn, ``portal.asgi``).

Django's StreamingHttpResponse, given a synchronous iterator and served over ASGI, first
reads the whole iterator into a list and only then sends it: a multi-gigabyte export
download would sit in the portal's memory, and a followed job log would not arrive until
it ended. ``portal.streaming`` pulls one chunk at a time in a worker thread instead."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from django.http import FileResponse, StreamingHttpResponse

from portal.streaming import StreamingResponse, stream_file


def _counted(n: int, pulled: list[int]) -> Iterator[bytes]:
    for i in range(n):
        pulled.append(i)
        yield b"x" * 1024


async def _first_chunk(response) -> bytes:
    async for part in response:
        return bytes(part)
    raise AssertionError("nothing came")


def test_django_alone_reads_everything_before_the_first_chunk():
    """The bug, as Django has it: the whole iterator is consumed before anything is sent."""
    pulled: list[int] = []
    response = StreamingHttpResponse(_counted(1000, pulled))
    with pytest.warns(Warning, match="must consume synchronous iterators"):
        asyncio.run(_first_chunk(response))
    assert len(pulled) == 1000


def test_the_portals_response_sends_the_first_chunk_after_reading_one():
    pulled: list[int] = []
    response = StreamingResponse(_counted(1000, pulled))
    assert asyncio.run(_first_chunk(response)) == b"x" * 1024
    assert len(pulled) <= 2  # one chunk (a thread may have started the next)


def test_the_whole_stream_still_arrives_in_order_both_ways():
    pulled: list[int] = []

    async def everything(response) -> bytes:
        return b"".join([bytes(part) async for part in response])

    assert asyncio.run(everything(StreamingResponse(_counted(50, pulled)))) == b"x" * 50 * 1024
    assert b"".join(StreamingResponse(_counted(3, [])).streaming_content) == b"x" * 3 * 1024


def test_a_file_streams_in_blocks_under_asgi(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    response = stream_file(path.open("rb"), as_attachment=True, filename="big.bin")
    assert isinstance(response, FileResponse)
    assert response["Content-Length"] == str(1024 * 1024)
    first = asyncio.run(_first_chunk(response))
    assert 0 < len(first) <= response.block_size

    async def everything() -> bytes:
        again = stream_file(path.open("rb"))
        return b"".join([bytes(part) async for part in again])

    assert asyncio.run(everything()) == path.read_bytes()
