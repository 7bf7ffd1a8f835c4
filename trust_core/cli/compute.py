"""The commands that compute: demo, train, train-localizer, maps, evaluate, check, bench."""
from __future__ import annotations

import sys
import time

from ..evaluate.criteria import PAPER_CRITERIA
from .common import (SHOWN_ONE_BY_ONE, _baseline_note, _check_cache, _film_findings, _model_sources, _model_warnings,
                     _open_cache, _open_dataset, _overrides, _print_summary, _scored_maps, _screened)


def _cmd_demo(args) -> int:
    from ..demo import build_demo
    from ..io import writable_folder
    from ..layout import workspace_path

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
    from ..progress import epoch_bar

    from ..models.train import TrainConfig, train_classifier

    from ..errors import ConfigError

    if (args.arch is None) == (args.model is None and args.source is None):
        raise ConfigError("trust train needs --arch NAME (the registry) or a model spec (--model SPEC.toml, or "
                          "--source with the spec flags): one of them")
    from ..io import writable_file

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


def _cmd_maps(args) -> int:
    import json

    import numpy as np
    import torch
    from tqdm import tqdm

    from ..errors import ConfigError
    from ..models import load
    from ..models.info import info_of
    import contextlib

    from ..evaluate.outputs import MAPS_PARAMS, check_maps_folder
    from ..io import atomic_folder, atomic_path, atomic_write, writable_folder
    from ..saliency import explain, resolve_methods, resolve_params

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
    if unknown:  # left out by the selection (RSNA's classes, a finding…), or not there at all
        why = {i: reason for reason, items in dataset.skipped.reasons.items() for i in items}
        said = [f"{i} ({why[i]})" if i in why else i for i in unknown[:5]]
        selection = "; ".join(f"{k}: {', '.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                              for k, v in (dataset.selection or {}).items() if not k.endswith("_note"))
        option = "--classes all" if "classes" in (dataset.selection or {}) else "--finding"
        hint = (f"; the dataset's selection ({selection}) leaves some out: widen it ({option})"
                if any(i in getattr(dataset, "selection_reasons", {}) for i in unknown) else "")
        raise ConfigError(f"image id(s) not in the dataset: {said}{hint}")
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


def _cmd_evaluate(args) -> int:
    from ..evaluate import EvalConfig, Evaluation, write_outputs
    from ..metrics import PAPER_DATA_RANGE
    from ..models import load
    from ..models.info import info_of
    from ..progress import unit_bar

    from ..evaluate.films import screen_for_evaluation
    from ..evaluate.outputs import check_results_folder
    from ..io import writable_folder

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
        from ..evaluate.distributed import ray_executor
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


def _cmd_check(args) -> int:
    """Decode every film and render every ground truth (problems: exit 2); warn about films read at an
    inferred depth or almost black; with ``--model``, the model against a few of the films too."""
    from tqdm import tqdm

    model = None
    if args.model:
        from ..models import load

        (source,) = _model_sources(args, [args.model])
        model = load(source, num_classes=None)
    import os

    from ..data.check import check_films, write_csv

    if args.csv:
        from ..io import writable_file

        writable_file(args.csv, what="--csv")
    dataset = _open_dataset(args, save_splits=False)  # check reads, never writes, the dataset folder
    ids = dataset.ids()
    from ..data.check import CHUNK

    # no more processes than chunks of films to read (each reads CHUNK films)
    workers = max(1, min(args.workers or os.cpu_count() or 1, -(-len(ids) // CHUNK)))
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


def _cmd_train_localizer(args) -> int:
    from ..progress import epoch_bar

    from ..models.localizer import train_localizer
    from ..io import writable_file

    writable_file(args.out)
    dataset = _open_dataset(args)
    _screened(dataset, dataset.ids(split="train") + dataset.ids(split="val"), strict=args.strict)
    with epoch_bar(args.epochs, "train localizer") as step:
        meta = train_localizer(dataset, args.out, size=args.size, seed=args.seed, epochs=args.epochs,
                               device=args.device, progress=step)
    print(f"wrote {args.out}: val Dice {meta['val_dice']:.3f}")
    return 0


def _cmd_bench(args) -> int:
    from ..bench import bench_metrics, bench_saliency

    if args.what == "saliency":
        bench_saliency(args.arch, args.size, args.device, args.batch_size, skip_reference=args.skip_reference,
                       model_spec=_model_sources(args, [args.model])[0] if args.model else None)
    elif args.what == "ui":
        from ..bench_ui import bench_ui
        bench_ui(args.workspace, repeats=args.n or 6)
    elif args.what == "presets":
        from ..bench_presets import bench_presets
        bench_presets(args.workspace, images=args.n or 6, device=None if args.device == "cpu" else args.device)
    elif args.what == "engines":
        from ..bench import bench_engines
        bench_engines(args.workspace, args.dataset or "rsna", images=args.n or 64)
    elif args.what == "scale":
        from ..bench_scale import bench_scale
        bench_scale(args.dataset, films=args.n or 400, size=args.size or 64)
    else:
        bench_metrics(args.n or 64, args.size or 320, args.device)
    return 0
