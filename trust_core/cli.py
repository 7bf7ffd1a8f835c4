"""The ``trust`` command line."""
from __future__ import annotations

import argparse
import sys
import time

from .data.phantom import ANATOMIES
from .errors import TrustError
from .evaluate.criteria import CRITERIA, PAPER_CRITERIA
from .evaluate.criteria import SETS as CRITERIA_SETS
from .evaluate.verdicts import (LOCALIZER_BASELINE, NEEDS_SECOND_MODEL, baseline_of, paired_n, paper_rule_text,
                                verdict_reason, verdict_reasons)
from .models.registry import ARCHITECTURES
from .randomization.cascade import INITS, MODES
from .saliency.explain import PRECISIONS
from .saliency.registry import FAST_PRESET, METHODS, PAPER_PRESET, PRESETS, SETS


def _cmd_demo(args) -> int:
    from .demo import build_demo
    from .io import writable_folder
    from .layout import workspace_path

    writable_folder(workspace_path(args.workspace), what="--workspace")  # before minutes of building
    started = time.perf_counter()
    models = build_demo(args.workspace, n_images=args.images, epochs=args.epochs, evaluate=not args.no_evaluate,
                        anatomy=args.anatomy)
    print(f"demo workspace {workspace_path(args.workspace)} ready in {time.perf_counter() - started:.0f} s")
    for entry in models:
        score = (f"test AUC {entry['test_auc']:.3f}" if entry.get("test_auc") is not None
                 else f"val Dice {entry.get('val_dice', float('nan')):.3f}")
        print(f"  {entry['file']:<32} {entry['role']:<20} {score}")
    return 0


def _cmd_train(args) -> int:
    from .progress import epoch_bar

    from .models.train import TrainConfig, train_classifier

    from .errors import ConfigError

    if (args.arch is None) == (args.model is None and args.source is None):
        raise ConfigError("trust train needs --arch NAME (the registry) or a model spec (--model SPEC.toml, or "
                          "--source with the spec flags): one of them")
    from .io import writable_file

    writable_file(args.out)  # before the training, not after it
    model = _model_sources(args, [args.model])[0] if args.model or args.source else None
    dataset = _open_dataset(args)
    _screened(dataset, dataset.ids(), strict=args.strict)  # an unreadable film: skipped and listed, not a crash
    if args.recipe == "paper" and args.lr is not None:
        raise ConfigError("the paper recipe fixes the learning rate (Adam at 7e-5): drop --lr, or use --recipe default")
    config = TrainConfig(arch=args.arch, model=model, seed=args.seed, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr or 1e-3, patience=args.patience, image_size=args.size,
                         device=args.device, init_weights=args.init_weights, recipe=args.recipe,
                         shuffle_labels=args.shuffle_labels)
    with epoch_bar(args.epochs, f"train {args.arch or args.model}") as step:
        result = train_classifier(dataset, config, args.out, progress=step)
    print(f"wrote {result.path}: val AUC {result.val_auc:.3f}, test AUC "
          f"{result.test_auc if result.test_auc is None else round(result.test_auc, 3)}")
    return 0


def _open_dataset(args, **kwargs):
    """The ``--dataset`` of a command with its ``--classes`` and ``--mask-rule``, skips said."""
    from .data.kinds import open_dataset


    return _opened(open_dataset(args.dataset, classes=args.classes, mask_rule=args.mask_rule, finding=args.finding,
                                negatives=args.negatives, readers=args.readers, **kwargs))


def _opened(dataset):
    """Say what the dataset reader skipped and why (counted skips are never silent)."""
    for reason, count in dataset.skipped.counts.items():
        print(f"note: skipped {count} item(s) of {dataset.root}: {reason}", file=sys.stderr)
    return dataset


def _open_cache(args):
    from .cache import Store

    from .cache.codec import DEFAULT_MAP_STORAGE

    return None if args.no_cache else Store(args.cache, map_storage=getattr(args, "map_storage", None)
                                                 or DEFAULT_MAP_STORAGE)


def _check_cache(args) -> None:
    """Refuse an unwritable cache folder before any work (the cache itself is opened later)."""
    import os

    from .cache.store import DEFAULT_DIR
    from .io import writable_folder

    if not args.no_cache:
        writable_folder(args.cache or os.environ.get("TRUST_CACHE") or DEFAULT_DIR,
                        what="the cache folder (--cache, or $TRUST_CACHE)")


def _screened(dataset, ids=None, *, strict: bool, limit: int | None = None, screen=None) -> list[str]:
    """Read the films a command will use before it starts (``screen`` does it; default: ``dataset.screen``):
    unreadable films are skipped and listed (``--strict``: the first stops the run), depths inferred from a
    film's values are counted. Returns the kept ids."""
    before = dict(dataset.unreadable)
    kept = (screen() if screen is not None else dataset.screen(ids, strict=strict, limit=limit))
    new = {i: why for i, why in dataset.unreadable.items() if i not in before}
    if new:
        from .data.datasets import UNREADABLE, UNUSABLE_TRUTH

        print(f"note: skipped {len(new)} item(s) of {dataset.root}: {UNREADABLE} or {UNUSABLE_TRUTH} (--strict refuses them; your "
              f"files are not changed):", file=sys.stderr)
        for image_id, why in new.items():
            print(f"  {image_id}: {why}", file=sys.stderr)
    if dataset.film_warnings:
        example = next(iter(dataset.film_warnings.values()))
        print(f"warning: {len(dataset.film_warnings)} film(s) read at a depth inferred from their values (`trust "
              f"check` lists them), e.g. {example}", file=sys.stderr)
    if dataset.depth_note:
        print(f"warning: {dataset.depth_note}", file=sys.stderr)
    import warnings

    from .data.dicom import FilmWarning

    warnings.filterwarnings("ignore", category=FilmWarning)  # said once above, not again for every decoding
    return kept


def _model_warnings(model, label) -> None:
    """Say before a run what is probably wrong with the model's preprocessing (never silently)."""
    from .models.sanity import normalization_warnings

    for text in normalization_warnings(model):
        print(f"warning: model {label}: {text}", file=sys.stderr)


def _cmd_maps(args) -> int:
    import json

    import numpy as np
    import torch
    from tqdm import tqdm

    from .errors import ConfigError
    from .models import load
    from .models.info import info_of
    import contextlib

    from .evaluate.outputs import MAPS_PARAMS, check_maps_folder
    from .io import atomic_folder, atomic_path, atomic_write, writable_folder
    from .saliency import explain, resolve_methods, resolve_params

    out = writable_folder(args.out)  # before any work: nothing computed for an output that cannot be written
    _check_cache(args)
    methods = resolve_methods(args.methods)
    overrides = _overrides(args.set)
    params = resolve_params(args.preset, **overrides)
    (model_path,) = _model_sources(args, [args.model])
    model = load(model_path, device=args.device or "cpu", num_classes=2)
    _model_warnings(model, args.model)
    prep = info_of(model).prep
    size = prep.size
    dataset = _open_dataset(args, image_size=size)
    ids = args.images or dataset.ids(split=args.split, label=1 if args.positives else None)
    unknown = [i for i in ids if i not in dataset]
    if unknown:
        raise ConfigError(f"image id(s) not in the dataset: {unknown[:5]}")
    ids = _screened(dataset, ids, strict=args.strict, limit=args.limit)
    if not ids:
        raise ConfigError(f"no readable film to explain in {dataset.root} (every one asked for was skipped above)")
    identity = json.loads(json.dumps({
        "preset": args.preset, "methods": methods, "params": {k: v for k, v in params.items()},
        "model": str(args.model), "model_spec": info_of(model).spec, "dataset": args.dataset,
        "dataset_selection": {"mask_rule": dataset.mask_rule, **dataset.selection}, "precision": args.precision},
        default=str))
    replace = check_maps_folder(out, identity, overwrite=args.overwrite)  # before any work: never two runs mixed
    store = _open_cache(args)  # still before the output folder is made: a failing cache leaves no empty --out
    computed = from_cache = 0
    with contextlib.ExitStack() as stack:
        # another run's maps (--overwrite): written beside and swapped in whole at the end; else into --out
        # directly, where a stopped run keeps every finished map and a rerun continues it
        folder = stack.enter_context(atomic_folder(out)) if replace else out
        bar = stack.enter_context(tqdm(total=len(ids), desc=f"maps ({args.preset})", unit="img"))
        for start in range(0, len(ids), args.group):
            group = ids[start:start + args.group]
            x = torch.stack([prep(dataset.image(i, size, prep.resize)) for i in group])
            result = explain(model, x, methods=methods, preset=args.preset, device=args.device,
                             precision=args.precision, cache=store, batch_size=args.batch_size, **overrides)
            if start == 0:  # the folder and its params once the first maps exist (a refused parameter writes none)
                folder.mkdir(parents=True, exist_ok=True)
                atomic_write(folder / MAPS_PARAMS, json.dumps({
                    **identity, "model_meta": {k: v for k, v in info_of(model).meta.items() if k != "spec"},
                    "skipped": dataset.skipped.counts, "unreadable": dataset.unreadable}, indent=2, default=str))
            for j, image_id in enumerate(group):
                with atomic_path(folder / f"{image_id}.npz") as tmp, open(tmp, "wb") as fh:
                    np.savez_compressed(fh, **{m: result[m][j] for m in methods},
                                        target=result.targets[j],
                                        flags=json.dumps({m: result.flags[m][j] for m in methods}),
                                        params=json.dumps(result.method_params, default=str))
            cached = sum(sum(flags) for flags in result.from_cache.values())
            computed += len(group) * len(methods) - cached
            from_cache += cached
            bar.update(len(group))
    print(f"wrote {len(ids)} map files to {out} (preset {args.preset}): {computed} maps computed, "
          f"{from_cache} from the cache")
    return 0


def _scored_maps(choices) -> dict:
    """``--scored-maps`` → departures from the registry's map forms (a clear error on a wrong pair)."""
    from .errors import ConfigError
    from .evaluate.criteria import resolve_scored_maps

    try:
        return resolve_scored_maps(choices or ())
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _cmd_evaluate(args) -> int:
    from .evaluate import EvalConfig, Evaluation, write_outputs
    from .metrics import PAPER_DATA_RANGE
    from .models import load
    from .models.info import info_of
    from .progress import unit_bar

    from .evaluate.films import screen_for_evaluation
    from .evaluate.outputs import check_results_folder
    from .io import writable_folder

    # before any work: an --out that cannot be written, or that holds other results, stops here
    check_results_folder(writable_folder(args.out), overwrite=args.overwrite)
    _check_cache(args)
    model_paths = _model_sources(args, args.model)
    first = load(model_paths[0], num_classes=2)
    _model_warnings(first, args.model[0])
    dataset = _open_dataset(args, image_size=info_of(first).size)
    _screened(dataset, strict=args.strict, screen=lambda: screen_for_evaluation(
        dataset, tuple(args.criteria) if args.criteria else None, strict=args.strict, size=info_of(first).size,
        resize=info_of(first).prep.resize))
    _baseline_note(args)
    config = EvalConfig(methods=tuple(args.methods) if args.methods else None, preset=args.preset,
                        overrides=_overrides(args.set),
                        criteria=tuple(args.criteria) if args.criteria else PAPER_CRITERIA,
                        utility_limit=args.limit, ssim_images=args.ssim_images if args.limit is None
                        else min(args.ssim_images, args.limit), ssim_seed=args.ssim_seed,
                        baseline_pairs=args.baseline_pairs,
                        data_range=PAPER_DATA_RANGE if args.data_range is None else args.data_range,
                        randomization_mode=args.randomization, randomization_init=args.init, ttest=args.ttest,
                        precision=args.precision, device=args.device, batch_size=args.batch_size,
                        map_storage=args.map_storage,
                        group=args.group, shuffled_models=tuple(args.shuffled_model or ()),
                        smprt_samples=args.smprt_samples, smprt_noise=args.smprt_noise,
                        randomization_class=args.randomization_class,
                        scored_maps=_scored_maps(args.scored_maps))
    evaluation = Evaluation(dataset, model_paths, config, localizers=args.localizer or (),
                            localizer_maps=args.localizer_maps or (), cache=_open_cache(args))
    units = evaluation.units()
    note = evaluation.reserve_store(units)  # a run never evicts its own maps
    if note:
        print(f"note: {note}", file=sys.stderr)
    executor = None
    if args.engine == "ray":
        from .evaluate.distributed import ray_executor
        executor = ray_executor(address=args.address, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                                threads_per_worker=args.threads_per_worker)
    with unit_bar(len(units), f"evaluate ({args.preset}, {args.engine})") as progress:
        result = evaluation.run(progress=progress, executor=executor)
    result.config.setdefault("dataset", {})["unreadable"] = dict(dataset.unreadable)
    write_outputs(result, args.out)
    _print_summary(result.summary)
    print(f"{result.stats['units']} units, {result.stats['passes']} forward+backward passes, "
          f"{result.stats['forwards']} forward-only passes, "
          f"{result.stats['cached_images']}/{result.stats['image_maps']} image-states from the cache; "
          f"outputs in {args.out}")
    return 0


def _print_summary(summary: dict) -> None:
    for criterion, block in summary["criteria"].items():
        print(f"\n{criterion} ({block['metric']}, n={block['n_images']}, {block.get('scored_maps', 'clipped')} "
              f"maps): {block['rule']}")
        no_baseline = False
        for method, entry in block["methods"].items():
            if entry is None:
                reason = verdict_reason(criterion, None)
                print(f"  {method:<15} n/a" + (f" ({reason})" if reason else ""))
                continue
            base = baseline_of(entry)
            base_text = f"{base:.3f}" if isinstance(base, float) else "n/a"
            reasons = verdict_reasons(criterion, entry, short=True)
            no_baseline |= base is None and criterion in NEEDS_SECOND_MODEL
            verdict = entry["verdict"].upper() + (f" ({'; '.join(reasons)})" if reasons else "")
            print(f"  {method:<15} {entry['mean']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}] "
                  f"n={paired_n(entry)} baseline {base_text}  {verdict} (paper rule: {paper_rule_text(entry)})"
                  + (f"  ({entry['excluded']} flagged)" if entry["excluded"] else ""))
        if no_baseline:
            print(f"  note: {criterion} has no baseline to decide against: {LOCALIZER_BASELINE}")


def _baseline_note(args) -> None:
    """Say before a run that repeatability/reproducibility will have no baseline, and what gives one."""
    from .evaluate.criteria import resolve_criteria

    chosen = set(resolve_criteria(tuple(args.criteria) if args.criteria else None))
    wanted = [c for c in ("repeatability", "reproducibility") if c in chosen]
    if wanted and len(args.localizer or ()) < 2 and len(args.localizer_maps or ()) < 2:
        print(f"note: {' and '.join(wanted)} will be inconclusive without a baseline: {LOCALIZER_BASELINE}",
              file=sys.stderr)


def _cmd_check(args) -> int:
    """Decode every film and render every ground truth (problems: exit 2); warn about films read at an
    inferred depth or almost black; with ``--model``, the model against a few of the films too."""
    from tqdm import tqdm

    model = None
    if args.model:
        from .models import load

        (source,) = _model_sources(args, [args.model])
        model = load(source, num_classes=None)
    import os

    from .data.check import check_films, write_csv

    if args.csv:
        from .io import writable_file

        writable_file(args.csv, what="--csv")
    dataset = _open_dataset(args, save_splits=False)  # check reads, never writes, the dataset folder
    ids = dataset.ids()
    workers = args.workers or os.cpu_count() or 1
    started = time.perf_counter()
    with tqdm(total=len(ids), desc=f"check ({workers} workers)", unit="img") as bar:
        report = check_films(dataset, ids, workers=workers, progress=bar.update)
    seconds = time.perf_counter() - started
    problems, notes = report.problems, report.warnings
    if len(problems) <= SHOWN_ONE_BY_ONE:
        for _, file, reason in problems:
            print(f"error: {file}: {reason}" if file else f"error: {reason}", file=sys.stderr)
    else:  # thousands of one reason: a count and examples, every one in the CSV
        for reason, group in report.groups().items():
            examples = ", ".join(f or i for i, f, _ in group[:3])
            print(f"error: {len(group)} films: {reason} (e.g. {examples})", file=sys.stderr)
    if len(notes) <= SHOWN_ONE_BY_ONE:
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
    else:
        for reason, files in report.warning_groups().items():
            print(f"warning: {len(files)} films: {reason} (e.g. {', '.join(files[:3])})", file=sys.stderr)
    for reason, items in report.skipped.items():
        print(f"note: {len(items)} skipped: {reason} (e.g. {', '.join(items[:3])})", file=sys.stderr)
    listed = len(report.rows())
    if args.csv:
        write_csv(report, args.csv)
        print(f"wrote all {listed} problems, skips and warnings to {args.csv} (image_id, file, kind, reason)")
    elif listed:
        print(f"add --csv FILE to list all {listed} problems, skips and warnings in a table")
    model_problems: list[str] = []
    model_notes: list[str] = []
    if model is not None:
        model_problems, model_notes, checked = _film_findings(model, dataset)
        for text in model_problems:
            print(f"error: model {args.model}: {text}", file=sys.stderr)
        for text in model_notes:
            print(f"warning: model {args.model}: {text}", file=sys.stderr)
    summary = dataset.summary()
    print(f"{dataset.kind} dataset {dataset.root}: {summary['images']} labelled images, "
          f"{len(problems)} with problems, {len(dataset.skipped)} items skipped, {len(notes)} film warnings "
          f"({len(ids) / max(seconds, 1e-9):.0f} films/s on {workers} workers)"
          + (f"; model {args.model} on {checked} films: {len(model_problems)} problems, {len(model_notes)} warnings"
             if model is not None else ""))
    return 2 if problems or model_problems else 0


SHOWN_ONE_BY_ONE = 20  # problems printed one per line; more are grouped by reason (all of them in --csv)


def _film_findings(model, dataset) -> tuple[list[str], list[str], int]:
    """A model against its preprocessing's zoo and a few of the dataset's films: (problems, warnings, films)."""
    from .models.sanity import film_findings, normalization_warnings, sample_films

    films = sample_films(dataset)
    problems, notes = film_findings(model, films)
    return problems, normalization_warnings(model) + notes, len(films)


def _cmd_methods(args) -> int:
    """The registries: every saliency method (plugins included) and every criterion, with their sets."""
    from .saliency.methods import PLUGIN_ERRORS

    print("saliency methods (--methods; sets: paper = the default, extended = all):")
    for key, method in METHODS.items():
        print(f"  {key:<18} {method.label:<22} {method.group:<9} passes: {method.passes or '?'}"
              + (f"  [{method.source}]" if method.source != "trust_core" else ""))
    print("\ncriteria (--criteria; sets: paper = the default, extended = all):")
    for key, criterion in CRITERIA.items():
        print(f"  {key:<22} {criterion.label:<26} {criterion.group:<9} {criterion.metric} ({criterion.direction}); "
              f"needs {', '.join(criterion.needs)}")
    for message in PLUGIN_ERRORS:
        print(f"note: {message}", file=sys.stderr)
    return 0


def _cmd_inspect(args) -> int:
    import json

    from .models import load
    from .models.spec import describe

    (source,) = _model_sources(args, [args.model])
    model = load(source, num_classes=None)
    report = describe(model)
    if args.dataset:  # the model on a few real films: constant or saturated outputs, inputs in a narrow band
        from .models.sanity import film_findings, film_notes, sample_films

        dataset = _open_dataset(args, save_splits=False)
        films = sample_films(dataset)
        problems, notes = film_findings(model, films)
        notes = film_notes(dataset) + notes
        report["films"] = {"dataset": args.dataset, "checked": len(films), "problems": problems, "warnings": notes}
    ok = report["sanity"]["ok"] and not report.get("films", {}).get("problems")
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0 if ok else 2
    prep, outputs, target = report["input"], report["outputs"], report["target"]
    print(f"model      {args.model} ({report['source']})")
    print(f"input      {prep['label']} (resize: {prep['resize']})")
    classes = outputs["classes"]
    shown = ", ".join(classes[:20]) + (", …" if classes and len(classes) > 20 else "") if classes else "unnamed"
    print(f"outputs    {outputs['count']} × {outputs['activation']}: {shown}")
    print(f"target     {target['rule']}" + (f": {target['index']} ({target['name']})" if target["index"] is not None else ""))
    grid = report["gradcam"]["feature_map"]
    print(f"Grad-CAM   {report['gradcam']['layer']} → feature map {'×'.join(map(str, grid)) if grid else 'n/a'} "
          f"(channels × h × w)")
    print(f"cascade    {len(report['cascade'])} states after the original, top-down:")
    for k, state in enumerate(report["cascade"], start=1):
        print(f"  {k:>2}. {state['state']:<40} {state['parameters']:>12,} parameters")
    if report["guided_relus"] == 0:
        print("note       no ReLU in this model (GELU, SiLU…): Guided Backprop equals the gradient, and Guided "
              "Grad-CAM the gradient × Grad-CAM")
    if report["outputs_in_0_1"]:
        print("warning    every output lies in [0, 1]: does the model end in a sigmoid/softmax? The explained "
              "scalar must be a logit (remove the final activation, and say it under [outputs] activation)")
    if report["not_randomized"]:
        print(f"  not in any state (never randomized): {', '.join(report['not_randomized'][:8])}")
    sanity = report["sanity"]
    print(f"sanity     forward {'ok' if sanity['forward'] else 'NOT FINITE'}; input gradient of output "
          f"{sanity['probe_target']} (L1 {sanity['input_gradient_l1']:.3g}) "
          f"{'non-zero: ok' if sanity['ok'] else 'ZERO: maps would be blank'}")
    for text in report["warnings"]:
        print(f"warning    {text}")
    if "films" in report:
        films = report["films"]
        print(f"films      {films['checked']} films of {films['dataset']}: "
              + ("outputs vary, none saturated: ok" if not films["problems"] and not films["warnings"] else
                 f"{len(films['problems'])} problems, {len(films['warnings'])} warnings"))
        for text in films["problems"]:
            print(f"error      {text}")
        for text in films["warnings"]:
            print(f"warning    {text}")
    else:
        print("films      not checked: add --dataset KIND:PATH to run the model on a few of your films")
    return 0 if ok else 2


def _cmd_train_localizer(args) -> int:
    from .progress import epoch_bar

    from .models.localizer import train_localizer
    from .io import writable_file

    writable_file(args.out)
    dataset = _open_dataset(args)
    _screened(dataset, dataset.ids(split="train") + dataset.ids(split="val"), strict=args.strict)
    with epoch_bar(args.epochs, "train localizer") as step:
        meta = train_localizer(dataset, args.out, size=args.size, seed=args.seed, epochs=args.epochs,
                               device=args.device, progress=step)
    print(f"wrote {args.out}: val Dice {meta['val_dice']:.3f}")
    return 0


def _cmd_report(args) -> int:
    """A per-image report or the cohort ZIP of ``--workspace`` (default: ``$TRUST_WORKSPACE``, else
    ``cache/demo``). De-identified output names images by the pseudonyms of that workspace: keyed with its
    secret ``<workspace>/pseudonym.key`` (created there, mode 0600, on first use; never written into the
    output), so the CLI and the app show the same pseudonym for an image of one workspace."""
    from .io import atomic_write
    from .report import build_image_report, cohort_archive, render_html, render_pdf
    from .workspace import Workspace

    from .io import writable_file

    out = writable_file(args.out)
    ws = Workspace(args.workspace)
    if args.cohort:
        atomic_write(out, cohort_archive(ws, args.dataset, include_identifiers=args.include_identifiers))
        print(f"wrote cohort results of {args.dataset} to {out}")
        return 0
    if not args.image or not args.model:
        from .errors import ConfigError
        raise ConfigError("a per-image report needs --image and --model (or use --cohort)")
    report = build_image_report(ws, args.dataset, args.image, args.model, methods=args.methods, preset=args.preset,
                                finding=args.finding, include_identifiers=args.include_identifiers)
    if out.suffix.lower() == ".html":
        atomic_write(out, render_html(report))
    else:
        atomic_write(out, render_pdf(report))
    print(f"wrote {out} (report {report.title}{', with identifiers' if report.identifiers else ', de-identified'})")
    return 0


def _cmd_analyze(args) -> int:
    """When and why each method fails: the failure analysis of a results folder (trust_core.analysis)."""
    from .analysis import analyze, write_analysis

    analysis = analyze(args.run, criteria=args.criteria, methods=args.methods, dataset=args.dataset,
                       model=args.model)
    path = write_analysis(analysis, args.run)
    print(f"{analysis.summary['n_images']} images; features: instances, relative size, elongation, irrectangularity "
          f"(CheXlocalize), model confidence ({analysis.summary['confidence']})")
    for line in analysis.lines():
        print(f"  {line}")
    print(f"wrote {path} and the analysis_* tables beside it ({analysis.summary['timings']['total_s']:.1f} s)")
    return 0


def _cmd_figures(args) -> int:
    """The results folder's figures for a paper, as SVG and PDF (trust_core.analysis.figures)."""
    from .analysis.figures import write_figures

    written = write_figures(args.run, args.out)
    names = sorted({p.stem for p in written})
    print(f"wrote {len(written)} files ({len(names)} figures, SVG and PDF) to {args.out}: {', '.join(names)}")
    return 0


def _cmd_workspace_init(args) -> int:
    """A workspace the app can open, from your dataset folder, models, results and cache (see
    trust_core.workspace_init)."""
    from .workspace_init import init_workspace

    init_workspace(args.out, dataset=args.dataset, models=args.model, localizers=args.localizer or (),
                   results=args.results, store=args.store, classes=args.classes, finding=args.finding,
                   readers=args.readers)
    return 0


def _cmd_app(args) -> int:
    """Open a workspace in the app (Streamlit), on this machine only unless --address says otherwise."""
    import os
    from pathlib import Path

    from .errors import ConfigError
    from .layout import Layout, read_index

    root = Path(args.workspace)
    if not root.is_dir():
        raise ConfigError(f"--workspace {root} is not a folder: make one with `trust workspace init` (or `trust demo`)")
    read_index(root)  # an unreadable model index: said now, not on every page
    if not any(Layout(root).dataset(k).is_dir() for k in ("rsna", "siim", "nih", "vindr", "chexlocalize", "folder")):
        raise ConfigError(f"--workspace {root} holds no dataset folder: make it with `trust workspace init`")
    app = Path(__file__).resolve().parents[1] / "app.py"
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
               "--server.address", args.address, "--server.port", str(args.port)]
    print(f"serving {root} at http://{args.address}:{args.port} (Ctrl-C stops it)", flush=True)
    env = {**os.environ, "TRUST_WORKSPACE": str(root.resolve())}
    os.chdir(app.parent)
    os.execve(sys.executable, command, env)  # the server takes this process's place (its signals, its exit)


def _cmd_bench(args) -> int:
    from .bench import bench_metrics, bench_saliency

    if args.what == "saliency":
        bench_saliency(args.arch, args.size, args.device, args.batch_size, skip_reference=args.skip_reference,
                       model_spec=_model_sources(args, [args.model])[0] if args.model else None)
    elif args.what == "ui":
        from .bench_ui import bench_ui
        bench_ui(args.workspace, repeats=args.n or 6)
    elif args.what == "presets":
        from .bench_presets import bench_presets
        bench_presets(args.workspace, images=args.n or 6, device=None if args.device == "cpu" else args.device)
    elif args.what == "engines":
        from .bench import bench_engines
        bench_engines(args.workspace, args.dataset or "rsna", images=args.n or 64)
    elif args.what == "scale":
        from .bench_scale import bench_scale
        bench_scale(args.dataset, films=args.n or 400, size=args.size or 64)
    else:
        bench_metrics(args.n or 64, args.size or 320, args.device)
    return 0


def _overrides(pairs: list[str] | None) -> dict:
    """``--set name=value`` pairs → typed overrides (JSON values, else strings)."""
    from .models.spec.flags import parse_pairs

    return parse_pairs(pairs, what="--set")


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

    demo = sub.add_parser("demo", help="build the embedded demo workspace (phantom data + models)")
    demo.add_argument("--workspace", default=None, help="folder (default cache/demo or $TRUST_WORKSPACE)")
    demo.add_argument("--images", type=_at_least(8), default=480, help="phantom images per dataset")
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
    from .models.recipes import RECIPES
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
    maps.add_argument("--split", default="test", help="split when no ids are given (default test)")
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
    rep.add_argument("--dataset", default="rsna", help="dataset kind in the workspace")
    rep.add_argument("--finding", default=None, help="multi-finding datasets: the finding (default: its results')")
    rep.add_argument("--image", default=None, help="image id")
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
    app_parser.add_argument("--port", type=_positive_int, default=8501)
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
    from .data.groundtruth import DEFAULT_MASK_RULE, MASK_RULES

    parser.add_argument("--classes", default="paper", metavar="paper|all|NAME[,NAME…]",
                        help="RSNA detailed classes to keep: 'paper' (default: Normal and Lung Opacity, as the "
                             "paper), 'all', or comma-separated names")
    from .data.findings import NEGATIVE_RULES
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
    from .models.preprocessing import NORMALIZATIONS
    from .models.spec import ACTIVATIONS

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


def _model_sources(args, models: list[str]) -> list:
    """``--model`` values as ``load`` takes them: paths, or :class:`ModelSpec` objects when spec flags
    are given (``--source`` makes each --model a weights file; a .toml is read and overridden)."""
    from pathlib import Path

    from .models.spec.flags import SPEC_FLAGS

    if not any(getattr(args, name, None) not in (None, []) for name in SPEC_FLAGS):
        return list(models)
    import tomllib

    from .errors import ConfigError
    from .models.spec import spec_from_dict
    from .models.spec.flags import parse_names, parse_normalization, parse_pairs, parse_target, spec_table

    out = []
    for model in models:
        path = Path(model) if model is not None else None
        spec_path = None
        if path is None:  # `trust train --source …`: no weights
            data, base = {}, Path.cwd()
        elif path.suffix.lower() == ".toml":
            if not path.is_file():
                raise ConfigError("model spec not found", path=path)
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"not a valid TOML file ({exc})", path=path) from None
            base, spec_path = path.parent, path
        elif path.suffix.lower() == ".pt2":  # a program: its own architecture
            data, base = {"source": str(path.resolve())}, Path.cwd()
        elif args.source is None:
            from .models.weights import FORMAT, read_checkpoint

            payload = read_checkpoint(path)
            if payload.get("format") == FORMAT and payload.get("arch"):  # one of ours: its registry name
                data, base = {"source": payload["arch"], "weights": str(path.resolve())}, Path.cwd()
            else:
                raise ConfigError(f"--model {model} does not say its architecture: add --source (e.g. --source "
                                  f"torchvision:densenet121), or write a .toml spec", path=path)
        else:
            data, base = {"weights": str(path.resolve())}, Path.cwd()
        source = None
        if args.source:
            source = args.source if not args.source.endswith(".pt2") else str(Path(args.source).resolve())
        data = spec_table(data, source=source, num_classes=args.num_classes,
                          kwargs=parse_pairs(args.kwarg, what="--kwarg"), input_size=args.input_size,
                          channels=args.channels, resize=args.resize,
                          normalization=None if args.normalization is None else parse_normalization(args.normalization),
                          activation=args.activation, output_classes=parse_names(args.output_classes),
                          target=None if args.target is None else parse_target(args.target),
                          gradcam_layer=args.gradcam_layer, cascade_blocks=parse_names(args.cascade_blocks))
        out.append(spec_from_dict(data, base=base) if spec_path is None else spec_from_dict(data, path=spec_path))
    return out


def _add_compute_options(parser) -> None:
    parser.add_argument("--device", default=None, help="cpu, cuda … (default: cpu)")
    from .hardware import cpu_description, cpu_precisions

    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help=f"fp32 (exact, default); tf32/fp16 on CUDA; bf16 on CUDA or CPUs with native bf16 "
                             f"(this CPU, {cpu_description()}: {', '.join(cpu_precisions())})")
    parser.add_argument("--batch-size", type=_positive_int, default=None, help="passes per chunk")
    parser.add_argument("--group", type=_positive_int, default=4, help="images per explain call")
    parser.add_argument("--cache", default=None, help="cache folder (default cache/store or $TRUST_CACHE)")
    parser.add_argument("--no-cache", action="store_true")
    from .cache.codec import DEFAULT_MAP_STORAGE, MAP_STORAGES

    parser.add_argument("--map-storage", default=DEFAULT_MAP_STORAGE, choices=MAP_STORAGES,
                        help="how maps are kept and scored: compact (default: exact up to 120 KB a map, as at the "
                             "demo's 128 px; half precision beyond, ≈100–150 KB a 320² map) or exact (bit for bit, "
                             "≈650 KB a 320² map)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a refused argument (already said)
        return int(exc.code or 0)
    try:
        return args.func(args)
    except TrustError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; rerun to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
