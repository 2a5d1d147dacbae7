"""Operating a deployed (or local) s3-upscale stack from the command line."""
