"""The Chain-of-Thought submixture: the release's nine CoT datasets and their input-inverted
forms, styles `cot` (zero-shot) and `fs_cot` (few-shot), capped at 100,000 examples per task.

Each dataset is one tab-separated file (question, answer, reasoning; a literal backslash-n
is a line break) from the release at a pinned commit, fetched by `flan-jax data prepare
flan2022_cot_submix` into `tasks.text_file_dir()/flan2022_cot_{dataset}/` and checked (line
count, sha256 where the release's blob was readable here). Templates are written here: every
target gives the reasoning before the answer. An inverted task (`{dataset}_inverted`) shows the
answer and its reasoning and asks for the question, at 0.3 of the original's rate.
"""

from __future__ import annotations

from tasks.flan2022.mixing import COLLECTION, Entry
from tasks.spec import DatasetSpec, Template, TextFileSource

RELEASE_COMMIT = "e9e4ec6e2701182c7a91af176f705310da541277"
URL = ("https://raw.githubusercontent.com/google-research/FLAN/"
       f"{RELEASE_COMMIT}/flan/v2/cot_data/{{name}}_train.tsv")
COLUMNS = ("question", "answer", "chain_of_thought")

# dataset -> (lines of its file, release example counts (zero-shot, few-shot), sha256 or "").
DATASETS = {
    "gsm8k": (7473, (7470, 7470),
              "acecbb7438cccae1b2eaa212a291c127ece02670d8bb39600164ab20f1d759a7"),
    "strategyqa": (2061, (2060, 2060),
                   "0e56b9f46b4d1569e45bf4c7f10d7854be81ae62303098fbd03d3e0bf912201f"),
    "creak": (6915, (6910, 6910),
              "ee6b9a3d88fbc1bdf7cd751c7f266edfc4c15e475560408ffb79490b2fe7bdea"),
    "qasc": (1084, (1080, 1080),
             "566ba8c3945b5fe8e3125ca4919c15f36e1067b881c251e75d071ad38c861b9a"),
    "esnli": (36174, (36170, 36170), ""),
    "ecqa": (7112, (7110, 7110),
             "cf6967d587851f25a834cdd16c73f17a4da08bae5b8821922a64b3107160e01c"),
    "sensemaking": (6070, (6070, 6070),
                    "c978b40455ed62b1755956f25327c7cec6f9d4954f7185e6fb14b03db74c65af"),
    "aqua": (2728, (2715, 2720),
             "2e43bd7900e739a78d7b7b7444e19bae4259399327eb76b78a30f4e4fb7dfdda"),
    "qed": (5154, (5145, 5140), ""),
}

COT_TEMPLATES = (
    Template("{question}\nLet's think it through step by step.",
             "{chain_of_thought}\nSo the answer is {answer}."),
    Template("Answer the question below, explaining your reasoning first.\n\n{question}",
             "Reasoning: {chain_of_thought}\nAnswer: {answer}"),
    Template("{question} Think carefully before you answer.",
             "{chain_of_thought} Therefore, the final answer is {answer}."),
    Template("Question: {question}\nWork it out, then give the answer.",
             "{chain_of_thought}\nThe answer: {answer}."),
    Template("Solve this and show how you got there: {question}",
             "{chain_of_thought} That gives {answer}."),
    Template("{question}\nGive a short explanation, then your answer.",
             "Explanation: {chain_of_thought}\nAnswer: {answer}"),
)
INVERTED_TEMPLATES = (
    Template("The answer is {answer}, and the reasoning behind it is: {chain_of_thought}\n"
             "What question was asked?", "{question}", turned_around=True),
    Template("Write a question whose answer is \"{answer}\", reached by this line of "
             "thought:\n{chain_of_thought}", "{question}", turned_around=True),
    Template("Reasoning: {chain_of_thought}\nAnswer: {answer}\n\nWhat was the question?",
             "{question}", turned_around=True),
    Template("Someone reasoned \"{chain_of_thought}\" and concluded {answer}. Reconstruct the "
             "question they were answering.", "{question}", turned_around=True),
)


def source(name: str) -> TextFileSource:
    lines, _, digest = DATASETS[name]
    return TextFileSource(
        name=f"{COLLECTION}_cot_{name}", urls={"train": URL.format(name=name)},
        columns=COLUMNS, num_examples={"train": lines},
        sha256={"train": digest} if digest else {})


def _spec(name: str, inverted: bool) -> DatasetSpec:
    return DatasetSpec(
        name=f"{name}_inverted" if inverted else name, collection=COLLECTION, cluster="cot",
        source=source(name), templates=INVERTED_TEMPLATES if inverted else COT_TEMPLATES,
        eval_split="train", display_name=name)


ENTRIES: list[Entry] = [Entry(_spec(name, inverted), counts, inverted)
                        for inverted in (False, True)
                        for name, (_, counts, _) in DATASETS.items()]
