"""A training run on the Training page: its state and curves, settings and commands, downloads and
deletion, and several runs' curves on one chart.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import streamlit as st

from cai_core import charts
from cai_core.training import (DPO_CURVES, SFT_CURVES, RunInfo, TrainingError, adapter_zip, cli_command, delete_run,
                               model_label, process_command, read_metrics, read_run)
from ui.common import (file_stamp, md, page_key, progress_metrics, sentence, set_flash, show_notes,
                       state_badge, state_label)
from ui.jobs import live_while

MAX_NOTES = 5
OVERLAY_DEFAULT_RUNS = 4  # the compare chart starts with this many of the newest runs of the selected run's method
ALL_CURVES = {**SFT_CURVES, **DPO_CURVES}


def key(name: str) -> str:
    return page_key("training", name)


FLASH, OVERLAY, OVERLAY_METRIC = key("flash"), key("overlay"), key("overlay_metric")


@st.cache_data(show_spinner=False, max_entries=64)
def _metrics(folder: str, stamp: tuple | None) -> list[dict]:
    return read_metrics(Path(folder))


def metrics_of(folder: Path) -> list[dict]:
    return _metrics(str(folder), file_stamp(folder / "metrics.jsonl"))


def show_state(run: RunInfo) -> None:
    job, progress = run.job, run.job.progress
    about = [progress["stage"]] if job.active and progress.get("stage") else []
    if run.spec is not None:
        about.append(f"{run.spec.method.upper()} on {model_label(run.spec.base_model)}")
    with st.container(horizontal=True, vertical_alignment="center"):
        state_badge(run.state)
        st.caption(md(" · ".join(about)))
    done, total = progress.get("done", 0), progress.get("total")
    if total:
        text = f"step {done} of {total}" + (" · done" if run.state == "finished" else "")
        st.progress(job.fraction, text=text)
    elif job.active:
        st.progress(0.0, text=progress.get("stage") or "starting the training process…")
    loss = (run.result or {}).get("train_loss") if run.state == "finished" else progress.get("loss")
    progress_metrics(progress, job.active, "Steps per second",
                     ("Mean training loss" if run.state == "finished" else "Last loss",
                      f"{loss:.4f}" if isinstance(loss, (int, float)) else "—"))
    show_notes(job.notes, MAX_NOTES)
    if job.error:
        st.error(sentence(f"the run failed: {job.error}"))


def show_curves(run: RunInfo) -> None:
    rows = metrics_of(run.folder)
    name = run.name
    if not rows:
        st.caption("The curves start with the first logged step." if run.job.active or run.state == "new"
                   else "This run logged no step.")
    method = run.spec.method if run.spec else "sft"
    left, right = st.columns(2)
    left.plotly_chart(charts.loss_and_lr_chart(rows), key=key(f"chart-loss:{name}"))
    if method == "dpo":
        margin, rewards = charts.dpo_reward_charts(rows)
        right.plotly_chart(margin, key=key(f"chart-margin:{name}"))
        left, right = st.columns(2)
        left.plotly_chart(rewards, key=key(f"chart-rewards:{name}"))
        right.plotly_chart(charts.training_curves(rows, {"grad_norm": DPO_CURVES["grad_norm"]}, "Gradient norm"),
                           key=key(f"chart-other:{name}"))
        st.caption("Reward = beta × the log-probability ratio of an answer under the trained model and the starting "
                   "(reference) model. A rising margin and an accuracy near 100% mean the model learns to prefer the "
                   "chosen answers; a margin that shoots up while the loss goes to 0 can mean overfitting.")
    else:
        curves = {k: SFT_CURVES[k] for k in ("mean_token_accuracy", "grad_norm")}
        right.plotly_chart(charts.training_curves(rows, curves, "Token accuracy and gradient norm"),
                           key=key(f"chart-other:{name}"))


def show_settings(run: RunInfo) -> None:
    with st.expander("Settings and commands", icon=":material/tune:"):
        recipe = run.folder / "recipe.yaml"
        if recipe.is_file():
            st.caption("The run's settings as a recipe (recipe.yaml); start a similar run from it:")
            st.code(recipe.read_text(encoding="utf-8", errors="replace"), language="yaml")
            if run.spec is not None:
                st.code(cli_command(run.spec, str(recipe)), language="bash", wrap_lines=True)
        if run.spec is not None:
            st.caption("The training process of this run (Resume starts it again):")
            st.code(process_command(run.folder, run.spec), language="bash", wrap_lines=True)


def show_downloads(run: RunInfo) -> None:
    folder = run.folder
    files = [(name, mime) for name, mime in (("metrics.jsonl", "application/jsonl"), ("recipe.yaml", "application/yaml"),
                                              ("log.txt", "text/plain")) if (folder / name).is_file()]
    if not files and not run.has_adapter:
        return
    st.subheader("Downloads")
    with st.container(horizontal=True):
        for name, mime in files:
            st.download_button(name, data=(folder / name).read_bytes, file_name=f"{folder.name}-{name}", mime=mime,
                               key=key(f"download:{name}"), on_click="ignore", icon=":material/download:")
        if run.has_adapter:
            st.download_button("LoRA adapter (.zip)", data=lambda: adapter_zip(folder), file_name=f"{folder.name}-adapter.zip",
                               mime="application/zip", key=key("download:adapter"), on_click="ignore",
                               icon=":material/folder_zip:", type="primary",
                               help="A standard PEFT folder: PeftModel.from_pretrained(base, folder) loads it.")


def show_delete(run: RunInfo) -> None:
    with st.expander("Delete this run", icon=":material/delete:"):
        active = run.job.active
        if active:
            st.caption("A run cannot be deleted while it trains; stop it first.")
        st.caption("The folder is moved into runs/.trash, from where it can be recovered by hand. A later run started "
                   "from this one needs it.")
        confirm = st.checkbox(md(f"Yes, delete {run.name}"), key=key(f"confirm-delete:{run.name}"), disabled=active)
        if st.button("Delete run", key=key("delete"), disabled=not confirm or active):
            try:
                target = delete_run(run.folder)
            except (TrainingError, OSError) as error:
                st.error(sentence(error))
                return
            set_flash(FLASH, md(f"Deleted {run.name} (moved to {target})."))
            st.rerun()


def compare_runs(runs: list[RunInfo], selected: RunInfo, poll_seconds: float) -> None:
    st.subheader("Compare runs")
    by_name = {run.name: run for run in runs}
    if OVERLAY in st.session_state:
        st.session_state[OVERLAY] = [n for n in st.session_state[OVERLAY] if n in by_name]
    else:
        method = selected.spec.method if selected.spec else None
        same = [run.name for run in runs if run.spec is not None and run.spec.method == method]
        st.session_state[OVERLAY] = same[:OVERLAY_DEFAULT_RUNS]
    st.session_state.setdefault(OVERLAY_METRIC, "loss")
    live = any(by_name[name].job.active for name in st.session_state[OVERLAY])

    @live_while(live, poll_seconds)
    def overlay() -> None:
        left, right = st.columns([3, 1])
        chosen = left.multiselect("Runs", list(by_name), key=OVERLAY,
                                  format_func=lambda n: f"{n} · {by_name[n].spec.method.upper() if by_name[n].spec else '?'}")
        metric = right.selectbox("Curve", list(ALL_CURVES), key=OVERLAY_METRIC, format_func=ALL_CURVES.get)
        if not chosen:
            st.caption("Choose runs to draw their curves on one chart.")
            return
        st.plotly_chart(charts.overlaid_runs_chart({name: metrics_of(by_name[name].folder) for name in chosen},
                                                   metric, ALL_CURVES[metric]), key=key("chart-overlay"))
        if metric.startswith("rewards/") and not any(by_name[n].spec and by_name[n].spec.method == "dpo" for n in chosen):
            st.caption("Only DPO runs log rewards.")

    overlay()


def run_row(run: RunInfo) -> dict:
    progress, result = run.job.progress, run.result or {}
    loss = result.get("train_loss", progress.get("loss"))
    spec = run.spec
    return {
        "run": run.name, "method": spec.method.upper() if spec else "?",
        "state": state_label(run.state),
        "steps": f"{progress.get('done', 0)} of {progress['total']}" if progress.get("total") else "—",
        "loss": f"{loss:.4f}" if isinstance(loss, (int, float)) else "—",
        "starting model": model_label(spec.base_model) if spec else "?",
        "data": ", ".join(Path(d).name for d in spec.data) if spec else "?",
        "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(run.job.started)) if run.job.started else "—",
    }


def runs_table(runs: list[RunInfo], poll_seconds: float) -> None:
    """The table of runs; while one of them trains it is redrawn every few seconds (steps, loss, state)."""
    live = any(run.job.active for run in runs)

    @live_while(live, poll_seconds)
    def table() -> None:
        current = [read_run(run.folder) if live else run for run in runs]
        st.dataframe(pd.DataFrame([run_row(run) for run in current]), hide_index=True, width="stretch",
                     key=key("runs_table"), column_config={"loss": st.column_config.TextColumn(
                         "loss", help="The finished run's mean training loss, or the last logged loss while it trains.")})

    table()
