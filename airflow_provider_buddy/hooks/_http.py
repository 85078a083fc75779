"""The one HTTP core both services use.

Request building, response parsing, error mapping and the retry policy live here once; the sync and
async paths differ only in the transport call (``httpx.Client`` or ``httpx.AsyncClient``).
"""

from __future__ import annotations

import email.utils
import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

import httpx
import tenacity
from pydantic import ValidationError

from airflow_provider_buddy import __version__
from airflow_provider_buddy.exceptions import ErrorKind, ProviderApiError
from airflow_provider_buddy.hooks._connection import ClientSettings
from airflow_provider_buddy.models.validation import describe_validation_error

T = TypeVar("T")

log = logging.getLogger(__name__)

USER_AGENT = f"airflow-provider-buddy/{__version__}"
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
REJECTED_STATUSES = frozenset({429, 503})
_MAX_MESSAGE = 500


MIN_SCRUBBED_LENGTH = 3
"""Encrypted values shorter than this are not cut out of error texts (they would mangle every message)."""


class Replay(str, Enum):
    """When a request may be sent again after a failure."""

    SAFE = "safe"
    """A read: retried on network errors, timeouts, 429 and 5xx."""
    NEVER_AFTER_SEND = "never_after_send"
    """Creates something (a run): retried only when the connection never opened."""
    ONLY_IF_REJECTED = "only_if_rejected"
    """Changes something: retried only on 429/503 or when the connection never opened."""


@dataclass(frozen=True)
class ApiCall(Generic[T]):
    """
    One API call, described without I/O: what to send and how to read the answer.

    :param method: HTTP method.
    :param path: path under the base URL, segments already quoted.
    :param parse: turns the decoded JSON body into the result.
    :param what: a human description of the target, for messages ("execution 42 of pipeline 1 ...").
    :param params: query parameters.
    :param json: the JSON body (left out of ``repr``: it may hold encrypted variable values).
    :param replay: the retry rule.
    """

    method: str
    path: str
    parse: Callable[[Any], T]
    what: str
    params: Mapping[str, str | int] | None = None
    json: Any = field(default=None, repr=False)
    replay: Replay = Replay.SAFE

    def secrets(self) -> tuple[str, ...]:
        """The values of the encrypted variables in the body (``{"value": ..., "encrypted": true}`` anywhere in it)."""
        found: list[str] = []
        pending = [self.json]
        while pending:
            item = pending.pop()
            if isinstance(item, dict):
                value = item.get("value")
                if item.get("encrypted") is True and isinstance(value, str) and len(value) >= MIN_SCRUBBED_LENGTH:
                    found.append(value)
                pending.extend(item.values())
            elif isinstance(item, (list, tuple)):
                pending.extend(item)
        return tuple(sorted(set(found), key=len, reverse=True))  # longest first: a secret inside another is still covered


class Page:
    """One page of a list endpoint: its items and whether another page may follow."""

    def __init__(self, items: list[Any], more: bool) -> None:
        self.items = items
        self.more = more


@dataclass(frozen=True)
class ErrorFamily:
    """The error classes one service raises, by kind."""

    service: str
    classes: Mapping[ErrorKind, type[ProviderApiError]]
    hints: Mapping[ErrorKind, str] = field(default_factory=dict)
    resource_words: tuple[str, ...] = ()

    def build(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status_code: int | None = None,
        server_messages: tuple[str, ...] = (),
        resource: str | None = None,
        retry_after: float | None = None,
    ) -> ProviderApiError:
        """Instantiate the class registered for ``kind``."""
        hint = self.hints.get(kind)
        if hint:
            message = f"{message}. {hint}"
        return self.classes[kind](
            message,
            status_code=status_code,
            server_messages=server_messages,
            resource=resource,
            retry_after=retry_after,
        )


class _Transient(Exception):
    """A failure the retry policy may try again; carries what the final error needs."""

    def __init__(
        self,
        kind: ErrorKind,
        detail: str,
        *,
        status: int | None = None,
        headers: httpx.Headers | None = None,
        messages: tuple[str, ...] = (),
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status
        self.headers = headers
        self.messages = messages


def retry_after_seconds(headers: Mapping[str, str] | httpx.Headers, now: float | None = None) -> float | None:
    """
    How long the server asked us to wait: ``Retry-After`` (seconds or an HTTP date) or
    ``X-Rate-Limit-Reset`` (Unix epoch seconds). None when neither is usable.

    :param headers: the response headers.
    :param now: the current epoch time (for tests).
    """
    current = time.time() if now is None else now
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                parsed = None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - current)
    reset = headers.get("x-rate-limit-reset") or headers.get("X-Rate-Limit-Reset")
    if reset:
        try:
            epoch = float(reset.strip())
        except ValueError:
            return None
        if epoch > 1e12:  # milliseconds
            epoch /= 1000.0
        return max(0.0, epoch - current)
    return None


class ServerDirectedWait(tenacity.wait.wait_base):
    """
    Wait as the server asked (``Retry-After`` / ``X-Rate-Limit-Reset``), else exponential backoff with jitter.

    :param fallback: the wait used when the server gave no hint.
    :param cap: the longest wait honoured from a header.
    """

    def __init__(self, fallback: tenacity.wait.wait_base, cap: float) -> None:
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, _Transient) and error.headers is not None:
            asked = retry_after_seconds(error.headers)
            if asked is not None:
                return min(asked, self.cap)
        return float(self.fallback(retry_state))


def server_messages(response: httpx.Response) -> tuple[str, ...]:
    """
    The server's own error messages: ``{"errors":[{"message"}]}``, ``{"error": ...}``, ``{"message": ...}``,
    or the text of a short non-JSON body.

    :param response: the error response.
    """
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:_MAX_MESSAGE],) if text else ()
    found: list[str] = []
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            for item in errors:
                if isinstance(item, dict) and item.get("message"):
                    found.append(str(item["message"]))
                elif isinstance(item, str):
                    found.append(item)
        for key in ("error", "message", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                found.append(value)
            elif isinstance(value, dict) and value.get("message"):
                found.append(str(value["message"]))
    return tuple(message[:_MAX_MESSAGE] for message in found)


def _certificate_rejected(exc: BaseException) -> bool:
    """True when a TLS handshake failed because the server's certificate could not be verified."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class HttpCore:
    """
    Builds requests, sends them with the retry policy and reads the answers, for one service account.

    :param settings: the connection's settings (URL, token, timeouts, retry limits).
    :param errors: the service's error classes.
    :param extra_headers: headers the service wants on every call.
    :param logger: where retries are reported.
    :param retry_log_level: the level retries are reported at (pollers that report once per streak use DEBUG).
    """

    def __init__(
        self,
        settings: ClientSettings,
        errors: ErrorFamily,
        *,
        extra_headers: Mapping[str, str] | None = None,
        logger: Any = None,
        retry_log_level: int = logging.WARNING,
    ) -> None:
        self.settings = settings
        self.errors = errors
        self.log = logger or log
        self.retry_log_level = retry_log_level
        self._headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Authorization": f"Bearer {settings.token}",
            **(extra_headers or {}),
        }

    def __repr__(self) -> str:
        return f"HttpCore({self.settings!r})"

    # ---- request building -------------------------------------------------------------------
    def url_for(self, path: str) -> str:
        """The absolute URL of ``path``, always joined under the base URL's own path."""
        return f"{self.settings.base_url.rstrip('/')}/{path.lstrip('/')}"

    def request_kwargs(self, call: ApiCall[Any]) -> dict[str, Any]:
        """Arguments for ``client.request`` / ``aclient.request``."""
        kwargs: dict[str, Any] = {
            "method": call.method,
            "url": self.url_for(call.path),
            "headers": self._headers,
            "timeout": self.settings.timeout,
        }
        if call.params:
            kwargs["params"] = dict(call.params)
        if call.json is not None:
            kwargs["json"] = call.json
        return kwargs

    def client_kwargs(self) -> dict[str, Any]:
        """Arguments for a pooled ``httpx.Client`` / ``httpx.AsyncClient`` for this account."""
        return {
            "verify": self.tls_verify(),
            "timeout": self.settings.timeout,
            "follow_redirects": False,
            "limits": httpx.Limits(max_connections=32, max_keepalive_connections=32, keepalive_expiry=60.0),
        }

    def tls_verify(self) -> bool | ssl.SSLContext:
        """TLS verification for the client: on, off, or an SSL context trusting the CA bundle (file or directory)
        that ``verify`` names; a bundle that cannot be read is a configuration error naming ``verify``."""
        verify = self.settings.verify
        if isinstance(verify, bool):
            return verify
        try:
            if os.path.isdir(verify):
                return ssl.create_default_context(capath=verify)
            return ssl.create_default_context(cafile=verify)
        except (OSError, ssl.SSLError) as exc:
            raise self.errors.build(
                ErrorKind.CONFIGURATION,
                f"{self.errors.service}: the connection's extra 'verify' names {verify!r}, which is not a readable CA bundle ({exc})",
            ) from None

    # ---- the retry policy -------------------------------------------------------------------
    def retry_kwargs(self, call: ApiCall[Any], *, spent: float = 0.0) -> dict[str, Any]:
        """The tenacity policy for ``call``: the same for the sync and the async path (``spent``: seconds of
        the budget a first try made before tenacity started)."""
        s = self.settings
        fallback = tenacity.wait_exponential_jitter(initial=s.retry_min_wait, max=s.retry_max_wait, jitter=s.retry_min_wait)
        return {
            "retry": tenacity.retry_if_exception_type(_Transient),
            "stop": tenacity.stop_after_attempt(s.max_retries + 1) | tenacity.stop_after_delay(max(0.0, s.retry_total_timeout - spent)),
            "wait": ServerDirectedWait(fallback, cap=s.retry_total_timeout),
            "reraise": True,
            "before_sleep": self._report_retry(call),
        }

    def _report_retry(self, call: ApiCall[Any]) -> Callable[[tenacity.RetryCallState], None]:
        def report(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            self.log.log(
                self.retry_log_level,
                "%s %s %s: %s; retry %d of %d in %.1fs",
                self.errors.service,
                call.method,
                call.what,
                error,
                state.attempt_number,
                self.settings.max_retries,
                wait,
            )

        return report

    # ---- reading answers --------------------------------------------------------------------
    def scrub(self, text: str, call: ApiCall[Any] | None = None) -> str:
        """``text`` with the token and the call's encrypted variable values removed, wherever they appear."""
        token = self.settings.token
        if token:
            text = text.replace(token, "***")
        for secret in call.secrets() if call is not None else ():
            text = text.replace(secret, "***")
        return text

    def transport_failure(self, call: ApiCall[Any], exc: httpx.TransportError) -> Exception:
        """A network failure: transient when the replay rule allows, else the final error."""
        never_opened = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        detail = self.scrub(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, call)
        if _certificate_rejected(exc):  # a setting to fix, not an outage to wait out: not retried
            return self.errors.build(
                ErrorKind.CONFIGURATION,
                f"{self.errors.service} {call.method} {call.what} failed: the server's TLS certificate is not trusted ({detail}); "
                "set the connection's extra 'verify' to the CA bundle that signed it",
            )
        if call.replay is Replay.SAFE or never_opened:
            return _Transient(ErrorKind.CONNECTION, detail)
        note = (
            "the request may have reached the server, so it was not sent again (a second run would be worse than this error)"
            if call.replay is Replay.NEVER_AFTER_SEND
            else "the request may have reached the server, so it was not sent again"
        )
        return self.errors.build(
            ErrorKind.CONNECTION,
            f"{self.errors.service} {call.method} {call.what} failed: {detail}; {note}",
        )

    def check_status(self, call: ApiCall[Any], response: httpx.Response) -> None:
        """Raise the typed error (or a transient failure) for an error response."""
        status = response.status_code
        if status < 300:
            return
        messages = tuple(self.scrub(m, call) for m in server_messages(response))
        retryable = (
            status in RETRYABLE_STATUSES
            if call.replay is Replay.SAFE
            else (call.replay is Replay.ONLY_IF_REJECTED and status in REJECTED_STATUSES)
        )
        if retryable:
            kind = ErrorKind.RATE_LIMITED if status == 429 else ErrorKind.SERVER
            raise _Transient(kind, f"HTTP {status}", status=status, headers=response.headers, messages=messages)
        raise self.status_error(call, status, messages, response.headers)

    def status_error(
        self, call: ApiCall[Any], status: int, messages: tuple[str, ...], headers: httpx.Headers | None = None
    ) -> ProviderApiError:
        """The typed error for an HTTP error status."""
        kind = {401: ErrorKind.AUTHENTICATION, 403: ErrorKind.PERMISSION, 404: ErrorKind.NOT_FOUND, 429: ErrorKind.RATE_LIMITED}.get(status)
        if kind is None:
            kind = ErrorKind.SERVER if status >= 500 else ErrorKind.CLIENT
        reason = httpx.codes.get_reason_phrase(status)
        text = f"{self.errors.service} answered HTTP {status} {reason} to {call.method} {call.what}"
        if 300 <= status < 400:
            text += " (a redirect; redirects are not followed so the token never goes to another host)"
        if messages:
            text += ": " + "; ".join(messages)
        resource = self._missing_resource(messages) if kind is ErrorKind.NOT_FOUND else None
        if resource:
            text += f" (the {resource} does not exist or the token cannot see it)"
        retry_after = retry_after_seconds(headers) if headers is not None else None
        return self.errors.build(kind, text, status_code=status, server_messages=messages, resource=resource, retry_after=retry_after)

    def _missing_resource(self, messages: tuple[str, ...]) -> str | None:
        joined = " ".join(messages).lower()
        for word in self.errors.resource_words:
            if word.replace("_", " ") in joined:
                return word
        return None

    def parse(self, call: ApiCall[T], response: httpx.Response) -> T:
        """Decode and validate a success response; an unreadable one is transient for reads."""
        try:
            data = response.json() if response.content else None
        except ValueError:
            detail = f"the answer to {call.method} {call.what} is not valid JSON (HTTP {response.status_code})"
            if call.replay is Replay.SAFE:
                raise _Transient(ErrorKind.RESPONSE, detail) from None
            raise self.errors.build(ErrorKind.RESPONSE, f"{self.errors.service}: {detail}", status_code=response.status_code) from None
        try:
            return call.parse(data)
        except (ValueError, TypeError) as exc:
            problem = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
            detail = f"the answer to {call.method} {call.what} has an unexpected shape: {problem}"
            if call.replay is Replay.SAFE:
                raise _Transient(ErrorKind.RESPONSE, detail) from None
            raise self.errors.build(ErrorKind.RESPONSE, f"{self.errors.service}: {detail}", status_code=response.status_code) from None

    def final_error(self, call: ApiCall[Any], failure: _Transient) -> ProviderApiError:
        """The typed error once retries are spent."""
        if failure.status is not None:
            error = self.status_error(call, failure.status, failure.messages, failure.headers)
            error.message += f" (after {self.settings.max_retries} retries at most)"
            error.args = (error.message,)
            return error
        return self.errors.build(
            failure.kind,
            f"{self.errors.service} {call.method} {call.what} failed after retries: {failure.detail}",
        )

    # ---- transports ---------------------------------------------------------------------------
    def read(self, call: ApiCall[T], response: httpx.Response) -> T:
        """Check the status and parse the body of one answer."""
        self.check_status(call, response)
        return self.parse(call, response)

    def send(self, client: httpx.Client, call: ApiCall[T]) -> T:
        """Send ``call`` through the sync client, with retries; return the parsed result."""
        kwargs = self.request_kwargs(call)
        try:
            for attempt in tenacity.Retrying(**self.retry_kwargs(call)):
                with attempt:
                    try:
                        response = client.request(**kwargs)
                    except httpx.TransportError as exc:
                        raise self.transport_failure(call, exc) from None
                    return self.read(call, response)
        except _Transient as failure:
            raise self.final_error(call, failure) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def asend(self, client: httpx.AsyncClient, call: ApiCall[T]) -> T:
        """
        Send ``call`` through the async client, with retries; return the parsed result.

        The first try runs without building the retry machinery (nearly every call of a poller succeeds at
        once, and tenacity's per-call objects were a tenth of its CPU); when it fails transiently, the same
        policy takes over with that failure as its first attempt, the time it took counted in the budget.
        """
        kwargs = self.request_kwargs(call)
        started = time.monotonic()
        try:
            return await self._atry(client, call, kwargs)
        except _Transient as failed:
            first: _Transient | None = failed
        try:
            async for attempt in tenacity.AsyncRetrying(**self.retry_kwargs(call, spent=time.monotonic() - started)):
                with attempt:
                    if first is not None:
                        replayed, first = first, None
                        raise replayed
                    return await self._atry(client, call, kwargs)
        except _Transient as failure:
            raise self.final_error(call, failure) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _atry(self, client: httpx.AsyncClient, call: ApiCall[T], kwargs: dict[str, Any]) -> T:
        """One try: send, map a network failure (transient or final), check and parse the answer."""
        try:
            response = await client.request(**kwargs)
        except httpx.TransportError as exc:
            raise self.transport_failure(call, exc) from None
        return self.read(call, response)
