"""Shared command-line sizes of the benchmarks: Amazon Women by default (paper Table 1)."""

import argparse


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    """--users/--items/--pairs/--dims/--factors/--candidates, defaulting to Amazon Women."""
    parser.add_argument("--users", type=int, default=83_337)
    parser.add_argument("--items", type=int, default=299_555)
    parser.add_argument("--pairs", type=int, default=620_000)
    parser.add_argument("--dims", type=int, default=2048)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--candidates", type=int, default=1000)
