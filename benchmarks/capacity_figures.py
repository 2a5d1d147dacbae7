"""AWS's published limits and list prices the capacity model combines with the measured requests.

Each figure names the page that states it and the date it was read there. Prices are us-east-1
list prices, excluding free tiers and data transfer; limits are the default quotas (most can be
raised on request: the page says which).
"""

from __future__ import annotations

from dataclasses import dataclass

READ_ON = "as of 2026-12-03"
# A figure whose page was not re-read on that date: as this project last recorded it; check the page.
NOT_REREAD = "not re-read on 2026-12-03"


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str
    page: str
    read_on: str = READ_ON

    def cite(self) -> str:
        return f"{self.page} ({self.read_on})"


# ---- DynamoDB ---------------------------------------------------------------------------------------

DYNAMODB_PRICING = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
DYNAMODB_ITEM_SIZES = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html"
DYNAMODB_GSI_WRITES = (
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations.Writes"
)
DYNAMODB_CONDITIONAL_WRITES = (
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html"
    "#WorkingWithItems.ConditionalWrites.ReturnConsumedCapacity"
)
DYNAMODB_TRANSACTIONS = (
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html"
    "#transaction-capacity-handling"
)
DYNAMODB_PARTITIONS = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html"
DYNAMODB_QUOTAS = (
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode-max-throughput.html"
)
DYNAMODB_ON_DEMAND = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode.html"

WRITE_REQUEST_UNIT_PRICE = Figure(0.625 / 1e6, "USD per write request unit", DYNAMODB_PRICING)
READ_REQUEST_UNIT_PRICE = Figure(0.125 / 1e6, "USD per read request unit", DYNAMODB_PRICING)
WRITE_UNIT_BYTES = Figure(1024, "bytes of item per write unit", DYNAMODB_PRICING)
READ_UNIT_BYTES = Figure(
    4096, "bytes per strongly consistent read unit (half for eventually consistent)", DYNAMODB_PRICING
)
PARTITION_WRITE_UNITS = Figure(1000, "write units per second per partition", DYNAMODB_PARTITIONS)
PARTITION_READ_UNITS = Figure(3000, "read units per second per partition", DYNAMODB_PARTITIONS)
TABLE_WRITE_UNITS = Figure(40_000, "on-demand write request units per second per table (adjustable)", DYNAMODB_QUOTAS)
TABLE_READ_UNITS = Figure(40_000, "on-demand read request units per second per table (adjustable)", DYNAMODB_QUOTAS)
NEW_TABLE_WRITE_UNITS = Figure(
    4000, "write request units per second a new on-demand table serves before warm throughput", DYNAMODB_ON_DEMAND
)

# ---- Lambda -----------------------------------------------------------------------------------------

LAMBDA_PRICING = "https://aws.amazon.com/lambda/pricing/"
LAMBDA_QUOTAS = "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html"
LAMBDA_LOGS = "https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html"

GB_SECOND_PRICE_ARM = Figure(
    0.0000133334, "USD per GB-second (arm64, first 6 billion GB-s a month)", LAMBDA_PRICING, NOT_REREAD
)
LAMBDA_REQUEST_PRICE = Figure(0.20 / 1e6, "USD per invocation", LAMBDA_PRICING, NOT_REREAD)
ACCOUNT_CONCURRENCY = Figure(1000, "concurrent executions per Region (adjustable)", LAMBDA_QUOTAS, NOT_REREAD)
# START, END and REPORT: the three lines Lambda writes per invocation, counted at the length of their
# documented text format with a request id and typical figures.
PLATFORM_LOG_BYTES_PER_INVOCATION = Figure(
    len("START RequestId: 8f507cfc-xmpl-4697-b07a-ac58fc914c95 Version: $LATEST")
    + len("END RequestId: 8f507cfc-xmpl-4697-b07a-ac58fc914c95")
    + len(
        "REPORT RequestId: 8f507cfc-xmpl-4697-b07a-ac58fc914c95\tDuration: 47.65 ms\tBilled Duration: 48 ms\t"
        "Memory Size: 256 MB\tMax Memory Used: 86 MB\tInit Duration: 433.27 ms"
    ),
    "bytes of START, END and REPORT lines per invocation",
    LAMBDA_LOGS,
)

# ---- SQS --------------------------------------------------------------------------------------------

SQS_PRICING = "https://aws.amazon.com/sqs/pricing/"
SQS_STANDARD = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/standard-queues.html"

# ReceiveMessage returns at most 10 messages; the batch actions take at most 10 entries.
SQS_BATCH_LIMIT = Figure(
    10,
    "messages per ReceiveMessage or entries per batch request",
    "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html",
    NOT_REREAD,
)
# The functions keep a secret's value for this long per container (upscaler.settings), in both designs.
SECRET_CACHE_SECONDS = Figure(
    300, "seconds a container keeps a secret's value", "upscaler/settings.py", "this repository"
)
SQS_REQUEST_PRICE = Figure(0.40 / 1e6, "USD per request (standard queue, per 64 KB chunk)", SQS_PRICING, NOT_REREAD)
# "Standard queues support a nearly unlimited number of API calls per second, per API action."
SQS_THROUGHPUT = Figure(float("inf"), "API calls per second per action (nearly unlimited)", SQS_STANDARD, NOT_REREAD)

# ---- S3 ---------------------------------------------------------------------------------------------

S3_PRICING = "https://aws.amazon.com/s3/pricing/"
S3_PERFORMANCE = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html"

S3_PUT_PRICE = Figure(0.005 / 1000, "USD per PUT, COPY, POST or LIST request (S3 Standard)", S3_PRICING, NOT_REREAD)
S3_GET_PRICE = Figure(0.0004 / 1000, "USD per GET, HEAD and other request (S3 Standard)", S3_PRICING, NOT_REREAD)
S3_DELETE_PRICE = Figure(0.0, "USD per DELETE request (free)", S3_PRICING, NOT_REREAD)
S3_PREFIX_WRITES = Figure(
    3500, "PUT/COPY/POST/DELETE requests per second per partitioned prefix", S3_PERFORMANCE, NOT_REREAD
)
S3_PREFIX_READS = Figure(5500, "GET/HEAD requests per second per partitioned prefix", S3_PERFORMANCE, NOT_REREAD)

# ---- API Gateway HTTP API ---------------------------------------------------------------------------

HTTP_API_PRICING = "https://aws.amazon.com/api-gateway/pricing/"
HTTP_API_QUOTAS = "https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html"

HTTP_API_REQUEST_PRICE = Figure(1.00 / 1e6, "USD per request (first 300 million a month)", HTTP_API_PRICING, NOT_REREAD)
HTTP_API_ACCOUNT_RATE = Figure(
    10_000, "requests per second per account and Region (adjustable)", HTTP_API_QUOTAS, NOT_REREAD
)

# ---- EventBridge ------------------------------------------------------------------------------------

EVENTBRIDGE_PRICING = "https://aws.amazon.com/eventbridge/pricing/"
EVENTBRIDGE_QUOTAS = "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html"

EVENT_PRICE = Figure(1.00 / 1e6, "USD per custom event published (per 64 KB chunk)", EVENTBRIDGE_PRICING, NOT_REREAD)
PUT_EVENTS_RATE = Figure(
    10_000,
    "PutEvents requests per second, us-east-1 (2,400 in us-east-2, less in smaller Regions; adjustable)",
    EVENTBRIDGE_QUOTAS,
)

# ---- Secrets Manager --------------------------------------------------------------------------------

SECRETS_PRICING = "https://aws.amazon.com/secrets-manager/pricing/"
SECRETS_QUOTAS = "https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html"

SECRETS_CALL_PRICE = Figure(0.05 / 10_000, "USD per API call", SECRETS_PRICING, NOT_REREAD)
GET_SECRET_VALUE_RATE = Figure(
    10_000, "GetSecretValue and DescribeSecret requests per second, combined", SECRETS_QUOTAS
)

# ---- CloudWatch and X-Ray ---------------------------------------------------------------------------

CLOUDWATCH_PRICING = "https://aws.amazon.com/cloudwatch/pricing/"
PUT_LOG_EVENTS = "https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html"
XRAY_PRICING = "https://aws.amazon.com/xray/pricing/"
XRAY_SAMPLING = "https://docs.aws.amazon.com/xray/latest/devguide/xray-console-sampling.html"

LOG_INGESTION_PRICE = Figure(
    0.50 / 1e9, "USD per byte ingested (Standard log class, $0.50 per GB)", CLOUDWATCH_PRICING, NOT_REREAD
)
LOG_EVENT_OVERHEAD_BYTES = Figure(26, "bytes counted per log event besides its message", PUT_LOG_EVENTS, NOT_REREAD)
TRACE_PRICE = Figure(5.00 / 1e6, "USD per trace recorded", XRAY_PRICING, NOT_REREAD)
# The default sampling rule: the first request each second, then 5 % of the others.
TRACE_SAMPLING_RATE = Figure(0.05, "share of invocations traced by the default rule", XRAY_SAMPLING, NOT_REREAD)
# The webhook API's access log line, as the template's format writes it, with typical values.
ACCESS_LOG_BYTES = Figure(
    len(
        '{"requestId":"JbVzRi8xoAMESGA=","requestTime":"03/Dec/2026:13:02:40 +0000",'
        '"sourceIp":"203.0.113.10","routeKey":"POST /webhook","status":"200","responseLength":"16",'
        '"integrationStatus":"200","integrationError":"-"}'
    ),
    "bytes per HTTP API access log line (the template's format)",
    CLOUDWATCH_PRICING,
)

# ---- Runware ----------------------------------------------------------------------------------------

RUNWARE_MODEL_PAGE = "Runware's model page for prunaai:p-image@upscale, price section"
RUNWARE_PRICE_SMALL = Figure(0.005, "USD per image with a 1-4 MP output", RUNWARE_MODEL_PAGE)
RUNWARE_PRICE_LARGE = Figure(0.01, "USD per image with a 5-8 MP output", RUNWARE_MODEL_PAGE)


def runware_price_per_image(target_megapixels: int) -> Figure:
    return RUNWARE_PRICE_SMALL if target_megapixels <= 4 else RUNWARE_PRICE_LARGE
