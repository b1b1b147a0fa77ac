"""Where a stage runs. Every backend runs the same stage runner (`python -m core.stage`).

``core.backends.base``: the contract; ``core.backends.registry.get_backend``: a backend by kind."""
