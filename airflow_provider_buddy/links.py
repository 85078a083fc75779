"""Extra links: open the Buddy execution or the GoRules run a task started or waits on, read from the task's XCom.

A task stores its link the moment it knows the run (before any waiting), so the UI shows it while the task waits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey  # airflow.sdk.types on 3.3, airflow.models on 3.1
    from airflow.sdk import BaseOperator

HTML_URL_KEY = "html_url"
EXECUTION_ID_KEY = "execution_id"
RUN_PAGE_KEY = "run_page_url"


class _XComLink(BaseOperatorLink):
    """A link whose target a task pushed to XCom under :attr:`url_key`."""

    url_key: ClassVar[str]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The address as the task pushed it, or an empty string."""
        from airflow.providers.common.compat.sdk import XCom  # the configured XCom backend, on Airflow 3.1 to 3.3

        value: Any = XCom.get_value(ti_key=ti_key, key=self.url_key)
        return str(value) if value else ""

    @classmethod
    def persist(cls, context: Any, url: str | None) -> None:
        """Store the link at once (also under the link's own key), so the UI shows it while the task waits."""
        if not url:
            return
        ti = context["ti"]
        ti.xcom_push(key=cls.url_key, value=url)
        ti.xcom_push(key=cls().xcom_key, value=url)


class BuddyExecutionLink(_XComLink):
    """Link to the Buddy execution a task started or waits on (XCom ``html_url``)."""

    name = "Buddy execution"
    url_key = HTML_URL_KEY


class GoRulesRunLink(_XComLink):
    """Link to the GoRules deployment run a task started, waits on or cancelled (XCom ``run_page_url``): the
    connection's ``run_page`` template when set, else the BRMS itself (its UI has no documented deep link)."""

    name = "GoRules run"
    url_key = RUN_PAGE_KEY
