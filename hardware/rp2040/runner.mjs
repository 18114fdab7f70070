// The emulated Pico: boots MicroPython's RP2040 port (firmware.uf2) in rp2040js, for firedamp's tests and
// `firedamp board --target rp2040`. Driven by hardware/rp2040/driver.py; not meant to be started by hand.
//
//   node runner.mjs --uf2 FILE --bootrom FILE --flash FILE --serial SOCKET [--speed X] [--log FILE] [--paused yes]
//
// fd 0: commands from the driver, one JSON object a line   fd 1: events to the driver, JSON lines
// --serial PATH: a Unix socket the driver listens on; the USB CDC serial line, bytes both ways
//
// Commands: {"op":"adc","ch":0,"raw":[...]}        12-bit codes returned by successive reads (cycled)
//           {"op":"pin","gpio":14,"value":1|0|null}  drive an input (null: let go, the pad's pull decides)
//           {"op":"wave","gpio":14,"hz":600,"high_us":0}  square wave (high_us 0: 50 %), hz 0 stops it
//           {"op":"follow","gpio":19,"source":16,"invert":true}  drive gpio from another pin's level
//           {"op":"watch","gpios":[16,17,18]}       report level changes of these pins
//           {"op":"adc_watch","chs":[0]}              report every conversion of these ADC channels
//           {"op":"at","t_ns":N,"cmd":{...}}       run cmd when the emulated clock reaches N
//           {"op":"speed","x":1}                   pace emulated time at x times wall time (0: flat out)
//           {"op":"time","id":N}                   report the emulated time
//           {"op":"hang"}                          stop the CPU, peripherals and watchdog keep running
//           {"op":"run"}                           start the CPU held by --paused yes
//           {"op":"stop"}                          power off (flash file is already up to date)
// Events:   {"ev":"boot","n":N,"reason":"power|watchdog|force","t_ns":N}  {"ev":"usb","t_ns":N}
//           {"ev":"pin","gpio":G,"v":0|1,"t_ns":N}  {"ev":"adc","ch":C,"t_ns":N}
//           {"ev":"time","id":N,"t_ns":N,"wall_s":S,"asleep_ns":N,"slow_ns":N,"clk_sys_hz":F}
//           {"ev":"applied","id":N,"t_ns":N}  (any command with an "id")  {"ev":"error","msg":"..."}
//
// rp2040js 1.4.1 gaps worked around here (see ../shared/rp2040/README.md): flash writes are no-ops (the
// boot ROM's flash_range_erase/program are patched into breakpoints serviced below, written through to
// --flash); USB OUT is answered at once with empty packets (held until host bytes arrive); the watchdog
// re-fires forever (the chip is rebuilt instead: a real reset); driven pads read back 0 and pulls are ignored
// (pads read their own level or pull); the logger floods (rate-limited to --log). For machine.lightsleep: CPU
// cycles were counted at 125 MHz whatever clk_sys ran at (now at the current clk_sys: the crystal's 12 MHz
// while lightsleep switches clocks); WFI with PRIMASK set took the waking interrupt at once and slept through
// one already pending (now it only wakes, as on a Cortex-M0+). Not modelled: SLEEP_EN clock gating (every
// peripheral keeps running while asleep), PLL lock and crystal start-up times (both instant).

import fs from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import readline from 'node:readline';
import { BasePeripheral, GPIOPinState, RP2040, USBCDC } from 'rp2040js';

const FLASH_SIZE = 2 * 1024 * 1024; // the Pico's W25Q16
const BKPT_ERASE = 0xf1;
const BKPT_PROGRAM = 0xf2;

function parseArgs(argv) {
  const args = { speed: 1, log: '/dev/null' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    args[key] = argv[i + 1];
  }
  for (const need of ['uf2', 'bootrom', 'flash', 'serial']) {
    if (!args[need]) throw new Error(`--${need} is required`);
  }
  args.speed = Number(args.speed);
  return args;
}

const args = parseArgs(process.argv.slice(2));
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

// ---- logging: rp2040js can warn millions of times a second; keep 50 lines a second, count the rest
const logFd = fs.openSync(args.log, 'a');
let logWindow = 0;
let logCount = 0;
let logDropped = 0;
function logLine(level, name, msg) {
  const now = Math.floor(performance.now() / 1000);
  if (now !== logWindow) {
    if (logDropped) fs.writeSync(logFd, `(${logDropped} log lines dropped)\n`);
    logWindow = now;
    logCount = 0;
    logDropped = 0;
  }
  if (++logCount > 50) {
    logDropped++;
    return;
  }
  fs.writeSync(logFd, `${level} [${name}] ${msg}\n`);
}
const logger = {
  debug() {},
  info() {}, // e.g. one line per SEV instruction
  warn(name, msg) { logLine('warn', name, msg); },
  error(name, msg) { logLine('error', name, msg); },
};

// ---- images
function loadUF2(path, flash) {
  const data = fs.readFileSync(path);
  let blocks = 0;
  for (let off = 0; off + 512 <= data.length; off += 512) {
    const m0 = data.readUInt32LE(off);
    const m1 = data.readUInt32LE(off + 4);
    const end = data.readUInt32LE(off + 508);
    if (m0 !== 0x0a324655 || m1 !== 0x9e5d5157 || end !== 0x0ab16f30) {
      throw new Error(`${path}: block ${off / 512} is not a UF2 block`);
    }
    const addr = data.readUInt32LE(off + 12);
    const size = data.readUInt32LE(off + 16);
    if (addr < 0x10000000 || addr + size > 0x10000000 + FLASH_SIZE || size > 476) {
      throw new Error(`${path}: block ${off / 512} writes outside the flash (0x${addr.toString(16)})`);
    }
    flash.set(data.subarray(off + 32, off + 32 + size), addr - 0x10000000);
    blocks++;
  }
  if (!blocks) throw new Error(`${path}: no UF2 blocks`);
  return blocks;
}

const bootromBytes = fs.readFileSync(args.bootrom);
if (bootromBytes.length !== 16384) throw new Error(`${args.bootrom}: expected 16384 bytes`);

// The board's flash lives in --flash: created (all 0xFF, then the UF2) on first use, written through on
// every erase/program, so killing the runner at any instant leaves what a power cut would.
const flashImage = new Uint8Array(FLASH_SIZE).fill(0xff);
let flashFd;
if (fs.existsSync(args.flash)) {
  const prev = fs.readFileSync(args.flash);
  flashImage.set(prev.subarray(0, FLASH_SIZE));
  flashFd = fs.openSync(args.flash, 'r+');
} else {
  flashFd = fs.openSync(args.flash, 'w+');
}
loadUF2(args.uf2, flashImage); // the firmware itself: as copying the UF2 onto the Pico
fs.writeSync(flashFd, flashImage, 0, FLASH_SIZE, 0);

function romTableLookup(rom, code) {
  const view = new DataView(rom.buffer, rom.byteOffset, rom.byteLength);
  let p = view.getUint16(0x14, true);
  for (;;) {
    const c = view.getUint16(p, true);
    if (c === 0) throw new Error(`boot ROM has no function ${code}`);
    if (c === (code.charCodeAt(0) | (code.charCodeAt(1) << 8))) return view.getUint16(p + 2, true) & ~1;
    p += 4;
  }
}

function patchedBootrom() {
  const rom = new Uint8Array(bootromBytes); // a copy
  const view = new DataView(rom.buffer);
  for (const [code, bkpt] of [['RE', BKPT_ERASE], ['RP', BKPT_PROGRAM]]) {
    const at = romTableLookup(rom, code);
    view.setUint16(at, 0xbe00 | bkpt, true); // bkpt #n: serviced in onBreak, then execution goes on
    view.setUint16(at + 2, 0x4770, true); // bx lr
  }
  return new Uint32Array(rom.buffer);
}
const bootrom = patchedBootrom();

// VREG_AND_CHIP_RESET: CHIP_RESET says HAD_POR after a power-on only (rp2040js leaves it unimplemented,
// reading all ones, so every reset would look like a power-on)
class ChipReset extends BasePeripheral {
  constructor(rp2040, name, por) {
    super(rp2040, name);
    this.por = por;
  }
  readUint32(offset) {
    if (offset === 0x08) return this.por ? 1 << 8 : 0;
    if (offset === 0x00) return 0xb1; // VREG: enabled, 1.10 V
    return 0;
  }
  writeUint32() {}
}

// Cortex-M0+ WFI with PRIMASK set (ARMv6-M B1.5.19): a pending enabled interrupt ends the WFI (also one
// already pending when it executes) but is taken only once PRIMASK clears. rp2040js 1.4.1 takes the handler
// at once, inside the caller's critical section (machine.lightsleep's, with the clocks still slowed down),
// and sleeps through an interrupt that was already pending: a wake-up that real silicon would not miss.
function wfiUnderPrimask(core) {
  const take = core.checkForInterrupts.bind(core);
  core.checkForInterrupts = function checkForInterrupts() {
    if (this.waiting && this.PM && this.inWfi) {
      if (this.pendingInterrupts & this.enabledInterrupts) this.waiting = false;
      return false; // not taken: interruptsUpdated stays set, so it is taken when CPSIE / MSR clears PRIMASK
    }
    return take();
  };
}

// ---- the chip; rebuilt on every reset
let chip = null;
let cycleNs = 8; // ns per CPU cycle at the current clk_sys (125 MHz: 8; machine.lightsleep runs on the 12 MHz crystal)
const sleepStats = { asleep: 0, slow: 0 }; // emulated ns with the CPU in WFI/WFE; ns with clk_sys below 125 MHz
let cdc = null;
let baseNs = 0; // emulated time before the current chip's clock started
let boots = 0;
let pendingReset = null;
let hung = false;
const hostIn = []; // host -> board bytes waiting for the firmware's USB OUT transfer
let pendingRead = -1; // size of a USB OUT transfer the firmware armed and we hold until bytes arrive
const drive = new Map(); // gpio -> 0/1 set by the host (absent: the pad decides)
const watched = new Set();
const follows = new Map(); // target gpio -> {source, invert}
const adcRaw = [[0], [0], [0], [0], [0]];
const adcIdx = [0, 0, 0, 0, 0];
const waves = new Map(); // gpio -> {alarm, hz, highNs, level}
const adcWatched = new Set(); // ADC channels whose conversions are reported (when the firmware samples)

const nowNs = () => Math.round(baseNs + (chip ? chip.clock.nanos : 0));

function padLevel(pin) {
  const g = pin.index;
  const st = pin.value;
  if (st === GPIOPinState.High) return true;
  if (st === GPIOPinState.Low) return false;
  if (drive.has(g)) return drive.get(g) === 1;
  return st === GPIOPinState.InputPullUp; // undriven: the pull decides (bus keeper / none: low)
}

function refreshPad(pin) {
  const level = padLevel(pin);
  if (pin.rawInputValue !== level) pin.setInputValue(level);
}

function serviceBreak(code) {
  const core = chip.core;
  const r = core.registers;
  if (code === BKPT_ERASE) {
    const addr = r[0] & 0xffffff;
    const count = r[1];
    if (addr + count > FLASH_SIZE) return logger.error('flash', `erase past the end: ${addr}+${count}`);
    chip.flash.fill(0xff, addr, addr + count);
    fs.writeSync(flashFd, chip.flash, addr, count, addr);
  } else if (code === BKPT_PROGRAM) {
    const addr = r[0] & 0xffffff;
    const src = r[1];
    const count = r[2];
    if (addr + count > FLASH_SIZE) return logger.error('flash', `program past the end: ${addr}+${count}`);
    for (let i = 0; i < count; i++) chip.flash[addr + i] &= chip.readUint8(src + i); // NOR: 1 -> 0 only
    fs.writeSync(flashFd, chip.flash, addr, count, addr);
  } else {
    logger.warn('core', `breakpoint ${code} at 0x${(core.PC >>> 0).toString(16)}`);
  }
  core.breakRewind = 0;
}

function build(reason, scratch) {
  if (chip) baseNs += chip.clock.nanos;
  const mcu = new RP2040(); // with a fresh SimulationClock (the package does not export the class)
  mcu.logger = logger;
  mcu.loadBootrom(bootrom);
  mcu.flash.set(chip ? chip.flash.subarray(0, FLASH_SIZE) : flashImage);
  mcu.peripherals[0x40064] = new ChipReset(mcu, 'VREG_AND_CHIP_RESET_BASE', reason === 'power');
  const wd = mcu.peripherals[0x40058];
  if (scratch) {
    wd.scratchData.set(scratch);
    wd.reason = reason === 'watchdog' ? 1 : 2;
  }
  wd.onWatchdogTrigger = () => {
    // stop it here: rp2040js would fire again at the same instant forever
    wd.timer.enable = false;
    wd.alarm.enable = false;
    pendingReset = { reason: wd.reason === 1 ? 'watchdog' : 'force', scratch: Uint32Array.from(wd.scratchData) };
  };
  mcu.onBreak = serviceBreak;
  wfiUnderPrimask(mcu.core);
  cycleNs = 1e9 / mcu.clkSys;
  mcu.addClockListener((hz) => { cycleNs = 1e9 / hz; });
  if (process.env.RP2040_SKIP_BOOTROM) mcu.core.PC = 0x10000000;
  chip = mcu;
  for (const pin of mcu.gpio) {
    pin.addListener(() => {
      refreshPad(pin);
      const g = pin.index;
      const level = padLevel(pin) ? 1 : 0;
      if (watched.has(g)) out({ ev: 'pin', gpio: g, v: level, t_ns: nowNs() });
      for (const [target, f] of follows) {
        if (f.source === g) setDrive(target, f.invert ? 1 - level : level);
      }
    });
  }
  for (const [g, v] of drive) mcu.gpio[g].setInputValue(v === 1);
  for (const [g, w] of waves) startWave(g, w.hz, w.highUs);
  mcu.adc.onADCRead = (channel) => {
    if (adcWatched.has(channel)) out({ ev: 'adc', ch: channel, t_ns: nowNs() });
    const list = adcRaw[channel] || [0];
    const value = list[adcIdx[channel] % list.length];
    adcIdx[channel] = (adcIdx[channel] + 1) % list.length;
    mcu.adc.currentChannel = channel;
    mcu.adc.sampleAlarm.schedule(mcu.adc.sampleTime * 1000);
    mcu.adc.channelValues[channel] = value;
  };
  pendingRead = -1;
  cdc = new USBCDC(mcu.usbCtrl);
  cdc.onDeviceConnected = () => out({ ev: 'usb', t_ns: nowNs() });
  cdc.onSerialData = (buffer) => serial.write(Buffer.from(buffer));
  mcu.usbCtrl.onEndpointRead = (endpoint, size) => {
    if (endpoint !== cdc.outEndpoint) return;
    pendingRead = size;
    feedUsb();
  };
  boots++;
  hung = false;
  out({ ev: 'boot', n: boots, reason, t_ns: nowNs() });
  // a reset releases every pin: report the watched ones at their reset level (the listeners fire on changes)
  for (const g of watched) out({ ev: 'pin', gpio: g, v: padLevel(mcu.gpio[g]) ? 1 : 0, t_ns: nowNs() });
}

function feedUsb() {
  if (pendingRead < 0 || hostIn.length === 0 || !chip) return;
  const n = Math.min(pendingRead, hostIn.length);
  const buffer = Uint8Array.from(hostIn.splice(0, n));
  pendingRead = -1;
  chip.usbCtrl.endpointReadDone(cdc.outEndpoint, buffer);
}

function setDrive(g, v) {
  if (v === null || v === undefined) drive.delete(g);
  else drive.set(g, v ? 1 : 0);
  if (chip) refreshPad(chip.gpio[g]);
}

function startWave(g, hz, highUs) {
  const old = waves.get(g);
  if (old && old.alarm) old.alarm.cancel();
  if (!hz) {
    waves.delete(g);
    return;
  }
  const periodNs = 1e9 / hz;
  const highNs = highUs ? highUs * 1000 : periodNs / 2;
  const w = { hz, highUs, level: 0, alarm: null };
  w.alarm = chip.clock.createAlarm(() => {
    w.level ^= 1;
    setDrive(g, w.level);
    w.alarm.schedule(w.level ? highNs : periodNs - highNs);
  });
  w.alarm.schedule(periodNs - highNs);
  waves.set(g, w);
}

function apply(cmd) {
  switch (cmd.op) {
    case 'adc':
      adcRaw[cmd.ch] = cmd.raw.map((v) => Math.max(0, Math.min(4095, v | 0)));
      adcIdx[cmd.ch] = 0;
      break;
    case 'pin': setDrive(cmd.gpio, cmd.value); break;
    case 'wave': startWave(cmd.gpio, cmd.hz, cmd.high_us || 0); break;
    case 'follow':
      follows.set(cmd.gpio, { source: cmd.source, invert: !!cmd.invert });
      setDrive(cmd.gpio, (padLevel(chip.gpio[cmd.source]) ? 1 : 0) ^ (cmd.invert ? 1 : 0));
      break;
    case 'watch':
      for (const g of cmd.gpios) {
        watched.add(g);
        out({ ev: 'pin', gpio: g, v: padLevel(chip.gpio[g]) ? 1 : 0, t_ns: nowNs() });
      }
      break;
    case 'adc_watch':
      adcWatched.clear();
      for (const ch of cmd.chs) adcWatched.add(ch);
      break;
    case 'at': {
      const alarm = chip.clock.createAlarm(() => apply(cmd.cmd));
      alarm.schedule(Math.max(0, cmd.t_ns - nowNs()));
      return; // "applied" is reported by the inner command when it runs
    }
    case 'speed': pace(cmd.x); break;
    case 'time':
      out({ ev: 'time', id: cmd.id, t_ns: nowNs(), wall_s: performance.now() / 1000, asleep_ns: Math.round(sleepStats.asleep),
            slow_ns: Math.round(sleepStats.slow), clk_sys_hz: chip.clkSys });
      return;
    case 'hang': hung = true; break;
    case 'run': // kick() below starts the CPU if it was held (--paused yes)
      held = false;
      pace(speed);
      break;
    case 'stop': shutdown(0); return;
    default: out({ ev: 'error', msg: `unknown op ${cmd.op}` }); return;
  }
  if (cmd.id !== undefined) out({ ev: 'applied', id: cmd.id, t_ns: nowNs() });
}

// ---- pacing: emulated time may not run ahead of wall time x speed (speed 0: no limit)
let speed = args.speed;
let paceWall = 0;
let paceEmu = 0;
function pace(x) {
  speed = x;
  paceWall = performance.now();
  paceEmu = nowNs();
}
// ns of emulated time we may still run now (Infinity when unpaced)
function allowanceNs() {
  if (!(speed > 0)) return Infinity;
  return (performance.now() - paceWall) * 1e6 * speed - (nowNs() - paceEmu);
}

const MAX_LAG_NS = 20e6; // behind the paced wall clock by more than this: re-anchor instead of racing
let timer = null;
let idleWaiting = false;
let held = args.paused === 'yes';
function runSlice() {
  timer = null;
  const until = performance.now() + 25;
  let allowance = allowanceNs();
  while (allowance > 0) {
    const core = chip.core;
    const clock = chip.clock;
    let spent = 0;
    const slow = cycleNs > 8.5; // clk_sys below 125 MHz (only machine.lightsleep's crystal clock here)
    for (let i = 0; i < 50000; i++) {
      if (hung || core.waiting) {
        if (!clock.nextAlarm) break; // asleep, nothing scheduled: only the host can wake it
        let dt = clock.nanosToNextAlarm; // may be 0: an alarm due now
        const capped = dt > allowance - spent;
        // asleep until an alarm further off than the pacing allows: let the clock run up to the limit,
        // and wait (in wall time) for the rest
        if (capped) dt = Math.max(0, allowance - spent);
        clock.tick(dt);
        spent += dt;
        if (!hung) sleepStats.asleep += dt;
        if (slow) sleepStats.slow += dt;
        if (capped) {
          spent = allowance;
          break;
        }
      } else {
        const ns = core.executeInstruction() * cycleNs;
        clock.tick(ns);
        spent += ns;
        if (slow) sleepStats.slow += ns;
        if (core.waiting) {
          core.inWfi = chip.readUint16((core.PC - 2) & ~1) === 0xbf30; // WFI (not WFE: it wakes on events)
          // WFI with PRIMASK set and an interrupt already pending does not sleep (see wfiUnderPrimask)
          if (core.inWfi && core.PM && core.pendingInterrupts & core.enabledInterrupts) core.waiting = false;
        }
        if (cycleNs > 8.5 !== slow) break; // clk_sys changed: recount with the new cycle time
      }
      if (pendingReset) break;
    }
    if (pendingReset) {
      const { reason, scratch } = pendingReset;
      pendingReset = null;
      build(reason, scratch);
    }
    if ((hung || chip.core.waiting) && !chip.clock.nextAlarm) {
      idleWaiting = true; // nothing will happen until the host does something
      pace(speed); // from here the clock runs at the paced rate (see kick)
      return;
    }
    if (performance.now() > until) break;
    allowance = allowanceNs();
    if (allowance > MAX_LAG_NS && allowance !== Infinity) {
      pace(speed); // slower than `speed`: run as fast as we can, without a debt to catch up later
      allowance = MAX_LAG_NS;
    }
  }
  const wait = allowance > 0 ? 0 : Math.min(50, -allowance / 1e6 / Math.max(speed, 1e-9) + 1);
  timer = setTimeout(runSlice, wait);
}
function kick() {
  if (held) return;
  if (idleWaiting) {
    idleWaiting = false;
    // the chip slept with nothing scheduled: its clock still ran (at the paced rate) while it waited
    const lag = allowanceNs();
    if (lag > 0 && lag !== Infinity) {
      chip.clock.tick(lag);
      if (!hung) sleepStats.asleep += lag;
      if (cycleNs > 8.5) sleepStats.slow += lag;
    }
    if (timer === null) timer = setTimeout(runSlice, 0);
  }
}

// ---- I/O
const serial = net.createConnection(args.serial);
serial.on('data', (data) => {
  for (const b of data) hostIn.push(b);
  feedUsb();
  kick();
});
serial.on('error', () => {});

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    out({ ev: 'error', msg: `bad command line: ${e.message}` });
    return;
  }
  try {
    apply(cmd);
  } catch (e) {
    out({ ev: 'error', msg: `${cmd.op}: ${e.message}` });
  }
  kick();
});
rl.on('close', () => shutdown(0)); // the driver went away: power off

function shutdown(code) {
  try { fs.fsyncSync(flashFd); } catch (e) { /* already closed */ }
  process.exit(code);
}

build('power', null);
if (held) {
  idleWaiting = true; // the CPU starts on {"op":"run"}: inputs can be wired before the first instruction
} else {
  pace(speed);
  runSlice();
}
