"""Reading an Airflow connection into the settings an HTTP client needs, with clear errors."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True, repr=False)
class ClientSettings:
    """
    Everything the HTTP core needs to talk to one service account. ``repr`` never shows the token.

    :param base_url: the API base URL with scheme and any path prefix, without a trailing slash.
    :param token: the bearer token.
    :param account: the workspace (Buddy) or None.
    :param timeout: seconds for each request.
    :param verify: TLS verification: True, False, or the path of a CA bundle.
    :param max_retries: how many times a retryable request is tried again.
    :param retry_min_wait: first backoff, in seconds.
    :param retry_max_wait: longest backoff between two tries, in seconds.
    :param retry_total_timeout: the most time all tries of one request may take, in seconds.
    :param page_template: where a person opens a run in the service's UI (extra ``run_page``, with ``{project_id}``
        and ``{run_id}``), when the service documents none.
    """

    base_url: str
    token: str
    account: str | None = None
    timeout: float = 30.0
    verify: bool | str = True
    max_retries: int = 5
    retry_min_wait: float = 1.0
    retry_max_wait: float = 60.0
    retry_total_timeout: float = 300.0
    page_template: str | None = None

    def __repr__(self) -> str:
        return (
            f"ClientSettings(base_url={self.base_url!r}, account={self.account!r}, token='***', "
            f"timeout={self.timeout}, verify={self.verify!r}, max_retries={self.max_retries})"
        )

    @property
    def pool_key(self) -> tuple[str, str, float]:
        """What two settings must share to use one pooled client (tokens travel per request)."""
        return (self.base_url, str(self.verify), self.timeout)


def is_loopback(host: str) -> bool:
    """
    True when ``host`` names this machine (``localhost``, 127.0.0.0/8, ``::1``).

    :param host: a host name or IP address.
    """
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def normalize_base_url(raw: str | None, *, default: str, conn_id: str, port: int | None = None) -> str:
    """
    The API base URL from the connection's host field: a scheme is required for http, https is
    assumed otherwise; any path (``/api`` on premises) is kept so calls are joined under it.

    :param raw: the host field as entered.
    :param default: the URL used when the field is empty.
    :param conn_id: the connection id, for error messages.
    :param port: the connection's port field, if set.
    """
    value = (raw or "").strip() or default
    if "://" not in value:
        value = "https://" + value
    try:
        url = httpx.URL(value)
    except Exception as exc:
        raise ValueError(f"Connection {conn_id!r}: host {value!r} is not a valid URL ({exc})") from None
    if url.scheme not in ("http", "https"):
        raise ValueError(f"Connection {conn_id!r}: host must be an http(s) URL, got scheme {url.scheme!r}")
    if not url.host:
        raise ValueError(f"Connection {conn_id!r}: host {value!r} has no host name")
    if port is not None and url.port is None:
        url = url.copy_with(port=port)
    if url.scheme == "http" and not is_loopback(url.host):
        raise ValueError(
            f"Connection {conn_id!r}: refusing to send the token over plain http:// to {url.host!r}; "
            "use https:// (plain http is allowed only for loopback addresses such as a local emulator)"
        )
    text = str(url.copy_with(query=None, fragment=None))
    return text.rstrip("/")


def _number(extra: Mapping[str, Any], key: str, default: float, conn_id: str, *, integer: bool = False) -> float:
    value = extra.get(key, default)
    if value is None or value == "":
        return default
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        kind = "a whole number" if integer else "a number"
        raise ValueError(f"Connection {conn_id!r}: extra {key!r} must be {kind}, got {value!r}") from None
    if number < 0 or (number == 0 and not integer):
        raise ValueError(f"Connection {conn_id!r}: extra {key!r} must be positive, got {value!r}")
    return number


def _verify(extra: Mapping[str, Any], conn_id: str) -> bool | str:
    value = extra.get("verify", True)
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "1", ""):
            return True
        if lowered in ("false", "no", "0"):
            return False
        return value
    raise ValueError(f"Connection {conn_id!r}: extra 'verify' must be true, false or a CA bundle path, got {value!r}")


def _page_template(extra: Mapping[str, Any], conn_id: str) -> str | None:
    value = extra.get("run_page")
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise ValueError(f"Connection {conn_id!r}: extra 'run_page' must be an http(s) URL template, got {value!r}")
    try:
        value.format(project_id="p", run_id="r")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"Connection {conn_id!r}: extra 'run_page' may only use {{project_id}} and {{run_id}} ({exc})") from None
    return value


def parse_extra(raw: Any, conn_id: str) -> dict[str, Any]:
    """
    The connection's extra as a dict, whether Airflow gives a dict or a JSON string.

    :param raw: the extra as stored.
    :param conn_id: the connection id, for error messages.
    """
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):
        loaded: Any = dict(raw)
    else:
        try:
            loaded = json.loads(raw)
        except (TypeError, ValueError):
            raise ValueError(f"Connection {conn_id!r}: extra is not valid JSON") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"Connection {conn_id!r}: extra must be a JSON object")
    # the connection form's own fields may arrive prefixed (extra__buddy__timeout); empty ones mean "the default"
    found: dict[str, Any] = {}
    for key, value in loaded.items():
        name = key.split("__", 2)[2] if key.startswith("extra__") and key.count("__") >= 2 else key
        if value is not None and value != "":
            found[name] = value
    return found


def settings_from_connection(
    *,
    conn_id: str,
    host: str | None,
    port: int | None,
    token: str | None,
    account: str | None,
    extra: Any,
    default_url: str,
    account_label: str | None,
) -> ClientSettings:
    """
    Build :class:`ClientSettings` from an Airflow connection's fields; raises ``ValueError`` naming the field.

    :param conn_id: the connection id, for error messages.
    :param host: the host field (API URL).
    :param port: the port field.
    :param token: the password field.
    :param account: the login field (workspace), when the service needs one.
    :param extra: the extra field.
    :param default_url: the URL used when host is empty.
    :param account_label: how the account field is called in the UI, or None when not needed.
    """
    if not token:
        raise ValueError(f"Connection {conn_id!r}: the token (password field) is empty")
    if account_label is not None and not (account or "").strip():
        raise ValueError(f"Connection {conn_id!r}: the {account_label} (login field) is empty")
    extras = parse_extra(extra, conn_id)
    return ClientSettings(
        base_url=normalize_base_url(host, default=default_url, conn_id=conn_id, port=port),
        token=token,
        account=(account or "").strip() or None,
        timeout=_number(extras, "timeout", 30.0, conn_id),
        verify=_verify(extras, conn_id),
        max_retries=int(_number(extras, "max_retries", 5, conn_id, integer=True)),
        retry_min_wait=_number(extras, "retry_min_wait", 1.0, conn_id),
        retry_max_wait=_number(extras, "retry_max_wait", 60.0, conn_id),
        retry_total_timeout=_number(extras, "retry_total_timeout", 300.0, conn_id),
        page_template=_page_template(extras, conn_id),
    )
