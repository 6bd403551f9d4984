"""Names renamed for the field's terms keep working for one release, with a warning."""

from __future__ import annotations

import numpy as np
import pytest

from w2sbench.errors import W2SBenchError
from w2sbench.interfaces import Examples, PropertyData


def _data(**extra: object) -> PropertyData:
    pool = Examples(["a", "b"], ["good", "bad"], np.array([1, 0]))
    return PropertyData(train=pool, tests={"t": pool}, main_test="t", **extra)  # type: ignore[arg-type]


def test_property_data_resources_is_the_old_name_of_auxiliary():
    assert _data().auxiliary == {}
    with pytest.warns(DeprecationWarning, match="renamed auxiliary"):
        old = _data(resources={"names": [1, 2]})
    assert old.auxiliary == {"names": [1, 2]}
    with pytest.warns(DeprecationWarning, match="PropertyData.resources is renamed auxiliary"):
        assert old.resources is old.auxiliary
    assert _data(auxiliary={"hygiene": {"kept": 3}}).auxiliary == {"hygiene": {"kept": 3}}


def test_a_run_dir_recorded_before_an_option_rename_is_the_same_run(tmp_path):
    from w2sbench.files import atomic_write_json
    from w2sbench.run_dir import claim_run_dir
    from w2sbench.settings import RunSettings

    def settings(options: dict) -> RunSettings:
        return RunSettings(pair="p", weak="w", strong="s", metrics=("adversarial",), strategies=("vanilla",), seeds=(0,),
                           finetune_weak="head", finetune_strong="head", options={"adversarial": options})

    run = tmp_path / "run"
    claim_run_dir(run, settings({"epsilon": 0.05, "steps": 1}))  # as the release before the rename recorded it
    (run / "results.json").write_text("{}")
    renamed = {"adversarial": {"radius": "epsilon"}}
    claim_run_dir(run, settings({"radius": 0.05, "steps": 1}), renamed_options=renamed)  # not refused
    atomic_write_json(run / "run.json", settings({"epsilon": 0.05, "steps": 1}).as_dict())
    with pytest.raises(W2SBenchError) as info:  # a changed value is still a different run
        claim_run_dir(run, settings({"radius": 0.1, "steps": 1}), renamed_options=renamed)
    assert info.value.problem.endswith("holds a run with different settings (options.adversarial.radius: 0.05 -> 0.1).")
