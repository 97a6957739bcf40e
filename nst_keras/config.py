"""Every setting of a style-transfer run, with its default, in one frozen dataclass.

The CLI, the Python API, the figures and the notebooks all read their defaults from
`StyleConfig`, so a default is changed in one place only.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional, Tuple

#: The style layers of the book (and of Gatys et al.): the first conv layer of each block.
BOOK_STYLE_LAYERS: Tuple[str, ...] = (
    "block1_conv1",
    "block2_conv1",
    "block3_conv1",
    "block4_conv1",
    "block5_conv1",
)

NORMALIZATIONS = ("book", "paper", "jcjohnson")
#: The layers of the histogram loss: Risser et al.'s relu1_1 and relu4_1.
HISTOGRAM_LAYERS: Tuple[str, ...] = ("block1_conv1", "block4_conv1")
#: Named starting images; any other `init` is the path or URL of an image.
INITS = ("content", "noise", "style", "mean")
OPTIMIZERS = ("lbfgs", "adam", "sgd")
#: `preserve_color` modes (see `nst_keras.engine.color`).
COLOR_MODES = ("luminance", "histogram", "swap")
STYLE_RESIZES = ("aspect", "stretch")
#: The `-normalized` ones are Gatys et al.'s rescaling, computed once by `nst-keras
#: normalize-vgg DIR` (see `nst_keras.engine.normalize`).
MODELS = ("vgg19", "vgg16", "vgg19-normalized", "vgg16-normalized")
POOLINGS = ("max", "avg")
PADDINGS = ("zeros", "symmetric", "reflect")
DEVICES = ("auto", "cpu", "gpu")
PRECISIONS = ("auto", "float32", "bfloat16")
TV_EDGES = ("all", "book")
#: Style losses (`losses`): the book's Gram matrices, Wasserstein-2 between Gaussian fits
#: (crowsonkb), nearest-patch matching (Li and Wand's CNNMRF).
STYLE_LOSSES = ("gram", "w2", "mrf")
#: Named per-layer weightings (`content_layer_weights`, `style_layer_weights`).
LAYER_WEIGHTINGS = ("equal", "gatys")


#: The book's content and style weights (1st edition, section 8.3).
BOOK_CONTENT_WEIGHT = 0.025
BOOK_STYLE_WEIGHT = 1.0


@dataclasses.dataclass(frozen=True)
class StyleLossDefaults:
    """What a style loss uses when `style_weight` and `style_layers` are left unset.

    Each loss has its own scale (at the same settings W2's term is ~1e3 where Gram's is
    ~1e5), so one style weight cannot suit them all: the book's weight leaves W2 and MRF
    below total variation, and the photo unpainted. Each loss's default is the book's Gram
    weight times a factor, calibrated on the VGG16 stand-in by the judge
    (`benchmarks/paint_sweep.py`) and expressed relative to Gram's, so that it carries over
    to another network as Gram's own weight does.

    Attributes:
        weight_factor: The default style weight relative to `BOOK_STYLE_WEIGHT`.
        layers: The default style layers.
    """

    weight_factor: float
    layers: Tuple[str, ...]


#: The height at which `StyleLossDefaults.weight_factor` holds; at another height the
#: factor is scaled by the area, (height / 256) ** 2 (see `StyleConfig.resolved`).
STYLE_LOSS_REFERENCE_HEIGHT = 256

#: Each style loss's defaults (departure 25, docs/departures.md).
STYLE_LOSS_DEFAULTS = {
    "gram": StyleLossDefaults(1.0, BOOK_STYLE_LAYERS),
    # W2 x 1e3 (at 256 px: judged 0.071, content kept 0.42 after 200 evaluations; Gram at 1:
    # 0.006, 0.40). A fixed weight at 128 px, 100 evaluations: 1e1 / 1e2 / 1e3 judged
    # 1.35 / 0.20 / 0.014.
    "w2": StyleLossDefaults(1e3, BOOK_STYLE_LAYERS),
    # Li and Wand's layers: patches on relu1_1 would match every pixel's 3 x 3 neighbourhood
    # against every style pixel's (several seconds an evaluation at 200 px).
    "mrf": StyleLossDefaults(1e5, ("block3_conv1", "block4_conv1")),
}

#: With `normalize_gradients` each content and style term's gradient has an L1 norm of 1
#: before its weight multiplies it, whatever the loss's scale: the defaults are then
#: jcjohnson/neural-style's proportions (content 5, style 100 on each of 5 layers), scaled
#: by one factor so that they, not the unnormalised total variation, move the pixels
#: (calibrated on the stand-in, `benchmarks/paint_sweep.py`).
NORMALIZED_GRADIENT_SCALE = 100.0
NORMALIZED_CONTENT_WEIGHT = 5.0 * NORMALIZED_GRADIENT_SCALE
NORMALIZED_STYLE_WEIGHT = 500.0 * NORMALIZED_GRADIENT_SCALE


#: The groups a command shows its options in, in order.
GROUPS = ("images", "method", "optimisation")


def _setting(default, group: str, help: str, *, choices=None, kind: str = "str",
             metavar=None, option=None):
    """A `StyleConfig` field with what a command needs to offer it as an option.

    Args:
        default: The default value.
        group: Which group of options it belongs to (`GROUPS`).
        help: The option's help text, in the command line's words.
        choices: The allowed values, if a fixed set.
        kind: How its text is parsed (`console.OPTION_TYPES`): "str", "int>=1", "int>=0",
            "float>0", "float>=0", "floats>0", "floats>=0", "layers", "weights", "height",
            "bool", "layer_weights" (a name or numbers; the config parses text too, so a
            batch CSV cell such as `256,64,16,4,1` works).
        metavar: The value's name in the help.
        option: The option's name when it is not the field's (`--xla` for `jit_compile`).
    """
    return dataclasses.field(default=default, metadata={
        "group": group, "help": help, "choices": choices, "kind": kind, "metavar": metavar,
        "option": option})


def option_name(field_name: str) -> str:
    """The command-line option that sets a `StyleConfig` field: `--style-scale`, `--xla`."""
    field = {f.name: f for f in dataclasses.fields(StyleConfig)}.get(field_name)
    if field is not None and field.metadata.get("option"):
        return field.metadata["option"]
    return "--" + field_name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class StyleConfig:
    """Settings of one run; the defaults are those of the book's 1st edition (section 8.3).

    Attributes:
        content_layers: Layers whose activations carry the content (Keras or paper names).
            Book: `block5_conv2`. The paper uses `conv4_2`.
        style_layers: Layers whose statistics carry the style. Book and paper:
            `block1_conv1` ... `block5_conv1`. None (default): the style loss's own
            (`STYLE_LOSS_DEFAULTS`: the book's for Gram and W2, relu3_1 and relu4_1 for MRF).
        content_weight: Weight of the content loss (alpha), shared equally by the content
            layers. None (default): the book's 0.025, or with `normalize_gradients`
            `NORMALIZED_CONTENT_WEIGHT` (see `resolved`).
        style_weight: Weight of the style loss (beta), shared by the style layers as
            `style_layer_weights` says (equally by default). None (default): the style
            loss's own, the book's 1.0 for Gram (`STYLE_LOSS_DEFAULTS`), or with
            `normalize_gradients` `NORMALIZED_STYLE_WEIGHT`.
        content_layer_weights: How `content_weight` is shared by the content layers:
            `"equal"` (default), `"gatys"` (1e3 / n**2, n the layer's channel count, as
            Gatys' notebook weights its style layers) or one number >= 0 per layer (in the
            order of `content_layers`). Always normalised to sum to 1, so `content_weight`
            stays the total: 256, 64, 16, 4, 1 gives 256/341, 64/341, ...
        style_layer_weights: The same for `style_weight` and `style_layers`. Gatys' weights
            on conv1_1 ... conv5_1 (64, 128, 256, 512, 512 channels) normalise to
            64/86, 16/86, 4/86, 1/86, 1/86.
        style_loss: What the style terms compare (see `nst_keras.engine.losses`): `"gram"` (the
            book's and the paper's Gram matrices), `"w2"` (the 2-Wasserstein distance
            between the layers' Gaussian fits, crowsonkb/style-transfer-pytorch's default)
            or `"mrf"` (each 3 x 3 patch of features pulled towards its nearest style
            patch, Li and Wand 2016; meant for relu3_1 and relu4_1: the `cnnmrf` preset).
        histogram_weight: Weight of Risser et al.'s histogram loss, added on relu1_1 and
            relu4_1 (`HISTOGRAM_LAYERS`, shared equally); 0 (default) leaves it out. It
            needs the whole image, so it is never tiled.
        tv_weight: Weight of the total-variation loss. Book: 1e-4.
        tv_power: Exponent of the total-variation loss. Book: 1.25.
        normalization: `"book"` divides every style layer's squared Gram error by
            4 * 3**2 * (H*W)**2, with the *image's* height and width, and uses no 1/2 in the
            content loss; `"paper"` uses 1 / (4 * N_l**2 * M_l**2) per layer (N_l channels,
            M_l positions of layer l) and 1/2 in the content loss (Gatys et al., eq. 1 and 4);
            `"jcjohnson"` is jcjohnson/neural-style's: mean squared errors, of the features
            and of the Gram matrices divided by N_l * M_l.
        init: Starting image: `"content"` (book), `"noise"` (the paper: white noise),
            `"style"` (the first style image resized to the content's size), `"mean"` (the
            ImageNet mean colour plus N(0, 0.001) noise: jcjohnson/neural-style's
            `-init random`), or the path or URL of an image (resized to the content's size).
        height: Height in pixels of the generated image; the width follows the content's
            aspect ratio. Book: 400.
        style_height: Height every style image is resized to; `None` uses `height`.
        style_scale: Each style image's height relative to the generated image's: one
            number for every style, or one per style; `None` uses `style_height`.
        style_resize: `"aspect"` keeps each style image's aspect ratio; `"stretch"` resizes
            it to the generated image's height *and* width (the book, keras-io).
        style_blend_weights: How much each style counts when several are given (normalised
            to sum to 1); `None` is equal weights.
        iterations: Upper bound on iterations (steps of Adam or SGD).
        max_evals: Upper bound on loss+gradient evaluations. Book: 20 x 20 = 400.
        optimizer: `"lbfgs"` (book, 1st edition), `"adam"` or `"sgd"` (2nd edition).
        learning_rate: Adam's or SGD's step size, in pixel units (0-255). `None` (default):
            10 for Adam (whose steps are already about the learning rate in size); for SGD,
            whose step is the learning rate times the gradient and so depends on the
            weights and the image size, the learning rate that moves pixels by 1 level on
            average (root mean square) at the first step (see `solvers.sgd_learning_rate`).
        lr_decay: The learning rate is multiplied by this every `lr_decay_steps` steps
            (smoothly, as Keras' `ExponentialDecay`); 1 keeps it constant.
        lr_decay_steps: See `lr_decay`.
        lbfgs_memory: Correction pairs L-BFGS keeps: 5, where SciPy and the book keep 10
            (a departure: within 1 % of 10's loss from 50 evaluations on, with a step a
            third cheaper; see docs/benchmarks.md, Seconds per evaluation).
        ema: Deliver the exponential moving average of Adam's or SGD's iterates with this
            decay, in (0, 1), bias-corrected as crowsonkb/style-transfer-pytorch's `EMA`
            (its default 0.99), instead of the best iterate; the average is evaluated once
            more, within `max_evals`, so the loss reported is its own (see
            `solvers.gradient_descent`). None (default): no average. Not with L-BFGS.
        normalize_gradients: Divide each content and style term's gradient at its layer by
            its L1 norm (plus 1e-8) before weighting it, as jcjohnson/neural-style's
            `-normalize_gradients`. The gradient then no longer is the loss's, so only Adam
            and SGD take it (L-BFGS-B's line search needs the true gradient), and only
            untiled (the norm needs the whole layer at once).
        preserve_color: Keep the content's colours (Gatys et al. 2017): `"luminance"`
            (style transfer on luminance only, recombined with the content's chroma),
            `"histogram"` (the style images recoloured to the content's colour mean and
            covariance first), `"swap"` (the content's chroma put back afterwards); None
            (default) transfers the style's colours too.
        scales: Coarse-to-fine: optimise at this many sizes, each stage starting from the
            previous one's image upsampled (Gatys et al. 2017); 1 is a single size. The sizes
            double up to `height` unless `start_height` is given.
        start_height: The first stage's height (coarse-to-fine); with `scales` 1 (or
            unset), as many stages as doublings from it reach `height`.
        model: `"vgg19"` (book, paper) or `"vgg16"`; `"vgg19-normalized"` (the paper's
            network: each filter's mean activation over a set of photos rescaled to 1,
            computed once by `nst-keras normalize-vgg DIR` from `weights`; see
            `nst_keras.engine.normalize`) or `"vgg16-normalized"`.
        weights: `"imagenet"`, `None` (random initialisation, for tests) or the path of a
            weights file for the `include_top=False` model (the Keras convention).
        pooling: `"max"` (book, Keras) or `"avg"` (the paper's choice).
        padding: How VGG's convs pad their input: `"symmetric"` (default: the edge pixel
            repeated) or `"reflect"`, instead of Keras' (and the book's) `"zeros"`, which
            leaves a band of saturated pixels along the image's top and left borders.
        seed: Seeds the noise initialisation and, with `weights=None`, the random weights.
        jit_compile: Compile the loss-and-gradient function with XLA.
        device: `"auto"` (TF's GPU if one is visible), `"cpu"` or `"gpu"`.
        precision: `"float32"`; `"bfloat16"` (convolutions in bfloat16, Gram matrices,
            losses and the gradient accumulated in float32); `"auto"`: bfloat16 on a CPU
            with AMX-BF16 or AVX512-BF16, float32 elsewhere (see `runtime.resolve_precision`).
        bounds: Keep every pixel in 0-255 during the optimisation (L-BFGS-B box bounds), so
            the saved image is the image whose loss was minimised. The book has none and
            clips when saving (departure).
        tv_edges: `"all"` counts the differences at the last row and column (departure);
            `"book"` is the book's formula exactly (see `losses.total_variation_loss`).
        tile: `"off"` evaluates the whole image at once; a size (`"512"`) evaluates the
            same loss and gradient tile by tile, each tile's core that many pixels (rounded
            up to the pooling grid) read with a halo of the layers' receptive radius, so
            only one tile's activations are in memory (see `nst_keras.engine.tiling`); `"auto"`
            (default) tiles a stage exactly when its untiled estimate does not fit in the
            memory budget.
        max_memory: The memory budget of the run, e.g. `"6G"` or `"512M"` (binary units),
            when lower than the machine's; None uses what the machine has.
    """

    content_layers: Tuple[str, ...] = _setting(
        ("block5_conv2",), "method", "comma-separated content layers (Keras or paper names)",
        kind="layers")
    style_layers: Optional[Tuple[str, ...]] = _setting(
        None, "method", "comma-separated style layers (Keras or paper names); when not given, "
        "the style loss's own: gram, w2: relu1_1,...,relu5_1; mrf: relu3_1,relu4_1",
        kind="layers")
    content_weight: Optional[float] = _setting(
        None, "method", "content weight (alpha); when not given, the book's 0.025, or with "
        "--normalize-gradients jcjohnson's proportions", kind="float>=0")
    style_weight: Optional[float] = _setting(
        None, "method", "style weight (beta), shared by the style layers; when not given, the "
        "style loss's own (gram: the book's 1; w2, mrf: calibrated multiples of it), or with "
        "--normalize-gradients jcjohnson's proportions", kind="float>=0")
    content_layer_weights: object = _setting(
        "equal", "method", "how --content-weight is shared by the content layers: equal, "
        "gatys (1e3/n^2, n the layer's channels), or one weight per layer (256,64,16,4,1); "
        "normalised to sum to 1", kind="layer_weights", metavar="equal|gatys|W,W,...")
    style_layer_weights: object = _setting(
        "equal", "method", "how --style-weight is shared by the style layers: equal, gatys "
        "(1e3/n^2, n the layer's channels), or one weight per layer (256,64,16,4,1); "
        "normalised to sum to 1", kind="layer_weights", metavar="equal|gatys|W,W,...")
    style_loss: str = _setting(
        "gram", "method", "what the style terms compare: gram (the book's Gram matrices), w2 "
        "(Wasserstein-2 between Gaussian fits, crowsonkb's), mrf (nearest 3x3 feature "
        "patches, Li and Wand's CNNMRF; use relu3_1,relu4_1)", choices=STYLE_LOSSES)
    histogram_weight: float = _setting(
        0.0, "method", "weight of Risser et al.'s histogram loss on relu1_1 and relu4_1, "
        "added to the style loss (never tiled)", kind="float>=0")
    tv_weight: float = _setting(1e-4, "method", "total-variation weight", kind="float>=0")
    tv_power: float = _setting(1.25, "method", "total-variation exponent", kind="float>0")
    normalization: str = _setting(
        "book", "method",
        "style and content loss normalisation: book (every style layer divided by "
        "4*3^2*(H*W)^2 of the image), paper (1/(4 N_l^2 M_l^2) per layer, 1/2 content), "
        "jcjohnson (mean squared errors of features and of Gram/(N_l M_l), as neural-style)",
        choices=NORMALIZATIONS)
    init: str = _setting(
        "content", "method",
        "starting image: the content, white noise, the style, the mean colour "
        "(jcjohnson's random), or an image's path or URL",
        metavar="{" + ",".join(INITS) + ",PATH}")
    height: int = _setting(
        400, "images", "height of the result in pixels, the width keeping the content's "
        "aspect; auto: the largest that fits in memory (at most the content's own height)",
        kind="height")
    style_height: Optional[int] = _setting(
        None, "images", "height the style images are resized to (default: the same as "
        "--height)", kind="int>=1")
    style_scale: Optional[Tuple[float, ...]] = _setting(
        None, "images", "style height relative to the result's: one value, or one per style "
        "(instead of --style-height)", kind="floats>0", metavar="S")
    style_resize: str = _setting(
        "aspect", "images", "aspect: keep each style's aspect ratio; stretch: to the "
        "content's size (the book)", choices=STYLE_RESIZES)
    style_blend_weights: Optional[Tuple[float, ...]] = _setting(
        None, "images", "one weight per style, normalised to sum to 1 (default: equal)",
        kind="floats>=0", metavar="W")
    iterations: int = _setting(1000, "optimisation",
                               "most iterations (L-BFGS) or steps (Adam, SGD), per stage",
                               kind="int>=1")
    max_evals: int = _setting(400, "optimisation",
                              "most loss+gradient evaluations (the book: 20 x 20)", kind="int>=1")
    optimizer: str = _setting("lbfgs", "optimisation",
                              "lbfgs (1st edition), adam, or sgd (2nd edition)",
                              choices=OPTIMIZERS)
    learning_rate: Optional[float] = _setting(
        None, "optimisation",
        "step size of adam and sgd, in pixel units (0-255); default: 10 for adam; for sgd, "
        "the step that moves the average pixel by 1 level at the start (scale-free)",
        kind="float>0")
    lr_decay: float = _setting(1.0, "optimisation",
                               "multiply the learning rate by this every --lr-decay-steps steps",
                               kind="float>0")
    lr_decay_steps: int = _setting(100, "optimisation", "see --lr-decay", kind="int>=1")
    # 5, not SciPy's and the book's 10: L-BFGS-B's step costs about 17 ms + 5.5 ms per pair
    # at 400 x 533 (SciPy's scalar loops over the n x m history), 66-72 ms a step at m = 10
    # against 45 at 5, 11-14 % of a bfloat16 evaluation against 9-10 %, and m = 5 came
    # within 1 % of 10's loss at 50 evaluations and within 0.2 % or below it from 100 on
    # (three runs, docs/benchmarks.md), up to 3.5 % higher at 25. It also halves the history:
    # 2m float64 per pixel value.
    lbfgs_memory: int = _setting(5, "optimisation", "correction pairs L-BFGS keeps (SciPy's "
                                 "and the book's: 10)",
                                 kind="int>=1")
    ema: Optional[float] = _setting(
        None, "optimisation", "deliver the exponential moving average of adam's or sgd's "
        "iterates with this decay (0-1, e.g. 0.99 as crowsonkb's), its loss evaluated once "
        "more within --max-evals", kind="float>0", metavar="DECAY")
    normalize_gradients: bool = _setting(
        False, "optimisation", "divide each content and style layer's gradient by its L1 "
        "norm (jcjohnson's -normalize_gradients; adam and sgd, untiled)", kind="bool")
    preserve_color: Optional[str] = _setting(
        None, "images", "keep the content's colours: luminance (transfer on luminance only), "
        "histogram (recolour the style first), swap (put the content's colour back after)",
        choices=COLOR_MODES)
    scales: int = _setting(
        1, "optimisation", "coarse to fine: optimise at this many sizes, halving from "
        "--height (or from --start-height), each stage starting from the last; the "
        "evaluations are split equally", kind="int>=1")
    start_height: Optional[int] = _setting(
        None, "optimisation", "coarse to fine: the first stage's height (stages double up to "
        "--height unless --scales is given)", kind="int>=1")
    model: str = _setting("vgg19", "method", "feature network; -normalized: the paper's "
                          "rescaled VGG, computed once by normalize-vgg DIR", choices=MODELS)
    weights: Optional[str] = _setting(
        "imagenet", "method", "imagenet, none (random, for tests) or the path of a weights "
        "file", kind="weights")
    pooling: str = _setting("max", "method", "max (Keras, book) or avg (the paper)",
                            choices=POOLINGS)
    padding: str = _setting(
        "symmetric", "method", "how VGG's convs pad: symmetric (the edge repeated) or "
        "reflect; zeros (Keras, the book) leaves a saturated band along the top",
        choices=PADDINGS)
    seed: Optional[int] = _setting(None, "optimisation", "seed, for repeatable runs",
                                   kind="int>=0")
    jit_compile: bool = _setting(False, "optimisation",
                                 "compile the loss and gradient with XLA", kind="bool",
                                 option="--xla")
    device: str = _setting("auto", "optimisation", "auto uses TF's GPU when one is visible",
                           choices=DEVICES)
    precision: str = _setting(
        "auto", "optimisation", "auto: bfloat16 convolutions on CPUs with AMX-BF16 or "
        "AVX512-BF16, float32 elsewhere", choices=PRECISIONS)
    bounds: bool = _setting(True, "optimisation",
                            "keep every pixel in 0-255 while optimising (the book clips only "
                            "when saving)", kind="bool")
    tv_edges: str = _setting("all", "method", "all: count the last row and column; book: the "
                             "book's formula exactly", choices=TV_EDGES)
    tile: str = _setting(
        "auto", "optimisation", "evaluate the loss tile by tile (exactly the same loss and "
        "gradient, less memory): off, auto (only when the whole image does not fit in "
        "memory) or a tile's core size in pixels", metavar="off|auto|SIZE")
    max_memory: Optional[str] = _setting(
        None, "optimisation", "memory the run may use, below the machine's: e.g. 6G, 512M",
        metavar="SIZE")

    def __post_init__(self):
        # Lists are accepted for convenience and stored as tuples, so the record stays hashable.
        for name in ("content_layers", "style_layers"):
            value = getattr(self, name)
            if value is None and name == "style_layers":
                continue  # The style loss's own (`resolved`).
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        for name in ("style_scale", "style_blend_weights"):
            value = getattr(self, name)
            if value is not None:
                value = (value,) if _is_finite_number(value) else tuple(value)
                object.__setattr__(self, name, value)
                if not value or not all(_is_finite_number(v) and v >= 0 for v in value):
                    raise ValueError(f"`{name}` must be numbers >= 0. Received: {name}={value!r}")
        if self.style_scale is not None and min(self.style_scale) <= 0:
            raise ValueError(f"`style_scale` must be > 0. Received: style_scale={self.style_scale!r}")
        if self.style_blend_weights is not None and sum(self.style_blend_weights) <= 0:
            raise ValueError(
                "`style_blend_weights` must not all be 0. "
                f"Received: style_blend_weights={self.style_blend_weights!r}"
            )
        if self.style_scale is not None and self.style_height is not None:
            raise ValueError(
                "Give `style_height` or `style_scale`, not both. Received: "
                f"style_height={self.style_height!r}, style_scale={self.style_scale!r}"
            )
        if not isinstance(self.init, str) or not self.init:
            raise ValueError(
                f"`init` must be one of {', '.join(INITS)} or an image's path or URL. "
                f"Received: init={self.init!r}"
            )
        if self.style_loss not in STYLE_LOSSES:
            raise ValueError(f"`style_loss` must be one of {', '.join(STYLE_LOSSES)}. "
                             f"Received: style_loss={self.style_loss!r}")
        style_layers = self.resolved_style_layers()
        for name, layers in (("content_layer_weights", self.content_layers),
                             ("style_layer_weights", style_layers)):
            object.__setattr__(self, name, checked_layer_weights(getattr(self, name), name,
                                                                 len(layers)))
        if not self.content_layers and not style_layers:
            raise ValueError(
                "At least one content or style layer is needed. "
                f"Received: content_layers={self.content_layers}, style_layers={style_layers}"
            )
        for name in ("content_weight", "style_weight", "tv_weight", "histogram_weight"):
            value = getattr(self, name)
            if value is None and name in ("content_weight", "style_weight"):
                continue  # The defaults of the style loss and gradients (`resolved`).
            if not _is_finite_number(value) or value < 0:
                raise ValueError(
                    f"`{name}` must be a finite number >= 0. Received: {name}={value!r}"
                )
        # Plain Python values, so that a record of the settings is plain JSON.
        for name in ("content_weight", "style_weight", "tv_weight", "tv_power",
                     "learning_rate", "lr_decay", "ema", "histogram_weight"):
            if _is_finite_number(getattr(self, name)):
                object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("style_scale", "style_blend_weights"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        for name in ("bounds", "jit_compile", "normalize_gradients"):
            if not isinstance(getattr(self, name), (bool, _np_bool_types())):
                raise ValueError(f"`{name}` must be True or False. "
                                 f"Received: {name}={getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        if self.seed is not None and (isinstance(self.seed, bool) or not _is_integer(self.seed)
                                      or int(self.seed) < 0):
            raise ValueError(f"`seed` must be None or an integer >= 0. Received: seed={self.seed!r}")
        if self.seed is not None:
            object.__setattr__(self, "seed", int(self.seed))
        for name in ("tv_power", "learning_rate"):
            value = getattr(self, name)
            if name == "learning_rate" and value is None:
                continue  # Chosen per optimiser (see `learning_rate`'s docstring).
            if not _is_finite_number(value) or value <= 0:
                raise ValueError(f"`{name}` must be a number > 0. Received: {name}={value!r}")
        if not _is_finite_number(self.lr_decay) or not 0 < self.lr_decay <= 1:
            raise ValueError(
                f"`lr_decay` must be in (0, 1]. Received: lr_decay={self.lr_decay!r}"
            )
        if self.ema is not None and not (_is_finite_number(self.ema) and 0 < self.ema < 1):
            raise ValueError(f"`ema` must be a decay in (0, 1), e.g. 0.99. Received: ema={self.ema!r}")
        for name, allowed in (
            ("normalization", NORMALIZATIONS),
            ("model", MODELS),
            ("optimizer", OPTIMIZERS),
            ("style_resize", STYLE_RESIZES),
            ("pooling", POOLINGS),
            ("padding", PADDINGS),
            ("device", DEVICES),
            ("precision", PRECISIONS),
            ("tv_edges", TV_EDGES),
        ):  # `style_loss` is checked first: the style layers' default depends on it.
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(
                    f"`{name}` must be one of {', '.join(allowed)}. Received: {name}={value!r}"
                )
        for name in ("height", "iterations", "max_evals", "lr_decay_steps", "lbfgs_memory",
                     "scales"):
            value = getattr(self, name)
            if not _is_integer(value) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
            object.__setattr__(self, name, int(value))
        if self.preserve_color is not None and self.preserve_color not in COLOR_MODES:
            raise ValueError(
                f"`preserve_color` must be None or one of {', '.join(COLOR_MODES)}. "
                f"Received: preserve_color={self.preserve_color!r}"
            )
        if self.start_height is not None and (
            not isinstance(self.start_height, int) or not 1 <= self.start_height <= self.height
        ):
            raise ValueError(
                f"`start_height` must be an integer from 1 to height ({self.height}). "
                f"Received: start_height={self.start_height!r}"
            )
        if self.style_height is not None and (
            not isinstance(self.style_height, int) or self.style_height < 1
        ):
            raise ValueError(
                "`style_height` must be None or an integer >= 1. "
                f"Received: style_height={self.style_height!r}"
            )

        self._check_gradient_only_settings()
        object.__setattr__(self, "tile", _checked_tile(self.tile))
        if self.max_memory is not None:
            parse_size(self.max_memory, "max_memory")
            object.__setattr__(self, "max_memory", str(self.max_memory).strip())

    def _check_gradient_only_settings(self) -> None:
        """Refuses the settings that only make sense for Adam and SGD with L-BFGS.

        The average of L-BFGS-B's iterates is not a point its line search accepted (they
        are not noisy: each is the lowest point of a line search), and a normalised
        gradient disagrees with the loss, so the line search's sufficient-decrease test
        compares a loss with the slope of another function.
        """
        if self.optimizer != "lbfgs":
            return
        if self.ema is not None:
            raise ValueError(
                "`ema` averages the iterates of adam or sgd, whose steps are noisy; L-BFGS "
                "delivers the best point of its line searches: use optimizer=adam or sgd, or "
                f"no ema. Received: ema={self.ema:g}, optimizer=lbfgs")
        if self.normalize_gradients:
            raise ValueError(
                "`normalize_gradients` makes the gradient disagree with the loss, which "
                "breaks L-BFGS-B's line search: use optimizer=adam or sgd. "
                "Received: normalize_gradients=True, optimizer=lbfgs")

    def replace(self, **changes) -> "StyleConfig":
        """Returns a copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def resolved_style_layers(self) -> Tuple[str, ...]:
        """`style_layers`, or the style loss's own when unset (`STYLE_LOSS_DEFAULTS`)."""
        if self.style_layers is not None:
            return self.style_layers
        return STYLE_LOSS_DEFAULTS[self.style_loss].layers

    def style_weight_scale(self) -> float:
        """How much larger this loss's default style weight is than Gram's at the book's
        settings: its calibrated factor, or with `normalize_gradients` jcjohnson's weight.

        A style weight divided by it is in Gram's units, which the video's temporal weight
        (derived for Gram's terms) is balanced against.
        """
        if self.normalize_gradients:
            return NORMALIZED_STYLE_WEIGHT / BOOK_STYLE_WEIGHT
        factor = STYLE_LOSS_DEFAULTS[self.style_loss].weight_factor
        if factor != 1.0 and self.normalization != "jcjohnson":
            # The book's and the paper's content loss is a sum over positions, and Gram's
            # term keeps its size; W2's and MRF's terms are means. So their weight grows
            # with the image's area, as the content term does, to paint alike at every size
            # (with a fixed weight W2 x 1e3 judged 0.014 at 128 px and 0.071 at 256; MRF
            # x 1e4 0.14 and 0.97). jcjohnson's content loss is a mean: no scaling there.
            factor *= (self.height / STYLE_LOSS_REFERENCE_HEIGHT) ** 2
        return factor

    def resolved(self) -> "StyleConfig":
        """The settings with every unset default filled in, as a run uses them.

        `style_layers`, `style_weight` and `content_weight` left as None mean "the default
        for the rest of the settings": the style loss's own layers and weight
        (`STYLE_LOSS_DEFAULTS`: the book's Gram weight times the loss's calibrated factor),
        or jcjohnson's proportions with `normalize_gradients`. Resolving late keeps a
        `replace(style_loss="w2")` from carrying Gram's weight over to W2. Idempotent.
        """
        if None not in (self.style_layers, self.style_weight, self.content_weight):
            return self
        content = NORMALIZED_CONTENT_WEIGHT if self.normalize_gradients else BOOK_CONTENT_WEIGHT
        style = BOOK_STYLE_WEIGHT * self.style_weight_scale()
        return dataclasses.replace(
            self, style_layers=self.resolved_style_layers(),
            style_weight=style if self.style_weight is None else self.style_weight,
            content_weight=content if self.content_weight is None else self.content_weight)


def checked_layer_weights(value, name: str = "style_layer_weights", count: Optional[int] = None):
    """A layer weighting as stored: `"equal"`, `"gatys"` or a tuple of floats.

    Args:
        value: A name, numbers (a list, or text such as "256,64,16,4,1" or "256:64:16:4:1").
        name: The field's name, for the error.
        count: How many layers the weights are for (None: not checked).

    Raises:
        ValueError: If it is neither a name nor numbers >= 0 (not all 0), or has not one
            number per layer.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text in LAYER_WEIGHTINGS:
            return text
        value = [part for part in re.split(r"[,:\s]+", text) if part]
        if not value:
            value = [text]
    elif _is_finite_number(value):
        value = [value]
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        numbers = None
    if (not numbers or not all(_is_finite_number(v) and v >= 0 for v in numbers)
            or sum(numbers) <= 0):
        raise ValueError(f"`{name}` must be {' or '.join(LAYER_WEIGHTINGS)}, or numbers >= 0 "
                         f"(not all 0), one per layer. Received: {name}={_shown(value)}")
    if count is not None and len(numbers) != count:
        raise ValueError(f"`{name}` needs one weight per layer ({count}). "
                         f"Received: {name}={_shown(value)}")
    return numbers


def _shown(value) -> str:
    """A weighting as the user wrote it: `256,64` rather than `['256', '64']`."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return repr(value)


#: `tile` values that are not a size.
TILE_MODES = ("off", "auto")

#: Size suffixes of `max_memory` and their bytes (binary: 1G = 2**30 bytes).
_SIZE_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _checked_tile(value) -> str:
    """`tile` as stored: "off", "auto" or a core size in pixels as a string ("512")."""
    text = str(value).strip().lower() if not isinstance(value, bool) else ""
    if text in TILE_MODES:
        return text
    if text.isdigit() and int(text) >= 1:
        return str(int(text))
    raise ValueError("`tile` must be off, auto or a core size in pixels (an integer >= 1). "
                     f"Received: tile={value!r}")


def tile_size(config: "StyleConfig") -> Optional[int]:
    """The core size `config.tile` asks for, or None for "off" and "auto"."""
    return None if config.tile in TILE_MODES else int(config.tile)


def parse_size(text, field: str = "max_memory") -> int:
    """Bytes of a size such as `6G`, `512M`, `1.5G` or `1000000` (binary units: 1G = 2**30).

    Raises:
        ValueError: If it is not a positive size, naming `field`.
    """
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(?:I?B)?\s*", str(text).upper())
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"`{field}` must be a size such as 6G or 512M. "
                         f"Received: {field}={text}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def _is_integer(value) -> bool:
    """An int, or a numpy integer (plain ints are stored)."""
    return isinstance(value, int) or type(value).__name__.startswith(("int", "uint"))


def _np_bool_types() -> tuple:
    """numpy's bool type, if numpy is loaded (it always is with nst_keras' engine)."""
    import sys

    numpy = sys.modules.get("numpy")
    return (numpy.bool_,) if numpy is not None else ()


def _is_finite_number(value) -> bool:
    try:
        return float(value) == float(value) and abs(float(value)) != float("inf")
    except (TypeError, ValueError):
        return False


#: Named settings, each value with its source; options given after a preset override it.
PRESETS = {
    # The 1st edition, section 8.3 (the default): every default of StyleConfig. Our
    # departures from it (bounds, TV at the edges, style aspect ratio, bfloat16 where the
    # CPU has it, L-BFGS's 5 correction pairs) are listed in docs/departures.md.
    "book": StyleConfig(),  # Unset weights and style layers: the style loss's own.
    # The 1st edition's *objective* exactly, for comparisons: its TV slicing (rows and
    # columns 0..n-2), no pixel bounds (it clips only when saving), the style image
    # stretched to the content's size (`load_img(target_size=(img_height, img_width))`),
    # float32. Not reproduced: its nearest-neighbour resizing and `int()` width, and its
    # 20 restarts of fmin_l_bfgs_b (an optimiser, not the objective).
    "book-exact": StyleConfig(
        tv_edges="book", bounds=False, style_resize="stretch", precision="float32",
        padding="zeros",  # Keras' VGG19 as it is.
    ),
    # The 2nd edition, section 12.3 (= keras-io examples/generative/neural_style_transfer.py):
    # weights 2.5e-8 / 1e-6 / 1e-6; "SGD(ExponentialDecay(initial_learning_rate=100.0,
    # decay_steps=100, decay_rate=0.96))"; 4000 iterations of one evaluation each; height 400
    # ("img_height = 400"); content block5_conv2, style block1_conv1..block5_conv1, the
    # book's normalisation and TV slicing (power 1.25); starts from the content image; no
    # bounds (it clips when saving); the style image stretched to the content's size.
    "book-2e": StyleConfig(
        content_weight=2.5e-8, style_weight=1e-6, tv_weight=1e-6, tv_edges="book",
        optimizer="sgd", learning_rate=100.0, lr_decay=0.96, lr_decay_steps=100,
        iterations=4000, max_evals=4000, height=400, bounds=False, style_resize="stretch",
        padding="zeros",  # Keras' VGG19 as it is.
    ),
    # Gatys, Ecker and Bethge, "A Neural Algorithm of Artistic Style" (arXiv:1508.06576).
    "gatys2015": StyleConfig(
        content_layers=("block4_conv2",),  # "conv4_2" (paper, Fig. 2 and Methods).
        style_layers=BOOK_STYLE_LAYERS,  # conv1_1 ... conv5_1, w_l = 1/5 (Methods).
        normalization="paper",  # 1/(4 N_l^2 M_l^2) (eq. 4); 1/2 in the content loss (eq. 1).
        pooling="avg",  # "replacing the max-pooling by average pooling" (Methods).
        init="noise",  # Gradient descent "from a white noise image" (Methods).
        content_weight=1.0,  # alpha/beta = 1e-3 (Fig. 2 B, C, D): alpha = 1, beta = 1e3.
        style_weight=1e3,
        tv_weight=0.0,  # The paper has no total-variation term.
        # "the 16 convolutional and 5 pooling layers of the 19 layer VGG", "normalized ...
        # such that the mean activation of each convolutional filter over images and
        # positions is equal to one" (Methods): computed once from the ImageNet weights and
        # the user's photos by `nst-keras normalize-vgg DIR` (`nst_keras.engine.normalize`); named
        # here, so that a plain run with this preset refuses to run without it rather than
        # silently using the unnormalised network. `figure N` runs on the plain VGG unless
        # --model names this one, and says so. The paper's photos are unknown (see
        # docs/guides/figures.md).
        model="vgg19-normalized",
        padding="zeros",  # The Caffe VGG19 the paper used pads with zeros.
        # Optimiser: L-BFGS (CVPR 2016 version), as SciPy's fmin_l_bfgs_b runs it (its m =
        # 10, not our default 5). Unknown, and chosen: image size, iterations, the noise's
        # distribution (see docs/guides/figures.md).
        lbfgs_memory=10,
    ),
    # jcjohnson/neural-style, neural_style.lua's defaults.
    "jcjohnson": StyleConfig(
        content_layers=("relu4_2",),  # -content_layers relu4_2
        style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),  # -style_layers
        normalization="jcjohnson",  # nn.MSECriterion on features and on Gram / (C*H*W).
        content_weight=5.0,  # -content_weight 5e0, given to each content layer (one here).
        style_weight=500.0,  # -style_weight 1e2 given to *each* of the 5 style layers; we
        # share a style weight among the layers, so 5 x 100.
        tv_weight=5e-4,  # -tv_weight 1e-3 on 1/2 * sum(dx^2 + dy^2): its TVLoss gradient.
        tv_power=1.0,
        tv_edges="book",  # TVLoss differences over rows and columns 0..n-2.
        init="mean",  # -init random: torch.randn(...):mul(0.001) in mean-subtracted space.
        iterations=1000,  # -num_iterations 1000 (optim.lbfgs maxIter)
        max_evals=1250,  # optim.lbfgs's maxEval default: maxIter * 1.25.
        lbfgs_memory=100,  # -lbfgs_num_correction 0 keeps optim.lbfgs's nCorrection = 100.
        height=512,  # -image_size 512, which is the *longer* side there (see docs/presets.md).
        model="vgg19", pooling="max",  # VGG_ILSVRC_19_layers, -pooling max.
        padding="zeros",  # Caffe's VGG19 pads with zeros.
        bounds=False,  # It clamps only when saving.
        # -learning_rate 1e1 for -optimizer adam: our default learning rate is 10 as well.
    ),
    # crowsonkb/style-transfer-pytorch (style_transfer/style_transfer.py and cli.py, read
    # setting by setting; docs/presets.md lists what is not yet matched). It uses
    # PyTorch's VGG19 weights on [0, 1] inputs normalised by ImageNet's std; ours are
    # Caffe's on 0-255 inputs, so this matches its settings, not its outputs.
    "crowsonkb": StyleConfig(
        content_layers=("relu4_2",),  # self.content_layers = [22]
        # self.style_layers = [1, 6, 11, 20, 29]:
        style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        style_layer_weights=(256.0, 64.0, 16.0, 4.0, 1.0),  # "style_weights = [256, 64, 16,
        # 4, 1]" divided by their sum, as ours are.
        style_loss="w2",  # StyleLossW2(target, eps=1e-4): losses.W2_EPSILON is that
        # epsilon relative to our features (1e-4 * 57.6**2 = 0.33).
        normalization="jcjohnson",  # ContentLossMSE: nn.MSELoss, the mean (W2 has its own).
        content_weight=0.015,  # content_weight: float = 0.015
        style_weight=1.0,  # The style weights sum to 1 there.
        # tv_weight 2. on a mean over pixels (0-1 levels) of a nine-point L2 stencil; ours is a
        # sum of squared differences (power 1) over 0-255 levels, with features ~57.6x
        # larger (the input scale 255 * 0.226): 2 * 57.6**2 / 255**2 per pixel, at 512 x 512.
        tv_weight=3.9e-7,
        tv_power=1.0,
        optimizer="adam",  # optimizer: str = 'adam'
        learning_rate=5.1,  # step_size 0.02 in 0-1 pixel levels: 0.02 * 255.
        ema=0.99,  # avg_decay: float = 0.99 (the average is delivered, per scale).
        init="content",  # init: str = 'content'
        height=512,  # end_scale 512 (the longer side there).
        scales=3,  # 128, 256, 512 (min_scale 128); theirs grows by sqrt(2) (5 scales).
        iterations=1000, max_evals=3000,  # initial_iterations 1000, then 500 per scale: 3000.
        pooling="max",  # pooling='max' (scale 1).
        padding="symmetric",  # 'replicate' padding, there on the first conv only.
        model="vgg19",
    ),
    # Li and Wand 2016, "Combining Markov Random Fields and Convolutional Neural Networks for
    # Image Synthesis" (CNNMRF): chuanli11/CNNMRF's run_trans.lua and
    # transfer_CNNMRF_wrapper.lua, which use Caffe's VGG19 on 0-255 inputs, as ours.
    "cnnmrf": StyleConfig(
        style_loss="mrf",  # MRF layers {12, 21}: relu3_1 and relu4_1, 3 x 3 patches.
        style_layers=("relu3_1", "relu4_1"),
        # mrf_weight 1e-4 per layer on the sum over patches sampled every 2nd position; ours
        # is a mean over every patch's values (losses.mrf_loss), so the same pull at their
        # 384 x 288 is 1.25e-5 * patches * 9 C: 190 on relu3_1, 90 on relu4_1.
        style_weight=280.0, style_layer_weights=(190.0, 90.0),
        content_layers=("relu4_2",),  # content_layers {23}: relu4_2.
        normalization="jcjohnson",  # nn.ContentLoss: nn.MSECriterion, the mean.
        content_weight=20.0,  # content_weight 2e1
        tv_weight=5e-4, tv_power=1.0, tv_edges="book",  # TVLoss(1e-3): gradient of
        # 1e-3 / 2 * sum(dx^2 + dy^2) over rows and columns 0..n-2.
        init="content",  # ini_method 'image'
        height=384,  # max_size 384 (the longer side there).
        scales=3,  # num_res 3, each half the next.
        iterations=100, max_evals=375,  # num_iter {100, 100, 100}; optim.lbfgs's maxEval
        # default is 1.25 maxIter.
        optimizer="lbfgs", pooling="max", model="vgg19",
        padding="zeros",  # Caffe's VGG19.
        # Not reproduced: the style's rotated and scaled copies (mrf_num_rotation and
        # mrf_num_scale 1: 3 x 3 copies), sampling the generated image's patches every 2nd
        # position (source_sample_stride 2): ours match each of its patches against the
        # style's every 2nd (target_sample_stride 2, losses.MRF_STYLE_STRIDE).
    ),
}


def preset(name: str) -> StyleConfig:
    """The `StyleConfig` of a named preset.

    Raises:
        ValueError: If the name is unknown.
    """
    if name not in PRESETS:
        raise ValueError(f"Unknown preset; use one of {', '.join(PRESETS)}. Received: preset={name!r}")
    return PRESETS[name]
