"""The trust criteria's names (import-light: the CLI builds its choices from here without loading the
evaluation engine)."""
CRITERIA = ("utility", "randomization", "repeatability", "reproducibility")
