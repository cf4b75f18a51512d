"""The server routes this client uses, spelled as in packages/protocol/src/routes.ts.

Every URL is built from this table by ``build_path``, never by hand, and a
test checks each entry against the TypeScript route table (field note 2: a
client and a server that disagree on a URL fail loudly, in CI).
"""

from __future__ import annotations

import re
from typing import Dict, Mapping, Optional, Tuple, Union
from urllib.parse import quote, urlencode

API_PREFIX = "/api/v1"

#: name (as in routes.ts) -> (method, path template)
ROUTES: Dict[str, Tuple[str, str]] = {
    "createRun": ("POST", f"{API_PREFIX}/runs"),
    "listRuns": ("GET", f"{API_PREFIX}/runs"),
    "countRuns": ("GET", f"{API_PREFIX}/run-counts"),
    "getRun": ("GET", f"{API_PREFIX}/runs/:id"),
    "deleteRun": ("DELETE", f"{API_PREFIX}/runs/:id"),
    "appendEvents": ("POST", f"{API_PREFIX}/runs/:id/events"),
    "readEvents": ("GET", f"{API_PREFIX}/runs/:id/events"),
    "finishRun": ("POST", f"{API_PREFIX}/runs/:id/finish"),
    "heartbeat": ("POST", f"{API_PREFIX}/runs/:id/heartbeat"),
    "cancelRun": ("POST", f"{API_PREFIX}/runs/:id/cancel"),
    "retryRun": ("POST", f"{API_PREFIX}/runs/:id/retry"),
    "streamRun": ("GET", f"{API_PREFIX}/runs/:id/stream"),
    "whoami": ("GET", f"{API_PREFIX}/whoami"),
    "createToken": ("POST", f"{API_PREFIX}/tokens"),
    "listTokens": ("GET", f"{API_PREFIX}/tokens"),
    "revokeToken": ("DELETE", f"{API_PREFIX}/tokens/:id"),
    "createRunToken": ("POST", f"{API_PREFIX}/runs/:id/tokens"),
    "putArtifact": ("PUT", f"{API_PREFIX}/runs/:id/artifacts/:name"),
    "listArtifacts": ("GET", f"{API_PREFIX}/runs/:id/artifacts"),
    "getArtifact": ("GET", f"{API_PREFIX}/runs/:id/artifacts/:name"),
    "runLog": ("GET", f"{API_PREFIX}/runs/:id/log"),
    "exportRun": ("GET", f"{API_PREFIX}/runs/:id/export"),
    "importRun": ("POST", f"{API_PREFIX}/import"),
    "listHandlers": ("GET", f"{API_PREFIX}/handlers"),
}

#: The request headers this client sends that routes.ts declares on a route
#: (``headers``), spelled as there: lower case, as the server reads them.
IDEMPOTENCY_KEY = "idempotency-key"
LAST_EVENT_ID = "last-event-id"
RANGE = "range"
ARTIFACT_METADATA = "x-runtrail-metadata"

#: route name -> the declared headers this client sends on it; a test checks
#: each against the header parameters of the server's OpenAPI document.
SENT_HEADERS: Dict[str, Tuple[str, ...]] = {
    "createRun": (IDEMPOTENCY_KEY,),
    "retryRun": (IDEMPOTENCY_KEY,),
    "streamRun": (LAST_EVENT_ID,),
    "putArtifact": (ARTIFACT_METADATA,),
    "getArtifact": (RANGE,),
    "runLog": (RANGE,),
}

QueryValue = Union[str, int, float, bool, None]

_PARAM_NAMES = {"id": "a run id", "name": "an artifact name"}


def _id_hint(value: object) -> str:
    """How to get the id out of what a script has in hand instead: a run as get_run/start return it, or a Run handle."""
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return ": pass run[\"id\"]"
    if isinstance(getattr(value, "id", None), str):
        return ": pass run.id"
    return ""


def build_path(name: str, params: Optional[Mapping[str, str]] = None, query: Optional[Mapping[str, QueryValue]] = None) -> str:
    """The path of route ``name`` with its ``:params`` filled in (URL-encoded) and a query string."""
    template = ROUTES[name][1]
    values = params or {}

    def fill(match: "re.Match[str]") -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"build_path({name}): missing param {key}")
        value = values[key]
        if not isinstance(value, str):
            # str() of it asked for a run named "{'id': ...}" or "<runtrail.Run ...>": run_not_found, hiding the slip.
            raise TypeError(f"{_PARAM_NAMES.get(key, key)} is a str, got {type(value).__name__} {value!r:.100}{_id_hint(value)}")
        return quote(value, safe="")

    path = re.sub(r":([A-Za-z]+)", fill, template)
    pairs = [(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (query or {}).items() if v is not None]
    return f"{path}?{urlencode(pairs)}" if pairs else path
