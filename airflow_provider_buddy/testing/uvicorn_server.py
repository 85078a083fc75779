"""
A uvicorn server that stops within milliseconds (uvicorn's own polls every 100 ms and pauses 100 ms
while shutting down, which adds up over hundreds of tests that each start an emulator).
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn


class QuickStopServer(uvicorn.Server):
    """uvicorn's server, noticing ``should_exit`` within 10 ms and shutting down without fixed pauses."""

    grace = 0.25
    """Seconds in-flight requests (e.g. delayed by a fault) get to finish when the server stops."""

    async def main_loop(self) -> None:
        """Like uvicorn's loop (``on_tick`` every 100 ms), but checks ``should_exit`` every 10 ms."""
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            for _ in range(10):
                await asyncio.sleep(0.01)
                if self.should_exit:
                    return
            counter = (counter + 1) % 864000
            should_exit = await self.on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop listening, close idle connections, give in-flight requests the graceful timeout, then cancel them."""
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        while (self.server_state.connections or self.server_state.tasks) and not self.force_exit:
            if loop.time() >= deadline:
                break
            await asyncio.sleep(0.002)
        for task in list(self.server_state.tasks):
            task.cancel()
        for connection in list(self.server_state.connections):
            connection.shutdown()
