"""Spike-like endmembers and the background class (no Qt): what the Unmix dock's defaults rest on."""

from __future__ import annotations

import numpy as np
import pytest

import napari_deeper as nd
from napari_deeper.unmix import classify, unmix
from napari_deeper.unmix.labels import background_component
from napari_deeper.unmix.spikes import spike_like_endmembers


@pytest.fixture
def cell():
    return nd.simulate.simulate_cell((32, 32), n_bands=200, photons=200, seed=1)


def with_spike(cube):
    spiked = cube.copy()
    spiked[100:102, 5, 7] += 50 * cube.max()
    return spiked


def test_a_cosmic_ray_becomes_an_endmember_unless_removed_first(cell):
    cube = with_spike(cell.noisy)
    raw = unmix(cube, {"c": cube}, n_endmembers=5)
    assert np.ravel_multi_index((5, 7), (32, 32)) in raw.pixel_indices
    assert [s["band"] for s in raw.spike_like] in ([100], [101]) and raw.spike_like[0]["bands"] <= 2
    cleaned = unmix(cube, {"c": cube}, n_endmembers=5, despike=8.0)
    assert cleaned.spike_like == [] and cleaned.spikes_removed >= 2
    assert np.ravel_multi_index((5, 7), (32, 32)) not in cleaned.pixel_indices
    np.testing.assert_array_equal(cube, with_spike(cell.noisy))  # the input untouched


def test_real_raman_bands_are_not_spikes(cell):
    # the cell's bands are 1-2 bands wide at this sampling, but shared by neighbouring pixels
    assert spike_like_endmembers(cell.endmembers, None, None) == []  # no pixels: never flagged
    endmembers, pixels = nd.vca(cell.noisy, 5, seed=0)
    assert spike_like_endmembers(endmembers, cell.noisy, pixels) == []


def test_a_step_in_one_pixel_is_not_a_spike():
    rng = np.random.default_rng(0)
    cube = 1 + rng.normal(0, 0.01, (100, 5, 5))
    cube[50:, 2, 2] += 10.0  # a jump, not a peak
    assert spike_like_endmembers(cube[:, 2, 2][None], cube, [12]) == []
    cube[50:52, 2, 2] += 10.0  # a two-band peak on top of it, in this pixel only
    (found,) = spike_like_endmembers(cube[:, 2, 2][None], cube, [12])
    assert found["component"] == 0 and found["band"] in (50, 51) and found["bands"] == 2


def test_the_background_is_left_out_of_the_classes(cell):
    abundances = nd.nnls(cell.noisy, cell.endmembers)
    background = background_component(abundances)
    assert background == int(np.argmax(cell.abundances[:, 0, :].mean(axis=1)))  # the slide around the cell
    labels = classify(abundances)
    without = classify(abundances, background=background)
    assert (labels == background + 1).any() and not (without == background + 1).any()
    np.testing.assert_array_equal(without[labels != background + 1], labels[labels != background + 1])
    with pytest.raises(ValueError, match="background component 9"):
        classify(abundances, background=9)
