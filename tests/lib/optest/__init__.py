"""optest: the Python library of the order-processing tests and benchmark.

Python 3 standard library only.  Importing the package imports nothing
else; import the module you need:

- ports:   free_port() on loopback.
- procs:   /proc walking: alive(), children(), descendants(), tree(),
           rss(), RssPeak (its peak while something runs), stop() by
           pid, is_daemon_process().
- prom:    the Prometheus text format: parse() (strict), value(),
           first(), fetch().
- client:  HTTP: Client (keep-alive per thread), Response,
           check_response(), expect_status(), exchange() and
           raw_request() on a raw socket.
- daemons: binary paths (build tree or environment), require_built(),
           unique_queue(), unlink_queue(), Daemon (any argv), System
           (both daemons on a temporary data dir, a private queue and a
           free port).
- checks:  TestFailure, fail(), expect(), wait_until(), tail(), Soft
           (soft checks reported together), skip() and
           require_executable() (exit 77), run() (exit 0, 1 or 77).
- orders:  checks about the API's data: create_order(), check_order_shape(),
           check_metrics_consistent(), check_all_completed().
- faults:  the fault tests' tools: order-ctl check, FaultShim, Poster,
           WriterHold, jepsen_check(), check_self_test().

Scripts find it with, from tests/<kind>/:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
"""
