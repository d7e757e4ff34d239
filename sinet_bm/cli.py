"""`sinet-bm`: the reviewer's commands, `verify` and `reproduce` (see sinet_bm.audit)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sinet_bm import audit


def parser() -> argparse.ArgumentParser:
    commands = argparse.ArgumentParser(
        prog="sinet-bm", description="Check a siNET-BM run: its files and its results."
    )
    sub = commands.add_subparsers(dest="command", required=True)
    verify = sub.add_parser(
        "verify",
        help="re-hash every file the run's record lists",
        description="Re-hash every file that provenance.json (of an out_dir) or "
        "ro-crate-metadata.json (of an unpacked crate) lists; print each missing or "
        "changed file and exit non-zero if there is any.",
    )
    verify.add_argument("dir", type=Path, help="an out_dir or an unpacked audit crate")
    verify.add_argument(
        "--workflow",
        type=Path,
        help="out_dir only: the workflow folder the run used (default: the current folder "
        "if it is one, else the checkout sinet-bm is installed from)",
    )
    verify.add_argument(
        "--raw-dir",
        type=Path,
        help="out_dir only: the exports' folder (default: where the run read them)",
    )
    reproduce = sub.add_parser(
        "reproduce",
        help="rerun the study from the exports and compare the results byte for byte",
        description="Rerun the study on RAW_DIR with the config the run recorded, into a "
        "temporary folder (a crate: with the crate's copy of the workflow), and report how "
        "many result files are byte-identical to those in DIR.",
    )
    reproduce.add_argument("dir", type=Path, help="an out_dir or an unpacked audit crate")
    reproduce.add_argument("raw_dir", type=Path, help="the folder of the exports")
    reproduce.add_argument("--cores", type=int, default=2)
    reproduce.add_argument("--workflow", type=Path, help="out_dir only, as for verify")
    reproduce.add_argument("--keep", action="store_true", help="keep the rerun's folder")
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "verify":
        lines, failed = audit.verify(args.dir, args.workflow, args.raw_dir)
    else:
        lines, failed = audit.reproduce(
            args.dir, args.raw_dir, args.cores, args.workflow, args.keep
        )
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
