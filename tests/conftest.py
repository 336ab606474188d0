"""Shared by every test package: the generated image builders live in ``tests/testdata.py`` (importable as
``testdata``: pytest puts this folder on ``sys.path`` for this conftest)."""
