"""On-disk, content-addressed cache of maps and metrics."""
from .store import Store, digest_array, make_key, model_fingerprint, weights_digest

__all__ = ["Store", "digest_array", "make_key", "model_fingerprint", "weights_digest"]
