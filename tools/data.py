"""Show what a dataset holds: classes, split sizes, unreadable files (the datasets are tinyml/data.py).

python -m tools data fashion_mnist
python -m tools data photos/ --test-fraction 0.2
"""

from __future__ import annotations

import argparse
from typing import Sequence

from models.errors import exit_cli
from tinyml.data import FASHION_MNIST, load_splits, report_skipped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools data", description="Show what a dataset holds: classes, split sizes, unreadable files."
    )
    parser.add_argument(
        "dataset",
        help=f"'{FASHION_MNIST}' (Debian dataset-fashion-mnist) or an image folder "
        "with one subfolder per class (jpg/png/bmp)",
    )
    parser.add_argument(
        "--val-fraction", type=float, default=0.1, help="share of each class used for validation (default 0.1)"
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.1,
        help="share of each class held out for testing (image folders only; default 0.1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the deterministic split (default 0)")
    args = parser.parse_args(argv)
    splits = load_splits(args.dataset, args.val_fraction, args.test_fraction, args.seed)
    report_skipped(splits.skipped)
    print(
        f"{len(splits.class_names)} classes; train {len(splits.train)}, val {len(splits.val)}, test {len(splits.test)}"
    )
    for name, tr, va, te in zip(
        splits.class_names, splits.train.class_counts(), splits.val.class_counts(), splits.test.class_counts()
    ):
        print(f"  {name:20s} train {tr:6d}  val {va:5d}  test {te:5d}")
    return 0


if __name__ == "__main__":
    exit_cli(main)
