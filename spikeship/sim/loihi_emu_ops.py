"""The integer operations of Lava's bit-accurate Loihi models, on batched torch tensors.

Every function here mirrors a named piece of Lava 0.10's fixed-point process models
(``lava/proc/...`` in the installed package) on ``int64`` tensors with a leading batch
dimension. The models keep their state in ``np.int32`` arrays; wherever an ``int32``
result can overflow in Lava, :func:`wrap32` reproduces numpy's two's-complement
wrap, and it is skipped only where a static bound proves it a no-op (see
:class:`LifParams` and :class:`SynapseOp`).

LIF, ``lava/proc/lif/models.py``, ``AbstractPyLifModelFixed.subthr_dynamics`` (used
by ``PyLifModelBitAcc`` and ``PyLifResetModelBitAcc``), per step with ``M = 2^23``::

    x = u * (4096 - (du + 1))                     # ds_offset = 1, int64 product
    u' = sgn(x) * (|x| >> 12) + (a_in << 6)       # round toward zero; act_shift = 6
    u  = u' - 2M if u' > M;  then  u' + 2M if (that) <= -M      # 24-bit wrap, one fold
    y = v * (4096 - dv)                           # dm_offset = 0
    v = clip(sgn(y) * (|y| >> 12) + u + bias, -M + 1, M - 1)     # 24-bit saturation
    s = v > (vth << 6);  v[s] = 0                 # spiking_activation, reset_voltage

with ``bias = bias_mant << bias_exp`` (``scale_bias``; a negative exponent shifts
right). ``LIFReset`` zeroes ``u`` and ``v`` before that at the first step of every
sample window (``PyLifResetModelBitAcc.run_spk``).

Synapses, one step of delay each (``a_out.send(a_buff)`` before ``a_buff`` is
recomputed): ``Dense`` (``lava/proc/dense/models.py``,
``AbstractPyDenseModelBitAcc.run_spk``) and ``Sparse`` (``lava/proc/sparse/models.py``,
``AbstractPySparseModelBitAcc.run_spk``) clip and truncate their weights once
(``lava/utils/weightutils.py``: ``determine_sign_mode``, ``clip_weights``,
``truncate_weights``; :func:`lava_synapse_weights`), then send ``W s`` shifted by
``weight_exp`` (left if > 0, else arithmetic right). Binary input (``num_message_bits
= 0``) uses ``s != 0``; graded input the payload (``weights.dot(s_in)`` in int32).
``Conv`` (``lava/proc/conv/models.py``, ``PyConvModelFixed``) convolves in float64
(``lava/proc/conv/utils.py``, ``conv_scipy``), casts to int32 and wraps to 24 bits
(``utils.signed_clamp(x, bits=24)``); it has no weight exponent and no weight clipping.
Every port carries int32 (the channel takes the sender's type); a LIF's ``a_in`` is the
int32 sum of all its ports (``PyInPortVectorDense.recv``).

Integer sums are computed as float matrix products: exact because every partial sum
is an integer whose magnitude is bounded by ``sum |w| * max|s|``
(:attr:`SynapseOp.bound`), below ``2^24`` for float32 (CPU) and ``2^52`` for float64
(other devices: no TF32; or a larger bound). A convolution is a matrix too (built
once from one-hot inputs), unless that matrix would be large; then ``F.conv2d`` in
float64 with the result rounded (its algorithm may reorder or transform the sum; the
error stays far below 0.5). A bound of ``2^52`` or more raises
:class:`~spikeship.errors.SimulationError` rather than risk a difference.

Conventions: ``a_in`` and the states are NIR-ordered flat vectors ``(batch, size)``
(Lava's are ``(W, H, C)``-ordered; every LIF operation is elementwise, so the order
does not matter); Lava's per-step ``int32`` casts are exact whenever the wrap is
skipped (the bounds keep every value far inside int32).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from spikeship.errors import SimulationError

# lava/proc/lif/models.py, AbstractPyLifModelFixed.__init__
DS_OFFSET = 1            # ds_offset: added to du
DM_OFFSET = 0            # dm_offset: added to dv
UV_BITWIDTH = 24         # u, v are 24-bit
MAX_UV = 2 ** (UV_BITWIDTH - 1)   # max_uv_val
DECAY_SHIFT = 12         # decay_shift
DECAY_UNITY = 2 ** DECAY_SHIFT    # decay_unity
VTH_SHIFT = 6            # vth_shift
ACT_SHIFT = 6            # act_shift
CONV_BITS = 24           # lava/proc/conv/models.py, PyConvModelFixed.clamp_precision
INT32_LIMIT = 2 ** 31
FLOAT32_EXACT = 2 ** 24  # every integer of magnitude <= 2^24 is a float32
FLOAT64_EXACT = 2 ** 52  # (conservative) and <= 2^53 a float64


def wrap32(x: torch.Tensor) -> torch.Tensor:
    """numpy ``int32`` two's-complement wrap of an int64 tensor (``x mod 2^32`` signed)."""
    return ((x + INT32_LIMIT) & (2 * INT32_LIMIT - 1)) - INT32_LIMIT


def signed_clamp(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``lava/proc/conv/utils.py``, ``signed_clamp``: ``(x + 2^(b-1)) % 2^b - 2^(b-1)``."""
    base = 1 << bits
    return torch.remainder(x + base // 2, base) - base // 2


def trunc_shift12(x: torch.Tensor) -> torch.Tensor:
    """``np.sign(x) * np.right_shift(np.abs(x), decay_shift)``: ``x / 4096`` toward zero."""
    return torch.sign(x) * (torch.abs(x) >> DECAY_SHIFT)


# ----------------------------------------------------------------------------- weights
def lava_synapse_weights(w: np.ndarray, num_weight_bits: int = 8) -> np.ndarray:
    """The weights a Lava ``Dense``/``Sparse`` fixed-point model uses (int64 copy).

    Mirrors ``AbstractPyDenseModelBitAcc.run_spk`` (first step): ``sign_mode =
    determine_sign_mode(weights)``, ``clip_weights(weights, sign_mode, num_bits=8)``,
    ``truncate_weights(weights, sign_mode, num_weight_bits)`` from
    ``lava/utils/weightutils.py``. ``w`` holds the matrix's values (for a Sparse
    matrix its stored entries; the implicit zeros cannot change the sign mode:
    ``np.min``/``np.max`` of a CSR matrix include them, and a zero never decides
    between excitatory, inhibitory and mixed differently).
    """
    w = np.asarray(w).astype(np.int64)
    if w.size == 0:
        return w
    lo, hi = int(w.min()), int(w.max())
    mixed, inhib = lo < 0 < hi, hi <= 0 and lo < 0   # determine_sign_mode (min >= 0: excit.)
    if inhib:
        w = -w
    w = np.clip(w, -(2 ** 8) * int(mixed), 2 ** 8 - 1)          # clip_weights
    k = 8 - num_weight_bits + int(mixed)                           # truncate_weights
    w = (w >> k) << k
    return -w if inhib else w


# ----------------------------------------------------------------------------- LIF
def _wrap16(a: np.ndarray) -> np.ndarray:
    return ((a + 2 ** 15) % 2 ** 16) - 2 ** 15


@dataclass(frozen=True, eq=False)
class LifParams:
    """One ``LIFReset`` population's constants as the fixed-point model uses them.

    ``u_factor = 4096 - (du + ds_offset)``, ``v_factor = 4096 - (dv + dm_offset)``,
    ``vth_eff = vth << vth_shift`` (``scale_threshold``), ``bias`` the per-neuron
    ``effective_bias`` (``scale_bias``; flat NIR C-order). ``guarded`` selects the
    int32-wrapping path: needed only when ``|a_in| < 2^17`` or ``|bias| < 2^24`` is not
    guaranteed (``a_in_bound``: the sum of the incoming operators' bounds), since then
    ``|a_in << 6| < 2^23``, ``|u| <= 2^23`` and every int32 sum stays far in range.
    """

    u_factor: int
    v_factor: int
    vth_eff: int
    bias: torch.Tensor           # (size,) int64
    guarded: bool

    @classmethod
    def build(cls, du: int, dv: int, vth: int, bias_mant: np.ndarray, bias_exp: np.ndarray,
              a_in_bound: int, device) -> LifParams:
        # bias_mant, bias_exp: LavaPyType(np.ndarray, np.int16): stored as int16
        mant = _wrap16(np.asarray(bias_mant).astype(np.int64).ravel())
        exp = _wrap16(np.broadcast_to(np.asarray(bias_exp).astype(np.int64),
                                      np.shape(bias_mant)).ravel())
        # scale_bias: np.where(bias_exp >= 0, left_shift(mant, exp), right_shift(mant, -exp))
        bias = np.where(exp >= 0, mant << np.maximum(exp, 0), mant >> np.maximum(-exp, 0))
        bias = wrap32(torch.as_tensor(bias, dtype=torch.int64))   # computed in int32
        guarded = (a_in_bound << ACT_SHIFT >= MAX_UV
                   or int(bias.abs().max().item() if bias.numel() else 0) >= 2 ** 24)
        return cls(DECAY_UNITY - (int(du) + DS_OFFSET), DECAY_UNITY - (int(dv) + DM_OFFSET),
                   int(vth) << VTH_SHIFT, bias.to(device), bool(guarded))


def lif_step(u: torch.Tensor, v: torch.Tensor, a_in: torch.Tensor,
             p: LifParams) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of ``AbstractPyLifModelFixed`` (``subthr_dynamics``, then
    ``PyLifResetModelBitAcc.spiking_activation`` and ``reset_voltage``).

    ``u``, ``v``, ``a_in``: int64 ``(batch, size)``. Returns the new ``u``, ``v`` and
    the spikes (bool). A decay factor of 0 (``du = 4095``) or 4096 (``dv = 0``) skips
    the product, which is exact: ``sgn(0) * 0 = 0`` and ``(4096 |v|) >> 12 = |v|``.
    """
    # decayed_curr = np.int64(self.u) * (self.decay_unity - decay_const_u)
    # decayed_curr = np.sign(decayed_curr) * np.right_shift(np.abs(decayed_curr), 12)
    # activation_in = np.left_shift(activation_in, self.act_shift); decayed_curr += ...
    if p.guarded:                # a_in: int32 sum of the ports; shift and add in int32
        act = wrap32(wrap32(a_in) << ACT_SHIFT)
    else:
        act = a_in << ACT_SHIFT
    if p.u_factor == 0:
        x = act
    else:
        x = trunc_shift12(u * p.u_factor) + act
        if p.guarded:
            x = wrap32(x)
    # wrapped_curr = np.where(decayed_curr > max_uv_val, decayed_curr - 2 * max_uv_val, ...)
    # wrapped_curr = np.where(wrapped_curr <= -max_uv_val, decayed_curr + 2 * max_uv_val, ...)
    # (a no-op when u does not decay and |a_in| < 2^17: then |x| < 2^23)
    if p.u_factor == 0 and not p.guarded:
        u = x
    else:
        w = torch.where(x > MAX_UV, x - 2 * MAX_UV, x)
        u = torch.where(w <= -MAX_UV, x + 2 * MAX_UV, w)
    # decayed_volt = np.int64(self.v) * (self.decay_unity - decay_const_v) ... (as for u)
    # updated_volt = decayed_volt + self.u + self.effective_bias  (int32)
    if p.v_factor == DECAY_UNITY:
        y = v + u + p.bias
    elif p.v_factor == 0:
        y = u + p.bias
    else:
        y = trunc_shift12(v * p.v_factor) + u + p.bias
    if p.guarded:
        y = wrap32(y)
    # self.v[:] = np.clip(updated_volt, neg_voltage_limit, pos_voltage_limit)
    v = torch.clamp(y, -MAX_UV + 1, MAX_UV - 1)
    # spiking_activation: self.v > self.effective_vth;  reset_voltage: self.v[s] = 0
    s = v > p.vth_eff
    v = v * ~s
    return u, v, s


def feedforward_fast(p: LifParams) -> bool:
    """Whether :func:`lif_run_feedforward` may run population ``p`` (no recurrence is
    checked by the caller): ``u`` does not decay (``du = 4095``), no int32 guard is
    needed and the threshold is a 17-bit one (``vth << 6 < 2^23 - 1``)."""
    return p.u_factor == 0 and not p.guarded and p.vth_eff < MAX_UV - 1


def lif_run_feedforward(a_in: torch.Tensor, p: LifParams,
                        v_record: torch.Tensor | None = None) -> torch.Tensor:
    """All ``T`` steps of a population whose input does not depend on its own spikes
    and whose ``u`` does not decay (LIF and IF: ``du = 4095``); :func:`lif_step`
    specialised, bit for bit, for speed.

    ``a_in``: int64 ``(batch, T, size)``, the whole input; returns the spikes (bool,
    same shape) and writes ``v`` after each step into ``v_record`` if given. With
    ``u_factor = 0`` and ``|a_in| < 2^17`` (not guarded) ``lif_step`` reduces to::

        u = a_in << 6                      (|u| < 2^23: the 24-bit wrap is a no-op)
        v = max(sgn(y) (|y| >> 12) + u + bias, -2^23 + 1),  y = v * v_factor
        s = v > vth << 6;  v = v * !s

    where the upper clip at ``2^23 - 1`` is dropped because it cannot change the
    result: ``vth << 6 <= (2^17 - 1) * 64 < 2^23 - 1``, so a ``v`` it would clip
    spikes either way and is reset to 0. ``u + bias`` is computed for all steps at once.
    """
    ub = a_in << ACT_SHIFT                       # u = a_in << act_shift
    ub += p.bias                                 #   + effective_bias, all steps at once
    quiet = torch.empty(a_in.shape, dtype=torch.bool, device=a_in.device)
    v = torch.zeros_like(ub[:, 0])
    y, mag = torch.empty_like(v), torch.empty_like(v)     # in place: no allocation per step
    for step in range(a_in.shape[1]):
        if p.v_factor == DECAY_UNITY:
            y.copy_(v)
        elif p.v_factor == 0:
            y.zero_()
        else:                                    # y = sgn(v df) * (|v df| >> 12)
            torch.mul(v, p.v_factor, out=y)
            torch.abs(y, out=mag)
            mag.bitwise_right_shift_(DECAY_SHIFT)
            torch.sign(y, out=y)
            y.mul_(mag)
        y.add_(ub[:, step])
        y.clamp_min_(-MAX_UV + 1)
        q = quiet[:, step]
        torch.le(y, p.vth_eff, out=q)            # q = !s
        torch.mul(y, q, out=v)                   # v[s] = 0
        if v_record is not None:
            v_record[:, step] = v
    return ~quiet


# ----------------------------------------------------------------------------- synapses
@dataclass(eq=False)
class SynapseOp:
    """A Lava connection process as a batched integer operator.

    ``forward(s)`` takes the source's output ``(batch, *source_shape)`` (spikes as bool
    or 0/1, or graded int payloads) and returns ``a_out`` int64 ``(batch, target_size)``:
    exactly the int32 vector the Lava process sends one step later. The wraps of Lava's
    int32 (Dense/Sparse) and 24-bit (Conv) results are applied unless ``bound`` proves
    them no-ops.
    """

    kind: str                      # "dense" | "sparse" | "conv"
    weight: torch.Tensor           # float; (in, out) matrix (W^T, or the conv's matrix),
    #                                (out, in) CSR (large sparse), or the NIR conv kernel
    graded: bool                   # num_message_bits > 0
    weight_exp: int
    bound: int                     # max |sum| of one output (before the exponent)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    kernel: bool = False           # conv evaluated with F.conv2d (else as a matrix)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        dt = self.weight.dtype
        if not self.graded:          # s_in = self.s_in.recv().astype(bool)
            x = (s if s.dtype == torch.bool else s != 0).to(dt)
        else:                        # s_in = self.s_in.recv()  (int32 payload)
            x = s.to(dt)
        if self.kernel:
            # utils.conv -> conv_scipy (float64 sums), .astype(int32)
            acc = F.conv2d(x, self.weight, stride=self.stride, padding=self.padding,
                           dilation=self.dilation, groups=self.groups)
            acc = torch.round(acc).reshape(acc.shape[0], -1)
        elif self.weight.is_sparse_csr:
            acc = torch.sparse.mm(self.weight, x.reshape(x.shape[0], -1).t()).t()
        else:                        # weights[:, s_in].sum(axis=1) / weights.dot(s_in)
            acc = x.reshape(x.shape[0], -1) @ self.weight
        acc = acc.to(torch.int64)
        if self.kind == "conv":      # PyConvModelFixed.clamp_precision: signed_clamp(bits=24)
            return signed_clamp(acc, CONV_BITS) if self.bound >= 2 ** (CONV_BITS - 1) else acc
        if self.graded and self.bound >= INT32_LIMIT:
            acc = wrap32(acc)        # self.weights.dot(s_in): int32 accumulation
        # a_buff = left_shift(a_accum, weight_exp) if weight_exp > 0 else right_shift(...)
        if self.weight_exp > 0:
            acc = acc << self.weight_exp
        elif self.weight_exp < 0:
            acc = acc >> -self.weight_exp
        return wrap32(acc) if self.shifted_bound >= INT32_LIMIT else acc   # int32 channel

    @property
    def shifted_bound(self) -> int:
        return self.bound << max(self.weight_exp, 0)

    @property
    def out_bound(self) -> int:
        """Max ``|a_out|`` (after the exponent and the port's int32)."""
        if self.kind == "conv":
            return min(self.bound, 2 ** (CONV_BITS - 1))
        return min(self.shifted_bound, INT32_LIMIT)


MATRIX_MAX_ENTRIES = 2 ** 22   # larger Sparse layers stay CSR; larger convs stay kernels


def _float_dtype(bound: int, device: torch.device, allow_float32: bool) -> torch.dtype:
    if bound >= FLOAT64_EXACT:
        raise SimulationError(f"integer sums up to {bound} cannot be computed exactly in "
                              f"float64; the emulator refuses rather than differ from Lava")
    if allow_float32 and device.type == "cpu" and bound < FLOAT32_EXACT:
        return torch.float32
    return torch.float64


def dense_op(w: np.ndarray, *, graded: bool, weight_exp: int, input_max: int,
             device: torch.device, sparse: bool = False, allow_float32: bool = True) -> SynapseOp:
    """``Dense``/``Sparse`` of weights ``w`` ``(out, in)`` (already Lava's weights).

    A large Sparse layer (more than ``MATRIX_MAX_ENTRIES``) is multiplied as a torch
    CSR matrix, a smaller one as a dense matrix holding zeros where synapses are absent
    (the same integer sums, faster).
    """
    w = np.asarray(w, dtype=np.int64)
    bound = int(np.abs(w).sum(axis=1).max(initial=0)) * max(int(input_max), 1)
    dt = _float_dtype(bound, device, allow_float32=allow_float32)
    if sparse and w.size > MATRIX_MAX_ENTRIES:
        wt = torch.as_tensor(w, dtype=dt).to_sparse_csr()
    else:
        wt = torch.as_tensor(w.T.copy(), dtype=dt)
    return SynapseOp("sparse" if sparse else "dense", wt.to(device), graded, int(weight_exp),
                     bound)


def conv_op(w: np.ndarray, *, source_shape, graded: bool, input_max: int, stride, padding,
            dilation, groups: int, device: torch.device,
            allow_float32: bool = True) -> SynapseOp:
    """``Conv`` with NIR/torch kernel ``w`` ``(C_out, C_in / groups, kH, kW)`` reading a
    ``source_shape`` ``(C, H, W)`` input.

    When the layer's ``in x out`` matrix has at most ``MATRIX_MAX_ENTRIES`` entries it
    is built once (the convolution of every one-hot input, exact in float64) and each
    step is a matrix product like a Dense layer's; otherwise ``F.conv2d`` in float64
    with the result rounded (an algorithm may reorder the sum; its error is far below
    0.5 for sums under ``2^52``).
    """
    w = np.asarray(w, dtype=np.int64)
    bound = int(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max(initial=0)) \
        * max(int(input_max), 1)
    kw = dict(stride=tuple(stride), padding=tuple(padding), dilation=tuple(dilation),
              groups=int(groups))
    k64 = torch.as_tensor(w, dtype=torch.float64)
    n_in = int(np.prod(source_shape))
    n_out = int(F.conv2d(torch.zeros(1, *source_shape, dtype=torch.float64), k64, **kw).numel())
    if n_in * n_out <= MATRIX_MAX_ENTRIES:
        eye = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *source_shape)
        mat = F.conv2d(eye, k64, **kw).reshape(n_in, n_out)
        dt = _float_dtype(bound, device, allow_float32=allow_float32)
        return SynapseOp("conv", mat.to(dt).to(device), graded, 0, bound, **kw)
    _float_dtype(bound, device, allow_float32=False)
    return SynapseOp("conv", k64.to(device), graded, 0, bound, kernel=True, **kw)
