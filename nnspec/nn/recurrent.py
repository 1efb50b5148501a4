"""Recurrent layers and embeddings: the JAX side, one example at a time.

A cell is one step, `(params, state, xw_t) -> (state, h_t)`, where `xw_t` is the step's
input already multiplied by the input kernel (x·W + b, for every step at once: one
matrix product instead of one per step). `jax.lax.scan` runs the cell over the time
axis, as flax's `RNN` does; the backward cell of a bidirectional layer is the same
forward scan over the time-reversed sequence, its outputs flipped back into time order
(`_scan`: the same steps in the same order as `reverse=True`, and a program that ONNX
converters express, which a reverse scan is not). The example is
(steps, features), or that with leading axes (a batch, or several under vmap): time is
moved to the front for the scan, and every operation inside a step works on the last
axis, so the leading axes are carried along.

Gate order and equations are Keras's (nnspec/layers/recurrent.py names the arrays):

    simple_rnn  h = g(x·W + h₋·U + b [+ b_rec])
    lstm        i, f, c̃, o = split(x·W + h₋·U + b [+ b_rec], 4)
                c = σ(f)·c₋ + σ(i)·g(c̃);  h = σ(o)·g(c)
    gru         z, r, h̃ = split(x·W + b, 3),  zu, ru, hu = split(h₋·U + b_rec, 3)
                z = σ(z + zu);  r = σ(r + ru)
                h̃ = g(h̃ + r·hu)               (reset_after=true: Keras 2, cuDNN)
                h̃ = g(h̃ + (r·h₋)·U_h)         (reset_after=false: Keras 1, the 2014 paper)
                h = z·h₋ + (1 − z)·h̃

with g the `activation` (tanh) and σ the `recurrent_activation` (sigmoid).

In training, `drop_prob` multiplies x by a mask and `recurrent_drop_prob` multiplies h₋ by
another wherever h₋ enters a product with U (not in the GRU's z·h₋, nor the LSTM's cell),
each mask drawn once per example and direction and kept for every step, 0 or 1/(1 − p),
as Keras 3's cells (`get_dropout_mask`, `get_recurrent_dropout_mask`) do.
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from nnspec.checked import Fn
from nnspec.nn.base import LayerImpl, _act_hparams, activate, initializer, keep_mask

Array = jax.Array

_GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


class Recurrent(LayerImpl):
    """simple_rnn, lstm and gru: one cell each (`_cell`), the rest shared."""

    def init(self, key: Array) -> dict[str, Array]:
        p = self.layer.params
        shapes = self.layer.param_shapes
        units = p["units"]
        out: dict[str, Array] = {}
        directions = ("", "_back") if p["bidirectional"] else ("",)
        for suffix, k in zip(directions, jax.random.split(key, len(directions))):
            kw, ku, kb, kr = jax.random.split(k, 4)
            out["w" + suffix] = initializer(p["init"])(kw, shapes["w" + suffix]).astype(jnp.float32)
            out["u" + suffix] = initializer(p["recurrent_init"])(ku, shapes["u" + suffix]).astype(jnp.float32)
            if "b" + suffix in shapes:
                b = initializer(p["bias_init"])(kb, shapes["b" + suffix]).astype(jnp.float32)
                if self.layer.op == "lstm":  # Keras's unit_forget_bias: the forget gate starts open
                    b = b.at[units:2 * units].set(p["forget_bias"])
                out["b" + suffix] = b
            if "b_rec" + suffix in shapes:
                out["b_rec" + suffix] = initializer(p["bias_init"])(kr, shapes["b_rec" + suffix]).astype(jnp.float32)
        return out

    def hparams(self) -> dict[str, float]:
        p = self.layer.params
        return {"l1": p["l1"], "l2": p["l2"], **_act_hparams(p["activation"])}

    # -- one step
    def _acts(self, hp: Mapping[str, Array]) -> tuple[Callable[[Array], Array], Callable[[Array], Array]]:
        """g and σ. The activation's parameters are traced (hp), as dense's; the recurrent
        activation's are constants of the program (a sweep compiles one per value)."""
        p = self.layer.params
        rec: Fn | None = p.get("recurrent_activation")
        rec_hp = dict(rec.params) if rec is not None else {}
        return (lambda v: activate(p["activation"], v, hp)), (lambda v: activate(rec, v, rec_hp))

    def _cell(self, params: Mapping[str, Array], suffix: str, hp: Mapping[str, Array], rmask: Array | None = None):
        """(state, xw_t) -> (state, h_t) for this layer's kind; the initial state's parts.
        `rmask`: recurrent dropout's mask on h₋ where it meets U."""
        g, sigma = self._acts(hp)
        u = params["u" + suffix]
        units = self.layer.params["units"]
        op = self.layer.op
        b_rec = params.get("b_rec" + suffix)

        def hm(h):  # h₋ as the recurrent kernel sees it
            return h if rmask is None else h * rmask

        def hu(h):  # h₋·U, with the recurrent bias where there is one
            return hm(h) @ u if b_rec is None else hm(h) @ u + b_rec
        if op == "simple_rnn":
            def rnn(h, xw):
                h = g(xw + hu(h))
                return h, h
            return rnn, 1
        if op == "lstm":
            def lstm(state, xw):
                h, c = state
                i, f, cc, o = jnp.split(xw + hu(h), 4, axis=-1)
                c = sigma(f) * c + sigma(i) * g(cc)
                h = sigma(o) * g(c)
                return (h, c), h
            return lstm, 2
        reset_after = self.layer.params["reset_after"]

        def gru(h, xw):
            xz, xr, xh = jnp.split(xw, 3, axis=-1)
            if reset_after:
                hz, hr, hh = jnp.split(hu(h), 3, axis=-1)
                z, r = sigma(xz + hz), sigma(xr + hr)
                cand = g(xh + r * hh)
            else:
                hz, hr = jnp.split(hm(h) @ u[:, :2 * units], 2, axis=-1)
                z, r = sigma(xz + hz), sigma(xr + hr)
                cand = g(xh + (r * hm(h)) @ u[:, 2 * units:])
            h = z * h + (1 - z) * cand
            return h, h
        return gru, 1

    def _masks(self, x: Array, key: Array | None) -> tuple[Array | None, Array | None]:
        """Dropout's masks of one direction, (..., features) and (..., units): 0 or 1/(1 − p)
        for each example, the same at every step; None where that dropout is off (no key:
        not training, or no dropout)."""
        p = self.layer.params
        probs = (p["drop_prob"], p["recurrent_drop_prob"])
        if key is None:
            return None, None
        lead = x.shape[:-2]
        out: list[Array | None] = []
        for prob, width, k in zip(probs, (x.shape[-1], p["units"]), jax.random.split(key)):
            if not prob:
                out.append(None)
                continue
            keep = 1.0 - prob
            out.append(jnp.where(keep_mask(k, lead + (width,), keep), 1.0 / keep, 0.0).astype(x.dtype))
        return out[0], out[1]

    def _run(self, params: Mapping[str, Array], x: Array, suffix: str, hp: Mapping[str, Array],
             masks: tuple[Array | None, Array | None] = (None, None)) -> Array:
        """One direction over the whole sequence: (..., steps, units) or (..., units)."""
        p = self.layer.params
        xmask, rmask = masks
        if xmask is not None:
            x = x * xmask[..., None, :]  # the same features dropped at every step
        xw = x @ params["w" + suffix]
        if "b" + suffix in params:
            xw = xw + params["b" + suffix]
        xw = jnp.moveaxis(xw, -2, 0)  # time first, for the scan
        cell, parts = self._cell(params, suffix, hp, rmask)
        zeros = jnp.zeros(xw.shape[1:-1] + (p["units"],), xw.dtype)
        state = zeros if parts == 1 else (zeros,) * parts
        state, hs = _scan(cell, state, xw, reverse=suffix == "_back")
        if p["sequences"]:
            return jnp.moveaxis(hs, 0, -2)
        # the last step's output: forward, after x[-1]; backward, after x[0]
        return state if parts == 1 else state[0]

    def apply(self, params, x, hp, *, key, train):
        p = self.layer.params
        # keys only where there is dropout: without it, the program is the one it always was
        dropping = train and bool(p["drop_prob"] or p["recurrent_drop_prob"])
        if dropping and key is None:
            raise ValueError(f"layer `{self.layer.name}` ({self.layer.op}) needs a `key` in training")
        keys = jax.random.split(key) if dropping else (None, None)
        y = self._run(params, x, "", hp, self._masks(x, keys[0]))
        if not p["bidirectional"]:
            return y
        back = self._run(params, x, "_back", hp, self._masks(x, keys[1]))
        if p["merge"] == "concat":
            return jnp.concatenate([y, back], axis=-1)
        return y + back if p["merge"] == "sum" else (y + back) / 2


def _scan(cell: Callable, state, xs: Array, *, reverse: bool):
    """`jax.lax.scan(cell, state, xs, reverse=reverse)`, the reverse one written as a
    forward scan between two flips: jax2onnx has no reverse scan ("Reverse scan is not
    supported in IR pipeline"), and the cell sees the same inputs in the same order."""
    if not reverse:
        return jax.lax.scan(cell, state, xs)
    state, hs = jax.lax.scan(cell, state, jnp.flip(xs, axis=0))
    return state, jax.tree_util.tree_map(lambda h: jnp.flip(h, axis=0), hs)


LAYERS: dict[str, type[LayerImpl]] = {name: Recurrent for name in _GATES}
