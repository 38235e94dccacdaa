"""The offline synthetic suite: small procedurally generated instruction datasets.

Eight clusters of two datasets each, generated deterministically from a seed, no download. The
inputs are short (well under 128 bytes with the OPTIONS suffix) and the word lists small, so a tiny
byte-level transformer learns them on a CPU in minutes. Clusters share skills on purpose (yes/no
answers over short facts, word lookups, copying words), so training on all but one cluster can
transfer to the held-out one: `make demo` trains on `synthetic_heldout_nli_train` and evaluates
zero-shot on `synthetic_nli_eval`.

Clusters and datasets:
    sentiment    word_sentiment (cls), review_sentiment (cls)
    comparison   num_compare (cls), num_max (cls, per-example options)
    nli          fact_nli (cls), color_nli (cls)
    string       reverse_word, uppercase_word
    counting     count_letter, count_words
    paraphrase   synonym_para (cls), order_para (cls)
    qa           owner_qa, place_qa
    translation  en_to_zorb, zorb_to_en
"""

from __future__ import annotations

import random
import zlib
from typing import Callable, Iterator

from t5.evaluation import metrics

from tasks.spec import ClusterExclusion, DatasetSpec, GeneratorSource, Template

COLLECTION = "synthetic"
NUM_TRAIN = 3000
NUM_VALIDATION = 200

NAMES = ["tom", "ann", "bob", "eve", "max", "kim", "sam", "liz"]
COLORS = ["red", "blue", "green", "black", "white", "pink"]
OBJECTS = ["ball", "cup", "hat", "box", "pen", "book", "car", "bag"]
CITIES = ["paris", "rome", "oslo", "lima", "cairo", "delhi", "tokyo", "quito"]
POSITIVE = ["good", "great", "nice", "happy", "fun", "lovely", "tasty", "calm"]
NEGATIVE = ["bad", "awful", "sad", "boring", "ugly", "dull", "rude", "cold"]
NEUTRAL = ["the", "a", "day", "food", "film", "room", "it", "very"]
# Adjective pairs: (word, synonym, antonym); NLI and paraphrase both use them.
ADJECTIVES = [
    ("tall", "high", "short"), ("happy", "glad", "sad"), ("fast", "quick", "slow"),
    ("big", "large", "small"), ("rich", "wealthy", "poor"), ("smart", "clever", "dumb"),
    ("angry", "mad", "calm"), ("tired", "sleepy", "awake"),
]
WORDS = ["cat", "dog", "sun", "moon", "tree", "fish", "bird", "rain", "star", "milk",
         "lamp", "door", "rock", "leaf", "frog", "cake", "ship", "wolf", "king", "rose"]
ZORB = dict(zip(WORDS, ["ka", "mo", "ti", "lu", "pe", "ro", "su", "ne", "vi", "da",
                        "bo", "gu", "fe", "ze", "wa", "hi", "jo", "ya", "qu", "xe"]))

ACCURACY = (metrics.accuracy,)
YES_NO = ("yes", "no")
NLI_OPTIONS = ("yes", "no", "maybe")


def _rng(name: str, split: str, seed: int) -> random.Random:
    return random.Random(zlib.crc32(f"{COLLECTION}/{name}/{split}/{seed}".encode()))


def _generator(name: str, make: Callable[[random.Random], dict]) -> Callable[[str, int], Iterator]:
    def generate(split: str, seed: int) -> Iterator[dict]:
        rng = _rng(name, split, seed)
        while True:
            yield make(rng)

    return generate


# ---- sentiment ------------------------------------------------------------------------------


def _word_sentiment(rng: random.Random) -> dict:
    label = rng.choice(["positive", "negative"])
    major, minor = (POSITIVE, NEGATIVE) if label == "positive" else (NEGATIVE, POSITIVE)
    words = rng.sample(major, 2) + rng.sample(minor, rng.randint(0, 1)) + [rng.choice(NEUTRAL)]
    rng.shuffle(words)
    return {"text": " ".join(words), "answer": label}


def _review_sentiment(rng: random.Random) -> dict:
    label = rng.choice(["positive", "negative"])
    adjectives = POSITIVE if label == "positive" else NEGATIVE
    thing = rng.choice(["food", "film", "room", "day", "trip", "song"])
    return {"text": f"the {thing} was {rng.choice(adjectives)}", "answer": label}


# ---- comparison -----------------------------------------------------------------------------


def _two_numbers(rng: random.Random) -> tuple[int, int]:
    a, b = rng.sample(range(100), 2)
    return a, b


def _num_compare(rng: random.Random) -> dict:
    a, b = _two_numbers(rng)
    return {"a": str(a), "b": str(b), "answer": "yes" if a > b else "no"}


def _num_max(rng: random.Random) -> dict:
    a, b = _two_numbers(rng)
    return {"a": str(a), "b": str(b), "choices": [str(a), str(b)], "answer": str(max(a, b))}


# ---- nli ------------------------------------------------------------------------------------


def _fact_nli(rng: random.Random) -> dict:
    p1, p2, other = rng.sample(NAMES, 3)
    (w1, _, _), (w2, syn2, ant2) = rng.sample(ADJECTIVES, 2)
    premise = f"{p1} is {w1}. {p2} is {w2}."
    label = rng.choice(NLI_OPTIONS)
    if label == "yes":
        hypothesis = f"{p2} is {rng.choice([w2, syn2])}."
    elif label == "no":
        hypothesis = f"{p2} is {ant2}."
    else:
        hypothesis = f"{other} is {w2}."
    return {"premise": premise, "hypothesis": hypothesis, "answer": label}


def _color_nli(rng: random.Random) -> dict:
    obj, other_obj = rng.sample(OBJECTS, 2)
    color, other_color = rng.sample(COLORS, 2)
    premise = f"the {obj} is {color}."
    label = rng.choice(NLI_OPTIONS)
    if label == "yes":
        hypothesis = f"the {obj} is {color}."
    elif label == "no":
        hypothesis = f"the {obj} is {other_color}."
    else:
        hypothesis = f"the {other_obj} is {rng.choice([color, other_color])}."
    return {"premise": premise, "hypothesis": hypothesis, "answer": label}


# ---- string ---------------------------------------------------------------------------------


def _reverse_word(rng: random.Random) -> dict:
    word = rng.choice(WORDS + OBJECTS + COLORS)
    return {"word": word, "answer": word[::-1]}


def _uppercase_word(rng: random.Random) -> dict:
    word = rng.choice(WORDS + OBJECTS + COLORS)
    return {"word": word, "answer": word.upper()}


# ---- counting -------------------------------------------------------------------------------


def _count_letter(rng: random.Random) -> dict:
    word = "".join(rng.choice("abcde") for _ in range(rng.randint(3, 8)))
    letter = rng.choice(word + rng.choice("abcde"))
    return {"word": word, "letter": letter, "answer": str(word.count(letter))}


def _count_words(rng: random.Random) -> dict:
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 7))]
    return {"text": " ".join(words), "answer": str(len(words))}


# ---- paraphrase -----------------------------------------------------------------------------


def _synonym_para(rng: random.Random) -> dict:
    name = rng.choice(NAMES)
    word, syn, ant = rng.choice(ADJECTIVES)
    same = rng.random() < 0.5
    return {
        "sentence1": f"{name} is very {word}.",
        "sentence2": f"{name} is very {syn if same else ant}.",
        "answer": "yes" if same else "no",
    }


def _order_para(rng: random.Random) -> dict:
    a, b = rng.sample(NAMES, 2)
    verb, passive = rng.choice([("likes", "liked"), ("sees", "seen"), ("helps", "helped")])
    same = rng.random() < 0.5
    second = f"{b} is {passive} by {a}." if same else f"{b} {verb} {a}."
    return {"sentence1": f"{a} {verb} {b}.", "sentence2": second,
            "answer": "yes" if same else "no"}


# ---- qa -------------------------------------------------------------------------------------


def _owner_qa(rng: random.Random) -> dict:
    p1, p2 = rng.sample(NAMES, 2)
    o1, o2 = rng.sample(OBJECTS, 2)
    c1, c2 = rng.sample(COLORS, 2)
    context = f"{p1} has a {c1} {o1}. {p2} has a {c2} {o2}."
    ask_first = rng.random() < 0.5
    person, obj, color = (p1, o1, c1) if ask_first else (p2, o2, c2)
    return {"context": context, "question": f"what color is {person}'s {obj}?", "answer": color}


def _place_qa(rng: random.Random) -> dict:
    p1, p2 = rng.sample(NAMES, 2)
    c1, c2 = rng.sample(CITIES, 2)
    ask_first = rng.random() < 0.5
    return {"context": f"{p1} is in {c1}. {p2} is in {c2}.",
            "question": f"where is {p1 if ask_first else p2}?",
            "answer": c1 if ask_first else c2}


# ---- translation ----------------------------------------------------------------------------


def _en_to_zorb(rng: random.Random) -> dict:
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 3))]
    return {"source": " ".join(words), "answer": " ".join(ZORB[w] for w in words)}


def _zorb_to_en(rng: random.Random) -> dict:
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 3))]
    return {"source": " ".join(ZORB[w] for w in words), "answer": " ".join(words)}


# ---- declarations ---------------------------------------------------------------------------

T = Template


def _spec(name, cluster, make, fields, templates, *, display, options=None, options_field=None,
          metric_fns=ACCURACY) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        collection=COLLECTION,
        cluster=cluster,
        source=GeneratorSource(
            generate=_generator(name, make),
            output_fields={f: (list if f == options_field else str) for f in fields},
            num_examples={"train": NUM_TRAIN, "validation": NUM_VALIDATION},
        ),
        templates=tuple(templates),
        options=options,
        options_field=options_field,
        metric_fns=metric_fns,
        display_name=display,
    )


SENTIMENT_TEMPLATES = [
    T("{text}\nIs this positive or negative?", "{answer}"),
    T("What is the sentiment of \"{text}\"?", "{answer}"),
    T("Text: {text}\nSentiment:", "{answer}"),
    T("Is the feeling of this text positive or negative?\n{text}", "{answer}"),
    T("Does \"{text}\" sound positive or negative?", "{answer}"),
    T("Write a {answer} text.", "{text}", turned_around=True),
]

NLI_TEMPLATES = [
    T("{premise}\nDoes this mean that \"{hypothesis}\"?", "{answer}"),
    T("Premise: {premise}\nHypothesis: {hypothesis}\nIs it entailed?", "{answer}"),
    T("If {premise} then is it true that {hypothesis}", "{answer}"),
    T("{premise}\nCan we say: {hypothesis}", "{answer}"),
    T("Read: {premise}\nIs \"{hypothesis}\" true?", "{answer}"),
]

PARAPHRASE_TEMPLATES = [
    T("\"{sentence1}\" and \"{sentence2}\"\nDo these mean the same?", "{answer}"),
    T("Sentence 1: {sentence1}\nSentence 2: {sentence2}\nAre they paraphrases?", "{answer}"),
    T("Is \"{sentence2}\" a paraphrase of \"{sentence1}\"?", "{answer}"),
    T("{sentence1}\n{sentence2}\nSame meaning?", "{answer}"),
    T("Do \"{sentence1}\" and \"{sentence2}\" say the same thing?", "{answer}"),
]

QA_TEMPLATES = [
    T("{context}\n{question}", "{answer}"),
    T("Read this: {context}\nAnswer: {question}", "{answer}"),
    T("Context: {context}\nQuestion: {question}\nAnswer:", "{answer}"),
    T("{question}\nUse this: {context}", "{answer}"),
    T("Answer the question from the text.\n{context}\n{question}", "{answer}"),
    T("{context}\nWrite a question whose answer is {answer}.", "{question}",
      turned_around=True),
]

SPECS: tuple[DatasetSpec, ...] = (
    _spec("word_sentiment", "sentiment", _word_sentiment, ["text", "answer"],
          SENTIMENT_TEMPLATES, display="Word sentiment", options=("positive", "negative")),
    _spec("review_sentiment", "sentiment", _review_sentiment, ["text", "answer"],
          SENTIMENT_TEMPLATES, display="Review sentiment", options=("positive", "negative")),
    _spec("num_compare", "comparison", _num_compare, ["a", "b", "answer"], [
        T("Is {a} larger than {b}?", "{answer}"),
        T("{a} > {b}?", "{answer}"),
        T("Is {b} smaller than {a}?", "{answer}"),
        T("Compare {a} and {b}. Is the first one bigger?", "{answer}"),
        T("Number A: {a}\nNumber B: {b}\nIs A more than B?", "{answer}"),
    ], display="Number comparison", options=YES_NO),
    _spec("num_max", "comparison", _num_max, ["a", "b", "choices", "answer"], [
        T("Which is larger, {a} or {b}?", "{answer}"),
        T("What is the bigger number: {a} or {b}?", "{answer}"),
        T("max({a}, {b}) =", "{answer}"),
        T("Pick the largest number.\n{a}\n{b}", "{answer}"),
        T("Of {a} and {b}, which is more?", "{answer}"),
        T("Write a number smaller than {answer}.", "{a}", turned_around=True),
    ], display="Larger number", options_field="choices"),
    _spec("fact_nli", "nli", _fact_nli, ["premise", "hypothesis", "answer"], NLI_TEMPLATES,
          display="Fact NLI", options=NLI_OPTIONS),
    _spec("color_nli", "nli", _color_nli, ["premise", "hypothesis", "answer"], NLI_TEMPLATES,
          display="Color NLI", options=NLI_OPTIONS),
    _spec("reverse_word", "string", _reverse_word, ["word", "answer"], [
        T("Reverse the word \"{word}\".", "{answer}"),
        T("{word} backwards is", "{answer}"),
        T("Write {word} in reverse order.", "{answer}"),
        T("Word: {word}\nReversed:", "{answer}"),
        T("Spell \"{word}\" from the last letter to the first.", "{answer}"),
        T("Which word is \"{answer}\" reversed?", "{word}", turned_around=True),
    ], display="Reverse"),
    _spec("uppercase_word", "string", _uppercase_word, ["word", "answer"], [
        T("Write \"{word}\" in capital letters.", "{answer}"),
        T("{word} in upper case is", "{answer}"),
        T("Uppercase this word: {word}", "{answer}"),
        T("Word: {word}\nUppercase:", "{answer}"),
        T("Shout the word {word}.", "{answer}"),
        T("Write \"{answer}\" in small letters.", "{word}", turned_around=True),
    ], display="Uppercase"),
    _spec("count_letter", "counting", _count_letter, ["word", "letter", "answer"], [
        T("How many times does \"{letter}\" appear in \"{word}\"?", "{answer}"),
        T("Count the letter {letter} in {word}.", "{answer}"),
        T("Word: {word}\nLetter: {letter}\nCount:", "{answer}"),
        T("In \"{word}\", how many {letter}s are there?", "{answer}"),
        T("Number of \"{letter}\" in \"{word}\":", "{answer}"),
    ], display="Letter count"),
    _spec("count_words", "counting", _count_words, ["text", "answer"], [
        T("How many words are in \"{text}\"?", "{answer}"),
        T("Count the words: {text}", "{answer}"),
        T("Text: {text}\nNumber of words:", "{answer}"),
        T("{text}\nHow many words is that?", "{answer}"),
        T("Tell me the word count of \"{text}\".", "{answer}"),
    ], display="Word count"),
    _spec("synonym_para", "paraphrase", _synonym_para, ["sentence1", "sentence2", "answer"],
          PARAPHRASE_TEMPLATES, display="Synonym paraphrase", options=YES_NO),
    _spec("order_para", "paraphrase", _order_para, ["sentence1", "sentence2", "answer"],
          PARAPHRASE_TEMPLATES, display="Order paraphrase", options=YES_NO),
    _spec("owner_qa", "qa", _owner_qa, ["context", "question", "answer"], QA_TEMPLATES,
          display="Owner QA"),
    _spec("place_qa", "qa", _place_qa, ["context", "question", "answer"], QA_TEMPLATES,
          display="Place QA"),
    _spec("en_to_zorb", "translation", _en_to_zorb, ["source", "answer"], [
        T("Translate to Zorb: {source}", "{answer}"),
        T("English: {source}\nZorb:", "{answer}"),
        T("How do you say \"{source}\" in Zorb?", "{answer}"),
        T("{source}\nIn Zorb, please.", "{answer}"),
        T("Say this in Zorb: {source}", "{answer}"),
        T("Write English that means \"{answer}\" in Zorb.", "{source}", turned_around=True),
    ], display="English to Zorb", metric_fns=(metrics.accuracy, metrics.bleu)),
    _spec("zorb_to_en", "translation", _zorb_to_en, ["source", "answer"], [
        T("Translate to English: {source}", "{answer}"),
        T("Zorb: {source}\nEnglish:", "{answer}"),
        T("What does \"{source}\" mean in English?", "{answer}"),
        T("{source}\nIn English, please.", "{answer}"),
        T("Say this in English: {source}", "{answer}"),
    ], display="Zorb to English", metric_fns=(metrics.accuracy, metrics.bleu)),
)

# Training clusters ordered for the "number of clusters" ablation (held-out nli excluded).
CLUSTER_ORDER = ("sentiment", "paraphrase", "qa", "comparison", "string", "counting",
                 "translation")
# Paraphrase detection is close to NLI: holding out paraphrase also drops NLI (as FLAN 2021 drops
# near-duplicate clusters), so that held-out evaluation measures transfer. Holding out NLI keeps
# paraphrase in training: it is the skill the demo's zero-shot NLI evaluation transfers from.
EXCLUSIONS = (ClusterExclusion(held_out="paraphrase", also_drop=("nli",)),)


def register(seed: int = 0, replace: bool = False):
    """Registers the suite (collection "synthetic") with the byte vocabulary; idempotent."""
    import seqio

    from tasks import catalogue, registry

    if COLLECTION in catalogue.collection_names() and not replace:
        return catalogue.collection_info(COLLECTION)
    return registry.register_collection(
        SPECS, exclusions=EXCLUSIONS, vocabulary=seqio.ByteVocabulary(),
        cluster_order=CLUSTER_ORDER, seed=seed, replace=replace,
    )
