"""`python -m sagemaker_rl.job --problem P`: one training job under the job contract."""

import sys

from sagemaker_rl.job.entry import main

sys.exit(main())
