"""Attribute names: the OpenTelemetry GenAI semantic conventions (latest experimental), plus ours.

The GenAI conventions are still in development and the Python constants lag them, so the names
live here (research/peers.md §4 and §8.2). Never the deprecated ``gen_ai.system`` or
``gen_ai.usage.prompt_tokens``/``completion_tokens``. Governance has no convention: it uses the
``corral.*`` namespace.
"""

from __future__ import annotations

# -- GenAI (spans) ------------------------------------------------------------------------------
OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
AGENT_ID = "gen_ai.agent.id"
AGENT_NAME = "gen_ai.agent.name"
AGENT_VERSION = "gen_ai.agent.version"
CONVERSATION_ID = "gen_ai.conversation.id"
REQUEST_MODEL = "gen_ai.request.model"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
# Opt-in content (CORRAL_TRACE_CONTENT): likely personal data.
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT = "gen_ai.tool.call.result"

ERROR_TYPE = "error.type"
ERROR_OTHER = "_OTHER"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
# Langfuse and other LLM-trace backends group by these.
SESSION_ID = "session.id"
USER_ID = "user.id"

# gen_ai.operation.name values
INVOKE_AGENT = "invoke_agent"
EXECUTE_TOOL = "execute_tool"
CHAT = "chat"

# -- Corral ---------------------------------------------------------------------------------------
TURN_ID = "corral.turn.id"
STOP_REASON = "corral.turn.stop_reason"
RUNTIME_ID = "corral.runtime.id"
RUNTIME_KIND = "corral.runtime.kind"
COST_MICROS = "corral.cost.micros"
DECISION_ACT = "corral.decision.act"
DECISION_OUTCOME = "corral.decision.outcome"
DECISION_CODE = "corral.decision.code"
DECISION_REASON = "corral.decision.reason"
DECISION_SCOPE = "corral.decision.scope"
POLICY_ID = "corral.policy.id"
POLICY_VERSION = "corral.policy.version"
EPOCH = "corral.epoch"
BUDGET_RESERVED_MICROS = "corral.budget.reserved_micros"
BUDGET_ACCOUNTS = "corral.budget.accounts"
APPROVAL_ID = "corral.approval.id"
APPROVAL_DECISION = "corral.approval.decision"
APPROVAL_RESOLVED_BY = "corral.approval.resolved_by"

#: gen_ai.provider.name per runtime kind: a well-known value where the runtime is the provider's
#: own product, otherwise the runtime's name (the conventions allow custom values).
PROVIDERS = {"claude_agents": "anthropic"}

#: gen_ai.tool.type per normalized tool kind: runtimes run their built-in and MCP tools on the
#: agent side ("extension"); a client tool is run by the caller ("function").
TOOL_TYPES = {"builtin": "extension", "mcp": "extension", "custom_client": "function"}
