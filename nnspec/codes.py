"""The catalog of diagnostic codes: a title and a long explanation each, for `nnspec explain`.

E0xx: syntax and structure (parse.py). E1xx: names and arguments. E2xx: shapes.
E3xx: agreement between loss, output, metrics, data and resources. E4xx: problems
found while training (data, divergence, checkpoints). Wxxx: warnings.
A test asserts that every code the compiler can emit is here and has a UI test.
"""

from __future__ import annotations

CODES: dict[str, tuple[str, str]] = {
    "E001": ("unexpected token", """
The parser met a token that cannot appear where it stands.

    optimizer adam lr 0.01 = 3

Statements are a name followed by arguments: values (`3`, `relu`, `"file.csv"`,
`[1, 2]`) or `key=value` pairs. The `help:` line lists what could come next."""),
    "E002": ("unclosed bracket", """
A `{`, `(` or `[` was opened and the file ended before it was closed.

    model m {
        dense 3 init=normal(stddev=0.1
    }

The error points at the opening bracket; add the matching `}`, `)` or `]`."""),
    "E003": ("unexpected end of file", """
The file ended in the middle of a statement. Finish the last statement."""),
    "E004": ("unterminated string", """
A string started with `"` but the line ended before the closing `"`.

    data csv("scores.csv, target="passed")

Strings cannot span lines."""),
    "E005": ("unexpected character", """
A character that is not part of the language, such as `@`, `;` or `$`.
Comments start with `#`; everything after it on the line is ignored."""),
    "E006": ("missing value after `=`", """
A keyword argument has a `=` but no value.

    optimizer adam lr=

Write the value right after `=`: `optimizer adam lr=0.001`."""),
    "E007": ("stray `}`", """
A `}` closes no block. Only `model NAME {` and `train {` open blocks."""),
    "E008": ("`let` without a name", """
`let` defines a named constant: `let hidden = 64`. The name comes right after `let`."""),
    "E009": ("`let` without `=`", """
`let` defines a named constant: `let hidden = 64`. Write `=` between name and value."""),
    "E010": ("nested block", """
Blocks do not nest: `train { }` goes after the `model { }` block's closing `}`, not inside it."""),
    "E011": ("missing comma in a list", """
List items are separated by commas: `[1, 2, 3]`, `[[3], [-2]]`."""),
    "E012": ("missing comma in arguments", """
Arguments inside parentheses are separated by commas: `normal(mean=0, stddev=0.1)`,
`builtin("moons", n=500)`. (Arguments of a statement are separated by spaces.)"""),
    "E013": ("label without a layer", """
A label names the layer that follows it on the same line: `h1: dense 64 relu`."""),
    "E014": ("statement does not start with a name", """
Every statement starts with a name: `dense 64 relu`, `loss mse`, `batch 32`."""),
    "E015": ("invalid number", """
A number that cannot be read: `1.2.3`, `1e-`, `3x`. Numbers look like `3`, `-2`,
`0.5`, `.5`, `1e-3` or `2.5E+4`."""),
    "E016": ("label on a statement that is not a layer", """
Only layers inside `model { }` can be named with `NAME:`. `loss`, `optimizer` and
the train settings are not nodes of the model graph."""),
    "E017": ("section needs a block", """
`model` and `train` are blocks: `model NAME {` ... `}` and `train {` ... `}`."""),
    "E018": ("unknown section", """
At the top level a spec has `let` constants, a `model { }` block, `loss`,
`optimizer` and `regularize` lines, and a `train { }` block. Layers belong inside
`model { }`; `batch`, `epochs` and the like inside `train { }`."""),
    "E019": ("statement written as a block", """
`loss`, `optimizer` and `regularize` are one-line statements, as in `loss mse`."""),
    "E020": ("duplicate section", """
Each section appears at most once. Merge the two, or delete one."""),
    "E021": ("named `train` block", """
The `train` block has no name: write `train {`."""),
    "E022": ("malformed input", """
An input is declared as `input NAME[SHAPE]`: `input x[2]` for two features,
`input image[8, 8]` for an 8x8 grid. Inputs cannot carry labels."""),
    "E023": ("constant without `let`", """
Named constants are declared with `let`: `let hidden = 64`, then used by name:
`dense hidden relu`."""),
    "E024": ("file is not UTF-8", """
Spec files are UTF-8 text. The error points at the first byte that cannot be decoded;
re-save the file as UTF-8."""),
    "E025": ("brackets nested too deeply", """
Lists and calls may nest at most 100 levels deep, as in `[[[1]]]`. Deeper nesting
is almost always a mistake (a bracket opened in a loop, a generated file gone wrong)."""),
    "E101": ("unknown name", """
A layer, activation, initializer, loss, optimizer, schedule, dataset, metric, data
source or train setting that nnspec does not know. The help line suggests the closest
known name; `docs/language.md` lists them all."""),
    "E102": ("unknown argument", """
A keyword argument that this layer, loss, optimizer, ... does not take.

    optimizer adam learning_rate=0.01   # the argument is `lr`"""),
    "E103": ("wrong type", """
A value of the wrong kind: a string where a number is expected, a number where a
name is expected, and so on. `units` is a whole number; `lr` a positive number or a
schedule; `activation` a name such as `relu`."""),
    "E104": ("value out of range", """
A value outside what its parameter allows: `units` ≥ 1, `drop_prob` in [0, 1)
(the probability of *dropping* a unit), `lr` > 0, momentum-like rates in [0, 1).
A `uniform` initializer's `low` must be below its `high`."""),
    "E105": ("argument given twice", """
The same argument was given twice (perhaps once by position and once by name)."""),
    "E106": ("missing argument", """
A required argument is missing: `dense` needs its number of units, `dropout` its
drop probability, `loss` and `optimizer` a name."""),
    "E107": ("too many positional arguments", """
More unnamed arguments than the statement takes. `dense` takes units and an
activation by position (`dense 64 relu`); the rest need names (`init=he_normal`)."""),
    "E108": ("conflicting arguments", """
Two arguments that cannot both be given, such as literal `weights` and an `init`
initializer, or literal `bias` values and a `bias_init` initializer."""),
    "E109": ("unknown constant", """
A bare name where a value is expected, and no `let` defines it.

    let hidden = 64
    dense hiden relu      # typo: `hidden`"""),
    "E110": ("name defined twice", """
Two constants, inputs or layers have the same name. Names must be unique."""),
    "E111": ("train setting given twice", """
Each setting (`batch`, `epochs`, ...) appears once in the `train` block."""),
    "E112": ("missing section", """
Something required is absent: a spec needs a `model` block; training needs a `loss`,
an `optimizer` and a `data` line in `train { }`."""),
    "E113": ("data file of another format", """
A data source names a file whose suffix says it holds another format, or a compression
nnspec does not undo:

    model m {
        input x[2]
        dense 1 sigmoid
    }
    loss binary_crossentropy
    optimizer sgd
    train {
        data csv("scores.parquet", target="passed")   # write parquet("scores.parquet", ...)
    }

`csv("scores.csv.zst", ...)` is refused the same way: decompress it, or compress it with
gzip, bzip2 or xz.

Each source reads its own format (`csv`, `jsonl`, `parquet`, `npz`, `npy`, `idx`); CSV,
JSON lines and IDX files may be gzip (`.gz`), bzip2 (`.bz2`) or xz (`.xz`)-compressed.
A suffix nnspec does not know is read as the source's own format."""),
    "E114": ("column setting for data without columns", """
`categorical` and `missing` say how to read the cells of a table's feature columns, so
they need a CSV or JSON lines file. Arrays (`npz`, `npy`, `idx`, a Parquet file, a
built-in dataset) hold numbers already, and an autoencoder (`target input`) learns to
give back its inputs as read.

    model m {
        input x[2]
        dense 1 sigmoid
    }
    loss binary_crossentropy
    optimizer sgd
    train {
        data builtin("moons")
        missing mean
    }

Encode the columns before saving the arrays, or read the data from a CSV file."""),
    "E115": ("fill that does not fit the column", """
`missing` fills an empty cell with a statistic of the training split or a constant.
`mean` and `median` are statistics of numbers: a categorical column is filled with its
most frequent category (`mode`) or a constant. A text constant fills only a categorical
column.

    model m {
        input x[5]
        dense 1 sigmoid
    }
    loss binary_crossentropy
    optimizer sgd
    train {
        data csv("shop.csv", target="bought")
        categorical color
        missing mean
    }

Here `missing mean color=mode` fills `color` with its most frequent category, every
other column with its mean."""),
    "E116": ("column that cannot be encoded", """
`categorical` and `missing` name feature columns, each once: not the target, not a
column that `features=[...]` leaves out; a column's declared categories are each
listed once.

    model m {
        input x[5]
        dense 1 sigmoid
    }
    loss binary_crossentropy
    optimizer sgd
    train {
        data csv("shop.csv", target="bought")
        categorical color bought
    }

A text target's classes are named already; remove it from `categorical`."""),
    "E117": ("learning-rate multiplier of 0", """
`lr_mult=` multiplies the learning rate for a layer's arrays (Caffe's `lr_mult`); a
multiplier of 0 would keep them where they start while the optimizer still keeps state
for them:

    dense 64 relu lr_mult=0

To freeze a layer write `trainable=false`, which takes no step, keeps no optimizer state
and leaves the layer out of weight decay. (`bias_lr_mult=0` is allowed: it keeps the
biases alone fixed, which nothing else can say.)"""),
    "E118": ("learning-rate multiplier on a layer without weights", """
`lr_mult=`, `bias_lr_mult=` and `trainable=` apply to the arrays a layer trains; a layer
without any (`relu`, `dropout`, `max_pool2d`, `flatten`, ...) has nothing to multiply:

    dropout 0.5 lr_mult=2

and `bias_lr_mult=` needs biases, which `bias=false` (or a layer such as `embedding`)
leaves out:

    dense 64 bias=false bias_lr_mult=2

Write the multiplier on the layer whose weights it is for."""),
    "E119": ("a budget in steps with a streamed epoch or the step history", """
`steps N` trains for N gradient steps, so its last epoch usually ends part way: that
epoch is a program of its own. A streamed epoch (`stream`) and the step history
(`history steps`, one row of losses per epoch) have no such program yet:

    train {
        data builtin("moons")
        steps 500
        history steps
    }

Count whole epochs with `epochs N` (N·⌈examples / batch⌉ steps), or remove `stream` or
`history steps`."""),
    "E201": ("layer needs a flat input", """
`dense` multiplies a vector by a matrix; its input must be one-dimensional.
Put `flatten` before it to turn an (8, 8) image into 64 numbers."""),
    "E202": ("literal weights of the wrong shape", """
Literal `weights=` of a dense layer have one row per input and one column per unit:
for 2 inputs and 1 unit, `weights=[[3], [-2]]`. A literal `bias=` has one number per unit."""),
    "E203": ("bad input shape", """
Input dimensions are whole numbers ≥ 1: `input x[2]`, `input image[8, 8]`."""),
    "E204": ("input count", """
A model needs at least one input, declared above the layers that read it. A model may
have several inputs (`input a[4]` and `input b[3]`); layers reach the later ones with
`from NAME` or a merge (`concat a b`)."""),
    # E220-E229: convolution and pooling shapes
    "E220": ("convolution or pooling input of the wrong rank", """
Convolutions and pooling layers read one example with its channels last: a 1-D layer
(`conv1d`, `max_pool1d`, `avg_pool1d`, `upsampling1d`) takes (steps, channels), a 2-D
layer (`conv2d`, `depthwise_conv2d`, `separable_conv2d`, `conv2d_transpose`,
`max_pool2d`, `avg_pool2d`, `upsampling2d`) takes (height, width, channels), and
`global_avg_pool` and `global_max_pool` take either.

    input x[64]
    conv2d 16 3 relu        # x is (64,): no height or width

A gray-scale image still has one channel: declare `input image[8, 8, 1]`, not
`input image[8, 8]` (and `builtin("digits", image=true)` gives the digits that way).
A single series is `input x[100, 1]`."""),
    "E221": ("window larger than the input", """
With `padding=valid` (the default) a kernel or pooling window is used only where it
fits inside the input, so it cannot be larger than the input along any axis; after a
few layers that halve the size, a 3×3 kernel can outgrow a 2×2 image. A `dilation` d
spreads a kernel of k taps over (k − 1)·d + 1 positions.

    input image[8, 8, 1]
    max_pool2d 4            # (2, 2, 1)
    conv2d 8 3              # 3 > 2

Use `padding=same` (zeros around the input, ceil(size / stride) outputs), a smaller
kernel or window, or less pooling before it."""),
    "E225": ("augmentation input is not an image", """
The augmentation layers (`random_flip`, `random_translation`, `random_rotation`,
`random_zoom`, `random_contrast`) change an image: one example is (height, width,
channels), channels last, as for `conv2d`.

    input x[64]
    random_flip horizontal   # x is (64,): no height or width

A gray-scale image still has one channel: declare `input image[8, 8, 1]` (and
`builtin("digits", image=true)` gives the digits that way). Put augmentation first,
on the image as it comes in, before any `flatten`."""),
    # E230-E239: recurrent layers
    "E230": ("recurrent layer needs a sequence", """
`simple_rnn`, `lstm` and `gru` read one example as a sequence of shape (steps, features):
one vector per step. A recurrent layer outputs only its last state, a flat vector, unless
it is written with `sequences=true`; a second recurrent layer on top of it then has no
steps to read:

    input series[20, 1]
    lstm 32
    lstm 16

Write `lstm 32 sequences=true` for the lower one. For the model's input, declare the
steps and the features of each step: `input series[20, 1]`, not `input series[20]`."""),
    "E231": ("`merge` without `bidirectional`", """
`merge` says how the outputs of the forward and the backward cell of a bidirectional
layer combine (`concat`, `sum` or `mean`); a layer that runs one way has nothing to
merge.

    lstm 32 merge=sum

Write `lstm 32 bidirectional=true merge=sum`, or remove `merge`."""),
    "E232": ("a recurrent layer's options contradict each other", """
Some options of `simple_rnn`, `lstm` and `gru` only mean something with another.
`recurrent_bias=true` adds a second bias beside the layer's bias `b` (PyTorch's b_hh beside
b_ih), so it needs the bias that `bias=false` removes:

    lstm 32 bias=false recurrent_bias=true

Write `lstm 32 recurrent_bias=true` for PyTorch's two biases, or `lstm 32 bias=false` for
none."""),
    # E240-E249: attention, normalization, reshaping
    "E240": ("layer needs a sequence input", """
`self_attention`, `transformer_encoder` and `position_embedding` read one example as
steps × features, shape (steps, features). A flat input has no steps:

    input x[64]
    self_attention heads=2        # x is (64,)

Declare the input with two dimensions, `input x[8, 8]`, or reshape it first:
`reshape [8, 8]`."""),
    "E241": ("bad reshape dimension", """
Each dimension of `reshape [...]` is a whole number ≥ 1, except that one of them may be
-1: the size that makes the count come out right, as in `reshape [8, -1]`. Two -1s
leave the shape undecided."""),
    "E242": ("reshape changes the number of values", """
`reshape` gives the same values a new shape, so the new dimensions must multiply to the
input's count: a (64,) input can become `[8, 8]` or `[4, 16]`, not `[8, 9]`. With a -1,
the other dimensions must divide the count."""),
    "E243": ("features do not split into heads", """
Without `key_dim`, each attention head gets features / heads numbers, which must be
whole: 64 features split into 2, 4 or 8 heads, not 3. Choose a number of heads that
divides the features, or give each head's size with `key_dim=`."""),
    "E244": ("position table too short", """
A learned `position_embedding` holds one row per step; `steps=` smaller than the
input's steps leaves later steps without a row. Leave `steps` out (the input's steps)
or make it at least as large."""),
    "E245": ("not a permutation of the axes", """
`permute [...]` lists every axis of one example exactly once, counting from 1 (the
batch is not an axis): for a (steps, features) input, `permute [2, 1]` swaps them."""),
    # E250-E269: graphs, merges, several inputs, embeddings
    "E250": ("unknown node name", """
`from NAME` and the names a merge reads (`add h1 h2`) must be inputs or layers of the
same model; labels are written `NAME: LAYER ...`."""),
    "E251": ("node read before it is defined", """
A model is read top to bottom: a layer may read only inputs and layers above it, so
the file order is the order of evaluation and a cycle cannot be written. Move the line
that defines the name above the line that reads it."""),
    "E252": ("merged shapes disagree", """
`add`, `multiply` and `average` need inputs of identical shapes; `concat` needs shapes
equal in every axis but the one it joins along (`axis`, the last by default)."""),
    "E253": ("malformed graph edge", """
A merge names at least two inputs, as in `add h1 h2`; `from` is followed by one name,
as in `dense 8 from h1`, and a merge does not take `from`."""),
    "E254": ("token input used by the wrong layer", """
An `int` input holds token ids, not numbers to compute with: only `embedding` may
read it, and `embedding` reads only an `int` input."""),
    "E255": ("bad token input or vocabulary", """
`input NAME[STEPS] int vocab=N` declares token ids 0..N-1; `embedding DIM` reads the
vocabulary from that input, or names it, `embedding DIM vocab=N`, at least as large as
the input's. `padding` must be a token id, below the vocabulary size."""),
    "E256": ("several inputs or outputs need an array each", """
A model with several inputs, or with several outputs (a `loss { }` block), trains from
data that holds one array for each input and each output: an `.npz` archive whose
arrays are named after them (`numpy.savez(path, title=..., body=..., priority=...)`).
A built-in dataset (one input, one target) or a CSV file (one table) cannot say which
columns feed which input, so they are refused for such a model."""),
    "E257": ("`sample` reads a mean and a log-variance", """
`z: sample mean log_var` draws a variational autoencoder's code from two nodes, in this
order: the mean and the log-variance of each latent unit (two layers of the same size,
usually linear `dense` layers reading one hidden layer). It names exactly these two,
no more and no fewer."""),
    "E258": ("mean and log-variance of different shapes", """
`sample` pairs each latent unit's mean with its log-variance, element by element, so the
two nodes it reads have one shape: `mean: dense 2 from h` and `log_var: dense 2 from h`
for a code of two numbers."""),
    "E270": ("a `loss` block names no layer", """
Each line of a `loss { }` block is `NAME: LOSS ...`, where NAME is a layer of the model:
the output that the loss trains. An input, or a name the model does not define, has
nothing to train."""),
    "E271": ("malformed `loss` block", """
A `loss { }` block has one line per output, each starting with the output's name:
`priority: binary_crossentropy weight=1.0 metrics=[accuracy]`. The block is not empty,
and no output is given two losses (raise its `weight=` instead)."""),
    "E272": ("metrics for which output?", """
With several outputs, each metric belongs to one of them: write it on the output's loss
line, `department: categorical_crossentropy metrics=[accuracy]`, not on the train
block's `metrics` line. Its history names are `department_accuracy` and
`val_department_accuracy`."""),
    "E273": ("outputs reduce the batch differently", """
A step minimizes one number over its batch: the mean of the examples' losses (the
default), or with `batch_reduction=sum` their sum. With a `loss { }` block every
output's loss, and the KL terms of `sample` layers, enter that one number, so the
outputs say the same: give every line `batch_reduction=sum`, or none of them."""),
    "E274": ("an output's history key is a KL term's", """
Each epoch reports each output's loss as `NAME_loss` and the KL term of a `sample`
layer as `kl_loss` (`Z_kl_loss` for each of several), so an output named `kl` (or
`Z_kl`) would report under the same key as the KL term. Rename the output layer."""),
    # E260-E269: reusable blocks
    "E260": ("bad block name", """
A `block` is used by its name as a layer is, so two blocks cannot share a name, and a
block cannot take the name of a layer (`dense`) or of a word of the language (`input`,
`repeat`, `from`): the use would be ambiguous. Rename the block."""),
    "E261": ("blocks use each other in a cycle", """
A block may use other blocks, but not itself, directly or through another block:
expanding it would never end. To run a block several times in a row, write
`NAME ... repeat=N` in the model."""),
    "E262": ("malformed block", """
`block NAME(PARAMETERS) { LAYERS }`: a block has a name, parameters that are names
(`filters`) or names with a default (`kernel=3`), each once and none called `input`,
`repeat` or `from`, and at least one layer. It declares no `input`: its first line
reads the node its use reads, which its lines call `input` (`add input h`). A sweep
is written at a use (`unit sweep(4, 8)`), not inside the block. Only a block takes
parameters; `model` and `train` do not."""),
    "E263": ("repeated block changes the shape", """
`NAME ... repeat=N` runs the block N times, each repeat reading the output of the one
before, so the block's output must have its input's shape (use `padding=same`
convolutions, a last `dense` as wide as the input). Use such a block without `repeat`,
or write the first use on a line of its own."""),
    "E301": ("output units do not fit the loss", """
`binary_crossentropy` needs one output unit (the probability of class 1) for a
built-in dataset, which has one 0/1 label per example; K units are for K 0/1 target
columns of a file (multi-label), checked when the file is read (E403).
`categorical_crossentropy` needs one unit per class, at least two."""),
    "E302": ("loss expects probabilities", """
`binary_crossentropy` reads its input as probabilities, so the last layer should end
in `sigmoid`; `categorical_crossentropy` needs `softmax`. If the model outputs raw
scores (logits) instead, say so: `loss binary_crossentropy from_logits=true`, which
is also more numerically stable."""),
    "E303": ("probabilities fed to a logits loss", """
With `from_logits=true` the loss applies sigmoid/softmax itself. A last layer that
already applies it would squash twice. Remove the activation from the last layer, or
remove `from_logits=true`."""),
    "E304": ("output is not flat", """
`categorical_crossentropy` reads the output's last axis as K class scores and every
other axis as a position with a class of its own (a class per step). Data with one
class per example (a CSV file, a built-in dataset other than `running_max`) has no class
at each position, so it needs a flat vector of K class scores. To classify each
example, end the model with `flatten` and `dense K softmax`; for a class per step, read
targets of shape (examples, steps) from an `.npz` file. The other losses (`mse`, `mae`,
`huber`, `binary_crossentropy`) take outputs of any shape, averaged over the elements."""),
    "E305": ("metric does not fit the task", """
`accuracy`, `precision`, `recall`, `f1`, `roc_auc` and `log_loss` are for
classification (binary or categorical cross-entropy), `top_k` for a softmax's classes;
`mse`, `rmse` and `mae` for numbers (and a binary classifier's probabilities), `r2`
for regression. An autoencoder's targets are numbers: only `mse`, `rmse`, `mae` (and
`r2` with a regression loss) apply."""),
    "E306": ("early stopping monitors an unmeasured metric", """
`early_stop monitor=` names `loss`, `val_loss`, or a metric from the train block's
`metrics` line, with `val_` in front for its validation value."""),
    "E307": ("validation metric without a validation split", """
Monitoring `val_...` needs validation data: `split val=0.2` holds out 20%."""),
    "E308": ("splits leave no training data", """
`split val=V test=T` holds out V + T of the data; their sum must be below 1."""),
    "E309": ("weight decay given twice", """
`adamw` applies its own decoupled `weight_decay`; do not also set it in `regularize`."""),
    "E310": ("model too large for memory", """
The parameters, their gradients and the optimizer's state (Adam keeps two more
copies) would not fit in this machine's memory, or a single example of the input would
not. The message gives the estimate."""),
    "E311": ("data does not fit the model", """
A built-in dataset whose examples do not match the input's shape, whose task does not
match the loss, or whose number of classes does not match the output units; a table
whose encoded width the spec tells (`features=[...]`, and every `categorical` column's
categories listed) and the input's differ. With
`target input` (an autoencoder), a model whose output shape is not its input's, or a
class loss for targets that are numbers."""),
    "E312": ("malformed sweep", """
`sweep(V1, V2, ...)` lists distinct numbers to try; `sweep_log(LOW, HIGH, n=K)` and
`sweep_uniform(LOW, HIGH, n=K)` draw K values from a non-empty range (positive, for
`sweep_log`).

    optimizer sgd lr=sweep_log(0, 0.1, n=16)      # log scale: LOW must be > 0"""),
    "E313": ("sweep in the wrong place", """
A sweep stands where a number is used, not in a `let` constant; and a spec's sweeps
together may describe at most 4,096 models."""),
    "E314": ("metric's class or k does not fit the output", """
`precision(class=K)` (and `recall`, `f1`, `roc_auc`) scores one class of a softmax, one
0/1 output of several, or class 0 or 1 of a single 0/1 output; K counts from 0 and must
be below the number of classes (labels). `top_k(K)` with K at least the number of
classes is 1 whatever the model does: pick a K below it.

    model m {
        input x[2]
        dense 10 softmax
    }
    loss categorical_crossentropy
    optimizer sgd lr=0.1
    train {
        data builtin("blobs", classes=10)
        metrics top_k(10)       # always 1: use top_k(5)
    }"""),
    "E315": ("metric's averaging does not fit the output", """
Precision, recall and F1 of one 0/1 output are those of class 1 (`binary`). With
several classes (a softmax) or several 0/1 outputs, say how the classes' scores are
combined: `f1(macro)` (their mean), `f1(weighted)` (weighted by each class's number of
examples), `f1(micro)` (of all decisions pooled), or `f1(class=K)` for one class.
`average` and `class` cannot both be given."""),
    "E316": ("class weights do not fit the classes", """
`class_weight=[w0, w1, ...]` gives each class's weight in the loss, in class order: as
many weights as the softmax has units for `categorical_crossentropy`, two (for label 0
and label 1) for `binary_crossentropy`.

    model m {
        input x[2]
        dense 3 softmax
    }
    loss categorical_crossentropy class_weight=[1, 2]     # 3 classes: give 3 weights
    optimizer sgd lr=0.1"""),
    "E320": ("batch does not split over the devices", """
With `devices N`, every batch is split over N devices, each computing the same number
of examples, so the batch size must be a multiple of N. The help names the nearest
sizes that are; `batch all` always works (its one batch is padded with examples of
weight 0 to a multiple of N).
"""),
    "E325": ("stratified split that cannot stratify", """
`split ... stratify` cuts the `val` and `test` fractions within each class, so it
needs a class per example: a classification loss (`categorical_crossentropy`,
`binary_crossentropy` on one 0/1 output) with the data's own targets. A regression
loss, `target input` (an autoencoder) or a model of several outputs has no such class;
`stratify` with no fraction to hold out would change nothing. A class too small to
give each part an example is refused when the data is read (E401).

    model houses {
        input x[3]
        dense 1
    }
    loss mse
    optimizer adam
    train {
        data csv("houses.csv", target="price")
        split val=0.2 stratify     # `loss mse`: prices are not classes
    }"""),
    "E326": ("split column in data without columns", """
`split column="NAME"` reads each example's part (`train`, `val` or `test`) from a
column of a CSV file; other sources (an `.npz` archive, a built-in dataset) have no
such column. Give those parts as separate files (`data ... val=... test=...`), or
split by fractions."""),
    "E327": ("stream that cannot stream", """
`stream` trains on data larger than memory: the examples stay in a file, and each window
of mini-batches is read from it as the epoch reaches it. So it needs data that is a file
of arrays (`data npy(x="X.npy", y="Y.npy")`, memory-mapped) or a Parquet table
(`data parquet("T.parquet", target="y")`, whose feature columns are copied once, a piece
at a time, into a float32 file in the cache folder), with `val=`/`test=` files of either
kind too; its own targets (an autoencoder's targets are its inputs, which would have to
be loaded whole); and mini-batches (`batch all` is every example at once). Other
sources are parsed into memory anyway: for them, `stream` would change nothing.

    train {
        data csv("houses.csv", target="price")
        stream                  # a CSV file is parsed whole: save it as Parquet
    }"""),
    "E328": ("stream window of partial batches", """
`stream N` reads N examples at a time, which the epoch consumes as whole mini-batches:
N must be a multiple of the batch size. The help names the nearest windows that are;
`stream` alone picks windows of up to 32 MiB."""),
    "E329": ("weights file that cannot be read", """
`weights="FILE.npy"` starts a layer's array at the values of a NumPy `.npy` file
(pretrained vectors, as `embedding 100 weights="glove.npy"`), and that file is missing,
is a folder, or is not an array of numbers written by `numpy.save` (another format, a
file cut off, Python objects). A relative path is read from the spec's folder, as the
data's is. `nnspec check` reads the file, and so does `train` before its first step; a
finished run keeps the values in its checkpoint and does not need the file again.
Write the array with `numpy.save("glove.npy", vectors.astype("float32"))`: vocab rows
of dim numbers."""),
    "E330": ("weights file that does not fit the layer", """
The `.npy` file of `weights="FILE.npy"` holds an array, but not the one the layer
needs: another shape (an embedding's is (vocab, dim): one row of `dim` numbers per
token id), integers or booleans rather than floating-point numbers, or values that
are NaN or infinite, which would make every loss NaN. The message says what was
expected and what was found; change the layer (`embedding 50` for vectors of 50
numbers, `vocab=` for the number of rows) or save the array again."""),
    "E331": ("sample weights that cannot be read", """
`sample_weight "COLUMN"` weighs each example's loss by a column of the data: the loss of a
batch (and of an epoch, and the validation loss) is then Σ w·loss / Σ w, while the metrics
count every example alike, as Keras's `metrics` do. It reads the column from the one CSV
file the `data` line names, so it needs CSV data (other sources have no columns it reads),
no separate `val=` or `test=` files (split them off the file instead, by fractions or a
split column), one output (a `loss { }` block weighs its outputs with `weight=`), and the
data's own targets (not `target input`). The weights themselves, numbers ≥ 0 on every row,
are checked when the data is read (E401, with the file, line and column)."""),
    "E332": ("stream window of fewer than three mini-batches", """
`stream N` reads at most N examples at a time, and N is one or two mini-batches. The
epoch's windows are evened out (their lengths differ by one step at most) so that none
is a single step: a step alone is compiled differently from the same step among others,
and its weights would differ from the unstreamed run's in the last bits. With windows of
two batches, an odd number of steps would leave one alone; with three or more, none is.
With `batch 64`, `stream 192` is the smallest window."""),
    "E401": ("data cannot be used", """
Training could not read or split the data the `data` line names: a missing file, a
bad cell, a missing column, too few examples for the split. The note gives the file,
line and column; the error points at the spec's `data` line."""),
    "E402": ("batch larger than the data", """
The batch size exceeds the number of training examples, so there would be no
mini-batches at all. Use a smaller batch, or `batch all` for full-batch descent."""),
    "E403": ("data does not fit the model", """
The examples' shape differs from the model's input, or a label needs more output
units than the model has."""),
    "E404": ("training diverged", """
The loss became NaN or infinite. Usually the learning rate is too large: each step
overshoots and the weights grow without bound. Lower the learning rate (10x), or clip
gradients with `clip_norm=1.0`. The last good checkpoint is kept."""),
    "E405": ("unusable checkpoint", """
A checkpoint that is missing, truncated, corrupt, or written for a different spec.
nnspec never loads such a file; the message names it."""),
    "E406": ("not enough devices", """
The spec's `devices N` or the command line's `--devices N` asks for more devices than
JAX sees, or `devices all` gives a number that the batch size does not split over.
`nnspec train --devices 1` trains on one; on a CPU, XLA can pretend to have several
(XLA_FLAGS=--xla_force_host_platform_device_count=N), which is how the tests run.
"""),
    "E407": ("split differs from the run's", """
`nnspec eval` and `--resume` rebuild the run's split from its seed and its data, and
compare it with the row positions the run recorded in `split.json`. A split that comes
out otherwise (the data file read differently, a NumPy whose permutation changed) would
measure the model on rows it may have trained on, so nnspec refuses it; the message
names the part that differs."""),
    "E408": ("shard=params over several processes", """
`devices N shard=params` splits every weight array and its optimizer state over the
devices of the run, where XLA gathers each one as a step needs it. Over several processes
(`--num-processes`, a cluster scheduler's variables), each process must read the whole
weights back for the checkpoint and the history, which a split array does not allow
here: leave `shard=params` out (every device then keeps a copy of the weights, the batch
is still split), or train in one process."""),
    "W001": ("very large learning rate", """
A learning rate far above the usual range for this optimizer; training will likely
diverge (the loss becomes NaN). Try a value ten or a hundred times smaller."""),
    "W002": ("sigmoid in every hidden layer of a deep net", """
The sigmoid's derivative is at most 1/4, so gradients shrink through every sigmoid
layer (vanishing gradients). Use `relu` in hidden layers."""),
    "W003": ("activation on a regression output", """
A regression model usually ends in a linear layer: `sigmoid` limits predictions to
[0, 1], `relu` to non-negative values. Given when training reads the data and some
training target lies outside what the last activation can produce; a sigmoid output
for targets that all lie in [0, 1] (pixels) draws no warning."""),
    "W004": ("unused constant", """
A `let` constant that nothing uses."""),
    "W005": ("early stopping on a training metric", """
The training loss keeps falling while a model overfits, so early stopping on it rarely
stops at the right time. Monitor the validation loss: `monitor=val_loss`."""),
    "W006": ("dropout as the last layer", """
Dropout on the output zeroes predictions at random during training. Put it between
hidden layers."""),
    "W007": ("unused node", """
An input or a layer whose output nothing reads and that is not the model's output
(the last line): a branch computed and thrown away. Read it with `from NAME` or a
merge, or remove it."""),
    "W008": ("nothing to train", """
Every layer that has weights is written with `trainable=false`, and the spec trains:
no step changes any of them, so every epoch computes the same model (a frozen
`batch_norm` keeps its statistics too). Frozen layers are for a base that another
part of the model learns on top of; leave `trainable=false` out of the layers that
should learn, such as a new output layer.

    model m {
        input x[4]
        dense 8 relu trainable=false
        dense 1 sigmoid trainable=false
    }
    loss binary_crossentropy
    optimizer adam
    train {
        data csv("scores.csv", target="passed")
    }"""),
}


def explain(code: str) -> str | None:
    """The long explanation of `code`, or None if there is no such code."""
    entry = CODES.get(code.upper())
    if entry is None:
        return None
    title, text = entry
    return f"{code.upper()}: {title}\n{text.rstrip()}\n"
