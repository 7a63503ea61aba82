"""DBOS Transact: ``N`` workflows of 7 steps, all started at once, in this process.

``python bench/dbos_flows.py URL N STEP_SECONDS``: prints one JSON line with the wall time from
the first start to the last result, the process's CPU seconds over that span and its peak RSS.
The steps make no call at all (the orchestrator's make an HTTP call each): the workflow and step
checkpoints in DBOS's system database are the whole cost.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

from dbos import DBOS

STEP_SECONDS = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0


@DBOS.step()
async def step(number: int) -> int:
    if STEP_SECONDS:
        await asyncio.sleep(STEP_SECONDS)
    return number


@DBOS.workflow()
async def flow() -> int:
    total = 0
    for number in range(7):
        total += await step(number)
    return total


async def run(n: int) -> dict[str, float]:
    await (await DBOS.start_workflow_async(flow)).get_result()  # warm-up
    cpu = time.process_time()
    started = time.perf_counter()
    handles = [await DBOS.start_workflow_async(flow) for _ in range(n)]
    results = await asyncio.gather(*(h.get_result() for h in handles))
    assert results == [21] * n
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    url, n = sys.argv[1], int(sys.argv[2])
    DBOS(config={"name": "bench", "system_database_url": url, "log_level": "WARNING"})
    DBOS.launch()
    try:
        print(json.dumps(asyncio.run(run(n))))
    finally:
        DBOS.destroy()


if __name__ == "__main__":
    main()
