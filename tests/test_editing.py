"""Form <-> constitution conversion used by the Constitution page."""

from cai_core import load_constitution
from cai_core.editing import constitution_to_form, form_to_constitution, placeholder_principle, unused_principle_name


def test_round_trip_through_the_form():
    original = load_constitution("medical-qa")
    form = constitution_to_form(original)
    assert isinstance(form["principles"][0]["tags"], str)
    rebuilt, problem = form_to_constitution("medical-qa", form)
    assert problem is None and rebuilt == original


def test_form_errors_are_one_readable_sentence():
    form = constitution_to_form(load_constitution("medical-qa"))
    form["principles"][1]["critique_request"] = "   "
    rebuilt, problem = form_to_constitution("medical-qa", form)
    assert rebuilt is None and problem == "principle 2 critique request: must not be empty"


def test_placeholder_names_do_not_collide():
    assert unused_principle_name(set()) == "new-principle"
    assert unused_principle_name({"New-Principle", "new-principle-2"}) == "new-principle-3"
    assert placeholder_principle({"new-principle"}).name == "new-principle-2"


def test_typed_examples_are_saved_and_a_mistake_names_its_principle_and_line():
    from cai_core.editing import TESTS_TEXT, form_to_principle

    form = constitution_to_form(load_constitution("medical-qa"))
    form["principles"][1][TESTS_TEXT] = "examples:\n  - prompt: Is it safe?\n    expect: [answers]\n"
    rebuilt, problem = form_to_constitution("medical-qa", form)
    assert problem is None and [e.prompt for e in rebuilt.principles[1].examples] == ["Is it safe?"]
    form["principles"][1][TESTS_TEXT] = "examples:\n  - prompt: Is it safe?\n    expect: [answer]\n"
    rebuilt, problem = form_to_constitution("medical-qa", form)
    assert rebuilt is None and problem.startswith("principle 2 examples and checks, line 3: example 1 expectation 1: "
                                                  "unknown assertion 'answer'")
    # One principle is tested as it stands while another is still being fixed.
    principle, problem = form_to_principle(form["principles"][0], 1)
    assert problem is None and principle.name == load_constitution("medical-qa").principles[0].name
    form["principles"][0]["critique_request"] = " "
    assert form_to_principle(form["principles"][0], 1) == (None, "principle 1 critique request: must not be empty")
