"""A chat session: the conversation memory ``palier chat`` and the MCP server share.

    session = ChatSession()                      # live state from the environment
    session.ask("où en est l'exp2 de demo ?")    # -> Answer (text, intent, sources, data)
    session.ask("et sa baseline sur le jeu général ?")   # continues demo / exp2-medical
    session.about                                # {"pipeline", "stages", "eval_set", "intent", ...}

Each answer's ``data["about"]`` (pipeline, stage, eval set, intent) becomes the context of the
next question; a question that names another pipeline or stage replaces it. ``reset()`` starts
a new conversation. ``ask`` never raises for a question (see agent.chat.respond.ask).
"""

from __future__ import annotations

from typing import Any

from agent.base.state import LiveState
from agent.chat.answer import Answer
from agent.playbooks.parse import PlaybookSet


class ChatSession:
    def __init__(self, state: LiveState | None = None, playbooks: PlaybookSet | None = None,
                 use_llm: bool | None = None):
        from agent.rules import load_checked_playbooks

        self.state = state or LiveState.from_env()
        self.playbooks = playbooks or load_checked_playbooks()
        self.use_llm = use_llm
        self.about: dict[str, Any] = {}
        self.turns: list[Answer] = []

    def ask(self, question: str) -> Answer:
        from agent.chat.respond import ask

        answer = ask(question, state=self.state, playbooks=self.playbooks, use_llm=self.use_llm,
                     context=self.about or None)
        about = answer.data.get("about") if isinstance(answer.data, dict) else None
        if about and (about.get("pipeline") or about.get("stages")):
            self.about = dict(about)
        self.turns.append(answer)
        return answer

    def reset(self) -> None:
        self.about = {}
        self.turns = []
