"""The fleet bench's load generator (bench/fleet.py, row 10) publishes exactly what edges publish: the edge's own
topic and telemetry payload, accepted by the control room's checker as telemetry of the right board, boards
interleaved in time order at 1 Hz. (The row itself runs in tests/bench/test_bench_smoke.py with --quick.)"""

from __future__ import annotations

import json

from bench.fleet import telemetry
from control.messages import Checker, Telemetry
from edge.config import parse_config
from edge.publisher import Publisher


def test_the_load_generator_publishes_what_an_edge_publishes():
    msgs = telemetry("fd", boards=40, seconds=3, t0=1.7e9)
    assert len(msgs) == 120
    checker = Checker("fd")
    parsed = [checker.check(t, p) for t, p in msgs]
    assert all(isinstance(m, Telemetry) for m in parsed), checker.rejected
    assert sum(checker.rejected.values()) == 0
    assert [m.device for m in parsed[:40]] == [f"b{b:05d}" for b in range(40)]  # every board once a second
    assert [m.seq for m in parsed if m.device == "b00007"] == [0, 1, 2]
    assert all(a.ts < b.ts for a, b in zip(parsed, parsed[1:], strict=False))  # in time order

    # the edge's publisher would use the same topic for that board, and its payload keys are the edge's
    edge = Publisher(parse_config({"site": "site-0", "mqtt": {"topic_prefix": "fd"}, "boards": []}), outbox=None)
    assert msgs[0][0] == edge._topic("b00000", "telemetry")
    assert set(json.loads(msgs[0][1])) >= {"device", "time", "ts", "seq", "uptime_ms", "ch4", "unit", "flow",
                                           "flow_unit", "total", "state", "relay", "faults", "flags"}
