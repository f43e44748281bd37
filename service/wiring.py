"""Build the backend client, the image codec and the blob store from settings (one place for the app,
the CLI and the benchmarks)."""

from __future__ import annotations

from service.backend.client import BackendClient
from service.codec.pipeline import ImageCodec
from service.settings import Settings
from service.storage import BlobStore, open_blob_store

__all__ = ["backend_client", "blob_store", "image_codec"]


def blob_store(settings: Settings) -> BlobStore:
    """The configured blob store: S3 (``RGIC_BLOB_URL=s3://...``) or the capped directory."""
    return open_blob_store(
        settings.blob_url,
        settings.blob_dir,
        s3_endpoint_url=settings.s3_endpoint_url,
        max_bytes=settings.blob_max_bytes,
        max_age_seconds=settings.blob_max_age_hours * 3600,
    )


def backend_client(settings: Settings, address: str | None = None) -> BackendClient:
    """A client for ``address`` (default: the configured backend) with the configured limits."""
    return BackendClient(
        address or settings.backend_address,
        timeout_seconds=settings.backend_timeout_seconds,
        retries=settings.backend_retries,
        backoff_seconds=settings.backend_retry_backoff_seconds,
        max_message_bytes=settings.grpc_max_message_bytes,
    )


def image_codec(settings: Settings, client: BackendClient) -> ImageCodec:
    """The codec with the configured model, geometry and limits."""
    return ImageCodec(
        client,
        settings.model_name,
        settings.model_version,
        patch_size=settings.patch_size,
        tile_size=settings.tile_size,
        max_iterations=settings.max_iterations,
        extra_iterations=settings.extra_iterations,
        smooth_patch_iterations=settings.smooth_patch_iterations,
        smooth_patch_delta_e=settings.smooth_patch_delta_e,
        busy_patch_delta_e=settings.busy_patch_delta_e,
        refinement_base_iterations=settings.refinement_base_iterations if settings.refinement else None,
        max_pixels=settings.max_pixels,
        ladder_msssims=tuple(settings.ladder_msssims),
    )
