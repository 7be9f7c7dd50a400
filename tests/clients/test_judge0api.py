"""PyPI `judge0api` (vCra, requests), unchanged, against rce's shim. This client builds its
URLs with trailing slashes: `POST /submissions/?base64_encoded=true&wait=true` and
`GET /submissions/<token>/?base64_encoded=true&fields=...` (Rails routing accepts both), and
sends source, stdin and expected output as base64 bytes."""

import re

import judge0api
import pytest
import requests
from judge0api import submission

from conftest import API, C, PYTHON

# Rails renders times with milliseconds, in UTC.
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def client():
    return judge0api.Client(API)  # no auth token or user: _login does nothing


def test_submit_with_wait(client):
    s = submission.submit(client, b"print(input()[::-1])", PYTHON, stdin=b"olleh")
    assert s.status == {"id": 3, "description": "Accepted"}
    assert s["stdout"] == "hello\n"
    assert s.stderr is None
    assert s.compile_output is None
    assert s.message is None
    assert float(s.time) >= 0 and s.memory > 0
    assert s.token


def test_get_by_token_with_fields(client):
    s = submission.submit(client, b"print('hi')", PYTHON)
    got = submission.get(client, s.token)
    assert got.token == s.token
    assert got["stdout"] == "hi\n"
    assert got.language_id == PYTHON
    assert got.status == {"id": 3, "description": "Accepted"}
    assert got.exit_code == 0
    assert got.exit_signal is None
    assert TIME.match(got.created_at), got.created_at
    assert TIME.match(got.finished_at), got.finished_at
    assert got.finished_at >= got.created_at
    assert float(got.wall_time) >= 0
    # Exactly the fields asked for (Submission._response_fields).
    r = client.session.get(
        f"{client.endpoint}/submissions/{s.token}/",
        params={"base64_encoded": "true", "fields": ",".join(sorted(got._response_fields))},
    )
    assert r.status_code == 200
    assert set(r.json()) == got._response_fields


def test_expected_output_and_limits(client):
    wrong = submission.submit(client, b"print('a')", PYTHON, expected_output=b"b")
    assert wrong.status == {"id": 4, "description": "Wrong Answer"}
    tle = submission.submit(client, b"while True: pass", PYTHON, cpu_time_limit=1, wall_time_limit=3)
    assert tle.status == {"id": 5, "description": "Time Limit Exceeded"}


def test_compile_error_bytes(client):
    s = submission.submit(client, b"int main( {", C)
    assert s.status == {"id": 6, "description": "Compilation Error"}
    assert b"error" in s.compile_output
    assert s.stdout is None


def test_refused_submission_raises(client):
    # A 422 from upstream's validations is an HTTPError for this client.
    with pytest.raises(requests.HTTPError) as e:
        submission.submit(client, b"print(1)", PYTHON, memory_limit=1)
    assert e.value.response.status_code == 422
    assert e.value.response.json() == {"memory_limit": ["must be greater than or equal to 2048"]}
