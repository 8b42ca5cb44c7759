"""The paper's study: its experiments over the library (which never imports this package).

- :mod:`.lines`: the line arms as recipes, train + evaluate + ledger entry, notebooks 01–03, and
  ``make paper-figures``;
- :mod:`.pages`: the DIBCO page arms, notebook 05;
- :mod:`.reuse`: when a ledger entry is reused, and the plan a notebook announces;
- :mod:`.estimate`: what a plan of the paper's experiments costs in hours.

``python -m docrestore.study paper-figures --profile quick`` is ``make paper-figures``.
"""
