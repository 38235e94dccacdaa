"""MMLU (hendrycks et al.) as a held-out benchmark: 57 subjects, 5-shot, rank classification.

Each test question is preceded by the subject's 5 dev questions with their answers (the dev
split only: never a test or validation question), and the model ranks the letters A-D after
"Answer:". Subjects are reported in the 4 category groups of the benchmark's own breakdown
(STEM, humanities, social sciences, other); a category's score is the mean of its subjects.
The header line is ours (see DEVIATIONS.md): scores are comparable in method, not to the digit.
"""

from __future__ import annotations

from typing import Sequence

from tasks.flan2022 import readers

SHOTS = 5
OPTIONS = readers.LETTERS

# Subject -> category group.
_GROUPS = {
    "stem": "abstract_algebra astronomy college_biology college_chemistry "
            "college_computer_science college_mathematics college_physics computer_security "
            "conceptual_physics electrical_engineering elementary_mathematics "
            "high_school_biology high_school_chemistry high_school_computer_science "
            "high_school_mathematics high_school_physics high_school_statistics "
            "machine_learning",
    "humanities": "formal_logic high_school_european_history high_school_us_history "
                  "high_school_world_history international_law jurisprudence "
                  "logical_fallacies moral_disputes moral_scenarios philosophy prehistory "
                  "professional_law world_religions",
    "social_sciences": "econometrics high_school_geography "
                       "high_school_government_and_politics high_school_macroeconomics "
                       "high_school_microeconomics high_school_psychology human_sexuality "
                       "professional_psychology public_relations security_studies sociology "
                       "us_foreign_policy",
    "other": "anatomy business_ethics clinical_knowledge college_medicine global_facts "
             "human_aging management marketing medical_genetics miscellaneous nutrition "
             "professional_accounting professional_medicine virology",
}
CATEGORY = {s: g for g, subjects in _GROUPS.items() for s in subjects.split()}
SUBJECTS = tuple(sorted(CATEGORY))
SPLITS = {"test": "test", "validation": "val"}  # our split -> the archive's folder


def question_block(row: readers.MMLURow, with_answer: bool) -> str:
    lines = [row.question.strip()]
    lines += [f"{letter}. {choice.strip()}" for letter, choice in zip(OPTIONS, row.choices)]
    lines.append("Answer:" + (f" {row.answer}" if with_answer else ""))
    return "\n".join(lines)


def header(subject: str) -> str:
    return (f"Below are multiple choice questions on {subject.replace('_', ' ')}, each "
            "followed by the letter of its correct option.")


def prompt(subject: str, dev: Sequence[readers.MMLURow], row: readers.MMLURow,
           shots: int = SHOTS) -> str:
    """The 5-shot input: header, `shots` answered dev questions, then the question."""
    if len(dev) < shots:
        raise ValueError(f"MMLU {subject}: the dev split has {len(dev)} questions, "
                         f"{shots} are needed.")
    blocks = [header(subject)] + [question_block(d, True) for d in dev[:shots]]
    return "\n\n".join(blocks + [question_block(row, False)])


def examples(root: str, subject: str, split: str) -> list[dict]:
    """{"inputs", "targets" (the letter), "options" (A-D)} of one subject's eval split."""
    if split not in SPLITS:
        raise ValueError(f"MMLU has splits {', '.join(SPLITS)}, not `{split}`.")
    dev = readers.mmlu_rows(readers.mmlu_path(root, subject, "dev"))
    rows = readers.mmlu_rows(readers.mmlu_path(root, subject, SPLITS[split]))
    return [{"inputs": prompt(subject, dev, r), "targets": r.answer, "options": list(OPTIONS)}
            for r in rows]
