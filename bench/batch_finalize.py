"""Finalize memory: peak RSS of the batch controller's finalize on a 200 MiB / 50,000-line batch.

A batch is laid out in a local-directory Storage as the worker leaves it: the input
(``--lines`` requests of about ``--mib`` MiB in all), one checkpoint per 25 lines holding
an answer for every line (a small completion), and the done markers. A child process
then runs ``batch.finalize.finalize`` — what the batch controller's function runs — and
reports its peak resident set (``ru_maxrss``) and its resident set before the finalize
(the interpreter and the modules). Goal (issue 23): peak under 256 MiB; the function
gets ``batch_controller_memory`` (1G by default, terraform/batch.tf). Before the batch
controller, the finalize held the input, every checkpoint and both outputs in memory:
855 MiB for 198 MiB (issue 23's measurement).

    python bench/batch_finalize.py [--mib 200] [--lines 50000] [--write]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "shared"))

from _results import machine, parser, report  # noqa: E402

from yoyo_control.adapters.local_storage import LocalStorage  # noqa: E402
from yoyo_control.batch import work  # noqa: E402
from yoyo_control.domain import batch as model  # noqa: E402

BATCH_ID = "batch_" + "b" * 32
CHUNK = 25


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def lay_out(root: Path, mib: int, lines: int) -> dict[str, object]:
    """Input, checkpoints and done markers of one finished batch; its record as JSON."""
    storage = LocalStorage(root)
    pad = max(0, mib * 1024 * 1024 // lines - 160)
    text = "x" * pad
    with storage.writer(work.input_key(BATCH_ID)) as f:
        for i in range(lines):
            body = {"model": "m", "messages": [{"role": "user", "content": text}], "max_tokens": 8}
            line = {"custom_id": f"r-{i}", "method": "POST", "url": "/v1/chat/completions"}
            f.write(json.dumps({**line, "body": body}).encode() + b"\n")
    size = storage.size(work.input_key(BATCH_ID)) or 0
    # Shards as submit plans them (shard_lines 100), from the byte offsets of each line.
    offsets, at = [], 0
    with open(root / work.input_key(BATCH_ID), "rb") as f:
        for raw in f:
            offsets.append((at, at + len(raw)))
            at += len(raw)
    shards = []
    for index in range(0, lines, 100):
        part = range(index, min(lines, index + 100))
        shards.append(
            model.Shard(
                index // 100, part[0] + 1, part[-1] + 1, offsets[part[0]][0], offsets[part[-1]][1]
            )
        )
    answer = {"object": "chat.completion", "choices": [{"message": {"content": "ok " * 20}}]}
    for shard in shards:
        for first in range(shard.first_line, shard.last_line + 1, CHUNK):
            last = min(shard.last_line, first + CHUNK - 1)
            records = [
                model.result_record(n, f"r-{n - 1}", f"req-{n}", 200, answer)
                for n in range(first, last + 1)
            ]
            storage.put(
                work.checkpoint_key(BATCH_ID, shard.index, first, last),
                b"".join(json.dumps(r).encode() + b"\n" for r in records),
            )
        storage.put(work.done_key(BATCH_ID, shard.index), b'{"completed": 0, "failed": 0}')
    return {"size": size, "shards": [s.__dict__ for s in shards]}


def child(root: str, layout_file: str) -> None:
    """Run the finalize; print {"before_mib", "peak_mib", "seconds", "completed"}."""
    from yoyo_control.batch.finalize import finalize

    layout = json.loads(Path(layout_file).read_text())
    shards = tuple(model.Shard(**s) for s in layout["shards"])
    batch = model.Batch(
        id=BATCH_ID, pool="p", endpoint="/v1/chat/completions",
        input_key=work.input_key(BATCH_ID), created_at=0.0, expires_at=1e12,
        status=model.Status.FINALIZING, shards=shards,
    )  # fmt: skip
    before = rss_mib()
    began = time.monotonic()
    counts = finalize(LocalStorage(root), batch, "batch_expired")
    took = time.monotonic() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"before_mib": before, "peak_mib": peak, "seconds": took,
                      "completed": counts.completed}))  # fmt: skip


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return 0
    p = parser(__doc__)
    p.add_argument("--mib", type=int, default=200)
    p.add_argument("--lines", type=int, default=50_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="yoyo-finalize-") as tmp:
        layout = lay_out(Path(tmp), args.mib, args.lines)
        layout_file = Path(tmp) / "layout.json"
        layout_file.write_text(json.dumps(layout))
        load = os.getloadavg()[0]
        out = subprocess.run(
            [sys.executable, __file__, "--child", tmp, str(layout_file)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["completed"] == args.lines, got
    body = "\n".join(
        [
            "### Batch finalize: peak memory (bench/batch_finalize.py)",
            "",
            f"{machine()}; load average {load:.2f}.",
            "",
            "| input | lines | RSS before | peak RSS | goal | time |",
            "|---|---|---|---|---|---|",
            f"| {layout['size'] / 2**20:.0f} MiB | {args.lines:,} | {got['before_mib']:.0f} MiB "
            f"| {got['peak_mib']:.0f} MiB | < 256 MiB | {got['seconds']:.1f} s |",
        ]
    )
    return report("batch-finalize", body, args.write)


if __name__ == "__main__":
    sys.exit(main())
