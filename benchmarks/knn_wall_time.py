"""Wall time of ``costopt eval-router DATA --strategy knn --folds 5`` on 14,000 prompts.

Run:
    nice .venv/bin/python benchmarks/knn_wall_time.py [--n 14000] [--runs cold,warm,shuffled]

Issue 17 asks for a 5-fold knn evaluation of ~14k labelled multiple-choice questions
with the default embedding to finish within 10 minutes on two CPU cores. This script
checks the *time* part end to end, without the judged data (MMLU is never used here):

1. it builds a labelled CSV of MMLU-like shape (``prompt,weak_correct,strong_correct``):
   multiple-choice questions of ~60-120 words, a stem of one to three sentences, a
   question line and four options "A. ... B. ... C. ... D. ...", from public text
   available offline: sentences of the Python standard library's docstrings (the
   running interpreter's own sources), the GSM8K questions of
   /work/shared/data/gsm8k_routing.csv (MIT) and the GPTCache sentences of
   /work/shared/data/gptcache_mock_data.json (MIT), shuffled with a fixed seed;
2. the labels are drawn at random (weak correct with p = 0.55, strong with p = 0.80),
   so the APGR printed is meaningless (near 0.5): this run measures time, not quality;
3. it runs the real CLI as a user would, in a subprocess, on the default (neural)
   embedding with a cold on-disk embedding cache (``--embedding-cache`` pointing to a
   fresh temporary folder), then the same command again on the now warm cache, and the
   ``--shuffle-labels`` control (warm);
4. it prints, per run, wall seconds, CPU seconds of the child process (user + system:
   both cores busy shows as CPU ~ 2 x wall), and phases read from the CLI's own progress
   bars (stderr, timestamped as they arrive): start-up (imports, data, model load),
   embedding, and per fold the fit (the time before its scoring bar appears) and the
   scoring; plus the load average before and after (the machine may be shared: wall time
   on a busy machine says as much about the neighbours as about this code).
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

DATA_DIR = Path("/work/shared/data")
BUDGET_S = 600.0
WEAK_P, STRONG_P = 0.55, 0.80
QUESTIONS = (
    "Which of the following statements is correct?",
    "Which of the following best describes the situation above?",
    "Which option follows from the passage?",
    "Which of the following is true?",
    "What is the most accurate description?",
    "Which of these is the best answer?",
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_CLEAN = re.compile(r"^[A-Za-z][A-Za-z0-9 ,;:'()\-/$%]*[.?!]$")
_BAR = re.compile(r"^\s*([^:|]+?):\s+\d+%\|.*?\|\s*(\d+)/(\d+)")


def _stdlib_sentences() -> list[str]:
    """Sentences of the standard library's docstrings (prose only: no code, no
    markup)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p
        for p in root.rglob("*.py")
        if not {"test", "tests", "site-packages", "idlelib", "lib2to3"} & set(p.parts)
    )
    out: list[str] = []
    for path in files:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef):
                doc = ast.get_docstring(node)
                if doc:
                    out.extend(_SENTENCE.split(" ".join(doc.split())))
    return out


def _data_sentences() -> list[str]:
    out: list[str] = []
    with (DATA_DIR / "gsm8k_routing.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            out.extend(_SENTENCE.split(" ".join(row["prompt"].split())))
    for pair in json.loads((DATA_DIR / "gptcache_mock_data.json").read_text(encoding="utf-8")):
        out.extend([pair["origin"], pair["similar"]])
    return out


def sentence_pool() -> list[str]:
    """Distinct prose sentences of 6-30 words, in a fixed order."""
    seen: dict[str, None] = {}
    for s in _stdlib_sentences() + _data_sentences():
        s = " ".join(s.split())
        if 6 <= len(s.split()) <= 30 and _CLEAN.match(s) and ">>>" not in s:
            seen.setdefault(s, None)
    return list(seen)


def _option(rng: random.Random, pool: list[str]) -> str:
    words = rng.choice(pool).rstrip(".?!").split()
    start = rng.randrange(max(1, len(words) - 5))
    return " ".join(words[start : start + rng.randint(4, 14)])


def build_prompts(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct multiple-choice questions (see the module docs)."""
    pool = sentence_pool()
    rng = random.Random(seed)
    prompts: dict[str, None] = {}
    while len(prompts) < n:
        stem: list[str] = []
        while len(" ".join(stem).split()) < rng.randint(15, 60):
            stem.append(rng.choice(pool))
        options = "\n".join(f"{letter}. {_option(rng, pool)}" for letter in "ABCD")
        prompts.setdefault(f"{' '.join(stem)} {rng.choice(QUESTIONS)}\n{options}", None)
    return list(prompts)


def write_csv(path: Path, prompts: list[str], seed: int = 0) -> None:
    rng = random.Random(seed + 1)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "weak_correct", "strong_correct"])
        for p in prompts:
            writer.writerow([p, int(rng.random() < WEAK_P), int(rng.random() < STRONG_P)])


class _Phases:
    """First and last arrival time of each progress bar the CLI draws on stderr."""

    def __init__(self, stream: object, start: float) -> None:
        self.start = start
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.tail: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        buffer = ""
        while chunk := stream.read1(4096):  # type: ignore[attr-defined]
            now = time.perf_counter() - self.start
            buffer += chunk.decode("utf-8", "replace")
            *lines, buffer = re.split(r"[\r\n]", buffer)
            for line in lines:
                if not self._bar(line, now) and line.strip():
                    self.tail.append(line)
            # A bar is redrawn after a carriage return, not before one: the line still
            # in the buffer is the bar as it stands now.
            self._bar(buffer, now)

    def _bar(self, line: str, now: float) -> bool:
        match = _BAR.match(line)
        if match:
            self.first.setdefault(match[1], now)
            self.last[match[1]] = now
        return match is not None

    def join(self) -> None:
        self._thread.join()

    def table(self, total: float) -> list[tuple[str, float]]:
        """(phase, seconds): start-up, embedding, then fit and scoring of each fold."""
        rows: list[tuple[str, float]] = []
        mark = 0.0
        for name in sorted(self.first, key=self.first.__getitem__):
            before = "start-up (imports, data, model)" if name == "embedding" else f"{name} fit"
            rows.append((before, self.first[name] - mark))
            after = name if name == "embedding" else f"{name} scoring"
            rows.append((after, self.last[name] - self.first[name]))
            mark = self.last[name]
        rows.append(("evaluation and report", total - mark))
        return rows


def run_cli(data: Path, cache: Path, extra: list[str]) -> dict[str, object]:
    cli = Path(sys.executable).with_name("costopt")
    command = [str(cli), "eval-router", str(data), "--strategy", "knn", "--folds", "5"]
    command += ["--embedding-cache", str(cache), *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0 = os.getloadavg()
    start = time.perf_counter()
    env = {**os.environ, "TQDM_MININTERVAL": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    phases = _Phases(proc.stderr, start)
    out = proc.stdout.read().decode()  # type: ignore[union-attr]
    proc.wait()
    wall = time.perf_counter() - start
    phases.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n" + "\n".join(phases.tail[-20:]))
    apgr = re.search(r"APGR (\d\.\d+)", out)
    return {
        "command": " ".join(command),
        "wall": wall,
        "cpu": cpu,
        "phases": phases.table(wall),
        "apgr": apgr[1] if apgr else "?",
        "load": (load0, os.getloadavg()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=14_000, help="prompts (14,000)")
    parser.add_argument("--runs", default="cold,warm,shuffled", help="runs, in order")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="knn-wall-time-"))
    try:
        prompts = build_prompts(args.n)
        data = folder / "mc_questions.csv"
        write_csv(data, prompts)
        words = sorted(len(p.split()) for p in prompts)
        print(
            f"{len(prompts)} multiple-choice prompts from stdlib docstrings + GSM8K + GPTCache "
            f"sentences, words per prompt: median {words[len(words) // 2]}, "
            f"p10 {words[len(words) // 10]}, p90 {words[9 * len(words) // 10]}; "
            f"random labels (weak p={WEAK_P}, strong p={STRONG_P}): time, not quality"
        )
        print(f"machine: {os.cpu_count()} cores; budget {BUDGET_S:.0f} s wall\n")
        cache = folder / "embedding-cache"
        for run in args.runs.split(","):
            extra = ["--shuffle-labels"] if run == "shuffled" else []
            result = run_cli(data, cache, extra)
            load0, load1 = result["load"]  # type: ignore[misc]
            wall, cpu = float(result["wall"]), float(result["cpu"])  # type: ignore[arg-type]
            print(f"== {run}: {result['command']}")
            print(
                f"   wall {wall:.1f} s ({wall / BUDGET_S:.2f}x budget), CPU {cpu:.1f} s "
                f"({cpu / wall:.2f} cores busy), APGR {result['apgr']} (random labels); "
                f"load average {load0[0]:.2f} -> {load1[0]:.2f}"
            )
            for name, seconds in result["phases"]:  # type: ignore[attr-defined]
                print(f"   {name:<34}{seconds:>8.1f} s")
            print()
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
