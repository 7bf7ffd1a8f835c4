"""GradientSHAP (Lundberg & Lee 2017, captum's ``GradientShap``): the expectation of
(x − b) ⊙ ∂ logit / ∂ x at x' = b + α (x − b), over baselines b drawn from a distribution and α ~ U(0, 1).

Here the distribution is the black and the white of the model's input space (``shap_baselines``
'black_white') or black alone ('black'); draws (baseline and α per sample) are seeded by the image's
content and the run's seed, so maps do not depend on batching. Each sample is one pass. captum's
``GradientShap`` given the same draws (``stdevs=0``) is its oracle."""
import torch

from ...errors import ConfigError
from ...sets import EXTENDED_SET
from .base import Method, seeded_generator


def draws(image: torch.Tensor, params: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(baseline index per sample, α per sample) of one image."""
    generator = seeded_generator(image.cpu(), params["seed"], "gradient_shap")
    count = 2 if params["shap_baselines"] == "black_white" else 1
    index = torch.randint(0, count, (params["shap_samples"],), generator=generator)
    alphas = torch.rand((params["shap_samples"],), generator=generator, dtype=torch.float64)
    return index, alphas


def baselines(run) -> list:
    values = [run.prep.value(0.0), run.prep.value(1.0)][: 2 if run.params["shap_baselines"] == "black_white" else 1]
    return [v.to(run.x.device) if isinstance(v, torch.Tensor) else v for v in values]


def plan(run):
    choices = baselines(run)
    planned = {}
    for i in range(run.n):
        index, alphas = draws(run.x[i], run.params)
        planned[i] = [(choices[int(k)], run.paths.add(end_index=i, image=i, start=choices[int(k)], alphas=[float(a)]))
                      for k, a in zip(index, alphas)]
    return planned


def assemble(run, out, planned):
    return torch.stack([torch.stack([(run.x[i] - b) * out.sums[p] for b, p in planned[i]]).mean(0)
                        for i in range(run.n)])


def validate(params):
    if not isinstance(params["shap_samples"], int) or isinstance(params["shap_samples"], bool) \
            or params["shap_samples"] < 1:
        raise ConfigError(f"shap_samples must be a positive integer, got {params['shap_samples']!r}")


METHOD = Method(
    "gradient_shap", "GradientSHAP", "Lundberg & Lee, NeurIPS 2017 (captum GradientShap)",
    "mean of (x − b) ⊙ ∂y/∂x at random points between random baselines b and x",
    ("shap_samples", "shap_baselines"), group=EXTENDED_SET, passes="shap_samples",
    defaults={"shap_samples": 20, "shap_baselines": "black_white"},
    choices={"shap_baselines": ("black_white", "black")}, validate=validate, cost=lambda p: p["shap_samples"], plan=plan, assemble=assemble)
