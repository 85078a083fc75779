"""The "Buddy execution" extra link: opens the run's page in Buddy, read from the task's XCom."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

HTML_URL_KEY = "html_url"
EXECUTION_ID_KEY = "execution_id"


class BuddyExecutionLink(BaseOperatorLink):
    """Link to the Buddy execution a task started or waits on (XCom ``html_url``)."""

    name = "Buddy execution"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The execution's ``html_url`` as the task pushed it, or an empty string."""
        from airflow.sdk.execution_time.xcom import XCom

        value: Any = XCom.get_value(ti_key=ti_key, key=HTML_URL_KEY)
        return str(value) if value else ""

    @classmethod
    def persist(cls, context: Any, html_url: str | None) -> None:
        """Store the link at once (also under the link's own key), so the UI shows it while the task waits."""
        if not html_url:
            return
        ti = context["ti"]
        ti.xcom_push(key=HTML_URL_KEY, value=html_url)
        ti.xcom_push(key=cls().xcom_key, value=html_url)
