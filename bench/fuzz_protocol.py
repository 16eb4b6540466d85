"""Fuzz the C protocol parser with libFuzzer + AddressSanitizer + UBSan and print how many inputs it ran.

Builds tests/c/protocol_fuzz.c (see its header for the checks: memory safety, split-invariance, delivered
frames are exact and CRC-valid, no livelock, every undamaged frame recovered) with clang-14, seeds the corpus
with the golden vectors, and runs a bounded number of inputs. A crash, leak, sanitizer report or timeout
fails the run (exit 1) and leaves the reproducer in the work directory. docs/benchmarks.md "Wire protocol"
records the count. tests/test_protocol_c.py runs the same functions with a CI-sized budget.

    python bench/fuzz_protocol.py [--runs 1000000] [--max-len 4096] [--workdir build/fuzz_protocol]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.errors import UserError, exit_cli  # noqa: E402

PROTO_DIR = ROOT / "firmware" / "lib" / "protocol"
FUZZ_SRC = ROOT / "tests" / "c" / "protocol_fuzz.c"
GOLDEN = ROOT / "tests" / "data" / "protocol" / "golden.json"
REGRESSIONS = ROOT / "tests" / "data" / "protocol" / "fuzz_regressions"
CLANG_CANDIDATES = ("clang-14", "clang")


def find_clang() -> str:
    """clang with libFuzzer (Debian: clang-14 + libclang-rt-14-dev); UserError naming the packages if absent."""
    for name in CLANG_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise UserError("clang not found; install it: sudo apt-get install -y clang libclang-rt-14-dev")


def build_fuzzer(out: Path, clang: str | None = None) -> Path:
    """Compile the libFuzzer target to ``out``; UserError with the compiler's first error line on failure."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        clang or find_clang(),
        "-std=c99",
        "-O1",
        "-g",
        "-fsanitize=fuzzer,address,undefined",
        "-fno-sanitize-recover=all",
        f"-I{PROTO_DIR}",
        str(PROTO_DIR / "protocol.c"),
        str(FUZZ_SRC),
        "-o",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        first = next((line for line in proc.stderr.splitlines() if "error" in line), proc.stderr.strip()[:200])
        raise UserError(f"building the fuzzer failed ({first}); is libclang-rt-14-dev installed?")
    return out


def seed_corpus(corpus: Path) -> Path:
    """Seeds: the golden vectors in raw mode (max payload 255, chunk 7), a frames-mode script (chunk 3), and
    every input that once found a bug (tests/data/protocol/fuzz_regressions), so each run re-checks them."""
    corpus.mkdir(parents=True, exist_ok=True)
    for old in REGRESSIONS.iterdir():
        shutil.copyfile(old, corpus / f"regression_{old.name}")
    for vector in json.loads(GOLDEN.read_text())["vectors"]:
        data = bytes.fromhex(vector["hex"])
        (corpus / f"raw_{vector['name']}").write_bytes(bytes([255, 6]) + data)
    (corpus / "frames_script").write_bytes(bytes([200, 0x82, 3, 4, 1, 2, 3, 4, 0x0B, 2, 9, 9, 5, 0x13, 1, 7, 2]))
    return corpus


def run_fuzzer(
    binary: Path, corpus: Path, runs: int, max_len: int = 4096, seed: int = 1, artifacts: Path | None = None
) -> dict:
    """Run ``runs`` inputs; return {"runs", "seconds", "ok", "log_tail"}."""
    artifacts = artifacts or corpus.parent
    cmd = [
        str(binary),
        f"-runs={runs}",
        f"-max_len={max_len}",
        "-timeout=10",
        f"-seed={seed}",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/",
        str(corpus),
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    done = re.search(r"Done (\d+) runs", proc.stderr)
    cov = re.search(r"DONE\s+cov: (\d+) ft: (\d+)", proc.stderr)
    return {
        "runs": int(done.group(1)) if done else 0,
        "seconds": seconds,
        "ok": proc.returncode == 0 and bool(done),
        "coverage": f"{cov.group(1)} edges, {cov.group(2)} features" if cov else "unknown",
        "log_tail": "\n".join(proc.stderr.splitlines()[-25:]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs to run (default 1000000)")
    parser.add_argument("--max-len", type=int, default=4096, help="longest generated input in bytes (default 4096)")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer random seed (default 1)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=ROOT / "build" / "fuzz_protocol",
        help="where the binary, corpus and any crash reproducer go (default build/fuzz_protocol)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.max_len < 3:
        raise UserError("--runs must be >= 1 and --max-len >= 3")
    binary = build_fuzzer(args.workdir / "protocol_fuzz")
    corpus = seed_corpus(args.workdir / "corpus")
    result = run_fuzzer(binary, corpus, args.runs, args.max_len, args.seed, args.workdir)
    print(
        f"libFuzzer + ASan + UBSan on the C parser: {result['runs']} inputs in {result['seconds']:.1f} s "
        f"({result['runs'] / max(result['seconds'], 1e-9):.0f}/s), max_len {args.max_len}, "
        f"corpus {sum(1 for _ in corpus.iterdir())} files, coverage {result['coverage']}: "
        f"{'no crash, no hang' if result['ok'] else 'FAILED'}"
    )
    stats = [line for line in result["log_tail"].splitlines() if line.startswith("stat::")]
    for line in stats:
        print(" ", line)
    if not result["ok"]:
        print(result["log_tail"])
        return 1
    return 0


if __name__ == "__main__":
    exit_cli(main)
