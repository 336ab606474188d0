"""The hand-written docs name what the registries hold: a loss, head or error added to the code and not to the
README or docs/ARCHITECTURE.md fails here (a maintainer round found the lists and the error table stale)."""
from pathlib import Path

from probe.registry import HEADS, LOSSES

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_names_every_loss_and_head():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert not [name for name in [*LOSSES, *HEADS] if f"`{name}`" not in readme]


def test_the_architecture_error_table_names_every_mapped_error():
    from app.main import _error_table

    text = " ".join((ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8").split())
    assert not [(kind.__name__, status) for kind, (status, _) in _error_table().items()
                if f"`{kind.__name__}`" not in text]
