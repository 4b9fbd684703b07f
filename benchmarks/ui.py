"""UI responsiveness: event-loop stalls while a network runs and the cursor moves over the canvas.

A real napari viewer (it needs a display; on a server run it under Xvfb) holds a 1000 x 1000 x 500
float32 cube, memory-mapped from a temporary ``.npy`` as the reader opens it, and a 64 x 64 x 500
simulated cell. A probe timer fires every 5 ms on the main thread and records when it really
ran: the gap between two ticks is how long the event loop was kept from answering (people notice
about 100 ms). Meanwhile a second timer posts a mouse move to the canvas every 16 ms along a path
over the big cube, as Qt delivers a real mouse: napari updates the cursor, its status bar and
every connected dock.

Measured in this one run: the repaint of one label (the floor of any update in this window), the
cost of one Spectra update (before / now), napari's own ``add_image`` of an array the size of the
run's result, the idle loop, and the loop while the Denoise dock runs ``resunet`` (or
Super-resolve ``hyrisr``) through its Runner, as its Run button does, with

- no Spectra dock, or the Spectra dock as it was at ``--before`` (its source read from git and
  imported under another name), or the current one;
- torch on every core (how runs went before) or one core left to the window
  (``_runner.WINDOW_CORES``);
- the GIL handed over after Python's 5 ms (before) or after ``_runner.RUN_SWITCH_INTERVAL`` (now).

The loop's gaps are split at the moment the result reaches the dock: those before are the run's,
the one after is the dock adding the result's layer (napari's work, compared with its bare
``add_image``). Each case also counts Python's full (generation-2) garbage collections, which
hold the GIL in whichever thread runs them, and one full collection is timed at the end.

    python benchmarks/ui.py [--size 1000] [--bands 500] [--net-size 64] [--method resunet|hyrisr]
                            [--before REV] [--seconds S] [--repeat N] [--no-write]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import machine, write_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "ui"
PROBE_MS = 5
MOVE_MS = 16
PLUGIN = "napari-deeper"
#: the last revision before the Spectra dock's redraw and the run's thread limits were reworked
BEFORE = "0a38051"


def old_spectra_module(revision: str):
    """``napari_deeper._widgets.spectra`` as it was at ``revision`` (from git), imported anew."""
    path = "src/napari_deeper/_widgets/spectra.py"
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{revision}:{path}"], capture_output=True, text=True, check=True
    ).stdout
    name = f"napari_deeper._widgets._spectra_at_{revision}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "napari_deeper._widgets"
    sys.modules[name] = module
    exec(compile(source, f"{path}@{revision}", "exec"), module.__dict__)  # noqa: S102 - our own file
    return module


def write_cube(path: Path, bands: int, size: int) -> None:
    """A float32 (bands, size, size) .npy written a few bands at a time: smooth spectra + noise."""
    cube = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(bands, size, size))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = (np.sin(6 * yy) * np.cos(4 * xx) + 1.5).astype(np.float32)
    for start in range(0, bands, 25):
        stop = min(bands, start + 25)
        peak = np.exp(-(((np.arange(start, stop) - bands / 2) / (bands / 8)) ** 2)).astype(np.float32)
        noise = rng.standard_normal((stop - start, size, size), dtype=np.float32) * 0.05
        cube[start:stop] = peak[:, None, None] * image + noise
    cube.flush()
    del cube


class Probe:
    """Event-loop latency: a timer that should fire every ``interval_ms``; the gaps it really had."""

    def __init__(self, interval_ms: int = PROBE_MS):
        from qtpy.QtCore import Qt, QTimer

        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.ticks: list[float] = []

    def _tick(self) -> None:
        self.ticks.append(time.perf_counter())

    def start(self) -> None:
        self.ticks = []
        self.timer.start()

    def stop(self) -> np.ndarray:
        self.timer.stop()
        return np.diff(np.asarray(self.ticks)) * 1000


class MouseMover:
    """Posts a mouse move to the canvas every ``MOVE_MS``, along a path over the middle of the canvas."""

    def __init__(self, viewer):
        from qtpy.QtCore import Qt, QTimer

        self.widget = viewer.window._qt_viewer.canvas.native
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(MOVE_MS)
        self.timer.timeout.connect(self._move)
        self.step = 0
        self.moves = 0

    def start(self) -> None:
        from qtpy.QtCore import QPointF
        from qtpy.QtGui import QEnterEvent
        from qtpy.QtWidgets import QApplication

        centre = QPointF(self.widget.width() / 2, self.widget.height() / 2)
        QApplication.sendEvent(self.widget, QEnterEvent(centre, centre, self.widget.mapToGlobal(centre)))
        self.moves = 0
        self.timer.start()

    def stop(self) -> int:
        self.timer.stop()
        return self.moves

    def _move(self) -> None:
        from qtpy.QtCore import QEvent, QPointF, Qt
        from qtpy.QtGui import QMouseEvent
        from qtpy.QtWidgets import QApplication

        self.step += 1
        width, height = self.widget.width(), self.widget.height()
        t = self.step * 0.05
        local = QPointF(width * (0.5 + 0.35 * np.sin(t)), height * (0.5 + 0.35 * np.sin(1.7 * t + 0.3)))
        event = QMouseEvent(
            QEvent.Type.MouseMove, local, self.widget.mapToGlobal(local),
            Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
        )
        QApplication.postEvent(self.widget, event)
        self.moves += 1


def settle(seconds: float) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.005)


def run_loop_until(done, timeout: float) -> float:
    """Run the real Qt event loop until ``done()`` (polled every 50 ms) or ``timeout`` seconds."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    start = time.perf_counter()
    poll = QTimer()
    poll.setInterval(50)
    poll.timeout.connect(lambda: (done() or time.perf_counter() - start > timeout) and loop.quit())
    poll.start()
    loop.exec()
    poll.stop()
    return time.perf_counter() - start


class ResultClock:
    """When the Runner hands a run's result to its dock, and how long the dock took to add layers."""

    def __init__(self):
        from napari_deeper._widgets import _runner

        self.spans: list[tuple[float, float]] = []
        original = _runner.Runner._on_returned

        def timed(runner, *args, **kwargs):
            start = time.perf_counter()
            try:
                return original(runner, *args, **kwargs)
            finally:
                self.spans.append((start, time.perf_counter()))

        _runner.Runner._on_returned = timed


def measure_case(viewer, mover, run=None, seconds: float = 10.0, clock: ResultClock | None = None) -> dict:
    """Probe the loop while the cursor moves, for ``seconds`` or for the length of ``run``.

    For a run, the gaps are those until its result reached the dock; ``result`` is the gap in
    which the dock added the result's layers, ``adding`` how long that took.
    """
    collections = []  # [generation, seconds] of every garbage collection, in whichever thread ran it

    def collected(phase, info):
        if phase == "start":
            collections.append([info["generation"], time.perf_counter()])
        elif collections:
            collections[-1][1] = time.perf_counter() - collections[-1][1]

    probe = Probe()
    gc.callbacks.append(collected)
    probe.start()
    mover.start()
    result = adding = None
    try:
        if run is None:
            wall = run_loop_until(lambda: False, seconds)
        else:
            runner = run()
            wall = run_loop_until(lambda: not runner.busy, 3600)
            if runner.last_error is not None:
                raise RuntimeError(f"the run failed: {runner.last_error}")
    finally:
        gc.callbacks.remove(collected)
    full = [1000 * seconds for generation, seconds in collections if generation == 2]
    moves = mover.stop()
    ticks = np.asarray(probe.ticks)
    gaps = probe.stop()
    if run is not None:
        start, end = clock.spans[-1]
        before = np.searchsorted(ticks, start)  # the first tick after the result arrived
        gaps, result, adding = gaps[: before - 1], float(gaps[before - 1 :].max()), (end - start) * 1000
    settle(0.3)
    return {
        "p50": float(np.percentile(gaps, 50)),
        "p99": float(np.percentile(gaps, 99)),
        "max": float(gaps.max()),
        "over_100": int((gaps > 100).sum()),
        "result": result,
        "adding": adding,
        "wall": wall,
        "moves": moves,
        "full_gc": len(full),
        "full_gc_max": max(full, default=0.0),
    }


def add_image_ms(viewer, shape: tuple, n: int = 5) -> float:
    """Median ms for napari to add (and show) an image layer of ``shape``, from the main thread."""
    from qtpy.QtWidgets import QApplication

    array = np.random.default_rng(0).random(shape, dtype=np.float32)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        layer = viewer.add_image(array, name="add_image probe")
        QApplication.processEvents()
        times.append((time.perf_counter() - start) * 1000)
        viewer.layers.remove(layer)
        settle(0.2)
    return statistics.median(times)


def network_dock(viewer, method: str, cube_layer):
    """The Denoise (resunet) or Super-resolve (hyrisr) dock, set to run ``method`` on ``cube_layer``.

    Opened before the probe starts (opening a dock is not what is measured); the case presses Run.
    """
    name = "Super-resolve" if method == "hyrisr" else "Denoise"
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    widget.input_layer.value = cube_layer
    widget.methods.value = [method]
    settle(0.5)
    return widget


def press_run(widget):
    """Press the dock's Run button; returns its Runner."""
    widget.runner.run_button.click()
    return widget.runner


def update_costs_ms(widget, layer, n: int = 60) -> tuple[float, float]:
    """Median ms of one Spectra update over ``n`` positions: (the dock's own work, with the repaint).

    The dock's own work is ``update_live`` (read the spectra, redraw what it redraws); "with the
    repaint" adds the event processing that puts it on screen (Qt paints the whole window).
    """
    from qtpy.QtWidgets import QApplication

    rng = np.random.default_rng(3)
    _, rows, cols = layer.data.shape
    own, painted = [], []
    for row, col in zip(rng.integers(0, rows, n), rng.integers(0, cols, n)):
        position = tuple(layer.data_to_world((0, row, col)))
        start = time.perf_counter()
        widget.update_live(position)
        middle = time.perf_counter()
        QApplication.processEvents()
        end = time.perf_counter()
        own.append((middle - start) * 1000)
        painted.append((end - start) * 1000)
    return statistics.median(own), statistics.median(painted)


def label_repaint_ms(viewer, n: int = 30) -> float:
    """Median ms to repaint one small label in this window: the floor of any widget update here."""
    from qtpy.QtWidgets import QApplication, QLabel

    label = QLabel("0")
    dock = viewer.window.add_dock_widget(label, name="repaint probe", area="left")
    settle(0.3)
    times = []
    for index in range(n):
        start = time.perf_counter()
        label.setText(str(index))
        QApplication.processEvents()
        times.append((time.perf_counter() - start) * 1000)
    viewer.window.remove_dock_widget(dock)
    settle(0.2)
    return statistics.median(times)


#: (case name, Spectra dock: None / "before" / "now", cores left to the window, GIL switch interval s)
CASES = [
    ("network, Spectra before, torch on every core, GIL 5 ms (before)", "before", 0, 0.005),
    ("network, Spectra now, one core left, GIL 5 ms", "now", 1, 0.005),
    ("network, Spectra now, one core left, GIL 0.5 ms (now)", "now", 1, 0.0005),
    ("network, no dock, one core left, GIL 0.5 ms", None, 1, 0.0005),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000, help="side of the big cube (pixels)")
    parser.add_argument("--bands", type=int, default=500)
    parser.add_argument("--net-size", type=int, default=64, help="side of the cube the network runs on")
    parser.add_argument("--method", default="resunet", choices=["resunet", "hyrisr"])
    parser.add_argument("--before", default=BEFORE, help="git revision of the Spectra dock 'before'")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the idle case")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the network cases (interleaved)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs alone")
    args = parser.parse_args(argv)

    import napari
    import torch

    import napari_deeper as nd
    from napari_deeper._widgets import _runner
    from napari_deeper._widgets.spectra import SpectraWidget

    docks = {"before": old_spectra_module(args.before).SpectraWidget, "now": SpectraWidget}
    folder = Path(tempfile.mkdtemp(prefix="napari-deeper-ui-bench-"))
    results: dict[str, list[dict]] = {}
    try:
        path = folder / "big.npy"
        write_cube(path, args.bands, args.size)
        viewer = napari.Viewer(show=True, title="napari-deeper UI benchmark")
        viewer.window.resize(1500, 940)
        (big,) = viewer.open(str(path), plugin=PLUGIN)
        net_size = args.net_size // 2 if args.method == "hyrisr" else args.net_size
        cell = nd.simulate.simulate_cell((net_size, net_size), n_bands=args.bands, photons=50, seed=1)
        small = viewer.add_image(cell.noisy, name="cell", metadata={"wavenumbers": cell.wavenumbers},
                                 translate=(0, args.size + 10, 0))
        viewer.layers.selection.active = big
        viewer.reset_view()
        settle(1.0)
        mover = MouseMover(viewer)
        floor = label_repaint_ms(viewer)
        print(f"repaint of one label: {floor:.1f} ms")
        costs = {}
        for label, cls in docks.items():
            widget = cls(viewer)
            dock = viewer.window.add_dock_widget(widget, name=f"Spectra ({label})")
            settle(0.5)
            costs[label] = update_costs_ms(widget, big)
            print(f"Spectra update ({label}): {costs[label][0]:.1f} ms, {costs[label][1]:.1f} ms with the repaint")
            viewer.window.remove_dock_widget(dock)
            settle(0.3)

        network = network_dock(viewer, args.method, small)
        result_shape = (args.bands, args.net_size, args.net_size)
        bare_add = add_image_ms(viewer, result_shape)
        print(f"napari add_image of {result_shape}: {bare_add:.0f} ms")
        viewer.layers.selection.active = big
        results["idle: cursor moving, no dock, no run"] = [measure_case(viewer, mover, seconds=args.seconds)]
        threads = torch.get_num_threads()
        clock = ResultClock()
        defaults = _runner.WINDOW_CORES, _runner.RUN_SWITCH_INTERVAL
        for _round in range(args.repeat):
            for name, dock_kind, window_cores, switch in CASES:
                _runner.WINDOW_CORES, _runner.RUN_SWITCH_INTERVAL = window_cores, switch
                dock = None
                if dock_kind is not None:
                    dock = viewer.window.add_dock_widget(docks[dock_kind](viewer), name=f"Spectra ({dock_kind})")
                    settle(0.5)
                case = measure_case(viewer, mover, lambda: press_run(network), clock=clock)
                case["torch_threads"] = threads if window_cores == 0 else max(1, threads - window_cores)
                results.setdefault(name, []).append(case)
                print(name, {k: round(v, 1) for k, v in case.items()}, flush=True)
                if dock is not None:
                    viewer.window.remove_dock_widget(dock)
                for layer in [layer for layer in viewer.layers if layer.name.startswith(f"{small.name} · ")]:
                    viewer.layers.remove(layer)  # the run's result: each case starts from the same layers
                settle(0.3)
        _runner.WINDOW_CORES, _runner.RUN_SWITCH_INTERVAL = defaults
        start = time.perf_counter()
        gc.collect()
        full_gc = (1000 * (time.perf_counter() - start), len(gc.get_objects()))
        viewer.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    text = report(results, costs, floor, bare_add, args, threads, full_gc)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
    return 0


def report(results: dict, costs: dict, floor: float, bare_add: float, args, threads: int,
           full_gc: tuple[float, int]) -> str:
    """The docs section: what was run, the event-loop table, the Spectra update costs."""
    rows = ["| case | loop gap p50 | p99 | max | gaps > 100 ms | adding the result: gap (dock's work) "
            "| network run | mouse moves handled | full garbage collections (longest) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, cases in results.items():
        for case in cases:
            network = name.startswith("network")
            run = f"{case['wall']:.1f} s" if network else "—"
            added = f"{case['result']:.0f} ms ({case['adding']:.0f} ms)" if network else "—"
            rows.append(
                f"| {name} | {case['p50']:.0f} ms | {case['p99']:.0f} ms | {case['max']:.0f} ms | "
                f"{case['over_100']} | {added} | {run} | {case['moves']} | {case['full_gc']}"
                + (f" ({case['full_gc_max']:.0f} ms) |" if case["full_gc"] else " |")
            )
    now = [case for name, cases in results.items() if name.endswith("(now)") for case in cases]
    bare = [case for name, cases in results.items() if name.startswith("network, no dock") for case in cases]

    def verdict(key: str, limit: float) -> str:
        worst = max(case[key] for case in now)
        floor = max(case[key] for case in bare)
        return (f"{'met' if worst <= limit else 'not met'} (now: up to {worst:.0f} ms; the same run "
                f"with no Spectra dock: up to {floor:.0f} ms)")

    added = max(case["result"] for case in now)
    targets = (f"- Target p99 ≤ 50 ms while a network runs with the Spectra dock open: {verdict('p99', 50)}.\n"
               f"- Target max ≤ 150 ms while it runs: {verdict('max', 150)}. When the run ends, adding its "
               f"result as a layer held the loop up to {added:.0f} ms; napari's own `add_image` of an "
               f"array that size, in this window with nothing running, takes {bare_add:.0f} ms.")
    cost_rows = ["| Spectra dock | its own work | with the window's repaint |", "|---|---:|---:|"]
    for label, (own, painted) in costs.items():
        name = f"before ({args.before})" if label == "before" else "now"
        cost_rows.append(f"| {name} | {own:.1f} ms | {painted:.1f} ms |")
    return (
        "## UI responsiveness\n\n"
        f"`python benchmarks/ui.py` (under Xvfb: `xvfb-run -a -s \"-screen 0 1600x1000x24\" python "
        f"benchmarks/ui.py`): a real viewer, 1500 x 940, holding a {args.size} x {args.size} x "
        f"{args.bands} float32 cube memory-mapped from a `.npy` (as the reader opens it) and a "
        f"{args.net_size} x {args.net_size} x {args.bands} simulated cell. A probe timer on the main "
        f"thread fires every {PROBE_MS} ms; the gap between two of its ticks is how long the event "
        "loop could not answer. A second timer posts a mouse move over the big cube every "
        f"{MOVE_MS} ms, as Qt delivers real mouse input. \"network\": the Denoise dock runs "
        f"`{args.method}` on the cell through its Runner (the Run button); the gap columns are those "
        "until the result reached the dock, and \"adding the result\" is the gap in which the dock "
        "added its layer (with the time the dock's code took). \"Spectra before\": the Spectra dock "
        f"as it was at `{args.before}` (its source read from git); \"now\": the current one. "
        f"\"Torch on every core\" is how runs went before (torch's {threads} threads); \"one core "
        "left\" leaves a core to the window (`_runner.WINDOW_CORES`). \"GIL 5 ms\" is Python's "
        "switch interval; now a run sets it to 0.5 ms (`_runner.RUN_SWITCH_INTERVAL`): the window's "
        "thread releases the GIL at every Qt call and the network's at every torch call, and each "
        "waited up to the interval for the other at every switch. \"Full garbage collections\": "
        "Python's generation-2 collections during the case, in any thread (each holds the GIL; "
        f"one of this window's {full_gc[1]:,} objects, timed after the cases, took {full_gc[0]:.0f} ms). "
        "All cases in one run: the idle "
        f"case, then {args.repeat} round(s) of the network cases one after the other (the rows of a "
        f"case are its rounds). Machine: {machine()}; other jobs shared the cores while measuring, "
        "so the absolute numbers move from run to run: compare the rows of one table.\n\n"
        + "\n".join(rows) + "\n\n" + targets + "\n\n"
        f"One Spectra update on the {args.size} x {args.size} x {args.bands} cube (median of 60 "
        "cursor positions): the dock's own work (read the spectra, redraw: before, it asked for a "
        "full redraw of the figure, done in the repaint; now it blits) and with the repaint that "
        "puts it on screen. Repainting one small label in the same window costs "
        f"{floor:.1f} ms: under Xvfb, Qt composes the whole window with software OpenGL for any "
        "update, which is the floor of every row here.\n\n" + "\n".join(cost_rows)
    )


if __name__ == "__main__":
    sys.exit(main())
