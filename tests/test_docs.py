"""The docs are plain Markdown: every relative link and image resolves, the API examples run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE = re.compile(r"```python\n(.*?)```", re.S)


def relative_links(page: Path) -> list[str]:
    links = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        links.append(target.split("#", 1)[0])
    return links


@pytest.mark.parametrize(
    "page", [ROOT / "README.md", *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name
)
def test_relative_links_and_images_exist(page):
    missing = [link for link in relative_links(page) if not (page.parent / link).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"


def test_index_links_every_page():
    linked = set(relative_links(DOCS / "index.md"))
    pages = {page.name for page in DOCS.glob("*.md")} - {"index.md"}
    assert pages <= linked, f"docs/index.md does not link {sorted(pages - linked)}"


def test_api_examples_run(tmp_path, monkeypatch, capsys):
    """Run docs/api.md's Python blocks in order, in one namespace, as a reader would."""
    import torch

    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    blocks = CODE.findall((DOCS / "api.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    for number, block in enumerate(blocks, start=1):
        try:
            exec(compile(block, f"docs/api.md block {number}", "exec"), namespace)
        except Exception as error:  # noqa: BLE001 - re-raised with the block that failed
            raise AssertionError(f"docs/api.md block {number} failed: {error!r}\n{block}") from error
    printed = capsys.readouterr().out
    assert "(300, 48, 48) float32 (300,)" in printed
    assert "40.0" in printed
