"""Flan 2022 mixtures: seqio's rates give the five submixture weights and min(cap, count) per
task, the top mixture is refused while a submixture is empty, evaluation-only datasets never
train, Dialog renders (and inverts) TFDS mock data, and the CLI lists and shows the tasks."""

import dataclasses

import pytest
import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

import tasks  # noqa: F401 - registers the collections
from flan_jax import tasks_cli
from tasks import catalogue, flan2021, sources, templates
from tasks.flan2022 import dialog, flan2021_submix, mixing
from tasks.flan2022 import styles as st
from tests.tasks.fake_specs import spec as fake_spec
from tests.tasks.flan_checks import ALL_TEMPLATES

C = "fl22mix"
# (submixture, dataset, release counts) of the stand-in collection: counts above and below caps.
FIXTURE = (
    ("flan2021", "f_small", (1200, 1100)), ("flan2021", "f_big", (90_000, 80_000)),
    ("t0", "t_small", (700, 700)), ("t0", "t_big", (50_000, 50_000)),
    ("niv2", "n_one", (6500, 6500)), ("niv2", "n_two", (3000, 2900)),
    ("cot", "c_one", (7470, 7470)), ("cot", "c_big", (150_000, 150_000)),
    ("dialog", "d_one", (10170, 10170)), ("dialog", "d_big", (11_264_000, 11_263_998)),
)


def _entries(subs):
    groups = {}
    for sub, name, counts in FIXTURE:
        if sub in subs:
            groups.setdefault(sub, []).append(
                mixing.Entry(fake_spec(name, sub, collection=C), counts))
            if sub in ("cot", "dialog"):
                groups[sub].append(mixing.Entry(fake_spec(name + "_inv", sub, collection=C),
                                                counts, inverted=True))
    evalonly = dataclasses.replace(fake_spec("f_evalonly", "flan2021", collection=C),
                                   eval_only=True)
    groups.setdefault("flan2021", []).append(mixing.Entry(evalonly, (500, 500)))
    return groups


@pytest.fixture(scope="module")
def full():
    info = mixing.register(_entries(mixing.SUBMIXTURES), seqio.ByteVocabulary(), replace=True,
                           collection=C)
    yield info
    catalogue.forget_collection(C)


def _rates(mixture):
    m = seqio.get_mixture_or_task(mixture)
    total = sum(m.get_rate(t) for t in m.tasks)
    return {t.name: m.get_rate(t) / total for t in m.tasks}


def test_top_mixture_rates_are_the_five_weights(full):
    rates = _rates(mixing.top_mixture_name(C))
    for sub, declared in mixing.SUBMIXTURES.items():
        members = {t.name for t in seqio.get_mixture_or_task(
            mixing.submixture_name(sub, None, C)).tasks}
        assert sum(rates[t] for t in members) == pytest.approx(declared.weight, abs=1e-3)
    assert sum(rates.values()) == pytest.approx(1.0)
    assert {0.40, 0.32, 0.20, 0.05, 0.03} == {s.weight for s in mixing.SUBMIXTURES.values()}


@pytest.mark.parametrize("sub", list(mixing.SUBMIXTURES))
def test_each_task_gets_min_cap_count_within_its_style_and_styles_split_evenly(full, sub):
    declared = mixing.SUBMIXTURES[sub]
    sub_rates = _rates(mixing.submixture_name(sub, None, C))
    for style in declared.styles:
        assert sum(r for n, r in sub_rates.items() if catalogue.task_info(n).style == style) \
            == pytest.approx(1 / len(declared.styles))
        m = seqio.get_mixture_or_task(mixing.submixture_name(sub, style, C))
        got = {t.name: m.get_rate(t) for t in m.tasks}
        expected = {}
        for s, name, (zs, fs) in FIXTURE:
            if s != sub:
                continue
            rate = min(declared.cap, fs if st.STYLES[style].few_shot else zs)
            expected[mixing.task_name(name, style, C)] = rate
            if sub in ("cot", "dialog"):
                expected[mixing.task_name(name + "_inv", style, C)] = 0.3 * rate
        assert got == pytest.approx(expected)


def test_eval_only_datasets_never_enter_a_training_mixture(full):
    assert not [n for n in catalogue.task_names(C) if "f_evalonly" in n]
    real = catalogue.collection_info("flan2022")
    assert "wsc273" not in {s.name for s in real.specs if not s.eval_only} | {
        catalogue.task_info(n).dataset for n in catalogue.task_names("flan2022")}
    for mixture in catalogue.mixture_names("flan2022"):
        for spec in catalogue.dataset_specs(mixture):
            assert not spec.eval_only, (mixture, spec.name)


def test_top_mixture_is_refused_while_a_submixture_is_empty():
    name = "fl22part"
    mixing.register(_entries(("flan2021", "cot", "dialog")), seqio.ByteVocabulary(),
                    replace=True, collection=name)
    try:
        assert mixing.submixture_name("cot", None, name) in seqio.MixtureRegistry.names()
        with pytest.raises(catalogue.UnknownTaskError) as e:
            catalogue.get_task_or_mixture(mixing.top_mixture_name(name))
        text = str(e.value)
        assert "fl22part_t0_submix" in text and "fl22part_niv2_submix" in text
        assert "t0.py" in text and "niv2.py" in text and "fl22part_cot_submix" in text
    finally:
        catalogue.forget_collection(name)
    assert mixing.top_mixture_name(name) not in catalogue.UNBUILDABLE


def test_real_collection_rates_follow_the_release_counts():
    part2 = all(mixing.load_entries(mixing.SUBMIXTURES[s]) for s in ("t0", "niv2"))
    if not part2:  # T0-SF and NIv2 land in part 2: until then the top mixture is refused
        with pytest.raises(catalogue.UnknownTaskError, match="flan2022_t0_submix"):
            catalogue.get_task_or_mixture("flan2022_submix")
    m = seqio.get_mixture_or_task("flan2022_flan2021_submix_fs_opt")
    rates = {t.name: m.get_rate(t) for t in m.tasks}
    assert rates["flan2022_rte_fs_opt"] == 2290
    assert rates["flan2022_multi_news_fs_opt"] == 3118  # its few-shot count
    assert rates["flan2022_gigaword_fs_opt"] == 30_000  # capped
    assert len(rates) == len(flan2021_submix.ENTRIES) == len(flan2021.SPECS) - 1  # not WSC273
    m = seqio.get_mixture_or_task("flan2022_cot_submix_cot")
    rates = {t.name: m.get_rate(t) for t in m.tasks}
    assert rates["flan2022_esnli_cot"] == 36170
    assert rates["flan2022_esnli_inverted_cot"] == pytest.approx(0.3 * 36170)
    assert len(rates) == 18
    m = seqio.get_mixture_or_task("flan2022_dialog_submix_zs_noopt")
    assert {t.name: m.get_rate(t) for t in m.tasks} == pytest.approx({
        "flan2022_wiki_dialog_zs_noopt": 200_000, "flan2022_qrecc_zs_noopt": 10170,
        "flan2022_wiki_dialog_inverted_zs_noopt": 60_000,
        "flan2022_qrecc_inverted_zs_noopt": 3051})


def test_dialog_fields_pick_a_turn_and_its_context():
    turns = tf.constant(["hi, who sang it?", "Kesha did.", "When?", "In 2009.", "Thanks"])
    f = {k: v.numpy().decode() for k, v in dialog.dialog_fields(turns, 3, tf.constant("k")).items()}
    first, second = f["dialog"].split(":")[0], f["next_speaker"]
    assert f["dialog"] == (f"{first}: hi, who sang it?\n{second}: Kesha did.\n{first}: When?")
    assert (f["next_turn"], f["previous_turn"], f["previous_speaker"]) == ("In 2009.", "When?",
                                                                           first)
    assert f["earlier"] == f"{first}: hi, who sang it?\n{second}: Kesha did."


def _examples(task, n):
    # Mocked turn ids must be free to exceed 6 (QReCC keeps later turns only).
    with tfds.testing.mock_data(num_examples=n, policy=tfds.testing.MockPolicy.USE_CODE):
        ds = seqio.get_mixture_or_task(task).get_dataset(None, split="train", shuffle=False)
        return [(ex["inputs_pretokenized"].decode(), ex["targets_pretokenized"].decode())
                for ex in ds.as_numpy_iterator()]


def test_dialog_inversion_swaps_the_reply_and_the_turn_before_it():
    original = _examples("flan2022_qrecc_zs_noopt", 6)
    inverted = _examples("flan2022_qrecc_inverted_zs_noopt", 6)
    assert original and len(original) == len(inverted)
    for (inputs, target), (inv_inputs, inv_target) in zip(original, inverted):
        assert target in inv_inputs and inv_target not in inv_inputs
        assert inv_target in inputs and target not in inputs


def test_tasks_list_shows_styles_and_show_renders_a_cot_task_offline(capsys):
    assert tasks_cli.main(["list", "--collection", "flan2022"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert "STYLE" in header
    rows = [line.split() for line in out.splitlines()[1:]]
    styles = {r[header.index("STYLE")] for r in rows if r[0].startswith("flan2022_")}
    assert styles == {"zs_opt", "zs_noopt", "fs_opt", "fs_noopt", "cot", "fs_cot"}
    # The held-out benchmarks (MMLU, BBH) are evaluation tasks of the collection, no style.
    assert {r[header.index("STYLE")] for r in rows if not r[0].startswith("flan2022_")} == {"-"}
    assert tasks_cli.main(["show", "flan2022_gsm8k_cot", "--mock", "-n", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("=== flan2022_gsm8k_cot [train] example") == 3
    assert "question 0 of flan2022_cot_gsm8k train" in out


def test_gigaword_drops_records_with_unk_or_hash_as_the_release():
    spec = next(s for s in flan2021_submix.ENTRIES if s.spec.name == "gigaword").spec

    def kept(text, headline):
        return bool(spec.filter_fn({"text": tf.constant(text),
                                    "headline": tf.constant(headline)}))

    assert kept("stocks rose on monday in tokyo", "tokyo stocks up")
    assert not kept("the UNK minister resigned", "minister resigns")
    assert not kept("prices rose ##.# percent\nin may", "prices up")
    assert not kept("prices rose", "prices up # percent")


@pytest.mark.parametrize("task", ["flan2022_copa_fs_opt", "flan2022_squad_v1_zs_opt",
                                  "flan2022_anli_r1_zs_noopt", "flan2022_wiki_dialog_fs_noopt"])
def test_styles_render_tfds_mock_data(task):
    examples = _examples(task, 8)
    assert examples and all(inputs.strip() and target.strip() for inputs, target in examples)
    if "_fs_" in task:
        assert all(templates.FEWSHOT_EXEMPLAR_SEPARATOR in inputs for inputs, _ in examples)


@pytest.mark.all_templates
@pytest.mark.skipif(not ALL_TEMPLATES, reason="set FLAN_TEST_ALL_TEMPLATES=1 (minutes)")
def test_every_flan2022_task_renders_mock_data():
    """Every task of the Flan 2021, CoT and Dialog submixtures; of T0-SF and NIv2 (3,884 tasks
    over the same few fixture files, hours to build all) a seeded sample of 40."""
    import random

    from tasks.flan2022 import mock_files

    train = [n for n in catalogue.task_names("flan2022")
             if catalogue.task_info(n).split == "train"]  # MMLU, BBH: test_flan2022_heldout.py
    file_backed = [n for n in train if "_niv2_" in n or "_t0_" in n or n.startswith(
        ("flan2022_niv2", "flan2022_t0", "flan2022_task"))]
    rest = [n for n in train if n not in set(file_backed)]
    names = rest + random.Random(0).sample(file_backed, min(40, len(file_backed)))
    for name in names:
        with sources.mock_text_files(8), mock_files.active():
            examples = _examples(name, 8)
        assert all(inputs.strip() and target.strip() for inputs, target in examples), name


def test_tasks_show_without_the_cot_files_says_to_prepare_them(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "text_file_dir", lambda: str(tmp_path))
    assert tasks_cli.main(["show", "flan2022_gsm8k_inverted_fs_cot", "-n", "1"]) == 2
    err = capsys.readouterr().err
    assert "flan2022_cot_gsm8k" in err and "flan-jax data prepare" in err
    assert tasks_cli.main(["show", "flan2022_submix"]) == 2  # built (part 2): files missing
    assert "flan-jax data prepare flan2022_submix" in capsys.readouterr().err


def test_real_submixtures_with_stand_ins_for_t0_and_niv2_give_the_five_weights():
    name = "fl22real"
    groups = {sub: mixing.load_entries(s) for sub, s in mixing.SUBMIXTURES.items()}
    stand_ins = _entries(("t0", "niv2"))
    for sub in ("t0", "niv2"):
        groups[sub] = groups[sub] or stand_ins[sub]
    mixing.register(groups, seqio.ByteVocabulary(), replace=True, collection=name)
    try:
        # leaf_rates walks the nesting once (seqio's get_rate per task is quadratic: minutes
        # over the real T0-SF and NIv2's 3,884 tasks).
        rates = tasks_cli.leaf_rates(seqio.get_mixture_or_task(mixing.top_mixture_name(name)))
        for sub, declared in mixing.SUBMIXTURES.items():
            members = {x.name for x in seqio.get_mixture_or_task(
                mixing.submixture_name(sub, None, name)).tasks}
            share = sum(r for t, r in rates.items() if t in members)
            assert share == pytest.approx(declared.weight, abs=1e-3), sub
        # Within the CoT submixture's `cot` style: GSM8K at 7,470 against e-SNLI at 36,170.
        assert rates[f"{name}_gsm8k_cot"] / rates[f"{name}_esnli_cot"] == pytest.approx(
            7470 / 36170)
    finally:
        catalogue.forget_collection(name)
