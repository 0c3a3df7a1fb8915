"""Runs the real tuner loop on the job contract's TEST DOUBLE (fake_job.py), as its own process.

Its jobs run from standby processes, as a local tuner's do. Used by the Ctrl-C and kill -9 tests:
`python fake_tuning.py start RUN_DIR CONFIG_JSON` or `python fake_tuning.py resume RUN_DIR`.
"""

import json
import signal
import sys
from pathlib import Path

from sagemaker_rl.tuning import LocalProcessRunner, config_from_mapping, resume_tuning, run_tuning

FAKE_JOB = Path(__file__).with_name("fake_job.py")

if __name__ == "__main__":
    # Ctrl-C as a terminal delivers it: whatever the test process left to its children (a blocked or
    # ignored SIGINT after in-process RLlib tests), this process gets Python's default handler.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    runner = LocalProcessRunner([sys.executable, str(FAKE_JOB)], standby=2)  # as the tuner's own, for 2 slots
    try:
        if sys.argv[1] == "start":
            config = config_from_mapping({"reevaluate_top": 0, **json.loads(sys.argv[3]), "run_dir": sys.argv[2]})
            result = run_tuning(config, runner=runner, command=sys.argv)
        else:
            result = resume_tuning(sys.argv[2], runner=runner)
    finally:
        runner.close()
    sys.exit(130 if result.interrupted else 0)
