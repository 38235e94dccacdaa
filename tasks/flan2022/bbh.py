"""BIG-Bench Hard as a held-out benchmark: 27 tasks, 3-shot, direct answer and chain of thought.

Both variants use the 3 exemplars of the task's `cot-prompts/TASK.txt`: the direct one shows
only their answers ("A: (B)"), the CoT one their full reasoning, which ends "So the answer is
X." The model's output is reduced to its answer (`extract_answer`) and scored by exact match.
Tasks are reported in the benchmark's two groups, NLP and algorithmic.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from tasks.flan2022 import readers

ALGORITHMIC = (
    "boolean_expressions", "dyck_languages", "geometric_shapes",
    "logical_deduction_five_objects", "logical_deduction_seven_objects",
    "logical_deduction_three_objects", "multistep_arithmetic_two", "navigate",
    "object_counting", "temporal_sequences", "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects",
    "web_of_lies", "word_sorting",
)
NLP = (
    "causal_judgement", "date_understanding", "disambiguation_qa", "formal_fallacies",
    "hyperbaton", "movie_recommendation", "penguins_in_a_table",
    "reasoning_about_colored_objects", "ruin_names", "salient_translation_error_detection",
    "snarks", "sports_understanding",
)
TASKS = tuple(sorted(ALGORITHMIC + NLP))
GROUP = {**{t: "algorithmic" for t in ALGORITHMIC}, **{t: "nlp" for t in NLP}}
VARIANTS = ("direct", "cot")

ANSWER_PHRASE = "the answer is"


def prompt(cot: readers.BBHPrompt, question: str, variant: str) -> str:
    """Description, the 3 exemplars (direct: answers only; cot: reasoning), the question."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown BBH variant `{variant}` ({', '.join(VARIANTS)}).")
    shots = [f"Q: {e.question}\nA: {e.answer if variant == 'direct' else e.reasoning}"
             for e in cot.exemplars]
    parts = ([cot.description] if cot.description else []) + shots + [f"Q: {question}\nA:"]
    return "\n\n".join(parts)


def normalize(answer: str) -> str:
    """Whitespace collapsed, a closing period and surrounding quotes dropped."""
    answer = " ".join(answer.split())
    return answer.rstrip(".").strip().strip("\"'").strip()


def extract_answer(output: str, variant: str = "cot") -> str:
    """The answer in a model's output. CoT: the text after the last "the answer is" (up to the
    sentence's end); without one, the last non-empty line. Direct: the first non-empty line."""
    text = output.strip()
    if variant == "cot":
        at = text.lower().rfind(ANSWER_PHRASE)
        if at >= 0:  # up to the end of that line and sentence (a period before a space)
            rest = text[at + len(ANSWER_PHRASE):].split("\n")[0]
            return normalize(re.split(r"\.(?:\s|$)", rest)[0].lstrip(" :"))
        lines = [line for line in text.splitlines() if line.strip()]
        return normalize(lines[-1]) if lines else ""
    lines = [line for line in text.splitlines() if line.strip()]
    return normalize(lines[0]) if lines else ""


def postprocessor(variant: str):
    def postprocess(output, example=None, is_target: bool = False) -> str:
        del example
        text = output.decode("utf-8") if isinstance(output, bytes) else str(output)
        return normalize(text) if is_target else extract_answer(text, variant)

    postprocess.__name__ = f"bbh_{variant}_answer"
    return postprocess


def exact_match(targets: Sequence[str], predictions: Sequence[str]) -> Mapping[str, float]:
    """100 x the share of predictions equal to their target (after the postprocessor)."""
    if len(targets) != len(predictions):
        raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions.")
    hits = sum(t == p for t, p in zip(targets, predictions))
    return {"exact_match": 100.0 * hits / max(len(targets), 1)}


def examples(root: str, task: str, variant: str) -> list[dict]:
    """{"inputs", "targets"} of one task (BBH has a single split)."""
    import os

    cot = readers.bbh_cot_prompt(os.path.join(root, "cot-prompts", f"{task}.txt"))
    rows = readers.bbh_examples(os.path.join(root, "bbh", f"{task}.json"))
    return [{"inputs": prompt(cot, r["input"], variant), "targets": r["target"]} for r in rows]
