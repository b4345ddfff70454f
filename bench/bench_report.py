"""The pure half of the GPU benchmark (bench/cuda_h200.py): the goals issue 10 sets, how a measured
row is judged against them, and the Markdown the report prints. No torch import, so
test/bench-cuda.test.ts runs it without a GPU.

Times are medians in milliseconds of the same shape (bf16, d 128, Hq 32, Hk 8, batch 1, Sq = Sk).
"""
import math

# Kernel labels, as the benchmark's result dictionaries use them.
FUSED = "fused DCA (dcagen)"
FUSED_KEY_TILE_64 = "fused DCA, 64-key tiles (dcagen, spills)"
CAUSAL = "causal (dcagen)"
THREE_PASS = "three-pass DCA (dcagen)"
SDPA_FLASH = "SDPA flash causal"
SDPA_CUDNN = "SDPA cuDNN causal"
FLEX_DCA = "FlexAttention DCA (3 calls + LSE merge, with RoPE)"
FLEX_DCA_CALLS = "FlexAttention DCA (the 3 attention calls only)"

# (name, numerator, denominator, comparison, bound, only at this size or None): ratio = numerator time / denominator time.
GOALS = (
    ("DCA at least as fast as SDPA flash causal", SDPA_FLASH, FUSED, ">=", 1.0, None),
    ("DCA within 3% of our causal", FUSED, CAUSAL, "<=", 1.03, None),
    ("fused at least 1.5x faster than three-pass at 128k", THREE_PASS, FUSED, ">=", 1.5, 131072),
)


def judge(times_by_size):
    """Rows (goal, size, ratio or None, verdict) for every goal at every size it applies to.

    times_by_size: {seq_len: {label: median ms}}. A goal whose kernels did not run (unavailable
    backend) is reported as not measured rather than passed or failed.
    """
    rows = []
    for name, num, den, op, bound, only in GOALS:
        for size in sorted(times_by_size):
            if only is not None and size != only:
                continue
            times = times_by_size[size]
            if num not in times or den not in times or not times[den] > 0:
                rows.append((name, size, None, "not measured"))
                continue
            ratio = times[num] / times[den]
            ok = ratio >= bound if op == ">=" else ratio <= bound
            rows.append((name, size, ratio, f"{'met' if ok else 'MISSED'} ({op} {bound})"))
    return rows


def goals_markdown(times_by_size):
    lines = ["| goal | Sq = Sk | ratio | verdict |", "|---|---|---|---|"]
    for name, size, ratio, verdict in judge(times_by_size):
        lines.append(f"| {name} | {size} | {'-' if ratio is None else f'{ratio:.3f}'} | {verdict} |")
    return "\n".join(lines)


def causal_tflops(seq_len, ms, heads=32, head_dim=128):
    """TFLOP/s by FlashAttention's convention: 4 * Sq * Sk * D * Hq, halved for causal."""
    return 4 * seq_len * seq_len * head_dim * heads / 2 / (ms * 1e-3) / 1e12


def repeats_for(first_ms, budget_ms=3000.0, most=20, least=3):
    """Timed repeats for a kernel whose first run took first_ms: about budget_ms of timing, within [least, most]."""
    if not first_ms > 0 or math.isinf(first_ms):
        return least
    return max(least, min(most, int(budget_ms // first_ms)))
