"""Training runs as folders: start one, resume it, stop it, list them, read their curves.

A run folder (``$CAI_HOME/runs/NAME``) holds::

    spec.json        the job: {"kind": "train", "spec": TrainingSpec}; a resume reads it unchanged
    recipe.yaml      the same spec as a recipe, to read or to start a similar run from
    train.jsonl      the checked rows, copied at launch so a resume trains on the same data
    status.json      queued / running / finished / failed / cancelled, the error, notes
    progress.json    step / total steps, rate, ETA, the last loss
    metrics.jsonl    one line per logged step: loss, learning rate, and for DPO the rewards
    log.txt          everything the trainer printed, with the traceback of a failure
    checkpoints/     checkpoint-STEP folders (adapter, optimiser, scheduler, RNG, step)
    adapter/         the final LoRA adapter, a standard PEFT folder (see cai_core.models.adapters)
    result.json      steps, final loss, time, peak memory

This module imports neither torch nor TRL: the pages and the CLI use it to look at runs while the
training process (cai_core.training.trainer) does the work.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import CaiError
from ..models.adapters import ADAPTER_DIR, ADAPTER_CONFIG, AdapterError, adapter_stack, find_adapter
from ..atomic import write_text_atomic
from ..jobs import JobError, JobState, cancel_job, prepare_job, read_job, read_json, start_job, worker_command
from ..models import DEFAULT_MODEL, ModelLoadError, is_endpoint_spec, resolve_model_path
from ..paths import cai_home
from .rows import training_rows
from .spec import RecipeError, TrainingSpec, check_run_name, parse_spec, recipe_text

CHECKPOINTS_DIR, METRICS_FILE, DATA_FILE, RESULT_FILE = "checkpoints", "metrics.jsonl", "train.jsonl", "result.json"
RECIPE_FILE = "recipe.yaml"
JOB_KIND = "train"
# The charts' series: what each method logs, and the names they are shown under.
SFT_CURVES = {"loss": "loss", "learning_rate": "learning rate", "mean_token_accuracy": "token accuracy",
              "grad_norm": "gradient norm"}
DPO_CURVES = {**SFT_CURVES, "rewards/margins": "reward margin", "rewards/accuracies": "reward accuracy",
              "rewards/chosen": "chosen reward", "rewards/rejected": "rejected reward"}


class TrainingError(CaiError):
    """A run that cannot be started or go on; the message is one sentence."""


def runs_dir() -> Path:
    return cai_home() / "runs"


def model_label(spec: str | None) -> str:
    """A model spec as a reader knows it: a run by its name, the bundled model as such."""
    if not spec:
        return "?"
    if spec == DEFAULT_MODEL:
        return "the bundled model (default)"
    path = Path(spec).expanduser()
    if path.parent == runs_dir():
        return f"run {path.name}"
    return path.name if path.is_dir() else spec


def adapter_zip(folder: Path) -> bytes:
    """A run's adapter folder (a standard PEFT folder) as a zip made in memory, its files under
    ``RUN-adapter/``."""
    import io
    import zipfile

    folder = Path(folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((folder / ADAPTER_DIR).rglob("*")):
            if path.is_file():
                archive.write(path, arcname=f"{folder.name}-adapter/{path.relative_to(folder / ADAPTER_DIR)}")
    return buffer.getvalue()


@dataclass
class RunInfo:
    name: str
    folder: Path
    job: JobState
    spec: TrainingSpec | None
    result: dict | None

    @property
    def state(self) -> str:
        return self.job.state

    @property
    def has_adapter(self) -> bool:
        return (self.folder / ADAPTER_DIR / ADAPTER_CONFIG).is_file()


def read_run(folder: Path) -> RunInfo:
    folder = Path(folder)
    recorded = read_json(folder / "spec.json") or {}
    try:
        spec = parse_spec(recorded.get("spec") or {}, str(folder / "spec.json"))
    except RecipeError:
        spec = None  # shown as a run whose spec cannot be read, never a crash
    return RunInfo(folder.name, folder, read_job(folder), spec, read_json(folder / RESULT_FILE))


def list_runs(root: Path | None = None) -> list[RunInfo]:
    """Every run, newest first."""
    root = root or runs_dir()
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "spec.json").is_file()]
    return [read_run(p) for p in sorted(folders, key=lambda p: (p / "spec.json").stat().st_mtime, reverse=True)]


def default_run_name(spec: TrainingSpec) -> str:
    source = Path(spec.data[0]).stem if spec.data else "data"
    return check_run_name(f"{spec.method}-{source}-{time.strftime('%Y%m%d-%H%M%S')}"[:80])


def check_base_model(spec: TrainingSpec) -> None:
    """A base model that cannot be found is one sentence before launch, not a failed run later."""
    if is_endpoint_spec(spec.base_model):
        raise TrainingError(f"base model {spec.base_model!r} is an endpoint URL; training needs the weights "
                            "(a model folder, a hub id, or a finished run)")
    try:
        stack = adapter_stack(spec.base_model)
        resolve_model_path(stack.base_model if stack else spec.base_model)
    except (AdapterError, ModelLoadError) as error:
        raise TrainingError(str(error)) from None
    if spec.accelerate_config and not Path(spec.accelerate_config).expanduser().is_file():
        raise TrainingError(f"accelerate config {spec.accelerate_config!r} is not a file")


def start_run(spec: TrainingSpec, name: str | None = None, root: Path | None = None) -> Path:
    """Check everything, make the run folder with a copy of its data, and start the training process
    (see prepare_run)."""
    folder = prepare_run(spec, name, root)
    try:
        start_job(folder, JOB_KIND, spec.model_dump())
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def prepare_run(spec: TrainingSpec, name: str | None = None, root: Path | None = None) -> Path:
    """Check everything and make the run folder with a copy of its data and its job spec, ready to run.

    Nothing is written when a check fails. The folder is claimed with an exclusive mkdir, so two
    launches of one name (a double click, two tabs) make one run.
    """
    rows = training_rows(spec)  # a bad row is refused here, with its line number
    check_base_model(spec)
    root = root or runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    folder = _claim_folder(root, check_run_name(name) if name else None, spec)
    try:
        write_text_atomic(folder / DATA_FILE, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        write_text_atomic(folder / RECIPE_FILE, recipe_text(spec))
        prepare_job(folder, JOB_KIND, spec.model_dump())
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _claim_folder(root: Path, name: str | None, spec: TrainingSpec) -> Path:
    """Make the run's folder; a chosen name that is taken is refused, a made-up one gets a suffix."""
    if name:
        try:
            (root / name).mkdir()
        except FileExistsError:
            raise TrainingError(f"a run named {name!r} already exists; resume it or choose another name") from None
        return root / name
    base = default_run_name(spec)
    for number in range(1, 1000):
        folder = root / (base if number == 1 else f"{base}-{number}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise TrainingError("too many runs started this second; give the run a name")


def resume_run(folder: Path) -> None:
    """Start a stopped, failed or killed run again from its last checkpoint."""
    folder = Path(folder)
    run = read_run(folder)
    if run.spec is None:
        raise TrainingError(f"{folder} holds no readable run spec, so it cannot be resumed")
    if run.state == "finished":
        raise TrainingError(f"run {run.name!r} has finished; start a new run to train further")
    if not (folder / DATA_FILE).is_file():
        raise TrainingError(f"run {run.name!r} has lost its copy of the data ({DATA_FILE}); start a new run")
    try:
        start_job(folder, JOB_KIND, run.spec.model_dump())
    except JobError as error:
        raise TrainingError(str(error)) from None


def stop_run(folder: Path) -> None:
    """Ask the trainer to save a checkpoint at the end of its current step and stop."""
    cancel_job(folder)


def delete_run(folder: Path) -> Path:
    """Move a run that is not running to ``runs/.trash``; returns where it went."""
    folder = Path(folder)
    if read_job(folder).active:
        raise TrainingError(f"run {folder.name!r} is still running; stop it first")
    trash = folder.parent / ".trash"
    trash.mkdir(exist_ok=True)
    target = trash / f"{folder.name}.{time.strftime('%Y%m%d-%H%M%S')}"
    folder.rename(target)
    return target


def cli_command(spec: TrainingSpec, recipe: str, name: str | None = None) -> str:
    """The `cai train` line that starts the same run from a terminal: the recipe, then whatever
    differs from it as --data, --from and --set."""
    import yaml

    from .spec import load_recipe

    parts = ["cai", "train", spec.method, "--recipe", recipe]
    for source in spec.data:
        parts += ["--data", source]
    try:
        from_recipe = load_recipe(recipe, spec.method, {"data": spec.data}).model_dump()
    except RecipeError:
        from_recipe = None  # an edited recipe not saved anywhere: the line cannot name it
    wanted = spec.model_dump()
    if from_recipe is not None:
        if wanted["base_model"] != from_recipe["base_model"]:
            parts += ["--from", wanted["base_model"]]
        for key, value in wanted.items():
            if key in ("method", "data", "base_model"):
                continue
            if key == "lora":
                parts += [item for sub, v in value.items() if v != from_recipe["lora"][sub]
                          for item in ("--set", f"lora.{sub}={_flow(v, yaml)}")]
            elif value != from_recipe[key]:
                parts += ["--set", f"{key}={_flow(value, yaml)}"]
    if name:
        parts += ["--name", name]
    return shlex.join(parts)


def _flow(value, yaml) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def accelerate_command(folder: Path, spec: TrainingSpec, cpu: bool = False,
                       threads_per_process: int | None = None) -> list[str]:
    """``accelerate launch`` running one rank of this run per process."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(spec.num_processes)]
    if threads_per_process:
        command += ["--num_cpu_threads_per_process", str(threads_per_process)]
    if spec.accelerate_config:
        command += ["--config_file", spec.accelerate_config]
    elif cpu:
        command += ["--multi_gpu"]  # accelerate's multi-process launcher; with no GPU the ranks talk over gloo
    return command + ["-m", "cai_core.training", "--rank", str(folder)]


def rank_processes(folder: Path) -> list[int]:
    """The live processes of this run's distributed training (the launcher and its ranks), found by
    their command line (``... -m cai_core.training --rank FOLDER``); empty where /proc cannot tell."""
    wanted = os.path.realpath(folder)
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc/self/cmdline").exists() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if state in ("Z", "X") or b"cai_core.training" not in args:
            continue
        for flag, value in zip(args, args[1:]):
            if flag == b"--rank":
                try:  # a relative folder is relative to that process's own working folder
                    path = os.path.join(os.readlink(entry / "cwd"), os.fsdecode(value))
                except OSError:
                    path = os.fsdecode(value)
                if os.path.realpath(path) == wanted:
                    found.append(int(entry.name))
                break
    return found


def end_leftover_ranks(folder: Path, timeout: float = 30.0) -> None:
    """Kill what is left of an earlier distributed run in this folder before training in it again.

    Ranks normally die with their worker (see cai_core.training.trainer); this covers ranks started
    before that was so, or on a system without it. Two sets of ranks must never write one folder.
    """
    leftovers = rank_processes(folder)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + timeout
    while leftovers and (leftovers := rank_processes(folder)):
        if time.monotonic() > deadline:
            raise TrainingError(f"processes {', '.join(map(str, leftovers))} of an earlier run in {Path(folder).name!r} "
                                "are still running and could not be stopped; stop them, then resume")
        time.sleep(0.1)


def process_command(folder: Path, spec: TrainingSpec) -> str:
    """The command the training process runs as, and for several processes what it launches."""
    line = shlex.join(worker_command(folder, JOB_KIND))
    if spec.num_processes > 1:
        line += "\n# which runs, once per process:\n" + shlex.join(accelerate_command(folder, spec))
    return line


# --------------------------------------------------------------------------- checkpoints and metrics


def checkpoint_step(checkpoint: Path) -> int:
    return int(checkpoint.name.rsplit("-", 1)[-1])


def last_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint that was written to the end (the Trainer writes trainer_state.json last)."""
    found = []
    for path in (Path(folder) / CHECKPOINTS_DIR).glob("checkpoint-*"):
        try:
            step = checkpoint_step(path)
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        except (ValueError, OSError):
            continue  # a checkpoint cut short by a kill: skipped, and the one before it is used
        found.append((step, path))
    return max(found)[1] if found else None


def read_metrics(folder: Path) -> list[dict]:
    """Every complete line of metrics.jsonl (a line being written at this moment is skipped)."""
    try:
        text = (Path(folder) / METRICS_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), (int, float)) and not isinstance(row.get("step"), bool):
            rows.append(row)
    return rows


def trim_metrics(folder: Path, step: int) -> None:
    """Drop what was logged after the checkpoint a resume starts from: those steps run again."""
    kept = [row for row in read_metrics(folder) if row["step"] <= step]
    write_text_atomic(Path(folder) / METRICS_FILE, "".join(json.dumps(row) + "\n" for row in kept))


def read_snapshot(folder: Path) -> list[dict]:
    path = Path(folder) / DATA_FILE
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as error:
        raise TrainingError(f"{path} (the run's copy of its data) cannot be read: {error}") from None


def same_path(a: str, b: str) -> bool:
    """Whether two paths name the same file or folder (False when either cannot be resolved)."""
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except OSError:
        return False


def run_for_spec(spec: str, runs: list[RunInfo]) -> RunInfo | None:
    """The trained run ``spec`` names: its folder, or its adapter folder."""
    adapter = find_adapter(spec)
    if adapter is None:
        return None
    return next((run for run in runs if same_path(str(run.folder / ADAPTER_DIR), str(adapter))), None)


def run_model_problem(spec: str) -> str | None:
    """One sentence when ``spec`` is a training run's folder that holds no adapter to load."""
    if is_endpoint_spec(spec) or find_adapter(spec) is not None:
        return None
    folder = Path(spec).expanduser()
    if not (folder / "spec.json").is_file():
        return None
    run = read_run(folder)
    if run.job.kind != "train" and run.spec is None:
        return None  # some other job's folder: loading it says what is wrong
    if run.job.active:
        return f"Run {run.name!r} is still training; it can be used as a model once it has finished."
    return (f"Run {run.name!r} has no trained adapter (it did not finish, or its adapter folder was deleted), "
            "so it cannot be used as a model; choose another.")
