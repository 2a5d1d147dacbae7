"""s3-upscale: operate a deployed stack (found by its CloudFormation outputs) or the local one."""
