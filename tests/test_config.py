"""Gin loading: files import what they configure, flags, and readable errors."""

import subprocess
import sys

import gin
import pytest

from flan_jax import config


def test_split_gin_bindings_accepts_both_spellings():
    bindings, rest = config.split_gin_bindings(
        ["--gin.TRAIN_STEPS=5", "--mode", "x", "--gin.MODEL_DIR", "'/tmp/a'"])
    assert bindings == ["TRAIN_STEPS = 5", "MODEL_DIR = '/tmp/a'"]
    assert rest == ["--mode", "x"]
    with pytest.raises(config.GinConfigError, match="needs a value"):
        config.split_gin_bindings(["--gin.TRAIN_STEPS"])


def test_parse_command_parses_files_bindings_and_extra_flags():
    def extra(parser):
        parser.add_argument("--flag", type=int, default=0)

    args = config.parse_command("prog", ["--gin_file=models/t5_tiny.gin", "--flag=3",
                                         "--gin.VOCAB_SIZE=259"], add_arguments=extra)
    assert args.flag == 3 and args.gin_bindings == ["VOCAB_SIZE = 259"]
    assert gin.query_parameter("%VOCAB_SIZE") == 259


def test_parse_command_uses_default_files_and_can_require_one():
    config.parse_command("prog", [], default_files=["models/decoder_tiny.gin"])
    assert gin.query_parameter("TransformerConfig.family") == "decoder_only"
    with pytest.raises(SystemExit):
        config.parse_command("prog", [], require_files=True)


def test_unknown_file_and_selector_suggest_close_matches():
    with pytest.raises(config.GinConfigError, match="Did you mean: models/t5_tiny.gin"):
        config.parse_gin(["models/t5_tinny.gin"])
    with pytest.raises(config.GinConfigError, match="Did you mean: TransformerConfig.emb_dim[,?]"):
        config.parse_gin(["models/t5_tiny.gin"], ["TransformerConfig.emb_dimm = 3"])
    with pytest.raises(config.GinConfigError, match="Did you mean: TransformerConfig[,?]"):
        config.parse_gin(["models/t5_tiny.gin"], ["TransformerConfg.emb_dim = 3"])


@gin.configurable(module="test_config")
def _shape(width: int = 1, height: int = 2):
    return width, height


def test_a_configurable_bound_only_in_a_users_file_is_suggested(tmp_path):
    mine = tmp_path / "mine.gin"
    mine.write_text("_shape.width = 4\n_shape.heigth = 5\n")
    with pytest.raises(config.GinConfigError, match="Did you mean: _shape.height"):
        config.parse_gin([str(mine)])


def test_includes_are_found_in_the_search_paths_before_the_repository(tmp_path, monkeypatch,
                                                                    caplog):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "run.gin").write_text("include 'hardware/cpu.gin'\n_shape.width = 5\n")
    config.parse_gin(["run.gin"], search_paths=[str(tmp_path / "mine")])
    assert _shape() == (5, 2)  # hardware/cpu.gin came from the repository's gin/ folder
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    (tmp_path / "mine" / "hardware").mkdir()
    (tmp_path / "mine" / "hardware" / "cpu.gin").write_text("_shape.height = 7\n")
    config.parse_gin(["run.gin"], search_paths=[str(tmp_path / "mine")])
    assert _shape() == (5, 7)  # the search path's own hardware/cpu.gin wins
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hardware").mkdir()
    (tmp_path / "hardware" / "cpu.gin").write_text("_shape.height = 8\n")
    config.parse_gin(["mine/run.gin"], search_paths=[str(tmp_path / "mine")])
    assert _shape() == (5, 8)  # and the current directory comes first, as for --gin_file
    gin.clear_config()


def test_is_bound_reads_the_parsed_config():
    config.parse_gin(["models/t5_tiny.gin"], finalize=False)
    assert config.is_bound("TransformerConfig")
    assert not config.is_bound("_shape")
    assert not config.is_bound("no_such_configurable")
    gin.clear_config()


def test_a_model_file_imports_only_the_model_config():
    """Parsing a model gin file imports neither the trainer, evaluation, tasks nor TensorFlow."""
    code = ("import sys\nfrom flan_jax import config\n"
            "config.parse_gin(['models/t5_tiny.gin', 'optimizers/adafactor.gin', 'hardware/gpu.gin'])\n"
            "bad = [m for m in ('tensorflow', 'seqio', 'tasks', 'flan_jax.train', "
            "'flan_jax.evaluate', 'flan_jax.experiments') if m in sys.modules]\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_a_missing_data_extra_is_named():
    error = ModuleNotFoundError("No module named 'seqio'", name="seqio")
    message = config.explain_import(error)
    assert message == ("a gin file imports a module that needs seqio, which is not installed: "
                       "tasks, `data prepare` and `eval` need the `data` extra (`pip install "
                       "'flan-jax[data]'`, or `make install`).")


def test_a_misspelled_macro_is_refused_with_a_suggestion():
    with pytest.raises(config.GinConfigError,
                       match="macro VOCAB_SIZZE is bound but nothing uses it. Did you mean: "
                             "VOCAB_SIZE"):
        config.parse_gin(["models/t5_tiny.gin"], ["VOCAB_SIZZE = 259"])
    config.parse_gin(["models/t5_tiny.gin"], ["VOCAB_SIZE = 259"])  # the right name is fine


def test_the_documented_macros_are_accepted():
    config.parse_gin(["runs/demo.gin"], ["TRAIN_STEPS = 3", "BATCH_SIZE = 8", "VOCAB_SIZE = 259",
                                         "MODEL_DIR = '/x'", "COMPUTE_DTYPE = 'float32'"])
    assert config.bound_or("train.train_steps", None) == 3
    assert config.bound_or("DataConfig.batch_size", None) == 8
    assert config.bound_or("train.model_dir", None) == "/x"
    config.parse_gin(["runs/eval.gin"], ["CHECKPOINT_PATH = '/x'", "EVAL_MIXTURES = 'a'"])
    assert config.bound_or("evaluate.checkpoint_path", None) == "/x"
    assert config.bound_or("evaluate.mixtures", None) == "a"


def test_config_imports_nothing_from_tasks():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(config))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not [m for m in imported if m == "tasks" or m.startswith("tasks.")]


def test_the_import_hook_runs_before_gin_locks_and_sees_the_config():
    seen = []

    def imports(files, bindings):
        seen.append(config.peek(files, bindings, lambda: config.bound_or("%VOCAB_SIZE", None)))
        assert not gin.config_is_locked()

    config.parse_gin(["models/t5_tiny.gin"], ["VOCAB_SIZE = 77"], imports=imports)
    assert seen == [77] and gin.query_parameter("%VOCAB_SIZE") == 77
    assert config.peek(["models/t5_tiny.gin"], ["VOCAB_SIZE = oops("], lambda: 1, "bad") == "bad"


def test_run_command_exit_codes_and_one_line_messages(capsys):
    from flan_jax.errors import TrainingError, UserError

    def run_raising(error):
        def run(args):
            raise error
        return config.run_command("prog", ["--gin_file=models/t5_tiny.gin"], run,
                                  distributed=False)

    assert config.run_command("prog", ["--gin_file=models/t5_tiny.gin"], lambda a: 3,
                              distributed=False) == 3
    assert run_raising(UserError("bad flag: use another")) == 2
    assert capsys.readouterr().err == "prog: bad flag: use another\n"
    assert run_raising(TrainingError("loss is nan")) == 1
    assert capsys.readouterr().err == "prog: loss is nan\n"
    assert run_raising(KeyError("unknown task `x`")) == 2
    assert capsys.readouterr().err == "prog: unknown task `x`\n"
    assert config.run_command("prog", ["--gin_file=models/t5_tinny.gin"], lambda a: 0,
                              distributed=False) == 2
    assert capsys.readouterr().err.startswith("prog: gin file 'models/t5_tinny.gin' not found")

    def refuse(args):
        raise config.GinConfigError("no model is configured")

    assert config.run_command("prog", ["--gin_file=models/t5_tiny.gin"], lambda a: 0,
                              check=refuse, distributed=False) == 2
    assert capsys.readouterr().err == "prog: no model is configured\n"
    with pytest.raises(ValueError):  # not a user error unless the command says so
        run_raising(ValueError("x"))
    assert config.run_command("prog", ["--gin_file=models/t5_tiny.gin"],
                              lambda a: (_ for _ in ()).throw(ValueError("v")),
                              distributed=False, user_errors=(ValueError,)) == 2


@pytest.mark.parametrize("value", ["/tmp/run", "'/tmp/run", "/tmp/run'", "\"/tmp/run"])
def test_an_unquoted_or_half_quoted_string_names_the_binding_and_the_quoting(value):
    bindings, _ = config.split_gin_bindings([f"--gin.MODEL_DIR={value}"])
    with pytest.raises(config.GinConfigError) as error:
        config.parse_gin(["runs/demo.gin"], bindings)
    assert str(error.value) == (
        f"--gin.MODEL_DIR={value} is not a gin value. Quote a string for gin inside the shell's "
        "quotes: --gin.MODEL_DIR=\"'/tmp/run'\".")
    config.parse_gin(["runs/demo.gin"], ["MODEL_DIR = '/tmp/run'"])  # the quoted one is fine
