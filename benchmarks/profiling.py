"""py-spy around a running benchmark: record a process tree, then summarise the hot spots."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

from .common import BIN

_LINE = re.compile(r":\d+\)$")


def pyspy() -> str | None:
    candidate = BIN / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def record(pid: int, duration: int, out: Path, *, rate: int = 200, idle: bool = False) -> subprocess.Popen:
    """Start sampling `pid` and its subprocesses for `duration` seconds into `out` (collapsed stacks)."""
    exe = pyspy()
    if exe is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install -e '.[bench]'")
    args = [exe, "record", "--pid", str(pid), "--subprocesses", "--duration", str(duration), "--rate", str(rate),
            "--format", "raw", "--output", str(out), "--nonblocking"]
    if idle:
        args.append("--idle")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _frame_name(frame: str) -> str:
    """'post (apps/webhooks/views.py:47)' → 'post (apps/webhooks/views.py)', site-packages shortened."""
    frame = _LINE.sub(")", frame.strip())
    return re.sub(r"\(.*?(site-packages|lib/python3\.\d+)/", "(", frame)


def summarise(path: Path, top: int = 30) -> dict:
    """Inclusive and self share of samples per function (lines merged), from py-spy's raw output."""
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame_name(f) for f in stack.split(";")]
        # The first frame is py-spy's process/thread label; drop it.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    if not total:
        return {"samples": 0, "inclusive": [], "self": []}
    pct = lambda c: round(100 * c / total, 1)  # noqa: E731
    return {
        "samples": total,
        "inclusive": [(name, pct(c)) for name, c in inclusive.most_common(top)],
        "self": [(name, pct(c)) for name, c in own.most_common(top)],
    }


def print_summary(summary: dict, top: int = 25) -> None:
    print(f"\npy-spy: {summary['samples']} samples of threads it saw running "
          "(on some VMs waits in socket calls count too)")
    print("  inclusive %  function")
    for name, share in summary["inclusive"][:top]:
        print(f"  {share:10.1f}  {name}")
    print("  self %       function")
    for name, share in summary["self"][:top]:
        print(f"  {share:10.1f}  {name}")
