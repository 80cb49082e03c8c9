"""Crash tests: real Corral processes killed with SIGKILL mid-turn, restarted and checked."""
