"""Prefect flows: ingest, embed, compare, align, audit (end to end).

Importing the package makes Prefect log a user's mistake as its one sentence, without a
traceback (:mod:`speclens.errors`); every flow raises such errors and its caller gets them
back from the final state with :func:`speclens.flows.runtime.flow_result`.
"""

from speclens.errors import log_user_errors_as_sentences

log_user_errors_as_sentences()
