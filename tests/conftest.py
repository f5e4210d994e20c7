"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from csas_cli.tiny import build_tiny_models


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny offline checkpoints of all five registry models, built once per session: key -> directory."""
    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))
