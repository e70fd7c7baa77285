"""Training data from a constitution and a prompt set: Phase 1 SFT rows and Phase 2 preference pairs.

spec (GenerationSpec: what a run makes, and how), datasets (dataset folders: names, listing,
export, starting a run), worker (the job's body: chain, RLAIF pairs, best-of-N), ledger (the row
files, appended and recovered after a kill), rows (the folder's files and each one's row shape),
card (the dataset card), promptsets (the prompts a run reads).
"""

from .card import dataset_roles, dataset_summary, roles_card_lines, write_card
from .datasets import (check_dataset_name, dataset_zip, datasets_dir, delete_dataset, list_datasets, load_snapshot,
                       prepare_dataset, run_generation, start_generation)
from .ledger import append_rows, read_rows, recover
from .promptsets import PromptFileError, PromptItem, load_prompt_sources
from .rows import (BEST_OF_N_PAIRS_FILE, CONSTITUTION_FILE, DONE_FILE, JUDGEMENTS_FILE, PROMPTS_FILE, REVISION_PAIRS_FILE,
                   RLAIF_PAIRS_FILE, ROW_FILES, ROW_SHAPES, SAMPLES_FILE, SFT_FILE, TRACES_FILE, TRAINING_FILES,
                   best_of_n_reason, pair_prompt, read_checked_rows)
from .spec import GenerationSpec, check_model_specs, generation_command, model_roles, parse_spec
from .worker import best_of_n_rows, judge_principles, make_rows, rlaif_rows, run_generation_job

__all__ = [
    "BEST_OF_N_PAIRS_FILE", "CONSTITUTION_FILE", "DONE_FILE", "JUDGEMENTS_FILE", "PROMPTS_FILE", "REVISION_PAIRS_FILE",
    "RLAIF_PAIRS_FILE", "ROW_FILES", "ROW_SHAPES", "SAMPLES_FILE", "SFT_FILE", "TRACES_FILE", "TRAINING_FILES",
    "GenerationSpec", "PromptFileError", "PromptItem", "append_rows", "best_of_n_reason", "best_of_n_rows",
    "check_dataset_name", "check_model_specs", "dataset_roles", "dataset_summary", "dataset_zip", "datasets_dir",
    "delete_dataset", "generation_command", "judge_principles", "list_datasets", "load_prompt_sources", "load_snapshot",
    "make_rows", "model_roles", "pair_prompt", "parse_spec", "prepare_dataset", "read_checked_rows", "read_rows", "recover",
    "rlaif_rows", "roles_card_lines", "run_generation", "run_generation_job", "start_generation", "write_card",
]
