"""The ``trust`` command line."""
from __future__ import annotations

import argparse
import sys
import time

from .errors import TrustError


def _cmd_demo(args) -> int:
    from .demo import build_demo, workspace_path

    started = time.perf_counter()
    models = build_demo(args.workspace, n_images=args.images, epochs=args.epochs)
    print(f"demo workspace {workspace_path(args.workspace)} ready in {time.perf_counter() - started:.0f} s")
    for entry in models:
        print(f"  {entry['file']:<32} {entry['role']:<20} test AUC {entry['test_auc']:.3f}")
    return 0


def _cmd_train(args) -> int:
    from tqdm import tqdm

    from .data.datasets import open_dataset
    from .models.train import TrainConfig, train_classifier

    dataset = open_dataset(args.dataset)
    config = TrainConfig(arch=args.arch, seed=args.seed, epochs=args.epochs, batch_size=args.batch_size,
                         lr=args.lr, patience=args.patience, image_size=args.size, device=args.device)
    with tqdm(total=args.epochs, desc=f"train {args.arch}", unit="epoch") as bar:
        def step(message):
            bar.set_postfix_str(message.split(": ", 1)[1])
            bar.update(1)
        result = train_classifier(dataset, config, args.out, progress=step)
    print(f"wrote {result.path}: val AUC {result.val_auc:.3f}, test AUC "
          f"{result.test_auc if result.test_auc is None else round(result.test_auc, 3)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trust", description="Saliency Trust Explorer: are the "
                                     "saliency maps of a chest X-ray classifier trustworthy?")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="build the embedded demo workspace (phantom data + models)")
    demo.add_argument("--workspace", default=None, help="folder (default cache/demo or $TRUST_WORKSPACE)")
    demo.add_argument("--images", type=int, default=480, help="phantom images per dataset")
    demo.add_argument("--epochs", type=int, default=40, help="maximum training epochs per model")
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser("train", help="train a binary classifier on a dataset")
    train.add_argument("--dataset", required=True, help="KIND:PATH, KIND in rsna, siim, folder")
    train.add_argument("--arch", required=True, help="architecture from the registry")
    train.add_argument("--out", required=True, help="checkpoint file to write")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--patience", type=int, default=5)
    train.add_argument("--size", type=int, default=None, help="input size (default: architecture's)")
    train.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda if available)")
    train.set_defaults(func=_cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
