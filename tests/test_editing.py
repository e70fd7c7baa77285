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
