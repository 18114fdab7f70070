"""Row 5, firmware cost on the MicroPython binary: µs per control-loop iteration, bytes allocated per steady
iteration, free heap under an RP2040-sized heap.

The measurement is the FIRMWARE engineer's bench/firmware_loop.py (the unchanged firmware on the fake
`machine`, `micropython -X heapsize=192k`); this module only runs it and lays out its figures. The
reference is the loop's own period (firmware setting loop_period_ms, 100 ms): the work must fit in it on
the board, where MicroPython runs roughly 30-60× slower than on this x86 core.
"""

from __future__ import annotations

GOAL_ALLOC_BYTES = 0.0
GOAL_FRAME_ALLOC_BYTES = 200.0  # issue 17: an iteration that sends an R frame allocates less than this
LOOP_PERIOD_MS = 100  # firmware default loop_period_ms (DESIGN: control loop 10 Hz)


def measure(quick: bool = False) -> dict:
    from bench.firmware_loop import measure as fw_measure

    r = fw_measure()
    r["loop_period_ms"] = LOOP_PERIOD_MS
    r["goal_alloc_bytes"] = GOAL_ALLOC_BYTES
    r["goal_met"] = bool(r["quiet_alloc_bytes_max"] == 0 and r["heap_locked_ok"])
    r["goal_frame_alloc_bytes"] = GOAL_FRAME_ALLOC_BYTES
    r["frame_goal_met"] = bool(r["frame_alloc_bytes_mean"] < GOAL_FRAME_ALLOC_BYTES)
    return r


def table(r: dict) -> list[tuple[str, str, str, str]]:
    return [
        (f"firmware loop µs/iteration on MicroPython {r['micropython']} (x86): median (worst), quiet | with a frame",
         f"{r['quiet_median_us']} ({r['quiet_worst_us']}) | {r['frame_median_us']} ({r['frame_worst_us']})",
         f"loop period {r['loop_period_ms']} ms (RP2040 ~30-60× slower than this core)", ""),
        ("firmware bytes allocated per steady iteration: quiet (mean; max) | with an R frame",
         f"{r['quiet_alloc_bytes_mean']:.1f}; {r['quiet_alloc_bytes_max']} | {r['frame_alloc_bytes_mean']:.0f}",
         f"{r['quiet_iterations_allocating']} of {r['quiet_iterations']} quiet iterations allocated; "
         f"100 under heap_lock(): {'ok' if r['heap_locked_ok'] else 'MemoryError'}",
         "0 " + ("met" if r["goal_met"] else "NOT met (quiet loop)") + f" | < {r['goal_frame_alloc_bytes']:.0f} "
         + ("met" if r["frame_goal_met"] else "NOT met")),
        (f"firmware free heap under -X heapsize={r['heap']}: at start | controller built",
         f"{r['heap_free_start']:,} | {r['heap_free_built']:,} bytes",
         f"firmware + controller use {r['heap_free_start'] - r['heap_free_built']:,} bytes; "
         f"{r['heap_free_commands']:,} while the console is unlocked (commands.py loaded), "
         f"{r['heap_free_relocked']:,} after it locked again", ""),
    ]
