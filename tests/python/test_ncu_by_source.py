"""scripts/lib/ncu_by_source.py (scripts/profile-kernel --by-source): the
per-source-line summary of an ncu source export must attribute each SASS
row to the CUDA line before it and add up samples and instructions exactly.
CPU only: a small export in ncu's `--print-source cuda,sass` CSV layout."""

import csv
import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "lib", "ncu_by_source.py")

HEADER = [
    "Line No", "Source", "Address", "Source", "Warp Stall Sampling (All Samples)",
    "Warp Stall Sampling (Not-issued Samples)", "# Samples", "Instructions Executed",
    "stall_barrier", "stall_math",
]


def write_export(path):
    rows = [
        ["File Path", "/src/a.cu"],
        ["Function Name", "kernel"],
        HEADER,
        ["10", "x = load();", "", "", "", "", "", "", "", ""],
        ["", "", "0x10", "LDG R0", "30", "20", "30", "1,000", "0", "10"],
        ["", "", "0x20", "IADD R1", "10", "5", "10", "500", "0", "10"],
        ["11", "__syncthreads();", "", "", "", "", "", "", "", ""],
        ["", "", "0x30", "BAR.SYNC", "60", "60", "60", "500", "60", "0"],
        ["File Path", "/src/b.cuh"],
        ["Function Name", "kernel"],
        HEADER,
        ["7", "y += 1;", "", "", "", "", "", "", "", ""],
        ["", "", "0x40", "IADD R2", "0", "0", "0", "2,000", "0", "0"],
    ]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def test_samples_and_instructions_go_to_the_line_before(tmp_path):
    write_export(tmp_path / "shape.cuda-sass.csv")
    result = subprocess.run([sys.executable, SCRIPT, str(tmp_path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "== shape.cuda-sass.csv: 4e+03 warp instructions, 100 stall samples"
    assert lines[1] == "   stall reasons: barrier 60%, math 20%"
    # Sorted by stall samples: the barrier line (60 of 100), the load (40), the add (0).
    assert lines[2].startswith(" 60.0% stalls  12.5% inst | a.cu:11 __syncthreads();")
    assert "[barrier 100%]" in lines[2]
    assert lines[3].startswith(" 40.0% stalls  37.5% inst | a.cu:10 x = load();")
    assert "[math 50%]" in lines[3]
    assert lines[4].startswith("  0.0% stalls  50.0% inst | b.cuh:7 y += 1;")


def test_a_folder_without_exports_is_an_error(tmp_path):
    result = subprocess.run([sys.executable, SCRIPT, str(tmp_path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "no *.cuda-sass.csv" in result.stderr
