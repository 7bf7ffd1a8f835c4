"""Model zoo: architecture registry, checkpoints (weights_only), training."""
from .checkpoint import load, read_checkpoint, save
from .registry import ARCHITECTURES, Architecture, build, forward_order, get_architecture, get_module
from .train import TrainConfig, TrainResult, train_classifier

__all__ = ["ARCHITECTURES", "Architecture", "TrainConfig", "TrainResult", "build", "forward_order",
           "get_architecture", "get_module", "load", "read_checkpoint", "save", "train_classifier"]
