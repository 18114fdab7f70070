"""Regression tests for the bugs the reliability attacks found in other modules (one test per fix)."""

from edge.frames import Event, Reading, parse, seal


def test_a_device_id_of_only_dashes_and_underscores_is_read_as_the_board_allows_it():
    # the board's settings accept device_id "--" (1-16 of A-Z a-z 0-9 _ -); the edge used to reject every frame
    for dev in ("-", "__", "_-_"):
        r = parse(seal(f"$FD1,R,{dev},1,1000,0.50,VOL,1.000,L/min,1.000,NORMAL,1,0000,00"))
        assert isinstance(r, Reading) and r.device == dev
    e = parse(seal("$FD1,E,b1,2,2000,_,text"))
    assert isinstance(e, Event) and e.code == "_"
