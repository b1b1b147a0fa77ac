"""The Modal backend: plan (pure decisions), client (the Modal SDK), backend (the contract), container (the code that runs in Modal)."""
