"""The fuzz loop shared by every target: generate, check against the target's oracle, count, time, report.

A target is a module with `NAME`, `generate(rng) -> bytes` and `check(data) -> str`. `check` returns
"accepted" or the rejection reason; it raises `Violation` when the parser's answer breaks a promise (a bad
input accepted, a good input refused, an accepted value out of its documented range). Any other exception
is a crash; an input that takes longer than `hang_s` is a hang. Both are kept (first few) with the input.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field


class Violation(AssertionError):
    """The parser's answer breaks a documented promise (not a crash: the oracle caught it)."""


class Hang(Exception):
    pass


@dataclass
class Stats:
    name: str
    inputs: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    crashes: list[tuple[bytes, str]] = field(default_factory=list)
    violations: list[tuple[bytes, str]] = field(default_factory=list)
    hangs: list[bytes] = field(default_factory=list)
    crash_count: int = 0
    violation_count: int = 0
    max_input_ms: float = 0.0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.crash_count or self.violation_count or self.hangs)

    def lines(self) -> list[str]:
        out = [f"{self.name}: {self.inputs} inputs in {self.seconds:.1f} s, accepted {self.accepted}, "
               f"rejected {sum(self.rejected.values())}, crashes {self.crash_count}, "
               f"oracle violations {self.violation_count}, hangs {len(self.hangs)}, "
               f"slowest input {self.max_input_ms:.1f} ms"]
        for reason, n in sorted(self.rejected.items(), key=lambda kv: -kv[1]):
            out.append(f"    rejected {reason}: {n}")
        for data, err in self.crashes[:3]:
            out.append(f"    CRASH {err} on {repr(data)[:120]}")
        for data, err in self.violations[:3]:
            out.append(f"    VIOLATION {err} on {repr(data)[:120]}")
        for data in self.hangs[:3]:
            out.append(f"    HANG on {repr(data)[:120]}")
        return out


def _on_alarm(signum, frame):  # noqa: ARG001
    raise Hang()


def run(target, n: int, seed: int = 0, hang_s: float = 2.0, inputs=None) -> Stats:
    """Feed `n` generated inputs (or the given `inputs`) to `target.check`; never raises."""
    rng = random.Random(seed)
    stats = Stats(target.NAME)
    old = signal.signal(signal.SIGALRM, _on_alarm)
    t_start = time.perf_counter()
    try:
        for k in range(n if inputs is None else len(inputs)):
            data = target.generate(rng) if inputs is None else inputs[k]
            stats.inputs += 1
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, hang_s)
            try:
                outcome = target.check(data)
            except Hang:
                stats.hangs.append(data)
                continue
            except Violation as exc:
                stats.violation_count += 1
                if len(stats.violations) < 10:
                    stats.violations.append((data, str(exc)[:300]))
                continue
            except Exception as exc:  # noqa: BLE001 - a crash is what we are looking for
                stats.crash_count += 1
                if len(stats.crashes) < 10:
                    stats.crashes.append((data, f"{type(exc).__name__}: {str(exc)[:200]}"))
                continue
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            ms = (time.perf_counter() - t0) * 1000
            stats.max_input_ms = max(stats.max_input_ms, ms)
            if outcome == "accepted":
                stats.accepted += 1
            else:
                stats.rejected[outcome] += 1
    finally:
        signal.signal(signal.SIGALRM, old)
        stats.seconds = time.perf_counter() - t_start
    return stats


# ---------------------------------------------------------------------------------------------- mutation

TOKENS = [b",", b"*", b"$", b"\x00", b"\r", b"\n", b"-", b".", b" ", b"nan", b"inf", b"-0", b"1e999", b"0x10",
          b"1_0", b"\xff", b"\xc3\xa9", "\u0663".encode(), b"99999999999999999999999", b"4294967296", b"-1",
          b"[" * 50, b"{", b"}", b'"', b"\\", b"'", b"=", b"#"]


def mutate(data: bytes, rng: random.Random, rounds: int = 0) -> bytes:
    """A few random byte-level edits: flip, insert, delete, duplicate, splice a token."""
    b = bytearray(data)
    for _ in range(rounds or rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randint(0, len(b))
        if op == 0 and b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[pos:pos] = bytes([rng.randrange(256)])
        elif op == 2 and b:
            del b[pos:pos + rng.randint(1, 8)]
        elif op == 3 and b:
            i = rng.randrange(len(b))
            b[pos:pos] = b[i:i + rng.randint(1, 16)]
        elif op == 4:
            b[pos:pos] = rng.choice(TOKENS)
        else:
            if b:
                i = rng.randrange(len(b))
                b[i] = rng.choice(b"0123456789abcdefABCDEF,*$-. ")
    return bytes(b)


def random_bytes(rng: random.Random, max_len: int = 200) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, max_len)))
