"""Every option paints at its documented defaults: judged on the saved picture.

Options used to be checked for running and for matching a formula, which let W2, MRF and
normalised gradients run to exit 0 and leave the photo unpainted. Here each runs in-process
through the Python API on the stand-in VGG16 (random weights cannot tell a painted picture
from an unpainted one), Tübingen x The Starry Night at 96 px, 40 evaluations, and the judge
(`nst_keras.engine.judge`, independent of the loss that made the picture) must say it is
painted. The bounds were calibrated at this size and budget (measured figures beside each):
the photo itself is 1 by definition, and today's W2 and normalised-gradient defaults left
1.4-1.5 and 0.5.
"""

import numpy as np
import pytest

from nst_keras import transfer_style
from nst_keras.engine import judge

pytestmark = [pytest.mark.shared, pytest.mark.slow]

HEIGHT, EVALS = 96, 40
#: The histogram weight the documentation gives (`benchmarks/gallery.py`), with Gram's.
HISTOGRAM_DOC = 1e4

#: name -> (settings, stylisation bound, content-kept bound). Measured at 96 px and 40
#: evaluations on an AMD EPYC (AVX512-BF16, bfloat16) in the comments: (stylisation, content
#: kept). Each bound leaves room for other CPUs and precisions (about 2x on stylisation),
#: and stays far below the unpainted photo's 1: today's W2 default before this test judged
#: 1.40 here, and Adam with normalised gradients at the book's weights diverged ("the run
#: only got worse").
CASES = {
    "gram": ({}, 0.05, 0.8),  # 0.010, 0.52
    "w2": ({"style_loss": "w2"}, 0.3, 0.7),  # 0.114, 0.39
    "mrf": ({"style_loss": "mrf"}, 0.5, 0.85),  # 0.239, 0.66
    # The histogram loss alone, at the weight the documentation gives (with Gram's weight
    # there it adds contrast to a picture Gram already paints).
    "histogram": ({"style_weight": 0.0, "histogram_weight": HISTOGRAM_DOC}, 0.15, 0.8),  # 0.059, 0.61
    "adam-ema": ({"optimizer": "adam", "ema": 0.9}, 0.05, 0.8),  # 0.018, 0.57
    "adam-normalize-gradients": ({"optimizer": "adam", "normalize_gradients": True},
                                 0.05, 0.9),  # 0.010, 0.75
    # Colour kept, with The Scream as the documentation shows it: judged on luminance,
    # against the painting as the run used it (luminance matched to the photo's, or
    # recoloured to its colours).
    "luminance": ({"preserve_color": "luminance"}, 0.4, 0.7),  # 0.164, 0.30
    "histogram-colour": ({"preserve_color": "histogram"}, 0.4, 0.7),  # 0.061, 0.47
    "swap": ({"preserve_color": "swap"}, 0.4, 0.7),  # 0.196, 0.52
}
#: The painting of each case when not The Starry Night.
PAINTINGS = {"luminance": "the_scream.jpg", "histogram-colour": "the_scream.jpg",
             "swap": "the_scream.jpg"}


@pytest.fixture(scope="module")
def judged():
    """judged(settings) -> the Verdict of one 96 px run with those settings."""
    from conftest import SHARED_IMAGES, STAND_IN_WEIGHTS
    from nst_keras.media.images import load_image

    if not STAND_IN_WEIGHTS.is_file() or not SHARED_IMAGES.is_dir():
        pytest.skip("../shared's stand-in weights or images are absent")
    stand_in_weights_path = str(STAND_IN_WEIGHTS)
    network = judge.judge_network("vgg16", stand_in_weights_path)
    content = str(SHARED_IMAGES / "tubingen.jpg")
    photo = load_image(content)

    def run(settings, model="vgg16", network=network, painting="starry_night.jpg"):
        style = str(SHARED_IMAGES / painting)
        result = transfer_style(content, style, model=model, weights=stand_in_weights_path,
                                height=HEIGHT, max_evals=EVALS, seed=0, **settings)
        return judge.judge(network, result.image, photo, load_image(style),
                           preserve_color=settings.get("preserve_color"))

    run.weights, run.images = stand_in_weights_path, SHARED_IMAGES
    return run


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_option_paints_at_its_defaults(judged, name):
    settings, stylisation_bound, content_bound = CASES[name]
    verdict = judged(settings, painting=PAINTINGS.get(name, "starry_night.jpg"))
    assert verdict.stylisation <= stylisation_bound, (name, verdict)
    assert verdict.content_kept <= content_bound, (name, verdict)


def test_the_normalised_network_paints_at_the_books_settings(judged, tmp_path, monkeypatch):
    # normalize-vgg over the images at hand (into a fresh Keras cache), then a run on the
    # normalised network from the *base* weights file, judged on that network (its Gram
    # matrices weigh every filter alike; see `judge.judge_network`). Measured: 0.109, 0.13.
    from nst_keras.engine import normalize

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    photos = normalize.photos_in(str(judged.images))
    normalize.normalize("vgg16-normalized", judged.weights, photos)
    network = judge.judge_network("vgg16-normalized", judged.weights)
    verdict = judged({}, model="vgg16-normalized", network=network)
    assert verdict.stylisation <= 0.25 and verdict.content_kept <= 0.4, verdict


#: The gallery's bounds (issue 33, part 3) for the defaults on the ImageNet VGG19.
IMAGENET_CASES = {"gram": {}, "w2": {"style_loss": "w2"}, "mrf": {"style_loss": "mrf"},
                  "adam-normalize-gradients": {"optimizer": "adam",
                                               "normalize_gradients": True}}


@pytest.mark.imagenet
@pytest.mark.parametrize("name", sorted(IMAGENET_CASES))
def test_the_defaults_paint_on_the_imagenet_vgg19_too(name):
    # The defaults were calibrated on the stand-in VGG16, relative to Gram's weight, so
    # that they carry over: where the ImageNet VGG19 is cached, the same gallery bounds
    # (stylisation <= 0.2, content kept <= 0.8) at the gallery's size and budget.
    import os

    from conftest import SHARED_IMAGES
    from nst_keras.engine.features import imagenet_weights_path
    from nst_keras.media.images import load_image

    if not os.path.isfile(imagenet_weights_path("vgg19")):
        pytest.skip("the ImageNet VGG19 weights are not in the Keras cache")
    if not SHARED_IMAGES.is_dir():
        pytest.skip("../shared/images is absent")
    content = str(SHARED_IMAGES / "tubingen.jpg")
    style = str(SHARED_IMAGES / "starry_night.jpg")
    result = transfer_style(content, style, model="vgg19", weights="imagenet", height=256,
                            max_evals=200, seed=0, **IMAGENET_CASES[name])
    verdict = judge.judge(judge.judge_network("vgg19", "imagenet"), result.image,
                          load_image(content), load_image(style))
    assert verdict.stylisation <= judge.STYLISATION_BOUND, verdict
    assert verdict.content_kept <= judge.CONTENT_KEPT_BOUND, verdict
