"""Former home of the test helpers: they live in tests/lib/optest now.
This module re-exports them under their old names until every test
imports optest."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import http.client  # noqa: E402,F401 - some tests reach http.client through here

from optest.checks import TestFailure, fail, tail, wait_until, run  # noqa: E402,F401
from optest.client import (HTTP_TIMEOUT, IDEMPOTENT, STALE_ERRORS, Client,  # noqa: E402,F401
                           Response, check_response, raw_request)
from optest.client import decode_body as _decode_body  # noqa: E402,F401
from optest.daemons import (ORDER_API, ORDER_WORKER, ROOT, Daemon, System,  # noqa: E402,F401
                            unique_queue, unlink_queue, require_built as check_daemons_built)
from optest.orders import (ORDER_ID_RE, STATUS_RANK, STATUSES, TIMESTAMP_RE,  # noqa: E402,F401
                           check_all_completed, check_metrics_consistent, check_order_shape)
from optest.ports import free_port  # noqa: E402,F401
from optest.procs import alive as pid_alive, is_daemon_process  # noqa: E402,F401
from optest.procs import children as children_of, descendants as descendants_of  # noqa: E402,F401
