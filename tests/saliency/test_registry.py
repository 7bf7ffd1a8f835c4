"""The method registry's shared facts."""


def test_one_colour_per_method_everywhere():
    """Each registered method has its own colour, the same wherever it is drawn: the Metrics boxes, the Why
    scatter and bars, the Randomization curves (its baseline too) and the figures take it from here."""
    import re

    from trust_core.saliency.registry import METHODS, method_colour

    colours = [method_colour(k) for k in METHODS]
    assert len(set(colours)) == len(colours) and all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours)
    assert method_colour("some_plugin").startswith("#")  # a key beyond the registry still gets a colour
