"""Codec tooling that runs in the gateway: images, patches, rate control, bitstream, quality metrics."""

from service.logs import import_tensorflow_quietly

import_tensorflow_quietly()  # this package imports TensorFlow: first without its C++ start-up lines
