"""The Python models of row_per_warp's warp selects and rank by bins
(scripts/model-warp-select): their contract checks on random sets, so that a
change to the model's rules (and to the kernel rules it documents) cannot
silently break exactness. CPU only; the GPU suite checks the kernels."""

import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "model-warp-select")


def test_warp_select_and_rank_by_bins_models_hold_their_contract():
    result = subprocess.run(
        [sys.executable, SCRIPT, "--trials", "1200", "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "contract held on 1200 random sets" in result.stdout
    # On kernel-like pools (the tail of randn rows) rank by bins never declines.
    for line in result.stdout.splitlines():
        if "bins declined" in line and " of " in line:
            assert "bins declined 0.0%" in line, line


STREAM_SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "model-stream-buffer")


def test_stream_buffer_model_keeps_the_top_k():
    # split_row's streaming buffer (exact and coarse floor raises) on randn,
    # ascending, few-distinct and inf/NaN rows: the buffer must keep every
    # row's exact top k and never overflow (the script raises otherwise).
    result = subprocess.run(
        [sys.executable, STREAM_SCRIPT, "--quick", "--rows", "2", "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "contract held on 64 rows" in result.stdout
    # Rows of few distinct values crowd a bin: the coarse raise must fall
    # back to the exact one on some of them (so that path is exercised), and
    # never on randn rows.
    lines = result.stdout.splitlines()
    few = [line for line in lines if "few-distinct" in line and "coarse:" in line]
    randn = [line for line in lines if "randn" in line and "coarse:" in line]
    assert any("(fallbacks 0.0)" not in line for line in few), few
    assert randn and all("(fallbacks 0.0)" in line for line in randn), randn
