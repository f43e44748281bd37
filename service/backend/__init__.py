"""Access to the model: a TensorFlow Serving gRPC client and an embedded TF-Serving-compatible server."""

from service.logs import import_tensorflow_quietly

import_tensorflow_quietly()  # this package imports TensorFlow: first without its C++ start-up lines
