"""Exceptions of the project.

Every error a user can cause (a bad file, a bad CSV, a checkpoint for another architecture, a bad
parameter) is raised as a subclass of :class:`TrustError` whose message names the file or value and says
what to do. Interfaces (CLI, app) catch ``TrustError`` and show its message instead of a traceback.
"""
from __future__ import annotations

from pathlib import Path


class TrustError(Exception):
    """Base class of every error the project raises on purpose."""

    def __init__(self, message: str, *, path: str | Path | None = None):
        self.path = str(path) if path is not None else None
        self.reason = message
        super().__init__(f"{Path(self.path).name}: {message}" if self.path else message)


class DicomError(TrustError):
    """A DICOM file cannot be used as a grayscale radiograph."""


class DatasetError(TrustError):
    """A dataset folder, label CSV, split file or RLE string is unusable."""


class CheckpointError(TrustError):
    """A model checkpoint cannot be loaded safely or does not fit the architecture."""


class ImageError(TrustError):
    """An uploaded or listed image file cannot be read."""


class ConfigError(TrustError, ValueError):
    """An unknown method, preset, architecture or an invalid parameter value."""


class SaliencyError(TrustError, ValueError):
    """A saliency map cannot be computed for this model or input."""


class MetricError(TrustError, ValueError):
    """A metric received inputs it cannot score (shape mismatch, empty mask, NaN)."""
