"""Names renamed for the field's terms keep working for one release, with a warning."""

from __future__ import annotations

import numpy as np
import pytest

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
