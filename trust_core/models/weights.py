"""Reading weights files safely: ``torch.load(weights_only=True)`` with clear errors, wrapper prefixes
stripped (shared by checkpoints and model specs)."""
from __future__ import annotations

import pickle
from pathlib import Path

import torch

from ..errors import CheckpointError

FORMAT = "trust-checkpoint"
VERSION = 1


def _strip_prefixes(state: dict) -> dict:
    for prefix in ("module.", "model."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint dict, loaded with ``weights_only=True`` and with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", path=path)
    if path.stat().st_size == 0:
        raise CheckpointError("the checkpoint file is empty (0 bytes)", path=path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not any(marker in str(exc) for marker in ("GLOBAL", "Unsupported global", "Unsupported class")):
            raise CheckpointError(f"the checkpoint is corrupt or not a PyTorch file and cannot be read "
                                  f"({str(exc).splitlines()[-1][:200]})", path=path) from None
        raise CheckpointError(
            "the checkpoint holds Python objects or code besides tensors, and is refused for safety "
            "(loaded with weights_only=True). Re-save it from trusted code with "
            f"torch.save(model.state_dict(), path). Detail: {_unsupported(exc)}",
            path=path) from None
    except Exception as exc:  # torch.load fails in many ways on files that are not checkpoints
        raise CheckpointError(f"the checkpoint is corrupt or truncated and cannot be read "
                              f"({type(exc).__name__}: {str(exc)[:200]})", path=path) from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"expected a state_dict or a checkpoint dict, found {type(payload).__name__}",
                              path=path)
    return payload


def _unsupported(exc: Exception) -> str:
    """The line of torch's weights-only error that names the refused global."""
    lines = [line.strip() for line in str(exc).splitlines() if "Unsupported" in line]
    return (lines[0] if lines else str(exc).splitlines()[0])[:200]
