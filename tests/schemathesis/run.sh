#!/usr/bin/env bash
# Fuzzes a running simtest with Schemathesis, driven by the server's own /openapi.json.
#
#   tests/schemathesis/run.sh URL TOKEN [ORG]
#
#   URL    base URL of a running server, e.g. http://127.0.0.1:8080
#   TOKEN  a bearer token of an admin of ORG (`simtest serve --demo` prints one)
#   ORG    the organization to aim at; default `acme`, the demo org
#
# Start the server with rate limits off, or the fuzzer spends its budget on 429s:
#
#   simtest serve --demo --rate-limits-off --listen 127.0.0.1:18181 --data-dir /tmp/st-demo
#
# Every operation is tested in all phases (examples, coverage, fuzzing, stateful) with valid and
# invalid data. The checks: no 5xx, every status and response body as documented, invalid input
# refused, valid input not refused with 422, required headers enforced, undocumented methods refused,
# auth enforced. Not `use_after_free`: a deleted unit test stays readable by design (soft delete; simtest's
# read-one answers it with `is_deleted: true`, tests/api/lifecycle.rs). Exits non-zero on any failure.
#
# Environment: SCHEMATHESIS_MAX_EXAMPLES (per operation and phase, default 50), SCHEMATHESIS_SEED
# (default random; the run prints the one it used), SCHEMATHESIS_TIME_LIMIT (seconds, default 300:
# the whole run is stopped and fails past it), SCHEMATHESIS_REPORT_DIR (JUnit report, default
# target/schemathesis).
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
url=${1%/}
token=$2
export SIMTEST_ORG=${3:-acme}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
venv="$repo/.venv"
requirements="$here/requirements.txt"

python=${PYTHON:-python3}
if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating $venv" >&2
    "$python" -m venv "$venv"
fi
pinned=$(grep -E '^schemathesis==' "$requirements" | cut -d= -f3)
installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)
if [[ "$installed" != "$pinned" ]]; then
    echo "installing schemathesis $pinned into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
fi

checks=(
    not_a_server_error
    status_code_conformance
    content_type_conformance
    response_schema_conformance
    response_headers_conformance
    negative_data_rejection
    positive_data_acceptance
    missing_required_header
    unsupported_method
    ignored_auth
    ensure_resource_availability
)
report_dir=${SCHEMATHESIS_REPORT_DIR:-$repo/target/schemathesis}
args=(
    --config-file "$here/schemathesis.toml"
    run "$url/openapi.json"
    --header "Authorization: Bearer $token"
    --checks "$(IFS=,; echo "${checks[*]}")"
    --mode all
    --phases examples,coverage,fuzzing,stateful
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}"
    --wait-for-schema 30
    --request-timeout 10
    --report junit
    --report-dir "$report_dir"
    --no-color
)
if [[ -n "${SCHEMATHESIS_SEED:-}" ]]; then
    args+=(--seed "$SCHEMATHESIS_SEED")
fi

limit=${SCHEMATHESIS_TIME_LIMIT:-300}
started=$SECONDS
status=0
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" \
    timeout --signal=INT --kill-after=15 "$limit" "$venv/bin/schemathesis" "${args[@]}" || status=$?
echo "schemathesis finished in $((SECONDS - started))s with exit status $status" >&2
if [[ $status -eq 124 || $status -eq 130 ]]; then
    echo "the run exceeded SCHEMATHESIS_TIME_LIMIT=${limit}s" >&2
fi
exit "$status"
