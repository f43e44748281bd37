"""Benchmarks: rate-distortion on Kodak against JPEG, WebP and AVIF; latency through HTTP."""
