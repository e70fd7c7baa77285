"""The training process: TRL's SFTTrainer or DPOTrainer with a PEFT LoRA, reporting into the run folder.

No training loop is written here. What this module adds around TRL:

- the starting model: the base with any earlier adapters merged in (DPO after SFT), and a fresh
  LoRA on top. DPO then needs no reference model at all: with ``ref_model=None`` and a PEFT model
  TRL computes the reference by switching the adapter off, which gives exactly the merged
  starting weights. One copy of the model is in memory, never two;
- a callback that appends every log line to ``metrics.jsonl`` (the page's live charts), writes
  progress with ETA, and turns a stop request into "save a checkpoint, then stop";
- resume from the newest complete checkpoint, with the global step, optimiser, scheduler and data
  order carried on, and the metrics logged after that checkpoint dropped so none is duplicated;
- one waiting line: a run waits (queued) while another run on this machine trains;
- more than one process: the same code under ``accelerate launch``.
"""

from __future__ import annotations

import fcntl
import json
import os
import resource
import shutil
import subprocess
import time
from pathlib import Path

from transformers import TrainerCallback

from ..models.adapters import ADAPTER_DIR, adapter_stack, load_merged, write_stack_record
from ..jobs import (QUEUED, RUNNING, JobCancelled, Reporter, die_with_parent, is_stopping, kill_with_parent, request_stop,
                    write_json)
from .. import threads
from .runs import (CHECKPOINTS_DIR, METRICS_FILE, RESULT_FILE, TrainingError, accelerate_command, checkpoint_step,
                   end_leftover_ranks, last_checkpoint, read_metrics, read_snapshot, runs_dir, trim_metrics)
from .spec import TrainingSpec, parse_spec

# The exit status of a rank process that stopped on request (after saving its checkpoint).
STOPPED_EXIT = 3
QUEUE_POLL_SECONDS = 1.0
# Tells each rank which worker it belongs to, so a rank started after its worker died does not train.
WORKER_PID_VARIABLE = "CAI_TRAINING_WORKER_PID"


def run_training_job(folder: Path, spec_data: dict, reporter: Reporter) -> None:
    """The job runner (see cai_core.jobs): wait for the machine, then train in one or more processes."""
    spec = parse_spec(spec_data, str(folder / "spec.json"))
    end_leftover_ranks(folder)
    with _turn_on_this_machine(folder, reporter) as turn:
        if turn.waited:  # what else runs has changed while it waited
            threads.use_share(folder / "log.txt", prefix="after waiting its turn: ")
        if spec.num_processes > 1:
            _train_distributed(folder, spec, reporter)
        else:
            train(folder, spec, reporter)


class _turn_on_this_machine:
    """Hold the machine-wide training lock; two runs at once would only slow both down."""

    def __init__(self, folder: Path, reporter: Reporter):
        self.folder, self.reporter = folder, reporter
        self.handle = None
        self.waited = False

    def __enter__(self):
        lock_path = runs_dir() / ".trainer.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(lock_path, "a+")
        waiting = False
        while True:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting:
                    waiting = True
                    self.reporter.set_state(QUEUED)
                    self.reporter.progress(0, 0, "waiting for the run in progress to finish", force=True)
                self.reporter.check_stop()
                time.sleep(QUEUE_POLL_SECONDS)
        if waiting:
            self.reporter.set_state(RUNNING)
        self.waited = waiting
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(self.folder))
        self.handle.flush()
        return self

    def __exit__(self, *exc):
        self.handle.close()


def _precision(spec: TrainingSpec):
    import torch

    cuda = torch.cuda.is_available()
    if spec.precision == "bf16" or (spec.precision == "auto" and cuda and torch.cuda.is_bf16_supported()):
        return cuda, True, torch.bfloat16
    return cuda, False, torch.float32


def train(folder: Path, spec: TrainingSpec, reporter: Reporter, is_main: bool = True) -> dict:
    """Train in this process (one rank of a distributed run when launched by accelerate)."""
    import transformers
    from datasets import Dataset
    from peft import LoraConfig

    transformers.utils.logging.disable_progress_bar()
    cuda, bf16, dtype = _precision(spec)
    reporter.progress(0, 0, "loading the model", force=True)
    started_from = adapter_stack(spec.base_model)
    network, tokenizer, model_label = load_merged(spec.base_model, dtype)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    reporter.check_stop()

    rows = read_snapshot(folder)
    dataset = Dataset.from_list(rows)
    common = dict(
        output_dir=str(folder / CHECKPOINTS_DIR), use_cpu=not cuda, bf16=bf16,
        learning_rate=spec.learning_rate, num_train_epochs=spec.num_epochs, max_steps=spec.max_steps or -1,
        per_device_train_batch_size=spec.batch_size, gradient_accumulation_steps=spec.gradient_accumulation_steps,
        warmup_steps=spec.warmup_ratio, lr_scheduler_type=spec.lr_scheduler, weight_decay=spec.weight_decay,
        max_grad_norm=spec.max_grad_norm, activation_checkpointing=spec.gradient_checkpointing, seed=spec.seed,
        logging_steps=spec.logging_steps, logging_first_step=True, save_strategy="steps", save_steps=spec.save_steps,
        save_total_limit=spec.keep_checkpoints, report_to=[], disable_tqdm=True, max_length=spec.max_length,
        dataloader_num_workers=0,
    )
    lora = LoraConfig(r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
                      target_modules=spec.lora.target_modules, task_type="CAUSAL_LM")
    callback = RunCallback(folder, reporter, is_main)
    if spec.method == "sft":
        from trl import SFTConfig, SFTTrainer

        # prompt/completion rows: the loss is on the answer only.
        config, trainer_class = SFTConfig(**common, completion_only_loss=True, packing=False), SFTTrainer
    else:
        from trl import DPOConfig, DPOTrainer

        config, trainer_class = DPOConfig(**common, beta=spec.beta, precompute_ref_log_probs=spec.precompute_ref_log_probs), DPOTrainer
    stage = "preparing the data"
    if spec.method == "dpo" and spec.precompute_ref_log_probs:
        stage += " and scoring every pair under the reference model"
    reporter.progress(0, 0, stage, force=True)
    # ref_model stays None: with a PEFT model TRL's reference is this model with the adapter off.
    trainer = trainer_class(model=network, args=config, train_dataset=dataset, processing_class=tokenizer,
                            peft_config=lora, callbacks=[callback])
    reporter.check_stop()
    _check_rows_left(trainer, len(rows), spec, reporter)

    checkpoint = last_checkpoint(folder)
    if checkpoint is not None:
        step = checkpoint_step(checkpoint)
        if is_main:
            trim_metrics(folder, step)
            print(f"resuming from {checkpoint.name} (step {step})", flush=True)
    # Peak memory so far: the model, the data and (DPO, precomputed) the reference pass, before any step.
    rss_before_training_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.time()
    reporter.restart_rate()
    if checkpoint is not None and _checkpoint_is_final(checkpoint):
        # Killed (or stopped) after the last step's checkpoint: nothing is left to train, and
        # resuming the Trainer from it would train one step past the end.
        _load_adapter_weights(trainer.model, checkpoint)
        train_loss, steps = _mean_logged_loss(folder), checkpoint_step(checkpoint)
    else:
        train_loss = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None).training_loss
        steps = trainer.state.global_step
    if callback.stopped:
        raise JobCancelled(f"stopped at step {trainer.state.global_step}; a checkpoint was saved")
    reporter.progress(steps, trainer.state.max_steps or steps, "saving the adapter", force=True)
    if not is_main:
        return {}
    adapter = save_adapter(trainer, folder, started_from, spec, model_label)
    result = {
        "adapter": str(adapter), "model": model_label, "method": spec.method, "steps": steps,
        "train_loss": train_loss, "seconds": time.time() - began, "rows": len(rows),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_before_training_mb": rss_before_training_mb,
        "resumed_from_step": checkpoint_step(checkpoint) if checkpoint else None,
    }
    write_json(folder / RESULT_FILE, result)
    return result


def _check_rows_left(trainer, rows: int, spec: TrainingSpec, reporter: Reporter) -> None:
    """TRL drops rows whose answer lies wholly beyond max_length; say so rather than fail obscurely."""
    left = len(trainer.train_dataset)
    if left == 0:
        raise TrainingError(f"none of the {rows} rows has any answer token within max_length={spec.max_length}; "
                            "raise max_length or shorten the prompts")
    if left < rows:
        reporter.note(f"{rows - left} of {rows} rows were left out: their answers start beyond max_length={spec.max_length}")


def _checkpoint_is_final(checkpoint: Path) -> bool:
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    return bool(state.get("max_steps")) and state.get("global_step", 0) >= state["max_steps"]


def _load_adapter_weights(model, checkpoint: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(checkpoint / "adapter_model.safetensors")))


def _mean_logged_loss(folder: Path) -> float | None:
    losses = [row["loss"] for row in read_metrics(folder) if isinstance(row.get("loss"), (int, float))]
    return sum(losses) / len(losses) if losses else None


def save_adapter(trainer, folder: Path, started_from, spec: TrainingSpec, model_label: str) -> Path:
    """The final adapter, written beside the run and put in place whole (a kill leaves none or all)."""
    final = folder / ADAPTER_DIR
    staging = folder / f".{ADAPTER_DIR}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    trainer.save_model(str(staging))
    # The Trainer also drops a pickle of its arguments here; an adapter folder holds safetensors and JSON only.
    (staging / "training_args.bin").unlink(missing_ok=True)
    write_stack_record(staging, started_from, spec.base_model,
                       {"run": folder.name, "method": spec.method, "trained_on": model_label})
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    # The stack record points at the final place, so a run's later adapters can find this one.
    return final


class RunCallback(TrainerCallback):
    """Writes metrics and progress, and stops at a step boundary (with a checkpoint) when asked."""

    def __init__(self, folder: Path, reporter: Reporter, is_main: bool):
        self.folder, self.reporter, self.is_main = folder, reporter, is_main
        self.stopped = False
        self.last_loss: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.reporter.progress(state.global_step, state.max_steps, "training", force=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not self.is_main or not logs:
            return
        numbers = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if "train_runtime" in numbers:  # the end-of-training summary, not a point on the curves
            return
        if "loss" in numbers:
            self.last_loss = numbers["loss"]
        record = {"step": state.global_step, "epoch": state.epoch, "time": time.time(), **numbers}
        with open(self.folder / METRICS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def on_step_end(self, args, state, control, **kwargs):
        self.reporter.progress(state.global_step, state.max_steps, "training", loss=self.last_loss, epoch=state.epoch)
        if _stop_requested(self.reporter):
            self.stopped = True
            self.reporter.progress(state.global_step, state.max_steps, "saving a checkpoint, then stopping", force=True,
                                   loss=self.last_loss, epoch=state.epoch)
            control.should_save = True  # the Trainer saves this step's checkpoint before it stops
            control.should_training_stop = True


def _stop_requested(reporter: Reporter) -> bool:
    """Whether to stop; every rank of a distributed run takes the same decision at the same step."""
    wanted = reporter.stop_requested or is_stopping(reporter.folder)
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return wanted
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        import torch
        from accelerate import PartialState

        flag = torch.tensor([1.0 if wanted else 0.0], device=PartialState().device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())
    return wanted


# --------------------------------------------------------------------------- several processes


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _train_distributed(folder: Path, spec: TrainingSpec, reporter: Reporter) -> None:
    # The job's share of the cores is split between its processes, or they would each take all of it.
    per_rank = threads.rank_threads(threads.current_share(), spec.num_processes)
    command = accelerate_command(folder, spec, cpu=not _cuda_available(), threads_per_process=per_rank)
    print(f"each of the {spec.num_processes} processes uses {per_rank} threads", flush=True)
    print("launching: " + " ".join(command), flush=True)
    # The ranks write to this process's stdout, which is the run's log.
    # The launcher dies with this worker however it dies (a SIGKILL included), and each rank with the
    # launcher (run_rank), so no rank outlives its run to race a resumed one in the same folder.
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, cwd=str(Path(__file__).resolve().parents[2]),
                               env={**os.environ, "PYTHONUNBUFFERED": "1", threads.RANK_ENV: str(per_rank),
                                    WORKER_PID_VARIABLE: str(os.getpid())},
                               preexec_fn=kill_with_parent())
    while process.poll() is None:
        if reporter.stop_requested:
            request_stop(folder)  # the ranks see it at their next step boundary
        time.sleep(1.0)
    if process.returncode == STOPPED_EXIT:
        raise JobCancelled("stopped on request; a checkpoint was saved")
    if process.returncode != 0:
        raise TrainingError(f"the {spec.num_processes} training processes ended with exit status "
                            f"{process.returncode}; the end of the log says why")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        return True  # cannot tell: carry on (the launcher's own tie to the worker still holds)
    return state not in ("Z", "X")


class RankReporter(Reporter):
    """A rank of a distributed run: only the main process writes progress and notes."""

    def __init__(self, folder: Path, is_main: bool):
        super().__init__(folder)
        self.is_main = is_main

    def progress(self, *args, **kwargs) -> None:
        if self.is_main:
            super().progress(*args, **kwargs)

    def note(self, message: str) -> None:
        if self.is_main:
            super().note(message)

    def set_state(self, state: str) -> None:
        if self.is_main:
            super().set_state(state)


def run_rank(folder: Path) -> int:
    """Body of ``python -m cai_core.training --rank RUN_DIR``, started by accelerate for each process."""
    import torch
    from accelerate import PartialState

    from ..jobs import read_json

    # accelerate starts each rank in a session of its own, so nothing reaches it when the launcher is
    # killed; the kernel does. A rank whose worker had already gone before this line ends at once.
    die_with_parent()
    worker = os.environ.get(WORKER_PID_VARIABLE, "")
    if worker.isdigit() and not _alive(int(worker)):
        return 1
    recorded = read_json(folder / "spec.json") or {}
    spec = parse_spec(recorded.get("spec") or {}, str(folder / "spec.json"))
    # Without cpu=True, ranks on a machine with no GPU would each form a group of one.
    state = PartialState(cpu=not torch.cuda.is_available())
    is_main = state.is_main_process
    threads.use_rank_share(folder / "log.txt", state.process_index)
    try:
        train(folder, spec, RankReporter(folder, is_main), is_main)
    except JobCancelled:
        return STOPPED_EXIT
    finally:
        # gloo's worker threads must be joined before the interpreter exits: left to the C++
        # destructors, a rank can abort at exit ("terminate called without an active exception")
        # after training finished, and the run would be reported as failed.
        state.destroy_process_group()
    return 0
