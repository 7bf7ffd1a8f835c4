import pytest
import torch
from torchvision import models as tvm

from trust_core.errors import ConfigError
from trust_core.models import ARCHITECTURES, build, forward_order, get_module
from trust_core.models.info import info_of

SMALL = [name for name, spec in ARCHITECTURES.items() if spec.demo]
ALL = list(ARCHITECTURES)


@pytest.mark.parametrize("name", ALL)
def test_registry_entry_is_consistent(name):
    spec = ARCHITECTURES[name]
    model = build(name)
    assert not model.training and info_of(model).arch == name
    assert info_of(model).input_size == ARCHITECTURES[name].input_size
    get_module(model, spec.gradcam_layer)
    paths = [p for _, group in spec.blocks for p in group]
    for path in paths:
        get_module(model, path)
    # Every parameterized top-level part of the model is covered by some block (nothing left intact).
    covered = lambda n: any(n == p or n.startswith(p + ".") for p in paths)
    uncovered = {n.split(".")[0] for n, _ in model.named_parameters() if not covered(n)}
    # The paper's InceptionV3 cascade stops at Mixed_5c: the stem and Mixed_5b stay trained.
    allowed = ({"Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                "Mixed_5b"} if name == "inception_v3" else set())
    assert uncovered == allowed


@pytest.mark.parametrize("name", ALL)
def test_blocks_are_top_down_in_forward_order(name):
    spec = ARCHITECTURES[name]
    model = build(name)
    first_paths = [group[-1] for _, group in spec.blocks]  # the earliest module of each state
    executed = forward_order(model, 96 if name != "inception_v3" else 299, first_paths)
    assert executed == list(reversed(first_paths))


def test_inception_has_no_unused_aux_head_and_12_states():
    model = build("inception_v3")
    assert model.AuxLogits is None
    assert len(ARCHITECTURES["inception_v3"].blocks) + 1 == 12


def test_densenet_final_relu_module_keeps_torchvision_semantics():
    torch.manual_seed(0)
    ours = build("densenet_tiny")
    reference = tvm.DenseNet(growth_rate=12, block_config=(2, 2, 2, 2), num_init_features=24, bn_size=2,
                             num_classes=2).eval()
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(ours(x), reference(x))
    assert isinstance(ours.final_relu, torch.nn.ReLU)


def test_resnet_tiny_is_small():
    assert sum(p.numel() for p in build("resnet_tiny").parameters()) < 400_000


def test_unknown_architecture():
    with pytest.raises(ConfigError, match="unknown architecture 'vgg'"):
        build("vgg")
    with pytest.raises(ConfigError, match="num_classes"):
        build("resnet_tiny", num_classes=0)
