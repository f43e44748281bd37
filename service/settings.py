"""Gateway settings, read from the environment (prefix ``RGIC_``) with safe defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.codec.rate_control import Target, parse_target
from service.errors import BadParameter

__all__ = ["PROJECT_ROOT", "Settings", "get_settings"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """Everything the gateway and the embedded backend can be told; each field is ``RGIC_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="RGIC_", protected_namespaces=())

    # backend
    backend_address: str = Field("127.0.0.1:8500", description="TF Serving gRPC host:port")
    model_name: str = "residual_gru"
    model_version: int | None = Field(None, description="version for new bitstreams; default: newest served")
    model_config_file: Path = PROJECT_ROOT / "models" / "models.config"
    backend_timeout_seconds: float = 60.0
    backend_retries: int = 3
    backend_retry_backoff_seconds: float = 0.2
    grpc_max_message_bytes: int = 512 * 1024 * 1024
    embedded_mixed_precision: Literal["auto", "", "bfloat16"] = Field(
        "auto",
        description="the embedded backend's compute: bfloat16 convolutions (TF Serving's --mixed_precision="
        "bfloat16), float32 (empty) or auto (bfloat16 where the CPU computes it natively: compress and "
        "decompress ~30 % faster, 0.01 dB lower; docs/decisions.md 30)",
    )

    # codec
    patch_size: int = Field(32, description="rate-control patch side in pixels (multiple of 16)")
    tile_size: int = Field(1024, description="largest tile sent to the backend in one piece")
    max_iterations: int = Field(10, description="iterations offered; the model is trained for 10")
    extra_iterations: int = Field(
        0,
        description="iterations the first pass runs past a quality target, so rate control can give busy "
        "patches more: 1 saves ~2 % of bytes at MS-SSIM 0.95 and costs ~30 % more compress time",
    )
    smooth_patch_iterations: int = Field(
        3,
        description="fewest iterations rate control gives a smooth patch (CIELAB L* std below 6): fewer "
        "leave colour offsets that show as blocks beside patches that got more (docs/decisions.md 21)",
    )
    smooth_patch_delta_e: float = Field(
        1.2,
        description="a smooth patch gets iterations until its mean colour is within this CIELAB ΔE*ab of the "
        "original's (of those the first pass ran; it runs one past the target when the image has smooth "
        "patches): neighbours cannot then differ by a visible step (docs/decisions.md 25). 0 turns it off",
    )
    busy_patch_delta_e: float = Field(
        2.3,
        description="any other patch gets iterations until its mean colour is within this CIELAB ΔE*ab of "
        "the original's (one JND; or within half of it of the closest the first pass comes): rate control, "
        "following MS-SSIM, leaves the image's border patches and some busy ones tinted at 1-2 iterations "
        "(docs/decisions.md 44). 0 turns it off",
    )
    refinement: bool = Field(
        True,
        description="the refinement layer, a DCT coder, beside the network: both code the image at every "
        "target and the smaller bitstream meeting it wins (docs/decisions.md 28-32)",
    )
    refinement_base_iterations: int = Field(
        0,
        ge=0,
        description="network iterations under the refinement layer: 0 (the layer codes the whole image) "
        "measured smallest, 8-12 % below 4 iterations at MS-SSIM 0.98-0.99 (docs/decisions.md 28)",
    )
    default_target: str = Field(
        "ssimulacra2=70",
        description="target of a compress that names none, kind=value (ssimulacra2, msssim, psnr or bpp): "
        "SSIMULACRA 2 70, libjxl's 'high quality', about what libjpeg's quality 80 gives Kodak; "
        "msssim=0.95 was the seed's operating point",
    )
    ladder_msssims: list[Annotated[float, Field(gt=0.0, lt=1.0)]] = Field(
        [0.9],
        description="MS-SSIMs below a bitstream's own at which its quality ladder also holds the allocation "
        "a compress at that target would choose, each patch cut at its own count (docs/decisions.md 40): "
        "0.3-1 s more compress each on a Kodak image here; [0.85, 0.9, 0.93] for masters that serve them",
    )

    @field_validator("default_target")
    @classmethod
    def _target_parses(cls, value: str) -> str:
        try:
            parse_target(value)
        except BadParameter as error:
            raise ValueError(str(error)) from None
        return value

    @property
    def target(self) -> Target:
        """``default_target`` as a :class:`Target`."""
        return parse_target(self.default_target)

    ladder_max_pixels: int = Field(
        4_194_304,
        ge=0,
        description="largest image whose quality ladder (every prefix's size and quality, for GET "
        "/bitstreams/{id}?msssim=...) compress measures: one progressive decode more (0: never)",
    )

    # limits
    max_upload_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 24_000_000
    max_concurrent_requests: int = 4
    max_pixels_in_flight: int = Field(
        30_000_000,
        description="pixels being compressed or decoded at once (0: no limit); past it 503 with Retry-After. "
        "A 24 Mpx compress peaks near 10 GB of gateway and backend memory: the default admits one such "
        "photo and smaller ones beside it",
    )

    compare_max_pixels: int = Field(
        4_194_304,
        description="largest image POST /compare takes: it encodes JPEG, WebP and AVIF by bisection (up to 8 "
        "encodes each) beside ours, about 10 s of CPU per 4 Mpx",
    )

    # storage and jobs
    blob_url: str = Field(
        "",
        description="where blobs live: s3://bucket/prefix (S3-compatible storage; endpoint and credentials "
        "below and from the AWS chain), file:///path, or empty for blob_dir",
    )
    blob_dir: Path = PROJECT_ROOT / "var" / "blobs"
    blob_max_bytes: int = Field(
        10 * 1024**3,
        ge=0,
        description="cap on the blob directory: the oldest blobs are evicted to stay under it (0: no cap). "
        "S3 keeps what its lifecycle rule keeps",
    )
    blob_max_age_hours: float = Field(
        24 * 30, ge=0, description="blobs in the directory older than this are evicted (0: kept)"
    )
    s3_endpoint_url: str = Field("", description="S3 endpoint (SeaweedFS, MinIO, Ceph...); empty: AWS")
    jobs_url: str = Field(
        "",
        description="redis://host:port/db of a Redis or Valkey server holding asynchronous jobs, shared by "
        "every replica and surviving restarts; empty: jobs in this process's memory",
    )
    job_workers: int = Field(
        1, ge=0, description="queued jobs this process runs at once (0: it only queues; rgic worker runs)"
    )
    job_heartbeat_seconds: int = Field(
        10, ge=2, description="a job's worker touches it every third of this; silent longer, it runs again"
    )
    job_ttl_hours: float = Field(24.0, gt=0, description="how long a job's record (and outcome) is kept")

    # HTTP and logs
    api_keys: list[str] = Field(default_factory=list, description="bearer tokens; empty = open")
    cors_origins: list[str] = Field(default_factory=list)
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object per log line")
    log_level: str = "INFO"

    @field_validator("backend_address")
    @classmethod
    def _backend_address_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("RGIC_BACKEND_ADDRESS is empty: give the model backend's host:port")
        return value.strip()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
