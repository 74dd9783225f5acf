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
