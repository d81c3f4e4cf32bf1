"""Schemathesis hooks for run.sh (loaded through `hooks` in schemathesis.toml).

A server without named MongoDB clusters documents `x-mongo-cluster-name` with the schema
`{"not": {}}`: no value is valid, leave the header out (any value is 422). Schemathesis's coverage
phase does not honour that and sends such a value as if it were valid, so a parameter no value can
satisfy is dropped from the loaded document: it is not part of this server's surface. With named
clusters configured, the header lists them as an `enum` and is fuzzed like any other parameter.
"""

import schemathesis


def _unsatisfiable(schema):
    return schema == {"not": {}}


@schemathesis.hook
def before_load_schema(context, raw_schema):
    for item in raw_schema.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and "parameters" in operation:
                operation["parameters"] = [
                    p for p in operation["parameters"] if not _unsatisfiable(p.get("schema"))
                ]
