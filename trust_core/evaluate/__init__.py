"""The four trust criteria over datasets, with baselines, split into cacheable work units."""
from .run import (CRITERIA, EVAL_CODE_VERSION, EvalConfig, EvalResult, Evaluation, Unit, evaluate, run_units_local,
                  write_outputs)

__all__ = ["CRITERIA", "EVAL_CODE_VERSION", "EvalConfig", "EvalResult", "Evaluation", "Unit", "evaluate", "run_units_local",
           "write_outputs"]
