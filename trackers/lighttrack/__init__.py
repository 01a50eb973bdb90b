"""LightTrack: building blocks, the standalone subnet model, and the tracking pipeline."""
