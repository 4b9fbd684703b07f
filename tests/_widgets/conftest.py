"""Fixtures for the GUI tests: docks in a real napari viewer (pytest-qt, under Xvfb)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytestqt.exceptions import TimeoutError as WaitTimeout

from napari_deeper._widgets._runner import Runner

#: How long a dock's run may take on the shared test machine before the test fails.
RUN_TIMEOUT_MS = 120_000


@pytest.fixture
def run_dock(qtbot) -> Callable:
    """Press a dock's button as a user would and wait until its ``Runner`` has finished.

    ``run_dock(dock)`` presses ``dock.runner``'s Run button, ``run_dock(runner)`` that Runner's;
    ``button`` presses another button (Qt or magicgui) that starts the Runner. The press must start a
    run or be refused by the Runner (``last_error`` set): a press that does nothing fails the
    test. ``on_start(worker)`` is called once the run has started, before the main thread has
    handled any of its reports: what it connects to the Runner's widgets (its progress bar) sees
    every report, what it connects to ``worker.yielded`` may miss the first ones.
    A failed or refused run raises an ``AssertionError`` from the Runner's ``last_error``; with
    ``fails=True`` the run must fail instead, and its error is returned. Either way the Run
    button is enabled again afterwards. A cancelled run counts as ended without error.
    """

    def run(dock, *, button=None, timeout: int = RUN_TIMEOUT_MS, fails: bool = False, on_start=None):
        runner = dock if isinstance(dock, Runner) else dock.runner
        button = runner.run_button if button is None else getattr(button, "native", button)
        assert button.isEnabled(), f"the {button.text()!r} button is disabled: a user could not press it"
        before = runner.last_error
        button.click()
        if runner.busy:
            if on_start is not None:
                on_start(runner.worker)
        elif runner.last_error is before:
            pytest.fail(f"pressing {button.text()!r} started no run and reported nothing")
        try:
            qtbot.waitUntil(lambda: not runner.busy, timeout=timeout)
        except WaitTimeout:
            runner.cancel()
            pytest.fail(f"the run was still going after {timeout} ms: {runner.status.text()!r}")
        assert runner.run_button.isEnabled(), "the Run button stayed disabled after the run"
        error = runner.last_error
        if fails:
            assert error is not None, f"the run was expected to fail; it ended with {runner.status.text()!r}"
            return error
        if error is not None:
            raise AssertionError(f"the run failed: {error!r}") from error
        return None

    return run


@pytest.fixture
def one_torch_thread():
    """torch at one thread for the test: tiny models train faster on one thread than on several
    fighting over a busy CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
