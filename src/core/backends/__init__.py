"""Where a stage runs. Every backend runs the same stage runner (`python -m core.stage`).

``core.backends.base``: the contract; ``core.backends.factory.get_backend``: a backend by kind."""
