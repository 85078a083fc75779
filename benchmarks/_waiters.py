"""
One benchmark run of one kind of waiter, in a fresh process: N waits started at once in one asyncio
loop (as Airflow's triggerer runs triggers), each awaited until its first event.

``python benchmarks/_waiters.py --kind ours|http|floor --port P --ca CA.pem --n N --executions E
--interval I --duration D --out RESULT.json [--profile FILE]``

Kinds:

- ``ours``: ``BuddyExecutionTrigger`` (the shared poller: one pooled ``httpx.AsyncClient``, bounded
  concurrency, coalesced reads), reading ``buddy_default`` from ``AIRFLOW_CONN_BUDDY_DEFAULT`` with the CA
  as its ``verify`` path;
- ``http``: ``HttpSensorTrigger`` from apache-airflow-providers-http (what a user would use instead);
  its connection cannot take a CA path for aiohttp, so the CA is trusted through ``SSL_CERT_FILE``;
- ``floor``: one shared ``aiohttp.ClientSession`` and a bare get / parse / sleep loop.

Writes JSON: CPU seconds of this process during the run, RSS before and at peak, and per wait its
execution, the time of its event and any error.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil

WORKSPACE = "acme"
PROJECT = "bench"
PIPELINE_ID = 1
TOKEN = "tok"
FINISHED = frozenset({"SUCCESSFUL", "FAILED", "TERMINATED", "SKIPPED"})


def configure_environment(kind: str, port: int, ca: str) -> None:
    """Airflow's home and the connections, set before anything imports Airflow."""
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="buddy-bench-airflow-"))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    url = f"https://127.0.0.1:{port}"
    os.environ["AIRFLOW_CONN_BUDDY_DEFAULT"] = json.dumps(
        {"conn_type": "buddy", "host": url, "login": WORKSPACE, "password": TOKEN, "extra": {"verify": ca}}
    )
    os.environ["AIRFLOW_CONN_HTTP_BUDDY"] = json.dumps(
        {"conn_type": "http", "host": url, "extra": {"Authorization": f"Bearer {TOKEN}", "X-Buddy-Media-Type": "buddy.v1.1.0"}}
    )
    if kind == "http":
        os.environ["SSL_CERT_FILE"] = ca  # read by aiohttp's default SSL context, created at its import


def endpoint(execution_id: int) -> str:
    return f"workspaces/{WORKSPACE}/projects/{PROJECT}/pipelines/{PIPELINE_ID}/executions/{execution_id}"


class RssSampler:
    """Peak resident memory of this process, sampled every ``period`` seconds in a thread."""

    def __init__(self, period: float = 0.05) -> None:
        self._process = psutil.Process()
        self._period = period
        self._stop = threading.Event()
        self.peak = self.current()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def current(self) -> int:
        return int(self._process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            self.peak = max(self.peak, self.current())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


class GcTimer:
    """CPU seconds the garbage collector takes while on (a large share of a poller's cost in a big process)."""

    def __init__(self) -> None:
        self.on = False
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self.seconds_by_generation = [0.0, 0.0, 0.0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if not self.on:
            return
        if phase == "start":
            self._started = time.process_time()
        else:
            spent = time.process_time() - self._started
            self.seconds += spent
            self.collections[info["generation"]] += 1
            self.seconds_by_generation[info["generation"]] += spent


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---- the three kinds: each returns a factory of one wait (a coroutine ending at the first event) -------
Wait = Callable[[int], Awaitable[bool]]


def load_poller(path: str) -> None:
    """Use another version of ``triggers/_poller.py`` (a before/after comparison) in place of the installed one."""
    import importlib.util

    import airflow_provider_buddy.triggers

    name = "airflow_provider_buddy.triggers._poller"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    airflow_provider_buddy.triggers._poller = module  # type: ignore[attr-defined]


def ours(interval: float, poller: str | None = None) -> tuple[Wait, Callable[[], Awaitable[None]]]:
    if poller:
        load_poller(poller)
    from airflow_provider_buddy.triggers.buddy import BuddyExecutionTrigger

    async def wait(execution_id: int) -> bool:
        trigger = BuddyExecutionTrigger(
            buddy_conn_id="buddy_default", project_name=PROJECT, pipeline_id=PIPELINE_ID, execution_id=execution_id, poll_interval=interval
        )
        events = trigger.run()
        try:
            event = await events.__anext__()
        finally:
            await events.aclose()
            await trigger.cleanup()
        if event.payload.get("status") != "success":
            raise RuntimeError(f"event {event.payload.get('status')}: {event.payload.get('message')}")
        return True

    async def close() -> None:
        return None

    return wait, close


def http_provider(interval: float) -> tuple[Wait, Callable[[], Awaitable[None]]]:
    from airflow.providers.http.triggers.http import HttpSensorTrigger

    async def wait(execution_id: int) -> bool:
        trigger = HttpSensorTrigger(
            endpoint=endpoint(execution_id),
            http_conn_id="http_buddy",
            method="GET",
            headers={"X-Bench-Missing-Until-Finished": "1"},
            poke_interval=interval,
        )
        events = trigger.run()
        try:
            event = await events.__anext__()
        finally:
            await events.aclose()
            await trigger.cleanup()
        return bool(event.payload)

    async def close() -> None:
        return None

    return wait, close


def floor(interval: float, port: int, ca: str) -> tuple[Wait, Callable[[], Awaitable[None]]]:
    import ssl

    import aiohttp

    context = ssl.create_default_context(cafile=ca)
    state: dict[str, aiohttp.ClientSession] = {}
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json", "X-Buddy-Media-Type": "buddy.v1.1.0"}
    base = f"https://127.0.0.1:{port}/"

    def session() -> aiohttp.ClientSession:
        if "s" not in state:
            state["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))
        return state["s"]

    async def wait(execution_id: int) -> bool:
        url = base + endpoint(execution_id)
        client = session()
        while True:
            async with client.get(url, headers=headers) as response:
                body = await response.read()
                response.raise_for_status()
            if json.loads(body)["status"] in FINISHED:
                return True
            await asyncio.sleep(interval)

    async def close() -> None:
        if "s" in state:
            await state["s"].close()

    return wait, close


async def run_all(wait: Wait, close: Callable[[], Awaitable[None]], execution_ids: list[int], deadline: float) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = [{"execution_id": e, "event_time": None, "error": None} for e in execution_ids]

    async def one(index: int) -> None:
        try:
            await wait(execution_ids[index])
            results[index]["event_time"] = time.time()
        except Exception as exc:
            results[index]["error"] = f"{type(exc).__name__}: {exc}"[:300]

    tasks = [asyncio.create_task(one(i)) for i in range(len(execution_ids))]  # all at once, as the triggerer does
    _, pending = await asyncio.wait(tasks, timeout=deadline)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for result in results:
        if result["event_time"] is None and result["error"] is None:
            result["error"] = "no event before the deadline"
    await close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=["ours", "http", "floor"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--executions", type=int, default=0, help="distinct executions (0: one per wait)")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the run here")
    parser.add_argument("--poller", help="ours: load this file as triggers/_poller.py (compare versions)")
    args = parser.parse_args()

    configure_environment(args.kind, args.port, args.ca)
    if args.kind == "ours":
        wait, close = ours(args.interval, args.poller)
    elif args.kind == "http":
        wait, close = http_provider(args.interval)
    else:
        wait, close = floor(args.interval, args.port, args.ca)
    executions = args.executions or args.n
    execution_ids = [1 + i % executions for i in range(args.n)]
    deadline = args.duration + 10 * args.interval + 60.0

    loop = asyncio.new_event_loop()
    profiler = None
    if args.profile is not None:
        import cProfile

        profiler = cProfile.Profile(time.thread_time)  # CPU time of the loop thread: waiting, preempted, is not work
    if os.environ.get("BENCH_GC_FREEZE") == "1":  # experiment: what a triggerer freezing its start-up heap would save
        gc.collect()
        gc.freeze()
    gc_timer = GcTimer()
    tracked_at_start = len(gc.get_objects())
    with RssSampler() as rss:
        rss_before = rss.current()
        gc_timer.on = True
        cpu_before, wall_before = cpu_seconds(), time.time()
        if profiler is not None:
            profiler.enable()
        results = loop.run_until_complete(run_all(wait, close, execution_ids, deadline))
        if profiler is not None:
            profiler.disable()
        cpu_after, wall_after = cpu_seconds(), time.time()
        gc_timer.on = False
    loop.close()
    if profiler is not None:
        profiler.dump_stats(str(args.profile))
    args.out.write_text(
        json.dumps(
            {
                "kind": args.kind,
                "n": args.n,
                "executions": executions,
                "interval": args.interval,
                "duration": args.duration,
                "cpu_s": cpu_after - cpu_before,
                "gc_s": gc_timer.seconds,
                "gc_collections": gc_timer.collections,
                "gc_s_by_generation": gc_timer.seconds_by_generation,
                "gc_tracked_at_start": tracked_at_start,
                "heap_objects": len(gc.get_objects()),
                "wall_s": wall_after - wall_before,
                "start": wall_before,
                "rss_before": rss_before,
                "rss_peak": rss.peak,
                "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "results": results,
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
