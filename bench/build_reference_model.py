"""Train the lessons' reference model and ship it: the one command behind ``shapes-small``.

    python bench/build_reference_model.py            # the full preset, seed 0 (~30+ min)

Steps, all recorded in ``tinymask/weights/shapes-small.json``:
1. ``tinymask train --config full --out runs/shapes-small`` (the lessons' small model on
   the built-in shapes; evaluated on the preset's validation images at the end);
2. export ``runs/shapes-small/model.npz`` as float16 to ``tinymask/weights/shapes-small.npz``
   with its SHA-256;
3. evaluate the shipped (float16) weights on the same validation images: the record's
   metrics are those of what a user loads.
Refuses to overwrite a finished run folder unless ``--overwrite`` is given (as train does).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", default="shapes-small")
    parser.add_argument("--preset", default="full")
    parser.add_argument("--out", default=os.path.join("runs", "shapes-small"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    from tinymask.cli import apply_overrides
    from tinymask.cli import main as tinymask
    from tinymask.data import make_shapes_splits
    from tinymask.evaluate import evaluate_model
    from tinymask.machine import cpu_name
    from tinymask.presets import load_preset
    from tinymask.weights import export_pretrained, pretrained, pretrained_path

    command = "python bench/build_reference_model.py " + shlex.join(sys.argv[1:] if argv is None
                                                                      else argv)
    train_command = ["train", "--config", args.preset, "--out", args.out, "--seed",
                     str(args.seed)]
    for assignment in args.set:
        train_command += ["--set", assignment]
    if args.overwrite:
        train_command.append("--overwrite")
    start = time.perf_counter()
    status = tinymask(train_command)
    if status != 0:
        return status
    seconds = time.perf_counter() - start

    record = {"command": command.strip(), "train_command": "tinymask " + shlex.join(
        train_command), "train_seconds": round(seconds, 1),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores",
        "preset": args.preset, "seed": args.seed}
    with open(os.path.join(args.out, "metrics.json")) as stream:
        record["metrics_float32"] = json.load(stream)
    record = export_pretrained(os.path.join(args.out, "model.npz"), args.name, record)

    # the metrics of what a user loads: the float16 weights, on the same validation images
    # (the data section as `tinymask train` reads it, with the seed it was given)
    data = apply_overrides(load_preset(args.preset), args.set)["data"]
    shapes_options = {k: v for k, v in data.items() if k not in ("train", "val", "seed")}
    _, val_data = make_shapes_splits(data["train"], data["val"], seed=args.seed,
                                     **shapes_options)
    record["metrics"] = evaluate_model(pretrained(args.name), val_data, verbose=False)
    record["val_images"] = len(val_data)
    path = os.path.join(os.path.dirname(pretrained_path(args.name)), f"{args.name}.json")
    with open(path, "w") as stream:
        json.dump(record, stream, indent=2)
        stream.write("\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
