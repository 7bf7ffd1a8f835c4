"""What the commands share: opening datasets and the cache, screening films, model sources from the spec flags."""
from __future__ import annotations

import sys

from ..evaluate.verdicts import (LOCALIZER_BASELINE, NEEDS_SECOND_MODEL, baseline_of, paired_n, paper_rule_text,
                                 verdict_reason, verdict_reasons)


def _open_dataset(args, **kwargs):
    """The ``--dataset`` of a command with its ``--classes`` and ``--mask-rule``, skips said."""
    from ..data.kinds import open_dataset


    return _opened(open_dataset(args.dataset, classes=args.classes, mask_rule=args.mask_rule, finding=args.finding,
                                negatives=args.negatives, readers=args.readers, **kwargs))


def _opened(dataset):
    """Say what the dataset reader skipped and why (counted skips are never silent)."""
    for reason, count in dataset.skipped.counts.items():
        print(f"note: skipped {count} item(s) of {dataset.root}: {reason}", file=sys.stderr)
    return dataset


def _open_cache(args):
    from ..cache import Store

    from ..cache.codec import DEFAULT_MAP_STORAGE

    return None if args.no_cache else Store(args.cache, map_storage=getattr(args, "map_storage", None)
                                                 or DEFAULT_MAP_STORAGE)


def _check_cache(args) -> None:
    """Refuse an unwritable cache folder before any work (the cache itself is opened later)."""
    import os

    from ..cache.store import DEFAULT_DIR
    from ..io import writable_folder

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
        from ..data.records import UNREADABLE, UNUSABLE_TRUTH

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

    from ..data.images import FilmWarning

    warnings.filterwarnings("ignore", category=FilmWarning)  # said once above, not again for every decoding
    return kept


def _model_warnings(model, label) -> None:
    """Say before a run what is probably wrong with the model's preprocessing (never silently)."""
    from ..models.sanity import normalization_warnings

    for text in normalization_warnings(model):
        print(f"warning: model {label}: {text}", file=sys.stderr)


def _scored_maps(choices) -> dict:
    """``--scored-maps`` → departures from the registry's map forms (a clear error on a wrong pair)."""
    from ..errors import ConfigError
    from ..evaluate.criteria import resolve_scored_maps

    try:
        return resolve_scored_maps(choices or ())
    except ValueError as error:
        raise ConfigError(str(error)) from None


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
    from ..evaluate.criteria import resolve_criteria

    chosen = set(resolve_criteria(tuple(args.criteria) if args.criteria else None))
    wanted = [c for c in ("repeatability", "reproducibility") if c in chosen]
    if wanted and len(args.localizer or ()) < 2 and len(args.localizer_maps or ()) < 2:
        print(f"note: {' and '.join(wanted)} will be inconclusive without a baseline: {LOCALIZER_BASELINE}",
              file=sys.stderr)


SHOWN_ONE_BY_ONE = 20  # problems printed one per line; more are grouped by reason (all of them in --csv)


def _film_findings(model, dataset) -> tuple[list[str], list[str], int]:
    """A model against its preprocessing's zoo and a few of the dataset's films: (problems, warnings, films)."""
    from ..models.sanity import film_findings, normalization_warnings, sample_films

    films = sample_films(dataset)
    problems, notes = film_findings(model, films)
    return problems, normalization_warnings(model) + notes, len(films)


def _overrides(pairs: list[str] | None) -> dict:
    """``--set name=value`` pairs → typed overrides (JSON values, else strings)."""
    from ..models.spec.flags import parse_pairs

    return parse_pairs(pairs, what="--set")


def _model_sources(args, models: list[str]) -> list:
    """``--model`` values as ``load`` takes them: paths, or :class:`ModelSpec` objects when spec flags
    are given (``--source`` makes each --model a weights file; a .toml is read and overridden)."""
    from pathlib import Path

    from ..models.spec.flags import SPEC_FLAGS

    if not any(getattr(args, name, None) not in (None, []) for name in SPEC_FLAGS):
        return list(models)
    import tomllib

    from ..errors import ConfigError
    from ..models.spec import spec_from_dict
    from ..models.spec.flags import parse_names, parse_normalization, parse_pairs, parse_target, spec_table

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
            from ..models.weights import FORMAT, read_checkpoint

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
