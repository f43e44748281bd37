"""HTTP layer: thin routes over the codec, storage and backend modules."""
