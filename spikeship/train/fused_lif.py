"""The LIF recurrence of DPAP Eq 1-2, 4 over all T steps in one autograd node.

Forward, exactly snntorch's ``Leaky(reset_mechanism="zero")`` step repeated (see
:mod:`spikeship.train.neuron`), from ``u[0] = 0``::

    r[t] = 1{u[t-1] > V_th}                     (detached: the reset carries no gradient)
    u[t] = lambda * (1 - r[t]) * u[t-1] + I[t]  (Eq 1; the same float operations as snntorch)
    o[t] = 1{u[t] > V_th}                       (Eq 2, strict)

Backward, by hand (what autograd derives from snntorch's graph, with ``r[t+1] = o[t]``)::

    dL/du[t] = dL/do[t] * (1/a) 1{|u[t] - V_th| < a/2}     (Eq 4, the rectangle surrogate)
             + dL/du[t+1] * lambda * (1 - o[t])
             (+ dL/du[t] given directly, when the membrane itself is an output)
    dL/dI[t] = dL/du[t]             (summed over t for a static current)

One node per layer instead of ~6 per step keeps the autograd graph small; the
current ``I`` may be static (``(B, ...)``, the same at every step: a direct-encoded
input's first layer), which saves computing it T times.
"""

from __future__ import annotations

import torch


def _forward(cur: torch.Tensor, steps: int, beta: torch.Tensor, threshold: torch.Tensor,
             static: bool, keep_mem: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Spikes ``(T, ...)`` and, with ``keep_mem``, membranes ``(T, ...)`` (Eq 1-2).

    In-place float ops on preallocated buffers: on CPU a comparison written into a
    float tensor, mul and add are cheaper than ``where``.
    """
    spk = _steps_like(cur, steps, static)
    mem = _steps_like(cur, steps if keep_mem else 2, static)
    keep = torch.empty_like(cur if static else cur[0])
    for t in range(steps):
        i_t = cur if static else cur[t]
        u, prev = (mem[t], mem[t - 1]) if keep_mem else (mem[t % 2], mem[(t - 1) % 2])
        if t == 0:
            u.copy_(i_t)                            # snntorch: lambda * 0 + I[0] == I[0]
        else:                                       # ((1 - r[t]) * u[t-1]) * lambda + I[t]
            torch.le(prev, threshold, out=keep)     # 1 - r[t] = 1{u[t-1] <= V_th}, 0. / 1.
            torch.mul(prev, keep, out=u).mul_(beta).add_(i_t)
        # u > V_th is exactly (u - V_th) > 0 in floating point (Sterbenz), snntorch's test
        torch.gt(u, threshold, out=spk[t])
    return spk, (mem if keep_mem else None)


def _steps_like(cur: torch.Tensor, steps: int, static: bool) -> torch.Tensor:
    """An empty ``(steps, *step_shape)`` buffer whose steps have ``cur``'s memory layout
    (channels-last conv maps stay channels-last: no layout conversions per step)."""
    one = cur if static else cur[0]
    if one.dim() == 4 and not one.is_contiguous() and one.is_contiguous(
            memory_format=torch.channels_last):
        b, c, h, w = one.shape
        buf = torch.empty((steps * b, c, h, w), dtype=cur.dtype, device=cur.device,
                          memory_format=torch.channels_last)
        return buf.view(steps, b, c, h, w)
    return cur.new_empty((steps, *one.shape))


class _LIFSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, current, steps, beta, threshold, width, static):  # noqa: D102
        spk, mem = _forward(current.float(), steps, beta, threshold, static)
        ctx.save_for_backward(mem, beta, threshold)
        ctx.width, ctx.static, ctx.in_dtype = width, static, current.dtype
        ctx.set_materialize_grads(False)      # an unused membrane costs no zero tensor
        return spk, mem

    @staticmethod
    def backward(ctx, g_spk, g_mem):  # noqa: D102
        mem, beta, threshold = ctx.saved_tensors
        a = ctx.width
        if g_spk is None:
            g = torch.zeros_like(mem)
        else:
            inside = torch.sub(mem, threshold).abs_()
            torch.lt(inside, a / 2, out=inside)            # Eq 4's rectangle, 0. / 1.
            g = inside.mul_(g_spk)
            if a != 1.0:
                g.div_(a)
        if g_mem is not None:
            g.add_(g_mem)
        # keep[t] = lambda (1 - o[t]) = du[t+1]/du[t]  (o[t] = 1{u[t] > V_th})
        keep = torch.le(mem[:-1], threshold, out=torch.empty_like(mem[:-1])).mul_(beta)
        for t in range(mem.shape[0] - 2, -1, -1):
            g[t].addcmul_(g[t + 1], keep[t])
        grad = g.sum(0) if ctx.static else g
        return grad.to(ctx.in_dtype), None, None, None, None, None


def lif_sequence(current: torch.Tensor, steps: int, beta: torch.Tensor, threshold: torch.Tensor,
                 width: float, static: bool = False, membrane: bool = True
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Spikes and membranes ``(T, B, ...)`` of a LIF layer driven by ``current``.

    ``current`` is ``(T, B, ...)``, or ``(B, ...)`` with ``static=True`` (the same
    current at each of ``steps`` steps). ``beta`` and ``threshold`` are the neuron's
    0-dim float32 tensors (lambda, V_th), ``width`` the surrogate's ``a``. The
    membrane ``u[t]`` is read before the reset, as snntorch's ``Leaky.mem``. Without
    autograd (evaluation) and with ``membrane=False`` no membrane is kept (None).
    """
    if not static and current.shape[0] != steps:
        raise ValueError(f"current has {current.shape[0]} steps, expected {steps}")
    if torch.is_grad_enabled() and current.requires_grad:
        return _LIFSequence.apply(current, steps, beta, threshold, float(width), bool(static))
    return _forward(current.float(), steps, beta, threshold, static, keep_mem=membrane)
