"""The Flan 2021 submixture: the FLAN 2021 collection's datasets, templates and options in the
Flan 2022 styles (zs_opt, zs_noopt, fs_opt, fs_noopt), capped at 30,000 examples per task.

`RELEASE_COUNTS` holds the release's example counts per dataset (zero-shot, few-shot), the
numbers its mixtures are weighted by (`flan/v2/constants.py` at commit e9e4ec6); our dataset
names map to the release's where they differ. WSC273 is evaluation-only and never trains.
"""

from __future__ import annotations

import dataclasses

from tasks import flan2021
from tasks.flan2022.mixing import COLLECTION, Entry

# dataset -> (zero-shot examples, few-shot examples) in the release's tables.
RELEASE_COUNTS: dict[str, tuple[int, int]] = {
    "anli_r1": (16940, 16940), "anli_r2": (45460, 45460), "anli_r3": (100450, 100450),
    "cb": (200, 200), "mnli_matched": (392500, 392500), "mnli_mismatched": (392500, 392500),
    "qnli": (104540, 104540), "rte": (2290, 2290), "snli": (549360, 549360), "wnli": (600, 600),
    "copa": (350, 350), "hellaswag": (39700, 39700), "piqa": (16010, 16010),
    "story_cloze": (1670, 1670), "imdb_reviews": (24800, 24761),
    "sentiment140": (1599800, 1599800), "sst2": (67140, 67140),
    "yelp_polarity_reviews": (559800, 559774), "mrpc": (3460, 3460), "qqp": (363640, 363640),
    "paws_wiki": (49400, 49400), "stsb": (5640, 5640), "arc_easy": (2040, 2040),
    "arc_challenge": (910, 910), "natural_questions": (87720, 87720),
    "trivia_qa": (87420, 87420), "common_gen": (67180, 67180), "dart": (62450, 62450),
    "e2e_nlg": (33320, 33320), "web_nlg_en": (35220, 35220), "para_crawl_enes": (30000, 30000),
    "wmt14_fren": (40835840, 40827181), "wmt16_csen": (52335360, 52325532),
    "wmt16_deen": (4548800, 4548675), "wmt16_fien": (2073360, 2073357),
    "wmt16_roen": (610320, 610320), "wmt16_ruen": (2516160, 2516137),
    "wmt16_tren": (205750, 205750), "bool_q": (9220, 9220), "drop": (77200, 77021),
    "multirc": (27040, 27040), "openbookqa": (4950, 4950), "squad_v1": (87390, 87390),
    "squad_v2": (130110, 130109), "cosmos_qa": (25060, 25060), "record": (100520, 100520),
    "definite_pronoun_resolution": (1120, 1120), "winogrande": (40190, 40190),
    "wsc": (500, 500), "coqa": (7090, 7077), "quac": (83360, 79325), "wic": (5220, 5220),
    "trec": (5250, 5250), "cola": (8350, 8350), "math_dataset": (1999780, 1999780),
    "fix_punct": (28070, 28070), "true_case": (29260, 29260), "word_segment": (30000, 30000),
    "aeslc": (14430, 14275), "cnn_dailymail": (287040, 198109), "gigaword": (2044370, 2044370),
    "multi_news": (44960, 3118), "newsroom": (994560, 646889), "samsum": (14730, 14730),
    "xsum": (203560, 192545), "ag_news_subset": (119800, 119800),
    "opinion_abstracts_rotten_tomatoes": (3130, 3130),
    "opinion_abstracts_idebate": (1650, 1650), "wiki_lingua_english_en": (99000, 96918),
}


def _entries() -> list[Entry]:
    entries = []
    for spec in flan2021.SPECS:
        if spec.eval_only:
            continue
        if spec.name not in RELEASE_COUNTS:
            raise ValueError(f"flan2022: FLAN 2021 dataset `{spec.name}` has no release count "
                             "in tasks/flan2022/flan2021_submix.py RELEASE_COUNTS.")
        entries.append(Entry(dataclasses.replace(spec, collection=COLLECTION),
                             RELEASE_COUNTS[spec.name]))
    return entries


ENTRIES: list[Entry] = _entries()
