"""Expected failures: bad params, missing or corrupt data, an unsuitable environment.

A stage that raises a :class:`QfairError` prints one line naming the cause and the fix and exits
with status 2 (``qfair.stage.run_stage``); a traceback is printed only when ``QFAIR_DEBUG=1``.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class QfairError(Exception):
    """An expected error whose message names the key, file or setting at fault and the fix."""
