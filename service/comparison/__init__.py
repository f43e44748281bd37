"""Our codec beside the classic ones (JPEG 4:2:0, WebP, AVIF) at the same byte budget."""
