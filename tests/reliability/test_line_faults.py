"""Line faults against the in-process edge service on real ptys: unplug/replug in a row, a board rebooting in
a loop, a board flooding the line with garbage next to a healthy one, and two boards claiming one device id.

What the edge does about a shared device id (decided here, documented in docs/mqtt.md and docs/safety.md):
it raises a `duplicate_id` alert naming both ports while frames under that id arrive on more than one port
within `silent_after_s`, keeps reporting every frame (an alarm from either board is never dropped), tracks
sequence numbers per port so the two boards' counters do not look like reboots or lost frames, and clears
the alert when only one port has sent that id for `silent_after_s`.
"""

import os
import random
import threading
import time

import pytest

from edge.config import parse_config
from edge.service import Service
from tests.helpers import board_event, board_line
from tests.helpers import wait_for as _wait_for

REPLUGS = int(os.environ.get("FIREDAMP_REPLUGS", "30"))


def reading(device, seq, uptime_ms=None, state="NORMAL", ch4=0.4):
    up = seq * 1000 + 5000 if uptime_ms is None else uptime_ms
    return board_line(seq, state, ch4, device, relay=1, flow=10.0, total=1.0, uptime_ms=up)


def wait_for(pred, timeout=10.0):
    return _wait_for(pred, timeout, interval=0.01)


def settle(svc, timeout=5.0):
    """Wait until the pipeline has committed (and so announced) the alerts of every line read so far."""
    assert wait_for(lambda: svc.q.qsize() == 0, timeout)
    time.sleep(0.3)  # the batch in hand: decode, policy, outbox commit, observers


def open_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def service(edge_config):
    made = []

    def make(ports, **sections):
        sections.setdefault("model", {"enabled": False})
        svc = Service(parse_config(edge_config(None, ports, **sections)))
        alerts = []
        svc.add_observer(lambda kind, data: alerts.append(data) if kind == "alert" else None)
        svc.alerts = alerts
        made.append(svc)
        return svc.start()

    yield make
    for s in made:
        s.stop()


def test_unplug_and_replug_in_a_row_every_frame_read_no_leak(service, socat_pty):
    line = socat_pty("board")
    svc = service([line.device])
    assert svc.wait_ready(mqtt=False)
    reader = svc.readers[0]
    fds0, threads0 = open_fds(), threading.active_count()
    for k in range(REPLUGS):
        line.write(reading("b1", k))
        assert wait_for(lambda k=k: svc.decoder.ok == k + 1, 5), f"frame {k} not read after replug {k}"
        line.unplug()
        assert wait_for(lambda: not reader.stats.up, 5)
        line.replug()
        assert wait_for(lambda: reader.stats.up, 5), f"not reconnected after replug {k + 1}"
    line.write(reading("b1", REPLUGS))
    assert wait_for(lambda: svc.decoder.ok == REPLUGS + 1)
    settle(svc)
    assert svc.decoder.rejected_total == 0 and svc.decoder.lost_frames == 0 and svc.decoder.reboots == 0
    assert reader.stats.reconnects == REPLUGS
    links = [(a.state, a.kind) for a in svc.alerts if a.kind == "link"]
    assert links == [("raised", "link"), ("cleared", "link")] * REPLUGS  # one lost/restored pair per unplug
    assert open_fds() <= fds0 + 1 and threading.active_count() == threads0


def test_a_board_rebooting_in_a_loop_gives_one_reboot_alert_per_restart_and_no_false_loss(service, pty_pair):
    board = pty_pair()
    svc = service([board.device])
    assert svc.wait_ready(mqtt=False)
    boots = 40
    for b in range(boots):  # BOOT event, warm-up, then an alarm, then the watchdog resets it again
        board.write(board_event(0, "BOOT", "fw 0.1.0 reset=watchdog", "loop-1", uptime_ms=3 + b % 5)
                    + reading("loop-1", 1, 100, "WARMUP", None) + reading("loop-1", 2, 900, "ALARM", 1.2))
        assert wait_for(lambda b=b: svc.decoder.ok == 3 * (b + 1), 5)
    settle(svc)
    reboots = [a for a in svc.alerts if a.kind == "reboot"]
    alarms = [a.state for a in svc.alerts if a.kind == "alarm"]
    assert len(reboots) == boots - 1 and all(a.details["lost"] == 0 for a in reboots)
    assert svc.decoder.rejected_total == 0 and svc.decoder.lost_frames == 0
    assert not [a for a in svc.alerts if a.kind == "frames_lost"]
    assert alarms == ["raised", "cleared"] * (boots - 1) + ["raised"]  # WARMUP after each reset clears it


def test_a_board_flooding_garbage_does_not_starve_its_neighbour_or_grow_memory(service, pty_pair):
    noisy, healthy = pty_pair(), pty_pair()
    svc = service([noisy.device, healthy.device])
    assert svc.wait_ready(mqtt=False)
    rng = random.Random(3)
    junk = bytes(rng.randrange(256) for _ in range(1 << 16))
    stop = threading.Event()
    sent = [0]

    def flood():
        while not stop.is_set():
            try:
                noisy.write(junk)
            except OSError:
                return
            sent[0] += len(junk)

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        for k in range(200):
            healthy.write(reading("calm-1", k))
            time.sleep(0.005)
        assert wait_for(lambda: svc.decoder.ok >= 200, 10)
    finally:
        stop.set()
        t.join(5)
    got = svc.policy.last["calm-1"]
    assert got.seq == 199 and svc.decoder.lost_frames == 0
    assert sent[0] > 4 << 20, "the flood was too small to mean anything"
    assert svc.readers[0].stats.bytes > 1 << 20 and svc.decoder.rejected_total > 1000
    assert len(svc.readers[0].splitter._buf) <= 130  # the line buffer never grows past one line
    assert set(svc.policy.last) == {"calm-1"}  # garbage never became a device


def test_two_boards_claiming_one_device_id_raise_duplicate_id_and_nothing_is_merged_silently(service, pty_pair):
    a, b = pty_pair(), pty_pair()
    svc = service([a.device, b.device], policy={"silent_after_s": 2})
    assert svc.wait_ready(mqtt=False)
    for k in range(10):  # two boards, both configured as "face-1", different counters and uptimes
        a.write(reading("face-1", 100 + k, 900_000 + k * 1000))
        b.write(reading("face-1", k, 5000 + k * 1000, "ALARM" if k >= 5 else "NORMAL", 1.1 if k >= 5 else 0.4))
        time.sleep(0.02)
    assert wait_for(lambda: svc.decoder.ok == 20)
    settle(svc)
    dup = [x for x in svc.alerts if x.kind == "duplicate_id"]
    assert [x.state for x in dup] == ["raised"] and dup[0].severity == "critical"
    assert sorted(dup[0].details["ports"]) == sorted([a.device, b.device])
    assert a.device in dup[0].message and b.device in dup[0].message
    # the two counters are not taken for reboots or lost frames, and the alarm of the second board is reported
    assert svc.decoder.reboots == 0 and svc.decoder.lost_frames == 0
    assert not [x for x in svc.alerts if x.kind in ("reboot", "frames_lost")]
    assert "raised" in [x.state for x in svc.alerts if x.kind == "alarm"]
    # one board is renamed (only `a` keeps sending under the id): the alert clears after silent_after_s
    for k in range(10, 40):
        a.write(reading("face-1", 100 + k, 900_000 + k * 1000))
        time.sleep(0.1)
    assert wait_for(lambda: [x.state for x in svc.alerts if x.kind == "duplicate_id"] == ["raised", "cleared"], 5)


def test_the_edge_never_writes_to_a_board_whatever_it_reads(service, pty_pair):
    """The board decides safety: alarms, power-off, anomalies and faults never make the edge send a byte."""
    board = pty_pair()
    svc = service([board.device], model={"enabled": True})
    assert svc.wait_ready(mqtt=False, timeout=15)
    lines = [reading("b1", k, ch4=0.4 + 0.3 * (k % 7)) for k in range(80)]  # erratic: model complains
    lines += [reading("b1", 80, state="ALARM", ch4=1.2), reading("b1", 81, state="POWEROFF", ch4=1.6),
              board_line(82, "FAULT", None, flow=0.0, total=1.0, faults=0x11, flags=3, uptime_ms=87000)]
    board.write(b"".join(lines))
    assert wait_for(lambda: svc.decoder.ok == 83)
    settle(svc)
    assert {a.kind for a in svc.alerts} >= {"alarm", "power_off", "fault"}
    os.set_blocking(board.master, False)
    try:
        written = os.read(board.master, 4096)
    except BlockingIOError:
        written = b""
    assert written == b"", f"the edge wrote to the board: {written[:80]!r}"
