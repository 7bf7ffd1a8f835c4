import pytest
import torch

from trust_core.cache import model_fingerprint
from trust_core.errors import ConfigError
from trust_core.models import ARCHITECTURES, build, forward_order
from trust_core.models.info import info_of
from trust_core.randomization import cascade, states


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def changed_prefixes(before, after):
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = build("densenet_tiny")
    with torch.no_grad():  # make BatchNorm statistics non-default, as after training
        for module in m.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
                module.weight.uniform_(0.5, 2)
                module.bias.uniform_(-1, 1)
    return m


def test_never_mutates_input_and_yields_fresh_copies(model):
    before = snapshot(model)
    models = [m for _, m in cascade(model)]
    assert all(m is not model for m in models) and len({id(m) for m in models}) == len(models)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    assert info_of(model).state is None


def test_cascading_changes_exactly_the_named_blocks(model):
    spec = ARCHITECTURES["densenet_tiny"]
    original = snapshot(model)
    prefixes_so_far = []
    for k, (name, state_model) in enumerate(cascade(model)):
        changed = changed_prefixes(original, state_model.state_dict())
        if k == 0:
            assert name == "original" and not changed
            continue
        assert name == spec.blocks[k - 1][0]
        prefixes_so_far += list(spec.blocks[k - 1][1])
        in_blocks = lambda key: any(key == p or key.startswith(p + ".") for p in prefixes_so_far)
        assert all(in_blocks(key) for key in changed)
        # every float parameter/statistic of the randomized blocks changed (counters excepted)
        expected = {key for key, v in original.items() if in_blocks(key) and v.is_floating_point()}
        assert expected <= changed


def test_state_order_is_top_down_forward_order(model):
    spec = ARCHITECTURES["densenet_tiny"]
    firsts = [group[-1] for _, group in spec.blocks]
    assert forward_order(model, 64, firsts) == list(reversed(firsts))
    assert [s.name for s in states("densenet_tiny")][1:] == [b[0] for b in spec.blocks]


def test_reproducible_with_distinct_recorded_seeds(model):
    a = [(n, snapshot(m), info_of(m).state) for n, m in cascade(model, seed=5)]
    b = [(n, snapshot(m), info_of(m).state) for n, m in cascade(model, seed=5)]
    for (na, sa, ta), (nb, sb, tb) in zip(a, b):
        assert na == nb and ta == tb and all(torch.equal(sa[k], sb[k]) for k in sa)
    seeds = a[-1][2]["block_seeds"]
    assert len(seeds) == len(set(seeds)) == len(ARCHITECTURES["densenet_tiny"].blocks)
    c = [snapshot(m) for _, m in cascade(model, seed=6)]
    assert not torch.equal(c[1]["classifier.weight"], a[1][1]["classifier.weight"])


def test_independent_mode_changes_one_block_each(model):
    spec = ARCHITECTURES["densenet_tiny"]
    original = snapshot(model)
    for k, (name, m) in enumerate(cascade(model, mode="independent")):
        if k == 0:
            continue
        changed = changed_prefixes(original, m.state_dict())
        assert all(any(key.startswith(p) for p in spec.blocks[k - 1][1]) for key in changed)


def test_states_have_distinct_fingerprints(model):
    prints = [model_fingerprint(m) for _, m in cascade(model)]
    assert len(set(prints)) == len(prints)
    # the 'original' state is the model as loaded: one cache identity for the evaluation and a plain load
    assert prints[0] == model_fingerprint(model)


def test_truncated_normal_option(model):
    _, logits_state = list(cascade(model, init="truncated_normal"))[1]
    weights = logits_state.classifier.weight
    assert weights.abs().max() <= 0.02 and torch.all(logits_state.classifier.bias == 0)


def test_inception_states_skip_aux_and_follow_the_paper():
    names = [s.name for s in states("inception_v3")]
    assert names == ["original", "logits", "Mixed_7c", "Mixed_7b", "Mixed_7a", "Mixed_6e", "Mixed_6d",
                     "Mixed_6c", "Mixed_6b", "Mixed_6a", "Mixed_5d", "Mixed_5c"]


def test_bad_options(model):
    with pytest.raises(ConfigError, match="mode"):
        list(cascade(model, mode="random"))
    with pytest.raises(ConfigError, match="re-initialization"):
        list(cascade(model, init="zeros"))
    with pytest.raises(ConfigError, match="cascade blocks"):
        list(cascade(torch.nn.Linear(2, 2)))


def test_state_models_build_each_state_once_in_cascade_order(model):
    from trust_core.cache import model_fingerprint
    from trust_core.errors import ConfigError
    from trust_core.randomization import StateModels
    kept = StateModels(model)
    third = kept.get(kept.names[2])
    assert kept.get(kept.names[2]) is third  # kept, not rebuilt
    listed = list(kept)
    assert [name for name, _ in listed] == kept.names and listed[2][1] is third
    fresh = [model_fingerprint(m) for _, m in cascade(model)]
    assert [model_fingerprint(m) for _, m in listed] == fresh  # the same states as the plain cascade
    streamed = [model_fingerprint(m) for _, m in StateModels(model, keep=False)]
    assert streamed == fresh
    with pytest.raises(ConfigError, match="unknown randomization state 'logits'"):
        kept.get("logits")


def test_state_models_serve_concurrent_sessions(model):
    """App sessions share one StateModels: concurrent requests for unbuilt states get each state once."""
    import threading

    from trust_core.randomization import StateModels
    shared = StateModels(model)
    got, errors = {}, []

    def ask(state):
        try:
            got.setdefault(state, []).append(shared.get(state))
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            errors.append(exc)
    threads = [threading.Thread(target=ask, args=(shared.names[-1 - k % 3],)) for k in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(len({id(m) for m in models}) == 1 for models in got.values())  # built once, shared
    with pytest.raises(ConfigError, match="keep=False"):
        StateModels(model, keep=False).get("stem")
