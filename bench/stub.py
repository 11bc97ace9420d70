"""An instant stand-in FHIR server: every transaction answered at once, `201 Created` for each entry.

With it under the service, a request's latency is the service's own cost, free of the real
server's variance. Run: `python -m bench.stub PORT`.
"""

from __future__ import annotations

import asyncio
import sys

import orjson

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: %d\r\n\r\n"


def answer(body: bytes) -> bytes:
    """A transaction-response Bundle with one `201 Created` entry per request entry."""
    request = orjson.loads(body) if body else {}
    entries = []
    for i, entry in enumerate(request.get("entry", [])):
        url = entry["request"]["url"]
        location = f"{url}/_history/1" if "/" in url else f"{url}/stub{i}/_history/1"
        entries.append({"response": {"status": "201 Created", "location": location, "etag": 'W/"1"'}})
    out = orjson.dumps({"resourceType": "Bundle", "type": "transaction-response", "entry": entries})
    return HEAD % len(out) + out


async def _connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            writer.write(answer(await reader.readexactly(length) if length else b""))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(port: int) -> None:
    server = await asyncio.start_server(_connection, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
