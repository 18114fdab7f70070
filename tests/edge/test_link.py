"""Link stage over real pseudo-terminals: lines, the length cap, unplug/replug (socat) and unplug mid-frame."""

import queue
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.frames import Decoder
from edge.link import LineSplitter, PortReader
from tests.helpers import board_line


def frame(seq: int) -> bytes:
    return board_line(seq, ch4=0.52, flow=1.0, total=2.0)


def start_reader(device: str):
    """A PortReader with the backoff the service uses (its defaults)."""
    lines: queue.Queue = queue.Queue()
    status: queue.Queue = queue.Queue()
    reader = PortReader(device, lambda p, line, t: lines.put(line), lambda p, up, d: status.put((up, time.monotonic(), d)))
    reader.start()
    return reader, lines, status


def drain(q: queue.Queue, n: int, timeout: float = 3.0) -> list:
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        try:
            out.append(q.get(timeout=0.05))
        except queue.Empty:
            pass
    return out


def test_splitter_caps_line_length_and_keeps_in_sync():
    s = LineSplitter(max_len=16)
    out = s.feed(b"short\r\n" + b"x" * 40 + b"\nnext\n")
    assert out[0] == b"short" and len(out[1]) == 17 and out[2] == b"next"
    assert s.too_long == 1
    # fed byte by byte, the same
    s2 = LineSplitter(max_len=16)
    got = [line for b in (b"short\r\n" + b"x" * 40 + b"\nnext\n") for line in s2.feed(bytes([b]))]
    assert got == out


def test_lines_arrive_over_a_pty_and_over_long_lines_are_rejected(pty_pair):
    p = pty_pair()
    reader, lines, status = start_reader(p.device)
    try:
        assert drain(status, 1)[0][0] is True
        p.write(frame(1) + b"$FD1," + b"9" * 300 + b"\n" + frame(2))
        got = drain(lines, 3)
        d = Decoder()
        frames = [d.decode(line) for line in got]
        assert [f.seq for f in frames if f] == [1, 2]
        assert d.rejected["too_long"] == 1
    finally:
        reader.stop()


def test_unplug_and_replug_resume_within_two_seconds_and_mid_frame_bytes_never_become_a_reading(socat_pty):
    line = socat_pty()
    reader, lines, status = start_reader(line.device)
    try:
        assert drain(status, 1)[0][0] is True
        line.write(frame(1))
        assert drain(lines, 1) == [frame(1).rstrip(b"\n")]
        half = frame(2)[:30]
        line.write(half)  # unplugged mid-frame
        time.sleep(0.1)
        line.unplug()
        lost = drain(status, 1)
        assert lost and lost[0][0] is False
        time.sleep(2.5)  # unplugged long enough for the backoff to reach its longest wait
        t_replug = time.monotonic()
        line.replug()
        up = drain(status, 1, timeout=3)
        assert up and up[0][0] is True
        assert up[0][1] - t_replug < 2.0
        line.write(frame(3) + frame(4))
        d = Decoder()
        got = [d.decode(x) for x in drain(lines, 2)]
        assert [f.seq for f in got if f] == [3, 4]
        assert reader.stats.reconnects == 1 and reader.stats.partial_lines_dropped == 1
    finally:
        reader.stop()



@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(1, 80), max_size=20))
def test_splitter_gives_the_same_lines_however_the_bytes_are_chunked(data, cuts):
    whole = LineSplitter(max_len=32).feed(data)
    s = LineSplitter(max_len=32)
    got, pos = [], 0
    for n in cuts:
        got += s.feed(data[pos:pos + n])
        pos += n
    got += s.feed(data[pos:])
    assert got == whole
    assert all(len(line) <= 33 and b"\n" not in line for line in got)


def test_frames_the_board_sent_before_the_port_was_opened_are_read_not_flushed(pty_pair):
    """The edge stopped (or not yet started) while the board kept sending: the kernel holds those bytes, and
    they are frames with sequence numbers like any other (pyserial's open() would flush them)."""
    board = pty_pair()
    board.write(b"".join(frame(k) for k in range(1, 6)))  # written before anybody opened the port
    reader, lines, status = start_reader(board.device)
    try:
        got = drain(lines, 5)
        assert [Decoder().decode(x + b"\n").seq for x in got] == [1, 2, 3, 4, 5]
    finally:
        reader.stop()
