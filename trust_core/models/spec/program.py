"""``torch.export`` programs (``.pt2``): read with a clear error, their input shape, and unflattened into a
module with its original hierarchy (hooks, Grad-CAM, cascade)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ...errors import CheckpointError


def _read_program(path: Path):
    """A ``torch.export`` program, or a clear error naming the file."""
    if not path.is_file():
        raise CheckpointError("exported program (.pt2) not found", path=path)
    try:
        return torch.export.load(str(path))
    except Exception as exc:  # torch.export.load fails in many ways on files that are not programs
        raise CheckpointError(f"not a readable torch.export program ({type(exc).__name__}: {str(exc)[:200]}); "
                              f"re-export it with torch.export.save(torch.export.export(model, (x,)), path)",
                              path=path) from None


def program_input(path: Path) -> tuple[int, int]:
    """(channels, size) of a ``torch.export`` program's (N, C, S, S) input."""
    program = _read_program(path)
    inputs = [n for n in program.graph.nodes if n.op == "placeholder"
              and n.name in {s.arg.name for s in program.graph_signature.input_specs
                             if s.kind == torch.export.graph_signature.InputKind.USER_INPUT}]
    shape = tuple(inputs[0].meta["val"].shape) if inputs and "val" in inputs[0].meta else ()
    if len(shape) != 4 or shape[2] != shape[3]:
        raise CheckpointError(f"the program's input has shape {shape}; write a spec (.toml) with its "
                              f"[preprocessing]", path=path)
    return int(shape[1]), int(shape[2])


def _load_exported(path: Path, where) -> nn.Module:
    """A ``torch.export`` program as a module with its original hierarchy (hooks, Grad-CAM, cascade)."""
    module = torch.export.unflatten(_read_program(path))
    for sub in module.modules():  # the tracer's fake tensors in node metadata cannot be deep-copied, and the
        graph = getattr(sub, "graph", None)  # interpreter does not need them (cascade copies the model)
        if isinstance(graph, torch.fx.Graph):
            for node in graph.nodes:
                node.meta = {}
    return module
