"""Local history: raw readings for raw_days, per-minute min/mean/max for longer, pruned in small steps;
`firedamp history --csv` writes a CSV that the models' CSV reader (train/evaluate) accepts."""

import time
from pathlib import Path

import pytest

from edge import cli
from edge.frames import Reading
from edge.history import History, parse_time


def reading(seq, ch4=0.5, flow=10.0, state="NORMAL", device="b1"):
    return Reading(device, seq, seq * 1000, ch4, "VOL", flow, "m3/min", 1.0, state, 1, 0, 0)


def test_minutes_aggregate_and_raw_rows_expire_before_minutes(tmp_path):
    now = 1_800_000_000.0
    h = History(tmp_path / "h.sqlite", raw_days=1, minute_days=90)
    old = now - 3 * 86400
    h.write([(reading(i, ch4=0.1 * i, flow=i), old + i) for i in range(1, 6)], now=old + 10)
    h.write([(reading(i, ch4=None if i == 3 else 1.0, state="ALARM" if i == 2 else "NORMAL"), now - 30 + i)
             for i in range(1, 5)], now=now)
    assert h.raw("b1", 0, now + 1)[0][0] == now - 29  # the old raw rows are gone ...
    mins = h.minutes("b1", 0, now + 1)
    m0 = mins[0]  # ... their minute stays: min/mean/max over 5 readings
    assert m0[1] == pytest.approx(0.1) and m0[2] == pytest.approx(0.3) and m0[3] == pytest.approx(0.5)
    assert m0[4] == 1 and m0[6] == 5 and m0[-1] == 5
    assert any(m[9] == "ALARM" for m in mins[1:])
    h.close()


def test_pruning_is_done_in_small_steps(tmp_path):
    now = 1_800_000_000.0
    h = History(tmp_path / "h.sqlite", raw_days=1)
    h.write([(reading(i), now - 5 * 86400 + i) for i in range(1200)], now=now - 5 * 86400 + 2000)
    assert h.prune(now) == 500 + 0 and h.prune(now) == 500 and h.prune(now) == 200 and h.prune(now) == 0
    h.close()


def test_history_csv_is_read_by_the_training_csv_reader(tmp_path, capsys):
    from models.csvdata import read_csv

    db = tmp_path / "h.sqlite"
    h = History(db)
    t0 = time.time() - 120
    h.write([(reading(i, ch4=0.4 + i / 100, flow=10 + i, state="ALARM" if i == 5 else "NORMAL"), t0 + i)
             for i in range(10)] + [(reading(3, device="other"), t0)])
    h.write([(reading(10, ch4=None), t0 + 10)])
    h.close()
    assert cli.main(["history", "--db", str(db), "--device", "b1", "--since", "1h", "--csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "time,ch4,flow,label"
    path = tmp_path / "b1.csv"
    path.write_text(out)
    table = read_csv(path, columns=["ch4", "flow"], label_column="label")
    assert table.x.shape == (11, 2) and table.x[3, 0] == pytest.approx(0.43) and table.x[3, 1] == 13
    assert list(table.label) == [0] * 5 + [1] + [0] * 4 + [1]  # not NORMAL, or no reading
    assert cli.main(["evaluate", "--data", str(path), "--label-column", "label"]) == 0  # the real command takes it
    capsys.readouterr()
    assert cli.main(["history", "--db", str(db), "--device", "b1", "--since", "1h", "--minutes", "--csv",
                     "--all-columns"]) == 0
    assert capsys.readouterr().out.startswith("time,ch4,flow,label,ch4_min")
    assert read_csv(path).columns == ["ch4", "flow"]  # what train takes by default: no text columns in the way
    assert cli.main(["history", "--db", str(db), "--device", "nobody", "--since", "1h"]) == 1
    assert "no readings for 'nobody'" in capsys.readouterr().err


def test_since_accepts_relative_and_iso_times_and_rejects_nonsense():
    assert parse_time("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_time("2026-11-20T10:00") == parse_time("2026-11-20T10:00+00:00")
    with pytest.raises(Exception, match="not understood"):
        parse_time("last tuesday")


def test_every_since_form_named_in_the_help_is_accepted_and_bad_times_are_one_clear_line(tmp_path, capsys):
    now = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    assert [parse_time(x, now=now) for x in ("90s", "30m", "12h", "1.5h", "7d", "2w", "now", " 7D ")] == [
        now - 90, now - 1800, now - 43200, now - 5400, now - 7 * 86400, now - 14 * 86400, now, now - 7 * 86400]
    day = 1_795_132_800.0  # 2026-11-20T00:00:00Z
    assert parse_time("2026-11-20") == day
    assert parse_time("2026-11-20T10:00") == parse_time("2026-11-20 10:00") == parse_time("2026-11-20T10:00Z") \
        == day + 36000
    assert parse_time("2026-11-20 10:00:30") == day + 36030
    assert parse_time("2026-11-20T10:00+02:00") == day + 28800
    parser, _ = cli.build_parser("history")
    text = " ".join(parser.format_help().split())
    for form in ("90s", "30m", "12h", "1.5h", "7d", "2w", "2026-11-20,", "2026-11-20T10:00,", "'2026-11-20 10:00:30'",
                 "2026-11-20T10:00+02:00", "UTC", "now"):
        assert form in text, form  # the help names what parse_time accepts
    db = tmp_path / "h.sqlite"
    History(db).close()
    (tmp_path / "not-a-db.sqlite").write_text("hello\n")
    assert cli.main(["history", "--db", str(tmp_path / "not-a-db.sqlite"), "--device", "b1"]) == 1
    assert capsys.readouterr().err.startswith("firedamp: cannot read the history database")
    for since, until, says in (("99999999999d", None, "before 1970 or after 9999"),
                               ("yesterday", None, "not understood; use a span back from now"),
                               ("2026-11-21", "2026-11-20", "is not before --until")):
        args = ["history", "--db", str(db), "--device", "b1", "--since", since] + (["--until", until] if until else [])
        assert cli.main(args) == 1
        err = capsys.readouterr().err
        assert err.startswith("firedamp: ") and says in err and "Traceback" not in err, err


def test_history_as_a_user_who_may_not_read_the_database_is_one_clear_line():
    """The service's state directory is 0750 firedamp:firedamp; another user gets a hint, not a traceback.

    The command runs as `nobody` from a copy of the code in a world-readable temp folder, with the base
    interpreter and no site-packages, so it works from a checkout in any folder (a clone in a 0700 `mktemp -d`
    is unreadable to nobody). The same user first reads the same database when it may, so the refusal is the
    permission's doing and not a broken set-up."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run the command as another user")
    root = Path(__file__).resolve().parents[2]
    base = Path(tempfile.mkdtemp(prefix="firedamp-nobody-"))
    try:
        os.chmod(base, 0o755)
        for pkg in ("edge", "firedamp"):  # what `firedamp history` imports (the standard library apart)
            shutil.copytree(root / pkg, base / "code" / pkg, ignore=shutil.ignore_patterns("__pycache__", "demo"))
        for d, _, files in os.walk(base / "code"):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(Path(d) / f, 0o644)
        data = base / "state"
        data.mkdir()
        h = History(data / "history.sqlite")
        h.write([(Reading("b1", 7, 7000, 0.41, "VOL", 12.0, "m3/min", 3.0, "NORMAL", 1, 0, 0), time.time() - 60)])
        h.close()
        for f in data.iterdir():
            os.chmod(f, 0o666)  # (the command opens the database read-write, as the service's user would)
        python = os.path.realpath(sys.executable)  # the base interpreter, not a venv nobody may not reach

        def history_as_nobody():
            return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-S", "-m",
                                   "edge.cli", "history", "--db", str(data / "history.sqlite"), "--device", "b1"],
                                  capture_output=True, text=True, timeout=60, cwd=base / "code",
                                  env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(base / "code")})

        os.chmod(data, 0o777)
        ok = history_as_nobody()
        assert ok.returncode == 0 and "0.41" in ok.stdout, ok.stdout + ok.stderr  # it may: it reads
        os.chmod(data, 0o750)
        out = history_as_nobody()
        assert out.returncode == 1, out.stderr
        assert out.stderr.startswith("firedamp: cannot read the history database") and "sudo -u firedamp" in \
            out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)
