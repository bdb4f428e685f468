"""Local emulation of the provider's AWS world (moto underneath, EBS made strict on top).

A development tool: nothing here ships in the Lambda packages ``sam build`` makes.
"""
