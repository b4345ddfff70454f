"""Runs on a GPU machine (bench/cuda-h200.sh): verifies the emitted CUDA kernels on real hardware
against float64-reference outputs prepared by bench/prepare-cuda.mjs, and benchmarks fused DCA,
our causal kernel, the three-pass baseline and PyTorch SDPA (flash and cuDNN backends) on
bf16, d 128, Hq 32, Hk 8, Sq = Sk in {4k, 16k, 64k}. TFLOP/s by FlashAttention's convention
(4·Sq·Sk·D·Hq·B, halved for causal). Prints a Markdown report.
"""
import importlib
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out", "cuda")
sys.path.insert(0, os.path.join(OUT, "kernels"))
MANIFEST = json.load(open(os.path.join(OUT, "manifest.json")))
TOL = {"f32": 2e-4, "f16": 2e-2, "bf16": 6e-2}
TORCH_DTYPE = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def attention_fn(module_name):
    module = importlib.import_module(module_name)
    name = [n for n in dir(module) if n.endswith("_attention")][0]
    return module, getattr(module, name)


def verify():
    failures = 0
    rows = []
    for case in MANIFEST["cases"]:
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
    print(f"\n{len(rows) - failures} passed, {failures} failed\n")
    return failures


def timed(fn, repeats=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def bench():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    b = MANIFEST["bench"]
    _, fused = attention_fn(b["fused"]["module"])
    _, causal = attention_fn(b["causal"]["module"])
    _, three = attention_fn(b["threePass"]["module"])
    print("## Benchmark: bf16, d 128, Hq 32, Hk 8, batch 1 (Llama-2 4k DCA: C 3072, W 512)\n")
    print("| Sq = Sk | kernel | median ms | TFLOP/s |\n|---|---|---|---|")
    ratios = []
    for s in (4096, 16384, 65536):
        q = torch.randn(1, s, 32, 128, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(1, s, 8, 128, device="cuda", dtype=torch.bfloat16)
        v = torch.randn_like(k)
        flops = 4 * s * s * 128 * 32 / 2
        qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
        runs = {
            "fused DCA (dcagen)": lambda: fused(q, k, v, chunk_size=3072, local_window=512),
            "causal (dcagen)": lambda: causal(q, k, v),
            "three-pass DCA (dcagen)": lambda: three(q, k, v, chunk_size=3072, local_window=512),
        }
        results = {}
        for label, fn in runs.items():
            results[label] = timed(fn)
        for label, backend in (("SDPA flash causal", SDPBackend.FLASH_ATTENTION), ("SDPA cuDNN causal", SDPBackend.CUDNN_ATTENTION)):
            try:
                with sdpa_kernel(backend):
                    results[label] = timed(lambda: torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, is_causal=True, enable_gqa=True))
            except RuntimeError as err:
                print(f"| {s} | {label} | unavailable: {str(err).splitlines()[0]} | |")
        for label, ms in results.items():
            print(f"| {s} | {label} | {ms:.3f} | {flops / (ms * 1e-3) / 1e12:.1f} |")
        ratios.append((s, results["fused DCA (dcagen)"] / results["causal (dcagen)"], results["three-pass DCA (dcagen)"] / results["fused DCA (dcagen)"],
                       results.get("SDPA flash causal", float("nan")) / results["fused DCA (dcagen)"]))
    print("\n| Sq = Sk | DCA / our causal (target ≤ 1.03) | three-pass / fused | SDPA-flash time / fused DCA time (target ≥ 1) |\n|---|---|---|---|")
    for s, a, b_, c in ratios:
        print(f"| {s} | {a:.3f} | {b_:.3f} | {c:.3f} |")


if __name__ == "__main__":
    print(f"# dcagen CUDA on {torch.cuda.get_device_name()} — {time.strftime('%Y-%m-%d')}\n")
    if len(sys.argv) > 1 and sys.argv[1] == "--sanitize":
        # A small case only: compute-sanitizer runs this.
        case = MANIFEST["cases"][0]
        d = os.path.join(OUT, case["dir"])
        q, k, v = (torch.from_numpy(np.load(os.path.join(d, n + ".npy"))).to("cuda", TORCH_DTYPE[case["dtype"]]) for n in ("q", "k", "v"))
        attention_fn(case["module"])[1](q, k, v, **case["params"], rope_theta=case["rope_theta"], scale=case["scale"], original_max_position=case["original_max_position"])
        torch.cuda.synchronize()
        print("sanitized case ran")
        sys.exit(0)
    failed = verify()
    bench()
    sys.exit(1 if failed else 0)
