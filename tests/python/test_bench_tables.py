"""fasttopk-bench's GPU table and records, built from made-up measurements:
the bandwidth columns (cold and warm % of the copy bandwidth) and the
speedups, without a GPU."""

from types import SimpleNamespace

from fasttopk import bench


def _result():
    case = bench.Case(rows=4096, cols=4096, k=64, dtype="bf16")  # 32 MiB of input
    r = bench.Result(suite="bandwidth", case=case, dist="randn", chosen="row_per_warp")
    r.variants["torch"] = bench.Variant("torch", warm_us=200.0, cold_us=210.0, check="ok")
    r.variants["fasttopk"] = bench.Variant("fasttopk", warm_us=16.0, cold_us=20.0, check="ok")
    return r


def _bench():
    args = SimpleNamespace(all_algos=False, no_eager=True, check=True)
    return SimpleNamespace(args=args, algorithms=[], copy_gbps=3000.0)


def test_gpu_table_prints_cold_and_warm_share_of_copy_bandwidth():
    text = bench.gpu_table([_result()], _bench(), show_seed=False)
    header, _, row = text.splitlines()[:3]
    cells = dict(zip([h.strip() for h in header.strip("|").split("|")],
                     [c.strip() for c in row.strip("|").split("|")]))
    nbytes = 4096 * 4096 * 2
    assert cells["GB/s"] == f"{nbytes / 20e-6 / 1e9:,.0f}"
    assert cells["%copy"] == f"{100 * nbytes / 20e-6 / 1e9 / 3000:.0f}%"  # cold: 56%
    assert cells["%copy warm"] == f"{100 * nbytes / 16e-6 / 1e9 / 3000:.0f}%"  # warm: 70%
    assert cells["speedup"] == "12.50x" and cells["speedup cold"] == "10.50x"


def test_result_record_carries_both_bandwidth_shares():
    rec = bench.result_record(_result(), _bench())
    ft = rec["variants"]["fasttopk"]
    nbytes = 4096 * 4096 * 2
    assert abs(ft["cold_GBps"] - nbytes / 20e-6 / 1e9) < 1e-6
    assert abs(ft["warm_pct_copy"] - 100 * nbytes / 16e-6 / 1e9 / 3000) < 1e-9


def _timed(rows, cols, k, dtype, ft_warm, ft_cold, torch_warm=100.0):
    r = bench.Result(suite="s", case=bench.Case(rows=rows, cols=cols, k=k, dtype=dtype),
                     dist="randn", chosen="x")
    r.variants["torch"] = bench.Variant("torch", warm_us=torch_warm, cold_us=torch_warm,
                                        check="ok")
    r.variants["fasttopk"] = bench.Variant("fasttopk", warm_us=ft_warm, cold_us=ft_cold,
                                           check="ok")
    return r


def test_clause_summary_counts_the_issue_clauses_and_names_the_misses():
    results = [
        # 67 MB, bound 1.4 * 67.1 MB / 3000 GB/s + 3 = 34.3 us: met; 77% cold.
        _timed(4096, 4096, 64, "fp32", 29.0, 29.2),
        # 16.8 MB, bound 10.83 us: met warm, missed cold (12.34); 45% cold.
        _timed(4096, 1024, 32, "fp32", 10.26, 12.34),
        # k = 512: outside the bound's k <= 256, inside the 50% part: 63%.
        _timed(512, 131072, 512, "fp32", 141.5, 141.5),
        # Latency shapes: 6.73 us at 5.24x misses both parts; 5.24 us at 7.6x meets them.
        _timed(1, 50304, 50, "fp16", 6.73, 6.85, torch_warm=35.29),
        _timed(4, 50304, 5, "fp16", 5.24, 5.35, torch_warm=39.64),
        # k = 2048 on one row: <= 10 us asked.
        _timed(1, 131072, 2048, "fp32", 9.5, 9.6, torch_warm=70.0),
        # Under no clause: 4 MB with more than 64 rows.
        _timed(1000, 1000, 8, "fp32", 50.0, 50.0),
    ]
    lines = bench.clause_summary(results, 3000.0)
    assert len(lines) == 4
    bound, share, latency, speedup = lines
    assert bound.startswith("issue 4, inputs >= 8 MB at k <= 256")
    assert (": 1 of 2 met; missed by 4096x1024 k32 fp32 (10.26/12.34 us warm/cold vs 10.8)"
            in bound)
    assert share.startswith(
        "issue 4, inputs >= 8 MB: >= 50% of the copy bandwidth cold: 2 of 3 met")
    assert share.endswith("missed by 4096x1024 k32 fp32 (45%)")
    assert ": 2 of 3 met; missed by 1x50304 k50 fp16 (6.73 vs 6 us)" in latency
    assert speedup.endswith(": 2 of 3 met; missed by 1x50304 k50 fp16 (5.24x)")


def test_clause_summary_is_empty_without_shapes_under_a_clause():
    assert bench.clause_summary([_timed(1000, 1000, 8, "fp32", 50.0, 50.0)], 3000.0) == []
