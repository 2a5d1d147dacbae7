"""Shared library of the S3 upscale pipeline: the rules every function follows.

One module per concern: settings, models, image_header, storage, jobs, runware, tokens,
source_events, submission, results, reconciliation.
"""
