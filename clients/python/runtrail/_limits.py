"""How much data one event may carry, and how long a message, as packages/protocol/src/limits.ts defines it.

A server's settings default to these (``maxEventDataBytes``,
``maxMetaBytes``); ``run.event`` refuses larger data at the call site, where
the script can still do something about it, instead of the whole batch
being refused later. A test checks them against limits.ts.
"""

from __future__ import annotations

#: Bytes of one event's data as compact UTF-8 JSON (MAX_EVENT_DATA_BYTES), the ``meta`` event's excepted.
MAX_EVENT_DATA_BYTES = 1024 * 1024
#: Bytes of a ``meta`` event's data (MAX_META_BYTES).
MAX_META_BYTES = 64 * 1024
#: Bytes of events one request carries at most, unless one event alone is larger: well below a
#: server's default request limit (``bodyLimitBytes``, 8 MiB), as in the Node SDK (``maxBatchBytes``).
DEFAULT_MAX_BATCH_BYTES = 1024 * 1024
#: Characters of a run's error message and a failed call's error (MAX_ERROR_MESSAGE_CHARS): longer ones are cut.
MAX_ERROR_MESSAGE_CHARS = 8192
#: Characters of one log message (MAX_LOG_MESSAGE_CHARS).
MAX_LOG_MESSAGE_CHARS = 16_384
#: Characters of a call's label and of a progress message (MAX_LABEL_CHARS).
MAX_LABEL_CHARS = 500
#: Characters of an event's type (MAX_EVENT_TYPE_CHARS).
MAX_EVENT_TYPE_CHARS = 100
#: Levels of lists and dicts a server takes in event data, an output or metadata (events.ts MAX_JSON_DEPTH).
MAX_JSON_DEPTH = 64
