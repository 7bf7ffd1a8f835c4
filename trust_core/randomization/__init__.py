"""Cascading / independent model-parameter randomization over model copies."""
from .cascade import INITS, MODES, State, StateModels, block_seed, cascade, model_seed, reinitialize, states

__all__ = ["INITS", "MODES", "State", "StateModels", "block_seed", "cascade", "model_seed", "reinitialize", "states"]
