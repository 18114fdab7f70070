"""A fake `machine` module for CPython and the MicroPython unix port: the firmware runs unchanged on it.

Put `hardware/twin` first on the path (sys.path or MICROPYPATH) and `firmware/board.py`'s `import machine`
finds this file. Everything the outside world does to a board is a plain method here:

- `Pin(id)`: `value()` reads what the firmware drove (outputs) or what the test set (`pin.set(v)` for
  inputs); `pin.irq(handler=...)` stores the handler; `pin.edge()` fires it once (the caller sets the clock
  first, since the firmware's IRQ handler timestamps with its injected clock). `Pin.get(id)` finds the pin
  object the firmware built, so a test or the virtual board can reach it by pin number.
- `ADC(id)`: `read_u16()` returns what `adc.set_u16(v)` (or `ADC.set(id, v)`) stored; default 0. With
  `ADC.noise` set (an `adc_noise.AdcNoise`), each read is drawn from that model of the RP2040's ADC instead.
- `WDT(timeout=ms)`: records `feeds`; `WDT.last` is the most recent instance. It never resets anything:
  the test or the virtual board checks `feeds` / `last_feed` against its own clock.
- `I2C(id, ...)`: fails with OSError on every transfer unless `I2C.devices` holds an address (then writes
  are recorded in `I2C.written`, the newest 64); the firmware's display must survive either case.
- `reset_cause()` returns `RESET_CAUSE` (settable); `disable_irq()/enable_irq()` are no-ops.
No imports beyond builtins, so it loads on both interpreters.
"""

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
RESET_CAUSE = PWRON_RESET


def reset_cause():
    return RESET_CAUSE


def disable_irq():
    return 0


def enable_irq(state=0):
    return None


def freq(hz=None):
    return 125_000_000


def unique_id():
    return b"\xfd\x00\x00\x00\x00\x00\x00\x01"


def idle():
    return None


def reset():
    raise SystemExit("machine.reset()")


def soft_reset():
    raise SystemExit("machine.soft_reset()")


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 4
    IRQ_RISING = 8

    _all = {}

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self._value = 0 if value is None else (1 if value else 0)
        self.handler = None
        self.trigger = 0
        self.hard = False
        self.writes = 0  # how many times the firmware drove this pin
        Pin._all[id] = self

    @classmethod
    def get(cls, id):
        """The pin object the firmware built for `id` (KeyError if it built none)."""
        return cls._all[id]

    @classmethod
    def clear(cls):
        """Forget every pin (between tests)."""
        cls._all = {}

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            self.mode = mode
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0
        self.writes += 1
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __call__(self, v=None):
        return self.value(v)

    def set(self, v):
        """Drive an input from outside (a test or the virtual board)."""
        self._value = 1 if v else 0

    def irq(self, handler=None, trigger=IRQ_RISING, hard=False):
        self.handler = handler
        self.trigger = trigger
        self.hard = hard
        return None

    def edge(self, n=1):
        """Fire the IRQ handler n times (as n edges at the current clock)."""
        h = self.handler
        if h is not None:
            for _ in range(n):
                h(self)


class ADC:
    ATTN_0DB = 0
    ATTN_11DB = 3
    WIDTH_12BIT = 12
    CORE_TEMP = 4

    _values = {}
    noise = None  # an adc_noise.AdcNoise (or anything with read_u16(v)): each read drawn from it; None: exact

    def __init__(self, id, atten=None):
        self.id = id.id if isinstance(id, Pin) else id
        self.reads = 0

    @classmethod
    def set(cls, id, value):
        """Set the 16-bit value an ADC on `id` returns (even before the firmware built it)."""
        cls._values[id] = int(value) & 0xFFFF

    @classmethod
    def clear(cls):
        cls._values = {}

    def set_u16(self, value):
        ADC._values[self.id] = int(value) & 0xFFFF

    def read_u16(self):
        self.reads += 1
        v = ADC._values.get(self.id, 0)
        if ADC.noise is not None:
            return ADC.noise.read_u16(v)
        return v

    def atten(self, a):
        return None


class WDT:
    last = None

    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0
        WDT.last = self

    def feed(self):
        self.feeds += 1


class I2C:
    devices = []  # addresses that answer; empty = nothing on the bus
    written = []  # the newest KEEP transfers (a long run must fit the RP2040-sized heap of the tests)
    KEEP = 64

    @classmethod
    def _record(cls, data):
        cls.written.append(bytes(data))
        if len(cls.written) > cls.KEEP:
            cls.written.pop(0)

    def __init__(self, id=0, scl=None, sda=None, freq=400_000):
        self.id = id

    def scan(self):
        return list(I2C.devices)

    def _check(self, addr):
        if addr not in I2C.devices:
            raise OSError(19)  # ENODEV, as a missing device gives on the board

    def writeto(self, addr, buf, stop=True):
        self._check(addr)
        I2C._record(buf)
        return len(buf)

    def writevto(self, addr, vector, stop=True):
        self._check(addr)
        n = 0
        for b in vector:
            I2C._record(b)
            n += len(b)
        return n

    def readfrom_mem(self, addr, memaddr, n):
        self._check(addr)
        return bytes(n)


class SoftI2C(I2C):
    pass


class Timer:
    PERIODIC = 1
    ONE_SHOT = 0

    def __init__(self, id=-1, **kw):
        self.kw = kw

    def init(self, **kw):
        self.kw = kw

    def deinit(self):
        return None


class UART:
    def __init__(self, id, baudrate=115200, **kw):
        self.id = id
        self.rx = bytearray()
        self.tx = bytearray()

    def any(self):
        return len(self.rx)

    def read(self, n=-1):
        if not self.rx:
            return None
        n = len(self.rx) if n is None or n < 0 else n
        out = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return out

    def write(self, b):
        self.tx.extend(b)
        return len(b)
