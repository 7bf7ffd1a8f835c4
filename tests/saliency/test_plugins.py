"""Methods as plugins: one entry point adds a method everywhere; a broken plugin gets a clear error and
takes nothing else down."""
import importlib
import sys
import textwrap

import numpy as np
import pytest
import torch

from trust_core import explain
from trust_core.errors import ConfigError, SaliencyError
from trust_core.saliency import METHODS
from trust_core.saliency.methods import Method, PLUGIN_ERRORS
from trust_core.saliency.registry import load_plugins


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """An installed distribution (a dist-info with entry points) whose module defines methods."""
    def install(source: str, entry_points: dict[str, str]):
        (tmp_path / "myplugin.py").write_text(textwrap.dedent(source))
        info = tmp_path / "myplugin-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text("[trust_core.methods]\n" + "".join(
            f"{name} = {target}\n" for name, target in entry_points.items()))
        monkeypatch.syspath_prepend(str(tmp_path))
        sys.modules.pop("myplugin", None)
        importlib.invalidate_caches()
    yield install
    for key in [k for k, m in METHODS.items() if m.source == "myplugin"]:
        del METHODS[key]
    PLUGIN_ERRORS.clear()


GOOD = """
import torch
from trust_core.saliency.methods import Method

def plan(run):
    return run.use_plain()                       # reuse the shared plain pass

def assemble(run, out, plain):
    grads = torch.stack([out.endpoints[plain[i]] for i in range(run.n)])
    return grads.abs().amax(1)                   # a 2-D map per image

def wrong_shape(run, out, plain):
    return torch.zeros(run.n, 5)

def with_nan(run, out, plain):
    return torch.full(run.x.shape, float("nan"))

def raises(run, out, plain):
    raise RuntimeError("boom")

METHOD = Method("max_grad", "Max |gradient|", "a plugin", "max over channels of |∂y/∂x|", plain=True,
                plan=plan, assemble=assemble)
SHAPE = Method("bad_shape", "Bad shape", "a plugin", "", plain=True, plan=plan, assemble=wrong_shape)
NAN = Method("nan_map", "NaN map", "a plugin", "", plain=True, plan=plan, assemble=with_nan)
RAISES = Method("raiser", "Raiser", "a plugin", "", plain=True, plan=plan, assemble=raises)
TAKEN = Method("grad", "Impostor", "a plugin", "", plain=True, plan=plan, assemble=assemble)

def cam(run, out, plain):
    return out.cams

def coarse_needing_grad(run, out, plain):
    return out.coarse_cams.clone().requires_grad_(True)

def coarse_empty(run, out, plain):
    return out.coarse_cams[:, :0]

CAM_PARAMS = ("gradcam_layer", "gradcam_interpolation")
HINT_RAISES = Method("hint_raises", "H1", "a plugin", "", CAM_PARAMS, plain=True, needs_layer=True, plan=plan,
                     assemble=cam, upsampled_from=raises)
HINT_GRAD = Method("hint_grad", "H2", "a plugin", "", CAM_PARAMS, plain=True, needs_layer=True, plan=plan,
                   assemble=cam, upsampled_from=coarse_needing_grad)
HINT_EMPTY = Method("hint_empty", "H3", "a plugin", "", CAM_PARAMS, plain=True, needs_layer=True, plan=plan,
                    assemble=cam, upsampled_from=coarse_empty)
"""


def test_an_entry_point_adds_a_method_that_shares_the_plain_pass(plugin_dist, tiny_model, tiny_images):
    plugin_dist(GOOD, {"max_grad": "myplugin:METHOD"})
    assert load_plugins() == ["max_grad"]
    method = METHODS["max_grad"]
    assert method.group == "extended" and method.source == "myplugin"
    alone = explain(tiny_model, tiny_images, methods=["grad"])
    both = explain(tiny_model, tiny_images, methods=["grad", "max_grad"])
    assert both.passes == alone.passes  # no pass of its own
    expected = np.abs(alone.raw["grad"]).max(1)
    np.testing.assert_allclose(both.raw["max_grad"], expected, rtol=1e-6)
    light = dict(n_samples=2, ig_steps=3, smooth_ig_steps=2, xrai_steps=3, shap_samples=2, occlusion_window=0.5,
                 occlusion_stride=0.5, gradcam_layer="features")
    assert "max_grad" in explain(tiny_model, tiny_images, methods="extended", **light)


def test_broken_plugins_are_skipped_or_fail_clearly(plugin_dist, tiny_model, tiny_images):
    plugin_dist(GOOD, {"missing": "myplugin:NOPE", "taken": "myplugin:TAKEN", "bad_shape": "myplugin:SHAPE",
                       "nan_map": "myplugin:NAN", "raiser": "myplugin:RAISES"})
    with pytest.warns(RuntimeWarning, match="was not loaded"):
        added = load_plugins()
    assert sorted(added) == ["bad_shape", "nan_map", "raiser"]
    assert METHODS["grad"].source == "trust_core"  # a plugin cannot take a builtin's key
    assert any("'taken'" in e and "already registered" in e for e in PLUGIN_ERRORS)
    assert any("'missing'" in e for e in PLUGIN_ERRORS)
    with pytest.raises(SaliencyError, match=r"'bad_shape' \(myplugin\) returned \(3, 5\).*\(3, 32, 32\)"):
        explain(tiny_model, tiny_images, methods=["bad_shape"])
    with pytest.raises(SaliencyError, match=r"'raiser' \(myplugin\) failed in its assemble part: RuntimeError: boom"):
        explain(tiny_model, tiny_images, methods=["raiser"])
    result = explain(tiny_model, tiny_images, methods=["grad", "nan_map"])
    assert np.isnan(result["nan_map"]).all() and np.isfinite(result["grad"]).all()
    assert all("non-finite" in f and "'nan_map'" in f for f in result.flags["nan_map"])


def test_unknown_names_list_the_valid_ones(tiny_model, tiny_images):
    with pytest.raises(ConfigError, match="known: .*'lrp'.*or a set: \\['paper', 'extended'\\]"):
        explain(tiny_model, tiny_images, methods=["lrpp"])
    with pytest.raises(ValueError, match="needs plan and assemble"):
        from trust_core.saliency.methods import register
        register(Method("half", "Half", "", "", plan=lambda run: None))
    with pytest.raises(ConfigError, match="lrp_composite .* must be one of"):
        explain(tiny_model, tiny_images, methods=["lrp"], lrp_composite="z_box")
    assert torch.is_grad_enabled()


BAD_PARAMETERS = """
from trust_core.saliency.methods import Method

def plan(run):
    return run.use_plain()

def assemble(run, out, plain):
    return run.x

def strict(params):
    raise ValueError("never valid")

UNDECLARED = Method("undeclared", "U", "", "", ("my_knob",), plain=True, plan=plan, assemble=assemble)
CHOICE = Method("bad_choice", "C", "", "", ("mode",), defaults={"mode": "x"}, choices={"mode": ("a", "b")},
                plain=True, plan=plan, assemble=assemble)
STRICT = Method("strict", "S", "", "", validate=strict, plain=True, plan=plan, assemble=assemble)
"""


def test_a_plugin_with_bad_parameters_is_refused_and_the_rest_works(plugin_dist, tiny_model, tiny_images):
    plugin_dist(BAD_PARAMETERS, {"undeclared": "myplugin:UNDECLARED", "bad_choice": "myplugin:CHOICE",
                                 "strict": "myplugin:STRICT"})
    with pytest.warns(RuntimeWarning):
        assert load_plugins() == []
    messages = " ".join(PLUGIN_ERRORS)
    assert "without defaults" in messages and "mode (C) must be one of" in messages and "never valid" in messages
    result = explain(tiny_model, tiny_images, methods=["grad"])  # the paper's methods are unaffected
    assert np.isfinite(result["grad"]).all()


def test_a_plugins_coarse_map_is_a_hint_only(plugin_dist, tiny_model, tiny_images, tmp_path):
    """``upsampled_from`` only makes stored maps smaller: one that raises (a warning naming the plugin), needs
    gradients or is empty leaves the maps as computed, stored exactly in another form."""
    from trust_core.cache.codec import decode
    from trust_core.cache.store import Store

    plugin_dist(GOOD, {"hint_raises": "myplugin:HINT_RAISES", "hint_grad": "myplugin:HINT_GRAD",
                       "hint_empty": "myplugin:HINT_EMPTY"})
    assert sorted(load_plugins()) == ["hint_empty", "hint_grad", "hint_raises"]
    methods = ["gradcam", "hint_raises", "hint_grad", "hint_empty"]
    kwargs = {"gradcam_layer": "features", "gradcam_interpolation": "tf1_legacy"}
    store = Store(tmp_path / "c")
    with pytest.warns(RuntimeWarning, match=r"'hint_raises' \(myplugin\) failed in its upsampled_from part"):
        plain = explain(tiny_model, tiny_images, methods=methods, **kwargs)
        stored = explain(tiny_model, tiny_images, methods=methods, cache=store, **kwargs)
    again = explain(tiny_model, tiny_images, methods=methods, cache=store, **kwargs)
    assert all(all(again.from_cache[m]) for m in methods)
    for m in methods:
        np.testing.assert_array_equal(plain[m], plain["gradcam"])  # each plugin returns Grad-CAM's map
        for got in (stored, again):
            np.testing.assert_array_equal(got[m].view(np.uint32), plain[m].view(np.uint32))
    packed = [e["packed"] for e in map(store.get, store._cache.iterkeys()) if isinstance(e, dict) and "packed" in e]
    store.close()
    assert len(packed) == 12
    # Grad-CAM's and hint_grad's (detached) coarse maps are used, the failing and the empty one are not
    assert sum("upsampled" in p for p in packed) == 6
    assert all(np.isfinite(decode(p)[0]).all() for p in packed)
