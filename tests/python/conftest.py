"""pytest configuration for the Python tests: says up front (report header) and
at the end (terminal summary) whether the GPU tests run, and if not, why.

Set FASTTOPK_REQUIRE_GPU=1 to make missing GPU support an error instead of a
skip (on a GPU machine, a CPU-only build must not pass silently).
"""

import os

import pytest

from fasttopk_testing import gpu_status

_STATUS_KEY = pytest.StashKey[tuple]()


def _status(config):
    if _STATUS_KEY not in config.stash:
        config.stash[_STATUS_KEY] = gpu_status()
    return config.stash[_STATUS_KEY]


def pytest_report_header(config):
    available, detail = _status(config)
    lines = []
    try:
        import fasttopk

        lines.append(
            f"fasttopk {fasttopk.__version__} from {os.path.dirname(fasttopk.__file__)}, "
            f"cuda_compiled={fasttopk.cuda_compiled()}, algorithms={list(fasttopk.algorithms())}"
        )
    except ImportError as error:
        lines.append(f"fasttopk: cannot be imported ({error})")
    if available:
        lines.append(f"fasttopk GPU tests: will run on {detail}")
    else:
        lines.append(f"fasttopk GPU tests: will be SKIPPED ({detail})")
    return lines


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    available, detail = _status(config)
    if available:
        terminalreporter.write_line(f"fasttopk GPU tests ran on {detail}")
    else:
        terminalreporter.write_line(f"fasttopk GPU tests were SKIPPED: {detail}", yellow=True)
