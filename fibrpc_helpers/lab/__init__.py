"""The lab: the plumbing around the RPC core that a student may skip.

Notebooks (``notebook``, ``namespace``), brokers (``broker``, ``cluster``, ``nodes``), child
processes (``runtime``, ``processes``, ``run_script``), the message trace (``trace``,
``trace_hooks``, ``trace_draw``) and the queue watch (``watch``). It imports the core and
never the benchmark (``fibrpc_helpers.bench``).
"""
