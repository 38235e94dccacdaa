"""FLAN 2021 translation cluster: ParaCrawl EN-ES, WMT'14 EN-FR, WMT'16 CS/DE/FI/RO/RU/TR-EN.

Each pair is one dataset whose ten templates go both ways: six translate into English and four
translate out of English. None is marked turned around: both directions are ordinary
translation, and the paper counts no turned-around templates here.

WMT'16 cs-en and ru-en read parts of their training data from manual downloads (CzEng 1.6pre,
the Yandex corpus); TfdsSource.manual_download says which files go where.
"""

from __future__ import annotations

from t5.evaluation import metrics

from tasks.flan2021.common import (
    COLLECTION, TFDS_MANUAL_DIR, graph_fields, held_out_source, source, t,
)
from tasks.spec import DatasetSpec

CLUSTER = "translation"


def _templates(language: str) -> list:
    """Ten templates over fields {"english"} and {"foreign"}; `language` is written in."""
    x = language
    return [
        # Into English.
        t(f"Translate this {x} text into English:\n{{foreign}}", "{english}"),
        t(f"{{foreign}}\n\nWhat does this mean in English?", "{english}"),
        t(f"How would you say the following {x} sentence in English?\n\n{{foreign}}",
          "{english}"),
        t(f"{x}: {{foreign}}\nEnglish:", "{english}"),
        t(f"I was handed this {x} line and only speak English. Please translate:\n"
          f"\"{{foreign}}\"", "{english}"),
        t(f"Render the passage below in English, keeping its meaning.\n\n{{foreign}}",
          "{english}"),
        # Out of English.
        t(f"Translate to {x}:\n\n{{english}}", "{foreign}"),
        t(f"{{english}}\n\nCan you put that into {x}?", "{foreign}"),
        t(f"English: {{english}}\n{x}:", "{foreign}"),
        t(f"Write the {x} version of this sentence: \"{{english}}\"", "{foreign}"),
    ]


def _fields(foreign_key: str):
    def fields_fn(ex):
        return {"english": ex["en"], "foreign": ex[foreign_key]}

    fields_fn.__name__ = f"translation_fields_{foreign_key}"
    return fields_fn


def _spec(name, display_name, source, foreign_key, language) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        collection=COLLECTION,
        cluster=CLUSTER,
        source=source,
        templates=_templates(language),
        fields_fn=graph_fields(_fields(foreign_key)),
        metric_fns=[metrics.bleu],
        # WMT reports newstest (the TFDS "test" split); ParaCrawl has only train.
        eval_split="test" if "wmt" in name else "validation",
        display_name=display_name,
    )


def _wmt(year: int, code: str, language: str, manual: str | None = None) -> DatasetSpec:
    return _spec(
        name=f"wmt{year}_{code}en",
        display_name=f"WMT-{year} {code.upper()}-EN",
        source=source(
            f"wmt{year}_translate/{code}-en:1.0.0", test="test", manual_download=manual
        ),
        foreign_key=code,
        language=language,
    )


DATASETS: list[DatasetSpec] = [
    _spec(
        name="para_crawl_enes",
        display_name="ParaCrawl EN-ES",
        source=held_out_source("para_crawl/enes:1.2.0"),
        foreign_key="es",
        language="Spanish",
    ),
    _wmt(14, "fr", "French"),
    _wmt(16, "cs", "Czech", manual=(
        "WMT'16 cs-en trains partly on CzEng 1.6pre: register at "
        "http://ufal.mff.cuni.cz/czeng/czeng16pre and put "
        f"czeng16pre.deduped-ignoring-sections.txt.gz in {TFDS_MANUAL_DIR}")),
    _wmt(16, "de", "German"),
    _wmt(16, "fi", "Finnish"),
    _wmt(16, "ro", "Romanian"),
    _wmt(16, "ru", "Russian", manual=(
        "WMT'16 ru-en trains partly on the Yandex 1M corpus: request it at "
        f"https://translate.yandex.ru/corpus?lang=en and put 1mcorpus.zip in {TFDS_MANUAL_DIR}")),
    _wmt(16, "tr", "Turkish"),
]
