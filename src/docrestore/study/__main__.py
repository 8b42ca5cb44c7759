"""``python -m docrestore.study paper-figures | list | reader`` (``make paper-figures``)."""

import sys

from .paper import main

sys.exit(main())
