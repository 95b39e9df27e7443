#!/usr/bin/env python
"""Prepare the CIFAR-10 cache the notebooks read (data/cifar10.npz by default).

Examples:
    python data_scripts/prepare_cifar10.py                     # torchvision download (needs internet)
    python data_scripts/prepare_cifar10.py --source ../shared/data/cifar10-jpg.tar.gz
    python data_scripts/prepare_cifar10.py --source my_images/  # train/<class>/*, test/<class>/*

Bad images (unreadable, truncated, empty, wrong size) are listed by path and skipped.
Re-running on a valid cache does nothing unless --force is given.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runs from a checkout without install

from course_lib.core.datasets import build_cache, default_cache_path  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default="download",
                   help="'download' (torchvision) or an image-folder directory / .tar.gz / .tar / .zip")
    p.add_argument("--out", type=Path, default=None, help=f"cache file (default {default_cache_path()})")
    p.add_argument("--download-root", type=Path, default=None, help="where torchvision keeps its download")
    p.add_argument("--force", action="store_true", help="rebuild even if a valid cache exists")
    args = p.parse_args(argv)
    try:
        build_cache(args.source, args.out or default_cache_path(), download_root=args.download_root,
                    force=args.force)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
