"""Schemathesis hooks for ./test.sh's API conformance run (SCHEMATHESIS_HOOKS=hooks)."""

import re
import uuid

import schemathesis

# platform::idempotency::KEY: 1 to 255 visible ASCII characters.
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_SUFFIX = 33  # "-" and 32 hex digits


@schemathesis.hook
def before_call(context, case, **kwargs):
    """Makes each valid Idempotency-Key unique, as a client makes one per request.

    A key the generator happens to send again with another body is a 422 by the contract:
    a fact of the server's state, which a check of one request at a time would call a
    valid request refused. A key that breaks the rule is sent as generated.
    """
    # Only valid requests need it (a refused one is refused either way), and an edit to a
    # request meant to be invalid makes schemathesis 4.32 judge it again without the
    # Authorization header it was sent without, and send that header after all.
    if case.meta is not None and case.meta.generation.mode.is_negative:
        return
    headers = case.headers or {}
    for name, value in headers.items():
        if name.lower() == "idempotency-key" and isinstance(value, str) and _KEY.fullmatch(value):
            headers[name] = value[: 255 - _SUFFIX] + "-" + uuid.uuid4().hex
