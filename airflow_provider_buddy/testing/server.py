"""``BuddyEmulator``: the emulated Buddy.Works API served by uvicorn in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from airflow_provider_buddy.testing._core import Core
from airflow_provider_buddy.testing.buddy.mixin import BuddyEmulatorMixin
from airflow_provider_buddy.testing.buddy.state import BuddyState
from airflow_provider_buddy.testing.faults import Fault, FaultBook
from airflow_provider_buddy.testing.gorules.mixin import GoRulesEmulatorMixin
from airflow_provider_buddy.testing.gorules.state import GoRulesState
from airflow_provider_buddy.testing.recording import RecordedRequest, RequestLog
from airflow_provider_buddy.testing.scenario import Scenario, load_scenario

if TYPE_CHECKING:
    import uvicorn

START_TIMEOUT = 10.0
SERVER_PACKAGES = ("starlette", "uvicorn")


def require_server_packages() -> None:
    """The emulator's HTTP server needs the ``emulator`` extra; say so plainly when it is missing."""
    import importlib.util

    missing = [name for name in SERVER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise RuntimeError(
            f"The Buddy/GoRules emulator's server needs packages that are not installed ({', '.join(missing)}): "
            "pip install 'airflow-provider-buddy[emulator]'"
        )


def _normalise_base_path(base_path: str) -> str:
    path = base_path.strip().rstrip("/")
    if path and not path.startswith("/"):
        path = "/" + path
    return path


class BuddyEmulator(BuddyEmulatorMixin, GoRulesEmulatorMixin):
    """
    A local Buddy.Works REST API for tests and offline DAG runs: a real HTTP server on ``host``.
    It serves the GoRules BRMS API too, with the same token and clock. The Python API of each service comes
    from its mixin (:class:`BuddyEmulatorMixin`: pipelines and executions; :class:`GoRulesEmulatorMixin`:
    BRMS projects, releases and runs); this class runs the server and holds what they share: the clock,
    the token, faults and recorded requests.

    Use it as a context manager (or call :meth:`start` / :meth:`stop`)::

        with BuddyEmulator(speed=20.0) as emu:
            emu.add_pipeline(project="web", pipeline_id=1, identifier="build", actions=[...])
            ...  # talk to emu.url with "Authorization: Bearer test-token"

    :param workspace: the workspace's name (default: the scenario's, else "acme").
    :param token: the only accepted token (default: the scenario's, else "test-token").
    :param speed: emulated seconds per real second (20.0 runs a 2 s action in 0.1 s; 0 freezes the
        clock so that only :meth:`advance` moves it).
    :param base_path: a path prefix for the API, e.g. "/api" as on-premises installations use.
    :param ssl_certfile: a certificate file to serve HTTPS.
    :param ssl_keyfile: the certificate's key file.
    :param scenario: a scenario to load: a :class:`Scenario`, its dict form, or a JSON file path.
    :param host: the interface to bind.
    :param port: the port to bind (0: a free one).
    :param seed: seed for faults with a probability.
    :param rate_limit: the limit advertised in ``X-Rate-Limit-Limit``.
    """

    def __init__(
        self,
        workspace: str | None = None,
        token: str | None = None,
        speed: float = 1.0,
        base_path: str = "",
        ssl_certfile: str | Path | None = None,
        ssl_keyfile: str | Path | None = None,
        scenario: Scenario | Mapping[str, Any] | str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        rate_limit: int = 1000,
    ) -> None:
        self._core = Core(token or "test-token", speed)
        self._buddy = BuddyState(self._core, workspace or "acme")
        self._gorules = GoRulesState(self._core)
        if scenario is not None:
            self.load_scenario(scenario)
        if workspace is not None:
            self._buddy.workspace = workspace
        if token is not None:
            self._core.token = token
        self._faults = FaultBook(seed)
        self._log = RequestLog()
        self._base_path = _normalise_base_path(base_path)
        self._ssl_certfile = str(ssl_certfile) if ssl_certfile is not None else None
        self._ssl_keyfile = str(ssl_keyfile) if ssl_keyfile is not None else None
        self._host = host
        self._port = port
        self._rate_limit = rate_limit
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self, port: int | None = None) -> BuddyEmulator:
        """
        Bind the port and serve in a background thread; returns self once it answers.

        :param port: the port to bind, overriding the one given to the constructor (0: a free one).
        """
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        if port is not None:
            self._port = port
        require_server_packages()
        import uvicorn

        from airflow_provider_buddy.testing._routing import api_app
        from airflow_provider_buddy.testing.buddy.app import buddy_routes
        from airflow_provider_buddy.testing.buddy.control import buddy_control
        from airflow_provider_buddy.testing.control import build_control
        from airflow_provider_buddy.testing.gateway import Gateway
        from airflow_provider_buddy.testing.gorules.app import gorules_routes
        from airflow_provider_buddy.testing.gorules.control import gorules_control
        from airflow_provider_buddy.testing.uvicorn_server import QuickStopServer

        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        # proto IPPROTO_TCP, so that asyncio sets TCP_NODELAY on accepted connections (with proto 0 it does
        # not, and every response then waits ~40 ms for a delayed ACK)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        port = int(sock.getsockname()[1])
        self._port = port
        shown_host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host
        shown_host = f"[{shown_host}]" if ":" in shown_host else shown_host
        scheme = "https" if self._ssl_certfile else "http"
        self._core.api_base = f"{scheme}://{shown_host}:{port}{self._base_path}"
        gateway = Gateway(
            api_app([*buddy_routes(self._buddy), *gorules_routes(self._gorules)]),
            build_control(self._core, self._faults, self._log, [buddy_control(self._buddy), gorules_control(self._gorules)]),
            self._faults,
            self._log,
            self._base_path,
            self._rate_limit,
        )
        config = uvicorn.Config(
            gateway,
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            proxy_headers=False,
            server_header=False,
            ssl_certfile=self._ssl_certfile,
            ssl_keyfile=self._ssl_keyfile,
        )
        server = QuickStopServer(config)
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:
                errors.append(exc)
            finally:
                sock.close()

        thread = threading.Thread(target=serve, name=f"buddy-emulator-{port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(2)
                reason = repr(errors[0]) if errors else "it did not come up in time"
                raise RuntimeError(f"the Buddy emulator could not start on port {port}: {reason}")
            time.sleep(0.005)
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving (the emulated state is kept; :meth:`start` serves it again)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5)

    def __enter__(self) -> BuddyEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while serving."""
        return self._server is not None

    @property
    def url(self) -> str:
        """The API's root URL, e.g. ``http://127.0.0.1:PORT`` plus the base path (set by :meth:`start`)."""
        if not self._core.api_base:
            raise RuntimeError("the emulator has not been started")
        return self._core.api_base

    @property
    def port(self) -> int:
        """The bound port (0 before :meth:`start` when none was asked for)."""
        return self._port

    @property
    def base_path(self) -> str:
        """The API's path prefix ("" for none)."""
        return self._base_path

    # --- shared settings -----------------------------------------------------------------------------

    @property
    def token(self) -> str:
        """The only accepted token (both services')."""
        return self._core.token

    @token.setter
    def token(self, value: str) -> None:
        self._core.token = value

    @property
    def speed(self) -> float:
        """Emulated seconds per real second."""
        return self._core.clock.speed

    @speed.setter
    def speed(self, value: float) -> None:
        """Run the emulated clock at ``value`` from now on; 0 pauses it (runs stay where they are)."""
        self._core.set_speed(value)

    def advance(self, seconds: float) -> None:
        """Move the emulated clock forward."""
        self._core.advance(seconds)

    def now(self) -> datetime:
        """The emulated time."""
        return datetime.fromtimestamp(self._core.now(), tz=timezone.utc)

    def load_scenario(self, scenario: Scenario | Mapping[str, Any] | str | Path) -> None:
        """Add a scenario's Buddy projects and pipelines and GoRules projects (its workspace and token replace the current ones)."""
        loaded = load_scenario(scenario)
        with self._core.lock:
            self._core.token = loaded.token
            self._buddy.load(loaded.workspace, loaded.projects)
            self._gorules.load(loaded.gorules.projects)

    # --- faults and requests ----------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> Fault:
        """Inject a fault into the matching requests to come."""
        self._faults.add(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """The faults that can still hit."""
        return self._faults.active()

    @property
    def requests(self) -> list[RecordedRequest]:
        """The API requests received (control requests excluded), oldest first."""
        return self._log.all()

    def requests_to(self, method: str, path_regex: str) -> list[RecordedRequest]:
        """Recorded requests with this method whose path (after the base path) matches the regex."""
        return self._log.matching(method, path_regex)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._log.clear()
