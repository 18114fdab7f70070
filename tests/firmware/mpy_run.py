"""Tiny test runner for the MicroPython unix port (no unittest there): runs every test_* in the fw_* files.

MICROPYPATH=firmware:hardware/twin:tests/firmware micropython -X heapsize=192k tests/firmware/mpy_run.py
Prints one line per test and a summary; exits 1 if any test failed.
"""

import gc
import sys

# fw_console first: compiling a big test file needs contiguous RAM, and the largest compiles best into the
# heap before the others have fragmented it (with it after fw_controller, the 192 KB heap had 85 KB free
# but no 2 KB hole for it once the firmware grew by the A frame's settings)
MODULES = ("fw_console", "fw_protocol", "fw_alarm", "fw_flow", "fw_methane", "fw_controller", "fw_settings",
           "fw_display", "fw_process", "fw_battery")


def main(names):
    passed = failed = 0
    for modname in MODULES:
        gc.collect()  # compiling from source needs contiguous RAM: start each import from a clean heap
        mod = __import__(modname)
        for name in sorted(dir(mod)):
            if not name.startswith("test_") or (names and name not in names):
                continue
            gc.collect()
            try:
                getattr(mod, name)()
            except Exception as exc:  # noqa: BLE001 - report and go on
                failed += 1
                print("FAIL %s.%s: %s %s" % (modname, name, type(exc).__name__, exc))
                sys.print_exception(exc)
            else:
                passed += 1
                gc.collect()
                print("ok   %s.%s (heap free %d)" % (modname, name, gc.mem_free()))
        del sys.modules[modname]  # done with it: its code is garbage, room to compile the next one
        mod = None
    gc.collect()
    print("micropython: %d passed, %d failed, heap free %d" % (passed, failed, gc.mem_free()))
    return failed


if __name__ == "__main__":
    sys.exit(1 if main(sys.argv[1:]) else 0)
