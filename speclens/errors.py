"""The errors speclens raises on purpose, in one small hierarchy.

A :class:`SpeclensError` is a problem the user caused and can fix: its message is one sentence
that names the input and the fix. The commands print it on stderr and exit with code 2, with no
traceback; inside a flow it is logged as that sentence (:class:`OneSentence`, below), and
:func:`speclens.flows.runtime.flow_result` raises it again from the flow's final state. Anything
that is not a ``SpeclensError`` is a bug and keeps its traceback.

:class:`IncompleteRun` is the other expected end of a run: some shards failed after their
retries, the rest is committed, and running the same command again redoes only those (exit 1).

This module imports only the standard library, so every layer (storage, datasets, encoders,
tasks, flows, commands) can raise these; the math core (``speclens.spec``) raises plain
``ValueError``.
"""

from __future__ import annotations

import logging


class SpeclensError(ValueError):
    """A user-fixable problem, said in one sentence naming the input and the fix."""


class InputError(SpeclensError):
    """A problem with something the user passed: a path, a file, a store, an option value."""


class EncoderError(SpeclensError):
    """A problem with an encoder id, its weights or the data given to it."""


class ConfigError(SpeclensError):
    """An audit config (or a deployment's parameters) with problems: ``problems`` holds one
    line per problem, ``key.path: problem; fix``; nothing has run."""

    def __init__(self, problems: list[str], source: str = "audit config"):
        self.problems = list(problems)
        self.source = source
        super().__init__(f"{source}: {len(problems)} problem(s):\n" + "\n".join(problems))


class IncompleteRun(RuntimeError):
    """Some shards failed after their retries; running the same command again redoes only them."""


class OneSentence(logging.Filter):
    """Log a :class:`SpeclensError` or an :class:`IncompleteRun` as its sentence: the record's
    message becomes the error's message and the traceback is dropped (Prefect's engines log a
    failed task or flow run with ``exc_info``; for an expected end the stack only hides the
    sentence)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, SpeclensError | IncompleteRun):
            record.msg, record.args = str(exc), ()
            record.exc_info = record.exc_text = None
        return True


#: The loggers Prefect's flow and task engines log a run's end on.
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


def log_user_errors_as_sentences() -> None:
    """Install :class:`OneSentence` on Prefect's run loggers in this process (idempotent);
    ``speclens.tasks`` and ``speclens.flows`` do it on import, so Dask worker processes that
    run speclens tasks do it too."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneSentence) for f in logger.filters):
            logger.addFilter(OneSentence())
