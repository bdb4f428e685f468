"""Test-wide environment: a region and fake credentials before any module makes a client.

In Lambda, AWS_REGION is always set; crhelper builds its clients at import time and fails the
whole handler without one. Fake credentials keep a mistaken call from reaching a real account.
"""

from __future__ import annotations

import os

for name, value in {
    "AWS_REGION": "eu-west-1",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}.items():
    os.environ.setdefault(name, value)
