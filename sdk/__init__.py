"""rayfn: Modal-style serverless functions and job queues on a Ray cluster you own.

Code written for Modal's job-queue API runs after changing one import::

    import rayfn as modal
"""

from rayfn import console, exception, functions, webhooks
from rayfn._app import App
from rayfn._call_progress import set_progress
from rayfn._cls import Cls, batched, concurrent, enter, exit, method
from rayfn._function import Function
from rayfn._function_call import FunctionCall, current_function_call_id, is_local, list_calls
from rayfn._image import Image
from rayfn._output import enable_output
from rayfn._retries import Retries
from rayfn._schedules import Cron, Period
from rayfn._secret import Secret
from rayfn._stores import Dict, Queue
from rayfn._volume import Volume
from rayfn._web import asgi_app, fastapi_endpoint, web_server, wsgi_app
from rayfn.records import CallInfo, CallStatus, Progress
from rayfn.webhooks import Webhook

__version__ = "0.1.0"

__all__ = [
    "App",
    "CallInfo",
    "CallStatus",
    "Cls",
    "Cron",
    "Dict",
    "Function",
    "FunctionCall",
    "Image",
    "Period",
    "Progress",
    "Queue",
    "Retries",
    "Secret",
    "Volume",
    "Webhook",
    "__version__",
    "asgi_app",
    "batched",
    "concurrent",
    "console",
    "current_function_call_id",
    "enable_output",
    "enter",
    "exception",
    "exit",
    "fastapi_endpoint",
    "functions",
    "is_local",
    "list_calls",
    "method",
    "set_progress",
    "web_endpoint",
    "web_server",
    "webhooks",
    "wsgi_app",
]

web_endpoint = fastapi_endpoint  # Modal's older name
