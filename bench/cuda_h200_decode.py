"""Runs on a GPU machine (bench/cuda-h200.sh): the serving side of the CUDA backend at Qwen2.5-1M
parameters (DCA chunk 262144, window 8192), bf16, d 128, Hq 32, Hk 8, with a pre-rotated paged cache
(kernels from bench/prepare-cuda-decode.mjs). Prints a Markdown report:

- the device's copy rate: a large torch copy, bytes read + written per second (the bandwidth a
  memory-bound kernel can reach);
- decode (Sq = 1) at 32k to 256k keys: kernel time of the split-K kernel and its merge (from the
  profiler, so Python and launch overhead do not count), and the effective bandwidth, bytes of K and
  V read per second, against the copy rate (goal: >= 85 %); paged (block size 16, blocks in shuffled
  order) and contiguous (the same kernel in its contiguous K/V form, through dca_attention);
- paged prefill against contiguous prefill of the same tokens (goal: paged <= 1.05 x contiguous);
- cross-checks on the GPU: paged decode = contiguous decode = the prefill kernel's last row, forced
  split counts agree, and a varlen (cu_seqlens_q) call equals its sequences run one by one.
"""
import importlib
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out", "cuda-decode")
MANIFEST_PATH = os.path.join(OUT, "manifest.json")
if not os.path.exists(MANIFEST_PATH):
    sys.exit("bench/out/cuda-decode is missing: run `node bench/prepare-cuda-decode.mjs` (after `npm run build`) before carrying bench/out")
MANIFEST = json.load(open(MANIFEST_PATH))
sys.path.insert(0, os.path.join(OUT, "kernels"))
dca = importlib.import_module(MANIFEST["module"])
PARAMS = MANIFEST["params"]            # chunk_size, local_window: the kernel's DCA parameters
QWEN = dict(rope_theta=1e7, original_max_position=262144)

DTYPE = torch.bfloat16
ELEMENT_BYTES = 2
HQ, HK, D = 32, 8, 128
BLOCK_SIZE = 16                        # vLLM's default cache block
CONTEXTS = (32768, 65536, 131072, 262144)
BANDWIDTH_GOAL = 0.85                  # decode K/V bytes per second / copy rate
PREFILL_GOAL = 1.05                    # paged prefill time / contiguous prefill time
# Kernels of our split-K path as the profiler names them (templated names contain these).
OUR_KERNELS = ("attention_kernel", "merge_kernel")


def kernel_ms(fn, repeats=20, names=None):
    """Device time per call: the profiler's summed CUDA kernel time over `repeats` calls, divided by
    `repeats`. names: count only kernels whose name contains one of these (None: every kernel)."""
    from torch.profiler import ProfilerActivity, profile
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(repeats):
            fn()
        torch.cuda.synchronize()
    total_us = 0.0
    for event in prof.key_averages():
        if names is not None and not any(n in event.key for n in names):
            continue
        device_us = getattr(event, "self_device_time_total", None)
        if device_us is None:
            device_us = getattr(event, "self_cuda_time_total", 0.0)
        total_us += device_us
    return total_us / repeats / 1000.0


def event_ms(fn, repeats=20, warmup=3):
    """Wall time on the stream per call (CUDA events around back-to-back calls), for large kernels."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def copy_rate():
    """Bytes read + written per second by a 4 GiB device-to-device torch copy."""
    src = torch.empty(2 * 1024 ** 3, dtype=DTYPE, device="cuda").normal_()
    dst = torch.empty_like(src)
    ms = event_ms(lambda: dst.copy_(src), repeats=10)
    return 2 * src.numel() * ELEMENT_BYTES / (ms / 1000.0)


def paged_cache(k, v, block_size=BLOCK_SIZE):
    """k, v (batch, n, Hk, D) into a paged cache with blocks in shuffled physical order."""
    batch, n = k.shape[0], k.shape[1]
    per_seq = (n + block_size - 1) // block_size
    num_blocks = batch * per_seq + 1
    order = torch.randperm(num_blocks, device="cuda")[: batch * per_seq].to(torch.int32)
    block_table = order.view(batch, per_seq).contiguous()
    k_cache = torch.zeros(num_blocks, block_size, HK, D, dtype=DTYPE, device="cuda")
    v_cache = torch.zeros_like(k_cache)
    pad = per_seq * block_size - n
    for cache, t in ((k_cache, k), (v_cache, v)):
        padded = torch.nn.functional.pad(t, (0, 0, 0, 0, 0, pad)).view(batch * per_seq, block_size, HK, D)
        cache[block_table.view(-1).long()] = padded
    seq_lens = torch.full((batch,), n, dtype=torch.int32, device="cuda")
    return k_cache, v_cache, block_table, seq_lens


def rand(*shape):
    return torch.randn(*shape, dtype=DTYPE, device="cuda")


def max_err(a, b):
    return (a.float() - b.float()).abs().max().item()


def cross_checks():
    """Agreement of the serving paths on the GPU (the emulated tests check each against the reference)."""
    print("## Serving cross-checks on the GPU (bf16, Qwen2.5-1M DCA)\n")
    print("| check | max abs difference | result |\n|---|---|---|")
    failures = 0
    n = 20000
    q17 = rand(1, 17, HQ, D)
    k, v = rand(1, n, HK, D), rand(1, n, HK, D)
    k_cache, v_cache, block_table, seq_lens = paged_cache(k, v)
    prefill_out, _ = dca.dca_attention(q17, k, v, **PARAMS, rope_theta=QWEN["rope_theta"])   # 17 queries: the prefill kernel
    q1 = q17[:, -1:].contiguous()
    decode_out, _ = dca.dca_attention(q1, k, v, **PARAMS, rope_theta=QWEN["rope_theta"])     # 1 query: split-K, contiguous
    paged_out = dca.paged_attention(q1, k_cache, v_cache, block_table, seq_lens, **PARAMS, rope_theta=QWEN["rope_theta"])
    rows = [("split-K contiguous decode vs the prefill kernel's last row", max_err(decode_out, prefill_out[:, -1:]), 2e-2),
            ("paged decode vs contiguous decode", max_err(paged_out, decode_out), 2e-2)]
    one = dca.paged_attention(q1, k_cache, v_cache, block_table, seq_lens, **PARAMS, rope_theta=QWEN["rope_theta"], num_splits=1)
    for splits in (2, 5, 8):
        forced = dca.paged_attention(q1, k_cache, v_cache, block_table, seq_lens, **PARAMS, rope_theta=QWEN["rope_theta"], num_splits=splits)
        rows.append((f"paged decode, {splits} splits vs 1", max_err(forced, one), 1e-2))
    # Varlen: three sequences of different lengths and query counts in one call vs one call each.
    lens, counts = (5000, 12000, 20000), (1, 37, 300)
    caches = [paged_cache(rand(1, m, HK, D), rand(1, m, HK, D)) for m in lens]
    offset = 0
    tables, k_parts, v_parts = [], [], []
    for kc, vc, bt, _ in caches:
        tables.append(bt + offset)
        k_parts.append(kc)
        v_parts.append(vc)
        offset += kc.shape[0]
    width = max(t.shape[1] for t in tables)
    block_table_all = torch.stack([torch.nn.functional.pad(t[0], (0, width - t.shape[1])) for t in tables]).to(torch.int32).contiguous()
    k_all, v_all = torch.cat(k_parts), torch.cat(v_parts)
    seq_lens_all = torch.tensor(lens, dtype=torch.int32, device="cuda")
    cu = torch.tensor([0, *torch.tensor(counts).cumsum(0).tolist()], dtype=torch.int32, device="cuda")
    q_packed = rand(sum(counts), HQ, D)
    packed_out, packed_lse = dca.paged_attention(q_packed, k_all, v_all, block_table_all, seq_lens_all, **PARAMS, rope_theta=QWEN["rope_theta"],
                                                 cu_seqlens_q=cu, return_softmax_lse=True)
    worst = 0.0
    for b, (kc, vc, bt, sl) in enumerate(caches):
        rows_b = slice(int(cu[b]), int(cu[b + 1]))
        alone, alone_lse = dca.paged_attention(q_packed[rows_b].unsqueeze(0), kc, vc, bt, sl, **PARAMS, rope_theta=QWEN["rope_theta"], return_softmax_lse=True)
        worst = max(worst, max_err(packed_out[rows_b], alone[0]), max_err(packed_lse[:, rows_b], alone_lse[0]))
    rows.append(("varlen (query rows 1, 37, 300) vs each sequence alone", worst, 1e-2))
    for label, err, tol in rows:
        ok = err <= tol
        failures += 0 if ok else 1
        print(f"| {label} | {err:.2e} | {'ok' if ok else 'FAIL'} (<= {tol:g}) |")
    print()
    return failures


def decode_bench(rate):
    print(f"## Decode, Sq = 1: effective bandwidth (K/V bytes read per second) vs the copy rate {rate / 1e12:.2f} TB/s\n")
    print(f"bf16, Hq {HQ} / Hk {HK}, d {D}, pre-rotated cache; kernel time from the profiler (split-K kernel + merge). Goal >= {BANDWIDTH_GOAL:.0%}.\n")
    print("| keys | batch | K/V form | splits | kernel ms | TB/s | of copy rate | goal |\n|---|---|---|---|---|---|---|---|")
    worst = 1.0
    for n in CONTEXTS:
        for batch in (1, 4):
            q = rand(batch, 1, HQ, D)
            k, v = rand(batch, n, HK, D), rand(batch, n, HK, D)
            kv_bytes = 2 * batch * n * HK * D * ELEMENT_BYTES
            k_cache, v_cache, block_table, seq_lens = paged_cache(k, v)
            paged = lambda: dca.paged_attention(q, k_cache, v_cache, block_table, seq_lens, **PARAMS, **QWEN, max_seq_len=n)
            contiguous = lambda: dca.dca_attention(q, k, v, **PARAMS, **QWEN)
            for form, fn in (("paged, block 16", paged), ("contiguous", contiguous)):
                ms = kernel_ms(fn, names=OUR_KERNELS)
                bandwidth = kv_bytes / (ms / 1000.0)
                share = bandwidth / rate
                worst = min(worst, share) if form.startswith("paged") else worst
                print(f"| {n} | {batch} | {form} | auto | {ms:.3f} | {bandwidth / 1e12:.2f} | {share:.0%} | {'ok' if share >= BANDWIDTH_GOAL else 'below'} |")
            del k_cache, v_cache, k, v
            torch.cuda.empty_cache()
    print(f"\nWorst paged decode: {worst:.0%} of the copy rate (goal {BANDWIDTH_GOAL:.0%}).\n")
    return worst


def prefill_bench():
    print("## Prefill: paged cache vs contiguous K/V (the same tokens), batch 1, bf16, Hq 32 / Hk 8, d 128\n")
    print(f"Goal: paged <= {PREFILL_GOAL} x contiguous.\n")
    print("| Sq = Sk | contiguous ms | paged ms (block 16) | paged / contiguous | goal |\n|---|---|---|---|---|")
    worst = 0.0
    # The paged kernel runs prefill on FP32 SIMT lanes (no tensor cores yet): sizes kept small.
    for n in (4096, 16384):
        q = rand(1, n, HQ, D)
        k, v = rand(1, n, HK, D), rand(1, n, HK, D)
        k_cache, v_cache, block_table, seq_lens = paged_cache(k, v)
        contiguous_ms = event_ms(lambda: dca.dca_attention(q, k, v, **PARAMS, **QWEN), repeats=5)
        paged_ms = event_ms(lambda: dca.paged_attention(q, k_cache, v_cache, block_table, seq_lens, **PARAMS, **QWEN, max_seq_len=n), repeats=2, warmup=1)
        ratio = paged_ms / contiguous_ms
        worst = max(worst, ratio)
        print(f"| {n} | {contiguous_ms:.2f} | {paged_ms:.2f} | {ratio:.2f} | {'ok' if ratio <= PREFILL_GOAL else 'above'} |")
    print()
    return worst


def main():
    torch.manual_seed(0)
    print(f"# CUDA serving on {torch.cuda.get_device_name()} ({MANIFEST['name']})\n")
    failures = cross_checks()
    rate = copy_rate()
    print(f"Copy rate (torch, 4 GiB device to device, read + write): {rate / 1e12:.2f} TB/s\n")
    decode_bench(rate)
    prefill_bench()
    if failures:
        print(f"{failures} serving cross-check(s) FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
