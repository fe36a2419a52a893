"""Former home of the fault tests' helpers: optest.faults now.  This
module re-exports them until every test imports optest."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from optest.daemons import FAULTSHIM, OP_CHECK, WRITER_HOLD  # noqa: E402,F401
from optest.faults import (FaultShim, Poster, WriterHold, finish, jepsen_check,  # noqa: E402,F401
                           log_lines_since, op_check, op_check_self_test,
                           require_op_check, require_writer_hold)
from optest.faults import metric as prometheus  # noqa: E402,F401
