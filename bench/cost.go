package bench

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Price is one list price, per unit.
type Price struct {
	Item   string
	PerM   float64 // dollars per million units, when priced per million
	Unit   string
	Source string
}

// Prices are the us-east-1 list prices used for the cost per million messages
// (research/aws.md §3.8; free tiers ignored).
var Prices = struct {
	HTTPAPI, LambdaRequests, DynamoWRU, DynamoRRU, SQSFIFO Price
	// LambdaARMGBSecond is dollars per GB-second of arm64 duration.
	LambdaARMGBSecond float64
}{
	HTTPAPI:           Price{Item: "API Gateway HTTP API", PerM: 1.00, Unit: "request", Source: "aws.amazon.com/api-gateway/pricing, first 300 M"},
	LambdaRequests:    Price{Item: "Lambda requests", PerM: 0.20, Unit: "invocation", Source: "aws.amazon.com/lambda/pricing"},
	DynamoWRU:         Price{Item: "DynamoDB on-demand writes", PerM: 0.625, Unit: "WRU", Source: "aws.amazon.com/dynamodb/pricing, after the Nov-2024 cut"},
	DynamoRRU:         Price{Item: "DynamoDB on-demand reads", PerM: 0.125, Unit: "RRU", Source: "same"},
	SQSFIFO:           Price{Item: "SQS FIFO", PerM: 0.50, Unit: "request (64 KB chunk)", Source: "aws.amazon.com/sqs/pricing"},
	LambdaARMGBSecond: 0.0000133334,
}

// DeployedMemoryMB is the memory both functions are deployed with (infra/).
const DeployedMemoryMB = 256

// Usage is what one accepted message uses, on average, as measured.
type Usage struct {
	HTTPRequests float64 // API Gateway requests
	// Inbound and delivery function invocations per message, and the mean billed
	// duration of one invocation (each rounded up to the millisecond, as Lambda bills).
	InboundInvocations, DeliveryInvocations float64
	InboundBilled, DeliveryBilled           time.Duration
	MemoryMB                                int
	WRU, RRU                                float64 // DynamoDB capacity units, as the service reported them
	// SizedWRU is the write units worked out from the items written (awscount.ItemSize):
	// what Cost uses when the service reported none.
	SizedWRU    float64
	SQSRequests float64 // by the functions
	ESMRequests float64 // receives and deletes by the event source mapping
}

// Line is one line of the cost of a million messages.
type Line struct {
	Item    string
	PerMsg  float64 // units per message
	Unit    string
	Dollars float64 // per million messages
}

// Cost is the cost of a million messages with usage u, line by line.
func Cost(u Usage) []Line {
	gbs := func(invocations float64, billed time.Duration) float64 {
		return invocations * billed.Seconds() * float64(u.MemoryMB) / 1024
	}
	inGBs, outGBs := gbs(u.InboundInvocations, u.InboundBilled), gbs(u.DeliveryInvocations, u.DeliveryBilled)
	wru := u.WRU
	if wru == 0 {
		wru = u.SizedWRU
	}
	return []Line{
		{Prices.HTTPAPI.Item, u.HTTPRequests, "requests", u.HTTPRequests * Prices.HTTPAPI.PerM},
		{"Lambda requests, inbound", u.InboundInvocations, "invocations", u.InboundInvocations * Prices.LambdaRequests.PerM},
		{"Lambda requests, delivery", u.DeliveryInvocations, "invocations", u.DeliveryInvocations * Prices.LambdaRequests.PerM},
		{fmt.Sprintf("Lambda duration, inbound (%d MB, %s billed per invocation)", u.MemoryMB, fmtMs(u.InboundBilled)), inGBs, "GB-s", inGBs * Prices.LambdaARMGBSecond * 1e6},
		{fmt.Sprintf("Lambda duration, delivery (%d MB, %s billed per invocation)", u.MemoryMB, fmtMs(u.DeliveryBilled)), outGBs, "GB-s", outGBs * Prices.LambdaARMGBSecond * 1e6},
		{Prices.DynamoWRU.Item, wru, "WRU", wru * Prices.DynamoWRU.PerM},
		{Prices.DynamoRRU.Item, u.RRU, "RRU", u.RRU * Prices.DynamoRRU.PerM},
		{"SQS FIFO requests by the functions", u.SQSRequests, "requests", u.SQSRequests * Prices.SQSFIFO.PerM},
		{"SQS FIFO requests by the event source mapping", u.ESMRequests, "requests", u.ESMRequests * Prices.SQSFIFO.PerM},
	}
}

// Total adds up lines.
func Total(lines []Line) float64 {
	var t float64
	for _, l := range lines {
		t += l.Dollars
	}
	return t
}

// Billed is a Lambda invocation's billed duration: rounded up to the millisecond.
func Billed(d time.Duration) time.Duration {
	return time.Duration(math.Ceil(float64(d)/float64(time.Millisecond))) * time.Millisecond
}

func fmtMs(d time.Duration) string {
	return strings.TrimSuffix(fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)), ".00") + " ms"
}
