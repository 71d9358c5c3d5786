"""The Modal job-queue guide's program, with one change: ``import rayfn as modal``.

rayfn deploy examples/my_job_queue.py
rayfn run examples/my_job_queue.py      # prints {'result': 'my-data'}
"""

import rayfn as modal

app = modal.App("my-job-queue")


@app.function()
def process_job(data):
    return {"result": data}


def submit_job(data):
    process_job = modal.Function.lookup("my-job-queue", "process_job")
    return process_job.spawn(data).object_id


def get_job_result(call_id):
    function_call = modal.functions.FunctionCall.from_id(call_id)
    try:
        return function_call.get(timeout=5)
    except modal.exception.OutputExpiredError:
        return {"result": "expired"}
    except TimeoutError:
        return {"result": "pending"}


@app.local_entrypoint()
def main():
    print(get_job_result(submit_job("my-data")))
