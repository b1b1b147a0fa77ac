"""The chat: a question read (``language``, ``question``), resolved against the live state
(``target``), answered by one tool (``tools``) and written (``text``, ``format``, ``steps``,
``words``); ``respond.ask`` ties them together, ``llm`` is the tool-calling path. The top layer:
imports every other part of the agent, none imports it."""

from agent.chat.respond import ask

__all__ = ["ask"]
