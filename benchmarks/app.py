"""The functions the benchmarks call, rayfn's and raw Ray's side by side."""

import ray

import rayfn

app = rayfn.App("rayfn-bench")


@app.function()
def noop(x=None):
    return None


@ray.remote
def raw_noop(x=None):
    return None


@ray.remote(num_cpus=0)
class TaskOwner:
    """The floor for any design where an actor owns the call's task (as rayfn's
    registry does): one actor round trip around a task submitted and awaited there."""

    async def run(self):
        return await raw_noop.remote()
