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


def file_format(path: str | Path) -> str:
    """What a weights file is, read from its content (never its name — CheXNet ships ``.pth.tar``):
    ``torchscript`` (``torch.jit.save``), ``export`` (a ``torch.export`` program), ``zip`` (``torch.save``),
    ``safetensors``, ``pickle`` (``torch.save`` before PyTorch 1.6) or ``unknown``."""
    import json
    import struct
    import zipfile

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) == 8 and head[:4] != b"PK\x03\x04":
                (length,) = struct.unpack("<Q", head)
                if 2 <= length <= min(path.stat().st_size - 8, 100 * 2**20):
                    try:
                        if isinstance(json.loads(fh.read(length)), dict):
                            return "safetensors"
                    except (ValueError, UnicodeDecodeError):
                        pass
    except OSError:
        return "unknown"
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return "zip"
        if any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith(("/archive_format", "serialized_exported_program.json")) for n in names):
            return "export"
        return "zip"
    if head[:1] == b"\x80":  # a pickle protocol opcode: the legacy torch.save format
        return "pickle"
    return "unknown"


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint dict, loaded with ``weights_only=True`` and with clear errors (a TorchScript
    archive, a ``torch.export`` program or a safetensors file is named as such, with what to do)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", path=path)
    if path.stat().st_size == 0:
        raise CheckpointError("the checkpoint file is empty (0 bytes)", path=path)
    form = file_format(path)
    if form == "torchscript":
        raise CheckpointError(
            "this is a TorchScript archive (torch.jit.save): a compiled program with its own code, which is not "
            "loaded here (weights are read with weights_only=True or safetensors only). Extract its weights once, "
            "in trusted code: torch.save(torch.jit.load(p).state_dict(), 'weights.pt'), then give weights.pt with "
            "the architecture (--source …, or a .toml model spec; README 'Bring your own model')", path=path)
    if form == "export":
        raise CheckpointError("this is a torch.export program, not a weights file: give it as a .pt2 file (--model "
                              "model.pt2, or source = \"model.pt2\" in a spec)", path=path)
    if form == "safetensors":
        raise CheckpointError("this is a safetensors weights file: it does not say its architecture, so give it with "
                              "one (--source torchvision:densenet121 …, or weights = \"…\" in a .toml model spec)",
                              path=path)
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
