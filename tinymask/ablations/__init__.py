"""The paper's ablations (Table 2a-2e, Table 3) as config changes, run at small scale.

Read in this order:
    table.py    what each ablation asks, its variants (config changes) and the paper's rows
    run.py      how every (variant, seed) is trained and evaluated (``run_ablation``)
    report.py   the results file, its statistics (mean, sample spread, paired differences),
                its text tables and its figure

    tinymask ablate roi-align            # the command line
    from tinymask.ablations import ABLATIONS, run_ablation, format_table
"""

from tinymask.ablations.report import (
    METRIC_NAMES,
    AblationRun,
    Gain,
    format_paired,
    format_per_seed,
    format_table,
    gains,
    headline_keys,
    mean_and_spread,
    plot_result,
    record,
    results_path,
    same_model_elsewhere,
    summarize,
    to_json,
    write_results,
)
from tinymask.ablations.run import ABLATION_PRESETS, default_jobs, run_ablation
from tinymask.ablations.table import ABLATIONS, Ablation, Variant

__all__ = [
    "ABLATIONS",
    "ABLATION_PRESETS",
    "METRIC_NAMES",
    "Ablation",
    "AblationRun",
    "Gain",
    "Variant",
    "default_jobs",
    "format_paired",
    "format_per_seed",
    "format_table",
    "gains",
    "headline_keys",
    "mean_and_spread",
    "plot_result",
    "record",
    "results_path",
    "run_ablation",
    "same_model_elsewhere",
    "summarize",
    "to_json",
    "write_results",
]
