"""Model specs: the field's zoos (torchvision, timm, torchxrayvision, MONAI, torch.export) through every
method, the evaluation and the cascade; oracles for the new input spaces; bad specs; the registry path
unchanged (bit-identical to the code before specs)."""
from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from trust_core.cli import main
from trust_core.errors import CheckpointError, ConfigError
from trust_core.models import load
from trust_core.models.info import info_of
from trust_core.models.spec import add_model, describe, spec_from_dict, to_toml
from trust_core.saliency import explain, resolve_methods

ZOOS = ("timm", "monai", "torchxrayvision")  # optional libraries: only the tests that build their models skip without


def needs(*libraries: str) -> None:
    """Skip this test unless the zoo libraries it builds models from are installed (each test asks for its
    own, so that the others always run)."""
    for library in libraries:
        pytest.importorskip(library)


def needs_source(source: str) -> None:
    library = source.split(":")[0]
    if library in ZOOS:
        needs(library)

LIGHT = dict(n_samples=2, smooth_ig_steps=2, ig_steps=3, xrai_steps=3)
LIGHT_FLAGS = [arg for k, v in LIGHT.items() for arg in ("--set", f"{k}={v}")]
SIZE = 64
_DENSE = ["features.norm5", "features.denseblock4", "features.transition3", "features.denseblock3",
          "features.transition2", "features.denseblock2", "features.transition1", "features.denseblock1",
          "features.norm0", "features.conv0"]
XRV = ["Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema", "Fibrosis",
       "Effusion", "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass", "Hernia", "Lung Lesion",
       "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum"]

# name → (spec table, expected target index (None: predicted), Grad-CAM layer, cascade states top-down).
# The expected layers and stages are read off each architecture's source by hand.
ZOO = {
    "xrv_pneumonia": ({"source": "torchxrayvision:DenseNet", "target": "Pneumonia",
                       "preprocessing": {"size": SIZE, "normalization": "xrv"}, "outputs": {"activation": "sigmoid"}},
                      XRV.index("Pneumonia"), "features", ["classifier"] + _DENSE),
    "xrv_lung_opacity": ({"source": "torchxrayvision:DenseNet", "target": "Lung Opacity",
                          "preprocessing": {"size": SIZE, "normalization": "xrv"},
                          "outputs": {"activation": "sigmoid"}},
                         XRV.index("Lung Opacity"), "features", ["classifier"] + _DENSE),
    "timm_resnet50": ({"source": "timm:resnet50", "source_kwargs": {"num_classes": 2},
                       "preprocessing": {"size": SIZE}},
                      None, "layer4", ["fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]),
    "timm_efficientnet_b0": ({"source": "timm:efficientnet_b0", "source_kwargs": {"num_classes": 2},
                              "preprocessing": {"size": SIZE}},
                             None, "bn2", ["classifier", "bn2", "conv_head"] + [f"blocks.{i}" for i in range(6, -1, -1)]
                             + ["bn1", "conv_stem"]),
    "timm_convnext_tiny": ({"source": "timm:convnext_tiny", "source_kwargs": {"num_classes": 2},
                            "preprocessing": {"size": SIZE}},
                           None, "norm_pre", ["head", "stages.3", "stages.2", "stages.1", "stages.0", "stem"]),
    "timm_vit_small": ({"source": "timm:vit_small_patch16_224", "source_kwargs": {"num_classes": 2, "img_size": SIZE},
                        "preprocessing": {"size": SIZE}},
                       None, "blocks.11.norm1", ["head", "norm"] + [f"blocks.{i}" for i in range(11, -1, -1)]
                       + ["patch_embed"]),
    "monai_densenet121_sigmoid": ({"source": "monai:DenseNet121",
                                   "source_kwargs": {"spatial_dims": 2, "in_channels": 1, "out_channels": 1},
                                   "preprocessing": {"size": SIZE, "channels": 1},
                                   "outputs": {"activation": "sigmoid", "classes": ["Pneumothorax"]}},
                                  0, "class_layers.relu", ["class_layers"] + _DENSE),
    "torchvision_densenet121_14": ({"source": "torchvision:densenet121", "source_kwargs": {"num_classes": 14},
                                    "preprocessing": {"size": SIZE, "normalization": "imagenet"},
                                    "outputs": {"activation": "sigmoid", "classes": XRV[:14]},
                                    "target": "Pneumonia"},
                                   XRV.index("Pneumonia"), "features", ["classifier"] + _DENSE),
}


def _write_toml(path: Path, table: dict) -> Path:
    path.write_text(to_toml(table))
    return path


def _films(dataset, n=2):
    return [dataset.image(i, SIZE) for i in dataset.ids(label=1)[:n]]


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_runs_every_method_the_evaluation_and_its_cascade_in_forward_order(name, rsna, tmp_path):
    table, target, layer, cascade = ZOO[name]
    needs_source(table["source"])
    spec_path = _write_toml(tmp_path / f"{name}.toml", table)
    torch.manual_seed(0)
    model = load(spec_path)
    info = info_of(model)
    assert info.gradcam_layer == layer
    assert [b[0] for b in info.blocks] == cascade
    assert info.target == target
    # the states run in forward order: pre-hooks see them in the reverse of the cascade's top-down order
    seen = []
    hooks = [model.get_submodule(b).register_forward_pre_hook(lambda *_, b=b: seen.append(b) if b not in seen else None)
             for b in cascade]
    with torch.no_grad():
        model(info.prep.batch(torch.rand(1, 1, SIZE, SIZE)))
    for h in hooks:
        h.remove()
    assert seen == cascade[::-1]

    x = torch.stack([info.prep(f) for f in _films(rsna)])
    assert x.shape == (2, info.prep.channels, SIZE, SIZE)
    maps = explain(model, x, preset="fast", **LIGHT)
    assert list(maps) == resolve_methods(None)  # the paper's eight by default
    for method, values in maps.items():
        assert values.shape == (2, SIZE, SIZE)
        for i in range(2):  # a map in [0, 1], or NaN with its reason (a random model's constant Grad-CAM)
            assert (np.isfinite(values[i]).all() and 0 <= values[i].min() and values[i].max() <= 1) or (
                np.isnan(values[i]).all() and maps.flags[method][i]), (method, i)
    for method in ("grad", "smoothgrad", "ig", "smooth_ig", "xrai"):  # input-gradient methods never go blank
        assert np.isfinite(maps[method]).all(), method
    relus = describe(model)["guided_relus"]
    if relus == 0:  # no ReLU to guide (ViT, ConvNeXt: GELU; EfficientNet: SiLU): GBP is the gradient
        np.testing.assert_allclose(maps["gbp"], maps["grad"], atol=1e-6)
    else:
        assert not np.allclose(maps["gbp"], maps["grad"]), "guided backprop must differ from the gradient"
    if target is not None:
        assert (maps.targets == target).all()

    # the evaluation and the whole cascade with the spec's model (every method ran on it above; here the
    # gradient and Grad-CAM, whose layer the spec names: the cascade's cost grows with the methods)
    out = tmp_path / "results"
    assert main(["evaluate", "--dataset", f"rsna:{rsna.root}", "--model", str(spec_path), "--preset", "fast",
                 "--methods", "grad", "gradcam", "--limit", "4", "--ssim-images", "2", "--baseline-pairs", "2",
                 "--criteria", "utility", "randomization", "--no-cache", "--out", str(out), *LIGHT_FLAGS]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["criteria"]["utility"]["methods"]) == {"grad", "gradcam"}
    for method, scored in summary["criteria"]["randomization"]["methods"].items():  # every state of the cascade
        assert len(scored["states"]) == len(cascade), method
    config = json.loads((out / "config.json").read_text())
    spec = config["models"][0]["spec"]
    assert spec["source"] == table["source"] and spec["gradcam_layer"] == layer and spec["cascade"] == cascade[::-1]
    assert spec["target_index"] == target


def test_a_chexnet_style_state_dict_with_a_dataparallel_prefix_loads_from_flags(rsna, tmp_path):
    torch.manual_seed(1)
    import torchvision

    trained = torchvision.models.densenet121(weights=None, num_classes=14).eval()
    torch.save({"state_dict": {"module." + k: v for k, v in trained.state_dict().items()}}, tmp_path / "chexnet.pth")
    code = main(["maps", "--dataset", f"rsna:{rsna.root}", "--model", str(tmp_path / "chexnet.pth"),
                 "--source", "torchvision:densenet121", "--num-classes", "14", "--input-size", str(SIZE),
                 "--normalization", "imagenet", "--activation", "sigmoid", "--output-classes", ",".join(XRV[:14]),
                 "--target", "Pneumonia", "--methods", "grad", "gradcam", "--limit", "2", "--no-cache",
                 "--out", str(tmp_path / "maps")])
    assert code == 0
    files = sorted((tmp_path / "maps").glob("*.npz"))
    assert len(files) == 2 and all(int(np.load(f)["target"]) == XRV.index("Pneumonia") for f in files)
    params = json.loads((tmp_path / "maps" / "params.json").read_text())
    assert params["model_spec"]["source"] == "torchvision:densenet121"
    # the weights are those of the file (prefix and wrapper stripped)
    spec = spec_from_dict({"source": "torchvision:densenet121", "weights": str(tmp_path / "chexnet.pth"),
                           "source_kwargs": {"num_classes": 14}, "preprocessing": {"size": SIZE},
                           "outputs": {"activation": "sigmoid"}, "target": 8})
    torch.testing.assert_close(load(spec).state_dict()["classifier.weight"], trained.state_dict()["classifier.weight"])


def test_safetensors_weights_equal_the_torch_file(tmp_path):
    needs("timm")
    from safetensors.torch import save_file

    torch.manual_seed(2)
    import timm

    model = timm.create_model("resnet18", pretrained=False, num_classes=2).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    spec = _write_toml(tmp_path / "m.toml", {"source": "timm:resnet18", "weights": "w.safetensors",
                                            "source_kwargs": {"num_classes": 2}, "preprocessing": {"size": SIZE}})
    loaded = load(spec)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_preprocessing_maps_films_as_each_library_does():
    needs("torchxrayvision")
    import torchxrayvision as xrv

    from trust_core.models.preprocessing import Preprocessing

    film = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    xrv_prep = Preprocessing.named("xrv", size=16)
    # torchxrayvision's own normalize of the 8-bit film (2 x / 255 − 1) · 1024
    reference = xrv.datasets.normalize(film * 255, 255)
    np.testing.assert_allclose(xrv_prep(film)[0].numpy(), reference, rtol=0, atol=1e-3)
    assert float(xrv_prep.value(0.0)) == -1024 and float(xrv_prep.value(1.0)) == 1024
    imagenet = Preprocessing.named("imagenet", size=16)
    black = imagenet.value(0.0).flatten().tolist()
    np.testing.assert_allclose(black, [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225], rtol=1e-6)
    import torchvision.transforms.functional as TF

    np.testing.assert_allclose(imagenet(film).numpy(), TF.normalize(torch.from_numpy(film)[None].expand(3, -1, -1),
                                                                    [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).numpy(),
                               atol=1e-6)
    paper = Preprocessing.named("paper", size=16)
    from trust_core.data.transforms import to_model_input
    assert torch.equal(paper(film), to_model_input(film)) and paper.value(0.0) == -1.0


def test_imagenet_model_maps_match_captum_and_pair(rsna):
    """In a per-channel input space: IG from the black film (per-channel baseline) equals PAIR's IG, Grad-CAM
    captum's LayerGradCam, Guided Backprop captum's, gradient autograd's."""
    import saliency.core as pair
    from captum.attr import GuidedBackprop, LayerAttribution, LayerGradCam

    torch.manual_seed(3)
    model = load(spec_from_dict({"source": "torchvision:resnet18", "source_kwargs": {"num_classes": 2},
                                 "preprocessing": {"size": SIZE, "normalization": "imagenet"}}))
    prep = info_of(model).prep
    x = prep(_films(rsna, 1)[0])[None]
    ours = explain(model, x, methods=["grad", "ig", "gbp", "gradcam"], preset="fast", ig_steps=10,
                   gradcam_interpolation="bilinear")
    target = int(ours.targets[0])
    black = prep.value(0.0)  # (3, 1, 1)

    def call(batch, call_model_args=None, expected_keys=None):
        xb = torch.as_tensor(np.asarray(batch), dtype=torch.float32).permute(0, 3, 1, 2).requires_grad_(True)
        (g,) = torch.autograd.grad(model(xb)[:, target].sum(), xb)
        return {pair.INPUT_OUTPUT_GRADIENTS: g.permute(0, 2, 3, 1).numpy()}

    image = x[0].permute(1, 2, 0).numpy()
    baseline = black.expand(3, SIZE, SIZE).permute(1, 2, 0).numpy()
    ig_ref = pair.IntegratedGradients().GetMask(image, call, x_baseline=baseline, x_steps=10, batch_size=10)
    np.testing.assert_allclose(ours.raw["ig"][0], np.transpose(ig_ref, (2, 0, 1)), rtol=1e-4, atol=1e-6)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(xg)[0, target], xg)
    np.testing.assert_allclose(ours.raw["grad"][0], grad[0].numpy(), rtol=1e-5, atol=1e-7)
    gbp = GuidedBackprop(model).attribute(x.clone(), target=target)
    np.testing.assert_allclose(ours.raw["gbp"][0], gbp[0].detach().numpy(), rtol=1e-4, atol=1e-7)
    cam = LayerAttribution.interpolate(LayerGradCam(model, model.layer4).attribute(x.clone(), target=target,
                                                                                   relu_attributions=True),
                                       (SIZE, SIZE), interpolate_mode="bilinear")
    np.testing.assert_allclose(ours.raw["gradcam"][0], cam[0, 0].detach().numpy(), rtol=1e-4, atol=1e-6)


def test_vit_gradcam_equals_pytorch_grad_cam_reshape_recipe(rsna):
    """Grad-CAM through the token-to-grid reshape: the class token dropped, the 4×4 patch grid, the last
    block's norm1 (pytorch-grad-cam's ViT recipe), recomputed here by hand with autograd."""
    needs("timm")
    torch.manual_seed(4)
    model = load(spec_from_dict({"source": "timm:vit_small_patch16_224",
                                 "source_kwargs": {"num_classes": 2, "img_size": SIZE}, "preprocessing": {"size": SIZE}}))
    x = info_of(model).prep(_films(rsna, 1)[0])[None]
    ours = explain(model, x, methods=["gradcam"], preset="fast", gradcam_interpolation="bilinear")
    target = int(ours.targets[0])
    store = {}
    handle = model.blocks[-1].norm1.register_forward_hook(lambda _m, _i, out: store.__setitem__("a", out))
    logits = model(x)
    handle.remove()
    (grad,) = torch.autograd.grad(logits[0, target], store["a"])
    acts = store["a"][:, 1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    grads = grad[:, 1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    cam = torch.relu((grads.mean((2, 3), keepdim=True) * acts).sum(1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, (SIZE, SIZE), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(ours.raw["gradcam"][0], cam[0, 0].detach().numpy(), rtol=1e-4, atol=1e-6)


def test_an_exported_program_gives_the_eager_models_maps(rsna, tmp_path):
    from trust_core.models import build
    from trust_core.models.info import tag

    torch.manual_seed(5)
    eager = tag(build("densenet_tiny"), input_size=SIZE)
    example = torch.zeros(2, 3, SIZE, SIZE)
    program = torch.export.export(eager, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
    torch.export.save(program, tmp_path / "demo.pt2")
    exported = load(tmp_path / "demo.pt2")  # a bare program: the paper's preprocessing at its input size
    info = info_of(exported)
    assert info.prep.size == SIZE and info.prep.channels == 3 and info.gradcam_layer == "final_relu"
    x = torch.stack([info.prep(f) for f in _films(rsna)])
    a = explain(eager, x, preset="fast", noise_per_model=False, **LIGHT)
    b = explain(exported, x, preset="fast", noise_per_model=False, **LIGHT)
    for m in a:
        np.testing.assert_allclose(a[m], b[m], rtol=1e-4, atol=1e-5, equal_nan=True, err_msg=m)
    assert (a.targets == b.targets).all() and a.passes == b.passes
    # its cascade randomizes real weights (modules of a program have no reset_parameters)
    from trust_core.randomization import cascade
    (_, first), (_, second) = list(cascade(exported))[:2]
    assert not torch.equal(dict(first.named_parameters())["classifier.weight"],
                           dict(second.named_parameters())["classifier.weight"])
    out = tmp_path / "ev"
    assert main(["evaluate", "--dataset", f"rsna:{rsna.root}", "--model", str(tmp_path / "demo.pt2"), "--preset",
                 "fast", "--limit", "4", "--ssim-images", "2", "--baseline-pairs", "2", "--criteria", "utility",
                 "randomization", "--no-cache", "--out", str(out), *LIGHT_FLAGS]) == 0


def test_registry_maps_are_bit_identical_to_the_code_before_specs():
    """tests/models/data/registry_maps.npz was written by golden_registry_maps.py with the code before model
    specs (commit 7315dd2): the registry path gives the same maps and the same cache keys."""
    from tests.models.golden_registry_maps import compute

    golden = np.load(Path(__file__).parent / "data" / "registry_maps.npz")
    same_cpu = str(golden["cpu"]) == torch.backends.cpu.get_cpu_capability()
    # A CPU convolution's summation order follows the thread count too (1 or 4 threads differ from 2 in the
    # last bits): compute with the count that wrote them (2, before the file recorded it), whatever this
    # machine's cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(int(golden["threads"]) if "threads" in golden.files else 2)
    # Keys as that code made them: without the name of the coarse-map form (since e8969b6 part of the keys of
    # Grad-CAM's maps under the TF1 rule, which that code could not read; tests/cache/test_codec.py checks it
    # is the only part added)
    import importlib

    from trust_core.saliency.registry import method_params, resolve_params

    explain_module = importlib.import_module("trust_core.saliency.explain")  # the module (its name is also a function)
    assert explain_module._keeps_coarse("gradcam", method_params("gradcam", resolve_params("fast")), None)
    try:
        with mock.patch.object(explain_module, "_keeps_coarse", lambda *args: False):
            computed = {arch: compute(arch, golden["films"]) for arch in ("densenet_tiny", "resnet_tiny")}
    finally:
        torch.set_num_threads(threads)
    for arch, (maps, keys) in computed.items():
        assert keys == golden[f"{arch}/keys"].tolist()  # the cache keeps serving yesterday's maps
        assert (maps.targets == golden[f"{arch}/targets"]).all()
        for m in maps:
            if same_cpu:  # bit for bit on the kind of CPU that wrote them
                np.testing.assert_array_equal(maps[m], golden[f"{arch}/{m}"], err_msg=f"{arch} {m}")
            else:  # another instruction set: other kernels, float rounding only
                np.testing.assert_allclose(maps[m], golden[f"{arch}/{m}"], atol=1e-4, equal_nan=True)


def test_inspect_prints_the_resolved_spec(tmp_path, capsys):
    needs("torchxrayvision")
    spec = _write_toml(tmp_path / "xrv.toml", ZOO["xrv_pneumonia"][0])
    assert main(["inspect", "--model", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "1 channel, torchxrayvision's [-1024, 1024]" in out and "18 × sigmoid" in out
    assert "target     the spec's target: 8 (Pneumonia)" in out
    assert "Grad-CAM   features → feature map 1024×2×2" in out
    assert "1. classifier" in out and "18,450 parameters" in out  # 1024 × 18 + 18
    assert "non-zero: ok" in out
    assert main(["inspect", "--model", str(spec), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cascade"][0] == {"state": "classifier", "modules": ["classifier"], "parameters": 18450}


def test_train_any_spec_with_init_weights_and_the_paper_recipe(rsna, tmp_path):
    needs("timm")
    import timm

    torch.manual_seed(6)
    start = timm.create_model("resnet18", pretrained=False, num_classes=1000)  # an "ImageNet" checkpoint
    torch.save(start.state_dict(), tmp_path / "imagenet.pth")
    spec = _write_toml(tmp_path / "r18.toml", {"source": "timm:resnet18", "source_kwargs": {"num_classes": 1},
                                              "preprocessing": {"size": SIZE},
                                              "outputs": {"activation": "sigmoid", "classes": ["Lung Opacity"]}})
    out = tmp_path / "trained.pt"
    assert main(["train", "--dataset", f"rsna:{rsna.root}", "--model", str(spec), "--init-weights",
                 str(tmp_path / "imagenet.pth"), "--recipe", "paper", "--epochs", "1", "--batch-size", "8",
                 "--out", str(out)]) == 0
    model = load(out)  # the checkpoint carries its spec
    info = info_of(model)
    assert info.spec["source"] == "timm:resnet18" and info.activation == "sigmoid" and info.target == 0
    assert info.meta["recipe"]["name"] == "paper" and "7e-5" in info.meta["recipe"]["description"]
    assert info.meta["init_weights"]["fresh"] == ["fc.weight", "fc.bias"]  # the 1000-class head was not loaded
    assert set(info.meta["init_weights"]["ignored"]) == {"fc.weight", "fc.bias"}
    maps = explain(model, info.prep(rsna.image(rsna.ids(label=1)[0], SIZE))[None], methods=["grad"])
    assert np.isfinite(maps["grad"]).all()


# -- bad input: a clear error naming the file and the fix ---------------------------------------------

def _bad(tmp_path, table, match, error=ConfigError):
    spec = _write_toml(tmp_path / "bad.toml", table)
    with pytest.raises(error, match=match) as info:
        load(spec)
    return str(info.value)


def test_unknown_source(tmp_path):
    message = _bad(tmp_path, {"source": "keras:InceptionV3"}, "unknown model source")
    assert message.startswith("bad.toml:") and "timm:NAME" in message
    _bad(tmp_path, {"source": "torchvision:resnet18", "preprocessing": {"size": SIZE}, "frobnicate": 1}, "unknown key")
    needs("timm")
    _bad(tmp_path, {"source": "timm:no_such_net"}, "timm has no model")


def test_weights_that_do_not_fit(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    message = _bad(tmp_path, {"source": "torchvision:densenet121", "weights": "r18.pth",
                              "preprocessing": {"size": SIZE}}, "do not fit", CheckpointError)
    assert "r18.pth" in message and "missing" in message and "unexpected" in message


def test_a_target_that_is_not_an_output(tmp_path):
    _bad(tmp_path, {"source": "torchvision:resnet18", "target": 5, "source_kwargs": {"num_classes": 2},
                    "preprocessing": {"size": SIZE}}, "out of range")
    _bad(tmp_path, {"source": "torchvision:resnet18", "source_kwargs": {"num_classes": 14},
                    "outputs": {"activation": "sigmoid"}, "preprocessing": {"size": SIZE}}, "needs target")
    needs("torchxrayvision")
    message = _bad(tmp_path, {"source": "torchxrayvision:DenseNet", "target": "Pneumonitis",
                              "preprocessing": {"size": SIZE, "normalization": "xrv"},
                              "outputs": {"activation": "sigmoid"}}, "not among the outputs")
    assert "'Pneumonia'" in message


def test_a_gradcam_layer_that_is_missing_or_not_spatial(tmp_path):
    base = {"source": "torchvision:resnet18", "source_kwargs": {"num_classes": 2}, "preprocessing": {"size": SIZE}}
    _bad(tmp_path, {**base, "gradcam_layer": "layer9"}, "no Grad-CAM layer 'layer9'")
    _bad(tmp_path, {**base, "gradcam_layer": "fc"}, "not a spatial feature map")
    _bad(tmp_path, {**base, "gradcam_layer": "avgpool"}, "1×1 map")


class Detached(torch.nn.Module):
    """A model whose forward cuts the input from the graph."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.conv(x.detach()).mean((2, 3)))


def detached(**_):
    return Detached()


def test_a_zero_or_missing_input_gradient(tmp_path):
    _bad(tmp_path, {"source": "tests.models.test_spec:detached", "preprocessing": {"size": SIZE}}, "is missing")


def test_a_pickled_whole_model_is_refused_with_the_resave_recipe(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet18(weights=None), tmp_path / "whole.pth")
    message = _bad(tmp_path, {"source": "torchvision:resnet18", "weights": "whole.pth",
                              "preprocessing": {"size": SIZE}}, "refused for safety", CheckpointError)
    assert "torch.save(model.state_dict(), path)" in message


def test_a_spec_that_contradicts_its_weights(tmp_path):
    import torchvision

    one_channel = torchvision.models.resnet18(weights=None, num_classes=2)
    one_channel.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    torch.save(one_channel.state_dict(), tmp_path / "gray.pth")
    _bad(tmp_path, {"source": "torchvision:resnet18", "weights": "gray.pth", "source_kwargs": {"num_classes": 2},
                    "preprocessing": {"size": SIZE}}, "1-channel input", CheckpointError)
    torch.save(torchvision.models.resnet18(weights=None, num_classes=14).state_dict(), tmp_path / "c14.pth")
    _bad(tmp_path, {"source": "torchvision:resnet18", "weights": "c14.pth", "source_kwargs": {"num_classes": 2},
                    "preprocessing": {"size": SIZE}}, "weights have 14 outputs", CheckpointError)
    _bad(tmp_path, {"source": "torchvision:resnet18", "source_kwargs": {"num_classes": 14},
                    "outputs": {"activation": "sigmoid", "classes": ["a", "b"]}, "target": 0,
                    "preprocessing": {"size": SIZE}}, "lists 2 classes but the model has 14 outputs")


def test_describe_reports_parameters_outside_every_state():
    needs("timm")
    model = load(spec_from_dict({"source": "timm:vit_small_patch16_224",
                                 "source_kwargs": {"num_classes": 2, "img_size": SIZE}, "preprocessing": {"size": SIZE}}))
    report = describe(model)
    assert report["not_randomized"] == ["cls_token", "pos_embed"] and report["gradcam"]["feature_map"] == [384, 4, 4]


def test_add_model_writes_nothing_unless_the_spec_loads(tmp_path):
    import torchvision

    models = tmp_path / "models"
    table = {"source": "torchvision:resnet18", "source_kwargs": {"num_classes": 2}, "preprocessing": {"size": SIZE}}
    good = torchvision.models.resnet18(weights=None, num_classes=2)
    wrong = torchvision.models.resnet18(weights=None, num_classes=5)
    import io

    def saved(model):
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        return buffer.getvalue()

    with pytest.raises(CheckpointError, match="weights have 5 outputs"):
        add_model(models, "mine", table, weights=saved(wrong), weights_name="w.pth")
    assert sorted(p.name for p in models.iterdir()) == []  # no spec, no weights, no staging folder left
    path = add_model(models, "mine", table, weights=saved(good), weights_name="w.pth")
    assert sorted(p.name for p in models.iterdir()) == ["mine.pth", "mine.toml"]
    torch.testing.assert_close(load(path).state_dict()["fc.weight"], good.state_dict()["fc.weight"])
    with pytest.raises(ConfigError, match="exists already"):
        add_model(models, "mine", table)
    with pytest.raises(ConfigError, match="letters, digits"):
        add_model(models, "../evil", table)
    needs("timm")
    with pytest.raises(ConfigError, match="timm has no model"):
        add_model(models, "bad", {**table, "source": "timm:no_such_net"})
    assert sorted(p.name for p in models.iterdir()) == ["mine.pth", "mine.toml"]  # nothing of the bad one


def test_center_crop_frames_films_and_ground_truth_alike(tmp_path):
    """A 'center_crop' spec (torchxrayvision's XRCenterCrop) on a non-square film: the model sees the
    central square, and the ground truth is cropped the same way (a box half outside the square is cut)."""
    from PIL import Image

    from trust_core.data import FolderDataset
    from trust_core.data.transforms import resize_image
    from trust_core.evaluate import EvalConfig, Evaluation

    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray((rng.random((120, 200)) * 255).astype(np.uint8)).save(tmp_path / "images" / f"f{i}.png")
    rows = "image_id,x,y,width,height\n" + "".join(f"f{i},20,30,60,40\n" for i in range(4))  # x 20–80 of 200
    (tmp_path / "boxes.csv").write_text(rows)
    (tmp_path / "labels.csv").write_text("image_id,label\n" + "".join(f"f{i},{int(i < 4)}\n" for i in range(8)))
    dataset = FolderDataset(tmp_path, image_size=60)
    # the central 120×120 square starts at x = 40: the box keeps x 40–80 (hand-computed)
    native = dataset.native_image("f0")
    np.testing.assert_array_equal(dataset.image("f0", 60, "center_crop"), resize_image(native[:, 40:160], 60))
    cropped = dataset.mask("f0", 120, "center_crop")
    expected = np.zeros((120, 120), bool)
    expected[30:71, 0:41] = True  # the paper rule: inclusive fill of the truncated, shifted box
    np.testing.assert_array_equal(cropped, expected)
    assert dataset.boxes("f0", 120, "center_crop")[0].x == -20  # shifted into the square (clipped when drawn)

    spec = spec_from_dict({"source": "torchvision:resnet18", "source_kwargs": {"num_classes": 2},
                           "preprocessing": {"size": 60, "resize": "center_crop"}})
    model = load(spec)
    assert info_of(model).prep.resize == "center_crop"
    np.testing.assert_array_equal(info_of(model).prep.film(native), resize_image(native[:, 40:160], 60))
    evaluation = Evaluation(dataset, [spec], EvalConfig(preset="fast", overrides=LIGHT, criteria=("utility",)))
    assert evaluation.resize == "center_crop"
    with pytest.raises(ConfigError, match="crop the film differently"):
        Evaluation(dataset, [spec, spec_from_dict({"source": "torchvision:resnet18", "source_kwargs": {"num_classes": 2},
                                                   "preprocessing": {"size": 60}})], EvalConfig(preset="fast"))


def test_a_spec_torchvision_densenet_gives_the_registry_densenets_maps(app_workspace, rsna):
    """The same trained weights as the registry's DenseNet (demo size) and as a plain torchvision
    DenseNet through a spec: every map equal, Grad-CAM included (torchvision rectifies `features` with an
    in-place functional ReLU; the registry has it as a module; guided and plain passes alike)."""
    registry = load(app_workspace / "models" / "rsna_densenet_tiny_s0.pt")
    spec = spec_from_dict({"source": "torchvision.models:DenseNet",
                           "source_kwargs": {"growth_rate": 12, "block_config": [2, 2, 2, 2], "num_init_features": 24,
                                             "bn_size": 2, "num_classes": 2},
                           "weights": str(app_workspace / "models" / "rsna_densenet_tiny_s0.pt"),
                           "preprocessing": {"size": 64, "normalization": "paper"}})
    model = load(spec)
    assert info_of(model).gradcam_layer == "features"
    x = torch.stack([info_of(model).prep(f) for f in _films(rsna, 3)])
    a = explain(registry, x, preset="fast", noise_per_model=False, **LIGHT)
    b = explain(model, x, preset="fast", noise_per_model=False, **LIGHT)
    assert a.passes == b.passes and (a.targets == b.targets).all()
    for m in a:
        np.testing.assert_allclose(a[m], b[m], atol=1e-6, equal_nan=True, err_msg=m)
        assert np.isfinite(a["gradcam"]).any()


def test_spec_cascades_reinitialize_every_block_as_its_library_does():
    """Each state re-initializes its block with the library's own initialization: every weight of the
    block changes, and timm ConvNeXt's layer scales get timm's 1e-6 (not 0, which would make a block an
    identity whatever its other weights), and the logits move once the head is re-initialized."""
    needs("timm")
    import timm

    from trust_core.randomization import cascade

    torch.manual_seed(7)
    model = load(spec_from_dict({"source": "timm:convnext_tiny", "source_kwargs": {"num_classes": 2},
                                 "preprocessing": {"size": SIZE}}))
    with torch.no_grad():  # as if trained: scales far from their initial 1e-6
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.fill_(0.5)
    x = info_of(model).prep.batch(torch.rand(2, 1, SIZE, SIZE))
    states = list(cascade(model, seed=3))
    library = timm.create_model("convnext_tiny", pretrained=False, num_classes=2)
    init_gamma = float(next(p for n, p in library.named_parameters() if n.endswith("gamma")).flatten()[0])
    for (_, before), (name, after) in zip(states, states[1:]):
        changed = [not torch.equal(a, b) for (_, a), (_, b) in zip(before.get_submodule(name).named_parameters(),
                                                                   after.get_submodule(name).named_parameters())
                   if a.numel() > 1]
        assert any(changed), name  # (tensors already at their constant init, e.g. a LayerNorm, stay so)
        for n, p in after.get_submodule(name).named_parameters():
            if n.endswith("gamma"):
                assert torch.all(p == init_gamma), (name, n)
        with torch.no_grad():
            assert not torch.allclose(before(x), after(x)), name


class ConstantTarget(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x):
        features = self.conv(x)
        return self.head(features.mean((2, 3))) * torch.tensor([1.0, 0.0])  # output 1 ignores the input


def constant_target(**_):
    return ConstantTarget()


def test_a_zero_input_gradient(tmp_path):
    _bad(tmp_path, {"source": "tests.models.test_spec:constant_target", "target": 1,
                    "outputs": {"activation": "logits"}, "preprocessing": {"size": SIZE}}, "is zero")


def test_the_app_adds_zoo_models_only(tmp_path):
    """add_model without allow_code (the app's form) refuses sources that run code on the server."""
    for source in ("os:system", "tests.models.test_spec:constant_target"):
        with pytest.raises(ConfigError, match="come from the zoos"):
            add_model(tmp_path / "models", "evil", {"source": source, "source_kwargs": {"command": "true"}})
    with pytest.raises(ConfigError, match="download or read weights itself"):
        add_model(tmp_path / "models", "hub", {"source": "timm:resnet18", "source_kwargs": {"checkpoint_path": "/etc/x"}})
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").iterdir())
    path = add_model(tmp_path / "models", "mine", {"source": "torchvision.models:resnet18",
                                                   "source_kwargs": {"num_classes": 2}, "preprocessing": {"size": SIZE}},
                     allow_code=True)  # the command line's owner may
    assert path.is_file()


def test_bench_saliency_runs_any_model_with_the_registrys_passes(tmp_path):
    from trust_core.bench import bench_saliency

    lines = []
    registry = bench_saliency("densenet_tiny", 32, skip_reference=True, log=lines.append)
    spec = _write_toml(tmp_path / "m.toml", {"source": "torchvision.models:DenseNet",
                                             "source_kwargs": {"growth_rate": 12, "block_config": [2, 2, 2, 2],
                                                               "num_init_features": 24, "bn_size": 2, "num_classes": 2},
                                             "preprocessing": {"size": 32, "normalization": "paper"}})
    spec_result = bench_saliency(skip_reference=True, model_spec=str(spec), log=lines.append)
    assert spec_result["passes"] == registry["passes"] == 459
    assert any(line.startswith("model: ") for line in lines) and spec_result["efficiency"] > 0


def test_the_original_chexnet_checkpoint_layout_loads(tmp_path):
    """The widely shared CheXNet checkpoint: DataParallel's ``module.``, a ``densenet121.`` wrapper,
    torchvision's legacy ``norm.1`` names and a ``Sequential(Linear, Sigmoid)`` head."""
    import re

    import torchvision

    torch.manual_seed(8)
    reference = torchvision.models.densenet121(weights=None, num_classes=14)
    legacy = {}
    for k, v in reference.state_dict().items():
        k = re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k)
        k = k.replace("classifier.", "classifier.0.")
        legacy["module.densenet121." + k] = v
    torch.save({"epoch": 3, "state_dict": legacy}, tmp_path / "m-25012018-123527.pth.tar.pth")
    model = load(spec_from_dict({"source": "torchvision:densenet121", "weights": str(tmp_path / "m-25012018-123527.pth.tar.pth"),
                                 "source_kwargs": {"num_classes": 14}, "preprocessing": {"size": SIZE},
                                 "outputs": {"activation": "sigmoid", "classes": XRV[:14]}, "target": "Pneumonia"}))
    for k, v in reference.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert len(info_of(model).meta["weights_adapted"]) == 3


def test_the_fingerprint_follows_the_models_code(tmp_path, monkeypatch):
    """A callable source's module digest and a zoo's library version are in the spec'd model's cache
    fingerprint: editing forward never serves yesterday's maps; moving a .pt2 keeps its cache."""
    import time

    from trust_core.cache.store import model_fingerprint

    (tmp_path / "my_net.py").write_text("import torchvision\n\ndef net(**kw):\n    return torchvision.models.resnet18(num_classes=2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = {"source": "my_net:net", "preprocessing": {"size": SIZE}}
    torch.manual_seed(0)
    first = load(spec_from_dict(spec))
    assert info_of(first).spec["code"].startswith("sha256:")
    time.sleep(0.01)
    (tmp_path / "my_net.py").write_text("import torchvision\n\ndef net(**kw):  # edited\n    return torchvision.models.resnet18(num_classes=2)\n")
    torch.manual_seed(0)
    second = load(spec_from_dict(spec))
    assert info_of(second).spec["code"] != info_of(first).spec["code"]
    assert model_fingerprint(first) != model_fingerprint(second)  # same weights, other code
    needs("timm")
    zoo = load(spec_from_dict({"source": "timm:resnet18", "source_kwargs": {"num_classes": 2}, "preprocessing": {"size": SIZE}}))
    import timm
    assert info_of(zoo).spec["code"] == f"timm {timm.__version__}"


def test_every_source_kind_has_one_builder():
    """The schema's source kinds and the builders' zoos name the same kinds (the builders are one dict)."""
    from trust_core.models.spec import SOURCE_KINDS, ZOO_KINDS, ZOOS, source_kind

    assert tuple(ZOOS) == SOURCE_KINDS and set(ZOO_KINDS) < set(ZOOS)
    assert source_kind("timm:resnet18") == "timm" and source_kind("model.pt2") == "pt2"
