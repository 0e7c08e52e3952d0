"""schemathesis hooks for scripts/fuzz: keep the run from locking itself out, and tell
positive_data_acceptance about the rules a schema cannot state.

1. Lock-out guard (before_call).

The run authenticates as the bootstrap owner (API key) and, for introspection, as one seeded
server (HTTP Basic). A generated request that deleted that key or that user, took the owner out of
a group (Owners), or deleted or re-keyed that server would turn every later request into a 401
and the rest of the run into noise. Such requests are sent about a placeholder that names nothing
instead (a 404); every other request, those on the Owners group and the other seeded objects
included, goes through unchanged. The references come from FUZZ_PROTECTED (protected.json,
written by seed.py).

2. Rules that depend on state (filter_failure). positive_data_acceptance says that a request the
schema calls valid must not be answered 400 or 422. Three answers are right all the same, because
no schema can say in advance what they depend on:
  - 422 with a rule code (`vault_not_grantable` R5, `vault_not_granted` R7, …): the request is
    well formed but the objects it names break a rule;
  - 422 `invalid_field` on a duration (`expires_in`, a trust policy's `ttl`, the token list's
    `expiring_within` and `unused_for`) whose text has the documented shape (the pattern) but
    whose total is zero or over its limit (10 years; 24 h for `ttl`): a sum, not a shape;
  - 422 `invalid_field` on a trust policy's `claims`: a map whose keys and values must each be
    non-empty patterns without control characters, which this schema does not spell out;
  - 400 `invalid_grant` or `invalid_target` from `POST /v1/token-exchange` (RFC 6749 §5.2's
    shape): whether a subject token verifies against a trusted issuer's keys, and whether the
    server it names exists and has a matching policy, is state, not shape; and its
    `invalid_request` about a `subject_token` of the documented shape whose parts are not
    base64url JSON (content, not shape);
  - 400 `invalid_cursor`: a cursor is opaque, only the `next_cursor` values this service
    returned are cursors.
And one answer ensure_resource_availability misreads: after a create, it calls an operation
that names the new object in its path and takes any 404 as "the new object is missing". When the
404 names something else, a vault named in the body of a token create that does not exist, the
new object was found and the 404 is R1's answer about the other reference; that failure is
dropped too (the envelope's `details.reference` says what was not found).
Only those failures of those two checks are dropped (schemathesis counts them in its summary);
a 422 `invalid_field` on any other field, or any other status, still fails the run: it means the
description and the handler disagree about what is valid.
"""

import json
import os

import schemathesis

with open(os.environ["FUZZ_PROTECTED"], encoding="utf-8") as f:
    _protected = json.load(f)


def _refs(name):
    return {str(v).strip().lower() for v in _protected[name]}


OWNER_USER = _refs("owner_user")
OWNER_KEYS = _refs("owner_keys")
INTROSPECTOR = _refs("introspector")


def _is(value, refs):
    return isinstance(value, str) and value.strip().lower() in refs


# (method, path template, path parameter, protected references)
_GUARDS = (
    ("DELETE", "/v1/users/{user}", "user", OWNER_USER),
    ("DELETE", "/v1/users/{user}/keys/{key_id}", "key_id", OWNER_KEYS),
    ("DELETE", "/v1/groups/{group}/members/{user}", "user", OWNER_USER),
    ("DELETE", "/v1/connect/servers/{server}", "server", INTROSPECTOR),
    ("POST", "/v1/connect/servers/{server}/credentials", "server", INTROSPECTOR),
)
# What a guarded reference is replaced with: the name of nothing, so the request is a plain 404.
PLACEHOLDER = "fuzz-protected-reference"


@schemathesis.hook
def before_call(context, case, kwargs):
    """Every phase, the stateful one included (whose links fill path parameters after
    generation), sends through here."""
    method = case.operation.method.upper()
    for guard_method, path, name, refs in _GUARDS:
        if method == guard_method and case.operation.path == path:
            params = case.path_parameters
            if params and _is(params.get(name), refs):
                params[name] = PLACEHOLDER


def _error(response):
    """(code, details) of an E1 envelope, or (None, {})."""
    try:
        error = response.json()["error"]
        return error["code"], error.get("details") or {}
    except Exception:  # not the envelope: let the failure stand
        return None, {}


# The duration fields whose sum, not shape, can be out of range (see 2. above).
DURATIONS = ("expires_in", "ttl", "expiring_within", "unused_for")


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """False drops the failure (see 2. above)."""
    kind = getattr(failure, "code", None)
    if response is None or kind not in ("ST202", "ST302"):
        return True
    code, details = _error(response)
    if kind == "ST302":
        named = {str(v) for v in (case.path_parameters or {}).values()}
        return not (response.status_code == 404 and code == "not_found"
                    and details.get("reference") not in named)
    if response.status_code == 422 and code is not None:
        field = str(details.get("field", ""))
        if code != "invalid_field" or field in DURATIONS or field.startswith("claims"):
            return False
    if response.status_code == 400 and case.path == "/v1/token-exchange":
        try:
            answer = response.json()
            if answer.get("error") in ("invalid_grant", "invalid_target"):
                return False
            # A subject token of the documented shape whose parts do not decode to a JWT's
            # JSON: base64url of JSON is content, not shape.
            if answer.get("error") == "invalid_request" and str(
                    answer.get("error_description", "")).startswith("subject_token"):
                return False
        except Exception:
            pass
    if response.status_code == 400 and code == "invalid_cursor":
        return False
    return True
