"""Corral's LLM gateway: meters and caps every model call runtimes make."""
