"""The service's side: its process's life (``process``), the Python that runs it
(``interpreter``), its process tree seen from outside (``tree``), what memgate's agent in
it writes back (``agent_files``), the native libraries it maps (``native``), and how a
process ended, told for people (``exits``). The agent itself is ``gate/agent/``, run by
path inside the service; the ways of recording its allocations are ``gate/recording/``."""
