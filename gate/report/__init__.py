"""Reporters: each turns a :class:`~gate.report.report.Report` into a string; the CLI
prints it or writes it (and a check writes its JSON and HTML reports beside its result).

``terminal`` (the summary ``memgate run`` and ``check`` print), ``json`` (machine
readable, ``docs/report-schema.md``), ``markdown`` (the GitHub job summary), ``github``
(workflow-command annotations) and ``html`` (one self-contained file for review);
``report`` holds what they are given, ``parts`` what they share, ``formats`` names them
and renders in any of them.
Importing this package costs nothing: the reporters load numpy and the analysis.
"""
