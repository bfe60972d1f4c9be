"""Triton kernels of Smooth-InfoNCE (the math: docs/triton.md). Launched by sim_kernels/triton/ops.py.

Shapes (B batch, T time, K steps, N negatives, Cc / Cz channels, rows = B*T, r = b*T + t):
    context (rows, Cc), targets (z_rows, Cz), weight (K, Cz, Cc), all contiguous; z_rows = B'*T >= rows:
    the anchors' own rows first, then extra rows that serve only as negatives (e.g. gathered from other processes);
    neg_idx (K, B, T, N) int64 addressed through its strides (a stride-0 expansion over k is fine);
    loss (K, rows), g (K, rows, N+1) (the score gradients below), kl (rows,): all in the accumulation
    dtype (fp32; fp64 for fp64 inputs), which the kernels read off these buffers' pointer types.
A neg_idx entry of -1 means no negative there (an excluded candidate): score -inf, weight 0.
Anchor (b, t) is valid at step k = kk+1 when t0 <= t < t1 - d_k, d_k = FIRST + kk (or t < t1 - d_K for
every k when COMMON = 1: CPC_audio's common window); its positive is target row r + d_k (FIRST = 1: the
next frame; 0: the anchor's own frame, wav2vec 2.0). HAS_W = False: no weight, the score is z . c
(Cc == Cz): p = c_r, d/dc_r = sum_k dp_k, d/dz_q = sum_k h_{k,q}, and no weight kernel.

Forward, per anchor and step (one pass over the N+1 target rows, online log-sum-exp):
    p = W_k c_r                     (Cz,)   tl.dot over Cc chunks, fp32 (fp64) accumulation
    s_0 = z_{r+k} . p, s_n = z_{neg_n} . p
    loss = lse(s_0..s_N) - s_0,  correct = s_0 > max_n s_n   (NaN and +-inf: _push_score)
Backward of value = sum lw * loss (chain rule through the softmax):
    g_j  := d value / d s_j = lw * (softmax(s)_j - [j == 0])
    dp   := d value / d p  = sum_j g_j z_j                    (Cz,)
    d/dc_r  = sum_k W_k^T dp_k                  anchor kernel, loops over k in one program
    d/dW_k  = sum_r dp_{k,r} c_r^T              weight kernel, one program per (k, Cz, Cc) tile,
                                                recomputes dp from g, loops over all rows in order
    d/dz_q  = sum_k W_k h_{k,q},  h_{k,q} = sum_{(r, j) : row j of anchor r at step k is q} g c_r
                                                target kernel, one program per tile of target rows,
                                                walks a CSR list of uses in a fixed order
Every sum runs in a fixed order in one program: no atomics, so gradients are bitwise
reproducible run after run.

Wide targets (Z_CHUNKS > 1, chosen by heuristics.py when a (BLOCK_M, next_pow2(Cz)) tile would need
more shared memory than a block has): the anchor kernel walks Cz in chunks of BLOCK_Z. Scores are
sums over Cz, so it accumulates each chunk's partial scores in a (K, rows, N+1) buffer (the g buffer
with GRAD, a scratch buffer without), then runs the log-sum-exp over the buffer, writes g over the
scores, and builds dp and d/dc chunk by chunk. The target kernel takes a grid axis over Cz chunks.
KL per row: kl = 1/2 sum_c (mu^2 + e^lv - lv - 1); d/dmu = kw mu, d/dlv = kw (e^lv - 1) / 2.
"""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _predict(ctx_ptr, w_ptr, r, row_mask, kk, Cc, Cz, z_cols, z_mask, ACC: tl.constexpr,
             BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_Z: tl.constexpr, PRECISION: tl.constexpr,
             HAS_W: tl.constexpr = True):
    """(BLOCK_M, BLOCK_Z) ACC = context[r] @ weight[kk]^T, over Cc in chunks of BLOCK_C; context[r, z_cols]
    itself without a weight (HAS_W = False, Cc == Cz)."""
    if not HAS_W:
        pred = tl.load(ctx_ptr + r[:, None] * Cc + z_cols[None, :], mask=row_mask[:, None] & z_mask[None, :],
                       other=0.0).to(ACC)
    else:
        pred = tl.zeros((BLOCK_M, BLOCK_Z), dtype=ACC)
        for c0 in range(0, Cc, BLOCK_C):
            cols = c0 + tl.arange(0, BLOCK_C)
            cmask = cols < Cc
            c = tl.load(ctx_ptr + r[:, None] * Cc + cols[None, :], mask=row_mask[:, None] & cmask[None, :], other=0.0)
            # weight[kk]^T chunk (BLOCK_C, BLOCK_Z): element (c, z) sits at kk*Cz*Cc + z*Cc + c.
            wt = tl.load(w_ptr + kk * Cz * Cc + z_cols[None, :] * Cc + cols[:, None],
                         mask=cmask[:, None] & z_mask[None, :], other=0.0)
            pred = tl.dot(c, wt, acc=pred, input_precision=PRECISION, out_dtype=pred.dtype)
    return pred


@triton.jit
def _gather_score(tgt_ptr, row, mask, pred, Cz, z_cols, z_mask):
    """Rows z = targets[row] (in pred's dtype, 0 where masked) and their scores z . pred, (BLOCK_M,)."""
    z = tl.load(tgt_ptr + row[:, None] * Cz + z_cols[None, :], mask=mask[:, None] & z_mask[None, :],
                other=0.0).to(pred.dtype)
    return tl.sum(z * pred, axis=1), z


@triton.jit
def _anchor_kernel(ctx_ptr, tgt_ptr, w_ptr, idx_ptr, lw_ptr,
                   loss_ptr, correct_ptr, g_ptr, gctx_ptr,
                   rows, z_rows, T, t0, t1, K, N, Cc, Cz, s_ik, s_ib, s_it, s_in, COMMON, FIRST,
                   GRAD: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_Z: tl.constexpr,
                   PRECISION: tl.constexpr, Z_CHUNKS: tl.constexpr = 1, HAS_W: tl.constexpr = True):
    """Forward (loss, correct) of a tile of BLOCK_M anchors for every k; with GRAD also g and d/dc.

    gctx (rows, Cc) fp32 must be zero on entry; this program owns its rows, so += is race-free.
    Z_CHUNKS = 1: BLOCK_Z >= Cz, scores in registers. Z_CHUNKS > 1: BLOCK_Z * Z_CHUNKS >= Cz, scores
    through g_ptr (K, rows, N+1), which must then exist without GRAD too (a scratch buffer).
    """
    if Z_CHUNKS == 1:
        _anchor_whole(ctx_ptr, tgt_ptr, w_ptr, idx_ptr, lw_ptr, loss_ptr, correct_ptr, g_ptr, gctx_ptr,
                      rows, z_rows, T, t0, t1, K, N, Cc, Cz, s_ik, s_ib, s_it, s_in, COMMON, FIRST,
                      GRAD, BLOCK_M, BLOCK_C, BLOCK_Z, PRECISION, HAS_W)
    else:
        _anchor_chunked(ctx_ptr, tgt_ptr, w_ptr, idx_ptr, lw_ptr, loss_ptr, correct_ptr, g_ptr, gctx_ptr,
                        rows, z_rows, T, t0, t1, K, N, Cc, Cz, s_ik, s_ib, s_it, s_in, COMMON, FIRST,
                        GRAD, BLOCK_M, BLOCK_C, BLOCK_Z, PRECISION, Z_CHUNKS, HAS_W)


@triton.jit
def _push_score(m, l, best, s):
    """One negative score s into the online log-sum-exp (running max m, l = sum exp(s_j - m)) and into the
    best negative so far. The rules of csrc/smooth_infonce.h's OnlineLogSumExp, written without tl.maximum,
    which drops a NaN (propagate_nan defaults to none: an anchor with a NaN negative became a hit) and
    whose rescaling exp(m - m_new) is exp(inf - inf) = NaN for two +inf scores.
      s > m:   l = l exp(m - s) + 1, m = s    (the old sum rescaled to the new max)
      s == m:  l = l + 1                       (exp(0), also for s = m = +-inf, where s - m is NaN)
      else:    l = l + exp(s - m)              (a NaN s lands here: l, so the loss, become NaN)
    best takes s when s > best or s is NaN, so a NaN sticks and s_pos > best is false."""
    up = s > m
    l = l * tl.where(up, tl.exp(m - s), 1.0) + tl.where(up | (s == m), 1.0, tl.exp(s - m))
    m = tl.where(up, s, m)
    best = tl.where((s > best) | (s != s), s, best)
    return m, l, best


@triton.jit
def _anchor_whole(ctx_ptr, tgt_ptr, w_ptr, idx_ptr, lw_ptr, loss_ptr, correct_ptr, g_ptr, gctx_ptr,
                  rows, z_rows, T, t0, t1, K, N, Cc, Cz, s_ik, s_ib, s_it, s_in, COMMON, FIRST,
                  GRAD: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_Z: tl.constexpr,
                  PRECISION: tl.constexpr, HAS_W: tl.constexpr):
    """_anchor_kernel with the whole of Cz in one (BLOCK_M, BLOCK_Z) tile."""
    r = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    in_range = r < rows
    b = r // T
    t = r % T
    z_cols = tl.arange(0, BLOCK_Z)
    z_mask = z_cols < Cz
    ACC: tl.constexpr = loss_ptr.dtype.element_ty  # fp32, or fp64 for fp64 inputs
    for kk in range(0, K):
        # shift = k, or K for every k with the common window (COMMON is 0 or 1)
        valid = in_range & (t >= t0) & (t < t1 - (kk + FIRST + COMMON * (K - kk - 1)))
        pred = _predict(ctx_ptr, w_ptr, r, in_range, kk, Cc, Cz, z_cols, z_mask, ACC, BLOCK_M, BLOCK_C, BLOCK_Z,
                        PRECISION, HAS_W)
        s_pos, _ = _gather_score(tgt_ptr, r + kk + FIRST, valid, pred, Cz, z_cols, z_mask)
        idx_row = idx_ptr + kk * s_ik + b * s_ib + t * s_it
        # Online log-sum-exp over [s_pos, s_1 .. s_N]: running max m and sum l = sum exp(s - m).
        m = s_pos
        l = tl.full((BLOCK_M,), 1.0, ACC)
        best = tl.full((BLOCK_M,), float("-inf"), ACC)
        for n in range(0, N):
            row = tl.load(idx_row + n * s_in, mask=valid, other=0)
            s, _ = _gather_score(tgt_ptr, row, valid & (row >= 0) & (row < z_rows), pred, Cz, z_cols, z_mask)
            s = tl.where(row < 0, float("-inf"), s)  # -1: no negative (excluded)
            m, l, best = _push_score(m, l, best, s)
        # lse - s and exp(s - lse) around the max, lse = m + log_l: rounded relative to the result, not
        # to lse (with |s| ~ 1e4 in fp32, lse alone is off by ~1e-3). csrc/smooth_infonce.h does the same.
        log_l = tl.log(l)
        out = kk * rows + r
        tl.store(loss_ptr + out, tl.where(valid, (m - s_pos) + log_l, 0.0), mask=in_range)
        tl.store(correct_ptr + out, (valid & (s_pos > best)).to(tl.int8), mask=in_range)
        if GRAD:
            lw = tl.load(lw_ptr + out, mask=valid, other=0.0)
            # g_0 = lw (softmax_0 - 1), g_n = lw softmax_n; dp = sum_j g_j z_j.
            g = lw * (tl.exp((s_pos - m) - log_l) - 1.0)
            tl.store(g_ptr + out * (N + 1), g, mask=in_range)
            # Reload the positive rather than keep it live through the loop (register pressure).
            z_pos = tl.load(tgt_ptr + (r + kk + FIRST)[:, None] * Cz + z_cols[None, :],
                            mask=valid[:, None] & z_mask[None, :], other=0.0).to(ACC)
            dp = g[:, None] * z_pos
            for n in range(0, N):
                row = tl.load(idx_row + n * s_in, mask=valid, other=0)
                s, z = _gather_score(tgt_ptr, row, valid & (row >= 0) & (row < z_rows), pred, Cz, z_cols, z_mask)
                g = lw * tl.exp((tl.where(row < 0, float("-inf"), s) - m) - log_l)  # excluded: weight 0
                tl.store(g_ptr + out * (N + 1) + 1 + n, g, mask=in_range)
                dp += g[:, None] * z
            # d/dc_r += dp @ W_k, W_k chunk (BLOCK_Z, BLOCK_C); += dp without a weight.
            _dc_update(w_ptr, gctx_ptr, dp, r, in_range, kk, Cc, Cz, z_cols, z_mask, BLOCK_C, PRECISION, HAS_W)
            # The next k reloads these rows, possibly from other threads of this program (the dot's
            # layout differs from the load's): make this k's global stores visible first.
            tl.debug_barrier()

@triton.jit
def _dc_update(w_ptr, gctx_ptr, dp, r, in_range, kk, Cc, Cz, z_cols, z_mask, BLOCK_C: tl.constexpr,
               PRECISION: tl.constexpr, HAS_W: tl.constexpr = True):
    """d/dc_r += dp @ W_k[z_cols, :], over Cc in chunks of BLOCK_C (read-modify-write of gctx's rows);
    d/dc_r[z_cols] += dp without a weight (Cc == Cz)."""
    if not HAS_W:
        ptrs = gctx_ptr + r[:, None] * Cc + z_cols[None, :]
        pmask = in_range[:, None] & z_mask[None, :]
        tl.store(ptrs, tl.load(ptrs, mask=pmask, other=0.0) + dp, mask=pmask)
    else:
        for c0 in range(0, Cc, BLOCK_C):
            cols = c0 + tl.arange(0, BLOCK_C)
            cmask = cols < Cc
            w = tl.load(w_ptr + kk * Cz * Cc + z_cols[:, None] * Cc + cols[None, :],
                        mask=z_mask[:, None] & cmask[None, :], other=0.0).to(dp.dtype)
            ptrs = gctx_ptr + r[:, None] * Cc + cols[None, :]
            pmask = in_range[:, None] & cmask[None, :]
            acc = tl.load(ptrs, mask=pmask, other=0.0)
            tl.store(ptrs, tl.dot(dp, w, acc=acc, input_precision=PRECISION, out_dtype=acc.dtype), mask=pmask)


@triton.jit
def _anchor_chunked(ctx_ptr, tgt_ptr, w_ptr, idx_ptr, lw_ptr, loss_ptr, correct_ptr, s_ptr, gctx_ptr,
                    rows, z_rows, T, t0, t1, K, N, Cc, Cz, s_ik, s_ib, s_it, s_in, COMMON, FIRST,
                    GRAD: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_Z: tl.constexpr,
                    PRECISION: tl.constexpr, Z_CHUNKS: tl.constexpr, HAS_W: tl.constexpr):
    """_anchor_kernel over Cz in Z_CHUNKS chunks of BLOCK_Z; s_ptr (K, rows, N+1) holds the scores,
    then (with GRAD) g. Each buffer element is written and read by this program only; barriers order
    a chunk's stores before the next chunk's loads (the layouts of the two may differ)."""
    r = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    in_range = r < rows
    b = r // T
    t = r % T
    ACC: tl.constexpr = loss_ptr.dtype.element_ty  # fp32, or fp64 for fp64 inputs
    for kk in range(0, K):
        valid = in_range & (t >= t0) & (t < t1 - (kk + FIRST + COMMON * (K - kk - 1)))
        idx_row = idx_ptr + kk * s_ik + b * s_ib + t * s_it
        out = kk * rows + r
        sp = s_ptr + out * (N + 1)
        # 1. Partial scores of every chunk, summed in the buffer (chunk 0 stores, later chunks add).
        for zc in range(0, Z_CHUNKS):
            z_cols = zc * BLOCK_Z + tl.arange(0, BLOCK_Z)
            z_mask = z_cols < Cz
            pred = _predict(ctx_ptr, w_ptr, r, in_range, kk, Cc, Cz, z_cols, z_mask, ACC, BLOCK_M, BLOCK_C,
                            BLOCK_Z, PRECISION, HAS_W)
            part, _ = _gather_score(tgt_ptr, r + kk + FIRST, valid, pred, Cz, z_cols, z_mask)
            prev = tl.load(sp, mask=in_range & (zc > 0), other=0.0)
            tl.store(sp, prev + part, mask=in_range)
            for n in range(0, N):
                row = tl.load(idx_row + n * s_in, mask=valid, other=0)
                part, _ = _gather_score(tgt_ptr, row, valid & (row >= 0) & (row < z_rows), pred, Cz, z_cols, z_mask)
                prev = tl.load(sp + 1 + n, mask=in_range & (zc > 0), other=0.0)
                tl.store(sp + 1 + n, prev + part, mask=in_range)
            tl.debug_barrier()
        # 2. Online log-sum-exp over the summed scores (as in _anchor_whole).
        s_pos = tl.load(sp, mask=in_range, other=0.0)
        m = s_pos
        l = tl.full((BLOCK_M,), 1.0, ACC)
        best = tl.full((BLOCK_M,), float("-inf"), ACC)
        for n in range(0, N):
            s = tl.load(sp + 1 + n, mask=in_range, other=0.0)
            row = tl.load(idx_row + n * s_in, mask=valid, other=0)
            s = tl.where(row < 0, float("-inf"), s)  # -1: no negative (excluded)
            m, l, best = _push_score(m, l, best, s)
        log_l = tl.log(l)
        tl.store(loss_ptr + out, tl.where(valid, (m - s_pos) + log_l, 0.0), mask=in_range)
        tl.store(correct_ptr + out, (valid & (s_pos > best)).to(tl.int8), mask=in_range)
        if GRAD:
            # 3. g over the scores (each element read, then overwritten, by the same thread).
            lw = tl.load(lw_ptr + out, mask=valid, other=0.0)
            tl.store(sp, lw * (tl.exp((s_pos - m) - log_l) - 1.0), mask=in_range)
            for n in range(0, N):
                s = tl.load(sp + 1 + n, mask=in_range, other=0.0)
                row = tl.load(idx_row + n * s_in, mask=valid, other=0)
                s = tl.where(row < 0, float("-inf"), s)
                tl.store(sp + 1 + n, lw * tl.exp((s - m) - log_l), mask=in_range)
            tl.debug_barrier()
            # 4. dp = sum_j g_j z_j and d/dc += dp @ W_k, chunk by chunk over Cz.
            for zc in range(0, Z_CHUNKS):
                z_cols = zc * BLOCK_Z + tl.arange(0, BLOCK_Z)
                z_mask = z_cols < Cz
                g = tl.load(sp, mask=valid, other=0.0)
                z = tl.load(tgt_ptr + (r + kk + FIRST)[:, None] * Cz + z_cols[None, :],
                            mask=valid[:, None] & z_mask[None, :], other=0.0).to(ACC)
                dp = g[:, None] * z
                for n in range(0, N):
                    row = tl.load(idx_row + n * s_in, mask=valid, other=0)
                    ok = valid & (row >= 0) & (row < z_rows)
                    g = tl.load(sp + 1 + n, mask=valid, other=0.0)
                    z = tl.load(tgt_ptr + row[:, None] * Cz + z_cols[None, :], mask=ok[:, None] & z_mask[None, :],
                                other=0.0).to(ACC)
                    dp += g[:, None] * z
                _dc_update(w_ptr, gctx_ptr, dp, r, in_range, kk, Cc, Cz, z_cols, z_mask, BLOCK_C, PRECISION, HAS_W)
                tl.debug_barrier()


@triton.jit
def _target_kernel(ctx_ptr, w_ptr, g_ptr, order_ptr, offs_ptr, gtgt_ptr, rows, z_rows, K, N, Cc, Cz,
                   BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_Z: tl.constexpr, PRECISION: tl.constexpr,
                   HAS_W: tl.constexpr = True):
    """d value / d targets for a tile of BLOCK_M target rows q and BLOCK_Z target channels (grid
    (row tiles, Cz chunks)): sum_k (sum_uses g c_r) @ W_k^T (sum_k sum_uses g c_r[z_cols] without a weight).

    order: flat use ids u = (kk*rows + r)*(N+1) + j sorted by (kk, target row), stably;
    offs (K*z_rows + 1,): the uses of target row q at step kk+1 are order[offs[kk*z_rows+q] : offs[kk*z_rows+q+1]].
    """
    q = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    in_range = q < z_rows
    z_cols = tl.program_id(1) * BLOCK_Z + tl.arange(0, BLOCK_Z)  # grid axis 1: chunks of Cz
    z_mask = z_cols < Cz
    ACC: tl.constexpr = g_ptr.dtype.element_ty
    acc = tl.zeros((BLOCK_M, BLOCK_Z), dtype=ACC)
    for kk in range(0, K):
        start = tl.load(offs_ptr + kk * z_rows + q, mask=in_range, other=0)
        cnt = tl.load(offs_ptr + kk * z_rows + q + 1, mask=in_range, other=0) - start
        most = tl.max(cnt, axis=0)
        if not HAS_W:  # h over this program's channels is the gradient itself (Cc == Cz)
            for i in range(0, most):
                live = i < cnt
                u = tl.load(order_ptr + start + i, mask=live, other=0)
                g = tl.load(g_ptr + u)  # unmasked, as below
                a = (u // (N + 1)) % rows
                c = tl.load(ctx_ptr + a[:, None] * Cc + z_cols[None, :], mask=live[:, None] & z_mask[None, :],
                            other=0.0).to(ACC)
                acc += tl.where(live[:, None], g[:, None] * c, 0.0)
        else:
            for c0 in range(0, Cc, BLOCK_C):
                cols = c0 + tl.arange(0, BLOCK_C)
                cmask = cols < Cc
                h = tl.zeros((BLOCK_M, BLOCK_C), dtype=ACC)
                for i in range(0, most):
                    live = i < cnt
                    u = tl.load(order_ptr + start + i, mask=live, other=0)
                    # u = 0 (a valid use) where not live: load g unmasked and mask the product instead.
                    # (A masked 1-D load here fails triton 3.6's layout pass for fp64, "mask type
                    # matches ptr type"; the select keeps a NaN in g[0] out of the other rows.)
                    g = tl.load(g_ptr + u)
                    a = (u // (N + 1)) % rows
                    c = tl.load(ctx_ptr + a[:, None] * Cc + cols[None, :], mask=live[:, None] & cmask[None, :],
                                other=0.0).to(ACC)
                    h += tl.where(live[:, None], g[:, None] * c, 0.0)
                wt = tl.load(w_ptr + kk * Cz * Cc + z_cols[None, :] * Cc + cols[:, None],
                             mask=cmask[:, None] & z_mask[None, :], other=0.0).to(ACC)
                acc = tl.dot(h, wt, acc=acc, input_precision=PRECISION, out_dtype=acc.dtype)
    tl.store(gtgt_ptr + q[:, None] * Cz + z_cols[None, :], acc, mask=in_range[:, None] & z_mask[None, :])


@triton.jit
def _weight_kernel(ctx_ptr, tgt_ptr, idx_ptr, g_ptr, gw_ptr, rows, z_rows, T, t0, t1, K, N, Cc, Cz,
                   s_ik, s_ib, s_it, s_in, COMMON, FIRST,
                   BLOCK_M: tl.constexpr, BLOCK_WZ: tl.constexpr, BLOCK_WC: tl.constexpr, PRECISION: tl.constexpr):
    """d value / d W_k for one (BLOCK_WZ, BLOCK_WC) tile: sum over row tiles (in order) of dp^T @ c."""
    kk = tl.program_id(0)
    zc = tl.program_id(1) * BLOCK_WZ + tl.arange(0, BLOCK_WZ)
    zm = zc < Cz
    cc = tl.program_id(2) * BLOCK_WC + tl.arange(0, BLOCK_WC)
    cm = cc < Cc
    ACC: tl.constexpr = g_ptr.dtype.element_ty
    acc = tl.zeros((BLOCK_WZ, BLOCK_WC), dtype=ACC)
    for r0 in range(0, rows, BLOCK_M):
        r = (r0 + tl.arange(0, BLOCK_M)).to(tl.int64)
        in_range = r < rows
        b = r // T
        t = r % T
        valid = in_range & (t >= t0) & (t < t1 - (kk + FIRST + COMMON * (K - kk - 1)))
        gbase = g_ptr + (kk * rows + r) * (N + 1)
        # dp restricted to the channels zc: sum_j g_j z_j[zc].
        g = tl.load(gbase, mask=valid, other=0.0)
        z = tl.load(tgt_ptr + (r + kk + FIRST)[:, None] * Cz + zc[None, :], mask=valid[:, None] & zm[None, :], other=0.0)
        dp = g[:, None] * z.to(ACC)
        idx_row = idx_ptr + kk * s_ik + b * s_ib + t * s_it
        for n in range(0, N):
            row = tl.load(idx_row + n * s_in, mask=valid, other=0)
            ok = valid & (row >= 0) & (row < z_rows)
            g = tl.load(gbase + 1 + n, mask=valid, other=0.0)
            z = tl.load(tgt_ptr + row[:, None] * Cz + zc[None, :], mask=ok[:, None] & zm[None, :], other=0.0)
            dp += g[:, None] * z.to(ACC)
        c = tl.load(ctx_ptr + r[:, None] * Cc + cc[None, :], mask=valid[:, None] & cm[None, :], other=0.0)
        acc = tl.dot(tl.trans(dp), c.to(ACC), acc=acc, input_precision=PRECISION, out_dtype=acc.dtype)
    tl.store(gw_ptr + kk * Cz * Cc + zc[:, None] * Cc + cc[None, :], acc, mask=zm[:, None] & cm[None, :])


@triton.jit
def _kl_kernel(mu_ptr, lv_ptr, kw_ptr, kl_ptr, gmu_ptr, glv_ptr, rows, C,
               GRAD: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_Z: tl.constexpr):
    """kl (rows,) (kl's dtype: fp32, fp64 for fp64) and, with GRAD, d/dmu = kw mu, d/dlv = kw (e^lv - 1)/2 (stored in the input dtype)."""
    r = (tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)).to(tl.int64)
    in_range = r < rows
    ACC: tl.constexpr = kl_ptr.dtype.element_ty
    kl = tl.zeros((BLOCK_R,), dtype=ACC)
    if GRAD:
        kw = tl.load(kw_ptr + r, mask=in_range, other=0.0)
    for c0 in range(0, C, BLOCK_Z):
        cols = c0 + tl.arange(0, BLOCK_Z)
        mask = in_range[:, None] & (cols < C)[None, :]
        off = r[:, None] * C + cols[None, :]
        m = tl.load(mu_ptr + off, mask=mask, other=0.0).to(ACC)
        lv = tl.load(lv_ptr + off, mask=mask, other=0.0).to(ACC)
        e = tl.exp(lv)
        kl += tl.sum(tl.where(mask, 0.5 * (m * m + e - lv - 1.0), 0.0), axis=1)
        if GRAD:
            tl.store(gmu_ptr + off, kw[:, None] * m, mask=mask)
            tl.store(glv_ptr + off, kw[:, None] * (0.5 * (e - 1.0)), mask=mask)
    tl.store(kl_ptr + r, kl, mask=in_range)
