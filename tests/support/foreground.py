"""Run the ``ecosign-orchestrator`` command as a terminal runs a foreground command: with SIGINT
and SIGQUIT at their defaults, whatever the process starting it had.

A child inherits the signals its parent ignores, and glibc's ``system()`` ignores SIGINT and
SIGQUIT in the whole process while its command runs: a test starting the CLI while any thread
of the test process is inside such a call gave it an ignored Ctrl-C (seen in CI: the Ctrl-C test
hung with ``SigIgn`` showing both). Python leaves an ignored SIGINT ignored, as a command should
(``cmd &`` in a script is meant to survive the script's Ctrl-C); a test of Ctrl-C needs the
foreground case. Usage: ``python -m tests.support.foreground ARGS...``.
"""

from __future__ import annotations

import runpy
import signal

if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    runpy.run_module("ecosign_orchestrator", run_name="__main__", alter_sys=True)
