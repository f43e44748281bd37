"""Codec tooling that runs in the gateway: images, patches, rate control, bitstream, quality metrics."""
