"""A second serial port on the emulated Pico (`firedamp board --target rp2040 --console-link`, which the demo's
operator uses): the board's output reaches both ports, a console line typed on either reaches the board, and
a port nobody has open holds up neither the other port nor the board."""

import json
import shutil
import signal
import subprocess
import sys
import time

from hardware.rp2040.board import Probe, board_settings


def test_the_console_port_sees_the_boards_frames_and_its_commands_reach_the_board(board, tmp_path):
    b = board()
    port = b.pico.add_link(tmp_path / "console")
    console = Probe(str(port.path))
    try:
        # the same readings (same sequence numbers) on both ports
        r = console.reading(lambda r: r.state != "WARMUP", 60, "a reading on the console port")
        same = b.probe.wait(lambda f: f.type == "R" and f.seq == r.seq, 60, f"reading {r.seq} on the main port")
        assert same == r
        # typed on the console port: the board answers (on both ports, as a USB CDC line shared by two hosts)
        start = b.probe.mark()
        wrong = console.console("unlock 0000")
        assert wrong.status == "ERR", wrong
        seen = b.probe.wait(lambda f: f.type == "C" and f.status == "ERR", 60, "the reply on the main port", start)
        assert seen.seq == wrong.seq
        assert console.console("unlock 1234").status == "OK"
        # typed on the main port: the board answers too
        assert b.probe.console("lock").status == "OK"
    finally:
        console.close()
    # nobody on the console port now: the main port keeps getting fresh frames and the console still answers
    n = b.probe.mark()
    last = b.probe.frames[-1].seq
    b.probe.wait(lambda f: f.type == "R" and f.seq >= last + 3, 60, "three more readings", n)
    assert b.probe.console("status").status == "OK"
    assert port.dropped > 0  # what the board sent while the console port was closed was dropped, not queued


def test_firedamp_board_target_rp2040_console_link_and_record(golden_flash, tmp_path):
    """The command the demo starts: `firedamp board --target rp2040 --console-link ... --record ...` on a board
    that has the firmware already (the golden image, as a board's --flash folder)."""
    folder = tmp_path / "board.flash"
    folder.mkdir()
    shutil.copyfile(golden_flash("ma"), folder / "pico-flash.bin")
    (folder / "pico-instruments.json").write_text(json.dumps(board_settings("emu-1", "ma", warmup_s=0, display=0)))
    link, console_link, record = tmp_path / "pico", tmp_path / "pico-console", tmp_path / "pins.jsonl"
    log = tmp_path / "board.log"
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "board", "--target", "rp2040", "--link", str(link),
                             "--console-link", str(console_link), "--flash", str(folder), "--record", str(record),
                             "--seconds", "600"], stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    main = console = None
    try:
        deadline = time.monotonic() + 120
        while f"console link {console_link}" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        main, console = Probe(str(link)), Probe(str(console_link))
        r = main.reading(lambda r: r.state == "NORMAL", 60, "NORMAL on the main port")
        assert console.wait(lambda f: f.type == "R" and f.seq == r.seq, 60, "the same reading on the console") == r
        assert console.console("unlock 1234").status == "OK"
        assert main.console("lock").status == "OK"
    finally:
        for p in (main, console):
            if p is not None:
                p.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert "emulated Pico stopped after" in log.read_text(), log.read_text()[-1500:]
    pins = [json.loads(line) for line in record.read_text().splitlines()]
    assert {p["pin"] for p in pins} == {"relay", "buzzer", "beacon"}
    assert [p["value"] for p in pins if p["pin"] == "relay"][-1] == 1  # power on in clean air
