"""The emulated Pico itself: MicroPython's RP2040 port boots in rp2040js, its flash keeps files across power
cycles, and the host drives the ADC and GPIO inputs and sees the outputs on the emulated clock."""

import statistics

from hardware.twin.adc_noise import AdcNoise, u16


def test_the_rp2040_port_boots_and_its_flash_keeps_files_across_a_power_cycle(blank_pico, tmp_path):
    pico = blank_pico(link=False)
    impl = pico.exec("import sys; print(sys.implementation)")
    assert "version=(1, 28, 0" in impl and "_build='RPI_PICO'" in impl, impl
    assert pico.boots[0]["reason"] == "power"
    # littlefs is formatted on first boot on the emulated flash (the runner services flash erase/program)
    pico.exec("f = open('kept.txt', 'w'); f.write('survives'); f.close()")
    pico.stop()
    again = blank_pico(link=False, flash=tmp_path / "flash.bin")
    assert again.exec("print(open('kept.txt').read())").strip() == "survives"
    assert again.exec("import machine; print(machine.reset_cause())").strip() == "1"  # PWRON_RESET


def test_adc_codes_reach_read_u16_exactly_or_through_the_noise_model(blank_pico):
    pico = blank_pico(link=False)
    pico.set_adc(0, 1000)
    assert pico.exec("import machine; print(machine.ADC(26).read_u16())").strip() == str(u16(1000))
    pico.noise = AdcNoise(sigma_lsb=2.0, seed=3)
    pico.set_adc(0, 2000.4)
    reads = [int(x) for x in pico.exec("a = machine.ADC(26)\nprint(*[a.read_u16() >> 4 for _ in range(64)])").split()]
    assert len(set(reads)) >= 5, reads  # a real ADC never repeats one code
    assert abs(statistics.mean(reads) - 2000.4) < 2.0 and 1.0 < statistics.pstdev(reads) < 3.5
    pico.set_adc(0, 1538.0)  # within the wide DNL bin at 1536 (erratum RP2040-E11)
    reads = [int(x) for x in pico.exec("print(*[a.read_u16() >> 4 for _ in range(64)])").split()]
    assert reads.count(1536) > len(reads) // 2, reads


def test_input_edges_count_at_their_rate_and_outputs_carry_emulated_times(blank_pico):
    pico = blank_pico(link=False)
    pico.exec("import machine, time\nn = [0]\ndef h(p): n[0] += 1\n"
              "p = machine.Pin(15, machine.Pin.IN, machine.Pin.PULL_UP)\np.irq(h, machine.Pin.IRQ_RISING)")
    pico.wave(15, 1000, high_us=50)  # flow-meter pulses, 1 kHz on the emulated clock
    counted = int(pico.exec("n[0] = 0\ntime.sleep_ms(200)\nprint(n[0])"))
    assert 198 <= counted <= 202, counted
    pico.wave(15, 0)
    pico.watch(16)
    pico.exec("r = machine.Pin(16, machine.Pin.OUT)\nfor i in range(7):\n r.value(i % 2)\n time.sleep_ms(10)\n")
    rises = [t for t, g, v in pico.changes if g == 16 and v == 1]
    falls = [t for t, g, v in pico.changes if g == 16 and v == 0]
    assert len(rises) == 3, pico.changes
    periods_ms = [(b - a) / 1e6 for a, b in zip(rises, rises[1:], strict=False)]
    # sleep_ms(10) twice, on the emulated clock (wall time runs 6-15x longer here). sleep_ms counts whole
    # ticks_ms, so one can end up to 1 ms early (CI saw 19.05 ms for a pair); never longer than 10.25 ms each.
    assert all(18.0 < p < 20.5 for p in periods_ms), periods_ms
    assert falls and falls[-1] > rises[-1]
