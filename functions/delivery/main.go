// Command delivery is the SQS-triggered Lambda that POSTs bot messages to the Response Endpoint URL.
package main

func main() {}
