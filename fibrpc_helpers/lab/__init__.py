"""The lab: what runs the notebooks and the machine around the RPC core.

A student reads the core (``fibrpc_helpers.client``, ``worker``, ``wire``, ``errors``, ``fib``,
``request_queue``, ``urls``, ``pipeline``) beside the notebooks; this subpackage is the plumbing
they may skip: a notebook's start and clean-up (``notebook``), queue names per student
(``namespace``), a broker or a cluster on this machine (``broker``, ``cluster``), worker
processes and their lifetimes (``processes``, ``runtime``, ``run_script``), the message trace
drawn in the notebooks (``trace``, ``trace_draw``, ``trace_hooks``) and the queue watch
(``watch``). It imports the core and never the benchmark (``fibrpc_helpers.bench``).
"""
