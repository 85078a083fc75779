"""A labelling HTTP/1.1 proxy: tells the emulator which Airflow process sent each request.

``python label_proxy.py TARGET_HOST TARGET_PORT LABEL=PORT [LABEL=PORT ...]``: listens on 127.0.0.1:PORT for each
label and forwards every connection to the target, one upstream connection per client connection (so Buddy -- the
emulator -- sees the same connections and keep-alive reuse as without it). Into each request's head it adds
``X-Scale-Client: LABEL``; the emulator records request headers, so its request log says which triggerer (or the
Celery worker, or the dag-processor) asked. Answers are passed back byte for byte.

Each Airflow process gets its own ``AIRFLOW_CONN_BUDDY_DEFAULT`` pointing at its label's port; nothing in the
provider or in Airflow knows about it. Standard library only (it runs as its own process, under the harness's
process book). Prints ``ready`` once every port listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

HEADER = b"X-Scale-Client"
HEAD_END = b"\r\n\r\n"


async def _pump_answers(upstream: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
    while True:
        data = await upstream.read(65536)
        if not data:
            return
        client.write(data)
        await client.drain()


async def _pump_requests(client: asyncio.StreamReader, upstream: asyncio.StreamWriter, label: bytes) -> None:
    while True:
        try:
            head = await client.readuntil(HEAD_END)
        except asyncio.IncompleteReadError as exc:  # the client closed (between requests, or mid-head)
            if exc.partial:
                upstream.write(exc.partial)
            return
        request_line, _, rest = head.partition(b"\r\n")
        length = 0
        chunked = False
        for line in rest.split(b"\r\n"):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip() or 0)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        upstream.write(request_line + b"\r\n" + HEADER + b": " + label + b"\r\n" + rest)
        if chunked:  # not sent by the provider's clients; passed through unlabelled from here on
            while data := await client.read(65536):
                upstream.write(data)
                await upstream.drain()
            return
        if length:
            upstream.write(await client.readexactly(length))
        await upstream.drain()


async def _serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter, label: bytes, target: tuple[str, int]) -> None:
    try:
        up_reader, up_writer = await asyncio.open_connection(*target)
    except OSError:
        client_writer.close()
        return
    tasks = [
        asyncio.create_task(_pump_requests(client_reader, up_writer, label)),
        asyncio.create_task(_pump_answers(up_reader, client_writer)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        for writer in (up_writer, client_writer):
            with contextlib.suppress(Exception):
                writer.close()


async def main(argv: list[str]) -> None:
    target = (argv[1], int(argv[2]))
    servers = []
    for spec in argv[3:]:
        label, _, port = spec.partition("=")

        async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, label: bytes = label.encode()) -> None:
            await _serve(r, w, label, target)

        servers.append(await asyncio.start_server(handler, "127.0.0.1", int(port), backlog=512))
    print("ready", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(sys.argv))
