"""Failure diagnosis: a log (and heartbeat) matched against the playbooks' known failures
(``diagnose``), liveness (``heartbeat``), a stage's output folder (``run_dir``), the safe remedy
(``remedies``), the files a user names (``file_inputs``) and the LLM's second opinion
(``llm_assist``). Imports ``agent.rules``, ``agent.playbooks`` and ``agent.base``, never chat."""
