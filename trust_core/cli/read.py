"""The commands that read and present: methods, inspect, report, analyze, figures, workspace init, app."""
from __future__ import annotations

import sys
from pathlib import Path

from ..evaluate.criteria import CRITERIA
from ..saliency.registry import METHODS
from .common import _model_sources, _open_dataset


def _cmd_methods(args) -> int:
    """The registries: every saliency method (plugins included) and every criterion, with their sets."""
    from ..saliency.methods import PLUGIN_ERRORS

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

    from ..models import load
    from ..models.spec import describe

    (source,) = _model_sources(args, [args.model])
    model = load(source, num_classes=None)
    report = describe(model)
    if args.dataset:  # the model on a few real films: constant or saturated outputs, inputs in a narrow band
        from ..models.sanity import film_findings, film_notes, sample_films

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


def _existing_workspace(given, *, dataset: bool = True) -> Path:
    """The workspace folder a command reads (``--workspace``, else ``$TRUST_WORKSPACE``, else ``cache/demo``):
    refused before anything is created in it unless it is a workspace (a folder; with a dataset folder where
    ``dataset``: a cohort's results are read without one)."""
    from ..data.kinds import DATASETS
    from ..errors import ConfigError
    from ..layout import Layout, read_index, workspace_path

    root = workspace_path(given)
    said = f"--workspace {root}" if given else f"the workspace {root} (no --workspace; $TRUST_WORKSPACE or cache/demo)"
    if not root.is_dir():
        raise ConfigError(f"{said} is not a folder: make one with `trust workspace init` (or `trust demo`)")
    read_index(root)  # an unreadable model index: said now, not later
    if dataset and not any(Layout(root).dataset(k).is_dir() for k in DATASETS):  # the dataset registry's kinds
        raise ConfigError(f"{said} holds no dataset folder: make it with `trust workspace init`")
    return root


def _cmd_report(args) -> int:
    """A per-image report or the cohort ZIP of ``--workspace`` (default: ``$TRUST_WORKSPACE``, else
    ``cache/demo``). De-identified output names images by the pseudonyms of that workspace: keyed with its
    secret ``<workspace>/pseudonym.key`` (created there, mode 0600, on first use; never written into the
    output), so the CLI and the app show the same pseudonym for an image of one workspace."""
    from ..errors import ConfigError
    from ..io import atomic_write, writable_file
    from ..layout import Layout
    from ..report import build_image_report, cohort_archive, render_html, render_pdf
    from ..report.report import cohort_results
    from ..workspace import Workspace

    out = writable_file(args.out)  # the output first: a folder where a file should be, a read-only folder
    wanted = (".zip",) if args.cohort else (".pdf", ".html")
    if out.suffix.lower() not in wanted:
        raise ConfigError(f"--out {args.out}: {'the cohort results are a ZIP' if args.cohort else 'a per-image report is a PDF or an HTML file'}; "
                          f"give it the suffix {' or '.join(wanted)}")
    if not args.cohort and (not args.image or not args.model):
        raise ConfigError("a per-image report needs --image and --model (or use --cohort)")
    root = _existing_workspace(args.workspace, dataset=not args.cohort)
    if args.cohort:
        cohort_results(Layout(root), args.dataset)  # refused before the workspace's store is opened
    ws = Workspace(root)
    if args.cohort:
        atomic_write(out, cohort_archive(ws, args.dataset, include_identifiers=args.include_identifiers))
        print(f"wrote cohort results of {args.dataset} to {out}")
        return 0
    image = args.image
    if image.startswith("img-"):  # a pseudonym, as the reports and the app name images: this workspace's image
        from ..pseudonyms import image_of

        image = image_of(image, ws.dataset(args.dataset, finding=args.finding).ids(), ws) or image
    report = build_image_report(ws, args.dataset, image, args.model, methods=args.methods, preset=args.preset,
                                finding=args.finding, include_identifiers=args.include_identifiers)
    if out.suffix.lower() == ".html":
        atomic_write(out, render_html(report))
    else:
        atomic_write(out, render_pdf(report))
    print(f"wrote {out} (report {report.title}{', with identifiers' if report.identifiers else ', de-identified'})")
    return 0


def _cmd_analyze(args) -> int:
    """When and why each method fails: the failure analysis of a results folder (trust_core.analysis)."""
    from ..analysis import analyze, write_analysis

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
    from ..analysis.figures import write_figures

    written = write_figures(args.run, args.out)
    names = sorted({p.stem for p in written})
    print(f"wrote {len(written)} files ({len(names)} figures, SVG and PDF) to {args.out}: {', '.join(names)}")
    return 0


def _cmd_workspace_init(args) -> int:
    """A workspace the app can open, from your dataset folder, models, results and cache (see
    trust_core.workspace_init)."""
    from ..workspace_init import init_workspace

    init_workspace(args.out, dataset=args.dataset, models=args.model, localizers=args.localizer or (),
                   results=args.results, store=args.store, classes=args.classes, finding=args.finding,
                   readers=args.readers)
    return 0


def _cmd_app(args) -> int:
    """Open a workspace in the app (Streamlit), on this machine only unless --address says otherwise."""
    import os
    from pathlib import Path

    from ..access import serving_policy
    from ..errors import ConfigError

    root = _existing_workspace(args.workspace)
    # the pages refuse to serve beyond this machine without authentication: said here, before a server starts
    auth = os.environ.get("TRUST_AUTH")
    decision = serving_policy(args.address, auth=auth, auth_configured=True)  # (the pages check the [auth] section)
    if not decision.allowed:
        raise ConfigError(f"--address {args.address}: {decision.message}")
    app = Path(__file__).resolve().parents[2] / "app.py"
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
               "--server.address", args.address, "--server.port", str(args.port)]
    print(f"serving {root} at http://{args.address}:{args.port} (Ctrl-C stops it)", flush=True)
    env = {**os.environ, "TRUST_WORKSPACE": str(root.resolve())}
    os.chdir(app.parent)
    os.execve(sys.executable, command, env)  # the server takes this process's place (its signals, its exit)
