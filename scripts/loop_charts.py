"""Draw a loop's charts as PNG files, for a write-up such as docs/results.md.

    .venv/bin/pip install -e '.[docs]'     # kaleido: plotly's static image export
    BROWSER_PATH=/usr/bin/chromium .venv/bin/python scripts/loop_charts.py cpu-demo --out docs/results

kaleido drives a Chromium; BROWSER_PATH points it at the system's instead of a download.

The charts are the Alignment tax page's own (cai_core.charts), drawn from the loop's saved
reports: every suite per round, the start against the last round per kind, the tax, and safety
against capability.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cai_core import charts
from cai_core.evaluation import compare_reports
from cai_core.evaluation.loop import loop_reports, loops_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("loop", help="the loop's name (under $CAI_HOME/loops) or its folder")
    parser.add_argument("--out", type=Path, default=Path("docs/results"))
    args = parser.parse_args(argv)
    folder = Path(args.loop) if Path(args.loop).is_dir() else loops_dir() / args.loop
    reports = loop_reports(folder)
    if len(reports) < 2:
        print(f"{folder}: fewer than two evaluated rounds, nothing to compare", file=sys.stderr)
        return 1
    (start_label, start), (last_label, last) = reports[0], reports[-1]
    comparison = compare_reports(start, last)
    figures = {
        "history": charts.history_chart(reports, "Scores over rounds (95% intervals)"),
        "safety": charts.benchmark_bars([(start_label, start), (last_label, last)], "safety",
                                        "Safety: refusals on unseen red-team and borderline-safe prompts"),
        "capability": charts.benchmark_bars([(start_label, start), (last_label, last)], "capability",
                                            "Capability: score per benchmark"),
        "tax": charts.tax_bars(comparison["all"], "Alignment tax per benchmark",
                              headline=charts.tax_headline(comparison)),
        "safety-vs-capability": charts.safety_vs_capability(
            [(label, charts.report_average(report, "capability"), charts.report_average(report, "safety"))
             for label, report in reports]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for name, figure in figures.items():
        path = args.out / f"{folder.name}-{name}.png"
        figure.write_image(path, width=900, height=480, scale=1)
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
