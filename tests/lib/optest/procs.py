"""Processes by pid, read from /proc (Linux).

alive(pid), children(pid), descendants(pid), tree(pids), rss(pids),
RssPeak(pids) (the peak of rss() while something runs),
stop(pid, sig, timeout), is_daemon_process(pid, exes).
"""

import os
import signal
import threading
import time


def _stat_fields(pid):
    """The fields of /proc/pid/stat after comm (state first), or None.
    comm may contain spaces and parentheses: split after the last ')'."""
    try:
        with open("/proc/%s/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return data[data.rfind(")") + 2:].split()


def alive(pid):
    """True if pid exists and is not a zombie."""
    rest = _stat_fields(pid)
    return bool(rest) and rest[0] not in ("Z", "X")


def children_map():
    """{parent pid: [child pids]} of every process, one pass over /proc."""
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        rest = _stat_fields(entry)
        if rest and len(rest) >= 2:
            kids.setdefault(int(rest[1]), []).append(int(entry))
    return kids


def children(pid):
    """Direct children of pid."""
    return list(children_map().get(pid, ()))


def descendants(pid):
    """Every process below pid (not pid itself), parents before children."""
    kids = children_map()
    out = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, ()):
            if c not in out:
                out.append(c)
                todo.append(c)
    return out


def tree(pids):
    """pids and every process below them."""
    kids = children_map()
    out, todo = [], list(pids)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def status_kib(pid):
    """(VmRSS, RssAnon) of pid in KiB; (0, 0) once it is gone."""
    vm = anon = 0
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    vm = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
    except OSError:
        pass
    return vm, anon


def rss(pids):
    """(VmRSS KiB, RssAnon KiB, number of processes) summed over the
    process trees of pids."""
    procs = tree(pids)
    vm = anon = 0
    for p in procs:
        v, a = status_kib(p)
        vm += v
        anon += a
    return vm, anon, len(procs)


class RssPeak(threading.Thread):
    """Samples rss() of the pids still alive every interval s, from
    start() until stop() or until every pid is gone.  peak is (the
    highest VmRSS KiB, the highest RssAnon KiB, the processes counted at
    the VmRSS peak), or None before the first sample; stop() returns it."""

    def __init__(self, pids, interval=0.2):
        super().__init__(daemon=True)
        self.pids = list(pids)
        self.interval = interval
        self.peak = None
        self._done = threading.Event()

    def run(self):
        vm_best = anon_best = n_best = 0
        while not self._done.is_set():
            live = [p for p in self.pids if alive(p)]
            if not live:
                break
            vm, anon, n = rss(live)
            if vm > vm_best:
                vm_best, n_best = vm, n
            anon_best = max(anon_best, anon)
            self.peak = (vm_best, anon_best, n_best)
            self._done.wait(self.interval)

    def stop(self):
        self._done.set()
        if self.is_alive():
            self.join()
        return self.peak


def stop(pid, sig=signal.SIGTERM, timeout=10.0):
    """Send sig to pid, wait up to timeout s for it to end (or become a
    zombie), then SIGKILL it.  Returns "gone" (it was not running),
    "exited" (it ended after sig) or "killed" (it needed SIGKILL)."""
    if not alive(pid):
        return "gone"
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return "gone"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return "exited"
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "exited"
    while alive(pid):
        time.sleep(0.02)
    return "killed"


def is_daemon_process(pid, exes=None):
    """True if pid runs one of the executables exes (default: order-api
    and order-worker): a guard against pid reuse."""
    if exes is None:
        from optest import daemons
        exes = (daemons.ORDER_API, daemons.ORDER_WORKER)
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return False
    exe = exe.replace(" (deleted)", "")
    return exe in [os.path.realpath(e) for e in exes]
