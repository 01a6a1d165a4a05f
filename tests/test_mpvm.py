"""The MicroPython harness itself: it runs code in the real VM and surfaces its tracebacks."""

from __future__ import annotations

import pytest

from tests import mpvm


def test_runs_micropython_not_cpython() -> None:
    out = mpvm.run("import sys\nprint(sys.implementation.name)")
    assert out.strip() == "micropython"


def test_exception_carries_the_micropython_traceback() -> None:
    with pytest.raises(mpvm.MicroPythonError) as exc:
        mpvm.run("def f():\n    raise ValueError('boom')\nf()")
    assert "Traceback" in str(exc.value) and "ValueError: boom" in str(exc.value)


def test_repo_code_is_on_the_import_path() -> None:
    out = mpvm.run("from protocol import codec\nprint(codec.__file__)")
    assert out.strip() == "/flash/protocol/codec.py"


def test_cpython_only_modules_fail_in_the_vm() -> None:
    with pytest.raises(mpvm.MicroPythonError, match="ImportError"):
        mpvm.run("import dataclasses")
