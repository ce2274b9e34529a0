"""The extension's own check, run by any CPython it is built for (3.9 to 3.13), with
nothing else installed: CI builds the sampler on each and runs this.

    python -m pip install ./sampler && python sampler/check.py

It fails (exit 1, one line saying what) unless:

- a line that keeps 50,000 objects of 233 bytes is estimated within 8% (about 2,900
  samples at 4 KiB), while the garbage made beside it is estimated near nothing;
- freed, nothing of that line is left;
- 2,000 functions compiled, sampled and dropped are not kept alive by the sampler;
- 200 functions alike but for their names, each compiled, sampled and dropped in turn
  (each one's code object likely where the last one's was), each have their own
  samples: none is told by the stack its predecessor left;
- ``write`` makes lines of JSON naming the line's function, file and line number, and a
  forked child, after ``rewrite``, writes every frame and stack again;
- a thread made quiet is not sampled.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
import threading

import memgate_sampler

KEPT_LINE = 0


def keep(into: list, n: int) -> None:
    global KEPT_LINE
    KEPT_LINE = sys._getframe().f_lineno + 2
    for _ in range(n):
        into.append(bytes(200))  # a 233-byte object


def churn(n: int) -> None:
    for i in range(n):
        garbage = [i] * 20  # noqa: F841


def by_function() -> dict[str, int]:
    live = memgate_sampler.live()
    stacks = dict(memgate_sampler.stacks_from(0))
    names = {i: name for i, name, _, _ in memgate_sampler.frames_from(0)}
    out: dict[str, int] = {}
    for stack, size, _ in live:
        frames = stacks[stack]
        name = names[frames[0]] if frames else ""
        out[name] = out.get(name, 0) + size
    return out


def written(path: str) -> list[dict]:
    with open(path) as lines:
        return [json.loads(line) for line in lines]


def fail(why: str) -> None:
    print(f"memgate-sampler {sys.version.split()[0]}: {why}")
    sys.exit(1)


def dropped_functions_grow(first: int) -> int:
    """The blocks left by 2,000 functions compiled, called and dropped (Python 3.12 and
    3.13 keep each one's interned name: a block each, sampled or not)."""

    def made(i: int):
        space: dict = {}
        source = f"def handler_{i}():\n    return [bytes(100) for _ in range(20)]\n"
        exec(compile(source, f"generated_{i}.py", "exec"), space)
        return space[f"handler_{i}"]

    for i in range(first, first + 50):
        made(i)()
    gc.collect()
    before = sys.getallocatedblocks()
    for i in range(first + 50, first + 2050):
        made(i)()
    gc.collect()
    return sys.getallocatedblocks() - before


def alike_functions_told_apart() -> list[str]:
    """200 functions alike but for their names, each made, called and dropped in turn,
    what each made kept: the names of those with no live bytes (each keeps 53 KB: about
    13 samples, none with a chance of e^-13)."""

    def made(i: int):
        space: dict = {}
        source = (
            f"def alike_{i}(n):\n    out = []\n    for _ in range(n):\n"
            "        out.append(bytes(100))\n    return out\n"
        )
        exec(compile(source, "alike.py", "exec"), space)
        return space[f"alike_{i}"]

    held = [made(i)(400) for i in range(200)]
    found = by_function()
    missing = [f"alike_{i}" for i in range(200) if not found.get(f"alike_{i}")]
    del held
    return missing


def main() -> None:
    without = dropped_functions_grow(0)
    memgate_sampler.start(rate=4096, seed=7)
    kept: list = []
    keep(kept, 50_000)
    churn(200_000)
    estimated = by_function()
    expected = 50_000 * 233 + 406_000  # the objects and the list's pointers
    if abs(estimated.get("keep", 0) - expected) > 0.08 * expected:
        fail(f"the kept line estimated at {estimated.get('keep', 0):,} B, not {expected:,}")
    if estimated.get("churn", 0) > 200_000:
        fail(f"the garbage's line estimated at {estimated['churn']:,} B live")

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "samples.jsonl")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        memgate_sampler.write(fd, 1.0)
        lines = written(path)
        frames = {tuple(f) for line in lines for f in line.get("frames", {}).values()}
        if ("keep", __file__, KEPT_LINE) not in frames:
            fail(f"no frame names keep at {__file__}:{KEPT_LINE}: {sorted(frames)[:3]}")
        if lines[-1].get("t") != 1.0 or not lines[-1].get("live"):
            fail(f"the last line is not the live set at 1.0: {str(lines[-1])[:80]}")
        child = os.fork()
        if child == 0:
            memgate_sampler.rewrite()
            again = os.open(path + ".child", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            memgate_sampler.write(again, 2.0)
            os._exit(0)
        os.waitpid(child, 0)
        first = written(path + ".child")[0].get("frames", {})
        if len(first) < len(lines[0].get("frames", {})):
            fail("a forked child's first write after rewrite() lacks frames")

    del kept[:]
    gc.collect()
    if by_function().get("keep", 0) != 0:
        fail("the freed line's bytes are still estimated live")

    missing = alike_functions_told_apart()
    if missing:
        fail(f"{len(missing)} of 200 functions alike have no live bytes: {missing[:3]}")

    with_sampler = dropped_functions_grow(2050)
    if with_sampler - without > 500:  # a kept code object is ~10 blocks
        fail(f"2,000 dropped functions left {with_sampler:,} blocks, {without:,} unsampled")

    sampled = memgate_sampler.stats()["sampled"]

    def quietly() -> None:
        memgate_sampler.quiet(True)
        keep([], 20_000)

    thread = threading.Thread(target=quietly)
    thread.start()
    thread.join()
    if memgate_sampler.stats()["sampled"] - sampled > 50:  # the thread's own start
        fail("a quiet thread's allocations were sampled")
    print(f"memgate-sampler {sys.version.split()[0]}: ok ({memgate_sampler.stats()})")


if __name__ == "__main__":
    main()
