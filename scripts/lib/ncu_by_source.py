#!/usr/bin/env python3
"""Warp stall samples and executed instructions of an ncu source export, per
CUDA source line: reads the *.cuda-sass.csv files that scripts/profile-kernel
writes (`ncu --page source --print-source cuda,sass`), where every SASS row
follows the CUDA line it was compiled from, and prints for each file the
stall reasons over the whole kernel, then the TOP (default 30) source lines
by stall samples with their share of the instructions and their three
leading stall reasons.

    python3 scripts/lib/ncu_by_source.py DIR   (or scripts/profile-kernel --by-source DIR)
"""
import collections
import csv
import glob
import os
import sys


def number(text):
    try:
        return float(text.replace(',', ''))
    except ValueError:
        return 0.0


def by_source(path, top):
    header = None
    source_file = None
    line = None
    stalls = collections.Counter()
    instructions = collections.Counter()
    reasons = collections.defaultdict(collections.Counter)
    text = {}
    with open(path, errors='replace') as f:
        for row in csv.reader(f):
            if not row:
                continue
            if row[0] == 'File Path':
                source_file = os.path.basename(row[1])
                continue
            if row[0] == 'Line No':
                header = row
                stall_col = header.index('Warp Stall Sampling (All Samples)')
                inst_col = header.index('Instructions Executed')
                reason_cols = [(i, h[len('stall_'):]) for i, h in enumerate(header)
                               if h.startswith('stall_')]
                continue
            if header is None or len(row) <= inst_col:
                continue
            if row[0]:  # a CUDA source line; the SASS rows after it are its code
                line = (source_file, int(row[0]))
                text[line] = row[1]
                continue
            if line is None:
                continue
            stalls[line] += number(row[stall_col])
            instructions[line] += number(row[inst_col])
            for i, name in reason_cols:
                if i < len(row):
                    reasons[line][name] += number(row[i])
    total_stalls = sum(stalls.values()) or 1.0
    total_instructions = sum(instructions.values()) or 1.0
    overall = collections.Counter()
    for counter in reasons.values():
        overall.update(counter)
    print(f'== {os.path.basename(path)}: {total_instructions:.3g} warp instructions, '
          f'{total_stalls:.0f} stall samples')
    print('   stall reasons: ' + ', '.join(
        f'{name} {100 * value / total_stalls:.0f}%' for name, value in overall.most_common(8)))
    for key, value in stalls.most_common(top):
        lead = ', '.join(f'{name} {100 * x / value:.0f}%'
                         for name, x in reasons[key].most_common(3) if x)
        print(f'{100 * value / total_stalls:5.1f}% stalls {100 * instructions[key] / total_instructions:5.1f}% '
              f'inst | {key[0]}:{key[1]} {text[key].strip()[:80]} [{lead}]')


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ('-h', '--help'):
        print(__doc__.strip())
        return 0 if len(sys.argv) == 2 else 2
    files = sorted(glob.glob(os.path.join(sys.argv[1], '*.cuda-sass.csv')))
    if not files:
        print(f'no *.cuda-sass.csv in {sys.argv[1]}', file=sys.stderr)
        return 1
    for path in files:
        by_source(path, int(os.environ.get('TOP', 30)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
