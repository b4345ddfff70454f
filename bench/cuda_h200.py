"""The GPU check for the CUDA backend (run by bench/cuda-h200.sh on a machine with an NVIDIA GPU,
Python, PyTorch and nvcc; no Node): the emitted kernels prepared by bench/prepare-cuda.mjs are
verified against float64-reference outputs, then timed in this one process, on the same shapes,
against the peers a user would reach for.

Stages (each a subcommand, `all` runs verify then bench):
  build     builds every kernel module's PyTorch extension in parallel processes (load_inline
            compiles on first use; later imports find the build in TORCH_EXTENSIONS_DIR)
  sanitize  one small prepared case and a small bf16 d 128 DCA call crossing a chunk boundary,
            for compute-sanitizer memcheck / racecheck
  verify    every prepared case against its float64 reference; our fused DCA and the FlexAttention
            DCA baseline against a dense fp32 PyTorch DCA on a head slice at 4k
  bench     bf16, d 128, Hq 32, Hk 8, batch 1, Sq = Sk in --sizes: fused DCA, our causal, our
            three-pass DCA, SDPA flash and cuDNN causal, and DCA as three FlexAttention calls with
            an LSE merge; the issue-10 goals are judged next to the times (bench_report.py)

The FlexAttention baseline is DCA as PyTorch runs it today (ChunkLlama's structure): keys rotated
once at j mod L, the queries rotated once per region at that region's position, one flex_attention
call per region with that region's block mask (return_lse=True), and the exact log-sum-exp merge.
The RoPE cos/sin tables (float64 angles) and the block masks are built once per shape outside the
timing, as a model builds them once for all layers; the rotations, the three calls and the merge
are timed. flex_attention runs under torch.compile (its eager path is a reference implementation).
"""
import argparse
import importlib
import json
import math
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out", "cuda")
KERNELS = os.path.join(OUT, "kernels")
sys.path.insert(0, HERE)
sys.path.insert(0, KERNELS)

from bench_report import (CAUSAL, FLEX_DCA, FLEX_DCA_CALLS, FUSED, FUSED_KEY_TILE_64, SDPA_CUDNN, SDPA_FLASH, THREE_PASS,  # noqa: E402
                          causal_tflops, goals_markdown, repeats_for)
from dca_regions import REGIONS, DcaConfig  # noqa: E402

TOL = {"f32": 2e-4, "f16": 2e-2, "bf16": 6e-2}
TORCH_DTYPE = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
# The benchmark configuration: Llama-2 4k ChunkLlama defaults, the kernels prepare-cuda.mjs emits.
DCA = DcaConfig(chunk_size=3072, local_window=512)
ROPE_THETA = 10000.0
HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128


def manifest():
    with open(os.path.join(OUT, "manifest.json")) as f:
        return json.load(f)


def attention_fn(module_name):
    """The module's contiguous-attention entry point (dca_attention, causal_attention, ...)."""
    module = importlib.import_module(module_name)
    names = [n for n in dir(module) if n.endswith("_attention") and n != "paged_attention"]
    if len(names) != 1:
        raise RuntimeError(f"{module_name}: expected one *_attention entry point besides paged_attention, found {names}")
    return module, getattr(module, names[0])


def _build_one(module_name):
    sys.path.insert(0, HERE)
    sys.path.insert(0, KERNELS)
    start = time.time()
    importlib.import_module(module_name)._build()
    return module_name, time.time() - start


def build(workers):
    """Builds every prepared module's extension, several at once (each is one nvcc + one host compile)."""
    m = manifest()
    names = sorted({c["module"] for c in m["cases"]} | {b["module"] for b in m["bench"].values()})
    with ProcessPoolExecutor(max_workers=min(workers, len(names)), mp_context=multiprocessing.get_context("spawn")) as pool:
        for name, seconds in pool.map(_build_one, names):
            print(f"built {name} in {seconds:.0f} s", flush=True)


# ---- RoPE and the FlexAttention DCA baseline ----

def rope_tables(positions, device):
    """cos and sin (len(positions), HEAD_DIM / 2), float32 from float64 angles (rotate-half, θ = ROPE_THETA)."""
    pos = torch.tensor(positions, dtype=torch.float64)
    inv_freq = ROPE_THETA ** (-2.0 * torch.arange(HEAD_DIM // 2, dtype=torch.float64) / HEAD_DIM)
    angles = pos[:, None] * inv_freq[None, :]
    return angles.cos().float().to(device), angles.sin().float().to(device)


def rotate(x, cos, sin):
    """Rotate-half RoPE of x (..., S, HEAD_DIM) at the positions of cos/sin (S, HEAD_DIM / 2), in float32."""
    xf = x.float()
    a, b = xf[..., : HEAD_DIM // 2], xf[..., HEAD_DIM // 2:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1).to(x.dtype)


def _causal(b, h, q_idx, kv_idx):
    return q_idx >= kv_idx


class FlexDca:
    """DCA for (1, HEADS, S, HEAD_DIM) inputs as three flex_attention calls and an LSE merge.

    Block masks come from create_block_mask with each region's own mask (dca_regions.py), so
    PyTorch decides which 128-blocks each call visits. All three then carry one shared mask_mod
    (causal), so torch.compile builds one kernel per shape instead of one per region: exact because
    with L a multiple of the block size the only partially masked blocks of any region are the
    intra region's diagonal blocks, where the region's mask is the causal mask (checked below).
    """

    BLOCK = 128

    def __init__(self, seq_len, device):
        from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
        if DCA.chunk_length % self.BLOCK != 0:
            raise ValueError(f"the shared-mask FlexAttention baseline needs L = {DCA.chunk_length} to be a multiple of {self.BLOCK}")
        # One flex kernel per size and one block-mask builder per (region, size): more recompiles
        # than dynamo's default limit (8), past which it would fall back to eager silently.
        import torch._dynamo
        for limit in ("cache_size_limit", "recompile_limit"):
            if hasattr(torch._dynamo.config, limit):
                setattr(torch._dynamo.config, limit, max(64, getattr(torch._dynamo.config, limit)))
        self.flex = torch.compile(flex_attention, dynamic=False)
        self.masks = {}
        for region in REGIONS:
            def region_mask(b, h, q_idx, kv_idx, region=region):
                return DCA.visible(region, q_idx, kv_idx)
            try:
                made = create_block_mask(region_mask, None, None, seq_len, seq_len, device=device, BLOCK_SIZE=self.BLOCK, _compile=True)
            except TypeError:  # releases without the _compile switch
                made = create_block_mask(region_mask, None, None, seq_len, seq_len, device=device, BLOCK_SIZE=self.BLOCK)
            # Partially masked blocks: exactly the diagonal one per query block (intra), none elsewhere.
            partial = made.kv_num_blocks
            if not bool((partial == (1 if region == "intra" else 0)).all()):
                raise RuntimeError(f"region {region}: partially masked blocks off the diagonal, the shared causal mask_mod would be wrong")
            self.masks[region] = BlockMask.from_kv_blocks(made.kv_num_blocks, made.kv_indices, made.full_kv_num_blocks, made.full_kv_indices,
                                                          BLOCK_SIZE=self.BLOCK, mask_mod=_causal)
        self.key_tables = rope_tables([DCA.key_position(j) for j in range(seq_len)], device)
        self.query_tables = {r: rope_tables([DCA.query_position(r, i) for i in range(seq_len)], device) for r in REGIONS}

    def calls(self, qs, k, v):
        """The three attention calls on pre-rotated queries qs[region] and keys k: (out, lse) per region."""
        return [self.flex(qs[r], k, v, block_mask=self.masks[r], scale=1.0 / math.sqrt(HEAD_DIM), enable_gqa=True, return_lse=True) for r in REGIONS]

    def rotated(self, q, k):
        return {r: rotate(q, *self.query_tables[r]) for r in REGIONS}, rotate(k, *self.key_tables)

    def __call__(self, q, k, v):
        """q (1, HEADS, S, D), k and v (1, KV_HEADS, S, D) raw; returns (out (1, HEADS, S, D), lse (1, HEADS, S))."""
        qs, kr = self.rotated(q, k)
        return merge(self.calls(qs, kr, v))


def merge(parts):
    """Exact log-sum-exp merge of (out, lse) partials; a partial that saw no key has lse = -inf."""
    lse = torch.stack([l.float() for _, l in parts])
    top = lse.amax(0)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    weights = torch.exp(lse - top)
    total = weights.sum(0)
    out = sum(w[..., None] * o.float() for w, (o, _) in zip(weights, parts)) / total[..., None]
    return out.to(parts[0][0].dtype), top + torch.log(total)


def dense_dca(q, k, v):
    """DCA by materialised scores in fp32 (q (S, H, D), k and v (S, 1, D)): the small-slice check."""
    s = q.size(0)
    idx = torch.arange(s, device=q.device)
    qi, kj = idx[:, None], idx[None, :]
    kr = rotate(k.float().transpose(0, 1), *rope_tables([DCA.key_position(j) for j in range(s)], q.device))[0]
    scores = torch.full((q.size(1), s, s), -math.inf, device=q.device)
    for region in REGIONS:
        qr = rotate(q.float().transpose(0, 1), *rope_tables([DCA.query_position(region, i) for i in range(s)], q.device))
        scores = torch.where(DCA.visible(region, qi, kj)[None], qr @ kr.T / math.sqrt(HEAD_DIM), scores)
    p = torch.softmax(scores, dim=-1)
    return (p @ v.float()[:, 0]).transpose(0, 1), torch.logsumexp(scores, dim=-1)


# ---- Stages ----

def verify():
    m = manifest()
    failures = 0
    rows = []
    for case in m["cases"]:
        d = os.path.join(OUT, case["dir"])
        load = lambda n: torch.from_numpy(np.load(os.path.join(d, n + ".npy")))
        dtype = TORCH_DTYPE[case["dtype"]]
        q, k, v = (load(n).to("cuda", dtype) for n in ("q", "k", "v"))
        _, fn = attention_fn(case["module"])
        out, lse = fn(q, k, v, **case["params"], rope_theta=case["rope_theta"], scale=case["scale"],
                      original_max_position=case["original_max_position"])
        err = (out.float().cpu() - load("expected_out")).abs().max().item()
        lse_err = ((lse.cpu() - load("expected_lse")).abs() / load("expected_lse").abs().clamp(min=1)).max().item()
        ok = err <= TOL[case["dtype"]] and lse_err <= TOL[case["dtype"]]
        failures += 0 if ok else 1
        rows.append(f"| {case['label']} | {case['dtype']} | {err:.2e} | {lse_err:.2e} | {'ok' if ok else 'FAIL'} |")
    print("## Verification on the GPU\n")
    print("| case | dtype | max abs err out | max rel err lse | result |\n|---|---|---|---|---|")
    print("\n".join(rows))

    # The bench kernels and the FlexAttention baseline against dense fp32 DCA: 4 query heads of KV head 0, 4k.
    s = 4096
    torch.manual_seed(0)
    q = torch.randn(1, s, HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, s, KV_HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    group = HEADS // KV_HEADS
    ref_out, ref_lse = dense_dca(q[0, :, :group], k[0, :, :1], v[0, :, :1])
    _, fused = attention_fn(m["bench"]["fused"]["module"])
    ours, ours_lse = fused(q, k, v, chunk_size=DCA.chunk_size, local_window=DCA.local_window)
    checks = [("fused DCA (dcagen)", ours[0, :, :group].float(), ours_lse[0, :group])]
    try:
        flex = FlexDca(s, "cuda")
        f_out, f_lse = flex(q.transpose(1, 2).contiguous(), k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous())
        checks.append((FLEX_DCA, f_out[0, :group].transpose(0, 1).float(), f_lse[0, :group]))
    except Exception as err:  # noqa: BLE001 - the report says why the baseline is missing
        print(f"\nFlexAttention DCA baseline unavailable: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    print("\n| vs dense fp32 DCA (4k, 4 heads) | max abs err out | max abs err lse | result |\n|---|---|---|---|")
    for label, out, lse in checks:
        e_out = (out - ref_out).abs().max().item()
        e_lse = (lse.float() - ref_lse).abs().max().item()
        ok = e_out <= TOL["bf16"] and e_lse <= TOL["bf16"]
        failures += 0 if ok else 1
        print(f"| {label} | {e_out:.2e} | {e_lse:.2e} | {'ok' if ok else 'FAIL'} |")
    print(f"\n{len(rows) + len(checks) - failures} passed, {failures} failed\n", flush=True)
    return failures


def timed(fn, budget_ms):
    """Median ms of fn over repeats chosen from a first run (warm-ups excluded)."""
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats_for(start.elapsed_time(end), budget_ms)):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


class StageTimeLimit(BaseException):
    """SIGTERM from cuda-h200.sh's `timeout`: stop measuring, still print what was measured."""


def _on_sigterm(signum, frame):
    raise StageTimeLimit()


def bench(sizes, budget_ms):
    b = manifest()["bench"]
    _, fused = attention_fn(b["fused"]["module"])
    _, causal = attention_fn(b["causal"]["module"])
    _, three = attention_fn(b["threePass"]["module"])
    _, fused64 = attention_fn(b["fusedKeyTile64"]["module"])
    print(f"## Benchmark: bf16, d {HEAD_DIM}, Hq {HEADS}, Hk {KV_HEADS}, batch 1 (Llama-2 4k DCA: C {DCA.chunk_size}, W {DCA.local_window})\n")
    print("| Sq = Sk | kernel | median ms | TFLOP/s (causal count) |\n|---|---|---|---|", flush=True)
    times_by_size = {}
    try:
        for s in sizes:
            bench_size(s, budget_ms, fused, causal, three, fused64, times_by_size)
    except StageTimeLimit:
        print(f"\n(stopped by the stage's time limit after sizes {sorted(times_by_size) or 'none'})")
    print("\n## Goals (issue 10), time for time on the same shapes\n")
    print(goals_markdown(times_by_size))
    print(flush=True)


def bench_size(s, budget_ms, fused, causal, three, fused64, times_by_size):
    """One Sq = Sk: every kernel on the same tensors, each row printed as soon as it is measured."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    torch.manual_seed(s)
    q = torch.randn(1, s, HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, s, KV_HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    # (B, H, S, D) copies for the PyTorch peers, made outside the timing (their native layout).
    qt, kt, vt = (x.transpose(1, 2).contiguous() for x in (q, k, v))
    results = times_by_size.setdefault(s, {})   # filled as kernels are measured (a time limit keeps what was)

    def run(label, fn, how=""):
        """Times fn into results[label] and prints its row; returns None, or why it could not run."""
        try:
            results[label] = timed(fn, budget_ms)
        except Exception as err:  # noqa: BLE001 - one unavailable peer must not stop the others
            return f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]}"
        print(f"| {s} | {label}{how} | {results[label]:.3f} | {causal_tflops(s, results[label]):.1f} |", flush=True)
        return None

    def unavailable(label, why):
        print(f"| {s} | {label} | unavailable: {why} | |", flush=True)

    for label, fn in ((FUSED, lambda: fused(q, k, v, chunk_size=DCA.chunk_size, local_window=DCA.local_window)),
                      (FUSED_KEY_TILE_64, lambda: fused64(q, k, v, chunk_size=DCA.chunk_size, local_window=DCA.local_window)),
                      (CAUSAL, lambda: causal(q, k, v)),
                      (THREE_PASS, lambda: three(q, k, v, chunk_size=DCA.chunk_size, local_window=DCA.local_window))):
        why = run(label, fn)
        if why is not None:
            unavailable(label, why)
    repeated = None
    for label, backend in ((SDPA_FLASH, SDPBackend.FLASH_ATTENTION), (SDPA_CUDNN, SDPBackend.CUDNN_ATTENTION)):
        def sdpa(backend=backend):
            with sdpa_kernel(backend):
                return torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=True, enable_gqa=True)
        why = run(label, sdpa)
        if why is None:
            continue
        # A backend without GQA support: the same call on K/V heads repeated (outside the timing).
        if repeated is None:
            repeated = tuple(x.repeat_interleave(HEADS // KV_HEADS, dim=1) for x in (kt, vt))

        def sdpa_repeated(backend=backend):
            with sdpa_kernel(backend):
                return torch.nn.functional.scaled_dot_product_attention(qt, *repeated, is_causal=True)
        if run(label, sdpa_repeated, " (K/V heads repeated: enable_gqa refused)") is not None:
            unavailable(label, why)
    try:
        flex = FlexDca(s, "cuda")
    except Exception as err:  # noqa: BLE001
        unavailable(FLEX_DCA, f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]}")
    else:
        why = run(FLEX_DCA, lambda: flex(qt, kt, vt))
        if why is not None:
            unavailable(FLEX_DCA, why)
        qs, kr = flex.rotated(qt, kt)   # rotated outside the timing: the three attention calls alone
        why = run(FLEX_DCA_CALLS, lambda: flex.calls(qs, kr, vt))
        if why is not None:
            unavailable(FLEX_DCA_CALLS, why)
    del q, k, v, qt, kt, vt, repeated
    torch.cuda.empty_cache()


def sanitize():
    """Small calls for compute-sanitizer: one prepared case, and the bench DCA kernel across a chunk boundary."""
    m = manifest()
    case = m["cases"][0]
    d = os.path.join(OUT, case["dir"])
    q, k, v = (torch.from_numpy(np.load(os.path.join(d, n + ".npy"))).to("cuda", TORCH_DTYPE[case["dtype"]]) for n in ("q", "k", "v"))
    attention_fn(case["module"])[1](q, k, v, **case["params"], rope_theta=case["rope_theta"], scale=case["scale"], original_max_position=case["original_max_position"])
    s = DCA.chunk_length + 256   # intra and successive regions, a partial last tile
    q = torch.randn(1, s, 2, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, s, 1, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    attention_fn(m["bench"]["fused"]["module"])[1](q, k, torch.randn_like(k), chunk_size=DCA.chunk_size, local_window=DCA.local_window)
    torch.cuda.synchronize()
    print("sanitized cases ran")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=["build", "sanitize", "verify", "bench", "all"], nargs="?", default="all")
    parser.add_argument("--sizes", default="4096,16384,65536,131072", help="comma-separated Sq = Sk values for bench")
    parser.add_argument("--budget-ms", type=float, default=2000.0, help="about this much timing per kernel and size (3 to 20 repeats)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 4, help="parallel extension builds")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if args.stage == "build":
        build(args.workers)
        return 0
    print(f"# dcagen CUDA on {torch.cuda.get_device_name()}, PyTorch {torch.__version__}, CUDA {torch.version.cuda} — {time.strftime('%Y-%m-%d %H:%M')}\n", flush=True)
    if args.stage == "sanitize":
        sanitize()
        return 0
    failed = verify() if args.stage in ("verify", "all") else 0
    if args.stage in ("bench", "all"):
        bench([int(x) for x in args.sizes.split(",") if x.strip()], args.budget_ms)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
