"""Claude Managed Agents (Anthropic API, beta ``managed-agents-2026-04-01``) as a Corral runtime."""
