"""Cascading / independent model-parameter randomization over model copies; :class:`StateModels` is the
one place that builds "this model at state X"."""
from .cascade import INITS, MODES, State, StateModels, block_seed, cascade, model_seed, reinitialize, states

__all__ = ["INITS", "MODES", "State", "StateModels", "block_seed", "cascade", "model_seed", "reinitialize", "states"]
