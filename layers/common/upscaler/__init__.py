"""Shared library of the S3 upscale pipeline: the rules every function follows, one module per concern.

Jobs
- job_record: the job, one typed record per source object version, and its conversion to and from DynamoDB.
- jobs: the job store, and the state machine as one table of transitions that every status write goes through.
- open_jobs: the open-jobs index: sparse (open jobs only) and write-sharded, read one query per shard.
- conditional_writes: many single conditional writes made at once, each with its own outcome.
- clock: instants as the job record writes them (UTC, ISO 8601 with milliseconds).
- completion_events: one EventBridge event per job that ends.
- job_metrics: CloudWatch metrics for what happened to jobs.

Sources and outputs
- source_events: source objects from S3 notifications and EventBridge events.
- ingestion: a batch from the ingestion queue -> one submission, and the messages to deliver again.
- intake_pause: intake that waits while Runware is unavailable or refuses the account, and resumes by itself.
- spend_limit: the daily spend limit: the day's counter, reservations before sending, the price per image by tier.
- storage: S3 access: object metadata, header bytes, presigned URLs, copies.
- image_header: format, dimensions, orientation and animation from an image's first bytes.
- source_rules: what makes a readable source unusable (the reasons of REJECTED jobs).
- source_inspection: a source looked at as submit looks at it: the job fields it makes, or why it is refused.
- presets: folder presets: options by the prefix an object is dropped under, between defaults and metadata.
- output_geometry: the output's sides before anything is sent.
- outputs: the output's life: staging key, verification of the uploaded bytes, publication.
- prior_outputs: no second bill for the same content: a claimed job completed from an output that exists already.

Runware
- models: what a job asks Runware for (options, the upscale task), with the documented ranges.
- pricing: what a task costs by the model page's price tiers, for estimates before anything is sent.
- runware: the HTTP client: retries, deadline, pacing.
- request_pacing: how far apart one container sends its requests, learnt from 429s.
- runware_answers: every Runware answer (acknowledgement, getResponse, webhook body) read into typed outcomes.
- json_bodies: JSON reading that one hostile value cannot break.
- tokens: the per-job webhook token.

Paths
- submission: validated, claimed jobs sent in one request (the submit function).
- webhook: Runware's result POST authenticated and recorded (the webhook function).
- reconciliation: the safety-net pass: open jobs whose recovery check was lost, found through the open-jobs index.
- late_outputs: the safety net's look at the staging prefix: paid outputs of jobs that ended without them.
- recovery_checks: one SQS check per submitted job, due when it should be looked at, and its back-off.
- recovery: each job's check settled in batches, one getResponse per batch (the recover function).
- settlement: settling one job from what getResponse said: the rules recovery and the safety net share.
- results: recording a success, a failure or a timeout, for the webhook and reconciliation alike.
- result_recovery: a paid result that never reached the bucket, copied from Runware's URL or sent again once.
- parallel: per-item steps on a bounded thread pool, results in item order.

Configuration
- settings: configuration from the environment, by a table of variable -> parser.
- deploy_checks: settings refused at deploy: a CloudFormation custom resource answered with the library's verdict.
- wiring: each function's parts built from settings, once per container.
"""
