"""The Runner drives core steps generators in a worker: result, failure and cancel paths."""

import threading

from napari_deeper._widgets._runner import RunFailed, Runner
from napari_deeper.compute import Progress


def counting_steps(n):
    for i in range(n):
        yield Progress(i, n, f"step {i}")
    return n * 10


def failing_steps(error):
    yield Progress(0, 1)
    raise error


def blocking_steps(gate: threading.Event):
    while True:
        yield Progress(0, 1, "waiting")
        gate.wait(0.01)


def test_result_reaches_on_done(qtbot):
    runner = Runner()
    qtbot.addWidget(runner)
    results, progress = [], []
    runner.start(counting_steps, results.append, 3, on_progress=progress.append)
    qtbot.waitUntil(lambda: not runner.busy, timeout=5000)
    assert results == [30]
    assert [p.done for p in progress] == [0, 1, 2]
    assert runner.progress.value() == 1000
    assert runner.run_button.isEnabled() and not runner.cancel_button.isEnabled()


def test_runtime_error_is_reported_and_the_run_ends(qtbot):
    # napari's worker swallows RuntimeError as "deleted Qt object": the Runner must not hang on it
    runner = Runner()
    qtbot.addWidget(runner)
    results = []
    runner.start(failing_steps, results.append, RuntimeError("torch said no"))
    qtbot.waitUntil(lambda: not runner.busy, timeout=5000)
    assert results == []
    assert isinstance(runner.last_error, RunFailed)
    assert "torch said no" in runner.status.text()


def test_value_error_is_reported(qtbot):
    runner = Runner()
    qtbot.addWidget(runner)
    runner.start(failing_steps, lambda result: None, ValueError("bad band count"))
    qtbot.waitUntil(lambda: not runner.busy, timeout=5000)
    assert isinstance(runner.last_error, ValueError)
    assert "bad band count" in runner.status.text()


def test_cancel_stops_without_calling_on_done(qtbot):
    runner = Runner()
    qtbot.addWidget(runner)
    results = []
    runner.start(blocking_steps, results.append, threading.Event())
    qtbot.waitUntil(lambda: runner.status.text() == "waiting", timeout=5000)
    runner.cancel_button.click()
    qtbot.waitUntil(lambda: not runner.busy, timeout=5000)
    assert results == []
    assert runner.status.text().startswith("Cancelled")


def test_docks_refuse_a_run_with_nothing_chosen_through_their_runner(make_napari_viewer):
    """Every refusal goes through Runner.refuse: the reason is shown and kept in ``last_error``."""
    from napari_deeper._widgets.compare import CompareWidget
    from napari_deeper._widgets.cube_layout import CubeLayoutWidget
    from napari_deeper._widgets.peak_map import PeakMapWidget
    from napari_deeper._widgets.preprocess import PreprocessWidget

    viewer = make_napari_viewer()  # no layers: nothing to run on
    docks = [PreprocessWidget(viewer), PeakMapWidget(viewer), CompareWidget(viewer), CubeLayoutWidget(viewer)]
    preprocess, peak_map, compare, layout = docks
    runners = {
        "preprocess": preprocess.runner,
        "peak map": peak_map.runner,
        "compare": compare.runner,
        "cube layout": layout.layout_runner,
        "replace NaN/Inf": layout.nonfinite_runner,
    }
    for name, runner in runners.items():
        runner.run_button.click()
        assert not runner.busy, name
        assert isinstance(runner.last_error, ValueError), name
        assert runner.status.text() == f"Failed: {runner.last_error}", name
