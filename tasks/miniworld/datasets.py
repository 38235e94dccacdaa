"""The miniworld's instruction datasets: five training clusters and the held-out NLI cluster.

Every dataset asks about the same kind of scene (`world.Scene`) with one shared instruction
vocabulary ("read the story :", "question :", "based on the story ,", "tell me ..."), so the same
scene needs different answers under different instructions. Each cluster's skill is a pair
(what is looked up, which answers); the held-out cluster's pair is in no training cluster:

    color_qa    colour of a thing            -> a colour         (OPTIONS: every colour)
    find        thing of a colour            -> a thing          (OPTIONS: the scene's things)
    count       things of a colour           -> zero..three      (OPTIONS)
    same_color  two things' colours compared -> yes / no / maybe (maybe: a colour unstated)
    verify      a thing's colour, asked      -> yes / no         (the thing's colour is stated)
    nli         held out: a statement about a thing's colour -> yes / no / maybe, labels
                balanced; half the "no" and "maybe" items name a colour another thing has.
"""

from __future__ import annotations

from typing import Callable, Iterator

from t5.evaluation import metrics

from tasks.miniworld import world
from tasks.miniworld.world import COLORS, Scene
from tasks.spec import DatasetSpec, GeneratorSource, Template

COLLECTION = "miniworld"
NUM_TRAIN = 6000
NUM_VALIDATION = 300  # a multiple of 6: NLI labels and distractors exactly balanced
COUNTS = ("zero", "one", "two", "three")
YES_NO = ("yes", "no")
NLI_OPTIONS = ("yes", "no", "maybe")
ACCURACY = (metrics.accuracy,)

# (what is looked up, the answers): the skill of each dataset (see the module docstring).
SKILLS = {
    "color_qa": ("thing colour", "colour"),
    "find": ("thing of a colour", "thing"),
    "count": ("things of a colour", "count"),
    "same_color": ("two things' colours", "yes/no/maybe"),
    "verify": ("thing colour against a colour", "yes/no"),
    "nli": ("thing colour against a colour", "yes/no/maybe"),
}
HELD_OUT = "nli"
# Training clusters in the order of the num_clusters experiment.
CLUSTER_ORDER = ("color_qa", "find", "verify", "count", "same_color")


def _generator(name: str, make: Callable[[Scene, object, int], dict]):
    def generate(split: str, seed: int) -> Iterator[dict]:
        rng = world.rng_for(name, split, seed)
        i = 0
        while True:
            record = make(world.make_scene(rng), rng, i)
            if record is not None:  # None: this scene cannot pose item i; draw another
                yield {"scene": _scene_text(record.pop("_scene")), **record}
                i += 1

    return generate


def _scene_text(scene: Scene) -> str:
    return scene.text()


def _color_qa(scene, rng, i):
    thing, color = rng.choice(scene.colored)
    return {"_scene": scene, "thing": thing, "answer": color}


def _find(scene, rng, i):
    unique = [(t, c) for t, c in scene.colored if [x for _, x in scene.colored].count(c) == 1]
    if not unique:
        return None
    thing, color = rng.choice(unique)
    return {"_scene": scene, "color": color, "answer": thing, "choices": list(scene.things)}


def _count(scene, rng, i):
    color = rng.choice([c for _, c in scene.colored] + [rng.choice(COLORS)])
    n = sum(c == color for _, c in scene.colored)
    return {"_scene": scene, "color": color, "answer": COUNTS[n]}


def _same_color(scene, rng, i):
    label = ("yes", "no", "maybe")[i % 3]
    if label == "maybe":
        a, b = rng.choice(scene.colored)[0], rng.choice(scene.plain)
        a, b = (a, b) if rng.random() < 0.5 else (b, a)
    else:
        pairs = [(x, y) for x, cx in scene.colored for y, cy in scene.colored
                 if x != y and (cx == cy) == (label == "yes")]
        if not pairs:
            return None
        a, b = rng.choice(pairs)
    return {"_scene": scene, "thing": a, "other": b, "answer": label}


def _verify(scene, rng, i):
    thing, color = rng.choice(scene.colored)
    if i % 2:
        color = rng.choice([c for c in COLORS if c != color])
    return {"_scene": scene, "thing": thing, "color": color,
            "answer": "no" if i % 2 else "yes"}


def nli_item(scene: Scene, rng, i: int) -> dict | None:
    """Item i: label "yes", "no", "maybe" in turn; of the "no" and "maybe" items, every other
    one names a colour that another thing of the scene has (a distractor)."""
    label = NLI_OPTIONS[i % 3]
    distractor = (i // 3) % 2 == 0
    if label == "yes":
        thing, color = rng.choice(scene.colored)
        return {"_scene": scene, "statement": f"the {thing} is {color}", "answer": label}
    if label == "no":
        thing, own = rng.choice(scene.colored)
    else:
        thing, own = rng.choice(scene.plain), None
    if distractor:
        candidates = [c for c in scene.colors if c != own]
    else:
        candidates = [c for c in COLORS if c not in scene.colors]
    if not candidates:
        return None
    return {"_scene": scene, "statement": f"the {thing} is {rng.choice(candidates)}",
            "answer": label}


T = Template

TEMPLATES = {
    "color_qa": [
        T("{scene} what color is the {thing} ?", "{answer}"),
        T("read the story : {scene} question : what color is the {thing} ?", "{answer}"),
        T("{scene} based on the story , what is the color of the {thing} ?", "{answer}"),
        T("tell me the color of the {thing} . {scene}", "{answer}"),
    ],
    "find": [
        T("{scene} which thing is {color} ?", "{answer}"),
        T("read the story : {scene} question : which thing does the story say is {color} ?",
          "{answer}"),
        T("{scene} based on the story , which thing has the color {color} ?", "{answer}"),
        T("tell me which thing is {color} . {scene}", "{answer}"),
    ],
    "count": [
        T("{scene} how many things are {color} ?", "{answer}"),
        T("read the story : {scene} question : how many things does the story say are "
          "{color} ?", "{answer}"),
        T("{scene} based on the story , how many things have the color {color} ?", "{answer}"),
        T("tell me how many things are {color} . {scene}", "{answer}"),
    ],
    "same_color": [
        T("{scene} do the {thing} and the {other} have the same color ?", "{answer}"),
        T("read the story : {scene} question : is it true that the {thing} and the {other} "
          "have the same color ?", "{answer}"),
        T("{scene} based on the story , is the color of the {thing} the same as the color of "
          "the {other} ?", "{answer}"),
        T("tell me if the {thing} and the {other} have the same color . {scene}", "{answer}"),
    ],
    "verify": [
        T("{scene} is the {thing} {color} ?", "{answer}"),
        T("read the story : {scene} question : does the story say that the {thing} is "
          "{color} ?", "{answer}"),
        T("{scene} based on the story , does the {thing} have the color {color} ?", "{answer}"),
        T("tell me if the {thing} is {color} . {scene}", "{answer}"),
    ],
    # Held out: new combinations of the words and skills above.
    "nli": [
        T("read the story : {scene} is it true that {statement} ?", "{answer}"),
        T("{scene} based on the story , is it true that {statement} ?", "{answer}"),
        T("{statement} . does the story say that ? {scene}", "{answer}"),
        T("tell me if it is true that {statement} . {scene}", "{answer}"),
    ],
}

_MAKERS = {"color_qa": _color_qa, "find": _find, "count": _count, "same_color": _same_color,
           "verify": _verify, "nli": nli_item}
_FIELDS = {"color_qa": ["scene", "thing", "answer"],
           "find": ["scene", "color", "answer", "choices"],
           "count": ["scene", "color", "answer"],
           "same_color": ["scene", "thing", "other", "answer"],
           "verify": ["scene", "thing", "color", "answer"],
           "nli": ["scene", "statement", "answer"]}
_OPTIONS = {"color_qa": COLORS, "count": COUNTS, "same_color": NLI_OPTIONS, "verify": YES_NO,
            "nli": NLI_OPTIONS}
_DISPLAY = {"color_qa": "Colour QA", "find": "Find the thing", "count": "Count",
            "same_color": "Same colour", "verify": "Verify", "nli": "Story NLI"}


def generator(name: str):
    return _generator(name, _MAKERS[name])


def spec(name: str, num_train: int = NUM_TRAIN,
         num_validation: int = NUM_VALIDATION) -> DatasetSpec:
    fields = _FIELDS[name]
    options_field = "choices" if "choices" in fields else None
    return DatasetSpec(
        name=f"story_{name}", collection=COLLECTION, cluster=name,
        source=GeneratorSource(
            generate=generator(name),
            output_fields={f: (list if f == options_field else str) for f in fields},
            num_examples={"train": num_train, "validation": num_validation}),
        templates=tuple(TEMPLATES[name]), options=_OPTIONS.get(name),
        options_field=options_field, metric_fns=ACCURACY, display_name=_DISPLAY[name])


def specs(**sizes) -> tuple[DatasetSpec, ...]:
    return tuple(spec(n, **sizes) for n in _MAKERS)
