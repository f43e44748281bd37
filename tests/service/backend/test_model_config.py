from pathlib import Path

from service.backend.model_config import read_model_config, served_models
from service.settings import PROJECT_ROOT

CONFIG = """
model_config_list {
  config { name: "m" base_path: "/models/m" model_platform: "tensorflow" %s }
}
"""


def _layout(tmp_path: Path, policy: str, versions: list[int]) -> Path:
    for v in versions:
        (tmp_path / "m" / str(v)).mkdir(parents=True)
        (tmp_path / "m" / str(v) / "saved_model.pb").write_bytes(b"")
    (tmp_path / "m" / "tmp-notaversion").mkdir()
    config = tmp_path / "models.config"
    config.write_text(CONFIG % policy)
    return config


def test_shipped_config_parses_and_serves_every_shipped_version() -> None:
    config_file = PROJECT_ROOT / "models" / "models.config"
    config = read_model_config(config_file)
    for entry in config.model_config_list.config:
        assert entry.model_version_policy.WhichOneof("policy_choice") == "all"
    models = served_models(config_file)
    assert [model.name for model in models] == ["residual_gru", "restoration"]  # the codec and its filter
    for model in models:
        on_disk = sorted(int(p.name) for p in model.base_path.iterdir() if p.name.isdigit())
        assert list(model.versions) == on_disk and on_disk


def test_version_policies(tmp_path: Path) -> None:
    assert served_models(_layout(tmp_path / "a", "model_version_policy { all {} }", [1, 2, 3]))[
        0
    ].versions == (1, 2, 3)
    assert served_models(_layout(tmp_path / "b", "", [1, 2, 3]))[0].versions == (3,)
    latest = "model_version_policy { latest { num_versions: 2 } }"
    assert served_models(_layout(tmp_path / "c", latest, [1, 2, 3]))[0].versions == (2, 3)
    specific = "model_version_policy { specific { versions: 1 versions: 3 } }"
    assert served_models(_layout(tmp_path / "d", specific, [1, 2, 3]))[0].versions == (1, 3)
