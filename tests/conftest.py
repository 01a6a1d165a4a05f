"""Shared test set-up: the MicroPython VM plugin.

Every `tests/vm/mp_test_*.py` module runs inside the real MicroPython VM (see
tests/mpvm). Each of its `test_*` functions becomes one pytest item; a Python
exception in the VM fails that item and shows the MicroPython traceback. The
module runs once per session; its items read their outcome from that run.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests import mpvm

# The machines are shared and noisy: property tests judge results, never speed.
settings.register_profile("shared", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shared")

_MARK = "@@RESULT "
_DRIVER = """
import sys, io, json
import {module} as _m
for _n in {names!r}:
    try:
        _r = getattr(_m, _n)()
        if hasattr(_r, "send"):
            await _r
        print({mark!r} + json.dumps([_n, None]))
    except Exception as _e:
        _s = io.StringIO()
        sys.print_exception(_e, _s)
        print({mark!r} + json.dumps([_n, _s.getvalue()]))
"""


class VMFailure(Exception):
    pass


class VMModule(pytest.File):
    """A test module that runs inside the MicroPython VM."""

    _results: dict[str, str | None] | None = None
    _output: str = ""

    def collect(self) -> Iterator[pytest.Item]:
        tree = ast.parse(self.path.read_text(), filename=str(self.path))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.name.startswith("test_"):
                    yield VMItem.from_parent(self, name=node.name)

    def results(self) -> dict[str, str | None]:
        if self._results is None:
            names = [item.name for item in self.collect()]
            code = _DRIVER.format(module=self.path.stem, names=names, mark=_MARK)
            results: dict[str, str | None] = {}
            try:
                out = mpvm.run(code)
            except mpvm.MicroPythonError as exc:
                out = ""
                for name in names:
                    results[name] = f"the module failed in the VM:\n{exc}"
            other = []
            for line in out.splitlines():
                if line.startswith(_MARK):
                    name, tb = json.loads(line[len(_MARK) :])
                    results[name] = tb
                else:
                    other.append(line)
            self._output = "\n".join(other)
            self._results = results
        return self._results


class VMItem(pytest.Item):
    def runtest(self) -> None:
        parent = self.parent
        assert isinstance(parent, VMModule)
        results = parent.results()
        if self.name not in results:
            raise VMFailure(f"{self.name} did not report (VM output:\n{parent._output})")
        tb = results[self.name]
        if tb is not None:
            raise VMFailure(tb)

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, VMFailure):
            return f"MicroPython traceback:\n{excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"[micropython] {self.name}"


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.File | None:
    # pyproject's python_files names mp_test_*.py; they must not be imported by CPython
    if module_path.name.startswith("mp_test_"):
        return VMModule.from_parent(parent, path=module_path)
    return None
