"""Schemathesis hooks for run.sh (loaded through `hooks` in schemathesis.toml).

Two header parameters are taken out of the document before Schemathesis reads it, because no
request built from them can tell a correct server from a wrong one:

* `x-mongo-cluster-name` on a server without named MongoDB clusters: the document gives it the
  schema `{"not": {}}` (no value is valid, leave it out; any value is 422). Schemathesis's coverage
  phase does not honour that and sends a value as if it were valid. With named clusters configured,
  the header lists them as an `enum` and stays in, fuzzed like any other parameter.
* `Sec-WebSocket-Protocol`: kept in the document because the original API lists it, ignored by the
  server. Every header value is a valid list of strings once on the wire, so a "negative" value for
  it is only ever a false alarm.
* `Idempotency-Key` (simtest's own): the generator reuses a few values across unrelated requests, and
  reusing a key for a different request is the client's error (422) by design, so a "schema-valid
  request rejected" there says nothing. The key's behaviour is tested in tests/api/lifecycle.rs.
* `If-Match` and `If-None-Match` (simtest's own): the coverage phase sends values outside their
  pattern as if valid (as for the cluster header), and a valid tag of another version is a 412 by
  design. Their behaviour is tested in tests/api/lifecycle.rs.

The import operation's body is NDJSON; a serializer writes generated values as such (a string as it
is, anything else as one JSON line).
"""

import json

import schemathesis

IGNORED_HEADERS = {"sec-websocket-protocol", "idempotency-key", "if-match", "if-none-match"}


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return {"data": value}
    if isinstance(value, str):
        return {"data": value.encode("utf-8", "surrogatepass")}
    return {"data": (json.dumps(value) + "\n").encode()}


def _untestable(parameter):
    if parameter.get("schema") == {"not": {}}:
        return True
    return parameter.get("in") == "header" and parameter.get("name", "").lower() in IGNORED_HEADERS


@schemathesis.hook
def before_load_schema(context, raw_schema):
    for item in raw_schema.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and "parameters" in operation:
                operation["parameters"] = [p for p in operation["parameters"] if not _untestable(p)]
