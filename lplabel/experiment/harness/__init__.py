"""The accuracy harness: measure label storage against student accuracy, end to end, on real data.

``lplabel bench accuracy`` (:func:`run_bench`) trains or loads a teacher, builds a distilled set
(random real images or an RDED-style patch selection, :mod:`~lplabel.experiment.harness.distill`), relabels
it (:mod:`lplabel.relabel`), derives one label store per storage setting
(:mod:`~lplabel.experiment.harness.settings`), trains students from each through the loader
(:mod:`~lplabel.experiment.harness.student`) and reports bytes against top-1 (:mod:`~lplabel.experiment.harness.report`).
"""

from .distill import SELECTIONS, load_distilled, random_real, rded_select, save_distilled
from .report import evaluate_targets, format_table, write_report
from .settings import (
    BenchError,
    Setting,
    UnknownSettingError,
    default_setting_names,
    default_settings,
    parse_setting,
    parse_settings,
)
from .student import StudentRecipe, evaluate_student, train_student
from .sweep import BenchConfig, Profile, profile_for, resolve_config, run_bench

__all__ = [
    "BenchConfig",
    "BenchError",
    "Profile",
    "Setting",
    "StudentRecipe",
    "UnknownSettingError",
    "SELECTIONS",
    "default_setting_names",
    "default_settings",
    "evaluate_student",
    "evaluate_targets",
    "format_table",
    "load_distilled",
    "parse_setting",
    "parse_settings",
    "profile_for",
    "random_real",
    "rded_select",
    "resolve_config",
    "run_bench",
    "save_distilled",
    "train_student",
    "write_report",
]
