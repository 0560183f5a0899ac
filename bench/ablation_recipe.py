"""Try a change to an ablation's data or recipe: train chosen rows of a table at chosen
seeds, one training at a time on one thread, and print each one's COCO AP, its step time
and the paired differences between the rows.

    python bench/ablation_recipe.py                        # Table 2c, RoIPool and RoIAlign (avg)
    python bench/ablation_recipe.py --rows 0 3 --seeds 0 1 2 --train steps=1200
    python bench/ablation_recipe.py --data min_size=16 max_size_fraction=0.4 --rows 3
    python bench/ablation_recipe.py --ablation large-stride --data image_size=256

Each training is exactly one training of ``tinymask ablate NAME --preset PRESET`` (the same
function trains it), with ``--data``, ``--model`` and ``--train`` changes on top of the
preset and the table's own data options (``tinymask.ablations.table.BUILT_IN_DATA``):
``--data`` takes the built-in data's arguments (``ShapesDataset``: ``min_size``,
``max_objects``, ``backgrounds``, ``classes``, ...; ``FiguresDataset`` for ``keypoints``;
and ``train``, ``val``, ``image_size``), ``--model``
``MaskRCNNConfig`` fields, ``--train`` ``TrainConfig`` fields. Values are JSON where they
parse (``backgrounds='["gradient"]'``), else strings.

Time: the wall and the CPU time of the training alone (evaluation apart), per step. On a
machine shared with other work the CPU time per step is the training's own cost; the main
job runs two such single-threaded trainings at once on two cores.

``--out FILE`` appends one JSON line per training as it finishes (the tag, the command, the
changes, all six COCO numbers of masks and boxes, the last step's loss and the mean over the
last fifth of the steps, the times and the machine's load average; with ``--fit-images N``
also the COCO numbers on the first N training images, how well the model fits them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


def parse_changes(items) -> dict:
    changes = {}
    for item in items or []:
        key, equals, value = item.partition("=")
        if not equals:
            sys.exit(f"expected key=value, got {item!r}")
        try:
            changes[key] = json.loads(value)
        except json.JSONDecodeError:
            changes[key] = value
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ablation", default="roi-align")
    parser.add_argument("--preset", default="standard", help="an ablation preset")
    parser.add_argument("--rows", type=int, nargs="+", help="row indices (default: the first "
                        "and the last row)")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the table's first seed")
    parser.add_argument("--data", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--model", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--train", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fit-images", type=int, default=0, help="also evaluate each model on "
                        "this many of its training images (how well it fits them)")
    parser.add_argument("--tag", default="", help="a name for this try, kept in --out")
    parser.add_argument("--out", help="append one JSON line per training to this file")
    args = parser.parse_args()
    # before NumPy and Numba start: they size their thread pools once
    os.environ.update({name: str(args.threads) for name in THREAD_VARIABLES})

    from tinymask.ablations import ABLATION_PRESETS, ABLATIONS, mean_and_spread
    from tinymask.ablations.run import _train_one, table_settings

    ablation, settings = ABLATIONS[args.ablation], ABLATION_PRESETS[args.preset]
    rows = args.rows if args.rows is not None else [0, len(ablation.variants) - 1]
    seeds = args.seeds if args.seeds is not None else ablation.default_seeds(1)
    data_changes, model_changes, train_changes = (parse_changes(args.data),
                                                  parse_changes(args.model),
                                                  parse_changes(args.train))
    data, train = table_settings(ablation, settings)
    data.update(data_changes)
    train.update(train_changes)
    print(f"{args.ablation} preset {args.preset} rows {rows} seeds {seeds}; data {data}; "
          f"model changes {model_changes}; train {train}", flush=True)
    measured = {}
    for seed in seeds:
        for row in rows:
            variant = ablation.variants[row]
            task = {"variant": variant.name, "seed": seed, "data": data, "train": train,
                    "model": {**settings.get("model", {}), **ablation.base, **variant.changes,
                              **model_changes},
                    "fit_images": args.fit_images}
            outcome = _train_one(task)
            record = {"tag": args.tag, "command": "python bench/ablation_recipe.py "
                      + shlex.join(sys.argv[1:]),
                      "ablation": args.ablation, "preset": args.preset,
                      "variant": variant.name, "seed": seed, "data": data_changes,
                      "model": model_changes, "train": train_changes,
                      "steps": train["steps"], "final_loss": outcome["final_loss"],
                      "late_loss": outcome.get("late_loss"),
                      # a diverged training stops early and is not evaluated: its times are
                      # those of the steps it made, over the steps asked
                      "train_s_per_step": outcome.get("train_seconds", outcome["seconds"])
                      / train["steps"],
                      "cpu_s_per_step": outcome.get("train_cpu_seconds", float("nan"))
                      / train["steps"],
                      "eval_seconds": outcome["seconds"] - outcome.get("train_seconds",
                                                                       outcome["seconds"]),
                      "load_average": os.getloadavg()[0], "machine": platform.machine(),
                      "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
            if outcome.get("diverged"):
                record["diverged"] = outcome["diverged"]
                print(f"{variant.name}, seed {seed}: {outcome['diverged']}", flush=True)
            else:
                for key in ("metrics", "train_metrics"):  # train_metrics: with --fit-images
                    if key in outcome:
                        record[key] = {iou_type: {k: round(v, 2) for k, v in values.items()}
                                       for iou_type, values in outcome[key].items()}
                measured.setdefault(row, {})[seed] = record["metrics"]
                segm = record["metrics"][ablation.metrics[0]]  # the table's headline
                print(f"{variant.name}, seed {seed}: AP {segm['AP']:.1f} AP50 "
                      f"{segm['AP50']:.1f} AP75 {segm['AP75']:.1f} APs {segm.get('APs', -1):.1f} "
                      f"APm {segm['APm']:.1f}, box AP {record['metrics']['bbox']['AP']:.1f}; "
                      f"{record['train_s_per_step']:.3f} s/step wall, "
                      f"{record['cpu_s_per_step']:.3f} s/step CPU, eval "
                      f"{record['eval_seconds']:.0f} s", flush=True)
            if args.out:
                with open(args.out, "a") as stream:
                    stream.write(json.dumps(record) + "\n")
    iou_type = "segm" if "segm" in ablation.metrics else "bbox"
    first = measured.get(rows[0], {})
    for row in rows[1:]:
        by_seed = measured.get(row, {})
        for key in ("AP", "AP75"):
            differences = [by_seed[s][iou_type][key] - first[s][iou_type][key]
                           for s in sorted(by_seed) if s in first]
            if differences:
                mean, spread = mean_and_spread(differences)
                print(f"{ablation.variants[row].name} minus {ablation.variants[rows[0]].name}"
                      f", {key}: {mean:+.1f}" + (f" +- {spread:.1f}" if spread else "")
                      + f" (seeds: {', '.join(f'{d:+.1f}' for d in differences)})")


if __name__ == "__main__":
    main()
