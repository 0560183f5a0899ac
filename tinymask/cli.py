"""The ``tinymask`` command line (``tinymask --help``; each command has ``--help``).

    tinymask data shapes --out DIR --train N --val N --seed S     write synthetic COCO data
    tinymask data figures --out DIR ...          stick figures, COCO keypoint JSON (14 points)
    tinymask train [--train-ann A.json --train-images DIR] --out RUN_DIR [--config starter]
                   [--set key=value ...] [--seed N] [--resume | --overwrite]
                                                     train (built-in shapes without --train-ann;
                                                     --config figures: keypoints)
    tinymask eval --weights RUN_DIR/model.npz --ann B.json --images DIR [--out metrics.json]
    tinymask predict --weights W IMAGE... --out DIR                pictures of the detections
    tinymask ablate NAME [--preset standard|full] [--seeds N] [--out DIR | --record]
                   [--overwrite]           one of the paper's ablations (backbone,
                   mask-loss, roi-align, large-stride, mask-head, multitask, keypoints):
                   ours beside the paper's numbers; DIR/NAME.json keeps each training as
                   it finishes and the same command resumes an interrupted run
    tinymask info | gradcheck                                      the machine; the gradients

A mistake a user can make (a missing file, a bad JSON, an unknown --set key or a value of
the wrong kind, a corrupt checkpoint, a full disk) raises a ``tinymask.errors.UserError``
and ends with one line saying what is wrong and exit status 2. Any other exception is a bug
in tinymask and shows its traceback. ``train`` never overwrites a run unasked: a folder that
holds one needs ``--resume`` (continue it; changed training settings apply from the
checkpoint on and are logged) or ``--overwrite`` (start again).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import sys

import numpy

from tinymask.errors import UserError, writing


def _info(_args) -> int:
    import tinymask

    print(f"tinymask {tinymask.__version__} on Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPU cores")
    print(f"backend: {tinymask.get_backend()} (set TINYMASK_BACKEND or tinymask.set_backend)")
    print(f"numpy {numpy.__version__}")
    for name in ("numba", "cupy", "torch", "pycocotools", "matplotlib"):
        found = importlib.util.find_spec(name) is not None
        version = ""
        if found:
            module = __import__(name)
            version = getattr(module, "__version__", "")
        print(f"{name}: {version if found else 'not installed'}")
    return 0


def _gradcheck(args) -> int:
    """Check every differentiable op on tiny float64 inputs and print its relative error."""
    import tinymask as tm
    from tinymask.gradcheck_cases import gradcheck_cases

    failed = 0
    for name, (fn, inputs) in gradcheck_cases(args.seed).items():
        error = tm.gradcheck(fn, inputs, raise_on_failure=False)
        verdict = "ok" if error < 1e-6 else "FAILED"
        failed += verdict != "ok"
        print(f"{name:34s} max relative error {error:.2e}  {verdict}")
    return 1 if failed else 0


class UsageError(UserError):
    """A mistake in the command line or its files, reported in one line."""


def _parse_value(text: str):
    """--set values are JSON where they parse (numbers, true, [1, 2]), else strings."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(preset: dict, assignments) -> dict:
    """Put each ``key=value`` into the preset section that owns the key: model, train,
    then data (a name two sections share, as ``min_size``, is the first one's)."""
    from tinymask.config import field_names
    from tinymask.presets import BUILT_IN_DATASETS, DATA_FIELDS, dataset_options
    from tinymask.train import TrainConfig

    sections = {"model": set(field_names()),
                "train": {f.name for f in dataclasses.fields(TrainConfig)},
                "data": set(DATA_FIELDS).union(*(dataset_options(name)
                                                  for name in BUILT_IN_DATASETS))}
    for assignment in assignments or []:
        key, equals, value = assignment.partition("=")
        if not equals:
            raise UsageError(f"--set {assignment!r}: expected key=value")
        owner = [name for name, keys in sections.items() if key in keys]
        if not owner:
            valid = sorted(set().union(*sections.values()))
            raise UsageError(f"--set: unknown key {key!r}; valid keys: {', '.join(valid)}")
        preset[owner[0]][key] = _parse_value(value)
    return preset


def _datasets(args, data: dict):
    from tinymask.data import CocoDataset
    from tinymask.presets import built_in_splits

    if args.train_images and not args.train_ann:
        raise UsageError("--train-images needs --train-ann (the COCO JSON of those images); "
                         "without both, train uses the built-in shapes")
    if (args.val_ann or args.val_images) and not args.train_ann:
        raise UsageError("--val-ann and --val-images go with --train-ann; the built-in shapes "
                         "bring their own validation images (--set val=N)")
    if args.train_ann:
        if not args.train_images:
            raise UsageError("--train-ann needs --train-images (the folder of its images)")
        if bool(args.val_ann) != bool(args.val_images):
            raise UsageError("--val-ann and --val-images go together (the COCO JSON and the "
                             "folder of its images)")
        train = CocoDataset(args.train_ann, args.train_images)
        val = CocoDataset(args.val_ann, args.val_images) if args.val_ann else None
        if val is not None and val.class_names != train.class_names:
            raise UsageError(f"--val-ann lists the categories {val.class_names[1:]} but "
                             f"--train-ann {train.class_names[1:]}; both need the same ones")
        return train, val
    return built_in_splits(data)


def _check_run_folder(args) -> None:
    """Before any work: never start over a run unasked, never resume what is not there."""
    from tinymask.train import existing_run

    if args.resume and args.overwrite:
        raise UsageError("--resume continues the run in --out, --overwrite replaces it: "
                         "choose one")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out!r} is a file; give a folder for the run")
    found = existing_run(args.out) if os.path.isdir(args.out) else []
    if args.resume and "checkpoint.npz" not in found:
        raise UsageError(f"--resume: {args.out!r} holds no checkpoint.npz to continue from; "
                         f"leave out --resume to start a run there")
    if found and not (args.resume or args.overwrite):
        raise UsageError(f"{args.out!r} already holds a run ({', '.join(found)}); continue it "
                         f"with --resume, train into a new --out, or start again over it with "
                         f"--overwrite")


def _train(args) -> int:
    from tinymask.evaluate import evaluate_model
    from tinymask.presets import check_data_fields, load_preset, model_config_for
    from tinymask.train import TrainConfig, Trainer, TrainingDivergedError

    _check_run_folder(args)
    preset = apply_overrides(load_preset(args.config), args.set)
    if args.seed is not None:
        preset["train"]["seed"] = args.seed
        preset["data"]["seed"] = args.seed
    check_data_fields(preset["data"])
    train_config = TrainConfig.from_dict(preset["train"])
    train_data, val_data = _datasets(args, preset["data"])
    image_size = None if args.train_ann else preset["data"].get("image_size")
    model_config = model_config_for(train_data, preset["model"], image_size)
    trainer = Trainer(model_config, train_config, train_data, args.out,
                      overwrite=args.overwrite)
    if args.resume:
        changes = trainer.resume()
        print(f"resuming from step {trainer.step} of {train_config.steps}")
        if changes:
            print("changed since the checkpoint, applied from this step on (recorded in "
                  "log.jsonl and the checkpoint): " + ", ".join(
                      f"{name} {old} -> {new}" for name, (old, new) in changes.items()))
    print(f"training {model_config.backbone} + {'FPN' if model_config.fpn else 'single map'}, "
          f"RoI op {model_config.roi_op}, {trainer.model.num_parameters():,} parameters, "
          f"{len(train_data)} images, {train_config.steps} steps -> {args.out}")
    try:
        last = trainer.run()
    except TrainingDivergedError as exc:  # say how to try again from here
        again = ("continue from it with --resume" if exc.saved_step is not None
                 else "start again with --overwrite")
        raise TrainingDivergedError(f"{exc}: {again} and the new settings (--set lr=...)",
                                    exc.saved_step) from exc
    print("final losses: " + ", ".join(f"{k} {v:.4f}" for k, v in last.items()))
    if val_data is not None and len(val_data):
        metrics = evaluate_model(trainer.model, val_data, progress=train_config.progress,
                                 verbose=True)
        metrics_path = os.path.join(args.out, "metrics.json")
        with writing(metrics_path, "metrics file"), open(metrics_path, "w") as stream:
            json.dump(metrics, stream, indent=2)
        print(_format_metrics(metrics))
    return 0


def _format_metrics(metrics: dict) -> str:
    lines = []
    for iou_type, values in metrics.items():
        name = {"bbox": "box AP", "segm": "mask AP", "keypoints": "keypoint AP"}[iou_type]
        lines.append(f"{name}: " + "  ".join(f"{k} {v:.1f}" for k, v in values.items()))
    return "\n".join(lines)


def _load_weights(weights: str):
    """A saved model: a file (model.npz, checkpoint.npz) or a shipped model's name."""
    from tinymask.checkpoint import load_model
    from tinymask.weights import available, pretrained

    if weights in available() and not os.path.exists(weights):
        return pretrained(weights)
    return load_model(weights)


def _eval(args) -> int:
    from tinymask.data import CocoDataset
    from tinymask.evaluate import evaluate_model

    if args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size}: evaluate at least one image at a "
                         f"time")
    model = _load_weights(args.weights)
    dataset = CocoDataset(args.ann, args.images)
    metrics = evaluate_model(model, dataset, batch_size=args.batch_size, verbose=True)
    print(_format_metrics(metrics))
    if args.out:
        with writing(args.out, "metrics file"), open(args.out, "w") as stream:
            json.dump(metrics, stream, indent=2)
        print(f"wrote {args.out}")
    return 0


def _predict(args) -> int:
    from matplotlib.figure import Figure

    import tinymask
    from tinymask.backend import to_numpy
    from tinymask.data import DataError
    from tinymask.data.coco import read_rgb_image
    from tinymask.visualize import draw_instances, draw_keypoints

    model = _load_weights(args.weights)
    class_names = model.config.extra.get("class_names")
    images = []
    for path in args.images:  # every image read before any work
        try:
            images.append((path, read_rgb_image(path)))
        except DataError as exc:
            raise UsageError(f"cannot read this image: {exc}") from exc
    with writing(args.out, "pictures folder"):
        os.makedirs(args.out, exist_ok=True)
    for path, image in images:
        with tinymask.no_grad():
            (prediction,) = model([image])
        prediction = {k: to_numpy(v) for k, v in prediction.items()}
        figure = Figure(figsize=(6, 6 * image.shape[0] / image.shape[1]))
        axes = figure.add_subplot()
        draw_instances(axes, image, prediction["boxes"], prediction["labels"],
                       prediction.get("masks"), prediction["scores"], class_names,
                       score_threshold=args.score_threshold)
        if "keypoints" in prediction:
            draw_keypoints(axes, prediction["keypoints"], model.config.extra.get("skeleton", ()),
                           model.config.extra.get("keypoint_names"), prediction["scores"],
                           score_threshold=args.score_threshold)
        axes.set_axis_off()
        out_path = os.path.join(args.out, os.path.splitext(os.path.basename(path))[0] + ".png")
        with writing(out_path, "picture"):
            figure.savefig(out_path, bbox_inches="tight", dpi=100)
        shown = int((prediction["scores"] >= args.score_threshold).sum())
        print(f"{path}: {shown} detections (score >= {args.score_threshold}) -> {out_path}")
    return 0


def _ablate(args) -> int:
    from tinymask.ablations import (
        format_paired,
        format_per_seed,
        format_table,
        record,
        results_path,
        run_ablation,
    )
    from tinymask.ablations.table import ABLATIONS

    # run_ablation refuses zero seeds or jobs itself; this one is decided before the GPU is
    # set up
    if args.backend == "cupy" and args.jobs is not None and args.jobs > 1:
        raise UsageError("--jobs > 1 runs trainings in CPU processes; the cupy backend trains "
                         "one at a time on the GPU (--jobs 1)")
    folder = args.out or (os.path.join("lessons", "results") if args.record else None)
    if folder is not None and os.path.exists(folder) and not os.path.isdir(folder):
        raise UsageError(f"--out {folder!r} is a file; give a folder for the results")
    if args.overwrite and folder is None:
        raise UsageError("--overwrite replaces a results file: give --out DIR or --record")
    if args.backend:
        import tinymask

        tinymask.set_backend(args.backend)
    seeds = ABLATIONS[args.name].default_seeds(args.seeds) if args.seeds is not None else None
    command = "tinymask " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["ablate"] else ""
    json_path = results_path(folder, args.name) if folder is not None else None
    if json_path is None:
        print("(results are printed only: add --out DIR to keep each training as it "
              "finishes, and to resume if interrupted)")
    try:
        result = run_ablation(args.name, args.preset, seeds, command=command,
                              progress=not args.no_progress, jobs=args.jobs,
                              results_file=json_path, overwrite=args.overwrite)
    except KeyboardInterrupt:
        if json_path is not None and os.path.exists(json_path):
            print(f"the finished trainings are in {json_path}: the same command resumes "
                  f"from them", file=sys.stderr)
        raise
    print(format_table(result))
    print(format_per_seed(result))
    paired = format_paired(result)
    if paired:
        print(paired)
    print(f"paper: {result['paper_finding']}")
    if folder is not None:
        with writing(folder, "results folder"):
            json_path, png_path = record(result, folder)
        print(f"wrote {json_path} and {png_path}")
    return 0


def _data(args) -> int:
    from tinymask.data import generate_figures, generate_shapes

    smallest_image = 32 if args.kind == "figures" else 16
    for option, value, lowest in (("--train", args.train, 0), ("--val", args.val, 0),
                                  ("--seed", args.seed, 0),
                                  ("--image-size", args.image_size, smallest_image)):
        if value < lowest:
            raise UsageError(f"{option} {value}: must be at least {lowest}")
    generate = generate_figures if args.kind == "figures" else generate_shapes
    with writing(args.out, "dataset folder"):
        paths = generate(args.out, train=args.train, val=args.val, seed=args.seed,
                         image_size=args.image_size)
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinymask", description="Mask R-CNN from scratch in NumPy and CuPy.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser("info", help="what this machine offers tinymask")
    info.set_defaults(run=_info)
    check = commands.add_parser("gradcheck", help="gradient-check the differentiable ops")
    check.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    check.set_defaults(run=_gradcheck)

    data = commands.add_parser("data", help="write a dataset")
    data_kinds = data.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, description in (("shapes", "synthetic shapes as PNG + COCO JSON"),
                              ("figures", "stick figures with keypoints as PNG + COCO "
                                          "keypoint JSON")):
        kind_parser = data_kinds.add_parser(kind, help=description)
        kind_parser.add_argument("--out", required=True, help="output folder")
        kind_parser.add_argument("--train", type=int, default=500, help="training images")
        kind_parser.add_argument("--val", type=int, default=100, help="validation images")
        kind_parser.add_argument("--seed", type=int, default=0)
        kind_parser.add_argument("--image-size", type=int, default=128)
        kind_parser.set_defaults(run=_data)

    train = commands.add_parser(
        "train", help="train Mask R-CNN (on the built-in shapes without --train-ann)")
    train.add_argument("--train-ann", help="COCO-format JSON of the training set")
    train.add_argument("--train-images", help="folder of the training images")
    train.add_argument("--val-ann", help="COCO-format JSON of the validation set")
    train.add_argument("--val-images", help="folder of the validation images")
    train.add_argument("--out", required=True, help="run folder: model.npz, checkpoints, log")
    train.add_argument("--config", default="starter",
                       help="preset (starter: 600 steps, minutes on a CPU; full: 3000 steps; "
                       "figures: keypoints on stick figures) or a JSON file with "
                       "data/model/train sections")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override any MaskRCNNConfig, TrainConfig or data field")
    train.add_argument("--seed", type=int, help="one seed for data, init and sampling")
    train.add_argument("--resume", action="store_true",
                       help="continue from RUN_DIR/checkpoint.npz (changed training settings "
                       "apply from its step on and are logged)")
    train.add_argument("--overwrite", action="store_true",
                       help="start again in a RUN_DIR that holds a run, deleting it")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("eval", help="COCO box and mask AP of saved weights")
    evaluate.add_argument("--weights", required=True,
                          help="model.npz, checkpoint.npz or a shipped model (shapes-small)")
    evaluate.add_argument("--ann", required=True, help="COCO-format JSON")
    evaluate.add_argument("--images", required=True, help="folder of its images")
    evaluate.add_argument("--out", help="write the metrics here as JSON")
    evaluate.add_argument("--batch-size", type=int, default=4)
    evaluate.set_defaults(run=_eval)

    predict = commands.add_parser("predict", help="draw the detections on images")
    predict.add_argument("--weights", required=True,
                         help="model.npz, checkpoint.npz or a shipped model (shapes-small)")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--out", required=True, help="folder for the pictures")
    predict.add_argument("--score-threshold", type=float, default=0.5)
    predict.set_defaults(run=_predict)

    from tinymask.ablations import ABLATION_PRESETS, ABLATIONS
    from tinymask.ablations.run import OLD_PRESET_NAMES

    ablate = commands.add_parser("ablate", help="reproduce one of the paper's ablations")
    ablate.add_argument("name", choices=list(ABLATIONS), metavar="NAME",
                        help="one of: " + ", ".join(ABLATIONS))
    ablate.add_argument("--preset", default="standard", choices=list(ABLATION_PRESETS),
                        metavar="{" + ",".join(p for p in ABLATION_PRESETS
                                               if p not in OLD_PRESET_NAMES) + "}",
                        help="standard: 800 steps a training, a table in minutes on a CPU "
                        "(the recorded results); full: the full training preset, 3 seeds, "
                        "slow; smoke: a test")
    ablate.add_argument("--seeds", type=int, help="seeds per variant (default: the preset's)")
    ablate.add_argument("--backend", choices=("numpy", "cupy"), help="array backend")
    ablate.add_argument("--jobs", type=int, help="trainings at once, one process and thread "
                        "each (default: one per core on numpy, 1 on cupy)")
    ablate.add_argument("--record", action="store_true",
                        help="write the results into lessons/results (or --out)")
    ablate.add_argument("--out", help="folder for <NAME>.json (each training written as it "
                        "finishes; the same command resumes an interrupted run) and "
                        "<NAME>.png")
    ablate.add_argument("--overwrite", action="store_true",
                        help="train again over a results file that holds another run")
    ablate.add_argument("--no-progress", action="store_true", help="no progress bars")
    ablate.set_defaults(run=_ablate)

    from tinymask.course.commands import add_parser as add_course_parser

    add_course_parser(commands)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import tinymask

        print(tinymask.__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    from tinymask.train import TrainingDivergedError

    try:
        return args.run(args)
    except (UserError, TrainingDivergedError) as exc:
        print(f"tinymask {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tinymask {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
