"""What a new user meets in their first hour: import order, their own COCO json from the command
line, the class checks that stop an evaluation on other data, the demo, the messages of resume
and evaluation, and quiet logs."""
import json
import os
import subprocess
import sys

import pytest

from detectron2.data import DatasetCatalog

from ddod.data import DatasetImageError, build_test_loader, register_digits_dataset
from ddod.data.coco_json import DatasetClassMismatchError, read_coco_categories

from .common import LogCapture, load_train_net

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "quickstart", "ddod_digits_cpu.py")
# a fresh interpreter that cannot see a GPU, as on the project's machines
CPU_ENV = dict(os.environ, CUDA_VISIBLE_DEVICES="")


def run_fresh(code: str, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=CPU_ENV, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def test_detectron2_before_ddod_in_a_fresh_interpreter(tmp_path):
    """The order every Detectron2 user writes, and the LazyConfig script pattern, without the
    project on sys.path other than through its installation."""
    code = (
        "from detectron2.modeling import build_model\n"
        "from detectron2.config import LazyConfig, instantiate\n"
        f"cfg = LazyConfig.load({os.path.join(ROOT, 'configs', 'ddod_R50_1x.py')!r})\n"
        "model = instantiate(cfg.model)\n"
        "import ddod, detectron2\n"
        "print(type(model).__name__, ddod.compat.has_compiled_ops())\n"
    )
    result = run_fresh(code, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["DDOD", "False"]


def test_importing_ddod_shows_no_detectron2_deprecation_notice():
    result = run_fresh("import ddod")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "deprecated" not in result.stderr, result.stderr


# ---------------------------------------------------------------------------------------------
# own COCO json from the command line
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def own_coco(tmp_path_factory):
    """A 3-class COCO dataset in its own folders: digits images, categories 'zero'..'two'."""
    root = tmp_path_factory.mktemp("own")
    digits = str(root / "digits")
    for split, n in (("train", 8), ("val", 4)):
        name = f"own_src_{split}"
        if name not in DatasetCatalog.list():
            register_digits_dataset(name, split=split, num_images=n, root=digits)
        DatasetCatalog.get(name)  # generates the split
    paths = {}
    for split in ("train", "val"):
        with open(os.path.join(digits, split, "annotations.json")) as f:
            data = json.load(f)
        kept = {1: "zero", 2: "one", 3: "two"}
        data["categories"] = [{"id": i, "name": n} for i, n in kept.items()]
        data["annotations"] = [a for a in data["annotations"] if a["category_id"] in kept]
        path = root / f"{split}.json"
        path.write_text(json.dumps(data))
        paths[split] = (str(path), os.path.join(digits, split, "images"))
    return paths


def own_args(own_coco, out, *extra, name="own"):
    return [
        "--config-file", CONFIG,
        "--train-json", own_coco["train"][0], "--train-images", own_coco["train"][1],
        "--test-json", own_coco["val"][0], "--test-images", own_coco["val"][1],
        "--dataset-name", name,
        f"train.output_dir={out}", "train.max_iter=2", "train.seed=3",
        "dataloader.train.total_batch_size=2", *extra,
    ]  # fmt: skip


def run_train_net(argv):
    train_net = load_train_net()
    return train_net.main(train_net.build_argument_parser().parse_args(argv))


def test_own_coco_json_trains_evaluates_and_reevaluates_from_saved_config(tmp_path, own_coco):
    out = str(tmp_path / "run")
    results = run_train_net(own_args(own_coco, out))
    assert "bbox" in results
    saved = open(os.path.join(out, "config.yaml")).read()
    assert "own_train" in saved and own_coco["train"][0] in saved
    # classes and their number come from the json
    from detectron2.config import LazyConfig

    cfg = LazyConfig.load(os.path.join(out, "config.yaml"))
    assert cfg.model.num_classes == 3
    assert read_coco_categories(own_coco["train"][0]) == ["zero", "one", "two"]
    # evaluation results and predictions are written
    for f in ("inference/eval_results.json", "inference/coco_instances_results.json"):
        assert os.path.isfile(os.path.join(out, f)), f
    with open(os.path.join(out, "inference", "eval_results.json")) as f:
        assert json.load(f)["bbox"]["AP"] == pytest.approx(results["bbox"]["AP"], nan_ok=True)

    # the saved config alone is enough to evaluate the run again: same numbers
    again = run_train_net([
        "--config-file", os.path.join(out, "config.yaml"), "--eval-only",
        f"train.init_checkpoint={os.path.join(out, 'model_final.pth')}",
        f"train.output_dir={tmp_path / 'eval'}",
    ])  # fmt: skip
    assert again["bbox"]["AP50"] == pytest.approx(results["bbox"]["AP50"], nan_ok=True)
    assert os.path.isfile(tmp_path / "eval" / "inference" / "eval_results.json")


def test_training_set_without_matching_test_set_fails_before_training(tmp_path, own_coco):
    """Setting only the training set used to evaluate on the digits val set with other classes."""
    out = tmp_path / "run"
    argv = [
        "--config-file", CONFIG,
        "--train-json", own_coco["train"][0], "--train-images", own_coco["train"][1],
        "--dataset-name", "own_only_train", f"train.output_dir={out}", "train.max_iter=2",
    ]  # fmt: skip
    with pytest.raises(DatasetClassMismatchError, match="digits_det_val"):
        run_train_net(argv)
    assert not (out / "model_final.pth").exists()


def test_evaluating_a_model_on_a_dataset_with_other_classes_fails(tmp_path, own_coco):
    argv = [
        "--config-file", CONFIG, "--eval-only",
        "--test-json", own_coco["val"][0], "--test-images", own_coco["val"][1],
        "--dataset-name", "own_eval_only", f"train.output_dir={tmp_path}",
    ]  # fmt: skip
    with pytest.raises(DatasetClassMismatchError, match="model.num_classes=10"):
        run_train_net(argv)


def test_json_flag_without_images_flag_is_an_error(own_coco):
    train_net = load_train_net()
    args = train_net.build_argument_parser().parse_args(
        ["--config-file", CONFIG, "--train-json", own_coco["train"][0]]
    )
    with pytest.raises(SystemExit, match="--train-images"):
        train_net.setup(args)


# ---------------------------------------------------------------------------------------------
# messages
# ---------------------------------------------------------------------------------------------
def test_corrupt_test_image_error_names_the_file(tmp_path, own_coco):
    from detectron2.data import DatasetMapper

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    dataset = [{"file_name": str(broken), "image_id": 5, "height": 8, "width": 8}]
    loader = build_test_loader(dataset, mapper=DatasetMapper(False, augmentations=[], image_format="BGR"))
    with pytest.raises(DatasetImageError, match="broken.png"):
        next(iter(loader))


def test_resume_says_when_finished_and_when_the_schedule_length_changed(tmp_path, own_coco):
    out = str(tmp_path / "run")
    run_train_net(own_args(own_coco, out, "train.eval_period=0", name="own_resume"))
    with LogCapture("ddod.engine.trainer") as records:
        run_train_net(["--resume"] + own_args(own_coco, out, name="own_resume"))
    assert "already finished" in records.text, records.text
    with LogCapture("ddod.engine.trainer") as records:
        run_train_net(["--resume"] + own_args(own_coco, out, name="own_resume")
                      + ["train.max_iter=3"])  # fmt: skip
    assert "train.max_iter=2 with train.max_iter=3" in records.text
    assert "already finished" not in records.text


def test_logs_are_quiet_and_plain(tmp_path, own_coco):
    """The model printout and the config go to files; log.txt has no colour codes."""
    out = tmp_path / "run"
    env = dict(CPU_ENV)
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "train_net.py")]
        + own_args(own_coco, str(out), "train.eval_period=0", name="own_quiet"),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout + result.stderr
    assert "(backbone): FPN(" not in console
    assert "(backbone): FPN(" in (out / "model.txt").read_text()
    assert "deprecated" not in console
    assert "\x1b[" not in (out / "log.txt").read_text()
    assert (out / "env.txt").read_text().strip()
    assert len(console.splitlines()) < 80, console


def test_help_shows_this_projects_usage():
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "train_net.py"), "--help"],
        env=CPU_ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0
    assert "--train-json" in result.stdout and "configs/ddod_R50_1x.py" in result.stdout
    assert "cfg.yaml" not in result.stdout  # detectron2's yacs examples
    assert "deprecated" not in result.stderr


# ---------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------
def load_demo():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ddod_demo", os.path.join(ROOT, "demo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_draws_images_writes_json_and_names_unreadable_inputs(tmp_path, own_coco):
    import cv2

    run = tmp_path / "run"
    run_train_net(own_args(own_coco, str(run), "train.eval_period=0", name="own_demo"))
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    image_dir = own_coco["val"][1]
    first = sorted(os.listdir(image_dir))[0]
    image = cv2.imread(os.path.join(image_dir, first))
    cv2.imwrite(str(inputs / "mine.jpg"), image)
    (inputs / "broken.png").write_bytes(b"not a png")
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, image.shape[1::-1])
    for _ in range(2):
        writer.write(image)
    writer.release()

    demo = load_demo()
    out = tmp_path / "demo"
    args = demo.parse_args([
        "--config-file", str(run / "config.yaml"), "--input", str(inputs), str(video),
        "--output", str(out), "--confidence-threshold", "0.0",
        f"train.init_checkpoint={run / 'model_final.pth'}",
        "model.test_score_thresh=0.0",  # a 2-iteration model is not confident about anything
    ])  # fmt: skip
    assert demo.main(args) == 1  # the broken file is reported, the others are processed
    assert (out / "mine.png").stat().st_size > 0 and (out / "clip.mp4").stat().st_size > 0
    report = json.loads((out / "detections.json").read_text())
    assert report["class_names"] == ["zero", "one", "two"]
    files = [r["file_name"] for r in report["images"]]
    assert files == [str(inputs / "mine.jpg"), str(video), str(video)]
    detections = report["images"][0]["detections"]
    assert detections and {d["category_name"] for d in detections} <= {"zero", "one", "two"}
    x0, y0, x1, y1 = detections[0]["bbox"]
    assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]

    with pytest.raises(FileNotFoundError, match="nowhere.png"):
        demo.main(demo.parse_args(["--config-file", CONFIG, "--input", "nowhere.png"]))


def test_demo_overrides_may_follow_the_inputs(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    demo = load_demo()
    args = demo.parse_args(["--config-file", CONFIG, "--input", str(image),
                            "train.init_checkpoint=w.pth", "--output", str(tmp_path)])  # fmt: skip
    assert args.input == [str(image)] and args.opts == ["train.init_checkpoint=w.pth"]
