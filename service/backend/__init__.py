"""Access to the model: a TensorFlow Serving gRPC client and an embedded TF-Serving-compatible server."""
