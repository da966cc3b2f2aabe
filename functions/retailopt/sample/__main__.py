"""`python -m retailopt.sample`: the same as `retailopt generate-sample`."""

import sys

from retailopt.sample import main

sys.exit(main())
