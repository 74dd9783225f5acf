"""fasttopk-bench: fasttopk against torch.topk on the shapes that matter.

Run ``fasttopk-bench --help`` (or ``python -m fasttopk.bench --help``).

Suites (``--suite``, comma-separated; default ``seed``):

  seed       the two scenario tables of the seed report (LLM shapes; batch
             4096 x vocab <= 4096 in fp32 and bf16)
  latency    small-batch decode shapes, where launch latency dominates
  bandwidth  large inputs, where reading the input once is the floor
  llm        a grid: batch 1..1024 x vocab 32000..262144 x k 1..1024, bf16/fp32
  indexer    sparse-attention indexer shapes: k 512..2048 over 8k..128k columns
  all        every suite above (duplicates removed)
  custom     --rows/--cols/--k/--dtype (comma lists, crossed); also implied when
             --rows is given without --suite

Measurement protocol on a GPU (see docs/perf-notes.md):

  * GPU time: N >= 20 calls captured in one CUDA graph, the graph replayed
    R >= 15 times, each replay timed with CUDA events; per-call time = median
    replay time / N.
  * cache-warm: the N calls read the same input buffer; cache-cold (inputs
    under 100 MB): the calls rotate over enough distinct input buffers that
    more than 2x the L2 size lies between two reads of one buffer.
  * eager: a host loop of calls, synchronize, wall clock / calls; median of
    several loops. It includes the Python and launch overhead a user sees.
  * copy bandwidth: a large device-to-device copy timed the same way,
    (bytes read + bytes written) / time; every GB/s figure is the input bytes
    read once divided by the cold time, and "%copy" relates it to the copy
    ("%copy warm": the same with the cache-warm time).
  * --check: before timing, every variant's result on a fresh input is
    compared with torch.topk (values equal; indices equal where the value is
    unique in its row) and with the contract (ties to the lowest index, i.e.
    a stable sort). A failed check makes the exit status 1.

Without a usable GPU the CPU path is timed instead (fasttopk's host path
against torch's CPU topk when torch is installed, else numpy argpartition +
sort) on shapes whose rows are capped (--cpu-max-rows).
"""

import argparse
import csv
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Dict, List, Optional

# ----------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------

DTYPE_ALIASES = {
    "fp32": "fp32",
    "float32": "fp32",
    "float": "fp32",
    "f32": "fp32",
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "f16": "fp16",
    "bf16": "bf16",
    "bfloat16": "bf16",
}
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}

DISTRIBUTIONS = {
    "randn": "standard normal",
    "uniform": "uniform [0, 1)",
    "equal": "every element 1.0 (all ties)",
    "lowent": "16 distinct levels (low entropy; many ties), exact in bf16",
    "neginf": "randn with the last third of each row -inf (masked)",
    "sorted": "randn sorted ascending within each row",
}
DIST_ALIASES = {
    "all-equal": "equal",
    "allequal": "equal",
    "low-entropy": "lowent",
    "low-entropy-bf16": "lowent",
    "-inf": "neginf",
    "neg-inf": "neginf",
    "-inf-padded": "neginf",
    "masked": "neginf",
    "sorted-ascending": "sorted",
    "ascending": "sorted",
}

# (milliseconds) from the seed report, eager loop, an unknown GPU: torch.topk
# and the fastest alternative it found. Shown next to the seed suite only.
SEED_REFERENCE = {
    (1, 50304, 50, "fp16"): (0.046, "PyTorch"),
    (4, 50304, 5, "fp16"): (0.074, "PyTorch"),
    (4, 50304, 128, "fp16"): (0.048, "PyTorch"),
    (32, 32000, 40, "fp32"): (0.082, "PyTorch"),
    (4096, 1024, 32): (0.114, "CuTe 0.103"),
    (4096, 2048, 64): (0.159, "CuTe 0.111"),
    (4096, 4096, 64): (0.250, "QuACK 0.108"),
}


@dataclass(frozen=True)
class Case:
    rows: int
    cols: int
    k: int
    dtype: str

    @property
    def input_bytes(self):
        return self.rows * self.cols * DTYPE_BYTES[self.dtype]

    def label(self):
        return f"{self.rows}x{self.cols} k{self.k} {self.dtype}"


def _seed_cases():
    cases = [
        Case(1, 50304, 50, "fp16"),
        Case(4, 50304, 5, "fp16"),
        Case(4, 50304, 128, "fp16"),
        Case(32, 32000, 40, "fp32"),
    ]
    for dtype in ("fp32", "bf16"):
        cases += [
            Case(4096, 1024, 32, dtype),
            Case(4096, 2048, 64, dtype),
            Case(4096, 4096, 64, dtype),
        ]
    return cases


def _latency_cases():
    return [
        Case(1, 50304, 50, "fp16"),
        Case(4, 50304, 5, "fp16"),
        Case(4, 50304, 128, "fp16"),
        Case(32, 32000, 40, "fp32"),
        Case(1, 128256, 50, "bf16"),
        Case(1, 131072, 2048, "fp32"),
    ]


def _bandwidth_cases():
    return [
        Case(4096, 1024, 32, "fp32"),
        Case(4096, 2048, 64, "fp32"),
        Case(4096, 4096, 64, "fp32"),
        Case(4096, 4096, 64, "bf16"),
        Case(256, 128256, 50, "bf16"),
        Case(1024, 32000, 50, "fp32"),
    ]


LLM_VOCABS = (32000, 50304, 128256, 151936, 262144)


def _llm_cases():
    cases = []
    # bf16 logits: every batch x every vocabulary at k = 50, and the k sweep
    # at Llama-3's vocabulary.
    for batch in (1, 4, 32, 256, 1024):
        for vocab in LLM_VOCABS:
            cases.append(Case(batch, vocab, 50, "bf16"))
    for batch in (1, 32, 1024):
        for k in (1, 8, 256, 1024):
            cases.append(Case(batch, 128256, k, "bf16"))
    # fp32 logits: fewer points.
    for batch in (1, 32, 1024):
        for vocab in (32000, 128256, 262144):
            cases.append(Case(batch, vocab, 50, "fp32"))
    for batch in (1, 32):
        for k in (1, 1024):
            cases.append(Case(batch, 151936, k, "fp32"))
    return cases


def _indexer_cases():
    cases = []
    for rows in (1, 64, 512):
        for cols in (8192, 32768, 131072):
            for k in (512, 2048):
                cases.append(Case(rows, cols, k, "fp32"))
        cases.append(Case(rows, 65536, 1024, "fp32"))
    cases += [Case(64, 32768, 2048, "bf16"), Case(64, 131072, 2048, "bf16")]
    return cases


SUITES = {
    "seed": ("the seed report's two scenario tables", _seed_cases),
    "latency": ("small-batch decode shapes (latency-bound)", _latency_cases),
    "bandwidth": ("large inputs (bandwidth-bound)", _bandwidth_cases),
    "llm": ("LLM sampling grid: batch x vocab x k, bf16 and fp32", _llm_cases),
    "indexer": ("sparse-attention indexer: k 512-2048 over 8k-128k columns", _indexer_cases),
}
SUITE_ORDER = ("seed", "latency", "bandwidth", "llm", "indexer")


def _dedup(cases):
    seen = set()
    out = []
    for case in cases:
        if case not in seen:
            seen.add(case)
            out.append(case)
    return out


def _int_list(text, name):
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise SystemExit(
            f"fasttopk-bench: {name} must be integers (comma-separated), got {text!r}"
        ) from None
    if not values:
        raise SystemExit(f"fasttopk-bench: {name} is empty")
    return values


def _dtype_list(text):
    out = []
    for v in str(text).split(","):
        v = v.strip().lower()
        if not v:
            continue
        if v not in DTYPE_ALIASES:
            raise SystemExit(f"fasttopk-bench: unknown dtype {v!r} (fp32, fp16, bf16)")
        out.append(DTYPE_ALIASES[v])
    return out


def _dist_list(text):
    out = []
    for v in str(text).split(","):
        v = v.strip().lower()
        if not v:
            continue
        if v == "all":
            out += list(DISTRIBUTIONS)
            continue
        v = DIST_ALIASES.get(v, v)
        if v not in DISTRIBUTIONS:
            raise SystemExit(
                f"fasttopk-bench: unknown distribution {v!r} "
                f"(known: {', '.join(DISTRIBUTIONS)}, all)"
            )
        out.append(v)
    return list(dict.fromkeys(out))


def build_suites(args):
    """[(suite name, [Case])] in the order asked for."""
    names = []
    if args.suite:
        for name in args.suite.split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name == "all":
                names += list(SUITE_ORDER)
            elif name in SUITES or name == "custom":
                names.append(name)
            else:
                raise SystemExit(
                    f"fasttopk-bench: unknown suite {name!r} "
                    f"(known: {', '.join(SUITE_ORDER)}, all, custom)"
                )
    elif args.rows is not None:
        names = ["custom"]
    else:
        names = ["seed"]
    names = list(dict.fromkeys(names))
    if args.suite and "all" in [n.strip().lower() for n in args.suite.split(",")]:
        # "all" as one table: the union of every suite without duplicates.
        cases = _dedup([c for n in SUITE_ORDER for c in SUITES[n][1]()])
        suites = [("all", cases)]
        if "custom" in names:
            suites.append(("custom", _custom_cases(args)))
        return suites
    suites = []
    for name in names:
        if name == "custom":
            suites.append(("custom", _custom_cases(args)))
        else:
            suites.append((name, SUITES[name][1]()))
    return suites


def _custom_cases(args):
    if args.rows is None or args.cols is None or args.k is None:
        raise SystemExit("fasttopk-bench: a custom shape needs --rows, --cols and --k")
    rows = _int_list(args.rows, "--rows")
    cols = _int_list(args.cols, "--cols")
    ks = _int_list(args.k, "--k")
    dtypes = _dtype_list(args.dtype or "fp32")
    cases = []
    for dtype in dtypes:
        for r in rows:
            for c in cols:
                for k in ks:
                    if r < 1 or c < 1 or k < 1 or k > c:
                        raise SystemExit(
                            f"fasttopk-bench: need rows >= 1, cols >= 1, 1 <= k <= cols; "
                            f"got rows={r} cols={c} k={k}"
                        )
                    cases.append(Case(r, c, k, dtype))
    return cases


# ----------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------


def _median(values):
    return statistics.median(values) if values else float("nan")


class Progress:
    """One progress line on stderr (rewritten in place on a terminal)."""

    def __init__(self, enabled=True):
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.start = time.perf_counter()
        self.last_len = 0

    def update(self, text):
        if not self.enabled:
            return
        line = f"[{time.perf_counter() - self.start:6.1f}s] {text}"
        if self.tty:
            pad = max(0, self.last_len - len(line))
            sys.stderr.write("\r" + line + " " * pad)
            self.last_len = len(line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def step(self, text):
        """A sub-step of the current line: shown on a terminal only."""
        if self.tty:
            self.update(text)

    def done(self):
        if self.tty and self.last_len:
            sys.stderr.write("\r" + " " * self.last_len + "\r")
            sys.stderr.flush()
        self.last_len = 0


def _fmt_us(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _fmt_x(value):
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return "-"
    return f"{value:.2f}x"


def _fmt_num(value, digits=0):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(a, b):
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def format_table(headers, rows, align=None):
    """A Markdown table with padded columns (readable raw and rendered)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    align = align or ["r"] * len(headers)

    def line(values):
        out = []
        for i, v in enumerate(values):
            out.append(v.ljust(widths[i]) if align[i] == "l" else v.rjust(widths[i]))
        return "| " + " | ".join(out) + " |"

    sep = []
    for i, w in enumerate(widths):
        sep.append(":" + "-" * (w - 1) if align[i] == "l" else "-" * (w - 1) + ":")
    return "\n".join([line(headers), "| " + " | ".join(sep) + " |"] + [line(r) for r in cells])


def reproduce_command(args, suite):
    """The one-line command that reproduces one table."""
    parts = ["fasttopk-bench"]
    if suite == "custom":
        parts += ["--rows", str(args.rows), "--cols", str(args.cols), "--k", str(args.k)]
        parts += ["--dtype", str(args.dtype or "fp32")]
    else:
        parts += ["--suite", suite]
    if args.dist != "randn":
        parts += ["--dist", args.dist]
    for flag, on in (
        ("--check", args.check),
        ("--all-algos", args.all_algos),
        ("--no-cold", args.no_cold),
        ("--no-eager", args.no_eager),
        ("--smallest", args.smallest),
        ("--cpu", args.cpu),
    ):
        if on:
            parts.append(flag)
    if args.index_dtype != "int64":
        parts += ["--index-dtype", args.index_dtype]
    if args.calls != 20:
        parts += ["--calls", str(args.calls)]
    if args.replays != 15:
        parts += ["--replays", str(args.replays)]
    if args.max_cold_calls != 4096:
        parts += ["--max-cold-calls", str(args.max_cold_calls)]
    if args.seed != 0:
        parts += ["--seed", str(args.seed)]
    if args.cpu and args.cpu_max_rows != 64:
        parts += ["--cpu-max-rows", str(args.cpu_max_rows)]
    return " ".join(shlex.quote(p) for p in parts)


# ----------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------


@dataclass
class Variant:
    """One implementation measured on one case (torch, fasttopk auto, a forced algorithm)."""

    name: str
    warm_us: Optional[float] = None
    cold_us: Optional[float] = None
    eager_us: Optional[float] = None
    warm_spread: Optional[float] = None  # (max - min) / median over the replays
    cold_spread: Optional[float] = None
    check: str = "-"  # "ok", "FAIL: ...", "-" (not checked), "n/a: ..." (cannot run)
    error: Optional[str] = None


@dataclass
class Result:
    suite: str
    case: Case
    dist: str
    variants: Dict[str, Variant] = field(default_factory=dict)
    chosen: str = "?"
    cold_calls: int = 0
    cold_pool_bytes: int = 0
    notes: List[str] = field(default_factory=list)

    def time_of(self, name, cold=False):
        v = self.variants.get(name)
        if v is None:
            return None
        return v.cold_us if cold else v.warm_us

    def fastest(self, cold=False):
        best, best_t = "-", None
        for name, v in self.variants.items():
            t = v.cold_us if cold else v.warm_us
            if t is None or (isinstance(t, float) and math.isnan(t)):
                continue
            if v.check.startswith("FAIL"):
                continue
            if best_t is None or t < best_t:
                best, best_t = name, t
        return best

    def failed(self):
        return [n for n, v in self.variants.items() if v.check.startswith("FAIL")]


# ----------------------------------------------------------------------------
# GPU benchmark (torch CUDA tensors)
# ----------------------------------------------------------------------------


class GpuBench:
    def __init__(self, args, torch, fasttopk):
        self.args = args
        self.torch = torch
        self.ft = fasttopk
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.props = torch.cuda.get_device_properties(self.device)
        self.l2_bytes = int(getattr(self.props, "L2_cache_size", 0) or 50 * 2**20)
        # cold: more than 2x L2 of other inputs between two reads of a buffer
        self.cold_bytes = max(2 * self.l2_bytes, 100 * 10**6)
        self.dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
        self.index_dtype = torch.int32 if args.index_dtype == "int32" else torch.int64
        self.largest = not args.smallest
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(args.seed)
        self.algorithms = list(fasttopk.algorithms()) if hasattr(fasttopk, "algorithms") else []
        self.copy_gbps = None
        self.copy_detail = {}

    # -- environment --------------------------------------------------------

    def meta(self):
        torch = self.torch
        return {
            "mode": "gpu",
            "device": torch.cuda.get_device_name(self.device),
            "sm_count": self.props.multi_processor_count,
            "capability": f"{self.props.major}.{self.props.minor}",
            "memory_bytes": self.props.total_memory,
            "l2_bytes": self.l2_bytes,
            "torch": torch.__version__,
            "torch_cuda": torch.version.cuda,
            "fasttopk": getattr(self.ft, "__version__", "?"),
            "fasttopk_cuda_compiled": _cuda_compiled(self.ft),
            "fasttopk_algorithms": self.algorithms,
            "copy_bandwidth_GBps": self.copy_gbps,
            "copy_bandwidth": self.copy_detail,
            "cold_pool_bytes_target": self.cold_bytes,
            "calls_per_graph": self.args.calls,
            "replays": self.args.replays,
            "eager_loops": self.args.eager_loops,
            "index_dtype": self.args.index_dtype,
            "largest": self.largest,
            "python": platform.python_version(),
            "host": platform.node(),
        }

    def describe(self):
        m = self.meta()
        lines = [
            f"device: {m['device']} (sm_{m['capability'].replace('.', '')}, {m['sm_count']} SMs, "
            f"L2 {m['l2_bytes'] / 2**20:.0f} MiB, {m['memory_bytes'] / 2**30:.0f} GiB)",
            f"torch {m['torch']} (CUDA {m['torch_cuda']}), fasttopk {m['fasttopk']} "
            f"(algorithms: {', '.join(self.algorithms) or '?'})",
        ]
        if self.copy_gbps:
            d = self.copy_detail
            lines.append(
                f"copy bandwidth: {self.copy_gbps:,.0f} GB/s (device-to-device copy of "
                f"{d['bytes'] / 2**20:.0f} MiB, (read + write) / median of {d['reps']} timings)"
            )
        lines.append(
            f"protocol: CUDA graph of {self.args.calls} calls (cold: enough calls to rotate "
            f"over > {self.cold_bytes / 1e6:.0f} MB of inputs), median of {self.args.replays} "
            f"replays / calls; eager = host loop wall clock / calls, median of "
            f"{self.args.eager_loops} loops"
        )
        return lines

    def measure_copy_bandwidth(self, nbytes=1 << 30, reps=20):
        torch = self.torch
        free, _ = torch.cuda.mem_get_info(self.device)
        while nbytes > (64 << 20) and 2 * nbytes > free // 2:
            nbytes //= 2
        n = nbytes // 4
        src = torch.randn(n, device=self.device, generator=self.gen)
        dst = torch.empty_like(src)
        for _ in range(3):
            dst.copy_(src)
        torch.cuda.synchronize()
        times = []
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        for _ in range(reps):
            start.record()
            dst.copy_(src)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1e-3)
        t = _median(times)
        self.copy_gbps = 2 * n * 4 / t / 1e9
        self.copy_detail = {
            "bytes": n * 4,
            "reps": reps,
            "median_s": t,
            "min_s": min(times),
            "max_s": max(times),
        }
        del src, dst
        torch.cuda.empty_cache()
        return self.copy_gbps

    # -- inputs -------------------------------------------------------------

    def make_input(self, rows, cols, dtype_name, dist):
        """A fresh [rows, cols] input of the distribution (never zeros)."""
        torch = self.torch
        dtype = self.dtypes[dtype_name]
        dev, gen = self.device, self.gen
        if dist == "randn":
            x = torch.randn(rows, cols, device=dev, generator=gen, dtype=torch.float32)
        elif dist == "uniform":
            x = torch.rand(rows, cols, device=dev, generator=gen, dtype=torch.float32)
        elif dist == "equal":
            x = torch.ones(rows, cols, device=dev, dtype=torch.float32)
        elif dist == "lowent":
            # 16 levels +-0.125 .. +-1.875 (no zero, exact in every dtype)
            levels = torch.randint(0, 16, (rows, cols), device=dev, generator=gen)
            x = (levels.to(torch.float32) - 7.5) * 0.25
        elif dist == "neginf":
            x = torch.randn(rows, cols, device=dev, generator=gen, dtype=torch.float32)
            masked = cols // 3
            if masked:
                x[:, cols - masked :] = float("-inf")
        elif dist == "sorted":
            x = torch.randn(rows, cols, device=dev, generator=gen, dtype=torch.float32)
            x = x.to(dtype)
            x, _ = torch.sort(x, dim=-1)
            return x.contiguous()
        else:  # pragma: no cover - validated by _dist_list
            raise ValueError(dist)
        return x.to(dtype).contiguous()

    # -- correctness --------------------------------------------------------

    def check(self, x, k, fn):
        """Runs fn(x) on a fresh input and compares with torch.topk and the contract."""
        torch = self.torch
        try:
            values, indices = fn(x)
            torch.cuda.synchronize()
        except Exception as error:  # noqa: BLE001 - reported, not hidden
            return f"FAIL: raised {type(error).__name__}: {error}"
        ref_v, ref_i = torch.topk(x, k, dim=-1, largest=self.largest, sorted=True)
        if tuple(values.shape) != tuple(ref_v.shape) or tuple(indices.shape) != tuple(ref_i.shape):
            got = f"{tuple(values.shape)}/{tuple(indices.shape)}"
            return f"FAIL: shape {got}, want {tuple(ref_v.shape)}"
        if values.dtype != x.dtype:
            return f"FAIL: values dtype {values.dtype}, want {x.dtype}"
        if indices.dtype != self.index_dtype:
            return f"FAIL: indices dtype {indices.dtype}, want {self.index_dtype}"
        same = (values == ref_v) | (torch.isnan(values) & torch.isnan(ref_v))
        if not bool(same.all()):
            bad = int((~same).sum())
            return f"FAIL: {bad} values differ from torch.topk"
        idx = indices.long()
        if bool(((idx < 0) | (idx >= x.shape[-1])).any()):
            return "FAIL: index out of range"
        gathered = x.gather(1, idx)
        if not bool(_bits(torch, gathered).eq(_bits(torch, values)).all()):
            return "FAIL: values are not the input's elements at the returned indices"
        # indices equal to torch's wherever the value is unique in its row
        xs = x.float()
        srt, _ = torch.sort(xs, dim=-1)
        vf = values.float().contiguous()
        count = torch.searchsorted(srt, vf, right=True) - torch.searchsorted(srt, vf, right=False)
        unique = count == 1
        mismatch = unique & (idx != ref_i.long())
        if bool(mismatch.any()):
            return f"FAIL: {int(mismatch.sum())} indices of unique values differ from torch.topk"
        # the contract's tie rule: a stable sort gives the exact expected indices
        _, order = torch.sort(x, dim=-1, descending=self.largest, stable=True)
        if not bool(order[:, :k].eq(idx).all()):
            diff = int((order[:, :k] != idx).sum())
            return f"FAIL: {diff} indices break the tie rule (lowest index first)"
        return "ok"

    # -- timing -------------------------------------------------------------

    def _graph_time(self, calls):
        """Per-call µs of `calls` (a list of zero-argument callables) captured in one graph."""
        torch = self.torch
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for fn in calls[: min(3, len(calls))]:
                fn()
        torch.cuda.current_stream(self.device).wait_stream(side)
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for fn in calls:
                fn()
        graph.replay()  # first replay uploads the graph
        torch.cuda.synchronize(self.device)
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(self.args.replays):
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) * 1e3 / len(calls))
        del graph
        med = _median(times)
        return med, (max(times) - min(times)) / med if med else None

    def _eager_time(self, fn):
        torch = self.torch
        n = self.args.eager_calls
        fn()
        torch.cuda.synchronize(self.device)
        times = []
        for _ in range(self.args.eager_loops):
            torch.cuda.synchronize(self.device)
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            torch.cuda.synchronize(self.device)
            times.append((time.perf_counter() - t0) * 1e6 / n)
        return _median(times)

    def _variants(self):
        """(name, fn(x) -> (values, indices)) of every implementation to time."""
        torch, ft = self.torch, self.ft
        largest, index_dtype = self.largest, self.index_dtype

        def torch_fn(x, k):
            v, i = torch.topk(x, k, dim=-1, largest=largest, sorted=True)
            return v, (i if index_dtype == torch.int64 else i.to(index_dtype))

        def ft_fn(algorithm):
            def run(x, k):
                return ft.topk(
                    x,
                    k,
                    dim=-1,
                    largest=largest,
                    sorted=True,
                    index_dtype=index_dtype,
                    algorithm=algorithm,
                )

            return run

        out = [("torch", torch_fn), ("fasttopk", ft_fn("auto"))]
        if self.args.all_algos:
            out += [(name, ft_fn(name)) for name in self.algorithms]
        return out

    def run_case(self, suite, case, dist, progress, label):
        torch = self.torch
        args = self.args
        result = Result(suite=suite, case=case, dist=dist)
        k = case.k
        variants = self._variants()

        # Which algorithm auto picks.
        x = self.make_input(case.rows, case.cols, case.dtype, dist)
        result.chosen = _chosen(self.ft, x, k, self.largest, self.index_dtype)

        runnable = []
        for name, fn in variants:
            var = Variant(name=name)
            result.variants[name] = var
            if name not in ("torch", "fasttopk"):
                # a forced algorithm that cannot take the shape: say so, don't time it
                try:
                    fn(x, k)
                    torch.cuda.synchronize(self.device)
                except ValueError as error:
                    var.check = "n/a"
                    var.error = str(error)
                    continue
            if args.check and name != "torch":  # torch.topk is the reference
                progress.step(f"{label}: checking {name}")
                fresh = self.make_input(case.rows, case.cols, case.dtype, dist)
                var.check = self.check(fresh, k, lambda t, fn=fn: fn(t, k))
                del fresh
            runnable.append((name, fn, var))

        # cache-warm: the same buffer N times
        for name, fn, var in runnable:
            progress.step(f"{label}: {name} graph (warm)")
            try:
                calls = [lambda fn=fn, x=x: fn(x, k)] * args.calls
                var.warm_us, var.warm_spread = self._graph_time(calls)
            except Exception as error:  # noqa: BLE001
                var.error = f"{type(error).__name__}: {error}"
                if not var.check.startswith("FAIL"):
                    var.check = f"FAIL: {var.error}"

        # cache-cold: rotate over > 2x L2 of distinct inputs (inside the graph)
        if args.no_cold:
            pass
        elif case.input_bytes < self.cold_bytes:
            needed = -(-self.cold_bytes // case.input_bytes) + 1
            buffers = min(args.max_cold_calls, max(args.calls, needed))
            pool = self.make_input(buffers * case.rows, case.cols, case.dtype, dist)
            views = [pool[b * case.rows : (b + 1) * case.rows] for b in range(buffers)]
            result.cold_calls = buffers
            result.cold_pool_bytes = buffers * case.input_bytes
            if result.cold_pool_bytes < 2 * self.l2_bytes:
                result.notes.append(
                    f"cold pool only {result.cold_pool_bytes / 1e6:.0f} MB (--max-cold-calls)"
                )
            for name, fn, var in runnable:
                if var.warm_us is None:
                    continue
                progress.step(f"{label}: {name} graph (cold, {buffers} buffers)")
                try:
                    calls = [lambda fn=fn, v=v: fn(v, k) for v in views]
                    var.cold_us, var.cold_spread = self._graph_time(calls)
                except Exception as error:  # noqa: BLE001
                    var.error = f"{type(error).__name__}: {error}"
            del pool, views
        else:
            # already larger than 2x L2: every read is from DRAM, warm == cold
            for _, _, var in runnable:
                var.cold_us, var.cold_spread = var.warm_us, var.warm_spread

        if not args.no_eager:
            for name, fn, var in runnable:
                if var.warm_us is None:
                    continue
                progress.step(f"{label}: {name} eager")
                try:
                    var.eager_us = self._eager_time(lambda fn=fn, x=x: fn(x, k))
                except Exception as error:  # noqa: BLE001
                    var.error = f"{type(error).__name__}: {error}"
        torch.cuda.synchronize(self.device)
        return result


def _bits(torch, t):
    return t.view(torch.int32) if t.element_size() == 4 else t.view(torch.int16)


def _cuda_compiled(ft):
    f = getattr(ft, "cuda_compiled", None)
    try:
        return bool(f()) if callable(f) else None
    except Exception:  # noqa: BLE001
        return None


def _chosen(ft, x, k, largest, index_dtype):
    """The algorithm fasttopk's auto mode picks, however the package exposes it."""
    f = getattr(ft, "chosen_algorithm", None)
    if callable(f):
        try:
            return str(f(x, k, largest=largest, index_dtype=index_dtype))
        except TypeError:
            try:
                return str(f(x, k))
            except Exception:  # noqa: BLE001
                return "?"
        except Exception:  # noqa: BLE001
            return "?"
    return "?"


# ----------------------------------------------------------------------------
# CPU benchmark (no GPU)
# ----------------------------------------------------------------------------


class CpuBench:
    def __init__(self, args, fasttopk, np, torch=None):
        self.args = args
        self.ft = fasttopk
        self.np = np
        self.torch = torch
        self.largest = not args.smallest
        self.rng = np.random.default_rng(args.seed)
        self.threads = os.cpu_count() or 1
        self.reference = "torch CPU" if torch is not None else "numpy"

    def meta(self):
        return {
            "mode": "cpu",
            "cpu": platform.processor() or platform.machine(),
            "threads": self.threads,
            "reference": self.reference,
            "torch": getattr(self.torch, "__version__", None),
            "numpy": self.np.__version__,
            "fasttopk": getattr(self.ft, "__version__", "?"),
            "fasttopk_cuda_compiled": _cuda_compiled(self.ft),
            "cpu_max_rows": self.args.cpu_max_rows,
            "index_dtype": self.args.index_dtype,
            "largest": self.largest,
            "python": platform.python_version(),
            "host": platform.node(),
        }

    def describe(self):
        m = self.meta()
        return [
            f"CPU: {m['cpu']}, {m['threads']} hardware threads; fasttopk {m['fasttopk']} host "
            f"path vs {self.reference} topk",
            f"rows capped at {self.args.cpu_max_rows} (--cpu-max-rows); time = median wall "
            f"clock of {self.args.eager_loops} loops of calls",
        ]

    def cap(self, case):
        if case.rows > self.args.cpu_max_rows:
            return Case(self.args.cpu_max_rows, case.cols, case.k, case.dtype)
        return case

    def make_input(self, rows, cols, dtype, dist):
        np = self.np
        rng = self.rng
        if dist == "randn":
            x = rng.standard_normal((rows, cols), dtype=np.float32)
        elif dist == "uniform":
            x = rng.random((rows, cols), dtype=np.float32)
        elif dist == "equal":
            x = np.ones((rows, cols), dtype=np.float32)
        elif dist == "lowent":
            x = (rng.integers(0, 16, (rows, cols)).astype(np.float32) - 7.5) * 0.25
        elif dist == "neginf":
            x = rng.standard_normal((rows, cols), dtype=np.float32)
            masked = cols // 3
            if masked:
                x[:, cols - masked :] = -np.inf
        elif dist == "sorted":
            x = np.sort(rng.standard_normal((rows, cols), dtype=np.float32), axis=-1)
        else:  # pragma: no cover
            raise ValueError(dist)
        if self.torch is not None:
            t = self.torch.from_numpy(np.ascontiguousarray(x))
            t = t.to(
                {
                    "fp32": self.torch.float32,
                    "fp16": self.torch.float16,
                    "bf16": self.torch.bfloat16,
                }[dtype]
            )
            if dist == "sorted":
                t, _ = self.torch.sort(t, dim=-1)
            return t.contiguous()
        if dtype == "bf16":
            return None
        x = x.astype(np.float16 if dtype == "fp16" else np.float32)
        if dist == "sorted":
            x = np.sort(x, axis=-1)
        return np.ascontiguousarray(x)

    def ref_fn(self):
        np, torch, largest = self.np, self.torch, self.largest
        if torch is not None:
            return lambda x, k: torch.topk(x, k, dim=-1, largest=largest, sorted=True)

        def numpy_topk(x, k):
            key = -x if largest else x
            part = np.argpartition(key, k - 1, axis=-1)[:, :k]
            pk = np.take_along_axis(key, part, -1)
            order = np.argsort(pk, axis=-1, kind="stable")
            idx = np.take_along_axis(part, order, -1)
            return np.take_along_axis(x, idx, -1), idx

        return numpy_topk

    def ft_fn(self):
        ft, largest = self.ft, self.largest
        index_dtype = self.args.index_dtype
        if self.torch is not None:
            index_dtype = getattr(self.torch, index_dtype)
        return lambda x, k: ft.topk(
            x, k, dim=-1, largest=largest, sorted=True, index_dtype=index_dtype
        )

    def _to_numpy(self, t):
        if self.torch is not None and isinstance(t, self.torch.Tensor):
            if t.dtype == self.torch.bfloat16:
                return t.float().numpy()
            return t.numpy()
        return self.np.asarray(t)

    def check(self, x, k, fn, ref):
        """Values equal the reference's; indices equal the reference's where the
        value is unique in its row; indices equal a stable sort (the tie rule)."""
        np = self.np
        try:
            values, indices = fn(x, k)
        except Exception as error:  # noqa: BLE001
            return f"FAIL: raised {type(error).__name__}: {error}"
        rv, ri = ref(x, k)
        values, indices = self._to_numpy(values), self._to_numpy(indices).astype(np.int64)
        rv, ri = self._to_numpy(rv), self._to_numpy(ri).astype(np.int64)
        xn = self._to_numpy(x).astype(np.float64)
        if values.shape != rv.shape:
            return f"FAIL: shape {values.shape}, want {rv.shape}"
        if not np.array_equal(values.astype(np.float64), rv.astype(np.float64), equal_nan=True):
            return "FAIL: values differ from the reference"
        srt = np.sort(xn, axis=-1)
        unique = np.zeros(values.shape, dtype=bool)
        for r in range(xn.shape[0]):
            vr = values[r].astype(np.float64)
            unique[r] = (
                np.searchsorted(srt[r], vr, "right") - np.searchsorted(srt[r], vr, "left")
            ) == 1
        if np.any(unique & (indices != ri)):
            return "FAIL: indices of unique values differ from the reference"
        key = -xn if self.largest else xn
        order = np.argsort(key, axis=-1, kind="stable")[:, :k]
        if not np.array_equal(order, indices):
            return "FAIL: indices break the tie rule (lowest index first)"
        return "ok"

    def _time(self, fn):
        fn()
        t0 = time.perf_counter()
        fn()
        once = max(time.perf_counter() - t0, 1e-7)
        n = max(1, min(1000, int(0.02 / once)))
        times = []
        for _ in range(self.args.eager_loops):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times.append((time.perf_counter() - t0) * 1e6 / n)
        return _median(times)

    def run_case(self, suite, case, dist, progress, label):
        result = Result(suite=suite, case=case, dist=dist)
        result.chosen = "host"
        x = self.make_input(case.rows, case.cols, case.dtype, dist)
        ref, ft = self.ref_fn(), self.ft_fn()
        result.variants[self.reference] = ref_var = Variant(name=self.reference)
        result.variants["fasttopk"] = ft_var = Variant(name="fasttopk")
        if x is None:
            result.notes.append("bf16 needs torch on the CPU path")
            ref_var.check = ft_var.check = "n/a"
            return result
        k = case.k
        if self.args.check:
            progress.step(f"{label}: checking")
            fresh = self.make_input(case.rows, case.cols, case.dtype, dist)
            ft_var.check = self.check(fresh, k, ft, ref)
        progress.step(f"{label}: {self.reference}")
        ref_var.warm_us = self._time(lambda: ref(x, k))
        progress.step(f"{label}: fasttopk")
        try:
            ft_var.warm_us = self._time(lambda: ft(x, k))
        except Exception as error:  # noqa: BLE001
            ft_var.error = f"{type(error).__name__}: {error}"
            ft_var.check = f"FAIL: {ft_var.error}"
        return result


# ----------------------------------------------------------------------------
# Tables and files
# ----------------------------------------------------------------------------


def gpu_table(results, bench, show_seed):
    algos = bench.algorithms if bench.args.all_algos else []
    copy = bench.copy_gbps
    headers = ["rows", "cols", "k", "dtype"]
    if any(r.dist != "randn" for r in results):
        headers.append("dist")
    if show_seed:
        headers += ["seed torch", "seed best"]
    headers += ["torch us", "fasttopk us", "speedup"]
    headers += ["torch cold", "ft cold", "speedup cold", "GB/s", "%copy", "%copy warm"]
    if not bench.args.no_eager:
        headers += ["eager torch", "eager ft"]
    headers += ["algo"]
    headers += [f"{a} us" for a in algos]
    headers += ["fastest"]
    if bench.args.check:
        headers += ["check"]
    rows = []
    for r in results:
        c = r.case
        row = [c.rows, c.cols, c.k, c.dtype]
        if "dist" in headers:
            row.append(r.dist)
        if show_seed:
            ref = SEED_REFERENCE.get((c.rows, c.cols, c.k, c.dtype)) or SEED_REFERENCE.get(
                (c.rows, c.cols, c.k)
            )
            row += [_fmt_us(ref[0] * 1000) if ref else "-", ref[1] if ref else "-"]
        t, f = r.time_of("torch"), r.time_of("fasttopk")
        tc, fc = r.time_of("torch", True), r.time_of("fasttopk", True)
        gbps = c.input_bytes / (fc * 1e-6) / 1e9 if fc else None
        warm_gbps = c.input_bytes / (f * 1e-6) / 1e9 if f else None
        row += [_fmt_us(t), _fmt_us(f), _fmt_x(_ratio(t, f))]
        row += [_fmt_us(tc), _fmt_us(fc), _fmt_x(_ratio(tc, fc))]
        row += [_fmt_num(gbps)]
        row += [f"{100 * g / copy:.0f}%" if g and copy else "-" for g in (gbps, warm_gbps)]
        if not bench.args.no_eager:
            row += [
                _fmt_us(getattr(r.variants.get(n), "eager_us", None)) for n in ("torch", "fasttopk")
            ]
        row.append(r.chosen)
        for a in algos:
            v = r.variants.get(a)
            row.append("n/a" if v is None or v.check == "n/a" else _fmt_us(v.warm_us))
        row.append(r.fastest())
        if bench.args.check:
            fails = r.failed()
            row.append(
                "ok"
                if not fails and any(v.check == "ok" for v in r.variants.values())
                else ("FAIL " + ",".join(fails) if fails else "-")
            )
        rows.append(row)
    align = ["r"] * len(headers)
    for i, h in enumerate(headers):
        if h in ("dtype", "dist", "algo", "fastest", "check", "seed best"):
            align[i] = "l"
    return format_table(headers, rows, align)


def clause_summary(results, copy_gbps):
    """The general clauses of issues 3 and 4, checked over one suite's results.

    Issue 4 (inputs of >= 8 MB, 10^6 bytes): time <= 1.4 x input bytes / copy
    bandwidth + 3 us at k <= 256, warm and cold; and >= 50% of the copy
    bandwidth cold at k <= 2048. Issue 3 (rows <= 64, cols >= 16384, input
    < 8 MB): <= 6 us at k <= 256 and <= 10 us at k <= 2048, and >= 6x
    torch.topk in the same run (warm times). Returns the summary lines (none
    where no shape of the suite falls under a clause); each lists the shapes
    that miss."""
    big = [r for r in results if r.case.input_bytes >= 8e6 and r.case.k <= 2048]
    small = [
        r
        for r in results
        if r.case.rows <= 64 and r.case.cols >= 16384 and r.case.input_bytes < 8e6
        and r.case.k <= 2048
    ]
    lines = []

    def line(text, total, misses):
        met = total - len(misses)
        out = f"{text}: {met} of {total} met"
        if misses:
            out += "; missed by " + ", ".join(misses)
        lines.append(out)

    if big and copy_gbps:
        bounded = [r for r in big if r.case.k <= 256]
        if bounded:
            misses = []
            for r in bounded:
                bound = 1.4 * r.case.input_bytes / (copy_gbps * 1e3) + 3.0
                times = [r.time_of("fasttopk"), r.time_of("fasttopk", True)]
                if any(t is None or not t <= bound for t in times):
                    shown = "/".join(_fmt_us(t) for t in times)
                    misses.append(f"{r.case.label()} ({shown} us warm/cold vs {bound:.1f})")
            line(
                "issue 4, inputs >= 8 MB at k <= 256: time <= 1.4 x bytes / copy bw + 3 us, "
                "warm and cold",
                len(bounded),
                misses,
            )
        misses = []
        for r in big:
            cold = r.time_of("fasttopk", True)
            share = (r.case.input_bytes / (cold * 1e-6) / 1e9 / copy_gbps) if cold else 0.0
            if not share >= 0.5:
                misses.append(f"{r.case.label()} ({100 * share:.0f}%)")
        line("issue 4, inputs >= 8 MB: >= 50% of the copy bandwidth cold", len(big), misses)
    if small:
        misses = []
        for r in small:
            limit = 6.0 if r.case.k <= 256 else 10.0
            t = r.time_of("fasttopk")
            if t is None or not t <= limit:
                misses.append(f"{r.case.label()} ({_fmt_us(t)} vs {limit:.0f} us)")
        line(
            "issue 3, rows <= 64, cols >= 16384, input < 8 MB: <= 6 us (k <= 256), "
            "<= 10 us (k <= 2048)",
            len(small),
            misses,
        )
        misses = []
        for r in small:
            speedup = _ratio(r.time_of("torch"), r.time_of("fasttopk"))
            if speedup is None or not speedup >= 6.0:
                misses.append(f"{r.case.label()} ({_fmt_x(speedup)})")
        line("issue 3, same shapes: >= 6x torch.topk", len(small), misses)
    return lines


def cpu_table(results, bench):
    ref = bench.reference
    headers = ["rows", "cols", "k", "dtype"]
    if any(r.dist != "randn" for r in results):
        headers.append("dist")
    headers += [f"{ref} us", "fasttopk us", "speedup", "fastest"]
    if bench.args.check:
        headers.append("check")
    rows = []
    for r in results:
        c = r.case
        row = [c.rows, c.cols, c.k, c.dtype]
        if "dist" in headers:
            row.append(r.dist)
        t, f = r.time_of(ref), r.time_of("fasttopk")
        row += [_fmt_us(t), _fmt_us(f), _fmt_x(_ratio(t, f)), r.fastest()]
        if bench.args.check:
            row.append(r.variants["fasttopk"].check)
        rows.append(row)
    align = ["r"] * len(headers)
    for i, h in enumerate(headers):
        if h in ("dtype", "dist", "fastest", "check"):
            align[i] = "l"
    return format_table(headers, rows, align)


def result_record(r, bench):
    c = r.case
    rec = {
        "suite": r.suite,
        "rows": c.rows,
        "cols": c.cols,
        "k": c.k,
        "dtype": c.dtype,
        "dist": r.dist,
        "input_bytes": c.input_bytes,
        "chosen_algorithm": r.chosen,
        "fastest": r.fastest(),
        "fastest_cold": r.fastest(cold=True),
        "cold_calls": r.cold_calls,
        "cold_pool_bytes": r.cold_pool_bytes,
        "notes": r.notes,
        "variants": {},
    }
    copy = getattr(bench, "copy_gbps", None)
    for name, v in r.variants.items():
        gbps = c.input_bytes / (v.cold_us * 1e-6) / 1e9 if v.cold_us else None
        warm_gbps = c.input_bytes / (v.warm_us * 1e-6) / 1e9 if v.warm_us else None
        rec["variants"][name] = {
            "warm_us": v.warm_us,
            "cold_us": v.cold_us,
            "eager_us": v.eager_us,
            "warm_spread": v.warm_spread,
            "cold_spread": v.cold_spread,
            "cold_GBps": gbps,
            "cold_pct_copy": 100 * gbps / copy if gbps and copy else None,
            "warm_GBps": warm_gbps,
            "warm_pct_copy": 100 * warm_gbps / copy if warm_gbps and copy else None,
            "check": v.check,
            "error": v.error,
        }
    t, f = r.time_of(next(iter(r.variants))), r.time_of("fasttopk")
    rec["speedup"] = _ratio(t, f)
    rec["speedup_cold"] = _ratio(
        r.time_of(next(iter(r.variants)), True), r.time_of("fasttopk", True)
    )
    rec["bytes_floor_us"] = c.input_bytes / (copy * 1e9) * 1e6 if copy else None
    return rec


def write_csv(path, records):
    names = []
    for rec in records:
        for n in rec["variants"]:
            if n not in names:
                names.append(n)
    base = [
        "suite",
        "rows",
        "cols",
        "k",
        "dtype",
        "dist",
        "input_bytes",
        "chosen_algorithm",
        "fastest",
        "fastest_cold",
        "speedup",
        "speedup_cold",
        "bytes_floor_us",
        "cold_calls",
    ]
    fields = [
        "warm_us",
        "cold_us",
        "eager_us",
        "cold_GBps",
        "cold_pct_copy",
        "warm_GBps",
        "warm_pct_copy",
        "check",
    ]
    header = base + [f"{n}_{f}" for n in names for f in fields]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for rec in records:
            row = [rec.get(b) for b in base]
            for n in names:
                v = rec["variants"].get(n, {})
                row += [v.get(f) for f in fields]
            w.writerow(["" if x is None else x for x in row])


def write_plot(path, records, reference="torch.topk", title="fasttopk speedup per call"):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print(
            f"fasttopk-bench: matplotlib is not installed; no plot written to {path} "
            "(pip install matplotlib)",
            file=sys.stderr,
        )
        return False
    recs = [r for r in records if r.get("speedup")]
    if not recs:
        print("fasttopk-bench: nothing to plot", file=sys.stderr)
        return False
    labels = [
        f"{r['suite']}: {r['rows']}x{r['cols']} k{r['k']} {r['dtype']}"
        + ("" if r["dist"] == "randn" else f" {r['dist']}")
        for r in recs
    ]
    warm = [r["speedup"] for r in recs]
    cold = [r.get("speedup_cold") for r in recs]
    has_cold = any(c and c != w for c, w in zip(cold, warm))
    height = max(3.0, 0.28 * len(recs) + 1.5)
    fig, ax = plt.subplots(figsize=(10, height))
    ys = list(range(len(recs)))
    if has_cold:
        ax.barh([y - 0.2 for y in ys], warm, height=0.4, label="cache-warm")
        ax.barh([y + 0.2 for y in ys], [c or 0 for c in cold], height=0.4, label="cache-cold")
        ax.legend(loc="lower right")
    else:
        ax.barh(ys, warm, height=0.6)
    values = [v for v in warm + cold if v]
    ax.set_xscale("log", base=2)
    lo, hi = min(values + [1.0]) / 1.3, max(values + [1.0]) * 1.3
    ax.set_xlim(lo, hi)
    ticks = [2.0**e for e in range(-8, 9)] + [0.75, 1.25, 1.5, 3, 6]
    ticks = sorted(t for t in ticks if lo <= t <= hi)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}x" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_ylim(len(recs) - 0.5, -0.5)
    ax.set_xlabel(f"speedup of fasttopk over {reference} (log scale; > 1 is faster)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# ----------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="fasttopk-bench",
        description="Benchmark fasttopk against torch.topk (GPU) or the CPU references.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="suites:\n"
        + "\n".join(f"  {n:10s} {SUITES[n][0]}" for n in SUITE_ORDER)
        + "\n  all        every suite above\n  custom     --rows/--cols/--k/--dtype\n\n"
        "distributions (--dist):\n" + "\n".join(f"  {n:10s} {d}" for n, d in DISTRIBUTIONS.items()),
    )
    p.add_argument("--suite", help="comma-separated suites (default: seed; custom with --rows)")
    p.add_argument("--rows", help="custom shape: rows (comma list)")
    p.add_argument("--cols", help="custom shape: columns (comma list)")
    p.add_argument("--k", help="custom shape: k (comma list)")
    p.add_argument("--dtype", help="custom shape: fp32, fp16, bf16 (comma list; default fp32)")
    p.add_argument(
        "--dist", default="randn", help="input distributions, comma list or 'all' (default randn)"
    )
    p.add_argument(
        "--check", action="store_true", help="verify every result against torch.topk before timing"
    )
    p.add_argument(
        "--all-algos", action="store_true", help="also time each forced fasttopk algorithm"
    )
    p.add_argument("--no-cold", action="store_true", help="skip the cache-cold timings")
    p.add_argument("--no-eager", action="store_true", help="skip the eager timings")
    p.add_argument("--smallest", action="store_true", help="largest=False")
    p.add_argument("--index-dtype", choices=("int64", "int32"), default="int64")
    p.add_argument("--calls", type=int, default=20, help="calls per CUDA graph (>= 20)")
    p.add_argument("--replays", type=int, default=15, help="timed graph replays (>= 15)")
    p.add_argument("--eager-calls", type=int, default=20, help="calls per eager loop")
    p.add_argument("--eager-loops", type=int, default=7, help="eager loops (median taken)")
    p.add_argument(
        "--max-cold-calls",
        type=int,
        default=4096,
        help="cap on the distinct buffers of a cold graph",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--cpu", action="store_true", help="time the CPU path even with a GPU")
    p.add_argument("--cpu-max-rows", type=int, default=64, help="CPU path: cap on rows")
    p.add_argument("--csv", metavar="PATH", help="write every number as CSV")
    p.add_argument("--json", metavar="PATH", help="write every number and the setup as JSON")
    p.add_argument("--plot", metavar="PNG", help="bar chart of the speedups (needs matplotlib)")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    p.add_argument("--list", action="store_true", help="list the suites' shapes and exit")
    args = p.parse_args(argv)
    if args.calls < 20:
        print(
            f"fasttopk-bench: --calls {args.calls} raised to 20 (protocol minimum)", file=sys.stderr
        )
        args.calls = 20
    if args.replays < 15:
        print(
            f"fasttopk-bench: --replays {args.replays} raised to 15 (protocol minimum)",
            file=sys.stderr,
        )
        args.replays = 15
    args.eager_calls = max(1, args.eager_calls)
    args.eager_loops = max(1, args.eager_loops)
    args.max_cold_calls = max(args.calls, args.max_cold_calls)
    args.cpu_max_rows = max(1, args.cpu_max_rows)
    return args


def _import_fasttopk():
    try:
        import fasttopk
    except ImportError as error:
        raise SystemExit(
            f"fasttopk-bench: cannot import fasttopk ({error}). Build and install it first: "
            "scripts/bench does it, or `pip install --no-build-isolation .` in the repository."
        ) from None
    return fasttopk


def _gpu_reason(torch, fasttopk):
    """None if the GPU can be benchmarked, else why not."""
    if torch is None:
        return "torch is not installed (the GPU benchmark runs on torch CUDA tensors)"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA GPU"
    if _cuda_compiled(fasttopk) is False:
        return "this fasttopk build has no CUDA path (FASTTOPK_ENABLE_CUDA=OFF)"
    return None


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    suites = build_suites(args)
    dists = _dist_list(args.dist)
    if args.list:
        for name, cases in suites:
            print(f"{name} ({len(cases)} shapes):")
            for c in cases:
                print(f"  {c.label()}  ({c.input_bytes / 1e6:.2f} MB)")
        return 0

    fasttopk = _import_fasttopk()
    try:
        import torch
    except ImportError:
        torch = None

    reason = _gpu_reason(torch, fasttopk)
    if args.cpu and reason is None:
        reason = "--cpu was given"
    if reason is None:
        bench = GpuBench(args, torch, fasttopk)
        progress = Progress(not args.quiet)
        progress.update("measuring copy bandwidth")
        bench.measure_copy_bandwidth()
        progress.done()
        header = ["fasttopk-bench: GPU"] + bench.describe()
    else:
        import numpy as np

        bench = CpuBench(args, fasttopk, np, torch)
        header = [
            "fasttopk-bench: NO GPU BENCHMARK: " + reason + ".",
            "Timing the CPU path instead (not comparable with GPU numbers).",
        ] + bench.describe()
    print("\n".join(header))
    sys.stdout.flush()

    mode_gpu = isinstance(bench, GpuBench)
    clause_lines = {}  # suite -> clause_summary lines (GPU runs)
    all_records = []
    failures = []
    progress = Progress(not args.quiet)
    total = sum(len(cases) for _, cases in suites) * len(dists)
    done = 0
    for suite, cases in suites:
        results = []
        for case in cases:
            run_case = case if mode_gpu else bench.cap(case)
            for dist in dists:
                done += 1
                label = f"[{done}/{total}] {suite}: {run_case.label()}" + (
                    "" if dist == "randn" else f" {dist}"
                )
                progress.update(label)
                try:
                    r = bench.run_case(suite, run_case, dist, progress, label)
                except Exception as error:  # noqa: BLE001 - one bad shape must not end the run
                    if mode_gpu and "out of memory" in str(error).lower():
                        torch.cuda.empty_cache()
                    r = Result(suite=suite, case=run_case, dist=dist)
                    r.notes.append(f"error: {type(error).__name__}: {error}")
                    r.variants["fasttopk"] = Variant("fasttopk", check=f"FAIL: {error}")
                    print(
                        f"fasttopk-bench: {label}: {type(error).__name__}: {error}", file=sys.stderr
                    )
                    traceback.print_exc(file=sys.stderr)
                results.append(r)
                for name in r.failed():
                    failures.append(f"{label} {name}: {r.variants[name].check}")
        progress.done()
        title = f"## {suite}: {SUITES[suite][0]}" if suite in SUITES else f"## {suite}"
        if suite == "all":
            title = "## all: every suite"
        elif suite == "custom":
            title = "## custom shapes"
        print()
        print(title + ("" if mode_gpu else " (CPU path)"))
        print()
        if mode_gpu:
            print(gpu_table(results, bench, show_seed=suite == "seed"))
            clauses = clause_summary(results, bench.copy_gbps)
            if clauses:
                print()
                for text in clauses:
                    print(text)
            clause_lines[suite] = clauses
        else:
            print(cpu_table(results, bench))
        for r in results:
            for note in r.notes:
                print(f"note: {r.case.label()} {r.dist}: {note}")
        print()
        print(f"reproduce: {reproduce_command(args, suite)}")
        sys.stdout.flush()
        all_records += [result_record(r, bench) for r in results]

    if mode_gpu:
        print()
        print(
            "us = microseconds per call (CUDA graph replay, median); cold = inputs rotated "
            "over > 2x L2; GB/s = input bytes / fasttopk cold time; %copy = that, as a share "
            "of the measured device-to-device copy bandwidth; %copy warm = the same for the "
            "cache-warm time (inputs that fit the L2 can pass 100%); eager = Python loop per "
            "call; fastest = lowest cache-warm time among correct variants."
        )
    if args.check:
        if failures:
            print(f"\nCHECK FAILED ({len(failures)}):")
            for f in failures:
                print("  " + f)
        else:
            ref_name = "torch.topk" if mode_gpu else bench.reference + " topk"
            print(f"\ncheck: every checked result matched {ref_name} and the tie rule")

    doc = {
        "meta": bench.meta(),
        "command": "fasttopk-bench "
        + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
        "results": all_records,
        "check_failures": failures,
        "clauses": clause_lines,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=1)
        print(f"wrote {args.json}")
    if args.csv:
        write_csv(args.csv, all_records)
        print(f"wrote {args.csv}")
    if args.plot:
        if mode_gpu:
            ref_name = "torch.topk"
            plot_title = (
                f"fasttopk vs torch.topk on {bench.meta()['device']} (CUDA graph replay, per call)"
            )
        else:
            ref_name = f"{bench.reference} topk"
            plot_title = "fasttopk vs the CPU reference (CPU path, no GPU)"
        if write_plot(args.plot, all_records, ref_name, plot_title):
            print(f"wrote {args.plot}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
