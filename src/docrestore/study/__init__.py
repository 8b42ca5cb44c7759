"""The paper's study: its experiments over the library (which never imports this package).

- :mod:`.benchmark`: an arm (``Experiment``) and one ``Benchmark`` (config, ledger folder, recorded
  fields, run, table columns) with deciding, announcing, running-or-reusing and tabulating written once;
- :mod:`.lines`: the line benchmark ``LINES``, its arms as recipes, notebooks 01–03;
- :mod:`.pages`: the DIBCO page benchmark ``PAGES``, notebook 05;
- :mod:`.reuse`: when a ledger entry is reused, and the plan a notebook announces;
- :mod:`.estimate`: what a plan of the paper's experiments costs in hours;
- :mod:`.paper`: ``make paper-figures`` (``python -m docrestore.study paper-figures --profile quick``).
"""
