"""compute.py: driving steps generators, device choice and the GPU out-of-memory fallbacks."""

import numpy as np
import pytest
import torch

from napari_deeper import compute


def test_run_returns_the_generator_result_and_reports_progress():
    def steps():
        for i in range(3):
            yield compute.Progress(i, 3, "working")
        return "done"

    seen = []
    assert compute.run(steps(), seen.append) == "done"
    assert [p.fraction for p in seen] == pytest.approx([0, 1 / 3, 2 / 3])


def _counting(n, message="part", loss=None, closed=None):
    """A steps generator of ``n`` reports that returns ``n``; ``closed`` records its clean-up."""
    try:
        for i in range(n):
            yield compute.Progress(i, n, message, loss)
        return n
    finally:
        if closed is not None:
            closed.append(message)


def test_share_maps_progress_onto_its_part_of_the_bar_and_keeps_the_loss():
    seen = []
    result = compute.run(compute.share(_counting(4, "fit", loss=0.5), 100, 40, 200, "denoise"), seen.append)
    assert result == 4
    # 0/4 .. 3/4 of the 40 units from 100, then the end of the share (the last report fell short)
    assert [p.done for p in seen] == [100, 110, 120, 130, 140]
    assert all(p.total == 200 for p in seen)
    assert [p.message for p in seen[:4]] == ["denoise: fit"] * 4 and seen[-1].message == "denoise"
    assert [p.loss for p in seen[:4]] == [0.5] * 4


def test_closing_a_relay_closes_the_operation_inside_it():
    """Cancel stops at a yield: the nested operation's clean-up runs then, not at garbage collection."""
    closed = []
    outer = compute.stage(_counting(10, "inner", closed=closed), 0, 2, "outer")
    next(outer), next(outer)
    outer.close()
    assert closed == ["inner"]


def test_many_runs_jobs_in_order_under_one_bar():
    seen = []
    jobs = [("a", _counting(2, "a")), ("b", _counting(3, "b")), ("c", _counting(1, "c"))]
    assert compute.run(compute.many(jobs), seen.append) == [2, 3, 1]
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [p.message.split(":")[0] for p in seen] == ["a"] * 3 + ["b"] * 4 + ["c"] * 2
    assert compute.run(compute.many([])) == []


def test_chunks_cover_the_range_exactly():
    pieces = list(compute.chunks(10, 4))
    assert [(s.start, s.stop) for s in pieces] == [(0, 4), (4, 8), (8, 10)]
    assert compute.chunk_size(1e12) == 1  # never zero, however large an item is


def test_ordered_map_keeps_order_bounds_the_queue_and_stops_on_close():
    import threading
    import time

    running, most, lock = [0], [0], threading.Lock()
    started = []

    def slow(i):
        with lock:
            started.append(i)
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02 * (5 - i % 5))  # later items finish first
        with lock:
            running[0] -= 1
        return i * i

    assert list(compute.ordered_map(slow, range(10), 3)) == [i * i for i in range(10)]
    assert 1 < most[0] <= 3
    assert list(compute.ordered_map(slow, range(4), 1)) == [0, 1, 4, 9]
    started.clear()
    results = compute.ordered_map(slow, range(100), 2)
    assert next(results) == 0
    results.close()  # what a cancel does: queued calls are dropped, running ones end
    assert len(started) <= 5 and running[0] == 0


def test_thread_budget_follows_a_blas_limit():
    from threadpoolctl import threadpool_limits

    assert 1 <= compute.thread_budget() <= compute.usable_cores()
    with threadpool_limits(1):
        assert compute.thread_budget() == 1


def test_select_device():
    assert compute.select_device("cpu").type == "cpu"
    assert compute.select_device(None).type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="unknown device"):
        compute.select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            compute.select_device("cuda")


def test_gpu_visible_looks_for_a_drivers_files(tmp_path, monkeypatch):
    monkeypatch.setattr(compute, "GPU_DRIVER_FILES", (str(tmp_path / "nvidia[0-9]*"),))
    monkeypatch.setattr(compute.shutil, "which", lambda name: None)
    monkeypatch.setattr(compute.sys, "platform", "linux")
    assert compute.gpu_visible() is False
    (tmp_path / "nvidia0").touch()
    assert compute.gpu_visible() is True


def test_resolves_to_cpu_asks_torch_only_when_it_must(monkeypatch):
    """No GPU sign and torch not imported: the CPU, without torch. Otherwise torch decides."""
    monkeypatch.setattr(compute, "gpu_visible", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # torch would pick CUDA
    assert compute.resolves_to_cpu("cpu") is True
    assert compute.resolves_to_cpu(None) is False  # torch is imported here: its answer counts
    with monkeypatch.context() as unimported:  # as if torch were not imported yet
        unimported.delitem(compute.sys.modules, "torch")
        assert compute.resolves_to_cpu(None) is True and compute.resolves_to_cpu("auto") is True
        unimported.setattr(compute, "select_device", lambda device: torch.device("cuda"))
        unimported.setattr(compute, "gpu_visible", lambda: True)
        assert compute.resolves_to_cpu(None) is False  # a sign of a GPU: torch is asked
    assert compute.resolves_to_cpu("cuda") is False


def test_devices_lists_what_select_device_takes_and_imports_torch_only_when_it_must(monkeypatch):
    """The one device list of the docks: every name on it is one select_device accepts here."""
    assert compute.devices()[:2] == ["auto", "cpu"]
    for name in compute.devices():
        compute.select_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert "cuda" in compute.devices()  # torch is imported: its answer counts
    with monkeypatch.context() as unimported:  # as if torch were not imported yet, and no GPU sign
        unimported.delitem(compute.sys.modules, "torch")
        unimported.setattr(compute, "gpu_visible", lambda: False)
        assert compute.devices() == ["auto", "cpu"]
        assert "torch" not in compute.sys.modules


def test_out_of_memory_halves_the_batch_then_succeeds():
    sizes = []

    def double(batch, device):
        sizes.append(len(batch))
        if device.type == "cuda" and len(batch) > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return batch * 2

    items = np.arange(10, dtype=np.float32)
    out = compute.run(compute.map_batches(double, items, torch.device("cuda"), batch_size=8))
    np.testing.assert_array_equal(out, items * 2)
    assert sizes[:3] == [8, 4, 2]  # halved until a batch fits


def test_out_of_memory_for_one_item_falls_back_to_the_cpu():
    devices = []

    def only_cpu(batch, device):
        devices.append(device.type)
        if device.type == "cuda":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return batch + 1

    items = np.zeros(3, dtype=np.float32)
    with pytest.warns(RuntimeWarning, match="continuing on the CPU"):
        out = compute.run(compute.map_batches(only_cpu, items, torch.device("cuda"), batch_size=2))
    np.testing.assert_array_equal(out, items + 1)
    assert devices[-1] == "cpu"


def test_other_errors_are_not_swallowed():
    def broken(batch, device):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        compute.run(compute.map_batches(broken, np.zeros(4), torch.device("cuda"), batch_size=2))
