"""The judge: two numbers that say whether a saved picture is painted, whatever made it.

Every option's loss has its own scale (W2's term is ~1e3 where Gram's is ~1e5 at the same
settings), so a picture cannot be judged by the loss that made it. The judge measures every
picture with one yardstick, outside the objective, on one VGG:

* **stylisation** = S(result) / S(photo), S the Gram style loss against the painting over
  `relu1_1` ... `relu5_1`, the layers weighted equally, each layer normalised as in the paper
  by 4·N_l²·M_l² (N_l channels, M_l positions). Below 1: nearer the painting's statistics
  than the photo is; the default run reaches about 0.01.
* **content kept** = C(result) / C(painting), C the mean squared difference of the `relu4_2`
  features from the photo's. Below 1: nearer the photo than the painting is.

S compares Gram matrices divided by their positions, G/M, so the painting may be judged at
another size than the result (its `--style-scale`); at the same size that is exactly the
paper's ‖G − A‖² / (4N²M²). The painting is stretched to the result's size unless a scale is
given. Colour-preserving runs are judged on grey images (the run kept the photo's colours on
purpose), against the painting as the run used it: its luminance matched to the photo's, or
recoloured to the photo's colours (against the original, a recoloured Scream judged 2.85,
worse than the photo, for a picture covered in its strokes; as the run used it, 0.35).
Blends are judged against the blend's weighted Gram targets, and masks region by region
with guided Gram matrices.

The judge computes in float32 on the network it is given (`judge_network`: the run's VGG,
max pooling) and in float64 for the Gram matrices: no bfloat16, no tiles.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

#: Judged style layers: relu1_1 ... relu5_1 (the same Keras names in VGG16 and VGG19).
STYLE_LAYERS: Tuple[str, ...] = ("block1_conv1", "block2_conv1", "block3_conv1",
                                 "block4_conv1", "block5_conv1")
#: The judged content layer: relu4_2.
CONTENT_LAYER = "block4_conv2"
#: Bounds a painted picture meets (the gallery's and the paint tests' defaults).
STYLISATION_BOUND = 0.2
#: Colour-preserving modes keep the photo's colours, so only grey statistics move.
GREY_STYLISATION_BOUND = 0.5
CONTENT_KEPT_BOUND = 0.8


@dataclasses.dataclass(frozen=True)
class Verdict:
    """How painted one picture is.

    Attributes:
        stylisation: S(result) / S(photo); below 1 is nearer the painting.
        content_kept: C(result) / C(painting); below 1 is nearer the photo.
        grey: Whether the three images were judged as grey images.
        regions: For masked runs, each region's own verdict, keyed "1", "2", ... in the
            order of the masks (the whole-image figures are then the regions' mean,
            weighted by their areas), and "unstyled" for the pixels no mask covers.
    """

    stylisation: float
    content_kept: float
    grey: bool = False
    regions: Optional[Dict[str, "Verdict"]] = None

    def as_dict(self) -> dict:
        """The verdict as plain JSON data."""
        entry = {"stylisation": self.stylisation, "content_kept": self.content_kept,
                 "grey": self.grey}
        if self.regions:
            entry["regions"] = {name: v.as_dict() for name, v in self.regions.items()}
        return entry

    def paints(self, stylisation_bound: Optional[float] = None,
               content_bound: float = CONTENT_KEPT_BOUND) -> bool:
        """Whether it meets the bounds (the grey bound for grey verdicts by default)."""
        if stylisation_bound is None:
            stylisation_bound = GREY_STYLISATION_BOUND if self.grey else STYLISATION_BOUND
        return self.stylisation <= stylisation_bound and self.content_kept <= content_bound


def judge_network(model: str = "vgg19", weights: Optional[str] = "imagenet"):
    """The network a judge measures with: the run's VGG, max pooling, float32.

    A normalised network (`vgg19-normalized`) is judged on itself: its Gram matrices weigh
    every filter alike, where the plain VGG's are dominated by its strongest filters, so the
    plain VGG does not see what the normalised one was asked to match (measured, stand-in
    VGG16 normalised over ../shared/images, the book's settings, 96 px: stylisation 0.11 on
    the normalised network, 0.57 on the plain one).

    Args:
        model: The run's model.
        weights: `"imagenet"`, `None` or a weights file (for a normalised model, its
            normalised file or the base weights whose normalisation is cached).

    Returns:
        A Keras model for `judge` (activations of `STYLE_LAYERS` and `CONTENT_LAYER`).
    """
    from nst_keras.engine import features, normalize

    if model in features.NORMALIZED:
        weights = normalize.resolve(model, weights)
    return features.build_feature_model(
        STYLE_LAYERS + (CONTENT_LAYER,), model=model, weights=weights,
        pooling="max", precision="float32", padding="symmetric")


def judge(network, result, photo, paintings, *, blend_weights: Optional[Sequence[float]] = None,
          masks: Optional[Sequence[np.ndarray]] = None, grey: bool = False,
          painting_heights: Optional[Sequence[Optional[int]]] = None,
          preserve_color: Optional[str] = None) -> Verdict:
    """Judges how painted `result` is: its stylisation and how much content it kept.

    Args:
        network: `judge_network(...)`.
        result: The saved picture, RGB (H, W, 3), 0-255.
        photo: The content photo, RGB, any size (resized to the result's).
        paintings: One style image, or a list of them, RGB, any size.
        blend_weights: With several paintings and no masks, how the run blended them
            (normalised to sum to 1; default equal): S is measured against the blend's
            weighted Gram targets, C against each painting, weighted alike.
        masks: One mask per painting, (H, W) in 0-1 at any size (resized to each layer):
            each region is judged against its own painting with guided Gram matrices.
        grey: Judge the luminance only (colour-preserving runs).
        painting_heights: Each painting's height as the run used it (`--style-scale`),
            its aspect kept; None (default) stretches each painting to the result's size.
        preserve_color: The run's colour mode: judged on grey images, against each
            painting as the run used it (`"luminance"`: its luminance matched to the
            photo's mean and deviation; `"histogram"`: recoloured to the photo's colours),
            since those are the statistics the run was asked to match.

    Returns:
        A `Verdict`.

    Raises:
        ValueError: If the images are not RGB, or masks or heights do not match the
            paintings.
    """
    from nst_keras.engine import color
    from nst_keras.media import images

    paintings = [paintings] if isinstance(paintings, np.ndarray) else list(paintings)
    if preserve_color is not None:
        grey = True
        if preserve_color == "luminance":
            paintings = [color.grey_rgb(color.match_luminance(p, photo)) for p in paintings]
        elif preserve_color == "histogram":
            paintings = [color.match_color_histogram(p, photo) for p in paintings]
    count = len(paintings)
    if masks is not None and len(masks) != count:
        raise ValueError(f"One mask per painting is needed ({count}). "
                         f"Received: {len(masks)} masks")
    if painting_heights is not None and len(painting_heights) != count:
        raise ValueError(f"One height per painting is needed ({count}). "
                         f"Received: painting_heights={list(painting_heights)}")
    weights = np.ones(count) if blend_weights is None else np.asarray(blend_weights, float)
    if weights.shape != (count,) or weights.min() < 0 or weights.sum() <= 0:
        raise ValueError(f"`blend_weights` must be {count} numbers >= 0, not all 0. "
                         f"Received: blend_weights={blend_weights!r}")
    weights = weights / weights.sum()

    def prepared(rgb, size):
        rgb = np.asarray(rgb, np.float32)
        if rgb.ndim != 3 or rgb.shape[-1] != 3:
            raise ValueError(f"Images must be RGB (H, W, 3). Received: shape={rgb.shape}")
        rgb = images.resize_float(rgb, size)
        if grey:
            rgb = np.repeat(color.luminance(rgb)[..., None], 3, axis=-1).astype(np.float32)
        return rgb

    height, width = np.shape(result)[:2]
    size = (width, height)
    result_features = _features(network, prepared(result, size))
    photo_features = _features(network, prepared(photo, size))
    painting_features = []
    for index, painting in enumerate(paintings):
        stretched = _features(network, prepared(painting, size))
        target = stretched
        if painting_heights is not None and painting_heights[index] is not None:
            h = int(painting_heights[index])
            w = max(1, round(np.shape(painting)[1] * h / np.shape(painting)[0]))
            target = _features(network, prepared(painting, (w, h)))
        painting_features.append((stretched, target))

    if masks is None:
        targets = {layer: sum(wt * _gram(target[layer])
                              for wt, (_, target) in zip(weights, painting_features))
                   for layer in STYLE_LAYERS}
        content_painting = sum(wt * _content(stretched, photo_features)
                               for wt, (stretched, _) in zip(weights, painting_features))
        return Verdict(
            stylisation=_ratio(_style(result_features, targets), _style(photo_features, targets)),
            content_kept=_ratio(_content(result_features, photo_features), content_painting),
            grey=grey)

    # Region by region: each painting's Gram targets against the guided Gram matrices of
    # its region, and the content within the region.
    regions = {}
    areas = []
    covered = np.zeros((height, width))
    for index, (mask, (stretched, target)) in enumerate(zip(masks, painting_features)):
        mask = _resized_mask(mask, size)
        covered = covered + mask
        targets = {layer: _gram(target[layer]) for layer in STYLE_LAYERS}
        regions[str(index + 1)] = Verdict(
            stylisation=_ratio(_style(result_features, targets, mask),
                               _style(photo_features, targets, mask)),
            content_kept=_ratio(_content(result_features, photo_features, mask),
                                _content(stretched, photo_features, mask)),
            grey=grey)
        areas.append(mask.sum())
    unstyled = 1.0 - np.clip(covered, 0.0, 1.0)  # Complementary soft masks leave none.
    if unstyled.sum() >= 0.01 * unstyled.size:
        # No painting applies here; its content is measured against the mean painting's.
        regions["unstyled"] = Verdict(
            stylisation=float("nan"),
            content_kept=_ratio(
                _content(result_features, photo_features, unstyled),
                sum(wt * _content(stretched, photo_features, unstyled)
                    for wt, (stretched, _) in zip(weights, painting_features))),
            grey=grey)
    share = np.asarray(areas) / max(sum(areas), 1e-12)
    styled = [regions[str(i + 1)] for i in range(count)]
    return Verdict(stylisation=float(sum(s * v.stylisation for s, v in zip(share, styled))),
                   content_kept=float(sum(s * v.content_kept for s, v in zip(share, styled))),
                   grey=grey, regions=regions)


def _features(network, rgb) -> Dict[str, np.ndarray]:
    """The network's activations of an RGB image, float64, without the batch axis."""
    from nst_keras.engine import features
    from nst_keras.media import images

    out = features.features_of(network, images.preprocess(rgb))
    return {name: np.asarray(value, np.float64)[0] for name, value in out.items()}


def _resized_mask(mask, size) -> np.ndarray:
    """A mask (H, W) in 0-1 (or 0-255 integers, as `images.load_mask` reads them), box-
    filtered to `size` (width, height) as the objective's masks are (`objective.mask_at`)."""
    from nst_keras.engine.objective import mask_at

    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., 0]
    if np.issubdtype(mask.dtype, np.integer):
        mask = mask / 255.0
    return mask_at(mask.astype(np.float32), size[1], size[0])


def _layer_mask(mask: Optional[np.ndarray], shape) -> Optional[np.ndarray]:
    """A mask averaged down (box filter) to a layer's (h, w), or None."""
    if mask is None:
        return None
    return _resized_mask(mask, (shape[1], shape[0])).astype(np.float64)


def _gram(features: np.ndarray, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """G / M: the Gram matrix over positions divided by their count (or by Σ m²)."""
    flat = features.reshape(-1, features.shape[-1])
    if mask is None:
        return flat.T @ flat / flat.shape[0]
    m = _layer_mask(mask, features.shape).reshape(-1, 1)
    guided = flat * m
    return guided.T @ guided / max(float((m ** 2).sum()), 1e-12)


def _style(feature_map: Dict[str, np.ndarray], targets: Dict[str, np.ndarray],
           mask: Optional[np.ndarray] = None) -> float:
    """S: Σ_l (1/L) ‖G_l/M_l − A_l‖² / (4 N_l²), the paper's 1/(4 N² M²) at equal sizes."""
    total = 0.0
    for layer in STYLE_LAYERS:
        channels = feature_map[layer].shape[-1]
        difference = _gram(feature_map[layer], mask) - targets[layer]
        total += float((difference ** 2).sum()) / (4.0 * channels ** 2) / len(STYLE_LAYERS)
    return total


def _content(feature_map: Dict[str, np.ndarray], photo_map: Dict[str, np.ndarray],
             mask: Optional[np.ndarray] = None) -> float:
    """C: the mean squared difference of the relu4_2 features (within the mask's weight)."""
    squared = (feature_map[CONTENT_LAYER] - photo_map[CONTENT_LAYER]) ** 2
    if mask is None:
        return float(squared.mean())
    m = _layer_mask(mask, squared.shape)[..., None]
    return float((squared * m).sum() / max(m.sum() * squared.shape[-1], 1e-12))


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, inf for a zero denominator (the photo is the painting)."""
    return float(numerator / denominator) if denominator > 0 else float("inf")
