import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

# A test process started from a non-interactive shell in the background inherits SIGINT as
# "ignored"; Python then installs no KeyboardInterrupt handler, `_thread.interrupt_main` does
# nothing and child processes inherit the ignored signal, so the Ctrl-C tests would run their
# deliberately endless computations forever. Restore Python's handler (children then start
# with the default disposition).
import signal  # noqa: E402

if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL, None):
    signal.signal(signal.SIGINT, signal.default_int_handler)
