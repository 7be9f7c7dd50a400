"""PyPI `judge0-client` (Roslovets-Inc, async, httpx2 + pydantic), unchanged, against rce's
shim: `Judge0Client(base_url=...)`, single-file and multi-file (language 89) submissions with
`additional_files` given as a mapping (the client zips and base64-encodes them), results read
with `base64_encoded=true` and decoded by the client (`message` too), and the information
endpoints `/about`, `/workers`, `/isolate` and `/license`."""

import asyncio

import pytest
from judge0_client import Judge0Client, Judge0Error, MultiFileSubmission, SingleFileSubmission
from judge0_client.types import SubmissionStatusId

from conftest import API, C, PYTHON


def run(coro):
    return asyncio.run(coro)


async def submit_and_wait(request, timeout=90.0):
    """The client has no wait: create, then poll get_submission as its README does."""
    async with Judge0Client(base_url=API, timeout=30.0) as client:
        created = await client.create_submission(request)
        assert created.token
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            detail = await client.get_submission(created.token)
            assert detail.token == created.token
            if detail.status.id not in (SubmissionStatusId.IN_QUEUE, SubmissionStatusId.PROCESSING):
                return detail
            if loop.time() > deadline:
                pytest.fail(f"submission {created.token} not finished within {timeout}s")
            await asyncio.sleep(0.2)


def test_quick_start():
    # The README's quick start, with stdin.
    detail = run(
        submit_and_wait(
            SingleFileSubmission(
                language_id=PYTHON, source_code="print('sum =', int(input()) + 2)", stdin="40\n"
            )
        )
    )
    assert detail.status.id == SubmissionStatusId.ACCEPTED
    assert detail.status.description == "Accepted"
    assert detail.stdout == "sum = 42\n"
    assert detail.stderr is None
    assert detail.compile_output is None
    assert detail.message is None
    assert detail.time is not None and detail.memory is not None


def test_additional_files_mapping():
    # The README's "attach additional files" example.
    detail = run(
        submit_and_wait(
            SingleFileSubmission(
                language_id=PYTHON,
                source_code="import helper; print(helper.answer())",
                additional_files={"helper.py": "def answer():\n    return 42\n"},
            )
        )
    )
    assert detail.status.id == SubmissionStatusId.ACCEPTED, (detail.status, detail.stderr, detail.message)
    assert detail.stdout == "42\n"


def test_c_header_in_additional_files():
    # The docs: "For C or C++ programs with additional_files you can send header files".
    detail = run(
        submit_and_wait(
            SingleFileSubmission(
                language_id=C,
                source_code='#include <stdio.h>\n#include "answer.h"\nint main(void) { printf("%d\\n", ANSWER); }\n',
                additional_files={"answer.h": "#define ANSWER 42\n"},
            )
        )
    )
    assert detail.status.id == SubmissionStatusId.ACCEPTED, (detail.status, detail.compile_output)
    assert detail.stdout == "42\n"


def test_multi_file_submission():
    # The README's multi-file example (language_id fixed to 89 by the model), python3 as the
    # interpreter's name.
    detail = run(
        submit_and_wait(
            MultiFileSubmission(
                additional_files={
                    "run": "python3 main.py\n",
                    "main.py": "print('Hello from multi-file!')\n",
                }
            )
        )
    )
    assert detail.status.id == SubmissionStatusId.ACCEPTED, (detail.status, detail.stderr, detail.message)
    assert detail.stdout == "Hello from multi-file!\n"


def test_runtime_error_message_is_decoded():
    # With base64_encoded=true upstream encodes `message` too; the client decodes it.
    detail = run(
        submit_and_wait(SingleFileSubmission(language_id=PYTHON, source_code="import sys\nsys.exit(7)"))
    )
    assert detail.status.id == SubmissionStatusId.RUNTIME_ERROR_NZEC
    assert detail.exit_code is None  # not among the default fields
    assert detail.message == "Exited with error status 7"


def test_compilation_error():
    detail = run(submit_and_wait(SingleFileSubmission(language_id=C, source_code="int main( {")))
    assert detail.status.id == SubmissionStatusId.COMPILATION_ERROR
    assert "error" in detail.compile_output
    assert detail.stdout is None and detail.time is None and detail.memory is None


def test_expected_output():
    detail = run(
        submit_and_wait(
            SingleFileSubmission(language_id=PYTHON, source_code="print('hello')", expected_output="goodbye")
        )
    )
    assert detail.status.id == SubmissionStatusId.WRONG_ANSWER
    assert detail.status.description == "Wrong Answer"
    assert detail.stdout == "hello\n"


def test_invalid_language_is_a_422():
    async def go():
        async with Judge0Client(base_url=API) as client:
            with pytest.raises(Judge0Error) as e:
                await client.create_submission(SingleFileSubmission(language_id=150000, source_code="x"))
            return str(e.value)

    message = run(go())
    assert message == "HTTP 422: {'language_id': [\"language with id 150000 doesn't exist\"]}"


def test_information_endpoints():
    async def go():
        async with Judge0Client(base_url=API) as client:
            return (
                await client.get_about(),
                await client.get_workers(),
                await client.get_isolate(),
                await client.get_license(),
            )

    about, workers, isolate, license_text = run(go())
    assert about.version == "1.13.1"
    assert about.homepage and about.source_code and about.maintainer
    assert len(workers) >= 1
    for w in workers:
        assert w.queue
        assert min(w.size, w.available, w.idle, w.working, w.paused, w.failed) >= 0
        assert w.idle + w.working + w.paused <= w.available
    assert isolate.strip()
    assert license_text.strip()
