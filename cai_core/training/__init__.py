"""LoRA SFT and DPO runs with TRL and PEFT: specs and recipes, run folders, the training process.

Import from here what the pages and the CLI need; ``trainer`` (which imports torch and TRL) is
imported only by the training process itself.
"""

from .rows import (PAIR_FILES, TrainingDataError, data_files, read_training_file, save_upload, training_rows, uploads_dir,
                   usable_rows)
from .runs import (DPO_CURVES, SFT_CURVES, RunInfo, TrainingError, adapter_zip, cli_command, delete_run, last_checkpoint,
                   list_runs, model_label, process_command, read_metrics, read_run, resume_run, runs_dir, start_run, stop_run)
from .spec import (METHODS, LoraSettings, RecipeError, TrainingSpec, check_run_name, list_recipes, load_recipe, parse_recipe,
                   parse_spec, planned_steps, read_recipe_text, recipe_argument, recipe_label, recipe_text,
                   save_recipe)

__all__ = [
    "DPO_CURVES", "METHODS", "SFT_CURVES", "LoraSettings", "RecipeError", "RunInfo", "TrainingDataError",
    "TrainingError", "TrainingSpec", "check_run_name", "cli_command", "data_files", "delete_run", "last_checkpoint",
    "list_recipes", "list_runs", "load_recipe", "parse_recipe", "parse_spec", "process_command", "read_training_file", "save_upload", "uploads_dir", "read_metrics", "read_run",
    "recipe_text", "resume_run", "save_recipe", "runs_dir", "start_run", "stop_run", "training_rows",
    "PAIR_FILES", "adapter_zip", "model_label", "planned_steps", "read_recipe_text", "recipe_argument", "recipe_label",
    "usable_rows",
]
