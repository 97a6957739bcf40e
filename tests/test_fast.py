"""Fast stylisation: the transformer, the training's data and state, `train` and `--network`.

Trainings run in subprocesses: `--seed` turns TensorFlow's op determinism on, which is
process-wide and would change the other tests' kernels.
"""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from conftest import ROOT, make_image, run_main

TINY = ["--size", "32", "--batch-size", "2", "--width", "4", "--weights", "none",
        "--seed", "1", "-q"]


# --- the network ----------------------------------------------------------------------------


def test_pad_to_stride_reflects_to_a_multiple_of_4_and_keeps_the_size():
    from nst_keras.engine.transformer import pad_to_stride

    rgb = np.arange(5 * 7 * 3, dtype=np.float32).reshape(5, 7, 3)
    padded, size = pad_to_stride(rgb)
    assert size == (5, 7) and padded.shape == (8, 8, 3)
    np.testing.assert_array_equal(padded[:5, :7], rgb)
    # Reflection without the edge repeated: row 5 is row 3, column 7 is column 5.
    np.testing.assert_array_equal(padded[5, :7], rgb[3])
    np.testing.assert_array_equal(padded[:5, 7], rgb[:, 5])
    tiny, _ = pad_to_stride(np.ones((2, 3, 3), np.float32))
    assert tiny.shape == (8, 8, 3)  # At least MIN_SIDE: the first 9x9 conv pads by 4.


def test_the_network_keeps_any_size_and_paints_each_image_on_its_own():
    """Odd sizes come back at their size; instance normalisation makes an image's output
    independent of the other images in its batch (batch normalisation would not be)."""
    from nst_keras.engine import transformer

    network = transformer.build_transformer(4, seed=0)
    photo = make_image(37, 53, seed=3)
    out = transformer.stylize(network, photo)
    assert out.shape == (37, 53, 3) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 255
    a = make_image(32, 32, seed=4).astype(np.float32)
    b = make_image(32, 32, seed=5).astype(np.float32)
    alone = np.asarray(network(a[None], training=True))[0]
    together = np.asarray(network(np.stack([a, b]), training=True))[0]
    np.testing.assert_allclose(alone, together, atol=1e-3)


def test_a_network_file_carries_its_record_and_foreign_files_are_refused(tmp_path):
    import keras

    from nst_keras.engine import transformer

    record = {"kind": transformer.NETWORK_KIND, "style": {"name": "s.png"}, "steps": 3,
              "width": 4}
    network = transformer.build_transformer(4, seed=0, record=record)
    network.save(tmp_path / "net.keras")
    loaded = transformer.load_network(tmp_path / "net.keras")
    assert loaded.record == record and transformer.read_record(tmp_path / "net.keras") == record
    photo = make_image(20, 24, seed=1)
    np.testing.assert_array_equal(transformer.stylize(loaded, photo),
                                  transformer.stylize(network, photo))
    foreign = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    foreign.save(tmp_path / "foreign.keras")
    (tmp_path / "damaged.keras").write_bytes((tmp_path / "net.keras").read_bytes()[:200])
    for name, words in (("foreign.keras", "not a style network"),
                        ("damaged.keras", "not a .keras network file"),
                        ("missing.keras", "does not exist")):
        with pytest.raises(ValueError, match=words):
            transformer.load_network(tmp_path / name)


# --- the training's data and state ----------------------------------------------------------


def test_batches_are_a_function_of_the_seed_and_step_and_each_epoch_takes_every_photo():
    from nst_keras.engine.training import batch_plan

    sizes = [(40, 60), (32, 32), (50, 32), (32, 90), (33, 33)]
    plans = [batch_plan(7, step, sizes, 2, 32) for step in range(10)]
    assert plans == [batch_plan(7, step, sizes, 2, 32) for step in range(10)]
    assert plans != [batch_plan(8, step, sizes, 2, 32) for step in range(10)]
    photos = [crop.photo for p in plans for crop in p]
    for epoch in range(4):  # 20 draws of 5 photos: 4 epochs, each a permutation.
        assert sorted(photos[5 * epoch:5 * epoch + 5]) == [0, 1, 2, 3, 4]
    for crop in (c for p in plans for c in p):
        h, w = sizes[crop.photo]
        assert 32 <= crop.side <= min(h, w)
        assert 0 <= crop.top <= h - crop.side and 0 <= crop.left <= w - crop.side
        if min(h, w) == 32:
            assert crop.side == 32
    # Zoom 1 (each shorter side the crop's): no side is drawn, so the corner and flip are
    # the plan's first draws, as before the zoom.
    for step in range(5):
        rng = np.random.default_rng([7, step, 1])
        (crop,) = batch_plan(7, step, [(32, 40)], 1, 32)
        expected = (int(rng.integers(0, 1)), int(rng.integers(0, 9)), bool(rng.integers(0, 2)))
        assert (crop.top, crop.left, crop.flip, crop.side) == (*expected, 32)
    # Sides are log-uniform between the crop and the shorter side: for a shorter side 4x
    # the crop, their median is 2x it (the geometric mean); uniform sides would give 2.5x.
    sides = [c.side for step in range(1000) for c in batch_plan(3, step, [(128, 200)], 2, 32)]
    assert min(sides) == 32 and max(sides) >= 126
    assert 60 <= np.median(sides) <= 68


def test_the_learning_rate_holds_for_half_the_steps_then_falls_to_a_tenth():
    from nst_keras.config import StyleConfig
    from nst_keras.engine import training

    config = training.TrainConfig(style=StyleConfig(weights=None), steps=10, learning_rate=1e-3)
    rates = [training.learning_rate_at(config, step) for step in range(10)]
    # Steps 0-4 (the first half) at the base; from step 5 (t = 0) to step 9 (t = 1) a
    # cosine from 1 to 0.1 of it: step 7 is t = 0.5, 0.1 + 0.9 * 0.5 = 0.55.
    np.testing.assert_allclose(rates[:6], 1e-3)
    assert rates[7] == pytest.approx(0.55e-3) and rates[9] == pytest.approx(1e-4)
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_crops_and_kept_sizes_by_hand():
    from nst_keras.engine.training import Crop, crop_batch, kept_size

    assert kept_size(300, 451, 256) == (256, 385)
    assert kept_size(600, 512, 256) == (300, 256)
    assert kept_size(200, 900, 256) is None
    # Zoom 2: the shorter side down to 512 at most, never enlarged.
    assert kept_size(1000, 1500, 256, 2.0) == (512, 768)
    assert kept_size(300, 451, 256, 2.0) == (300, 451)
    assert kept_size(200, 900, 256, 2.0) is None
    photo = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    batch = crop_batch([photo], [Crop(0, 1, 2, 4, False), Crop(0, 2, 4, 4, True)], 4)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0], photo[1:5, 2:6])
    np.testing.assert_array_equal(batch[1], photo[2:6, 4:8][:, ::-1])
    # A larger square is brought down to the crop: 8x8 of flat colours in 4x4 quadrants
    # gives 4x4 whose 2x2 quadrants keep those colours away from the seams.
    quads = np.zeros((8, 8, 3), np.uint8)
    quads[:4, :4], quads[:4, 4:], quads[4:, :4], quads[4:, 4:] = 10, 80, 160, 240
    small = crop_batch([np.pad(quads, ((1, 0), (2, 0), (0, 0)))], [Crop(0, 1, 2, 8, True)], 4)
    assert small.shape == (1, 4, 4, 3)
    np.testing.assert_allclose(small[0, [0, 0, 3, 3], [0, 3, 0, 3], 0], [80, 10, 240, 160],
                               atol=8)


def test_a_training_checkpoint_round_trips(tmp_path):
    from nst_keras import checkpoint
    from nst_keras.engine.training import TrainingState

    state = TrainingState(step=12, seed=3, weights={"down1_conv/kernel": np.ones((2, 2))},
                          optimizer={"adam/iteration": np.asarray(12)},
                          losses=np.arange(12.0), kinds={"style": np.arange(12.0) * 2})
    checkpoint.save_checkpoint(tmp_path / "t.npz", checkpoint.Checkpoint("training", state, None))
    back = checkpoint.load_checkpoint(tmp_path / "t.npz")
    assert back.kind == "training" and back.evaluations == 12 and back.describe() == "step 12"
    assert back.solver.seed == 3
    np.testing.assert_array_equal(back.solver.weights["down1_conv/kernel"], np.ones((2, 2)))
    np.testing.assert_array_equal(back.solver.kinds["style"], np.arange(12.0) * 2)
    with pytest.raises(ValueError, match="monitor"):
        checkpoint.Checkpoint("training", state, checkpoint.MonitorState.from_arrays({}))


# --- the commands ---------------------------------------------------------------------------


@pytest.fixture
def photos(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(4):
        Image.fromarray(make_image(40 + 4 * k, 48, seed=10 + k)).save(folder / f"p{k}.png")
    Image.fromarray(make_image(20, 20, seed=1)).save(folder / "small.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    style = tmp_path / "style.png"
    Image.fromarray(make_image(40, 40, seed=2)).save(style)
    return folder, style


def _train(args, cwd, **popen):
    return subprocess.Popen([sys.executable, "-m", "nst_keras", "train", *map(str, args)],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), **popen)


def _weights(path):
    """The network file's weights, array by array."""
    import h5py

    with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as f:
        data = f.read()
    import io

    arrays = {}
    with h5py.File(io.BytesIO(data), "r") as h5:
        h5.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                      if isinstance(item, h5py.Dataset) else None)
    return arrays


@pytest.mark.slow
def test_train_stopped_by_sigterm_or_kill_9_resumes_bit_for_bit(tmp_path, photos):
    folder, style = photos
    args = [style, "--photos", folder, *TINY, "--steps", "40", "--checkpoint-every", "0.2s"]
    reference = _train([*args, "-o", tmp_path / "ref.keras"], tmp_path)
    out, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err.decode()
    expected = _weights(tmp_path / "ref.keras")
    record = json.loads((tmp_path / "ref.json").read_text())
    assert record["photos"] == 3 and record["held_out"] == ["p3.png"]
    assert record["skipped"] == {"unreadable": 1, "smaller than the 32 px crop": 1}
    assert len(record["losses"]) == 40 and (tmp_path / "ref-loss.png").stat().st_size > 0
    for how, code in ((signal.SIGTERM, 143), (signal.SIGKILL, -9)):
        run = tmp_path / how.name
        run.mkdir()
        process = _train([*args, "-o", run / "net.keras"], tmp_path)
        deadline = time.monotonic() + 240
        while not any(p.name.endswith(".checkpoint.npz") for p in run.iterdir()):
            assert process.poll() is None and time.monotonic() < deadline, \
                process.stderr.read().decode()
            time.sleep(0.05)
        process.send_signal(how)
        assert process.wait(timeout=120) == code
        assert not (run / "net.keras").exists()  # Nothing half-written.
        again = _train([*args, "-o", run / "net.keras"], tmp_path)
        _, err = again.communicate(timeout=300)
        assert again.returncode == 0, err.decode()
        resumed = json.loads((run / "net.json").read_text())
        assert 0 < resumed["resumed_from"] < 40, how
        assert resumed["losses"] == record["losses"]
        got = _weights(run / "net.keras")
        assert got.keys() == expected.keys()
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
        # The last checkpoint is kept: more --steps go on from it.
        assert [p.name for p in run.iterdir() if p.name.endswith(".checkpoint.npz")]

    # The trained network stylises a photo of any size, in the photo's own colours if asked.
    from PIL import Image

    photo = tmp_path / "odd.png"
    Image.fromarray(make_image(45, 61, seed=9)).save(photo)
    done = run_main(photo, "--network", tmp_path / "ref.keras", "-o", tmp_path / "o.png",
                    "--height", "45", "--preserve-color", "luminance", "--report", tmp_path)
    assert done.returncode == 0, done.stderr
    result = np.asarray(Image.open(tmp_path / "o.png"))
    assert result.shape == (45, 61, 3)
    from nst_keras.engine import color, transformer

    photo_rgb = make_image(45, 61, seed=9)
    # The photo's colours on the network's luminance (a reference from the network itself).
    network = transformer.load_network(tmp_path / "ref.keras")
    expected = color.combine_luminance(
        np.clip(transformer.stylize(network, photo_rgb, precision=resumed["precision"]), 0, 255),
        photo_rgb)
    assert np.abs(expected.astype(int) - result.astype(int)).max() <= 1
    assert json.loads((tmp_path / "o.json").read_text())["inputs"]["network"].endswith(
        "ref.keras")


def test_train_refuses_bad_folders_in_one_line_and_writes_nothing(tmp_path, photos):
    from PIL import Image

    folder, style = photos
    empty = tmp_path / "empty"
    empty.mkdir()
    unusable = tmp_path / "unusable"
    unusable.mkdir()
    Image.fromarray(make_image(20, 20)).save(unusable / "small.png")
    (unusable / "broken.png").write_bytes(b"not a png")
    net = ["-o", tmp_path / "net.keras"]
    cases = [
        ([style, "--photos", empty, *net], "holds no images"),
        ([style, "--photos", tmp_path / "nowhere", *net], "does not exist"),
        ([style, "--photos", unusable, *net], "no usable photo in the folder (1 unreadable, 1 "
                                              "smaller than the 32 px crop)"),
        ([style, "--photos", folder, "--size", "34", *net], "--size must be a multiple of 4"),
        ([style, "--photos", folder, "--size", "16", *net], "--size must be an integer >= 32"),
        ([style, "--photos", folder, "-o", tmp_path / "net.h5"], "must end in .keras"),
        ([style, "--photos", folder, "--preview", tmp_path / "no.jpg", *net],
         "the preview photo does not exist"),
    ]
    for args, words in cases:
        # TINY first: a case's own --size comes after it and wins.
        done = _run_train(*TINY, *args, "--steps", "1")
        assert done.returncode == 2, (args, done.stderr)
        assert words in done.stderr, (words, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "net.keras").exists() and not (tmp_path / "net.h5").exists()


def _run_train(*args):
    return run_main("train", *args)


def test_network_runs_refuse_what_does_not_apply(tmp_path, image_files):
    from nst_keras.engine import transformer

    content, style = image_files
    record = {"kind": transformer.NETWORK_KIND, "style": {"name": "s.png"}, "steps": 1}
    transformer.build_transformer(4, seed=0, record=record).save(tmp_path / "net.keras")
    (tmp_path / "damaged.keras").write_bytes(b"PK\x03\x04 damaged")
    out = tmp_path / "out.png"
    cases = [
        ([content, style, "--network", tmp_path / "net.keras"], "not both"),
        ([content, "--network", tmp_path / "damaged.keras"], "not a .keras network file"),
        ([content, "--network", tmp_path / "missing.keras"], "does not exist"),
        ([content, "--network", tmp_path / "net.keras", "--preserve-color", "histogram"],
         "after the fact only"),
        ([content, "--network", tmp_path / "net.keras", "--style-mask", content],
         "no style masks"),
        (["--network", tmp_path / "net.keras"], "needs a CONTENT"),
        ([content, "--network", tmp_path / "net.keras", "--max-evals", "9"], "does not apply"),
        ([content, "--network", tmp_path / "net.keras", "--scal", "2"], "does not apply"),
        ([content, "--network", tmp_path / "net.keras", "--tile", "64"], "does not apply"),
    ]
    for args, words in cases:
        done = run_main(*args, "-o", out)
        assert done.returncode == 2, (args, done.stderr)
        assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "--network" in done.stderr or "CONTENT" in done.stderr or "STYLE" in \
            done.stderr or "--preserve-color" in done.stderr or "--style-mask" in done.stderr
    assert not out.exists()
    done = run_main(content, "--network", tmp_path / "net.keras", "-o", out, "--height", "40")
    assert done.returncode == 0, done.stderr
    assert "in the style of s.png" in done.stdout + done.stderr


@pytest.fixture
def network_file(tmp_path):
    """A small random network with a record and a style thumbnail, as train writes it."""
    from nst_keras.engine import transformer

    record = {"kind": transformer.NETWORK_KIND, "steps": 1, "width": 4,
              "style": {"name": "red.png", "thumbnail": transformer.thumbnail_base64(
                  np.full((30, 40, 3), (200, 20, 20), np.uint8))}}
    path = tmp_path / "nets" / "red.keras"
    path.parent.mkdir()
    transformer.build_transformer(4, seed=0, record=record).save(path)
    return path


def test_a_batch_takes_a_network_in_place_of_a_style_and_shows_its_thumbnail(
        tmp_path, image_files, network_file):
    from PIL import Image

    from nst_keras.engine import transformer

    content, style = image_files
    done = run_main("batch", content, "--style", network_file, "--out", tmp_path / "out",
                    "--height", "40", "-q")
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "batch.json").read_text())
    (job,) = summary["jobs"]
    assert job["status"] == "done" and job["loss"] is None
    result = np.asarray(Image.open(tmp_path / "out" / job["output"]))
    network = transformer.load_network(network_file)
    photo = np.asarray(Image.open(content).convert("RGB").resize((53, 40), Image.LANCZOS))
    expected = transformer.stylize(network, photo, precision=json.loads(
        (tmp_path / "out" / f"{job['job']}.json").read_text())["precision"])
    assert np.abs(result.astype(float) - expected).max() <= 1.0
    # The contact sheet's style column is the network's red thumbnail.
    sheet = np.asarray(Image.open(tmp_path / "out" / "contact_sheet.png").convert("RGB"))
    reddish = (sheet[..., 0] > 150) & (sheet[..., 1] < 80) & (sheet[..., 2] < 80)
    assert reddish.sum() > 1000
    # A network cannot be blended with a style image: one line, exit 2.
    blended = run_main("batch", "--jobs", _jobs_csv(tmp_path, content, network_file, style),
                       "--out", tmp_path / "out2", "-q")
    assert blended.returncode == 2 and "cannot be blended" in blended.stderr, blended.stderr


def _jobs_csv(tmp_path, content, network, style):
    path = tmp_path / "jobs.csv"
    path.write_text(f"content,style\n{content},{network};{style}\n")
    return path


def test_the_app_offers_the_servers_networks_and_never_an_uploaded_one(
        tmp_path, image_files, network_file):
    pytest.importorskip("gradio")
    from nst_keras.commands import app
    from nst_keras.config import StyleConfig

    content, style = image_files
    networks = app.networks_in(str(network_file.parent))
    assert networks == {"red": str(network_file)}
    page = app.App(StyleConfig(weights=None, device="cpu"), {}, str(tmp_path),
                   networks=networks)
    values = dict(content_file=content.read_bytes(), content_example="", style_files=None,
                  style_examples=[], preset_name="book", height=40, strength=0,
                  preserve="off", max_evals=10, seed=None, content_layers="block5_conv2",
                  style_layers="block1_conv1", pooling="max", optimizer="lbfgs",
                  tv_weight=1e-4)
    outputs = list(page.stylize(**values, network="red"))
    image, text = outputs[-1][0], outputs[-1][1]
    assert image.shape == (40, 53, 3) and "one pass through the network" in text, text
    # The page shows the network's own pass of the upload (in the precision `auto` picks).
    from PIL import Image

    from nst_keras.engine import runtime, transformer

    photo = np.asarray(Image.open(content).convert("RGB").resize((53, 40), Image.LANCZOS))
    expected = transformer.stylize(transformer.load_network(network_file), photo,
                                   precision=runtime.resolve_precision("auto", "cpu"))
    assert np.abs(np.asarray(image, float) - expected).max() <= 1.0
    # A network the server does not hold (a client's path or name) is refused in one line.
    for name in ("../nets/red", str(network_file)):
        (refused,) = list(page.stylize(**values, network=name))
        assert refused[1].startswith("error: no such network"), refused[1]
    both = list(page.stylize(**dict(values, style_files=[style.read_bytes()]), network="red"))
    assert "not both" in both[-1][1]
    with pytest.raises(console_usage_error()):
        app.networks_in(str(tmp_path / "nowhere"))


def console_usage_error():
    from nst_keras.commands.console import UsageError

    return UsageError


def test_tiny_images_go_through_the_network():
    """Sides of 1 to 4 pixels: padded to the network's least side, cropped back."""
    from nst_keras.engine import transformer

    network = transformer.build_transformer(4, seed=0)
    for h, w in ((1, 1), (2, 3), (4, 9), (3, 40)):
        out = transformer.stylize(network, make_image(h, w, seed=h + w))
        assert out.shape == (h, w, 3), (h, w)
        assert np.isfinite(out).all()


def test_bfloat16_passes_follow_the_networks_weights():
    from nst_keras.engine import transformer

    network = transformer.build_transformer(4, seed=0)
    photo = make_image(16, 16, seed=3)
    before = transformer.stylize(network, photo, precision="bfloat16")
    kernel = network.get_layer("out_conv").kernel
    kernel.assign(kernel.numpy() * 0.5)
    after = transformer.stylize(network, photo, precision="bfloat16")
    assert np.abs(after - before).max() > 1.0
    exact = transformer.stylize(network, photo, precision="float32")
    assert np.abs(after - exact).mean() < 3.0  # bfloat16 rounding, not another network.


def test_video_through_a_network_and_what_it_refuses(tmp_path, network_file):
    pytest.importorskip("av")
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(4):
        Image.fromarray(make_image(24, 32, seed=k)).save(frames / f"f{k}.png")
    out = tmp_path / "out.mp4"
    done = run_main("video", frames, "--network", network_file, "-o", out, "--height", "24",
                    "-q")
    assert done.returncode == 0, done.stderr
    from nst_keras.media import videoio

    assert videoio.probe(out).frame_count == 4
    record = json.loads((tmp_path / "out.json").read_text())
    assert len(record["frames"]) == 4 and record["network"] == str(network_file)
    # Refused in one line, written in full or abbreviated (argparse accepts both).
    for option in (["--temporal-weight", "5"], ["--temporal-w", "5"], ["--first-evals", "3"],
                   ["--iterations", "5"], ["--flow", "farneback"], ["--compare"]):
        refused = run_main("video", frames, "--network", network_file, "-o",
                           tmp_path / "x.mp4", *option)
        assert refused.returncode == 2 and "does not apply to a network" in refused.stderr, \
            (option, refused.stderr)
    assert not (tmp_path / "x.mp4").exists()


def test_the_training_key_holds_for_more_steps_and_changes_with_the_hidden_defaults(
        photos, monkeypatch):
    # A network trained under other defaults (content factor, the rate's fall) is another
    # network: `delivery.done_already` must not take it for this one.
    from nst_keras.commands import train
    from nst_keras.engine import training

    folder, style = photos
    args = [str(style), "--photos", str(folder), *TINY]
    key = train.training_key(train._parse(args))
    assert train.training_key(train._parse([*args, "--steps", "7"])) == key
    for name, value in (("CONTENT_FACTOR", 9.0), ("RATE_FLOOR", 0.2), ("RATE_FALL_FROM", 0.6)):
        with monkeypatch.context() as patched:
            patched.setattr(training, name, value)
            assert train.training_key(train._parse(args)) != key, name
    assert train.training_key(train._parse(args)) == key


@pytest.mark.slow
def test_more_steps_go_on_and_changed_photos_say_so(tmp_path, photos):
    folder, style = photos
    args = [style, "--photos", folder, *TINY, "-o", tmp_path / "net.keras"]
    dry = run_main("train", *args, "--dry-run")  # In process: it builds nothing.
    assert dry.returncode == 0, dry.stderr
    assert "Estimated peak memory of training" in dry.stdout and "base" in dry.stdout
    assert not (tmp_path / "net.keras").exists()
    for steps, resumed in (("3", 0), ("5", 3)):
        run = _train([*args, "--steps", steps], tmp_path)
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err.decode()
        record = json.loads((tmp_path / "net.json").read_text())
        assert record["steps"] == int(steps) and record["resumed_from"] == resumed
    assert (tmp_path / "net-preview.jpg").is_file()  # The held-out photo, p3.png.
    assert record["held_out"] == ["p3.png"] and record["photos"] == 3
    from PIL import Image

    Image.fromarray(make_image(40, 40, seed=30)).save(folder / "p0b.png")
    loud = [a for a in args if a != "-q"]  # The note is a message: not with -q.
    run = _train([*loud, "--steps", "6"], tmp_path)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err.decode()
    assert "changed since the checkpoint" in err.decode()
    assert json.loads((tmp_path / "net.json").read_text())["resumed_from"] == 0
