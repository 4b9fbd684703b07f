"""Unmixing core: exact NNLS/FCLS against references, VCA on known mixtures, files written."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.optimize import nnls as scipy_nnls

import napari_deeper as nd
from napari_deeper import compute
from napari_deeper.io.endmembers import load_endmembers_csv, save_endmembers_csv
from napari_deeper.unmix import abundances as abundances_module
from napari_deeper.unmix import classify, estimate_n_endmembers, estimate_snr, nnls_steps, unmix
from napari_deeper.unmix import endmembers as vca_module
from napari_deeper.unmix.abundances import _TorchOps


def peaks_spectra(rng, k: int, n_bands: int) -> np.ndarray:
    """k smooth, positive Raman-like spectra (a few Gaussian bands on a small offset)."""
    w = np.linspace(0.0, 1.0, n_bands)
    spectra = np.full((k, n_bands), 0.05)
    for row in spectra:
        for center in rng.uniform(0.05, 0.95, 5):
            row += rng.uniform(0.3, 1.0) * np.exp(-0.5 * ((w - center) / rng.uniform(0.01, 0.04)) ** 2)
    return spectra


def mixture(rng, k=4, n_bands=120, shape=(30, 40), snr_db=40.0, concentration=0.5):
    """Linear mixture with Dirichlet abundances; pixels 0..k-1 are pure. Returns (cube, E, A)."""
    endmembers = peaks_spectra(rng, k, n_bands)
    n = shape[0] * shape[1]
    abundances = rng.dirichlet(np.full(k, concentration), n).T
    abundances[:, :k] = np.eye(k)
    clean = endmembers.T @ abundances
    sigma = np.sqrt(np.mean(clean**2) / 10 ** (snr_db / 10))
    noisy = clean + rng.normal(0.0, sigma, clean.shape)
    return noisy.reshape(n_bands, *shape).astype(np.float32), endmembers, abundances.reshape(k, *shape)


def scipy_reference(cube: np.ndarray, endmembers: np.ndarray) -> np.ndarray:
    """scipy.optimize.nnls pixel by pixel: the definition of the right answer."""
    matrix = np.asarray(endmembers, dtype=np.float64).T
    pixels = cube.reshape(cube.shape[0], -1).astype(np.float64)
    return np.stack([scipy_nnls(matrix, pixels[:, j])[0] for j in range(pixels.shape[1])], axis=1)


def relative_difference(ours: np.ndarray, reference: np.ndarray) -> float:
    """Largest per-pixel difference, relative to the pixel's largest reference abundance."""
    ours = ours.reshape(reference.shape)
    scale = np.maximum(np.abs(reference).max(axis=0), 1e-12)
    return float((np.abs(ours - reference).max(axis=0) / scale).max())


def residual_norms(cube, endmembers, abundances) -> np.ndarray:
    pixels = cube.reshape(cube.shape[0], -1).astype(np.float64)
    x = np.asarray(abundances, dtype=np.float64).reshape(len(endmembers), -1)
    return np.linalg.norm(pixels - np.asarray(endmembers, dtype=np.float64).T @ x, axis=0)


def spectral_angle(a, b) -> float:
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


# ---------------------------------------------------------------------------------- NNLS


def test_nnls_equals_scipy_with_many_active_constraints(rng):
    endmembers = rng.random((6, 40))
    cube = rng.normal(0.2, 1.0, (40, 25, 30)).astype(np.float32)  # noise: many x_i = 0
    ours = nd.nnls(cube, endmembers, device="cpu")
    reference = scipy_reference(cube, endmembers)
    active = np.mean(reference == 0)
    assert 0.3 < active < 0.95, f"the test needs many active constraints, got {active:.0%}"
    assert ours.shape == (6, 25, 30) and ours.dtype == np.float32
    assert relative_difference(ours, reference) <= 1e-6
    assert np.all(ours >= 0)
    ours_res, scipy_res = residual_norms(cube, endmembers, ours), residual_norms(cube, endmembers, reference)
    assert np.all(ours_res <= scipy_res * (1 + 1e-9) + 1e-12), "a residual is worse than scipy's"


def test_nnls_equals_scipy_on_a_simulated_cell():
    cell = nd.simulate.simulate_cell((24, 24), n_bands=200, photons=30, seed=3)
    endmembers = np.asarray(cell.endmembers)
    ours = nd.nnls(cell.noisy, endmembers, device="cpu")
    reference = scipy_reference(cell.noisy, endmembers)
    assert np.mean(reference == 0) > 0.02, "expected some active constraints in a cell image"
    assert relative_difference(ours, reference) <= 1e-6
    ours_res = residual_norms(cell.noisy, endmembers, ours)
    assert np.all(ours_res <= residual_norms(cell.noisy, endmembers, reference) * (1 + 1e-9) + 1e-12)


def test_nnls_is_not_nnls_on_the_normal_equations(rng):
    """The exact answer differs from nnls(E E^T, E y) wherever a constraint is active."""
    endmembers = rng.random((4, 30))
    y = rng.normal(0.0, 1.0, 30)
    exact = nd.nnls(y.reshape(30, 1, 1).astype(np.float32), endmembers, device="cpu")[:, 0, 0]
    gram_answer = scipy_nnls(endmembers @ endmembers.T, endmembers @ y.astype(np.float32))[0]
    reference = scipy_nnls(endmembers.T, y.astype(np.float32).astype(np.float64))[0]
    assert np.allclose(exact, reference, atol=1e-6)
    assert not np.allclose(gram_answer, reference, atol=1e-3)


def test_chunks_give_identical_results_and_progress(rng):
    cube, endmembers, _ = mixture(rng, shape=(13, 17))
    whole = nd.nnls(cube, endmembers, device="cpu")
    reports = []
    pieces = compute.run(nnls_steps(cube, endmembers, device="cpu", chunk_size=10), reports.append)
    assert np.array_equal(whole, pieces)
    done = [report.done for report in reports]
    assert done == sorted(done) and done[-1] == 13 * 17 and len(reports) == 1 + int(np.ceil(221 / 10))


def test_residual_map_is_the_rms_of_the_model_error(rng):
    cube, endmembers, _ = mixture(rng, shape=(10, 12), snr_db=20)
    abundances, residual = nd.nnls(cube, endmembers, device="cpu", return_residual=True)
    direct = residual_norms(cube, endmembers, abundances) / np.sqrt(cube.shape[0])
    assert residual.shape == (10, 12)
    assert np.allclose(residual.ravel(), direct, rtol=1e-4, atol=1e-6)


def test_all_zero_pixels_get_zero_abundance_and_negative_data_works(rng):
    cube, endmembers, _ = mixture(rng, shape=(8, 9))
    cube[:, 2, :] = 0.0
    cube[:, 5, 3] = -np.abs(cube[:, 5, 3])  # a negative spectrum (over-subtracted baseline)
    for sum_to_one in (False, True):
        out = nd.nnls(cube, endmembers, sum_to_one=sum_to_one, device="cpu")
        assert np.all(np.isfinite(out))
        assert np.all(out[:, 2, :] == 0)
    ours = nd.nnls(cube, endmembers, device="cpu")
    assert relative_difference(ours, scipy_reference(cube, endmembers)) <= 1e-6
    assert np.all(ours[:, 5, 3] == 0)  # nothing non-negative explains a negative spectrum


def test_torch_implementation_matches_numpy(rng, monkeypatch):
    """The GPU code path, run end to end with torch on the CPU: same algorithm, same answers."""
    torch = pytest.importorskip("torch")
    cube = rng.normal(0.3, 1.0, (30, 12, 14)).astype(np.float32)
    cube[:, 0, :3] = 0.0
    endmembers = rng.random((5, 30))
    expected = {
        fcls: nd.nnls(cube, endmembers, sum_to_one=fcls, device="cpu", return_residual=True)
        for fcls in (False, True)
    }
    monkeypatch.setattr(abundances_module, "_backend", lambda device: _TorchOps(torch.device("cpu")))
    for fcls, (numpy_maps, numpy_residual) in expected.items():
        maps, residual = nd.nnls(cube, endmembers, sum_to_one=fcls, device="cuda", return_residual=True)
        assert np.abs(maps - numpy_maps).max() <= 1e-6
        assert np.allclose(residual, numpy_residual, rtol=1e-5, atol=1e-7)
    assert relative_difference(maps, scipy_reference(cube, endmembers)) > 0.01  # FCLS differs
    plain = nd.nnls(cube, endmembers, device="cuda")
    assert relative_difference(plain, scipy_reference(cube, endmembers)) <= 1e-6


def test_gpu_matches_cpu(rng):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine; the torch code path is tested on the CPU above")
    cube, endmembers, _ = mixture(rng, shape=(40, 50), snr_db=15)
    for sum_to_one in (False, True):
        cpu = nd.nnls(cube, endmembers, sum_to_one=sum_to_one, device="cpu")
        gpu = nd.nnls(cube, endmembers, sum_to_one=sum_to_one, device="cuda")
        assert np.abs(cpu - gpu).max() <= 1e-6


def blas_threads() -> int:
    """The most threads any loaded BLAS library is set to use (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    return max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")


def test_chunk_threads_run_with_one_blas_thread_and_restore_the_limit(rng, monkeypatch):
    """Our chunk threads are the parallelism: BLAS threads on top made NNLS up to 12x slower."""
    from threadpoolctl import threadpool_limits

    seen = []
    project = abundances_module._NumpyOps.project
    monkeypatch.setattr(
        abundances_module._NumpyOps, "project",
        staticmethod(lambda *args: seen.append(blas_threads()) or project(*args)),
    )  # fmt: skip
    cube = rng.normal(0.2, 1.0, (40, 20, 30)).astype(np.float32)
    endmembers = rng.random((5, 40))
    with threadpool_limits(2, user_api="blas"):
        if blas_threads() < 2:
            pytest.skip("this BLAS cannot be set to 2 threads here, so a limit to 1 is not visible")
        ours = nd.nnls(cube, endmembers, chunk_size=50)  # device=None: the CPU here
        assert set(seen) == {1} and len(seen) == 12
        assert blas_threads() == 2, "the limits in force before the call were not restored"
    assert relative_difference(ours, scipy_reference(cube, endmembers)) <= 1e-6


def test_a_caller_holding_blas_to_one_thread_gets_no_chunk_threads(rng, monkeypatch):
    """A batch worker runs with one BLAS thread and one task per core: its NNLS solves the chunks
    in its own thread (:func:`~napari_deeper.compute.thread_budget`), the same answer."""
    import threading

    from threadpoolctl import threadpool_limits

    seen = []
    project = abundances_module._NumpyOps.project
    monkeypatch.setattr(
        abundances_module._NumpyOps, "project",
        staticmethod(lambda *args: seen.append(threading.get_ident()) or project(*args)),
    )  # fmt: skip
    cube = rng.normal(0.2, 1.0, (40, 20, 30)).astype(np.float32)
    endmembers = rng.random((5, 40))
    with threadpool_limits(2, user_api="blas"):  # (what an earlier run in this process left does not count)
        if blas_threads() < 2 or compute.usable_cores() < 2:
            pytest.skip("this machine or its BLAS cannot run 2 threads, so no chunk threads are expected anyway")
        free = nd.nnls(cube, endmembers, device="cpu", chunk_size=50)
    assert threading.get_ident() not in seen, "with 2 BLAS threads allowed the chunks run in threads"
    seen.clear()
    with threadpool_limits(1, user_api="blas"):
        held = nd.nnls(cube, endmembers, device="cpu", chunk_size=50)
    assert set(seen) == {threading.get_ident()} and len(seen) == 12
    np.testing.assert_array_equal(held, free)


def test_concurrent_and_cancelled_solves_share_one_blas_limit(rng):
    """The limit is process-wide: it is lifted when the last solve ends, also when cancelled."""
    from threadpoolctl import threadpool_limits

    cube = rng.normal(0.2, 1.0, (30, 10, 10)).astype(np.float32)
    endmembers = rng.random((4, 30))
    with threadpool_limits(2, user_api="blas"):
        if blas_threads() < 2:
            pytest.skip("this BLAS cannot be set to 2 threads here, so a limit to 1 is not visible")
        first = nnls_steps(cube, endmembers, device="cpu", chunk_size=10)
        second = nnls_steps(cube, endmembers, sum_to_one=True, device="cpu", chunk_size=10)
        next(first), next(first)  # the first solve is under way
        next(second), next(second)
        assert blas_threads() == 1
        first.close()  # cancelled while the second one still runs
        assert blas_threads() == 1
        fcls = compute.run(second)
        assert blas_threads() == 2
    assert np.abs(fcls.sum(axis=0) - 1).max() <= 1e-6


def test_nnls_with_device_none_on_a_cpu_machine_does_not_import_torch():
    """device=None looks for a GPU driver's files first: a 1-5 s torch import only where one is."""
    import subprocess
    import sys

    if compute.gpu_visible():
        pytest.skip("this machine shows a GPU driver, so device=None rightly imports torch to ask it")
    script = """
import json, sys, time
import numpy as np
import napari_deeper as nd
cube = np.random.default_rng(0).random((50, 20, 20), dtype=np.float32)
start = time.perf_counter()
nd.nnls(cube, np.random.default_rng(1).random((3, 50)))
print(json.dumps({"seconds": time.perf_counter() - start, "torch": "torch" in sys.modules}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["torch"] is False, "nd.nnls(device=None) imported torch on a machine without a GPU"
    assert result["seconds"] < 1.0  # importing torch alone takes 1.5-4.5 s


@pytest.mark.parametrize("sum_to_one, scale_endmembers", [(False, False), (False, True), (True, True)])
def test_data_near_the_float32_maximum_give_finite_exact_results(rng, sum_to_one, scale_endmembers):
    """float64 arithmetic holds any float32 data. Scaling data and endmembers by c leaves the
    abundances as they are; scaling the data alone multiplies NNLS abundances by c."""
    cube, endmembers, _ = mixture(rng, k=3, n_bands=30, shape=(5, 6), snr_db=20)
    cube = np.abs(cube)
    factor = np.float32(0.9 * np.finfo(np.float32).max / cube.max())
    big = cube * factor
    assert np.all(np.isfinite(big)) and big.max() > 3e38
    big_endmembers = endmembers * np.float64(factor) if scale_endmembers else endmembers
    maps, residual = nd.nnls(big, big_endmembers, sum_to_one=sum_to_one, device="cpu", return_residual=True)
    small, small_residual = nd.nnls(cube, endmembers, sum_to_one=sum_to_one, device="cpu", return_residual=True)
    expected = small if scale_endmembers else small * np.float64(factor)
    assert np.all(np.isfinite(maps)) and np.all(np.isfinite(residual))
    assert np.abs(maps - expected).max() <= 1e-6 * np.abs(expected).max()
    assert residual.max() > 1e37  # the residuals' squares pass float32's range: no Inf
    assert np.allclose(residual, small_residual * np.float64(factor), rtol=1e-4)


def test_fcls_of_data_far_above_the_endmembers_is_the_best_vertex(rng):
    """FCLS is not scale-equivariant in the data alone: data 1e38 times the endmembers make the
    quadratic term negligible, so the answer is the vertex with the largest ``b_i - G_ii / 2``."""
    cube, endmembers, _ = mixture(rng, k=3, n_bands=30, shape=(5, 6), snr_db=20)
    big = np.abs(cube) * np.float32(0.9 * np.finfo(np.float32).max / np.abs(cube).max())
    maps = nd.nnls(big, endmembers, sum_to_one=True, device="cpu").reshape(3, -1)
    b = endmembers @ big.reshape(30, -1).astype(np.float64)
    best = (b - 0.5 * np.einsum("ij,ij->i", endmembers, endmembers)[:, None]).argmax(axis=0)
    assert np.array_equal(maps, np.eye(3, dtype=np.float32)[:, best])


def test_results_beyond_float32_are_refused_with_a_message(rng):
    cube, endmembers, _ = mixture(rng, k=3, n_bands=30, shape=(4, 5))
    big = np.abs(cube) * np.float32(0.9 * np.finfo(np.float32).max / np.abs(cube).max())
    with pytest.raises(ValueError, match="NNLS abundances of .* pixels reach .* beyond float32's range"):
        nd.nnls(big, endmembers / 100, device="cpu")  # abundances of about 1e40
    with pytest.raises(ValueError, match="endmembers hold values up to 1e\\+40, beyond float32's range"):
        nd.nnls(cube, endmembers * 1e40 / endmembers.max(), device="cpu")


# ---------------------------------------------------------------------------------- FCLS


def fcls_by_enumeration(endmembers, y):
    """Exact FCLS by trying every passive set: the feasible KKT point with the least error."""
    gram, b = endmembers @ endmembers.T, endmembers @ y
    k = len(endmembers)
    best, best_error = None, np.inf
    for size in range(1, k + 1):
        for subset in itertools.combinations(range(k), size):
            s = list(subset)
            system = np.block([[gram[np.ix_(s, s)], np.ones((size, 1))], [np.ones((1, size)), np.zeros((1, 1))]])
            solution = np.linalg.solve(system, np.r_[b[s], 1.0])
            if np.any(solution[:size] < -1e-12):
                continue
            x = np.zeros(k)
            x[s] = np.maximum(solution[:size], 0)
            error = np.linalg.norm(endmembers.T @ x - y)
            if error < best_error:
                best, best_error = x, error
    return best


def test_fcls_sums_to_one_and_equals_the_exact_solution(rng):
    cube, endmembers, _ = mixture(rng, k=4, n_bands=50, shape=(6, 7), snr_db=10)
    cube *= rng.uniform(0.5, 1.5, (1, 6, 7)).astype(np.float32)  # brightness changes: constraints bite
    ours = nd.nnls(cube, endmembers, sum_to_one=True, device="cpu")
    assert np.all(ours >= 0)
    assert np.abs(ours.sum(axis=0) - 1).max() <= 1e-6
    pixels = cube.reshape(50, -1).astype(np.float64)
    reference = np.stack([fcls_by_enumeration(endmembers, pixels[:, j]) for j in range(42)], axis=1)
    assert np.mean(reference == 0) > 0.1, "expected active non-negativity constraints"
    assert np.abs(ours.reshape(4, -1) - reference).max() <= 1e-6


def test_fcls_agrees_with_slsqp(rng):
    cube, endmembers, _ = mixture(rng, k=3, n_bands=40, shape=(1, 4), snr_db=15)
    ours = nd.nnls(cube, endmembers, sum_to_one=True, device="cpu").reshape(3, -1)
    for j in range(4):
        y = cube[:, 0, j].astype(np.float64)
        solved = minimize(
            lambda x, y=y: np.sum((endmembers.T @ x - y) ** 2),
            np.full(3, 1 / 3),
            method="SLSQP",
            bounds=[(0, None)] * 3,
            constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1}],
            options={"ftol": 1e-14, "maxiter": 500},
        )
        assert np.abs(ours[:, j] - solved.x).max() < 1e-4
        assert np.sum((endmembers.T @ ours[:, j] - y) ** 2) <= solved.fun * (1 + 1e-7) + 1e-12


# ---------------------------------------------------------------------------------- VCA


@pytest.mark.parametrize("subspace", ["full matrix", "randomized"])
def test_vca_finds_the_endmembers_of_a_linear_mixture(rng, monkeypatch, subspace):
    if subspace == "randomized":
        monkeypatch.setattr(vca_module, "FULL_MATRIX_WORK", 0)
    cube, endmembers, _ = mixture(rng, k=4, snr_db=40)
    found, indices = nd.vca(cube, 4, seed=0)
    assert found.shape == (4, 120) and found.dtype == np.float32 and indices.shape == (4,)
    for truth in endmembers:
        angle = min(spectral_angle(truth, estimate) for estimate in found)
        assert angle < 1.0, f"an endmember was missed: best spectral angle {angle:.2f} degrees"
    raw = cube.reshape(120, -1)[:, indices]
    assert all(spectral_angle(a, b) < 1.0 for a, b in zip(found, raw.T))


def test_vca_is_reproducible_and_respects_the_mask(rng):
    cube, _, _ = mixture(rng, k=3, snr_db=25)
    first = nd.vca(cube, 3, seed=7)
    again = nd.vca(cube, 3, seed=7)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    mask = np.zeros(cube.shape[1:], bool)
    mask[10:, 20:] = True  # leaves out the pure pixels in row 0
    _, indices = nd.vca(cube, 3, seed=7, mask=mask)
    assert mask.ravel()[indices].all()


def test_vca_gives_the_same_answer_at_any_blas_thread_count():
    """Its data passes hold BLAS to one thread (threads only slowed them), so the machine's
    thread settings do not change the endmembers, as a batch on other workers needs."""
    from threadpoolctl import threadpool_limits

    cell = nd.simulate.simulate_cell((128, 128), n_bands=300, seed=0)
    cube = np.tile(cell.noisy.astype(np.float32), (1, 2, 2))  # the randomized subspace's size
    assert 300.0**2 * cube[0].size > vca_module.FULL_MATRIX_WORK
    found = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            found.append(nd.vca(cube, 5, seed=0))
    assert np.array_equal(found[0][0], found[1][0]) and np.array_equal(found[0][1], found[1][1])


def test_vca_uses_the_projective_projection_at_low_snr(rng, monkeypatch):
    chosen = []
    original = vca_module._perspective
    monkeypatch.setattr(vca_module, "_perspective", lambda c: chosen.append("subspace") or original(c))
    cube, _, _ = mixture(rng, k=3, snr_db=40)
    nd.vca(cube, 3)
    assert chosen == ["subspace"]
    noisy, _, _ = mixture(rng, k=3, snr_db=3)
    found, _ = nd.vca(noisy, 3)
    assert chosen == ["subspace"] and np.all(np.isfinite(found))


def test_snr_estimate_avoids_division_by_zero():
    assert estimate_snr(2.0, 2.0, 3, 100) == float("inf")  # everything in the subspace
    assert estimate_snr(2.0, 0.01, 3, 100) == float("-inf")  # subspace holds only noise
    assert estimate_snr(1.0, 0.99, 3, 100) == pytest.approx(10 * np.log10((0.99 - 0.03) / 0.01))


@pytest.mark.parametrize("method", ["variance", "hysime"])
def test_estimate_n_endmembers_is_a_good_hint(rng, method):
    for k in (3, 5):
        cube, _, _ = mixture(rng, k=k, snr_db=30)
        assert estimate_n_endmembers(cube, method=method) == k
    with pytest.raises(ValueError, match="unknown method"):
        estimate_n_endmembers(cube, method="pca")


# ---------------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors(rng):
    cube, endmembers, _ = mixture(rng, k=3, n_bands=20, shape=(4, 5))
    with pytest.raises(ValueError, match="bands but the data has 20"):
        nd.nnls(cube, endmembers[:, :-1])
    with pytest.raises(ValueError, match="transposed"):
        nd.nnls(cube, endmembers.T)
    bad = endmembers.copy()
    bad[1, 4] = np.nan
    with pytest.raises(ValueError, match="NaN/Inf values"):
        nd.nnls(cube, bad)
    with pytest.raises(ValueError, match="linearly dependent"):
        nd.nnls(cube, np.vstack([endmembers, endmembers[:1] * 2]))
    with pytest.raises(ValueError, match="must not exceed the number of bands"):
        nd.vca(cube, 21)
    with pytest.raises(ValueError, match="must not exceed the number of bands"):
        nd.nnls(cube[:2], endmembers[:, :2])
    with pytest.raises(ValueError, match="at least as many pixels as endmembers"):
        nd.vca(cube[:, :1, :2], 3)
    with pytest.raises(ValueError, match="positive integer"):
        nd.vca(cube, 0)
    holes = cube.copy()
    holes[3, 1, 1] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        nd.nnls(holes, endmembers)
    with pytest.raises(ValueError, match="1 NaN"):
        nd.vca(holes, 3)
    with pytest.raises(ValueError, match="target 'b' has 19 bands"):
        unmix(cube, {"a": cube, "b": cube[:-1]}, n_endmembers=3)


# ---------------------------------------------------------------------------------- labels, pipeline


def test_classify_numbers_components_from_one():
    abundances = np.zeros((3, 2, 3), np.float32)
    abundances[0, 0, 0] = 0.9
    abundances[2, 0, 1] = 0.5
    abundances[1, 1, 1] = 0.05
    labels = classify(abundances)
    assert labels.dtype == np.int32
    assert labels.tolist() == [[1, 3, 0], [0, 2, 0]]
    assert classify(abundances, min_abundance=0.1).tolist() == [[1, 3, 0], [0, 0, 0]]


def test_unmix_pipeline_applies_one_set_of_endmembers_to_every_target(rng):
    cube, endmembers, truth = mixture(rng, k=3, snr_db=35, concentration=0.2)
    upscaled = np.repeat(np.repeat(cube, 2, axis=1), 2, axis=2)
    reports = []
    result = compute.run(unmix_steps_for(cube, {"raw": cube, "big": upscaled}), reports.append)
    assert set(result.targets) == {"raw", "big"}
    assert result.targets["big"].abundances.shape == (3, 60, 80)
    raw = result.targets["raw"]
    assert raw.residual.shape == raw.labels.shape == (30, 40)
    assert np.array_equal(result.targets["big"].labels[::2, ::2], raw.labels)
    assert [r.done for r in reports] == sorted(r.done for r in reports)
    # the labels are the true dominant components, up to VCA's order
    order = [int(np.argmin([spectral_angle(t, e) for e in result.endmembers])) for t in endmembers]
    truth_labels = np.asarray(order)[truth.argmax(axis=0)] + 1
    assert np.mean(raw.labels == truth_labels) > 0.95


def unmix_steps_for(source, targets):
    from napari_deeper.unmix import unmix_steps

    return unmix_steps(source, targets, n_endmembers=3, seed=0)


# ---------------------------------------------------------------------------------- files


def test_endmember_csv_round_trip(tmp_path, rng):
    endmembers = rng.random((3, 7)).astype(np.float32)
    wavenumbers = np.linspace(501.27, 1802.47, 7)
    path = save_endmembers_csv(tmp_path / "em.csv", endmembers, wavenumbers, ["lipids", "DNA, RNA", "proteins"])
    loaded, axis, names = load_endmembers_csv(path)
    assert np.array_equal(loaded, endmembers) and np.array_equal(axis, wavenumbers)
    assert names == ["lipids", "DNA, RNA", "proteins"]
    assert path.read_text().splitlines()[0] == 'wavenumber,lipids,"DNA, RNA",proteins'
    save_endmembers_csv(tmp_path / "bands.csv", endmembers)
    loaded, axis, names = load_endmembers_csv(tmp_path / "bands.csv")
    assert axis is None and names == ["component 1", "component 2", "component 3"]
    (tmp_path / "semicolons.csv").write_text("wavenumber;a;b\n500;1;2\n510;3;4\n")
    loaded, axis, names = load_endmembers_csv(tmp_path / "semicolons.csv")
    assert loaded.tolist() == [[1, 3], [2, 4]] and axis.tolist() == [500, 510] and names == ["a", "b"]
    (tmp_path / "bad.csv").write_text("wavenumber,a\n500,1\n510,oops\n")
    with pytest.raises(ValueError, match="line 3"):
        load_endmembers_csv(tmp_path / "bad.csv")


def test_writers_round_trip_with_tifffile(tmp_path, rng):
    import tifffile

    from napari_deeper.io.layer_writers import write_endmembers_csv, write_labels_tiff, write_npy, write_tiff

    abundances = rng.random((3, 5, 6)).astype(np.float32)
    endmembers = rng.random((3, 8)).astype(np.float32)
    wavenumbers = np.linspace(600, 1700, 8)
    record = {
        "operation": "unmix",
        "source": "cell",
        "components": ["lipids", "proteins", "DNA"],
        "endmembers": endmembers,
        "wavenumbers": wavenumbers,
    }
    attributes = {"name": "cell · abundance", "metadata": {"napari_deeper": record}, "scale": [1, 0.5, 0.5]}
    [tif] = write_tiff(str(tmp_path / "maps.tif"), abundances, attributes)
    with tifffile.TiffFile(tif) as handle:
        assert np.array_equal(handle.asarray(), abundances)
        assert len(handle.pages) == 3
        meta = handle.shaped_metadata[0]
    assert meta["components"] == ["lipids", "proteins", "DNA"]
    assert meta["napari_deeper"]["wavenumbers"] == pytest.approx(wavenumbers.tolist())
    assert meta["scale"] == [1, 0.5, 0.5] and meta["name"] == "cell · abundance"

    labels = classify(abundances)
    [tif] = write_labels_tiff(str(tmp_path / "labels.tif"), labels, attributes)
    back = tifffile.imread(tif)
    assert back.dtype == np.uint8 and np.array_equal(back, labels)

    [csv_path] = write_endmembers_csv(str(tmp_path / "em.csv"), abundances, attributes)
    loaded, axis, names = load_endmembers_csv(csv_path)
    assert np.array_equal(loaded, endmembers) and names == record["components"]
    with pytest.raises(ValueError, match="holds no endmember spectra"):
        write_endmembers_csv(str(tmp_path / "none.csv"), abundances, {"name": "raw", "metadata": {}})

    written = write_npy(str(tmp_path / "maps.npy"), abundances, attributes)
    assert written == [str(tmp_path / "maps.npy")]
    assert np.array_equal(np.load(written[0]), abundances)
    cube = rng.random((8, 4, 5)).astype(np.float32)
    written = write_npy(str(tmp_path / "cube.npy"), cube, {"name": "cube", "metadata": {"wavenumbers": wavenumbers}})
    assert len(written) == 2 and np.array_equal(np.load(tmp_path / "cube_wavenumbers.npy"), wavenumbers)
    json.dumps(meta)  # everything in the description is plain JSON


def test_tiff_description_is_what_json_reads_back():
    """A TIFF's description (plain JSON types copied, others converted) equals a JSON round trip."""
    from pathlib import Path

    from napari_deeper.io.layer_writers import _jsonable, tiff_metadata

    plain = {"recipe": [{"operation": "unmix", "params": {"endmembers": [[0.5, -0.0, 1e-310], [float("nan"), float("inf"), 2]],
                                                         "shape": (3, (4, "x"))}}], "note": "é\ud800", "on": True, "off": None}
    converted = {"endmembers": np.eye(2, dtype=np.float32), "gain": np.float64(1.5), 3: "three", "path": Path("/a"),
                 "nested": [{"n": np.int64(7)}]}
    for record in (plain, converted):
        attributes = {"name": "maps", "metadata": {"napari_deeper": record}, "scale": (1.0, 0.5)}
        described = tiff_metadata(np.zeros((2, 3)), attributes)
        expected = json.loads(json.dumps({**described, "napari_deeper": record}, default=_jsonable))
        assert json.dumps(described) == json.dumps(expected) and repr(described) == repr(expected)
    described["napari_deeper"]["nested"][0]["n"] = 0
    assert converted["nested"][0]["n"] == 7
    described = tiff_metadata(np.zeros((2, 3)), {"metadata": {"napari_deeper": plain}})
    described["napari_deeper"]["recipe"][0]["params"]["endmembers"][0][0] = 9.0  # a copy, not the record itself
    assert plain["recipe"][0]["params"]["endmembers"][0][0] == 0.5
