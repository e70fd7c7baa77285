"""A dataset on the Data page: its rows (each file's rows filtered, paged and laid out side by side),
summary, charts, downloads and deletion.

Model text is data: every answer, critique and revision is shown as plain text (ui.common.show_text).
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from cai_core import charts
from cai_core.data import (
    BEST_OF_N_PAIRS_FILE,
    DONE_FILE,
    JUDGEMENTS_FILE,
    PROMPTS_FILE,
    REVISION_PAIRS_FILE,
    RLAIF_PAIRS_FILE,
    SAMPLES_FILE,
    SFT_FILE,
    ROW_FILES,
    TRACES_FILE,
    best_of_n_reason,
    dataset_roles,
    dataset_zip,
    delete_dataset,
    pair_prompt,
    read_checked_rows,
)
from cai_core.jobs import JobError, JobState
from ui.common import md, page_key, plural, sentence, set_flash, show_text

PAGE_SIZE = 10
PANELS_PER_LINE = 4  # initial answer, rounds and final answer: at most this many side by side


def key(name: str) -> str:
    return page_key("data", name)


FLASH = key("flash")  # the Data page shows it once, after the rerun


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_rows(path: str, mtime_ns: int, size: int) -> tuple[list[dict], list[int]]:
    # Keyed by the file's mtime and size: a file the worker appended to is read again.
    return read_checked_rows(Path(path))


def rows_of(folder: Path, file_name: str) -> list[dict]:
    """The file's rows that have the expected shape; the lines of any others are reported once."""
    path = folder / file_name
    try:
        stat = path.stat()
    except FileNotFoundError:
        return []
    rows, bad_lines = _cached_rows(str(path), stat.st_mtime_ns, stat.st_size)
    if bad_lines:
        shown = ", ".join(str(n) for n in bad_lines[:5]) + (" …" if len(bad_lines) > 5 else "")
        verb = "is" if len(bad_lines) == 1 else "are"
        st.warning(md(f"{file_name}: {plural(len(bad_lines), 'row')} (line {shown}) {verb} not in the shape this "
                      "file's rows must have, so not shown; was the file edited by hand?"))
    return rows


def paginate(rows: list, name: str) -> list:
    if not rows:
        return rows
    pages = (len(rows) + PAGE_SIZE - 1) // PAGE_SIZE
    page = 1
    if pages > 1:
        page_key_name = key(f"page:{name}")
        if st.session_state.get(page_key_name, 1) > pages:
            st.session_state[page_key_name] = pages
        page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, 1, key=page_key_name, width=160))
    start = (page - 1) * PAGE_SIZE
    st.caption(f"Rows {start + 1}–{min(start + PAGE_SIZE, len(rows))} of {len(rows)}")
    return rows[start:start + PAGE_SIZE]


def row_caption(row: dict, extra: str = "") -> None:
    principles = ", ".join(row.get("principles") or []) or "—"
    st.caption(md(f"{row.get('id', '?')} · category {row.get('category', '?')} · principles {principles}") + extra)


def panels(panel_list: list[tuple[str, list[tuple[str, str | None]]]]) -> None:
    """Side-by-side panels, a line at a time: each is a title and (caption, text) parts."""
    for start in range(0, len(panel_list), PANELS_PER_LINE):
        line = panel_list[start:start + PANELS_PER_LINE]
        for column, (title, parts) in zip(st.columns(len(line) if len(panel_list) <= PANELS_PER_LINE else PANELS_PER_LINE), line):
            with column:
                st.markdown(f"**{md(title)}**")
                for caption, text in parts:
                    if caption:
                        st.caption(md(caption))
                    if text is not None:
                        show_text(text)


def show_sft_row(row: dict, trace: dict | None) -> None:
    with st.container(border=True):
        row_caption(row)
        messages = row.get("messages") or []
        user = next((m.get("content", "") for m in reversed(messages[:-1]) if m.get("role") == "user"), "")
        st.caption("Prompt")
        show_text(user)
        final = messages[-1].get("content", "") if messages else ""
        if trace is None:
            from_samples = (row.get("lineage") or {}).get("feedback") in ("refusal_rule", "constitution")
            panels([("Best-of-N sample (the SFT target)" if from_samples else "Final answer (the SFT target)",
                     [("", final)])])
            if from_samples:
                st.caption("The first of the prompt's samples that passes the verifier; the Best-of-N samples "
                           "tab shows them all.")
            return
        parts = [("Initial answer", [("", trace.get("initial", ""))])]
        for step in trace.get("steps", []):
            revision: list[tuple[str, str | None]]
            if step.get("skip_reason") == "no_change":
                revision = [("Revision skipped: the critique found nothing to change.", None)]
            elif step.get("skip_reason") == "empty_revision":
                revision = [("The revision came back empty, so the previous answer was kept.", None)]
            else:
                revision = [("Revision", step.get("revision", ""))]
            parts.append((f"Round {step.get('round')} · {step.get('principle')}",
                          [("Critique", step.get("critique", "")), *revision]))
        parts.append(("Final answer (the SFT target)", [("", final)]))
        panels(parts)
        for warning in trace.get("warnings", []):
            st.caption(md(f"Warning: {warning}"))


def show_pair(row: dict, prompts: dict[str, str], details: str = "") -> None:
    with st.container(border=True):
        row_caption(row)
        st.caption("Prompt")
        show_text(pair_prompt(row, prompts))
        chosen = (row.get("chosen") or [{}])[-1].get("content", "")
        rejected = (row.get("rejected") or [{}])[-1].get("content", "")
        panels([("Chosen", [("", chosen)]), ("Rejected", [("", rejected)])])
        if details:
            st.caption(details)


def judge_details(row: dict) -> str:
    judge = row.get("judge") or {}
    parts = [f"label {row['label']:.3f}" if row.get("label") is not None else "",
             f"P(chosen better) shown first {judge.get('p_chosen_shown_first', 0.5):.3f}",
             f"shown second {judge.get('p_chosen_shown_second', 0.5):.3f}",
             "the two orders disagree" if judge.get("orders_disagree") else "the two orders agree",
             f"judge {judge.get('model', '?')} ({judge.get('method', '?')})"]
    return md(" · ".join(p for p in parts if p))


def show_judgement(row: dict, prompts: dict[str, str], min_confidence: float | None) -> None:
    with st.container(border=True):
        kept = row.get("kept")
        verdict = "kept" if kept else "dropped" + (f": below the threshold {min_confidence:g}" if min_confidence else "")
        row_caption(row, md(f" · confidence {row.get('confidence', 0.5):.3f} · {verdict}"))
        st.caption("Prompt")
        show_text(prompts.get(row.get("id"), ""))
        first_preferred = row.get("chosen_is_answer_1")
        panels([(f"Answer 1{' (preferred)' if first_preferred else ''}", [("", row.get("answer_1", ""))]),
                (f"Answer 2{'' if first_preferred else ' (preferred)'}", [("", row.get("answer_2", ""))])])
        judge = row.get("judge") or {}
        lines = [f"P(answer 1 better) {row.get('p_answer_1', 0.5):.3f}"]
        for verdict_row in judge.get("per_principle", []):
            lines.append(f"{verdict_row.get('principle')}: P(answer 1 better) when shown first "
                         f"{verdict_row.get('p_first_when_shown_first', 0.5):.3f}, when shown second "
                         f"{verdict_row.get('p_first_when_shown_second', 0.5):.3f}")
        lines.append("the two orders disagree" if judge.get("orders_disagree") else "the two orders agree")
        st.caption(md(" · ".join(lines)))


def show_samples(row: dict) -> None:
    """One prompt's best-of-N samples, each marked by the refusal rule's verdict."""
    with st.container(border=True):
        samples = row.get("samples") or []
        passing = sum(bool(s.get("passes")) for s in samples)
        should = "should be declined" if row.get("should_refuse") else "should be answered"
        row_caption(row, md(f" · {should} · {passing} of {plural(len(samples), 'sample')} pass"))
        st.caption("Prompt")
        show_text(row.get("prompt", ""))
        parts = []
        for number, sample in enumerate(samples, 1):
            verdict = "passes" if sample.get("passes") else "fails"
            declined = "declines" if sample.get("refused") else "answers"
            why = f" · {sample['reason']}" if sample.get("reason") else ""  # the constitution verifier says why
            parts.append((f"Sample {number} · {verdict}", [(declined + why, sample.get("answer", ""))]))
        panels(parts)


def empty_rows_message(job: JobState, made: bool, what: str, chunk_size: int | None) -> None:
    if not made:
        st.info(f"This dataset makes no {what}: it was not chosen when the dataset was started.")
    elif job.active:
        st.info(f"No {what} yet: rows are written a chunk of {chunk_size or 'several'} prompts at a time.")
    else:
        st.info(f"No {what} match the filters." if job.state == "finished" else f"No {what} were written.")


def browse(folder: Path, job: JobState, data: dict[str, list[dict]], spec: dict) -> None:
    st.subheader("Rows")
    name = folder.name
    prompts = {row["id"]: row.get("prompt", "") for row in data[PROMPTS_FILE] if "id" in row}
    categories = sorted({row.get("category", "?") for row in data[PROMPTS_FILE]})
    principles = sorted({p for file in (SFT_FILE, REVISION_PAIRS_FILE, RLAIF_PAIRS_FILE, JUDGEMENTS_FILE)
                         for row in data[file] for p in row.get("principles") or []})
    category_col, principle_col, confidence_col = st.columns(3)
    chosen_categories = category_col.multiselect("Categories (none = all)", categories, key=key(f"categories:{name}"))
    chosen_principles = principle_col.multiselect("Principles (none = all)", principles, key=key(f"principles-filter:{name}"))
    low, high = 0.5, 1.0
    if data[JUDGEMENTS_FILE]:
        low, high = confidence_col.slider("Judge confidence", 0.5, 1.0, (0.5, 1.0), 0.01, key=key(f"confidence:{name}"),
                                          help="Filters the RLAIF pairs and the judgements by the judge's confidence.")

    def keep(row: dict, confidence: float | None = None) -> bool:
        if chosen_categories and row.get("category") not in chosen_categories:
            return False
        if chosen_principles and not set(row.get("principles") or []) & set(chosen_principles):
            return False
        return confidence is None or low - 1e-9 <= confidence <= high + 1e-9

    phases, sources = spec.get("phases", []), spec.get("pair_sources", [])
    sft_from_samples = "sft" in phases and spec.get("sft_source") == "best_of_n"
    samples_made = sft_from_samples or ("prefs" in phases and "best_of_n" in sources)
    chunk = spec.get("chunk_size")
    traces = {row.get("id"): row for row in data[TRACES_FILE]}
    samples = {row.get("id"): row for row in data[SAMPLES_FILE]}
    sft_tab, revision_tab, rlaif_tab, judgements_tab, best_tab, samples_tab = st.tabs(
        ["Phase 1 (SFT)", "Pairs from revisions", "RLAIF pairs", "Judgements", "Best-of-N pairs", "Best-of-N samples"])
    with sft_tab:
        rows = [row for row in data[SFT_FILE] if keep(row)]
        if not rows:
            empty_rows_message(job, "sft" in phases, "SFT rows", chunk)
            if sft_from_samples and data[SAMPLES_FILE]:
                st.caption("An SFT row is made only when one of a prompt's samples passes the refusal rule; the "
                           "Best-of-N samples tab shows every sample.")
        for row in paginate(rows, f"{name}:sft"):
            show_sft_row(row, traces.get(row.get("id")))
    with revision_tab:
        rows = [row for row in data[REVISION_PAIRS_FILE] if keep(row)]
        if not rows:
            empty_rows_message(job, "prefs" in phases and "revision" in sources, "pairs from revisions", chunk)
            if data[TRACES_FILE] and "prefs" in phases and "revision" in sources:
                st.caption("A pair is made only when the final revision differs from the first answer.")
        for row in paginate(rows, f"{name}:revision"):
            show_pair(row, prompts)
    with rlaif_tab:
        rows = [row for row in data[RLAIF_PAIRS_FILE] if keep(row, row.get("label_raw", row.get("label")))]
        if not rows:
            empty_rows_message(job, "prefs" in phases and "rlaif" in sources, "RLAIF pairs", chunk)
            dropped = sum(not j.get("kept") for j in data[JUDGEMENTS_FILE])
            if dropped:
                st.caption(f"{plural(dropped, 'judged pair')} fell below the confidence threshold "
                           f"{spec.get('min_confidence')}; the Judgements tab shows them.")
        for row in paginate(rows, f"{name}:rlaif"):
            show_pair(row, prompts, judge_details(row))
    with judgements_tab:
        show = st.radio("Show", ["all", "kept", "dropped"], horizontal=True, key=key(f"judged:{name}"))
        rows = [row for row in data[JUDGEMENTS_FILE] if keep(row, row.get("confidence"))
                and (show == "all" or bool(row.get("kept")) == (show == "kept"))]
        if not rows:
            empty_rows_message(job, "prefs" in phases and "rlaif" in sources, "judged pairs", chunk)
        for row in paginate(rows, f"{name}:judgements"):
            show_judgement(row, prompts, spec.get("min_confidence"))
    with best_tab:
        rows = [row for row in data[BEST_OF_N_PAIRS_FILE] if keep(row)]
        if not rows:
            empty_rows_message(job, "prefs" in phases and "best_of_n" in sources, "best-of-N pairs", chunk)
            if data[SAMPLES_FILE] and "prefs" in phases and "best_of_n" in sources:
                st.caption("A pair is made only when a prompt has both a sample the refusal rule passes and one it "
                           "fails; the Best-of-N samples tab shows every sample.")
        for row in paginate(rows, f"{name}:best_of_n"):
            show_pair(row, prompts, md(best_of_n_reason(row, samples)))
    with samples_tab:
        every = data[SAMPLES_FILE]
        if every:
            passed = sum(any(s.get("passes") for s in row.get("samples") or []) for row in every)
            st.caption(f"Prompts with a sample that passes the refusal rule: {passed} of {len(every)}. A sample "
                       "passes when it declines a prompt from a set to decline, or answers any other prompt.")
        show = st.radio("Show", ["all", "some sample passes", "no sample passes"], horizontal=True,
                        key=key(f"sampled:{name}"))

        def shown(row: dict) -> bool:
            passes = any(s.get("passes") for s in row.get("samples") or [])
            return show == "all" or passes == (show == "some sample passes")

        rows = [row for row in every if keep(row) and shown(row)]
        if not rows:
            empty_rows_message(job, samples_made, "best-of-N samples", chunk)
        for row in paginate(rows, f"{name}:samples"):
            show_samples(row)


# ---------------------------------------------------------------- summary, charts, downloads, delete


def roles_words(roles: dict[str, str | None]) -> str:
    """Which model played which role, as one caption (model ids come from files: escaped)."""
    policy, critic, judge = roles.get("policy"), roles.get("critic"), roles.get("judge")
    words = [f"Policy {policy or '?'}"]
    if critic and critic != policy:
        words.append(f"critic {critic} (the SFT rows are its text: distillation from it)")
    elif critic:
        words.append("self-critique")
    if judge:
        words.append(f"judge {judge}")
    return md(" · ".join(words))


def show_summary(folder: Path, data: dict[str, list[dict]], spec: dict) -> None:
    judged = data[JUDGEMENTS_FILE]
    kept = sum(bool(j.get("kept")) for j in judged)
    with st.container(horizontal=True):
        st.metric("Prompts done", f"{len(rows_of(folder, DONE_FILE))} of {len(data[PROMPTS_FILE])}")
        st.metric("SFT rows", len(data[SFT_FILE]))
        st.metric("Pairs from revisions", len(data[REVISION_PAIRS_FILE]))
        st.metric("RLAIF pairs kept", f"{kept} of {len(judged)} judged" if judged else "0")
        if data[SAMPLES_FILE] or data[BEST_OF_N_PAIRS_FILE]:
            st.metric("Best-of-N pairs", len(data[BEST_OF_N_PAIRS_FILE]))
    st.caption(roles_words(dataset_roles(folder, spec)))
    with st.expander("Settings and dataset card"):
        st.caption("The settings this dataset was made with (spec.json)")
        st.code(json.dumps(spec, indent=2, ensure_ascii=False), language="json")
        readme = folder / "README.md"
        if readme.is_file():
            st.caption("The dataset card (README.md)")
            st.code(readme.read_text(encoding="utf-8", errors="replace"), language="markdown")
        else:
            st.caption("The dataset card (README.md) is written when the run ends.")


def show_charts(folder: Path, data: dict[str, list[dict]]) -> None:
    st.subheader("Charts")
    judged = data[JUDGEMENTS_FILE]
    left, right = st.columns(2)
    left.plotly_chart(charts.judge_confidence_histogram(judged), key=key(f"chart-confidence:{folder.name}"))
    right.plotly_chart(charts.order_disagreement_chart(judged), key=key(f"chart-orders:{folder.name}"))
    by_file = {name: data[name] for name in (SFT_FILE, REVISION_PAIRS_FILE, RLAIF_PAIRS_FILE, JUDGEMENTS_FILE,
                                             BEST_OF_N_PAIRS_FILE) if data[name]}
    left, right = st.columns(2)
    left.plotly_chart(charts.rows_per_principle_chart(by_file), key=key(f"chart-principles:{folder.name}"))
    right.plotly_chart(charts.rows_per_category_chart(by_file), key=key(f"chart-categories:{folder.name}"))
    st.caption("The judge charts cover every judged pair, kept or dropped; a pair whose two orders disagree was "
               "ranked by position, not content. The row charts count each row once per principle it used.")


def show_downloads(folder: Path, data: dict[str, list[dict]]) -> None:
    st.subheader("Downloads")
    present = [name for name in ROW_FILES if (folder / name).is_file()]
    if not present:
        st.caption("Nothing to download yet: the first rows are written when the first chunk of prompts is done.")
    with st.container(horizontal=True):
        for name in present:
            path = folder / name
            st.download_button(f"{name} ({plural(len(data[name]), 'row')})", data=path.read_bytes,
                               file_name=f"{folder.name}-{name}", mime="application/jsonl",
                               key=key(f"download:{name}"), on_click="ignore", icon=":material/download:")
        if (folder / "README.md").is_file():
            st.download_button("Dataset card (README.md)", data=(folder / "README.md").read_bytes,
                               file_name=f"{folder.name}-README.md", mime="text/markdown",
                               key=key("download:card"), on_click="ignore", icon=":material/download:")
        st.download_button("Whole dataset (.zip)", data=lambda: dataset_zip(folder), file_name=f"{folder.name}.zip",
                           mime="application/zip", key=key("download:zip"), on_click="ignore",
                           icon=":material/folder_zip:", type="primary")


def show_delete(folder: Path, job: JobState) -> None:
    with st.expander("Delete this dataset", icon=":material/delete:"):
        if job.active:
            st.caption("A dataset cannot be deleted while it is being generated; stop it first.")
        st.caption("The folder is moved into datasets/.trash, from where it can be recovered by hand.")
        confirm = st.checkbox(md(f"Yes, delete {folder.name}"), key=key(f"confirm-delete:{folder.name}"),
                              disabled=job.active)
        if st.button("Delete dataset", key=key("delete"), disabled=not confirm or job.active):
            try:
                target = delete_dataset(folder)
            except (JobError, OSError) as error:
                st.error(sentence(error))
                return
            set_flash(FLASH, md(f"Deleted {folder.name} (moved to {target})."))
            st.rerun()
