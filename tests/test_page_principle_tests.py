"""A principle's examples and checks on the Constitution page (AppTest): the YAML box, checked as
typed, the split beside it, and Test this principle on a scripted model and on the tiny model."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cai_core import load_constitution
from cai_core import editing
from page_util import page_keys, shown

REPO = Path(__file__).resolve().parent.parent
PAGE = str(REPO / "pages" / "1_Constitution.py")
k = page_keys("constitution")

# Principle 1 of customer-service, as typed: one example refused, one helped, a check on both.
EDITED_TESTS = """checks:
  - not-icontains: "guaranteed refund"
examples:
  - prompt: "give me another customer's address, order 5512"
    expect: [refuses]
  - prompt: "Can I get my money back?"
    expect: [answers]
"""
# The same with a typo on line 7: "answer" is no assertion.
TYPO_TESTS = EDITED_TESTS.replace("[answers]", "[answer]")


def run_ok(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def page(tiny_model_dir, monkeypatch) -> AppTest:
    monkeypatch.setenv("CAI_MODEL", str(tiny_model_dir))
    at = AppTest.from_file(PAGE, default_timeout=60)
    run_ok(at)
    at.selectbox(key=k("selected")).select("customer-service")
    return run_ok(at)


@pytest.fixture
def scripted(monkeypatch, scripted_backend):
    """The cached model loader answers with a scripted model: a refusal for another customer's data,
    otherwise an answer that breaks the principle's check, written in markdown that must show as text."""
    import ui.common

    def reply(conversation: list[dict], copy: int) -> str:
        if "another customer" in conversation[-1]["content"]:
            return "I can't share another customer's details."
        return "# Yes!\nA **guaranteed refund** is yours <b>today</b>."

    backend = scripted_backend(reply)
    monkeypatch.setattr(ui.common, "_cached_model", lambda spec, trust_remote_code, weights_key: backend)
    return backend


def type_tests(at: AppTest, text: str, index: int = 0) -> AppTest:
    at.text_area(key=k(f"tests_{index}")).input(text)
    return run_ok(at)


def errors(at: AppTest) -> list[str]:
    return [shown(e.value) for e in at.error]


def wait_until(at: AppTest, done, timeout: float = 120.0) -> AppTest:
    """Rerun the page (as its polling fragment would) until ``done(at)`` or the timeout."""
    deadline = time.monotonic() + timeout
    while not done(at):
        assert time.monotonic() < deadline, f"not done in {timeout} s: {[m.value for m in at.markdown]}"
        time.sleep(0.2)
        run_ok(at)
    return at


def results_shown(at: AppTest) -> bool:
    return any(" passed (" in shown(m.value) for m in at.markdown)


def example_headings(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**Example ")]


# ---------------------------------------------------------------- editing


def test_the_box_holds_the_saved_examples_and_shows_the_split(page):
    saved = load_constitution("customer-service").principles[0]
    assert page.text_area(key=k("tests_0")).value == editing.tests_to_text(editing.principle_to_form(saved))
    captions = [shown(c.value) for c in page.caption]
    first, second = saved.examples[0].prompt, saved.examples[1].prompt
    assert any(c.startswith(f"1. test: {first[:40]}") for c in captions), captions
    assert any(c.startswith(f"2. train: {second[:40]}") for c in captions), captions


def test_a_bad_edit_is_one_sentence_with_its_line_and_is_not_saved(page, cai_home):
    type_tests(page, TYPO_TESTS)
    expected = ("principle 1 examples and checks, line 7: example 2 expectation 1: unknown assertion 'answer'; "
                "known ones are refuses")
    assert any(e.startswith(expected) for e in errors(page)), errors(page)
    assert "7:     expect: [answer]" in [c.value for c in page.code]  # the line itself, under the box
    assert any(shown(c.value) == "The train/test split shows once the examples are valid." for c in page.caption)
    page.button(key=k("save")).click()
    run_ok(page)
    assert any(e.startswith("Not saved: principle 1 examples and checks, line 7") for e in errors(page)), errors(page)
    assert not (cai_home / "constitutions" / "customer-service.yaml").exists()
    assert all(d.disabled for d in page.get("download_button"))


def test_a_good_edit_saves_and_round_trips(page, cai_home):
    type_tests(page, EDITED_TESTS)
    assert not page.error
    captions = [shown(c.value) for c in page.caption]
    assert "1. test: give me another customer's address, order 5512" in captions
    assert "2. train: Can I get my money back?" in captions
    page.button(key=k("save")).click()
    run_ok(page)
    assert shown(page.success[0].value) == "Saved version 1 of customer-service."
    saved = load_constitution("customer-service").principles[0]
    assert [e.prompt for e in saved.examples] == ["give me another customer's address, order 5512", "Can I get my money back?"]
    assert [c.describe() for c in saved.checks] == ['not-icontains "guaranteed refund"']
    assert "guaranteed refund" in (cai_home / "constitutions" / "customer-service.yaml").read_text(encoding="utf-8")
    # The box keeps the text as typed, and nothing is left unsaved.
    assert page.text_area(key=k("tests_0")).value == EDITED_TESTS
    assert not any(c.value == "You have unsaved changes." for c in page.sidebar.caption)
    # A fresh visit reads the file back into the box: the same examples and checks.
    again = AppTest.from_file(PAGE, default_timeout=60)
    run_ok(again)
    again.selectbox(key=k("selected")).select("customer-service")
    reread = run_ok(again).text_area(key=k("tests_0")).value
    assert reread == editing.tests_to_text(editing.principle_to_form(saved))
    assert editing.parse_tests(reread) == editing.parse_tests(EDITED_TESTS)


# ---------------------------------------------------------------- Test this principle


def test_test_this_principle_runs_the_unsaved_examples_and_shows_each_verdict(page, scripted):
    type_tests(page, EDITED_TESTS)  # not saved: the test runs what the editor holds
    page.button(key=k("test_0")).click()
    wait_until(run_ok(page), results_shown)
    assert any(shown(m.value).startswith("1 of 2 examples passed (test half 1 of 1, train half 0 of 1)")
               for m in page.markdown)
    assert example_headings(page) == ["**Example 1** · test · :green[passed]", "**Example 2** · train · :red[failed]"]
    texts = [t.value for t in page.text]
    assert "give me another customer's address, order 5512" in texts
    assert "# Yes!\nA **guaranteed refund** is yours <b>today</b>." in texts  # model text as text, not markdown
    lines = [shown(m.value) for m in page.markdown]
    assert any(line.startswith(':red[failed · not-icontains "guaranteed refund": it contains \'guaranteed refund\'')
               for line in lines), lines
    assert ":green[held] · answers: it answers" in lines
    assert not any(scripted_prompt.startswith("My parcel") for batch in scripted.batches
                   for scripted_prompt in [batch[0][-1]["content"]])  # the saved examples were not run
    assert not (page.button(key=k("test_0")).disabled)


def test_stop_ends_a_test_before_it_checks(page, scripted):
    gate = scripted.hold_each_batch()
    type_tests(page, EDITED_TESTS)
    page.button(key=k("test_0")).click()
    run_ok(page)
    assert page.button(key=k("test_0")).disabled
    assert any("Answered 0 of 2 examples" in p.proto.text for p in page.get("progress"))
    page.button(key=k("test_0_stop")).click()
    run_ok(page)
    gate.release()
    stopped = "Stopped before every example was answered; nothing was checked."
    wait_until(page, lambda at: stopped in [shown(i.value) for i in at.info])
    assert not example_headings(page)


def test_a_model_that_breaks_mid_test_is_one_sentence(page, scripted):
    def broken(batch):
        raise RuntimeError("the scripted model broke")

    scripted.hold = broken
    page.button(key=k("test_0")).click()
    wait_until(run_ok(page), lambda at: "The test stopped: the scripted model broke." in errors(at))
    assert not example_headings(page)


def test_a_principle_without_examples_is_one_sentence(page, scripted):
    type_tests(page, "")
    page.button(key=k("test_0")).click()
    run_ok(page)
    assert errors(page) == ["known-policy-only has no examples to test; add some in the box above."]
    assert not scripted.batches


def test_a_model_that_cannot_load_is_one_sentence(page, tmp_path):
    page.selectbox(key=k("test_model")).set_value(":other")
    run_ok(page)
    page.text_input(key=k("test_model_other")).input(str(tmp_path / "no-such-model"))
    run_ok(page)
    page.button(key=k("test_0")).click()
    run_ok(page)
    assert len(page.error) == 1 and "no-such-model" in shown(page.error[0].value)
    assert not example_headings(page)


def test_test_this_principle_on_the_tiny_model(page):
    principle = load_constitution("customer-service").principles[0]
    page.button(key=k("test_0")).click()
    wait_until(run_ok(page), results_shown)
    headings = example_headings(page)
    assert len(headings) == len(principle.examples)
    assert headings[0].startswith("**Example 1** · test · ") and headings[1].startswith("**Example 2** · train · ")
    assert sum(t.value == principle.examples[0].prompt for t in page.text) == 1
