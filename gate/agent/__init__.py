"""memgate's agent (``memgate_agent.py``), which runs inside the service.

It is alone in this folder because it is run by path: Python puts a script's folder
first on ``sys.path``, where a module of memgate's (``_json``, say) would shadow one of
the standard library's in the service.
"""
