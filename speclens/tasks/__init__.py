"""Prefect tasks: thin wrappers that pass paths, ids and hashes, never arrays.

Importing the package (as a Dask worker does to run a task) makes Prefect log a user's
mistake as its one sentence, without a traceback (:mod:`speclens.errors`).
"""

from speclens.errors import log_user_errors_as_sentences

log_user_errors_as_sentences()
