"""The ``trust`` argument parser: every subcommand, its flags and their checks."""
from __future__ import annotations

import argparse
import sys

from ..demo import ANATOMIES
from ..evaluate.criteria import CRITERIA, PAPER_CRITERIA
from ..evaluate.criteria import SETS as CRITERIA_SETS
from ..models.registry import ARCHITECTURES
from ..randomization.cascade import INITS, MODES
from ..saliency.device import PRECISIONS
from ..saliency.registry import FAST_PRESET, METHODS, PAPER_PRESET, PRESETS, SETS
from .compute import (_cmd_bench, _cmd_check, _cmd_demo, _cmd_evaluate, _cmd_maps, _cmd_train, _cmd_train_localizer)
from ..data.kinds import DATASETS as DATASET_KINDS
from ..data.records import SPLITS
from .read import (_cmd_analyze, _cmd_app, _cmd_figures, _cmd_inspect, _cmd_methods, _cmd_report, _cmd_workspace_init)


def _number(kind, low, *, strict: bool):
    """An argparse type: ``kind`` (int/float) ≥ ``low`` (> when ``strict``), or a clear refusal."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        if value != value or value in (float("inf"), float("-inf")) or (value <= low if strict else value < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '≥'} {low}, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


_positive_int = _number(int, 0, strict=True)


def _port(text: str) -> int:
    """A TCP port: 1–65535."""
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 1–65535, got {text}")
    return value


_positive_float = _number(float, 0.0, strict=True)


_non_negative_float = _number(float, 0.0, strict=False)


def _at_least(low: int):
    return _number(int, low, strict=False)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as ``error: …`` (exit 2), like every other refusal."""

    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trust", description="Saliency Trust Explorer: are the "
                                     "saliency maps of a chest X-ray classifier trustworthy?")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser("demo", help="build the demo workspace: generated DICOM films (a real chest film's anatomy, "
                                       "or phantoms), trained models, evaluated results")
    demo.add_argument("--workspace", default=None, help="folder (default cache/demo or $TRUST_WORKSPACE)")
    demo.add_argument("--images", type=_at_least(8), default=480, help="generated films per dataset")
    demo.add_argument("--epochs", type=_positive_int, default=40, help="maximum training epochs per model")
    demo.add_argument("--no-evaluate", action="store_true", help="skip the fast-preset evaluation")
    demo.add_argument("--anatomy", choices=ANATOMIES, default=None,
                      help="rg1: the real chest film of pydicom-data, deformed and re-exposed, lesions in its lung "
                           "fields (default for a new workspace); phantom: fully synthetic films. An existing "
                           "workspace keeps the anatomy it was built with")
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser("train", help="train a binary classifier on a dataset")
    train.add_argument("--dataset", required=True, help="KIND:PATH, KIND in rsna, siim, folder, nih, vindr, chexlocalize")
    _add_dataset_options(train)
    train.add_argument("--arch", default=None, choices=list(ARCHITECTURES), help="architecture from the registry")
    train.add_argument("--model", default=None, help="or any architecture: a model spec (.toml; its weights, if "
                                                     "any, are ignored: see --init-weights)")
    _add_spec_options(train)
    train.add_argument("--init-weights", default=None, metavar="FILE",
                       help="start from these weights (.pt/.pth/.safetensors, e.g. ImageNet's); tensors whose "
                            "names and shapes fit are loaded, the rest (a 1000-class head) listed")
    from ..models.recipes import RECIPES
    train.add_argument("--recipe", default="default", choices=list(RECIPES),
                       help="; ".join(f"{k}: {v}" for k, v in RECIPES.items()))
    train.add_argument("--out", required=True, help="checkpoint file to write")
    train.add_argument("--seed", type=_at_least(0), default=0)
    train.add_argument("--epochs", type=_positive_int, default=30)
    train.add_argument("--batch-size", type=_at_least(2), default=32)
    train.add_argument("--lr", type=_positive_float, default=None, help="peak learning rate (default recipe: 1e-3)")
    train.add_argument("--patience", type=_positive_int, default=5)
    train.add_argument("--size", type=_at_least(32), default=None, help="input size (default: architecture's)")
    train.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda if available)")
    _add_strict_option(train)
    train.add_argument("--shuffle-labels", action="store_true",
                       help="train on randomly permuted labels (Adebayo et al.'s data randomization test): no "
                            "augmentation, the fit to the permuted labels kept; evaluate it with --shuffled-model")
    train.set_defaults(func=_cmd_train)

    check = sub.add_parser("check", help="decode every image and ground truth of a dataset; list all problems "
                                         "(with --model: the model on a few of its films too)")
    check.add_argument("--dataset", required=True, help="KIND:PATH")
    _add_dataset_options(check)
    check.add_argument("--model", default=None, help="also check a model against the films: its normalization, "
                                                     "and its outputs on a few films (constant or saturated)")
    _add_spec_options(check)
    check.add_argument("--workers", type=_positive_int, default=None,
                       help="processes reading the films (default: every core)")
    check.add_argument("--csv", default=None, metavar="FILE",
                       help="write every problem, skipped item and warning to a CSV (image_id, file, kind, reason)")
    check.set_defaults(func=_cmd_check)

    maps = sub.add_parser("maps", help="compute saliency maps for dataset images (NPZ per image)")
    maps.add_argument("--dataset", required=True, help="KIND:PATH")
    _add_dataset_options(maps)
    maps.add_argument("--model", required=True, help="checkpoint, model spec (.toml) or exported program (.pt2)")
    _add_spec_options(maps)
    _add_method_options(maps)
    maps.add_argument("--images", nargs="*", default=None, help="image ids (default: the split's)")
    maps.add_argument("--split", default="test", choices=list(SPLITS), help="split when no ids are given (default test)")
    maps.add_argument("--positives", action="store_true", help="only positive images")
    maps.add_argument("--limit", type=_positive_int, default=None)
    maps.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a preset parameter")
    maps.add_argument("--out", required=True, help="output folder (a rerun with the same settings continues it)")
    maps.add_argument("--overwrite", action="store_true",
                      help="replace a folder holding another run's maps, as a whole once the new ones are complete")
    _add_strict_option(maps)
    _add_compute_options(maps)
    maps.set_defaults(func=_cmd_maps)

    ev = sub.add_parser("evaluate", help="score trust criteria with their baselines (default: the paper's four)")
    ev.add_argument("--dataset", required=True, help="KIND:PATH")
    _add_dataset_options(ev)
    ev.add_argument("--model", action="append", required=True,
                    help="checkpoint, model spec (.toml) or .pt2; repeat: same architecture = replicates, "
                         "other = reproducibility")
    _add_spec_options(ev)
    _add_method_options(ev)
    ev.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a preset parameter")
    ev.add_argument("--criteria", nargs="*", default=None, choices=list(CRITERIA) + list(CRITERIA_SETS),
                    metavar="CRITERION",
                    help=f"criteria to score (default: the paper's {', '.join(PAPER_CRITERIA)}); any of "
                         f"{', '.join(CRITERIA)}, or a set: {', '.join(CRITERIA_SETS)}")
    ev.add_argument("--shuffled-model", action="append", metavar="CHECKPOINT",
                    help="a model trained on shuffled labels (`trust train --shuffle-labels`), for the "
                         "data_randomization criterion; repeatable")
    ev.add_argument("--smprt-samples", type=_at_least(2), default=10,
                    help="sMPRT: maps averaged over the image and N−1 noisy copies (Hedström et al.: 50)")
    ev.add_argument("--smprt-noise", type=_positive_float, default=0.1,
                    help="sMPRT: noise σ as a fraction of each image's range (Quantus default 0.1)")
    ev.add_argument("--limit", type=_positive_int, default=None, help="at most N positive test images")
    ev.add_argument("--ssim-images", type=_at_least(2), default=100, help="images for the SSIM criteria (paper: 100)")
    ev.add_argument("--ssim-seed", type=_at_least(0), default=1, help="seed choosing them (paper: 1)")
    ev.add_argument("--baseline-pairs", type=_positive_int, default=50)
    ev.add_argument("--data-range", type=_positive_float, default=None,
                    help="SSIM data range (default: the paper's, PAPER_DATA_RANGE = 2)")
    ev.add_argument("--randomization", default=MODES[0], choices=MODES)
    ev.add_argument("--init", default=INITS[0], choices=INITS)
    ev.add_argument("--ttest", action="store_true", help="one-sided t-test for randomization")
    ev.add_argument("--randomization-class", default="original", choices=("original", "own"),
                    help="the class a randomized state explains: 'original' (default: the class the trained "
                         "model explains, as Adebayo et al. and Quantus) or 'own' (its own prediction)")
    ev.add_argument("--scored-maps", action="append", metavar="CRITERION=FORM",
                    help="score a criterion on the other map form ('clipped': the paper's 99th-percentile clip; "
                         "'unclipped': the attribution before it). Defaults: each criterion's authors' — the "
                         "paper's four, spearman, hog, data_randomization clipped; pointing_game, "
                         "energy_pointing_game, miou, smprt, emprt unclipped; repeatable")
    ev.add_argument("--localizer", action="append", help="U-Net checkpoint(s) for the high baselines")
    ev.add_argument("--localizer-maps", action="append", default=None,
                    help="folder of <image_id>.npy/.png score maps; repeat for a second localizer (the "
                         "repeatability baseline)")
    ev.add_argument("--engine", default="local", choices=["local", "ray"], help="where units run")
    ev.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    ev.add_argument("--workers", type=_positive_int, default=None, help="Ray actors (default: one per CPU or GPU)")
    ev.add_argument("--gpus-per-worker", type=_non_negative_float, default=0.0)
    ev.add_argument("--threads-per-worker", type=_positive_int, default=None,
                    help="torch threads (and CPUs) per actor (default: the driver's count, so that Ray gives the local engine's bits)")
    ev.add_argument("--out", required=True, help="results folder (new or empty; see --overwrite)")
    ev.add_argument("--overwrite", action="store_true",
                    help="replace a results folder --out already holds, as a whole and atomically (without it, "
                         "such a folder is refused: two runs' tables are never mixed)")
    _add_strict_option(ev)
    _add_compute_options(ev)
    ev.set_defaults(func=_cmd_evaluate)

    listing = sub.add_parser("methods", help="list every saliency method and trust criterion (registries, plugins)")
    listing.set_defaults(func=_cmd_methods)

    ins = sub.add_parser("inspect", help="resolve a model (spec): input, outputs, Grad-CAM layer, cascade, "
                                         "sanity check")
    ins.add_argument("--model", required=True, help="checkpoint, model spec (.toml) or exported program (.pt2)")
    _add_spec_options(ins)
    ins.add_argument("--json", action="store_true", help="print the resolved description as JSON")
    ins.add_argument("--dataset", default=None, metavar="KIND:PATH",
                     help="also run the model on a few of these films: constant or saturated outputs, inputs in a "
                          "narrow band of the normalization's range")
    _add_dataset_options(ins)
    ins.set_defaults(func=_cmd_inspect)

    loc = sub.add_parser("train-localizer", help="train a U-Net on the dataset's boxes/masks (high baseline)")
    loc.add_argument("--dataset", required=True)
    _add_dataset_options(loc)
    loc.add_argument("--out", required=True)
    loc.add_argument("--size", type=_at_least(32), default=128)
    loc.add_argument("--seed", type=_at_least(0), default=0)
    loc.add_argument("--epochs", type=_positive_int, default=20)
    loc.add_argument("--device", default=None)
    _add_strict_option(loc)
    loc.set_defaults(func=_cmd_train_localizer)

    rep = sub.add_parser("report", help="per-image report (HTML/PDF) or cohort results (ZIP)")
    rep.add_argument("--workspace", default=None, help="workspace folder; de-identified output names images by "
                     "pseudonyms keyed with its pseudonym.key (created there on first use)")
    rep.add_argument("--dataset", default="rsna", choices=list(DATASET_KINDS), help="dataset kind in the workspace")
    rep.add_argument("--finding", default=None, help="multi-finding datasets: the finding (default: its results')")
    rep.add_argument("--image", default=None, help="image id, or its pseudonym in this workspace (img-…, as reports and pages name it)")
    rep.add_argument("--model", default=None, help="model file name in the workspace")
    rep.add_argument("--preset", default=FAST_PRESET, choices=list(PRESETS))
    rep.add_argument("--methods", nargs="*", default=None, choices=list(METHODS) + list(SETS), metavar="METHOD",
                     help="the maps to show (default: the paper's eight; 'extended': every method)")
    rep.add_argument("--cohort", action="store_true", help="export the cohort results instead (ZIP)")
    rep.add_argument("--include-identifiers", action="store_true", help="put patient identifiers in the report")
    rep.add_argument("--out", required=True, help="file: .pdf, .html (per image) or .zip (cohort)")
    rep.set_defaults(func=_cmd_report)

    ana = sub.add_parser("analyze", help="when and why methods fail: localization scores against lesion geometry, "
                                         "model confidence and a human ceiling (from an evaluation's results)")
    ana.add_argument("--run", required=True, help="an evaluation's results folder (its --out)")
    ana.add_argument("--criteria", nargs="*", default=None, metavar="CRITERION",
                     choices=[k for k, c in CRITERIA.items() if c.family == "localization"],
                     help="localization criteria to analyze (default: every one the run scored)")
    ana.add_argument("--methods", nargs="*", default=None, metavar="METHOD",
                     help="methods to analyze (default: every one the run scored)")
    ana.add_argument("--dataset", default=None, metavar="KIND:PATH",
                     help="where the evaluated dataset is now, if it moved (default: as recorded in config.json)")
    ana.add_argument("--model", default=None, metavar="PATH",
                     help="where the run's main model is now, if it moved (its confidence is read from it)")
    ana.set_defaults(func=_cmd_analyze)

    ws = sub.add_parser("workspace", help="make a workspace the app opens from your own dataset, models and results")
    ws_sub = ws.add_subparsers(dest="action", required=True)
    init = ws_sub.add_parser("init", help="link a dataset folder, copy models (with their roles) and an evaluation's "
                                          "results, link its map cache; nothing of yours is changed")
    init.add_argument("--dataset", required=True, metavar="KIND:PATH", help="your dataset folder (linked, never copied)")
    init.add_argument("--model", action="append", required=True, metavar="PATH",
                      help="a classifier checkpoint (repeat: the first is the main model, then a replicate of its "
                           "architecture, then one of another) or a model spec (.toml)")
    init.add_argument("--localizer", action="append", default=None, metavar="PATH",
                      help="U-Net localizers (the high baseline; repeat)")
    init.add_argument("--results", default=None, metavar="DIR", help="an evaluation's --out for this dataset")
    init.add_argument("--store", default=None, metavar="DIR",
                      help="the map cache that evaluation filled (its --cache; default cache/store): linked, so the "
                           "app shows the very maps that were scored")
    init.add_argument("--out", required=True, help="the new workspace folder")
    _add_dataset_options(init)
    init.set_defaults(func=_cmd_workspace_init)

    app_parser = sub.add_parser("app", help="open a workspace in the app (Streamlit)")
    app_parser.add_argument("--workspace", required=True, help="a workspace folder (trust workspace init, trust demo)")
    app_parser.add_argument("--port", type=_port, default=8501)
    app_parser.add_argument("--address", default="127.0.0.1",
                            help="where to listen (default: this machine only; 0.0.0.0 serves the network)")
    app_parser.set_defaults(func=_cmd_app)

    fig = sub.add_parser("figures", help="figures for a paper from an evaluation's results (SVG and PDF)")
    fig.add_argument("--run", required=True, help="an evaluation's results folder (its --out)")
    fig.add_argument("--out", required=True, help="folder for the figures")
    fig.set_defaults(func=_cmd_figures)

    bench = sub.add_parser("bench", help="benchmarks printing ratios measured in one run")
    bench.add_argument("what", choices=["saliency", "metrics", "engines", "presets", "ui", "scale"])
    bench.add_argument("--workspace", default=None, help="engines, presets: demo workspace")
    bench.add_argument("--dataset", default=None, help="engines: dataset kind (default rsna); scale: a KIND:PATH "
                       "tree to measure instead of a phantom one")
    bench.add_argument("--arch", default="densenet121", choices=list(ARCHITECTURES))
    bench.add_argument("--model", default=None, help="saliency: any model instead of --arch (a .toml spec, a "
                                                     ".pt2 program or a checkpoint; weights as they are)")
    _add_spec_options(bench)
    bench.add_argument("--size", type=_at_least(32), default=None)
    bench.add_argument("--device", default="cpu")
    bench.add_argument("--batch-size", type=_positive_int, default=None)
    bench.add_argument("--n", type=_positive_int, default=None,
                       help="maps (metrics, default 64), images (engines, default 64; presets, default 6), "
                            "films of the phantom tree (scale, default 400)")
    bench.add_argument("--skip-reference", action="store_true")
    bench.set_defaults(func=_cmd_bench)
    return parser


def _add_method_options(parser) -> None:
    parser.add_argument("--methods", nargs="*", default=None, choices=list(METHODS) + list(SETS), metavar="METHOD",
                        help=f"method keys (default: the paper's eight): {', '.join(METHODS)}; or a set: "
                             f"{', '.join(SETS)}")
    parser.add_argument("--preset", default=PAPER_PRESET, choices=list(PRESETS),
                        help="; ".join(f"{p.name}: {p.label}" for p in PRESETS.values()))


def _add_strict_option(parser) -> None:
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first film that cannot be read (default: skip such films, list them, "
                             "and count them in the outputs; your files are never changed)")


def _add_dataset_options(parser) -> None:
    from ..data.groundtruth import DEFAULT_MASK_RULE, MASK_RULES

    parser.add_argument("--classes", default="paper", metavar="paper|all|NAME[,NAME…]",
                        help="RSNA detailed classes to keep: 'paper' (default: Normal and Lung Opacity, as the "
                             "paper), 'all', or comma-separated names")
    from ..data.findings import NEGATIVE_RULES
    parser.add_argument("--finding", default=None, metavar="NAME",
                        help="the finding of a multi-finding dataset (nih, vindr, chexlocalize), e.g. Atelectasis; "
                             "an unknown name lists the valid ones")
    parser.add_argument("--negatives", default=None, choices=NEGATIVE_RULES,
                        help="multi-finding datasets: 'no-finding' (default: the dataset's own clean films) or "
                             "'absent' (every film without the finding)")
    parser.add_argument("--readers", default=None, metavar="majority|union|reader:R8",
                        help="VinDr: how its three radiologists combine (default majority)")
    parser.add_argument("--mask-rule", default=DEFAULT_MASK_RULE, choices=MASK_RULES,
                        help="ground truth at the model size: 'paper' (truncated, inclusively filled boxes; "
                             "resized masks != 0; the default) or 'coverage' (half a pixel's area)")


def _add_spec_options(parser) -> None:
    """The model spec's fields as flags (README 'Bring your own model'): with --source, --model is the
    weights file; with a .toml --model, the flags override its fields."""
    from ..models.preprocessing import NORMALIZATIONS
    from ..models.spec import ACTIVATIONS

    group = parser.add_argument_group("model spec (any PyTorch classifier; or a .toml spec as --model)")
    group.add_argument("--source", default=None, metavar="SOURCE",
                       help="torchvision:NAME, timm:NAME, torchxrayvision:CLASS, monai:NAME, pkg.mod:callable, "
                            "a .pt2 program or a registry name")
    group.add_argument("--num-classes", type=_positive_int, default=None, help="the builder's num_classes")
    group.add_argument("--kwarg", action="append", metavar="NAME=VALUE", help="another builder keyword argument")
    group.add_argument("--input-size", type=_at_least(8), default=None, help="model input side in pixels")
    group.add_argument("--channels", type=int, choices=(1, 3), default=None, help="input channels")
    group.add_argument("--normalization", default=None, metavar="|".join(NORMALIZATIONS) + "|MEAN,…:STD,…",
                       help="input value mapping")
    group.add_argument("--resize", default=None, choices=("stretch", "center_crop"),
                       help="framing: the whole film (stretch, the paper's) or its central square")
    group.add_argument("--activation", default=None, choices=ACTIVATIONS, help="the head's activation")
    group.add_argument("--output-classes", default=None, metavar="NAME,NAME,…", help="output names, in order")
    group.add_argument("--target", default=None, help="explained class: a name or an index "
                                                     "(default: the predicted class for softmax heads)")
    group.add_argument("--gradcam-layer", default=None, help="dotted module path (default: detected)")
    group.add_argument("--cascade-blocks", default=None, metavar="PATH,PATH,…",
                       help="cascade modules (default: detected top-level stages)")


def _add_compute_options(parser) -> None:
    parser.add_argument("--device", default=None, help="cpu, cuda … (default: cpu)")
    from ..hardware import cpu_description, cpu_precisions

    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help=f"fp32 (exact, default); tf32/fp16 on CUDA; bf16 on CUDA or CPUs with native bf16 "
                             f"(this CPU, {cpu_description()}: {', '.join(cpu_precisions())})")
    parser.add_argument("--batch-size", type=_positive_int, default=None, help="passes per chunk")
    parser.add_argument("--group", type=_positive_int, default=4, help="images per explain call")
    parser.add_argument("--cache", default=None, help="cache folder (default cache/store or $TRUST_CACHE)")
    parser.add_argument("--no-cache", action="store_true")
    from ..cache.codec import DEFAULT_MAP_STORAGE, MAP_STORAGES

    parser.add_argument("--map-storage", default=DEFAULT_MAP_STORAGE, choices=MAP_STORAGES,
                        help="how maps are kept and scored: compact (default: exact up to 120 KB a map, as at the "
                             "demo's 128 px; half precision beyond, ≈100–150 KB a 320² map) or exact (bit for bit, "
                             "≈650 KB a 320² map)")
