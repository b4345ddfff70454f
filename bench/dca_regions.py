"""Dual Chunk Attention's three regions and their RoPE position remaps (DESIGN.md section 1, code
semantics), for the PyTorch baselines in bench/cuda_h200.py: DCA as three FlexAttention calls (one
per region, each with its own block mask and its own query rotation) merged by log-sum-exp, which
is how DCA runs in PyTorch today.

Plain Python with no torch import, so test/bench-cuda.test.ts checks it against dcagen's pattern
definition without a GPU. The mask functions use only //, ==, -, >=, <= and &, so the same code
runs on Python ints (the test) and on the integer tensors FlexAttention passes to a mask_mod.
"""

REGIONS = ("intra", "successive", "inter")


class DcaConfig:
    """C (chunk_size), W (local_window) and the chunk length L = C - W that partitions the sequence."""

    def __init__(self, chunk_size, local_window):
        if chunk_size - local_window < 1:
            raise ValueError(f"chunk length C - W must be at least 1, got {chunk_size} - {local_window}")
        self.chunk_size = chunk_size
        self.local_window = local_window
        self.chunk_length = chunk_size - local_window

    def key_position(self, j):
        """Keys sit at j mod L in every region (so one rotated copy of K serves all three calls)."""
        return j % self.chunk_length

    def query_position(self, region, i):
        """Where query i sits when it meets keys of `region` (ints only)."""
        L, C = self.chunk_length, self.chunk_size
        if region == "intra":
            return i % L
        if region == "successive":
            return min(i % L + L, C)
        if region == "inter":
            return min(2 * L - 1, C)
        raise ValueError(f"unknown region {region!r}")

    def visible(self, region, q, k):
        """Whether key k belongs to query q's `region`: chunks equal (and k <= q), one apart, or two or more apart."""
        L = self.chunk_length
        apart = q // L - k // L
        if region == "intra":
            return (apart == 0) & (k <= q)
        if region == "successive":
            return apart == 1
        if region == "inter":
            return apart >= 2
        raise ValueError(f"unknown region {region!r}")

    def region_of(self, q, k):
        """The region of causal pair (q, k), or None when k > q (ints only)."""
        for region in REGIONS:
            if self.visible(region, q, k):
                return region
        return None
