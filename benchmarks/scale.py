"""Shared pieces of the benchmarks: command-line sizes (Amazon Women by default, paper
Table 1) and the one-line description of the machine every benchmark prints first."""

import argparse
import os
import platform
import time
from pathlib import Path


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    """--users/--items/--pairs/--dims/--factors/--candidates, defaulting to Amazon Women."""
    parser.add_argument("--users", type=int, default=83_337)
    parser.add_argument("--items", type=int, default=299_555)
    parser.add_argument("--pairs", type=int, default=620_000)
    parser.add_argument("--dims", type=int, default=2048)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--candidates", type=int, default=1000)


def machine() -> str:
    """CPU model, cores and vector extensions (AVX2, AVX-512, VNNI, BF16, AMX) from
    /proc/cpuinfo."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", "unknown CPU", "x86_64"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    extensions = [name for name, flag in (("AVX2", "avx2"), ("AVX-512", "avx512f"),
                                          ("VNNI", "avx512_vnni"), ("AVX-VNNI", "avx_vnni"),
                                          ("BF16", "avx512_bf16"), ("AMX", "amx_tile"))
                  if flag in flags]
    return f"{model}, {os.cpu_count()} cores, {' '.join(extensions) or 'no AVX2'}"


def machine_line() -> str:
    """What every benchmark prints first: the machine, the date and the load before it ran."""
    return (f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M %Z')}; "
            f"load average {os.getloadavg()[0]:.2f}")
