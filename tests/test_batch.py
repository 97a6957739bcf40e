"""`batch`: pairing, names, resume after kill -9, failure isolation, Ctrl-C, the contact sheet,
and the Ray engine (bit-identical to the local one; a killed worker's job retried)."""

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from nst_keras.commands import batch, jobs
from nst_keras.config import StyleConfig
from nst_keras.commands.contact_sheet import sheet_geometry

from conftest import make_image, run_main

TINY = dict(weights=None, height=48, max_evals=4, seed=0)
TINY_ARGS = ["--weights", "none", "--height", "48", "--max-evals", "4", "--seed", "0"]


@pytest.fixture
def folders(tmp_path):
    contents, styles = tmp_path / "photos", tmp_path / "paintings"
    contents.mkdir()
    styles.mkdir()
    for i in range(2):
        Image.fromarray(make_image(48, 64, seed=i)).save(contents / f"photo{i}.png")
    for i in range(2):
        Image.fromarray(make_image(40, 40, seed=10 + i)).save(styles / f"style{i}.jpg")
    return contents, styles


def _statuses(out):
    summary = json.loads((out / "batch.json").read_text())
    return {job["job"]: job["status"] for job in summary["jobs"]}


# --- Jobs ------------------------------------------------------------------------------------


def test_folders_globs_and_files_pair_as_a_product_or_one_to_one(folders):
    contents, styles = folders
    found = jobs.collect([str(contents), str(styles / "*.jpg")], "content")
    assert [os.path.basename(p) for p in found] == ["photo0.png", "photo1.png",
                                                    "style0.jpg", "style1.jpg"]
    config = StyleConfig(**TINY)
    product = jobs.pair(jobs.collect([str(contents)], "content"),
                        jobs.collect([str(styles)], "style"), config)
    assert [j.name for j in product] == ["photo0__style0", "photo0__style1", "photo1__style0",
                                         "photo1__style1"]
    zipped = jobs.pair(jobs.collect([str(contents)], "content"),
                       jobs.collect([str(styles)], "style"), config, "zip")
    assert [j.name for j in zipped] == ["photo0__style0", "photo1__style1"]
    with pytest.raises(ValueError, match="Received: content=.*nothing"):
        jobs.collect([str(contents / "nothing*.png")], "content")


def test_folders_and_globs_are_taken_in_natural_order_images_only(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for number in (10, 2, 1):
        Image.fromarray(make_image(8, 8, seed=number)).save(folder / f"photo{number}.png")
    (folder / "photo3.txt").write_text("notes")
    natural = [str(folder / f"photo{n}.png") for n in (1, 2, 10)]
    assert jobs.collect([str(folder)], "content") == natural
    assert jobs.collect([str(folder / "photo*")], "content") == natural
    # A file named on its own is taken as it is (a bad one fails its job, not the batch).
    assert jobs.collect([str(folder / "photo3.txt"), str(folder)], "content") == [
        str(folder / "photo3.txt"), *natural]


def test_a_csv_row_overrides_settings_and_can_blend_and_mask(folders, tmp_path):
    contents, styles = folders
    mask = tmp_path / "mask.png"
    Image.fromarray(np.full((48, 64), 255, np.uint8)).save(mask)
    csv_file = tmp_path / "jobs.csv"
    csv_file.write_text(
        "content,style,mask,style_weight,height,preserve_color\n"
        "photos/photo0.png,paintings/style0.jpg,,5,64,luminance\n"
        "photos/photo1.png,paintings/style0.jpg;paintings/style1.jpg,mask.png;mask.png,,,\n")
    rows = jobs.read_jobs_csv(str(csv_file), StyleConfig(**TINY))
    assert rows[0].config.style_weight == 5.0 and rows[0].config.height == 64
    assert rows[0].config.preserve_color == "luminance" and rows[0].masks is None
    assert rows[1].config == StyleConfig(**TINY) and len(rows[1].styles) == 2
    assert rows[1].name == "photo1__style0+style1" and rows[1].masks == (str(mask), str(mask))
    csv_file.write_text("content,style,brightness\nphotos/photo0.png,paintings/style0.jpg,3\n")
    with pytest.raises(ValueError, match="unknown: brightness"):
        jobs.read_jobs_csv(str(csv_file), StyleConfig(**TINY))
    csv_file.write_text("content,style,height\nphotos/photo0.png,paintings/style0.jpg,tall\n")
    with pytest.raises(ValueError, match="row 2 of the jobs file: 'tall'"):
        jobs.read_jobs_csv(str(csv_file), StyleConfig(**TINY))


def test_init_and_weights_cells_are_relative_to_the_csvs_folder(folders, tmp_path,
                                                               monkeypatch):
    contents, styles = folders
    Image.fromarray(make_image(48, 64, seed=7)).save(tmp_path / "start.png")
    (tmp_path / "vgg19.weights.h5").write_bytes(b"weights")
    csv_file = tmp_path / "jobs.csv"
    csv_file.write_text(
        "content,style,init,weights\n"
        "photos/photo0.png,paintings/style0.jpg,start.png,vgg19.weights.h5\n"
        "photos/photo1.png,paintings/style0.jpg,noise,imagenet\n"
        "photos/photo1.png,paintings/style1.jpg,,none\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # Not the CSV's folder.
    # The command's own paths (--init on the command line) stay as the user gave them.
    rows = jobs.read_jobs_csv(str(csv_file), StyleConfig(**TINY, init="mine.png"))
    assert rows[0].config.init == str(tmp_path / "start.png")
    assert rows[0].config.weights == str(tmp_path / "vgg19.weights.h5")
    assert (rows[1].config.init, rows[1].config.weights) == ("noise", "imagenet")
    assert (rows[2].config.init, rows[2].config.weights) == ("mine.png", None)
    # The whole batch, run from another folder, reads the init image beside the CSV.
    csv_file.write_text("content,style,init\nphotos/photo0.png,paintings/style0.jpg,start.png\n")
    out = tmp_path / "out"
    done = run_main("batch", "--jobs", csv_file, "--out", out, "-q", *TINY_ARGS)
    assert done.returncode == 0, done.stderr
    record = json.loads((out / "photo0__style0.json").read_text())
    assert record["settings"]["init"] == str(tmp_path / "start.png")


def test_a_bad_cell_is_named_by_row_and_column_in_the_files_words(folders, tmp_path):
    csv_file = tmp_path / "jobs.csv"
    rows = "content,style,{}\nphotos/photo0.png,paintings/style0.jpg,{}\n"

    def error_of(column, cell):
        csv_file.write_text(rows.format(column, cell) + "photos/photo1.png,paintings/style1.jpg,"
                                                         f"{cell}\n")
        with pytest.raises(ValueError) as raised:
            jobs.read_jobs_csv(str(csv_file), StyleConfig(**TINY))
        return str(raised.value)

    assert error_of("height", "abc") == (
        "row 2 of the jobs file: 'abc' is not a valid height (an integer >= 1; auto is for a "
        f"single run). Received: jobs_file={csv_file}")
    assert error_of("height", "0").startswith("row 2 of the jobs file: '0' is not a valid height")
    assert error_of("pooling", "mean").startswith(
        "row 2 of the jobs file: 'mean' is not a valid pooling (one of max, avg). Received:")
    assert error_of("jit_compile", "maybe").startswith(
        "row 2 of the jobs file: 'maybe' is not a valid jit_compile (true or false, 1 or 0, "
        "yes or no)")
    assert error_of("style_scale", "1 x").startswith(
        "row 2 of the jobs file: '1 x' is not a valid style_scale (numbers > 0, separated by "
        "spaces)")
    # A check of the settings together (StyleConfig's) names the columns too.
    csv_file.write_text("content,style,style_height,style_scale\n"
                        "photos/photo0.png,paintings/style0.jpg,256,1\n")
    with pytest.raises(ValueError) as raised:
        jobs.read_jobs_csv(str(csv_file), StyleConfig(**TINY))
    assert str(raised.value) == (
        "row 2 of the jobs file: give style_height or style_scale, not both; got style_height "
        f"256, style_scale (1.0,). Received: jobs_file={csv_file}")


def test_the_command_line_shows_a_bad_cell_in_the_files_words_and_the_option(folders,
                                                                             tmp_path):
    csv_file = tmp_path / "jobs.csv"
    out = tmp_path / "out"
    csv_file.write_text("content,style,height\nphotos/photo0.png,paintings/style0.jpg,64\n"
                        "photos/photo1.png,paintings/style0.jpg,abc\n")
    done = run_main("batch", "--jobs", csv_file, "--out", out, *TINY_ARGS)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.split(" error: ", 1)[1] == (
        "row 3 of the jobs file: 'abc' is not a valid height (an integer >= 1; auto is for a "
        f"single run). Received: --jobs {csv_file}\n")
    csv_file.write_text("content,style,style_height,style_scale\n"
                        "photos/photo0.png,paintings/style0.jpg,256,1\n")
    done = run_main("batch", "--jobs", csv_file, "--out", out, *TINY_ARGS)
    assert done.returncode == 2
    assert done.stderr.split(" error: ", 1)[1] == (
        "row 2 of the jobs file: give style_height or style_scale, not both; got style_height "
        f"256, style_scale (1.0,). Received: --jobs {csv_file}\n")
    done = run_main("batch", "--jobs", tmp_path / "missing.csv", "--out", out, *TINY_ARGS)
    assert done.returncode == 2 and "jobs=" not in done.stderr
    assert done.stderr.split(" error: ", 1)[1] == (
        "cannot read the jobs file: No such file or directory. "
        f"Received: --jobs {tmp_path / 'missing.csv'}\n")
    assert not out.exists()


def test_the_output_folder_is_shown_with_one_slash_however_it_was_given(folders, tmp_path):
    from nst_keras.commands import console

    contents, styles = folders
    out = tmp_path / "styled"
    done = run_main("batch", contents / "photo0.png", "--style", styles / "style0.jpg",
                    "--out", f"{out}//", *TINY_ARGS[:-4], "--max-evals", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == f"1 jobs into {out}/ on local (this process)."
    assert lines[-1].endswith(f"; {out}/batch.json, {out}/contact_sheet.png.")
    assert "//" not in done.stderr
    for given in ("styled", "styled/", "styled//", "./styled/"):
        assert console.shown_folder(given) == "styled/"
    assert console.shown_folder("/") == "/" and console.shown_folder(".") == "./"


def test_output_names_are_sanitised_and_stay_inside_the_output_folder(tmp_path):
    assert jobs.job_name("../../x.jpg", ["a b/c?.png"]) == "x__c"
    assert jobs.job_name("..", [".hidden.png"]) == "image__hidden"
    named = jobs.unique_names([jobs.BatchJob("a__b", "1/a.png", ("b",), None, StyleConfig())] * 3)
    assert [j.name for j in named] == ["a__b", "a__b-2", "a__b-3"]
    for name in ("x__c", "image__hidden"):
        path = os.path.realpath(tmp_path / f"{name}.png")
        assert os.path.dirname(path) == os.path.realpath(tmp_path)


def test_a_jobs_key_changes_with_its_settings_and_its_images_bytes(folders):
    contents, styles = folders
    job = jobs.pair([str(contents / "photo0.png")], [str(styles / "style0.jpg")],
                    StyleConfig(**TINY))[0]
    digests = {p: jobs.file_digest(p) for p in (job.content, *job.styles)}
    key = jobs.job_key(job, digests)
    assert key == jobs.job_key(job, dict(digests))
    other = job.__class__(job.name, job.content, job.styles, None,
                          job.config.replace(style_weight=2.0))
    assert jobs.job_key(other, digests) != key
    assert jobs.job_key(job, {**digests, job.content: "0" * 64}) != key


# --- Running -----------------------------------------------------------------------------


def test_one_bad_image_fails_its_jobs_only_and_the_batch_exits_1(folders, tmp_path):
    contents, styles = folders
    (contents / "broken.png").write_text("not an image")
    out = tmp_path / "out"
    done = run_main("batch", contents, "--style", styles, "--out", out, "-q", *TINY_ARGS)
    assert done.returncode == 1
    assert done.stderr.strip() == (f"nst-keras batch: error: 2 of 6 jobs failed; see "
                                   f"{out / 'batch.json'}")
    summary = json.loads((out / "batch.json").read_text())
    failed = [j for j in summary["jobs"] if j["status"] == "failed"]
    assert [j["job"] for j in failed] == ["broken__style0", "broken__style1"]
    assert all("cannot read the content image" in j["reason"] for j in failed)
    assert summary["counts"]["done"] == 4
    for job in summary["jobs"]:
        if job["status"] == "done":
            record = json.loads((out / f"{job['job']}.json").read_text())
            assert record["job_key"] == job["key"] and record["size"] == [48, 64]
            assert Image.open(out / job["output"]).size == (64, 48)
    # The contact sheet: contents down the side, styles along the top, failures marked.
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size == sheet_geometry(3, 2, 64 / 48)["size"]


def test_bad_options_are_refused_before_any_job(folders, tmp_path):
    contents, styles = folders
    out = tmp_path / "out"
    done = run_main("batch", contents, "--style", styles, "--out", out, "--style-scale", "1",
                    "2", *TINY_ARGS)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--style-scale needs one value or one per style (1)" in done.stderr
    assert not out.exists()
    done = run_main("batch", contents, "--out", out)
    assert done.returncode == 2 and "--style" in done.stderr


def test_ray_missing_says_how_to_install_it(folders, tmp_path, monkeypatch):
    contents, styles = folders
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError.
    done = run_main("batch", contents, "--style", styles, "--out", tmp_path / "out",
                    "--engine", "ray", *TINY_ARGS)
    assert done.returncode == 2 and "pip install 'nst-keras[ray]'" in done.stderr


def _wait_for(predicate, timeout=240):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _running(out):
    try:
        return [name for name, status in _statuses(out).items() if status == "running"]
    except (OSError, ValueError):
        return []


def test_a_rerun_does_exactly_the_missing_jobs_even_after_kill_9(folders, tmp_path):
    contents, styles = folders
    out = tmp_path / "out"
    # Jobs of a few seconds, so that the second run can be killed in the middle of one.
    args = ["batch", str(contents / "photo0.png"), "--style", str(styles), "--out", str(out),
            "-q", *TINY_ARGS[:-4], "--max-evals", "40"]
    assert run_main(*args).returncode == 0
    assert set(_statuses(out).values()) == {"done"}
    # Delete one output; a second run starts on exactly that job and is killed (SIGKILL).
    (out / "photo0__style1.png").unlink()
    process = subprocess.Popen([sys.executable, "-m", "nst_keras", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: _running(out) == ["photo0__style1"])
        time.sleep(0.3)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert not (out / "photo0__style1.png").exists()  # Nothing half-written.
    assert run_main(*args).returncode == 0
    statuses = _statuses(out)
    assert statuses.pop("photo0__style1") == "done"  # Exactly the missing job ran.
    assert set(statuses.values()) == {"skipped"}


def test_ctrl_c_keeps_finished_jobs_and_the_best_image_of_the_job_in_flight(folders, tmp_path):
    contents, styles = folders
    out = tmp_path / "out"
    args = [sys.executable, "-m", "nst_keras", "batch", str(contents), "--style", str(styles),
            "--out", str(out), "-q", "--weights", "none", "--height", "48", "--seed", "0",
            "--max-evals", "80"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert _wait_for(lambda: _running(out) == ["photo0__style1"])
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "kept in" in err and "a rerun does the rest" in err
    statuses = _statuses(out)
    assert statuses["photo0__style0"] == "done" and statuses["photo0__style1"] == "interrupted"
    assert (out / "photo0__style0.png").exists() and (out / "photo0__style1.partial.png").exists()
    assert not (out / "photo0__style1.png").exists()


# --- Ray ----------------------------------------------------------------------------------------


@pytest.fixture
def ray_env(monkeypatch):
    """A loopback-only local Ray cluster with its own token: nothing listens outside this
    machine, no ~/.ray token file is written, no one else's cluster is joined."""
    # Read when Ray is first imported: set before the import.
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    yield
    os.environ.pop("RAY_AUTH_MODE", None)  # ray.init leaves it set.


def test_ray_gives_bit_identical_images_and_retries_a_killed_worker(folders, tmp_path, ray_env):
    from nst_keras.commands.engines import RayEngine, Resuming

    contents, styles = folders
    config = StyleConfig(**dict(TINY, max_evals=30, precision="float32"))
    batch_jobs = jobs.pair(jobs.collect([str(contents)], "content"),
                           jobs.collect([str(styles)], "style"), config)
    local = batch.run_batch(batch_jobs, str(tmp_path / "local"))
    assert local.count("done") == 4
    engine = RayEngine(workers=1, retries=1)
    (first_pid,) = engine.pids()
    folder = tmp_path / "checkpoints"
    killed = []

    def kill_after_a_checkpoint():
        # SIGKILL the actor once the job in flight has written a checkpoint: Ray retries
        # the job on a restarted actor with its original arguments, and the retry finds it.
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            if folder.is_dir() and any(p.name.startswith("photo0__style1.")
                                       for p in folder.iterdir()):
                os.kill(first_pid, signal.SIGKILL)
                killed.append(first_pid)
            time.sleep(0.01)

    def watch(progress):
        if progress.last == "photo0__style1 started" and not killed:
            threading.Thread(target=kill_after_a_checkpoint, daemon=True).start()

    report = batch.run_batch(batch_jobs, str(tmp_path / "ray"), engine=engine,
                             progress=watch, resuming=Resuming(str(folder), every=0.05))
    assert killed and report.count("done") == 4
    workers = {e["job"]: e["worker"] for e in report.entries}
    assert workers["photo0__style0"].endswith(f":{first_pid}")
    # Each worker process built its model once, the restarted one too.
    assert {e["model_builds"] for e in report.entries} == {1}
    assert not workers["photo0__style1"].endswith(f":{first_pid}")  # A restarted actor.
    # The retried job went on from its checkpoint, not from zero, and exactly.
    retried = json.loads((tmp_path / "ray" / "photo0__style1.json").read_text())
    assert 0 < retried["resumed_from"] < retried["evaluations"] == 30
    assert not list(folder.iterdir())  # Each done job's checkpoint removed.
    for entry in report.entries:
        a = np.asarray(Image.open(tmp_path / "local" / entry["output"]))
        b = np.asarray(Image.open(tmp_path / "ray" / entry["output"]))
        np.testing.assert_array_equal(a, b)


def test_numbered_names_never_take_another_jobs_name_and_the_key_reads_the_weights(tmp_path):
    config = StyleConfig(**TINY)
    jobs_in = [jobs.BatchJob("a__b", "1/a.png", ("b",), None, config),
               jobs.BatchJob("a__b-2", "a.png", ("b-2",), None, config),
               jobs.BatchJob("a__b", "2/a.png", ("b",), None, config),
               jobs.BatchJob("A__B", "3/A.png", ("B",), None, config)]
    names = [j.name for j in jobs.unique_names(jobs_in)]
    assert names == ["a__b", "a__b-2", "a__b-3", "A__B-4"]
    weights = tmp_path / "vgg16.weights.h5"
    weights.write_bytes(b"one")
    job = jobs.BatchJob("c__s", "c.png", ("s.png",), None, config.replace(weights=str(weights)))
    digests = {"c.png": "1" * 64, "s.png": "2" * 64, str(weights): jobs.file_digest(weights)}
    key = jobs.job_key(job, digests)
    weights.write_bytes(b"two")  # Same path, other weights: another key.
    assert jobs.job_key(job, {**digests, str(weights): jobs.file_digest(weights)}) != key
