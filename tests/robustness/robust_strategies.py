"""Hypothesis strategies for *checkable* specs, built from the registries, and for
mutations of them. Shared by the robustness tests (imported by file path: the tests
folder has no `__init__.py`)."""

from __future__ import annotations

import re

from hypothesis import strategies as st

from nnspec.datasets import DATASETS
from nnspec.layers import ACTIVATIONS, INITIALIZERS, LAYERS
from nnspec.losses import LOSSES, METRICS, metric_key
from nnspec.optim import OPTIMIZERS, SCHEDULES
from nnspec.params import Bool, Choice, Float, Int, Symbol, Union

SYMBOLS = {"activation": ACTIVATIONS, "initializer": INITIALIZERS, "schedule": SCHEDULES}


# ------------------------------------------------------------------- values by param type

def _float_text(draw, t: Float) -> str:
    lo = t.ge if t.ge is not None else t.gt if t.gt is not None else -10.0
    hi = t.le if t.le is not None else t.lt if t.lt is not None else 10.0
    if t.gt is not None or (t.ge is not None and t.ge == 0 and draw(st.booleans())):
        lo = max(lo, 1e-6) if t.gt is not None else lo
    if t.lt is not None:
        hi = hi - 1e-3
    v = draw(st.floats(lo, hi, allow_nan=False, allow_infinity=False))
    if t.gt is not None and v <= t.gt:
        v = t.gt + 1e-6
    text = draw(st.sampled_from([f"{v:g}", repr(v), f"{v:.3e}"]))
    value = float(text)
    # the rounding of the text form must stay in range
    if ((t.ge is not None and value < t.ge) or (t.gt is not None and value <= t.gt)
            or (t.le is not None and value > t.le) or (t.lt is not None and value >= t.lt)):
        text = repr(v)
    return text


def value_text(draw, ptype, depth: int = 0) -> str | None:
    """Text for a valid value of `ptype`, or None where this generator has no form for it."""
    if isinstance(ptype, Int):
        lo = ptype.min if ptype.min is not None else 0
        hi = min(ptype.max if ptype.max is not None else lo + 50, lo + 50)
        return str(draw(st.integers(lo, hi)))
    if isinstance(ptype, Float):
        return _float_text(draw, ptype)
    if isinstance(ptype, Bool):
        return draw(st.sampled_from(["true", "false"]))
    if isinstance(ptype, Choice):
        return draw(st.sampled_from(ptype.options))
    if isinstance(ptype, Symbol) and ptype.kind in SYMBOLS and depth < 2:
        return call_text(draw, SYMBOLS[ptype.kind], depth + 1)
    if isinstance(ptype, Union):
        options = [o for o in ptype.options if _has_form(o)]
        return value_text(draw, draw(st.sampled_from(options)), depth)
    return None


def _has_form(ptype) -> bool:
    return isinstance(ptype, (Int, Float, Bool, Choice)) or (isinstance(ptype, Symbol) and ptype.kind in SYMBOLS)


def keyword_args(draw, entry, depth: int = 0, skip: tuple[str, ...] = ()) -> list[str]:
    """`k=v` for every required param and a random few of the optional ones."""
    out = []
    for p in entry.params:
        if p.name in skip or not _has_form(p.type):
            continue
        if p.required or draw(st.integers(0, 3)) == 0:
            text = value_text(draw, p.type, depth)
            if text is not None:
                out.append(f"{p.name}={text}")
    return out


def call_text(draw, registry, depth: int = 0, entry=None) -> str:
    """A name from `registry`, bare or called with valid arguments."""
    entry = entry or draw(st.sampled_from(registry.entries))
    name = draw(st.sampled_from((entry.name, *entry.aliases)))
    args = keyword_args(draw, entry, depth)
    if entry.attrs.get("check") is not None and entry.name == "uniform":
        args = [a for a in args if not a.startswith(("low=", "high="))]  # low < high is a cross-check
    if not args and not any(p.required for p in entry.params) and draw(st.booleans()):
        return name
    return f"{name}({', '.join(args)})"


# ------------------------------------------------------------------------------ specs

# the binary datasets of two features (`waves` is a sequence: a spec of its own shape)
_BINARY_SETS = [e.name for e in DATASETS if e.attrs["task"] == "binary" and tuple(e.attrs["features"]) == (2,)]
_HIDDEN_ACTS = [e for e in ACTIVATIONS if e.name not in ("softmax", "log_softmax")]


@st.composite
def checkable_specs(draw) -> str:
    """A spec that `nnspec check` accepts: real layers, losses, optimizers, data."""
    loss = draw(st.sampled_from(LOSSES.entries))
    task = loss.attrs["task"]
    logits = task != "regression" and draw(st.booleans())
    loss_args = [f"from_logits={'true' if logits else 'false'}"] if logits or draw(st.booleans()) and task != "regression" else []
    if loss.name == "categorical_crossentropy" and draw(st.booleans()):
        loss_args.append("labels=" + draw(st.sampled_from(["index", "onehot"])))
    if loss.name == "huber" and draw(st.booleans()):
        loss_args.insert(0, value_text(draw, loss.params[0].type))

    image = False
    if task == "binary":
        data = f'builtin("{draw(st.sampled_from(_BINARY_SETS))}", n={draw(st.integers(40, 600))})'
        shape, units = [2], 1
    elif task == "regression":
        data = f'builtin("regression", n={draw(st.integers(40, 600))})'
        shape, units = [1], 1
    elif draw(st.integers(0, 4)) == 0:
        image = draw(st.booleans())
        data = 'builtin("digits"' + (", image=true)" if image else ")")
        shape, units = ([8, 8, 1] if image else [64]), 10
    else:
        k = draw(st.integers(2, 12))
        data = f'builtin("blobs", n={draw(st.integers(60, 600))}, classes={k})'
        shape, units = [2], k

    lets, layers, used = [], [], set()
    width_name = None
    if draw(st.booleans()):
        width_name = draw(st.sampled_from(["hidden", "width", "h"]))
        lets.append(f"let {width_name} = {draw(st.integers(1, 64))}")

    def label() -> str:
        if draw(st.integers(0, 2)):
            return ""
        name = draw(st.sampled_from(["h1", "h2", "hidden_a", "z", "out_x", "feat"]))
        if name in used:
            return ""
        used.add(name)
        return f"{name}: "

    if image:
        layers.append(label() + "flatten")
    elif len(shape) == 1 and draw(st.integers(0, 5)) == 0:
        layers.append(label() + "flatten")  # a no-op on a flat vector, still legal
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["dense", "dense", "dropout", "activation"]))
        if kind == "dense":
            units_text = width_name if width_name and draw(st.booleans()) else str(draw(st.integers(1, 64)))
            parts = [units_text]
            if draw(st.booleans()):
                parts.append(call_text(draw, ACTIVATIONS, entry=draw(st.sampled_from(_HIDDEN_ACTS))))
            parts += keyword_args(draw, LAYERS.get("dense"), skip=("units", "activation"))
            if "trainable=false" in parts:  # a frozen layer's own penalty or rate is refused (E108)
                parts = [p for p in parts if not p.startswith(("l1=", "l2=", "lr_mult=", "bias_lr_mult="))]
            # `lr_mult=0` is refused for `trainable=false` (E117)
            parts = [p for p in parts if not (p.startswith("lr_mult=") and _is_zero(p.split("=", 1)[1]))]
            if draw(st.integers(0, 3)) == 0:
                parts = [p for p in parts if not p.startswith("init=")] + ["init=" + call_text(draw, INITIALIZERS)]
            layers.append(label() + "dense " + " ".join(parts))
        elif kind == "dropout":
            layers.append(label() + "dropout " + value_text(draw, LAYERS.get("dropout").params[0].type))
        else:
            act = draw(st.sampled_from(_HIDDEN_ACTS))
            args = keyword_args(draw, act)
            layers.append(label() + draw(st.sampled_from((act.name, *act.aliases))) + "".join(" " + a for a in args))
    if task == "binary":
        out = "dense 1" if logits else "dense 1 sigmoid"
    elif task == "multiclass":
        out = f"dense {units}" if logits else f"dense {units} softmax"
    else:
        out = draw(st.sampled_from(["dense 1", "dense 1 identity", "dense 1 linear"]))
    layers.append(label() + out)

    opt = draw(st.sampled_from(OPTIMIZERS.entries))
    opt_args = keyword_args(draw, opt, skip=("lr",))
    lr = (call_text(draw, SCHEDULES) if draw(st.integers(0, 3)) == 0
          else draw(st.sampled_from(["1e-3", "0.01", "0.05", "3e-4", "sweep(0.01, 0.1)",
                                     "sweep_log(1e-4, 0.1, n=3)", "sweep_uniform(0.001, 0.01, n=2)"])))
    opt_args.insert(0, f"lr={lr}")

    regs = []
    if draw(st.booleans()):
        # adamw has its own weight decay: giving it twice is an error (E309)
        skip = ("weight_decay",) if opt.name == "adamw" else ()
        regs = keyword_args(draw, _regularize_entry(), skip=skip) or ["l2=1e-4"]

    val = draw(st.sampled_from([0.0, 0.1, 0.2, 0.25]))
    if "reduce_on_plateau" in lr:  # its rule watches `val_loss`: a validation split to measure it on
        lr = re.sub(r",?\s*monitor=\w+", "", lr).replace("(, ", "(")
        opt_args[0] = f"lr={lr}"
        val = val or 0.2
    test = draw(st.sampled_from([0.0, 0.1, 0.2]))
    train = [f"data {data}"]
    if val or test or draw(st.booleans()):
        train.append("split" + (f" val={val}" if val else "") + (f" test={test}" if test else ""))
    train.append("batch " + draw(st.sampled_from(["1", "8", "32", "all"])))
    train.append(f"epochs {draw(st.integers(1, 300))}")
    train.append(f"seed {draw(st.integers(0, 2**31 - 1))}")
    metrics = [m.name for m in METRICS if task in m.attrs["tasks"]]
    names = draw(st.lists(st.sampled_from(metrics), unique=True, max_size=len(metrics)))
    # several classes need an averaging (E315), and `top_k` a k below their number (E314)
    written = {"top_k": "top_k(1)", **({n: f"{n}({draw(st.sampled_from(['macro', 'micro', 'weighted']))})"
                                        for n in ("precision", "recall", "f1")} if task == "multiclass" else {})}
    calls = [written.get(n, n) for n in names]
    chosen = [metric_key(n, {**METRICS.get(n).defaults(), **({"k": 1} if n == "top_k" else {}),
                             **({"average": c[len(n) + 1:-1]} if c.endswith(")") and n != "top_k" else {})})
              for n, c in zip(names, calls)]
    if calls:
        train.append("metrics " + " ".join(calls))
    if draw(st.booleans()):
        train.append(draw(st.sampled_from(["standardize", "standardize true", "standardize false"])))
    if val and draw(st.booleans()):
        monitor = draw(st.sampled_from(["val_loss"] + [f"val_{m}" for m in chosen]))
        train.append(f"early_stop monitor={monitor} patience={draw(st.integers(0, 20))}"
                     + (" restore_best=true" if draw(st.booleans()) else ""))
    train = draw(st.permutations(train))

    model_name = draw(st.sampled_from(["m", "net", "pass_class", "model_2"]))
    lines = [*lets, f"model {model_name} {{", f"    input x[{', '.join(map(str, shape))}]",
             *("    " + layer for layer in layers), "}",
             f"loss {draw(st.sampled_from((loss.name, *loss.aliases)))}" + "".join(" " + a for a in loss_args),
             f"optimizer {draw(st.sampled_from((opt.name, *opt.aliases)))} " + " ".join(opt_args)]
    if regs:
        lines.append("regularize " + " ".join(regs))
    lines += ["train {", *("    " + t for t in train), "}"]
    if draw(st.integers(0, 3)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), "# " + draw(st.text(max_size=20)).replace("\n", " "))
    return "\n".join(lines) + "\n"


def _regularize_entry():
    from nnspec.check import REGULARIZE
    return REGULARIZE


# -------------------------------------------------------------------------- mutations

TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
HUGE = ["1e999", "-1e999", "1e-999", "9" * 5000, "1" + "0" * 5000, "1e308", "3.4e39", "-0", "0.0",
        "2147483648", "9223372036854775808", "1e18", "nan", "inf", "-inf", "1_000", "0x10", "1e",
        "1.2.3", "١٢", "0" * 400 + "1", "9" * 400, "-" + "9" * 400, "1" + "0" * 309, "4" * 4300]
SPECIAL = ['"', '"\\', "\\", "#", "{", "}", "[", "]", "(", ")", ":", "=", ",", "\n", "\r", "\r\n",
           "\t", "\x00", "\x0c", "\ufeff", "é", "☃", "\u202e", "let ", "true", "false", "model m {",
           "train {", "}\n", "input x[2]\n", "x: ", "loss ", "optimizer ", "regularize ",
           "[" * 300 + "]" * 300, "[" * 400, "f(" * 150 + ")" * 150, "(" * 5000,
           "dense 1e999 relu\n", "input x[" + "9" * 30 + "]\n", "input x[0]\n", "input x[-1]\n",
           "dense 100000000000 relu\n", "input x[" + ", ".join(["100000"] * 4) + "]\n",
           "let hidden = hidden\n", "let width = [width]\n", "let h = relu\n", "let hidden = width\n",
           "let width = hidden\n", "let h = cosine_decay(initial=h, steps=10)\n",
           # sweeps: many models from one spec
           "sweep(0.1, 0.01)", "sweep_log(1e-4, 1, n=4)", "sweep_uniform(0, 1, n=1000000000)",
           "sweep_log(1, 1e999, n=3)", "sweep(sweep(1))", " seed sweep(0, 1, 2)\n"]
# Names from every registry, so a mutation can put a right name in the wrong place.
NAMES = sorted({n for r in (LAYERS, ACTIVATIONS, INITIALIZERS, LOSSES, METRICS, OPTIMIZERS, SCHEDULES, DATASETS)
                for n in r.names()} | {"model", "loss", "optimizer", "regularize", "train", "data", "split",
                                       "batch", "epochs", "seed", "metrics", "early_stop", "standardize",
                                       "input", "let", "builtin", "csv", "npz", "all", "true", "false",
                                       # the generator's own constants, so a mutation can make them circular
                                       "hidden", "width", "h", "sweep", "sweep_log", "sweep_uniform"})
_NUMBER = re.compile(r"[+-]?\.?\d[\w.]*")


@st.composite
def mutated(draw, base: st.SearchStrategy[str] | None = None) -> str:
    """A checkable spec with one to five random edits."""
    text = draw(base if base is not None else checkable_specs())
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3, 5]))):
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "truncate", "insert", "special",
                                     "huge", "name", "line"]))
        tokens = TOKEN.findall(text)
        if kind in ("delete", "duplicate", "swap", "huge", "name") and tokens:
            i = draw(st.integers(0, len(tokens) - 1))
            if kind == "delete":
                del tokens[i]
            elif kind == "duplicate":
                tokens.insert(i, tokens[i])
            elif kind == "swap":
                j = draw(st.integers(0, len(tokens) - 1))
                tokens[i], tokens[j] = tokens[j], tokens[i]
            elif kind == "huge":
                numbers = [k for k, t in enumerate(tokens) if _NUMBER.fullmatch(t)] or [i]
                tokens[draw(st.sampled_from(numbers))] = draw(st.sampled_from(HUGE))
            else:
                words = [k for k, t in enumerate(tokens) if t[:1].isalpha()] or [i]
                tokens[draw(st.sampled_from(words))] = draw(st.sampled_from(NAMES))
            text = "".join(tokens)
        elif kind == "truncate":
            text = text[:draw(st.integers(0, len(text)))]
        elif kind == "line":
            lines = text.splitlines(keepends=True)
            if lines:
                i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
                op = draw(st.sampled_from(["drop", "copy", "move"]))
                if op == "drop":
                    del lines[i]
                elif op == "copy":
                    lines.insert(j, lines[i])
                else:
                    lines.insert(j, lines.pop(i))
                text = "".join(lines)
        else:
            at = draw(st.integers(0, len(text)))
            new = draw(st.sampled_from(SPECIAL + HUGE) if kind == "special" else
                       st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=4))
            text = text[:at] + new + text[at:]
    return text


@st.composite
def mutated_bytes(draw) -> bytes:
    """A spec's bytes with random bytes inserted or overwritten (often not UTF-8)."""
    data = bytearray(draw(st.one_of(checkable_specs(), mutated())).encode("utf-8"))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        chunk = draw(st.one_of(st.binary(min_size=1, max_size=6),
                               st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3", b"\xe2\x98", b"\xed\xa0\x80",
                                                b"\x00", b"\xef\xbb\xbf", b"\xc0\xaf", b"\x80"])))
        if draw(st.booleans()):
            data[at:at + len(chunk)] = chunk
        else:
            data[at:at] = chunk
    return bytes(data)


def _is_zero(text: str) -> bool:
    try:
        return float(text) == 0
    except ValueError:
        return False
