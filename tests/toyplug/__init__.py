"""A tiny plugin for the platform's own tests: 2-D points from a mixture of four Gaussians
(one class each) and a small MLP denoiser. It uses only diffcore's public API, like any
third-party plugin, so the platform is tested without the image/audio/molecule plugins."""
