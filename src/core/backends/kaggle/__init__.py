"""The Kaggle backend: kernel and status (pure decisions), client (the Kaggle API), backend (the contract), entry (the kernel's own program)."""
