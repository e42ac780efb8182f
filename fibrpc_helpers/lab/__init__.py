"""The lab: the plumbing around the RPC core that a student may skip (notebooks, brokers, child
processes, the message trace, the queue watch). It imports the core and never the benchmark."""
