"""The worker the Modal endpoint program submits to, slowed down and short-lived so a
test sees 202, then 200, then 404."""

import time

import rayfn

app = rayfn.App("my-job-queue")


@app.function(result_ttl=4)
def process_job(data):
    time.sleep(2)
    return {"result": data}
