"""How maps are kept in the store (trust_core.cache.codec), against numpy's own float16 and the
postprocessing that makes the clipped form."""
import numpy as np
import pytest
import torch

from trust_core.cache.codec import MAP_BUDGET, decode, encode, pack, planned_bytes, round_trip, stored_bytes
from trust_core.saliency.postprocess import minmax_maps, normalize_maps, unclipped_maps


def _forms(seed=0, size=64, smooth=False):
    rng = np.random.default_rng(seed)
    raw = rng.standard_normal((1, 3, size, size)).astype(np.float32)
    if smooth:
        raw = np.cumsum(np.cumsum(raw, axis=2), axis=3)
    attributions = torch.from_numpy(raw)
    clipped, _ = normalize_maps(attributions, 99.0)
    return clipped[0].numpy(), unclipped_maps(attributions)[0].numpy()


def test_float32_keeps_both_forms_bit_for_bit():
    clipped, unclipped = _forms()
    back = decode(encode(clipped, unclipped, storage="exact"))
    np.testing.assert_array_equal(back[0], clipped)
    np.testing.assert_array_equal(back[1], unclipped)


def test_float16_is_numpys_half_and_the_clip_is_derived_again():
    clipped, unclipped = _forms(1)
    packed = encode(clipped, unclipped, storage="compact", budget=0, percentile=99.0)
    assert packed["map"] is None  # one array kept: the clipped form is derived on read
    back_clipped, back_unclipped = decode(packed)
    np.testing.assert_array_equal(back_unclipped, unclipped.astype(np.float16).astype(np.float32))
    # the paper's clip of the half-precision map: within half precision of the float32 one
    np.testing.assert_allclose(back_clipped, clipped, atol=2e-3)
    expected, _ = normalize_maps(torch.from_numpy(back_unclipped)[None], 99.0)
    np.testing.assert_array_equal(back_clipped, expected[0].numpy())


def test_a_minmax_map_is_one_form():
    product = torch.from_numpy(np.random.default_rng(2).random((1, 32, 32)).astype(np.float32))
    clipped, _ = minmax_maps(product)
    back = decode(encode(clipped[0].numpy(), None, storage="compact", budget=0))
    assert back[0] is back[1]
    np.testing.assert_array_equal(back[0], clipped[0].numpy().astype(np.float16).astype(np.float32))


def test_flagged_maps_stay_nan():
    nan = np.full((16, 16), np.nan, np.float32)
    for precision in ("compact", "exact"):
        back = decode(encode(nan, nan.copy(), storage=precision, percentile=99.0))
        assert np.isnan(back[0]).all() and np.isnan(back[1]).all()


def test_a_map_whose_clip_cannot_be_derived_keeps_it():
    # two values differing below half precision: the float32 clip has a span, the half one none
    unclipped = np.full((32, 32), 0.50001, np.float32)
    unclipped[:16] = 0.5
    unclipped[0, 0] = 1.0
    clipped, _ = normalize_maps(torch.from_numpy(unclipped)[None], 99.0)
    clipped = clipped[0].numpy()
    assert np.isfinite(clipped).all()
    packed = encode(clipped, unclipped, storage="compact", budget=0, percentile=99.0)
    assert packed["map"] is not None
    assert np.isfinite(decode(packed)[0]).all()


def test_encoding_what_the_store_gave_back_is_lossless():
    clipped, unclipped = _forms(3)
    first = round_trip(clipped, unclipped, storage="compact", budget=0, percentile=99.0)
    packed, second = pack(*first, storage="compact", budget=0, percentile=99.0)
    np.testing.assert_array_equal(second[0], first[0])
    np.testing.assert_array_equal(second[1], first[1])


def test_compact_keeps_a_map_exactly_while_it_fits_the_budget():
    small = _forms(6, size=96)  # about the demo's maps: exact under the budget
    packed, back = pack(*small, storage="compact", percentile=99.0)
    assert packed["codec"] == "float32" and stored_bytes(packed) <= MAP_BUDGET
    np.testing.assert_array_equal(back[0], small[0])
    large = _forms(7, size=320)  # a noise-like 320² map: half precision, within the size the issue asks
    packed = encode(*large, storage="compact", percentile=99.0)
    assert packed["codec"] == "float16" and stored_bytes(packed) <= 320 * 320 * 1.6
    steps = np.zeros((320, 320), np.float32)  # a piecewise-constant map (XRAI-like): exact at any size
    steps[:, 160:] = 0.5
    steps[100:200, 100:200] = 1.0
    assert encode(steps, None, storage="compact")["codec"] == "float32"


def test_sizes_and_the_planning_bound():
    clipped, unclipped = _forms(4, size=320)
    half = stored_bytes(encode(clipped, unclipped, storage="compact", percentile=99.0))
    full = stored_bytes(encode(clipped, unclipped, storage="exact"))
    assert half < 320 * 320 * 1.6 < planned_bytes(320, "compact")  # white noise: the worst case
    assert full < planned_bytes(320, "exact") and full > 3 * half
    assert planned_bytes(64, "compact") == planned_bytes(64, "exact")  # small maps are kept exactly
    smooth = stored_bytes(encode(*_forms(5, size=320, smooth=True), storage="compact", budget=0, percentile=99.0))
    assert smooth < half


def test_an_unknown_storage_is_refused():
    with pytest.raises(ValueError, match="compact"):
        encode(np.zeros((2, 2), np.float32), None, storage="int8")


def test_a_clip_that_stretches_the_rounding_keeps_the_clipped_form():
    # values between 0.9 and 1: the clip maps a span of 0.1 onto [0, 1], ten times the half-precision step
    rng = np.random.default_rng(8)
    unclipped = (0.9 + 0.1 * rng.random((320, 320))).astype(np.float32)
    unclipped[0, 0] = 1.0
    clipped, _ = normalize_maps(torch.from_numpy(unclipped)[None], 99.0)
    clipped = clipped[0].numpy()
    packed, (back, _) = pack(clipped, unclipped, storage="compact", percentile=99.0, budget=0)
    assert packed["map"] is not None
    assert np.max(np.abs(back - clipped)) <= 1e-3


def test_the_storage_is_said_as_it_was():
    from trust_core.cache.codec import storage_note

    assert "exactly" in storage_note("compact", {"maps": 10, "half_precision": 0})
    assert "3 of 10 maps kept in half precision" in storage_note("compact", {"maps": 10, "half_precision": 3})
    assert "departure" in storage_note("compact", {"maps": 10, "half_precision": 3})
    assert "exact" in storage_note("exact")


def test_an_entry_of_the_former_raw_format_is_recomputed_not_read(tmp_path, tiny_model, tiny_images):
    from trust_core.cache import Store
    from trust_core.saliency import explain

    store = Store(tmp_path / "store")
    fresh = explain(tiny_model, tiny_images, methods=["grad"], cache=store)
    for key in list(store._cache.iterkeys()):  # the store as the former code left it: raw float32 arrays
        entry = store.get(key)
        store.set(key, {k: v for k, v in entry.items() if k != "packed"} | {"map": np.zeros((2, 2)), "unclipped": None})
    again = explain(tiny_model, tiny_images, methods=["grad"], cache=store)
    assert not any(again.from_cache["grad"])  # recomputed …
    np.testing.assert_array_equal(again["grad"], fresh["grad"])
    assert all("packed" in store.get(key) for key in store._cache.iterkeys())  # … and stored anew
    exact = explain(tiny_model, tiny_images, methods=["grad"], cache=store, map_storage="exact")
    assert not any(exact.from_cache["grad"])  # exact maps have keys of their own


def _old_form(array, dtype):
    """The earlier stored form of one array: one deflated stream of the byte planes, no prediction."""
    import zlib

    flat = np.ascontiguousarray(array, dtype).reshape(-1)
    planes = flat.view(np.uint8).reshape(-1, flat.dtype.itemsize).T.tobytes()
    return {"dtype": np.dtype(dtype).str, "shape": list(np.shape(array)), "data": zlib.compress(planes, 6)}


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("kind", ["noise", "smooth_rows", "smooth_columns", "special", "tiny"])
def test_each_prediction_gives_the_words_back_bit_for_bit(dtype, kind):
    from trust_core.cache.codec import _FILTERS, _pack, _residual, _restore, _unpack

    rng = np.random.default_rng(11)
    shapes = {"tiny": (1, 3)}
    array = rng.random(shapes.get(kind, (40, 48))).astype(np.float32)
    if kind == "smooth_rows":
        array = np.cumsum(array, axis=1) / 48
    elif kind == "smooth_columns":
        array = np.cumsum(array, axis=0) / 40
    elif kind == "special":  # NaN, ±inf, ±0, subnormals, the largest values: words that wrap when differenced
        array.flat[:8] = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-40 if dtype is np.float32 else 3e-8,
                          np.finfo(dtype).max, -np.finfo(dtype).max]
    words = np.ascontiguousarray(array, dtype).view({2: np.uint16, 4: np.uint32}[np.dtype(dtype).itemsize])
    for how in _FILTERS if words.shape[0] > 1 else ("none", "left", "left2"):
        np.testing.assert_array_equal(_restore(_residual(words, how), how), words)
    packed = _pack(array, dtype)
    np.testing.assert_array_equal(_unpack(packed).astype(dtype).view(words.dtype), words)


def test_the_prediction_follows_the_map_and_earlier_entries_still_read():
    from trust_core.cache.codec import _pack, _packed_bytes, _unpack

    rng = np.random.default_rng(12)
    rows = np.cumsum(rng.random((320, 320)), axis=1).astype(np.float32)
    rows /= rows.max()
    assert _pack(rows, np.float16)["filter"] == "left"
    assert _pack(np.ascontiguousarray(rows.T), np.float16)["filter"] == "up"
    assert _pack(rng.random((320, 320)), np.float16)["filter"] == "none"  # white noise: nothing to predict
    for array, dtype in ((rows, np.float16), (rows, np.float32), (rng.random((320, 320)), np.float16)):
        old = _old_form(array, dtype)
        new = _pack(array, dtype)
        np.testing.assert_array_equal(_unpack(old), _unpack(new))  # a store written before reads the same
        assert _packed_bytes(new) <= _packed_bytes(old)
    assert _packed_bytes(_pack(rows, np.float16)) < 0.8 * _packed_bytes(_old_form(rows, np.float16))
    # a whole entry of the earlier form decodes, and its size counts
    clipped, unclipped = _forms(9, size=320)
    earlier = {"codec": "float16", "map": None, "unclipped": _old_form(unclipped, np.float16), "percentile": 99.0}
    np.testing.assert_array_equal(decode(earlier)[1], unclipped.astype(np.float16).astype(np.float32))
    assert stored_bytes(earlier) == len(earlier["unclipped"]["data"])


def test_small_and_piecewise_maps_never_cost_more_than_before_and_a_sure_misfit_is_not_deflated():
    from trust_core.cache.codec import _pack, _packed_bytes

    rng = np.random.default_rng(13)
    segments = rng.integers(0, 12, (8, 8)).repeat(8, 0).repeat(8, 1)  # an XRAI-like 64² map: one stream wins
    steps = rng.random(12).astype(np.float32)[segments]
    for array in (steps, rng.random((5, 7)), rng.random((64, 64))):
        for dtype in (np.float16, np.float32):
            assert _packed_bytes(_pack(array, dtype)) <= _packed_bytes(_old_form(array, dtype))
    assert len(_pack(steps, np.float32)["planes"]) == 1
    noise = rng.random((320, 320)).astype(np.float32)  # ≈300 KB in float32: a sample of rows says so
    assert _pack(noise, np.float32, limit=120 * 1024) is None
    assert _pack(noise, np.float32, limit=1024 * 1024) is not None
    smooth = np.cumsum(np.ones((320, 320), np.float32), axis=1)
    assert _packed_bytes(_pack(smooth, np.float32, limit=120 * 1024)) <= 120 * 1024


def test_the_prediction_chosen_by_one_stream_packs_as_small_as_trying_every_layout():
    """The prediction is chosen by one deflated stream of the sample per prediction: the maps come out within
    1 % of the bytes of the costlier search it replaced (every layout of every prediction on the sample, the
    shortest deflated whole in its layout), and bit for bit."""
    from trust_core.cache.codec import (_FILTERS, _deflate_as, _layout, _pack, _packed_bytes, _residual,
                                        _sample_rows, _unpack)

    def every_layout(array, dtype):
        words = np.ascontiguousarray(array, dtype).view({2: np.uint16, 4: np.uint32}[np.dtype(dtype).itemsize])
        rows = _sample_rows(words.shape[-2])
        trials = {f: _layout(_residual(words, f)[..., rows, :]) for f in _FILTERS}
        how = min(_FILTERS, key=lambda f: sum(map(len, trials[f][1])))
        return sum(map(len, _deflate_as(_residual(words, how), trials[how][0])))

    rng = np.random.default_rng(21)
    noise = np.abs(rng.normal(size=(320, 320)))
    smooth = np.abs(np.cumsum(np.cumsum(rng.normal(size=(320, 320)), 0), 1))
    upsampled = np.kron(rng.random((10, 10)), np.ones((32, 32))) + np.linspace(0, 1e-3, 320)  # ramps
    regions = rng.random(16)[rng.integers(0, 16, (10, 10)).repeat(32, 0).repeat(32, 1)]  # XRAI-like
    small = np.abs(np.cumsum(rng.normal(size=(128, 128)), 1))  # the demo's size: the plain fallback applies
    for array in (noise, smooth, upsampled, regions, small):
        array = (array / array.max()).astype(np.float32)
        for dtype in (np.float32, np.float16):
            packed = _pack(array, dtype)
            assert _packed_bytes(packed) <= 1.01 * every_layout(array, dtype)
            np.testing.assert_array_equal(_unpack(packed), array.astype(dtype).astype(np.float32))


def test_a_bilinear_upsampling_is_predicted_by_its_second_differences_and_kept_exactly():
    """Grad-CAM's map is a coarse map upsampled bilinearly: nearly linear between knots, so the line through
    the two words before predicts it. Where both forms still exceed the budget, the unclipped form is kept
    with the words by which the clip derived from it misses the computed clip: exact, bit for bit, no half
    precision (whose steps moved HOG on Grad-CAM by 3e-3 at 320²)."""
    import torch

    from trust_core.cache.codec import MAP_BUDGET, _deflate_as, _derived, _pack, _packed_bytes, _residual, _unpack

    coarse = torch.rand(1, 1, 10, 10, generator=torch.Generator().manual_seed(3))
    raw = torch.nn.functional.interpolate(coarse, size=(320, 320), mode="bilinear", align_corners=False)[0, 0]
    raw = (raw * 3.7).numpy()
    packed = _pack(raw, np.float32)
    assert packed["filter"] in ("left2", "up2")
    np.testing.assert_array_equal(_unpack(packed), raw)  # bit for bit
    words = raw.view(np.uint32)
    first_order = min(sum(map(len, _deflate_as(_residual(words, f), ("joined",)))) for f in ("left", "up"))
    assert _packed_bytes(packed) < 0.9 * first_order

    unclipped = raw / raw.max()
    clipped = _derived(raw, 99.0)  # the clip of the raw map, as explain makes it: an ulp off the derived one
    assert not np.array_equal(clipped, _derived(unclipped, 99.0))
    stored, (c, u) = pack(clipped, unclipped, percentile=99.0)
    assert stored["codec"] == "float32" and stored["map"] is None and stored["correction"] is not None
    assert stored_bytes(stored) <= MAP_BUDGET < stored_bytes(pack(clipped, unclipped, storage="exact")[0])
    for got in ((c, u), decode(stored)):
        np.testing.assert_array_equal(got[0].view(np.uint32), clipped.view(np.uint32))
        np.testing.assert_array_equal(got[1].view(np.uint32), unclipped.view(np.uint32))
    assert stored_bytes(stored) < 1.35 * _packed_bytes(stored["unclipped"])  # the correction: mostly zeros


def test_the_clip_estimate_is_normalize_maps_within_an_ulp_or_two():
    """The correction form's estimate (numpy, float64, the same bits everywhere) against the clip the
    evaluation scores (``normalize_maps``, torch), on noise-like, smooth and flat-topped maps."""
    from trust_core.cache.codec import _clip_estimate

    rng = np.random.default_rng(21)
    smooth = np.cumsum(np.cumsum(rng.random((96, 80)), 0), 1)
    flat_top = np.minimum(rng.random((64, 64)), 0.5)
    for raw in (rng.standard_normal((96, 80)), smooth, flat_top, rng.random((7, 5)) ** 8):
        unclipped = np.abs(raw).astype(np.float32)
        unclipped /= unclipped.max()
        for percentile in (99.0, 95.0, 100.0):
            expected = normalize_maps(torch.from_numpy(unclipped)[None], percentile)[0][0].numpy()
            estimate = _clip_estimate(unclipped, percentile)
            assert estimate.dtype == np.float32 and estimate.shape == unclipped.shape
            np.testing.assert_allclose(estimate, expected, rtol=0, atol=3e-7)


def test_the_numpy_tf1_upsampling_repeats_torchs_bits():
    """The store predicts Grad-CAM's map from its coarse map by ``tf1_upsample`` on read: it must give the bits
    ``engine.tf1_resize_bilinear`` gave when the map was computed, for every ratio of sizes (integer and not,
    down- and upsampling), every magnitude (subnormal to large) and zeros (ReLU's)."""
    from trust_core.cache.codec import _unclipped_guess, tf1_upsample
    from trust_core.saliency.engine import tf1_resize_bilinear

    rng = np.random.default_rng(5)
    for h, w, out_h, out_w in [(10, 10, 320, 320), (8, 8, 299, 299), (7, 7, 224, 224), (1, 1, 64, 64),
                               (10, 12, 320, 384), (14, 14, 448, 448), (16, 16, 8, 8), (3, 5, 97, 41)]:
        for scale in (1e-40, 1e-6, 1.0, 3e4):
            coarse = np.maximum(rng.standard_normal((h, w)), 0).astype(np.float32) * np.float32(scale)
            expected = tf1_resize_bilinear(torch.from_numpy(coarse)[None, None], (out_h, out_w))[0, 0].numpy()
            got = tf1_upsample(coarse, (out_h, out_w))
            np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
            if expected.max() > 0:
                unclipped = unclipped_maps(torch.from_numpy(expected)[None])[0].numpy()
                np.testing.assert_array_equal(_unclipped_guess(got).view(np.uint32), unclipped.view(np.uint32))


def _tiny_model(size=320):
    from trust_core.models.info import tag
    from trust_core.models.registry import build

    model = tag(build("densenet_tiny", num_classes=2).eval(), input_size=size)
    return model, torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize("method", ["gradcam", "gradcam_pp"])
def test_cam_maps_are_kept_as_their_coarse_map_and_exact(tmp_path, method):
    """Grad-CAM's (and Grad-CAM++'s) 320² map in the TF1 rule (the paper's) is stored as its coarse map plus
    the words the prediction misses by (all zero) and the clip's correction: about a KB instead of tens, and
    the maps read back are bit for bit those computed without a store and those of ``--map-storage exact``."""
    from trust_core.cache.codec import _unpack_words
    from trust_core.cache.store import Store
    from trust_core.saliency import explain

    model, films = _tiny_model()
    kwargs = {"methods": [method], "gradcam_interpolation": "tf1_legacy"}
    plain = explain(model, films, **kwargs)
    store = Store(tmp_path / "c")
    first = explain(model, films, cache=store, **kwargs)
    entries = [store.get(k) for k in store._cache.iterkeys()]
    packed = [e["packed"] for e in entries if isinstance(e, dict) and "packed" in e]
    assert len(packed) == 2
    for p in packed:
        assert p["upsampled"]["rule"] == "tf1_legacy" and p["map"] is None and p["unclipped"] is None
        assert not _unpack_words(p["upsampled"]["residual"]).any()  # the prediction repeats the computation
        assert stored_bytes(p) < 4 * 1024  # against ≈55–110 KB predicted from its neighbours alone
    again = explain(model, films, cache=store, **kwargs)
    assert all(again.from_cache[method])
    exact = explain(model, films, cache=Store(tmp_path / "e", map_storage="exact"), **kwargs)
    for got in (first, again, exact):
        np.testing.assert_array_equal(got[method].view(np.uint32), plain[method].view(np.uint32))
        np.testing.assert_array_equal(got.unclipped[method].view(np.uint32), plain.unclipped[method].view(np.uint32))
    store.close()


def test_a_wrong_or_unknown_prediction_still_keeps_the_map_exactly():
    """A coarse map that does not predict the map (another machine's rounding, a plugin's mistake) costs bytes,
    never bits; a rule without a numpy form (torch's bilinear kernel) is not used as a prediction."""
    from trust_core.saliency.engine import tf1_resize_bilinear

    coarse = np.random.default_rng(8).random((10, 10)).astype(np.float32)
    raw = tf1_resize_bilinear(torch.from_numpy(coarse)[None, None], (320, 320))[0].numpy()
    clipped, unclipped = normalize_maps(torch.from_numpy(raw), 99.0)[0][0].numpy(), unclipped_maps(
        torch.from_numpy(raw))[0].numpy()
    for hint in [("tf1_legacy", coarse * np.float32(1.001)), ("tf1_legacy", coarse[::-1].copy()),
                 ("bilinear", coarse), ("tf1_legacy", coarse)]:
        stored, (c, u) = pack(clipped, unclipped, percentile=99.0, upsampled=hint)
        if hint[0] == "bilinear":
            assert "upsampled" not in stored
        for got in ((c, u), decode(stored)):
            np.testing.assert_array_equal(got[0].view(np.uint32), clipped.view(np.uint32))
            np.testing.assert_array_equal(got[1].view(np.uint32), unclipped.view(np.uint32))
    assert "upsampled" in stored  # the right coarse map
    assert stored_bytes(stored) < 0.1 * stored_bytes(pack(clipped, unclipped, percentile=99.0)[0])


def test_a_coarse_map_form_that_decodes_to_other_bits_is_refused_and_computed_again(tmp_path):
    """The coarse-map form is arithmetic done again on read: where it would give other bits (a process that
    flushes subnormals to zero, a damaged entry) ``decode`` raises instead of returning them, and ``explain``
    computes the map again rather than serve it."""
    import warnings

    from trust_core.cache.codec import CodecError
    from trust_core.cache.store import Store
    from trust_core.saliency import explain

    model, films = _tiny_model(64)
    kwargs = {"methods": ["grad", "gradcam"], "gradcam_interpolation": "tf1_legacy"}
    plain = explain(model, films, **kwargs)
    store = Store(tmp_path / "c")
    explain(model, films, cache=store, **kwargs)
    keys = [k for k in store._cache.iterkeys() if "packed" in (store.get(k) or {})
            and "upsampled" in store.get(k)["packed"]]
    assert len(keys) == 2
    entry = store.get(keys[0])
    from trust_core.cache.codec import _pack, _unpack

    coarse = _unpack(entry["packed"]["upsampled"]["coarse"])  # its largest cell one ulp off: other bits on read
    coarse.view(np.uint32).reshape(-1)[np.argmax(coarse)] += 1
    entry["packed"]["upsampled"]["coarse"] = _pack(coarse, np.float32)
    with pytest.raises(CodecError, match="other bits"):
        decode(entry["packed"])
    store.set(keys[0], entry)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = explain(model, films, cache=store, **kwargs)
    assert any("computed again" in str(w.message) for w in caught)
    assert sum(again.from_cache["gradcam"]) == 1 and all(again.from_cache["grad"])
    np.testing.assert_array_equal(again["grad"].view(np.uint32), plain["grad"].view(np.uint32))
    read, redone = again.from_cache["gradcam"].index(True), again.from_cache["gradcam"].index(False)
    np.testing.assert_array_equal(again["gradcam"][read].view(np.uint32), plain["gradcam"][read].view(np.uint32))
    alone = explain(model, films[redone:redone + 1], methods=["gradcam"], gradcam_interpolation="tf1_legacy")
    np.testing.assert_array_equal(again["gradcam"][redone].view(np.uint32), alone["gradcam"][0].view(np.uint32))
    store.close()


def test_maps_kept_as_their_coarse_map_have_keys_of_their_own():
    """Code written before the coarse-map form cannot read it: its maps are stored under keys that code never
    asks for (the keys as that code made them, ``make_key`` over the same parts without the form), while the
    other rules' Grad-CAM maps, ``--map-storage exact`` and every other method keep the keys they always had."""
    from trust_core.cache.store import digest_array, make_key
    from trust_core.saliency.explain import CODE_VERSION, _map_keys

    x = torch.zeros(1, 3, 8, 8)

    def before(method, params, **kept):  # the key as written before the coarse-map form
        return make_key(kind="map", image=digest_array(x[0]), model="f", method=method, params=params,
                        precision="fp32", code=CODE_VERSION, **kept)

    for rule in ("tf1_legacy", "bilinear"):
        per_method = {"gradcam": {"gradcam_interpolation": rule}, "gradcam_pp": {"gradcam_interpolation": rule},
                      "grad": {}, "xrai": {"xrai_steps": 3}}
        compact = _map_keys(x, "f", per_method, "fp32")
        exact = _map_keys(x, "f", per_method, "fp32", "exact")
        for method, params in per_method.items():
            own = rule == "tf1_legacy" and method in ("gradcam", "gradcam_pp")
            assert (compact[method, 0] != before(method, params)) == own
            assert exact[method, 0] == before(method, params, storage="exact")
