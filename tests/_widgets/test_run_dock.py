"""The ``run_dock`` fixture fails the test whenever a dock's run did not go as the test said."""

import pytest
from qtpy.QtWidgets import QPushButton, QVBoxLayout, QWidget

from napari_deeper._widgets._runner import Runner
from napari_deeper.compute import Progress

pytestmark = pytest.mark.gui


def steps(error=None):
    yield Progress(0, 2, "starting")
    yield Progress(1, 2, "half-way")
    if error is not None:
        raise error
    return 1


class Dock(QWidget):
    """A dock as the plugin builds them: a Runner whose Run button starts ``steps``.

    ``refuse`` refuses every run, ``error`` makes the run fail, and ``Idle`` does nothing.
    """

    def __init__(self, error=None, refuse=None):
        super().__init__()
        self.runner = Runner()
        self.idle_button = QPushButton("Idle")
        QVBoxLayout(self).addWidget(self.runner)
        self.results = []
        if refuse is not None:
            self.runner.run_button.clicked.connect(lambda: self.runner.refuse(refuse))
        else:
            self.runner.run_button.clicked.connect(lambda: self.runner.start(steps, self.results.append, error))


@pytest.fixture
def dock(qtbot):
    def make(**kwargs) -> Dock:
        made = Dock(**kwargs)
        qtbot.addWidget(made)
        return made

    return make


def test_a_run_that_works_passes(dock, run_dock):
    made = dock()
    assert run_dock(made) is None
    assert made.results == [1] and made.runner.run_button.isEnabled()
    assert run_dock(made.runner) is None  # a Runner by itself too
    assert made.results == [1, 1]


def test_a_failed_run_raises_from_the_runners_error(dock, run_dock):
    made = dock(error=ValueError("bad band count"))
    with pytest.raises(AssertionError, match="the run failed") as raised:
        run_dock(made)
    assert raised.value.__cause__ is made.runner.last_error
    assert "bad band count" in str(made.runner.last_error)


def test_expected_failures_and_refusals_return_the_error(dock, run_dock):
    failing = dock(error=ValueError("bad band count"))
    assert str(run_dock(failing, fails=True)) == "bad band count"
    refusing = dock(refuse="choose an input layer")
    assert str(run_dock(refusing, fails=True)) == "choose an input layer"
    with pytest.raises(AssertionError, match="the run failed"):
        run_dock(refusing)


def test_a_run_that_works_where_a_failure_was_expected_fails(dock, run_dock):
    with pytest.raises(AssertionError, match="expected to fail"):
        run_dock(dock(), fails=True)


def test_a_press_that_starts_nothing_or_cannot_be_made_fails(dock, run_dock):
    made = dock()
    with pytest.raises(pytest.fail.Exception, match="started no run and reported nothing"):
        run_dock(made, button=made.idle_button)
    made.runner.run_button.setEnabled(False)
    with pytest.raises(AssertionError, match="disabled"):
        run_dock(made)
    assert made.results == []


def test_on_start_comes_before_the_runs_reports(dock, run_dock):
    made = dock()
    started, shown = [], []

    def on_start(worker) -> None:
        started.append(worker is made.runner.worker and made.runner.busy)
        made.runner.progress.valueChanged.connect(shown.append)

    run_dock(made, on_start=on_start)
    assert started == [True] and shown == [500, 1000]  # the half-way report, then done
