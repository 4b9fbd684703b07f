"""Run / Cancel buttons and a progress bar that drive a core ``*_steps`` generator in a thread.

Every dock widget that starts long work owns one :class:`Runner`. The core generator yields
:class:`napari_deeper.compute.Progress` between chunks; ``Cancel`` asks the worker to quit at the
next yield. The result reaches ``on_done`` on the main thread, only when the run finished: a
cancelled or failed run makes no layers and shows a notification instead.

An input layer removed from the viewer while its run is going does not stop the run: the worker
already holds the data it read at the start, so the run finishes, its results are added as usual
(they record the removed layer's name as their source), and a warning names the layers that were
removed. Docks say which layers a run reads with ``start(..., viewer=, inputs=)``.

While a run goes, torch computes on all cores but :data:`WINDOW_CORES` (one), so that the window
keeps a core for its event loop and stays responsive, and threads hand the GIL over after
:data:`RUN_SWITCH_INTERVAL` instead of Python's 5 ms (both measured in ``benchmarks/ui.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from napari.qt.threading import GeneratorWorker, thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

#: CPU cores that docks' runs leave to the window (its event loop, drawing, the Spectra plot).
#: On a 2-core machine torch's threads on both cores starved the event loop: stalls of 0.2-0.8 s.
WINDOW_CORES = 1
_torch_threads = {"runs": 0, "saved": None}  # the runs holding the limit, torch's own setting


def _share_cores() -> bool:
    """Limit torch to all cores but :data:`WINDOW_CORES` while this run goes; True if applied.

    Applied once torch is imported (the networks import it when they start), never importing it
    here, and not while another thread is still importing it (a partly initialised module has no
    ``get_num_threads`` yet); :func:`_unshare_cores` puts torch's setting back when the last such
    run ends.
    """
    import os
    import sys

    torch = sys.modules.get("torch")
    cores = os.cpu_count() or 1
    if torch is None or getattr(torch.__spec__, "_initializing", False) or WINDOW_CORES <= 0 or cores <= WINDOW_CORES:
        return False  # not imported, or the run's thread is importing it now: the next progress report tries again
    if _torch_threads["runs"] == 0:
        _torch_threads["saved"] = torch.get_num_threads()
        torch.set_num_threads(max(1, min(_torch_threads["saved"], cores - WINDOW_CORES)))
    _torch_threads["runs"] += 1
    return True


#: Seconds a thread keeps the GIL while another waits for it, while runs go (Python's default: 5 ms).
#: The window's thread gives the GIL up at every Qt call and a network's thread at every torch
#: call, so each waited up to 5 ms for the other at every switch: with the Spectra dock open and
#: the cursor moving, a 64 x 64 x 500 resunet run took 12-19 s at 5 ms and 7-12 s at 0.5 ms.
RUN_SWITCH_INTERVAL = 0.0005
_switching = {"runs": 0, "saved": None}  # the runs going, Python's own interval


def _hold_switch_interval() -> None:
    import sys

    if _switching["runs"] == 0:
        _switching["saved"] = sys.getswitchinterval()
        sys.setswitchinterval(min(_switching["saved"], RUN_SWITCH_INTERVAL))
    _switching["runs"] += 1


def _release_switch_interval() -> None:
    import sys

    _switching["runs"] -= 1
    if _switching["runs"] == 0:
        sys.setswitchinterval(_switching["saved"])
        _switching["saved"] = None


def _unshare_cores() -> None:
    import sys

    _torch_threads["runs"] -= 1
    if _torch_threads["runs"] == 0 and _torch_threads["saved"] is not None:
        sys.modules["torch"].set_num_threads(_torch_threads["saved"])
        _torch_threads["saved"] = None


class RunFailed(Exception):
    """A failure inside a worker, re-raised so the worker reports it (see :func:`_guarded`)."""


def _guarded(steps_factory: Callable, *args, **kwargs):
    """Run the steps generator, turning a ``RuntimeError`` into :class:`RunFailed`.

    napari's worker thread takes a ``RuntimeError`` for the sign of a deleted Qt object and then
    reports neither the error nor the end of the run, which would leave a dock busy forever;
    torch raises ``RuntimeError`` for most of its failures.
    """
    try:
        return (yield from steps_factory(*args, **kwargs))
    except RuntimeError as error:
        raise RunFailed(str(error)) from error


class Runner(QWidget):
    """Run and Cancel buttons, a progress bar and a status line for one background operation."""

    def __init__(self, text: str = "Run", parent: QWidget | None = None):
        super().__init__(parent)
        self.run_button = QPushButton(text)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.worker: GeneratorWorker | None = None
        self.last_error: BaseException | None = None
        self._sharing_cores = False

        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        self.cancel_button.clicked.connect(self.cancel)

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def start(
        self,
        steps_factory: Callable,
        on_done: Callable,
        *args,
        on_progress: Callable | None = None,
        viewer=None,
        inputs: Sequence = (),
        **kwargs,
    ) -> GeneratorWorker | None:
        """Run ``steps_factory(*args, **kwargs)`` in a worker thread; pass its result to ``on_done``.

        ``on_progress``, when given, also receives every yielded ``Progress`` on the main thread
        (connected before the worker starts, so no early report is missed). ``inputs`` are the
        layers of ``viewer`` the run reads: those no longer in the viewer when the result
        arrives are named in a warning after ``on_done`` has added the results.
        """
        if self.busy:
            show_info("A run is already in progress; cancel it or wait for it to finish.")
            return None
        self.last_error = None
        worker = thread_worker(_guarded, start_thread=False, ignore_errors=True)(steps_factory, *args, **kwargs)
        worker.yielded.connect(self._on_progress)
        if on_progress is not None:
            worker.yielded.connect(on_progress)
        watched = (viewer, [layer for layer in inputs if layer is not None])
        worker.returned.connect(lambda result: self._on_returned(result, on_done, *watched))
        worker.errored.connect(self._on_error)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.status.setText("Running...")
        self._sharing_cores = _share_cores()  # torch imported already: limited before the run computes
        _hold_switch_interval()
        worker.start()
        return worker

    def refuse(self, error) -> None:
        """Report a problem found before starting: nothing runs and no layers are made."""
        self.last_error = error if isinstance(error, Exception) else ValueError(str(error))
        self.status.setText(f"Failed: {error}")
        show_error(f"napari-deeper: {error}")

    def cancel(self) -> None:
        if self.worker is not None:
            self.status.setText("Cancelling...")
            self.worker.quit()

    def _on_progress(self, progress) -> None:
        if not self._sharing_cores:
            self._sharing_cores = _share_cores()
        fraction = getattr(progress, "fraction", None)
        if fraction is not None:
            self.progress.setValue(int(round(1000 * fraction)))
            message = getattr(progress, "message", "")
            if message:
                self.status.setText(message)

    def _on_returned(self, result, on_done: Callable, viewer, inputs: list) -> None:
        try:
            on_done(result)
        except Exception as error:  # noqa: BLE001 - shown to the user, never crashes the viewer
            self._on_error(error)
            return
        self.progress.setValue(1000)
        gone = [layer.name for layer in inputs if viewer is not None and layer not in viewer.layers]
        if not gone:
            self.status.setText("Done.")
            return
        names = ", ".join(repr(name) for name in gone)
        message = (
            f"Done, but input layer{'s' if len(gone) > 1 else ''} {names} "
            f"{'were' if len(gone) > 1 else 'was'} removed during the run; the results were "
            "computed from the data as it was at the start and added all the same."
        )
        self.status.setText(message)
        show_warning(f"napari-deeper: {message}")

    def _on_error(self, error: BaseException) -> None:
        self.last_error = error
        self.status.setText(f"Failed: {error}")
        show_error(f"napari-deeper: {error}")

    def _on_aborted(self) -> None:
        steps = getattr(self.worker, "_gen", None)  # stopped at a yield: its clean-up runs now, not when
        if steps is not None:                      # the worker is collected (a streamed run's partial store)
            steps.close()
        self.status.setText("Cancelled: no layers were made.")
        show_info("napari-deeper: run cancelled; no layers were made.")

    def _on_finished(self) -> None:
        _release_switch_interval()
        if self._sharing_cores:
            _unshare_cores()
            self._sharing_cores = False
        self.worker = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
