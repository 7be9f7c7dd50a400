"""Shared settings of the client tests: where the shim is, and a run that fails (never skips)
when it does not answer. Every test talks only to $RCE_API, a listener on this machine
(`make up` starts it at http://127.0.0.1:8080), or to a listener the test starts itself on
127.0.0.1."""

import json
import os
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest

API = os.environ.get("RCE_API", "http://127.0.0.1:8080").rstrip("/")

# Only this machine: the clients default to public hosts (emkc.org, ce.judge0.com); every test
# passes API explicitly, and this guard refuses anything else.
assert urlsplit(API).hostname in ("127.0.0.1", "localhost", "::1"), f"RCE_API={API} is not local"

# The SDK's implicit client is resolved from these (never its cloud default).
os.environ.setdefault("JUDGE0_CE_ENDPOINT", API)
os.environ.setdefault("JUDGE0_CE_AUTH_HEADERS", "{}")
os.environ.setdefault("JUDGE0_SUPPRESS_PREVIEW_WARNING", "1")

# Judge0 CE 1.13.1 language ids used by the tests (upstream's db/languages; rce lists the same).
BASH = 46
C = 50
CPP = 54
JAVA = 62
PYTHON = 71
MULTI_FILE = 89


def pytest_sessionstart(session):
    try:
        with urllib.request.urlopen(f"{API}/about", timeout=5) as r:
            r.read()
    except (urllib.error.URLError, OSError) as e:
        pytest.exit(f"the shim does not answer at RCE_API={API}: {e} (run: make up)", returncode=1)


def http(method, path, body=None, params=None, headers=None, timeout=90):
    """One request to the shim: (status, parsed JSON or text, response headers)."""
    url = API + path
    if params:
        url += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    data = None
    hdrs = {"Accept": "application/json"}
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw, status, rh = r.read(), r.status, r.headers
    except urllib.error.HTTPError as e:
        raw, status, rh = e.read(), e.code, e.headers
    try:
        return status, json.loads(raw), rh
    except ValueError:
        return status, raw.decode(errors="replace"), rh


def poll(predicate, timeout=60, every=0.2):
    """Call predicate() until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not done within {timeout}s")
        time.sleep(every)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """CPython 3.11.7's ast module can crash (SystemError: AST constructor recursion depth
    mismatch) while pytest reads the source of a traceback entry; that would end the whole
    session (an INTERNALERROR). Report the test's own failure instead, without the listing."""
    try:
        return (yield)
    except SystemError as e:
        from _pytest.reports import TestReport

        failure = f"{call.excinfo.typename}: {call.excinfo.value}" if call.excinfo else "failed"
        return TestReport(
            item.nodeid,
            item.location,
            {k: 1 for k in item.keywords},
            "failed",
            f"{failure}\n(the traceback could not be formatted: {e})",
            call.when,
            duration=call.duration,
            start=call.start,
            stop=call.stop,
        )
