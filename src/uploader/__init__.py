"""The data path: plan -> write ranges -> finish -> wait, with abort on failure."""
