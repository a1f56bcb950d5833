"""The bundle API in one place: writing in ``_save``, reading in ``_load``."""

from __future__ import annotations

from nestgraph.bundle._load import load, loads
from nestgraph.bundle._save import dumps, export, export_saved_model, save

__all__ = ["dumps", "export", "export_saved_model", "load", "loads", "save"]
