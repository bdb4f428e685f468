"""Every error of the data path. Class names become Step Functions error names.

Two families: ``RetryableError`` (a transient condition that outlived its one retry budget in
``aws.call``; states do not retry it again, so retries never nest) and ``FatalError`` (retrying
cannot help). Either way Catch routes them to Abort, which deletes the snapshot and answers FAILED.
Messages name the snapshot, block, range or S3 object, in coldsnap's "Failed to <verb> ..." shape.
"""

from __future__ import annotations


class ProviderError(Exception):
    """Base of every error this provider raises on purpose."""


class RetryableError(ProviderError):
    """A transient condition (throttling, 5xx, timeouts) outlived its retry budget."""


class FatalError(ProviderError):
    """Retrying cannot help: bad input, missing permission, corrupt or missing data."""


class InvalidProperty(FatalError):
    """A resource property is missing, malformed or out of range; the message names it."""


class ImageNotFound(FatalError):
    """The S3 object named by ImageBucket/ImageKey does not exist or cannot be read."""


class ImageEmpty(FatalError):
    """The S3 object is 0 bytes; an empty snapshot is never what was meant."""


class VolumeTooSmall(FatalError):
    """VolumeSize cannot hold the image."""


class AwsCallFailed(FatalError):
    """An AWS call failed with an error that retrying cannot fix (AccessDenied, validation...)."""


class AwsCallExhausted(RetryableError):
    """An AWS call kept failing with retryable errors until its retry budget ran out."""


class IncompleteUpload(FatalError):
    """Finish found a range that never reported, or a report that does not match the plan."""


class SnapshotFailed(FatalError):
    """EC2 reports the snapshot in state ``error``."""


class DeadlineExceeded(FatalError):
    """The snapshot was not completed before the execution's deadline."""


class SnapshotInUse(FatalError):
    """DeleteSnapshot refused: an AMI still uses the snapshot."""


class NotRawImage(FatalError):
    """The object is a container (qcow2, VHD, VMDK...) or compressed, not a raw disk image."""


class UploadStopped(FatalError):
    """The execution was stopped (CloudFormation deleted the resource) while a step was running."""
