"""Responses that stream under ASGI as they do under WSGI.

The portal is served by uvicorn (``portal.asgi``). Django's StreamingHttpResponse, given a
synchronous iterator (a generator of CSV chunks, a job's log lines, a file) and served
over ASGI, reads the whole iterator into a list before it sends the first byte: an export
download of gigabytes would sit in the portal's memory, a followed log would arrive only
when it ended. These subclasses pull one chunk at a time in a worker thread instead
(``thread_sensitive=False``: a long download must not hold the one thread Django keeps for
the ORM of every request). Under WSGI (and Django's test client) nothing changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.http import FileResponse, StreamingHttpResponse

_DONE = object()


class _StreamsUnderAsgi:
    """``__aiter__`` for a sync iterator, chunk by chunk (see the module)."""

    is_async: bool
    streaming_content: Any

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.is_async:
            async for part in self.streaming_content:
                yield part
            return
        iterator = iter(self.streaming_content)
        step = sync_to_async(lambda: next(iterator, _DONE), thread_sensitive=False)
        while (part := await step()) is not _DONE:
            yield part  # type: ignore[misc]


class StreamingResponse(_StreamsUnderAsgi, StreamingHttpResponse):
    """StreamingHttpResponse that streams under ASGI."""


class _FileResponse(_StreamsUnderAsgi, FileResponse):
    """FileResponse (Content-Length, Content-Disposition) that streams under ASGI."""


def stream_file(file: Any, **kwargs: Any) -> FileResponse:
    """A FileResponse for the open binary ``file`` that streams under ASGI too."""
    return _FileResponse(file, **kwargs)
