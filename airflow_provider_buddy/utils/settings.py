"""The provider's own settings: section ``[buddy]`` of Airflow's configuration (declared in ``get_provider_info``,
so ``airflow config list`` shows them), set in ``airflow.cfg`` or as ``AIRFLOW__BUDDY__<KEY>``.

Each setting is read where it is used (the triggerer, a worker), with a clear error naming the setting when its
value is wrong. Settings that used to be bare environment variables still work for one release, with a
deprecation warning naming the new setting.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

SECTION = "buddy"


@dataclass(frozen=True)
class Setting:
    """
    One option of the ``[buddy]`` section.

    :param key: the option's name in the section.
    :param default: its default, as the configuration file would hold it.
    :param description: what it does (shown by ``airflow config list``).
    :param kind: ``integer``, ``float`` or ``boolean`` (how it is read), or ``string``.
    :param minimum: the smallest value allowed (numbers).
    :param maximum: the largest value allowed (numbers).
    :param legacy_env: the environment variable it replaces (still read, with a deprecation warning).
    :param example: an example value.
    """

    key: str
    default: str
    description: str
    kind: str = "string"
    minimum: float | None = None
    maximum: float | None = None
    legacy_env: str | None = None
    example: str | None = None

    @property
    def env(self) -> str:
        """The environment variable Airflow reads for it."""
        return f"AIRFLOW__{SECTION.upper()}__{self.key.upper()}"

    def provider_info(self) -> dict[str, str | None]:
        """How ``get_provider_info``'s ``config`` section declares it."""
        return {
            "description": self.description,
            "version_added": "0.2.0",
            "type": self.kind,
            "example": self.example,
            "default": self.default,
        }


TRIGGERER_MAX_IN_FLIGHT = Setting(
    "triggerer_max_in_flight",
    "10",
    "The most reads one triggerer sends to Buddy or GoRules at once (one pooled connection each), 1 to 1000. "
    "Ten keep up with a thousand tasks polling every 10 s while an answer takes under 100 ms; reads per second "
    "are about this number divided by the round-trip time.",
    kind="integer",
    minimum=1,
    maximum=1000,
    legacy_env="BUDDY_TRIGGERER_MAX_IN_FLIGHT",
    example="32",
)
HTTP_TRANSPORT = Setting(
    "http_transport",
    "aiohttp",
    "The client the triggerer's shared poller sends reads with: 'aiohttp' (a pooled aiohttp session) or 'httpx' (httpx's own transport).",
    legacy_env="BUDDY_HTTP_TRANSPORT",
    example="httpx",
)
RESUME_HOLD = Setting(
    "resume_hold_seconds",
    "20",
    "Seconds after a task deferred before its trigger may resume it on a worker (a failure, a gate answered in "
    "the worker). Airflow 3.1-3.3 can fail a task resumed sooner (its deferring try's exit is reported late; "
    "apache/airflow#67287, #72716). Raise it with CeleryExecutor, remote logging or a busy scheduler.",
    kind="float",
    minimum=0,
    maximum=3600,
    example="60",
)
END_IN_TRIGGERER = Setting(
    "end_in_triggerer",
    "True",
    "A wait that ends well ends its task in the triggerer (its XComs stored from there): no worker is "
    "woken, and Airflow's defer race cannot hit it. Tasks with an on_success_callback or outlets always resume "
    "on a worker (Airflow runs neither for a task ended in the triggerer).",
    kind="boolean",
    example="False",
)

ALL = (TRIGGERER_MAX_IN_FLIGHT, HTTP_TRANSPORT, RESUME_HOLD, END_IN_TRIGGERER)


def _configured(setting: Setting) -> str:
    from airflow_provider_buddy.utils.airflow_compat import conf

    if setting.legacy_env and setting.legacy_env in os.environ and setting.env not in os.environ:
        warnings.warn(
            f"{setting.legacy_env} is deprecated and will be removed in the next release: "
            f"set [{SECTION}] {setting.key} (or {setting.env}) instead",
            DeprecationWarning,
            stacklevel=3,
        )
        return os.environ[setting.legacy_env]
    value = conf.get(SECTION, setting.key, fallback=None)
    return setting.default if value is None else str(value)


def _number(setting: Setting, *, integer: bool) -> float:
    raw = _configured(setting).strip()
    try:
        value = float(int(raw)) if integer else float(raw)
    except ValueError:
        value = float("nan")
    low = setting.minimum if setting.minimum is not None else float("-inf")
    high = setting.maximum if setting.maximum is not None else float("inf")
    if not low <= value <= high:  # NaN fails too
        kind = "a whole number" if integer else "a number"
        raise ValueError(f"[{SECTION}] {setting.key} must be {kind} from {setting.minimum:g} to {setting.maximum:g}, got {raw!r}")
    return value


def read_int(setting: Setting) -> int:
    """An integer setting; a ValueError names the setting and the allowed range."""
    return int(_number(setting, integer=True))


def read_float(setting: Setting) -> float:
    """A number setting; a ValueError names the setting and the allowed range."""
    return _number(setting, integer=False)


def read_bool(setting: Setting) -> bool:
    """A true/false setting; a ValueError names the setting."""
    raw = _configured(setting).strip().lower()
    if raw in ("true", "t", "1", "yes", "on"):
        return True
    if raw in ("false", "f", "0", "no", "off"):
        return False
    raise ValueError(f"[{SECTION}] {setting.key} must be True or False, got {raw!r}")


def read_choice(setting: Setting, choices: tuple[str, ...]) -> str:
    """A setting with a fixed set of values; a ValueError names the setting and the values."""
    raw = _configured(setting).strip().lower()
    if raw not in choices:
        raise ValueError(f"[{SECTION}] {setting.key} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def config_section() -> dict[str, object]:
    """The ``[buddy]`` section as ``get_provider_info`` declares it."""
    return {
        SECTION: {
            "description": "Settings of the Buddy.Works and GoRules BRMS provider (airflow-provider-buddy).",
            "options": {setting.key: setting.provider_info() for setting in ALL},
        }
    }
