#!/usr/bin/env python3
"""A queue that other users could reach is refused, loudly, not shared.

Before either daemon starts, the queue is made with mode 0666 (as another
program or user might), and an id is sent into it as an intruder would.
Both daemons must refuse it: one log line each naming the queue, its mode
and owner and how to remove it (and only one, not one per retry), /readyz
503 for the queue, the intruder's message never read, and orders still
completing through the worker's sweep. Once the queue is removed, both
daemons make a private one (no bit for other users) within seconds, use it,
and /readyz is 200.
"""

import ctypes
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from optest.checks import fail, run, wait_until  # noqa: E402
from optest.daemons import System, unlink_queue  # noqa: E402
from optest.orders import check_all_completed  # noqa: E402

O_RDWR, O_CREAT, O_EXCL = os.O_RDWR, os.O_CREAT, os.O_EXCL

rt = ctypes.CDLL("librt.so.1", use_errno=True)
rt.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
rt.mq_open.restype = ctypes.c_int
rt.mq_send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint]
rt.mq_getattr.argtypes = [ctypes.c_int, ctypes.c_void_p]
rt.mq_close.argtypes = [ctypes.c_int]


class MqAttr(ctypes.Structure):
    _fields_ = [("mq_flags", ctypes.c_long), ("mq_maxmsg", ctypes.c_long),
                ("mq_msgsize", ctypes.c_long), ("mq_curmsgs", ctypes.c_long),
                ("pad", ctypes.c_long * 4)]


def mq_open(name, flags, mode=0):
    fd = rt.mq_open(name.encode(), flags, mode, None)
    if fd < 0:
        e = ctypes.get_errno()
        fail("mq_open(%s): %s" % (name, os.strerror(e)))
    return fd


def queue_state(name):
    """(mode, messages waiting) of the queue now named name."""
    fd = mq_open(name, O_RDWR)
    try:
        attr = MqAttr()
        if rt.mq_getattr(fd, ctypes.byref(attr)) != 0:
            fail("mq_getattr(%s): %s" % (name, os.strerror(ctypes.get_errno())))
        return os.fstat(fd).st_mode & 0o7777, attr.mq_curmsgs
    finally:
        rt.mq_close(fd)


def log_lines(path, needle):
    with open(path, errors="replace") as f:
        return [line for line in f if needle in line]


def main():
    with System("queue_exposed") as s:
        old = os.umask(0)
        try:
            fd = mq_open(s.queue, O_RDWR | O_CREAT | O_EXCL, 0o666)
        finally:
            os.umask(old)
        intruder = (123456789).to_bytes(8, "little")
        if rt.mq_send(fd, intruder, 8, 0) != 0:
            fail("mq_send: %s" % os.strerror(ctypes.get_errno()))
        rt.mq_close(fd)

        s.start_api()
        s.start_worker(workers=2, pickup_ms=0, processing_ms=100, lease_ms=2000)
        refusal = "could not open queue %s: it exists with mode 0666, owner uid %d" \
            % (s.queue, os.geteuid())
        advice = "rm /dev/mqueue%s" % s.queue
        for d in (s.api, s.worker):
            wait_until(lambda: any(advice in line for line in
                                   log_lines(d.log_path, refusal)), 10,
                       "%s to log that it refuses the queue" % d.name)
        r = s.request("GET", "/readyz")
        if r.status != 503 or "queue" not in r.body.get("detail", ""):
            fail("readyz with the queue refused: %s %r" % (r.status, r.raw))

        ids = [s.create_order(user_id=7, item_ids=[i + 1]) for i in range(20)]
        check_all_completed(s, ids, timeout=30, expected_total=20)
        mode, waiting = queue_state(s.queue)
        if mode != 0o666 or waiting != 1:
            fail("the refused queue is mode %04o with %d messages; expected "
                 "it left alone: 0666 with the intruder's one message"
                 % (mode, waiting))
        # One line per event: the daemons retry every second, quietly.
        n_api = len(log_lines(s.api_log, refusal))
        if n_api != 1:
            fail("order-api logged the refusal %d times, expected once" % n_api)
        n_worker = len(log_lines(s.worker_log, refusal))
        if n_worker != 2:
            fail("order-worker logged the refusal %d times, expected once "
                 "per worker (2)" % n_worker)

        # Removed: both daemons make a private queue and use it.
        unlink_queue(s.queue)
        opened = "opened queue %s" % s.queue
        wait_until(lambda: log_lines(s.api_log, opened), 10,
                   "order-api to open a new queue")
        wait_until(lambda: len(log_lines(s.worker_log, opened)) >= 2, 10,
                   "both workers to open the new queue")
        s.wait_ready(10)
        mode, _ = queue_state(s.queue)
        if mode & 0o007:
            fail("the daemons made the queue with mode %04o" % mode)
        more = [s.create_order(user_id=8, item_ids=[i + 1]) for i in range(20)]
        check_all_completed(s, ids + more, timeout=30, expected_total=40)
        s.stop_worker()
        s.stop_api()


if __name__ == "__main__":
    run(main)
