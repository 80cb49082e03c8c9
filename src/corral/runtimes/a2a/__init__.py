"""A2A (Agent2Agent) agents as a Corral runtime: protocol 1.0 and 0.3 over JSON-RPC + SSE."""
