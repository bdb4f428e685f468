"""The provider's front door: CloudFormation requests in, CloudFormation answers out."""
