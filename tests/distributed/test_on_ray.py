"""Runs the Ray checks (``ray_checks.py``) in a subprocess inside a private network namespace.

Ray listens on every interface; ``unshare -n`` gives the subprocess a network of its own with
only loopback up, so nothing it opens is reachable from outside. CI runs as root. Where
``unshare`` is not permitted the test fails and says so: it is never skipped silently.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHECKS = Path(__file__).with_name("ray_checks.py")
ROOT = Path(__file__).resolve().parents[2]


def _isolated(command: str) -> list[str]:
    return ["unshare", "-n", "sh", "-c", f"ip link set lo up && {command}"]


def test_ray_checks_pass_in_a_private_network_namespace():
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.fail("The Ray tests need `unshare` (util-linux) and `ip` (iproute2) to run Ray "
                    "in a private network namespace: install them (apt-get install util-linux "
                    "iproute2).")
    probe = subprocess.run(_isolated("true"), capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail("Cannot create a private network namespace for the Ray tests (`unshare -n` "
                    f"failed: {probe.stderr.strip()}). Run the tests as root (CI does) or with "
                    "CAP_SYS_ADMIN, e.g. `sudo python -m pytest`.")
    command = f"{sys.executable} -m pytest -q -p no:cacheprovider --noconftest {CHECKS}"
    result = subprocess.run(_isolated(command), cwd=ROOT, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, (
        f"Ray checks failed (rc {result.returncode}):\n{result.stdout[-6000:]}\n"
        f"{result.stderr[-3000:]}")
