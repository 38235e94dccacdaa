"""A small generated collection for registry-level tests (no TFDS, fast)."""

from t5.evaluation import metrics

from tasks.spec import DatasetSpec, GeneratorSource, Template

COLLECTION = "faketest"


def generator(size: int, bad_every: int = 0) -> GeneratorSource:
    """Records {"x", "answer"}; with `bad_every`, every such record misses a field or is empty."""

    def generate(split, seed):
        i = 0
        while True:
            record = {"x": f"item {split} {seed} {i}", "answer": "yes" if i % 2 else "no"}
            if bad_every and i % bad_every == 0:
                record = {"x": f"item {i}"} if (i // bad_every) % 2 else {"x": "", "answer": "no"}
            yield record
            i += 1

    return GeneratorSource(generate=generate, output_fields={"x": str, "answer": str},
                           num_examples={"train": size, "validation": 10})


def spec(name, cluster, size=50, templates=None, bad_every=0, collection=COLLECTION):
    return DatasetSpec(
        name=name, collection=collection, cluster=cluster, source=generator(size, bad_every),
        templates=templates or (Template("{x}?", "{answer}"),
                                Template("Say {x}.", "{answer}"),
                                Template("Make a {answer} item.", "{x}", turned_around=True)),
        options=("yes", "no"), metric_fns=(metrics.accuracy,),
    )
