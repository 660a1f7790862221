"""Where change records come from: Lambda events of DynamoDB Streams (and Kinesis), the Streams API, Scan, S3 exports."""
