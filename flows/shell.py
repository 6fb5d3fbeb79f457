"""What every flow does around its steps: settings received explicitly, crmsum's logging set up.

- `flow_settings(settings, data_dir)`: the Settings a flow was given, or (a deployment run, whose
  parameters are plain JSON) the worker's environment with an optional data root override;
- `flow_logging(settings)`: crmsum's redacted log file (DATA_DIR/logs/crmsum.log), and crmsum's log
  lines sent to the Prefect UI of the current run through Prefect's APILogHandler, redacted by the
  same filter; the handler is removed when the flow ends.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from crmsum.config import Settings
from crmsum.logs import RedactFilter, secrets_of, setup_logging


def flow_settings(settings: Settings | None = None, data_dir: str | None = None) -> Settings:
    if settings is not None:
        return settings.model_copy(update={"data_dir": Path(data_dir)}) if data_dir else settings
    return Settings(**({"data_dir": Path(data_dir)} if data_dir else {}))


class _InRun(logging.Filter):
    """Only records emitted inside a Prefect run reach the API (worker threads outside one have no run id)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from prefect.context import FlowRunContext, TaskRunContext

        return FlowRunContext.get() is not None or TaskRunContext.get() is not None


@contextlib.contextmanager
def flow_logging(settings: Settings) -> Iterator[None]:
    from prefect.logging.handlers import APILogHandler

    setup_logging(settings)
    logger = logging.getLogger("crmsum")
    handler = APILogHandler()
    handler.setLevel(logging.INFO)
    handler.addFilter(_InRun())
    handler.addFilter(RedactFilter(secrets_of(settings)))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        with contextlib.suppress(Exception):
            handler.flush()
