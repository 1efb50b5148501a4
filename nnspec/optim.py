"""The optimizer and learning-rate schedule registries: one row each, pure Python.

Hyperparameters are named as in the papers. lower.py turns each row into an optax
composition; `slots` is how many parameter-sized arrays of state it keeps (for the
memory budget), `lr_warn` the learning rate above which the checker warns.
"""

from __future__ import annotations

from nnspec.params import Bool, Choice, Entry, Float, Int, P, Param, Registry, Symbol, Union, Word

_LR = Union((Float(gt=0), Symbol("schedule")))


def _lr(default: float) -> Param:
    return P("lr", _LR, default, "learning rate η: a number or a schedule")


# Step counts become int32 arrays on the device: a larger one would overflow there.
_STEPS = Int(min=0, max=2**31 - 1)

_COMMON = (
    P("clip_norm", Float(gt=0), None, "clip the gradient's global norm to this"),
    P("clip_value", Float(gt=0), None, "clip each gradient entry to [−v, v]"),
    P("warmup", _STEPS, 0, "steps of linear warm-up from 0 to the learning rate"),
)

OPTIMIZERS = Registry("optimizer", [
    Entry("sgd", (_lr(0.01), *_COMMON), doc="w ← w − η·∇L", attrs={"slots": 0, "lr_warn": 1.0}),
    Entry("momentum", (_lr(0.01), P("momentum", Float(ge=0, lt=1), 0.9, "momentum coefficient μ"),
                       P("lr_in_velocity", Bool(), False,
                         "`true`: v ← μ·v + η·∇L, then w ← w − v (Caffe's and Keras's SGD), which differs "
                         "from the default only where η changes from step to step"), *_COMMON),
          doc="v ← μ·v + ∇L;  w ← w − η·v", attrs={"slots": 1, "lr_warn": 1.0}),
    Entry("nesterov", (_lr(0.01), P("momentum", Float(ge=0, lt=1), 0.9, "momentum coefficient μ"), *_COMMON),
          doc="momentum with the gradient taken at the look-ahead point", attrs={"slots": 1, "lr_warn": 1.0}),
    Entry("adagrad", (_lr(0.01), P("initial_accumulator", Float(ge=0), 0.1, "starting value of Σg²"),
                      P("eps", Float(gt=0), 1e-7, "ε added for numerical stability"), *_COMMON),
          doc="w ← w − η·g / √(Σg² + ε)", attrs={"slots": 1, "lr_warn": 1.0}),
    Entry("adadelta", (_lr(1.0), P("rho", Float(ge=0, lt=1), 0.95, "decay rate ρ of the running averages"),
                       P("eps", Float(gt=0), 1e-6, "ε added for numerical stability"), *_COMMON),
          doc="Zeiler's Adadelta: step size from running averages of g² and Δw²",
          attrs={"slots": 2, "lr_warn": 10.0}),
    Entry("adam", (_lr(1e-3), P("beta1", Float(ge=0, lt=1), 0.9, "decay rate β₁ of the first moment"),
                   P("beta2", Float(ge=0, lt=1), 0.999, "decay rate β₂ of the second moment"),
                   P("eps", Float(gt=0), 1e-8, "ε added for numerical stability"), *_COMMON),
          doc="Kingma & Ba's Adam", attrs={"slots": 2, "lr_warn": 0.1}),
    Entry("adamw", (_lr(1e-3), P("beta1", Float(ge=0, lt=1), 0.9, "decay rate β₁ of the first moment"),
                    P("beta2", Float(ge=0, lt=1), 0.999, "decay rate β₂ of the second moment"),
                    P("eps", Float(gt=0), 1e-8, "ε added for numerical stability"),
                    P("weight_decay", Float(ge=0), 1e-4, "decoupled weight decay λ"), *_COMMON),
          doc="Adam with decoupled weight decay (Loshchilov & Hutter)", attrs={"slots": 2, "lr_warn": 0.1}),
    Entry("rmsprop", (_lr(1e-3), P("decay", Float(ge=0, lt=1), 0.9, "decay rate ρ of the running average of g²"),
                      P("eps", Float(gt=0), 1e-8, "ε added for numerical stability"),
                      P("momentum", Float(ge=0, lt=1), 0.0, "momentum coefficient"),
                      P("centered", Bool(), False, "divide by the variance rather than the second moment"),
                      *_COMMON),
          doc="Hinton's RMSProp: w ← w − η·g / √(E[g²] + ε)", attrs={"slots": 2, "lr_warn": 0.1}),
])

_INITIAL = P("initial", Float(gt=0), required=True, doc="the learning rate at step 0")

SCHEDULES = Registry("schedule", [
    Entry("constant", (P("value", Float(gt=0), required=True, positional=True, doc="the learning rate"),),
          doc="the same learning rate at every step"),
    Entry("step_decay", (_INITIAL, P("factor", Float(gt=0, le=1), 0.5, "what the rate is multiplied by, every `every` steps"),
                         P("every", Int(min=1, max=_STEPS.max), required=True, doc="steps between multiplications by `factor`")),
          doc="initial · factor^⌊step / every⌋"),
    Entry("exponential_decay", (_INITIAL, P("rate", Float(gt=0, le=1), required=True, doc="decay rate"),
                                P("every", Int(min=1, max=_STEPS.max), required=True, doc="steps over which lr decays by `rate`")),
          doc="initial · rate^(step / every)"),
    Entry("cosine_decay", (_INITIAL, P("steps", Int(min=1, max=_STEPS.max), required=True, doc="steps to decay over"),
                           P("final", Float(ge=0), 0.0, "learning rate at the end, as a fraction of initial")),
          doc="half a cosine from initial down to final·initial over `steps`"),
    Entry("inverse_time_decay", (_INITIAL, P("rate", Float(gt=0), required=True, doc="decay rate d"),
                                 P("power", Float(gt=0), 1.0, "exponent p"),
                                 P("every", Int(min=1, max=_STEPS.max), 1, "steps per unit of t")),
          doc="initial / (1 + rate · step / every)^power: Keras's `decay=` (power 1), Caffe's `inv`"),
    Entry("reduce_on_plateau", (_INITIAL,
                                P("factor", Float(gt=0, lt=1), 0.1, "what the rate is multiplied by on a plateau"),
                                P("patience", Int(min=0, max=_STEPS.max), 10,
                                  "epochs without improvement before the rate is lowered"),
                                P("min_lr", Float(ge=0), 0.0, "the rate is never lowered below this"),
                                P("min_delta", Float(ge=0), 1e-4, "smallest change that counts as improvement"),
                                P("cooldown", Int(min=0, max=_STEPS.max), 0,
                                  "epochs after a reduction before waiting starts again"),
                                P("monitor", Word(), "val_loss", "the metric to watch, as in `val_loss`"),
                                P("mode", Choice(("auto", "min", "max")), "auto", "whether lower or higher is better")),
          doc="initial, multiplied by `factor` after `patience` epochs in which the monitored metric "
              "did not improve (Keras's ReduceLROnPlateau)"),
])
