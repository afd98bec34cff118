"""Tools for multi-turn episodes: the call syntax, the registry, the built-ins, the runner."""
from rl.tools.calls import ParsedTurn, ToolCall, parse_turn, render_calls
from rl.tools.registry import ENTRY_POINT_GROUP, Tool, get_tool, registered, tool
from rl.tools.runner import ToolResult, ToolRunner

__all__ = ["ENTRY_POINT_GROUP", "ParsedTurn", "Tool", "ToolCall", "ToolResult", "ToolRunner", "get_tool",
           "parse_turn", "registered", "render_calls", "tool"]
