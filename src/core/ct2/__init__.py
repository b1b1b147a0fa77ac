"""CTranslate2 (faster-whisper) models: ``model_bin`` reads a ``model.bin`` and ``whisper`` maps it to
Transformers terms (numpy only); ``packaged`` resolves the ``pypi:`` Whisper wheels; ``importer``
turns a CTranslate2 folder into a Transformers one and ``export`` does the reverse with its
verification (both load transformers inside their functions, in the stage-runner process)."""
