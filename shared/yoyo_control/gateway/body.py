"""Request bodies, read only when allowed and never past their route's limit (ASGI).

Invariants: called only after the key was checked (nothing of an anonymous body is ever
read: the server buffers at most its flow-control window, 64 KiB for uvicorn); a
declared ``Content-Length`` over ``limit`` is refused before any byte is read; the body
is read chunk by chunk as the server delivers it and refused (413, OpenAI-format) as
soon as it passes ``limit``, declared or chunked; so at most ``limit`` + one chunk is
ever held for one request.
"""

from __future__ import annotations

from starlette.requests import Request

from .reply import too_large


async def read_body(request: Request, limit: int, setting: str = "gateway.max_body_bytes") -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > limit:
        raise too_large(limit, setting)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit, setting)
        chunks.append(chunk)
    return b"".join(chunks)
