"""The batch engine and ``napari-deeper batch``: real files, a real Dask scheduler and workers.

The Dask servers are real processes (``dask scheduler`` and two ``dask worker``, on 127.0.0.1
only), started here and stopped at the end; every wait is bounded. The fault test starts its
own, kills one worker in the middle of a task and checks that every input still ends exactly once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from importlib import import_module
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_deeper as nd
from napari_deeper.batch import batch_steps, find_inputs, output_names, per_pixel, read_summary, run_batch, store
from napari_deeper.batch.cli import main as cli_main
from napari_deeper.batch.engine import INLINE
from napari_deeper.recipe import Recipe

SHAPE, BANDS = (24, 24), 120
#: Seconds any wait in these tests may take before it fails.
BOUND = 90


# --------------------------------------------------------------------------------- data
def write_cells(folder: Path, n: int, shape=SHAPE, bands=BANDS, first_seed=0) -> list[Path]:
    """``n`` simulated cells saved with nd.save_cube (.npz, with their wavenumbers)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        sim = nd.simulate.simulate_cell(shape, n_bands=bands, seed=first_seed + i)
        path = folder / f"cell{first_seed + i:02d}.npz"
        nd.save_cube(nd.Cube(sim.noisy.astype(np.float32), sim.wavenumbers, {}), path)
        paths.append(path)
    return paths


def endmembers(bands=BANDS) -> np.ndarray:
    return nd.simulate.simulate_cell((8, 8), n_bands=bands, seed=99).endmembers


def default_recipe(bands=BANDS) -> dict:
    """The benchmark's recipe: default denoising, the 1450 band map, NNLS with fixed endmembers."""
    return {"format": "napari-deeper recipe", "version": 1, "steps": [
        {"operation": "denoise", "method": None, "params": {}},
        {"operation": "band_map", "method": "area", "params": {"center": 1450.0}, "input": 1},
        {"operation": "unmix", "method": "nnls", "params": {"endmembers": endmembers(bands).tolist()}, "input": 1},
    ]}


def per_pixel_recipe(bands=BANDS) -> dict:
    """Only per-pixel steps, so that a large input is cut into row blocks."""
    return {"format": "napari-deeper recipe", "version": 1, "steps": [
        {"operation": "denoise", "method": "savgol", "params": {"window": 11}},
        {"operation": "band_map", "method": "height", "params": {"center": 1003.0, "width": 20.0}, "input": 1},
        {"operation": "unmix", "method": "nnls", "params": {"endmembers": endmembers(bands).tolist(),
                                                            "map": "labels"}, "input": 1},
    ]}


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "recipe.json"
    path.write_text(json.dumps(default_recipe()), encoding="utf-8")
    return path


# ------------------------------------------------------------------------- Dask servers
class DaskServers:
    """A scheduler and workers, each its own process, on 127.0.0.1 (workers without a nanny, so
    that killing a worker's process kills the worker)."""

    def __init__(self, folder: Path, n_workers: int = 2):
        self.file = folder / "scheduler.json"
        self.log = open(folder / "dask.log", "w")  # noqa: SIM115 - closed in close()
        self.workers: list[subprocess.Popen] = []
        # both give up on their own if this process dies without stopping them
        self.scheduler = self._start("dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                     "--idle-timeout", "600")
        try:
            self._connect(n_workers)
        except BaseException:
            self.close()
            raise

    def _connect(self, n_workers: int) -> None:
        from distributed import Client

        deadline = time.monotonic() + BOUND
        while not self.file.is_file() or not self.file.read_text().strip():
            if time.monotonic() > deadline or self.scheduler.poll() is not None:
                raise RuntimeError("the Dask scheduler did not start")
            time.sleep(0.05)
        self.address = json.loads(self.file.read_text())["address"]
        self.workers = [
            self._start("dask_worker", "--nthreads", "1", "--nworkers", "1", "--no-nanny", "--no-dashboard",
                        "--host", "127.0.0.1", "--name", f"worker-{i}", "--memory-limit", "2GB",
                        "--death-timeout", "60")
            for i in range(n_workers)
        ]
        with Client(self.address, timeout=BOUND, set_as_default=False) as client:
            client.wait_for_workers(n_workers, timeout=BOUND)
            # import the heavy modules once in every worker, so that tests time work, not imports
            client.run(lambda: [import_module("napari_deeper.batch.job"), import_module(
                "napari_deeper.denoise.hybrid").denoise_image(np.ones((8, 8)), 0.1, "tv", 0.9)])

    def _start(self, module: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", f"distributed.cli.{module}", "--scheduler-file", str(self.file), *args],
            stdout=self.log, stderr=subprocess.STDOUT,
        )

    def close(self) -> None:
        for process in [*self.workers, self.scheduler]:
            if process.poll() is None:
                process.terminate()
        for process in [*self.workers, self.scheduler]:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        self.log.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    running = DaskServers(tmp_path_factory.mktemp("dask"))
    yield running
    running.close()


def run_cli(*args: str, timeout: float = BOUND) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "napari_deeper", "batch", *args], capture_output=True,
                          text=True, timeout=timeout)


def journal_events(out: Path, run_id: str) -> list[dict]:
    lines = (out / store.JOURNAL).read_text(encoding="utf-8").splitlines()
    return [event for event in map(json.loads, lines) if event["run"] == run_id]


def assert_complete(out: Path, rows: list[dict]) -> None:
    """Every ok/skipped row's folder is a complete result; nothing half-written is anywhere."""
    assert store.leftovers(out) == []
    for row in rows:
        if row["status"] in ("ok", "skipped"):
            marker = store.read_marker(out / row["output"])
            assert marker is not None, row
            for name, size in marker["files"].items():
                assert (out / row["output"] / name).stat().st_size == size
        else:
            assert not (out / row["output"]).exists(), row


# ------------------------------------------------------------------------------ inputs
def test_inputs_folders_globs_sidecars_and_colliding_stems(tmp_path):
    """Folders give their cubes, not the spectral-axis sidecars or the output folder; colliding
    stems get names from the part of their path that differs."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cube = np.ones((10, 4, 4), np.float32)
    nd.save_cube(cube, tmp_path / "a" / "x.npy", wavenumbers=np.arange(10.0))  # + x_wavenumbers.npy
    nd.save_cube(cube, tmp_path / "b" / "x.npz")
    nd.save_cube(cube, tmp_path / "b" / "x.mat")
    (tmp_path / "b" / "notes.pdf").write_text("not a cube")
    out = tmp_path / "a" / "results"
    out.mkdir()
    nd.save_cube(cube, out / "old.npz")

    found = find_inputs([tmp_path / "a", str(tmp_path / "b" / "*")], exclude=out)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/x.npy", "b/x.mat", "b/x.npz"]
    names = output_names(found)
    assert sorted(names.values()) == ["a_x.npy", "b_x.mat", "b_x.npz"]
    assert output_names([tmp_path / "a" / "x.npz", tmp_path / "b" / "x.npz"]) == {
        tmp_path / "a" / "x.npz": "a_x", tmp_path / "b" / "x.npz": "b_x"}
    with pytest.raises(ValueError, match="no input files found"):
        find_inputs([str(tmp_path / "*.nothing")])


def test_a_batch_run_loads_no_gui(tmp_path, recipe_file):
    """The engine is core: a whole run (reading, every step, every writer) imports no Qt or napari."""
    write_cells(tmp_path / "cells", 1, shape=(8, 8))
    code = (
        "import sys\n"
        "from napari_deeper.batch import run_batch\n"
        f"report = run_batch({str(recipe_file)!r}, [{str(tmp_path / 'cells')!r}], {str(tmp_path / 'out')!r}, "
        "scheduler='inline')\n"
        "assert report.counts['ok'] == 1, report.rows\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari', 'magicgui', 'vispy'})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=BOUND)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"a batch run pulled in GUI modules: {done.stdout.strip()}"


def test_per_pixel_steps_are_the_ones_that_split():
    assert per_pixel({"operation": "denoise", "method": "savgol"})
    assert not per_pixel({"operation": "denoise", "method": None})  # the default, hybrid, fits a subspace
    assert per_pixel({"operation": "unmix", "method": "nnls"})
    assert not per_pixel({"operation": "endmembers", "method": "vca"})
    assert per_pixel({"operation": "preprocess", "params": {"normalise": "vector"}})
    assert not per_pixel({"operation": "preprocess", "params": {"normalise": "cube-max"}})
    assert not per_pixel({"operation": "preprocess", "params": {"despike": 8.0}})


# ----------------------------------------------------------------------------- the CLI
def test_cli_runs_a_folder_end_to_end_on_dask(tmp_path, recipe_file, servers):
    """Every step's result is written (cube .npz, map TIFF, the Unmix dock's export), readable
    by load_cube and the napari reader; a bad file fails alone; colliding stems both survive."""
    from napari_deeper._reader import get_reader

    folder = tmp_path / "cells"
    write_cells(folder, 3)
    (folder / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (folder / "a").mkdir()
    (folder / "b").mkdir()
    write_cells(folder / "a", 1, first_seed=7)[0].rename(folder / "a" / "same.npz")
    write_cells(folder / "b", 1, first_seed=8)[0].rename(folder / "b" / "same.npz")
    out = tmp_path / "out"

    done = run_cli(str(recipe_file), str(folder), "--out", str(out), "--recursive", "--scheduler", servers.address)
    assert done.returncode == 1, done.stderr  # one input failed
    assert "broken.npz" in done.stderr and "5 ok, 1 failed" in done.stdout
    rows = read_summary(out / "summary.csv")
    assert [(Path(r["input"]).name, r["output"], r["status"]) for r in rows] == [
        ("same.npz", "a_same", "ok"), ("same.npz", "b_same", "ok"), ("broken.npz", "broken", "failed"),
        ("cell00.npz", "cell00", "ok"), ("cell01.npz", "cell01", "ok"), ("cell02.npz", "cell02", "ok")]
    assert "broken.npz is not a readable .npz archive" in rows[2]["error"]
    assert_complete(out, [{**r, "files": r["files"].split(";")} for r in rows])

    cell = out / "cell00"
    files = rows[3]["files"].split(";")
    assert files == ["cell00/provenance.json", "cell00/01-denoise-hybrid.npz", "cell00/02-band_map-area.tif",
                     "cell00/03-unmix-nnls/cell00_abundance.tif", "cell00/03-unmix-nnls/cell00_labels.tif",
                     "cell00/03-unmix-nnls/cell00_residual.tif", "cell00/03-unmix-nnls/endmembers.csv",
                     "cell00/03-unmix-nnls/unmixing.json"]
    denoised = nd.load_cube(cell / "01-denoise-hybrid.npz")
    assert denoised.data.shape == (BANDS, *SHAPE) and denoised.wavenumbers is not None
    assert Recipe.from_dict({"steps": denoised.metadata["provenance"]["recipe"]}).steps[0]["operation"] == "denoise"
    layers = get_reader(str(cell / "01-denoise-hybrid.npz"))(str(cell / "01-denoise-hybrid.npz"))
    assert layers[0][0].shape == (BANDS, *SHAPE)
    assert tifffile.imread(cell / "02-band_map-area.tif").shape == SHAPE
    assert tifffile.imread(cell / "03-unmix-nnls" / "cell00_abundance.tif").shape == (5, *SHAPE)
    record = json.loads((cell / "03-unmix-nnls" / "unmixing.json").read_text())
    assert record["targets"]["cell00"]["labels"] == "cell00_labels.tif"
    provenance = json.loads((cell / "provenance.json").read_text())
    assert provenance["recipe"] == json.loads(recipe_file.read_text())
    assert provenance["input"]["path"] == str(folder / "cell00.npz")
    assert {"napari_deeper", "numpy", "dask"} <= set(provenance["versions"])
    assert provenance["steps"][0]["figures"]["components"] >= 1
    # figures each step reports, as summary columns
    fractions = [float(rows[3][f"step3.unmix.fraction_{i}"]) for i in range(1, 6)]
    assert abs(sum(fractions) + float(rows[3]["step3.unmix.unassigned"]) - 1) < 1e-6
    assert int(rows[3]["step1.denoise.components"]) == provenance["steps"][0]["figures"]["components"]
    assert float(rows[3]["step2.band_map.mean"]) > 0


def test_console_script_is_the_same_command():
    script = Path(sys.executable).with_name("napari-deeper")
    if not script.is_file():
        pytest.skip(f"the napari-deeper script is not installed beside {sys.executable} (pip install -e .)")
    shown = subprocess.run([str(script), "batch", "--help"], capture_output=True, text=True, timeout=BOUND)
    assert shown.returncode == 0 and "RECIPE" in shown.stdout.upper() and "--scheduler" in shown.stdout


def test_rerun_skips_complete_inputs_force_and_a_changed_recipe_redo_them(tmp_path, recipe_file, capsys):
    folder = tmp_path / "cells"
    write_cells(folder, 2)
    out = tmp_path / "out"
    first = run_batch(recipe_file, [folder], out, scheduler=INLINE, noise=True)
    assert first.counts["ok"] == 2
    assert first.rows[0]["figures"]["noise.gain"] > 0  # the input's noise model, asked for with noise=True
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.parent != out}

    again = run_batch(recipe_file, [folder], out, scheduler=INLINE)
    assert [r["status"] for r in again.rows] == ["skipped", "skipped"]
    assert again.rows[0]["figures"] == first.rows[0]["figures"]  # the summary keeps their figures
    assert {p: p.stat().st_mtime_ns for p in written} == written  # nothing rewritten

    forced = run_batch(recipe_file, [folder], out, scheduler=INLINE, force=True)
    assert [r["status"] for r in forced.rows] == ["ok", "ok"]
    assert store.read_marker(out / "cell00")["run_id"] == forced.run_id

    changed = default_recipe()
    changed["steps"][1]["params"]["width"] = 40.0
    redone = run_batch(changed, [folder], out, scheduler=INLINE)
    assert [r["status"] for r in redone.rows] == ["ok", "ok"]
    assert redone.recipe_hash != first.recipe_hash
    assert_complete(out, redone.rows)

    capsys.readouterr()
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(changed))
    assert cli_main([str(path), str(folder), "--out", str(out), "--scheduler", INLINE, "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")  # --quiet: nothing but the exit status
    assert [r["status"] for r in read_summary(out / "summary.csv")] == ["skipped", "skipped"]


# ------------------------------------------------------------------------- same numbers
def assert_same_as_recipe_run(out: Path, name: str, recipe: dict, path: Path) -> None:
    """Each file of a batch result equals, bit for bit, recipe.run on the same file in Python."""
    replay = Recipe.from_dict(recipe).run(nd.load_cube(path))
    steps = recipe["steps"]
    for index, (step, expected) in enumerate(zip(steps, replay.outputs)):
        base = out / name / f"{index + 1:02d}-{step['operation']}-{step['method'] or 'hybrid'}"
        if step["operation"] == "unmix":
            kind = step["params"].get("map", "abundance")
            written = tifffile.imread(base / f"{name}_{kind}.tif")
        elif step["operation"] == "band_map":
            written = tifffile.imread(base.with_suffix(".tif"))
        else:
            written = nd.load_cube(base.with_suffix(".npz")).data
            expected = expected.data
        assert np.array_equal(written, np.asarray(expected).astype(written.dtype)), base.name
        assert written.dtype == np.asarray(expected).dtype or step["params"].get("map") == "labels"


def test_batch_results_are_bit_identical_to_recipe_run(tmp_path, servers):
    """In this process, as one Dask task per cube, and cut into row blocks: the same bits."""
    path = write_cells(tmp_path / "cells", 1, shape=(32, 20))[0]
    whole = default_recipe()
    for scheduler in (INLINE, servers.address):
        out = tmp_path / f"out-{'inline' if scheduler == INLINE else 'dask'}"
        report = run_batch(whole, [path], out, scheduler=scheduler)
        assert report.counts["ok"] == 1, report.rows
        assert_same_as_recipe_run(out, "cell00", whole, path)

    blocked = per_pixel_recipe()
    out = tmp_path / "out-blocks"
    megabytes = path.stat().st_size / 2**20
    report = run_batch(blocked, [path], out, scheduler=servers.address, block_mb=megabytes / 3.5)
    assert report.counts["ok"] == 1, report.rows
    assert json.loads((out / "cell00" / "provenance.json").read_text())["row_blocks"] == 4
    assert_same_as_recipe_run(out, "cell00", blocked, path)


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["steps"][1].update(operation="bandmap"), "step 2 (bandmap): unknown operation 'bandmap'"),
        (lambda d: d["steps"][1].update(method="volume"), "step 2 (band_map): unknown band map method 'volume'"),
        (lambda d: d["steps"][1]["params"].update(centre=1450), "step 2 (band_map): band map method 'area' has "
                                                                "no parameter 'centre'"),
        (lambda d: d.update(version=7), "recipe version 7 is not supported"),
    ],
)
def test_bad_recipe_is_refused_before_anything_runs(tmp_path, capsys, change, message):
    write_cells(tmp_path / "cells", 1)
    document = default_recipe()
    change(document)
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(document))
    out = tmp_path / "out"
    assert cli_main([str(path), str(tmp_path / "cells"), "--out", str(out), "--scheduler", INLINE]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_unwritable_output_and_unreachable_scheduler_are_clear_errors(tmp_path, recipe_file, capsys):
    import socket

    write_cells(tmp_path / "cells", 1)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert cli_main([str(recipe_file), str(tmp_path / "cells"), "--out", str(blocker / "out")]) == 2
    assert "is not writable" in capsys.readouterr().err

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    code = cli_main([str(recipe_file), str(tmp_path / "cells"), "--out", str(tmp_path / "out"),
                     "--scheduler", f"tcp://127.0.0.1:{port}", "--timeout", "2"])
    assert code == 2 and time.monotonic() - started < 20
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port} within 2 s" in capsys.readouterr().err
    assert not (tmp_path / "out" / "summary.csv").exists()


# ------------------------------------------------------------------------------ stopping
def test_ctrl_c_stops_cleanly_and_a_rerun_finishes(tmp_path, recipe_file, servers):
    """SIGINT in the middle: exit 130, finished inputs complete, no staging folder or temporary
    file anywhere, the rest marked cancelled; the same command again does only the rest."""
    folder = tmp_path / "cells"
    write_cells(folder, 96, shape=(40, 40))  # seconds of work after the signal, even on a loaded machine
    out = tmp_path / "out"
    # as a terminal starts it, with Python's own Ctrl-C handler, even when this process was started
    # with SIGINT ignored (a background job of a shell without job control), which children inherit
    command = ["batch", str(recipe_file), str(folder), "--out", str(out), "--scheduler", servers.address]
    as_in_a_terminal = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                        f"sys.argv = ['napari_deeper', *{command!r}]; runpy.run_module('napari_deeper', run_name='__main__')")
    process = subprocess.Popen([sys.executable, "-c", as_in_a_terminal], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + BOUND
    while sum(1 for p in out.glob("cell*") if p.is_dir()) < 2 if out.is_dir() else True:
        assert time.monotonic() < deadline and process.poll() is None, "the batch did not start"
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=BOUND)
    assert process.returncode == 130, stderr
    rows = [{**r, "files": r["files"].split(";") if r["files"] else []} for r in read_summary(out / "summary.csv")]
    statuses = [r["status"] for r in rows]
    assert set(statuses) <= {"ok", "cancelled"} and statuses.count("ok") >= 2 and "cancelled" in statuses
    assert_complete(out, rows)

    rest = run_batch(recipe_file, [folder], out, scheduler=servers.address)
    assert sorted({r["status"] for r in rest.rows}) == ["ok", "skipped"]
    assert [r["status"] == "skipped" for r in rest.rows] == [s == "ok" for s in statuses]
    assert_complete(out, rest.rows)


def test_cancel_in_process_leaves_no_partial_output(tmp_path, recipe_file):
    """Closing the steps generator (the dock's Cancel) in the middle of an input."""
    folder = tmp_path / "cells"
    write_cells(folder, 3, shape=(40, 40))
    out = tmp_path / "out"
    steps = batch_steps(recipe_file, [folder], out, scheduler=INLINE)
    for progress in steps:
        if progress.done == 1 and progress.within > 0.3:  # the second input is well under way
            assert any(p.name.endswith(store.PARTIAL) for p in out.iterdir())
            break
    steps.close()
    rows = read_summary(out / "summary.csv")
    assert [r["status"] for r in rows] == ["ok", "cancelled", "cancelled"]
    assert_complete(out, [{**r, "files": r["files"].split(";")} for r in rows])


# ---------------------------------------------------------------------------------- fault
def test_worker_killed_mid_batch_every_input_ends_once(tmp_path, recipe_file):
    """A scheduler and two workers; one worker's process is killed while it works on an input.
    All 32 inputs end ok, each output is committed once, and the summary is complete."""
    folder = tmp_path / "cells"
    write_cells(folder, 32)
    out = tmp_path / "out"
    cluster = DaskServers(tmp_path)
    victim = cluster.workers[0]
    seen: dict = {}

    def kill_mid_task() -> None:
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            entries = list(out.iterdir()) if out.is_dir() else []
            finished = sum(1 for p in entries if p.is_dir() and not p.name.startswith("."))
            working = [p.name for p in entries if p.name.endswith(store.PARTIAL) and f".{victim.pid}-" in p.name]
            if finished >= 4 and working:
                victim.kill()
                seen.update(staging=working[0], finished=finished, at=time.monotonic())
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_mid_task)
    watcher.start()
    try:
        report = run_batch(recipe_file, [folder], out, scheduler=cluster.address)
    finally:
        watcher.join()
        cluster.close()
    assert seen, "the worker was never caught in the middle of an input"
    assert victim.returncode == -signal.SIGKILL
    rows = read_summary(out / "summary.csv")
    assert len(rows) == 32 and {r["status"] for r in rows} == {"ok"}, [r.get("error") for r in rows if r["status"] != "ok"]
    assert report.counts["ok"] == 32
    assert_complete(out, report.rows)

    events = journal_events(out, report.run_id)
    commits = [e for e in events if e["event"] == "commit"]
    assert sorted(e["name"] for e in commits) == sorted(r["output"] for r in rows)  # each exactly once
    killed = seen["staging"].split(".")[1]  # .<name>.<run>.<attempt>.partial
    starts = [e for e in events if e["event"] == "start" and e["name"] == killed]
    assert victim.pid in [e["pid"] for e in starts] and len(starts) >= 2, events  # retried elsewhere
    (commit,) = [e for e in commits if e["name"] == killed]
    assert commit["pid"] != victim.pid
    assert store.read_marker(out / killed)["attempt"] == commit["attempt"]
    print(f"\nfault test: killed worker pid {victim.pid} while it wrote {killed!r} "
          f"({seen['finished']} inputs done); retried on pid {commit['pid']}; "
          f"{len(commits)} commits for {len(rows)} inputs, no leftovers")
