"""A second serial port on the emulated Pico (`firedamp board --target rp2040 --console-link`, which the demo's
operator uses): the board's output reaches both ports, a console line typed on either reaches the board, and
a port nobody has open holds up neither the other port nor the board."""

from hardware.rp2040.board import Probe


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
