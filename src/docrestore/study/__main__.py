"""``python -m docrestore.study paper-figures | list`` (``make paper-figures``)."""

import sys

from .lines import main

sys.exit(main())
