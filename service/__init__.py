"""HTTP gateway of the recurrent image codec: API, codec tooling, backend clients and embedded backend."""
