"""FLAN 2021 miscellaneous cluster: CoQA, QuAC, WiC, TREC, CoLA, Math, Fix Punctuation, and
the release's extra text-formatting tasks True Case and Word Segment.

CoQA: a TFDS record is a whole conversation (a story with parallel lists of questions and
answers), and a fields function maps one record to one example, so the conversation stays
whole: the questions are numbered in the input and the answers numbered in the target, the
format FLAN itself used for CoQA. QuAC's TFDS records are already one question each.
"""

from __future__ import annotations

import tensorflow as tf
from t5.evaluation import metrics

from tasks.flan2021 import common
from tasks.flan2021.common import COLLECTION, t, turned
from tasks.spec import DatasetSpec, TfdsSource

CLUSTER = "misc"
YES_NO = ["no", "yes"]


# ---- CoQA -------------------------------------------------------------------------------


def coqa_fields(ex):
    return {
        "story": ex["story"],
        "questions": common.numbered(ex["questions"]),
        "answers": common.numbered(ex["answers"]["input_text"]),
    }


COQA_TEMPLATES = [
    t("{story}\n\nAnswer these questions in order:\n{questions}\n\nNumbered answers:",
      "{answers}"),
    t("Read the text, then answer the questions below. Later questions may build on earlier "
      "ones.\n\n{story}\n\n{questions}", "{answers}"),
    t("Story:\n{story}\n\nQuestions:\n{questions}", "{answers}"),
    t("{questions}\n\nAnswer each of the questions above using this passage:\n{story}",
      "{answers}"),
    t("Here is a passage followed by a conversation's worth of questions. Give short "
      "answers, one per line, numbered.\n\n{story}\n\n{questions}", "{answers}"),
    t("{story}\n\nBased on the story, respond to:\n{questions}", "{answers}"),
    t("Passage: {story}\n\nA reader asked, one after another:\n{questions}\n\nWhat are the "
      "answers?", "{answers}"),
    t("Use the following text to answer a series of questions.\n{story}\n\n{questions}\n\n"
      "Answers:", "{answers}"),
    t("{story}\n\n{questions}", "{answers}"),
    turned("{story}\n\nHere are numbered answers from a conversation about this text:\n"
       "{answers}\n\nWrite the numbered questions that were asked.", "{questions}"),
]


# ---- QuAC -------------------------------------------------------------------------------


def quac_fields(ex):
    # QuAC appends the token CANNOTANSWER to every context; it answers unanswerable questions.
    context = tf.strings.regex_replace(ex["context"], r"\s*CANNOTANSWER\s*$", "")
    answer = ex["orig_answer"]["text"]
    answer = tf.where(tf.equal(answer, "CANNOTANSWER"), tf.constant("unanswerable"), answer)
    return {
        "title": ex["title"],
        "section": ex["section_title"],
        "background": ex["background"],
        "context": context,
        "question": ex["question"],
        "answer": answer,
    }


QUAC_TEMPLATES = [
    t("{title} ({section})\n\n{context}\n\nQ: {question}\nA:", "{answer}"),
    t("Background: {background}\n\nSection \"{section}\" of the article on {title}:\n"
      "{context}\n\nAnswer with a span from the section, or say unanswerable. {question}",
      "{answer}"),
    t("{context}\n\n{question}", "{answer}"),
    t("Read about {title}.\n{background}\n\n{context}\n\nQuestion: {question}", "{answer}"),
    t("{question}\n\nFind the answer in this excerpt (if there is one):\n{context}",
      "{answer}"),
    t("Here is part of a Wikipedia article about {title}, section {section}.\n{context}\n\n"
      "A student asks: {question}", "{answer}"),
    t("Context: {background}\n{context}\n\nWhat is the answer to \"{question}\"?", "{answer}"),
    t("Answer the question by quoting the passage.\n\nPassage: {context}\nQuestion: "
      "{question}", "{answer}"),
    turned("{title}: {section}\n{context}\n\nWhat question about {title} would be answered by "
       "\"{answer}\"?", "{question}"),
    turned("{context}\n\nAsk something about this passage whose answer is: {answer}",
       "{question}"),
]


# ---- WiC --------------------------------------------------------------------------------


def wic_fields(ex):
    return {
        "word": ex["word"],
        "sentence1": ex["sentence1"],
        "sentence2": ex["sentence2"],
        "answer": common.yes_no(ex["label"]),
    }


WIC_TEMPLATES = [
    t("Sentence 1: {sentence1}\nSentence 2: {sentence2}\n\nDoes \"{word}\" mean the same "
      "thing in both sentences?", "{answer}"),
    t("Is the word \"{word}\" used with the same sense in \"{sentence1}\" and "
      "\"{sentence2}\"?", "{answer}"),
    t("{sentence1}\n{sentence2}\n\nSame meaning of \"{word}\" in these two sentences?",
      "{answer}"),
    t("Here is a word and two sentences that use it.\nWord: {word}\nA: {sentence1}\n"
      "B: {sentence2}\nIs the meaning identical?", "{answer}"),
    t("Decide whether \"{word}\" has one meaning across these sentences.\n\n{sentence1}\n\n"
      "{sentence2}", "{answer}"),
    t("First: {sentence1}\nSecond: {sentence2}\nCould a dictionary give the same definition "
      "for \"{word}\" in both?", "{answer}"),
    t("\"{sentence1}\" / \"{sentence2}\"\nIn both, is \"{word}\" meant in the same way?",
      "{answer}"),
    t("Word sense question. The word is \"{word}\".\n1) {sentence1}\n2) {sentence2}\n"
      "Do the two uses share a sense?", "{answer}"),
    t("{sentence1}\n\nNow compare with: {sentence2}\n\nDoes \"{word}\" keep its meaning?",
      "{answer}"),
    t("Does the word \"{word}\" carry the same meaning in the two sentences below?\n"
      "{sentence1}\n{sentence2}", "{answer}"),
]


# ---- TREC -------------------------------------------------------------------------------

# In the order of TFDS's label-coarse ClassLabel: DESC, ENTY, ABBR, HUM, NUM, LOC.
TREC_OPTIONS = ["description", "entity", "abbreviation", "human", "number", "location"]


def trec_fields(ex):
    return {"question": ex["text"], "answer": common.label_text(ex["label-coarse"], TREC_OPTIONS)}


TREC_TEMPLATES = [
    t("What kind of answer does this question expect?\n\n{question}", "{answer}"),
    t("Question: {question}\nWhat type of thing is being asked about?", "{answer}"),
    t("{question}\n\nClassify the question by the category of its answer.", "{answer}"),
    t("Would the answer to \"{question}\" be a description, an entity, an abbreviation, a "
      "person, a number or a location?", "{answer}"),
    t("Categorize this question: {question}", "{answer}"),
    t("I want to know what sort of information this asks for: {question}", "{answer}"),
    t("{question}\nWhich answer type fits this question?", "{answer}"),
    t("Is this question asking about a person, place, number, thing, abbreviation or "
      "description?\n{question}", "{answer}"),
    turned("Write a question whose answer is a {answer}.", "{question}"),
    turned("Give me an example of a question asking for a {answer}.", "{question}"),
]


# ---- CoLA -------------------------------------------------------------------------------

COLA_OPTIONS = ["unacceptable", "acceptable"]


def cola_fields(ex):
    return {"sentence": ex["sentence"], "answer": common.label_text(ex["label"], COLA_OPTIONS)}


COLA_TEMPLATES = [
    t("Is this sentence grammatically acceptable?\n\n{sentence}", "{answer}"),
    t("\"{sentence}\"\n\nWould a linguist accept this as a well-formed English sentence?",
      "{answer}"),
    t("Sentence: {sentence}\nRate its grammaticality.", "{answer}"),
    t("{sentence}\n\nIs the grammar here acceptable or not?", "{answer}"),
    t("Judge the following sentence for grammatical correctness: {sentence}", "{answer}"),
    t("Check this sentence's syntax: {sentence}", "{answer}"),
    t("Here's a sentence: \"{sentence}\". Does it follow English grammar?", "{answer}"),
    t("Would a native speaker find this sentence acceptable? {sentence}", "{answer}"),
    t("{sentence}\nAcceptability judgment:", "{answer}"),
    t("Tell me whether this is a grammatical sentence.\n{sentence}", "{answer}"),
]


# ---- Math (DeepMind mathematics, linear equations in one variable) ----------------------


def math_fields(ex):
    return {"question": tf.strings.strip(ex["question"]), "answer": tf.strings.strip(ex["answer"])}


MATH_TEMPLATES = [
    t("{question}", "{answer}"),
    t("Solve this equation.\n{question}", "{answer}"),
    t("Math problem: {question}\nAnswer:", "{answer}"),
    t("What is the solution? {question}", "{answer}"),
    t("{question}\nGive just the value of the variable.", "{answer}"),
    t("Work out the answer: {question}", "{answer}"),
    t("Here is an algebra question. {question}", "{answer}"),
    t("Q: {question}\nA:", "{answer}"),
    t("Find the unknown.\n\n{question}", "{answer}"),
    turned("Write a one-variable linear equation problem whose answer is {answer}.", "{question}"),
]


# ---- Fix Punctuation (built from ParaCrawl EN-DA's English side) ------------------------


def fix_punct_fields(ex):
    # As the release: punctuation removed, case kept (the task restores punctuation only).
    return {"no_punct": tf.strings.regex_replace(ex["en"], r"[^\w\s]", ""),
            "sentence": ex["en"]}


FIX_PUNCT_TEMPLATES = [
    t("Add punctuation: {no_punct}", "{sentence}"),
    t("{no_punct}\n\nRewrite this with correct punctuation.", "{sentence}"),
    t("This text is missing its punctuation: {no_punct}\nPlease fix it.", "{sentence}"),
    t("Restore the punctuation in the following sentence.\n\n{no_punct}", "{sentence}"),
    t("Make this properly punctuated:\n{no_punct}", "{sentence}"),
    t("Unpunctuated: {no_punct}\nPunctuated:", "{sentence}"),
    t("Someone typed \"{no_punct}\" without any punctuation. How should it be written?",
      "{sentence}"),
    t("{no_punct}\nCorrect the punctuation.", "{sentence}"),
    turned("Remove all punctuation from this sentence: {sentence}", "{no_punct}"),
    turned("{sentence}\n\nWrite the sentence above with no punctuation.", "{no_punct}"),
]


# ---- True Case and Word Segment (the release's extra text-formatting tasks) --------------


def true_case_fields(ex):
    return {"lower": tf.strings.lower(ex["en"], encoding="utf-8"), "sentence": ex["en"]}


def _has_case(fields):
    # As the release: sentences that lowercasing leaves unchanged teach nothing.
    return tf.not_equal(fields["lower"], fields["sentence"])


TRUE_CASE_TEMPLATES = [
    t("Restore the capital letters in this text: {lower}", "{sentence}"),
    t("{lower}\n\nWrite the sentence above with correct capitalization.", "{sentence}"),
    t("This was typed in lowercase: {lower}\nHow should it be capitalized?", "{sentence}"),
    t("Fix the letter case.\n\n{lower}", "{sentence}"),
    t("Lowercase: {lower}\nProperly cased:", "{sentence}"),
    t("Capitalize names, sentence starts and other words that need it:\n{lower}",
      "{sentence}"),
    t("Someone forgot the shift key: \"{lower}\". Rewrite it correctly.", "{sentence}"),
    t("{lower}\nMake the capitalization right.", "{sentence}"),
    turned("Write this sentence in all lowercase: {sentence}", "{lower}"),
    turned("{sentence}\n\nThe same text with no capital letters:", "{lower}"),
]


def word_segment_fields(ex):
    return {"no_space": tf.strings.regex_replace(ex["en"], " ", ""), "sentence": ex["en"]}


WORD_SEGMENT_TEMPLATES = [
    t("Add spaces between the words: {no_space}", "{sentence}"),
    t("{no_space}\n\nThe spaces were removed from this text. Put them back.", "{sentence}"),
    t("Segment this string into words: {no_space}", "{sentence}"),
    t("Text without spaces: {no_space}\nText with spaces:", "{sentence}"),
    t("Insert the missing spaces.\n\n{no_space}", "{sentence}"),
    t("Please split the following into separate words: {no_space}", "{sentence}"),
    t("Someone typed \"{no_space}\" without the space bar. What did they mean?", "{sentence}"),
    t("{no_space}\nWhat does this say, written with spaces?", "{sentence}"),
    turned("Remove every space from this sentence: {sentence}", "{no_space}"),
    turned("{sentence}\n\nWrite the sentence above as one run of characters, no spaces.",
           "{no_space}"),
]


# The release's three text-formatting tasks read disjoint 30,000-example slices of ParaCrawl
# EN-DA's train split (each followed by 200 validation examples) and share one test set: the
# last 3,000 train examples.
def _para_crawl_enda_sources() -> dict[str, TfdsSource]:
    sources, start = {}, 0
    for task in ("true_case", "fix_punct", "word_segment"):
        sources[task] = TfdsSource(name="para_crawl/enda:1.2.0", splits={
            "train": f"train[{start}:{start + 30000}]",
            "validation": f"train[{start + 30000}:{start + 30200}]",
            "test": "train[-3000:]"})
        start += 30200
    return sources


PARA_CRAWL_ENDA_SOURCES = _para_crawl_enda_sources()


def _spec(name, display_name, source, templates, fields_fn, **kwargs) -> DatasetSpec:
    return DatasetSpec(
        name=name, collection=COLLECTION, cluster=CLUSTER, source=source, templates=templates,
        fields_fn=common.graph_fields(fields_fn), display_name=display_name, **kwargs,
    )


DATASETS: list[DatasetSpec] = [
    # CoQA's "test" split is the public (labeled) dev set.
    _spec("coqa", "CoQA", common.source("coqa:1.0.0", validation=None, test="test"),
          COQA_TEMPLATES, coqa_fields, metric_fns=[metrics.squad],
          postprocess_fn=common.qa_answers, eval_split="test"),
    _spec("quac", "QuAC", common.source("quac:1.0.0"), QUAC_TEMPLATES, quac_fields,
          # The release scores QuAC with the TriviaQA metric (normalised EM/F1).
          metric_fns=[metrics.trivia_qa], postprocess_fn=common.qa_answers),
    # SuperGLUE / GLUE test labels are hidden: evaluate on validation.
    _spec("wic", "WiC", common.source("super_glue/wic:1.0.2"), WIC_TEMPLATES, wic_fields,
          options=YES_NO, metric_fns=[metrics.accuracy]),
    _spec("trec", "TREC", common.source("trec:1.0.0", validation=None, test="test"),
          TREC_TEMPLATES, trec_fields, options=TREC_OPTIONS, metric_fns=[metrics.accuracy],
          eval_split="test"),
    _spec("cola", "CoLA", common.source("glue/cola:2.0.0"), COLA_TEMPLATES, cola_fields,
          options=COLA_OPTIONS, metric_fns=[metrics.accuracy]),
    _spec("math_dataset", "Math", common.source(
              "math_dataset/algebra__linear_1d:1.0.0", validation=None, test="test"),
          MATH_TEMPLATES, math_fields, metric_fns=[metrics.accuracy], eval_split="test"),
    _spec("fix_punct", "Fix Punctuation", PARA_CRAWL_ENDA_SOURCES["fix_punct"],
          FIX_PUNCT_TEMPLATES, fix_punct_fields, metric_fns=[common.cased_edit_distance],
          eval_split="test"),
    # The release's extra text-formatting tasks (not among the paper's 62 datasets): only the
    # release-style training mixtures train on them (DEVIATIONS.md).
    _spec("true_case", "True Case", PARA_CRAWL_ENDA_SOURCES["true_case"], TRUE_CASE_TEMPLATES,
          true_case_fields, metric_fns=[common.cased_edit_distance], eval_split="test",
          filter_fn=_has_case, release_extra=True),
    _spec("word_segment", "Word Segment", PARA_CRAWL_ENDA_SOURCES["word_segment"],
          WORD_SEGMENT_TEMPLATES, word_segment_fields, metric_fns=[common.cased_edit_distance],
          eval_split="test", release_extra=True),
]
