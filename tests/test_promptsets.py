"""Prompt files: the formats, line numbers for bad rows, blank lines and duplicates counted."""

from __future__ import annotations

import pytest

from cai_core.data.promptsets import (
    PromptFileError, list_prompt_sets, load_prompt_sources, parse_prompt_bytes, prompt_id, save_prompt_set,
    user_prompt_sets_dir,
)


def test_txt_skips_blank_lines_and_removes_duplicates():
    loaded = parse_prompt_bytes(b"first prompt\n\n  \nsecond prompt\nFirst   prompt\n", "mine.txt")
    assert [i.prompt for i in loaded.items] == ["first prompt", "second prompt"]
    assert loaded.blank_lines == 2 and loaded.duplicates_removed == 1
    assert loaded.items[0].id == prompt_id("first prompt") == prompt_id("FIRST prompt")
    assert loaded.items[0].category == "uncategorised"


def test_jsonl_keeps_ids_and_categories():
    data = b'{"id": "a1", "prompt": "hello", "category": "greeting"}\n{"prompt": "bye"}\n'
    loaded = parse_prompt_bytes(data, "set.jsonl")
    assert [(i.id, i.category) for i in loaded.items] == [("a1", "greeting"), (prompt_id("bye"), "uncategorised")]


@pytest.mark.parametrize("name, data, line, words", [
    ("bad.jsonl", b'{"prompt": "ok"}\n{"prompt": "no closing quote}\n', 2, "not valid JSON"),
    ("bad.jsonl", b'{"prompt": "ok"}\n\n["a list"]\n', 3, "JSON object"),
    ("bad.jsonl", b'{"prompt": "ok"}\n{"text": "wrong key"}\n', 2, "'prompt' field is missing"),
    ("bad.jsonl", b'{"prompt": 3}\n', 1, "must be text"),
    ("bad.jsonl", b'{"prompt": "   "}\n', 1, "empty"),
    ("bad.jsonl", b'{"id": "x", "prompt": "a"}\n{"id": "x", "prompt": "b"}\n', 2, "already used on line 1"),
    ("bad.jsonl", b'{"prompt": "a", "category": {"nested": 1}}\n', 1, "'category' field must be text"),
    ("bad.csv", b"text,category\nhello,x\n", 1, "no 'prompt' column"),
    ("bad.csv", b"prompt,category\nhello, world,x\n", 2, "quote text that holds commas"),
    ("bad.csv", b"prompt,category\nfine,a\n,b\n", 3, "empty"),
])
def test_malformed_rows_name_their_file_and_line(name, data, line, words):
    with pytest.raises(PromptFileError) as caught:
        parse_prompt_bytes(data, name)
    assert caught.value.line == line and words in str(caught.value)
    assert str(caught.value).startswith(f"{name}, line {line}: ")


def test_every_bad_row_is_counted_in_the_one_sentence():
    with pytest.raises(PromptFileError, match=r"line 2: .*\(2 more rows have problems\)"):
        parse_prompt_bytes(b'{"prompt": "ok"}\n{"x": 1}\n{"x": 2}\n{"x": 3}\n', "bad.jsonl")


def test_csv_with_category_and_quoted_commas():
    data = b'prompt,category\n"hello, world",greeting\nplain,\n\n'
    loaded = parse_prompt_bytes(data, "set.csv")
    assert [(i.prompt, i.category) for i in loaded.items] == [("hello, world", "greeting"), ("plain", "uncategorised")]


@pytest.mark.parametrize("data, name, words", [
    (b"a\x00b\n", "x.txt", "NUL"),
    (b"fine\n\xff\xfe\n", "x.txt", "not UTF-8"),
    (b"prompt\n", "x.pdf", "extension"),
    (b"\n\n", "x.txt", "holds no prompts"),
])
def test_unusable_files_get_one_sentence(data, name, words):
    with pytest.raises(PromptFileError, match=words):
        parse_prompt_bytes(data, name)


def test_a_bad_upload_writes_nothing_and_a_good_one_is_listed():
    with pytest.raises(PromptFileError):
        save_prompt_set("mine.jsonl", b'{"prompt": "ok"}\nnot json\n')
    assert not user_prompt_sets_dir().exists() or not any(user_prompt_sets_dir().iterdir())
    saved, loaded = save_prompt_set("../My Prompts!.txt", b"one\ntwo\n")
    assert saved == "My-Prompts.txt" and len(loaded.items) == 2
    assert (user_prompt_sets_dir() / saved).read_bytes() == b"one\ntwo\n"
    assert saved in list_prompt_sets()
    assert [i.prompt for i in load_prompt_sources([saved]).items] == ["one", "two"]


def test_shipped_sets_combine_with_a_limit():
    assert {"red_team", "benign"} <= set(list_prompt_sets())
    both = load_prompt_sources(["red_team", "benign"])
    assert len(both.items) >= 160 and "borderline-benign" in both.categories()
    assert len({i.id for i in both.items}) == len(both.items)
    assert len(load_prompt_sources(["red_team", "benign"], limit=5).items) == 5


def test_unknown_source_lists_what_exists():
    with pytest.raises(PromptFileError, match="red_team"):
        load_prompt_sources(["no-such-set"])


def test_uploads_never_shadow_a_shipped_set_or_overwrite_an_earlier_upload():
    assert save_prompt_set("red_team.jsonl", b'{"prompt": "mine"}\n')[0] == "red_team-2.jsonl"
    assert save_prompt_set("mine.txt", b"one\n")[0] == "mine.txt"
    assert save_prompt_set("mine.txt", b"one\n")[0] == "mine.txt"  # the same content keeps its name
    assert save_prompt_set("mine.txt", b"two\n")[0] == "mine-2.txt"
    listed = list_prompt_sets()
    assert {"red_team", "red_team-2.jsonl", "mine.txt", "mine-2.txt"} <= set(listed)
    assert [i.prompt for i in load_prompt_sources(["red_team-2.jsonl"]).items] == ["mine"]


def test_a_seeded_shuffle_mixes_the_sets_before_the_limit():
    in_order = load_prompt_sources(["red_team", "benign"], limit=20)
    assert set(in_order.categories()) <= {"violence", "weapons"}  # file order: the first set's first categories
    mixed = load_prompt_sources(["red_team", "benign"], limit=20, shuffle_seed=0)
    assert len(mixed.categories()) >= 5 and {"benign", "borderline-benign"} & set(mixed.categories())
    assert [i.id for i in mixed.items] == [i.id for i in load_prompt_sources(["red_team", "benign"], limit=20, shuffle_seed=0).items]
    assert [i.id for i in mixed.items] != [i.id for i in load_prompt_sources(["red_team", "benign"], limit=20, shuffle_seed=1).items]
