// Package webhook is the HTTP side of delivery: it signs one bot message, POSTs it to
// the Response Endpoint URL and says what the answer means for the caller's retry
// loop. It knows nothing about queues; shared/delivery decides when to try again.
//
// The wire format is Standard Webhooks (https://www.standardwebhooks.com) rather than
// a scheme of our own, so a receiver can use an existing verifier library in any
// language, and so secrets look like the ones people already handle ("whsec_…",
// several at once during rotation).
//
// Three choices follow from what went wrong elsewhere (research/peers.md §4):
//
//   - Every attempt is signed afresh with the time of that attempt. webhook-id stays
//     the same so the receiver can de-duplicate, but a retry that reused the first
//     attempt's timestamp would be rejected as a replay by any verifier with a
//     tolerance window once the backoff grows past a few minutes.
//   - Redirects are never followed. A signed body replayed to wherever a Location
//     header points is an easy way to leak it; a 3xx is retried like any failure, and
//     the outcome says where it pointed so the operator fixes the URL.
//   - The outcome is one of four classes, decided here in one place: Delivered (2xx),
//     Gone (410), Retry (every other answer, timeouts, network failures) and
//     Permanent (a request that cannot be sent). The reason carried with it is short
//     and safe to log: never the response body, the URL or a secret; the answer's first
//     KiB travels apart, for the attempt log.
package webhook
