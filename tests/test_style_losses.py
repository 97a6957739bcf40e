"""Per-layer weights and the other style losses (W2, MRF, histogram) against numpy."""

import numpy as np
import pytest

from conftest import make_image, run_main


# --- Per-layer weights -------------------------------------------------------------------

def test_gatys_layer_weights_are_1e3_over_channels_squared_normalised():
    from nst_keras import objective
    from nst_keras.config import BOOK_STYLE_LAYERS, StyleConfig

    config = StyleConfig(style_layer_weights="gatys", style_weight=10.0)
    terms = {t.name: t.weight for t in objective.make_terms(config)}
    # 1e3/64^2 : 1e3/128^2 : 1e3/256^2 : 1e3/512^2 : 1e3/512^2 = 64 : 16 : 4 : 1 : 1 (sum 86).
    expected = [64 / 86, 16 / 86, 4 / 86, 1 / 86, 1 / 86]
    for layer, share in zip(BOOK_STYLE_LAYERS, expected):
        assert terms[f"style/{layer}"] == pytest.approx(10.0 * share, rel=1e-12)
    raw = {n: 1e3 / c ** 2 for n, c in zip(BOOK_STYLE_LAYERS, (64, 128, 256, 512, 512))}
    shares = objective.layer_shares("gatys", list(BOOK_STYLE_LAYERS), BOOK_STYLE_LAYERS)
    assert shares == pytest.approx({n: v / sum(raw.values()) for n, v in raw.items()})


def test_explicit_layer_weights_follow_the_layers_order_and_are_normalised():
    from nst_keras import objective
    from nst_keras.config import StyleConfig

    config = StyleConfig(style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
                         style_layer_weights="256:64:16:4:1", style_weight=2.0,
                         content_layers=("block4_conv2", "block5_conv2"),
                         content_layer_weights=(3, 1), content_weight=0.5)
    assert config.style_layer_weights == (256.0, 64.0, 16.0, 4.0, 1.0)
    terms = {t.name: t.weight for t in objective.make_terms(config)}
    assert terms["style/block1_conv1"] == pytest.approx(2.0 * 256 / 341)
    assert terms["style/block5_conv1"] == pytest.approx(2.0 * 1 / 341)
    assert terms["content/block4_conv2"] == pytest.approx(0.375)
    assert terms["content/block5_conv2"] == pytest.approx(0.125)
    # Equal (the default) is the book's 1/n, masked terms too.
    masks = [np.ones((32, 32), np.float32)]
    equal = objective.make_terms(StyleConfig(style_weight=5.0), masks=masks)
    assert {t.weight for t in equal if t.kind == "style"} == {1.0}


@pytest.mark.parametrize("args, words", [
    (("--style-layer-weights", "1,2"), "needs one weight per layer (5). Received: "
                                       "--style-layer-weights 1.0,2.0"),
    (("--style-layer-weights", "1,-2,1,1,1"), "--style-layer-weights"),
    (("--content-layer-weights", "0"), "not all 0"),
    (("--content-layer-weights", "heavy"), "expected equal, gatys or numbers"),
])
def test_bad_layer_weights_exit_2_in_one_line(tmp_path, args, words):
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    from PIL import Image

    Image.fromarray(make_image(32, 32)).save(content)
    Image.fromarray(make_image(32, 32, seed=1)).save(style)
    result = run_main(content, style, "--weights", "none", *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr
