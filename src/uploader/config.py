"""Every tunable of the data path, with the evidence for its value.

Timing nests, innermost first, each bound inside the next:
one SDK attempt (connect + read timeout) < one call's retry budget < one Lambda (timeout in
template.yaml) < one state's Retry < the execution's deadline < CloudFormation's ServiceTimeout.
"""

from __future__ import annotations

# --- Per-call timeouts and the single retry budget (see aws.py) -----------------------------
# Public uploaders settled on ~5 s connect, ~12 s read, ~120 s per operation
# (shared/reference/ebs-direct-api.md, "Timeouts that public tools settled on").
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 12
# The budget is time, not attempts: with backoff capped at 8 s, 40 attempts outlast 120 s, so
# the 2-minute "snapshot not yet visible" window (below) is really waited out.
CALL_MAX_ATTEMPTS = 40
CALL_BUDGET_SECONDS = 120
BACKOFF_BASE_SECONDS = 0.2
BACKOFF_CAP_SECONDS = 8.0
# PutSnapshotBlock may say "snapshot does not exist" right after StartSnapshot; the EBS team's
# advice (coldsnap PR #56) is to keep retrying for up to about two minutes.
SNAPSHOT_VISIBILITY_GRACE_SECONDS = 120

# --- StartSnapshot ---------------------------------------------------------------------------
# EBS cancels a pending snapshot after this many idle minutes; our whole run fits in CloudFormation's
# hour, so a longer value would only keep a dead snapshot around longer.
SNAPSHOT_TIMEOUT_MINUTES = 60

# --- Planning: how the image is cut into ranges, one worker Lambda per range -----------------
# A range is the unit of a Map item. 8,192 blocks (4 GiB) takes ~33 s at a fair share of the
# 1,000 blocks/s per-snapshot limit split 8 ways (~125 blocks/s), and stays far from Lambda's
# 15 minutes even at a tenth of that. 64 TiB then needs 16,384 items, read from S3.
MAX_RANGE_BLOCKS = 8_192
# Below 64 blocks (32 MiB) a range costs more in Lambda start-up than it saves.
MIN_RANGE_BLOCKS = 64
# Several ranges per worker keep all workers busy to the end when ranges finish unevenly.
RANGES_PER_WORKER = 2
# Default Map MaxConcurrency; template.yaml's MaxWorkers parameter overrides it for planning.
# The fan-out is sized from the limit: EBS takes ~1,000 PutSnapshotBlock/s per snapshot, and a
# call takes ~60-150 ms from inside AWS (upload-ami's 64 threads write ~455 blocks/s, which is
# ~140 ms a call), so holding the limit needs ~150 calls in flight: 8 workers x 24 threads = 192.
# (32 threads measured worse: more calls bunch up at EBS and get throttled; benchmarks/RESULTS.md.)
# Pacing keeps them at the limit rather than past it; each worker writes ~125 blocks/s, ~15% of
# a 1,769 MB Lambda's vCPU at the ~1.1 ms per block measured locally (TLS in AWS adds to it;
# benchmarks/RESULTS.md).
DEFAULT_MAX_WORKERS = 8

# EBS accepts about 1,000 PutSnapshotBlock calls/s per snapshot, not adjustable (the reference's
# quotas). Workers share this and pace themselves (pacing.py); the WRITE_RATE_PER_SNAPSHOT
# environment variable of the Plan function overrides it (benchmarks scale it down).
SNAPSHOT_WRITE_RATE = 1000.0

# --- Inside one worker -----------------------------------------------------------------------
# Concurrent PutSnapshotBlock calls per worker: at ~150 ms a call, 24 threads give ~160 calls/s,
# above a worker's share (1,000 / 8 = 125/s); pacing, not the thread count, sets the rate.
WRITER_THREADS = 24
# One ranged S3 GET feeds this many blocks (4 MiB), and this many reader threads GET at once,
# ahead of the writers by at most QUEUED_BLOCKS. A worker's buffers are then about
# READER_THREADS x 4 MiB + (QUEUED_BLOCKS + WRITER_THREADS) x 512 KiB = 40 MiB, whatever the
# image or range size (benchmarks/RESULTS.md has the measured peak RSS).
READER_THREADS = 4
QUEUED_BLOCKS = 24
READ_CHUNK_BLOCKS = 8

# --- Waiting for "completed" ----------------------------------------------------------------
# (seconds waited so far, seconds until the next look), first match wins. Small images complete
# within seconds, so CloudFormation hears within ~2 s; a long wait costs at most ~400 loop
# iterations (~3,600 history events) before the deadline, far from the 25,000 limit.
POLL_SCHEDULE = ((600, 10), (60, 5), (0, 2))
# The execution gives up (and deletes the snapshot) if it is not completed by the deadline the
# handler sets: request time plus this, safely inside CloudFormation's one hour.
EXECUTION_BUDGET_SECONDS = 55 * 60
# With a ServiceTimeout set on the resource, the deadline keeps this share of it, and at least
# this many seconds, in reserve: a call in flight (5 s connect + 12 s read), the Map failing,
# Abort and the FAILED answer, with cold starts.
DEADLINE_MARGIN_FRACTION = 0.1
DEADLINE_RESERVE_SECONDS = 60

# --- Where the workers leave per-block digests ----------------------------------------------
WORK_PREFIX = "executions"
