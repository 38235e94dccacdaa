"""The miniworld: things with colours, scenes of a few facts, and the pretraining corpus.

A scene holds `NUM_COLORED` things whose colour it states ("the ball is red .") and
`NUM_PLAIN` things it only mentions ("there is a key ."): a statement about a mentioned thing's
colour can then be true, false or unknown from the scene. Colours may repeat within a scene
(counting, and distractors that defeat "is anything red?").

Every text is lower-case words and the punctuation tokens " . , ? :" separated by spaces, so
the word-level vocabulary (`tasks.miniworld.vocabulary`) covers it exactly.

The pretraining corpus restates each scene's facts in other surface forms (a list, then the
facts again in another order and wording) with world words only: no instruction words, no
answer words ("yes", "no", "maybe", counts). Span corruption on it teaches the base to look a
thing's colour up in its context before it ever sees an instruction.
"""

from __future__ import annotations

import dataclasses
import random
import zlib
from typing import Iterator

THINGS = ("ball", "cup", "hat", "box", "key")
COLORS = ("red", "blue", "green", "pink")
# The words a scene or a corpus document may use besides things and colours.
FUNCTION_WORDS = ("the", "a", "is", "are", "there", "here", "and", ".", ",")
WORLD_WORDS = frozenset(THINGS + COLORS + FUNCTION_WORDS)

NUM_COLORED = 2
NUM_PLAIN = 1


@dataclasses.dataclass(frozen=True)
class Scene:
    colored: tuple[tuple[str, str], ...]  # (thing, colour) in the order the scene states them
    plain: tuple[str, ...]  # things mentioned without a colour
    order: tuple[int, ...]  # the sentence order: index < len(colored) a coloured fact, else plain

    @property
    def things(self) -> tuple[str, ...]:
        return tuple(t for t, _ in self.colored) + self.plain

    def color_of(self, thing: str) -> str | None:
        return dict(self.colored).get(thing)

    @property
    def colors(self) -> set[str]:
        return {c for _, c in self.colored}

    def text(self) -> str:
        sentences = [f"the {t} is {c} ." for t, c in self.colored]
        sentences += [f"there is a {t} ." for t in self.plain]
        return " ".join(sentences[i] for i in self.order)


def rng_for(name: str, split: str, seed: int) -> random.Random:
    return random.Random(zlib.crc32(f"miniworld/{name}/{split}/{seed}".encode()))


def make_scene(rng: random.Random, num_colored: int = NUM_COLORED,
               num_plain: int = NUM_PLAIN) -> Scene:
    things = rng.sample(THINGS, num_colored + num_plain)
    colored = tuple((t, rng.choice(COLORS)) for t in things[:num_colored])
    order = list(range(num_colored + num_plain))
    rng.shuffle(order)
    return Scene(colored, tuple(things[num_colored:]), tuple(order))


# ---- the pretraining corpus -----------------------------------------------------------------

def _fact_forms(thing: str, color: str | None) -> list[str]:
    if color is None:
        return [f"there is a {thing} .", f"a {thing} is here .", f"the {thing} is here ."]
    return [f"the {thing} is {color} .", f"there is a {color} {thing} .",
            f"a {color} {thing} is here .", f"the {color} {thing} is here ."]


def _listing(scene: Scene, rng: random.Random) -> str:
    items = [f"a {c} {t}" for t, c in scene.colored] + [f"a {t}" for t in scene.plain]
    rng.shuffle(items)
    return f"here are {' , '.join(items[:-1])} and {items[-1]} ."


def corpus_parts(scene: Scene, rng: random.Random) -> tuple[str, str]:
    """One scene as a document in two parts: a listing, then every fact restated in a random
    form and order."""
    facts = [(t, c) for t, c in scene.colored] + [(t, None) for t in scene.plain]
    rng.shuffle(facts)
    restated = " ".join(rng.choice(_fact_forms(t, c)) for t, c in facts)
    return _listing(scene, rng), restated


def corpus_document(scene: Scene, rng: random.Random) -> str:
    return " ".join(corpus_parts(scene, rng))


def corpus(split: str, seed: int) -> Iterator[dict]:
    """Documents {"text", "prefix", "rest"}: the whole, its listing and its restatement."""
    rng = rng_for("corpus", split, seed)
    while True:
        prefix, rest = corpus_parts(make_scene(rng), rng)
        yield {"text": f"{prefix} {rest}", "prefix": prefix, "rest": rest}


def words(text: str) -> list[str]:
    return text.split()
