"""memgate's agent (``memgate_agent.py``), which runs inside the service, and
``describe_python.py``, which memgate runs in the service's interpreter first.

They are alone in this folder, apart from the rest of memgate, because they are run by
path: Python puts a script's folder first on ``sys.path``, where a module of memgate's
(``_json``, say) would shadow one of the standard library's in the service. Nothing
here may take a standard library module's name.
"""
