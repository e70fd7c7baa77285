"""Base against aligned per principle: the charts' figures and `cai tax`'s table, on hand-made reports."""

from __future__ import annotations

import json

import pytest

from cai_core import charts
from cai_core.cli import main
from cai_core.evaluation.principles import principle_scores, principle_tax
from principle_reports import ALIGNED_OUTCOMES, BASE_OUTCOMES, principles_report


@pytest.fixture
def tax() -> dict:
    return principle_tax(principles_report("base", BASE_OUTCOMES), principles_report("aligned", ALIGNED_OUTCOMES))


def test_each_side_has_its_own_interval_on_the_shared_examples(tax):
    rows = {row["principle"]: row for row in tax["rows"]}
    # 0 of 10 and 10 of 10 leave no room to resample; 3 of 4 does.
    assert rows["private"]["base_ci_low"] == rows["private"]["base_ci_high"] == 0.0
    assert rows["private"]["aligned_ci_low"] == rows["private"]["aligned_ci_high"] == 100.0
    assert rows["no-promises"]["aligned_ci_low"] < 75.0 <= rows["no-promises"]["aligned_ci_high"] <= 100.0


def test_grouped_bars_show_both_pass_rates_with_intervals_and_colour_the_direction(tax):
    figure = charts.principle_bars(tax, "base · b", "aligned · a", "Pass rate per principle")
    base, aligned = figure.data
    assert (base.name, aligned.name) == ("base · b", "aligned · a") and figure.layout.barmode == "group"
    assert list(base.x) == list(aligned.x) == ["private", "no-promises"]
    assert list(base.y) == [0.0, 100.0] and list(aligned.y) == [100.0, 75.0]
    assert list(aligned.marker.color) == [charts.IMPROVEMENT_COLOR, charts.REGRESSION_COLOR]
    low, high = tax["rows"][1]["aligned_ci_low"], tax["rows"][1]["aligned_ci_high"]
    assert aligned.error_y.array[1] == pytest.approx(high - 75.0)
    assert aligned.error_y.arrayminus[1] == pytest.approx(75.0 - low)


def test_change_bars_split_improvements_and_regressions_with_the_paired_interval(tax):
    figure = charts.principle_change_bars(tax)
    by_name = {trace.name: trace for trace in figure.data}
    assert set(by_name) == {"improvement", "regression"}
    assert list(by_name["improvement"].x) == ["private"] and list(by_name["improvement"].y) == [100.0]
    assert list(by_name["regression"].x) == ["no-promises"] and list(by_name["regression"].y) == [-25.0]
    assert by_name["improvement"].marker.color == charts.IMPROVEMENT_COLOR
    assert by_name["regression"].marker.color == charts.REGRESSION_COLOR
    row = tax["rows"][1]
    assert by_name["regression"].error_y.arrayminus[0] == pytest.approx(-25.0 - row["ci_low"])
    assert "within noise" in by_name["regression"].customdata[0][0]
    assert figure.layout.title.text.endswith("mean +37.5 points")


def test_one_line_per_principle_over_rounds_skipping_reports_without_the_suite():
    rounds = [("start", principles_report("s", BASE_OUTCOMES)), ("round 1", principles_report("r1", None)),
              ("round 2", principles_report("r2", ALIGNED_OUTCOMES))]
    figure = charts.principle_history_chart([(label, principle_scores(report)) for label, report in rounds])
    lines = {trace.name: trace for trace in figure.data}
    assert set(lines) == {"private", "no-promises"}
    assert list(lines["private"].x) == ["start", "round 2"] and list(lines["private"].y) == [0.0, 100.0]
    assert list(lines["no-promises"].y) == [100.0, 75.0]
    assert list(lines["no-promises"].error_y.arrayminus) == [10.0, 10.0]  # the report's own interval
    assert list(figure.layout.xaxis.categoryarray) == ["start", "round 1", "round 2"]
    assert charts.principle_history_chart([("start", {})]).layout.annotations[0].text == charts.NO_REPORTS


def write(tmp_path, name: str, report: dict) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(report))
    return str(path)


def test_cai_tax_prints_the_tax_per_principle_after_the_benchmarks(tmp_path, capsys):
    base = write(tmp_path, "b", principles_report("base", BASE_OUTCOMES, arithmetic=50.0))
    aligned = write(tmp_path, "a", principles_report("aligned", ALIGNED_OUTCOMES, arithmetic=40.0))
    comparison = tmp_path / "c.json"
    assert main(["tax", base, aligned, "--json", str(comparison)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    # The benchmark tax first, as before; the table after it.
    header = next(i for i, line in enumerate(lines) if line.startswith("per principle (constitution shop"))
    assert any(line.startswith("arithmetic") and "20.0% regression" in line for line in lines[:header])
    assert lines[header + 1].split()[:3] == ["principle", "base", "aligned"]
    rows = {line.split()[0]: line for line in lines[header + 2:header + 4]}
    assert rows["private"].split()[1:6] == ["0.0", "100.0", "+100.0", "[+100.0,", "+100.0]"]
    assert "improved by 100.0 points (95% interval +100.0 to +100.0)" in rows["private"]
    assert rows["no-promises"].split()[1:4] == ["100.0", "75.0", "-25.0"]
    assert "regressed by 25.0 points" in rows["no-promises"] and rows["no-promises"].endswith("within noise)")
    assert lines[header + 4] == ("mean per-principle pass rate: 50.0 -> 87.5 (+37.5 points); "
                                 "largest fall: no-promises (-25.0 points)")
    written = json.loads(comparison.read_text())
    assert [row["principle"] for row in written["principles"]["rows"]] == ["private", "no-promises"]


def test_cai_tax_says_which_report_lacks_the_suite_and_stays_quiet_when_neither_has_it(tmp_path, capsys):
    plain = write(tmp_path, "plain", principles_report("plain", None))
    scored = write(tmp_path, "scored", principles_report("scored", BASE_OUTCOMES))
    assert main(["tax", scored, plain]) == 0
    out = capsys.readouterr().out
    assert ("per principle: the aligned report has no 'principles' suite; evaluate both with --suites principles "
            "--constitution NAME to compare them principle by principle") in out
    assert main(["tax", plain, plain]) == 0
    assert "principle" not in capsys.readouterr().out


def test_a_principle_examples_verdict_names_its_principle_and_reason():
    from cai_core.evaluation.reports import item_verdict

    items = principles_report("m", {"private": [False, True]})["suites"]["principles"]["items"]
    assert item_verdict(items[0]) == "failed · private: failed: refuses"
    assert item_verdict(items[1]) == "passed · private: passed"
    assert item_verdict({"passed": False, "status": "timeout"}) == "failed (timeout)"  # HumanEval's stays as it was
