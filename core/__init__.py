"""Chat with PaliGemma 2 about your photos: detection, segmentation, captions."""
