"""A fixture that skips after napari's viewer fixture is set up must not break its teardown.

napari's ``make_napari_viewer`` reads ``request.node.rep_call`` at teardown, which exists only
when the test body ran; ``tests/conftest.py`` supplies it for a setup that skipped or failed.
These tests run a small test file in a fresh pytest, with and without that conftest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

CONFTEST = Path(__file__).with_name("conftest.py")

INNER_TESTS = '''
import pytest


@pytest.fixture
def no_data():
    pytest.skip("the data is not here")


@pytest.fixture
def viewer_then_skip(make_napari_viewer):
    make_napari_viewer()
    pytest.skip("the data is not here either")


def test_skip_after_the_viewer_fixture(make_napari_viewer, no_data):
    make_napari_viewer()


def test_skip_after_a_viewer_was_made(viewer_then_skip):
    pass


def test_a_viewer_still_works(make_napari_viewer):
    assert len(make_napari_viewer().layers) == 0
'''


def run_inner(pytester, with_conftest: bool):
    if with_conftest:
        pytester.makeconftest(CONFTEST.read_text(encoding="utf-8"))
    pytester.makepyfile(test_inner=INNER_TESTS)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")


def test_skipping_fixtures_tear_the_viewer_down_cleanly(pytester):
    result = run_inner(pytester, with_conftest=True)
    result.assert_outcomes(passed=1, skipped=2, errors=0)
    assert "rep_call" not in result.stdout.str()


def test_napari_still_needs_the_hook(pytester):
    """Without the conftest the same file errors at teardown: the hook is not dead code.

    If this starts failing, napari's fixture no longer needs ``rep_call`` for a skipped setup
    and the hook in ``tests/conftest.py`` can go.
    """
    result = run_inner(pytester, with_conftest=False)
    result.assert_outcomes(passed=1, skipped=2, errors=2)
    result.stdout.fnmatch_lines(["*AttributeError: 'Function' object has no attribute 'rep_call'*"])
