"""Retry policy shared by every task: retry I/O failures only; a bad input or a bug fails
at once (its message is the useful part, and a retry would only repeat it)."""

from __future__ import annotations


def retry_on_io_error(task, task_run, state) -> bool:
    """retry_condition_fn: retry when the run failed with an OSError, else give up."""
    exc = state.data
    if not isinstance(exc, BaseException):
        try:
            exc = state.result(raise_on_failure=False)
        except Exception as err:  # the result could not be read: judge that error
            exc = err
    return isinstance(exc, OSError)
