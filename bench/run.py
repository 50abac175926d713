#!/usr/bin/env python3
"""Measures crypto-etl's transform against the pandas original and prints the figures (issue #7).

Usually started by `scripts/bench`, which builds the release binary, sets up the pandas venv and
generates the large snapshot first. Run directly:

  python bench/run.py --bin target/release/crypto-etl --python target/venv/bin/python \\
      --small ../shared/fixtures/coingecko/markets-2023-05-13-250.json \\
      --large target/bench/snapshot-100000-seed1-....json --work target/bench/work

Every measured run is a fresh process started from here: wall time with time.perf_counter around
start and exit, peak memory (max RSS) and CPU time from the rusage os.wait4 returns for it. Each
run writes new output files (the previous run's are deleted before the clock starts). The
tools take turns within each repetition, after one untimed warm-up run each (which also fills
crypto-etl's plugin cache, so the timed runs load compiled plugins from disk). Figures only: it
never judges them against the targets, and exits non-zero only if a run fails.

Sections run in order; each returns rows for the one table (see `Row` and `SECTIONS`). To add a
figure, write a function `def my_section(ctx) -> list[Row]` and register it with `@section`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FETCH_TIME = "2026-11-27T10-00-00Z"
csv.field_size_limit(1 << 30)


# ---------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Sample:
    wall: float  # seconds
    max_rss_kib: int | None = None  # peak resident set size of the process
    cpu: float | None = None  # user + system seconds


class RunFailed(Exception):
    pass


def measure(argv, log_path, env=None):
    """Runs argv once as a fresh process; its wall time, peak RSS and CPU time."""
    with open(log_path, "wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if proc.returncode != 0:
        tail = Path(log_path).read_text(errors="replace")[-2000:]
        raise RunFailed(f"exit {proc.returncode}: {' '.join(map(str, argv))}\n{tail}")
    rss = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss  # bytes on macOS
    return Sample(wall=wall, max_rss_kib=rss, cpu=usage.ru_utime + usage.ru_stime)


@dataclass
class Tool:
    name: str
    argv: list
    output: Path | None = None  # the CSV it writes, to count its rows
    baseline: bool = False  # the others' speed-up is relative to this one
    target: str = ""
    reps: int | None = None  # fewer repetitions than the section's, for slow informational rows


def remove_outputs(tool):
    """Deletes what the tool's last run wrote (its CSV and the files named after it, such as
    crypto-etl's quarantine and schema), so the next run writes new files, as the pipeline does
    with one file per snapshot. Replacing a file instead makes the kernel release the old one's
    pages inside the timed run: about 6 ms for a 31 MB CSV here, for whichever tool writes it."""
    if tool.output is None:
        return
    for path in tool.output.parent.glob(tool.output.stem + ".*"):
        path.unlink()


def bench(ctx, scenario, tools, reps):
    """Warm-up, then `reps` rounds in which every tool runs once; one Row per tool."""
    samples = {t.name: [] for t in tools}
    log = ctx.work / "last-run.log"
    for t in tools:
        ctx.progress(f"{scenario}: warm-up {t.name}")
        remove_outputs(t)
        measure(t.argv, log)
    for rep in range(reps):
        for t in tools:
            if t.reps is not None and rep >= t.reps:
                continue
            ctx.progress(f"{scenario}: run {rep + 1}/{reps} {t.name}")
            remove_outputs(t)
            samples[t.name].append(measure(t.argv, log))
    base = next((t for t in tools if t.baseline), None)
    base_wall = statistics.median(s.wall for s in samples[base.name]) if base else None
    rows = []
    for t in tools:
        out = count_csv(t.output) if t.output else None
        rows.append(
            Row(
                scenario=scenario,
                tool=t.name,
                samples=samples[t.name],
                baseline_wall=base_wall,
                is_baseline=t.baseline,
                rows_out=out[0] if out else None,
                target=t.target,
            )
        )
    return rows


def count_csv(path):
    """(rows without the header, column names, set of ids) of a CSV the tools wrote."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        key = header.index("id") if "id" in header else None
        ids, n = set(), 0
        for record in reader:
            n += 1
            if key is not None:
                ids.add(record[key])
    return n, header, ids


# ---------------------------------------------------------------------------------------------
# The table


@dataclass
class Row:
    """One line of the table. Sections that get figures elsewhere (cargo bench, a subcommand)
    fill `samples` with what they have (wall alone is fine) and name their own baseline."""

    scenario: str
    tool: str
    samples: list = field(default_factory=list)
    baseline_wall: float | None = None  # median wall of the row this one is compared with
    is_baseline: bool = False
    rows_out: int | None = None
    target: str = ""
    note: str = ""

    def stat(self, attr):
        values = [getattr(s, attr) for s in self.samples if getattr(s, attr) is not None]
        if not values:
            return None
        return statistics.median(values), min(values), max(values)


def fmt_time(seconds):
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_stat(stat, fmt):
    if stat is None:
        return "-"
    median, low, high = stat
    return f"{fmt(median)} ({fmt(low)} .. {fmt(high)})"


def fmt_mib(kib):
    return f"{kib / 1024:.1f}"


def print_table(rows):
    headers = [
        "scenario", "tool", "runs", "wall: median (min .. max)", "peak RSS MiB: median (min .. max)",
        "CPU median", "speed-up", "rows out", "target",
    ]  # fmt: skip
    table = []
    for r in rows:
        wall = r.stat("wall")
        cpu = r.stat("cpu")
        if r.is_baseline:
            speed = "1.0x (base)"
        elif r.baseline_wall and wall:
            speed = f"{r.baseline_wall / wall[0]:.1f}x"
        else:
            speed = "-"
        table.append([
            r.scenario, r.tool, str(len(r.samples)) if r.samples else "-",
            fmt_stat(wall, fmt_time), fmt_stat(r.stat("max_rss_kib"), fmt_mib),
            fmt_time(cpu[0]) if cpu else "-", speed,
            f"{r.rows_out:,}" if r.rows_out is not None else "-", r.target or r.note,
        ])  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *table)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    previous = None
    for cells in table:
        if previous is not None and cells[0] != previous:
            print()
        previous = cells[0]
        print(line(cells))


# ---------------------------------------------------------------------------------------------
# Sections

SECTIONS = []  # (name, function) in the order they run


def section(name):
    def register(fn):
        SECTIONS.append((name, fn))
        return fn

    return register


class Context:
    def __init__(self, args):
        self.args = args
        self.bin = str(Path(args.bin).resolve())
        self.python = args.python
        self.work = Path(args.work).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.cache = self.work / "plugin-cache"
        self.notes = []  # printed under the table
        self.startup = {}  # tool -> median wall of a run that does nothing

    def progress(self, text):
        if sys.stderr.isatty():
            print(f"\r\033[K  {text}", end="", file=sys.stderr, flush=True)

    def pandas(self, raw, out):
        reference = ROOT / "tests" / "reference" / "original_transform.py"
        return [self.python, str(reference), str(raw), str(out), FETCH_TIME]

    def crypto_etl(self, raw, out, *extra):
        return [
            self.bin, "-q", "transform", "--input", str(raw), "--output", str(out),
            "--fetch-time", FETCH_TIME, "--cache-dir", str(self.cache), *extra,
        ]  # fmt: skip


@section("startup")
def startup(ctx):
    """What a fresh process costs before any data: the floor under the 250-coin figures."""
    tools = [
        Tool("pandas: python -c 'import pandas'", [ctx.python, "-c", "import pandas"], baseline=True),
        Tool("crypto-etl --version", [ctx.bin, "--version"]),
    ]
    rows = bench(ctx, "startup only", tools, ctx.args.reps_small)
    ctx.startup = {"pandas": rows[0].stat("wall")[0], "crypto-etl": rows[1].stat("wall")[0]}
    return rows


def snapshot_rows(ctx, label, raw, reps, default_target, small):
    out = ctx.work / Path(raw).stem
    out.mkdir(parents=True, exist_ok=True)
    tools = [
        Tool("pandas (original transform)", ctx.pandas(raw, out / "pandas.csv"), out / "pandas.csv", baseline=True),
        Tool(
            "crypto-etl default",
            ctx.crypto_etl(raw, out / "default.csv"),
            out / "default.csv",
            target=default_target,
        ),
        Tool(
            "crypto-etl --pipeline seed-compat",
            ctx.crypto_etl(raw, out / "seed-compat.csv", "--pipeline", "seed-compat"),
            out / "seed-compat.csv",
        ),
    ]
    if small:  # what a cold start pays when the plugin cache is empty
        tools.append(
            Tool(
                "crypto-etl default --no-cache",
                ctx.crypto_etl(raw, out / "no-cache.csv", "--no-cache"),
                out / "no-cache.csv",
                reps=min(3, reps),
                target="(compiles the plugins every run)",
            )
        )
    rows = bench(ctx, label, tools, reps)
    compare_outputs(ctx, label, out)
    where_time_goes(ctx, label, raw, out, rows[1])
    return rows


def compare_outputs(ctx, label, out):
    pandas, default, compat = (count_csv(out / f"{n}.csv") for n in ("pandas", "default", "seed-compat"))
    same_ids = "the same ids" if compat[2] == pandas[2] else "DIFFERENT ids"
    same_cols = "the same columns" if compat[1] == pandas[1] else "different columns"
    ctx.notes.append(
        f"{label}: pandas kept {pandas[0]:,} rows; seed-compat {compat[0]:,} ({same_ids}, {same_cols}); "
        f"default {default[0]:,} (it keeps coins with nulls outside id/symbol/name/price/cap/volume, "
        f"so its percentages are over more coins than the original's)"
    )


def where_time_goes(ctx, label, raw, out, default_row):
    """One more default run with --json, for the time each plugin took inside the process."""
    argv = ctx.crypto_etl(raw, out / "default.csv", "--json")
    argv.remove("-q")
    report = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
    plugins = report.get("plugins", [])
    in_plugins = sum(p["elapsed"] for p in plugins) / 1e3
    parts = ", ".join(f"{p['name']} {p['elapsed']:.1f} ms" for p in plugins)
    wall = default_row.stat("wall")[0]
    floor = ctx.startup.get("crypto-etl")
    rest = wall - in_plugins - (floor or 0)
    ctx.notes.append(
        f"{label}, crypto-etl default: median wall {fmt_time(wall)}; plugin calls {parts} "
        f"(one more run, with --json); process start-up ~{fmt_time(floor)} (crypto-etl --version); "
        f"the rest, ~{fmt_time(rest)}: reading and ingesting the JSON, loading the cached plugins, "
        f"writing CSV, schema and quarantine"
    )


@section("snapshot-250")
def snapshot_small(ctx):
    """Each real snapshot of --small as a fresh process; the plugin cache is warm."""
    rows = []
    for raw in ctx.args.small:
        raw = Path(raw).resolve()
        coins = len(json.loads(raw.read_bytes()))
        label = f"{coins} coins, real ({raw.stat().st_size / 1e6:.2f} MB)"
        ctx.notes.append(f"{label}: {raw}")
        rows += snapshot_rows(ctx, label, raw, ctx.args.reps_small, "< 30 ms, fresh process, cache warm", small=True)
    return rows


@section("snapshot-100k")
def snapshot_large(ctx):
    """The generated snapshot of --large (100,000 coins)."""
    if not ctx.args.large:
        ctx.notes.append("large snapshot: skipped (no --large)")
        return []
    raw = Path(ctx.args.large).resolve()
    coins = f"{ctx.args.large_coins:,}" if ctx.args.large_coins else "large"
    label = f"{coins} coins, generated ({raw.stat().st_size / 1e6:.0f} MB)"
    ctx.notes.append(f"{label}: {raw}")
    return snapshot_rows(ctx, label, raw, ctx.args.reps_large, ">= 20x pandas, < 150 MB peak", small=False)


@section("plugins-vs-native")
def plugins_vs_native(ctx):
    """Target: the plugin chain costs no more than 1.5x the same logic compiled natively.

    `chain-bench` (bench/chain) ingests one snapshot, then runs the pipeline's chain over it in
    one process, taking turns: the WebAssembly components crypto-etl ships, and the same plugin
    crates compiled into it natively, behind the same Chain (plan, column hand-over, output
    checks). It times `Chain::run` and each plugin call and checks both give the same output.
    """
    if not ctx.args.chain_bench:
        ctx.notes.append("plugin chain (wasm) vs native: skipped (no --chain-bench binary)")
        return []
    raw = Path(ctx.args.large or ctx.args.small[0]).resolve()
    reps = ctx.args.reps_large * 3
    ctx.progress(f"plugins-vs-native: chain-bench, {reps} runs each")
    argv = [ctx.args.chain_bench, "--input", str(raw), "--reps", str(reps), "--cache-dir", str(ctx.cache)]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RunFailed(f"exit {done.returncode}: {' '.join(argv)}\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    figures = report["figures"]
    label = f"plugin chain, {report['rows']:,} coins (in-process)"
    native = statistics.median(figures["native"]["chain"])
    rows = [
        Row(label, "native (same crates, compiled in)", samples=[Sample(wall=w) for w in figures["native"]["chain"]],
            is_baseline=True, rows_out=report["rows_out"]),
        Row(label, "wasm (the shipped components)", samples=[Sample(wall=w) for w in figures["wasm"]["chain"]],
            baseline_wall=native, rows_out=report["rows_out"], target="<= 1.5x native time"),
    ]  # fmt: skip
    wasm = statistics.median(figures["wasm"]["chain"])
    per_plugin = ", ".join(
        f"{name} {statistics.median(times) * 1e3:.1f} ms wasm / "
        f"{statistics.median(figures['native']['stages'][name]) * 1e3:.1f} ms native"
        for name, times in figures["wasm"]["stages"].items()
    )
    same = "the same output" if report["same_output"] else "DIFFERENT outputs"
    first = report["first"]
    ctx.notes.append(
        f"{label}: the wasm chain takes {wasm / native:.2f}x the native chain's time (target <= 1.5x); "
        f"per plugin call (median): {per_plugin}; both gave {same}; the first run of each, with "
        f"fresh memory as in a CLI process (one sample each): wasm {first['wasm'] * 1e3:.1f} ms / "
        f"native {first['native'] * 1e3:.1f} ms ({first['wasm'] / first['native']:.2f}x)"
    )
    return rows


# ---------------------------------------------------------------------------------------------
# The machine


def command_output(argv, cwd=None):
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)
        return done.stdout.strip() or done.stderr.strip() or f"exit {done.returncode}"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"


def read_key(path, key, sep=":"):
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(sep, 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


# Touches 256 MiB of fresh memory, one write per page, in a new process. On this project's VM
# the cost of a first touch swings by 10x with the host's memory pressure, and everything here
# slows with it, so the probe at the start and at the end says what kind of spell a run was in.
PROBE = (
    "import mmap, time; size = 256 << 20; m = mmap.mmap(-1, size); t = time.perf_counter(); "
    "m[::4096] = bytes(size // 4096); print(round((time.perf_counter() - t) * 1000, 1))"
)


def memory_probe():
    out = command_output([sys.executable, "-c", PROBE])
    try:
        return f"{float(out)} ms"
    except ValueError:
        return f"unknown ({out})"


def machine_facts(ctx):
    mem = read_key("/proc/meminfo", "MemTotal")
    mem = f"{int(mem.split()[0]) / 1024**2:.1f} GiB" if mem else "unknown"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    script = "import sys, pandas, numpy; print(sys.version.split()[0], pandas.__version__, numpy.__version__)"
    versions = command_output([ctx.python, "-c", script]).split()
    git = command_output(["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=12"])
    profile = "release" if "/release/" in ctx.bin else "debug" if "/debug/" in ctx.bin else "unknown"
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": read_key("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
        "cores": f"{os.cpu_count()} logical, {usable} usable by this process",
        "memory": mem,
        "os": f"{read_key('/etc/os-release', 'PRETTY_NAME', '=') or platform.system()}, kernel {platform.release()}",
        "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "memory probe": memory_probe(),
        "rustc": command_output(["rustc", "--version"], cwd=ROOT),
        "python": versions[0] if len(versions) == 3 else " ".join(versions),
        "pandas": versions[1] if len(versions) == 3 else "?",
        "numpy": versions[2] if len(versions) == 3 else "?",
        "crypto-etl": f"{command_output([ctx.bin, '--version'])}, {profile} build ({ctx.bin})",
        "commit": git,
    }


# ---------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", required=True, help="the crypto-etl binary")
    parser.add_argument("--python", required=True, help="a Python with pandas (the venv's)")
    parser.add_argument("--small", action="append", default=[], help="a real snapshot (repeatable)")
    parser.add_argument("--large", help="the generated large snapshot")
    parser.add_argument("--large-coins", type=int, help="how many coins it has (for the label)")
    parser.add_argument("--chain-bench", help="the chain-bench binary (bench/chain), for plugins-vs-native")
    parser.add_argument("--work", required=True, help="scratch folder for outputs and the plugin cache")
    parser.add_argument("--reps-small", type=int, default=10, help="repetitions for small inputs (10)")
    parser.add_argument("--reps-large", type=int, default=5, help="repetitions for the large snapshot (5)")
    names = [name for name, _ in SECTIONS]
    parser.add_argument("--sections", default=",".join(names), help=f"which to run, of {','.join(names)}")
    parser.add_argument("--save", help="also write machine facts and every sample as JSON here")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(chosen) - set(names)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; known: {names}")

    ctx = Context(args)
    facts = machine_facts(ctx)
    print("crypto-etl benchmark (issue #7)\n")
    for key, value in facts.items():
        print(f"  {key + ':':<14}{value}")
    if "release" not in facts["crypto-etl"]:
        print("\n  NOTE: not a release build of crypto-etl: its figures are not representative.")
    print()

    rows = []
    try:
        for name, fn in SECTIONS:
            if name in chosen:
                rows += fn(ctx)
    except RunFailed as e:
        print(f"\nrun failed: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        if sys.stderr.isatty():
            print("\r\033[K", end="", file=sys.stderr)

    facts["memory probe at the end"] = memory_probe()
    print_table(rows)
    print()
    print(
        f"memory probe: touching 256 MiB of fresh memory took {facts['memory probe']} at the start "
        f"and {facts['memory probe at the end']} at the end (lower is a faster spell of the machine)."
    )
    print("speed-up: the base row's median wall / this row's (above 1 is faster than the base).")
    print("peak RSS: max resident set size of the process (rusage ru_maxrss); CPU: user + system time.")
    for note in ctx.notes:
        print(f"- {note}")

    if args.save:
        data = {"machine": facts, "rows": [asdict(r) for r in rows], "notes": ctx.notes}
        Path(args.save).write_text(json.dumps(data, indent=2) + "\n")
        print(f"\nsaved to {args.save}")


if __name__ == "__main__":
    main()
