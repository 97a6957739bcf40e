"""Every setting of a style-transfer run, with its default, in one frozen dataclass.

The CLI, the Python API, the figures and the notebooks all read their defaults from
`StyleConfig`, so a default is changed in one place only.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

#: The style layers of the book (and of Gatys et al.): the first conv layer of each block.
BOOK_STYLE_LAYERS: Tuple[str, ...] = (
    "block1_conv1",
    "block2_conv1",
    "block3_conv1",
    "block4_conv1",
    "block5_conv1",
)

NORMALIZATIONS = ("book", "paper")
INITS = ("content", "noise", "style")
MODELS = ("vgg19", "vgg16")
POOLINGS = ("max", "avg")
DEVICES = ("auto", "cpu", "gpu")
PRECISIONS = ("auto", "float32", "bfloat16")
TV_EDGES = ("all", "book")


@dataclasses.dataclass(frozen=True)
class StyleConfig:
    """Settings of one run; the defaults are those of the book's 1st edition (section 8.3).

    Attributes:
        content_layers: Layers whose activations carry the content (Keras or paper names).
            Book: `block5_conv2`. The paper uses `conv4_2`.
        style_layers: Layers whose Gram matrices carry the style. Book and paper:
            `block1_conv1` ... `block5_conv1`.
        content_weight: Weight of the content loss (alpha), shared equally by the content
            layers. Book: 0.025.
        style_weight: Weight of the style loss (beta), shared equally by the style layers.
            Book: 1.0.
        tv_weight: Weight of the total-variation loss. Book: 1e-4.
        tv_power: Exponent of the total-variation loss. Book: 1.25.
        normalization: `"book"` divides every style layer's squared Gram error by
            4 * 3**2 * (H*W)**2, with the *image's* height and width, and uses no 1/2 in the
            content loss; `"paper"` uses 1 / (4 * N_l**2 * M_l**2) per layer (N_l channels,
            M_l positions of layer l) and 1/2 in the content loss (Gatys et al., eq. 1 and 4).
        init: Starting image: `"content"` (book), `"noise"` (the paper: white noise) or
            `"style"` (the style image resized to the content's size).
        height: Height in pixels of the generated image; the width follows the content's
            aspect ratio. Book: 400.
        style_height: Height the style image is resized to; `None` uses `height`.
        iterations: Upper bound on L-BFGS iterations.
        max_evals: Upper bound on loss+gradient evaluations. Book: 20 x 20 = 400.
        model: `"vgg19"` (book, paper) or `"vgg16"`.
        weights: `"imagenet"`, `None` (random initialisation, for tests) or the path of a
            weights file for the `include_top=False` model (the Keras convention).
        pooling: `"max"` (book, Keras) or `"avg"` (the paper's choice).
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
    """

    content_layers: Tuple[str, ...] = ("block5_conv2",)
    style_layers: Tuple[str, ...] = BOOK_STYLE_LAYERS
    content_weight: float = 0.025
    style_weight: float = 1.0
    tv_weight: float = 1e-4
    tv_power: float = 1.25
    normalization: str = "book"
    init: str = "content"
    height: int = 400
    style_height: Optional[int] = None
    iterations: int = 1000
    max_evals: int = 400
    model: str = "vgg19"
    weights: Optional[str] = "imagenet"
    pooling: str = "max"
    seed: Optional[int] = None
    jit_compile: bool = False
    device: str = "auto"
    precision: str = "auto"
    bounds: bool = True
    tv_edges: str = "all"

    def __post_init__(self):
        # Lists are accepted for convenience and stored as tuples, so the record stays hashable.
        for name in ("content_layers", "style_layers"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        if not self.content_layers and not self.style_layers:
            raise ValueError(
                "At least one content or style layer is needed. "
                f"Received: content_layers={self.content_layers}, style_layers={self.style_layers}"
            )
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = getattr(self, name)
            if not _is_finite_number(value) or value < 0:
                raise ValueError(
                    f"`{name}` must be a finite number >= 0. Received: {name}={value!r}"
                )
        if not _is_finite_number(self.tv_power) or self.tv_power <= 0:
            raise ValueError(f"`tv_power` must be > 0. Received: tv_power={self.tv_power!r}")
        for name, allowed in (
            ("normalization", NORMALIZATIONS),
            ("init", INITS),
            ("model", MODELS),
            ("pooling", POOLINGS),
            ("device", DEVICES),
            ("precision", PRECISIONS),
            ("tv_edges", TV_EDGES),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(
                    f"`{name}` must be one of {', '.join(allowed)}. Received: {name}={value!r}"
                )
        for name in ("height", "iterations", "max_evals"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
        if self.style_height is not None and (
            not isinstance(self.style_height, int) or self.style_height < 1
        ):
            raise ValueError(
                "`style_height` must be None or an integer >= 1. "
                f"Received: style_height={self.style_height!r}"
            )

    def replace(self, **changes) -> "StyleConfig":
        """Returns a copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)


def _is_finite_number(value) -> bool:
    try:
        return float(value) == float(value) and abs(float(value)) != float("inf")
    except (TypeError, ValueError):
        return False


#: Named settings. "book" is the book's 1st edition (the default). "gatys2015" follows
#: Gatys, Ecker and Bethge, "A Neural Algorithm of Artistic Style" (arXiv:1508.06576), each
#: value with its source; where the paper is silent, the choice is named.
PRESETS = {
    "book": StyleConfig(),
    "gatys2015": StyleConfig(
        content_layers=("block4_conv2",),  # "conv4_2" (paper, Fig. 2 and Methods).
        style_layers=BOOK_STYLE_LAYERS,  # conv1_1 ... conv5_1, w_l = 1/5 (Methods).
        normalization="paper",  # 1/(4 N_l^2 M_l^2) (eq. 4); 1/2 in the content loss (eq. 1).
        pooling="avg",  # "replacing the max-pooling by average pooling" (Methods).
        init="noise",  # Gradient descent "from a white noise image" (Methods).
        content_weight=1.0,  # alpha/beta = 1e-3 (Fig. 2 B, C, D): alpha = 1, beta = 1e3.
        style_weight=1e3,
        tv_weight=0.0,  # The paper has no total-variation term.
        model="vgg19",  # "the 16 convolutional and 5 pooling layers of the 19 layer VGG".
        # Optimiser: L-BFGS (CVPR 2016 version), as every run here. Not reproduced: the
        # paper rescales VGG19's weights so that each filter's mean activation is 1
        # (Methods); Keras' ImageNet weights are used as they are, so the per-layer balance
        # of the style loss, and the effect of a given alpha/beta, differ from the paper's.
        # Unknown, and chosen: image size, iterations, the noise's distribution (see README).
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
