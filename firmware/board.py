"""Pin maps and the hardware objects built from them: the only firmware module that imports `machine`.

`PINMAPS["pico"]` (Raspberry Pi Pico / RP2040, the first board) and `PINMAPS["esp32"]` (ESP32 DevKitC, the
second) name every signal's GPIO number. hardware/pinmap.md shows the same table; a test checks they agree.
`Board(name)` builds the real objects; on CPython or the MicroPython unix port, hardware/twin/machine.py
stands in for `machine` (put it first on the path) and the same code builds fakes.
"""

import machine

# signal: GPIO number. "ch4_adc" takes the analog voltage or the 4-20 mA shunt voltage.
PINMAPS: dict[str, dict[str, int]] = {
    "pico": {
        "ch4_adc": 26,     # ADC0: methane analog voltage or 4-20 mA shunt (150 ohm)
        "ch4_freq": 14,    # 200-1000 Hz methane sensor output (opto-isolated, pulled up)
        "flow_pulse": 15,  # flow meter / anemometer pulses (pulled up, RC + clamp)
        "relay": 16,       # relay driver transistor: 1 = energised = power allowed
        "buzzer": 17,      # buzzer driver transistor
        "beacon": 18,      # beacon driver transistor
        "relay_sense": 19,  # relay auxiliary contact to GND (self-test read-back)
        "i2c_sda": 4,      # I2C0 SDA: SSD1306 OLED
        "i2c_scl": 5,      # I2C0 SCL
        "uart_tx": 0,      # UART0 TX: optional RS-485/UART link instead of USB
        "uart_rx": 1,      # UART0 RX
        "led": 25,         # on-board LED: heartbeat
        "pressure_adc": 27,     # ADC1: gas pressure transmitter, 4-20 mA through its own shunt (shunt_ohm)
        "temperature_adc": 28,  # ADC2: gas temperature, NTC thermistor divider (ntc_series_ohm from ADC_VREF)
    },
    "esp32": {
        "ch4_adc": 36,     # ADC1_CH0 (VP), 11 dB attenuation
        "ch4_freq": 34,    # input only: external pull-up required
        "flow_pulse": 35,  # input only: external pull-up required
        "relay": 26,
        "buzzer": 25,
        "beacon": 27,
        "relay_sense": 32,
        "i2c_sda": 21,
        "i2c_scl": 22,
        "uart_tx": 17,     # UART2
        "uart_rx": 16,
        "led": 2,
        "pressure_adc": 39,     # ADC1_CH3 (VN), 11 dB attenuation
        "temperature_adc": 33,  # ADC1_CH5, 11 dB attenuation
    },
}

# ADC channel reading the supply through the Pico's on-board VSYS/3 divider (brown-out detection, and the
# battery of a portable board); the ESP32 DevKitC has no such divider, so there a brown-out shows only as the
# reset cause and no battery can be configured.
VSYS_ADC = {"pico": 29, "esp32": None}


class StdioStream:
    """The USB CDC serial link as a non-blocking byte stream (read() -> bytes or None, write(bytes)).

    A host that keeps the port open but stops reading would make each write wait (500 ms per write on
    the rp2 port) until the watchdog cut power: so a frame is written only when the link polls writable,
    and otherwise dropped and counted in `dropped` (the edge sees the gap in `seq`).
    """

    def __init__(self):
        import select
        import sys

        self._in = getattr(sys.stdin, "buffer", sys.stdin)
        self._out = getattr(sys.stdout, "buffer", sys.stdout)
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self._wpoll = select.poll()
        self._wpoll.register(sys.stdout, select.POLLOUT)
        self._buf = bytearray(64)
        self.dropped = 0

    def read(self):
        """What the host has sent, up to 64 bytes (a whole command line per loop iteration), or None."""
        buf = self._buf
        n = 0
        while n < 64:
            ready = False
            for _ in self._poll.ipoll(0):  # ipoll: no list allocated when nothing is waiting
                ready = True
            if not ready:
                break
            c = self._in.read(1)
            if not c:
                break
            buf[n] = c[0]  # type: ignore[assignment]  # stdin.buffer gives bytes; the stubs say str
            n += 1
        return bytes(buf[:n]) if n else None

    def write(self, data):
        for _ in self._wpoll.ipoll(0):
            self._out.write(data)
            return
        self.dropped += 1


class UartStream:
    """A UART (e.g. through an RS-485 transceiver) as the same non-blocking byte stream."""

    def __init__(self, uart):
        self._uart = uart

    def read(self):
        if self._uart.any():
            return self._uart.read()
        return None

    def write(self, data):
        self._uart.write(data)


class Board:
    """Every hardware object the controller needs, built from one pin map.

    name: "pico" or "esp32". stream: a byte stream; if None, link "usb" (USB CDC stdio) or "uart" (the
    pin map's UART at `baud`, e.g. to an RS-485 transceiver). root: folder for settings files.
    """

    def __init__(self, name="pico", stream=None, root="/", link="usb", baud=115200):
        if name not in PINMAPS:
            raise ValueError("board must be one of " + ", ".join(sorted(PINMAPS)))
        pm = PINMAPS[name]
        self.name = name
        self.pins = pm
        self.root = root
        Pin = machine.Pin
        self.ch4_adc = self._adc(pm["ch4_adc"])
        self.ch4_freq_pin = self._input(pm["ch4_freq"])
        self.flow_pin = self._input(pm["flow_pulse"])
        # outputs start low: relay de-energised = power cut until the controller decides otherwise
        self.relay = Pin(pm["relay"], Pin.OUT, value=0)
        self.buzzer = Pin(pm["buzzer"], Pin.OUT, value=0)
        self.beacon = Pin(pm["beacon"], Pin.OUT, value=0)
        self.led = Pin(pm["led"], Pin.OUT, value=0)
        self.relay_sense = Pin(pm["relay_sense"], Pin.IN, Pin.PULL_UP)  # contact closes to GND when energised
        vsys = VSYS_ADC[name]
        self.vsys_adc = None if vsys is None else self._adc(vsys)
        self.vsys_divider = 3  # Pico: VSYS/3 on ADC3
        if stream is None:
            stream = self.uart_stream(baud) if link == "uart" else StdioStream()
        self.stream = stream
        # reset cause number -> text for the BOOT event (a table made here: it is read once, at start)
        self.reset_cause = {
            getattr(machine, "PWRON_RESET", -1): "power",
            getattr(machine, "HARD_RESET", -2): "hard",
            getattr(machine, "WDT_RESET", -3): "watchdog",
            getattr(machine, "DEEPSLEEP_RESET", -4): "deepsleep",
            getattr(machine, "SOFT_RESET", -5): "soft",
        }.get(machine.reset_cause(), "unknown")
        self.irq_rising = Pin.IRQ_RISING

    def _input(self, gpio):
        if self.name == "esp32":  # GPIO34-39 have no internal pulls: the external pull-up does it
            return machine.Pin(gpio, machine.Pin.IN)
        return machine.Pin(gpio, machine.Pin.IN, machine.Pin.PULL_UP)

    def _adc(self, gpio):
        if self.name == "esp32":
            adc = machine.ADC(machine.Pin(gpio))
            adc.atten(machine.ADC.ATTN_11DB)  # full 0-3.3 V range
            return adc
        return machine.ADC(gpio)

    def adc(self, name):
        """The ADC on pin-map signal `name`, built when a setting first needs it (pressure_adc, temperature_adc:
        pt_input analog)."""
        return self._adc(self.pins[name])

    def i2c(self):
        """The display bus (may raise OSError/ValueError: the display is optional)."""
        pm = self.pins
        return machine.I2C(0, sda=machine.Pin(pm["i2c_sda"]), scl=machine.Pin(pm["i2c_scl"]), freq=400_000)

    def watchdog(self, timeout_ms):
        """Start the hardware watchdog (cannot be stopped again on RP2040; max 8388 ms)."""
        return machine.WDT(timeout=timeout_ms)

    def uart_stream(self, baud=115200):
        pm = self.pins
        uart_id = 0 if self.name == "pico" else 2
        return UartStream(machine.UART(uart_id, baudrate=baud, tx=machine.Pin(pm["uart_tx"]),
                                       rx=machine.Pin(pm["uart_rx"])))

    def keep_watchdog_fed(self, wdt, period_ms=500):
        """After Ctrl-C (mpremote) the relay is off and the REPL must stay usable: feed from a timer."""
        t = machine.Timer(-1 if self.name == "pico" else 0)  # ESP32 has no virtual timers
        t.init(period=period_ms, mode=machine.Timer.PERIODIC, callback=lambda _t: wdt.feed())
        return t
