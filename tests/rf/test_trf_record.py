"""TheoreticalRF provenance (``source``, ``global_from``) and the measured-support record,
whose ``interval`` knows only the probed unit."""

import json

import pytest
from torch import nn

from erf.rf import TheoreticalRF, theoretical_rf


def _measured() -> TheoreticalRF:
    return TheoreticalRF(
        size=(5, 6), stride=(0, 0), padding=(0, 0), input_shape=(32, 32), out_shape=(8, 8),
        source="measured_support", box=((10, 14), (3, 8)), unit=(4, 4),
    )  # fmt: skip


def test_a_measured_record_returns_its_box_for_the_probed_unit_only():
    trf = _measured()
    assert trf.interval((4, 4)) == ((10, 14), (3, 8))
    assert trf.interval((4, 4), clipped=True) == ((10, 14), (3, 8))
    assert trf.center_offset == (12.0, 5.5)
    with pytest.raises(ValueError, match=r"measured support of unit \(4, 4\) only"):
        trf.interval((0, 0))
    d = json.loads(json.dumps(trf.to_dict()))
    assert d["source"] == "measured_support" and d["box"] == [[10, 14], [3, 8]]


def test_exact_records_say_where_they_come_from():
    chain = theoretical_rf([(3, 1, 1), (3, 2, 0)])
    assert chain.source == "closed_form" and chain.at("0").source == "closed_form"
    assert chain.global_from is None and chain.box is None


class _Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        return self.fc(self.pool(self.conv(x)).flatten(1))


def test_a_global_graph_trf_names_the_first_global_node():
    trf = theoretical_rf(_Head(), (1, 16, 16), target="pool")
    assert trf.source == "graph" and trf.is_global and trf.global_from == "pool"
    assert theoretical_rf(_Head(), (1, 16, 16), target="fc").global_from == "pool"
    local = theoretical_rf(_Head(), (1, 16, 16), target="conv")
    assert local.source == "graph" and local.global_from is None
