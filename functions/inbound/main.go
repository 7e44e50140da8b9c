// Command inbound is the Lambda behind API Gateway that accepts user messages.
package main

func main() {}
