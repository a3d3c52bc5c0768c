"""The instruction most prompts share, found at fit time and stripped before embedding."""

from __future__ import annotations

import pytest

from costopt_core.prompt_template import shared_prefix, strip_prefix

RAG = "Use the context below to answer the question. If it is not there, say so.\n\nContext: "


def test_a_template_on_most_prompts_is_found_and_what_follows_it_is_kept() -> None:
    docs = ["Our office opens at 9.", "Refunds take 5 days.", "Ships to the EU.", "No pets."]
    prompts = [RAG + f"{doc}\nQuestion: {q}" for doc in docs for q in ("when?", "how?")]
    prompts += ["hello", "what time is it?"]  # a minority without it
    prefix = shared_prefix(prompts)
    assert prefix == RAG
    assert strip_prefix(prompts[2], prefix) == "Refunds take 5 days.\nQuestion: when?"
    assert strip_prefix("hello", prefix) == "hello"


def test_the_subject_after_the_shared_words_is_kept() -> None:
    head = "The following are multiple choice questions (with answers) about "
    subjects = ["high school biology", "college physics", "world history", "law"]
    prompts = [f"{head}{s}.\n\nQuestion {i}: ..." for i, s in enumerate(subjects * 3)]
    assert shared_prefix(prompts) == head


def test_one_subject_on_half_the_prompts_does_not_join_the_template() -> None:
    # The longest head half the prompts share is the majority subject's whole header;
    # stripping it from those only would leave the others to embed the ~20-token template.
    head = "The following are multiple choice questions (with answers) about "
    prompts = [f"{head}high school mathematics.\n\nWhat is {i} times {i + 3}?" for i in range(60)]
    others = ["college physics", "world history", "law", "medicine"] * 10
    prompts += [f"{head}{s}.\n\nQuestion {i} on {s}: which holds?" for i, s in enumerate(others)]
    prefix = shared_prefix(prompts)
    assert prefix == head
    assert strip_prefix(prompts[-1], prefix).startswith("medicine.")


def test_one_task_family_opening_is_not_part_of_the_template() -> None:
    # Half the prompts open "Prove theorem number": as part of the prefix it would be
    # stripped from those only, and a reworded proof ("Prove theorem 3") would embed
    # like the other family.
    template = "Answer the following question carefully, showing all of your working.\n\n"
    prompts = [template + f"What is {i} plus {i * 7}?" for i in range(30)]
    prompts += [template + f"Prove theorem number {i} about primes." for i in range(30)]
    assert shared_prefix(prompts) == template
    assert shared_prefix(prompts[:20] + prompts[30:]) == template  # a 60 % family too


def test_a_word_nearly_all_templated_prompts_share_joins_the_template() -> None:
    template = "Answer the following question carefully.\n\n"
    openings = ["what", "why", "how", "when", "who", "where", "which"]
    prompts = [template + f"Question: {openings[i % 7]} is {i}?" for i in range(19)]
    prompts += [template + "Task: say hello.", "hello", "hi there"]
    assert shared_prefix(prompts) == template + "Question: "
    assert shared_prefix(prompts, min_kept=1.0) == template


def test_a_word_the_prompts_only_begin_alike_is_not_cut() -> None:
    # "Problem: Tom ha..." is shared by the letters of "has" / "had", not by a word.
    template = "Solve this grade school maths problem step by step.\nProblem: "
    prompts = [template + "Tom has 3 apples", template + "Tom had 4 pears"]
    assert shared_prefix(prompts) == template + "Tom "


def test_cjk_templates_end_at_punctuation() -> None:
    template = "请仔细阅读下面的问题并给出答案："
    prompts = [template + q for q in ("一加一等于几", "天空为什么是蓝色", "写一首诗")]
    assert shared_prefix(prompts) == template


def test_no_template_when_under_half_share_it_or_it_is_a_short_opening() -> None:
    template = "Answer the following question as briefly as you can: "
    prompts = [template + "why?", template + "how?"] + [f"free prompt {i}x" for i in range(5)]
    assert shared_prefix(prompts) == ""  # two of seven distinct prompts
    assert shared_prefix(["What is a cell?", "What is mass?", "What is a star?"]) == ""
    assert shared_prefix(["one prompt only"]) == "" == shared_prefix([])


def test_duplicates_count_once_and_nested_prompts_are_not_a_template() -> None:
    template = "Answer the following question as briefly as you can: "
    # One templated prompt repeated many times is one distinct prompt of four.
    prompts = [template + "why?"] * 10 + ["a b c d e f", "g h i j k l", "m n o p q r"]
    assert shared_prefix(prompts) == ""
    # Prompts that run on into one another share whole prompts, not an instruction.
    assert shared_prefix([("check this order " * n).strip() for n in range(1, 20)]) == ""


def test_a_prompt_that_is_only_the_template_is_kept_whole() -> None:
    assert strip_prefix("Context: ", "Context: ") == "Context: "
    assert strip_prefix("", "Context: ") == ""


def test_min_share_and_min_kept_are_checked() -> None:
    with pytest.raises(ValueError, match="min_share"):
        shared_prefix(["a", "b"], min_share=0)
    with pytest.raises(ValueError, match="min_kept"):
        shared_prefix(["a", "b"], min_kept=1.5)
