"""`python -m nst_keras figure {1,2,3}`: the figures of Gatys, Ecker and Bethge, one command each.

Figure 1: content reconstructions from conv1_2 ... conv5_2 and style reconstructions from
conv1_1, conv1_1-conv2_1, ..., conv1_1-conv5_1, all from white noise (the CVPR 2016 paper's
Fig. 1; the arXiv version reconstructs the content from conv1_1 ... conv5_1).
Figure 2: the Neckarfront in Tuebingen and the same scene in the style of five paintings.
Figure 3: Composition VII; rows = growing sets of style layers, columns = alpha/beta.

Without `--model` a figure runs on the plain VGG (the preset's network without
`-normalized`: vgg19 for `gatys2015`), whatever the normalisation cache holds, and says so;
`--model vgg19-normalized` runs on the paper's normalised VGG, computed beforehand by
`nst-keras normalize-vgg PHOTOS` (refused, exit 2, when it is not).

With `--images DIR` the content photograph must be in DIR; a painting that is not leaves out
the panels that need it (one line each, an empty cell on the grid, `left_out` in the
figure's JSON), and the figure is refused when that leaves no panel to compute.

Every generated panel is written as a PNG with a JSON record next to it (the settings, the
final content and style loss of each layer, evaluations, seconds), then the labelled grid
(matplotlib, Agg) and a JSON summary of the figure. Exit codes as for a plain run: 0 done,
1 a panel failed, 2 bad usage or input, 130 / 143 interrupted (finished panels stay written,
and the grid shows them).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

from nst_keras.commands import console
from nst_keras.config import MODELS, PRESETS, StyleConfig, preset
from nst_keras.engine.features import NORMALIZED, architecture
from nst_keras.commands.console import EXIT_FAILED, EXIT_OK, UsageError

PROG = f"{console.PROG} figure"


# --------------------------------------------------------------------------------------------
# The images: file name -> where it comes from. `--images DIR` takes local files of these names.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """One input image of the figures.

    Attributes:
        title: What it is, as the grids label it.
        url: The file on upload.wikimedia.org, downloaded once into the Keras cache.
        page: Its description page (author, source, licence).
        licence: The licence, in short.
    """

    title: str
    url: str
    page: str
    licence: str


#: The inputs of Gatys et al.'s figures, by the file names `--images DIR` expects.
IMAGES: Dict[str, ImageSource] = {
    "tubingen.jpg": ImageSource(
        title="Neckarfront, Tübingen",
        url="https://upload.wikimedia.org/wikipedia/commons/0/00/Tuebingen_Neckarfront.jpg",
        page="https://commons.wikimedia.org/wiki/File:Tuebingen_Neckarfront.jpg",
        licence="photograph by Andreas Praefcke, CC BY 3.0",
    ),
    "shipwreck.jpg": ImageSource(
        title="The Shipwreck of the Minotaur (Turner)",
        url="https://upload.wikimedia.org/wikipedia/commons/2/2e/Shipwreck_turner.jpg",
        page="https://commons.wikimedia.org/wiki/File:Shipwreck_turner.jpg",
        licence="public domain (J. M. W. Turner, c. 1810)",
    ),
    "starry_night.jpg": ImageSource(
        title="The Starry Night (van Gogh)",
        url=(
            "https://upload.wikimedia.org/wikipedia/commons/thumb/e/ea/"
            "Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg/"
            "1280px-Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg"
        ),
        page=("https://commons.wikimedia.org/wiki/"
              "File:Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg"),
        licence="public domain (Vincent van Gogh, 1889)",
    ),
    "the_scream.jpg": ImageSource(
        title="The Scream (Munch)",
        url=(
            "https://upload.wikimedia.org/wikipedia/commons/c/c5/Edvard_Munch%2C_1893%2C_"
            "The_Scream%2C_oil%2C_tempera_and_pastel_on_cardboard%2C_91_x_73_cm%2C_"
            "National_Gallery_of_Norway.jpg"
        ),
        page=(
            "https://commons.wikimedia.org/wiki/File:Edvard_Munch,_1893,_The_Scream,_oil,_"
            "tempera_and_pastel_on_cardboard,_91_x_73_cm,_National_Gallery_of_Norway.jpg"
        ),
        licence="public domain (Edvard Munch, 1893)",
    ),
    "seated-nude.jpg": ImageSource(
        title="Femme nue assise (Picasso)",
        # Not on Commons (Picasso died in 1973: in copyright in the EU); English Wikipedia
        # hosts it as public domain in the US (published before 1929).
        url=(
            "https://upload.wikimedia.org/wikipedia/en/8/8f/Pablo_Picasso%2C_1909-10%2C_"
            "Figure_dans_un_Fauteuil_%28Seated_Nude%2C_Femme_nue_assise%29%2C_oil_on_canvas%2C_"
            "92.1_x_73_cm%2C_Tate_Modern%2C_London.jpg"
        ),
        page=(
            "https://en.wikipedia.org/wiki/File:Pablo_Picasso,_1909-10,_Figure_dans_un_Fauteuil_"
            "(Seated_Nude,_Femme_nue_assise),_oil_on_canvas,_92.1_x_73_cm,_Tate_Modern,_London.jpg"
        ),
        licence="public domain in the US only (Pablo Picasso, 1909-10); check elsewhere",
    ),
    "composition_vii.jpg": ImageSource(
        title="Composition VII (Kandinsky)",
        url=(
            "https://upload.wikimedia.org/wikipedia/commons/b/b4/"
            "Vassily_Kandinsky%2C_1913_-_Composition_7.jpg"
        ),
        page="https://commons.wikimedia.org/wiki/File:Vassily_Kandinsky,_1913_-_Composition_7.jpg",
        licence="public domain (Wassily Kandinsky, 1913)",
    ),
}

CONTENT = "tubingen.jpg"
DEFAULT_OUT = os.path.join("figures", "figureN")


# --------------------------------------------------------------------------------------------
# The figures as data: panels on a grid.
# --------------------------------------------------------------------------------------------

#: The style layers of the paper, in order; row k of Figure 3 uses the first k.
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
#: Figure 1's content layers (CVPR 2016, Fig. 1).
CONTENT_RECONSTRUCTION_LAYERS = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")
#: Figure 3's columns: alpha/beta.
FIGURE3_RATIOS = (1e-5, 1e-4, 1e-3, 1e-2)
#: The alpha/beta that the preset's weights give (alpha = 1, beta = 1e3). `--style-weight`
#: sets beta for this ratio; every panel keeps the paper's ratio relative to it.
REFERENCE_RATIO = 1e-3


@dataclasses.dataclass(frozen=True)
class Panel:
    """One cell of a grid.

    Attributes:
        name: File stem of the panel's image and JSON record.
        row, col: Position on the grid.
        label: Text above the panel ("" for none).
        content: Content image file name (a key of `IMAGES`), or None.
        style: Style image file name, or None.
        content_layers: Content layers (paper names); empty for a style reconstruction.
        style_layers: Style layers; empty for a content reconstruction.
        ratio: The paper's alpha/beta; None where one of the terms is absent.
        show: For an input panel (nothing computed): the file name of the image shown.
        inset: A style image shown small in the panel's corner, as the paper does.
    """

    name: str
    row: int
    col: int
    label: str = ""
    content: Optional[str] = None
    style: Optional[str] = None
    content_layers: Tuple[str, ...] = ()
    style_layers: Tuple[str, ...] = ()
    ratio: Optional[float] = None
    show: Optional[str] = None
    inset: Optional[str] = None

    @property
    def generated(self) -> bool:
        return self.show is None


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    """A figure: its grid, its panels, and the titles around the grid."""

    number: int
    title: str
    rows: int
    cols: int
    panels: Tuple[Panel, ...]
    row_titles: Tuple[str, ...] = ()
    col_titles: Tuple[str, ...] = ()


def _span(layers: Sequence[str]) -> str:
    """`conv1_1` for one layer, `conv1_1–conv3_1` for several."""
    return layers[0] if len(layers) == 1 else f"{layers[0]}–{layers[-1]}"


def _layer_range(k: int) -> str:
    return _span(STYLE_LAYERS[:k])


def _exponent(ratio: float) -> str:
    return f"1e{round(math.log10(ratio)):d}"


def _ratio_text(ratio: float) -> str:
    return f"α/β = {_exponent(ratio)}"


def figure_spec(number: int) -> FigureSpec:
    """The layout and the panels of Figure `number` (1, 2 or 3).

    Raises:
        ValueError: For another number.
    """
    if number == 1:
        panels = [Panel("content", 0, 0, "content image", show=CONTENT),
                  Panel("style", 1, 0, "style image", show="starry_night.jpg")]
        for i, layer in enumerate(CONTENT_RECONSTRUCTION_LAYERS):
            panels.append(Panel(f"content_{layer}", 0, i + 1, layer, content=CONTENT,
                                content_layers=(layer,)))
        for k in range(1, len(STYLE_LAYERS) + 1):
            panels.append(Panel(f"style_{STYLE_LAYERS[k - 1]}", 1, k, _layer_range(k),
                                style="starry_night.jpg", style_layers=STYLE_LAYERS[:k]))
        return FigureSpec(1, "Reconstructions from white noise", 2, 6,
                          tuple(panels), row_titles=("content", "style"))
    if number == 2:
        # The paper's Fig. 2: A the photograph, B-F the styles; alpha/beta 1e-3 for B, C, D
        # and 1e-4 for E, F (arXiv:1508.06576, Fig. 2 caption).
        styles = (("B", "shipwreck.jpg", "Turner", 1e-3),
                  ("C", "starry_night.jpg", "van Gogh", 1e-3),
                  ("D", "the_scream.jpg", "Munch", 1e-3),
                  ("E", "seated-nude.jpg", "Picasso", 1e-4),
                  ("F", "composition_vii.jpg", "Kandinsky", 1e-4))
        panels = [Panel("A_tubingen", 0, 0, "A  photograph", show=CONTENT)]
        for i, (letter, style, artist, ratio) in enumerate(styles, start=1):
            stem = os.path.splitext(style)[0].replace("-", "_")
            panels.append(Panel(
                f"{letter}_{stem}", i // 2, i % 2,
                f"{letter}  {artist}, {_ratio_text(ratio)}",
                content=CONTENT, style=style, content_layers=("conv4_2",),
                style_layers=STYLE_LAYERS, ratio=ratio, inset=style))
        return FigureSpec(2, "Tübingen in five styles", 3, 2, tuple(panels))
    if number == 3:
        panels = []
        # Row by row, so that the panels that share a feature model come one after another.
        for k in range(1, len(STYLE_LAYERS) + 1):
            for j, ratio in enumerate(FIGURE3_RATIOS):
                name = f"{'ABCDE'[k - 1]}{j + 1}_{STYLE_LAYERS[k - 1]}_ratio{_exponent(ratio)}"
                panels.append(Panel(
                    name, k - 1, j, content=CONTENT, style="composition_vii.jpg",
                    content_layers=("conv4_2",), style_layers=STYLE_LAYERS[:k], ratio=ratio))
        return FigureSpec(
            3, "Composition VII: style layers × α/β", 5, 4,
            tuple(panels),
            row_titles=tuple(f"{'ABCDE'[k - 1]}  {_layer_range(k)}" for k in range(1, 6)),
            col_titles=tuple(_ratio_text(r) for r in FIGURE3_RATIOS),
        )
    raise ValueError(f"`figure` must be 1, 2 or 3. Received: figure={number!r}")


def layout(number: int) -> Tuple[int, int]:
    """(rows, cols) of Figure `number`'s grid."""
    spec = figure_spec(number)
    return spec.rows, spec.cols


def images_needed(number: int) -> List[str]:
    """The file names Figure `number` reads, in order."""
    names = []
    for p in figure_spec(number).panels:
        names += [n for n in (p.show, p.content, p.style, p.inset) if n]
    return list(dict.fromkeys(names))


def panel_config(panel: Panel, base: StyleConfig) -> StyleConfig:
    """The settings of one panel: `base` with the panel's layers and weights.

    alpha is `base.content_weight`. beta keeps the paper's alpha/beta relative to `base`:
    with the preset (alpha 1, beta 1e3, i.e. alpha/beta = REFERENCE_RATIO) a panel of ratio r
    gets beta = alpha / r; a `base` whose beta is k times the preset's multiplies every
    panel's beta by k (for weights whose Gram matrices differ in scale from the paper's).
    """
    scale = beta_scale(base)
    if panel.content_layers and panel.style_layers:
        alpha = base.content_weight
        beta = float(f"{scale * alpha / panel.ratio:.12g}")  # 1e5, not 99999.99999999999.
    elif panel.content_layers:  # A content reconstruction: alpha alone.
        alpha, beta = base.content_weight or 1.0, 0.0
    else:  # A style reconstruction: beta alone, as for alpha/beta = REFERENCE_RATIO.
        alpha, beta = 0.0, base.style_weight or 1.0
    return base.replace(content_layers=panel.content_layers, style_layers=panel.style_layers,
                        content_weight=alpha, style_weight=beta)


def beta_scale(base: StyleConfig) -> float:
    """How much more beta `base` gives than the paper's at alpha/beta = REFERENCE_RATIO."""
    if base.content_weight == 0:
        return 1.0
    return base.style_weight / base.content_weight * REFERENCE_RATIO


# --------------------------------------------------------------------------------------------
# The command line.
# --------------------------------------------------------------------------------------------


#: The settings `figure` offers (the rest are the preset's, as the paper's figures need).
FIGURE_FIELDS = ("height", "iterations", "max_evals", "content_weight", "style_weight", "model",
                 "weights", "device", "precision", "seed")


class FigureParser(console.Parser):
    """`figure`'s parser: with no figure number, says how to give one."""

    def error(self, message):
        if "required: figure" in message:
            raise UsageError(f"which figure? give its number: {PROG} 1, 2 or 3")
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `figure`; unset weights and sizes come from the preset."""
    parser = FigureParser(
        prog=PROG,
        description=(
            "Reproduces Figure 1, 2 or 3 of Gatys, Ecker and Bethge (arXiv:1508.06576, "
            "CVPR 2016) with the paper's settings: one image and one JSON record per panel, "
            "and a labelled grid. The images are downloaded once from Wikimedia Commons, or "
            "read from --images DIR by the file names docs/credits.md lists."
        ),
        formatter_class=console.HelpFormatter,
    )
    parser.add_argument("figure", type=int, choices=(1, 2, 3), help="which figure")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help="output folder, created if missing (N: the figure's number)")
    parser.add_argument("--images", default=None, metavar="DIR",
                        help="read the inputs from DIR instead of downloading them: "
                             + ", ".join(IMAGES))
    parser.add_argument("--preset", choices=sorted(PRESETS), default="gatys2015",
                        help="the settings every panel starts from")
    console.add_config_options(parser, None, preset_defaults=True,
                               fields=[f for f in FIGURE_FIELDS if f != "model"],
                               overrides={"height": 256, "seed": 0})
    # Not the preset's network: its plain VGG unless named (see `base_config`).
    parser.add_argument("--model", choices=MODELS, default=argparse.SUPPRESS,
                        help="feature network (default: the preset's plain VGG, vgg19); "
                             "vgg19-normalized: the paper's rescaled VGG, computed once by "
                             "normalize-vgg PHOTOS")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    console.add_checkpoint_options(parser)
    return parser


def base_config(args) -> StyleConfig:
    """The preset with the options given applied.

    Without `--model`, the network is the preset's plain VGG (`vgg19` for
    `vgg19-normalized`): a figure runs in one command, with no normalisation computed
    beforehand (`network_note` says so).

    Raises:
        UsageError: If a value is invalid.
    """
    changes = console.config_changes(args, FIGURE_FIELDS)
    try:
        base = preset(args.preset).replace(**changes)
    except ValueError as error:
        raise console.as_usage(error) from None
    if "model" not in changes:
        base = base.replace(model=architecture(base.model))
    return base.resolved()  # `--preset book` leaves its weights to the style loss.


def network_note(base: StyleConfig, model_given: bool) -> Optional[str]:
    """The line saying that a figure runs on the plain VGG, not the paper's normalised one;
    None when it runs on the normalised one, or on a plain one that `--model` named."""
    if base.model in NORMALIZED or model_given:
        return None
    return (f"Using the plain {base.model}: the paper's normalised network needs `--model "
            f"{base.model}-normalized` (see normalize-vgg)")


def _described(name: str) -> str:
    """`composition_vii.jpg (Kandinsky, Composition VII)`: the file and what it is."""
    title = IMAGES[name].title
    if title.endswith(")") and " (" in title:  # "Work (Artist)" -> "Artist, Work".
        work, artist = title[:-1].split(" (", 1)
        title = f"{artist}, {work}"
    return f"{name} ({title})"


def _not_at_hand(name: str) -> str:
    """Why a panel is left out: `composition_vii.jpg not in --images`."""
    return f"{name} not in --images"


def _panels_needing(spec: FigureSpec, name: str) -> List[Panel]:
    """The panels of `spec` that read image `name` (shown, content, style or inset)."""
    return [p for p in spec.panels if name in (p.show, p.content, p.style, p.inset)]


def _local_images(args, spec: FigureSpec) -> Tuple[Dict[str, str], Dict[str, str]]:
    """The paths of the images the figure needs in --images DIR, and the panels left out.

    The content photograph must be there; a missing painting leaves out the panels that
    need it (its own input panel included).

    Returns:
        (paths, left_out): the image files found, by name; the panels left out, by name,
        each with the reason (`"composition_vii.jpg not in --images"`).

    Raises:
        UsageError: If DIR or the content photograph is missing, or every generated panel
            would be left out, naming the file expected.
    """
    if not os.path.isdir(args.images):
        raise UsageError(
            f"the --images folder does not exist. Received: --images {args.images}"
        )
    paths, left_out, missing = {}, {}, []
    for name in images_needed(spec.number):
        path = os.path.join(args.images, name)
        if os.path.isfile(path):
            paths[name] = path
            continue
        if name == CONTENT:
            raise UsageError(
                f"Figure {spec.number} needs {_described(name)} in the --images folder; it is "
                f"missing. Received: --images {args.images}"
            )
        missing.append(name)
        for panel in _panels_needing(spec, name):
            left_out.setdefault(panel.name, _not_at_hand(name))
    if all(p.name in left_out for p in spec.panels if p.generated):
        raise UsageError(
            f"Figure {spec.number} needs {', '.join(_described(n) for n in missing)} for "
            f"its panels; {'it is not' if len(missing) == 1 else 'none is'} in the --images "
            f"folder, so no panel can be computed. Received: --images {args.images}"
        )
    return paths, left_out


def _left_out_lines(spec: FigureSpec, left_out: Dict[str, str], folder: str) -> List[str]:
    """One line per missing painting, naming the panels left out for it."""
    lines = []
    for name in images_needed(spec.number):
        panels = [panel for panel, why in left_out.items() if why == _not_at_hand(name)]
        if panels:
            lines.append(f"Figure {spec.number}: {_described(name)} is not in --images "
                         f"{folder}: {'panel' if len(panels) == 1 else 'panels'} "
                         f"{', '.join(panels)} {'is' if len(panels) == 1 else 'are'} left out")
    return lines


def _download_images(spec: FigureSpec) -> Dict[str, str]:
    """Downloads the images the figure needs once into the Keras cache; returns the paths.

    Raises:
        UsageError: If a file cannot be downloaded, naming it once.
    """
    from nst_keras.media import images

    paths = {}
    for name in images_needed(spec.number):
        try:
            paths[name] = images.fetch(IMAGES[name].url)
        except OSError as error:  # Names the URL (once) and the reason.
            raise UsageError(f"{name}: {error}; or pass --images DIR with the files the "
                             "documentation lists (docs/credits.md)") from None
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs `figure`; returns the exit code (see the module's docstring)."""
    return console.command(PROG, argv, _parse, lambda figure, guard: figure.run(guard),
                           save_partial=lambda figure, image: figure.finish(stopped=True))


def _parse(argv) -> "FigureRun":
    args = build_parser().parse_args(argv)
    args.argv = argv
    spec = figure_spec(args.figure)
    base = base_config(args)
    from nst_keras.plan import check_network

    # The network and its weights (a normalised VGG computed beforehand) before any image
    # is downloaded; each panel's plan checks its own layers again.
    console.planned(check_network, base)
    paths, left_out = _local_images(args, spec) if args.images is not None else (None, {})
    out = args.out
    if out == DEFAULT_OUT:
        out = os.path.join("figures", f"figure{spec.number}")
    console.check_folder(out, "--out")
    return FigureRun(args, spec, base, out, paths, left_out)


class FigureRun:
    """One figure's run: the panels computed so far, and the grid and summary of them.

    `run` computes the panels in order, writing each panel's image and record as it
    finishes; `finish` writes the grid and the figure's JSON from the panels done, whether
    the run completed or stopped early (Ctrl-C, out of memory, a non-finite loss). The
    panels `left_out` (a painting not in --images DIR) are neither computed nor counted.
    """

    def __init__(self, args, spec: FigureSpec, base: StyleConfig, out: str,
                 paths: Optional[Dict[str, str]] = None,
                 left_out: Optional[Dict[str, str]] = None):
        self.args, self.spec, self.base, self.out = args, spec, base, out
        self.note = network_note(base, model_given=hasattr(args, "model"))
        self.debug = args.debug
        self.given = paths  # --images DIR's files; downloaded when None.
        self.left_out: Dict[str, str] = dict(left_out or {})  # panel name -> why
        self.paths: Dict[str, str] = {}
        self.loaded: Dict[str, object] = {}
        self.done: Dict[str, str] = {}  # panel name -> image file
        self.start = time.perf_counter()

    @property
    def generated(self):
        return [p for p in self.spec.panels if p.generated and p.name not in self.left_out]

    def run(self, guard) -> int:
        """Plans every panel (every check before the first is computed), computes them in
        order, then writes the grid; returns the exit code. A signal stops the panel in
        flight at its next evaluation: its best image is delivered like a finished panel's
        (its record says `stopped`), then the grid of the panels so far."""
        from nst_keras import delivery
        from nst_keras.errors import StyleTransferError
        from nst_keras.media.images import load_image
        from nst_keras.plan import plan

        args, spec, base, out = self.args, self.spec, self.base, self.out
        if self.note:
            console.say(args.quiet, self.note)
        for line in _left_out_lines(spec, self.left_out, args.images):
            console.say(args.quiet, line)
        self.paths = self.given or _download_images(spec)
        try:
            self.loaded = {name: load_image(path, base.height)
                           for name, path in self.paths.items()}
        except Exception as error:  # Pillow raises many kinds; each means "cannot read".
            raise UsageError(f"cannot read an input image: {error}") from None
        jobs = {}
        for panel in self.generated:
            # A style reconstruction is generated at the style image's size, from noise.
            content = self.paths[panel.content or panel.style]
            style = self.paths[panel.style or panel.content]
            try:
                jobs[panel.name] = plan(content, style, config=panel_config(panel, base))
            except ValueError as error:
                raise console.as_usage(f"panel {panel.name}: {error}") from None
        console.say(args.quiet, f"Figure {spec.number}: {len(jobs)} panels at height "
                                f"{base.height}, {base.model} ({base.weights or 'random weights'}"
                                f"), at most {base.max_evals} evaluations each, into {out}/")
        for number, panel in enumerate(self.generated, start=1):
            job = jobs[panel.name]
            what = panel.label or f"style {_span(panel.style_layers)}, {_ratio_text(panel.ratio)}"
            console.say(args.quiet, f"[{number}/{len(jobs)}] {panel.name}: {what}")
            image_file = f"{panel.name}.png"
            if delivery.done_already(os.path.join(out, image_file),
                                     os.path.join(out, f"{panel.name}.json"), job.key):
                self.done[panel.name] = image_file
                console.say(args.quiet, "    done already (the same settings and images)")
                continue
            checkpoints = console.checkpoint_file(args, job, out, panel.name, prog=PROG)
            try:
                result = console.render_job(job, guard, quiet=args.quiet,
                                            checkpoints=checkpoints)
            except StyleTransferError as error:  # Name the panel; the guard does the rest.
                raise type(error)(f"panel {panel.name}: {error}", best_image=None) from None
            delivered = console.deliver(
                result, job, guard, prog=PROG, output=os.path.join(out, image_file),
                report=out, stem=panel.name, argv=args.argv,
                extra=panel_place(spec, panel, job.config, base, image_file),
                checkpoints=checkpoints)
            if delivered.fallback:
                return EXIT_FAILED
            self.done[panel.name] = image_file
            console.say(args.quiet, "    " + console.summary_line(
                result, "stopped at" if result.stopped else "done"))
            if result.stopped:
                return guard.stopped(PROG, self.finish(stopped=True))
        grid = self.finish(stopped=False)
        console.say(args.quiet, f"Wrote {grid} ({len(self.done)} panels, {spec.rows}x{spec.cols})"
                                f" in {time.perf_counter() - self.start:.0f} s.")
        return EXIT_OK

    def finish(self, stopped: bool) -> str:
        """Writes the grid and the summary of the panels done; says what was written.

        Returns:
            The grid's path when the run completed; when it `stopped` early, a sentence
            saying how many panels were written and where.
        """
        spec, out = self.spec, self.out
        grid = os.path.join(out, f"figure{spec.number}.png")
        total = len(self.generated)
        if stopped and not self.done:
            return f"no panel was finished, nothing saved in {out}/"
        from nst_keras.delivery import write_record

        render_grid(spec, out, self.done, self.loaded, grid, note=grid_note(self.base, spec),
                    left_out=self.left_out)
        write_record(os.path.join(out, f"figure{spec.number}.json"), {
            "figure": spec.number,
            "title": spec.title,
            "layout": [spec.rows, spec.cols],
            "grid": os.path.basename(grid),
            "status": "stopped" if stopped else "done",
            "panels": list(self.done),
            # Panels not computed for want of a painting in --images DIR, and why.
            "left_out": dict(self.left_out),
            "records": [f"{name}.json" for name in self.done],
            "height": self.base.height,
            "preset": self.args.preset,
            # The paper's normalised VGG, or the plain one (and why: `network_note`).
            "model": self.base.model,
            "normalized_network": self.base.model in NORMALIZED,
            "network_note": self.note,
            "beta_scale": beta_scale(self.base),
            "seconds": round(time.perf_counter() - self.start, 3),
            # The URL, or the local file (a link's target: a stand-in shows under its name).
            "images": {n: (IMAGES[n].url if self.args.images is None
                           else os.path.basename(os.path.realpath(p)))
                       for n, p in self.paths.items()},
            "argv": list(self.args.argv),
        })
        if not stopped:
            return grid
        return f"{len(self.done)} of {total} panels written to {out}/ and shown in {grid}"


# --------------------------------------------------------------------------------------------
# Records and the grid.
# --------------------------------------------------------------------------------------------


def panel_place(spec, panel, config, base, image_file) -> dict:
    """The keys a panel's run record starts with: where it sits in the figure, its ratio."""
    alpha, beta = config.content_weight, config.style_weight
    return {
        "figure": spec.number,
        "panel": panel.name,
        "label": panel.label,
        "row": panel.row,
        "col": panel.col,
        "image": image_file,
        "content_image": panel.content,
        "style_image": panel.style,
        "paper_alpha_over_beta": panel.ratio,
        "alpha_over_beta": (alpha / beta) if (panel.ratio is not None and beta) else None,
        "beta_scale": beta_scale(base),
    }


#: Grid geometry, in pixels of the PNG (at DPI dots per inch).
DPI = 100
MIN_CELL_HEIGHT = 160  # Small panels are enlarged (nearest neighbour) so the labels fit.
GAP, LABEL_BAND, ROW_TITLE_BAND, COL_TITLE_BAND, TITLE_BAND = 6, 18, 150, 20, 48


def grid_geometry(spec: FigureSpec, cell_hw: Tuple[int, int]) -> dict:
    """Where everything goes on the grid, in pixels from the top left.

    Args:
        spec: The figure.
        cell_hw: (height, width) of the largest panel image.

    Returns:
        A dict with the PNG's `size` (width, height), the display `scale` of the panels, and
        `cell` (width, height), `left`, `top`, `label_band` of the cells.
    """
    scale = max(1.0, MIN_CELL_HEIGHT / cell_hw[0])
    cell_w, cell_h = round(cell_hw[1] * scale), round(cell_hw[0] * scale)
    label_band = LABEL_BAND if any(p.label for p in spec.panels) else 0
    left = GAP + (ROW_TITLE_BAND if spec.row_titles else 0)
    top = TITLE_BAND + (COL_TITLE_BAND if spec.col_titles else 0)
    width = left + spec.cols * (cell_w + GAP)
    height = top + spec.rows * (label_band + cell_h + GAP)
    return {"size": (width, height), "scale": scale, "cell": (cell_w, cell_h), "left": left,
            "top": top, "label_band": label_band}


def grid_note(base: StyleConfig, spec: Optional[FigureSpec] = None) -> str:
    """The lines under a grid's title: network, weights, size, budget and the beta scale."""
    weights = os.path.basename(base.weights) if base.weights else "random weights"
    note = f"{base.model}, {weights}\nheight {base.height}, at most {base.max_evals} evaluations"
    scale = beta_scale(base)
    uses_ratio = spec is None or any(p.ratio is not None for p in spec.panels)
    if scale != 1 and uses_ratio:  # Figure 1's reconstructions have one term each.
        note += f", β × {scale:g} (the α/β shown are the paper's)"
    return note


def render_grid(spec: FigureSpec, out: str, done: Dict[str, str], loaded, path: str,
                note: str = "", left_out: Optional[Dict[str, str]] = None) -> None:
    """Draws the labelled grid (matplotlib, Agg) and writes it atomically as a PNG.

    Panels not computed (an interrupted run) say "not computed"; panels `left_out` (their
    painting not at hand) say "not at hand". `note` goes under the title (the network,
    weights and budget, so that two grids are not compared blind).
    """
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure
    from PIL import Image

    from nst_keras.delivery import write_image

    images = {}
    for panel in spec.panels:
        if panel.show and panel.show in loaded:
            images[panel.name] = loaded[panel.show]
        elif panel.name in done:
            with Image.open(os.path.join(out, done[panel.name])) as image:
                images[panel.name] = np.asarray(image.convert("RGB"))
    shapes = [im.shape for im in images.values()] or [next(iter(loaded.values())).shape]
    cell_hw = (max(s[0] for s in shapes), max(s[1] for s in shapes))
    geo = grid_geometry(spec, cell_hw)
    width, height = geo["size"]
    cell_w, cell_h = geo["cell"]
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")

    def rect(x, y, w, h):  # Pixels from the top left -> figure fraction from the bottom left.
        return [x / width, 1 - (y + h) / height, w / width, h / height]

    fig.text(0.5, 1 - 13 / height, f"Figure {spec.number}: {spec.title}",
             ha="center", va="center", fontsize=9, weight="bold")
    if note:
        fig.text(0.5, 1 - 35 / height, note, ha="center", va="center", fontsize=6,
                 color="dimgray", linespacing=1.3)
    row_pitch = geo["label_band"] + cell_h + GAP
    for j, title in enumerate(spec.col_titles):
        x = geo["left"] + j * (cell_w + GAP) + cell_w / 2
        fig.text(x / width, 1 - (TITLE_BAND + COL_TITLE_BAND / 2) / height, title,
                 ha="center", va="center", fontsize=9)
    for i, title in enumerate(spec.row_titles):
        y = geo["top"] + i * row_pitch + geo["label_band"] + cell_h / 2
        fig.text((geo["left"] - GAP - 4) / width, 1 - y / height, title, ha="right",
                 va="center", fontsize=8)
    for panel in spec.panels:
        x = geo["left"] + panel.col * (cell_w + GAP)
        y = geo["top"] + panel.row * row_pitch
        if panel.label:
            fig.text((x + 2) / width, 1 - (y + geo["label_band"] / 2) / height, panel.label,
                     ha="left", va="center", fontsize=7, clip_on=True)
        ax = fig.add_axes(rect(x, y + geo["label_band"], cell_w, cell_h))
        ax.set_axis_off()
        image = images.get(panel.name)
        if image is None:
            missing = "not at hand" if panel.name in (left_out or {}) else "not computed"
            ax.text(0.5, 0.5, missing, ha="center", va="center", fontsize=8,
                    color="gray", transform=ax.transAxes)
            continue
        ax.imshow(image, interpolation="nearest" if geo["scale"] > 1 else "antialiased")
        if panel.inset and panel.name in done:
            # The paper shows each painting small in the corner of its panel.
            inset = loaded[panel.inset]
            ih = cell_h * 0.3
            iw = ih * inset.shape[1] / inset.shape[0]
            shown_w = min(cell_w, cell_h * image.shape[1] / image.shape[0])
            ix = x + (cell_w - shown_w) / 2
            inset_ax = fig.add_axes(rect(ix, y + geo["label_band"] + cell_h - ih, iw, ih))
            inset_ax.imshow(inset)
            inset_ax.set_xticks([])
            inset_ax.set_yticks([])
            for spine in inset_ax.spines.values():
                spine.set_edgecolor("white")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    write_image(path, rgba[..., :3].copy())
